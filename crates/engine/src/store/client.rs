//! The HTTP clients objget sends requests with, built in one place so that every path (object_store's
//! stores, credential providers, the query-URL client) verifies TLS and follows redirects the same
//! way:
//!
//! - TLS is verified by the platform verifier (what reqwest uses by default) with the store's
//!   `caCert` added to the roots. A server certificate byte-equal to one the user pinned through
//!   `caCert` is accepted when its names match, even when WebPKI refuses it as a CA used as an
//!   end entity (a self-signed certificate from a plain `openssl req -x509`).
//! - Verification is off only with `insecureSkipTlsVerify` in code; no configuration key or
//!   environment variable turns it off (see `store/mod.rs`).
//! - A redirect that leaves the request's scheme (https → http) is refused with
//!   [`SchemeChange`], so no path downgrades to plain HTTP.
//!
//! object_store's `ClientOptions` cannot carry a preconfigured rustls configuration, so the
//! connector rebuilds the reqwest client from the options' readable settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::{ClientConfigKey, ClientOptions};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct as Dss, SignatureScheme};

use crate::error::{Error, Result, SchemeChange};

/// How a store's clients verify TLS.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tls {
    /// The store's `caCert`: extra roots, and certificates accepted as the server's own.
    pinned: Vec<CertificateDer<'static>>,
    /// `insecureSkipTlsVerify`: accept any certificate.
    insecure: bool,
}

impl Tls {
    pub(crate) fn new(ca_cert_pem: Option<&str>, insecure: bool) -> Result<Self> {
        let mut pinned = Vec::new();
        if let Some(pem) = ca_cert_pem {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                pinned.push(cert.map_err(|e| {
                    Error::invalid_argument(format!("caCert is not a PEM certificate bundle: {e}"))
                })?);
            }
            if pinned.is_empty() {
                return Err(Error::invalid_argument(
                    "caCert holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                ));
            }
        }
        Ok(Self { pinned, insecure })
    }

    fn rustls_config(
        &self,
        extra_roots: &[CertificateDer<'static>],
        system_roots: bool,
        alpn: &[&[u8]],
    ) -> std::result::Result<rustls::ClientConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner: Option<Arc<dyn ServerCertVerifier>> = if self.insecure {
            None
        } else {
            let roots = self.pinned.iter().chain(extra_roots).cloned();
            Some(if system_roots {
                Arc::new(rustls_platform_verifier::Verifier::new_with_extra_roots(
                    roots,
                    provider.clone(),
                )?)
            } else {
                let mut store = rustls::RootCertStore::empty();
                store.add_parsable_certificates(roots);
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(store),
                    provider.clone(),
                )
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?
            })
        };
        let verifier = Arc::new(Verifier {
            inner,
            pinned: self.pinned.clone(),
            provider: provider.clone(),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// The outcome of checking a handshake's signature.
type Signed = std::result::Result<HandshakeSignatureValid, rustls::Error>;

/// objget's certificate check. With `inner` (the platform verifier, or WebPKI over the given
/// roots), plus: a server certificate byte-equal to a pinned one is accepted when it names the
/// host, whatever WebPKI says of its chain (a self-signed server certificate that is also a CA
/// is refused by WebPKI as `CaUsedAsEndEntity`). Without (`insecureSkipTlsVerify`): any
/// certificate is accepted. Either way the handshake's signatures are checked, so the
/// connection is at least with the holder of the presented key.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<dyn ServerCertVerifier>>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Ok(ServerCertVerified::assertion());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(v) => Ok(v),
            Err(e)
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)
                    .map_err(|_| e.clone())?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &Dss) -> Signed {
        rustls::crypto::verify_tls12_signature(m, c, d, self.algorithms())
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &Dss) -> Signed {
        rustls::crypto::verify_tls13_signature(m, c, d, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

impl Verifier {
    /// The signature algorithms of the provider (what WebPKI and the platform verifier check
    /// handshake signatures with too).
    fn algorithms(&self) -> &rustls::crypto::WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

/// Follow redirects within the scheme, at most ten; refuse any that leaves it.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let from = attempt
            .previous()
            .last()
            .map(|u| u.scheme().to_string())
            .unwrap_or_default();
        if from != attempt.url().scheme() {
            let to = attempt.url().scheme().to_string();
            attempt.error(SchemeChange { from, to })
        } else if attempt.previous().len() > 10 {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// Resolves names like the system does, then shuffles the addresses so that connections spread
/// over a store's many IPs (object_store's `randomize_addresses`, on by default).
#[derive(Debug)]
struct Shuffle;

impl reqwest::dns::Resolve for Shuffle {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            use rand::seq::SliceRandom;
            let mut addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            addrs.shuffle(&mut rand::rng());
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn build_failed(e: impl std::fmt::Display) -> object_store::Error {
    object_store::Error::Generic {
        store: "HTTP client",
        source: e.to_string().into(),
    }
}

/// A reqwest client with every setting `options` carries, verifying TLS as `tls` says.
pub(crate) fn reqwest_client(
    options: &ClientOptions,
    tls: &Tls,
) -> object_store::Result<reqwest::Client> {
    bound_client(options, tls, None)
}

/// [`reqwest_client`] whose connections leave from `local` when given (S3 over RDMA: the NIC
/// the token names).
pub(crate) fn bound_client(
    options: &ClientOptions,
    tls: &Tls,
    local: Option<std::net::IpAddr>,
) -> object_store::Result<reqwest::Client> {
    let get = |k: ClientConfigKey| options.get_config_value(&k);
    // As object_store parses its boolean settings.
    let flag = |k: ClientConfigKey| {
        get(k).is_some_and(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "1" | "true" | "on" | "yes" | "y"
            )
        })
    };
    let duration = |k: ClientConfigKey| -> object_store::Result<Option<Duration>> {
        get(k)
            .map(|v| humantime::parse_duration(&v).map_err(build_failed))
            .transpose()
    };
    let mut b = reqwest::Client::builder()
        .redirect(redirect_policy())
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate()
        .https_only(!flag(ClientConfigKey::AllowHttp))
        .user_agent(get(ClientConfigKey::UserAgent).unwrap_or_else(|| crate::USER_AGENT.into()))
        .local_address(local);
    if let Some(headers) = options.get_default_headers() {
        b = b.default_headers(headers.clone());
    }
    let mut extra_roots = Vec::new();
    if let Some(proxy) = get(ClientConfigKey::ProxyUrl) {
        let mut p = reqwest::Proxy::all(&proxy).map_err(build_failed)?;
        if let Some(excludes) = get(ClientConfigKey::ProxyExcludes) {
            p = p.no_proxy(reqwest::NoProxy::from_string(&excludes));
        }
        if let Some(pem) = get(ClientConfigKey::ProxyCaCertificate) {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                extra_roots.push(cert.map_err(build_failed)?);
            }
        }
        b = b.proxy(p);
    }
    if let Some(t) = duration(ClientConfigKey::Timeout)? {
        b = b.timeout(t);
    }
    if let Some(t) = duration(ClientConfigKey::ConnectTimeout)? {
        b = b.connect_timeout(t);
    }
    if let Some(t) = duration(ClientConfigKey::ReadTimeout)? {
        b = b.read_timeout(t);
    }
    if let Some(t) = duration(ClientConfigKey::PoolIdleTimeout)? {
        b = b.pool_idle_timeout(t);
    }
    if let Some(n) = get(ClientConfigKey::PoolMaxIdlePerHost) {
        b = b.pool_max_idle_per_host(n.parse().map_err(build_failed)?);
    }
    if let Some(t) = duration(ClientConfigKey::Http2KeepAliveInterval)? {
        b = b.http2_keep_alive_interval(t);
    }
    if let Some(t) = duration(ClientConfigKey::Http2KeepAliveTimeout)? {
        b = b.http2_keep_alive_timeout(t);
    }
    if flag(ClientConfigKey::Http2KeepAliveWhileIdle) {
        b = b.http2_keep_alive_while_idle(true);
    }
    if let Some(n) = get(ClientConfigKey::Http2MaxFrameSize) {
        b = b.http2_max_frame_size(Some(n.parse().map_err(build_failed)?));
    }
    let alpn: &[&[u8]] = if flag(ClientConfigKey::Http2Only) {
        b = b.http2_prior_knowledge();
        &[b"h2"]
    } else if flag(ClientConfigKey::Http1Only) {
        b = b.http1_only();
        &[b"http/1.1"]
    } else {
        &[b"h2", b"http/1.1"]
    };
    if options.dns_resolver().is_some() {
        // objget sets no resolver of its own; one set through object_store's API would be
        // lost here, so say so rather than resolve differently.
        return Err(build_failed(
            "a custom DNS resolver is not supported by objget",
        ));
    }
    if get(ClientConfigKey::RandomizeAddresses).is_none()
        || flag(ClientConfigKey::RandomizeAddresses)
    {
        b = b.dns_resolver(Arc::new(Shuffle));
    }
    let system_roots = !flag(ClientConfigKey::NoSystemCertificates);
    let config = tls
        .rustls_config(&extra_roots, system_roots, alpn)
        .map_err(build_failed)?;
    b.tls_backend_preconfigured(config)
        .build()
        .map_err(build_failed)
}

/// The client for URLs whose query string must be sent untouched (presigned, SAS).
pub(crate) fn query_client(
    tls: &Tls,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<reqwest::Client> {
    let options = ClientOptions::new()
        .with_timeout_disabled()
        .with_connect_timeout(connect_timeout)
        .with_read_timeout(read_timeout)
        .with_pool_max_idle_per_host(256)
        .with_allow_http(true)
        .with_config(ClientConfigKey::RandomizeAddresses, "false");
    reqwest_client(&options, tls).map_err(|e| {
        Error::new(
            crate::error::ErrorCode::Generic,
            "could not build the HTTP client",
        )
        .with_cause(&e)
    })
}

/// Clients like a store's own whose connections leave from a given local address, made once per
/// address and kept (S3 over RDMA binds a tokened request to the NIC's address).
#[derive(Debug, Clone)]
pub(crate) struct Binder {
    options: ClientOptions,
    tls: Tls,
    made: Arc<std::sync::Mutex<HashMap<std::net::IpAddr, object_store::client::HttpClient>>>,
}

impl Binder {
    pub(crate) fn new(options: ClientOptions, tls: Tls) -> Self {
        Self {
            options,
            tls,
            made: Arc::default(),
        }
    }

    /// The client whose connections leave from `local`.
    pub(crate) fn bound(
        &self,
        local: std::net::IpAddr,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = made.get(&local) {
            return Ok(c.clone());
        }
        let c = object_store::client::HttpClient::new(bound_client(
            &self.options,
            &self.tls,
            Some(local),
        )?);
        made.insert(local, c.clone());
        Ok(c)
    }
}

/// An object_store connector whose clients come from [`reqwest_client`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Connector {
    pub(crate) tls: Tls,
}

impl Connector {
    pub(crate) fn connect(
        &self,
        options: &ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        Ok(object_store::client::HttpClient::new(reqwest_client(
            options, &self.tls,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_cert_is_invalid_argument() {
        let err = Tls::new(Some("not a certificate"), false).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidArgument);
    }

    #[test]
    fn clients_build_with_the_store_settings() {
        let options = ClientOptions::new()
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(3))
            .with_read_timeout(Duration::from_secs(60))
            .with_pool_max_idle_per_host(256);
        crate::install_crypto_provider();
        reqwest_client(&options, &Tls::default()).unwrap();
        reqwest_client(&options.with_http2_only(), &Tls::new(None, true).unwrap()).unwrap();
    }
}
