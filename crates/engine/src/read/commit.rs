//! A downloadMany's group commit: its files become durable together, and none is renamed into
//! place before its bytes are on disk.
//!
//! A finished temporary is queued here instead of being synced and renamed on its own, so its
//! slot takes the next object at once. One committer thread takes whatever has queued, makes it
//! durable with one syncfs(2) per filesystem (one journal commit and one cache flush for the
//! batch, instead of one per file), and only then renames each file into place. The directories
//! that received renames are fsynced once each after the last batch, before the call returns.
//!
//! syncfs is used only where it keeps every promise fdatasync did: the kernel reports write
//! errors through it (Linux 5.8 and later; it is called on the batch's oldest descriptor, which
//! has seen every error since before the batch's first write), and it has little besides the
//! batch to write (syncfs writes every dirty page of the filesystem, other processes' too: with
//! more than [`OTHERS_DIRTY`] of those, the batch's files are fdatasynced one by one instead).
//! When syncfs reports an error, each file of that filesystem is fdatasynced to learn which it
//! was; a file whose sync or rename fails is removed and its item fails. Without syncfs (older
//! kernels, other systems) each file is fdatasynced and renamed in its own slot, as `download`
//! does. A file of [`ALONE_FROM`] or more is synced and renamed in its own slot even here: a
//! batch does not share its data's writeback, and slots sync in parallel. A killed process
//! leaves only temporaries for what was not renamed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::sink::{sync_dir_of, TempFile};
use super::TransferResult;
use crate::error::{Error, ErrorCode, Result};
use crate::fs::blocking;

/// Files waiting for the committer at most: past this a finished item waits for room, so open
/// temporaries stay bounded when the disk is slower than the network.
const QUEUE: usize = 64;
/// Dirty bytes of the whole machine beyond the batch's own past which syncfs is not used (it
/// would wait for other processes' writes).
const OTHERS_DIRTY: u64 = 64 * 1024 * 1024;

/// A file this large is synced and renamed in its own slot even in a group commit: its
/// fdatasync is mostly its own data's writeback, which a batch does not share, and slots sync
/// in parallel where the committer is one thread (group commit measured 13-17 % slower than
/// per-file fdatasync on mixed sizes up to 64 MiB; bench/durability.mjs).
const ALONE_FROM: u64 = 8 * 1024 * 1024;

/// A finished temporary, waiting to be made durable and renamed over its destination.
struct Landed {
    temp: TempFile,
    dest: PathBuf,
    index: usize,
}

/// The group commit of one downloadMany, or, without `durable` or where syncfs cannot serve,
/// the directories its files were renamed in (each in its slot).
pub(crate) struct Batch {
    /// The committer's queue; `None`: each file syncs and renames in its slot.
    tx: Option<mpsc::Sender<Landed>>,
    committer: Option<tokio::task::JoinHandle<Vec<(usize, Error)>>>,
    /// Directories of the files renamed in their slots.
    dirs: Mutex<BTreeSet<PathBuf>>,
    durable: bool,
}

impl Batch {
    /// A batch: with a committer thread when `durable` and syncfs reports errors here, else
    /// renames in each slot (with `durable`, after each file's fdatasync).
    pub(crate) fn new(durable: bool) -> Self {
        let (tx, committer) = if durable && syncfs_reports_errors() {
            let (tx, rx) = mpsc::channel(QUEUE);
            let committer = tokio::task::spawn_blocking(move || commit(rx, &mut |_, _| {}));
            (Some(tx), Some(committer))
        } else {
            (None, None)
        };
        Self {
            tx,
            committer,
            dirs: Mutex::new(BTreeSet::new()),
            durable,
        }
    }

    /// Put item `index`'s finished temporary in place over `dest`: through the committer, once
    /// its bytes are durable (its outcome then comes from [`Batch::finish`]), or now.
    pub(crate) async fn queue(
        &self,
        temp: TempFile,
        dest: &Path,
        index: usize,
        size: u64,
    ) -> Result<()> {
        let Some(tx) = self.tx.as_ref().filter(|_| size < ALONE_FROM) else {
            let dir = dest
                .parent()
                .filter(|_| !temp.is_direct())
                .map(Path::to_path_buf);
            let dest = dest.to_path_buf();
            blocking(move || temp.land(&dest, temp.is_durable(), false)).await?;
            if let Some(dir) = dir {
                self.dirs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(dir);
            }
            return Ok(());
        };
        let landed = Landed {
            temp,
            dest: dest.to_path_buf(),
            index,
        };
        // The committer stops only when every sender is gone (or it panicked, and then the
        // temporary is removed as this message drops).
        tx.send(landed)
            .await
            .map_err(|_| Error::new(ErrorCode::Generic, "the commit thread stopped"))
    }

    /// Wait until every queued file is durable and renamed, and the directories synced; an
    /// item whose sync or rename failed gets that error as its outcome.
    pub(crate) async fn finish(self, outcomes: &mut [Result<TransferResult>]) {
        let Self {
            tx,
            committer,
            dirs,
            durable,
        } = self;
        drop(tx);
        let dirs = dirs.into_inner().unwrap_or_else(|p| p.into_inner());
        if durable && !dirs.is_empty() {
            let _ = blocking(move || {
                dirs.iter().for_each(|d| sync_dir_of(d));
                Ok(())
            })
            .await;
        }
        let Some(committer) = committer else {
            return;
        };
        match committer.await {
            Ok(failed) => {
                for (i, e) in failed {
                    if let Some(o) = outcomes.get_mut(i) {
                        *o = Err(e);
                    }
                }
            }
            // Unreachable short of a panic: what was queued may not be in place, so no
            // finished item is reported as done.
            Err(e) => {
                for o in outcomes.iter_mut().filter(|o| o.is_ok()) {
                    *o = Err(Error::new(
                        ErrorCode::Generic,
                        format!("the commit task failed: {e}"),
                    ));
                }
            }
        }
    }
}

/// The committer's loop; `synced` sees each batch after its syncfs and before its renames, with
/// which files that made durable (the unit tests' window on the order).
fn commit(
    mut rx: mpsc::Receiver<Landed>,
    synced: &mut dyn FnMut(&[Landed], &[bool]),
) -> Vec<(usize, Error)> {
    let mut failed = Vec::new();
    let mut dirs = BTreeSet::new();
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        // Which files syncfs made durable; the others are fdatasynced as they are renamed.
        let done = sync_filesystems(&batch, OTHERS_DIRTY);
        synced(&batch, &done);
        for (Landed { temp, dest, index }, done) in batch.into_iter().zip(done) {
            match temp.land(&dest, !done, false) {
                Ok(()) if !temp.is_direct() => {
                    if let Some(dir) = dest.parent() {
                        dirs.insert(dir.to_path_buf());
                    }
                }
                Ok(()) => {}
                Err(e) => failed.push((index, e)),
            }
        }
    }
    dirs.iter().for_each(|d| sync_dir_of(d));
    failed
}

/// One syncfs per filesystem of the batch, through its oldest file's descriptor, unless the
/// machine has more than `others` bytes dirty besides the batch; returns, per file, whether it is
/// now durable (false: to be fdatasynced, as after a failed syncfs, which does not say which file
/// failed).
#[cfg(target_os = "linux")]
fn sync_filesystems(batch: &[Landed], others: u64) -> Vec<bool> {
    use std::os::unix::fs::MetadataExt;
    let mut done = vec![false; batch.len()];
    let mut ours = 0u64;
    // Per filesystem: (the oldest file's position in the batch, every file's position).
    let mut by_fs: BTreeMap<u64, (usize, Vec<usize>)> = BTreeMap::new();
    for (i, l) in batch.iter().enumerate() {
        if l.temp.is_direct() {
            done[i] = true;
            continue;
        }
        let Ok(meta) = l.temp.file().metadata() else {
            continue;
        };
        ours += meta.len();
        let fs = by_fs.entry(meta.dev()).or_insert((i, Vec::new()));
        if l.temp.opened < batch[fs.0].temp.opened {
            fs.0 = i;
        }
        fs.1.push(i);
    }
    if dirty_bytes().is_none_or(|dirty| dirty > ours.saturating_add(others)) {
        return done;
    }
    for (oldest, files) in by_fs.values() {
        if rustix::fs::syncfs(&**batch[*oldest].temp.file()).is_ok() {
            files.iter().for_each(|&i| done[i] = true);
        }
    }
    done
}

#[cfg(not(target_os = "linux"))]
fn sync_filesystems(batch: &[Landed], _others: u64) -> Vec<bool> {
    batch.iter().map(|l| l.temp.is_direct()).collect()
}

/// Bytes the whole machine has dirty or under writeback (/proc/meminfo).
#[cfg(target_os = "linux")]
fn dirty_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |field: &str| -> Option<u64> {
        let line = info.lines().find(|l| l.starts_with(field))?;
        line[field.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((kib("Dirty:")? + kib("Writeback:")?) * 1024)
}

/// Whether syncfs reports write errors here: Linux 5.8 and later.
fn syncfs_reports_errors() -> bool {
    static REPORTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REPORTS.get_or_init(|| {
        cfg!(target_os = "linux")
            && std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .is_ok_and(|r| kernel_at_least(&r, (5, 8)))
    })
}

/// Whether a kernel release string (`6.1.0-13-amd64`) is at least `want`.
fn kernel_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut nums = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (nums.next().flatten(), nums.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= want,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::place::Place;
    use super::*;

    async fn landed(dir: &Path, name: &str, index: usize) -> Landed {
        let dest = dir.join(name);
        let (place, _) = Place::open(&dest, None).unwrap();
        let temp = TempFile::create(&place, true).await.unwrap();
        crate::fs::write_all_at(temp.file(), name.as_bytes(), 0).unwrap();
        Landed { temp, dest, index }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Pages of `file` not yet on disk (dirty or under writeback), as the kernel counts them
    /// (cachestat(2), Linux 6.5+).
    #[cfg(target_os = "linux")]
    fn unwritten(file: &std::fs::File) -> u64 {
        use std::os::fd::AsRawFd;
        let range = [0u64, 0]; // offset, length (0: to the end)
        let mut stat = [0u64; 5]; // cache, dirty, writeback, evicted, recently evicted
                                  // SAFETY: cachestat(fd, *range, *stat, flags) with both structs as the kernel lays them.
        let r =
            unsafe { libc::syscall(451, file.as_raw_fd(), range.as_ptr(), stat.as_mut_ptr(), 0) };
        assert_eq!(r, 0, "cachestat: {}", std::io::Error::last_os_error());
        stat[1] + stat[2]
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_batch_is_synced_before_any_of_it_is_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel(QUEUE);
        for i in 0..5 {
            tx.send(landed(dir.path(), &format!("f{i}"), i).await)
                .await
                .unwrap();
        }
        drop(tx);
        let root = dir.path().to_path_buf();
        let (failed, batches) = tokio::task::spawn_blocking(move || {
            let mut batches = Vec::new();
            let mut seen = |b: &[Landed], done: &[bool]| {
                // Nothing of the batch has a destination name yet, only temporaries; what the
                // batch's sync covered has nothing left to write.
                let there = names(&root);
                assert!(there.iter().all(|n| n.ends_with(".part")), "{there:?}");
                for (l, done) in b.iter().zip(done) {
                    assert!(!done || unwritten(l.temp.file()) == 0);
                }
                batches.push((b.len(), done.iter().filter(|d| **d).count()));
            };
            (commit(rx, &mut seen), batches)
        })
        .await
        .unwrap();
        assert!(failed.is_empty());
        // Everything queued is one batch (synced by one syncfs unless the machine had much
        // else dirty: then each file was fdatasynced before its rename).
        assert_eq!(batches.len(), 1, "{batches:?}");
        assert_eq!(names(dir.path()), ["f0", "f1", "f2", "f3", "f4"]);
        for i in 0..5 {
            let name = format!("f{i}");
            let f = std::fs::File::open(dir.path().join(&name)).unwrap();
            assert_eq!(unwritten(&f), 0, "{name} renamed with bytes not on disk");
            assert_eq!(
                std::fs::read(dir.path().join(&name)).unwrap(),
                name.as_bytes()
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn one_syncfs_makes_the_whole_batch_durable() {
        // Files written and not synced: the kernel holds their pages dirty until syncfs.
        let dir = tempfile::tempdir().unwrap();
        let mut batch = Vec::new();
        for i in 0..4 {
            batch.push(landed(dir.path(), &format!("g{i}"), i).await);
        }
        assert!(batch.iter().all(|l| unwritten(l.temp.file()) > 0));
        // However much else the machine has dirty.
        let done = sync_filesystems(&batch, u64::MAX);
        assert_eq!(done, [true; 4]);
        assert!(batch.iter().all(|l| unwritten(l.temp.file()) == 0));
        assert!(dirty_bytes().is_some());
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_renamed_fails_its_item_alone_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let batch = Batch::new(true);
        let ok = landed(dir.path(), "ok", 0).await;
        batch.queue(ok.temp, &ok.dest, 0, 1).await.unwrap();
        // Its destination became a non-empty directory: the rename fails.
        let bad = landed(dir.path(), "bad", 1).await;
        std::fs::create_dir_all(dir.path().join("bad/x")).unwrap();
        // Its error comes from the commit (or at once, where each slot renames its own file).
        let queued = batch.queue(bad.temp, &bad.dest, 1, 1).await;
        let mut outcomes = vec![
            Ok(TransferResult::default()),
            queued.map(|()| TransferResult::default()),
        ];
        batch.finish(&mut outcomes).await;
        assert!(outcomes[0].is_ok());
        assert_eq!(outcomes[1].as_ref().unwrap_err().code(), ErrorCode::Io);
        assert_eq!(names(dir.path()), ["bad", "ok"], "no temporary left");
        assert!(dir.path().join("bad").is_dir());
        assert_eq!(std::fs::read(dir.path().join("ok")).unwrap(), b"ok");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_large_file_is_synced_and_renamed_in_its_own_slot() {
        let dir = tempfile::tempdir().unwrap();
        let batch = Batch::new(true);
        let big = landed(dir.path(), "big", 0).await;
        batch
            .queue(big.temp, &big.dest, 0, ALONE_FROM)
            .await
            .unwrap();
        // In place and on disk as soon as its slot is done, before the batch finishes.
        let f = std::fs::File::open(dir.path().join("big")).unwrap();
        assert_eq!(unwritten(&f), 0);
        let mut outcomes = vec![Ok(TransferResult::default())];
        batch.finish(&mut outcomes).await;
        assert!(outcomes[0].is_ok());
        assert_eq!(names(dir.path()), ["big"]);
    }

    #[test]
    fn kernel_releases_are_compared_by_major_and_minor() {
        assert!(kernel_at_least("6.18.44-fc-v782", (5, 8)));
        assert!(kernel_at_least("5.8.0", (5, 8)));
        assert!(!kernel_at_least("5.4.0-150-generic", (5, 8)));
        assert!(!kernel_at_least("3.10.0-1160.el7.x86_64", (5, 8)));
        assert!(!kernel_at_least("garbage", (5, 8)));
    }

    #[tokio::test]
    async fn nothing_queued_finishes_at_once() {
        let mut outcomes = vec![Ok(TransferResult::default())];
        Batch::new(true).finish(&mut outcomes).await;
        assert!(outcomes[0].is_ok());
    }
}
