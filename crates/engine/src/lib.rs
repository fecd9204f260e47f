//! objget's transfer engine: plain Rust over `object_store`, with no Node.js in sight.
//!
//! `engine` holds `Engine`, the façade: each read parses its URL, chooses its path once and calls
//! `read` (plan and run the parts, land them in memory or a file, resume, verify); `write` uploads
//! (choosing its path once: objget's own S3 requests or object_store), `manage` lists, copies and
//! removes. `options` holds every option with its default and limits, `budget` the one request
//! budget every read, upload part and RDMA part draws from, `locate` turns a URL into a store and a
//! key, `store` builds and caches the stores (one file per backend), `object` says what an object
//! is and which parts to read of it, `landing` is the one buffer every read into memory lands in
//! (never zero-filled), `checksum` is the checksum maths, `fs` the file helpers every path shares,
//! `progress` reports, `s3` is objget's own signed S3 client and `rdma` the RDMA transport it may
//! use (rdma imports nothing from s3), `error` and `redact` keep failures typed and free of
//! secrets, `credentials` brings credentials from outside object_store (a caller's function, the
//! AWS SDKs' default chain).

mod budget;
pub mod cancel;
pub mod checksum;
pub mod credentials;
mod engine;
pub mod error;
mod fs;
mod landing;
pub mod locate;
pub mod manage;
mod object;
pub mod options;
pub mod progress;
pub mod rdma;
mod read;
pub mod redact;
mod s3;
pub mod store;
pub mod stream_upload;
pub mod write;

pub use checksum::{Algorithm, Checksum, ChecksumMode};
pub use credentials::{
    Credential, CredentialError, CredentialSource, CredentialsId, Fetched, Provider,
};
pub use engine::Engine;
pub use error::{Error, ErrorCode, Result};
pub use locate::{Location, Scheme};
pub use manage::Listed;
pub use object::{ByteRange, ObjectInfo};
pub use options::{
    CallOptions, RdmaMode, RdmaOptions, StoreOptions, TransferOptions, UploadOptions, UploadParts,
};
pub use progress::{Progress, ProgressFn};
pub use rdma::{rdma_status, RdmaBuffer, RdmaStatus, TransferPath};
pub use read::TransferResult;
pub use tokio_util::sync::CancellationToken;
pub use write::{UploadResult, UploadSource};

/// objget's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The object_store version this engine was built against (kept in step with Cargo.toml by a
/// test that reads Cargo.lock).
pub const OBJECT_STORE_VERSION: &str = "0.14.2";

pub(crate) const USER_AGENT: &str = concat!("objget/", env!("CARGO_PKG_VERSION"));

/// Install ring as rustls' process-wide crypto provider. Safe to call many times; a provider
/// someone else installed first is left alone.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn object_store_version_matches_the_lockfile() {
        let lock = include_str!("../../../Cargo.lock");
        let needle = format!(
            "name = \"object_store\"\nversion = \"{}\"",
            super::OBJECT_STORE_VERSION
        );
        assert!(lock.contains(&needle), "update OBJECT_STORE_VERSION");
    }
}
