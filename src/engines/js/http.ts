// The JS engine's HTTP transport: one pooled undici Agent per set of connection settings, one
// request with retries (object_store's backoff), and bodies that resume after a cut. Used for
// plain http(s) reads and, with a signer, for every S3 request (src/engines/js/s3.ts).
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { fromNodeError, StorageError, type ErrorCode } from '../../errors.js';
import { DEFAULTS, LIMITS } from '../../options.js';
import { displayUrl } from '../../redact.js';
import type { ByteRange, StoreOptions } from '../../types.js';

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
export type Response = Dispatcher.ResponseData;

/**
 * How a request is authorised: the headers to send for it, made afresh for each attempt (a
 * SigV4 signature carries its time, and credentials may have been renewed).
 */
export type Sign = (
  method: Method,
  url: URL,
  headers: Record<string, string>,
  body: Buffer | undefined,
) => Promise<Record<string, string>>;

/** Extra settings of a request: its body, its signer, how a failed status becomes an error. */
export interface Via {
  body?: Buffer;
  sign?: Sign;
  /** The error for a final status ≥ 400 (it may read the body); `statusError` otherwise. */
  fail?: (res: Response, url: string) => Promise<StorageError>;
  /** The URL messages name (the caller's `s3://…`), when it is not the one requested. */
  shown?: string;
  /** Told before the request is sent again (its earlier attempt may have taken effect). */
  resending?: () => void;
}

const agents = new Map<string, Agent>();

// undici costs ~90 ms to import: load it only when the JS engine actually sends a request.
let undici: Promise<typeof import('undici')> | undefined;
const loadUndici = (): Promise<typeof import('undici')> => (undici ??= import('undici'));

/**
 * Connections per origin: the process's request budget (`LIMITS.maxConcurrency`, the native
 * engine's `REQUEST_BUDGET`), beyond which requests wait for a connection. It is also what keeps
 * connections in use: undici dispatches a request that follows a finished one before that
 * connection counts as free again, so with room for more it connects anew (a 256-connection pool
 * made 425 connections for 400 small objects).
 */
const POOL = LIMITS.maxConcurrency;

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
      connections: POOL,
    });
    agents.set(key, agent);
  }
  return agent;
}

/** The code of an HTTP status, as the native engine maps it. */
export function codeOf(status: number): ErrorCode {
  return status === 404 || status === 410
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
}

export function statusError(status: number, url: string): StorageError {
  return new StorageError(codeOf(status), `${displayUrl(url)}: HTTP ${status}`, { url });
}

export function rangeHeader(range: ByteRange): string {
  if ('suffix' in range) return `bytes=-${range.suffix}`;
  return range.length === undefined
    ? `bytes=${range.offset}-`
    : `bytes=${range.offset}-${range.offset + range.length - 1}`;
}

/** Drop a response body we will not read; undici reports the abort as an error event. */
export function discard(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * object_store's backoff (decorrelated jitter), as the native engine waits: the first wait is the
 * initial backoff, each next one drawn between it and `base` × the last, capped.
 */
export class Backoff {
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
 * One request with retries on 5xx, 429, 408 and connection errors before the body. Unsigned,
 * redirects are followed within the scheme (at most ten); one that leaves it (https → http) is
 * refused with `NotSupported`, as the native engine does. A signed request follows none.
 */
export async function send(
  url: string,
  method: Method,
  headers: Record<string, string>,
  store: StoreOptions | undefined,
  signal: AbortSignal | undefined,
  via: Via = {},
): Promise<Response> {
  const maxRetries = store?.maxRetries ?? DEFAULTS.maxRetries;
  const retryTimeout = store?.retryTimeoutMs ?? DEFAULTS.retryTimeoutMs;
  const backoff = new Backoff(store?.initialBackoffMs ?? DEFAULTS.initialBackoffMs);
  const started = Date.now();
  const { Agent, request } = await loadUndici();
  const shown = via.shown ?? url;
  let target = url;
  let redirects = 0;
  for (let attempt = 0; ;) {
    let res: Response | undefined;
    let failure: unknown;
    try {
      const base = { 'user-agent': 'objget-js', ...headers };
      res = await request(target, {
        method,
        headers: via.sign ? await via.sign(method, new URL(target), base, via.body) : base,
        body: via.body,
        dispatcher: agentFor(store, Agent),
        signal,
      });
    } catch (e) {
      if (e instanceof StorageError) throw e;
      failure = e;
    }
    const location =
      res && !via.sign && REDIRECTS.has(res.statusCode) ? one(res.headers.location) : undefined;
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
      if (!res) throw fromNodeError(failure, shown);
      if (res.statusCode >= 400 && res.statusCode !== 416) {
        if (via.fail) throw await via.fail(res, shown);
        discard(res.body);
        throw statusError(res.statusCode, shown);
      }
      return res;
    }
    if (res) discard(res.body);
    attempt++;
    await sleep(wait);
    via.resending?.();
  }
}

export function totalFromContentRange(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  const total = s?.split('/').pop();
  return total && /^\d+$/.test(total) ? Number(total) : undefined;
}

export function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The object's size a reply to `what` (a HEAD, a whole GET) states, or a `Generic` error. */
export function statedSize(res: Response, what: string, url: string): number {
  const size = Number(one(res.headers['content-length']));
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new StorageError('Generic', `${displayUrl(url)}: ${what} gave no object size`, { url });
  }
  return size;
}

export function startFromContentRange(v: string | string[] | undefined): number | undefined {
  const m = /^bytes (\d+)-/.exec(one(v)?.trim() ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * A body that survives being cut off: after a reset or an early close the rest is asked for with
 * a ranged GET pinned by `If-Match` to the ETag the body came with, within the retry policy, as
 * the native engine does. Without a strong ETag the cut is a `Network` error.
 */
export async function* resumable(
  first: Readable,
  href: string,
  etag: string | undefined,
  start: number,
  end: number,
  store: StoreOptions | undefined,
  signal: AbortSignal | undefined,
  via: Via = {},
): AsyncGenerator<Buffer> {
  const shown = via.shown ?? href;
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
      failure = new StorageError('Network', `${displayUrl(shown)}: the response body ended early`, {
        url: shown,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      failure = fromNodeError(e, shown);
    }
    if (failure.code !== 'Network' && failure.code !== 'Timeout') throw failure;
    if (!etag || etag.startsWith('W/')) {
      throw new StorageError(
        'Network',
        `${displayUrl(shown)}: the body was cut off at byte ${offset} and the server offers no strong ETag to resume it safely`,
        { url: shown, cause: failure },
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
      { ...via, body: undefined },
    );
    if (res.statusCode !== 206 || startFromContentRange(res.headers['content-range']) !== offset) {
      discard(res.body);
      throw new StorageError(
        'Network',
        `${displayUrl(shown)}: the body was cut off and the server did not send the rest as asked`,
        { url: shown },
      );
    }
    body = res.body;
  }
}
