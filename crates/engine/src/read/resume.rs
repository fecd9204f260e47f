//! Resuming a download: the journal kept beside the part file (which parts are complete, each
//! with its CRC), the lock that keeps a second download out, and the resume itself: re-read the
//! kept parts, fetch the rest.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::budget::Budget;
use crate::error::{Error, ErrorCode, Result};
use crate::fs::{blocking, read_at};

use tokio_util::sync::CancellationToken;

use crate::checksum::choose;
use crate::object::plan;
use crate::options::TransferOptions;
use crate::progress::Tracker;

use super::file::{write_parts, Fetched};
use super::place::{stem, Dir, Place};
use super::sink::{name_of, DonePart, TempFile};
use super::source::Source;
use super::verify::verify_file;
use super::{cancellable, cut_short};

impl TempFile {
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
}

/// The CRC a journal keeps of every part, whatever the store's checksum (or none): what a
/// resume re-reads the kept parts against.
pub(crate) const JOURNAL_CRC: crate::checksum::Algorithm = crate::checksum::Algorithm::Crc64Nvme;

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
        // A journal is only written for an object read in ranged parts: never an empty one.
        (j.size > 0
            && (64 * 1024..=1024 * 1024 * 1024).contains(&j.part_size)
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
pub(super) fn record(
    dir: &Dir,
    file: &std::fs::File,
    journal: Option<&(Journal, PathBuf)>,
    durable: bool,
) {
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
pub(super) const JOURNAL_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

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

/// Continue from a journal, if the object is still the one it describes: re-read the parts
/// it lists, keep those whose bytes still match their CRC, and fetch the rest. `None`: the
/// object changed, start over.
///
/// The whole-object checksum then covers the bytes on disk: a CRC is combined from the
/// kept parts' CRCs computed by that re-read and the fetched parts' computed as they were
/// written; MD5 and SHA-256 are one pass over the finished file.
#[allow(clippy::too_many_arguments)]
pub(super) async fn resume(
    budget: &Budget,
    source: &Source,
    url: &str,
    temp: &TempFile,
    journal: Journal,
    t: TransferOptions,
    tracker: &Tracker,
    cancel: &CancellationToken,
) -> Result<Option<Fetched>> {
    let head = async {
        let _permit = budget.permit().await?;
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
    let (written, done, _) = write_parts(
        budget,
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
            Journal {
                size: 0,
                done: Vec::new(),
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
        let kept_of = |disk: &[u8]| {
            std::fs::write(&path, disk).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            verify_parts(&file, &parts, None, || false)
                .unwrap()
                .unwrap()
                .len()
        };
        assert_eq!(kept_of(&[&data[..200_000], &[0u8; 50_000][..]].concat()), 2);
        assert_eq!(kept_of(&data[..150_000]), 1);
        let file = std::fs::File::open(&path).unwrap();
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
