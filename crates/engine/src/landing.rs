//! The one allocation every whole-object or range read into memory (`get`) lands in: never
//! zero-filled, its pages first touched by the parts that write them, and handed out as bytes
//! only once every byte has been written.
//!
//! The buffer is split into disjoint part slots ([`Slots`]); a [`PartOut`] appends a part's
//! bytes in order and counts its length towards the buffer only when it is exactly full.
//! Disjoint slots, each counted at most once, whose counts add up to the buffer's length mean
//! that every byte was written: [`Landing::into_vec`] checks that sum and is the only way to the
//! bytes, so a read that fails or is cancelled half-way drops its buffer unseen.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, ErrorCode, Result};

/// An uninitialised buffer for one read into memory.
pub(crate) struct Landing {
    buf: Vec<MaybeUninit<u8>>,
    /// Bytes of completed parts.
    filled: AtomicUsize,
}

impl Landing {
    /// A buffer of `size` bytes, allocated but not written (no zero fill).
    pub(crate) fn new(size: u64) -> Result<Self> {
        // Too large for the address space, or for the allocator: a clear error, not an abort.
        let too_large = || Error::invalid_argument(format!("{size} bytes do not fit in memory"));
        let n = usize::try_from(size).map_err(|_| too_large())?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(n).map_err(|_| too_large())?;
        // SAFETY: the capacity was reserved above, and `MaybeUninit<u8>` needs no
        // initialisation: this is `Vec::set_len`'s documented pattern for uninitialised
        // elements. Nothing writes the bytes here, so no page is touched until a part writes it.
        unsafe { buf.set_len(n) };
        Ok(Landing {
            buf,
            filled: AtomicUsize::new(0),
        })
    }

    /// Split the buffer into the slots of `spans` (`(offset, len)`, contiguous from 0, as
    /// `object::plan` makes them), each taken once by the part that fills it.
    pub(crate) fn slots(
        &mut self,
        spans: impl IntoIterator<Item = (u64, u64)>,
    ) -> Result<Slots<'_>> {
        let Landing { buf, filled } = self;
        let filled = &*filled;
        let mut slots = HashMap::new();
        let mut tail = buf.as_mut_slice();
        let mut at = 0u64;
        for (offset, len) in spans {
            let fits = usize::try_from(len).ok().filter(|&n| n <= tail.len());
            let (Some(n), true) = (fits, offset == at) else {
                return Err(Error::new(
                    ErrorCode::Generic,
                    "parts do not tile the buffer",
                ));
            };
            let (out, next) = std::mem::take(&mut tail).split_at_mut(n);
            slots.insert(offset, PartOut { out, at: 0, filled });
            tail = next;
            at += len;
        }
        Ok(Slots(Mutex::new(slots)))
    }

    /// The bytes, once every one of them has been written by a completed part; an error
    /// otherwise (the buffer is dropped unseen).
    pub(crate) fn into_vec(self) -> Result<Vec<u8>> {
        let filled = self.filled.into_inner();
        if filled != self.buf.len() {
            return Err(Error::new(
                ErrorCode::Generic,
                format!(
                    "only {filled} of {} bytes of the buffer were written",
                    self.buf.len()
                ),
            ));
        }
        let mut buf = std::mem::ManuallyDrop::new(self.buf);
        let (ptr, len, cap) = (buf.as_mut_ptr(), buf.len(), buf.capacity());
        // SAFETY: the slots tile the buffer disjointly (`slots`), each counts its length into
        // `filled` once and only when every byte of it has been written (`PartOut::finish`), so
        // `filled == len` means all `len` bytes are initialised. `MaybeUninit<u8>` and `u8`
        // have the same size and alignment, and the allocation is handed over whole (`ptr`,
        // `cap` from the same Vec, which is never dropped).
        Ok(unsafe { Vec::from_raw_parts(ptr.cast::<u8>(), len, cap) })
    }
}

/// The part slots of one [`Landing`], by offset.
pub(crate) struct Slots<'a>(Mutex<HashMap<u64, PartOut<'a>>>);

impl<'a> Slots<'a> {
    /// The slot of the part at `offset`, once.
    pub(crate) fn take(&self, offset: u64) -> Result<PartOut<'a>> {
        self.0
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&offset))
            .ok_or_else(|| Error::new(ErrorCode::Generic, "part planned twice"))
    }
}

/// One part's slice of a [`Landing`], written front to back.
pub(crate) struct PartOut<'a> {
    out: &'a mut [MaybeUninit<u8>],
    /// Bytes written so far, all at the front.
    at: usize,
    filled: &'a AtomicUsize,
}

impl PartOut<'_> {
    /// The part's length.
    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> usize {
        self.at
    }

    /// Append `bytes`; false, writing nothing, when they would run past the part's end.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> bool {
        let Some(dst) = self.out.get_mut(self.at..self.at + bytes.len()) else {
            return false;
        };
        // SAFETY: `dst` is exactly `bytes.len()` bytes of this part's exclusive slice, which
        // cannot overlap `bytes` (a shared borrow); writing through the raw pointer initialises
        // them without ever reading the uninitialised bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.as_mut_ptr().cast::<u8>(), dst.len())
        };
        self.at += bytes.len();
        true
    }

    /// The part is complete: counts it towards its buffer when exactly full; false (counting
    /// nothing) when bytes are missing.
    pub(crate) fn finish(self) -> bool {
        if self.at != self.out.len() {
            return false;
        }
        self.filled.fetch_add(self.at, Ordering::AcqRel);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// The test binary's allocator: the system's, counting the bytes each thread asks to have
    /// zeroed.
    struct CountZeroed;

    thread_local! {
        static ZEROED: Cell<usize> = const { Cell::new(0) };
    }

    // SAFETY: every call is forwarded unchanged to the system allocator.
    unsafe impl GlobalAlloc for CountZeroed {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let _ = ZEROED.try_with(|z| z.set(z.get() + layout.size()));
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNT_ZEROED: CountZeroed = CountZeroed;

    fn zeroed() -> usize {
        ZEROED.with(Cell::get)
    }

    #[test]
    fn the_allocation_is_not_zero_filled() {
        // The allocator does see a zeroed allocation (what `vec![0u8; n]`, the old `get`
        // buffer, asks for)…
        let before = zeroed();
        let zeros = vec![0u8; 1 << 20];
        assert_eq!(zeroed() - before, 1 << 20);
        drop(zeros);
        // …and none for a landing buffer, whose every byte the parts write.
        let before = zeroed();
        let landing = Landing::new(64 << 20).unwrap();
        assert_eq!(landing.buf.len(), 64 << 20);
        assert_eq!(zeroed(), before, "the buffer was allocated zeroed");
    }

    /// Bytes that differ at every offset (a zero or leftover fill would show).
    fn source(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i * 31 + 7) as u8 ^ (i >> 8) as u8)
            .collect()
    }

    #[test]
    fn parts_written_in_chunks_make_the_whole_buffer() {
        let src = source(10_000);
        let mut landing = Landing::new(src.len() as u64).unwrap();
        let spans = crate::object::plan(src.len() as u64, 4096);
        {
            let slots = landing.slots(spans.iter().copied()).unwrap();
            // Out of order, as parallel parts finish, each in uneven chunks.
            for &(offset, len) in spans.iter().rev() {
                let mut part = slots.take(offset).unwrap();
                let bytes = &src[offset as usize..(offset + len) as usize];
                for chunk in bytes.chunks(1000) {
                    assert!(part.write(chunk));
                }
                assert_eq!(part.written(), len as usize);
                assert!(part.finish());
            }
            assert!(slots.take(0).is_err(), "a slot is handed out once");
        }
        assert_eq!(landing.filled.load(Ordering::Relaxed), src.len());
        assert_eq!(landing.into_vec().unwrap(), src);
    }

    #[test]
    fn a_read_that_stops_half_way_yields_no_buffer() {
        let src = source(8192);
        let mut landing = Landing::new(8192).unwrap();
        {
            let slots = landing.slots([(0, 4096), (4096, 4096)]).unwrap();
            let mut first = slots.take(0).unwrap();
            assert!(first.write(&src[..4096]));
            assert!(first.finish());
            let mut second = slots.take(4096).unwrap();
            assert!(second.write(&src[4096..6000]));
            // The body ended early: the part is not complete and counts nothing.
            assert!(!second.finish());
        }
        let err = landing.into_vec().unwrap_err();
        assert!(err.to_string().contains("4096 of 8192"), "{err}");
    }

    #[test]
    fn a_part_never_taken_or_overrun_yields_no_buffer() {
        let mut landing = Landing::new(100).unwrap();
        {
            let slots = landing.slots([(0, 60), (60, 40)]).unwrap();
            let mut part = slots.take(60).unwrap();
            assert!(
                !part.write(&[1; 41]),
                "a chunk past the part's end is refused"
            );
            assert_eq!(part.written(), 0);
            assert!(part.write(&[1; 40]));
            assert!(!part.write(&[1]));
            assert!(part.finish());
        }
        assert!(
            landing.into_vec().is_err(),
            "the first part was never written"
        );
    }

    #[test]
    fn slots_must_tile_the_buffer() {
        let mut landing = Landing::new(100).unwrap();
        assert!(landing.slots([(0, 60), (50, 40)]).is_err());
        assert!(landing.slots([(0, 60), (60, 41)]).is_err());
        assert!(landing.slots([(0, 101)]).is_err());
        // Fewer bytes than the buffer: the rest stays unwritten, and is never exposed.
        landing
            .slots([(0, 50)])
            .unwrap()
            .take(0)
            .map(|mut p| {
                assert!(p.write(&[9; 50]));
                assert!(p.finish());
            })
            .unwrap();
        assert!(landing.into_vec().is_err());
    }

    #[test]
    fn a_size_beyond_memory_is_an_error_not_an_abort() {
        let err = Landing::new(u64::MAX).err().unwrap();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(err.to_string().contains("do not fit in memory"), "{err}");
    }

    #[test]
    fn an_empty_object_is_an_empty_buffer() {
        let mut landing = Landing::new(0).unwrap();
        {
            let slots = landing.slots(crate::object::plan(0, 4096)).unwrap();
            assert!(slots.take(0).unwrap().finish());
        }
        assert_eq!(landing.into_vec().unwrap(), Vec::<u8>::new());
    }
}
