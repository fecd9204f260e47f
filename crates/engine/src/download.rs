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
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use futures::FutureExt;
use tokio::sync::SemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::checksum::{check, choose, combine, Checksum, ChecksumMode, Dialect, Ordered, PartCrc};
use crate::engine::Engine;
use crate::error::{Error, ErrorCode, Result};
use crate::fetch::{file_info, Read, Source};
use crate::fs::blocking;
use crate::locate::Location;
use crate::object::{ByteRange, ObjectInfo};
use crate::options::{CallOptions, RdmaMode, RdmaOptions, StoreOptions, TransferOptions};
use crate::place::Place;
use crate::progress::Tracker;
use crate::rdma::TransferPath;
use crate::s3;
use crate::sink::{send_body, DonePart, Journal, Msg, TempFile, JOURNAL_CRC};
use crate::store::{Backend, Stores};

/// The outcome of one download.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferResult {
    /// Bytes written.
    pub bytes: u64,
    /// The entity tag of what was read.
    pub etag: Option<String>,
    /// Wall time of the transfer.
    pub elapsed_ms: f64,
    /// How many parts this call fetched (1 for a single request; on a resume, only the
    /// missing ones).
    pub parts: u32,
    /// The checksum verified, if any.
    pub checksum: Option<Checksum>,
    /// Bytes kept from an interrupted earlier attempt (`resume`).
    pub resumed_bytes: u64,
    /// Which data path moved the bytes.
    pub path: TransferPath,
}

impl Engine {
    pub(crate) fn stores(&self) -> &Stores {
        &self.stores
    }

    async fn source(&self, loc: &Location, opts: &StoreOptions) -> Result<Source> {
        Ok(match self.stores.backend(loc, opts).await? {
            Backend::Store(store) => {
                let dialect = if loc.scheme == crate::locate::Scheme::S3 {
                    Dialect::S3
                } else {
                    Dialect::Other
                };
                Source::Store(store, loc.path.clone(), dialect)
            }
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
        if range.is_some() && opts.transfer.checksum == ChecksumMode::Required {
            return Err(Error::invalid_argument(
                "checksum 'required' verifies whole objects; a byte range cannot be verified",
            ));
        }
        if let Some(ByteRange::Bounded { length: 0, .. } | ByteRange::Suffix(0)) = range {
            return Ok(Vec::new());
        }
        let work = async {
            let loc = Location::parse(url)?;
            if range.is_none() {
                if let Some(ctx) = self.rdma_ctx(&loc, url, &opts.rdma, &opts.store).await? {
                    let tracker = Tracker::new(opts.progress.clone(), None);
                    let (out, _) = self.rdma_get(&ctx, opts.transfer, &tracker, cancel).await?;
                    tracker.finish();
                    return Ok(out);
                }
            } else if opts.rdma.mode == RdmaMode::Require {
                return Err(Error::invalid_argument(
                    "rdma reads whole objects; a byte range goes over HTTP (rdma: true)",
                ));
            }
            let source = self.source(&loc, &opts.store).await?;
            let tracker = Tracker::new(opts.progress.clone(), None);
            let out = match range {
                Some(r) => {
                    let _permit = self.request_permit().await?;
                    let read = match source.read(url, Some(r), None).await {
                        Ok(read) => read,
                        // The last n bytes of an empty object are no bytes. HTTP cannot say so
                        // (S3 answers `Content-Range: bytes 0--1/0`, others 416): what the
                        // object's size says decides.
                        Err(e) if matches!(r, ByteRange::Suffix(_)) => {
                            return match source.head(url).await {
                                Ok(info) if info.size == 0 => Ok(Vec::new()),
                                _ => Err(e),
                            };
                        }
                        Err(e) => return Err(e),
                    };
                    tracker.plan(read.len, 1);
                    let mut out = vec![0u8; usize_of(read.len)?];
                    fill(read.body, &mut out, &tracker, url, &mut PartCrc::None).await?;
                    out
                }
                None => {
                    self.get_whole(&source, url, opts.transfer, &tracker)
                        .await?
                        .out
                }
            };
            tracker.finish();
            Ok(out)
        };
        cancellable(cancel, url, work).await
    }

    /// The RDMA context of a call, when it asks for RDMA and may use it.
    pub(crate) async fn rdma_ctx(
        &self,
        loc: &Location,
        url: &str,
        rdma: &RdmaOptions,
        store: &StoreOptions,
    ) -> Result<Option<s3::Ctx>> {
        if rdma.mode == RdmaMode::Off {
            return Ok(None);
        }
        let raw = if loc.scheme == crate::locate::Scheme::S3 {
            Some(self.stores.s3_raw(loc, store).await?)
        } else {
            None
        };
        s3::Ctx::plan(loc, url, rdma, store, &self.requests, || {
            raw.ok_or_else(|| Error::new(ErrorCode::Generic, "no S3 signer"))
        })
    }

    /// `get` over RDMA: parts land in pool buffers and are copied into the returned buffer.
    async fn rdma_get(
        &self,
        ctx: &s3::Ctx,
        t: TransferOptions,
        tracker: &Tracker,
        cancel: &CancellationToken,
    ) -> Result<(Vec<u8>, TransferResult)> {
        let started = Instant::now();
        let head = s3::head(ctx).await?;
        let expected = choose(t.checksum, &head.offered, &ctx_url(ctx))?;
        let mut out = vec![0u8; usize_of(head.size)?];
        let (mut done, path) = s3::read(
            ctx,
            &head,
            s3::Land::Memory(&mut out),
            expected.as_ref(),
            tracker,
            cancel,
        )
        .await?;
        let checksum = verify_memory(expected.as_ref(), &mut done, &out, &ctx_url(ctx))?;
        Ok((out, whole_result(head, done.len(), checksum, path, started)))
    }

    /// Read a whole object into memory, with the transfer's result (`path` says whether RDMA
    /// moved it).
    pub async fn get_detailed(
        &self,
        url: &str,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<(Vec<u8>, TransferResult)> {
        opts.transfer.validate()?;
        let work = async {
            let loc = Location::parse(url)?;
            let tracker = Tracker::new(opts.progress.clone(), None);
            if let Some(ctx) = self.rdma_ctx(&loc, url, &opts.rdma, &opts.store).await? {
                let r = self.rdma_get(&ctx, opts.transfer, &tracker, cancel).await?;
                tracker.finish();
                return Ok(r);
            }
            let started = Instant::now();
            let source = self.source(&loc, &opts.store).await?;
            let w = self
                .get_whole(&source, url, opts.transfer, &tracker)
                .await?;
            tracker.finish();
            let r = TransferResult {
                bytes: w.out.len() as u64,
                etag: w.etag,
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
                parts: w.parts,
                checksum: w.checksum,
                resumed_bytes: 0,
                path: TransferPath::Http,
            };
            Ok((w.out, r))
        };
        cancellable(cancel, url, work).await
    }

    /// Read a whole S3 object into caller-registered memory (`allocRdmaBuffer`): by RDMA with
    /// no copy on the client, or over HTTP into the same memory when RDMA is off, unavailable
    /// under `rdma: true`, or declined.
    pub async fn get_into(
        &self,
        url: &str,
        into: &mut [u8],
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<TransferResult> {
        opts.transfer.validate()?;
        let work = async {
            let loc = Location::parse(url)?;
            if loc.scheme != crate::locate::Scheme::S3 {
                return Err(Error::invalid_argument(
                    "`into` takes an S3 URL: registered buffers are for S3 over RDMA",
                ));
            }
            let ctx = match self.rdma_ctx(&loc, url, &opts.rdma, &opts.store).await? {
                Some(ctx) => ctx,
                None => s3::Ctx::http_only(
                    &loc,
                    url,
                    &opts.rdma,
                    &self.requests,
                    self.stores.s3_raw(&loc, &opts.store).await?,
                ),
            };
            let started = Instant::now();
            let tracker = Tracker::new(opts.progress.clone(), None);
            let head = s3::head(&ctx).await?;
            if head.size > into.len() as u64 {
                return Err(Error::invalid_argument(format!(
                    "the object has {} bytes and `into` holds {}",
                    head.size,
                    into.len()
                ))
                .with_url(url));
            }
            let expected = choose(opts.transfer.checksum, &head.offered, url)?;
            let target = &mut into[..head.size as usize];
            let (mut done, path) = s3::read(
                &ctx,
                &head,
                s3::Land::Registered(target),
                expected.as_ref(),
                &tracker,
                cancel,
            )
            .await?;
            let checksum = verify_memory(expected.as_ref(), &mut done, target, url)?;
            tracker.finish();
            Ok(whole_result(head, done.len(), checksum, path, started))
        };
        // Not dropped on abort (parts check `cancel` and the requests in flight end first):
        // a server may be writing into the caller's memory until then.
        if cancel.is_cancelled() {
            return Err(Error::aborted(url));
        }
        work.await
    }

    /// `download` over RDMA: parts land in pool buffers and are written at their offsets.
    #[allow(clippy::too_many_arguments)]
    async fn rdma_download(
        &self,
        ctx: &s3::Ctx,
        place: &Place,
        t: TransferOptions,
        opts: &CallOptions,
        index: Option<u32>,
        dirs: Option<&std::sync::Mutex<std::collections::BTreeSet<PathBuf>>>,
        started: Instant,
        cancel: &CancellationToken,
    ) -> Result<TransferResult> {
        let url = ctx_url(ctx);
        let tracker = Tracker::new(opts.progress.clone(), index);
        let head = s3::head(ctx).await?;
        let expected = choose(t.checksum, &head.offered, &url)?;
        let dest = &place.dest;
        let temp = TempFile::create(place, t.durable).await?;
        temp.set_len(head.size).await?;
        let (mut done, path) = s3::read(
            ctx,
            &head,
            s3::Land::File(temp.file(), &temp.path),
            expected.as_ref(),
            &tracker,
            cancel,
        )
        .await?;
        let checksum = verify_file(&temp, expected.as_ref(), &mut done, None, &url).await?;
        temp.persist(dest, dirs.is_none()).await?;
        note_dir(dirs, dest);
        tracker.finish();
        Ok(whole_result(head, done.len(), checksum, path, started))
    }

    async fn get_whole(
        &self,
        source: &Source,
        url: &str,
        t: TransferOptions,
        tracker: &Tracker,
    ) -> Result<Whole> {
        let opened = self.open(source, url, t, false).await?;
        let seen_etag = opened.etag.clone().or_else(|| opened.first.etag.clone());
        let size = opened.first.size;
        let rest = opened.rest(t.part_size);
        tracker.plan(size, 1 + rest.len() as u32);
        let mut out = vec![0u8; usize_of(size)?];
        // Every part's slice of the one buffer, handed to the part that fills it.
        let slots = {
            let mut slots = std::collections::HashMap::with_capacity(1 + rest.len());
            let mut tail = out.as_mut_slice();
            for (offset, len) in std::iter::once((0, opened.first.len)).chain(rest.iter().copied())
            {
                let (slice, next) = std::mem::take(&mut tail).split_at_mut(usize_of(len)?);
                slots.insert(offset, slice);
                tail = next;
            }
            std::sync::Mutex::new(slots)
        };
        let expected = opened.expected.clone();
        let deliver = |offset: u64, len: u64, read: Read| {
            let slot = slots.lock().ok().and_then(|mut s| s.remove(&offset));
            let expected = expected.as_ref();
            async move {
                check_len(&read, len, url)?;
                let slice =
                    slot.ok_or_else(|| Error::new(ErrorCode::Generic, "part planned twice"))?;
                let mut crc = PartCrc::new(expected);
                fill(read.body, slice, tracker, url, &mut crc).await?;
                Ok(crc.finish().0)
            }
            .boxed()
        };
        let etag = opened.etag.clone();
        let (first, permit) = (opened.first, opened.permit);
        let mut done = self
            .run_parts(
                source,
                url,
                etag.as_deref(),
                Some((first, permit)),
                &rest,
                t.concurrency,
                tracker,
                &deliver,
            )
            .await?;
        drop(slots);
        let checksum = verify_memory(expected.as_ref(), &mut done, &out, url)?;
        Ok(Whole {
            parts: done.len() as u32,
            out,
            checksum,
            etag: seen_etag,
        })
    }

    /// The first request: the first part (or the whole object), its pinned ETag, and the
    /// checksum to verify. `whole`: the whole object in one read, its bytes in order.
    async fn open<'a>(
        &'a self,
        source: &Source,
        url: &str,
        t: TransferOptions,
        whole: bool,
    ) -> Result<Opened<'a>> {
        let permit = self.request_permit().await?;
        let mut first = match whole {
            true => source.read(url, None, None).await?,
            false => read_first(source, url, t.part_size).await?,
        };
        let etag = pin(&first);
        if etag.is_none() && first.len < first.size {
            // No strong ETag to pin parts to: one whole read instead.
            drop(first);
            first = source.read(url, None, None).await?;
        }
        let mut offered = std::mem::take(&mut first.offered);
        let no_crc = !offered.iter().any(|c| c.algorithm.is_crc());
        if let Some(e) = etag
            .as_deref()
            .filter(|_| no_crc && t.checksum != ChecksumMode::Off)
        {
            // S3 advertises its CRCs on a HEAD, not on a ranged read; a CRC is combined from
            // the parts at no cost, where MD5 or SHA-256 needs a second pass over the bytes.
            offered.extend(source.head_pinned(url, e).await?.1);
            offered.sort_by_key(|c| c.algorithm.rank());
            offered.dedup_by_key(|c| c.algorithm);
        }
        let expected = choose(t.checksum, &offered, url)?;
        Ok(Opened {
            first,
            permit,
            etag,
            expected,
        })
    }

    /// Fetch parts: `first` (already open, with its request permit) and every part of `rest`,
    /// pinned to `etag`, at most `concurrency` at once; `deliver` takes each part's open read
    /// and returns its CRC. Returns `(offset, length, crc)` for every part.
    #[allow(clippy::too_many_arguments)]
    async fn run_parts<'a>(
        &'a self,
        source: &'a Source,
        url: &'a str,
        etag: Option<&'a str>,
        first: Option<(Read, SemaphorePermit<'a>)>,
        rest: &[(u64, u64)],
        concurrency: usize,
        tracker: &'a Tracker,
        deliver: &'a (dyn Fn(u64, u64, Read) -> BoxFuture<'a, Result<u64>> + Sync),
    ) -> Result<Vec<DonePart>> {
        let mut jobs: Vec<BoxFuture<'a, Result<DonePart>>> = Vec::with_capacity(1 + rest.len());
        if let Some((read, permit)) = first {
            jobs.push(
                async move {
                    let len = read.len;
                    let crc = deliver(0, len, read).await?;
                    drop(permit);
                    tracker.part_done();
                    Ok((0, len, crc))
                }
                .boxed(),
            );
        }
        for &(offset, len) in rest {
            jobs.push(
                async move {
                    let _req = self.request_permit().await?;
                    let range = ByteRange::Bounded {
                        offset,
                        length: len,
                    };
                    let read = source.read(url, Some(range), etag).await?;
                    let crc = deliver(offset, len, read).await?;
                    tracker.part_done();
                    Ok((offset, len, crc))
                }
                .boxed(),
            );
        }
        futures::stream::iter(jobs)
            .buffer_unordered(concurrency)
            .try_collect()
            .await
    }

    /// Download an object to `dest` (parent directories are created). On failure `dest` is
    /// untouched and nothing is left behind (with `resume`, the part file and its journal stay
    /// for the next attempt unless the object changed or failed its checksum).
    pub async fn download(
        &self,
        url: &str,
        dest: &Path,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<TransferResult> {
        self.download_item(url, dest, opts, cancel, None, None)
            .await
    }

    async fn download_item(
        &self,
        url: &str,
        dest: &Path,
        opts: &CallOptions,
        cancel: &CancellationToken,
        index: Option<u32>,
        dirs: Option<&std::sync::Mutex<std::collections::BTreeSet<PathBuf>>>,
    ) -> Result<TransferResult> {
        opts.transfer.validate()?;
        let started = Instant::now();
        let mut t = opts.transfer;
        // Not dropped on abort: waits on the network give way to `cancel` where they are (see
        // `cancellable` below), but file work runs to its end, so that when the call returns no
        // write of it is still in flight (the writer thread has drained and written its last
        // journal record, a rename has happened or not).
        let work = async {
            let loc = Location::parse(url)?;
            let dest = absolute(dest)?;
            let root = opts.root.as_deref().map(absolute).transpose()?;
            let (place, stream) = blocking(move || Place::open(&dest, root.as_deref())).await?;
            if stream.is_some() {
                // A character device or FIFO: one read, written in order; nothing to resume.
                if opts.rdma.mode == RdmaMode::Require {
                    return Err(Error::invalid_argument(format!(
                        "{}: a character device or FIFO is written in order over HTTP; rdma 'require' cannot",
                        place.dest.display()
                    )));
                }
                t.resume = false;
            }
            if t.resume && opts.rdma.mode == RdmaMode::Require {
                return Err(Error::invalid_argument(
                    "resume is not available with rdma 'require' (rdma: true resumes over HTTP)",
                ));
            }
            let ctx = match t.resume || stream.is_some() {
                true => None,
                false => {
                    cancellable(
                        cancel,
                        url,
                        self.rdma_ctx(&loc, url, &opts.rdma, &opts.store),
                    )
                    .await?
                }
            };
            if let Some(ctx) = ctx {
                let rdma = self.rdma_download(&ctx, &place, t, opts, index, dirs, started, cancel);
                return cancellable(cancel, url, rdma).await;
            }
            let source = cancellable(cancel, url, self.source(&loc, &opts.store)).await?;
            let tracker = Tracker::new(opts.progress.clone(), index);
            let in_order = stream.is_some();
            let (temp, previous) = if let Some(file) = stream {
                (TempFile::direct(&place, file, t.durable), None)
            } else if t.resume && !matches!(source, Source::File(_)) {
                // Dropped on abort only between attempts at the lock, or during one (which
                // opens and locks the part file and reads the journal, and writes nothing).
                cancellable(cancel, url, TempFile::resumable(&place, t.durable)).await?
            } else {
                (TempFile::create(&place, t.durable).await?, None)
            };
            let fetched = match &source {
                Source::File(src) => copy_local(src, &temp, &tracker, t.checksum, url).await,
                _ => {
                    self.fetch_to(&source, url, &temp, previous, t, in_order, &tracker, cancel)
                        .await
                }
            };
            let fetched = match fetched {
                Ok(f) => f,
                Err(e) => {
                    // What a later attempt cannot use goes now, and so does a part file the
                    // disk could not take (kept, it would hold a full disk full).
                    let stale = matches!(
                        e.code(),
                        ErrorCode::Precondition
                            | ErrorCode::ChecksumMismatch
                            | ErrorCode::NotFound
                            | ErrorCode::Io
                    );
                    if stale {
                        temp.keep_on_failure(false);
                    }
                    return Err(e);
                }
            };
            temp.persist(&place.dest, dirs.is_none()).await?;
            if !in_order {
                note_dir(dirs, &place.dest);
            }
            tracker.finish();
            Ok(TransferResult {
                bytes: tracker.bytes(),
                etag: fetched.etag,
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
                parts: fetched.parts,
                checksum: fetched.checksum,
                resumed_bytes: fetched.resumed_bytes,
                path: TransferPath::Http,
            })
        };
        if cancel.is_cancelled() {
            return Err(Error::aborted(url));
        }
        work.await
    }

    /// Fetch into `temp`: from the journal's parts if it still applies, else from scratch; with
    /// `in_order`, in one read whose bytes arrive in order (a device or FIFO).
    #[allow(clippy::too_many_arguments)]
    async fn fetch_to(
        &self,
        source: &Source,
        url: &str,
        temp: &TempFile,
        previous: Option<Journal>,
        t: TransferOptions,
        in_order: bool,
        tracker: &Tracker,
        cancel: &CancellationToken,
    ) -> Result<Fetched> {
        let key = Journal::key_of(url);
        if let Some(journal) = previous.filter(|j| j.key == key) {
            let resumed = self.resume(source, url, temp, journal, t, tracker, cancel);
            if let Some(f) = resumed.await? {
                return Ok(f);
            }
        }
        if t.resume {
            temp.reset().await?;
        }
        let opened = cancellable(cancel, url, self.open(source, url, t, in_order)).await?;
        let size = opened.first.size;
        let rest = opened.rest(t.part_size);
        tracker.plan(size, 1 + rest.len() as u32);
        temp.set_len(size).await?;
        let journal = opened
            .etag
            .clone()
            .filter(|_| t.resume)
            .map(|etag| Journal {
                key,
                etag,
                size,
                part_size: t.part_size,
                done: Vec::new(),
            });
        if journal.is_none() {
            // One read, nothing to resume from: a failure leaves nothing behind.
            temp.keep_on_failure(false);
        }
        let etag = opened.etag.clone();
        let seen_etag = opened.first.etag.clone();
        let expected = opened.expected.clone();
        let parts = self
            .write_parts(
                source,
                url,
                temp,
                journal,
                etag.as_deref(),
                Some((opened.first, opened.permit)),
                &rest,
                expected.as_ref(),
                t,
                tracker,
                cancel,
            )
            .await?;
        let (written, mut done, hashed) = parts;
        if written != size {
            return Err(cut_short(url, size, written));
        }
        let verified = verify_file(temp, expected.as_ref(), &mut done, hashed, url);
        let checksum = cancellable(cancel, url, verified).await?;
        Ok(Fetched {
            etag: seen_etag,
            parts: done.len() as u32,
            checksum,
            resumed_bytes: 0,
        })
    }

    /// Continue from a journal, if the object is still the one it describes: re-read the parts
    /// it lists, keep those whose bytes still match their CRC, and fetch the rest. `None`: the
    /// object changed, start over.
    ///
    /// The whole-object checksum then covers the bytes on disk: a CRC is combined from the
    /// kept parts' CRCs computed by that re-read and the fetched parts' computed as they were
    /// written; MD5 and SHA-256 are one pass over the finished file.
    #[allow(clippy::too_many_arguments)]
    async fn resume(
        &self,
        source: &Source,
        url: &str,
        temp: &TempFile,
        journal: Journal,
        t: TransferOptions,
        tracker: &Tracker,
        cancel: &CancellationToken,
    ) -> Result<Option<Fetched>> {
        let head = async {
            let _permit = self.request_permit().await?;
            source.head_pinned(url, &journal.etag).await
        };
        let (info, offered) = match cancellable(cancel, url, head).await {
            Ok(found) => found,
            Err(e) if e.code() == ErrorCode::Precondition => return Ok(None),
            Err(e) => return Err(e),
        };
        if info.size != journal.size || info.etag.as_deref() != Some(journal.etag.as_str()) {
            return Ok(None);
        }
        let expected = choose(t.checksum, &offered, url)?;
        let kept = temp
            .verify_kept(
                journal.done.clone(),
                expected.as_ref().map(|c| c.algorithm),
                cancel.clone(),
            )
            .await
            .map_err(|e| match e.code() {
                ErrorCode::Aborted => Error::aborted(url),
                _ => e,
            })?;
        // The journal goes on with the parts that held; the checksum takes their CRCs of the
        // store's algorithm.
        let have: Vec<DonePart> = kept.iter().map(|k| k.0).collect();
        let mut every: Vec<DonePart> = kept.iter().map(|&((o, l, _), crc)| (o, l, crc)).collect();
        let done_at: std::collections::HashSet<u64> = have.iter().map(|p| p.0).collect();
        let all = plan(journal.size, journal.part_size);
        let missing: Vec<(u64, u64)> = all
            .iter()
            .copied()
            .filter(|p| !done_at.contains(&p.0))
            .collect();
        let resumed: u64 = have.iter().map(|p| p.1).sum();
        tracker.plan(journal.size, all.len() as u32);
        tracker.add(resumed);
        for _ in &have {
            tracker.part_done();
        }
        let fresh = Journal {
            done: have,
            ..journal.clone()
        };
        let (written, done, _) = self
            .write_parts(
                source,
                url,
                temp,
                Some(fresh),
                Some(&journal.etag),
                None,
                &missing,
                expected.as_ref(),
                t,
                tracker,
                cancel,
            )
            .await?;
        if written + resumed != journal.size {
            return Err(cut_short(url, journal.size - resumed, written));
        }
        let fetched_parts = done.len() as u32;
        every.extend(done);
        let verified = verify_file(temp, expected.as_ref(), &mut every, None, url);
        let checksum = cancellable(cancel, url, verified).await?;
        Ok(Some(Fetched {
            etag: Some(journal.etag),
            parts: fetched_parts,
            checksum,
            resumed_bytes: resumed,
        }))
    }

    /// Stream parts into the temporary file through its writer; returns the bytes written, the
    /// parts' `(offset, length, crc)`, and the whole object's hash when it came in one read.
    /// An abort stops the parts, and returns once the writer has written what it was sent and
    /// recorded the completed parts in the journal.
    #[allow(clippy::too_many_arguments)]
    async fn write_parts(
        &self,
        source: &Source,
        url: &str,
        temp: &TempFile,
        journal: Option<Journal>,
        etag: Option<&str>,
        first: Option<(Read, SemaphorePermit<'_>)>,
        rest: &[(u64, u64)],
        expected: Option<&Checksum>,
        t: TransferOptions,
        tracker: &Tracker,
        cancel: &CancellationToken,
    ) -> Result<(u64, Vec<DonePart>, Option<Checksum>)> {
        // A journal keeps its own CRC of every part; the store's serves when it is the same.
        let journal_crc = journal.is_some() && expected.is_none_or(|e| e.algorithm != JOURNAL_CRC);
        let writer = temp.writer(journal);
        let sender = writer.sender();
        let single = rest.is_empty() && first.is_some();
        let whole = std::sync::Mutex::new(None);
        let whole_ref = &whole;
        let deliver = move |offset: u64, len: u64, read: Read| {
            let tx = sender.clone();
            async move {
                check_len(&read, len, url)?;
                let mut crc = if single {
                    PartCrc::whole(expected)
                } else {
                    PartCrc::new(expected)
                };
                let mut own = journal_crc.then(|| PartCrc::of(JOURNAL_CRC));
                let mut sums = |chunk: &[u8]| {
                    crc.update(chunk);
                    if let Some(own) = own.as_mut() {
                        own.update(chunk);
                    }
                };
                let got = send_body(read.body, &tx, offset, tracker, &mut sums).await?;
                if got != len {
                    return Err(cut_short(url, len, got));
                }
                let (crc, hashed) = crc.finish();
                if hashed.is_some() {
                    *whole_ref.lock().unwrap_or_else(|p| p.into_inner()) = hashed;
                }
                let own = own.map_or(crc, |o| o.finish().0);
                // After the part's last chunk, so the writer records it once it is written.
                let _ = tx.send(Msg::PartDone((offset, len, own))).await;
                Ok(crc)
            }
            .boxed()
        };
        let parts = self.run_parts(
            source,
            url,
            etag,
            first,
            rest,
            t.concurrency,
            tracker,
            &deliver,
        );
        let fetched = cancellable(cancel, url, parts).await;
        // The writer's own failure (disk full, …) explains a closed queue better than the parts.
        let written = writer.finish().await?;
        let hashed = whole.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok((written, fetched?, hashed))
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
        // Each file is fdatasynced before its rename; the directories holding the renames are
        // fsynced once each at the end, not once per file. Durable when the call returns.
        let dirs = std::sync::Mutex::new(std::collections::BTreeSet::new());
        let dirs = &dirs;
        let mut outcomes: Vec<(usize, Result<TransferResult>)> =
            futures::stream::iter(items.into_iter().enumerate())
                .map(|(i, (url, dest))| async move {
                    let r = self
                        .download_item(&url, &dest, opts, cancel, Some(i as u32), Some(dirs))
                        .await;
                    (i, r)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        let dirs = std::mem::take(&mut *dirs.lock().unwrap_or_else(|p| p.into_inner()));
        if opts.transfer.durable && !dirs.is_empty() {
            let _ = blocking(move || {
                dirs.iter().for_each(|d| crate::sink::sync_dir_of(d));
                Ok(())
            })
            .await;
        }
        outcomes.sort_by_key(|(i, _)| *i);
        outcomes.into_iter().map(|(_, r)| r).collect()
    }

    async fn request_permit(&self) -> Result<SemaphorePermit<'_>> {
        self.requests
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorCode::Generic, "the request budget was closed"))
    }
}

/// The first reply of a transfer and what it decided.
struct Opened<'a> {
    first: Read,
    permit: SemaphorePermit<'a>,
    /// The strong ETag later parts are pinned to; `None`: `first` is the whole object.
    etag: Option<String>,
    /// The checksum to verify.
    expected: Option<Checksum>,
}

impl Opened<'_> {
    /// The parts after the first.
    fn rest(&self, part_size: u64) -> Vec<(u64, u64)> {
        if self.etag.is_none() {
            return Vec::new();
        }
        plan(self.first.size, part_size)
            .into_iter()
            .filter(|p| p.0 >= self.first.len)
            .collect()
    }
}

/// What `fetch_to` reports.
struct Fetched {
    etag: Option<String>,
    parts: u32,
    checksum: Option<Checksum>,
    resumed_bytes: u64,
}

/// The result of a whole-object read by the RDMA module (RDMA or HTTP bodies).
fn whole_result(
    head: s3::Head,
    parts: usize,
    checksum: Option<Checksum>,
    path: TransferPath,
    started: Instant,
) -> TransferResult {
    TransferResult {
        bytes: head.size,
        etag: head.etag,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        parts: parts as u32,
        checksum,
        resumed_bytes: 0,
        path,
    }
}

/// downloadMany syncs each directory once at the end: remember this file's.
fn note_dir(dirs: Option<&std::sync::Mutex<std::collections::BTreeSet<PathBuf>>>, dest: &Path) {
    if let (Some(dirs), Some(dir)) = (dirs, dest.parent()) {
        dirs.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir.to_path_buf());
    }
}

/// A whole object read into memory.
struct Whole {
    out: Vec<u8>,
    checksum: Option<Checksum>,
    etag: Option<String>,
    parts: u32,
}

fn ctx_url(ctx: &s3::Ctx) -> String {
    ctx.url().to_string()
}

/// Verify bytes in memory: CRCs from their parts, other hashes by one pass.
fn verify_memory(
    expected: Option<&Checksum>,
    done: &mut [DonePart],
    bytes: &[u8],
    url: &str,
) -> Result<Option<Checksum>> {
    Ok(match expected {
        None => None,
        Some(e) if e.algorithm.is_crc() => Some(verify(e, combine(e.algorithm, done), url)?),
        Some(e) => {
            let mut h = Ordered::new(e.algorithm);
            h.update(bytes);
            Some(verify(e, h.finish(), url)?)
        }
    })
}

fn verify(expected: &Checksum, actual: Checksum, url: &str) -> Result<Checksum> {
    check(expected, &actual, url)?;
    Ok(actual)
}

/// Verify a finished temporary file: CRCs from its parts, other hashes from the single read
/// that computed them in stream (`hashed`) or by one ordered pass over the file.
async fn verify_file(
    temp: &TempFile,
    expected: Option<&Checksum>,
    done: &mut [DonePart],
    hashed: Option<Checksum>,
    url: &str,
) -> Result<Option<Checksum>> {
    Ok(match (expected, hashed) {
        (None, _) => None,
        (Some(e), _) if e.algorithm.is_crc() => Some(verify(e, combine(e.algorithm, done), url)?),
        (Some(e), Some(h)) => Some(verify(e, h, url)?),
        (Some(e), None) => Some(verify(e, temp.hash(Ordered::new(e.algorithm)).await?, url)?),
    })
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
    crc: &mut PartCrc,
) -> Result<()> {
    let mut at = 0usize;
    while let Some(c) = body.next().await {
        let c = c?;
        let end = at + c.len();
        if end > out.len() {
            return Err(cut_short(url, out.len() as u64, end as u64));
        }
        out[at..end].copy_from_slice(&c);
        crc.update(&c);
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
    mode: ChecksumMode,
    url: &str,
) -> Result<Fetched> {
    // A local file carries no checksum of its own.
    choose(mode, &[], url)?;
    let src = src.to_path_buf();
    let (dst, path) = (temp.file().clone(), temp.path.clone());
    let (n, etag) = blocking(move || {
        let (info, _) = file_info(&src)?;
        let mut from = std::fs::File::open(&src).map_err(|e| Error::io(&src, &e))?;
        // Into the file objget opened (never by name again); std's copy uses copy_file_range
        // (reflinks where the filesystem has them), or sendfile/splice into a device or FIFO.
        let n = std::io::copy(&mut from, &mut &*dst).map_err(|e| Error::io(&path, &e))?;
        Ok((n, info.etag))
    })
    .await?;
    tracker.plan(n, 1);
    tracker.add(n);
    tracker.part_done();
    Ok(Fetched {
        etag,
        parts: 1,
        checksum: None,
        resumed_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
                ..Default::default()
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
                ..Default::default()
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
