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
  /**
   * PEM root certificate(s) trusted for this store only. A server certificate equal to one of
   * them is accepted as it is (a self-signed server certificate, CA or not), if it names the host.
   */
  caCert?: string | Buffer;
  /**
   * Accept any TLS certificate: verification off, for this store only. The only way to turn it
   * off: `allow_invalid_certificates` configuration keys are refused (`InvalidArgument`) and
   * `AWS_ALLOW_INVALID_CERTIFICATES` and its kin are ignored (with one process warning).
   * Results and `engineInfo().insecureTls` say when it was used. Default false.
   */
  insecureSkipTlsVerify?: boolean;
  /** Connect timeout, default 10 000 ms. */
  connectTimeoutMs?: number;
  /** Longest silence while reading a response, default 60 000 ms. No whole-request timeout. */
  readTimeoutMs?: number;
  /**
   * Retries per request on 5xx, 429, connection errors and bodies cut off, default 10 (with the
   * default backoff, a 5 s storm of 503 SlowDown is outlasted).
   */
  maxRetries?: number;
  /** Stop retrying a request after this long, default 180 000 ms. */
  retryTimeoutMs?: number;
  /**
   * First retry backoff, default 500 ms; each next one is drawn between it and twice the last
   * (decorrelated jitter), up to 15 s.
   */
  initialBackoffMs?: number;
  /**
   * S3 only: move object bytes by RDMA (NVIDIA cuObject) into and out of registered memory,
   * while HTTP carries only a signed token. `true`: when the shim is loaded, the client
   * connected and the server accepts; HTTP bodies otherwise (`result.path` says which ran).
   * `'require'`: fail with `RdmaUnavailable` or `RdmaDeclined` instead. Default `false`.
   */
  rdma?: boolean | 'require';
  /** Bytes per RDMA request and registered buffer: 5 MiB to 1 GiB, default 64 MiB. */
  rdmaPartSize?: number;
  /** Registered buffers in the pool (also RDMA parts in flight), 1 to 64, default 4. */
  rdmaBuffers?: number;
  /**
   * The local address the HTTP connection of a request that carries an RDMA token is bound to
   * (the RDMA NIC's, which the token names). Default: the address in cuFile's
   * `rdma_dev_addr_list` when it lists exactly one and it is an address of this host. An
   * address this host does not have is `InvalidArgument`.
   */
  rdmaBindAddress?: string;
  /**
   * Where this store's credentials come from, ahead of every other source (the `config` keys,
   * the environment, profiles, metadata services), for any provider. Called when a store first
   * needs a credential and again before each request once the one it returned is within 5
   * minutes of its `expiration`; one without `expiration` is kept. S3 stores take
   * `{ accessKeyId, secretAccessKey, sessionToken?, expiration? }`, GCS and Azure stores
   * `{ token, expiration? }` (an OAuth bearer token). A throw or a wrong shape fails the request
   * with `Unauthenticated`; no message shows a secret, nor the text of the function's own error.
   * Both engines honour it (the JS engine on S3, GCS and Azure).
   *
   * @example
   * const store = { credentials: async () => ({ accessKeyId, secretAccessKey, expiration }) };
   */
  credentials?: CredentialsFunction;
}

/** The store a credential function is asked for. */
export type CredentialsProvider = 's3' | 'gcs' | 'azure';

/** S3 keys, as `@aws-sdk/credential-providers` returns them. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** When they stop working; they are fetched again 5 minutes before. */
  expiration?: Date;
}

/** An OAuth bearer token, for GCS and Azure. */
export interface BearerCredentials {
  token: string;
  /** When it stops working; it is fetched again 5 minutes before. */
  expiration?: Date;
}

/** `StoreOptions.credentials`: the caller's own source of credentials. */
export type CredentialsFunction = (request: {
  provider: CredentialsProvider;
}) => Promise<AwsCredentials | BearerCredentials> | AwsCredentials | BearerCredentials;

/** Which data path moved an object's bytes. */
export type DataPath = 'rdma' | 'http';

/** A byte range: `{ offset, length }`, `{ offset }` (to the end) or `{ suffix }` (last bytes). */
export type ByteRange = { offset: number; length?: number } | { suffix: number };

/** A progress report: about ten a second per transfer while bytes flow, and one at the end. */
export interface Progress {
  /** The item's index, in `downloadMany`. */
  index?: number;
  /** Bytes received so far. */
  bytes: number;
  /** The object's size, once known. */
  total?: number;
  partsDone: number;
  partsTotal: number;
  /** `downloadPrefix` and `uploadDir`: bytes moved across the whole set so far. */
  setBytes?: number;
  /** `downloadPrefix` and `uploadDir`: bytes of the whole set (from the listing or the files). */
  setTotal?: number;
  /** `downloadPrefix` and `uploadDir`: objects finished so far. */
  objectsDone?: number;
  /** `downloadPrefix` and `uploadDir`: objects in the set. */
  objectsTotal?: number;
}

export interface CallOptions {
  /** Store settings for this call (stores are cached per URL authority and options). */
  store?: StoreOptions;
  /** Cancels the transfer: requests stop, temporaries are removed, the call rejects `Aborted`. */
  signal?: AbortSignal;
  /** Progress reports; must return quickly (the transfer never waits for it). */
  onProgress?: (p: Progress) => void;
}

/** How one object is split: the native engine fetches large objects as parallel ranged parts. */
export interface PartOptions {
  /** Bytes per part, 64 KiB to 1 GiB; default 8 MiB. */
  partSize?: number;
  /**
   * Downloads only: every byte on disk before the rename (fdatasync; `downloadMany` syncs its
   * finished files together, one syncfs per batch), and the directory synced after it, so a
   * finished download survives a power loss. Default true. Off, the rename is still atomic for
   * every process, and many-file transfers are faster.
   */
  durable?: boolean;
  /**
   * Integrity. `'auto'` (default) verifies the best whole-object checksum the store advertises
   * (S3 x-amz-checksum-* CRC64NVME/CRC32C/CRC32/SHA-256 or a single-part MD5 ETag, GCS
   * x-goog-hash, Azure Content-MD5, RFC 9530 Repr-Digest) while the bytes stream;
   * `'required'` also fails with `ChecksumUnavailable` when there is none; `'off'` verifies
   * nothing. A mismatch fails with `ChecksumMismatch` and leaves no file.
   */
  checksum?: ChecksumMode;
}

export type ChecksumMode = 'auto' | 'required' | 'off';
export type ChecksumAlgorithm = 'crc64nvme' | 'crc32c' | 'crc32' | 'sha256' | 'md5';

/** A checksum objget verified: its algorithm and value (base64, as S3 and GCS send it). */
export interface VerifiedChecksum {
  algorithm: ChecksumAlgorithm;
  value: string;
}

export interface GetOptions extends CallOptions, PartOptions {
  range?: ByteRange;
  /**
   * A buffer from `allocRdmaBuffer`: a whole S3 object lands in it (by RDMA with no copy on the
   * client, or over HTTP when RDMA is not used) and `get` returns the filled view of it.
   */
  into?: Buffer;
  /** Parts of the object in flight at once, 1 to 64; default 8. */
  concurrency?: number;
}

export interface DownloadOptions extends CallOptions, PartOptions {
  /** Parts of the object in flight at once, 1 to 64; default 8. */
  concurrency?: number;
  /**
   * Keep an interrupted download (killed process, network failure, abort) in
   * `.name.objget.part` with a journal `.name.objget.json` beside `dest`, and continue from
   * them: the next call re-checks the ETag and fetches only the missing parts (an object that
   * changed is fetched from scratch). Native engine only. Default false.
   */
  resume?: boolean;
}

export interface DownloadManyOptions extends CallOptions, PartOptions {
  /** Objects in flight at once; default 16. */
  concurrency?: number;
  /** Parts of each object in flight at once, 1 to 64; default 8. */
  partConcurrency?: number;
  /** As in `download`, per item. */
  resume?: boolean;
}

/** The per-call transfer settings an engine receives. */
export interface TransferSettings {
  store?: StoreOptions;
  partSize?: number;
  /** Parts per object in flight. */
  concurrency?: number;
  durable?: boolean;
  checksum?: ChecksumMode;
  resume?: boolean;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  /**
   * Resolve every destination beneath this directory without following links (a link below it
   * is `UnsafeKey`): `downloadPrefix`'s destination directory. Internal.
   */
  root?: string;
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
  /** Parts this call fetched (1 for a single request; on a resume, only the missing ones). */
  parts: number;
  /** The checksum verified, when one was. */
  checksum?: VerifiedChecksum;
  /** Bytes kept from an interrupted earlier attempt (`resume`). */
  resumedBytes: number;
  /** The engine that moved the bytes. */
  engine: EngineName;
  /** The data path: `'rdma'` when every part moved by RDMA, `'http'` otherwise. */
  path: DataPath;
  /** Present (`true`) when the store ran with `insecureSkipTlsVerify`: no certificate checks. */
  insecureSkipTlsVerify?: true;
}

/** What an engine returns for one transfer; the caller adds url, dest and engine. */
export type EngineTransfer = Omit<TransferResult, 'engine' | 'url' | 'dest' | 'path'> & {
  path?: DataPath;
};

export interface UploadOptions {
  store?: StoreOptions;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /**
   * Fail with `AlreadyExists` instead of overwriting. Atomic: a single PUT is a conditional put
   * (S3 If-None-Match, GCS generation 0, Azure If-None-Match, a hard link for files); a
   * multipart upload is staged under a hidden key and published by a conditional server-side
   * copy.
   */
  ifNotExists?: boolean;
  /** Multipart part size (default 16 MiB; raised to 5 MiB minimum and to fit 10,000 parts). */
  partSize?: number;
  /** Parts in flight, default 8. */
  concurrency?: number;
  contentType?: string;
  metadata?: Record<string, string>;
}

export interface UploadResult {
  url: string;
  etag?: string;
  version?: string;
  bytes: number;
  /** Parts (1 for a single PUT). */
  parts: number;
  /**
   * CRC64NVME of the bytes sent, computed as they were read. S3 (and MinIO, R2) verified it:
   * every request carried it. Absent for registered schemes.
   */
  checksum?: VerifiedChecksum;
  engine: EngineName;
  /** The data path: `'rdma'` when every part moved by RDMA, `'http'` otherwise. */
  path: DataPath;
}

/** One object of a listing. */
export interface ListedObject extends ObjectInfo {
  /** Key relative to the store's root. */
  key: string;
  /** Key below the listed prefix (what `downloadPrefix` makes a file path of). */
  relative: string;
  /** The object's URL, usable with every other call. */
  url: string;
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
  js: {
    schemes: string[];
    /** The calls the JS engine performs; the rest answer `NotSupported` there. */
    capabilities: string[];
  };
  /** S3 over RDMA: whether it can be used here, and if not, exactly why. */
  rdma: RdmaInfo;
  /** Whether any call in this process ran with `insecureSkipTlsVerify` (no certificate checks). */
  insecureTls: boolean;
}

export interface RdmaInfo {
  /** The shim loaded, the cuObject client was created, and registering one page worked. */
  available: boolean;
  /**
   * Why not: shim not built, library not found, client not connected, registration failed,
   * cuObject client initialisation timed out (native/README.md lists each).
   */
  reason?: string;
  /** `'sdk'` (NVIDIA's libcuobjclient) or `'simulator'` (the project's test double). */
  backend?: string;
  /** Where the shim was loaded from. */
  shim?: string;
  /** The `cuobjclient.h` the shim was built against. */
  header?: string;
  /** `sizeof(cuObjClient)` by that header. */
  clientSize?: number;
  /** Where NVIDIA's cuFile writes its log (never the working directory). */
  log?: string;
  /** Live registrations of host memory. */
  registrations: number;
  /** Tokens minted and not yet released (0 between transfers). */
  tokens: number;
}

/**
 * What an engine provides: `src/engines/native.ts`, `src/engines/js/engine.ts` and the registered
 * schemes' `src/engines/scheme.ts`; `src/engines/index.ts` chooses one per call.
 */
export interface Engine {
  readonly name: EngineName;
  head(url: string, store: StoreOptions | undefined): Promise<ObjectInfo>;
  get(url: string, range: ByteRange | undefined, t: TransferSettings): Promise<Buffer>;
  download(url: string, dest: string, t: TransferSettings): Promise<EngineTransfer>;
  downloadMany(
    items: DownloadItem[],
    concurrency: number,
    t: TransferSettings,
  ): Promise<ItemOutcome<EngineTransfer>[]>;
  upload(
    source: string | Buffer | AsyncIterable<Uint8Array>,
    url: string,
    o: UploadOptions,
  ): Promise<Omit<UploadResult, 'engine' | 'url' | 'path'> & { path?: DataPath }>;
  /** A whole object into memory (or into `into`), with the transfer's result. */
  getDetailed(
    url: string,
    into: Buffer | undefined,
    t: TransferSettings,
  ): Promise<{ data: Buffer; result: EngineTransfer }>;
  exists(url: string, store: StoreOptions | undefined): Promise<boolean>;
  remove(urls: string[], store: StoreOptions | undefined): Promise<void>;
  copy(
    from: string,
    to: string,
    ifNotExists: boolean,
    store: StoreOptions | undefined,
  ): Promise<void>;
  list(prefixUrl: string, store: StoreOptions | undefined): AsyncIterable<ListedObject>;
}
