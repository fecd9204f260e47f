//! S3 requests objget builds and signs itself (object_store's public `AwsAuthorizer`, sent on
//! the store's own HTTP client): what object_store has no call for, the S3-over-RDMA requests
//! that carry a signed `x-amz-rdma-token` and an empty body.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpClient, HttpResponse};
use object_store::path::Path;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::{Error, ErrorCode, Result};

/// object_store's path encoding for S3 keys: everything but unreserved characters and `/`.
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Query values: RFC 3986 unreserved characters only.
const QUERY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What signing an S3 request needs, taken from the store as it was built.
#[derive(Clone)]
pub(crate) struct S3Raw {
    pub(crate) http: HttpClient,
    pub(crate) credentials: AwsCredentialProvider,
    pub(crate) region: String,
    /// `https://s3.<region>.amazonaws.com/<bucket>`, `<endpoint>/<bucket>`, or a virtual-hosted
    /// endpoint: exactly as object_store computes it.
    pub(crate) bucket_endpoint: String,
    /// The store's retry policy, for requests that carry no RDMA token.
    pub(crate) retry: object_store::RetryConfig,
}

impl std::fmt::Debug for S3Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Raw")
            .field("region", &self.region)
            .field("bucket_endpoint", &self.bucket_endpoint)
            .finish_non_exhaustive()
    }
}

/// Request headers: fixed names, and ones made at run time (`x-amz-meta-*`).
pub(crate) type Headers = Vec<(std::borrow::Cow<'static, str>, String)>;

/// One request to send: headers are signed as given (so a token among them is in
/// SignedHeaders); the payload is always `UNSIGNED-PAYLOAD`.
pub(crate) struct Req<'a> {
    pub(crate) method: Method,
    pub(crate) key: &'a Path,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
}

impl S3Raw {
    fn url(&self, key: &Path, query: &[(&'static str, String)]) -> String {
        let mut url = format!(
            "{}/{}",
            self.bucket_endpoint,
            utf8_percent_encode(key.as_ref(), KEY_ENCODE)
        );
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.extend(utf8_percent_encode(v, QUERY_ENCODE));
        }
        url
    }

    /// Sign and send; an answer of any status comes back (the caller classifies it). Requests
    /// without an RDMA token are retried on connection errors, 429 and 5xx (501 aside) with the
    /// store's backoff; one with a token is not (a retry needs a fresh token, its caller's call).
    pub(crate) async fn send(&self, req: Req<'_>, display_url: &str) -> Result<HttpResponse> {
        let retryable = !req.headers.iter().any(|(k, _)| *k == "x-amz-rdma-token");
        let mut attempt = 0u32;
        let mut backoff = self.retry.backoff.init_backoff;
        loop {
            let r = self.send_once(&req, display_url).await;
            let again = match &r {
                Err(_) => true,
                Ok(resp) => {
                    let s = resp.status().as_u16();
                    s == 429 || (s >= 500 && s != 501)
                }
            };
            if !retryable || !again || attempt >= self.retry.max_retries as u32 {
                return r;
            }
            attempt += 1;
            let jitter = rand::random::<f64>() * 0.5 + 0.75;
            tokio::time::sleep(backoff.mul_f64(jitter)).await;
            backoff = (backoff * 2).min(self.retry.backoff.max_backoff);
        }
    }

    async fn send_once(&self, req: &Req<'_>, display_url: &str) -> Result<HttpResponse> {
        let url = self.url(req.key, &req.query);
        let mut request = http::Request::builder()
            .method(req.method.clone())
            .uri(&url)
            .body(req.body.clone().into())
            .map_err(|e| Error::new(ErrorCode::Generic, format!("bad request: {e}")))?;
        // The store's default header (store.rs), signed here as object_store signs it: the
        // client would otherwise add it after signing, and S3 refuses unsigned x-amz-* headers.
        request.headers_mut().insert(
            HeaderName::from_static("x-amz-checksum-mode"),
            HeaderValue::from_static("ENABLED"),
        );
        for (name, value) in &req.headers {
            let value = HeaderValue::from_str(value).map_err(|_| {
                Error::invalid_argument(format!("header {name} has a value HTTP cannot carry"))
            })?;
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::invalid_argument(format!("{name} is not an HTTP header name"))
            })?;
            request.headers_mut().insert(name, value);
        }
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| Error::from_store(e, display_url))?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .with_sign_payload(false)
            .try_authorize(&mut request, None)
            .map_err(|e| Error::from_store(e, display_url))?;
        self.http.execute(request).await.map_err(|e| {
            Error::new(ErrorCode::Generic, "S3 request failed")
                .with_url(display_url)
                .with_cause(&e)
        })
    }
}

/// A header's value as text.
pub(crate) fn header<'a>(resp: &'a HttpResponse, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The `<Code>` of an S3 XML error body.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    xml_field(body, "Code")
}

/// The text of the first `<name>…</name>` element of an S3 XML answer.
pub(crate) fn xml_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{name}>"))?;
    Some(text[start..end].to_string())
}

/// A typed error for an S3 answer that is not a success.
pub(crate) fn status_error(status: StatusCode, body: &[u8], what: &str, url: &str) -> Error {
    let code = error_code(body).unwrap_or_default();
    let (kind, why) = match (status.as_u16(), code.as_str()) {
        (_, "InvalidRDMAToken") => (
            ErrorCode::RdmaInvalidToken,
            "the server rejected the RDMA token",
        ),
        (_, "RDMATransferFailed") => (
            ErrorCode::RdmaTransferFailed,
            "the server accepted the RDMA request but failed to move the bytes",
        ),
        (404, _) => (ErrorCode::NotFound, "not found"),
        (412, _) => (ErrorCode::Precondition, "a precondition failed"),
        (401, _) => (
            ErrorCode::Unauthenticated,
            "the server rejected the credentials",
        ),
        (403, _) => (ErrorCode::PermissionDenied, "permission denied"),
        _ => (ErrorCode::Generic, "the server answered with an error"),
    };
    let code = if code.is_empty() {
        String::new()
    } else {
        format!(" {code}")
    };
    Error::new(
        kind,
        format!("{what}: {why} (HTTP {}{code})", status.as_u16()),
    )
    .with_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_the_body() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>InvalidRDMAToken</Code></Error>";
        assert_eq!(error_code(body).as_deref(), Some("InvalidRDMAToken"));
        let e = status_error(StatusCode::BAD_REQUEST, body, "GET", "s3://b/k");
        assert_eq!(e.code(), ErrorCode::RdmaInvalidToken);
        let e = status_error(StatusCode::PRECONDITION_FAILED, b"", "GET", "s3://b/k");
        assert_eq!(e.code(), ErrorCode::Precondition);
    }
}
