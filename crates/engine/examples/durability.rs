//! What landing a set of files durably costs, per strategy, with no network in the way: the
//! landing is the only thing the strategies change, and on a shared machine a store and an HTTP
//! client beside it would only add noise. `bench/durability.mjs` runs it in alternating rounds
//! (quiet and beside a busy load) and prints the medians.
//!
//! `cargo run --release -p objget-engine --example durability -- MODE SHAPE DIR [CONCURRENCY]
//! [NETWORK_MBPS]` lands SHAPE's files in DIR with CONCURRENCY files in flight (16, downloadMany's
//! default), their bytes arriving at NETWORK_MBPS MB/s in all (0, the default: as fast as the
//! page cache takes them; a network that fast makes a slot waiting on the disk cost nothing), as
//! the engine does: a temporary created `O_EXCL` beside the destination, sized, written at offsets
//! in 64 KiB chunks (the size of the HTTP client's chunks) with writeback started every 8 MiB,
//! renamed into place; then one JSON line: wall seconds, this process's user and system CPU
//! seconds, and the whole machine's busy CPU seconds over the run (from /proc/stat: the kernel's
//! flusher threads write back what a process leaves dirty, and are charged to no process).
//!
//! MODE: `inline` (today's: each file fdatasynced, then renamed, before its slot takes the next
//! file; each directory fsynced once at the end), `thread` (each finished file handed to a pool of
//! CONCURRENCY sync threads that fdatasync and rename it, so the slot moves on unless CONCURRENCY
//! files already wait), `group` (finished files queue, CONCURRENCY at most, for one committer
//! thread that, for whatever has queued, calls syncfs(2)
//! once, then fdatasync on each (nothing left to write: it reports that file's own write errors),
//! then renames them; a pipelined group commit), `syncfs` (`group` without the fdatasyncs: syncfs
//! alone, which reports write errors only since Linux 5.8, and not per file), `nosync` (renamed at once, nothing synced: the
//! floor). SHAPE: `many-small` (1,000 × 256 KiB) or `mixed` (100 files, 4 KiB–64 MiB,
//! log-uniform, as bench/run.mjs's mixed).

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("durability: Linux only (sync_file_range, syncfs, /proc/stat)");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    use std::path::{Path, PathBuf};
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const CHUNK: usize = 64 * 1024;
    const WRITEBACK_EVERY: u64 = 8 * MIB;

    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Inline,
        Thread,
        Group,
        SyncFs,
        NoSync,
    }

    fn sizes(shape: &str) -> Vec<u64> {
        match shape {
            "many-small" => vec![256 * KIB; 1000],
            "mixed" => {
                let (n, lo, hi) = (100u64, (4.0 * KIB as f64).ln(), (64.0 * MIB as f64).ln());
                (0..n)
                    .map(|i| {
                        let f = ((i * 7919) % n) as f64 / (n - 1) as f64;
                        (lo + f * (hi - lo)).exp().round() as u64
                    })
                    .collect()
            }
            other => panic!("unknown shape {other}: many-small or mixed"),
        }
    }

    /// Busy CPU seconds of the whole machine so far (every state but idle and iowait).
    fn machine_busy() -> f64 {
        let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
        let cpu: Vec<f64> = stat.lines().next().expect("cpu line")[3..]
            .split_whitespace()
            .map(|v| v.parse().expect("a number"))
            .collect();
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (cpu.iter().sum::<f64>() - cpu[3] - cpu[4]) / hz
    }

    fn own_cpu() -> (f64, f64) {
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a rusage the call fills.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        (s(ru.ru_utime), s(ru.ru_stime))
    }

    /// A finished temporary waiting to be made durable and renamed.
    struct Landed {
        file: File,
        temp: PathBuf,
        dest: PathBuf,
    }

    impl Landed {
        fn rename(self) {
            std::fs::rename(&self.temp, &self.dest).expect("rename");
        }
    }

    fn write_one(dir: &Path, i: usize, size: u64, data: &[u8], mode: Mode, rate: f64) -> Landed {
        let dest = dir.join(format!("f{i:05}.bin"));
        let temp = dir.join(format!(
            ".f{i:05}.bin.objget-{:016x}.part",
            rand::random::<u64>()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
            .expect("create temporary");
        file.set_len(size).expect("set_len");
        let (mut at, mut unsynced, started) = (0u64, 0u64, Instant::now());
        while at < size {
            if rate > 0.0 {
                // The next chunk arrives when this stream's share of the network brings it.
                let due = std::time::Duration::from_secs_f64(at as f64 / rate);
                std::thread::sleep(due.saturating_sub(started.elapsed()));
            }
            let n = CHUNK.min((size - at) as usize);
            let start = (at as usize) % (data.len() - CHUNK);
            file.write_all_at(&data[start..start + n], at)
                .expect("pwrite");
            at += n as u64;
            unsynced += n as u64;
            if mode != Mode::NoSync && unsynced >= WRITEBACK_EVERY {
                // SAFETY: a valid descriptor; only starts writeback.
                unsafe {
                    libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE)
                };
                unsynced = 0;
            }
        }
        Landed { file, temp, dest }
    }

    /// The committer of `group`: for whatever has queued, one syncfs, then each file's
    /// fdatasync (its own errors), then the renames.
    fn committer(rx: mpsc::Receiver<Landed>, each: bool) -> usize {
        let mut batches = 0;
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            // SAFETY: a valid descriptor on the filesystem to sync.
            let r = unsafe { libc::syncfs(batch[0].file.as_raw_fd()) };
            assert_eq!(r, 0, "syncfs: {}", std::io::Error::last_os_error());
            for l in batch {
                if each {
                    l.file.sync_data().expect("fdatasync");
                }
                l.rename();
            }
            batches += 1;
        }
        batches
    }

    pub(super) fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let usage = "durability MODE SHAPE DIR [CONCURRENCY] [NETWORK_MBPS]";
        let mode = match args.first().map(String::as_str) {
            Some("inline") => Mode::Inline,
            Some("thread") => Mode::Thread,
            Some("group") => Mode::Group,
            Some("syncfs") => Mode::SyncFs,
            Some("nosync") => Mode::NoSync,
            _ => panic!("{usage}: MODE is inline, thread, group, syncfs or nosync"),
        };
        let sizes = sizes(args.get(1).expect(usage));
        let dir = PathBuf::from(args.get(2).expect(usage));
        let conc: usize = args.get(3).map_or(16, |c| c.parse().expect("CONCURRENCY"));
        let network: f64 = args
            .get(4)
            .map_or(0.0, |m| m.parse().expect("NETWORK_MBPS"));
        // Bytes per second for each of the CONCURRENCY streams.
        let rate = network * 1e6 / conc as f64;
        std::fs::create_dir_all(&dir).expect("DIR");
        let mut data = vec![0u8; 4 * MIB as usize];
        data.iter_mut().for_each(|b| *b = rand::random());
        let data = Arc::new(data);

        let (busy0, (u0, s0), t0) = (machine_busy(), own_cpu(), Instant::now());
        let next = Arc::new(Mutex::new(sizes.clone().into_iter().enumerate()));
        // At most CONCURRENCY finished files wait for their sync, as in the engine: a slot
        // runs ahead of the disk by one file at most.
        let (tx, rx) = mpsc::sync_channel::<Landed>(conc);
        let syncers: Vec<_> = match mode {
            Mode::Group | Mode::SyncFs => {
                let each = mode == Mode::Group;
                vec![std::thread::spawn(move || committer(rx, each))]
            }
            Mode::Thread => {
                let rx = Arc::new(Mutex::new(rx));
                (0..conc)
                    .map(|_| {
                        let rx = rx.clone();
                        std::thread::spawn(move || {
                            while let Ok(l) = { rx.lock().unwrap().recv() } {
                                l.file.sync_data().expect("fdatasync");
                                l.rename();
                            }
                            0
                        })
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let slots: Vec<_> = (0..conc)
            .map(|_| {
                let (next, data, dir, tx) = (next.clone(), data.clone(), dir.clone(), tx.clone());
                std::thread::spawn(move || loop {
                    let Some((i, size)) = next.lock().unwrap().next() else {
                        return;
                    };
                    let landed = write_one(&dir, i, size, &data, mode, rate);
                    match mode {
                        Mode::Inline => {
                            landed.file.sync_data().expect("fdatasync");
                            landed.rename();
                        }
                        Mode::NoSync => landed.rename(),
                        _ => tx.send(landed).expect("syncers"),
                    }
                })
            })
            .collect();
        drop(tx);
        slots.into_iter().for_each(|t| t.join().expect("slot"));
        let batches: usize = syncers.into_iter().map(|t| t.join().expect("syncer")).sum();
        if mode != Mode::NoSync {
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .expect("fsync dir");
        }
        let wall = t0.elapsed().as_secs_f64();
        let ((u1, s1), busy1) = (own_cpu(), machine_busy());
        let bytes: u64 = sizes.iter().sum();
        println!(
            "{{\"wallS\":{wall:.4},\"userS\":{:.4},\"sysS\":{:.4},\"machineBusyS\":{:.4},\"bytes\":{bytes},\"files\":{},\"batches\":{batches}}}",
            u1 - u0,
            s1 - s0,
            busy1 - busy0,
            sizes.len()
        );
    }
}
