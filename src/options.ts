// Every option's default and limit, and the checks of every public call's arguments, in one
// place: each call is checked here once, at its entry, before any engine sees it. A wrong-typed
// argument is `InvalidArgument` naming the argument and what it must be (not a napi conversion
// error or a TypeError, code `Generic`). Values are not echoed (an option may hold a secret),
// only their kind; numbers are, to say what was wrong.
import { Readable } from 'node:stream';
import { StorageError } from './errors.js';
import { checkStoreTls } from './tls.js';
import type { StoreOptions } from './types.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * Every default, declared once. The native engine keeps its own (crates/engine/src/options.rs);
 * test/defaults.test.ts checks that the two agree and that both engines act on them.
 */
export const DEFAULTS = {
  /** Bytes per ranged GET of a download. */
  partSize: 8 * MiB,
  /** Parts of one object in flight. */
  concurrency: 8,
  /** Objects in flight in `downloadMany` and `downloadPrefix`. */
  manyConcurrency: 16,
  /** Bytes per part of a multipart upload (an object up to this size goes in one PUT). */
  uploadPartSize: 16 * MiB,
  /** Parts of one upload in flight. */
  uploadConcurrency: 8,
  /** Files in flight in `uploadDir`. */
  fileConcurrency: 8,
  connectTimeoutMs: 10_000,
  /** Longest wait for a reply's headers and between two chunks of its body. */
  readTimeoutMs: 60_000,
  /** Retries of a request on 5xx, 429, 408 and connection errors. */
  maxRetries: 10,
  /** No retry starts after this long. */
  retryTimeoutMs: 180_000,
  /** The first backoff; object_store's decorrelated jitter grows it by `backoffBase`. */
  initialBackoffMs: 500,
  backoffBase: 2,
  maxBackoffMs: 15_000,
  /** Downloads are fsynced before the rename. */
  durable: true,
} as const;

/** Limits of the download options, the native engine's (`TransferOptions::validate`). */
export const LIMITS = {
  minPartSize: 64 * KiB,
  maxPartSize: 1024 * MiB,
  /** Requests in flight across every transfer of the process (`REQUEST_BUDGET`). */
  maxConcurrency: 64,
} as const;

/**
 * Limits of an upload's parts, the native engine's (crates/engine/src/options.rs), for the JS
 * engine's S3 uploads.
 */
export const UPLOAD_LIMITS = {
  /** The smallest `partSize` a caller may ask for (`MIN_REQUESTED_PART`). */
  minRequestedPart: 64 * KiB,
  /** S3 (and R2, MinIO) refuse multipart parts under 5 MiB, except the last (`MIN_PART`). */
  minPart: 5 * MiB,
  /** S3's largest part, and largest UploadPartCopy source (`MAX_PART`). */
  maxPart: 5 * 1024 * MiB,
  /** S3's limit on parts per upload (`MAX_PARTS`). */
  maxParts: 10_000,
} as const;

/** What a value is, for a message: its kind, and a number's value. */
function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (Buffer.isBuffer(v)) return 'a Buffer';
  if (v instanceof Readable) return 'a Readable';
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return `${v}`;
  if (typeof v === 'object') return 'an object';
  return typeof v === 'undefined' ? 'undefined' : `a ${typeof v}`;
}

/** A check: `undefined` when `v` is acceptable, else the message naming `name`. */
type Check = (v: unknown, name: string) => string | undefined;

const is =
  (ok: (v: unknown) => boolean, must: string): Check =>
  (v, name) =>
    ok(v) ? undefined : `${name} must be ${must}, got ${kind(v)}`;

const optional =
  (c: Check): Check =>
  (v, name) =>
    v === undefined ? undefined : c(v, name);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);

/** An options object (or undefined) whose known fields are each optional and checked. */
function shape(fields: Record<string, Check>): Check {
  return (v, name) => {
    if (v === undefined) return undefined;
    if (!isObject(v)) return `${name} must be an object, got ${kind(v)}`;
    for (const [k, c] of Object.entries(fields)) {
      const m = optional(c)(v[k], `${name}.${k}`);
      if (m) return m;
    }
    return undefined;
  };
}

const string = is((v) => typeof v === 'string', 'a string');
const nonEmpty = is((v) => typeof v === 'string' && v !== '', 'a non-empty string');
const bool = is((v) => typeof v === 'boolean', 'true or false');
const fn = is((v) => typeof v === 'function', 'a function');
const buffer = is((v) => Buffer.isBuffer(v), 'a Buffer');
const positive = is((v) => Number.isSafeInteger(v) && (v as number) >= 1, 'a positive integer');
const natural = is((v) => Number.isSafeInteger(v) && (v as number) >= 0, 'an integer ≥ 0');
const signal = is(
  (v) =>
    isObject(v) &&
    typeof v.aborted === 'boolean' &&
    typeof v.addEventListener === 'function' &&
    typeof v.removeEventListener === 'function',
  'an AbortSignal',
);
const stringRecord = is(
  (v) => isObject(v) && Object.values(v).every((x) => typeof x === 'string'),
  'an object of string values',
);
const oneOf =
  (...values: unknown[]): Check =>
  (v, name) =>
    values.includes(v)
      ? undefined
      : `${name} must be ${values.map((x) => JSON.stringify(x)).join(', ')}, got ${
          typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : kind(v)
        }`;

const range: Check = (v, name) => {
  if (!isObject(v)) return `${name} must be { offset, length? } or { suffix }, got ${kind(v)}`;
  if ('suffix' in v) {
    if ('offset' in v || 'length' in v) {
      return `${name} must be { offset, length? } or { suffix }, not both`;
    }
    return natural(v.suffix, `${name}.suffix`);
  }
  return natural(v.offset, `${name}.offset`) ?? optional(natural)(v.length, `${name}.length`);
};

const store = shape({
  config: stringRecord,
  skipSignature: bool,
  allowHttp: bool,
  caCert: is((v) => typeof v === 'string' || Buffer.isBuffer(v), 'a string or a Buffer'),
  connectTimeoutMs: natural,
  readTimeoutMs: natural,
  maxRetries: natural,
  retryTimeoutMs: natural,
  initialBackoffMs: natural,
  rdma: oneOf(true, false, 'require'),
  rdmaPartSize: positive,
  rdmaBuffers: positive,
  rdmaBindAddress: nonEmpty,
  credentials: fn,
});

const call = { store, signal, onProgress: fn };
const transfer = {
  ...call,
  partSize: positive,
  durable: bool,
  checksum: oneOf('auto', 'required', 'off'),
};
const uploadOptions = {
  ...call,
  ifNotExists: bool,
  partSize: positive,
  concurrency: positive,
  contentType: string,
  metadata: stringRecord,
};

const source = is(
  (v) => typeof v === 'string' || Buffer.isBuffer(v) || v instanceof Readable,
  'a path, a Buffer or a Readable',
);
const urls = is(
  (v) => typeof v === 'string' || (Array.isArray(v) && v.every((u) => typeof u === 'string')),
  'a URL string or an array of them',
);
const items = is(
  (v) =>
    Array.isArray(v) &&
    v.every((i) => isObject(i) && typeof i.url === 'string' && typeof i.dest === 'string'),
  'an array of { url: string, dest: string }',
);

const onlyStore = shape({ store });
const reads = { ...transfer, concurrency: positive };
const many = { ...reads, partConcurrency: positive, resume: bool };

/** Each public call's arguments, in order. */
const CALLS = {
  download: { url: string, dest: nonEmpty, options: shape({ ...reads, resume: bool }) },
  get: { url: string, options: shape({ ...reads, range, into: buffer }) },
  getDetailed: { url: string, options: shape({ ...reads, into: buffer }) },
  head: { url: string, options: onlyStore },
  downloadMany: { items, options: shape(many) },
  downloadPrefix: {
    prefixUrl: string,
    destDir: nonEmpty,
    options: shape({ ...many, filter: fn, overwrite: bool }),
  },
  upload: { source, url: string, options: shape(uploadOptions) },
  uploadDir: {
    dir: nonEmpty,
    prefixUrl: string,
    options: shape({ ...uploadOptions, fileConcurrency: positive, filter: fn }),
  },
  exists: { url: string, options: onlyStore },
  remove: { urls, options: onlyStore },
  copy: { from: string, to: string, options: shape({ store, ifNotExists: bool }) },
  list: { prefixUrl: string, options: onlyStore },
  Store: { baseUrl: string, options: store },
  allocRdmaBuffer: { size: positive },
} satisfies Record<string, Record<string, Check>>;

/** The calls whose options are a download's: their part size and concurrency have limits. */
const DOWNLOADS = new Set(['download', 'get', 'getDetailed', 'downloadMany', 'downloadPrefix']);

/** A download's part size, part concurrency and checksum mode within the engine's limits. */
function checkTransfer(t: Record<string, unknown>, partConcurrency: unknown): void {
  const partSize = t.partSize as number | undefined;
  if (partSize !== undefined && (partSize < LIMITS.minPartSize || partSize > LIMITS.maxPartSize)) {
    throw new StorageError(
      'InvalidArgument',
      `partSize must be between 64 KiB and 1 GiB, got ${partSize}`,
    );
  }
  const concurrency = partConcurrency as number | undefined;
  if (concurrency !== undefined && concurrency > LIMITS.maxConcurrency) {
    throw new StorageError(
      'InvalidArgument',
      `concurrency must be between 1 and ${LIMITS.maxConcurrency}, got ${concurrency}`,
    );
  }
}

/**
 * Check a public call's arguments (in order), once, at its entry: `InvalidArgument` naming the
 * first one that is not what it must be; then a download's limits and the store's TLS settings.
 * Unknown option fields are left alone.
 */
export function checkArgs(name: keyof typeof CALLS, ...args: unknown[]): void {
  const spec = Object.entries(CALLS[name] as Record<string, Check>);
  for (const [i, [arg, check]] of spec.entries()) {
    const msg = check(args[i], arg);
    if (msg) throw new StorageError('InvalidArgument', `${name}: ${msg}`);
  }
  if (name === 'Store' || name === 'allocRdmaBuffer') return;
  const options = args[spec.length - 1] as Record<string, unknown> | undefined;
  if (options && DOWNLOADS.has(name)) {
    const many = name === 'downloadMany' || name === 'downloadPrefix';
    checkTransfer(options, many ? options.partConcurrency : options.concurrency);
  }
  checkStoreTls(options?.store as StoreOptions | undefined);
}
