//! The options of stores and transfers, with their defaults and limits.

use std::collections::BTreeMap;
use std::time::Duration;

use object_store::{BackoffConfig, RetryConfig};

use crate::error::{Error, Result};
use crate::locate::{Location, Scheme};

/// Per-store settings. Anything not given here comes from the provider's environment variables
/// (`AWS_*`, `GOOGLE_*`, `AZURE_*` only); what is given here overrides them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StoreOptions {
    /// object_store configuration keys and values (`aws_access_key_id`, `aws_endpoint`,
    /// `google_service_account_key`, `azure_storage_account_key`, …).
    pub config: BTreeMap<String, String>,
    /// Send unsigned requests (public buckets). Anonymous access is never a silent fallback.
    pub skip_signature: bool,
    /// Allow plain-HTTP endpoints. Unset: allowed when the endpoint or URL itself says `http://`.
    pub allow_http: Option<bool>,
    /// Extra PEM root certificates trusted by this store only; a server certificate equal to one
    /// of them is accepted as it is (a self-signed server certificate).
    pub ca_cert_pem: Option<String>,
    /// Accept any TLS certificate. Only this option turns verification off: the
    /// `allow_invalid_certificates` configuration keys are refused and the environment
    /// variables ignored.
    pub insecure_skip_tls_verify: bool,
    /// Connect timeout; default 10 s.
    pub connect_timeout_ms: Option<u64>,
    /// Longest wait for the next bytes of a response; default 60 s. There is deliberately no
    /// whole-request timeout: a large body may take as long as it takes while bytes keep coming.
    pub read_timeout_ms: Option<u64>,
    /// Retries of a request on 5xx, 429 and connection errors; default [`MAX_RETRIES`].
    pub max_retries: Option<u32>,
    /// Give up retrying a request after this long; default [`RETRY_TIMEOUT_MS`].
    pub retry_timeout_ms: Option<u64>,
    /// First retry backoff; default [`INITIAL_BACKOFF_MS`], growing by up to [`BACKOFF_BASE`]
    /// with jitter up to [`MAX_BACKOFF_MS`].
    pub initial_backoff_ms: Option<u64>,
    /// S3 only: no upload checksum. MinIO requires one on every part of an upload created
    /// with a checksum algorithm, and object_store's UploadPartCopy sends none, so the
    /// conditional copy that publishes a staged `ifNotExists` upload uses a store without it.
    pub(crate) no_upload_checksum: bool,
    /// S3 only: move object bytes by RDMA (cuObject) where available.
    pub rdma: RdmaOptions,
    /// A registered credential source (`store.credentials`): it takes precedence over every
    /// other credential, for any provider.
    pub credentials: Option<crate::credentials::CredentialsId>,
    /// S3 only: the region of the AWS profile (`~/.aws/config`, `AWS_PROFILE`), used where
    /// neither the options nor an `AWS_*` variable give one.
    pub profile_region: Option<String>,
    /// S3 only: the profile's `endpoint_url` (or its `services` section's `s3` one), used for
    /// `s3://` URLs where neither the options nor an `AWS_*` variable give an endpoint.
    pub profile_endpoint: Option<String>,
}

// The retry policy's defaults, in one place (README's store options say the same, and
// src/js/engine.ts mirrors them). object_store's backoff is decorrelated jitter: the first wait is
// the initial backoff, each next one is drawn between it and BACKOFF_BASE × the previous one,
// capped. So every wait is at least the initial backoff, and ten retries at 500 ms outlast a 5 s
// storm of 503 SlowDown whatever the draws (S3 asks clients to back off; five retries from 100 ms
// were spent in about a second). Bounded by the retry timeout.
/// Default retries per request.
pub const MAX_RETRIES: u32 = 10;
/// Default first backoff, in milliseconds.
pub const INITIAL_BACKOFF_MS: u64 = 500;
/// Growth factor of the backoff.
pub const BACKOFF_BASE: f64 = 2.0;
/// Longest single backoff, in milliseconds.
pub const MAX_BACKOFF_MS: u64 = 15_000;
/// Default time after which a request is not retried again, in milliseconds.
pub const RETRY_TIMEOUT_MS: u64 = 180_000;

impl StoreOptions {
    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.unwrap_or(10_000))
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms.unwrap_or(60_000))
    }

    /// The retry policy these options describe.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(
                    self.initial_backoff_ms.unwrap_or(INITIAL_BACKOFF_MS),
                ),
                max_backoff: Duration::from_millis(MAX_BACKOFF_MS),
                base: BACKOFF_BASE,
            },
            max_retries: self.max_retries.unwrap_or(MAX_RETRIES) as usize,
            retry_timeout: Duration::from_millis(self.retry_timeout_ms.unwrap_or(RETRY_TIMEOUT_MS)),
        }
    }
}

/// Whether a store uses RDMA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RdmaMode {
    /// Never (the default).
    #[default]
    Off,
    /// When the shim is loaded, the client connected and the server accepts; HTTP otherwise.
    Prefer,
    /// Always, or fail with `RdmaUnavailable` / `RdmaDeclined`.
    Require,
}

/// RDMA settings of an S3 store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RdmaOptions {
    /// Off, prefer (`true`) or require.
    pub mode: RdmaMode,
    /// Bytes per RDMA request and per registered buffer (default 64 MiB, at most 1 GiB: the
    /// most a server moves in one call).
    pub part_size: Option<u64>,
    /// Registered buffers in the pool, which is also the parts in flight (default 4).
    pub buffers: Option<u32>,
}

/// Default bytes per RDMA request.
pub const DEFAULT_RDMA_PART: u64 = 64 * 1024 * 1024;
/// The most an S3-over-RDMA server moves in one call.
pub const MAX_RDMA_PART: u64 = 1024 * 1024 * 1024;
/// Default registered buffers per pool.
pub const DEFAULT_RDMA_BUFFERS: u32 = 4;
/// S3's smallest multipart part (but the last).
const MIN_S3_PART: u64 = 5 * 1024 * 1024;

impl RdmaOptions {
    pub(crate) fn part_size(&self) -> u64 {
        self.part_size.unwrap_or(DEFAULT_RDMA_PART)
    }

    pub(crate) fn buffers(&self) -> usize {
        self.buffers.unwrap_or(DEFAULT_RDMA_BUFFERS) as usize
    }

    /// Reject what contradicts the wire contract, whether or not RDMA is available here.
    pub(crate) fn validate(&self, loc: &Location, store: &StoreOptions) -> Result<()> {
        if self.mode == RdmaMode::Off {
            return Ok(());
        }
        if loc.scheme != Scheme::S3 {
            return Err(Error::invalid_argument(format!(
                "rdma applies to S3 URLs only (S3 over RDMA is an S3 protocol), not {}",
                loc.scheme.as_str()
            )));
        }
        let part = self.part_size();
        if !(MIN_S3_PART..=MAX_RDMA_PART).contains(&part) {
            return Err(Error::invalid_argument(format!(
                "rdmaPartSize must be between 5 MiB (S3's smallest multipart part) and 1 GiB (the most a server moves by RDMA in one call), got {part}"
            )));
        }
        if !(1..=64).contains(&self.buffers()) {
            return Err(Error::invalid_argument(format!(
                "rdmaBuffers must be between 1 and 64, got {}",
                self.buffers()
            )));
        }
        if store.skip_signature {
            return Err(Error::invalid_argument(
                "rdma needs signed requests: the RDMA token must be among the SigV4 signed headers, and skipSignature sends none",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn rdma_is_for_s3_and_signed_requests_only() {
        let o = RdmaOptions {
            mode: RdmaMode::Prefer,
            ..Default::default()
        };
        let http = Location::parse("https://example.com/k").unwrap();
        let e = o.validate(&http, &StoreOptions::default()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        let s3 = Location::parse("s3://b/k").unwrap();
        o.validate(&s3, &StoreOptions::default()).unwrap();
        let unsigned = StoreOptions {
            skip_signature: true,
            ..Default::default()
        };
        assert!(o
            .validate(&s3, &unsigned)
            .unwrap_err()
            .to_string()
            .contains("signed"));
        let big = RdmaOptions {
            part_size: Some(2 * MAX_RDMA_PART),
            ..o
        };
        assert!(big.validate(&s3, &StoreOptions::default()).is_err());
    }
}
