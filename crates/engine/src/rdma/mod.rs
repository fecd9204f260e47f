//! The RDMA transport under objget's own S3 requests (NVIDIA cuObject): the shim that registers
//! host memory and mints tokens ([`shim`], [`token`]), the pools of registered buffers
//! ([`pool`]), caller-held registrations (`allocRdmaBuffer`), and the [`Transport`] one call
//! uses. It knows nothing of S3: `s3/` builds the signed requests that carry a token, and this
//! module never imports from it.
//!
//! Wire contract (../shared/specs/rdma.md, section 2): the bytes move by RDMA between the server
//! and registered host memory while the HTTP request carries only a signed `x-amz-rdma-token`.
//! Under `rdma: true` a declined or unavailable RDMA path falls back to HTTP bodies and the
//! result says `path: 'http'`; under `'require'` it fails with `RdmaUnavailable` or
//! `RdmaDeclined`. Registered buffers come from a pool and always go back to it; tokens are
//! released when their request is over, whatever happened.

mod cufile;
mod pool;
mod shim;
mod token;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) use pool::{Pool, RegBuf};
pub use shim::set_search_path;
pub(crate) use shim::{Shim, OP_GET, OP_PUT};

use crate::budget::Budget;
use crate::error::{Error, ErrorCode, Result};
use crate::options::{RdmaMode, RdmaOptions};

/// Which data path moved an object's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransferPath {
    /// HTTP bodies.
    #[default]
    Http,
    /// RDMA into or out of registered memory.
    Rdma,
}

impl TransferPath {
    /// `"http"` or `"rdma"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Rdma => "rdma",
        }
    }
}

/// Whether RDMA can be used in this process, and if not, why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RdmaStatus {
    /// The shim loaded, the cuObject client was created and registering memory works.
    pub available: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// `"sdk"` (NVIDIA's library) or `"simulator"` (the project's test double).
    pub backend: Option<String>,
    /// The shim's path.
    pub shim: Option<String>,
    /// Live registrations (pool and caller buffers).
    pub registrations: u64,
    /// Tokens minted and not yet released (0 between transfers).
    pub tokens: u64,
    /// Where NVIDIA's cuFile writes its log (never the working directory).
    pub log: Option<String>,
    /// The cuobjclient.h the shim was built against.
    pub header: Option<String>,
    /// `sizeof(cuObjClient)` by that header.
    pub client_size: Option<u64>,
}

/// Load the shim if that was not tried yet (waiting at most `OBJGET_RDMA_INIT_TIMEOUT_MS`),
/// prove registration, and report.
pub fn rdma_status() -> RdmaStatus {
    let usable = usable();
    let mut status = RdmaStatus {
        available: usable.is_ok(),
        reason: usable.err().map(|shim::Unavailable(r)| r),
        log: shim::log_path(),
        ..RdmaStatus::default()
    };
    if let Ok(s) = shim::shim() {
        let (registrations, tokens) = s.stats();
        status.backend = Some(s.backend.clone());
        status.shim = Some(s.path.display().to_string());
        status.header = Some(s.header.clone());
        status.client_size = Some(s.client_size);
        status.registrations = registrations;
        status.tokens = tokens;
    }
    status
}

/// Set once registering memory has worked in this process.
static PROVEN: AtomicBool = AtomicBool::new(false);

/// The shim, when RDMA is usable: loaded, its client created, and registration proven by
/// registering and releasing one page (the real library is "connected" even with no RDMA device
/// configured; only registration tells). After a registration failure, RDMA stays unavailable
/// for `RDMA_REGISTRATION_RETRY_MS` with that reason, and nothing is registered meanwhile.
pub(crate) fn usable() -> std::result::Result<Arc<Shim>, shim::Unavailable> {
    let s = shim::shim()?;
    if let Some(why) = shim::registration_gate() {
        return Err(shim::Unavailable(why));
    }
    if !PROVEN.load(Ordering::Acquire) {
        RegBuf::new(&s, pool::PAGE).map_err(|e| shim::Unavailable(e.message().to_string()))?;
        PROVEN.store(true, Ordering::Release);
    }
    Ok(s)
}

/// [`usable`] from async code: while the client is still being created, the wait runs on a
/// blocking thread, never on the runtime's.
pub(crate) async fn usable_async() -> std::result::Result<Arc<Shim>, shim::Unavailable> {
    if shim::settled() {
        return usable();
    }
    tokio::task::spawn_blocking(usable)
        .await
        .unwrap_or_else(|e| {
            Err(shim::Unavailable(format!(
                "RDMA initialisation failed: {e}"
            )))
        })
}

/// Whether a socket can be bound to `ip` here (an address of this host).
fn assignable(ip: std::net::IpAddr) -> std::io::Result<()> {
    std::net::TcpListener::bind((ip, 0)).map(drop)
}

/// The default `rdmaBindAddress`: the address in cuFile's `rdma_dev_addr_list` when it lists
/// exactly one and this host has it (what other cuObject clients bind to).
fn default_bind() -> Option<std::net::IpAddr> {
    static DEFAULT: std::sync::OnceLock<Option<std::net::IpAddr>> = std::sync::OnceLock::new();
    *DEFAULT.get_or_init(|| match cufile::config().devices.as_slice() {
        [one] => one.parse().ok().filter(|&ip| assignable(ip).is_ok()),
        _ => None,
    })
}

/// Caller-held registered memory (`allocRdmaBuffer`): RDMA reads land in it with no copy.
pub struct RdmaBuffer {
    buf: RegBuf,
}

/// A live caller buffer: its length, and the lock that keeps it to one transfer at a time
/// (one registered buffer must not carry two transfers at once).
struct UserReg {
    len: usize,
    busy: Arc<tokio::sync::Mutex<()>>,
}

/// Start address → every live caller buffer.
static USER: Mutex<BTreeMap<usize, UserReg>> = Mutex::new(BTreeMap::new());

impl RdmaBuffer {
    /// Allocate and register `len` bytes (page-aligned, zeroed). Fails with `RdmaUnavailable`
    /// and the reason when RDMA cannot be used here.
    pub fn alloc(len: usize) -> Result<Self> {
        let shim =
            usable().map_err(|shim::Unavailable(r)| Error::new(ErrorCode::RdmaUnavailable, r))?;
        let buf = RegBuf::new(&shim, len)?;
        let busy = Arc::new(tokio::sync::Mutex::new(()));
        user_map().insert(buf.base() as usize, UserReg { len, busy });
        Ok(Self { buf })
    }

    /// The first byte.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.buf.base()
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Never: an RDMA buffer has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == 0
    }
}

impl Drop for RdmaBuffer {
    fn drop(&mut self) {
        user_map().remove(&(self.buf.base() as usize));
    }
}

fn user_map() -> std::sync::MutexGuard<'static, BTreeMap<usize, UserReg>> {
    USER.lock().unwrap_or_else(|p| p.into_inner())
}

/// The caller buffer holding `[ptr, ptr + len)`: its start, the offset of `ptr` in it, and its
/// one-transfer-at-a-time lock.
pub(crate) fn user_registration(
    ptr: *const u8,
    len: usize,
) -> Option<(*mut u8, usize, Arc<tokio::sync::Mutex<()>>)> {
    let addr = ptr as usize;
    let map = user_map();
    let (&base, reg) = map.range(..=addr).next_back()?;
    (addr + len <= base + reg.len).then(|| (base as *mut u8, addr - base, reg.busy.clone()))
}

/// A raw pointer moved between tasks; every user writes a disjoint range.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut u8);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
/// Where a part lands: `len` bytes at `offset` within the registration starting at `base`.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) base: SendPtr,
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

impl Slot {
    // The memory is not owned by the slot: a slot is a handle to a disjoint range of a live
    // registration (a leased pool buffer or a caller's RDMA buffer), used by one part at a time.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn bytes(&self) -> &mut [u8] {
        // SAFETY: a slot names memory of a live registration, and parts never overlap.
        unsafe { std::slice::from_raw_parts_mut(self.base.0.add(self.offset), self.len) }
    }
}

/// A part's landing memory: a registered pool buffer, or plain memory when RDMA is not used.
pub(crate) enum Lease {
    Pool(pool::Lease),
    Heap(Vec<u8>),
}

impl Lease {
    /// Never reuse this buffer: a server may still be writing into it.
    pub(crate) fn retire(self) {
        if let Lease::Pool(l) = self {
            l.retire();
        }
    }

    pub(crate) fn slot(&mut self, len: usize) -> Slot {
        let base = match self {
            Lease::Pool(l) => l.base(),
            Lease::Heap(v) => v.as_mut_ptr(),
        };
        Slot {
            base: SendPtr(base),
            offset: 0,
            len,
        }
    }
}

/// How one call moves its bytes: the shim when RDMA is usable (`None`: HTTP bodies), the mode,
/// and the parts: their size, how many are in flight (registered buffers in the pool), and the
/// engine's request budget each part's request takes a permit from.
#[derive(Clone)]
pub(crate) struct Transport {
    pub(crate) shim: Option<Arc<Shim>>,
    pub(crate) mode: RdmaMode,
    pub(crate) part_size: u64,
    pub(crate) buffers: usize,
    pub(crate) budget: Budget,
    /// The local address tokened requests leave from (`rdmaBindAddress`, or cuFile's one NIC).
    pub(crate) bind: Option<std::net::IpAddr>,
}

impl Transport {
    /// `None` when the call does not ask for RDMA or must go over HTTP (unavailable under
    /// `true`); `RdmaUnavailable` under `'require'`. The options are validated by the caller.
    pub(crate) async fn plan(
        o: &RdmaOptions,
        url: &str,
        budget: &Budget,
    ) -> Result<Option<Transport>> {
        if o.mode == RdmaMode::Off {
            return Ok(None);
        }
        let shim = match usable_async().await {
            Ok(s) => s,
            Err(shim::Unavailable(reason)) if o.mode == RdmaMode::Require => {
                return Err(Error::new(ErrorCode::RdmaUnavailable, reason).with_url(url))
            }
            Err(_) => return Ok(None),
        };
        let bind = match o.bind_address {
            Some(ip) => {
                assignable(ip).map_err(|e| {
                    Error::invalid_argument(format!(
                        "rdmaBindAddress {ip} is not an address of this host ({e})"
                    ))
                    .with_url(url)
                })?;
                Some(ip)
            }
            None => default_bind(),
        };
        Ok(Some(Transport {
            bind,
            shim: Some(shim),
            mode: o.mode,
            part_size: o.part_size(),
            buffers: o.buffers(),
            budget: budget.clone(),
        }))
    }

    /// HTTP bodies only, in parts of `part_size`, `concurrency` in flight.
    pub(crate) fn http(part_size: u64, concurrency: usize, budget: &Budget) -> Transport {
        Transport {
            shim: None,
            mode: RdmaMode::Prefer,
            part_size,
            buffers: concurrency.max(1),
            budget: budget.clone(),
            bind: None,
        }
    }

    /// The shared pool of registered buffers this transport's parts land in, when RDMA is usable.
    pub(crate) fn pool(&self) -> Option<Arc<Pool>> {
        let shim = self.shim.as_ref()?;
        Some(Pool::shared(shim, self.part_size as usize, self.buffers))
    }

    /// The shim failed to register memory or mint a token: under `'require'` that is
    /// `RdmaUnavailable` (a bug of ours keeps its own code); under `true` this transfer goes on
    /// over HTTP.
    pub(crate) fn unusable(&self, e: Error, declined: &AtomicBool, url: &str) -> Result<()> {
        if self.mode == RdmaMode::Require {
            let code = match e.code() {
                ErrorCode::Generic => ErrorCode::Generic,
                _ => ErrorCode::RdmaUnavailable,
            };
            return Err(Error::new(code, e.message()).with_url(url));
        }
        declined.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The server declined or ignored the token under `'require'`.
    pub(crate) fn declined(&self, what: &str, url: &str) -> Error {
        Error::new(
            ErrorCode::RdmaDeclined,
            format!("{what}: the server did not accept the RDMA token (rdma: 'require')"),
        )
        .with_url(url)
    }
}
