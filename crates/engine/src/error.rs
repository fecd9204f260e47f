//! One error type for the whole engine: a stable [`ErrorCode`] per case, a message that names the
//! object and the cause, and never a credential (every message passes through [`crate::redact`]).

use std::fmt;

/// Writes [`ErrorCode`], its [`ErrorCode::ALL`] and its [`ErrorCode::as_str`] from one list, so
/// that the name JavaScript sees can never drift from the variant.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// The stable codes objget exposes as `err.code` in JavaScript. Never renamed once
        /// released. The TypeScript list (src/errors.ts) is checked against [`ErrorCode::ALL`]
        /// by test/error-codes.test.ts.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $name,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$name,)*];

            /// The code's stable name, as JavaScript sees it in `err.code`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$name => stringify!($name),)*
                }
            }
        }
    };
}

error_codes! {
    /// The object (or bucket/container) does not exist.
    NotFound,
    /// The credentials are valid but not allowed to do this.
    PermissionDenied,
    /// No credentials, or credentials the server rejects.
    Unauthenticated,
    /// A condition (If-Match, If-None-Match, …) did not hold.
    Precondition,
    /// The object already exists.
    AlreadyExists,
    /// The URL cannot be parsed or names no object.
    InvalidUrl,
    /// The URL's scheme is not one objget speaks.
    UnsupportedScheme,
    /// An option or argument is out of range or contradicts another.
    InvalidArgument,
    /// Connecting or reading took longer than the configured timeout.
    Timeout,
    /// The caller cancelled the operation.
    Aborted,
    /// A local filesystem error.
    Io,
    /// The operation is not available for this store or engine.
    NotSupported,
    /// The bytes received do not match the checksum the store advertised.
    ChecksumMismatch,
    /// `checksum: 'required'`, and the store offers no checksum to verify.
    ChecksumUnavailable,
    /// `rdma: 'require'`, and RDMA cannot be used here (no shim, no library, not connected).
    RdmaUnavailable,
    /// `rdma: 'require'`, and the server declined or ignored the RDMA token.
    RdmaDeclined,
    /// The server rejected the RDMA token (400 InvalidRDMAToken).
    RdmaInvalidToken,
    /// The server accepted the RDMA request and then failed to move the bytes (500
    /// RDMATransferFailed).
    RdmaTransferFailed,
    /// The connection failed, was reset, or the body was cut off, and retries did not help.
    Network,
    /// The server kept answering 429 / 503 SlowDown until the retries were spent.
    Throttled,
    /// The server's TLS certificate was refused (unknown issuer, expired, wrong name, …).
    TlsCertificate,
    /// Another transfer holds the destination (a second process resuming into it).
    Busy,
    /// A key from a listing cannot be placed safely under the destination directory.
    UnsafeKey,
    /// Anything else (server errors after retries, protocol errors).
    Generic,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An engine error. `message` and `cause` are already scrubbed of secrets and of URL query
/// strings (which carry presigned signatures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
    url: Option<String>,
    cause: Option<String>,
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error; the message is scrubbed here, so no caller can forget to.
    pub fn new(code: ErrorCode, message: impl AsRef<str>) -> Self {
        Self {
            code,
            message: crate::redact::scrub(message.as_ref()),
            url: None,
            cause: None,
        }
    }

    /// Attach the URL the operation was about (stored without its query string).
    pub fn with_url(mut self, url: &str) -> Self {
        self.url = Some(crate::redact::url_for_display(url));
        self
    }

    /// Attach the underlying cause, rendered with its whole source chain and scrubbed.
    pub fn with_cause(mut self, cause: &(dyn std::error::Error + 'static)) -> Self {
        self.cause = Some(crate::redact::scrub(&render_chain(cause)));
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The URL the error is about, when known.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The scrubbed cause chain, when there is one.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// Convenience constructors for the common local cases.
    pub fn invalid_argument(message: impl AsRef<str>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// The operation was cancelled by the caller.
    pub fn aborted(url: &str) -> Self {
        Self::new(ErrorCode::Aborted, "the transfer was aborted").with_url(url)
    }

    /// A local I/O error while touching `what` (a path); the message names the path.
    pub fn io(what: &std::path::Path, err: &std::io::Error) -> Self {
        let code = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorCode::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
            std::io::ErrorKind::TimedOut => ErrorCode::Timeout,
            _ => ErrorCode::Io,
        };
        Self::new(code, format!("{}: {err}", what.display())).with_cause(err)
    }

    /// Map an object_store error about `url` to one code, keeping the cause.
    pub fn from_store(err: object_store::Error, url: &str) -> Self {
        use object_store::Error as E;
        let code = match &err {
            E::NotFound { .. } => ErrorCode::NotFound,
            E::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            E::Precondition { .. } | E::NotModified { .. } => ErrorCode::Precondition,
            E::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            E::Unauthenticated { .. } => ErrorCode::Unauthenticated,
            E::NotSupported { .. } | E::NotImplemented { .. } => ErrorCode::NotSupported,
            E::InvalidPath { .. } => ErrorCode::InvalidUrl,
            E::UnknownConfigurationKey { .. } => ErrorCode::InvalidArgument,
            _ => ErrorCode::Generic,
        };
        // A credential source that gave nothing (store.credentials, the AWS default chain)
        // says why itself.
        let from_source = chain(&err)
            .find_map(|e| e.downcast_ref::<CredentialError>())
            .map(|c| (c.code, Some(c.message.clone())));
        let (code, detail) = match (from_source, code) {
            (Some(found), _) => found,
            (None, ErrorCode::Generic) => classify_chain(&err),
            (None, code) => (code, None),
        };
        let display = crate::redact::url_for_display(url);
        let summary = match code {
            _ if detail.is_some() => format!("{display}: {}", detail.unwrap_or_default()),
            ErrorCode::NotFound => format!("{display}: object not found"),
            ErrorCode::PermissionDenied => format!("{display}: permission denied"),
            ErrorCode::Unauthenticated => format!("{display}: the credentials were rejected"),
            ErrorCode::Precondition => format!("{display}: precondition failed"),
            ErrorCode::AlreadyExists => format!("{display}: object already exists"),
            ErrorCode::Timeout => format!("{display}: timed out"),
            ErrorCode::Throttled => format!(
                "{display}: the server kept answering 429/503 (slow down) until the retries were spent"
            ),
            _ => format!("{display}: {err}"),
        };
        Self::new(code, summary).with_url(url).with_cause(&err)
    }

    /// Map a plain HTTP client error (the presigned-URL path) about `url`.
    pub fn from_reqwest(err: reqwest::Error, url: &str) -> Self {
        let (code, detail) = classify_chain(&err);
        // reqwest's Display includes the full URL, query string and all: build our own message.
        let what = if let Some(detail) = detail {
            detail
        } else if err.is_timeout() {
            "timed out".into()
        } else if err.is_connect() {
            "connection failed".into()
        } else if err.is_body() || err.is_decode() {
            "the response body was cut off".into()
        } else {
            "request failed".into()
        };
        let display = crate::redact::url_for_display(url);
        Self::new(code, format!("{display}: {what}"))
            .with_url(url)
            .with_cause(&err.without_url())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// An error and its sources. `std::io::Error::source` skips the error it wraps (rustls' among
/// them), so the wrapped error is taken from `get_ref` instead.
fn chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io
            .get_ref()
            .map(|inner| inner as &(dyn std::error::Error + 'static)),
        None => e.source(),
    })
}

/// The refused certificate's problem, named for people, when `err` is a TLS certificate refusal.
pub(crate) fn certificate_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::CertificateError as C;
    chain(err).find_map(|e| match e.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(c) => Some(match c {
            C::UnknownIssuer => {
                "unknown issuer (not signed by a trusted CA; pass the CA as caCert)".to_string()
            }
            C::Expired | C::ExpiredContext { .. } => "expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "not valid yet".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "wrong name (not valid for this host)".into()
            }
            C::Revoked => "revoked".into(),
            C::BadSignature => "bad signature".into(),
            C::BadEncoding => "malformed certificate".into(),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                "not a certificate for TLS servers".into()
            }
            C::Other(o) if o.to_string().contains("CaUsedAsEndEntity") => {
                "a CA certificate used as the server's own (pin that exact certificate with caCert)"
                    .into()
            }
            other => format!("{other:?}"),
        }),
        _ => None,
    })
}

/// The HTTP status of a request object_store gave up on. Its `RetryError` (which has
/// `status()`) sits in a private module, so the status is read from its text,
/// `… non-2xx status code: 503 Service Unavailable …`.
fn retry_status(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let text = e.to_string();
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

/// The code of a request that ended with HTTP `status` (its retries spent): the one table every
/// path that reads a status uses.
pub(crate) fn status_code(status: u16) -> ErrorCode {
    match status {
        401 => ErrorCode::Unauthenticated,
        403 => ErrorCode::PermissionDenied,
        404 | 410 => ErrorCode::NotFound,
        412 => ErrorCode::Precondition,
        416 => ErrorCode::InvalidArgument,
        408 | 504 => ErrorCode::Timeout,
        // Still 429 / 503 once the retries are spent: a throttling storm that outlasted them.
        429 | 503 => ErrorCode::Throttled,
        // The server does not do this (a PUT or PROPFIND to a read-only HTTP server).
        405 | 501 => ErrorCode::NotSupported,
        _ => ErrorCode::Generic,
    }
}

/// Classify an error by what its source chain holds: a refused certificate, a refused
/// redirect, a timeout, the HTTP status object_store gave up on, a failed or cut connection.
/// Returns the code and, where it says more than the cause, what to tell the user.
fn classify_chain(err: &(dyn std::error::Error + 'static)) -> (ErrorCode, Option<String>) {
    use object_store::client::{HttpError, HttpErrorKind};
    if let Some(problem) = certificate_problem(err) {
        return (
            ErrorCode::TlsCertificate,
            Some(format!(
                "the server's TLS certificate was refused: {problem}"
            )),
        );
    }
    if let Some(s) = chain(err).find_map(|e| e.downcast_ref::<SchemeChange>()) {
        return (ErrorCode::NotSupported, Some(s.to_string()));
    }
    let timed_out = chain(err).any(|e| {
        e.downcast_ref::<HttpError>()
            .is_some_and(|h| h.kind() == HttpErrorKind::Timeout)
            || e.downcast_ref::<reqwest::Error>()
                .is_some_and(|r| r.is_timeout())
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    if timed_out {
        return (ErrorCode::Timeout, None);
    }
    if let Some(status) = chain(err).find_map(retry_status) {
        return (status_code(status), None);
    }
    for e in chain(err) {
        // GetResultError::NotPartial (private too): the server ignored the Range header.
        let text = e.to_string();
        if text.contains("Received non-partial response when range requested") {
            return (ErrorCode::NotSupported, None);
        }
        if text.contains("416 Range Not Satisfiable") {
            return (ErrorCode::InvalidArgument, None);
        }
    }
    let network = chain(err).any(|e| {
        e.downcast_ref::<HttpError>().is_some_and(|h| {
            matches!(
                h.kind(),
                HttpErrorKind::Connect | HttpErrorKind::Request | HttpErrorKind::Interrupted
            )
        }) || e
            .downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_connect() || r.is_body() || r.is_request())
            || e.downcast_ref::<std::io::Error>().is_some_and(|io| {
                use std::io::ErrorKind as K;
                matches!(
                    io.kind(),
                    K::ConnectionReset
                        | K::ConnectionRefused
                        | K::ConnectionAborted
                        | K::NotConnected
                        | K::BrokenPipe
                        | K::UnexpectedEof
                )
            })
    });
    if network {
        return (ErrorCode::Network, None);
    }
    (ErrorCode::Generic, None)
}

fn render_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        current = e.source();
    }
    out
}

/// A redirect refused because it leaves the request's scheme (https → http).
#[derive(Debug)]
pub(crate) struct SchemeChange {
    pub(crate) from: String,
    pub(crate) to: String,
}

impl std::fmt::Display for SchemeChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a redirect from {}:// to {}:// was refused: objget never follows a redirect that changes the scheme",
            self.from, self.to
        )
    }
}

impl std::error::Error for SchemeChange {}

/// Why a source gave no credential. The message names the source and the reason, never a
/// secret (it is scrubbed of registered secrets again before it is shown).
#[derive(Debug, Clone)]
pub struct CredentialError {
    /// `Unauthenticated`, or `Timeout` when the source did not answer.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

impl CredentialError {
    /// An `Unauthenticated` failure.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::Unauthenticated,
            message: crate::redact::scrub(&message.into()),
        }
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CredentialError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_strings() {
        assert_eq!(ErrorCode::NotFound.as_str(), "NotFound");
        assert_eq!(
            ErrorCode::UnsupportedScheme.to_string(),
            "UnsupportedScheme"
        );
    }

    #[test]
    fn every_code_is_listed_once_under_its_own_name() {
        let names: std::collections::BTreeSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert_eq!(format!("{code:?}"), code.as_str());
        }
    }

    #[test]
    fn store_errors_map_one_code_per_variant() {
        use object_store::Error as E;
        let (path, store) = ("k".to_string(), "S3");
        for (err, code) in [
            (
                E::NotFound {
                    path: path.clone(),
                    source: "gone".into(),
                },
                ErrorCode::NotFound,
            ),
            (
                E::PermissionDenied {
                    path,
                    source: "no".into(),
                },
                ErrorCode::PermissionDenied,
            ),
            (
                E::Generic {
                    store,
                    source: Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow")),
                },
                ErrorCode::Timeout,
            ),
        ] {
            assert_eq!(Error::from_store(err, "s3://b/k").code(), code);
        }
    }

    #[test]
    fn the_status_object_store_gave_up_on_names_the_code() {
        let gave_up = |status: &str| {
            object_store::Error::Generic {
            store: "S3",
            source: format!("Error performing GET http://h/b/k in 5s, after 10 retries - Server returned non-2xx status code: {status}: <Error><Code>SlowDown</Code></Error>").into(),
        }
        };
        let code = |s: &str| Error::from_store(gave_up(s), "s3://b/k").code();
        assert_eq!(code("503 Service Unavailable"), ErrorCode::Throttled);
        assert_eq!(code("429 Too Many Requests"), ErrorCode::Throttled);
        assert_eq!(code("403 Forbidden"), ErrorCode::PermissionDenied);
        assert_eq!(code("500 Internal Server Error"), ErrorCode::Generic);
        let reset = object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            )),
        };
        assert_eq!(
            Error::from_store(reset, "s3://b/k").code(),
            ErrorCode::Network
        );
    }

    #[test]
    fn a_refused_certificate_is_named() {
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        let err = object_store::Error::Generic {
            store: "HTTP",
            source: Box::new(tls),
        };
        let e = Error::from_store(err, "https://h/k");
        assert_eq!(e.code(), ErrorCode::TlsCertificate);
        assert!(e.message().contains("expired"), "{}", e.message());
    }

    #[test]
    fn url_query_never_reaches_the_message() {
        let e = Error::new(
            ErrorCode::Generic,
            "failed https://h/o?X-Amz-Signature=abc123 here",
        )
        .with_url("https://h/o?X-Amz-Signature=abc123");
        assert!(!e.message().contains("abc123"), "{}", e.message());
        assert!(!e.url().unwrap().contains("abc123"));
    }
}
