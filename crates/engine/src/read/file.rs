//! Downloads into a file: the destination opened safely, parts streamed to a temporary file
//! beside it through one writer, a resume from an earlier attempt, a local file copied.

use std::path::Path;
use std::time::Instant;

use futures::FutureExt;
use tokio::sync::SemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::budget::Budget;
use crate::checksum::{choose, Checksum, ChecksumMode, PartCrc};
use crate::error::{Error, ErrorCode, Result};
use crate::fs::{absolute, blocking};
use crate::options::{CallOptions, RdmaMode, TransferOptions};
use crate::progress::Tracker;
use crate::rdma::TransferPath;

use super::commit::Batch;
use super::parts::{open, run_parts};
use super::place::Place;
use super::resume::{resume, Journal, JOURNAL_CRC};
use super::sink::{queue_body, DonePart, Msg, TempFile};
use super::source::{file_info, Read, Source};
use super::verify::verify_file;
use super::{cancellable, check_len, cut_short, TransferResult};

/// One download's bookkeeping: its progress, downloadMany's group commit and the item's index
/// there, when it started.
pub(crate) struct Item<'a> {
    pub(crate) tracker: Tracker,
    pub(crate) batch: Option<(&'a Batch, usize)>,
    pub(crate) started: Instant,
}

/// Where a download lands, and the transfer settings that fit it.
pub(crate) struct Target {
    pub(crate) place: Place,
    /// A character device or FIFO, written in order (no temporary file, nothing to resume).
    pub(crate) stream: Option<std::fs::File>,
    pub(crate) t: TransferOptions,
}

impl Target {
    /// Whether the RDMA module may take this download (it neither resumes nor writes in order).
    pub(crate) fn rdma_may(&self) -> bool {
        !self.t.resume && self.stream.is_none()
    }
}

/// Open the destination (beneath `root`, when given) and settle what the transfer can do there.
pub(crate) async fn prepare(dest: &Path, opts: &CallOptions) -> Result<Target> {
    let mut t = opts.transfer;
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
    Ok(Target { place, stream, t })
}

/// Download over HTTP (or a local copy) into `place`: a temporary file beside it, renamed into
/// place when every byte has arrived and matched its checksum; with `resume`, continued from
/// an earlier attempt's part file where it still applies. Finishes its tracker.
pub(crate) async fn download(
    budget: &Budget,
    source: &Source,
    url: &str,
    target: Target,
    item: Item<'_>,
    cancel: &CancellationToken,
) -> Result<TransferResult> {
    let Target { place, stream, t } = target;
    let Item {
        tracker,
        batch,
        started,
    } = item;
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
    let fetched = match source {
        Source::File(src) => copy_local(src, &temp, &tracker, t.checksum, url).await,
        _ => {
            fetch_to(
                budget, source, url, &temp, previous, t, in_order, &tracker, cancel,
            )
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
    settle(temp, &place.dest, batch, tracker.bytes()).await?;
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
}

/// Fetch into `temp`: from the journal's parts if it still applies, else from scratch; with
/// `in_order`, in one read whose bytes arrive in order (a device or FIFO).
#[allow(clippy::too_many_arguments)]
async fn fetch_to(
    budget: &Budget,
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
        let resumed = resume(budget, source, url, temp, journal, t, tracker, cancel);
        if let Some(f) = resumed.await? {
            return Ok(f);
        }
    }
    if t.resume {
        temp.reset().await?;
    }
    let opened = cancellable(cancel, url, open(budget, source, url, t, in_order)).await?;
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
    let parts = write_parts(
        budget,
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

/// Stream parts into the temporary file through its writer; returns the bytes written, the
/// parts' `(offset, length, crc)`, and the whole object's hash when it came in one read.
/// An abort stops the parts, and returns once the writer has written what it was sent and
/// recorded the completed parts in the journal.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write_parts(
    budget: &Budget,
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
            let got = queue_body(read.body, &tx, offset, tracker, &mut sums).await?;
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
    let parts = run_parts(
        budget,
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

/// What `fetch_to` reports.
pub(super) struct Fetched {
    pub(super) etag: Option<String>,
    pub(super) parts: u32,
    pub(super) checksum: Option<Checksum>,
    pub(super) resumed_bytes: u64,
}

/// Put a finished temporary in place: now (fdatasync, rename, directory fsync), or in a
/// downloadMany through its group commit, which renames it once its bytes are durable.
pub(super) async fn settle(
    temp: TempFile,
    dest: &Path,
    batch: Option<(&Batch, usize)>,
    size: u64,
) -> Result<()> {
    match batch {
        Some((batch, index)) => batch.queue(temp, dest, index, size).await,
        None => temp.persist(dest).await,
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
