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
