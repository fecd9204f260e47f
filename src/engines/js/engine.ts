import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { fromNodeError, StorageError, type ErrorCode } from '../../errors.js';
import { DEFAULTS } from '../../options.js';
import { displayUrl } from '../../redact.js';
import { settleAll } from '../../settle.js';
import { locate } from '../../urls.js';
import { advertised, unavailable, Verifier } from './checksum.js';
import { abortedError, Reporter, withTemp, writeBody } from '../land.js';
import type {
  ByteRange,
  Engine,
  ObjectInfo,
  EngineTransfer,
  StoreOptions,
  TransferSettings,
  VerifiedChecksum,
} from '../../types.js';

type Done = EngineTransfer;

/** Schemes the pure-JS engine reads. */
export const JS_SCHEMES = ['http', 'https', 'file'];
/** What the JS engine does; every other call answers `NotSupported` (see engineInfo()). */
export const JS_CAPABILITIES = ['head', 'get', 'download', 'downloadMany', 'exists'];

/**
 * Why calls run on the JS engine (the addon's load failure, or OBJGET_ENGINE=js), so that a call
 * only the native engine serves says what to install instead of a bare `NotSupported`.
 */
export type WhyJs = () => string | undefined;

function because(why: WhyJs): string {
  const reason = why();
  return reason ? `: ${reason}` : ' (see engineInfo())';
}

function nativeOnly(what: string, url: string, why: WhyJs): StorageError {
  return new StorageError(
    'NotSupported',
    `${displayUrl(url)}: ${what} needs the native engine; the JS engine only reads${because(why)}`,
    { url },
  );
}

const agents = new Map<string, Agent>();

// undici costs ~90 ms to import: load it only when the JS engine actually sends a request.
let undici: Promise<typeof import('undici')> | undefined;
const loadUndici = (): Promise<typeof import('undici')> => (undici ??= import('undici'));

function agentFor(store: StoreOptions | undefined, Agent: typeof import('undici').Agent): Agent {
  const insecure = store?.insecureSkipTlsVerify === true;
  const connectTimeout = store?.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
  const readTimeout = store?.readTimeoutMs ?? DEFAULTS.readTimeoutMs;
  const key = JSON.stringify([
    store?.caCert?.toString() ?? '',
    connectTimeout,
    readTimeout,
    insecure,
  ]);
  let agent = agents.get(key);
  if (!agent) {
    agent = new Agent({
      connect: {
        timeout: connectTimeout,
        ...(store?.caCert ? { ca: store.caCert.toString() } : {}),
        // Only the explicit insecureSkipTlsVerify turns certificate checks off.
        ...(insecure ? { rejectUnauthorized: false } : {}),
      },
      headersTimeout: readTimeout,
      bodyTimeout: readTimeout,
      connections: 256,
    });
    agents.set(key, agent);
  }
  return agent;
}

/**
 * S3 over RDMA is the native engine's: on the JS engine, `rdma` on a URL that is not S3 is
 * refused, and `'require'` is `RdmaUnavailable` (`true` falls back to HTTP, as it may).
 */
function refuseRdma(url: string, store: StoreOptions | undefined): void {
  const r = store?.rdma;
  if (r !== true && r !== 'require') return;
  if (!/^s3:\/\//i.test(url)) {
    throw new StorageError(
      'InvalidArgument',
      'rdma applies to S3 URLs only (S3 over RDMA is an S3 protocol)',
      { url },
    );
  }
  if (r === 'require') {
    throw new StorageError(
      'RdmaUnavailable',
      'the JS engine has no RDMA data path; the native addon is not in use',
      { url },
    );
  }
}

function notSupported(url: string, scheme: string, why: WhyJs): StorageError {
  return new StorageError(
    'NotSupported',
    `${displayUrl(url)}: the JS engine reads http(s) and local files; ${scheme}:// needs the native engine${because(why)}`,
    { url },
  );
}

function statusError(status: number, url: string): StorageError {
  const code: ErrorCode =
    status === 404 || status === 410
      ? 'NotFound'
      : status === 403
        ? 'PermissionDenied'
        : status === 401
          ? 'Unauthenticated'
          : status === 412
            ? 'Precondition'
            : status === 416
              ? 'InvalidArgument'
              : status === 408 || status === 504
                ? 'Timeout'
                : status === 429 || status === 503
                  ? 'Throttled'
                  : status === 405 || status === 501
                    ? 'NotSupported'
                    : 'Generic';
  return new StorageError(code, `${displayUrl(url)}: HTTP ${status}`, { url });
}

function rangeHeader(range: ByteRange): string {
  if ('suffix' in range) return `bytes=-${range.suffix}`;
  return range.length === undefined
    ? `bytes=${range.offset}-`
    : `bytes=${range.offset}-${range.offset + range.length - 1}`;
}

function checkRange(range: ByteRange | undefined): void {
  if (!range) return;
  const values = 'suffix' in range ? [range.suffix] : [range.offset, range.length ?? 0];
  for (const v of values) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new StorageError(
        'InvalidArgument',
        `range values must be non-negative integers, got ${v}`,
      );
    }
  }
}

/** Drop a response body we will not read; undici reports the abort as an error event. */
function discard(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * object_store's backoff (decorrelated jitter), as the native engine waits: the first wait is the
 * initial backoff, each next one drawn between it and `base` × the last, capped.
 */
class Backoff {
  private next: number;
  constructor(private readonly init: number) {
    this.next = init;
  }
  wait(): number {
    const current = this.next;
    const hi = current * DEFAULTS.backoffBase;
    const drawn = hi > this.init ? this.init + Math.random() * (hi - this.init) : this.init;
    this.next = Math.min(DEFAULTS.maxBackoffMs, drawn);
    return current;
  }
}

const RETRYABLE_NET = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
]);

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * One GET (or HEAD) with retries on 5xx, 429, 408 and connection errors before the body.
 * Redirects are followed within the scheme (at most ten); one that leaves it (https → http) is
 * refused with `NotSupported`, as the native engine does.
 */
async function send(
  url: string,
  method: 'GET' | 'HEAD',
  headers: Record<string, string>,
  store: StoreOptions | undefined,
  signal: AbortSignal | undefined,
): Promise<Dispatcher.ResponseData> {
  const maxRetries = store?.maxRetries ?? DEFAULTS.maxRetries;
  const retryTimeout = store?.retryTimeoutMs ?? DEFAULTS.retryTimeoutMs;
  const backoff = new Backoff(store?.initialBackoffMs ?? DEFAULTS.initialBackoffMs);
  const started = Date.now();
  const { Agent, request } = await loadUndici();
  let target = url;
  let redirects = 0;
  for (let attempt = 0; ;) {
    let res: Dispatcher.ResponseData | undefined;
    let failure: unknown;
    try {
      res = await request(target, {
        method,
        headers: { 'user-agent': 'objget-js', ...headers },
        dispatcher: agentFor(store, Agent),
        signal,
      });
    } catch (e) {
      failure = e;
    }
    const location = res && REDIRECTS.has(res.statusCode) ? one(res.headers.location) : undefined;
    if (res && location !== undefined) {
      discard(res.body);
      const next = new URL(location, target);
      const from = new URL(target).protocol.replace(':', '');
      const to = next.protocol.replace(':', '');
      if (to !== from) {
        throw new StorageError(
          'NotSupported',
          `${displayUrl(url)}: a redirect from ${from}:// to ${to}:// was refused: objget never follows a redirect that changes the scheme`,
          { url },
        );
      }
      if (++redirects > 10) {
        throw new StorageError('Generic', `${displayUrl(url)}: too many redirects`, { url });
      }
      target = next.href;
      continue;
    }
    const retryable = res
      ? res.statusCode >= 500 || res.statusCode === 429 || res.statusCode === 408
      : RETRYABLE_NET.has((failure as { code?: string })?.code ?? '') && !signal?.aborted;
    const wait = backoff.wait();
    if (!retryable || attempt >= maxRetries || Date.now() - started + wait > retryTimeout) {
      if (!res) throw fromNodeError(failure, url);
      if (res.statusCode >= 400 && res.statusCode !== 416) {
        discard(res.body);
        throw statusError(res.statusCode, url);
      }
      return res;
    }
    if (res) discard(res.body);
    attempt++;
    await sleep(wait);
  }
}

function totalFromContentRange(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  const total = s?.split('/').pop();
  return total && /^\d+$/.test(total) ? Number(total) : undefined;
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

async function httpHead(url: URL, store: StoreOptions | undefined): Promise<ObjectInfo> {
  const href = url.href;
  let res: Dispatcher.ResponseData;
  let size: number | undefined;
  if (url.search) {
    // Presigned URLs are signed for GET: ask for one byte and read the size from Content-Range.
    res = await send(href, 'GET', { range: 'bytes=0-0' }, store, undefined);
    discard(res.body);
    size =
      res.statusCode === 206 || res.statusCode === 416
        ? totalFromContentRange(res.headers['content-range'])
        : Number(one(res.headers['content-length']));
  } else {
    res = await send(href, 'HEAD', {}, store, undefined);
    await res.body.dump();
    size = Number(one(res.headers['content-length']));
  }
  if (size === undefined || !Number.isFinite(size)) {
    throw new StorageError(
      'Generic',
      `${displayUrl(href)}: the server did not say how large the object is`,
      { url: href },
    );
  }
  const lm = one(res.headers['last-modified']);
  return {
    size,
    etag: one(res.headers.etag),
    lastModified: lm ? new Date(lm) : undefined,
    version: one(res.headers['x-amz-version-id']),
  };
}

async function httpOpen(
  url: URL,
  range: ByteRange | undefined,
  store: StoreOptions | undefined,
  signal: AbortSignal | undefined,
): Promise<{
  body: AsyncIterable<Buffer>;
  raw: Readable;
  length: number;
  etag?: string;
  offered: VerifiedChecksum[];
}> {
  const href = url.href;
  const res = await send(href, 'GET', range ? { range: rangeHeader(range) } : {}, store, signal);
  if (res.statusCode === 416) {
    discard(res.body);
    throw new StorageError(
      'InvalidArgument',
      `${displayUrl(href)}: the requested range is outside the object`,
      { url: href },
    );
  }
  if (range && res.statusCode !== 206) {
    discard(res.body);
    throw new StorageError(
      'NotSupported',
      `${displayUrl(href)}: the server ignored the Range header`,
      { url: href },
    );
  }
  const length = Number(one(res.headers['content-length']));
  if (!Number.isFinite(length)) {
    discard(res.body);
    throw new StorageError('Generic', `${displayUrl(href)}: the server sent no Content-Length`, {
      url: href,
    });
  }
  const etag = one(res.headers.etag);
  const start = res.statusCode === 206 ? startFromContentRange(res.headers['content-range']) : 0;
  if (start === undefined) {
    discard(res.body);
    throw new StorageError('Generic', `${displayUrl(href)}: a 206 reply without Content-Range`, {
      url: href,
    });
  }
  return {
    body: resumable(res.body, href, etag, start, start + length, store, signal),
    raw: res.body,
    length,
    etag,
    offered: advertised(res.headers, res.statusCode === 206),
  };
}

function startFromContentRange(v: string | string[] | undefined): number | undefined {
  const m = /^bytes (\d+)-/.exec(one(v)?.trim() ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * A body that survives being cut off: after a reset or an early close the rest is asked for with
 * a ranged GET pinned by `If-Match` to the ETag the body came with, within the retry policy, as
 * the native engine does. Without a strong ETag the cut is a `Network` error.
 */
async function* resumable(
  first: Readable,
  href: string,
  etag: string | undefined,
  start: number,
  end: number,
  store: StoreOptions | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<Buffer> {
  let body = first;
  let offset = start;
  let resumes = 0;
  const backoff = new Backoff(store?.initialBackoffMs ?? DEFAULTS.initialBackoffMs);
  const started = Date.now();
  for (;;) {
    let failure: StorageError;
    try {
      for await (const c of body) {
        offset += (c as Buffer).length;
        yield c as Buffer;
      }
      if (offset >= end) return;
      failure = new StorageError('Network', `${displayUrl(href)}: the response body ended early`, {
        url: href,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      failure = fromNodeError(e, href);
    }
    if (failure.code !== 'Network' && failure.code !== 'Timeout') throw failure;
    if (!etag || etag.startsWith('W/')) {
      throw new StorageError(
        'Network',
        `${displayUrl(href)}: the body was cut off at byte ${offset} and the server offers no strong ETag to resume it safely`,
        { url: href, cause: failure },
      );
    }
    const wait = backoff.wait();
    if (
      resumes >= (store?.maxRetries ?? DEFAULTS.maxRetries) ||
      Date.now() - started + wait > (store?.retryTimeoutMs ?? DEFAULTS.retryTimeoutMs)
    ) {
      throw failure;
    }
    resumes++;
    await sleep(wait);
    const res = await send(
      href,
      'GET',
      { range: `bytes=${offset}-${end - 1}`, 'if-match': etag },
      store,
      signal,
    );
    if (res.statusCode !== 206 || startFromContentRange(res.headers['content-range']) !== offset) {
      discard(res.body);
      throw new StorageError(
        'Network',
        `${displayUrl(href)}: the body was cut off and the server did not send the rest as asked`,
        { url: href },
      );
    }
    body = res.body;
  }
}

async function fileEtag(path: string): Promise<{ size: number; etag: string; mtime: Date }> {
  const s = await stat(path, { bigint: true });
  if (!s.isFile()) throw Object.assign(new Error(`${path}: not a file`), { code: 'ENOENT' });
  const micros = s.mtimeNs / 1000n;
  return {
    size: Number(s.size),
    etag: `${s.ino.toString(16)}-${micros.toString(16)}-${s.size.toString(16)}`,
    mtime: new Date(Number(s.mtimeMs)),
  };
}

function fileRange(size: number, range: ByteRange | undefined): [number, number] {
  if (!range) return [0, size];
  if ('suffix' in range) return [Math.max(0, size - range.suffix), size];
  const end = range.length === undefined ? size : Math.min(size, range.offset + range.length);
  return [range.offset, end];
}

async function readAll(
  body: AsyncIterable<Buffer>,
  expected: number,
  report: Reporter,
  verifier: Verifier | undefined,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) {
    chunks.push(c as Buffer);
    verifier?.update(c as Buffer);
    report.add((c as Buffer).length);
  }
  return Buffer.concat(chunks, expected);
}

/** Pure-JS engine: undici for http(s), fs for files. `why` says why it runs (see WhyJs). */
export function jsEngine(why: WhyJs): Engine {
  const engine: Engine = {
    name: 'js',
    async exists(url, store) {
      try {
        await engine.head(url, store);
        return true;
      } catch (e) {
        if ((e as StorageError).code === 'NotFound') return false;
        throw e;
      }
    },
    async upload(_source, url, o) {
      refuseRdma(url, o.store);
      throw nativeOnly('upload', url, why);
    },
    remove(urls) {
      return Promise.reject(nativeOnly('remove', urls[0] ?? '', why));
    },
    copy(_from, to) {
      return Promise.reject(nativeOnly('copy', to, why));
    },
    // eslint-disable-next-line require-yield
    async *list(prefixUrl) {
      throw nativeOnly('list', prefixUrl, why);
    },
    async head(url, store) {
      const loc = locate(url);
      if (loc.kind === 'cloud') throw notSupported(url, loc.scheme, why);
      if (loc.kind === 'http') return httpHead(loc.url, store);
      try {
        const f = await fileEtag(loc.path);
        return { size: f.size, etag: f.etag, lastModified: f.mtime };
      } catch (e) {
        throw fromNodeError(e, url, loc.path);
      }
    },

    async getDetailed(url, into, t) {
      const started = performance.now();
      const data = await engine.get(url, undefined, t);
      if (into && data.length > into.length) {
        throw new StorageError(
          'InvalidArgument',
          `the object has ${data.length} bytes and \`into\` holds ${into.length}`,
          { url },
        );
      }
      const out = into ? into.subarray(0, data.copy(into)) : data;
      const result = { bytes: data.length, elapsedMs: performance.now() - started, parts: 1 };
      return { data: out, result: { ...result, resumedBytes: 0, path: 'http' as const } };
    },

    async get(url, range, t) {
      const { store, signal } = t;
      refuseRdma(url, store);
      checkRange(range);
      if (range && t.checksum === 'required') {
        throw new StorageError(
          'InvalidArgument',
          "checksum 'required' verifies whole objects; a byte range cannot be verified",
        );
      }
      const report = new Reporter(t.onProgress);
      if (signal?.aborted) throw abortedError(url);
      if (range && ('suffix' in range ? range.suffix === 0 : range.length === 0)) {
        return Buffer.alloc(0);
      }
      const loc = locate(url);
      if (loc.kind === 'cloud') throw notSupported(url, loc.scheme, why);
      try {
        if (loc.kind === 'http') {
          const { body, raw, length, offered } = await httpOpen(loc.url, range, store, signal);
          let verifier: Verifier | undefined;
          try {
            verifier = range ? undefined : Verifier.for(t.checksum, offered, url);
          } catch (e) {
            discard(raw);
            throw e;
          }
          report.plan(length);
          const buf = await readAll(body, length, report, verifier);
          verifier?.finish();
          report.finish();
          return buf;
        }
        if (!range && t.checksum === 'required') throw unavailable(url);
        const f = await fileEtag(loc.path);
        const [start, end] = fileRange(f.size, range);
        if (range && start >= f.size) {
          throw new StorageError(
            'InvalidArgument',
            `${loc.path}: the requested range is outside the object`,
            { url },
          );
        }
        const fh = await open(loc.path, 'r');
        try {
          const buf = Buffer.allocUnsafe(end - start);
          let off = 0;
          while (off < buf.length) {
            const { bytesRead } = await fh.read(buf, off, buf.length - off, start + off);
            if (bytesRead === 0) break;
            off += bytesRead;
          }
          report.plan(off);
          report.add(off);
          report.finish();
          return buf.subarray(0, off);
        } finally {
          await fh.close();
        }
      } catch (e) {
        if (signal?.aborted) throw abortedError(url);
        // The last n bytes of an empty object are no bytes (HTTP answers 416): its size decides.
        if (range && 'suffix' in range) {
          const size = await engine.head(url, store).then(
            (i) => i.size,
            () => undefined,
          );
          if (size === 0) return Buffer.alloc(0);
        }
        throw fromNodeError(e, url, loc.kind === 'file' ? loc.path : undefined);
      }
    },

    async download(url, dest, t) {
      refuseRdma(url, t.store);
      return downloadOne(url, dest, t, undefined, why);
    },

    async downloadMany(items, concurrency, t) {
      return settleAll(
        items,
        concurrency,
        (item, i) => downloadOne(item.url, item.dest, t, i, why),
        (e, item) => fromNodeError(e, item.url),
      );
    },
  };
  return engine;
}

async function downloadOne(
  url: string,
  dest: string,
  t: TransferSettings,
  index: number | undefined,
  why: WhyJs,
): Promise<Done> {
  const { store, signal } = t;
  const report = new Reporter(t.onProgress, index);
  const started = performance.now();
  if (signal?.aborted) throw abortedError(url);
  if (!dest) throw new StorageError('InvalidArgument', 'the destination path is empty');
  const loc = locate(url);
  if (loc.kind === 'cloud') throw notSupported(url, loc.scheme, why);
  if (t.resume) {
    throw new StorageError(
      'NotSupported',
      'resume is a native-engine feature; the JS engine downloads in one stream',
      { url },
    );
  }
  const target = isAbsolute(dest) ? dest : resolve(dest);
  try {
    return await withTemp(url, target, t, async (fh, where): Promise<Done> => {
      if (loc.kind === 'file') {
        if (t.checksum === 'required') throw unavailable(url);
        const f = await fileEtag(loc.path).catch((e: unknown) => {
          throw fromNodeError(e, url, loc.path);
        });
        await writeBody(createReadStream(loc.path), fh, where, url, report, signal);
        if (signal?.aborted) throw abortedError(url);
        report.plan(f.size);
        report.finish();
        return {
          bytes: f.size,
          etag: f.etag,
          elapsedMs: performance.now() - started,
          parts: 1,
          resumedBytes: 0,
        };
      }
      const { body, raw, length, etag, offered } = await httpOpen(
        loc.url,
        undefined,
        store,
        signal,
      );
      let verifier: Verifier | undefined;
      try {
        verifier = Verifier.for(t.checksum, offered, url);
      } catch (e) {
        discard(raw);
        throw e;
      }
      report.plan(length);
      const written = await writeBody(body, fh, where, url, report, signal, verifier);
      if (written !== length) {
        throw new StorageError(
          'Generic',
          `${displayUrl(url)}: expected ${length} bytes but the body had ${written}`,
          { url },
        );
      }
      const checksum = verifier?.finish();
      report.finish();
      return {
        bytes: length,
        etag,
        elapsedMs: performance.now() - started,
        parts: 1,
        checksum,
        resumedBytes: 0,
      };
    });
  } catch (e) {
    if (signal?.aborted) throw abortedError(url);
    throw fromNodeError(e, url, loc.kind === 'file' ? loc.path : undefined);
  }
}
