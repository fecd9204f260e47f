//! The engine's public face: each operation parses its URL and options and hands over to the
//! read path (`download`) or the write and listing path (`ops`), which share one store cache and
//! one request budget.

use std::path::{Path, PathBuf};

use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::download::{Core, TransferResult};
use crate::error::Result;
use crate::object::{ByteRange, ObjectInfo};
use crate::ops::{Listed, UploadResult, UploadSource};
use crate::options::{CallOptions, StoreOptions, UploadOptions};

/// The engine: a store cache, the shared request budget, and the operations.
///
/// Memory is bounded by design rather than by a budget: file transfers stream every chunk to a
/// per-file writer queue of bounded length, and `get` writes parts straight into the one buffer
/// it returns.
#[derive(Debug)]
pub struct Engine {
    core: Core,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// A new engine with an empty store cache.
    pub fn new() -> Self {
        Self { core: Core::new() }
    }

    /// Size, ETag, modification time and version of an object.
    pub async fn head(&self, url: &str, opts: &StoreOptions) -> Result<ObjectInfo> {
        self.core.head(url, opts).await
    }

    /// Read an object (or a range of it) into memory. Whole large objects come as parallel
    /// parts written straight into their slices of one buffer.
    pub async fn get(
        &self,
        url: &str,
        range: Option<ByteRange>,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>> {
        self.core.get(url, range, opts, cancel).await
    }

    /// Read a whole object into memory, with the transfer's result (`path` says whether RDMA
    /// moved it).
    pub async fn get_detailed(
        &self,
        url: &str,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<(Vec<u8>, TransferResult)> {
        self.core.get_detailed(url, opts, cancel).await
    }

    /// Read a whole S3 object into caller-registered memory (`allocRdmaBuffer`): by RDMA with
    /// no copy on the client, or over HTTP into the same memory when RDMA is off, unavailable
    /// under `rdma: true`, or declined.
    pub async fn get_into(
        &self,
        url: &str,
        into: &mut [u8],
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<TransferResult> {
        self.core.get_into(url, into, opts, cancel).await
    }

    /// Download an object to `dest` (parent directories are created). On failure `dest` is
    /// untouched and nothing is left behind (with `resume`, the part file and its journal stay
    /// for the next attempt unless the object changed or failed its checksum).
    pub async fn download(
        &self,
        url: &str,
        dest: &Path,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<TransferResult> {
        self.core.download(url, dest, opts, cancel).await
    }

    /// Download many objects with at most `concurrency` objects in flight (their parts share the
    /// engine's request budget). Every item runs to its own end; outcomes come back in input
    /// order. Progress reports carry the item's index.
    pub async fn download_many(
        &self,
        items: Vec<(String, PathBuf)>,
        concurrency: usize,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Vec<Result<TransferResult>> {
        self.core
            .download_many(items, concurrency, opts, cancel)
            .await
    }

    /// Whether an object exists: `false` only for `NotFound`; any other failure is an error.
    pub async fn exists(&self, url: &str, opts: &StoreOptions) -> Result<bool> {
        self.core.exists(url, opts).await
    }

    /// Remove objects; one that does not exist is not an error (removal is idempotent). Objects
    /// of one store go in batches where the store has a batch delete (S3 DeleteObjects).
    pub async fn remove(&self, urls: &[String], opts: &StoreOptions) -> Result<()> {
        self.core.remove(urls, opts).await
    }

    /// Copy an object to another key of the same store (server-side where the store can).
    pub async fn copy(
        &self,
        from: &str,
        to: &str,
        if_not_exists: bool,
        opts: &StoreOptions,
    ) -> Result<()> {
        self.core.copy(from, to, if_not_exists, opts).await
    }

    /// Every object under a prefix URL (`s3://bucket/dir/`), recursively, as the store pages
    /// them. S3 keys come exactly as stored, folder markers (`dir/sub/`) and keys object_store's
    /// `Path` refuses (control characters, `.`/`..` or empty segments) included: objget lists
    /// S3 with its own signed ListObjectsV2.
    pub async fn list(
        &self,
        prefix_url: &str,
        opts: &StoreOptions,
    ) -> Result<BoxStream<'static, Result<Listed>>> {
        self.core.list(prefix_url, opts).await
    }

    /// Upload a file, bytes or a stream to `url`: one PUT up to one part, parallel multipart
    /// above. Any failure or cancellation aborts the multipart upload, so nothing is left behind.
    pub async fn upload(
        &self,
        source: UploadSource,
        url: &str,
        opts: &UploadOptions,
        cancel: &CancellationToken,
    ) -> Result<UploadResult> {
        self.core.upload(source, url, opts, cancel).await
    }
}
