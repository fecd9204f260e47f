//! URL → where the object lives: which kind of store, which store instance, which key.

use std::path::{Path as FsPath, PathBuf};

use object_store::path::Path;

use crate::error::{Error, ErrorCode, Result};

/// The URL schemes objget reads, as shown in `UnsupportedScheme` messages.
pub const SUPPORTED_SCHEMES: &str =
    "s3://, s3a://, gs://, az://, azure://, abfs://, abfss://, http://, https://, file:// and local paths";

/// The kind of store behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// Amazon S3 and S3-compatible stores (MinIO, R2, …).
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
    /// Plain HTTP(S) through object_store's HTTP store.
    Http,
    /// HTTP(S) with a query string (presigned URLs, SAS): sent as-is by a plain HTTP client.
    HttpQuery,
    /// The local filesystem.
    File,
}

impl Scheme {
    /// A short name for messages and results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gs",
            Self::Azure => "az",
            Self::Http | Self::HttpQuery => "http",
            Self::File => "file",
        }
    }
}

/// A parsed object URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Which kind of store.
    pub scheme: Scheme,
    /// The URL exactly as the caller gave it (never shown unredacted).
    pub url: String,
    /// The URL a store is built from (`s3://bucket`, `https://host:port`, …); for
    /// [`Scheme::HttpQuery`] the full URL; empty for files.
    pub store_url: String,
    /// The object's key inside its store.
    pub path: Path,
    /// The local path, for [`Scheme::File`].
    pub file: Option<PathBuf>,
}

impl Location {
    /// Parse a URL or a local path.
    pub fn parse(input: &str) -> Result<Self> {
        if input.is_empty() {
            return Err(Error::new(ErrorCode::InvalidUrl, "the URL is empty"));
        }
        if !input.contains("://") || is_windows_path(input) {
            return Self::local(input, PathBuf::from(input));
        }
        let url = url::Url::parse(input).map_err(|e| {
            Error::new(ErrorCode::InvalidUrl, format!("not a valid URL: {e}")).with_url(input)
        })?;
        let scheme = url.scheme().to_ascii_lowercase();
        match scheme.as_str() {
            "s3" | "s3a" => {
                let bucket = host_of(&url, input, "bucket")?;
                Self::bucketed(Scheme::S3, input, format!("s3://{bucket}"), &url)
            }
            "gs" => {
                let bucket = host_of(&url, input, "bucket")?;
                Self::bucketed(Scheme::Gcs, input, format!("gs://{bucket}"), &url)
            }
            "az" | "azure" => {
                let container = host_of(&url, input, "container")?;
                Self::bucketed(Scheme::Azure, input, format!("az://{container}"), &url)
            }
            "abfs" | "abfss" => {
                let host = host_of(&url, input, "account host")?;
                if url.username().is_empty() {
                    return Err(Error::new(
                        ErrorCode::InvalidUrl,
                        "abfs URLs name the container as container@account.dfs.core.windows.net",
                    )
                    .with_url(input));
                }
                let store_url = format!("{scheme}://{}@{host}", url.username());
                Self::bucketed(Scheme::Azure, input, store_url, &url)
            }
            "http" | "https" => Self::http(input, &url),
            "file" => {
                let path = url.to_file_path().map_err(|_| {
                    Error::new(
                        ErrorCode::InvalidUrl,
                        "file URLs must name an absolute local path",
                    )
                    .with_url(input)
                })?;
                Self::local(input, path)
            }
            other => Err(Error::new(
                ErrorCode::UnsupportedScheme,
                format!("the scheme {other}:// is not supported; objget reads {SUPPORTED_SCHEMES}"),
            )
            .with_url(input)),
        }
    }

    fn bucketed(scheme: Scheme, input: &str, store_url: String, url: &url::Url) -> Result<Self> {
        let path = object_path(url, input)?;
        Ok(Self {
            scheme,
            url: input.to_string(),
            store_url,
            path,
            file: None,
        })
    }

    fn http(input: &str, url: &url::Url) -> Result<Self> {
        let host = host_of(url, input, "host")?;
        if url.query().is_some() {
            // object_store's HTTP store drops the query string, which is the whole point of a
            // presigned or SAS URL: such URLs go through a plain HTTP client, untouched.
            return Ok(Self {
                scheme: Scheme::HttpQuery,
                url: input.to_string(),
                store_url: input.to_string(),
                path: object_path(url, input)?,
                file: None,
            });
        }
        if is_r2_host(&host) {
            // https://<account>.r2.cloudflarestorage.com/<bucket>/<key> is an S3 endpoint.
            let mut segments = url.path_segments().into_iter().flatten();
            let bucket = segments.next().filter(|b| !b.is_empty()).ok_or_else(|| {
                Error::new(ErrorCode::InvalidUrl, "an R2 URL must name a bucket").with_url(input)
            })?;
            let key: Vec<&str> = segments.collect();
            let path = Path::from_url_path(key.join("/")).map_err(|e| {
                Error::new(ErrorCode::InvalidUrl, format!("invalid object key: {e}"))
                    .with_url(input)
            })?;
            require_key(&path, input)?;
            return Ok(Self {
                scheme: Scheme::S3,
                url: input.to_string(),
                store_url: format!("{}://{}/{bucket}", url.scheme(), authority(url, &host)),
                path,
                file: None,
            });
        }
        Ok(Self {
            scheme: Scheme::Http,
            url: input.to_string(),
            store_url: format!("{}://{}", url.scheme(), authority(url, &host)),
            path: object_path(url, input)?,
            file: None,
        })
    }

    fn local(input: &str, path: PathBuf) -> Result<Self> {
        let path = if path.is_absolute() {
            path
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io(FsPath::new("."), &e))?
                .join(path)
        };
        Ok(Self {
            scheme: Scheme::File,
            url: input.to_string(),
            store_url: String::new(),
            path: Path::default(),
            file: Some(path),
        })
    }
}

fn is_windows_path(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/')
}

fn is_r2_host(host: &str) -> bool {
    host.ends_with(".r2.cloudflarestorage.com")
}

fn authority(url: &url::Url, host: &str) -> String {
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn host_of(url: &url::Url, input: &str, what: &str) -> Result<String> {
    match url.host_str() {
        Some(h) if !h.is_empty() => Ok(h.to_string()),
        _ => Err(
            Error::new(ErrorCode::InvalidUrl, format!("the URL names no {what}")).with_url(input),
        ),
    }
}

fn object_path(url: &url::Url, input: &str) -> Result<Path> {
    let path = Path::from_url_path(url.path()).map_err(|e| {
        Error::new(ErrorCode::InvalidUrl, format!("invalid object key: {e}")).with_url(input)
    })?;
    require_key(&path, input)?;
    Ok(path)
}

fn require_key(path: &Path, input: &str) -> Result<()> {
    if path.as_ref().is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidUrl,
            "the URL names a bucket or host but no object",
        )
        .with_url(input));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each URL's scheme, store URL and key, as a table.
    #[test]
    fn urls_name_their_store_and_key() {
        for (url, scheme, store_url, key) in [
            (
                "s3://bucket/a/b%20c.bin",
                Scheme::S3,
                "s3://bucket",
                "a/b c.bin",
            ),
            ("s3a://b/k", Scheme::S3, "s3://b", "k"),
            ("gs://b/k", Scheme::Gcs, "gs://b", "k"),
            ("az://c/k", Scheme::Azure, "az://c", "k"),
            ("azure://c/k", Scheme::Azure, "az://c", "k"),
            (
                "abfss://c@acct.dfs.core.windows.net/d/k",
                Scheme::Azure,
                "abfss://c@acct.dfs.core.windows.net",
                "d/k",
            ),
            // R2 is S3.
            (
                "https://acct.r2.cloudflarestorage.com/bkt/dir/obj",
                Scheme::S3,
                "https://acct.r2.cloudflarestorage.com/bkt",
                "dir/obj",
            ),
            (
                "http://127.0.0.1:8080/x/y.bin",
                Scheme::Http,
                "http://127.0.0.1:8080",
                "x/y.bin",
            ),
        ] {
            let l = Location::parse(url).unwrap();
            assert_eq!(
                (l.scheme, l.store_url.as_str(), l.path.as_ref()),
                (scheme, store_url, key),
                "{url}"
            );
        }
        // A URL with a query is read as it is (presigned).
        let q = Location::parse("https://h/x?X-Amz-Signature=1").unwrap();
        assert_eq!(q.scheme, Scheme::HttpQuery);
        assert_eq!(q.store_url, "https://h/x?X-Amz-Signature=1");
    }

    #[test]
    fn files() {
        let l = Location::parse("file:///tmp/a.bin").unwrap();
        assert_eq!(l.file.as_deref(), Some(FsPath::new("/tmp/a.bin")));
        let rel = Location::parse("rel/a.bin").unwrap();
        assert!(rel.file.unwrap().is_absolute());
    }

    #[test]
    fn bad_urls() {
        let e = Location::parse("ftp://x/y").unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnsupportedScheme);
        assert!(e.message().contains("s3://"));
        for url in ["s3://bucket", "s3://bucket/", "http://[::1", ""] {
            assert_eq!(
                Location::parse(url).unwrap_err().code(),
                ErrorCode::InvalidUrl,
                "{url}"
            );
        }
    }
}
