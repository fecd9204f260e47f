//! File helpers every path shares: positional reads and writes, and blocking work kept off the
//! async threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, ErrorCode, Result};

/// All of `buf` at `offset`.
#[cfg(unix)]
pub(crate) fn write_all_at(file: &std::fs::File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
pub(crate) fn write_all_at(
    file: &std::fs::File,
    mut buf: &[u8],
    mut offset: u64,
) -> std::io::Result<()> {
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

/// `len` bytes of the file at `p` from `offset`.
pub(crate) async fn read_range(p: &Path, offset: u64, len: u64) -> Result<Bytes> {
    let p = p.to_path_buf();
    blocking(move || {
        let f = std::fs::File::open(&p).map_err(|e| Error::io(&p, &e))?;
        bytes_at(&f, &p, offset, len)
    })
    .await
}

/// `len` bytes of an open file at `offset` (`path` names it in errors).
pub(crate) async fn read_bytes_at(
    f: Arc<std::fs::File>,
    path: PathBuf,
    offset: u64,
    len: u64,
) -> Result<Bytes> {
    blocking(move || bytes_at(&f, &path, offset, len)).await
}

fn bytes_at(f: &std::fs::File, path: &Path, offset: u64, len: u64) -> Result<Bytes> {
    let mut buf = vec![0u8; len as usize];
    read_exact_at(f, &mut buf, offset).map_err(|e| Error::io(path, &e))?;
    Ok(Bytes::from(buf))
}

/// Exactly `buf.len()` bytes at `offset`.
#[cfg(unix)]
pub(crate) fn read_exact_at(f: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(windows)]
pub(crate) fn read_exact_at(
    f: &std::fs::File,
    mut buf: &mut [u8],
    mut offset: u64,
) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Up to `buf.len()` bytes at `offset`; how many were read.
#[cfg(unix)]
pub(crate) fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
pub(crate) fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// `p` made absolute against the working directory. An empty path is refused rather than
/// taken to mean the working directory itself.
pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
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
