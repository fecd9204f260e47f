//! Store construction and caching: one store per (scheme, bucket/account/host, options), built
//! once from the provider's own environment variables plus explicit options, then shared so that
//! connections are reused across calls.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::checksum::HeaderSpy;
use crate::client::{Connector, Tls};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

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

/// What objget's own signed requests to an S3 store need, kept when the store is built.
#[derive(Debug, Clone)]
struct RawParts {
    store: Arc<object_store::aws::AmazonS3>,
    http: object_store::client::HttpClient,
    retry: RetryConfig,
    /// Settings objget's own requests do not carry yet (SSE, requester pays), if any.
    unsupported: Option<&'static str>,
    /// The configured conditional-copy mechanism is object_store's default one for objget,
    /// `multipart` (If-None-Match on CompleteMultipartUpload).
    multipart_conditional: bool,
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
        let key = StoreKey {
            scheme: loc.scheme,
            store_url: if loc.scheme == Scheme::HttpQuery {
                String::new()
            } else {
                loc.store_url.clone()
            },
            options: opts.clone(),
            upload_checksum: checksum,
        };
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
            Scheme::Http => http_store(loc, opts)?,
            Scheme::HttpQuery => Backend::Query(
                crate::client::query_client(
                    &tls(opts)?,
                    opts.connect_timeout(),
                    opts.read_timeout(),
                )?,
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
        let key = StoreKey {
            scheme: loc.scheme,
            store_url: loc.store_url.clone(),
            options: opts.clone(),
            upload_checksum: true,
        };
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
            .signed_url(http::Method::GET, &probe, Duration::from_secs(60))
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
        let key = StoreKey {
            scheme: loc.scheme,
            store_url: loc.store_url.clone(),
            options: opts.clone(),
            upload_checksum: true,
        };
        self.raw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .is_some_and(|p| p.multipart_conditional && p.unsupported.is_none())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StoreKey, Backend>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn s3(
        &self,
        loc: &Location,
        opts: &StoreOptions,
        upload_checksum: bool,
    ) -> Result<(Backend, RawParts)> {
        // Ask S3 for its stored checksums on every read (signed, as a default header).
        let mut checksum_mode = reqwest::header::HeaderMap::new();
        checksum_mode.insert(
            "x-amz-checksum-mode",
            reqwest::header::HeaderValue::from_static("ENABLED"),
        );
        let http = Arc::new(Mutex::new(None));
        let mut b = AmazonS3Builder::new()
            .with_http_connector(connector(opts)?.keeping(http.clone()))
            .with_client_options(base_client_options(opts)?.with_default_headers(checksum_mode))
            .with_retry(opts.retry_config());
        b = configure(
            b,
            "AWS_",
            &opts.config,
            loc,
            |b, k: AmazonS3ConfigKey, v| b.with_config(k, v),
        )?;
        // The AWS profile's region and endpoint, where nothing else gives one (an R2 URL names
        // its own endpoint).
        let given = |b: &AmazonS3Builder, k: AmazonS3ConfigKey| {
            b.get_config_value(&k).is_some_and(|v| !v.is_empty())
        };
        if let Some(region) = &opts.profile_region {
            if !given(&b, AmazonS3ConfigKey::Region) {
                b = b.with_config(AmazonS3ConfigKey::Region, region);
            }
        }
        if let Some(endpoint) = &opts.profile_endpoint {
            let url_names_bucket_only =
                loc.store_url.starts_with("s3://") || loc.store_url.starts_with("s3a://");
            if url_names_bucket_only
                && !given(&b, AmazonS3ConfigKey::Endpoint)
                && !given(&b, AmazonS3ConfigKey::S3Endpoint)
            {
                b = b.with_config(AmazonS3ConfigKey::Endpoint, endpoint);
            }
        }
        b = b.with_url(&loc.store_url);
        if opts.skip_signature {
            b = b.with_skip_signature(true);
        }
        // `ifNotExists` for large uploads publishes with a copy completed by a conditional
        // CompleteMultipartUpload (If-None-Match), which S3, R2 and MinIO honour.
        if b.get_config_value(&AmazonS3ConfigKey::CopyIfNotExists)
            .is_none()
        {
            b = b.with_config(AmazonS3ConfigKey::CopyIfNotExists, "multipart");
        }
        // Uploads carry a CRC64NVME the server verifies (S3's own default checksum).
        if upload_checksum && b.get_config_value(&AmazonS3ConfigKey::Checksum).is_none() {
            b = b.with_config(AmazonS3ConfigKey::Checksum, "crc64nvme");
        }
        let endpoint = b
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_default();
        let configured = b.get_config_value(&AmazonS3ConfigKey::Client(
            object_store::ClientConfigKey::AllowHttp,
        ));
        b = b.with_allow_http(allow_http(opts, &endpoint, &loc.store_url, configured));
        // Over TLS the body needs no SHA-256 in the signature: TLS protects it and the server
        // verifies its CRC64NVME (what AWS's own SDKs do). Nor on a loopback endpoint, where no
        // network lies between the bytes and the server to tamper with them. Plain HTTP across
        // a network keeps the signed payload.
        // (The builder reports a default for this key, so "set by the user" is read from the
        // options and the environment.)
        let chosen = std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_some()
            || opts.config.keys().any(|k| {
                matches!(
                    k.parse::<AmazonS3ConfigKey>(),
                    Ok(AmazonS3ConfigKey::UnsignedPayload)
                )
            });
        if (endpoint.is_empty() || endpoint.starts_with("https://") || is_loopback(&endpoint))
            && !chosen
        {
            b = b.with_config(AmazonS3ConfigKey::UnsignedPayload, "true");
        }
        let has = |k: AmazonS3ConfigKey| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        let unsigned = is_true(b.get_config_value(&AmazonS3ConfigKey::SkipSignature));
        // Where the credentials come from, first match wins: the caller's source; static keys
        // (options, then AWS_ACCESS_KEY_ID); a web identity or container credentials named in
        // the options; the AWS SDKs' default chain when the binding set one (profiles, SSO,
        // credential_process, web identity, containers, IMDS); object_store's own providers.
        let explicit = |k: AmazonS3ConfigKey| {
            opts.config
                .keys()
                .any(|name| name.parse::<AmazonS3ConfigKey>().is_ok_and(|p| p == k))
        };
        let source = if unsigned {
            None
        } else if let Some(id) = opts.credentials {
            Some(id)
        } else if has(AmazonS3ConfigKey::AccessKeyId)
            || explicit(AmazonS3ConfigKey::WebIdentityTokenFile)
            || explicit(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
            || explicit(AmazonS3ConfigKey::ContainerCredentialsFullUri)
        {
            None
        } else {
            crate::credentials::aws_default_chain()
        };
        let has_credentials = source.is_some()
            || (has(AmazonS3ConfigKey::AccessKeyId) && has(AmazonS3ConfigKey::SecretAccessKey))
            || has(AmazonS3ConfigKey::WebIdentityTokenFile)
            || has(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
            || has(AmazonS3ConfigKey::ContainerCredentialsFullUri)
            || unsigned;
        if let Some(id) = source {
            b = b.with_credentials(crate::credentials::aws(id).map_err(|e| e.with_url(&loc.url))?);
        }
        if !has_credentials {
            let endpoint = b
                .get_config_value(&AmazonS3ConfigKey::MetadataEndpoint)
                .unwrap_or_else(|| "http://169.254.169.254".into());
            self.require_metadata(loc, Some("AWS_EC2_METADATA_DISABLED"), &endpoint, "AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a web identity or container credentials)").await?;
        }
        let value = |k: &str| {
            AmazonS3ConfigKey::from_str(k)
                .ok()
                .and_then(|k| b.get_config_value(&k))
                .filter(|v| !v.is_empty())
        };
        let unsupported = if value("aws_server_side_encryption").is_some()
            || value("aws_sse_customer_key_base64").is_some()
        {
            Some("server-side encryption settings")
        } else if is_true(value("aws_request_payer")) {
            Some("requester pays")
        } else if is_true(value("aws_skip_signature")) {
            Some("unsigned requests")
        } else {
            None
        };
        let multipart_conditional = b
            .get_config_value(&AmazonS3ConfigKey::CopyIfNotExists)
            .is_some_and(|v| v == "multipart");
        let store = Arc::new(b.build().map_err(|e| build_error(e, loc))?);
        let http = http
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Error::new(ErrorCode::Generic, "S3 store built without a client"))?;
        let raw = RawParts {
            store: store.clone(),
            http,
            retry: opts.retry_config(),
            unsupported,
            multipart_conditional,
        };
        Ok((Backend::Store(store), raw))
    }

    async fn gcs(&self, loc: &Location, opts: &StoreOptions) -> Result<Backend> {
        let mut b = GoogleCloudStorageBuilder::new()
            .with_http_connector(connector(opts)?)
            .with_client_options(base_client_options(opts)?)
            .with_retry(opts.retry_config());
        b = configure(
            b,
            "GOOGLE_",
            &opts.config,
            loc,
            |b, k: GoogleConfigKey, v| b.with_config(k, v),
        )?;
        b = b.with_url(&loc.store_url);
        if opts.skip_signature {
            b = b.with_skip_signature(true);
        }
        // An emulator's base URL: `google_base_url`, or inside the service-account key
        // (gcs_base_url).
        let base_url = b
            .get_config_value(&GoogleConfigKey::BaseUrl)
            .or_else(|| {
                b.get_config_value(&GoogleConfigKey::ServiceAccountKey)
                    .and_then(|k| serde_json::from_str::<serde_json::Value>(&k).ok())
                    .and_then(|v| v.get("gcs_base_url")?.as_str().map(str::to_string))
            })
            .unwrap_or_default();
        let configured = b.get_config_value(&GoogleConfigKey::Client(
            object_store::ClientConfigKey::AllowHttp,
        ));
        let allow = allow_http(opts, &base_url, &loc.store_url, configured);
        b = b.with_config(
            GoogleConfigKey::Client(object_store::ClientConfigKey::AllowHttp),
            allow.to_string(),
        );
        if let Some(id) = opts.credentials {
            b = b.with_credentials(crate::credentials::gcp(id).map_err(|e| e.with_url(&loc.url))?);
        }
        let has = |k: GoogleConfigKey| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        let has_credentials = opts.credentials.is_some()
            || has(GoogleConfigKey::ServiceAccount)
            || has(GoogleConfigKey::ServiceAccountKey)
            || has(GoogleConfigKey::ApplicationCredentials)
            || has(GoogleConfigKey::BearerToken)
            || is_true(b.get_config_value(&GoogleConfigKey::SkipSignature));
        // Application default credentials where gcloud writes them: object_store reads the
        // well-known file under $HOME (%APPDATA% on Windows) itself, but not the one under
        // CLOUDSDK_CONFIG, gcloud's own override of its directory, which is handed over here.
        let (adc_found, adc_path) = if has_credentials {
            (false, None)
        } else {
            gcloud_adc()
        };
        if let Some(path) = adc_path {
            b = b.with_config(GoogleConfigKey::ApplicationCredentials, path);
        }
        if !has_credentials && !adc_found {
            self.require_metadata(loc, Some("NO_GCE_CHECK"), &gce_metadata_endpoint(), "Google credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, GOOGLE_SERVICE_ACCOUNT or GOOGLE_SERVICE_ACCOUNT_KEY)").await?;
        }
        let store = b.build().map_err(|e| build_error(e, loc))?;
        Ok(Backend::Store(Arc::new(store)))
    }

    async fn azure(&self, loc: &Location, opts: &StoreOptions) -> Result<Backend> {
        let mut b = MicrosoftAzureBuilder::new()
            .with_http_connector(connector(opts)?)
            .with_client_options(base_client_options(opts)?)
            .with_retry(opts.retry_config());
        b = configure(b, "AZURE_", &opts.config, loc, |b, k: AzureConfigKey, v| {
            b.with_config(k, v)
        })?;
        b = b.with_url(&loc.store_url);
        if opts.skip_signature {
            b = b.with_skip_signature(true);
        }
        let endpoint = b
            .get_config_value(&AzureConfigKey::Endpoint)
            .unwrap_or_default();
        let allow = allow_http(
            opts,
            &endpoint,
            &loc.store_url,
            b.get_config_value(&AzureConfigKey::Client(
                object_store::ClientConfigKey::AllowHttp,
            )),
        );
        b = b.with_config(
            AzureConfigKey::Client(object_store::ClientConfigKey::AllowHttp),
            allow.to_string(),
        );
        if let Some(id) = opts.credentials {
            b = b
                .with_credentials(crate::credentials::azure(id).map_err(|e| e.with_url(&loc.url))?);
        }
        let has = |k: AzureConfigKey| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        let credential_type = b
            .get_config_value(&AzureConfigKey::CredentialType)
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("auto"));
        let has_credentials = opts.credentials.is_some()
            || has(AzureConfigKey::AccessKey)
            || has(AzureConfigKey::SasKey)
            || has(AzureConfigKey::Token)
            || (has(AzureConfigKey::ClientId) && has(AzureConfigKey::ClientSecret))
            || has(AzureConfigKey::FederatedTokenFile)
            || is_true(b.get_config_value(&AzureConfigKey::UseAzureCli))
            || has(AzureConfigKey::FabricTokenServiceUrl)
            || credential_type.is_some()
            || is_true(b.get_config_value(&AzureConfigKey::UseEmulator))
            || is_true(b.get_config_value(&AzureConfigKey::SkipSignature));
        if !has_credentials {
            let endpoint = b
                .get_config_value(&AzureConfigKey::MsiEndpoint)
                .unwrap_or_else(|| "http://169.254.169.254".into());
            self.require_metadata(loc, None, &endpoint, "Azure credentials (AZURE_STORAGE_ACCOUNT_KEY, a SAS token, a client secret or a federated token)").await?;
        }
        let store = b.build().map_err(|e| build_error(e, loc))?;
        Ok(Backend::Store(Arc::new(store)))
    }

    /// With no credentials configured the provider would fall back to its instance metadata
    /// service and retry it for many seconds. Decide now: a disabled or unreachable metadata
    /// service means `Unauthenticated`, at once.
    async fn require_metadata(
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

/// Where gcloud keeps application default credentials: whether the well-known file object_store
/// reads itself exists, and the path of one under `CLOUDSDK_CONFIG` (which it does not read)
/// when `GOOGLE_APPLICATION_CREDENTIALS` does not name another.
fn gcloud_adc() -> (bool, Option<String>) {
    const FILE: &str = "application_default_credentials.json";
    if let Some(dir) = std::env::var_os("CLOUDSDK_CONFIG").filter(|d| !d.is_empty()) {
        let path = std::path::Path::new(&dir).join(FILE);
        if path.is_file() {
            return (true, Some(path.to_string_lossy().into_owned()));
        }
    }
    let (var, dir) = if cfg!(windows) {
        ("APPDATA", "gcloud")
    } else {
        ("HOME", ".config/gcloud")
    };
    let found = std::env::var_os(var)
        .is_some_and(|h| std::path::Path::new(&h).join(dir).join(FILE).is_file());
    (found, None)
}

/// The GCE metadata server object_store asks (GCE_METADATA_HOST, GCE_METADATA_ROOT,
/// GCE_METADATA_IP, else the link-local address).
fn gce_metadata_endpoint() -> String {
    ["GCE_METADATA_HOST", "GCE_METADATA_ROOT", "GCE_METADATA_IP"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|h| !h.is_empty()))
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| "http://169.254.169.254".into())
}

/// Apply the provider's own environment variables, then the explicit options, to a builder.
fn configure<B, K: FromStr>(
    mut builder: B,
    env_prefix: &str,
    config: &BTreeMap<String, String>,
    loc: &Location,
    set: impl Fn(B, K, &str) -> B,
) -> Result<B> {
    for (name, value) in std::env::vars() {
        if !name.starts_with(env_prefix) {
            continue;
        }
        let key = name.to_ascii_lowercase();
        // Certificate checks are never switched off by the environment (the TypeScript layer
        // warns once that the variable is ignored).
        if turns_off_tls(&key) {
            continue;
        }
        if let Ok(k) = key.parse::<K>() {
            if redact::is_secret_key(&key) {
                redact::register_secret(&value);
            }
            builder = set(builder, k, &value);
        }
    }
    for (name, value) in config {
        if turns_off_tls(name) {
            return Err(Error::invalid_argument(format!(
                "'{name}' is not accepted: turning TLS certificate checks off takes the explicit store option insecureSkipTlsVerify: true"
            ))
            .with_url(&loc.url));
        }
        let k = name.parse::<K>().map_err(|_| {
            Error::invalid_argument(format!(
                "unknown configuration key '{name}' for {} stores",
                loc.scheme.as_str()
            ))
            .with_url(&loc.url)
        })?;
        builder = set(builder, k, value);
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

fn connector(opts: &StoreOptions) -> Result<HeaderSpy> {
    Ok(HeaderSpy::new(Connector { tls: tls(opts)? }))
}

fn allow_http(
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
fn is_loopback(endpoint: &str) -> bool {
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

fn is_true(v: Option<String>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

fn base_client_options(opts: &StoreOptions) -> Result<ClientOptions> {
    // TLS (caCert, insecureSkipTlsVerify) is the connector's: see crate::client.
    Ok(ClientOptions::new()
        .with_timeout_disabled()
        .with_connect_timeout(opts.connect_timeout())
        .with_read_timeout(opts.read_timeout())
        .with_pool_max_idle_per_host(256)
        .with_user_agent(reqwest::header::HeaderValue::from_static(crate::USER_AGENT)))
}

fn http_store(loc: &Location, opts: &StoreOptions) -> Result<Backend> {
    let client =
        base_client_options(opts)?.with_allow_http(allow_http(opts, "", &loc.store_url, None));
    let store = HttpBuilder::new()
        .with_http_connector(connector(opts)?)
        .with_url(&loc.store_url)
        .with_client_options(client)
        .with_retry(opts.retry_config())
        .build()
        .map_err(|e| build_error(e, loc))?;
    Ok(Backend::Store(Arc::new(store)))
}

fn build_error(e: object_store::Error, loc: &Location) -> Error {
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
