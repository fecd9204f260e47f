//! Object operations for JavaScript: upload, exists, remove, copy, list.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use napi::bindgen_prelude::{Buffer, Either};
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use objget_engine::stream_upload::StreamUpload;
use objget_engine::{Listed, UploadOptions, UploadParts, UploadSource};
use tokio::sync::Mutex;

use crate::error::JsResult;
use crate::{
    progress_fn, store_only, store_options, token, whole, NativeChecksum, NativeProgress,
    StoreConfig, ENGINE,
};

/// Upload settings.
#[napi(object)]
#[derive(Default)]
pub struct UploadConfig {
    /// Fail with AlreadyExists rather than overwrite (atomic where the store allows).
    pub if_not_exists: Option<bool>,
    /// Bytes per multipart part (default 16 MiB, raised to the providers' minimum and to fit
    /// 10,000 parts).
    pub part_size: Option<f64>,
    /// Parts in flight (default 8).
    pub concurrency: Option<u32>,
    /// Content-Type to store.
    pub content_type: Option<String>,
    /// User metadata to store.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// The outcome of an upload.
#[napi(object)]
pub struct NativeUploadResult {
    /// The stored object's ETag.
    pub etag: Option<String>,
    /// Its version, where the store versions objects.
    pub version: Option<String>,
    /// Bytes sent.
    pub bytes: f64,
    /// Parts (1 for a single PUT).
    pub parts: u32,
    /// CRC64NVME of the bytes sent (S3 verified it).
    pub checksum: NativeChecksum,
    /// 'rdma' or 'http': which data path moved the bytes.
    pub path: String,
}

/// One listed object.
#[napi(object)]
pub struct NativeListed {
    /// Key relative to the store's root.
    pub key: String,
    /// Key below the listed prefix.
    pub relative: String,
    /// Full URL.
    pub url: String,
    /// Size in bytes.
    pub size: f64,
    /// Entity tag.
    pub etag: Option<String>,
    /// Last modification, ms since the epoch.
    pub last_modified_ms: Option<f64>,
    /// Version, where the store versions objects.
    pub version: Option<String>,
}

/// Upload a local file (a path) or a Buffer to `url`: one PUT up to one part, parallel
/// multipart above it, aborted on any failure.
///
/// ```js
/// const r = await upload('/data/model.bin', 's3://bucket/model.bin', { ifNotExists: true })
/// ```
#[napi(ts_return_type = "Promise<NativeUploadResult>")]
pub async fn upload(
    source: Either<String, Buffer>,
    url: String,
    config: Option<UploadConfig>,
    store: Option<StoreConfig>,
    on_progress: Option<
        ThreadsafeFunction<NativeProgress, (), NativeProgress, napi::Status, false, true>,
    >,
    cancel_id: Option<u32>,
) -> JsResult<NativeUploadResult> {
    let source = match source {
        Either::A(path) => UploadSource::File(PathBuf::from(path)),
        Either::B(buf) => UploadSource::Bytes(bytes::Bytes::from_owner(buf)),
    };
    JsResult(
        async {
            let opts = upload_options(config, store, on_progress)?;
            ENGINE
                .upload(source, &url, &opts, &token(cancel_id))
                .await
                .map(native_result)
        }
        .await,
    )
}

fn upload_options(
    config: Option<UploadConfig>,
    store: Option<StoreConfig>,
    on_progress: Option<crate::ProgressCallback>,
) -> objget_engine::Result<UploadOptions> {
    let c = config.unwrap_or_default();
    let (store, rdma) = store_options(store)?;
    Ok(UploadOptions {
        rdma,
        store,
        if_not_exists: c.if_not_exists.unwrap_or(false),
        parts: UploadParts {
            size: c
                .part_size
                .map(|v| whole(v, "partSize must be a non-negative integer"))
                .transpose()?,
            concurrency: c.concurrency.map(|v| v as usize),
        },
        content_type: c.content_type,
        metadata: c.metadata.unwrap_or_default(),
        progress: progress_fn(on_progress),
    })
}

fn native_result(r: objget_engine::UploadResult) -> NativeUploadResult {
    NativeUploadResult {
        etag: r.etag,
        version: r.version,
        bytes: r.bytes as f64,
        parts: r.parts,
        checksum: NativeChecksum {
            algorithm: r.checksum.algorithm.as_str().to_string(),
            value: r.checksum.base64(),
        },
        path: r.path.as_str().to_string(),
    }
}

/// Whether an object exists (false only when the store says NotFound).
#[napi(ts_return_type = "Promise<boolean>")]
pub async fn exists(url: String, store: Option<StoreConfig>) -> JsResult<bool> {
    async { ENGINE.exists(&url, &store_only(store)?).await }
        .await
        .into()
}

/// Remove objects (batched per store; a missing object is not an error).
#[napi(ts_return_type = "Promise<void>")]
pub async fn remove(urls: Vec<String>, store: Option<StoreConfig>) -> JsResult<()> {
    async { ENGINE.remove(&urls, &store_only(store)?).await }
        .await
        .into()
}

/// Copy an object within one store.
#[napi(ts_return_type = "Promise<void>")]
pub async fn copy(
    from: String,
    to: String,
    if_not_exists: Option<bool>,
    store: Option<StoreConfig>,
) -> JsResult<()> {
    let if_not_exists = if_not_exists.unwrap_or(false);
    async {
        ENGINE
            .copy(&from, &to, if_not_exists, &store_only(store)?)
            .await
    }
    .await
    .into()
}

/// A listing in progress: `next(n)` returns up to n more objects, an empty array at the end.
#[napi]
pub struct ListCursor {
    stream: Arc<Mutex<Option<BoxStream<'static, objget_engine::Result<Listed>>>>>,
}

#[napi]
impl ListCursor {
    /// Up to `max` more objects; an empty array when the listing is done.
    #[napi(ts_return_type = "Promise<Array<NativeListed>>")]
    pub async fn next(&self, max: u32) -> JsResult<Vec<NativeListed>> {
        let mut guard = self.stream.lock().await;
        let Some(stream) = guard.as_mut() else {
            return JsResult(Ok(Vec::new()));
        };
        let mut out = Vec::new();
        while out.len() < max.max(1) as usize {
            match stream.next().await {
                Some(Ok(l)) => out.push(NativeListed {
                    key: l.key,
                    relative: l.relative,
                    url: l.url,
                    size: l.info.size as f64,
                    etag: l.info.etag,
                    last_modified_ms: l.info.last_modified.map(|t| t.timestamp_millis() as f64),
                    version: l.info.version,
                }),
                Some(Err(e)) => {
                    *guard = None;
                    return JsResult(Err(e));
                }
                None => {
                    *guard = None;
                    break;
                }
            }
        }
        JsResult(Ok(out))
    }
}

/// Start listing every object under a prefix URL.
#[napi(ts_return_type = "Promise<ListCursor>")]
pub async fn list(prefix_url: String, store: Option<StoreConfig>) -> JsResult<ListCursor> {
    let listed = async { ENGINE.list(&prefix_url, &store_only(store)?).await }.await;
    listed
        .map(|stream| ListCursor {
            stream: Arc::new(Mutex::new(Some(stream))),
        })
        .into()
}

/// A streaming upload: `write(chunk)` as the stream produces (resolving when the engine has
/// room: backpressure), then `finish()`; `abort()` gives up and removes any parts.
#[napi]
pub struct UploadSink {
    upload: StreamUpload,
}

/// Start a streaming upload to `url` (size unknown: parts are cut as chunks arrive).
#[napi(ts_return_type = "Promise<UploadSink>")]
pub async fn upload_stream(
    url: String,
    config: Option<UploadConfig>,
    store: Option<StoreConfig>,
    on_progress: Option<
        ThreadsafeFunction<NativeProgress, (), NativeProgress, napi::Status, false, true>,
    >,
    cancel_id: Option<u32>,
) -> JsResult<UploadSink> {
    upload_options(config, store, on_progress)
        .map(|opts| UploadSink {
            upload: StreamUpload::start(&ENGINE, url, opts, &token(cancel_id)),
        })
        .into()
}

#[napi]
impl UploadSink {
    /// Hand one chunk to the engine.
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn write(&self, chunk: Buffer) -> JsResult<()> {
        self.upload
            .write(bytes::Bytes::from_owner(chunk))
            .await
            .into()
    }

    /// The stream ended: send what is left and complete the upload.
    #[napi(ts_return_type = "Promise<NativeUploadResult>")]
    pub async fn finish(&self) -> JsResult<NativeUploadResult> {
        self.upload.finish().await.map(native_result).into()
    }

    /// Give up: the engine aborts any multipart upload and stores nothing.
    #[napi]
    pub async fn abort(&self) -> napi::Result<()> {
        self.upload.abort().await;
        Ok(())
    }
}
