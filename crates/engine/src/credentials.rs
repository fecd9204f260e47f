//! Credentials from outside object_store: a caller's function (`store.credentials`) or the AWS
//! SDKs' default chain (profiles, SSO, `credential_process`, web identity, containers, IMDS),
//! handed to object_store through its `CredentialProvider` trait.
//!
//! A source is registered once and gets an id; `StoreOptions::credentials` carries the id, so
//! stores stay cached per options. Each (source, provider) pair keeps one cached credential,
//! shared by every store that uses it, and asks the source again when the credential is within
//! [`REFRESH_WINDOW`] of its expiration (as the AWS SDKs do); one without an expiration is kept.
//! Nothing here ever formats a secret: the types holding one print only their shape.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use object_store::aws::AwsCredential;
use object_store::azure::AzureCredential;
use object_store::client::CredentialProvider;
use object_store::gcp::GcpCredential;

pub use crate::error::CredentialError;
use crate::error::{Error, ErrorCode, Result};
use crate::redact;

/// A credential expiring within this window is fetched again before the next request.
pub const REFRESH_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How long one fetch may take (a `credential_process` or an STS round trip included) before
/// the request fails with `Timeout` instead of waiting forever.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// A registered credential source.
pub type CredentialsId = u32;

/// The store asking for a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// S3 and S3-compatible stores: an access key, a secret and maybe a session token.
    S3,
    /// Google Cloud Storage: an OAuth bearer token.
    Gcs,
    /// Azure Blob Storage: an Entra ID bearer token.
    Azure,
}

impl Provider {
    /// `'s3'`, `'gcs'` or `'azure'`, as JavaScript sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gcs",
            Self::Azure => "azure",
        }
    }
}

/// What a source hands back.
pub enum Credential {
    /// AWS keys.
    Aws {
        /// The access key id.
        key_id: String,
        /// The secret access key.
        secret_key: String,
        /// The session token of temporary credentials.
        token: Option<String>,
    },
    /// An OAuth bearer token (GCS, Azure).
    Bearer(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aws { token, .. } => f
                .debug_struct("Aws")
                .field("token", &token.as_ref().map(|_| "<redacted>"))
                .finish_non_exhaustive(),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// A credential and when it stops being valid.
#[derive(Debug)]
pub struct Fetched {
    /// The credential.
    pub credential: Credential,
    /// Its expiration; `None`: valid until the process ends.
    pub expires_at: Option<SystemTime>,
}

/// Something that produces credentials on demand: the binding implements it over a JavaScript
/// function.
pub trait CredentialSource: Send + Sync + 'static {
    /// A fresh credential for `provider`.
    fn fetch(&self, provider: Provider) -> BoxFuture<'static, Result<Fetched, CredentialError>>;
}

/// One registered source and its cached credential per provider.
struct Registered {
    source: Arc<dyn CredentialSource>,
    /// What the failure messages call it.
    name: &'static str,
    aws: OnceLock<Arc<Cached<AwsCredential>>>,
    gcp: OnceLock<Arc<Cached<GcpCredential>>>,
    azure: OnceLock<Arc<Cached<AzureCredential>>>,
}

static REGISTRY: LazyLock<Mutex<HashMap<CredentialsId, Arc<Registered>>>> =
    LazyLock::new(Default::default);
static NEXT_ID: AtomicU32 = AtomicU32::new(1);
static AWS_DEFAULT_CHAIN: RwLock<Option<CredentialsId>> = RwLock::new(None);

fn add(source: Arc<dyn CredentialSource>, name: &'static str) -> CredentialsId {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let entry = Arc::new(Registered {
        source,
        name,
        aws: OnceLock::new(),
        gcp: OnceLock::new(),
        azure: OnceLock::new(),
    });
    REGISTRY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, entry);
    id
}

/// Register a caller's source (`store.credentials`); its id goes into
/// [`StoreOptions::credentials`](crate::StoreOptions::credentials).
pub fn register(source: Arc<dyn CredentialSource>) -> CredentialsId {
    add(source, "store.credentials")
}

/// Set the AWS default chain: S3 stores with no static credentials (no access key in the
/// options or `AWS_ACCESS_KEY_ID`, no caller's source, not unsigned) take their credentials
/// from it. Without one, object_store's own environment and metadata providers serve them.
pub fn set_aws_default_chain(source: Arc<dyn CredentialSource>) {
    let id = add(source, "the AWS default credential chain");
    *AWS_DEFAULT_CHAIN.write().unwrap_or_else(|p| p.into_inner()) = Some(id);
}

/// The AWS default chain's id, when one is set.
pub(crate) fn aws_default_chain() -> Option<CredentialsId> {
    *AWS_DEFAULT_CHAIN.read().unwrap_or_else(|p| p.into_inner())
}

fn registered(id: CredentialsId) -> Result<Arc<Registered>> {
    REGISTRY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .cloned()
        .ok_or_else(|| Error::invalid_argument(format!("no credential source with id {id}")))
}

/// The cached S3 credential provider of source `id`.
pub(crate) fn aws(id: CredentialsId) -> Result<Arc<Cached<AwsCredential>>> {
    cached(id, |r| &r.aws, Provider::S3, aws_credential)
}

/// The cached GCS credential provider of source `id`.
pub(crate) fn gcp(id: CredentialsId) -> Result<Arc<Cached<GcpCredential>>> {
    cached(
        id,
        |r| &r.gcp,
        Provider::Gcs,
        |c| bearer(c).map(|bearer| GcpCredential { bearer }),
    )
}

/// The cached Azure credential provider of source `id`.
pub(crate) fn azure(id: CredentialsId) -> Result<Arc<Cached<AzureCredential>>> {
    cached(
        id,
        |r| &r.azure,
        Provider::Azure,
        |c| bearer(c).map(AzureCredential::BearerToken),
    )
}

/// Source `id`'s provider of one kind, made on first use and kept in the slot `slot` picks.
fn cached<T>(
    id: CredentialsId,
    slot: fn(&Registered) -> &OnceLock<Arc<Cached<T>>>,
    provider: Provider,
    convert: fn(Credential) -> Result<T, &'static str>,
) -> Result<Arc<Cached<T>>> {
    let r = registered(id)?;
    Ok(slot(&r)
        .get_or_init(|| Cached::new(&r, provider, convert))
        .clone())
}

fn aws_credential(c: Credential) -> Result<AwsCredential, &'static str> {
    match c {
        Credential::Aws {
            key_id,
            secret_key,
            token,
        } => Ok(AwsCredential {
            key_id,
            secret_key,
            token,
        }),
        Credential::Bearer(_) => {
            Err("an S3 store needs { accessKeyId, secretAccessKey }, got a bearer token")
        }
    }
}

fn bearer(c: Credential) -> Result<String, &'static str> {
    match c {
        Credential::Bearer(t) => Ok(t),
        Credential::Aws { .. } => Err("this store needs { token }, got AWS keys"),
    }
}

/// Whether a credential expiring at `expires_at` may still be used at `now` without asking its
/// source again.
pub(crate) fn fresh(expires_at: Option<SystemTime>, now: SystemTime) -> bool {
    match expires_at {
        None => true,
        Some(t) => t
            .duration_since(now)
            .is_ok_and(|left| left > REFRESH_WINDOW),
    }
}

struct Held<T> {
    value: Arc<T>,
    expires_at: Option<SystemTime>,
}

/// One source's credential for one provider, cached until it nears its expiration.
pub(crate) struct Cached<T> {
    source: Arc<dyn CredentialSource>,
    name: &'static str,
    provider: Provider,
    convert: fn(Credential) -> Result<T, &'static str>,
    held: tokio::sync::Mutex<Option<Held<T>>>,
}

impl<T> fmt::Debug for Cached<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cached")
            .field("source", &self.name)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl<T> Cached<T> {
    fn new(
        r: &Registered,
        provider: Provider,
        convert: fn(Credential) -> Result<T, &'static str>,
    ) -> Arc<Self> {
        Arc::new(Self {
            source: r.source.clone(),
            name: r.name,
            provider,
            convert,
            held: tokio::sync::Mutex::new(None),
        })
    }

    /// The cached credential, or a new one from the source. Concurrent requests wait for one
    /// fetch. A failed refresh of a credential that has not expired yet keeps using it.
    pub(crate) async fn get(&self) -> Result<Arc<T>, CredentialError> {
        let mut held = self.held.lock().await;
        let now = SystemTime::now();
        if let Some(h) = held.as_ref() {
            if fresh(h.expires_at, now) {
                return Ok(h.value.clone());
            }
        }
        let fetched =
            match tokio::time::timeout(FETCH_TIMEOUT, self.source.fetch(self.provider)).await {
                Ok(r) => r,
                Err(_) => Err(CredentialError {
                    code: ErrorCode::Timeout,
                    message: format!(
                        "{} gave no credential within {} s",
                        self.name,
                        FETCH_TIMEOUT.as_secs()
                    ),
                }),
            };
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                if let Some(h) = held.as_ref() {
                    if h.expires_at.is_none_or(|t| t > now) {
                        return Ok(h.value.clone());
                    }
                }
                return Err(e);
            }
        };
        match &fetched.credential {
            Credential::Aws {
                secret_key, token, ..
            } => {
                redact::register_secret(secret_key);
                if let Some(t) = token {
                    redact::register_secret(t);
                }
            }
            Credential::Bearer(t) => redact::register_secret(t),
        }
        let value = Arc::new((self.convert)(fetched.credential).map_err(|why| {
            CredentialError::unauthenticated(format!(
                "{} returned no usable credential: {why}",
                self.name
            ))
        })?);
        *held = Some(Held {
            value: value.clone(),
            expires_at: fetched.expires_at,
        });
        Ok(value)
    }
}

#[async_trait::async_trait]
impl<T: Send + Sync + fmt::Debug + 'static> CredentialProvider for Cached<T> {
    type Credential = T;

    async fn get_credential(&self) -> object_store::Result<Arc<T>> {
        self.get()
            .await
            .map_err(|e| object_store::Error::Unauthenticated {
                path: String::new(),
                source: Box::new(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A source that counts its calls and answers with keys expiring `ttl` from now.
    struct Counting {
        calls: Arc<AtomicUsize>,
        ttl: Option<Duration>,
        fail_after: Option<usize>,
    }

    impl CredentialSource for Counting {
        fn fetch(
            &self,
            _provider: Provider,
        ) -> BoxFuture<'static, Result<Fetched, CredentialError>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let ttl = self.ttl;
            let fail = self.fail_after.is_some_and(|k| n > k);
            Box::pin(async move {
                if fail {
                    return Err(CredentialError::unauthenticated("the source failed"));
                }
                Ok(Fetched {
                    credential: Credential::Aws {
                        key_id: format!("key-{n}"),
                        secret_key: "test-secret-value-0123".into(),
                        token: None,
                    },
                    expires_at: ttl.map(|t| SystemTime::now() + t),
                })
            })
        }
    }

    fn source(
        ttl: Option<Duration>,
        fail_after: Option<usize>,
    ) -> (CredentialsId, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let id = register(Arc::new(Counting {
            calls: calls.clone(),
            ttl,
            fail_after,
        }));
        (id, calls)
    }

    #[test]
    fn freshness_follows_the_five_minute_window() {
        let now = SystemTime::now();
        assert!(fresh(None, now));
        assert!(fresh(
            Some(now + REFRESH_WINDOW + Duration::from_secs(1)),
            now
        ));
        assert!(!fresh(Some(now + REFRESH_WINDOW), now));
        assert!(!fresh(Some(now + Duration::from_secs(60)), now));
        assert!(!fresh(Some(now - Duration::from_secs(1)), now));
    }

    #[tokio::test]
    async fn a_credential_without_expiration_is_fetched_once() {
        let (id, calls) = source(None, None);
        let p = aws(id).unwrap();
        for _ in 0..5 {
            assert_eq!(p.get_credential().await.unwrap().key_id, "key-1");
        }
        // Another store of the same source shares the cache.
        assert_eq!(
            aws(id).unwrap().get_credential().await.unwrap().key_id,
            "key-1"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_credential_far_from_expiry_is_kept_one_within_the_window_is_refetched() {
        let (id, calls) = source(Some(Duration::from_secs(3600)), None);
        let p = aws(id).unwrap();
        p.get_credential().await.unwrap();
        p.get_credential().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Within the window: each call fetches again.
        two_calls_give(Some(Duration::from_secs(240)), None, ["key-1", "key-2"]).await;
    }

    /// Two calls on a source whose credentials last `ttl` (and whose fetches after the
    /// `fail_after`th fail) give these keys, with two fetches.
    async fn two_calls_give(ttl: Option<Duration>, fail_after: Option<usize>, keys: [&str; 2]) {
        let (id, calls) = source(ttl, fail_after);
        let p = aws(id).unwrap();
        for key in keys {
            assert_eq!(p.get_credential().await.unwrap().key_id, key);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_fetch() {
        let (id, calls) = source(None, None);
        let p = aws(id).unwrap();
        let all = futures::future::join_all((0..16).map(|_| p.get_credential())).await;
        assert!(all.iter().all(|c| c.is_ok()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_a_credential_that_has_not_expired() {
        two_calls_give(Some(Duration::from_secs(120)), Some(1), ["key-1", "key-1"]).await;
    }

    #[tokio::test]
    async fn failures_and_wrong_shapes_are_unauthenticated_without_the_secret() {
        let (id, _) = source(None, Some(0));
        let err = aws(id).unwrap().get_credential().await.unwrap_err();
        let e = Error::from_store(err, "s3://b/k");
        assert_eq!(e.code(), ErrorCode::Unauthenticated);
        assert!(e.message().contains("the source failed"), "{}", e.message());

        // AWS keys handed to a GCS store: refused, and the secret never shows.
        let (id, _) = source(None, None);
        let err = gcp(id).unwrap().get_credential().await.unwrap_err();
        let e = Error::from_store(err, "gs://b/k");
        assert_eq!(e.code(), ErrorCode::Unauthenticated);
        let shown = format!("{e} {:?} {:?}", e.cause(), e);
        assert!(!shown.contains("test-secret-value-0123"), "{shown}");
        assert!(!format!("{:?}", gcp(id).unwrap()).contains("test-secret"));
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let c = Credential::Aws {
            key_id: "AKIDEXAMPLE".into(),
            secret_key: "very-secret-key-123".into(),
            token: Some("session-token-456".into()),
        };
        let shown = format!("{c:?} {:?}", Credential::Bearer("bearer-token-789".into()));
        for s in [
            "very-secret-key-123",
            "session-token-456",
            "bearer-token-789",
        ] {
            assert!(!shown.contains(s), "{shown}");
        }
    }

    #[test]
    fn unknown_ids_are_invalid_arguments() {
        let err = aws(u32::MAX).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
    }
}
