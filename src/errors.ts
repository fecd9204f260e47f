import { displayUrl, scrub } from './redact.js';

/**
 * Every stable error code, in the engine's order. The native engine's list (`ErrorCode::ALL` in
 * crates/engine/src/error.rs, exported as `errorCodes()`) is the source; this copy lets the JS
 * engine work without the addon, and test/error-codes.test.ts fails when the two differ.
 */
export const ERROR_CODE_LIST = [
  'NotFound',
  'PermissionDenied',
  'Unauthenticated',
  'Precondition',
  'AlreadyExists',
  'InvalidUrl',
  'UnsupportedScheme',
  'InvalidArgument',
  'Timeout',
  'Aborted',
  'Io',
  'NotSupported',
  'ChecksumMismatch',
  'ChecksumUnavailable',
  'RdmaUnavailable',
  'RdmaDeclined',
  'RdmaInvalidToken',
  'RdmaTransferFailed',
  'Network',
  'Throttled',
  'TlsCertificate',
  'Busy',
  'UnsafeKey',
  'Generic',
] as const;

/** Stable error codes: `err.code` on every error objget throws. */
export type ErrorCode = (typeof ERROR_CODE_LIST)[number];

/** Every code, for checking a value that crossed a boundary (the native binding, a test). */
export const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>(ERROR_CODE_LIST);

/**
 * Every failure objget reports. `code` is stable; `message` names the object and the cause and
 * never a credential; `url` is shown without its query string.
 */
export class StorageError extends Error {
  override readonly name: string = 'StorageError';
  readonly code: ErrorCode;
  readonly url: string | undefined;

  constructor(code: ErrorCode, message: string, options: { url?: string; cause?: unknown } = {}) {
    super(scrub(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.url = options.url === undefined ? undefined : displayUrl(options.url);
  }
}

/** One item's outcome in `downloadMany`, shaped like `Promise.allSettled`. */
export type ItemOutcome<T> =
  { status: 'fulfilled'; value: T } | { status: 'rejected'; reason: StorageError };

/**
 * `downloadMany` rejects with this when any item failed. Items that succeeded are complete
 * files; items that failed left nothing behind. `code` is the first failure's code.
 */
export class DownloadManyError<T = unknown> extends StorageError {
  override readonly name = 'DownloadManyError';
  readonly outcomes: ItemOutcome<T>[];
  readonly failed: number;

  constructor(outcomes: ItemOutcome<T>[], what = 'downloads') {
    const failures = outcomes.filter(
      (o): o is { status: 'rejected'; reason: StorageError } => o.status === 'rejected',
    );
    const first = failures[0]?.reason;
    super(
      first?.code ?? 'Generic',
      `${failures.length} of ${outcomes.length} ${what} failed; first: ${first?.message ?? 'unknown'}`,
      { cause: first },
    );
    this.outcomes = outcomes;
    this.failed = failures.length;
  }
}

/**
 * Turn an error from the native addon into a StorageError. The addon throws real `Error`s whose
 * `code` is an objget code, with `url` and `cause` (an `Error`) when known; napi-rs's own
 * argument errors carry its status (`InvalidArg`, …) instead.
 */
export function fromNative(err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    code?: unknown;
    message?: unknown;
    url?: unknown;
    cause?: unknown;
  };
  const message = typeof e.message === 'string' ? e.message : String(err);
  const code: ErrorCode =
    typeof e.code === 'string' && ERROR_CODES.has(e.code)
      ? (e.code as ErrorCode)
      : e.code === 'InvalidArg'
        ? 'InvalidArgument'
        : 'Generic';
  const cause =
    e.cause instanceof Error ? e.cause.message : typeof e.cause === 'string' ? e.cause : undefined;
  return new StorageError(code, message, {
    url: typeof e.url === 'string' ? e.url : undefined,
    cause: cause ? new Error(scrub(cause)) : undefined,
  });
}

/** Connection failures, resets and bodies cut off (after retries): `Network`. */
const NETWORK = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** Node's TLS certificate refusals, named as the native engine names them. */
const TLS_PROBLEMS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unknown issuer',
  UNABLE_TO_GET_ISSUER_CERT: 'unknown issuer',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown issuer',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown issuer',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'unknown issuer',
  CERT_UNTRUSTED: 'unknown issuer',
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'wrong name (not valid for this host)',
  HOSTNAME_MISMATCH: 'wrong name (not valid for this host)',
  CERT_REVOKED: 'revoked',
  CERT_SIGNATURE_FAILURE: 'bad signature',
  INVALID_PURPOSE: 'not a certificate for TLS servers',
  INVALID_CA: 'invalid CA certificate',
  CERT_REJECTED: 'rejected',
};

/** Map a Node.js / undici error to a StorageError about `url`. */
export function fromNodeError(err: unknown, url: string, what?: string): StorageError {
  if (err instanceof StorageError) return err;
  const e = err as {
    code?: string;
    name?: string;
    message?: string;
    cause?: { code?: string };
  } | null;
  const c = e?.code ?? e?.cause?.code ?? '';
  const name = e?.name ?? '';
  let code: ErrorCode = 'Generic';
  let detail: string | undefined;
  if (name === 'AbortError' || c === 'ABORT_ERR' || c === 'UND_ERR_ABORTED') code = 'Aborted';
  else if (c === 'ENOENT') code = 'NotFound';
  else if (c === 'EACCES' || c === 'EPERM') code = 'PermissionDenied';
  else if (
    c === 'UND_ERR_CONNECT_TIMEOUT' ||
    c === 'UND_ERR_HEADERS_TIMEOUT' ||
    c === 'UND_ERR_BODY_TIMEOUT' ||
    c === 'ETIMEDOUT'
  )
    code = 'Timeout';
  else if (TLS_PROBLEMS[c] !== undefined) {
    code = 'TlsCertificate';
    detail = `the server's TLS certificate was refused: ${TLS_PROBLEMS[c]}`;
  } else if (NETWORK.has(c) && what === undefined) code = 'Network';
  else if (c.startsWith('E') && !c.startsWith('ECONN') && c !== 'EPIPE' && what !== undefined)
    code = 'Io';
  const shown = what ?? displayUrl(url);
  const text =
    code === 'Aborted' ? 'the transfer was aborted' : (detail ?? scrub(e?.message ?? String(err)));
  return new StorageError(code, `${shown}: ${text}`, {
    url,
    cause:
      err instanceof Error ? new Error(scrub(`${c ? `${c}: ` : ''}${err.message}`)) : undefined,
  });
}
