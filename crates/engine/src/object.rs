//! What an object is and which of its bytes to read: plain data that the read path, the
//! operations and the binding share.

use chrono::{DateTime, Utc};

/// What is known about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// The entity tag, as the store sends it (quotes included for HTTP-based stores).
    pub etag: Option<String>,
    /// Last modification time.
    pub last_modified: Option<DateTime<Utc>>,
    /// The object version, where the store versions objects.
    pub version: Option<String>,
}

/// A byte range to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `length` bytes from `offset` (clipped at the end of the object, as HTTP does).
    Bounded {
        /// First byte.
        offset: u64,
        /// Number of bytes.
        length: u64,
    },
    /// Everything from `offset` to the end.
    From(u64),
    /// The last `n` bytes (the whole object if it is shorter).
    Suffix(u64),
}

/// The parts of an object of `size` bytes, `part_size` each (the last may be shorter):
/// `(offset, length)`, the first at 0. An empty object is one empty part: it still takes one
/// request (one GET, or one PUT to create it).
pub(crate) fn plan(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    if size == 0 {
        return vec![(0, 0)];
    }
    (0..size.div_ceil(part_size))
        .map(|i| (i * part_size, part_size.min(size - i * part_size)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_the_object_exactly() {
        assert_eq!(plan(0, 10), vec![(0, 0)]);
        assert_eq!(plan(10, 10), vec![(0, 10)]);
        assert_eq!(plan(11, 10), vec![(0, 10), (10, 1)]);
        assert_eq!(plan(21, 10), vec![(0, 10), (10, 10), (20, 1)]);
        assert_eq!(plan(25, 10), vec![(0, 10), (10, 10), (20, 5)]);
        for (size, part) in [
            (1u64, 1u64),
            (100, 7),
            (1 << 20, 65_536),
            (1_000_001, 65_536),
        ] {
            let parts = plan(size, part);
            assert_eq!(parts.first().map(|p| p.0), Some(0));
            assert!(parts.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
            assert_eq!(parts.iter().map(|p| p.1).sum::<u64>(), size);
            assert!(parts.iter().all(|p| p.1 > 0 && p.1 <= part));
        }
    }
}
