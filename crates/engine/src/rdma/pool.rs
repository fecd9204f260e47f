//! Registered host memory: page-aligned dedicated allocations registered with cuObject once and
//! reused (registration is expensive), one transfer per buffer at a time. Buffers always return
//! to their pool; a pool's buffers are deregistered and freed only when the process drops it.

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::shim::Shim;
use crate::error::{Error, ErrorCode, Result};

pub(super) const PAGE: usize = 4096;

/// `size` bytes of zeroed, page-aligned memory of its own. On unix an anonymous mapping: the
/// kernel hands out zero pages as they are first touched (by the NIC, or by registration where
/// it pins them), with no second pass of zeroing by the process.
#[cfg(unix)]
fn pages(size: usize) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping of a non-zero size; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    NonNull::new(p.cast())
}

/// # Safety
/// `ptr` and `size` must come from one [`pages`] call, and nothing may use the memory after.
#[cfg(unix)]
unsafe fn free_pages(ptr: NonNull<u8>, size: usize) {
    libc::munmap(ptr.as_ptr().cast(), size);
}

#[cfg(not(unix))]
fn pages(size: usize) -> Option<NonNull<u8>> {
    let layout = std::alloc::Layout::from_size_align(size, PAGE).ok()?;
    // SAFETY: a non-zero size.
    NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
}

#[cfg(not(unix))]
unsafe fn free_pages(ptr: NonNull<u8>, size: usize) {
    let layout = std::alloc::Layout::from_size_align(size, PAGE).expect("checked at allocation");
    std::alloc::dealloc(ptr.as_ptr(), layout);
}

/// One registered allocation.
pub(crate) struct RegBuf {
    ptr: NonNull<u8>,
    len: usize,
    shim: Arc<Shim>,
}

// SAFETY: the allocation is owned; access goes through &/&mut.
unsafe impl Send for RegBuf {}
unsafe impl Sync for RegBuf {}

impl RegBuf {
    /// Allocate `len` zeroed bytes, page-aligned, and register them.
    pub(crate) fn new(shim: &Arc<Shim>, len: usize) -> Result<Self> {
        if len == 0 || len as u64 > shim.max_registration {
            return Err(Error::invalid_argument(format!(
                "an RDMA buffer must be between 1 byte and {} bytes (cuObject's registration limit), got {len}",
                shim.max_registration
            )));
        }
        let size = len.next_multiple_of(PAGE);
        let ptr = pages(size)
            .ok_or_else(|| Error::new(ErrorCode::Generic, "out of memory for an RDMA buffer"))?;
        // SAFETY: the allocation lives until drop, which deregisters first.
        if let Err(e) = unsafe { shim.register(ptr.as_ptr(), size) } {
            // SAFETY: made above with this size.
            unsafe { free_pages(ptr, size) };
            return Err(e);
        }
        Ok(Self {
            ptr,
            len,
            shim: shim.clone(),
        })
    }

    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl RegBuf {
    /// Deregister and leak: for memory a server may still write into. Its registration is
    /// revoked (a real NIC's writes then fail); the memory itself is never handed out again.
    pub(crate) fn retire(self) {
        let _ = self.shim.deregister(self.ptr.as_ptr());
        std::mem::forget(self);
    }
}

impl Drop for RegBuf {
    fn drop(&mut self) {
        if self.shim.deregister(self.ptr.as_ptr()).is_err() {
            // Still registered: a NIC could write into it. Leak rather than free.
            return;
        }
        // SAFETY: made in `new` with this size, deregistered above.
        unsafe { free_pages(self.ptr, self.len.next_multiple_of(PAGE)) };
    }
}

/// Buffers of one size, at most `count` of them, made on first need and reused.
pub(crate) struct Pool {
    shim: Arc<Shim>,
    size: usize,
    free: Mutex<Vec<RegBuf>>,
    slots: Arc<Semaphore>,
    capacity: AtomicUsize,
}

/// A buffer on loan from a pool; it goes back when dropped.
pub(crate) struct Lease {
    buf: Option<RegBuf>,
    pool: Arc<Pool>,
    _slot: OwnedSemaphorePermit,
}

impl std::ops::Deref for Lease {
    type Target = RegBuf;
    fn deref(&self) -> &RegBuf {
        self.buf
            .as_ref()
            .expect("a lease holds its buffer until dropped")
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut RegBuf {
        self.buf
            .as_mut()
            .expect("a lease holds its buffer until dropped")
    }
}

impl Lease {
    /// Retire this buffer (see [`RegBuf::retire`]); its slot in the pool is freed for a new one.
    pub(crate) fn retire(mut self) {
        if let Some(buf) = self.buf.take() {
            buf.retire();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(buf);
        }
    }
}

static POOLS: Mutex<Option<HashMap<usize, Arc<Pool>>>> = Mutex::new(None);

impl Pool {
    /// The process's pool of `size`-byte buffers, with at least `count` slots (a later caller
    /// asking for more slots widens it; buffers are made on first need).
    pub(crate) fn shared(shim: &Arc<Shim>, size: usize, count: usize) -> Arc<Pool> {
        let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
        let pool = pools
            .get_or_insert_with(HashMap::new)
            .entry(size)
            .or_insert_with(|| {
                Arc::new(Pool {
                    shim: shim.clone(),
                    size,
                    free: Mutex::new(Vec::new()),
                    slots: Arc::new(Semaphore::new(0)),
                    capacity: AtomicUsize::new(0),
                })
            })
            .clone();
        let have = pool.capacity.load(Ordering::Relaxed);
        if count > have {
            pool.capacity.store(count, Ordering::Relaxed);
            pool.slots.add_permits(count - have);
        }
        pool
    }

    /// A buffer, waiting for one to come back when all are on loan.
    pub(crate) async fn lease(self: &Arc<Self>) -> Result<Lease> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::new(ErrorCode::Generic, "RDMA buffer pool closed"))?;
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let buf = match reused {
            Some(b) => b,
            None => RegBuf::new(&self.shim, self.size)?,
        };
        Ok(Lease {
            buf: Some(buf),
            pool: self.clone(),
            _slot: slot,
        })
    }
}
