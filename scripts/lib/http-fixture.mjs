// The project's HTTP(S) range server for tests, the demo and benchmarks.
//
// Serves files under `root` with strong ETags, every single-range form (a-b, a-, -n), If-Match,
// If-None-Match and If-Range, optional TLS, a presigned-URL check and switchable faults.
// Control: POST /__fault {path, kind: 'reset'|'status'|'throttle'|'no-ranges'|'weak-etag'|
// 'digest'|'corrupt', afterBytes?, status?, bytesPerSec?, times?, at?}, DELETE /__fault,
// GET /__stats. 'digest' advertises the file's SHA-256 in an RFC 9530 Repr-Digest header;
// 'corrupt' advertises it too but flips the byte at offset `at` in every body that covers it.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join, normalize, sep } from 'node:path';
import { Transform } from 'node:stream';

/** Sign a path the way the fixture checks presigned URLs: `?expires=<ms>&sig=<hmac>`. */
export function presign(baseUrl, path, key, ttlMs = 60_000) {
  const expires = Date.now() + ttlMs;
  const sig = createHmac('sha256', key).update(`${path}\n${expires}`).digest('hex');
  return `${baseUrl}${path}?expires=${expires}&sig=${sig}`;
}

function checkSignature(path, query, key) {
  const expires = query.get('expires');
  const sig = query.get('sig');
  if (!expires || !sig || Number(expires) < Date.now()) return false;
  const want = createHmac('sha256', key).update(`${path}\n${expires}`).digest('hex');
  return sig.length === want.length && timingSafeEqual(Buffer.from(sig), Buffer.from(want));
}

const digests = new Map();

/** SHA-256 of a file, cached per inode, mtime and size. */
function sha256Of(file, st) {
  const key = `${file}:${st.ino}:${st.mtimeMs}:${st.size}`;
  if (!digests.has(key)) {
    digests.set(
      key,
      new Promise((resolve, reject) => {
        const h = createHash('sha256');
        createReadStream(file)
          .on('data', (c) => h.update(c))
          .on('end', () => resolve(h.digest('base64')))
          .on('error', reject);
      }),
    );
  }
  return digests.get(key);
}

function parseRange(header, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  // No range selects any byte of an empty representation (RFC 9110 §14.1.2).
  if (size === 0) return 'unsatisfiable';
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/**
 * Start the fixture. Returns { url, port, close, faults, stats }.
 * @param {{ root: string, port?: number, tls?: { key: string, cert: string }, signingKey?: string }} opts
 */
export async function startHttpFixture({ root, port = 0, tls, signingKey = 'objget-fixture-key' }) {
  const faults = new Map();
  const stats = { requests: 0, bytesSent: 0, inflight: 0, byPath: {} };

  async function handler(req, res) {
    const u = new URL(req.url, 'http://fixture');
    if (u.pathname === '/__fault') {
      if (req.method === 'DELETE') {
        faults.clear();
        res.writeHead(204).end();
        return;
      }
      let body = '';
      for await (const c of req) body += c;
      const f = JSON.parse(body);
      faults.set(f.path, { times: Infinity, ...f });
      res.writeHead(204).end();
      return;
    }
    if (u.pathname === '/__stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
      return;
    }
    stats.requests++;
    stats.inflight++;
    res.once('close', () => stats.inflight--);
    stats.byPath[u.pathname] = (stats.byPath[u.pathname] ?? 0) + 1;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (u.search && !checkSignature(u.pathname, u.searchParams, signingKey)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('bad or expired signature');
      return;
    }
    let rel;
    try {
      rel = normalize(decodeURIComponent(u.pathname)).replace(/^[/\\]+/, '');
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (rel.split(sep).includes('..')) {
      res.writeHead(400).end();
      return;
    }
    const file = join(root, rel);
    let st;
    try {
      st = await fs.stat(file);
      if (!st.isFile()) throw new Error('not a file');
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const size = st.size;
    const fault = faults.get(u.pathname);
    const weak = fault?.kind === 'weak-etag' ? 'W/' : '';
    const etag = `${weak}"${st.ino.toString(16)}-${Math.floor(st.mtimeMs * 1000).toString(16)}-${size.toString(16)}"`;
    const headers = {
      etag,
      'last-modified': st.mtime.toUTCString(),
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
    };
    if (fault?.kind === 'digest' || fault?.kind === 'corrupt') {
      headers['repr-digest'] = `sha-256=:${await sha256Of(file, st)}:`;
    }
    const ifMatch = req.headers['if-match'];
    if (
      ifMatch &&
      ifMatch !== '*' &&
      !ifMatch
        .split(',')
        .map((s) => s.trim())
        .includes(etag)
    ) {
      res.writeHead(412, headers).end();
      return;
    }
    const ifNoneMatch = req.headers['if-none-match'];
    if (
      ifNoneMatch &&
      (ifNoneMatch === '*' ||
        ifNoneMatch
          .split(',')
          .map((s) => s.trim())
          .includes(etag))
    ) {
      res.writeHead(304, headers).end();
      return;
    }
    if (fault && fault.times > 0 && fault.kind === 'status') {
      fault.times--;
      res.writeHead(fault.status ?? 503, { 'retry-after': '0' }).end('injected fault');
      return;
    }
    let start = 0;
    let end = size - 1;
    let status = 200;
    const rangeHeader = req.headers.range;
    const ifRange = req.headers['if-range'];
    const ignoreRanges = fault?.kind === 'no-ranges';
    if (ignoreRanges) delete headers['accept-ranges'];
    if (rangeHeader && !ignoreRanges && (!ifRange || ifRange === etag)) {
      const r = parseRange(rangeHeader, size);
      if (r === 'unsatisfiable') {
        res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` }).end();
        return;
      }
      if (r !== 'invalid') {
        ({ start, end } = r);
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${size}`;
      }
    }
    const length = size === 0 ? 0 : end - start + 1;
    headers['content-length'] = String(length);
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    let active = fault && fault.times > 0 ? fault : undefined;
    // Throttled bodies flow in small chunks, so a client sees bytes arrive steadily.
    const chunk = active?.kind === 'throttle' ? 64 * 1024 : 1 << 20;
    const stream = createReadStream(file, { start, end, highWaterMark: chunk });
    let sent = 0;
    if (active) active.times--;
    const shaper = new Transform({
      transform(chunk, _enc, cb) {
        if (active?.kind === 'reset' && sent + chunk.length > (active.afterBytes ?? 0)) {
          const keep = Math.max(0, (active.afterBytes ?? 0) - sent);
          if (keep > 0) this.push(chunk.subarray(0, keep));
          sent += keep;
          stats.bytesSent += keep;
          // Let the partial bytes leave, then cut the connection with a TCP reset.
          setTimeout(() => req.socket.resetAndDestroy?.() ?? req.socket.destroy(), 20);
          stream.destroy();
          return;
        }
        if (active?.kind === 'corrupt') {
          const at = (active.at ?? Math.floor(size / 2)) - (start + sent);
          if (at >= 0 && at < chunk.length) {
            chunk = Buffer.from(chunk);
            chunk[at] ^= 0xff;
          }
        }
        sent += chunk.length;
        stats.bytesSent += chunk.length;
        if (active?.kind === 'throttle') {
          setTimeout(() => cb(null, chunk), (chunk.length / active.bytesPerSec) * 1000);
        } else {
          cb(null, chunk);
        }
      },
      highWaterMark: 1 << 20,
    });
    stream.pipe(shaper).pipe(res);
    stream.on('error', () => res.destroy());
    res.on('close', () => stream.destroy());
  }

  const server = tls
    ? https.createServer({ key: tls.key, cert: tls.cert }, handler)
    : http.createServer(handler);
  server.keepAliveTimeout = 30_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const actual = server.address().port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${actual}`,
    port: actual,
    signingKey,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
