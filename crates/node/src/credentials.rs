//! Credential functions across napi: a JavaScript async function (`store.credentials`, or the
//! AWS SDKs' default chain) becomes an engine `CredentialSource`, called through a weak
//! threadsafe function whose Promise the engine awaits. The TypeScript layer validates what the
//! function returns and hands over a `NativeCredential`; the engine caches and refreshes it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use napi::bindgen_prelude::Promise;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use objget_engine::{Credential, CredentialError, CredentialSource, Fetched, Provider};

/// What a credential function is asked for.
#[napi(object)]
pub struct CredentialRequest {
    /// `'s3'`, `'gcs'` or `'azure'`: the store that needs the credential.
    pub provider: String,
}

/// A credential, as the TypeScript layer hands it over: AWS keys, or a bearer token, or why
/// there is none. Never printed.
#[napi(object)]
pub struct NativeCredential {
    /// S3: the access key id.
    pub access_key_id: Option<String>,
    /// S3: the secret access key.
    pub secret_access_key: Option<String>,
    /// S3: the session token of temporary credentials.
    pub session_token: Option<String>,
    /// GCS, Azure: an OAuth bearer token.
    pub token: Option<String>,
    /// When it expires, in milliseconds since the epoch; absent: it does not.
    pub expires_at_ms: Option<f64>,
    /// Why there is no credential (the message names no secret).
    pub error: Option<String>,
}

/// A credential function: weak (it never keeps the process alive), resolving a Promise.
pub type CredentialsCallback = ThreadsafeFunction<
    CredentialRequest,
    Promise<NativeCredential>,
    CredentialRequest,
    napi::Status,
    false,
    true,
>;

struct JsSource(Arc<CredentialsCallback>);

impl CredentialSource for JsSource {
    fn fetch(&self, provider: Provider) -> BoxFuture<'static, Result<Fetched, CredentialError>> {
        let f = self.0.clone();
        Box::pin(async move {
            let request = CredentialRequest {
                provider: provider.as_str().to_string(),
            };
            let promise = f.call_async(request).await.map_err(|e| {
                CredentialError::unauthenticated(format!(
                    "the credential function could not be called ({})",
                    e.status
                ))
            })?;
            let c = promise.await.map_err(|e| {
                CredentialError::unauthenticated(format!(
                    "the credential function failed: {}",
                    e.reason
                ))
            })?;
            fetched(c)
        })
    }
}

fn fetched(c: NativeCredential) -> Result<Fetched, CredentialError> {
    if let Some(error) = c.error {
        return Err(CredentialError::unauthenticated(error));
    }
    let expires_at = c.expires_at_ms.map(|ms| {
        if ms.is_finite() && ms > 0.0 {
            SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64)
        } else {
            SystemTime::UNIX_EPOCH
        }
    });
    let credential = match (c.access_key_id, c.secret_access_key, c.token) {
        (Some(key_id), Some(secret_key), _) => Credential::Aws {
            key_id,
            secret_key,
            token: c.session_token,
        },
        (None, None, Some(token)) => Credential::Bearer(token),
        _ => {
            return Err(CredentialError::unauthenticated(
                "the credential function returned neither AWS keys nor a token",
            ))
        }
    };
    Ok(Fetched {
        credential,
        expires_at,
    })
}

/// The engine's source for a JavaScript credential function.
fn source(callback: CredentialsCallback) -> Arc<dyn CredentialSource> {
    Arc::new(JsSource(Arc::new(callback)))
}

// napi does not see through the `CredentialsCallback` alias: `ts_args_type` writes the
// JavaScript type into index.d.ts.

/// Register a credential function (`store.credentials`); pass the id as
/// `StoreConfig.credentials`. The TypeScript layer registers each function once.
///
/// ```js
/// const id = registerCredentials(async ({ provider }) => ({ accessKeyId, secretAccessKey }))
/// ```
#[napi(ts_args_type = "callback: ((arg: CredentialRequest) => Promise<NativeCredential>)")]
pub fn register_credentials(callback: CredentialsCallback) -> u32 {
    objget_engine::credentials::register(source(callback))
}

/// Set the AWS default credential chain: S3 stores with no static credentials ask it.
///
/// ```js
/// setAwsDefaultChain(async () => fromTheSdkChain())
/// ```
#[napi(ts_args_type = "callback: ((arg: CredentialRequest) => Promise<NativeCredential>)")]
pub fn set_aws_default_chain(callback: CredentialsCallback) {
    objget_engine::credentials::set_aws_default_chain(source(callback));
}
