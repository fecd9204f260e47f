import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc, createReadStream } from 'node:fs';
import { lstat, mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Agent, Dispatcher } from 'undici';
import { fromNodeError, StorageError, type ErrorCode } from '../errors.js';
import { displayUrl } from '../redact.js';
import { settleAll } from '../pool.js';
import { checkStoreTls } from '../tls.js';
import { advertised, unavailable, Verifier } from './checksum.js';
import type {
  ByteRange,
  Engine,
  ObjectInfo,
  Progress,
  EngineTransfer,
  StoreOptions,
  TransferSettings,
  VerifiedChecksum,
} from '../types.js';
import { locate } from '../urls.js';

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
  const key = JSON.stringify([
    store?.caCert?.toString() ?? '',
    store?.connectTimeoutMs ?? 10_000,
    store?.readTimeoutMs ?? 60_000,
    insecure,
  ]);
  let agent = agents.get(key);
  if (!agent) {
    agent = new Agent({
      connect: {
        timeout: store?.connectTimeoutMs ?? 10_000,
        ...(store?.caCert ? { ca: store.caCert.toString() } : {}),
        // Only the explicit insecureSkipTlsVerify turns certificate checks off.
        ...(insecure ? { rejectUnauthorized: false } : {}),
      },
      headersTimeout: store?.readTimeoutMs ?? 60_000,
      bodyTimeout: store?.readTimeoutMs ?? 60_000,
      connections: 256,
    });
    agents.set(key, agent);
  }
  return agent;
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

/** Same limits as the native engine, so a call is valid or invalid whichever engine runs it. */
function checkTransfer(t: TransferSettings): void {
  const { partSize, concurrency, checksum } = t;
  if (checksum !== undefined && !['auto', 'required', 'off'].includes(checksum)) {
    throw new StorageError(
      'InvalidArgument',
      `checksum is 'auto', 'required' or 'off', got ${JSON.stringify(checksum)}`,
    );
  }
  if (
    partSize !== undefined &&
    (!Number.isSafeInteger(partSize) || partSize < 64 * 1024 || partSize > 1024 ** 3)
  ) {
    throw new StorageError(
      'InvalidArgument',
      `partSize must be between 64 KiB and 1 GiB, got ${partSize}`,
    );
  }
  if (
    concurrency !== undefined &&
    (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 64)
  ) {
    throw new StorageError(
      'InvalidArgument',
      `concurrency must be between 1 and 64, got ${concurrency}`,
    );
  }
}

/** Throttled progress, like the native engine's: at most every 100 ms, and once at the end. */
class Reporter {
  private bytes = 0;
  private last = 0;
  private total: number | undefined;
  constructor(
    private readonly cb: ((p: Progress) => void) | undefined,
    private readonly index?: number,
  ) {}
  plan(total: number): void {
    this.total = total;
  }
  add(n: number): void {
    this.bytes += n;
    if (this.cb && performance.now() - this.last >= 100) {
      this.last = performance.now();
      this.emit(0);
    }
  }
  finish(): void {
    this.emit(1);
  }
  private emit(done: number): void {
    try {
      this.cb?.({
        ...(this.index === undefined ? {} : { index: this.index }),
        bytes: this.bytes,
        total: this.total,
        partsDone: done,
        partsTotal: 1,
      });
    } catch {
      // the caller's callback failed; the transfer goes on
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The retry policy's defaults: the native engine's (crates/engine/src/store.rs, where the reasons
 * are), so that both engines retry alike.
 */
const RETRY = {
  maxRetries: 10,
  initialBackoffMs: 500,
  base: 2,
  maxBackoffMs: 15_000,
  retryTimeoutMs: 180_000,
};

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
    const hi = current * RETRY.base;
    const drawn = hi > this.init ? this.init + Math.random() * (hi - this.init) : this.init;
    this.next = Math.min(RETRY.maxBackoffMs, drawn);
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
  const maxRetries = store?.maxRetries ?? RETRY.maxRetries;
  const retryTimeout = store?.retryTimeoutMs ?? RETRY.retryTimeoutMs;
  const backoff = new Backoff(store?.initialBackoffMs ?? RETRY.initialBackoffMs);
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
  const backoff = new Backoff(store?.initialBackoffMs ?? RETRY.initialBackoffMs);
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
      resumes >= (store?.maxRetries ?? RETRY.maxRetries) ||
      Date.now() - started + wait > (store?.retryTimeoutMs ?? RETRY.retryTimeoutMs)
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

/**
 * Stream a body into an open file, in order, counting and hashing; returns the bytes written. A
 * failure of the file (disk full, …) is `Io` and names `where`; one of the body is its own.
 */
async function writeBody(
  body: AsyncIterable<Uint8Array>,
  fh: FileHandle,
  where: string,
  url: string,
  report: Reporter,
  signal: AbortSignal | undefined,
  verifier?: Verifier,
): Promise<number> {
  let local: unknown;
  let bytes = 0;
  // Into the open file, in order (a FIFO or a device takes no offsets); the file stays open for
  // the caller's fdatasync.
  const out = new Writable({
    write(chunk: Uint8Array, _encoding, done) {
      writeAll(fh, chunk).then(
        () => {
          bytes += chunk.length;
          done();
        },
        (e: unknown) => {
          local ??= e;
          done(e as Error);
        },
      );
    },
  });
  const counted = async function* (src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const c of src) {
      verifier?.update(c);
      report.add(c.length);
      yield c;
    }
  };
  try {
    await pipeline(body, counted, out, { signal });
  } catch (e) {
    if (local !== undefined && !signal?.aborted) throw fromNodeError(local, url, where);
    throw e;
  }
  return bytes;
}

async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  for (let at = 0; at < chunk.length;) {
    at += (await fh.write(chunk, at, chunk.length - at, null)).bytesWritten;
  }
}

/**
 * Save a body from anywhere (a registered scheme's handler) the way every download lands: a
 * temporary beside `dest`, fdatasync when durable, rename; nothing left on failure.
 */
export async function saveStream(
  url: string,
  body: AsyncIterable<Uint8Array>,
  dest: string,
  t: TransferSettings,
  index?: number,
): Promise<Done> {
  const report = new Reporter(t.onProgress, index);
  const started = performance.now();
  const target = isAbsolute(dest) ? dest : resolve(dest);
  try {
    return await withTemp(url, target, t, async (fh, where): Promise<Done> => {
      const bytes = await writeBody(body, fh, where, url, report, t.signal);
      report.plan(bytes);
      report.finish();
      return { bytes, elapsedMs: performance.now() - started, parts: 1, resumedBytes: 0 };
    });
  } catch (e) {
    if (t.signal?.aborted) throw abortedError(url);
    throw fromNodeError(e, url);
  }
}

/**
 * The name objget's own files beside `name` are made from: `name`, or, where the longest of
 * them (`.name.objget-<16 hex>.part`) would pass 255 bytes, its first 200 bytes (at a character
 * boundary), `-` and 16 hex digits of its SHA-256 (as the native engine's `place::stem`).
 */
export function tempStem(name: string): string {
  const raw = Buffer.from(name);
  if (raw.length + 30 <= 255) return name;
  let cut = 200;
  while (cut > 0 && (raw[cut]! & 0xc0) === 0x80) cut--;
  const hash = createHash('sha256').update(raw).digest('hex').slice(0, 16);
  return `${raw.subarray(0, cut).toString()}-${hash}`;
}

function planted(path: string, what: string): StorageError {
  return new StorageError(
    'UnsafeKey',
    `${path}: ${what}; objget writes only its own regular files and follows no link there, so nothing was written`,
  );
}

/**
 * Make `dir` (as `mkdir -p`); beneath `root`, every component below `root` must be a directory,
 * not a link (`UnsafeKey`). Node has no openat: checked by lstat before the temporary is made
 * and again before the rename (the native engine works from directory descriptors instead).
 */
async function makeDir(dir: string, root: string | undefined): Promise<void> {
  if (root === undefined) {
    await mkdir(dir, { recursive: true });
    return;
  }
  const rel = relative(root, dir);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new StorageError('UnsafeKey', `${dir}: not beneath ${root}; nothing was written`);
  }
  await mkdir(root, { recursive: true });
  let at = root;
  for (const name of rel ? rel.split(sep) : []) {
    at = join(at, name);
    let s = await lstat(at).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (!s) {
      await mkdir(at).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
      s = await lstat(at);
    }
    if (s.isSymbolicLink()) throw planted(at, 'a symbolic link');
    if (!s.isDirectory()) {
      throw Object.assign(new Error(`ENOTDIR: not a directory, '${at}'`), { code: 'ENOTDIR' });
    }
  }
}

/**
 * A character device or FIFO, opened to be written in order (never replaced). A FIFO with no
 * reader is an error, not a wait; only this user's or root's are written.
 */
async function openStream(dest: string, nofollow: number): Promise<FileHandle> {
  const probe = await open(dest, fsc.O_WRONLY | fsc.O_NONBLOCK | nofollow).catch(
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENXIO') {
        throw new StorageError('Io', `${dest}: a FIFO with no reader; start its reader first`);
      }
      if (e.code === 'ELOOP') throw planted(dest, 'a symbolic link');
      throw e;
    },
  );
  try {
    const s = await probe.stat();
    if (!s.isCharacterDevice() && !s.isFIFO()) {
      throw new StorageError('Io', `${dest}: changed while it was being opened`);
    }
    if (s.uid !== 0 && s.uid !== process.geteuid?.()) {
      throw planted(dest, 'a device or FIFO owned by another user');
    }
    // Node cannot clear O_NONBLOCK on a descriptor: a blocking one, now that a reader is there.
    return await open(dest, fsc.O_WRONLY | nofollow);
  } finally {
    await probe.close();
  }
}

/**
 * Where a download lands: a uniquely named temporary beside `dest` (created with O_EXCL and
 * O_NOFOLLOW), removed unless renamed over `dest`; or, when `dest` is a character device or a
 * FIFO, `dest` itself, written in order. `fill` writes into the open file (`where` names it).
 * With `t.root`, `dest`'s directory must lie beneath it with no link on the way.
 */
async function withTemp<T>(
  url: string,
  dest: string,
  t: TransferSettings,
  fill: (fh: FileHandle, where: string) => Promise<T>,
): Promise<T> {
  const durable = t.durable ?? true;
  const root = t.root === undefined ? undefined : resolve(t.root);
  const dir = dirname(dest);
  const local = (e: unknown): never => {
    throw e instanceof StorageError ? e : fromNodeError(e, url, dest);
  };
  await makeDir(dir, root).catch(local);
  // A plain download looks through a link at `dest` (the caller named it); beneath a root, not.
  const existing = await (root === undefined ? stat : lstat)(dest).catch(() => undefined);
  if (existing?.isDirectory()) {
    throw new StorageError('InvalidArgument', `${dest}: is a directory`);
  }
  const nofollow = root === undefined ? 0 : fsc.O_NOFOLLOW;
  if (existing?.isCharacterDevice() || existing?.isFIFO()) {
    const fh = await openStream(dest, nofollow).catch(local);
    try {
      return await fill(fh, dest);
    } finally {
      await fh.close();
    }
  }
  if (existing && !existing.isFile() && !existing.isSymbolicLink()) {
    throw new StorageError(
      'InvalidArgument',
      `${dest}: is a block device or a socket; objget writes regular files, character devices and FIFOs`,
    );
  }
  const temp = join(
    dir,
    `.${tempStem(basename(dest))}.objget-${randomBytes(8).toString('hex')}.part`,
  );
  const fh = await open(temp, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o666).catch(
    local,
  );
  let closed = false;
  try {
    const out = await fill(fh, temp);
    if (durable) await fh.datasync().catch(local);
    closed = true;
    await fh.close();
    if (root !== undefined) await makeDir(dir, root).catch(local);
    await rename(temp, dest).catch(local);
    if (durable) {
      const d = await open(dir, 'r').catch(() => undefined);
      await d?.sync().catch(() => undefined);
      await d?.close();
    }
    return out;
  } catch (e) {
    if (!closed) await fh.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw e;
  }
}

function abortedError(url: string): StorageError {
  return new StorageError('Aborted', 'the transfer was aborted', { url });
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
    upload(_source, url) {
      return Promise.reject(nativeOnly('upload', url, why));
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
      checkStoreTls(store);
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
      checkStoreTls(store);
      checkRange(range);
      checkTransfer(t);
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
  checkStoreTls(store);
  checkTransfer(t);
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
