import { displayUrl, scrub } from './redact.js';

/** Stable error codes: `err.code` on every error objget throws. */
export type ErrorCode =
  | 'NotFound'
  | 'PermissionDenied'
  | 'Unauthenticated'
  | 'Precondition'
  | 'AlreadyExists'
  | 'InvalidUrl'
  | 'UnsupportedScheme'
  | 'InvalidArgument'
  | 'Timeout'
  | 'Aborted'
  | 'Io'
  | 'NotSupported'
  | 'ChecksumMismatch'
  | 'ChecksumUnavailable'
  | 'UnsafeKey'
  | 'RdmaUnavailable'
  | 'RdmaDeclined'
  | 'RdmaInvalidToken'
  | 'RdmaTransferFailed'
  | 'Network'
  | 'Throttled'
  | 'TlsCertificate'
  | 'Busy'
  | 'Generic';

/** Every code, for checking a value that crossed a boundary (the native binding, a test). */
export const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
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
  'UnsafeKey',
  'RdmaUnavailable',
  'RdmaDeclined',
  'RdmaInvalidToken',
  'RdmaTransferFailed',
  'Network',
  'Throttled',
  'TlsCertificate',
  'Busy',
  'Generic',
]);

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

const NATIVE_PREFIX = 'OBJGET_ERROR:';

interface NativeErrorBody {
  code: string;
  message: string;
  url: string | null;
  cause: string | null;
}

/** Turn an error from the native addon (or its encoded string) into a StorageError. */
export function fromNative(err: unknown): StorageError {
  const text = typeof err === 'string' ? err : err instanceof Error ? err.message : String(err);
  const at = text.indexOf(NATIVE_PREFIX);
  if (at >= 0) {
    try {
      const body = JSON.parse(text.slice(at + NATIVE_PREFIX.length)) as NativeErrorBody;
      const code = (ERROR_CODES.has(body.code) ? body.code : 'Generic') as ErrorCode;
      return new StorageError(code, body.message, {
        url: body.url ?? undefined,
        cause: body.cause ? new Error(scrub(body.cause)) : undefined,
      });
    } catch {
      // fall through: not our encoding after all
    }
  }
  if (err instanceof StorageError) return err;
  // napi-rs argument conversion errors (a number where a string belongs, …).
  const code = (err as { code?: string } | null)?.code;
  return new StorageError(code === 'InvalidArg' ? 'InvalidArgument' : 'Generic', text);
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
