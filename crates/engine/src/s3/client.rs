//! S3 requests objget builds and signs itself (object_store's public `AwsAuthorizer`, sent on
//! the store's own HTTP client): what object_store has no call for, the S3-over-RDMA requests
//! that carry a signed `x-amz-rdma-token` and an empty body, and ListObjectsV2 for keys
//! object_store's `Path` cannot represent (a trailing `/`, control characters, `.`/`..` or
//! empty segments).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpClient, HttpResponse};
use object_store::path::Path;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use std::sync::atomic::AtomicBool;

use crate::budget::Budget;
use crate::error::{Error, ErrorCode, Result};
use crate::locate::Location;
use crate::options::{RdmaOptions, StoreOptions};
use crate::rdma::Transport;

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
    /// The store's HTTP client (its TLS settings, timeouts and connection pool).
    pub(crate) http: HttpClient,
    /// A client with the store's settings bound to a local address.
    pub(crate) binder: BindClient,
    /// The client requests that carry an RDMA token go out on, bound to the RDMA NIC's address
    /// (`rdmaBindAddress`); `None`: the store's.
    pub(crate) bound: Option<HttpClient>,
    /// The store's credentials, refreshed as object_store refreshes them.
    pub(crate) credentials: AwsCredentialProvider,
    /// The region requests are signed for.
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

/// Makes a client with the store's settings whose connections leave from a local address.
pub(crate) type BindClient =
    Arc<dyn Fn(std::net::IpAddr) -> object_store::Result<HttpClient> + Send + Sync>;

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
        // The store's default header (store/s3.rs), signed here as object_store signs it: the
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
        let tokened = request.headers().contains_key("x-amz-rdma-token");
        let http = match &self.bound {
            Some(bound) if tokened => bound,
            _ => &self.http,
        };
        http.execute(request).await.map_err(|e| {
            Error::new(ErrorCode::Generic, "S3 request failed")
                .with_url(display_url)
                .with_cause(&e)
        })
    }
}

/// One call's S3 request context: the store's signer and HTTP client (`raw`), the object's
/// `key`, the `url` the call was given (as errors name it), and the `transport` the bytes move
/// by (RDMA or HTTP bodies, the parts' size, how many are in flight, and the engine's request
/// budget every part takes a permit from). Shared by the call's part tasks through an `Arc`.
pub(crate) struct Ctx {
    pub(crate) raw: S3Raw,
    pub(crate) key: Path,
    pub(crate) url: String,
    pub(crate) transport: Transport,
}

impl Ctx {
    /// `None` when the call does not ask for RDMA or must go over HTTP (unavailable under
    /// `true`); `RdmaUnavailable` under `'require'`. `raw` (the store's signer) is awaited only
    /// when RDMA will be used, so a call that falls back to HTTP never builds it.
    pub(crate) async fn plan(
        loc: &Location,
        url: &str,
        rdma: &RdmaOptions,
        store: &StoreOptions,
        budget: &Budget,
        raw: impl std::future::Future<Output = Result<S3Raw>>,
    ) -> Result<Option<Arc<Ctx>>> {
        rdma.validate(loc, store)?;
        let Some(transport) = Transport::plan(rdma, url, budget).await? else {
            return Ok(None);
        };
        let mut raw = raw.await?;
        if let Some(ip) = transport.bind {
            raw.bound = Some((raw.binder)(ip).map_err(|e| Error::from_store(e, url))?);
        }
        Ok(Some(Arc::new(Ctx::new(loc, url, raw, transport))))
    }

    /// A context that reads over HTTP into caller memory (`into` without RDMA).
    pub(crate) fn http_only(
        loc: &Location,
        url: &str,
        rdma: &RdmaOptions,
        budget: &Budget,
        raw: S3Raw,
    ) -> Arc<Ctx> {
        let transport = Transport::http(rdma.part_size(), rdma.buffers(), budget);
        Arc::new(Ctx::new(loc, url, raw, transport))
    }

    /// A context for objget's own signed S3 requests with the bytes in HTTP bodies: the
    /// conditional multipart upload object_store does not have.
    pub(crate) fn http(
        loc: &Location,
        url: &str,
        raw: S3Raw,
        part_size: u64,
        concurrency: usize,
        budget: &Budget,
    ) -> Arc<Ctx> {
        let transport = Transport::http(part_size, concurrency, budget);
        Arc::new(Ctx::new(loc, url, raw, transport))
    }

    fn new(loc: &Location, url: &str, raw: S3Raw, transport: Transport) -> Ctx {
        Ctx {
            raw,
            key: loc.path.clone(),
            url: url.to_string(),
            transport,
        }
    }

    /// Sign and send one request for this call's key.
    pub(crate) async fn request(
        &self,
        method: Method,
        query: Vec<(&'static str, String)>,
        headers: Headers,
        body: Bytes,
    ) -> Result<HttpResponse> {
        let req = Req {
            method,
            key: &self.key,
            query,
            headers,
            body,
        };
        self.raw.send(req, &self.url).await
    }

    /// The URL of the call.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// See [`Transport::unusable`].
    pub(crate) fn unusable(&self, e: Error, declined: &AtomicBool) -> Result<()> {
        self.transport.unusable(e, declined, &self.url)
    }

    /// See [`Transport::declined`].
    pub(crate) fn declined(&self, what: &str) -> Error {
        self.transport.declined(what, &self.url)
    }
}

/// One object of a listing, its key exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedKey {
    pub(crate) key: String,
    pub(crate) size: u64,
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// A ListObjectsV2 answer (the fields objget reads).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPage {
    #[serde(default)]
    contents: Vec<ListEntry>,
    #[serde(default)]
    is_truncated: bool,
    next_continuation_token: Option<String>,
    encoding_type: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListEntry {
    key: String,
    #[serde(default)]
    size: u64,
    last_modified: Option<String>,
    #[serde(rename = "ETag")]
    e_tag: Option<String>,
}

impl ListPage {
    fn parse(body: &[u8]) -> std::result::Result<Self, quick_xml::DeError> {
        quick_xml::de::from_reader(body)
    }

    /// The page's objects, keys decoded (`encoding-type=url`: form-encoded, `+` a space).
    fn keys(self) -> std::result::Result<Vec<ListedKey>, String> {
        let url_encoded = self
            .encoding_type
            .is_some_and(|t| t.eq_ignore_ascii_case("url"));
        self.contents
            .into_iter()
            .map(|e| {
                let key = if url_encoded {
                    let plus = e.key.replace('+', " ");
                    percent_encoding::percent_decode_str(&plus)
                        .decode_utf8()
                        .map_err(|_| "a listed key is not UTF-8".to_string())?
                        .into_owned()
                } else {
                    e.key
                };
                let last_modified = e
                    .last_modified
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc));
                Ok(ListedKey {
                    key,
                    size: e.size,
                    etag: e.e_tag,
                    last_modified,
                })
            })
            .collect()
    }
}

impl S3Raw {
    /// Every key under `prefix` (no delimiter: recursive), exactly as stored, page by page as
    /// the stream is read. Keys travel URL-encoded (`encoding-type=url`), so control
    /// characters XML cannot carry come through too.
    pub(crate) fn list(
        self,
        prefix: String,
        display_url: String,
    ) -> futures::stream::BoxStream<'static, Result<ListedKey>> {
        use futures::stream::{StreamExt, TryStreamExt};
        // The state: the continuation token of the next page, `None` once the last is read.
        futures::stream::try_unfold(Some(None::<String>), move |state| {
            let (raw, prefix, url) = (self.clone(), prefix.clone(), display_url.clone());
            async move {
                let Some(token) = state else {
                    return Ok(None);
                };
                let mut query = vec![
                    ("encoding-type", "url".to_string()),
                    ("list-type", "2".to_string()),
                    ("prefix", prefix),
                ];
                if let Some(t) = token {
                    query.insert(0, ("continuation-token", t));
                }
                let root = Path::default();
                let req = Req {
                    method: Method::GET,
                    key: &root,
                    query,
                    headers: Vec::new(),
                    body: Bytes::new(),
                };
                let resp = raw.send(req, &url).await?;
                let status = resp.status();
                let body = resp.into_body().bytes().await.map_err(|e| {
                    Error::new(ErrorCode::Generic, "reading ListObjectsV2's answer failed")
                        .with_url(&url)
                        .with_cause(&e)
                })?;
                if !status.is_success() {
                    return Err(status_error(status, &body, "ListObjectsV2", &url));
                }
                let bad = |why: String| {
                    Error::new(
                        ErrorCode::Generic,
                        format!("ListObjectsV2 answered what objget cannot read: {why}"),
                    )
                    .with_url(&url)
                };
                let page = ListPage::parse(&body).map_err(|e| bad(e.to_string()))?;
                let next = match (page.is_truncated, &page.next_continuation_token) {
                    (true, Some(t)) if !t.is_empty() => Some(Some(t.clone())),
                    (true, _) => return Err(bad("a truncated page without a token".into())),
                    (false, _) => None,
                };
                let keys = page.keys().map_err(bad)?;
                Ok(Some((keys, next)))
            }
        })
        .map_ok(|keys| futures::stream::iter(keys.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
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

    #[test]
    fn listed_keys_come_back_exactly_as_stored() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
<Prefix>p%2F</Prefix><KeyCount>4</KeyCount><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>
<IsTruncated>true</IsTruncated><NextContinuationToken>tok+1</NextContinuationToken>
<Contents><Key>p/folder/</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size></Contents>
<Contents><Key>p/a%0Ab%09c</Key><Size>3</Size></Contents>
<Contents><Key>p/a/../x</Key><Size>1</Size></Contents>
<Contents><Key>p/sp+ace%2Bplus//e</Key><Size>2</Size></Contents>
</ListBucketResult>"#;
        let page = ListPage::parse(body).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_continuation_token.as_deref(), Some("tok+1"));
        let keys = page.keys().unwrap();
        let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(
            names,
            ["p/folder/", "p/a\nb\tc", "p/a/../x", "p/sp ace+plus//e"]
        );
        assert_eq!(
            keys[0].etag.as_deref(),
            Some("\"d41d8cd98f00b204e9800998ecf8427e\"")
        );
        assert_eq!(
            keys[0].last_modified.map(|t| t.timestamp()),
            Some(1_767_323_045)
        );
        assert_eq!(keys[1].size, 3);
        // An empty listing has no Contents at all.
        let empty = b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
        assert!(ListPage::parse(empty).unwrap().keys().unwrap().is_empty());
    }
}
