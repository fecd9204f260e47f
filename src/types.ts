import type { ItemOutcome } from './errors.js';

/** Which engine ran a call. */
export type EngineName = 'native' | 'js';

/**
 * Per-store settings. Anything not set here comes from the provider's own environment variables
 * (`AWS_*`, `GOOGLE_*`, `AZURE_*`); what is set here overrides them.
 */
export interface StoreOptions {
  /**
   * object_store configuration keys, e.g. `aws_access_key_id`, `aws_secret_access_key`,
   * `aws_endpoint`, `aws_region`, `google_service_account_key`, `azure_storage_account_name`,
   * `azure_storage_account_key`, `azure_storage_endpoint`. Unknown keys → `InvalidArgument`.
   */
  config?: Record<string, string>;
  /** Send unsigned requests (public buckets). Never a silent fallback. */
  skipSignature?: boolean;
  /** Allow plain-HTTP endpoints. Default: allowed when the endpoint itself is `http://`. */
  allowHttp?: boolean;
  /** PEM root certificate(s) trusted for this store only. */
  caCert?: string | Buffer;
  /** Connect timeout, default 10 000 ms. */
  connectTimeoutMs?: number;
  /** Longest silence while reading a response, default 60 000 ms. No whole-request timeout. */
  readTimeoutMs?: number;
  /** Retries per request on 5xx, 429 and connection errors, default 5. */
  maxRetries?: number;
  /** Stop retrying a request after this long, default 180 000 ms. */
  retryTimeoutMs?: number;
  /** First retry backoff, default 100 ms (doubling, with jitter, up to 15 s). */
  initialBackoffMs?: number;
}

/** A byte range: `{ offset, length }`, `{ offset }` (to the end) or `{ suffix }` (last bytes). */
export type ByteRange = { offset: number; length?: number } | { suffix: number };

export interface CallOptions {
  /** Store settings for this call (stores are cached per URL authority and options). */
  store?: StoreOptions;
  /** Cancels the transfer: requests stop, temporaries are removed, the call rejects `Aborted`. */
  signal?: AbortSignal;
}

export interface GetOptions extends CallOptions {
  range?: ByteRange;
}

export type DownloadOptions = CallOptions;

export interface DownloadManyOptions extends CallOptions {
  /** Downloads in flight at once; default 16. */
  concurrency?: number;
}

export interface ObjectInfo {
  size: number;
  etag?: string;
  lastModified?: Date;
  version?: string;
}

export interface TransferResult {
  url: string;
  dest: string;
  bytes: number;
  etag?: string;
  elapsedMs: number;
  /** The engine that moved the bytes. */
  engine: EngineName;
}

export interface DownloadItem {
  url: string;
  dest: string;
}

export interface EngineInfo {
  /** The engine calls use now (after OBJGET_ENGINE). */
  engine: EngineName;
  native: {
    loaded: boolean;
    /** Why the addon did not load, when it did not. */
    reason?: string;
    version?: string;
    objectStoreVersion?: string;
    tls?: string;
  };
  js: { schemes: string[] };
}

/** What an engine implementation provides; `src/native.ts` and `src/js/engine.ts` implement it. */
export interface Engine {
  readonly name: EngineName;
  head(url: string, store: StoreOptions | undefined): Promise<ObjectInfo>;
  get(
    url: string,
    range: ByteRange | undefined,
    store: StoreOptions | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Buffer>;
  download(
    url: string,
    dest: string,
    store: StoreOptions | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Omit<TransferResult, 'engine' | 'url' | 'dest'>>;
  downloadMany(
    items: DownloadItem[],
    concurrency: number,
    store: StoreOptions | undefined,
    signal: AbortSignal | undefined,
  ): Promise<ItemOutcome<Omit<TransferResult, 'engine' | 'url' | 'dest'>>[]>;
}
