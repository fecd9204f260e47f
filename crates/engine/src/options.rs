//! Every option of stores, downloads and uploads, with its default and its limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use object_store::{BackoffConfig, RetryConfig};

use crate::checksum::ChecksumMode;
use crate::error::{Error, Result};
use crate::locate::{Location, Scheme};
use crate::progress::ProgressFn;

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
    /// Longest wait for the next bytes of a response; default [`DEFAULT_READ_TIMEOUT_MS`]. There is deliberately no
    /// whole-request timeout: a large body may take as long as it takes while bytes keep coming.
    pub read_timeout_ms: Option<u64>,
    /// Retries of a request on 5xx, 429 and connection errors; default [`MAX_RETRIES`].
    pub max_retries: Option<u32>,
    /// Give up retrying a request after this long; default [`RETRY_TIMEOUT_MS`].
    pub retry_timeout_ms: Option<u64>,
    /// First retry backoff; default [`INITIAL_BACKOFF_MS`], growing by up to [`BACKOFF_BASE`]
    /// with jitter up to [`MAX_BACKOFF_MS`].
    pub initial_backoff_ms: Option<u64>,
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

// The retry policy's defaults, in one place (README's store options say the same; src/options.ts
// holds the same values, as test/defaults.test.ts checks). object_store's backoff is decorrelated
// jitter: the first wait is the initial backoff, each next one is drawn between it and BACKOFF_BASE × the previous one,
// capped. So every wait is at least the initial backoff, and ten retries at 500 ms outlast a 5 s
// storm of 503 SlowDown whatever the draws (S3 asks clients to back off; five retries from 100 ms
// were spent in about a second). Bounded by the retry timeout.
/// Default longest wait for the next bytes of a response, in milliseconds.
pub const DEFAULT_READ_TIMEOUT_MS: u64 = 60_000;
/// The default limit on establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
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
        Duration::from_millis(
            self.connect_timeout_ms
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS),
        )
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms.unwrap_or(DEFAULT_READ_TIMEOUT_MS))
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

/// RDMA settings of one call (S3 only). Not part of the store: a call with `rdma: true` uses
/// the same store, HTTP client and connection pool as one without.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RdmaOptions {
    /// Off, prefer (`true`) or require.
    pub mode: RdmaMode,
    /// Bytes per RDMA request and per registered buffer (default 64 MiB, at most 1 GiB: the
    /// most a server moves in one call).
    pub part_size: Option<u64>,
    /// Registered buffers in the pool, which is also the parts in flight (default 4).
    pub buffers: Option<u32>,
    /// The local address a tokened request's connection is bound to (the RDMA NIC's). Default:
    /// the address in cuFile's `rdma_dev_addr_list` when it lists exactly one that this host
    /// has; none otherwise.
    pub bind_address: Option<std::net::IpAddr>,
}

/// Default bytes per RDMA request.
pub const DEFAULT_RDMA_PART: u64 = 64 * 1024 * 1024;
/// The most an S3-over-RDMA server moves in one call.
pub const MAX_RDMA_PART: u64 = 1024 * 1024 * 1024;
/// Default registered buffers per pool.
pub const DEFAULT_RDMA_BUFFERS: u32 = 4;
/// How long creating the process's cuObject client may take before RDMA is reported
/// unavailable ("cuObject client initialisation timed out"); `OBJGET_RDMA_INIT_TIMEOUT_MS`
/// overrides it. Process-wide, like the client: read once, when RDMA is first asked for.
pub const DEFAULT_RDMA_INIT_TIMEOUT_MS: u64 = 5_000;
/// After a registration fails (no RDMA device configured), no registration is tried again in
/// the process for this long: the library logs every failed attempt.
pub const RDMA_REGISTRATION_RETRY_MS: u64 = 60_000;

/// The process-wide RDMA settings that come from the environment, not from a call: the client
/// is created once per process, before any call's options could matter.
pub(crate) mod rdma_env {
    use std::path::PathBuf;
    use std::time::Duration;

    /// `OBJGET_RDMA_INIT_TIMEOUT_MS` (a whole number of milliseconds ≥ 1), or
    /// [`super::DEFAULT_RDMA_INIT_TIMEOUT_MS`] when unset or not such a number.
    pub(crate) fn init_timeout() -> Duration {
        let ms = std::env::var("OBJGET_RDMA_INIT_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms >= 1)
            .unwrap_or(super::DEFAULT_RDMA_INIT_TIMEOUT_MS);
        Duration::from_millis(ms)
    }

    /// `OBJGET_RDMA_LOG`: the file cuFile's log goes to (default: under the temp directory).
    pub(crate) fn log() -> Option<PathBuf> {
        std::env::var_os("OBJGET_RDMA_LOG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// How long a failed registration keeps RDMA off in this process.
    pub(crate) fn registration_retry() -> Duration {
        Duration::from_millis(super::RDMA_REGISTRATION_RETRY_MS)
    }
}

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
        if !(MIN_PART..=MAX_RDMA_PART).contains(&part) {
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

/// Per-call transfer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferOptions {
    /// Bytes per ranged part.
    pub part_size: u64,
    /// Parts of one object in flight at once.
    pub concurrency: usize,
    /// Every byte on disk before the rename (fdatasync; a downloadMany's batch: one syncfs),
    /// and the directory synced after it, so a finished download survives a power loss and no
    /// destination name points at bytes that are not on disk. Off, the rename is still atomic
    /// for every process.
    pub durable: bool,
    /// Which checksum to verify.
    pub checksum: ChecksumMode,
    /// Keep an interrupted download's part file and journal, and continue from them.
    pub resume: bool,
}

/// Default part size: 8 MiB, as AWS's own transfer clients use.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// Default parts in flight per object.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Requests in flight across every transfer of the process.
pub const REQUEST_BUDGET: usize = 64;

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            durable: true,
            checksum: ChecksumMode::Auto,
            resume: false,
        }
    }
}

impl TransferOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(MIN_REQUESTED_PART..=MAX_READ_PART).contains(&self.part_size) {
            return Err(Error::invalid_argument(format!(
                "partSize must be between 64 KiB and 1 GiB, got {}",
                self.part_size
            )));
        }
        if !(1..=REQUEST_BUDGET).contains(&self.concurrency) {
            return Err(Error::invalid_argument(format!(
                "concurrency must be between 1 and {REQUEST_BUDGET}, got {}",
                self.concurrency
            )));
        }
        Ok(())
    }
}

/// Everything a transfer call takes besides the URL and destination.
#[derive(Clone, Default)]
pub struct CallOptions {
    /// Store settings.
    pub store: StoreOptions,
    /// S3 only: move object bytes by RDMA (cuObject) where available.
    pub rdma: RdmaOptions,
    /// Part size and concurrency.
    pub transfer: TransferOptions,
    /// Progress reports, throttled.
    pub progress: Option<ProgressFn>,
    /// Resolve every destination beneath this directory without following links (a link below
    /// it is `UnsafeKey`): `downloadPrefix`'s destination directory.
    pub root: Option<PathBuf>,
}

/// Upload settings.
#[derive(Clone, Default)]
pub struct UploadOptions {
    /// Store settings.
    pub store: StoreOptions,
    /// S3 only: send object bytes by RDMA (cuObject) where available.
    pub rdma: RdmaOptions,
    /// Fail with `AlreadyExists` instead of overwriting, atomically where the store allows.
    pub if_not_exists: bool,
    /// How the object is cut into parts and how many go at once.
    pub parts: UploadParts,
    /// `Content-Type` to store.
    pub content_type: Option<String>,
    /// User metadata to store.
    pub metadata: BTreeMap<String, String>,
    /// Progress reports.
    pub progress: Option<ProgressFn>,
}

/// An upload's parts: their size and how many are in flight. Unlike a download's
/// [`TransferOptions`], the size is chosen from the object's when not given.
#[derive(Debug, Clone, Copy, Default)]
pub struct UploadParts {
    /// Bytes per multipart part (default 16 MiB; grown to stay within 10,000 parts and above the
    /// provider's minimum). Objects up to one part go in a single PUT.
    pub size: Option<u64>,
    /// Parts in flight (default 8).
    pub concurrency: Option<usize>,
}

impl UploadParts {
    /// Reject a part size no store takes.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(requested) = self.size {
            if !(MIN_REQUESTED_PART..=MAX_PART).contains(&requested) {
                return Err(Error::invalid_argument(format!(
                    "partSize must be between 64 KiB and 5 GiB, got {requested}"
                )));
            }
        }
        Ok(())
    }

    /// Parts in flight.
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
            .unwrap_or(DEFAULT_UPLOAD_CONCURRENCY)
            .max(1)
    }
}

/// S3 (and R2, MinIO) refuse multipart parts under 5 MiB, except the last; GCS and Azure take
/// smaller blocks, so one minimum serves every store.
pub(crate) const MIN_PART: u64 = 5 * 1024 * 1024;
/// S3's limit on parts per upload.
pub(crate) const MAX_PARTS: u64 = 10_000;
/// S3's largest part (and largest UploadPartCopy source).
pub(crate) const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
/// The largest `partSize` of a download.
pub const MAX_READ_PART: u64 = 1024 * 1024 * 1024;
/// The smallest `partSize` a caller may ask for (downloads and uploads).
pub const MIN_REQUESTED_PART: u64 = 64 * 1024;
/// Default part size for uploads: 16 MiB uploaded 256 MiB to the test MinIO ~8% faster than
/// 8 MiB (and 32 or 64 MiB with fewer parts in flight were slower); objects up to it go in one PUT.
pub const DEFAULT_UPLOAD_PART: u64 = 16 * 1024 * 1024;
/// Default parts of one upload in flight.
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    /// RDMA tuning rides with the call, not the store: a call with `rdma: true` and its own part
    /// size reuses the store (and its HTTP client and connection pool) a plain call built.
    #[tokio::test]
    async fn rdma_on_one_call_uses_the_same_store() {
        use crate::store::Backend;
        let engine = crate::Engine::new();
        let mut store = StoreOptions {
            skip_signature: true,
            ..Default::default()
        };
        store.config.insert("aws_region".into(), "us-east-1".into());
        let plain = CallOptions {
            store,
            ..Default::default()
        };
        let rdma = CallOptions {
            rdma: RdmaOptions {
                mode: RdmaMode::Prefer,
                part_size: Some(8 << 20),
                buffers: Some(2),
                bind_address: None,
            },
            ..plain.clone()
        };
        let loc = Location::parse("s3://bucket/k").unwrap();
        let (Backend::Store(a), Backend::Store(b)) = (
            engine.stores().backend(&loc, &plain.store).await.unwrap(),
            engine.stores().backend(&loc, &rdma.store).await.unwrap(),
        ) else {
            panic!("expected object stores")
        };
        assert!(std::sync::Arc::ptr_eq(&a, &b));
    }

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
