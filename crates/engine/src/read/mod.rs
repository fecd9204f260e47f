//! The read path: get (into memory), download (into a file), each over the path
//! `Engine::route` chose once: an object_store store, a query URL or a local file ([`Source`]),
//! or the RDMA module ([`Route::Rdma`]).
//!
//! The first request asks for the first part and learns the object's size and ETag from the
//! reply, so a small object costs one request. A larger one is fetched as concurrent ranged
//! parts, each pinned with If-Match to that ETag (an object replaced mid-download fails with
//! `Precondition` and never yields a mixed file), streamed chunk by chunk to its offset in a
//! pre-sized temporary file, or into its slice of one pre-allocated buffer. All transfers draw
//! on one budget of requests in flight.
//!
//! A download lands in a uniquely named temporary file beside the destination, is fsynced, and
//! is renamed into place only when every byte has arrived: on any failure or cancellation the
//! destination is untouched and the temporary is removed.
//!
//! `parts` runs the first request and the ranged parts, `memory` and `file` land them,
//! `source` reads, `sink` writes the temporary file, `commit` makes a downloadMany's files
//! durable together, `resume` keeps its journal, `verify` checks
//! checksums, `place` opens the destination safely, `rdma` reads through the RDMA module.

mod commit;
mod file;
mod memory;
mod parts;
mod place;
mod rdma;
mod resume;
mod sink;
mod source;
mod verify;

pub(crate) use commit::Batch;
pub(crate) use file::{download, prepare, Item};
pub(crate) use memory::{range, whole};
pub(crate) use rdma::{download as rdma_download, get as rdma_get, into as rdma_into};
pub(crate) use source::Source;

use tokio_util::sync::CancellationToken;

use crate::checksum::Checksum;
use crate::error::{Error, ErrorCode, Result};
use crate::rdma::TransferPath;
use source::Read;

/// The outcome of one download.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransferResult {
    /// Bytes written.
    pub bytes: u64,
    /// The entity tag of what was read.
    pub etag: Option<String>,
    /// Wall time of the transfer.
    pub elapsed_ms: f64,
    /// How many parts this call fetched (1 for a single request; on a resume, only the
    /// missing ones).
    pub parts: u32,
    /// The checksum verified, if any.
    pub checksum: Option<Checksum>,
    /// Bytes kept from an interrupted earlier attempt (`resume`).
    pub resumed_bytes: u64,
    /// Which data path moved the bytes.
    pub path: TransferPath,
}

/// The path one read takes, chosen once per call by `Engine::route`.
pub(crate) enum Route {
    /// Through the RDMA module (RDMA, or HTTP bodies where it declines).
    Rdma(std::sync::Arc<crate::s3::Ctx>),
    /// An object_store store, a query URL or a local file.
    Source(Source),
}

pub(crate) fn cut_short(url: &str, want: u64, got: u64) -> Error {
    Error::new(
        ErrorCode::Generic,
        format!("expected {want} bytes but the body had {got}"),
    )
    .with_url(url)
}

pub(crate) fn check_len(read: &Read, want: u64, url: &str) -> Result<()> {
    if read.len != want {
        return Err(Error::new(
            ErrorCode::Generic,
            format!("asked for {want} bytes, the server is sending {}", read.len),
        )
        .with_url(url));
    }
    Ok(())
}

pub(crate) async fn cancellable<T>(
    cancel: &CancellationToken,
    url: &str,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    if cancel.is_cancelled() {
        return Err(Error::aborted(url));
    }
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Error::aborted(url)),
        r = work => r,
    }
}
