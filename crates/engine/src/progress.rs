//! Throttled progress reports: counting is a pair of atomic adds per chunk; a report goes out at
//! most every `interval`, and always once at the end.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Which item of a `download_many` call, if it is one.
    pub index: Option<u32>,
    /// Bytes received so far.
    pub bytes: u64,
    /// Object size, once known.
    pub total: Option<u64>,
    /// Parts finished.
    pub parts_done: u32,
    /// Parts planned, once known.
    pub parts_total: u32,
}

/// The callback that receives reports. It must not block: the binding forwards to JavaScript
/// without waiting.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Per-transfer progress state.
pub(crate) struct Tracker {
    callback: Option<ProgressFn>,
    index: Option<u32>,
    bytes: AtomicU64,
    total: AtomicU64,
    parts_done: AtomicU32,
    parts_total: AtomicU32,
    last: Mutex<Instant>,
    interval: Duration,
}

const UNKNOWN: u64 = u64::MAX;

impl Tracker {
    pub(crate) fn new(callback: Option<ProgressFn>, index: Option<u32>) -> Self {
        Self {
            callback,
            index,
            bytes: AtomicU64::new(0),
            total: AtomicU64::new(UNKNOWN),
            parts_done: AtomicU32::new(0),
            parts_total: AtomicU32::new(0),
            last: Mutex::new(Instant::now()),
            interval: Duration::from_millis(100),
        }
    }

    pub(crate) fn plan(&self, total: u64, parts: u32) {
        self.total.store(total, Ordering::Relaxed);
        self.parts_total.store(parts, Ordering::Relaxed);
    }

    pub(crate) fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if self.callback.is_some() {
            self.maybe_emit();
        }
    }

    pub(crate) fn part_done(&self) {
        self.parts_done.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes counted so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn maybe_emit(&self) {
        let Ok(mut last) = self.last.try_lock() else {
            return; // another part is reporting right now
        };
        if last.elapsed() >= self.interval {
            *last = Instant::now();
            drop(last);
            self.emit();
        }
    }

    pub(crate) fn finish(&self) {
        if self.callback.is_some() {
            self.emit();
        }
    }

    fn emit(&self) {
        if let Some(cb) = &self.callback {
            let total = self.total.load(Ordering::Relaxed);
            cb(Progress {
                index: self.index,
                bytes: self.bytes.load(Ordering::Relaxed),
                total: (total != UNKNOWN).then_some(total),
                parts_done: self.parts_done.load(Ordering::Relaxed),
                parts_total: self.parts_total.load(Ordering::Relaxed),
            });
        }
    }
}
