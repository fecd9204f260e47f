//! Where a download's files go on the local filesystem, and how they are opened there.
//!
//! A destination's directory is opened once — for `downloadPrefix`, beneath its root directory
//! without following any link (`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, or one
//! `O_NOFOLLOW` component at a time where the kernel lacks it) — and every file objget makes
//! there is created, opened, renamed and removed relative to that descriptor: temporaries with
//! `O_EXCL | O_NOFOLLOW`, the resume part file and journal with `O_NOFOLLOW` and a check that they
//! are regular files of this user. A link planted beside the destination or swapped in along the
//! path cannot redirect a write; objget refuses it with `UnsafeKey`.
//!
//! A destination that is a character device or a FIFO (`/dev/null`, a pipe) is never replaced:
//! it is opened as it is and written in order, with no temporary.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorCode, Result};

/// The longest file name Linux, macOS and Windows filesystems take, in bytes (NAME_MAX).
const NAME_MAX: usize = 255;
/// The most objget adds to a destination's name for its own files: `.` + name +
/// `.objget-<16 hex>.part`.
const LONGEST_ADDED: usize = 30;
/// Bytes of a long name kept in its files' names (then `-` and 16 hex digits of its SHA-256).
const KEPT: usize = 200;

/// The name objget's own files beside `name` are made from: `name` itself, or, where the longest
/// of them would pass NAME_MAX, its first 200 bytes (at a character boundary) and 16 hex digits
/// of the SHA-256 of the whole name — the same for the same name, so a resume finds its files.
pub(crate) fn stem(name: &OsStr) -> OsString {
    let raw = bytes_of(name);
    if raw.len() + LONGEST_ADDED <= NAME_MAX {
        return name.to_os_string();
    }
    let mut cut = KEPT;
    if let Ok(s) = std::str::from_utf8(&raw) {
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &raw);
    let mut out = raw[..cut].to_vec();
    out.push(b'-');
    for b in &digest.as_ref()[..8] {
        out.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    os_from(out)
}

#[cfg(unix)]
fn bytes_of(name: &OsStr) -> Cow<'_, [u8]> {
    Cow::Borrowed(std::os::unix::ffi::OsStrExt::as_bytes(name))
}

#[cfg(not(unix))]
fn bytes_of(name: &OsStr) -> Cow<'_, [u8]> {
    match name.to_string_lossy() {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

#[cfg(unix)]
fn os_from(bytes: Vec<u8>) -> OsString {
    std::os::unix::ffi::OsStringExt::from_vec(bytes)
}

#[cfg(not(unix))]
fn os_from(bytes: Vec<u8>) -> OsString {
    String::from_utf8_lossy(&bytes).into_owned().into()
}

/// A file objget may not use: a link or something else planted where its own file goes, or a
/// link on the way to the destination.
fn planted(path: &Path, what: &str) -> Error {
    Error::new(
        ErrorCode::UnsafeKey,
        format!(
            "{}: {what}; objget writes only its own regular files and follows no link there, so nothing was written",
            path.display()
        ),
    )
}

/// A destination resolved: its directory (open) and its file name there.
#[derive(Clone)]
pub(crate) struct Place {
    /// The directory every file of this download is made in.
    pub(crate) dir: Arc<Dir>,
    /// The destination (for messages).
    pub(crate) dest: PathBuf,
    /// The destination's file name in `dir`.
    pub(crate) name: OsString,
}

impl Place {
    /// Open `dest`'s directory (created as needed; with `root`, every component beneath `root`
    /// resolved without following links, else `UnsafeKey`) and look at what `dest` is now: a
    /// directory is refused, a character device or FIFO is opened to be written in order,
    /// anything else (nothing, a regular file, a link) is replaced by the rename. Returns the
    /// place and, for a character device or a FIFO, the destination opened for writing in order.
    pub(crate) fn open(dest: &Path, root: Option<&Path>) -> Result<(Self, Option<std::fs::File>)> {
        let name = dest
            .file_name()
            .ok_or_else(|| Error::invalid_argument(format!("{}: names no file", dest.display())))?
            .to_os_string();
        let dir_path = dest.parent().ok_or_else(|| {
            Error::invalid_argument(format!("{}: no parent directory", dest.display()))
        })?;
        let dir = Dir::open(dir_path, root)?;
        let stream = dir.existing(&name, dest, root.is_none())?;
        let place = Self {
            dir: Arc::new(dir),
            dest: dest.to_path_buf(),
            name,
        };
        Ok((place, stream))
    }
}

/// The components of `dir` below `root`: plain names only.
fn beneath<'a>(dir: &'a Path, root: &Path) -> Result<Vec<&'a OsStr>> {
    let rel = dir.strip_prefix(root).map_err(|_| {
        Error::new(
            ErrorCode::UnsafeKey,
            format!(
                "{}: not beneath {}; nothing was written",
                dir.display(),
                root.display()
            ),
        )
    })?;
    rel.components()
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(Error::new(
                ErrorCode::UnsafeKey,
                format!(
                    "{}: leaves {}; nothing was written",
                    dir.display(),
                    root.display()
                ),
            )),
        })
        .collect()
}

#[cfg(unix)]
pub(crate) use unix::Dir;

impl Dir {
    /// Replace `name` with `data`, atomically: written to `tmp` (whatever was at `tmp` is
    /// unlinked first, never followed), then renamed.
    pub(crate) fn replace(&self, tmp: &OsStr, name: &OsStr, data: &[u8]) -> Result<()> {
        use std::io::Write;
        let _ = self.remove(tmp);
        let mut f = self.create_new(tmp, 0o600)?;
        let written = f
            .write_all(data)
            .map_err(|e| Error::io(&self.path().join(tmp), &e))
            .and_then(|()| self.rename(tmp, name));
        if written.is_err() {
            let _ = self.remove(tmp);
        }
        written
    }
}

#[cfg(unix)]
mod unix {
    use std::ffi::OsStr;
    use std::fs::File;
    use std::os::fd::OwnedFd;
    use std::path::{Path, PathBuf};

    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    use rustix::io::Errno;

    use super::planted;
    use crate::error::{Error, ErrorCode, Result};

    /// An open directory; every file operation of a download is relative to it.
    pub(crate) struct Dir {
        fd: OwnedFd,
        path: PathBuf,
    }

    fn io(path: &Path, e: Errno) -> Error {
        Error::io(path, &e.into())
    }

    fn open_dir(path: &Path) -> Result<OwnedFd> {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(path, e))
    }

    /// `name` in `dir`, a directory, not through a link.
    fn child(dir: &OwnedFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }

    fn is_link(dir: &OwnedFd, name: &OsStr) -> bool {
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
    }

    /// From `root` (open as `fd`) down `names`, one component at a time: each opened with
    /// `O_NOFOLLOW`, created where missing; a link is `UnsafeKey`.
    pub(super) fn walk(mut fd: OwnedFd, root: &Path, names: &[&OsStr]) -> Result<OwnedFd> {
        let mut at = root.to_path_buf();
        for &name in names {
            at.push(name);
            let next = match child(&fd, name) {
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(Errno::EXIST) => child(&fd, name),
                        Err(e) => return Err(io(&at, e)),
                    }
                }
                other => other,
            };
            fd = match next {
                Ok(next) => next,
                Err(_) if is_link(&fd, name) => return Err(planted(&at, "a symbolic link")),
                Err(e) => return Err(io(&at, e)),
            };
        }
        Ok(fd)
    }

    impl Dir {
        /// Open `dir`, creating what is missing. With `root`, `dir` must lie beneath it and no
        /// component below `root` may be a link (`root` itself is the caller's, links and all).
        pub(crate) fn open(dir: &Path, root: Option<&Path>) -> Result<Self> {
            let path = dir.to_path_buf();
            let Some(root) = root else {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
                return Ok(Self {
                    fd: open_dir(dir)?,
                    path,
                });
            };
            let names = super::beneath(dir, root)?;
            std::fs::create_dir_all(root).map_err(|e| Error::io(root, &e))?;
            let fd = open_dir(root)?;
            if names.is_empty() {
                return Ok(Self { fd, path });
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                use rustix::fs::ResolveFlags;
                let rel: PathBuf = names.iter().collect();
                match rustix::fs::openat2(
                    &fd,
                    &rel,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
                ) {
                    Ok(found) => return Ok(Self { fd: found, path }),
                    Err(Errno::LOOP | Errno::XDEV) => {
                        return Err(planted(dir, "a symbolic link on the way"))
                    }
                    // Not all there yet (created below), or a kernel without openat2 (before
                    // 5.6, or a seccomp filter): one component at a time.
                    Err(_) => {}
                }
            }
            Ok(Self {
                fd: walk(fd, root, &names)?,
                path,
            })
        }
        /// What `name` is now: `None` for nothing, a regular file or a link (all replaced by the
        /// rename), the file opened for writing in order for a character device or FIFO;
        /// a directory, a block device or a socket is refused. `follow`: look through a link
        /// (a plain download, whose path the caller chose), else not (beneath a root).
        pub(crate) fn existing(
            &self,
            name: &OsStr,
            dest: &Path,
            follow: bool,
        ) -> Result<Option<File>> {
            let how = if follow {
                AtFlags::empty()
            } else {
                AtFlags::SYMLINK_NOFOLLOW
            };
            let st = match rustix::fs::statat(&self.fd, name, how) {
                Ok(st) => st,
                // Nothing there, or a link to nothing: the rename puts the file there.
                Err(Errno::NOENT | Errno::LOOP) => return Ok(None),
                Err(e) => return Err(io(dest, e)),
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile | FileType::Symlink => Ok(None),
                FileType::Directory => Err(Error::invalid_argument(format!(
                    "{}: is a directory",
                    dest.display()
                ))),
                FileType::CharacterDevice | FileType::Fifo => {
                    self.open_stream(name, dest, follow).map(Some)
                }
                _ => Err(Error::invalid_argument(format!(
                    "{}: is a block device or a socket; objget writes regular files, character devices and FIFOs",
                    dest.display()
                ))),
            }
        }

        /// Open a character device or FIFO for writing in order. Never blocks: a FIFO with no
        /// reader is an error, not a wait. Only this user's or root's (a FIFO planted by
        /// another user would receive the object).
        fn open_stream(&self, name: &OsStr, dest: &Path, follow: bool) -> Result<File> {
            let mut flags = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
            if !follow {
                flags |= OFlags::NOFOLLOW;
            }
            let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NXIO) => {
                    return Err(Error::new(
                        ErrorCode::Io,
                        format!(
                            "{}: a FIFO with no reader; start its reader first",
                            dest.display()
                        ),
                    ))
                }
                Err(Errno::LOOP) => return Err(planted(dest, "a symbolic link")),
                Err(e) => return Err(io(dest, e)),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| io(dest, e))?;
            let kind = FileType::from_raw_mode(st.st_mode);
            if !matches!(kind, FileType::CharacterDevice | FileType::Fifo) {
                return Err(Error::new(
                    ErrorCode::Io,
                    format!("{}: changed while it was being opened", dest.display()),
                ));
            }
            let me = rustix::process::geteuid().as_raw();
            if st.st_uid != me && st.st_uid != 0 {
                return Err(planted(dest, "a device or FIFO owned by another user"));
            }
            // Blocking writes from here on: the writer waits for the reader, as `curl -o` does.
            rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| io(dest, e))?;
            Ok(File::from(fd))
        }

        /// The directory's path (for messages and for `downloadMany`'s directory syncs).
        pub(crate) fn path(&self) -> &Path {
            &self.path
        }

        /// A new file `name`: `O_EXCL | O_NOFOLLOW`, so nothing already there (a planted link
        /// included) is ever opened.
        pub(crate) fn create_new(&self, name: &OsStr, mode: u32) -> Result<File> {
            rustix::fs::openat(
                &self.fd,
                name,
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            )
            .map(File::from)
            .map_err(|e| match e {
                Errno::EXIST if is_link(&self.fd, name) => {
                    planted(&self.path.join(name), "a symbolic link")
                }
                e => io(&self.path.join(name), e),
            })
        }

        /// One of objget's own files, `name` (created if `create`; `None` if absent and not
        /// created), opened without following a link and refused unless it is a regular file
        /// owned by this user.
        pub(crate) fn open_own(&self, name: &OsStr, create: bool) -> Result<Option<File>> {
            let path = self.path.join(name);
            let mut flags = OFlags::RDWR
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK
                | OFlags::NOCTTY
                | OFlags::CLOEXEC;
            if create {
                flags |= OFlags::CREATE;
            }
            let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o666)) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if !create => return Ok(None),
                Err(Errno::LOOP) => return Err(planted(&path, "a symbolic link")),
                Err(Errno::NXIO | Errno::ISDIR | Errno::OPNOTSUPP) => {
                    return Err(planted(&path, "not a regular file"))
                }
                Err(e) => return Err(io(&path, e)),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| io(&path, e))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(planted(&path, "not a regular file"));
            }
            if st.st_uid != rustix::process::geteuid().as_raw() {
                return Err(planted(&path, "a file owned by another user"));
            }
            Ok(Some(File::from(fd)))
        }

        /// Refuse `name` unless it is absent or a regular file of this user (a stale temporary
        /// objget may replace).
        pub(crate) fn check_own(&self, name: &OsStr) -> Result<()> {
            match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(io(&self.path.join(name), e)),
                Ok(st) => {
                    let path = self.path.join(name);
                    match FileType::from_raw_mode(st.st_mode) {
                        FileType::Symlink => Err(planted(&path, "a symbolic link")),
                        FileType::RegularFile
                            if st.st_uid == rustix::process::geteuid().as_raw() =>
                        {
                            Ok(())
                        }
                        FileType::RegularFile => {
                            Err(planted(&path, "a file owned by another user"))
                        }
                        _ => Err(planted(&path, "not a regular file")),
                    }
                }
            }
        }

        /// Rename `from` to `to`, both in this directory.
        pub(crate) fn rename(&self, from: &OsStr, to: &OsStr) -> Result<()> {
            rustix::fs::renameat(&self.fd, from, &self.fd, to)
                .map_err(|e| io(&self.path.join(to), e))
        }

        /// Unlink `name` (a link is removed, never followed).
        pub(crate) fn remove(&self, name: &OsStr) -> std::io::Result<()> {
            rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(Into::into)
        }

        /// fsync the directory, making the renames in it durable. Best effort: some filesystems
        /// refuse.
        pub(crate) fn sync(&self) {
            let _ = rustix::fs::fsync(&self.fd);
        }
    }
}

#[cfg(not(unix))]
pub(crate) use other::Dir;

/// Without descriptor-relative calls: the same checks by path (no devices or FIFOs to stream to).
#[cfg(not(unix))]
mod other {
    use std::ffi::OsStr;
    use std::fs::File;
    use std::path::{Path, PathBuf};

    use super::planted;
    use crate::error::{Error, Result};

    pub(crate) struct Dir {
        path: PathBuf,
    }

    impl Dir {
        pub(crate) fn open(dir: &Path, root: Option<&Path>) -> Result<Self> {
            if let Some(root) = root {
                let mut at = root.to_path_buf();
                for name in super::beneath(dir, root)? {
                    at.push(name);
                    if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                        return Err(planted(&at, "a symbolic link"));
                    }
                }
            }
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
            Ok(Self {
                path: dir.to_path_buf(),
            })
        }

        pub(crate) fn existing(
            &self,
            name: &OsStr,
            dest: &Path,
            _follow: bool,
        ) -> Result<Option<File>> {
            if std::fs::metadata(self.path.join(name)).is_ok_and(|m| m.is_dir()) {
                return Err(Error::invalid_argument(format!(
                    "{}: is a directory",
                    dest.display()
                )));
            }
            Ok(None)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.path
        }

        pub(crate) fn create_new(&self, name: &OsStr, _mode: u32) -> Result<File> {
            let path = self.path.join(name);
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| Error::io(&path, &e))
        }

        pub(crate) fn open_own(&self, name: &OsStr, create: bool) -> Result<Option<File>> {
            self.check_own(name)?;
            let path = self.path.join(name);
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .truncate(false)
                .open(&path)
            {
                Ok(f) => Ok(Some(f)),
                Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(&path, &e)),
            }
        }

        pub(crate) fn check_own(&self, name: &OsStr) -> Result<()> {
            let path = self.path.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => Err(planted(&path, "a symbolic link")),
                Ok(m) if !m.is_file() => Err(planted(&path, "not a regular file")),
                _ => Ok(()),
            }
        }

        pub(crate) fn rename(&self, from: &OsStr, to: &OsStr) -> Result<()> {
            std::fs::rename(self.path.join(from), self.path.join(to))
                .map_err(|e| Error::io(&self.path.join(to), &e))
        }

        pub(crate) fn remove(&self, name: &OsStr) -> std::io::Result<()> {
            std::fs::remove_file(self.path.join(name))
        }

        pub(crate) fn sync(&self) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_keep_short_names_and_hash_long_ones() {
        assert_eq!(stem(OsStr::new("a.bin")), OsStr::new("a.bin"));
        let at_limit = "x".repeat(NAME_MAX - LONGEST_ADDED);
        assert_eq!(stem(OsStr::new(&at_limit)), OsStr::new(&at_limit));
        let long = "é".repeat(127); // 254 bytes
        let s = stem(OsStr::new(&long)).into_string().unwrap();
        assert!(s.len() + LONGEST_ADDED <= NAME_MAX, "{}", s.len());
        assert!(s.starts_with(&"é".repeat(100)));
        assert_eq!(stem(OsStr::new(&long)), OsString::from(&s), "deterministic");
        let other = format!("{}e", "é".repeat(127));
        assert_ne!(stem(OsStr::new(&other)), OsString::from(&s));
    }

    #[cfg(unix)]
    #[test]
    fn links_beneath_a_root_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
        for dir in [root.join("sub"), root.join("sub/deeper")] {
            let err = Dir::open(&dir, Some(&root)).err().unwrap();
            assert_eq!(err.code(), ErrorCode::UnsafeKey, "{dir:?}");
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        let made = Dir::open(&root.join("a/b"), Some(&root)).unwrap();
        assert_eq!(made.path(), root.join("a/b"));
        assert!(root.join("a/b").is_dir());
        let err = Dir::open(&base.path().join("elsewhere"), Some(&root))
            .err()
            .unwrap();
        assert_eq!(err.code(), ErrorCode::UnsafeKey);
        // The walk a kernel without openat2 takes, on its own.
        let open = |p: &Path| std::fs::File::open(p).unwrap().into();
        let names = [OsStr::new("sub"), OsStr::new("deeper")];
        let err = unix::walk(open(&root), &root, &names).err().unwrap();
        assert_eq!(err.code(), ErrorCode::UnsafeKey);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        let names = [OsStr::new("c"), OsStr::new("d")];
        unix::walk(open(&root), &root, &names).unwrap();
        assert!(root.join("c/d").is_dir());
    }
}
