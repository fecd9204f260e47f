//! objget's transfer engine: plain Rust over `object_store`, with no Node.js in sight.
//!
//! `engine` holds `Engine` (its methods live in `download` and `ops`), `options` every option
//! with its default and limits, `locate` turns a URL into a store and a key, `store` builds and
//! caches the stores, `download` plans and runs transfers (`fetch` reads, `sink` writes,
//! `progress` reports), `ops` uploads, lists, copies and removes, `s3` is objget's own signed S3
//! client and `rdma` S3 over RDMA, `error` and `redact` keep failures typed and free of secrets,
//! `credentials` brings credentials from outside object_store (a caller's function, the AWS
//! SDKs' default chain).

pub mod cancel;
pub mod checksum;
mod client;
pub mod credentials;
pub mod download;
mod engine;
pub mod error;
mod fetch;
mod fs;
pub mod locate;
mod object;
pub mod ops;
pub mod options;
mod place;
pub mod progress;
pub mod rdma;
pub mod redact;
mod s3;
mod sink;
pub mod store;
pub mod stream_upload;

pub use checksum::{Algorithm, Checksum, ChecksumMode};
pub use credentials::{
    Credential, CredentialError, CredentialSource, CredentialsId, Fetched, Provider,
};
pub use download::TransferResult;
pub use engine::Engine;
pub use error::{Error, ErrorCode, Result};
pub use locate::{Location, Scheme};
pub use object::{ByteRange, ObjectInfo};
pub use ops::{Listed, UploadResult, UploadSource};
pub use options::{
    CallOptions, RdmaMode, RdmaOptions, StoreOptions, TransferOptions, UploadOptions,
};
pub use progress::{Progress, ProgressFn};
pub use rdma::{rdma_status, RdmaBuffer, RdmaStatus, TransferPath};
pub use tokio_util::sync::CancellationToken;

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
