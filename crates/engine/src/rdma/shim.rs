//! The cuObject shim (`libobjget_rdma.so`, built from `native/`), loaded with dlopen the first
//! time RDMA is asked for. The addon never links libcuobjclient: a machine without it loads
//! objget as usual and `rdma_status()` says why RDMA is unavailable.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, ErrorCode, Result};

/// The C ABI version this engine speaks (`OBJGET_RDMA_ABI_VERSION` in objget_rdma.h).
const ABI_VERSION: c_int = 1;
/// The shim's file name.
pub(crate) const SHIM_FILE: &str = "libobjget_rdma.so";

pub(crate) const OP_GET: c_int = 0;
pub(crate) const OP_PUT: c_int = 1;

type Handle = *mut c_void;

/// The resolved entry points, with the library they came from kept loaded.
pub(crate) struct Shim {
    _lib: libloading::Library,
    pub(super) handle: Handle,
    register: unsafe extern "C" fn(Handle, *mut c_void, usize) -> c_int,
    deregister: unsafe extern "C" fn(Handle, *mut c_void) -> c_int,
    pub(super) token:
        unsafe extern "C" fn(Handle, *mut c_void, usize, usize, c_int, *mut *mut c_char) -> c_int,
    pub(super) token_release: unsafe extern "C" fn(Handle, *mut c_char) -> c_int,
    stats: unsafe extern "C" fn(Handle, *mut u64, *mut u64),
    is_connected: unsafe extern "C" fn(Handle) -> c_int,
    last_error: unsafe extern "C" fn() -> *const c_char,
    /// "sdk" or "simulator".
    pub(crate) backend: String,
    /// Where the shim was loaded from.
    pub(crate) path: PathBuf,
    /// Largest single registration.
    pub(crate) max_registration: u64,
}

// SAFETY: the handle is the process-wide client; the shim serializes every call on it.
unsafe impl Send for Shim {}
unsafe impl Sync for Shim {}

/// Why RDMA cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unavailable(pub(crate) String);

static SEARCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static LOADED: OnceLock<std::result::Result<Arc<Shim>, Unavailable>> = OnceLock::new();

/// Directories to look for the shim in (the addon passes its package's `native/build/lib`).
/// `OBJGET_RDMA_SHIM`, a path to the shim itself, comes first.
pub fn set_search_path(dirs: Vec<PathBuf>) {
    *SEARCH.lock().unwrap_or_else(|p| p.into_inner()) = dirs;
}

/// The loaded shim, loading it on first use; the outcome is kept for the process.
pub(crate) fn shim() -> std::result::Result<Arc<Shim>, Unavailable> {
    LOADED.get_or_init(load).clone()
}

fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("OBJGET_RDMA_SHIM").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
        return out;
    }
    for dir in SEARCH.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        out.push(dir.join(SHIM_FILE));
    }
    out
}

fn load() -> std::result::Result<Arc<Shim>, Unavailable> {
    let candidates = candidates();
    let Some(path) = candidates.iter().find(|p| p.is_file()).cloned() else {
        let looked = candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Unavailable(format!(
            "shim not built: no {SHIM_FILE} at {} (run `npm run build:rdma`, or set OBJGET_RDMA_SHIM)",
            if looked.is_empty() { "any search path".into() } else { looked }
        )));
    };
    // SAFETY: loading runs the shim's and libcuobjclient's initializers, which is what they
    // are for; the symbols are checked against the ABI version before any is called.
    let lib = unsafe { libloading::Library::new(&path) }.map_err(|e| {
        // libloading's message is "dlopen failed"; dlerror's text is its source.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        if text.contains("libcuobjclient") {
            Unavailable(format!(
                "library not found: {} needs libcuobjclient.so.1, which the dynamic loader cannot find ({text}); install the CUDA toolkit's cuObject client or add its lib directory to LD_LIBRARY_PATH",
                path.display()
            ))
        } else {
            Unavailable(format!("cannot load {}: {text}", path.display()))
        }
    })?;
    let shim = unsafe { resolve(lib, &path) }.map_err(|e| Unavailable(e.to_string()))?;
    match shim.connected() {
        Ok(true) => Ok(Arc::new(shim)),
        Ok(false) => Err(Unavailable(format!(
            "client not connected: cuObject found no usable RDMA device; check CUFILE_ENV_PATH_JSON ({}), whose properties.rdma_dev_addr_list must list this host's RDMA NICs",
            std::env::var("CUFILE_ENV_PATH_JSON").unwrap_or_else(|_| "unset".into())
        ))),
        Err(e) => Err(Unavailable(e.to_string())),
    }
}

/// Resolve every entry point and create the client.
///
/// # Safety
/// `lib` must be a build of native/shim/objget_rdma.cpp: the symbols are called with the
/// signatures of native/include/objget_rdma.h, checked by the ABI version first.
unsafe fn resolve(lib: libloading::Library, path: &Path) -> Result<Shim> {
    fn sym<T: Copy>(lib: &libloading::Library, name: &str, path: &Path) -> Result<T> {
        // SAFETY: the caller vouches for the signature (see above).
        unsafe { lib.get::<T>(name.as_bytes()) }
            .map(|s| *s)
            .map_err(|e| {
                Error::new(
                    ErrorCode::RdmaUnavailable,
                    format!("{} is not an objget RDMA shim: {e}", path.display()),
                )
            })
    }
    let abi: unsafe extern "C" fn() -> c_int = sym(&lib, "objget_rdma_abi_version", path)?;
    let version = abi();
    if version != ABI_VERSION {
        return Err(Error::new(
            ErrorCode::RdmaUnavailable,
            format!(
                "{} speaks shim ABI {version}, this engine {ABI_VERSION}: rebuild it with `npm run build:rdma`",
                path.display()
            ),
        ));
    }
    let backend: unsafe extern "C" fn() -> *const c_char = sym(&lib, "objget_rdma_backend", path)?;
    let max: unsafe extern "C" fn() -> u64 = sym(&lib, "objget_rdma_max_registration", path)?;
    let create: unsafe extern "C" fn(*mut Handle) -> c_int = sym(&lib, "objget_rdma_create", path)?;
    let last_error: unsafe extern "C" fn() -> *const c_char =
        sym(&lib, "objget_rdma_last_error", path)?;
    let mut handle: Handle = std::ptr::null_mut();
    let rc = create(&mut handle);
    if rc != 0 || handle.is_null() {
        let why = text(last_error());
        return Err(Error::new(
            ErrorCode::RdmaUnavailable,
            format!("the cuObject client could not be created ({rc}): {why}"),
        ));
    }
    Ok(Shim {
        register: sym(&lib, "objget_rdma_register", path)?,
        deregister: sym(&lib, "objget_rdma_deregister", path)?,
        token: sym(&lib, "objget_rdma_token", path)?,
        token_release: sym(&lib, "objget_rdma_token_release", path)?,
        stats: sym(&lib, "objget_rdma_stats", path)?,
        is_connected: sym(&lib, "objget_rdma_is_connected", path)?,
        last_error,
        backend: text(backend()),
        path: path.to_path_buf(),
        max_registration: max(),
        handle,
        _lib: lib,
    })
}

pub(super) fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the shim returns NUL-terminated strings it keeps alive.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl Shim {
    pub(super) fn fail(&self, what: &str, rc: c_int) -> Error {
        // SAFETY: a plain getter of a thread-local string.
        let why = text(unsafe { (self.last_error)() });
        Error::new(
            ErrorCode::Generic,
            format!("cuObject {what} failed ({rc}): {why}"),
        )
    }

    fn connected(&self) -> Result<bool> {
        // SAFETY: `handle` came from objget_rdma_create.
        let rc = unsafe { (self.is_connected)(self.handle) };
        if rc < 0 {
            return Err(self.fail("is_connected", rc));
        }
        Ok(rc == 1)
    }

    /// Register `len` bytes at `ptr` (page-aligned, dedicated memory).
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay allocated until [`Shim::deregister`].
    pub(crate) unsafe fn register(&self, ptr: *mut u8, len: usize) -> Result<()> {
        let rc = (self.register)(self.handle, ptr.cast(), len);
        if rc != 0 {
            return Err(self.fail("buffer registration", rc));
        }
        Ok(())
    }

    /// Deregister what [`Shim::register`] registered at `ptr`.
    pub(crate) fn deregister(&self, ptr: *mut u8) -> Result<()> {
        // SAFETY: the shim checks that `ptr` is a registration's start.
        let rc = unsafe { (self.deregister)(self.handle, ptr.cast()) };
        if rc != 0 {
            return Err(self.fail("buffer deregistration", rc));
        }
        Ok(())
    }

    /// Live registrations and unreleased tokens, as the shim counts them.
    pub(crate) fn stats(&self) -> (u64, u64) {
        let (mut regs, mut tokens) = (0u64, 0u64);
        // SAFETY: plain out-parameters.
        unsafe { (self.stats)(self.handle, &mut regs, &mut tokens) };
        (regs, tokens)
    }
}
