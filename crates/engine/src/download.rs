//! Reading objects: head, get (into memory), download (into a file), downloadMany.
//!
//! A download always lands in a uniquely named temporary file beside the destination, is
//! fsynced, and is renamed into place only when every byte has arrived: on any failure or
//! cancellation the destination is untouched and the temporary is removed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorCode, Result};
use crate::locate::Location;
use crate::store::{Backend, StoreOptions, Stores};

/// What is known about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// The entity tag, as the store sends it (quotes included for HTTP-based stores).
    pub etag: Option<String>,
    /// Last modification time.
    pub last_modified: Option<DateTime<Utc>>,
    /// The object version, where the store versions objects.
    pub version: Option<String>,
}

/// A byte range to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `length` bytes from `offset` (clipped at the end of the object, as HTTP does).
    Bounded {
        /// First byte.
        offset: u64,
        /// Number of bytes.
        length: u64,
    },
    /// Everything from `offset` to the end.
    From(u64),
    /// The last `n` bytes (the whole object if it is shorter).
    Suffix(u64),
}

/// The outcome of one download.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferResult {
    /// Bytes written.
    pub bytes: u64,
    /// The entity tag of what was read.
    pub etag: Option<String>,
    /// Wall time of the transfer.
    pub elapsed_ms: f64,
}

/// The engine: a store cache and the operations over it. One per process is the norm.
#[derive(Debug, Default)]
pub struct Engine {
    stores: Stores,
}

/// An open read: metadata plus the body.
struct Read {
    etag: Option<String>,
    len: u64,
    body: BoxStream<'static, Result<Bytes>>,
}

impl Engine {
    /// A new engine with an empty store cache.
    pub fn new() -> Self {
        Self {
            stores: Stores::new(),
        }
    }

    /// Size, ETag, modification time and version of an object.
    pub async fn head(&self, url: &str, opts: &StoreOptions) -> Result<ObjectInfo> {
        let loc = Location::parse(url)?;
        match self.stores.backend(&loc, opts).await? {
            Backend::Store(store) => {
                let meta = store
                    .head(&loc.path)
                    .await
                    .map_err(|e| Error::from_store(e, url))?;
                Ok(ObjectInfo {
                    size: meta.size,
                    etag: meta.e_tag,
                    last_modified: Some(meta.last_modified),
                    version: meta.version,
                })
            }
            Backend::Query(client, retry) => query_head(&client, &retry, url).await,
            Backend::File => file_info(file_path(&loc)),
        }
    }

    /// Read an object (or a range of it) into memory.
    pub async fn get(
        &self,
        url: &str,
        range: Option<ByteRange>,
        opts: &StoreOptions,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>> {
        if let Some(ByteRange::Bounded { length: 0, .. } | ByteRange::Suffix(0)) = range {
            return Ok(Vec::new());
        }
        let loc = Location::parse(url)?;
        let work = async {
            let mut read = self.open(&loc, range, opts).await?;
            let mut out = Vec::with_capacity(usize::try_from(read.len).unwrap_or(0));
            while let Some(chunk) = read.body.next().await {
                out.extend_from_slice(&chunk?);
            }
            Ok(out)
        };
        cancellable(cancel, url, work).await
    }

    /// Download an object to `dest` (parent directories are created). On failure `dest` is
    /// untouched and nothing is left behind.
    pub async fn download(
        &self,
        url: &str,
        dest: &Path,
        opts: &StoreOptions,
        cancel: &CancellationToken,
    ) -> Result<TransferResult> {
        let started = Instant::now();
        let loc = Location::parse(url)?;
        let dest = absolute(dest)?;
        let work = async {
            let temp = TempFile::create(&dest).await?;
            let (bytes, etag) = match &loc.file {
                Some(src) => copy_local(src, &temp).await?,
                None => {
                    let read = self.open(&loc, None, opts).await?;
                    let expected = read.len;
                    let written = write_stream(read.body, &temp).await?;
                    if written != expected {
                        return Err(Error::new(
                            ErrorCode::Generic,
                            format!("expected {expected} bytes but the body had {written}"),
                        )
                        .with_url(url));
                    }
                    (written, read.etag)
                }
            };
            temp.persist(&dest).await?;
            Ok(TransferResult {
                bytes,
                etag,
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            })
        };
        cancellable(cancel, url, work).await
    }

    /// Download many objects with at most `concurrency` in flight. Every item runs to its own
    /// end (one failure does not stop the others); outcomes come back in input order.
    pub async fn download_many(
        &self,
        items: Vec<(String, PathBuf)>,
        concurrency: usize,
        opts: &StoreOptions,
        cancel: &CancellationToken,
    ) -> Vec<Result<TransferResult>> {
        let concurrency = concurrency.max(1);
        let mut outcomes: Vec<(usize, Result<TransferResult>)> =
            futures::stream::iter(items.into_iter().enumerate())
                .map(|(i, (url, dest))| async move {
                    (i, self.download(&url, &dest, opts, cancel).await)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        outcomes.sort_by_key(|(i, _)| *i);
        outcomes.into_iter().map(|(_, r)| r).collect()
    }

    async fn open(
        &self,
        loc: &Location,
        range: Option<ByteRange>,
        opts: &StoreOptions,
    ) -> Result<Read> {
        let url = loc.url.clone();
        match self.stores.backend(loc, opts).await? {
            Backend::Store(store) => store_read(store.as_ref(), loc, range).await,
            Backend::Query(client, retry) => query_read(&client, &retry, &url, range).await,
            Backend::File => file_read(file_path(loc), range, &url).await,
        }
    }
}

async fn cancellable<T>(
    cancel: &CancellationToken,
    url: &str,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    if cancel.is_cancelled() {
        return Err(Error::aborted(url));
    }
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Error::aborted(url)),
        r = work => r,
    }
}

fn file_path(loc: &Location) -> &Path {
    loc.file.as_deref().unwrap_or_else(|| Path::new(""))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.as_os_str().is_empty() {
        return Err(Error::invalid_argument("the destination path is empty"));
    }
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .map_err(|e| Error::io(Path::new("."), &e))?
            .join(p))
    }
}

// ---------------------------------------------------------------------------------------------
// object_store reads

async fn store_read(
    store: &dyn ObjectStore,
    loc: &Location,
    range: Option<ByteRange>,
) -> Result<Read> {
    let url = loc.url.clone();
    let options = GetOptions {
        range: range.map(|r| match r {
            ByteRange::Bounded { offset, length } => {
                GetRange::Bounded(offset..offset.saturating_add(length))
            }
            ByteRange::From(offset) => GetRange::Offset(offset),
            ByteRange::Suffix(n) => GetRange::Suffix(n),
        }),
        ..Default::default()
    };
    let result = match store.get_opts(&loc.path, options).await {
        // Azure has no suffix ranges: learn the size, then ask for the same bytes by offset.
        Err(object_store::Error::NotSupported { .. })
            if matches!(range, Some(ByteRange::Suffix(_))) =>
        {
            let Some(ByteRange::Suffix(n)) = range else {
                unreachable!()
            };
            let meta = store
                .head(&loc.path)
                .await
                .map_err(|e| Error::from_store(e, &url))?;
            let size = meta.size;
            if size == 0 {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    "the requested range is outside the object",
                )
                .with_url(&url));
            }
            let start = size.saturating_sub(n);
            let options = GetOptions {
                range: Some(GetRange::Bounded(start..size)),
                // The object must not change between the HEAD and the GET.
                if_match: meta.e_tag,
                ..Default::default()
            };
            store.get_opts(&loc.path, options).await
        }
        other => other,
    }
    .map_err(|e| Error::from_store(e, &url))?;
    let len = result.range.end - result.range.start;
    let etag = result.meta.e_tag.clone();
    let body = result
        .into_stream()
        .map(move |r| r.map_err(|e| Error::from_store(e, &url)))
        .boxed();
    Ok(Read { etag, len, body })
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP, for URLs that carry a query string (presigned, SAS)

async fn query_send(
    client: &reqwest::Client,
    retry: &object_store::RetryConfig,
    url: &str,
    range: Option<String>,
) -> Result<reqwest::Response> {
    let started = Instant::now();
    let mut attempt = 0usize;
    let mut backoff = retry.backoff.init_backoff;
    loop {
        let mut req = client.get(url);
        if let Some(r) = &range {
            req = req.header(reqwest::header::RANGE, r);
        }
        let outcome = req.send().await;
        let retryable = match &outcome {
            Ok(resp) => {
                let s = resp.status();
                s.is_server_error()
                    || s == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || s == reqwest::StatusCode::REQUEST_TIMEOUT
            }
            Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
        };
        if !retryable
            || attempt >= retry.max_retries
            || started.elapsed() + backoff > retry.retry_timeout
        {
            return match outcome {
                Ok(resp) => check_status(resp, url).await,
                Err(e) => Err(Error::from_reqwest(e, url)),
            };
        }
        attempt += 1;
        let jitter = rand::random::<f64>() * backoff.as_secs_f64();
        tokio::time::sleep(std::time::Duration::from_secs_f64(jitter.max(0.001))).await;
        backoff = (backoff.mul_f64(retry.backoff.base)).min(retry.backoff.max_backoff);
    }
}

async fn check_status(resp: reqwest::Response, url: &str) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() || status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
        return Ok(resp);
    }
    let code = match status.as_u16() {
        404 | 410 => ErrorCode::NotFound,
        403 => ErrorCode::PermissionDenied,
        401 => ErrorCode::Unauthenticated,
        412 => ErrorCode::Precondition,
        408 | 504 => ErrorCode::Timeout,
        _ => ErrorCode::Generic,
    };
    let display = crate::redact::url_for_display(url);
    Err(Error::new(code, format!("{display}: HTTP {status}")).with_url(url))
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `bytes a-b/total` or `bytes */total` → total.
fn content_range_total(resp: &reqwest::Response) -> Option<u64> {
    header(resp, reqwest::header::CONTENT_RANGE)?
        .rsplit('/')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn range_header(range: ByteRange) -> String {
    match range {
        ByteRange::Bounded { offset, length } => {
            format!("bytes={}-{}", offset, offset + length - 1)
        }
        ByteRange::From(offset) => format!("bytes={offset}-"),
        ByteRange::Suffix(n) => format!("bytes=-{n}"),
    }
}

async fn query_head(
    client: &reqwest::Client,
    retry: &object_store::RetryConfig,
    url: &str,
) -> Result<ObjectInfo> {
    // A presigned URL is signed for one method, almost always GET: ask for one byte instead of
    // sending HEAD, and read the size from Content-Range.
    let resp = query_send(client, retry, url, Some("bytes=0-0".into())).await?;
    let size = match resp.status().as_u16() {
        206 | 416 => content_range_total(&resp),
        _ => resp.content_length(),
    }
    .ok_or_else(|| {
        Error::new(
            ErrorCode::Generic,
            "the server did not say how large the object is",
        )
        .with_url(url)
    })?;
    let etag = header(&resp, reqwest::header::ETAG);
    let last_modified = header(&resp, reqwest::header::LAST_MODIFIED)
        .and_then(|v| DateTime::parse_from_rfc2822(&v).ok())
        .map(|d| d.with_timezone(&Utc));
    let version = resp
        .headers()
        .get("x-amz-version-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok(ObjectInfo {
        size,
        etag,
        last_modified,
        version,
    })
}

async fn query_read(
    client: &reqwest::Client,
    retry: &object_store::RetryConfig,
    url: &str,
    range: Option<ByteRange>,
) -> Result<Read> {
    let resp = query_send(client, retry, url, range.map(range_header)).await?;
    let status = resp.status().as_u16();
    if status == 416 {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            "the requested range is outside the object",
        )
        .with_url(url));
    }
    if range.is_some() && status != 206 {
        return Err(Error::new(
            ErrorCode::NotSupported,
            "the server ignored the Range header",
        )
        .with_url(url));
    }
    let etag = header(&resp, reqwest::header::ETAG);
    let len = resp.content_length().ok_or_else(|| {
        Error::new(ErrorCode::Generic, "the server sent no Content-Length").with_url(url)
    })?;
    let owned = url.to_string();
    let body = resp
        .bytes_stream()
        .map(move |r| r.map_err(|e| Error::from_reqwest(e, &owned)))
        .boxed();
    Ok(Read { etag, len, body })
}

// ---------------------------------------------------------------------------------------------
// Local files

fn file_etag(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_micros())
        .unwrap_or(0);
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    format!("{inode:x}-{mtime:x}-{:x}", meta.len())
}

fn file_info(path: &Path) -> Result<ObjectInfo> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, &e))?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorCode::NotFound,
            format!("{}: not a file", path.display()),
        ));
    }
    Ok(ObjectInfo {
        size: meta.len(),
        etag: Some(file_etag(&meta)),
        last_modified: meta.modified().ok().map(DateTime::<Utc>::from),
        version: None,
    })
}

async fn file_read(path: &Path, range: Option<ByteRange>, url: &str) -> Result<Read> {
    let path = path.to_path_buf();
    let url = url.to_string();
    let (etag, data) = tokio::task::spawn_blocking(move || -> Result<(String, Vec<u8>)> {
        use std::io::{Read as _, Seek, SeekFrom};
        let mut f = std::fs::File::open(&path).map_err(|e| Error::io(&path, &e))?;
        let meta = f.metadata().map_err(|e| Error::io(&path, &e))?;
        if !meta.is_file() {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("{}: not a file", path.display()),
            ));
        }
        let size = meta.len();
        let (start, end) = match range {
            None => (0, size),
            Some(ByteRange::Bounded { offset, length }) => {
                (offset, offset.saturating_add(length).min(size))
            }
            Some(ByteRange::From(offset)) => (offset, size),
            Some(ByteRange::Suffix(n)) => (size.saturating_sub(n), size),
        };
        if range.is_some() && start >= size {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "the requested range is outside the object",
            )
            .with_url(&url));
        }
        let mut buf = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io(&path, &e))?;
        f.read_exact(&mut buf).map_err(|e| Error::io(&path, &e))?;
        Ok((file_etag(&meta), buf))
    })
    .await
    .map_err(|e| Error::new(ErrorCode::Generic, format!("file read task failed: {e}")))??;
    let len = data.len() as u64;
    Ok(Read {
        etag: Some(etag),
        len,
        body: futures::stream::once(async move { Ok(Bytes::from(data)) }).boxed(),
    })
}

async fn copy_local(src: &Path, temp: &TempFile) -> Result<(u64, Option<String>)> {
    let src = src.to_path_buf();
    let dst = temp.path.clone();
    tokio::task::spawn_blocking(move || -> Result<(u64, Option<String>)> {
        let meta = std::fs::metadata(&src).map_err(|e| Error::io(&src, &e))?;
        if !meta.is_file() {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("{}: not a file", src.display()),
            ));
        }
        // std::fs::copy uses copy_file_range / reflinks where the filesystem offers them.
        let n = std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, &e))?;
        Ok((n, Some(file_etag(&meta))))
    })
    .await
    .map_err(|e| Error::new(ErrorCode::Generic, format!("file copy task failed: {e}")))?
}

// ---------------------------------------------------------------------------------------------
// The file sink

/// A temporary file beside the destination, removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    persisted: std::sync::atomic::AtomicBool,
}

impl TempFile {
    async fn create(dest: &Path) -> Result<Self> {
        let dir = dest.parent().ok_or_else(|| {
            Error::invalid_argument(format!("{}: no parent directory", dest.display()))
        })?;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Error::io(dir, &e))?;
        if tokio::fs::metadata(dest).await.is_ok_and(|m| m.is_dir()) {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("{}: is a directory", dest.display()),
            ));
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join(format!(
            ".{name}.objget-{:016x}.part",
            rand::random::<u64>()
        ));
        tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| Error::io(&path, &e))?;
        Ok(Self {
            path,
            persisted: false.into(),
        })
    }

    async fn persist(&self, dest: &Path) -> Result<()> {
        let path = self.path.clone();
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, &e))?;
            f.sync_all().map_err(|e| Error::io(&path, &e))?;
            std::fs::rename(&path, &dest).map_err(|e| Error::io(&dest, &e))?;
            #[cfg(unix)]
            if let Some(dir) = dest.parent() {
                // Make the rename itself durable.
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::new(ErrorCode::Generic, format!("file task failed: {e}")))??;
        self.persisted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Write a body to the temporary file on a blocking thread, so chunks go from the socket's
/// buffers straight to `write(2)` with no extra copy.
async fn write_stream(mut body: BoxStream<'static, Result<Bytes>>, temp: &TempFile) -> Result<u64> {
    let path = temp.path.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let writer = tokio::task::spawn_blocking(move || -> Result<u64> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, &e))?;
        let mut n = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            f.write_all(&chunk).map_err(|e| Error::io(&path, &e))?;
            n += chunk.len() as u64;
        }
        Ok(n)
    });
    let mut failure = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => {
                if tx.send(c).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Error::new(ErrorCode::Generic, format!("file write task failed: {e}")))?;
    match failure {
        Some(e) => Err(e),
        None => written,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    #[tokio::test]
    async fn file_get_ranges_and_download() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let src = write(dir.path(), "src.bin", &data);
        let url = src.to_str().unwrap();
        let e = Engine::new();
        let o = StoreOptions::default();
        let c = CancellationToken::new();
        assert_eq!(e.get(url, None, &o, &c).await.unwrap(), data);
        let r = ByteRange::Bounded {
            offset: 10,
            length: 20,
        };
        assert_eq!(e.get(url, Some(r), &o, &c).await.unwrap(), &data[10..30]);
        assert_eq!(
            e.get(url, Some(ByteRange::Suffix(7)), &o, &c)
                .await
                .unwrap(),
            &data[data.len() - 7..]
        );
        assert_eq!(
            e.get(url, Some(ByteRange::From(9990)), &o, &c)
                .await
                .unwrap(),
            &data[9990..]
        );
        let head = e.head(url, &o).await.unwrap();
        assert_eq!(head.size, 10_000);
        let dest = dir.path().join("out/nested/copy.bin");
        let res = e.download(url, &dest, &o, &c).await.unwrap();
        assert_eq!(res.bytes, 10_000);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(
            std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
            1,
            "no temporaries left"
        );
    }

    #[tokio::test]
    async fn missing_file_is_not_found_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::new();
        let dest = dir.path().join("d.bin");
        let err = e
            .download(
                dir.path().join("nope").to_str().unwrap(),
                &dest,
                &StoreOptions::default(),
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn cancelled_before_start_is_aborted() {
        let dir = tempfile::tempdir().unwrap();
        let src = write(dir.path(), "s", b"abc");
        let c = CancellationToken::new();
        c.cancel();
        let err = Engine::new()
            .download(
                src.to_str().unwrap(),
                &dir.path().join("d"),
                &StoreOptions::default(),
                &c,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Aborted);
        assert!(!dir.path().join("d").exists());
    }

    #[tokio::test]
    async fn download_many_keeps_input_order_and_reports_each() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", b"aaa");
        let items = vec![
            (a.to_str().unwrap().to_string(), dir.path().join("o/a")),
            (
                dir.path().join("missing").to_str().unwrap().to_string(),
                dir.path().join("o/b"),
            ),
            ("ftp://x/y".to_string(), dir.path().join("o/c")),
        ];
        let out = Engine::new()
            .download_many(
                items,
                2,
                &StoreOptions::default(),
                &CancellationToken::new(),
            )
            .await;
        assert_eq!(out[0].as_ref().unwrap().bytes, 3);
        assert_eq!(out[1].as_ref().unwrap_err().code(), ErrorCode::NotFound);
        assert_eq!(
            out[2].as_ref().unwrap_err().code(),
            ErrorCode::UnsupportedScheme
        );
        assert!(!dir.path().join("o/b").exists());
    }
}
