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
}

impl TempFile {
    pub(crate) async fn create(dest: &Path) -> Result<Self> {
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
            })
        })
        .await
    }

    /// Size the file up front so that parts can be written at their offsets in any order.
    pub(crate) async fn set_len(&self, len: u64) -> Result<()> {
        let (file, path) = (self.file.clone(), self.path.clone());
        blocking(move || file.set_len(len).map_err(|e| Error::io(&path, &e))).await
    }

    /// Write chunks back to back starting at `offset`, on a blocking thread.
    pub(crate) async fn write_at(&self, offset: u64, chunks: Vec<Bytes>) -> Result<()> {
        let (file, path) = (self.file.clone(), self.path.clone());
        blocking(move || {
            let mut at = offset;
            for c in chunks {
                write_all_at(&file, &c, at).map_err(|e| Error::io(&path, &e))?;
                at += c.len() as u64;
            }
            Ok(())
        })
        .await
    }

    /// Write a body from the start on a blocking thread, chunk by chunk, so chunks go from the
    /// socket's buffers straight to `pwrite(2)` with no extra copy. Returns the bytes written.
    pub(crate) async fn write_stream(
        &self,
        mut body: BoxStream<'static, Result<Bytes>>,
        tracker: &Tracker,
    ) -> Result<u64> {
        let (file, path) = (self.file.clone(), self.path.clone());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(32);
        let writer = tokio::task::spawn_blocking(move || -> Result<u64> {
            let mut at = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                write_all_at(&file, &chunk, at).map_err(|e| Error::io(&path, &e))?;
                at += chunk.len() as u64;
            }
            Ok(at)
        });
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => {
                    tracker.add(c.len() as u64);
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

    /// fsync, rename over `dest`, fsync the directory.
    pub(crate) async fn persist(&self, dest: &Path) -> Result<()> {
        let (file, path, dest) = (self.file.clone(), self.path.clone(), dest.to_path_buf());
        blocking(move || {
            file.sync_all().map_err(|e| Error::io(&path, &e))?;
            std::fs::rename(&path, &dest).map_err(|e| Error::io(&dest, &e))?;
            #[cfg(unix)]
            if let Some(dir) = dest.parent() {
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
