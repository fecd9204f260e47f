//! Reading objects: head, get (into memory), download (into a file), downloadMany.
//!
//! The first request asks for the first part and learns the object's size and ETag from the
//! reply, so a small object costs one request. A larger one is fetched as concurrent ranged
//! parts, each pinned with If-Match to that ETag (an object replaced mid-download fails with
//! `Precondition` and never yields a mixed file), streamed chunk by chunk to its offset in a
//! pre-sized temporary file, or into its slice of one pre-allocated buffer. All transfers draw
//! on one budget of requests in flight.
//!
//! A download lands in a uniquely named temporary file beside the destination, is fsynced, and
//! is renamed into place only when every byte has arrived: on any failure or cancellation the
//! destination is untouched and the temporary is removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use futures::FutureExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorCode, Result};
use crate::fetch::{file_info, Read, Source};
use crate::locate::Location;
use crate::progress::{ProgressFn, Tracker};
use crate::sink::{blocking, send_body, TempFile};
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
    /// How many ranged parts it took (1 for a single request).
    pub parts: u32,
}

/// Per-call transfer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferOptions {
    /// Bytes per ranged part.
    pub part_size: u64,
    /// Parts of one object in flight at once.
    pub concurrency: usize,
    /// fdatasync the file and its directory before and after the rename, so a finished
    /// download survives a power loss. Off, the rename is still atomic for every process.
    pub durable: bool,
}

/// Default part size: 8 MiB, as AWS's own transfer clients use.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// Default parts in flight per object.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Requests in flight across every transfer of the process.
pub const REQUEST_BUDGET: usize = 64;

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            durable: true,
        }
    }
}

impl TransferOptions {
    fn validate(&self) -> Result<()> {
        if !(64 * 1024..=1024 * 1024 * 1024).contains(&self.part_size) {
            return Err(Error::invalid_argument(format!(
                "partSize must be between 64 KiB and 1 GiB, got {}",
                self.part_size
            )));
        }
        if !(1..=REQUEST_BUDGET).contains(&self.concurrency) {
            return Err(Error::invalid_argument(format!(
                "concurrency must be between 1 and {REQUEST_BUDGET}, got {}",
                self.concurrency
            )));
        }
        Ok(())
    }
}

/// Everything a transfer call takes besides the URL and destination.
#[derive(Clone, Default)]
pub struct CallOptions {
    /// Store settings.
    pub store: StoreOptions,
    /// Part size and concurrency.
    pub transfer: TransferOptions,
    /// Progress reports, throttled.
    pub progress: Option<ProgressFn>,
}

/// The engine: a store cache, the shared request budget, and the operations.
///
/// Memory is bounded by design rather than by a budget: file transfers stream every chunk to a
/// per-file writer queue of bounded length, and `get` writes parts straight into the one buffer
/// it returns.
#[derive(Debug)]
pub struct Engine {
    stores: Stores,
    requests: Arc<Semaphore>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// A new engine with an empty store cache.
    pub fn new() -> Self {
        Self {
            stores: Stores::new(),
            requests: Arc::new(Semaphore::new(REQUEST_BUDGET)),
        }
    }

    async fn source(&self, loc: &Location, opts: &StoreOptions) -> Result<Source> {
        Ok(match self.stores.backend(loc, opts).await? {
            Backend::Store(store) => Source::Store(store, loc.path.clone()),
            Backend::Query(client, retry) => Source::Query(client, retry),
            Backend::File => Source::File(loc.file.clone().unwrap_or_default()),
        })
    }

    /// Size, ETag, modification time and version of an object.
    pub async fn head(&self, url: &str, opts: &StoreOptions) -> Result<ObjectInfo> {
        let loc = Location::parse(url)?;
        self.source(&loc, opts).await?.head(url).await
    }

    /// Read an object (or a range of it) into memory. Whole large objects come as parallel
    /// parts written straight into their slices of one buffer.
    pub async fn get(
        &self,
        url: &str,
        range: Option<ByteRange>,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>> {
        opts.transfer.validate()?;
        if let Some(ByteRange::Bounded { length: 0, .. } | ByteRange::Suffix(0)) = range {
            return Ok(Vec::new());
        }
        let work = async {
            let loc = Location::parse(url)?;
            let source = self.source(&loc, &opts.store).await?;
            let tracker = Tracker::new(opts.progress.clone(), None);
            let out = match range {
                Some(r) => {
                    let _permit = self.request_permit().await?;
                    let read = source.read(url, Some(r), None).await?;
                    tracker.plan(read.len, 1);
                    let mut out = vec![0u8; usize_of(read.len)?];
                    fill(read.body, &mut out, &tracker, url).await?;
                    out
                }
                None => {
                    self.get_whole(&source, url, opts.transfer, &tracker)
                        .await?
                }
            };
            tracker.finish();
            Ok(out)
        };
        cancellable(cancel, url, work).await
    }

    async fn get_whole(
        &self,
        source: &Source,
        url: &str,
        t: TransferOptions,
        tracker: &Tracker,
    ) -> Result<Vec<u8>> {
        let permit = self.request_permit().await?;
        let first = read_first(source, url, t.part_size).await?;
        let size = first.size;
        let mut out = vec![0u8; usize_of(size)?];
        let Some(etag) = pin(&first) else {
            tracker.plan(size, 1);
            if first.len < size {
                // No strong ETag to pin parts to: one whole read instead.
                drop(first);
                let whole = source.read(url, None, None).await?;
                fill(whole.body, &mut out, tracker, url).await?;
            } else {
                fill(first.body, &mut out, tracker, url).await?;
            }
            return Ok(out);
        };
        let parts = plan(size, t.part_size);
        tracker.plan(size, parts.len() as u32);
        let first_len = usize_of(first.len)?;
        let (head, mut tail) = out.split_at_mut(first_len);
        let mut jobs: Vec<BoxFuture<'_, Result<()>>> = Vec::with_capacity(parts.len());
        jobs.push(
            async move {
                fill(first.body, head, tracker, url).await?;
                drop(permit);
                tracker.part_done();
                Ok(())
            }
            .boxed(),
        );
        for &(offset, len) in parts.iter().skip(1) {
            let (slice, rest) = std::mem::take(&mut tail).split_at_mut(usize_of(len)?);
            tail = rest;
            let etag = etag.as_str();
            jobs.push(
                async move {
                    let _req = self.request_permit().await?;
                    let read = source
                        .read(
                            url,
                            Some(ByteRange::Bounded {
                                offset,
                                length: len,
                            }),
                            Some(etag),
                        )
                        .await?;
                    check_len(&read, len, url)?;
                    fill(read.body, slice, tracker, url).await?;
                    tracker.part_done();
                    Ok(())
                }
                .boxed(),
            );
        }
        futures::stream::iter(jobs)
            .buffer_unordered(t.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(out)
    }

    /// Download an object to `dest` (parent directories are created). On failure `dest` is
    /// untouched and nothing is left behind.
    pub async fn download(
        &self,
        url: &str,
        dest: &Path,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<TransferResult> {
        self.download_item(url, dest, opts, cancel, None).await
    }

    async fn download_item(
        &self,
        url: &str,
        dest: &Path,
        opts: &CallOptions,
        cancel: &CancellationToken,
        index: Option<u32>,
    ) -> Result<TransferResult> {
        opts.transfer.validate()?;
        let started = Instant::now();
        let work = async {
            let loc = Location::parse(url)?;
            let dest = absolute(dest)?;
            let source = self.source(&loc, &opts.store).await?;
            let tracker = Tracker::new(opts.progress.clone(), index);
            let temp = TempFile::create(&dest, opts.transfer.durable).await?;
            let (etag, parts) = match &source {
                Source::File(src) => copy_local(src, &temp, &tracker).await?,
                _ => {
                    self.fetch_to(&source, url, &temp, opts.transfer, &tracker)
                        .await?
                }
            };
            temp.persist(&dest).await?;
            tracker.finish();
            Ok(TransferResult {
                bytes: tracker.bytes(),
                etag,
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
                parts,
            })
        };
        cancellable(cancel, url, work).await
    }

    async fn fetch_to(
        &self,
        source: &Source,
        url: &str,
        temp: &TempFile,
        t: TransferOptions,
        tracker: &Tracker,
    ) -> Result<(Option<String>, u32)> {
        let permit = self.request_permit().await?;
        let first = read_first(source, url, t.part_size).await?;
        let size = first.size;
        let writer = temp.writer();
        let Some(etag) = pin(&first) else {
            tracker.plan(size, 1);
            let read = if first.len < size {
                // No strong ETag to pin parts to: one whole read instead.
                drop(first);
                source.read(url, None, None).await?
            } else {
                first
            };
            let etag = read.etag.clone();
            send_body(read.body, &writer.sender(), 0, tracker).await?;
            drop(permit);
            let written = writer.finish().await?;
            if written != size {
                return Err(cut_short(url, size, written));
            }
            tracker.part_done();
            return Ok((etag, 1));
        };
        let parts = plan(size, t.part_size);
        tracker.plan(size, parts.len() as u32);
        temp.set_len(size).await?;
        let mut jobs: Vec<BoxFuture<'_, Result<()>>> = Vec::with_capacity(parts.len());
        let tx = writer.sender();
        jobs.push(
            async move {
                let got = send_body(first.body, &tx, 0, tracker).await?;
                drop(permit);
                if got != first.len {
                    return Err(cut_short(url, first.len, got));
                }
                tracker.part_done();
                Ok(())
            }
            .boxed(),
        );
        for &(offset, len) in parts.iter().skip(1) {
            let etag = etag.as_str();
            let tx = writer.sender();
            jobs.push(
                async move {
                    let _req = self.request_permit().await?;
                    let range = ByteRange::Bounded {
                        offset,
                        length: len,
                    };
                    let read = source.read(url, Some(range), Some(etag)).await?;
                    check_len(&read, len, url)?;
                    let got = send_body(read.body, &tx, offset, tracker).await?;
                    if got != len {
                        return Err(cut_short(url, len, got));
                    }
                    tracker.part_done();
                    Ok(())
                }
                .boxed(),
            );
        }
        let n = jobs.len() as u32;
        let fetched = futures::stream::iter(jobs)
            .buffer_unordered(t.concurrency)
            .try_collect::<Vec<()>>()
            .await;
        // The writer's own failure (disk full, …) explains a closed queue better than the parts.
        let written = writer.finish().await?;
        fetched?;
        if written != size {
            return Err(cut_short(url, size, written));
        }
        Ok((Some(etag), n))
    }

    /// Download many objects with at most `concurrency` objects in flight (their parts share the
    /// engine's request budget). Every item runs to its own end; outcomes come back in input
    /// order. Progress reports carry the item's index.
    pub async fn download_many(
        &self,
        items: Vec<(String, PathBuf)>,
        concurrency: usize,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Vec<Result<TransferResult>> {
        let concurrency = concurrency.max(1);
        let mut outcomes: Vec<(usize, Result<TransferResult>)> =
            futures::stream::iter(items.into_iter().enumerate())
                .map(|(i, (url, dest))| async move {
                    let r = self
                        .download_item(&url, &dest, opts, cancel, Some(i as u32))
                        .await;
                    (i, r)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        outcomes.sort_by_key(|(i, _)| *i);
        outcomes.into_iter().map(|(_, r)| r).collect()
    }

    async fn request_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.requests
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorCode::Generic, "the request budget was closed"))
    }
}

/// The first request: the first part if the object is large, the whole object if it is not.
/// An empty object answers a ranged request with 416, and a server without ranges answers
/// with the whole body: both are read in one stream.
async fn read_first(source: &Source, url: &str, part_size: u64) -> Result<Read> {
    let range = ByteRange::Bounded {
        offset: 0,
        length: part_size,
    };
    match source.read(url, Some(range), None).await {
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::InvalidArgument | ErrorCode::NotSupported
            ) =>
        {
            source.read(url, None, None).await
        }
        other => other,
    }
}

/// The ETag later parts can be pinned to: a strong one (If-Match compares strongly, so a weak
/// validator would fail every part), and only if there are later parts at all.
fn pin(first: &Read) -> Option<String> {
    first
        .etag
        .clone()
        .filter(|e| !e.starts_with("W/") && first.len < first.size)
}

/// Parts of `size` bytes: (offset, length), the first at 0.
fn plan(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    let mut parts = Vec::with_capacity(size.div_ceil(part_size) as usize);
    let mut offset = 0;
    while offset < size {
        let len = part_size.min(size - offset);
        parts.push((offset, len));
        offset += len;
    }
    parts
}

fn usize_of(n: u64) -> Result<usize> {
    usize::try_from(n)
        .map_err(|_| Error::invalid_argument(format!("{n} bytes do not fit in memory")))
}

fn cut_short(url: &str, want: u64, got: u64) -> Error {
    Error::new(
        ErrorCode::Generic,
        format!("expected {want} bytes but the body had {got}"),
    )
    .with_url(url)
}

fn check_len(read: &Read, want: u64, url: &str) -> Result<()> {
    if read.len != want {
        return Err(Error::new(
            ErrorCode::Generic,
            format!("asked for {want} bytes, the server is sending {}", read.len),
        )
        .with_url(url));
    }
    Ok(())
}

/// Copy a body into `out`, which it must fill exactly.
async fn fill(
    mut body: BoxStream<'static, Result<Bytes>>,
    out: &mut [u8],
    tracker: &Tracker,
    url: &str,
) -> Result<()> {
    let mut at = 0usize;
    while let Some(c) = body.next().await {
        let c = c?;
        let end = at + c.len();
        if end > out.len() {
            return Err(cut_short(url, out.len() as u64, end as u64));
        }
        out[at..end].copy_from_slice(&c);
        at = end;
        tracker.add(c.len() as u64);
    }
    if at != out.len() {
        return Err(cut_short(url, out.len() as u64, at as u64));
    }
    Ok(())
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

async fn copy_local(
    src: &Path,
    temp: &TempFile,
    tracker: &Tracker,
) -> Result<(Option<String>, u32)> {
    let src = src.to_path_buf();
    let dst = temp.path.clone();
    let (n, etag) = blocking(move || {
        let (info, _) = file_info(&src)?;
        // std::fs::copy uses copy_file_range / reflinks where the filesystem offers them.
        let n = std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, &e))?;
        Ok((n, info.etag))
    })
    .await?;
    tracker.plan(n, 1);
    tracker.add(n);
    tracker.part_done();
    Ok((etag, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn small_parts() -> CallOptions {
        CallOptions {
            transfer: TransferOptions {
                part_size: 64 * 1024,
                concurrency: 3,
                durable: true,
            },
            ..Default::default()
        }
    }

    #[test]
    fn plans_cover_the_object_exactly() {
        assert_eq!(plan(0, 10), vec![]);
        assert_eq!(plan(10, 10), vec![(0, 10)]);
        assert_eq!(plan(11, 10), vec![(0, 10), (10, 1)]);
        assert_eq!(plan(25, 10), vec![(0, 10), (10, 10), (20, 5)]);
    }

    #[tokio::test]
    async fn file_get_in_parts_ranges_and_download() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_001u32).map(|i| (i * 31 % 251) as u8).collect();
        let src = write(dir.path(), "src.bin", &data);
        let url = src.to_str().unwrap();
        let e = Engine::new();
        let o = small_parts();
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
            e.get(url, Some(ByteRange::From(299_990)), &o, &c)
                .await
                .unwrap(),
            &data[299_990..]
        );
        assert_eq!(e.head(url, &o.store).await.unwrap().size, 300_001);
        let dest = dir.path().join("out/nested/copy.bin");
        let res = e.download(url, &dest, &o, &c).await.unwrap();
        assert_eq!(res.bytes, 300_001);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(
            std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
            1,
            "no temporaries left"
        );
    }

    #[tokio::test]
    async fn bad_transfer_options_are_invalid_arguments() {
        let e = Engine::new();
        let o = CallOptions {
            transfer: TransferOptions {
                part_size: 1,
                concurrency: 1,
                durable: true,
            },
            ..Default::default()
        };
        let err = e
            .get("/x", None, &o, &CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
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
                &CallOptions::default(),
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
                &CallOptions::default(),
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
            .download_many(items, 2, &CallOptions::default(), &CancellationToken::new())
            .await;
        assert_eq!(out[0].as_ref().unwrap().bytes, 3);
        assert_eq!(out[1].as_ref().unwrap_err().code(), ErrorCode::NotFound);
        assert_eq!(
            out[2].as_ref().unwrap_err().code(),
            ErrorCode::UnsupportedScheme
        );
        assert!(!dir.path().join("o/b").exists());
    }

    #[tokio::test]
    async fn progress_reports_end_with_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let src = write(dir.path(), "p", &vec![7u8; 200_000]);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut o = small_parts();
        o.progress = Some(Arc::new(move |p| sink.lock().unwrap().push(p)));
        Engine::new()
            .get(src.to_str().unwrap(), None, &o, &CancellationToken::new())
            .await
            .unwrap();
        let last = *seen.lock().unwrap().last().unwrap();
        assert_eq!(last.bytes, 200_000);
        assert_eq!(last.total, Some(200_000));
        assert_eq!((last.parts_done, last.parts_total), (4, 4));
    }
}
