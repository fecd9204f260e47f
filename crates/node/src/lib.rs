//! The napi-rs binding: converts options and results, bridges cancellation, maps errors.
//! Every function is a few lines over `objget_engine`; the logic and its tests live there.
//!
//! Errors cross into JavaScript as real `Error`s whose `code` is the stable objget code, with
//! `url` and `cause` properties (see [`error`]); the TypeScript layer turns them into
//! `StorageError`.
#![deny(clippy::all)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::LazyLock;

use napi::bindgen_prelude::{Buffer, BufferSlice, Either};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Env;
use napi_derive::napi;
use objget_engine::{
    ByteRange, CallOptions, ChecksumMode, Engine, Progress, RdmaBuffer, RdmaMode, RdmaOptions,
    StoreOptions, TransferOptions,
};

pub mod credentials;
pub mod defaults;
pub mod error;
pub mod ops;

use error::{JsResult, NativeError};

pub(crate) static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::new);

#[napi_derive::module_init]
fn init() {
    objget_engine::install_crypto_provider();
}

/// Per-store settings: credentials, endpoint, TLS, timeouts, retries.
#[napi(object)]
#[derive(Default)]
pub struct StoreConfig {
    /// object_store configuration keys, e.g. `{ aws_endpoint: 'http://127.0.0.1:9000' }`.
    pub config: Option<HashMap<String, String>>,
    /// Unsigned requests, for public buckets.
    pub skip_signature: Option<bool>,
    /// Allow plain-HTTP endpoints (default: when the endpoint itself is `http://`).
    pub allow_http: Option<bool>,
    /// PEM root certificates trusted by this store only; a server certificate equal to one of
    /// them is accepted as it is (a self-signed server certificate).
    pub ca_cert: Option<String>,
    /// Accept any TLS certificate (`{ insecureSkipTlsVerify: true }`). The only way to turn
    /// certificate checks off: `allow_invalid_certificates` keys are refused, and
    /// `AWS_ALLOW_INVALID_CERTIFICATES` and its kin are ignored.
    pub insecure_skip_tls_verify: Option<bool>,
    /// Connect timeout in milliseconds (default 10 000).
    pub connect_timeout_ms: Option<u32>,
    /// Longest silence while reading a response, in milliseconds (default 60 000).
    pub read_timeout_ms: Option<u32>,
    /// Retries per request on 5xx, 429 and connection errors (default 10).
    pub max_retries: Option<u32>,
    /// Stop retrying a request after this many milliseconds (default 180 000).
    pub retry_timeout_ms: Option<u32>,
    /// First retry backoff in milliseconds (default 500).
    pub initial_backoff_ms: Option<u32>,
    /// S3 over RDMA: `false` (default), `true` (when available and accepted) or `'require'`.
    pub rdma: Option<Either<bool, String>>,
    /// Bytes per RDMA request and registered buffer (5 MiB to 1 GiB; default 64 MiB).
    pub rdma_part_size: Option<f64>,
    /// Registered buffers in the pool, also the RDMA parts in flight (default 4).
    pub rdma_buffers: Option<u32>,
    /// The local address tokened requests are bound to (default: the single address in
    /// cuFile's rdma_dev_addr_list, when this host has it).
    pub rdma_bind_address: Option<String>,
    /// A credential function's id from `registerCredentials`: it takes precedence over every
    /// other credential.
    pub credentials: Option<u32>,
    /// S3: the AWS profile's region, used where neither `config` nor `AWS_*` give one.
    pub profile_region: Option<String>,
    /// S3: the AWS profile's `endpoint_url`, used for `s3://` URLs where neither `config` nor
    /// `AWS_*` give an endpoint.
    pub profile_endpoint: Option<String>,
}

/// A JavaScript number as a whole `u64`: a value that has no such form (negative, fractional,
/// not finite, above 2^53 - 1) is `InvalidArgument` with `rule` as its message. Type conversion
/// only: the limits of each option are the engine's (objget_engine::options).
pub(crate) fn whole(v: f64, rule: &str) -> objget_engine::Result<u64> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_991.0 {
        Ok(v as u64)
    } else {
        Err(objget_engine::Error::invalid_argument(format!(
            "{rule}, got {v}"
        )))
    }
}

/// The engine's store options from the JavaScript ones (absent: the defaults).
/// Every field is converted, so a value with no engine form (a negative `rdmaPartSize`) is
/// `InvalidArgument` on any call, whether or not the call uses it.
pub(crate) fn store_options(
    store: Option<StoreConfig>,
) -> objget_engine::Result<(StoreOptions, RdmaOptions)> {
    let rdma = rdma_options(store.as_ref())?;
    Ok((StoreOptions::from(store.unwrap_or_default()), rdma))
}

/// The store options of a call that moves no object bytes (its RDMA settings are checked and
/// unused).
pub(crate) fn store_only(store: Option<StoreConfig>) -> objget_engine::Result<StoreOptions> {
    store_options(store).map(|(opts, _)| opts)
}

impl From<StoreConfig> for StoreOptions {
    fn from(c: StoreConfig) -> Self {
        StoreOptions {
            config: c.config.unwrap_or_default().into_iter().collect(),
            skip_signature: c.skip_signature.unwrap_or(false),
            allow_http: c.allow_http,
            ca_cert_pem: c.ca_cert,
            insecure_skip_tls_verify: c.insecure_skip_tls_verify.unwrap_or(false),
            connect_timeout_ms: c.connect_timeout_ms.map(u64::from),
            read_timeout_ms: c.read_timeout_ms.map(u64::from),
            max_retries: c.max_retries,
            retry_timeout_ms: c.retry_timeout_ms.map(u64::from),
            initial_backoff_ms: c.initial_backoff_ms.map(u64::from),
            credentials: c.credentials,
            profile_region: c.profile_region,
            profile_endpoint: c.profile_endpoint,
        }
    }
}

/// The RDMA settings of a call: given with the store's (`{ rdma: true }`), but not part of it
/// (RDMA tuning does not change which store, client and connection pool a call uses).
pub(crate) fn rdma_options(c: Option<&StoreConfig>) -> objget_engine::Result<RdmaOptions> {
    let Some(c) = c else {
        return Ok(RdmaOptions::default());
    };
    Ok(RdmaOptions {
        // The TypeScript layer accepts only false, true and 'require'; any other string is
        // taken as 'require' so that RDMA is never silently dropped.
        mode: match c.rdma {
            None | Some(Either::A(false)) => RdmaMode::Off,
            Some(Either::A(true)) => RdmaMode::Prefer,
            Some(Either::B(_)) => RdmaMode::Require,
        },
        part_size: c
            .rdma_part_size
            .map(|v| whole(v, "rdmaPartSize must be a non-negative integer"))
            .transpose()?,
        buffers: c.rdma_buffers,
        bind_address: c
            .rdma_bind_address
            .as_deref()
            .map(|a| {
                a.parse().map_err(|_| {
                    objget_engine::Error::invalid_argument(format!(
                        "rdmaBindAddress must be an IP address, got {a:?}"
                    ))
                })
            })
            .transpose()?,
    })
}

/// Part size and parts in flight per object.
#[napi(object)]
#[derive(Default)]
pub struct TransferConfig {
    /// Bytes per ranged part (64 KiB to 1 GiB; default 8 MiB).
    pub part_size: Option<f64>,
    /// Parts of one object in flight (1 to 64; default 8).
    pub concurrency: Option<u32>,
    /// fdatasync before the rename (default true).
    pub durable: Option<bool>,
    /// 'auto' (default), 'required' or 'off'.
    pub checksum: Option<String>,
    /// Continue an interrupted download from its journal (default false).
    pub resume: Option<bool>,
    /// Resolve every destination beneath this directory without following links (a link below
    /// it is `UnsafeKey`): `downloadPrefix`'s destination directory.
    pub root: Option<String>,
}

/// A progress report, throttled to about ten a second per transfer, plus a final one.
#[napi(object)]
pub struct NativeProgress {
    /// The item's index in `downloadMany`.
    pub index: Option<u32>,
    /// Bytes received so far.
    pub bytes: f64,
    /// The object's size, once known.
    pub total: Option<f64>,
    /// Parts finished.
    pub parts_done: u32,
    /// Parts planned.
    pub parts_total: u32,
}

/// The progress callback: weak (never keeps the process alive) and called without blocking.
pub type ProgressCallback =
    ThreadsafeFunction<NativeProgress, (), NativeProgress, napi::Status, false, true>;

/// The engine's progress callback from the JavaScript one.
pub(crate) fn progress_fn(
    on_progress: Option<ProgressCallback>,
) -> Option<objget_engine::ProgressFn> {
    on_progress.map(|f| {
        let f = std::sync::Arc::new(f);
        std::sync::Arc::new(move |p: Progress| {
            f.call(
                NativeProgress {
                    index: p.index,
                    bytes: p.bytes as f64,
                    total: p.total.map(|t| t as f64),
                    parts_done: p.parts_done,
                    parts_total: p.parts_total,
                },
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        }) as objget_engine::ProgressFn
    })
}

fn call_options(
    store: Option<StoreConfig>,
    transfer: Option<TransferConfig>,
    on_progress: Option<ProgressCallback>,
) -> objget_engine::Result<CallOptions> {
    let t = transfer.unwrap_or_default();
    let defaults = TransferOptions::default();
    let checksum = match t.checksum.as_deref() {
        None | Some("auto") => ChecksumMode::Auto,
        Some("required") => ChecksumMode::Required,
        Some("off") => ChecksumMode::Off,
        Some(other) => {
            return Err(objget_engine::Error::invalid_argument(format!(
                "checksum is 'auto', 'required' or 'off', got {other:?}"
            )))
        }
    };
    let (store, rdma) = store_options(store)?;
    Ok(CallOptions {
        rdma,
        store,
        transfer: TransferOptions {
            part_size: match t.part_size {
                Some(v) => whole(v, "partSize must be a non-negative integer")?,
                None => defaults.part_size,
            },
            concurrency: t
                .concurrency
                .map(|c| c as usize)
                .unwrap_or(defaults.concurrency),
            durable: t.durable.unwrap_or(defaults.durable),
            checksum,
            resume: t.resume.unwrap_or(defaults.resume),
        },
        progress: progress_fn(on_progress),
        root: t.root.map(PathBuf::from),
    })
}

/// A byte range: `{ offset, length }`, `{ offset }` (to the end) or `{ suffix }`.
#[napi(object)]
pub struct NativeRange {
    /// First byte.
    pub offset: Option<f64>,
    /// Number of bytes.
    pub length: Option<f64>,
    /// The last `suffix` bytes.
    pub suffix: Option<f64>,
}

/// What a store knows about an object.
#[napi(object)]
pub struct NativeObjectInfo {
    /// Size in bytes.
    pub size: f64,
    /// Entity tag.
    pub etag: Option<String>,
    /// Last modification, milliseconds since the epoch.
    pub last_modified_ms: Option<f64>,
    /// Object version, where the store has versions.
    pub version: Option<String>,
}

/// The outcome of one download.
#[napi(object)]
pub struct NativeTransferResult {
    /// Bytes written.
    pub bytes: f64,
    /// Entity tag of what was read.
    pub etag: Option<String>,
    /// Wall time in milliseconds.
    pub elapsed_ms: f64,
    /// Parts this call fetched (on a resume, only the missing ones).
    pub parts: u32,
    /// The checksum verified: its algorithm and base64 value.
    pub checksum: Option<NativeChecksum>,
    /// Bytes kept from an interrupted earlier attempt.
    pub resumed_bytes: f64,
    /// 'rdma' or 'http': which data path moved the bytes.
    pub path: String,
}

/// A verified checksum.
#[napi(object)]
pub struct NativeChecksum {
    /// 'crc64nvme', 'crc32c', 'crc32', 'sha256' or 'md5'.
    pub algorithm: String,
    /// The value, base64 (as S3 and GCS send it).
    pub value: String,
}

/// One item of `downloadMany`.
#[napi(object)]
pub struct NativeItem {
    /// Source URL.
    pub url: String,
    /// Destination path.
    pub dest: String,
}

/// One outcome of `downloadMany`: a result, or an error.
#[napi(object, object_from_js = false)]
pub struct NativeOutcome {
    /// Set on success.
    pub result: Option<NativeTransferResult>,
    /// Set on failure: an `Error` whose `code` is the objget code, with `url` and `cause`.
    #[napi(ts_type = "Error")]
    pub error: Option<NativeError>,
}

/// Versions of the native pieces.
#[napi(object)]
pub struct NativeInfo {
    /// objget's engine version.
    pub version: String,
    /// The object_store version it was built with.
    pub object_store_version: String,
    /// The TLS stack.
    pub tls: String,
}

/// A cancellation handle. The TypeScript layer creates one per call that has an AbortSignal,
/// passes its `id`, and calls `cancel()` when the signal fires.
///
/// ```js
/// const h = new CancelHandle(); signal.addEventListener('abort', () => h.cancel());
/// await download(url, dest, undefined, undefined, undefined, h.id);
/// ```
#[napi]
pub struct CancelHandle {
    handle: objget_engine::cancel::CancelHandle,
}

#[napi]
impl CancelHandle {
    /// A fresh, not yet cancelled handle.
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            handle: objget_engine::cancel::CancelHandle::new(),
        }
    }

    /// The id to pass to transfer functions.
    #[napi(getter)]
    pub fn id(&self) -> u32 {
        self.handle.id()
    }

    /// Stop every transfer started with this handle: requests are dropped, temporaries removed,
    /// and the calls reject with `Aborted`.
    #[napi]
    pub fn cancel(&self) {
        self.handle.cancel();
    }

    /// Forget the handle (after the call it guarded has settled).
    #[napi]
    pub fn release(&self) {
        self.handle.release();
    }
}

pub(crate) use objget_engine::cancel::token;

fn range(r: Option<NativeRange>) -> objget_engine::Result<Option<ByteRange>> {
    let Some(r) = r else { return Ok(None) };
    let int = |v: f64| whole(v, "range values must be non-negative integers");
    Ok(Some(match (r.offset, r.length, r.suffix) {
        (None, None, Some(s)) => ByteRange::Suffix(int(s)?),
        (Some(o), Some(l), None) => ByteRange::Bounded {
            offset: int(o)?,
            length: int(l)?,
        },
        (Some(o), None, None) => ByteRange::From(int(o)?),
        _ => {
            return Err(objget_engine::Error::invalid_argument(
                "range is { offset, length }, { offset } or { suffix }",
            ))
        }
    }))
}

fn result(r: objget_engine::TransferResult) -> NativeTransferResult {
    NativeTransferResult {
        bytes: r.bytes as f64,
        etag: r.etag,
        elapsed_ms: r.elapsed_ms,
        parts: r.parts,
        checksum: r.checksum.map(|c| NativeChecksum {
            algorithm: c.algorithm.as_str().to_string(),
            value: c.base64(),
        }),
        resumed_bytes: r.resumed_bytes as f64,
        path: r.path.as_str().to_string(),
    }
}

/// Whether S3 over RDMA can be used in this process, and if not, why.
#[napi(object)]
pub struct NativeRdmaStatus {
    /// The shim is loaded and the cuObject client connected.
    pub available: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// 'sdk' (NVIDIA's library) or 'simulator' (tests).
    pub backend: Option<String>,
    /// Where the shim was loaded from.
    pub shim: Option<String>,
    /// Live registrations.
    pub registrations: f64,
    /// Tokens minted and not yet released.
    pub tokens: f64,
    /// Where NVIDIA's cuFile writes its log.
    pub log: Option<String>,
    /// The cuobjclient.h the shim was built against.
    pub header: Option<String>,
    /// sizeof(cuObjClient) by that header.
    pub client_size: Option<f64>,
}

/// Directories to look for libobjget_rdma.so in (OBJGET_RDMA_SHIM overrides them). Set by the
/// TypeScript layer when it loads the addon; the shim itself is loaded on first use.
#[napi]
pub fn rdma_search_path(dirs: Vec<String>) {
    objget_engine::rdma::set_search_path(dirs.into_iter().map(PathBuf::from).collect());
}

/// Load the RDMA shim if that was not tried yet, and say whether RDMA is available.
///
/// ```js
/// rdmaStatus() // { available: false, reason: 'shim not built: …', … }
/// ```
#[napi]
pub fn rdma_status() -> NativeRdmaStatus {
    let s = objget_engine::rdma_status();
    NativeRdmaStatus {
        available: s.available,
        reason: s.reason,
        backend: s.backend,
        shim: s.shim,
        registrations: s.registrations as f64,
        tokens: s.tokens as f64,
        log: s.log,
        header: s.header,
        client_size: s.client_size.map(|n| n as f64),
    }
}

/// Page-aligned host memory registered with cuObject, as a Buffer: RDMA reads land in it with
/// no copy. Deregistered and freed when the Buffer is garbage-collected.
///
/// ```js
/// const buf = allocRdmaBuffer(64 << 20)
/// ```
#[napi(ts_return_type = "Buffer")]
pub fn alloc_rdma_buffer(env: &Env, size: f64) -> napi::Result<JsResult<BufferSlice<'_>>> {
    // Checked here, not only by the engine: the engine checks the size after loading the shim,
    // so without RDMA a size of 0 would be RdmaUnavailable rather than InvalidArgument.
    if !(size >= 1.0 && size.fract() == 0.0) {
        return Ok(JsResult(Err(objget_engine::Error::invalid_argument(
            format!("allocRdmaBuffer takes a whole number of bytes ≥ 1, got {size}"),
        ))));
    }
    let buf = match RdmaBuffer::alloc(size as usize) {
        Ok(buf) => buf,
        Err(e) => return Ok(JsResult(Err(e))),
    };
    let (ptr, len) = (buf.as_mut_ptr(), buf.len());
    // SAFETY: the memory lives as long as `buf`, which the finalizer drops (deregistering it).
    unsafe { BufferSlice::from_external(env, ptr, len, buf, |_, buf| drop(buf)) }
        .map(|b| JsResult(Ok(b)))
}

/// The bytes of a `getDetailed` and what the transfer did.
#[napi(object)]
pub struct NativeGetResult {
    /// The bytes: a view of `into`, or a new Buffer.
    pub data: Buffer,
    /// What the transfer did.
    pub result: NativeTransferResult,
}

/// Read a whole object with its TransferResult. With `into` (a buffer from `allocRdmaBuffer`),
/// an S3 object lands in it: by RDMA with no copy on the client, or over HTTP into the same
/// memory when RDMA is off, unavailable under `rdma: true`, or declined.
///
/// ```js
/// const { data, result } = await getDetailed('s3://b/k', buf, { rdma: true })
/// ```
#[napi(ts_return_type = "Promise<NativeGetResult>")]
pub async fn get_detailed(
    url: String,
    into: Option<Buffer>,
    store: Option<StoreConfig>,
    transfer: Option<TransferConfig>,
    on_progress: Option<
        ThreadsafeFunction<NativeProgress, (), NativeProgress, napi::Status, false, true>,
    >,
    cancel_id: Option<u32>,
) -> JsResult<NativeGetResult> {
    JsResult(
        async {
            let opts = call_options(store, transfer, on_progress)?;
            match into {
                Some(mut buf) => {
                    let r = ENGINE
                        .get_into(&url, &mut buf, &opts, &token(cancel_id))
                        .await?;
                    Ok(NativeGetResult {
                        data: buf,
                        result: result(r),
                    })
                }
                None => {
                    let (bytes, r) = ENGINE.get_detailed(&url, &opts, &token(cancel_id)).await?;
                    Ok(NativeGetResult {
                        data: Buffer::from(bytes),
                        result: result(r),
                    })
                }
            }
        }
        .await,
    )
}

/// Versions of the native engine.
///
/// ```js
/// nativeInfo() // { version: '0.1.0', objectStoreVersion: '0.14.2', tls: 'rustls+ring' }
/// ```
#[napi]
pub fn native_info() -> NativeInfo {
    NativeInfo {
        version: objget_engine::VERSION.to_string(),
        object_store_version: objget_engine::OBJECT_STORE_VERSION.to_string(),
        tls: "rustls+ring".to_string(),
    }
}

/// Size, ETag, modification time and version of an object.
///
/// ```js
/// const info = await head('s3://bucket/key')
/// ```
#[napi(ts_return_type = "Promise<NativeObjectInfo>")]
pub async fn head(url: String, store: Option<StoreConfig>) -> JsResult<NativeObjectInfo> {
    let info = async { ENGINE.head(&url, &store_only(store)?).await }.await;
    info.map(|info| NativeObjectInfo {
        size: info.size as f64,
        etag: info.etag,
        last_modified_ms: info.last_modified.map(|t| t.timestamp_millis() as f64),
        version: info.version,
    })
    .into()
}

/// Read an object, or a range of it, into one Buffer (handed to JavaScript without a copy).
///
/// ```js
/// const buf = await get('gs://bucket/key', { offset: 0, length: 1024 })
/// ```
#[napi(ts_return_type = "Promise<Buffer>")]
pub async fn get(
    url: String,
    range_: Option<NativeRange>,
    store: Option<StoreConfig>,
    transfer: Option<TransferConfig>,
    on_progress: Option<
        ThreadsafeFunction<NativeProgress, (), NativeProgress, napi::Status, false, true>,
    >,
    cancel_id: Option<u32>,
) -> JsResult<Buffer> {
    JsResult(
        async {
            let r = range(range_)?;
            let opts = call_options(store, transfer, on_progress)?;
            let bytes = ENGINE.get(&url, r, &opts, &token(cancel_id)).await?;
            Ok(Buffer::from(bytes))
        }
        .await,
    )
}

/// Download an object to a file: temporary file, fsync, rename.
///
/// ```js
/// const r = await download('az://container/key', '/data/key')
/// ```
#[napi(ts_return_type = "Promise<NativeTransferResult>")]
pub async fn download(
    url: String,
    dest: String,
    store: Option<StoreConfig>,
    transfer: Option<TransferConfig>,
    on_progress: Option<
        ThreadsafeFunction<NativeProgress, (), NativeProgress, napi::Status, false, true>,
    >,
    cancel_id: Option<u32>,
) -> JsResult<NativeTransferResult> {
    JsResult(
        async {
            let opts = call_options(store, transfer, on_progress)?;
            ENGINE
                .download(&url, &PathBuf::from(dest), &opts, &token(cancel_id))
                .await
                .map(result)
        }
        .await,
    )
}

/// Download many objects with a bounded number in flight; outcomes in input order.
///
/// ```js
/// const outcomes = await downloadMany([{ url, dest }], 16)
/// ```
#[napi(ts_return_type = "Promise<Array<NativeOutcome>>")]
pub async fn download_many(
    items: Vec<NativeItem>,
    concurrency: u32,
    store: Option<StoreConfig>,
    transfer: Option<TransferConfig>,
    on_progress: Option<
        ThreadsafeFunction<NativeProgress, (), NativeProgress, napi::Status, false, true>,
    >,
    cancel_id: Option<u32>,
) -> JsResult<Vec<NativeOutcome>> {
    let opts = match call_options(store, transfer, on_progress) {
        Ok(opts) => opts,
        Err(e) => return JsResult(Err(e)),
    };
    let items: Vec<(String, PathBuf)> = items
        .into_iter()
        .map(|i| (i.url, PathBuf::from(i.dest)))
        .collect();
    JsResult(Ok(ENGINE
        .download_many(items, concurrency as usize, &opts, &token(cancel_id))
        .await
        .into_iter()
        .map(|r| match r {
            Ok(r) => NativeOutcome {
                result: Some(result(r)),
                error: None,
            },
            Err(e) => NativeOutcome {
                result: None,
                error: Some(NativeError(e)),
            },
        })
        .collect()))
}
