//! The cuObject shim (`libobjget_rdma.so`, built from `native/`), loaded with dlopen the first
//! time RDMA is asked for. The addon never links libcuobjclient: a machine without it loads
//! objget as usual and `rdma_status()` says why RDMA is unavailable.
//!
//! Loading and creating the client run on a thread of their own with a deadline
//! (`OBJGET_RDMA_INIT_TIMEOUT_MS`): cuFile's initialisation can loop forever (it polls
//! `/proc/modules`, absent on some kernels). Past the deadline RDMA is unavailable for the
//! process ("cuObject client initialisation timed out") and the thread is left to itself.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use crate::error::{Error, ErrorCode, Result};
use crate::options::rdma_env;

/// The C ABI version this engine speaks (`OBJGET_RDMA_ABI_VERSION` in objget_rdma.h).
const ABI_VERSION: c_int = 2;
/// The reason when creating the client outlives its deadline.
pub(crate) const INIT_TIMED_OUT: &str = "cuObject client initialisation timed out";

/// Shim statuses (`OBJGET_RDMA_*` in objget_rdma.h).
const EFAIL: c_int = -2;
const ENOTCONN: c_int = -3;
const ENOMEM: c_int = -4;
const EEXCEPTION: c_int = -5;
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
    /// The cuobjclient.h the shim was compiled against.
    pub(crate) header: String,
    /// `sizeof(cuObjClient)` by that header.
    pub(crate) client_size: u64,
}

// SAFETY: the handle is the process-wide client; the shim serializes every call on it.
unsafe impl Send for Shim {}
unsafe impl Sync for Shim {}

/// Why RDMA cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unavailable(pub(crate) String);

static SEARCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

type Outcome = std::result::Result<Arc<Shim>, Unavailable>;

/// The one load of the process: its outcome once known, and when it started.
struct Loading {
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
    started: Instant,
    /// Where cuFile's log goes (set before the library loads).
    log: String,
}

static LOADING: OnceLock<Arc<Loading>> = OnceLock::new();

/// Directories to look for the shim in (the addon passes its package's `native/build/lib`).
/// `OBJGET_RDMA_SHIM`, a path to the shim itself, comes first.
pub fn set_search_path(dirs: Vec<PathBuf>) {
    *SEARCH.lock().unwrap_or_else(|p| p.into_inner()) = dirs;
}

/// The loaded shim, loading it on first use; the outcome is kept for the process. Waits for the
/// load at most until its deadline (see the module's documentation).
pub(crate) fn shim() -> Outcome {
    let l = loading();
    let deadline = l.started + rdma_env::init_timeout();
    let mut outcome = l.outcome.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if let Some(o) = outcome.as_ref() {
            return o.clone();
        }
        let now = Instant::now();
        if now >= deadline {
            let o = Err(Unavailable(format!(
                "{INIT_TIMED_OUT} after {} ms (OBJGET_RDMA_INIT_TIMEOUT_MS); cuFile's log: {}",
                rdma_env::init_timeout().as_millis(),
                l.log
            )));
            *outcome = Some(o.clone());
            return o;
        }
        outcome = l
            .done
            .wait_timeout(outcome, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// Whether the load's outcome is known (a call to [`shim`] will not wait).
pub(crate) fn settled() -> bool {
    LOADING.get().is_some_and(|l| {
        l.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    })
}

/// Where cuFile's log goes, once RDMA has been asked for.
pub(crate) fn log_path() -> Option<String> {
    LOADING.get().map(|l| l.log.clone())
}

/// The load, started on first use on a thread of its own.
fn loading() -> Arc<Loading> {
    LOADING
        .get_or_init(|| {
            let l = Arc::new(Loading {
                outcome: Mutex::new(None),
                done: Condvar::new(),
                started: Instant::now(),
                log: super::cufile::place_log(),
            });
            let worker = l.clone();
            let spawned = std::thread::Builder::new()
                .name("objget-rdma-init".into())
                .spawn(move || {
                    let o = load();
                    let mut outcome = worker.outcome.lock().unwrap_or_else(|p| p.into_inner());
                    if outcome.is_none() {
                        *outcome = Some(o);
                    } else {
                        // Too late: RDMA was reported unavailable. Keep the library loaded (a
                        // client may live in it), never unload it under a live client.
                        std::mem::forget(o);
                    }
                    worker.done.notify_all();
                });
            if let Err(e) = spawned {
                *l.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(Err(Unavailable(
                    format!("cannot start the cuObject client's initialisation thread: {e}"),
                )));
            }
            l
        })
        .clone()
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

fn load() -> Outcome {
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
    let shim = unsafe { resolve(lib, &path) }.map_err(|e| Unavailable(e.message().to_string()))?;
    // Connected means only that cuFile parsed its configuration: whether RDMA works is proven
    // by registering memory (`super::usable`).
    match shim.connected() {
        Ok(true) => Ok(Arc::new(shim)),
        Ok(false) => Err(Unavailable(not_connected())),
        Err(e) => Err(Unavailable(e.message().to_string())),
    }
}

fn not_connected() -> String {
    format!(
        "client not connected: cuFile could not use its configuration; check CUFILE_ENV_PATH_JSON ({}), which must be valid JSON",
        std::env::var("CUFILE_ENV_PATH_JSON").unwrap_or_else(|_| "unset: /etc/cufile.json".into())
    )
}

/// Registration failed for want of a usable RDMA device: none is tried again until
/// [`rdma_env::registration_retry`] has passed (the library logs every attempt).
static GATE: Mutex<Option<(Instant, String)>> = Mutex::new(None);

/// Why registration is off for now, if it is.
pub(crate) fn registration_gate() -> Option<String> {
    let mut gate = GATE.lock().unwrap_or_else(|p| p.into_inner());
    match gate.as_ref() {
        Some((at, why)) if at.elapsed() < rdma_env::registration_retry() => Some(why.clone()),
        Some(_) => {
            *gate = None;
            None
        }
        None => None,
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
    let header: unsafe extern "C" fn() -> *const c_char = sym(&lib, "objget_rdma_header", path)?;
    let client_size: unsafe extern "C" fn() -> u64 = sym(&lib, "objget_rdma_client_size", path)?;
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
        header: text(header()),
        client_size: client_size(),
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
    /// The error for shim status `rc` of `what` ("registration", "token minting", …): a
    /// client that is not connected, a library failure (the reason is in cuFile's log) and an
    /// exception are `RdmaUnavailable`, each said so; anything else is a bug of ours (Generic).
    pub(super) fn fail(&self, what: &str, rc: c_int) -> Error {
        // SAFETY: a plain getter of a thread-local string.
        let why = text(unsafe { (self.last_error)() });
        let log = log_path().unwrap_or_default();
        match rc {
            ENOTCONN => Error::new(ErrorCode::RdmaUnavailable, not_connected()),
            EFAIL => Error::new(
                ErrorCode::RdmaUnavailable,
                format!("{what} failed: {why}; NVIDIA's library writes its reason (e.g. no RDMA device in rdma_dev_addr_list) to cuFile's log, {log}"),
            ),
            EEXCEPTION => Error::new(
                ErrorCode::RdmaUnavailable,
                format!("{what} failed: the cuObject library threw: {why}"),
            ),
            ENOMEM => Error::new(ErrorCode::Generic, format!("{what} failed: out of memory")),
            _ => Error::new(ErrorCode::Generic, format!("{what} failed ({rc}): {why}")),
        }
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
        if let Some(why) = registration_gate() {
            return Err(Error::new(ErrorCode::RdmaUnavailable, why));
        }
        let rc = (self.register)(self.handle, ptr.cast(), len);
        if rc != 0 {
            let e = self.fail("registration", rc);
            if rc == EFAIL || rc == ENOTCONN {
                *GATE.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), e.message().to_string()));
            }
            return Err(e);
        }
        Ok(())
    }

    /// Deregister what [`Shim::register`] registered at `ptr`.
    pub(crate) fn deregister(&self, ptr: *mut u8) -> Result<()> {
        // SAFETY: the shim checks that `ptr` is a registration's start.
        let rc = unsafe { (self.deregister)(self.handle, ptr.cast()) };
        if rc != 0 {
            return Err(self.fail("deregistration", rc));
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
