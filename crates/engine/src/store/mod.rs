//! Store construction and caching: one store per (scheme, bucket/account/host, options), built
//! once from the provider's own environment variables plus explicit options, then shared so that
//! connections are reused across calls. Each backend's builder lives in its own file (`s3`,
//! `gcs`, `azure`, `http`); `client` builds the TLS settings and HTTP clients, `spy` records the
//! reply headers object_store drops.

mod azure;
mod client;
mod gcs;
mod http;
mod s3;
pub(crate) mod spy;

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use self::client::{Connector, Tls};
use self::spy::HeaderSpy;
use crate::error::{Error, ErrorCode, Result};
use crate::locate::{Location, Scheme};
use crate::options::StoreOptions;
use crate::redact;

/// object_store's backoff (decorrelated jitter), for objget's own retry loops, so that every
/// path waits the same way.
#[derive(Debug)]
pub(crate) struct Backoff {
    init: f64,
    next: f64,
    max: f64,
    base: f64,
}

impl Backoff {
    pub(crate) fn new(config: &BackoffConfig) -> Self {
        let init = config.init_backoff.as_secs_f64();
        Self {
            init,
            next: init,
            max: config.max_backoff.as_secs_f64(),
            base: config.base,
        }
    }

    /// The next wait: the first is the initial backoff, then between it and base × the last.
    pub(crate) fn next(&mut self) -> Duration {
        let hi = self.next * self.base;
        let drawn = if hi > self.init {
            self.init + rand::random::<f64>() * (hi - self.init)
        } else {
            self.init
        };
        Duration::from_secs_f64(std::mem::replace(&mut self.next, self.max.min(drawn)))
    }
}

/// What serves a location.
#[derive(Clone, Debug)]
pub enum Backend {
    /// An object_store store (S3, GCS, Azure, HTTP).
    Store(Arc<dyn ObjectStore>),
    /// A plain HTTP client (redirects within the scheme only), for URLs whose query string must
    /// be sent untouched.
    Query(reqwest::Client, RetryConfig),
    /// The local filesystem, used directly (object_store's local store reads in 8 KiB chunks).
    File,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StoreKey {
    scheme: Scheme,
    store_url: String,
    options: StoreOptions,
    /// S3: uploads carry a CRC64NVME (all but the store that publishes staged uploads).
    upload_checksum: bool,
}

impl StoreKey {
    /// The key of `loc`'s store: every query URL shares one client (its store URL is the whole
    /// URL), the rest are keyed by their store URL.
    fn new(loc: &Location, opts: &StoreOptions, upload_checksum: bool) -> Self {
        StoreKey {
            scheme: loc.scheme,
            store_url: if loc.scheme == Scheme::HttpQuery {
                String::new()
            } else {
                loc.store_url.clone()
            },
            options: opts.clone(),
            upload_checksum,
        }
    }
}

/// What objget's own signed requests to an S3 store need, kept when the store is built.
#[derive(Debug, Clone)]
struct RawParts {
    pub(super) store: Arc<object_store::aws::AmazonS3>,
    pub(super) http: object_store::client::HttpClient,
    /// Clients with the same settings bound to a local address (RDMA's tokened requests).
    pub(super) binder: client::Binder,
    pub(super) retry: RetryConfig,
    /// Settings objget's own requests do not carry yet (SSE, requester pays), if any.
    pub(super) unsupported: Option<&'static str>,
    /// The configured conditional-copy mechanism is object_store's default one for objget,
    /// `multipart` (If-None-Match on CompleteMultipartUpload).
    pub(super) multipart_conditional: bool,
}

/// The process-wide store cache.
#[derive(Debug, Default)]
pub struct Stores {
    cache: Mutex<HashMap<StoreKey, Backend>>,
    /// What objget's own signed S3 requests need, per S3 store.
    raw: Mutex<HashMap<StoreKey, RawParts>>,
    probes: tokio::sync::Mutex<HashMap<String, bool>>,
}

impl Stores {
    /// An empty cache.
    pub fn new() -> Self {
        crate::install_crypto_provider();
        Self::default()
    }

    /// The backend for `loc`, built on first use and cached.
    pub async fn backend(&self, loc: &Location, opts: &StoreOptions) -> Result<Backend> {
        self.build(loc, opts, true).await
    }

    /// The backend for `loc` without upload checksums (S3): MinIO requires one on every part of
    /// an upload created with a checksum algorithm, and object_store's UploadPartCopy sends
    /// none, so the conditional copy that publishes a staged `ifNotExists` upload uses this one.
    pub(crate) async fn without_upload_checksum(
        &self,
        loc: &Location,
        opts: &StoreOptions,
    ) -> Result<Backend> {
        self.build(loc, opts, false).await
    }

    async fn build(&self, loc: &Location, opts: &StoreOptions, checksum: bool) -> Result<Backend> {
        if loc.scheme == Scheme::File {
            return Ok(Backend::File);
        }
        let key = StoreKey::new(loc, opts, checksum);
        if let Some(b) = self.lock().get(&key) {
            return Ok(b.clone());
        }
        for (k, v) in &opts.config {
            if redact::is_secret_key(k) {
                redact::register_secret(v);
            }
        }
        let backend = match loc.scheme {
            Scheme::S3 => {
                let (backend, raw) = self.s3(loc, opts, checksum).await?;
                self.raw
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.clone(), raw);
                backend
            }
            Scheme::Gcs => self.gcs(loc, opts).await?,
            Scheme::Azure => self.azure(loc, opts).await?,
            Scheme::Http => http::store(loc, opts)?,
            Scheme::HttpQuery => Backend::Query(
                client::query_client(&tls(opts)?, opts.connect_timeout(), opts.read_timeout())?,
                opts.retry_config(),
            ),
            Scheme::File => Backend::File,
        };
        Ok(self.lock().entry(key).or_insert(backend).clone())
    }

    /// The signer and HTTP client of the S3 store for `loc` (built on first use), for the
    /// requests objget signs itself. `NotSupported` when the store is configured with something
    /// those requests do not carry yet (server-side encryption, requester pays).
    pub(crate) async fn s3_raw(
        &self,
        loc: &Location,
        opts: &StoreOptions,
    ) -> Result<crate::s3::S3Raw> {
        self.backend(loc, opts).await?;
        let key = StoreKey::new(loc, opts, true);
        let parts = self
            .raw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::new(ErrorCode::Generic, "no S3 signer for this store"))?;
        if let Some(what) = parts.unsupported {
            return Err(Error::new(
                ErrorCode::NotSupported,
                format!("objget's own S3 requests (rdma, conditional multipart) do not carry {what} yet"),
            )
            .with_url(&loc.url));
        }
        // The bucket's endpoint and the signing region exactly as object_store resolved them
        // (URL forms such as R2's, AWS_ENDPOINT_URL_S3, virtual-hosted style): read off a
        // presigned URL of a probe key.
        use object_store::signer::Signer;
        let probe = object_store::path::Path::from("objget-endpoint-probe");
        let signed = parts
            .store
            .signed_url(::http::Method::GET, &probe, Duration::from_secs(60))
            .await
            .map_err(|e| Error::from_store(e, &loc.url))?;
        let region = signed
            .query_pairs()
            .find(|(k, _)| k == "X-Amz-Credential")
            .and_then(|(_, v)| v.split('/').nth(2).map(str::to_string))
            .ok_or_else(|| {
                Error::new(ErrorCode::Generic, "no signing region in a presigned URL")
            })?;
        let mut endpoint = signed.clone();
        endpoint.set_query(None);
        let bucket_endpoint = endpoint
            .as_str()
            .strip_suffix("/objget-endpoint-probe")
            .ok_or_else(|| Error::new(ErrorCode::Generic, "unexpected presigned URL shape"))?
            .to_string();
        Ok(crate::s3::S3Raw {
            http: parts.http,
            binder: {
                let binder = parts.binder;
                Arc::new(move |ip| binder.bound(ip))
            },
            bound: None,
            credentials: parts.store.credentials().clone(),
            region,
            bucket_endpoint,
            retry: parts.retry,
        })
    }

    /// Whether `ifNotExists` multipart uploads may use objget's own conditional completion:
    /// the store's conditional mechanism is `multipart` and its requests need nothing objget's
    /// own do not carry.
    pub(crate) fn own_conditional_multipart(&self, loc: &Location, opts: &StoreOptions) -> bool {
        let key = StoreKey::new(loc, opts, true);
        self.raw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .is_some_and(|p| p.multipart_conditional && p.unsupported.is_none())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StoreKey, Backend>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// With no credentials configured the provider would fall back to its instance metadata
    /// service and retry it for many seconds. Decide now: a disabled or unreachable metadata
    /// service means `Unauthenticated`, at once.
    pub(super) async fn require_metadata(
        &self,
        loc: &Location,
        // The provider's own switch, where it has one (Azure has none); OBJGET_METADATA=off
        // covers every provider.
        disable_var: Option<&str>,
        endpoint: &str,
        wanted: &str,
    ) -> Result<()> {
        let disabled = disable_var.is_some_and(|v| is_true(std::env::var(v).ok()))
            || std::env::var("OBJGET_METADATA").is_ok_and(|v| v.eq_ignore_ascii_case("off"));
        let reachable = !disabled && self.probe(endpoint).await;
        if reachable {
            return Ok(());
        }
        let why = if disabled {
            "the instance metadata service is disabled"
        } else {
            "no instance metadata service answers"
        };
        Err(Error::new(
            ErrorCode::Unauthenticated,
            format!(
                "no credentials for {}: set {wanted}, or skipSignature for public data ({why})",
                loc.store_url
            ),
        )
        .with_url(&loc.url))
    }

    async fn probe(&self, endpoint: &str) -> bool {
        let mut probes = self.probes.lock().await;
        if let Some(ok) = probes.get(endpoint) {
            return *ok;
        }
        let addr = url::Url::parse(endpoint)
            .ok()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)));
        let ok = match addr {
            Some(addr) => matches!(
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await,
                Ok(Ok(_))
            ),
            None => false,
        };
        probes.insert(endpoint.to_string(), ok);
        ok
    }
}

/// A cloud store's builder, configured alike for every provider: its own environment
/// variables and the explicit options ([`configure`]), the URL, skipSignature.
pub(super) trait Cloud: Sized + Default {
    /// Its configuration keys.
    type Key: FromStr;
    /// The prefix of the environment variables it reads.
    const ENV_PREFIX: &'static str;
    fn set(self, key: Self::Key, value: &str) -> Self;
    fn url(self, url: &str) -> Self;
    fn skip_signature(self) -> Self;

    /// The builder with its HTTP client: objget's connector, client options and retries.
    fn with_client(self, connector: HeaderSpy, client: ClientOptions, opts: &StoreOptions) -> Self;

    /// A builder with objget's client, [`configure`]d, pointed at the location's store, and
    /// unsigned where asked (S3 takes these steps itself, with more between them).
    fn start(loc: &Location, opts: &StoreOptions) -> Result<Self> {
        let b = Self::default().with_client(connector(opts)?, base_client_options(opts)?, opts);
        let b = configure(b, &opts.config, loc)?.url(&loc.store_url);
        Ok(if opts.skip_signature {
            b.skip_signature()
        } else {
            b
        })
    }
}

macro_rules! cloud {
    ($($builder:ty: $key:ty, $prefix:literal;)*) => {$(
        impl Cloud for $builder {
            type Key = $key;
            const ENV_PREFIX: &'static str = $prefix;
            fn set(self, key: $key, value: &str) -> Self {
                self.with_config(key, value)
            }
            fn url(self, url: &str) -> Self {
                self.with_url(url)
            }
            fn skip_signature(self) -> Self {
                self.with_skip_signature(true)
            }
            fn with_client(
                self,
                connector: HeaderSpy,
                client: ClientOptions,
                opts: &StoreOptions,
            ) -> Self {
                self.with_http_connector(connector)
                    .with_client_options(client)
                    .with_retry(opts.retry_config())
            }
        }
    )*};
}

cloud! {
    object_store::aws::AmazonS3Builder: object_store::aws::AmazonS3ConfigKey, "AWS_";
    object_store::gcp::GoogleCloudStorageBuilder: object_store::gcp::GoogleConfigKey, "GOOGLE_";
    object_store::azure::MicrosoftAzureBuilder: object_store::azure::AzureConfigKey, "AZURE_";
}

/// Apply the provider's own environment variables, then the explicit options, to a builder.
pub(super) fn configure<B: Cloud>(
    mut builder: B,
    config: &BTreeMap<String, String>,
    loc: &Location,
) -> Result<B> {
    for (name, value) in std::env::vars() {
        if !name.starts_with(B::ENV_PREFIX) {
            continue;
        }
        let key = name.to_ascii_lowercase();
        // Certificate checks are never switched off by the environment (the TypeScript layer
        // warns once that the variable is ignored).
        if turns_off_tls(&key) {
            continue;
        }
        if let Ok(k) = key.parse::<B::Key>() {
            if redact::is_secret_key(&key) {
                redact::register_secret(&value);
            }
            builder = builder.set(k, &value);
        }
    }
    for (name, value) in config {
        if turns_off_tls(name) {
            return Err(Error::invalid_argument(format!(
                "'{name}' is not accepted: turning TLS certificate checks off takes the explicit store option insecureSkipTlsVerify: true"
            ))
            .with_url(&loc.url));
        }
        let k = name.parse::<B::Key>().map_err(|_| {
            Error::invalid_argument(format!(
                "unknown configuration key '{name}' for {} stores",
                loc.scheme.as_str()
            ))
            .with_url(&loc.url)
        })?;
        builder = builder.set(k, value);
    }
    Ok(builder)
}

/// A configuration key that would switch certificate verification off.
fn turns_off_tls(key: &str) -> bool {
    key.to_ascii_lowercase()
        .ends_with("allow_invalid_certificates")
}

fn tls(opts: &StoreOptions) -> Result<Tls> {
    Tls::new(opts.ca_cert_pem.as_deref(), opts.insecure_skip_tls_verify)
}

pub(super) fn connector(opts: &StoreOptions) -> Result<HeaderSpy> {
    Ok(HeaderSpy::new(Connector { tls: tls(opts)? }))
}

pub(super) fn allow_http(
    opts: &StoreOptions,
    endpoint: &str,
    store_url: &str,
    configured: Option<String>,
) -> bool {
    opts.allow_http.unwrap_or_else(|| {
        is_true(configured)
            || endpoint.to_ascii_lowercase().starts_with("http://")
            || store_url.to_ascii_lowercase().starts_with("http://")
    })
}

/// An endpoint on this machine: 127.0.0.0/8, ::1 or localhost.
pub(super) fn is_loopback(endpoint: &str) -> bool {
    match url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

pub(super) fn is_true(v: Option<String>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

pub(super) fn base_client_options(opts: &StoreOptions) -> Result<ClientOptions> {
    // TLS (caCert, insecureSkipTlsVerify) is the connector's: see `client`.
    Ok(ClientOptions::new()
        .with_timeout_disabled()
        .with_connect_timeout(opts.connect_timeout())
        .with_read_timeout(opts.read_timeout())
        .with_pool_max_idle_per_host(256)
        .with_user_agent(reqwest::header::HeaderValue::from_static(crate::USER_AGENT)))
}

pub(super) fn build_error(e: object_store::Error, loc: &Location) -> Error {
    // A builder fails only on its configuration (missing bucket, bad endpoint, unknown key).
    Error::new(
        ErrorCode::InvalidArgument,
        format!(
            "cannot configure the {} store for {}: {e}",
            loc.scheme.as_str(),
            crate::redact::url_for_display(&loc.url)
        ),
    )
    .with_url(&loc.url)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_endpoints_are_recognised() {
        for e in [
            "http://127.0.0.1:9000",
            "http://127.8.0.1",
            "http://[::1]:9000",
            "http://LocalHost:9000",
        ] {
            assert!(super::is_loopback(e), "{e}");
        }
        for e in [
            "http://10.0.0.1:9000",
            "http://minio.internal",
            "http://localhost.example.com",
            "",
        ] {
            assert!(!super::is_loopback(e), "{e}");
        }
    }

    use super::*;

    #[test]
    fn default_retries_outlast_a_five_second_storm() {
        let retry = StoreOptions::default().retry_config();
        for _ in 0..100 {
            let mut backoff = Backoff::new(&retry.backoff);
            let waits: Vec<Duration> = (0..retry.max_retries).map(|_| backoff.next()).collect();
            assert!(waits
                .iter()
                .all(|w| *w >= retry.backoff.init_backoff && *w <= retry.backoff.max_backoff));
            assert!(waits.iter().sum::<Duration>() >= Duration::from_secs(5));
        }
    }

    #[tokio::test]
    async fn config_keys_that_turn_tls_checks_off_are_refused() {
        let stores = Stores::new();
        for key in [
            "allow_invalid_certificates",
            "aws_allow_invalid_certificates",
        ] {
            let mut opts = StoreOptions {
                skip_signature: true,
                ..Default::default()
            };
            opts.config.insert(key.into(), "true".into());
            let err = stores
                .backend(&Location::parse("s3://bucket/k").unwrap(), &opts)
                .await
                .unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
            assert!(err.message().contains("insecureSkipTlsVerify"));
        }
    }

    #[tokio::test]
    async fn stores_are_cached_per_bucket_and_options() {
        let stores = Stores::new();
        let mut opts = StoreOptions {
            skip_signature: true,
            ..Default::default()
        };
        opts.config.insert("aws_region".into(), "us-east-1".into());
        let a = Location::parse("s3://bucket-a/x").unwrap();
        let a2 = Location::parse("s3://bucket-a/y").unwrap();
        let b = Location::parse("s3://bucket-b/x").unwrap();
        let (Backend::Store(s1), Backend::Store(s2), Backend::Store(s3)) = (
            stores.backend(&a, &opts).await.unwrap(),
            stores.backend(&a2, &opts).await.unwrap(),
            stores.backend(&b, &opts).await.unwrap(),
        ) else {
            panic!("expected object stores")
        };
        assert!(Arc::ptr_eq(&s1, &s2));
        assert!(!Arc::ptr_eq(&s1, &s3));
    }

    #[tokio::test]
    async fn unknown_config_keys_are_rejected() {
        let stores = Stores::new();
        let mut opts = StoreOptions::default();
        opts.config.insert("token_of_doom".into(), "x".into());
        let err = stores
            .backend(&Location::parse("gs://b/k").unwrap(), &opts)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
    }

    #[tokio::test]
    async fn azure_sources_object_store_knows_are_let_through() {
        // A closed port stands in for "no metadata service": each of these builds a store
        // where objget used to answer Unauthenticated before object_store could try it.
        for (key, value) in [
            ("azure_credential_type", "azure_cli"),
            ("azure_fabric_token_service_url", "https://fabric.invalid"),
        ] {
            let mut opts = StoreOptions::default();
            opts.config
                .insert("azure_storage_account_name".into(), "objgettest".into());
            opts.config
                .insert("azure_msi_endpoint".into(), "http://127.0.0.1:9".into());
            opts.config.insert(key.into(), value.into());
            let loc = Location::parse("az://container/k").unwrap();
            assert!(
                Stores::new().backend(&loc, &opts).await.is_ok(),
                "{key} was refused"
            );
        }
    }

    #[tokio::test]
    async fn no_credentials_fails_fast() {
        let stores = Stores::new();
        let mut opts = StoreOptions::default();
        // An endpoint nobody listens on stands in for "no metadata service".
        opts.config
            .insert("aws_metadata_endpoint".into(), "http://127.0.0.1:9".into());
        opts.config.insert("aws_region".into(), "us-east-1".into());
        let started = std::time::Instant::now();
        // scripts/test.sh runs the Rust tests without AWS_* credentials in the environment.
        let loc = Location::parse("s3://no-creds-bucket/k").unwrap();
        let err = stores.backend(&loc, &opts).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unauthenticated);
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
