//! One error type for the whole engine: a stable [`ErrorCode`] per case, a message that names the
//! object and the cause, and never a credential (every message passes through [`crate::redact`]).

use std::fmt;

/// The stable codes objget exposes as `err.code` in JavaScript. Never renamed once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
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

impl ErrorCode {
    /// The code's stable name, as JavaScript sees it in `err.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "NotFound",
            Self::PermissionDenied => "PermissionDenied",
            Self::Unauthenticated => "Unauthenticated",
            Self::Precondition => "Precondition",
            Self::AlreadyExists => "AlreadyExists",
            Self::InvalidUrl => "InvalidUrl",
            Self::UnsupportedScheme => "UnsupportedScheme",
            Self::InvalidArgument => "InvalidArgument",
            Self::Timeout => "Timeout",
            Self::Aborted => "Aborted",
            Self::Io => "Io",
            Self::NotSupported => "NotSupported",
            Self::ChecksumMismatch => "ChecksumMismatch",
            Self::ChecksumUnavailable => "ChecksumUnavailable",
            Self::RdmaUnavailable => "RdmaUnavailable",
            Self::RdmaDeclined => "RdmaDeclined",
            Self::RdmaInvalidToken => "RdmaInvalidToken",
            Self::RdmaTransferFailed => "RdmaTransferFailed",
            Self::Network => "Network",
            Self::Throttled => "Throttled",
            Self::TlsCertificate => "TlsCertificate",
            Self::Busy => "Busy",
            Self::UnsafeKey => "UnsafeKey",
            Self::Generic => "Generic",
        }
    }
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
            _ => classify_chain(&err),
        };
        let display = crate::redact::url_for_display(url);
        let summary = match code {
            ErrorCode::NotFound => format!("{display}: object not found"),
            ErrorCode::PermissionDenied => format!("{display}: permission denied"),
            ErrorCode::Unauthenticated => format!("{display}: the credentials were rejected"),
            ErrorCode::Precondition => format!("{display}: precondition failed"),
            ErrorCode::AlreadyExists => format!("{display}: object already exists"),
            ErrorCode::Timeout => format!("{display}: timed out"),
            _ => format!("{display}: {err}"),
        };
        Self::new(code, summary).with_url(url).with_cause(&err)
    }

    /// Map a plain HTTP client error (the presigned-URL path) about `url`.
    pub fn from_reqwest(err: reqwest::Error, url: &str) -> Self {
        let code = if err.is_timeout() {
            ErrorCode::Timeout
        } else {
            classify_chain(&err)
        };
        // reqwest's Display includes the full URL, query string and all: build our own message.
        let what = if err.is_connect() {
            "connection failed"
        } else if err.is_timeout() {
            "timed out"
        } else if err.is_body() || err.is_decode() {
            "the response body was cut off"
        } else {
            "request failed"
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

/// Walk a source chain looking for a timeout; everything else is Generic.
fn classify_chain(err: &(dyn std::error::Error + 'static)) -> ErrorCode {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(http) = e.downcast_ref::<object_store::client::HttpError>() {
            if matches!(http.kind(), object_store::client::HttpErrorKind::Timeout) {
                return ErrorCode::Timeout;
            }
        }
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return ErrorCode::Timeout;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ErrorCode::Timeout;
            }
        }
        // object_store's RetryError (which knows the status) is crate-private; its text is the
        // only way to tell a 416 from other failures.
        let text = e.to_string();
        if text.contains("416 Range Not Satisfiable") {
            return ErrorCode::InvalidArgument;
        }
        // Likewise GetResultError::NotPartial: the server ignored the Range header.
        if text.contains("Received non-partial response when range requested") {
            return ErrorCode::NotSupported;
        }
        current = e.source();
    }
    ErrorCode::Generic
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
    fn store_errors_map_one_code_per_variant() {
        let nf = object_store::Error::NotFound {
            path: "k".into(),
            source: "gone".into(),
        };
        assert_eq!(
            Error::from_store(nf, "s3://b/k").code(),
            ErrorCode::NotFound
        );
        let pd = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "no".into(),
        };
        assert_eq!(
            Error::from_store(pd, "s3://b/k").code(),
            ErrorCode::PermissionDenied
        );
        let io_timeout = object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow")),
        };
        assert_eq!(
            Error::from_store(io_timeout, "s3://b/k").code(),
            ErrorCode::Timeout
        );
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
