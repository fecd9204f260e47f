//! Where bytes land: a temporary file beside the destination, written at offsets, fsynced and
//! renamed into place only when complete.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

use super::place::{stem, Dir, Place};
use super::resume::{record, Journal, JOURNAL_EVERY};
use crate::error::{Error, ErrorCode, Result};
use crate::fs::{blocking, read_at, write_all_at};
use crate::progress::Tracker;

/// A temporary file beside the destination, removed on drop unless persisted or kept for a
/// later resume. Every file it makes, opens, renames or removes is relative to the
/// destination's open directory (see `place`).
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    pub(super) file: Arc<std::fs::File>,
    persisted: AtomicBool,
    durable: bool,
    /// The resume journal beside it (resumable downloads only).
    pub(super) journal: Option<PathBuf>,
    /// Leave the file and journal in place on failure, for `resume: true`.
    pub(super) keep: AtomicBool,
    /// The destination's directory, open.
    dir: Arc<Dir>,
    /// The destination itself, a character device or FIFO written in order: no temporary,
    /// nothing to rename or remove.
    direct: bool,
    /// When it was opened, in the order of every temporary of the process (a batch syncs a
    /// filesystem through its oldest file's descriptor, which has seen every write error since).
    pub(super) opened: u64,
}

/// The order temporaries are opened in.
static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A file name of `path` (every file of a download is in its directory).
pub(super) fn name_of(path: &Path) -> &OsStr {
    path.file_name().unwrap_or_default()
}

impl TempFile {
    pub(super) fn new(place: &Place, path: PathBuf, file: std::fs::File, durable: bool) -> Self {
        Self {
            path,
            file: Arc::new(file),
            persisted: AtomicBool::new(false),
            durable,
            journal: None,
            keep: AtomicBool::new(false),
            dir: place.dir.clone(),
            direct: false,
            opened: OPENED.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A new temporary `.name.objget-<random>.part` beside the destination (`O_EXCL`, no link
    /// followed).
    pub(crate) async fn create(place: &Place, durable: bool) -> Result<Self> {
        let place = place.clone();
        blocking(move || {
            let mut name = OsString::from(".");
            name.push(stem(&place.name));
            name.push(format!(".objget-{:016x}.part", rand::random::<u64>()));
            let file = place.dir.create_new(&name, 0o666)?;
            Ok(Self::new(
                &place,
                place.dir.path().join(name),
                file,
                durable,
            ))
        })
        .await
    }

    /// The destination itself, a character device or FIFO, written in order: nothing is
    /// renamed or removed, and nothing can be resumed.
    pub(crate) fn direct(place: &Place, file: std::fs::File, durable: bool) -> Self {
        let mut temp = Self::new(place, place.dest.clone(), file, durable);
        temp.direct = true;
        temp
    }

    /// Start over: empty the file and forget the journal.
    pub(crate) async fn reset(&self) -> Result<()> {
        let (file, path, journal) = (self.file.clone(), self.path.clone(), self.journal.clone());
        let dir = self.dir.clone();
        blocking(move || {
            if let Some(j) = journal {
                let _ = dir.remove(name_of(&j));
            }
            file.set_len(0).map_err(|e| Error::io(&path, &e))
        })
        .await
    }

    /// Whether a failure leaves this file for a later resume.
    pub(crate) fn keep_on_failure(&self, keep: bool) {
        self.keep.store(keep, Ordering::SeqCst);
    }

    /// Hash the finished file in byte order (for MD5 and SHA-256, which parts cannot combine).
    pub(crate) async fn hash(
        &self,
        mut h: crate::checksum::Ordered,
    ) -> Result<crate::checksum::Checksum> {
        let (file, path) = (self.file.clone(), self.path.clone());
        blocking(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut at = 0u64;
            loop {
                let n = read_at(&file, &mut buf, at).map_err(|e| Error::io(&path, &e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                at += n as u64;
            }
            Ok(h.finish())
        })
        .await
    }

    /// The open file, for positional writes outside the writer thread.
    pub(crate) fn file(&self) -> &Arc<std::fs::File> {
        &self.file
    }

    /// Size the file up front so that parts can be written at their offsets in any order.
    pub(crate) async fn set_len(&self, len: u64) -> Result<()> {
        if self.direct {
            return Ok(());
        }
        let (file, path) = (self.file.clone(), self.path.clone());
        blocking(move || file.set_len(len).map_err(|e| Error::io(&path, &e))).await
    }

    /// A writer for this file: one blocking thread that receives chunks at offsets from every
    /// part and `pwrite`s them, so chunks go from the socket's buffers to the kernel with no
    /// extra copy, network and disk overlap, and at most `WRITE_QUEUE` chunks wait in memory.
    /// With a journal, each part's completion is recorded once its bytes are written (with
    /// `durable`, once they are synced). [`Writer::finish`] returns only after the last record.
    pub(crate) fn writer(&self, journal: Option<Journal>) -> Writer {
        let (file, path) = (self.file.clone(), self.path.clone());
        let (durable, direct, dir) = (self.durable, self.direct, self.dir.clone());
        let mut journal = journal.zip(self.journal.clone());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(WRITE_QUEUE);
        let handle = tokio::task::spawn_blocking(move || -> Result<u64> {
            let mut written = 0u64;
            let mut unsynced = 0u64;
            let mut recorded = std::time::Instant::now();
            let mut dirty = false;
            let mut outcome = Ok(());
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    Msg::Chunk(offset, chunk) => {
                        let wrote = if direct {
                            write_in_order(&file, &chunk, offset, written)
                        } else {
                            write_all_at(&file, &chunk, offset)
                        };
                        if let Err(e) = wrote {
                            outcome = Err(Error::io(&path, &e));
                            break;
                        }
                        written += chunk.len() as u64;
                        unsynced += chunk.len() as u64;
                        if durable && unsynced >= WRITEBACK_EVERY {
                            start_writeback(&file);
                            unsynced = 0;
                        }
                    }
                    Msg::End => break,
                    Msg::PartDone(part) => {
                        let Some((j, _)) = journal.as_mut() else {
                            continue;
                        };
                        j.done.push(part);
                        dirty = true;
                        // Durable: the journal never claims bytes the disk may not hold, and
                        // the data is synced at most once a second for it.
                        if !durable || recorded.elapsed() >= JOURNAL_EVERY {
                            record(&dir, &file, journal.as_ref(), durable);
                            recorded = std::time::Instant::now();
                            dirty = false;
                        }
                    }
                }
            }
            if dirty {
                // The last completed parts, whatever ended the transfer.
                record(&dir, &file, journal.as_ref(), durable);
            }
            outcome.map(|()| written)
        });
        Writer { tx, handle }
    }

    /// fsync, rename over `dest`, fsync the directory (relative to the directory opened at the
    /// start, so a link swapped in along the path since cannot redirect the rename).
    pub(crate) async fn persist(self, dest: &Path) -> Result<()> {
        let dest = dest.to_path_buf();
        blocking(move || self.land(&dest, self.durable, true)).await
    }

    /// Whether this is a character device or FIFO written in order (nothing to sync or rename).
    pub(super) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Whether it is to be made durable.
    pub(super) fn is_durable(&self) -> bool {
        self.durable
    }

    /// The blocking work of [`persist`](Self::persist): with `sync_data`, fdatasync (the data
    /// and the size; the rename is made durable by the directory sync), then rename over `dest`,
    /// remove the journal, and with `sync_dir` (and `durable`) fsync the directory. A
    /// downloadMany's batch passes `sync_data: false` for files its syncfs has already made
    /// durable, and `sync_dir: false`: it syncs each directory once, after all its files.
    pub(super) fn land(&self, dest: &Path, sync_data: bool, sync_dir: bool) -> Result<()> {
        if !self.direct {
            if sync_data {
                self.file
                    .sync_data()
                    .map_err(|e| Error::io(&self.path, &e))?;
            }
            self.dir.rename(name_of(&self.path), name_of(dest))?;
            if let Some(j) = &self.journal {
                let _ = self.dir.remove(name_of(j));
            }
            if self.durable && sync_dir {
                self.dir.sync();
            }
        }
        // Written in order into a device or FIFO: there was nothing to sync or rename.
        self.persisted.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// fsync a directory, making the renames in it durable. Best effort: some filesystems refuse.
pub(crate) fn sync_dir_of(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted.load(Ordering::SeqCst)
            && !self.keep.load(Ordering::SeqCst)
            && !self.direct
        {
            let _ = self.dir.remove(name_of(&self.path));
            if let Some(j) = &self.journal {
                let _ = self.dir.remove(name_of(j));
            }
        }
    }
}

/// A part whose bytes are all written: `(offset, length, crc)`. In a journal the CRC is always
/// [`JOURNAL_CRC`]'s; elsewhere it is the verified checksum's (0 when that is not a CRC).
pub(crate) type DonePart = (u64, u64, u64);

/// What a writer thread receives.
pub(crate) enum Msg {
    /// Bytes at an offset.
    Chunk(u64, Bytes),
    /// Every chunk of this part has been sent before this message.
    PartDone(DonePart),
    /// Nothing more will come (senders may still exist, unused).
    End,
}

/// Chunks waiting for the writer thread, per file (hyper's chunks are at most a few tens of KiB).
const WRITE_QUEUE: usize = 64;
/// Start the kernel's writeback this often, so the final fdatasync has little left to do.
const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

/// Sends chunks to a file's writer thread.
pub(crate) struct Writer {
    tx: tokio::sync::mpsc::Sender<Msg>,
    handle: tokio::task::JoinHandle<Result<u64>>,
}

impl Writer {
    /// A sender for one part (cheap to clone).
    pub(crate) fn sender(&self) -> tokio::sync::mpsc::Sender<Msg> {
        self.tx.clone()
    }

    /// Wait for every chunk sent so far to be written; returns the bytes written.
    pub(crate) async fn finish(self) -> Result<u64> {
        // A writer that already failed has stopped listening; its result says why.
        let _ = self.tx.send(Msg::End).await;
        drop(self.tx);
        self.handle
            .await
            .map_err(|e| Error::new(ErrorCode::Generic, format!("file write task failed: {e}")))?
    }
}

/// Stream a body into the writer from `offset`, showing each chunk to `sums` (the part's
/// CRCs); returns the bytes sent. A closed queue means the writer failed: stop, and let
/// `finish` report why.
pub(crate) async fn queue_body(
    mut body: BoxStream<'static, Result<Bytes>>,
    tx: &tokio::sync::mpsc::Sender<Msg>,
    offset: u64,
    tracker: &Tracker,
    sums: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<u64> {
    let mut at = offset;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        let n = chunk.len() as u64;
        sums(&chunk);
        if tx.send(Msg::Chunk(at, chunk)).await.is_err() {
            break;
        }
        tracker.add(n);
        at += n;
    }
    Ok(at - offset)
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; SYNC_FILE_RANGE_WRITE only starts writeback, never blocks
    // on it, and a failure here is harmless (the final fdatasync does the work).
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File) {}

/// A device or FIFO takes bytes in order only; the single read that feeds it sends them so.
fn write_in_order(
    file: &std::fs::File,
    buf: &[u8],
    offset: u64,
    written: u64,
) -> std::io::Result<()> {
    if offset != written {
        return Err(std::io::Error::other(format!(
            "bytes for offset {offset} arrived at {written}; a device or FIFO is written in order"
        )));
    }
    std::io::Write::write_all(&mut &*file, buf)
}
