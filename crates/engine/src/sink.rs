//! Where bytes land: a temporary file beside the destination, written at offsets, fsynced and
//! renamed into place only when complete.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

use crate::error::{Error, ErrorCode, Result};
use crate::progress::Tracker;

/// A temporary file beside the destination, removed on drop unless persisted.
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    file: Arc<std::fs::File>,
    persisted: AtomicBool,
    durable: bool,
}

impl TempFile {
    pub(crate) async fn create(dest: &Path, durable: bool) -> Result<Self> {
        let dir = dest
            .parent()
            .ok_or_else(|| {
                Error::invalid_argument(format!("{}: no parent directory", dest.display()))
            })?
            .to_path_buf();
        let dest = dest.to_path_buf();
        blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, &e))?;
            if std::fs::metadata(&dest).is_ok_and(|m| m.is_dir()) {
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
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| Error::io(&path, &e))?;
            Ok(Self {
                path,
                file: Arc::new(file),
                persisted: AtomicBool::new(false),
                durable,
            })
        })
        .await
    }

    /// Size the file up front so that parts can be written at their offsets in any order.
    pub(crate) async fn set_len(&self, len: u64) -> Result<()> {
        let (file, path) = (self.file.clone(), self.path.clone());
        blocking(move || file.set_len(len).map_err(|e| Error::io(&path, &e))).await
    }

    /// A writer for this file: one blocking thread that receives `(offset, chunk)` pairs from
    /// every part and `pwrite`s them, so chunks go from the socket's buffers to the kernel with
    /// no extra copy, network and disk overlap, and at most `WRITE_QUEUE` chunks wait in memory.
    pub(crate) fn writer(&self) -> Writer {
        let (file, path) = (self.file.clone(), self.path.clone());
        let durable = self.durable;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, Bytes)>(WRITE_QUEUE);
        let handle = tokio::task::spawn_blocking(move || -> Result<u64> {
            let mut written = 0u64;
            let mut unsynced = 0u64;
            while let Some((offset, chunk)) = rx.blocking_recv() {
                write_all_at(&file, &chunk, offset).map_err(|e| Error::io(&path, &e))?;
                written += chunk.len() as u64;
                unsynced += chunk.len() as u64;
                if durable && unsynced >= WRITEBACK_EVERY {
                    start_writeback(&file);
                    unsynced = 0;
                }
            }
            Ok(written)
        });
        Writer { tx, handle }
    }

    /// fsync, rename over `dest`, fsync the directory.
    pub(crate) async fn persist(&self, dest: &Path) -> Result<()> {
        let (file, path, dest) = (self.file.clone(), self.path.clone(), dest.to_path_buf());
        let durable = self.durable;
        blocking(move || {
            // fdatasync: the data and the size; the rename is made durable by the directory sync.
            if durable {
                file.sync_data().map_err(|e| Error::io(&path, &e))?;
            }
            std::fs::rename(&path, &dest).map_err(|e| Error::io(&dest, &e))?;
            #[cfg(unix)]
            if let Some(dir) = dest.parent().filter(|_| durable) {
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        })
        .await?;
        self.persisted.store(true, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted.load(Ordering::SeqCst) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Chunks waiting for the writer thread, per file (hyper's chunks are at most a few tens of KiB).
const WRITE_QUEUE: usize = 64;
/// Start the kernel's writeback this often, so the final fdatasync has little left to do.
const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

/// Sends chunks to a file's writer thread.
pub(crate) struct Writer {
    tx: tokio::sync::mpsc::Sender<(u64, Bytes)>,
    handle: tokio::task::JoinHandle<Result<u64>>,
}

impl Writer {
    /// A sender for one part (cheap to clone).
    pub(crate) fn sender(&self) -> tokio::sync::mpsc::Sender<(u64, Bytes)> {
        self.tx.clone()
    }

    /// Close the queue and wait for every chunk to be written; returns the bytes written.
    pub(crate) async fn finish(self) -> Result<u64> {
        drop(self.tx);
        self.handle
            .await
            .map_err(|e| Error::new(ErrorCode::Generic, format!("file write task failed: {e}")))?
    }
}

/// Stream a body into the writer from `offset`; returns the bytes sent. A closed queue means the
/// writer failed: stop, and let `finish` report why.
pub(crate) async fn send_body(
    mut body: BoxStream<'static, Result<Bytes>>,
    tx: &tokio::sync::mpsc::Sender<(u64, Bytes)>,
    offset: u64,
    tracker: &Tracker,
) -> Result<u64> {
    let mut at = offset;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        let n = chunk.len() as u64;
        if tx.send((at, chunk)).await.is_err() {
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

#[cfg(unix)]
fn write_all_at(file: &std::fs::File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn write_all_at(file: &std::fs::File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_write(buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Run blocking filesystem work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorCode::Generic, format!("file task failed: {e}")))?
}
