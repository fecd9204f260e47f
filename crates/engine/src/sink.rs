//! Where bytes land: a temporary file beside the destination, written at offsets, fsynced and
//! renamed into place only when complete.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

use crate::error::{Error, ErrorCode, Result};
use crate::fs::{blocking, read_at, write_all_at};
use crate::place::{stem, Dir, Place};
use crate::progress::Tracker;

/// A temporary file beside the destination, removed on drop unless persisted or kept for a
/// later resume. Every file it makes, opens, renames or removes is relative to the
/// destination's open directory (see `place`).
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    file: Arc<std::fs::File>,
    persisted: AtomicBool,
    durable: bool,
    /// The resume journal beside it (resumable downloads only).
    journal: Option<PathBuf>,
    /// Leave the file and journal in place on failure, for `resume: true`.
    keep: AtomicBool,
    /// The destination's directory, open.
    dir: Arc<Dir>,
    /// The destination itself, a character device or FIFO written in order: no temporary,
    /// nothing to rename or remove.
    direct: bool,
}

/// A file name of `path` (every file of a download is in its directory).
fn name_of(path: &Path) -> &OsStr {
    path.file_name().unwrap_or_default()
}

impl TempFile {
    fn new(place: &Place, path: PathBuf, file: std::fs::File, durable: bool) -> Self {
        Self {
            path,
            file: Arc::new(file),
            persisted: AtomicBool::new(false),
            durable,
            journal: None,
            keep: AtomicBool::new(false),
            dir: place.dir.clone(),
            direct: false,
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

    /// The resumable temporary for `dest`: a fixed name, `.name.objget.part`, with its journal
    /// `.name.objget.json`, locked against a second process resuming the same download. Returns
    /// the journal left by an earlier attempt, if there is one whose part file is still there.
    ///
    /// Both are opened without following links and must be regular files of this user.
    ///
    /// A download that holds the lock is waited for up to [`LOCK_WAIT`], then this fails with
    /// `Busy`. When the holder lets go after moving its part file away (it finished and renamed
    /// it into place, or failed and removed it), the lock is taken again on a fresh part file,
    /// never on the one that is now `dest`.
    pub(crate) async fn resumable(place: &Place, durable: bool) -> Result<(Self, Option<Journal>)> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            if let Some(got) = Self::try_resumable(place.clone(), durable).await? {
                return Ok(got);
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorCode::Busy,
                    format!(
                        "{}: another download is resuming into this destination",
                        place.dest.display()
                    ),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// One attempt at [`TempFile::resumable`]: `None` while another download holds the lock.
    async fn try_resumable(place: Place, durable: bool) -> Result<Option<(Self, Option<Journal>)>> {
        blocking(move || {
            let dir = &place.dir;
            let stem = stem(&place.name);
            let named = |suffix: &str| {
                let mut n = OsString::from(".");
                n.push(&stem);
                n.push(suffix);
                dir.path().join(n)
            };
            let path = named(".objget.part");
            let journal = named(".objget.json");
            // Refused before anything is created, so a refusal leaves nothing behind.
            dir.check_own(name_of(&journal_tmp(&journal)))?;
            dir.check_own(name_of(&journal))?;
            let file = dir
                .open_own(name_of(&path), true)?
                .ok_or_else(|| Error::new(ErrorCode::Io, "the part file vanished"))?;
            if !lock(&file, &path)? {
                return Ok(None);
            }
            let previous = match dir.open_own(name_of(&journal), false)? {
                Some(mut f) => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut f, &mut text)
                        .ok()
                        .and_then(|_| Journal::parse(&text))
                }
                None => None,
            }
            .filter(|j| file.metadata().is_ok_and(|m| m.len() == j.size));
            let mut temp = Self::new(&place, path, file, durable);
            temp.journal = Some(journal);
            temp.keep = AtomicBool::new(true);
            Ok(Some((temp, previous)))
        })
        .await
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

    /// Re-read the parts a journal lists and keep those whose bytes on disk still have the
    /// journal's CRC (a flipped bit, or bytes a power loss kept from the disk, fail it). Returns
    /// each kept part with the CRC of `store` (the store's checksum, when it is a CRC) over the
    /// same bytes, so that a whole-object CRC combined from them covers what is on disk.
    /// `cancel` stops the pass between reads (with `Aborted`, after which nothing is read).
    pub(crate) async fn verify_kept(
        &self,
        parts: Vec<DonePart>,
        store: Option<crate::checksum::Algorithm>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<Vec<(DonePart, u64)>> {
        let (file, path) = (self.file.clone(), self.path.clone());
        blocking(move || {
            verify_parts(&file, &parts, store, || cancel.is_cancelled())
                .map_err(|e| Error::io(&path, &e))?
                .ok_or_else(|| Error::new(ErrorCode::Aborted, "the transfer was aborted"))
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
    /// `sync_dir: false` leaves the directory's fsync to the caller (downloadMany syncs each
    /// directory once, after all its files).
    pub(crate) async fn persist(&self, dest: &Path, sync_dir: bool) -> Result<()> {
        if self.direct {
            // Written in order into a device or FIFO: there is nothing to sync or rename.
            self.persisted.store(true, Ordering::SeqCst);
            return Ok(());
        }
        let (file, path, dest) = (self.file.clone(), self.path.clone(), dest.to_path_buf());
        let (durable, journal, dir) = (self.durable, self.journal.clone(), self.dir.clone());
        blocking(move || {
            // fdatasync: the data and the size; the rename is made durable by the directory sync.
            if durable {
                file.sync_data().map_err(|e| Error::io(&path, &e))?;
            }
            dir.rename(name_of(&path), name_of(&dest))?;
            if let Some(j) = &journal {
                let _ = dir.remove(name_of(j));
            }
            if durable && sync_dir {
                dir.sync();
            }
            Ok(())
        })
        .await?;
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

/// The CRC a journal keeps of every part, whatever the store's checksum (or none): what a
/// resume re-reads the kept parts against.
pub(crate) const JOURNAL_CRC: crate::checksum::Algorithm = crate::checksum::Algorithm::Crc64Nvme;

/// What a writer thread receives.
pub(crate) enum Msg {
    /// Bytes at an offset.
    Chunk(u64, Bytes),
    /// Every chunk of this part has been sent before this message.
    PartDone(DonePart),
    /// Nothing more will come (senders may still exist, unused).
    End,
}

/// The record of a resumable download: which object (by URL without its query, and ETag) and
/// which parts of the part file are complete, each with its [`JOURNAL_CRC`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Journal {
    pub(crate) key: String,
    pub(crate) etag: String,
    pub(crate) size: u64,
    pub(crate) part_size: u64,
    pub(crate) done: Vec<DonePart>,
}

impl Journal {
    /// The key for a URL: SHA-256 of the URL without its query (which may carry a signature, and
    /// changes when a URL is presigned again).
    pub(crate) fn key_of(url: &str) -> String {
        let bare = url.split(['?', '#']).next().unwrap_or(url);
        ring::digest::digest(&ring::digest::SHA256, bare.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn to_json(&self) -> String {
        serde_json::json!({
            "objget": JOURNAL_VERSION,
            "key": self.key,
            "etag": self.etag,
            "size": self.size,
            "partSize": self.part_size,
            "crc": JOURNAL_CRC.as_str(),
            "done": self.done,
        })
        .to_string()
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        // Version 1 kept the store's CRCs, or none: its parts cannot be re-verified.
        if v["objget"].as_u64()? != JOURNAL_VERSION || v["crc"].as_str()? != JOURNAL_CRC.as_str() {
            return None;
        }
        let done = v["done"]
            .as_array()?
            .iter()
            .map(|p| Some((p[0].as_u64()?, p[1].as_u64()?, p[2].as_u64()?)))
            .collect::<Option<Vec<_>>>()?;
        let j = Self {
            key: v["key"].as_str()?.to_string(),
            etag: v["etag"].as_str()?.to_string(),
            size: v["size"].as_u64()?,
            part_size: v["partSize"].as_u64()?,
            done,
        };
        // Only a journal whose parts are exactly parts of its own plan is trusted.
        let planned = |&(offset, len, _): &DonePart| {
            offset % j.part_size == 0 && offset < j.size && len == j.part_size.min(j.size - offset)
        };
        let mut offsets: Vec<u64> = j.done.iter().map(|p| p.0).collect();
        offsets.sort_unstable();
        offsets.dedup();
        ((64 * 1024..=1024 * 1024 * 1024).contains(&j.part_size)
            && j.done.iter().all(planned)
            && offsets.len() == j.done.len())
        .then_some(j)
    }
}

/// The journal format: 2 records a [`JOURNAL_CRC`] of every part.
const JOURNAL_VERSION: u64 = 2;

/// Which of `parts` still hold their CRC ([`TempFile::verify_kept`]); `None` once `cancelled`.
fn verify_parts(
    file: &std::fs::File,
    parts: &[DonePart],
    store: Option<crate::checksum::Algorithm>,
    cancelled: impl Fn() -> bool,
) -> std::io::Result<Option<Vec<(DonePart, u64)>>> {
    use crate::checksum::PartCrc;
    // The store's CRC, when it is a CRC other than the journal's own.
    let store = store.filter(|a| a.is_crc() && *a != JOURNAL_CRC);
    let mut buf = vec![0u8; 1 << 20];
    let mut kept = Vec::with_capacity(parts.len());
    for &(offset, len, crc) in parts {
        let (mut own, mut other) = (PartCrc::of(JOURNAL_CRC), store.map(PartCrc::of));
        let mut at = 0u64;
        while at < len {
            if cancelled() {
                return Ok(None);
            }
            let want = buf
                .len()
                .min(usize::try_from(len - at).unwrap_or(usize::MAX));
            let n = read_at(file, &mut buf[..want], offset + at)?;
            if n == 0 {
                break;
            }
            own.update(&buf[..n]);
            if let Some(o) = other.as_mut() {
                o.update(&buf[..n]);
            }
            at += n as u64;
        }
        let own = own.finish().0;
        if at == len && own == crc {
            kept.push(((offset, len, crc), other.map_or(own, |o| o.finish().0)));
        }
    }
    Ok(Some(kept))
}

/// Write the journal beside the part file (atomically, by rename, never through a link). A
/// failure only costs a later resume some parts, so it is not an error.
fn record(dir: &Dir, file: &std::fs::File, journal: Option<&(Journal, PathBuf)>, durable: bool) {
    let Some((j, path)) = journal else {
        return;
    };
    if durable && file.sync_data().is_err() {
        return;
    }
    let _ = dir.replace(
        name_of(&journal_tmp(path)),
        name_of(path),
        j.to_json().as_bytes(),
    );
}

/// Where the journal is written before its rename.
fn journal_tmp(journal: &Path) -> PathBuf {
    journal.with_extension("json.tmp")
}

/// Journal writes at most this often when durable (each costs an fdatasync of the data).
const JOURNAL_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a resumable download waits for another one holding its destination.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Take the advisory lock on the part file without waiting. `false`: another download holds
/// it, or held it and has moved the file away since it was opened here (the lock is then on a
/// file that is no longer the part file: open it again).
#[cfg(unix)]
fn lock(file: &std::fs::File, path: &Path) -> Result<bool> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    // SAFETY: a valid open descriptor; the lock goes with the descriptor (or the process).
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(false),
            _ => Err(Error::io(path, &e)),
        };
    }
    let held = file.metadata().map_err(|e| Error::io(path, &e))?;
    Ok(std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.dev() == held.dev() && m.ino() == held.ino()))
}

#[cfg(not(unix))]
fn lock(_file: &std::fs::File, _path: &Path) -> Result<bool> {
    Ok(true)
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
pub(crate) async fn send_body(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Journal {
        Journal {
            key: Journal::key_of("http://h/o?sig=secret"),
            etag: "\"e\"".into(),
            size: 200_000,
            part_size: 65_536,
            done: vec![(65_536, 65_536, 7), (196_608, 3_392, 9)],
        }
    }

    #[test]
    fn journals_round_trip_without_the_query() {
        let j = journal();
        assert_eq!(Journal::parse(&j.to_json()), Some(j.clone()));
        assert_eq!(j.key, Journal::key_of("http://h/o?sig=other"));
        assert!(!j.to_json().contains("secret"));
    }

    #[test]
    fn journals_that_do_not_fit_their_plan_are_ignored() {
        for bad in [
            Journal {
                part_size: 0,
                ..journal()
            },
            Journal {
                done: vec![(1, 65_536, 0)],
                ..journal()
            },
            Journal {
                done: vec![(196_608, 65_536, 0)],
                ..journal()
            },
            Journal {
                done: vec![(0, 65_536, 0), (0, 65_536, 0)],
                ..journal()
            },
            Journal {
                done: vec![(262_144, 1, 0)],
                ..journal()
            },
        ] {
            assert_eq!(Journal::parse(&bad.to_json()), None, "{bad:?}");
        }
        assert_eq!(Journal::parse("{}"), None);
        assert_eq!(Journal::parse("not json"), None);
        // Version 1 kept no CRC of its own for some parts: not trusted.
        let v1 = journal().to_json().replace("\"objget\":2", "\"objget\":1");
        assert_eq!(Journal::parse(&v1), None);
    }

    fn crc(alg: crate::checksum::Algorithm, bytes: &[u8]) -> u64 {
        let mut c = crate::checksum::PartCrc::of(alg);
        c.update(bytes);
        c.finish().0
    }

    #[test]
    fn kept_parts_are_those_whose_bytes_still_match() {
        use crate::checksum::Algorithm;
        let data: Vec<u8> = (0..250_000u32).map(|i| (i * 13 % 241) as u8).collect();
        let parts: Vec<DonePart> = [(0u64, 100_000u64), (100_000, 100_000), (200_000, 50_000)]
            .iter()
            .map(|&(o, l)| (o, l, crc(JOURNAL_CRC, &data[o as usize..(o + l) as usize])))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let mut disk = data.clone();
        disk[150_000] ^= 1; // a flipped bit in the second part
        std::fs::write(&path, &disk).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let kept = verify_parts(&file, &parts, Some(Algorithm::Crc32c), || false)
            .unwrap()
            .unwrap();
        let at: Vec<u64> = kept.iter().map(|k| k.0 .0).collect();
        assert_eq!(at, vec![0, 200_000]);
        // Each kept part comes with the store's CRC of the bytes on disk.
        assert_eq!(
            kept[0],
            (parts[0], crc(Algorithm::Crc32c, &data[..100_000]))
        );
        // The journal's own CRC serves when it is the store's, and no CRC is needed for others.
        for store in [Some(JOURNAL_CRC), Some(Algorithm::Md5), None] {
            let kept = verify_parts(&file, &parts, store, || false)
                .unwrap()
                .unwrap();
            assert_eq!(kept[1], (parts[2], parts[2].2));
        }
        // Bytes that never reached the disk: the journal says three parts, the disk holds zeros
        // where the last one should be, or is shorter.
        std::fs::write(&path, [&data[..200_000], &[0u8; 50_000][..]].concat()).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(
            verify_parts(&file, &parts, None, || false)
                .unwrap()
                .unwrap()
                .len(),
            2
        );
        std::fs::write(&path, &data[..150_000]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(
            verify_parts(&file, &parts, None, || false)
                .unwrap()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(verify_parts(&file, &parts, None, || true).unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_lock_is_not_taken_on_a_part_file_moved_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".d.objget.part");
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let (winner, loser) = (open(), open());
        assert!(lock(&winner, &path).unwrap());
        assert!(!lock(&loser, &path).unwrap(), "held by the winner");
        // The winner finishes: its part file becomes the destination, and it lets go.
        std::fs::rename(&path, dir.path().join("d")).unwrap();
        drop(winner);
        assert!(
            !lock(&loser, &path).unwrap(),
            "locked, but not the part file any more"
        );
        drop(loser);
        assert!(lock(&open(), &path).unwrap(), "a fresh part file");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_held_destination_is_busy_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let (place, _) = Place::open(&dir.path().join("d"), None).unwrap();
        let (held, _) = TempFile::resumable(&place, false).await.unwrap();
        let err = TempFile::resumable(&place, false).await.err().unwrap();
        assert_eq!(err.code(), ErrorCode::Busy);
        drop(held);
        assert!(TempFile::resumable(&place, false).await.is_ok());
    }
}
