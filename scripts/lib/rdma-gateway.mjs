// An S3-over-RDMA test gateway in front of a real S3 server (MinIO), for tests and the benchmark.
// See /work/shared/specs/rdma.md (section 2: the wire contract, section 3: the test plan).
//
// startRdmaGateway() spawns this same file as a separate Node process. That process verifies the
// SigV4 signature of every S3 request, forwards token-less requests to the target re-signed with
// the same credentials, and serves requests that carry an `x-amz-rdma-token` the way an RDMA
// server would: the "one-sided RDMA" is done for real with process_vm_readv / process_vm_writev
// (build/Release/objget_vm.node) on the memory the token names, in the client process whose pid
// is the token's rkey. Only tokens of the project's simulated libcuobjclient are served (gid
// starting with 0b1ec75e): a real token's rkey is not a pid.
//
// Control endpoints (need the header `x-gateway-control: 1`; without it they are S3 requests and
// fail authentication):
//   GET /__gateway/mode, PUT /__gateway/mode (body: the mode), GET /__gateway/log,
//   DELETE /__gateway/log, GET /__gateway/health.
//
// Modes: accept, decline (501), ignore (no reply header, token dropped), fail (500), badtoken
// (400), and three accepting servers that give less proof than `accept`: nobytes (a GET's reply
// has no x-amz-rdma-bytes-transferred), noreply (a PUT's reply has no x-amz-rdma-reply; the
// server's own x-amz-checksum-* echo stays), noecho (a PUT's reply has neither).
import { spawn } from 'node:child_process';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(SELF, '../../..');
export const ADDON_PATH = join(ROOT, 'build', 'Release', 'objget_vm.node');
export const MODES = [
  'accept',
  'decline',
  'ignore',
  'fail',
  'badtoken',
  'nobytes',
  'noreply',
  'noecho',
];
export const TOKEN_HEADER = 'x-amz-rdma-token';
export const SIMULATOR_GID_PREFIX = '0b1ec75e';

const CONFIG_ENV = 'OBJGET_RDMA_GATEWAY_CONFIG';
const CONTROL_PREFIX = '/__gateway/';
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
const MAX_LOG_ENTRIES = 100_000;
const REMOTE_READ_CHUNK = 8 * 1024 * 1024;
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

// ---------------------------------------------------------------------------------------------
// Tokens

// addr(16):size(8):rkey(8):lid(4):qp(6):gid_present(1):gid(32), lowercase hex: 81 characters.
const TOKEN_RE =
  /^([0-9a-f]{16}):([0-9a-f]{8}):([0-9a-f]{8}):([0-9a-f]{4}):([0-9a-f]{6}):([01]):([0-9a-f]{32})$/;

/** Parse an 81-character token; throws an Error saying what is wrong. */
export function parseToken(token) {
  if (typeof token !== 'string' || token.length !== 81)
    throw new Error(`the token must be 81 characters, got ${token?.length ?? 0}`);
  const m = TOKEN_RE.exec(token);
  if (!m)
    throw new Error(
      'the token is not addr(16):size(8):rkey(8):lid(4):qp(6):gid_present(1):gid(32) in lowercase hex',
    );
  const [, addr, size, rkey, lid, qp, gidPresent, gid] = m;
  return {
    addr: BigInt(`0x${addr}`),
    size: parseInt(size, 16),
    pid: parseInt(rkey, 16),
    lid: parseInt(lid, 16),
    qp: parseInt(qp, 16),
    gidPresent: gidPresent === '1',
    gid,
  };
}

// ---------------------------------------------------------------------------------------------
// SigV4 (header authentication), written against node:crypto only.

const sha256Hex = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

/** Bytes of a percent-encoded string (invalid escapes are kept literally; '+' is literal). */
function percentDecode(s) {
  const out = [];
  for (let i = 0; i < s.length;) {
    if (s[i] === '%' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const cp = s.codePointAt(i);
      const ch = String.fromCodePoint(cp);
      out.push(...Buffer.from(ch, 'utf8'));
      i += ch.length;
    }
  }
  return Buffer.from(out);
}

/** SigV4 URI encoding of bytes: RFC 3986 unreserved characters kept, the rest %XX uppercase. */
function percentEncode(bytes) {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The path in canonical form: each segment decoded, then SigV4-encoded ('/' kept). */
export function normalizePath(rawPath) {
  return rawPath
    .split('/')
    .map((seg) => percentEncode(percentDecode(seg)))
    .join('/');
}

/** The canonical query string of a raw query (without '?'): pairs encoded, then sorted. */
export function canonicalQuery(rawQuery) {
  if (!rawQuery) return '';
  const pairs = rawQuery
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      const name = eq < 0 ? p : p.slice(0, eq);
      const value = eq < 0 ? '' : p.slice(eq + 1);
      return [percentEncode(percentDecode(name)), percentEncode(percentDecode(value))];
    });
  pairs.sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0));
  return pairs.map(([n, v]) => `${n}=${v}`).join('&');
}

const headerValue = (v) =>
  (Array.isArray(v) ? v : [v]).map((x) => String(x).trim().replace(/ +/g, ' ')).join(',');

function canonicalRequest({ method, path, query, headers, signedHeaders, payloadHash }) {
  const lines = signedHeaders.map((h) => `${h}:${headerValue(headers[h] ?? '')}\n`).join('');
  return [method, path, query, lines, signedHeaders.join(';'), payloadHash].join('\n');
}

function signature({ secretKey, date, region, service, amzDate, canonical }) {
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonical)].join('\n');
  let key = hmac(`AWS4${secretKey}`, date);
  for (const part of [region, service, 'aws4_request']) key = hmac(key, part);
  return createHmac('sha256', key).update(stringToSign).digest('hex');
}

const toAmzDate = (d) =>
  d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');

/**
 * Sign a request (header auth). `headers` (lowercase names, must include host) gains x-amz-date,
 * x-amz-content-sha256 and authorization; every header in it is signed.
 * `path` must already be URI-encoded; `query` is the raw query string (without '?').
 */
export function signRequest({
  method,
  path,
  query = '',
  headers,
  payloadHash,
  accessKey,
  secretKey,
  region,
  service = 's3',
  now = new Date(),
}) {
  const amzDate = toAmzDate(now);
  const date = amzDate.slice(0, 8);
  headers['x-amz-date'] = amzDate;
  headers['x-amz-content-sha256'] = payloadHash;
  delete headers.authorization;
  const signedHeaders = Object.keys(headers)
    .map((h) => h.toLowerCase())
    .sort();
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const canonical = canonicalRequest({
    method,
    path,
    query: canonicalQuery(query),
    headers: lower,
    signedHeaders,
    payloadHash,
  });
  const sig = signature({ secretKey, date, region, service, amzDate, canonical });
  headers.authorization =
    `AWS4-HMAC-SHA256 Credential=${accessKey}/${date}/${region}/${service}/aws4_request, ` +
    `SignedHeaders=${signedHeaders.join(';')}, Signature=${sig}`;
  return headers;
}

function parseAuthorization(value) {
  const m = /^AWS4-HMAC-SHA256\s+(.*)$/s.exec(value);
  if (!m) return null;
  const parts = {};
  for (const kv of m[1].split(',')) {
    const eq = kv.indexOf('=');
    if (eq > 0) parts[kv.slice(0, eq).trim()] = kv.slice(eq + 1).trim();
  }
  const cred = parts.Credential?.split('/');
  if (!cred || cred.length !== 5 || cred[4] !== 'aws4_request') return null;
  if (!parts.SignedHeaders || !/^[0-9a-f]{64}$/.test(parts.Signature ?? '')) return null;
  const [accessKey, date, region, service] = cred;
  return {
    accessKey,
    date,
    region,
    service,
    signedHeaders: parts.SignedHeaders.split(';'),
    signature: parts.Signature,
  };
}

/**
 * Verify the SigV4 header signature of a request.
 * `headers`: lowercase names to a string or an array of strings (Node's req.headersDistinct).
 * Returns { ok: true, signedHeaders } or { ok: false, status, code, message, signedHeaders? }.
 */
export function verifyRequest({ method, url, headers, accessKey, secretKey, region, now }) {
  const one = (h) => (Array.isArray(headers[h]) ? headers[h].join(',') : headers[h]);
  const fail = (status, code, message, extra = {}) => ({
    ok: false,
    status,
    code,
    message,
    ...extra,
  });
  const authorization = one('authorization');
  if (!authorization)
    return fail(403, 'AccessDenied', 'the request is not signed (no Authorization header)');
  const auth = parseAuthorization(authorization);
  if (!auth)
    return fail(
      400,
      'AuthorizationHeaderMalformed',
      'the Authorization header is not AWS4-HMAC-SHA256 header auth',
    );
  const { signedHeaders } = auth;
  if (auth.accessKey !== accessKey)
    return fail(403, 'InvalidAccessKeyId', `unknown access key ${auth.accessKey}`, {
      signedHeaders,
    });
  if (auth.region !== region || auth.service !== 's3')
    return fail(
      400,
      'AuthorizationHeaderMalformed',
      `the credential scope must be for ${region}/s3, not ${auth.region}/${auth.service}`,
      { signedHeaders },
    );
  if (!signedHeaders.includes('host'))
    return fail(403, 'AccessDenied', 'the host header must be signed', { signedHeaders });
  const amzDate = one('x-amz-date');
  if (!amzDate || !/^\d{8}T\d{6}Z$/.test(amzDate) || amzDate.slice(0, 8) !== auth.date)
    return fail(
      403,
      'AccessDenied',
      'x-amz-date is missing or does not match the credential date',
      { signedHeaders },
    );
  if (now) {
    const t = Date.parse(
      amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
    );
    if (!(Math.abs(now.getTime() - t) <= MAX_CLOCK_SKEW_MS))
      return fail(403, 'RequestTimeTooSkewed', 'x-amz-date is more than 15 minutes from now', {
        signedHeaders,
      });
  }
  const payloadHash = one('x-amz-content-sha256');
  if (!payloadHash)
    return fail(400, 'InvalidRequest', 'x-amz-content-sha256 is required', { signedHeaders });
  // As AWS S3: every x-amz-* header sent must be signed (the token is reported on its own).
  const unsigned = Object.keys(headers)
    .map((h) => h.toLowerCase())
    .filter((h) => h.startsWith('x-amz-') && h !== TOKEN_HEADER && !signedHeaders.includes(h));
  if (unsigned.length)
    return fail(
      403,
      'AccessDenied',
      `There were headers present in the request which were not signed: ${unsigned.join(', ')}`,
      { signedHeaders },
    );
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const query = canonicalQuery(q < 0 ? '' : url.slice(q + 1));
  // S3 signs the path as sent; accept the normalized form as well (what MinIO computes).
  const paths = [...new Set([rawPath, normalizePath(rawPath)])];
  const given = Buffer.from(auth.signature, 'hex');
  for (const path of paths) {
    const canonical = canonicalRequest({
      method,
      path,
      query,
      headers,
      signedHeaders,
      payloadHash,
    });
    const sig = Buffer.from(
      signature({ secretKey, date: auth.date, region, service: 's3', amzDate, canonical }),
      'hex',
    );
    if (timingSafeEqual(sig, given)) return { ok: true, signedHeaders };
  }
  return fail(
    403,
    'SignatureDoesNotMatch',
    'the request signature we calculated does not match the signature you provided',
    { signedHeaders },
  );
}

// ---------------------------------------------------------------------------------------------
// The gateway process

class S3Error extends Error {
  constructor(status, code, message, headers = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

const xmlEscape = (s) =>
  String(s).replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c],
  );

let requestCounter = 0;

function sendError(req, res, { status, code, message, headers = {} }) {
  const requestId = `rdmagw-${process.pid}-${++requestCounter}`;
  const resource = req.url.split('?')[0];
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xmlEscape(code)}</Code>` +
    `<Message>${xmlEscape(message)}</Message><Resource>${xmlEscape(resource)}</Resource>` +
    `<RequestId>${requestId}</RequestId></Error>`;
  res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': Buffer.byteLength(body),
    'x-amz-request-id': requestId,
    ...headers,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-connection',
]);
// Headers never forwarded upstream: regenerated, hop-by-hop, or the token itself.
const NOT_FORWARDED = new Set([
  'host',
  'authorization',
  'x-amz-date',
  'x-amz-content-sha256',
  'x-amz-security-token',
  TOKEN_HEADER,
  'expect',
  'proxy-authorization',
  ...HOP_BY_HOP,
]);
const FORWARDED = new Set([
  'content-type',
  'content-length',
  'content-encoding',
  'content-disposition',
  'content-language',
  'content-md5',
  'cache-control',
  'expires',
  'range',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
]);
// Headers of an upstream GET kept in an RDMA reply (whose body is empty).
const GET_REPLY_HEADERS = new Set([
  'etag',
  'content-range',
  'last-modified',
  'accept-ranges',
  'content-type',
  'x-amz-version-id',
  'x-amz-request-id',
  'x-amz-id-2',
]);

function forwardedHeaders(req, { contentLength } = {}) {
  const out = {};
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    if (NOT_FORWARDED.has(name)) continue;
    if (!FORWARDED.has(name) && !name.startsWith('x-amz-')) continue;
    out[name] = values.join(',');
  }
  if (contentLength !== undefined) out['content-length'] = String(contentLength);
  return out;
}

/** Count the bytes that pass. */
function counter(onBytes) {
  return new Transform({
    transform(chunk, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

async function drain(req, entry) {
  for await (const chunk of req) entry.bodyBytes += chunk.length;
}

function createGateway(cfg, vm) {
  const targetUrl = new URL(cfg.target);
  const transport = targetUrl.protocol === 'https:' ? https : http;
  const agent = new transport.Agent({ keepAlive: true, maxSockets: 256 });
  const state = { mode: cfg.mode, log: [] };
  const say = (obj) => cfg.logRequests && process.stdout.write(`${JSON.stringify(obj)}\n`);

  /**
   * Send a request upstream, re-signed. `body`: the streams of a pipeline that ends in the
   * upstream request, or null. Resolves with the upstream response; the body streams meanwhile.
   */
  function upstream(req, { method = req.method, body, contentLength, payloadHash }) {
    const q = req.url.indexOf('?');
    const rawPath = q < 0 ? req.url : req.url.slice(0, q);
    const path = normalizePath(rawPath);
    const query = canonicalQuery(q < 0 ? '' : req.url.slice(q + 1));
    const headers = { host: targetUrl.host, ...forwardedHeaders(req, { contentLength }) };
    if (!body && headers['content-length'] === undefined && ['PUT', 'POST'].includes(method))
      headers['content-length'] = '0';
    signRequest({
      method,
      path,
      query,
      headers,
      payloadHash,
      accessKey: cfg.accessKey,
      secretKey: cfg.secretKey,
      region: cfg.region,
    });
    return new Promise((resolvePromise, reject) => {
      const upReq = transport.request({
        protocol: targetUrl.protocol,
        hostname: targetUrl.hostname,
        port: targetUrl.port,
        method,
        path: query ? `${path}?${query}` : path,
        headers,
        agent,
      });
      upReq.once('response', resolvePromise);
      upReq.once('error', reject);
      if (body) pipeline(...body, upReq).catch(reject);
      else upReq.end();
    });
  }

  /** Stream an upstream response back as it is (minus headers `drop` matches), plus `extra`. */
  async function passThrough(up, res, entry, extra = {}, drop = () => false) {
    entry.upstreamStatus = up.statusCode;
    entry.rdmaReply = extra['x-amz-rdma-reply'] ?? null;
    const headers = [];
    for (let i = 0; i < up.rawHeaders.length; i += 2) {
      const name = up.rawHeaders[i].toLowerCase();
      if (!HOP_BY_HOP.has(name) && !drop(name))
        headers.push(up.rawHeaders[i], up.rawHeaders[i + 1]);
    }
    for (const [k, v] of Object.entries(extra)) headers.push(k, v);
    res.writeHead(up.statusCode, up.statusMessage, headers);
    await pipeline(up, res);
  }

  /** The payload hash to sign a forwarded body with (the client's, so the server checks it). */
  function forwardedPayloadHash(req) {
    const h = req.headers['x-amz-content-sha256'];
    if (
      /^[0-9a-f]{64}$/.test(h) ||
      h === UNSIGNED_PAYLOAD ||
      h === 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'
    )
      return h;
    throw new S3Error(
      501,
      'NotImplemented',
      `the test gateway cannot forward x-amz-content-sha256: ${h} (signed aws-chunked bodies are tied to the client's signature); send a SHA-256, UNSIGNED-PAYLOAD or STREAMING-UNSIGNED-PAYLOAD-TRAILER`,
    );
  }

  /** Forward a request (minus any token) and stream the answer back. */
  async function proxy(req, res, entry, extra = {}) {
    const payloadHash = forwardedPayloadHash(req);
    const body = [req, counter((n) => (entry.bodyBytes += n))];
    const up = await upstream(req, { body, payloadHash });
    await passThrough(up, res, entry, extra);
  }

  function tokenOf(req) {
    try {
      return parseToken(req.headers[TOKEN_HEADER]);
    } catch (e) {
      throw new S3Error(400, 'InvalidRDMAToken', e.message);
    }
  }

  function simulatorToken(req) {
    const token = tokenOf(req);
    if (!token.gid.startsWith(SIMULATOR_GID_PREFIX))
      throw new S3Error(
        400,
        'InvalidRDMAToken',
        `the test gateway serves only simulator tokens (gid starting with ${SIMULATOR_GID_PREFIX}); this one's rkey is not a pid`,
      );
    if (token.pid === 0) throw new S3Error(400, 'InvalidRDMAToken', 'the token rkey (pid) is 0');
    return token;
  }

  const transferFailed = (e) =>
    new S3Error(500, 'RDMATransferFailed', `RDMA transfer failed: ${e.message}`);

  async function rdmaGet(req, res, entry) {
    const token = simulatorToken(req);
    await drain(req, entry);
    const up = await upstream(req, { body: null, payloadHash: sha256Hex('') });
    entry.upstreamStatus = up.statusCode;
    if (up.statusCode !== 200 && up.statusCode !== 206) return passThrough(up, res, entry);
    const length =
      up.headers['content-length'] === undefined ? undefined : Number(up.headers['content-length']);
    const tooSmall = (n) =>
      new S3Error(
        400,
        'InvalidRDMAToken',
        `buffer too small: the reply has ${n} bytes, the token covers ${token.size}`,
      );
    if (length !== undefined && length > token.size) {
      up.destroy();
      throw tooSmall(length);
    }
    let done = 0;
    try {
      for await (const chunk of up) {
        if (done + chunk.length > token.size) throw tooSmall(`more than ${token.size}`);
        vm.writeRemote(token.pid, token.addr + BigInt(done), chunk);
        done += chunk.length;
      }
    } catch (e) {
      up.destroy();
      throw e instanceof S3Error ? e : transferFailed(e);
    }
    if (length !== undefined && done !== length)
      throw transferFailed(new Error(`the upstream body ended after ${done} of ${length} bytes`));
    const headers = {};
    for (const [name, value] of Object.entries(up.headers)) {
      if (
        GET_REPLY_HEADERS.has(name) ||
        name.startsWith('x-amz-checksum-') ||
        name.startsWith('x-amz-meta-')
      )
        headers[name] = value;
    }
    entry.rdmaReply = up.statusCode;
    entry.rdmaBytes = done;
    res.writeHead(up.statusCode, {
      ...headers,
      'content-length': '0',
      'x-amz-rdma-reply': String(up.statusCode),
      ...(entry.mode === 'nobytes' ? {} : { 'x-amz-rdma-bytes-transferred': String(done) }),
    });
    res.end();
  }

  function checkRdmaPutRequest(req) {
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    if (te || (cl !== undefined && cl !== '0'))
      throw new S3Error(
        400,
        'InvalidRequest',
        `an RDMA PUT must have Content-Length: 0 and no body (got ${te ? `Transfer-Encoding: ${te}` : `Content-Length: ${cl}`})`,
      );
    if (req.headers['x-amz-content-sha256'] !== UNSIGNED_PAYLOAD)
      throw new S3Error(
        400,
        'InvalidRequest',
        `an RDMA PUT must be signed with x-amz-content-sha256: UNSIGNED-PAYLOAD (got ${req.headers['x-amz-content-sha256']})`,
      );
    if (req.headers['content-md5'])
      throw new S3Error(
        400,
        'InvalidRequest',
        'an RDMA PUT must not carry Content-MD5 (send x-amz-checksum-crc64nvme of the bytes)',
      );
    if (/aws-chunked/i.test(req.headers['content-encoding'] ?? ''))
      throw new S3Error(400, 'InvalidRequest', 'an RDMA PUT must not use aws-chunked encoding');
  }

  /** The client's memory as a stream, read in chunks as the upstream takes them. */
  function remoteStream(token, onError) {
    const read = (off) => {
      try {
        return vm.readRemote(
          token.pid,
          token.addr + BigInt(off),
          Math.min(REMOTE_READ_CHUNK, token.size - off),
        );
      } catch (e) {
        onError(e);
        throw e;
      }
    };
    // The first chunk is read before anything goes upstream: a bad address fails early.
    const first = token.size > 0 ? read(0) : Buffer.alloc(0);
    function* chunks() {
      yield first;
      for (let off = first.length; off < token.size;) {
        const chunk = read(off);
        off += chunk.length;
        yield chunk;
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  async function rdmaPut(req, res, entry) {
    const token = simulatorToken(req);
    checkRdmaPutRequest(req);
    await drain(req, entry);
    if (entry.bodyBytes > 0)
      throw new S3Error(
        400,
        'InvalidRequest',
        `an RDMA PUT must have an empty body (got ${entry.bodyBytes} bytes)`,
      );
    let readError = null;
    let body;
    try {
      body = remoteStream(token, (e) => (readError = e));
    } catch (e) {
      throw transferFailed(e);
    }
    let up;
    try {
      up = await upstream(req, {
        body: [body],
        contentLength: token.size,
        payloadHash: UNSIGNED_PAYLOAD,
      });
    } catch (e) {
      throw readError ? transferFailed(readError) : e;
    }
    if (readError) {
      up.destroy();
      throw transferFailed(readError);
    }
    const ok = up.statusCode >= 200 && up.statusCode < 300;
    if (ok) entry.rdmaBytes = token.size;
    const reply = ok && entry.mode !== 'noreply' && entry.mode !== 'noecho';
    const drop = entry.mode === 'noecho' ? (name) => name.startsWith('x-amz-checksum-') : undefined;
    await passThrough(up, res, entry, reply ? { 'x-amz-rdma-reply': '200' } : {}, drop);
  }

  async function declinedPut(req, res, entry) {
    await drain(req, entry);
    throw new S3Error(
      501,
      'RDMANotSupported',
      'this server declines RDMA for this request (nothing was stored); send the bytes in the request body',
      { 'x-amz-rdma-reply': '501' },
    );
  }

  /** A request that carries a token, in the current mode (not 'ignore'). */
  async function rdma(req, res, entry) {
    if (req.method !== 'GET' && req.method !== 'PUT')
      throw new S3Error(
        400,
        'InvalidRequest',
        `${TOKEN_HEADER} is only valid on GET and PUT (got ${req.method})`,
      );
    if (req.headers['x-amz-copy-source'])
      throw new S3Error(400, 'InvalidRequest', `${TOKEN_HEADER} is not valid on a copy`);
    switch (entry.mode) {
      case 'accept':
      case 'nobytes':
      case 'noreply':
      case 'noecho':
        return req.method === 'GET' ? rdmaGet(req, res, entry) : rdmaPut(req, res, entry);
      case 'decline':
        return req.method === 'GET'
          ? proxy(req, res, entry, { 'x-amz-rdma-reply': '501' })
          : declinedPut(req, res, entry);
      case 'fail':
        await drain(req, entry);
        throw new S3Error(
          500,
          'RDMATransferFailed',
          'RDMA transfer failed (gateway mode "fail"); nothing was transferred',
        );
      case 'badtoken':
        await drain(req, entry);
        throw new S3Error(
          400,
          'InvalidRDMAToken',
          'the RDMA token is invalid (gateway mode "badtoken")',
        );
      default:
        throw new Error(`unknown mode ${entry.mode}`);
    }
  }

  async function s3(req, res, entry) {
    const auth = verifyRequest({
      method: req.method,
      url: req.url,
      headers: req.headersDistinct,
      accessKey: cfg.accessKey,
      secretKey: cfg.secretKey,
      region: cfg.region,
      now: new Date(),
    });
    entry.tokenSigned = entry.tokenPresent && (auth.signedHeaders?.includes(TOKEN_HEADER) ?? false);
    if (!auth.ok) {
      await drain(req, entry);
      throw new S3Error(auth.status, auth.code, auth.message);
    }
    if (entry.tokenPresent && !entry.tokenSigned) {
      await drain(req, entry);
      throw new S3Error(
        400,
        'UnsignedRDMAToken',
        `${TOKEN_HEADER} must be one of the SignedHeaders`,
      );
    }
    if (!entry.tokenPresent || entry.mode === 'ignore') return proxy(req, res, entry);
    return rdma(req, res, entry);
  }

  function newEntry(req) {
    const q = req.url.indexOf('?');
    const token = req.headers[TOKEN_HEADER];
    return {
      time: new Date().toISOString(),
      method: req.method,
      path: q < 0 ? req.url : req.url.slice(0, q),
      query: q < 0 ? '' : req.url.slice(q + 1),
      tokenPresent: token !== undefined,
      tokenSigned: false,
      remoteAddress: req.socket.remoteAddress ?? null,
      token: token ?? null,
      contentLength:
        req.headers['content-length'] === undefined ? null : Number(req.headers['content-length']),
      bodyBytes: 0,
      contentSha256: req.headers['x-amz-content-sha256'] ?? null,
      mode: state.mode,
      status: null,
      rdmaReply: null,
      rdmaBytes: null,
      error: null,
      upstreamStatus: null,
    };
  }

  async function handleS3(req, res) {
    const entry = newEntry(req);
    try {
      await s3(req, res, entry);
    } catch (e) {
      const err =
        e instanceof S3Error ? e : new S3Error(500, 'InternalError', `test gateway: ${e.message}`);
      if (!(e instanceof S3Error))
        console.error(`[rdma-gateway] ${req.method} ${req.url}: ${e.stack}`);
      entry.error = err.code;
      entry.rdmaBytes = null;
      if (!res.headersSent) {
        entry.rdmaReply = err.headers['x-amz-rdma-reply'] ?? null;
        sendError(req, res, err);
      } else res.destroy(e);
    }
    entry.status = res.statusCode;
    if (entry.rdmaReply !== null) entry.rdmaReply = Number(entry.rdmaReply);
    if (state.log.length >= MAX_LOG_ENTRIES) state.log.shift();
    state.log.push(entry);
    say(entry);
  }

  async function handleControl(req, res) {
    const send = (status, body) => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    let body = '';
    for await (const chunk of req) body += chunk;
    const what = `${req.method} ${req.url.split('?')[0].slice(CONTROL_PREFIX.length)}`;
    switch (what) {
      case 'GET health':
        return send(200, { ok: true, pid: process.pid });
      case 'GET mode':
        return send(200, { mode: state.mode });
      case 'PUT mode':
      case 'POST mode': {
        let mode = body.trim();
        if (mode.startsWith('{')) mode = JSON.parse(mode).mode;
        if (!MODES.includes(mode))
          return send(400, {
            error: `unknown mode ${JSON.stringify(mode)}; one of ${MODES.join(', ')}`,
          });
        state.mode = mode;
        return send(200, { mode });
      }
      case 'GET log':
        return send(200, state.log);
      case 'DELETE log':
        state.log = [];
        return send(200, { cleared: true });
      default:
        return send(404, { error: `no control endpoint ${what}` });
    }
  }

  const server = http.createServer((req, res) => {
    const control = req.url.startsWith(CONTROL_PREFIX) && req.headers['x-gateway-control'] === '1';
    (control ? handleControl(req, res) : handleS3(req, res)).catch((e) => {
      console.error(`[rdma-gateway] ${req.method} ${req.url}: ${e.stack}`);
      if (!res.headersSent)
        sendError(req, res, { status: 500, code: 'InternalError', message: e.message });
      else res.destroy();
    });
  });
  server.requestTimeout = 0;
  server.keepAliveTimeout = 30_000;
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  return server;
}

async function childMain() {
  const cfg = JSON.parse(process.env[CONFIG_ENV]);
  delete process.env[CONFIG_ENV];
  const vm = createRequire(import.meta.url)(ADDON_PATH);
  // A bad request must never take the gateway down: report and go on.
  process.on('uncaughtException', (e) => console.error(`[rdma-gateway] uncaught: ${e.stack}`));
  process.on('unhandledRejection', (e) =>
    console.error(`[rdma-gateway] unhandled: ${e?.stack ?? e}`),
  );
  process.on('disconnect', () => process.exit(0)); // the parent went away
  process.on('SIGTERM', () => process.exit(0));
  const server = createGateway(cfg, vm);
  server.listen(0, '127.0.0.1', () => {
    process.send?.({ type: 'listening', port: server.address().port });
  });
}

// ---------------------------------------------------------------------------------------------
// The parent side

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start the gateway as a child process in front of `target` (an S3 endpoint such as MinIO's).
 * Resolves with { url, setMode(mode), log(), clearLog(), stop() } once it listens.
 */
export async function startRdmaGateway({
  target,
  accessKey,
  secretKey,
  region = 'us-east-1',
  mode = 'accept',
  logDir,
} = {}) {
  if (!target || !accessKey || !secretKey)
    throw new Error('startRdmaGateway needs target, accessKey and secretKey');
  if (!MODES.includes(mode))
    throw new Error(`unknown gateway mode ${mode}; one of ${MODES.join(', ')}`);
  if (!existsSync(ADDON_PATH))
    throw new Error(
      `the RDMA test gateway needs ${ADDON_PATH}: run 'npm run build:vm' (needs a C++ compiler and python3)`,
    );
  const config = { target, accessKey, secretKey, region, mode, logRequests: Boolean(logDir) };
  const child = spawn(process.execPath, [SELF], {
    env: { ...process.env, [CONFIG_ENV]: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  const keep = (chunk) => (output = (output + chunk).slice(-8000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  if (logDir) {
    mkdirSync(logDir, { recursive: true });
    const file = createWriteStream(join(logDir, 'rdma-gateway.log'), { flags: 'a' });
    child.stdout.pipe(file);
    child.stderr.pipe(file);
  }
  const killOnExit = () => child.exitCode === null && child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const port = await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the RDMA test gateway did not start within 30 s:\n${output}`));
    }, 30_000);
    child.on('message', (m) => {
      if (m?.type !== 'listening') return;
      clearTimeout(timer);
      resolvePromise(m.port);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`the RDMA test gateway exited during start-up (${code ?? signal}):\n${output}`),
      );
    });
  });
  // The gateway must not keep its parent alive; stop() ends it, and it exits if the parent dies.
  child.unref();
  child.channel?.unref();
  child.stdout.unref?.();
  child.stderr.unref?.();

  const url = `http://127.0.0.1:${port}`;
  // One fresh connection per control call: a pooled one may be closed by the gateway while a
  // long transfer keeps the test busy, and the next call would fail on it.
  const control = (method, path, body) =>
    new Promise((resolve, reject) => {
      const req = http.request(
        `${url}${CONTROL_PREFIX}${path}`,
        { method, agent: false, headers: { 'x-gateway-control': '1' } },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            try {
              const json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
              if (res.statusCode >= 300) {
                const why = json.error ?? '';
                throw new Error(`rdma-gateway ${method} ${path}: HTTP ${res.statusCode}: ${why}`);
              }
              resolve(json);
            } catch (e) {
              reject(e);
            }
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  let stopped = null;
  return {
    url,
    pid: child.pid,
    async setMode(m) {
      if (!MODES.includes(m))
        throw new Error(`unknown gateway mode ${m}; one of ${MODES.join(', ')}`);
      await control('PUT', 'mode', m);
    },
    async mode() {
      return (await control('GET', 'mode')).mode;
    },
    async log() {
      return control('GET', 'log');
    },
    async clearLog() {
      await control('DELETE', 'log');
    },
    stop() {
      stopped ??= (async () => {
        process.removeListener('exit', killOnExit);
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(5000)]);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exited;
        }
      })();
      return stopped;
    },
  };
}

if (process.argv[1] && resolve(process.argv[1]) === SELF) {
  childMain().catch((e) => {
    console.error(`[rdma-gateway] failed to start: ${e.stack}`);
    process.exit(1);
  });
}
