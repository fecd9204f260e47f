//! Reading bytes from a source: one ranged or whole read, pinned to an ETag when asked, with the
//! object's total size and ETag learned from the response itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::checksum::{advertised, Checksum, Dialect};
use crate::error::{Error, ErrorCode, Result};
use crate::fs::blocking;
use crate::object::{ByteRange, ObjectInfo};
use crate::store::spy::{capture, Seen};
use crate::store::Backoff;

/// Where an object's bytes come from.
#[derive(Clone)]
pub(crate) enum Source {
    Store(Arc<dyn ObjectStore>, Path, Dialect),
    Query(reqwest::Client, RetryConfig),
    File(PathBuf),
}

/// An open read.
pub(crate) struct Read {
    /// The whole object's size.
    pub(crate) size: u64,
    pub(crate) etag: Option<String>,
    /// Bytes this read will deliver.
    pub(crate) len: u64,
    /// Whole-object checksums the reply advertised, best first.
    pub(crate) offered: Vec<Checksum>,
    /// The store withholds its stored checksums on this reply (S3 sends no x-amz-checksum-*
    /// on a ranged GET, even one that covers the whole object); a HEAD gives them.
    pub(crate) withheld: bool,
    pub(crate) body: BoxStream<'static, Result<Bytes>>,
}

impl Source {
    pub(crate) async fn head(&self, url: &str) -> Result<ObjectInfo> {
        match self {
            Self::Store(store, path, _) => {
                let meta = store
                    .head(path)
                    .await
                    .map_err(|e| Error::from_store(e, url))?;
                Ok(ObjectInfo {
                    size: meta.size,
                    etag: meta.e_tag,
                    last_modified: Some(meta.last_modified),
                    version: meta.version,
                })
            }
            Self::Query(client, retry) => query_head(client, retry, url).await.map(|(i, _)| i),
            Self::File(path) => {
                let path = path.clone();
                blocking(move || file_info(&path).map(|(info, _)| info)).await
            }
        }
    }

    /// Whether the store sends its stored checksums only on a whole-object read (S3 withholds
    /// them on a ranged one, even one that covers the whole object).
    pub(crate) fn withholds_on_ranges(&self) -> bool {
        matches!(self, Self::Store(_, _, Dialect::S3))
    }

    /// Read `range` (or everything), failing with `Precondition` if the object's ETag is no
    /// longer `if_match`.
    pub(crate) async fn read(
        &self,
        url: &str,
        range: Option<ByteRange>,
        if_match: Option<&str>,
    ) -> Result<Read> {
        match self {
            Self::Store(store, path, dialect) => {
                let seen = Seen::default();
                let mut read = capture(
                    seen.clone(),
                    store_read(store.as_ref(), path, url, range, if_match),
                )
                .await?;
                if let Some((headers, status)) = seen.take() {
                    read.offered = advertised(&headers, status == 206, *dialect);
                    read.withheld = *dialect == Dialect::S3 && status == 206;
                }
                Ok(read)
            }
            Self::Query(client, retry) => query_read(client, retry, url, range, if_match).await,
            Self::File(path) => file_read(path.clone(), url, range, if_match).await,
        }
    }

    /// Size and ETag of the object if it still matches `etag` (else `Precondition`), with the
    /// whole-object checksums the store advertises on a HEAD (S3 sends none on a ranged read).
    /// Plain-HTTP sources, often signed for GET only, and local files offer no checksums.
    pub(crate) async fn head_pinned(
        &self,
        url: &str,
        etag: &str,
    ) -> Result<(ObjectInfo, Vec<Checksum>)> {
        let Self::Store(store, path, dialect) = self else {
            let (info, offered) = match self {
                Self::Query(client, retry) => query_head(client, retry, url).await?,
                _ => (self.head(url).await?, Vec::new()),
            };
            if info.etag.as_deref() != Some(etag) {
                return Err(Error::new(ErrorCode::Precondition, "the object changed").with_url(url));
            }
            return Ok((info, offered));
        };
        let options = GetOptions {
            head: true,
            if_match: Some(etag.to_string()),
            ..Default::default()
        };
        let seen = Seen::default();
        let result = capture(seen.clone(), store.get_opts(path, options))
            .await
            .map_err(|e| Error::from_store(e, url))?;
        let offered = seen
            .take()
            .map(|(h, _)| advertised(&h, false, *dialect))
            .unwrap_or_default();
        Ok((
            ObjectInfo {
                size: result.meta.size,
                etag: result.meta.e_tag.clone(),
                last_modified: Some(result.meta.last_modified),
                version: result.meta.version.clone(),
            },
            offered,
        ))
    }
}

fn get_range(r: ByteRange) -> GetRange {
    match r {
        ByteRange::Bounded { offset, length } => {
            GetRange::Bounded(offset..offset.saturating_add(length))
        }
        ByteRange::From(offset) => GetRange::Offset(offset),
        ByteRange::Suffix(n) => GetRange::Suffix(n),
    }
}

async fn store_read(
    store: &dyn ObjectStore,
    path: &Path,
    url: &str,
    range: Option<ByteRange>,
    if_match: Option<&str>,
) -> Result<Read> {
    let options = GetOptions {
        range: range.map(get_range),
        if_match: if_match.map(str::to_string),
        ..Default::default()
    };
    let result = match store.get_opts(path, options).await {
        // Azure has no suffix ranges: learn the size, then ask for the same bytes by offset,
        // pinned so the object cannot change in between.
        Err(object_store::Error::NotSupported { .. })
            if matches!(range, Some(ByteRange::Suffix(_))) =>
        {
            let Some(ByteRange::Suffix(n)) = range else {
                unreachable!()
            };
            let meta = store
                .head(path)
                .await
                .map_err(|e| Error::from_store(e, url))?;
            if meta.size == 0 {
                return Err(out_of_range(url));
            }
            let options = GetOptions {
                range: Some(GetRange::Bounded(meta.size.saturating_sub(n)..meta.size)),
                if_match: if_match.map(str::to_string).or(meta.e_tag),
                ..Default::default()
            };
            store.get_opts(path, options).await
        }
        other => other,
    }
    .map_err(|e| Error::from_store(e, url))?;
    let owned = url.to_string();
    Ok(Read {
        size: result.meta.size,
        etag: result.meta.e_tag.clone(),
        len: result.range.end - result.range.start,
        offered: Vec::new(),
        withheld: false,
        body: result
            .into_stream()
            .map(move |r| r.map_err(|e| Error::from_store(e, &owned)))
            .boxed(),
    })
}

fn out_of_range(url: &str) -> Error {
    Error::new(
        ErrorCode::InvalidArgument,
        "the requested range is outside the object",
    )
    .with_url(url)
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP, for URLs that carry a query string (presigned, SAS)

async fn query_send(
    client: &reqwest::Client,
    retry: &RetryConfig,
    url: &str,
    headers: &[(reqwest::header::HeaderName, String)],
) -> Result<reqwest::Response> {
    let started = Instant::now();
    let mut attempt = 0usize;
    let mut backoff = Backoff::new(&retry.backoff);
    loop {
        let mut req = client.get(url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let outcome = req.send().await;
        let retryable = match &outcome {
            Ok(resp) => {
                let s = resp.status();
                s.is_server_error()
                    || s == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || s == reqwest::StatusCode::REQUEST_TIMEOUT
            }
            // A refused certificate or redirect is refused again on every retry.
            Err(e) => {
                (e.is_connect() || e.is_timeout() || e.is_request())
                    && !e.is_redirect()
                    && crate::error::certificate_problem(e).is_none()
            }
        };
        let wait = backoff.next();
        if !retryable
            || attempt >= retry.max_retries
            || started.elapsed() + wait > retry.retry_timeout
        {
            return match outcome {
                Ok(resp) => check_status(resp, url),
                Err(e) => Err(Error::from_reqwest(e, url)),
            };
        }
        attempt += 1;
        tokio::time::sleep(wait).await;
    }
}

fn check_status(resp: reqwest::Response, url: &str) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() || status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
        return Ok(resp);
    }
    let code = crate::error::status_code(status.as_u16());
    let display = crate::redact::url_for_display(url);
    Err(Error::new(code, format!("{display}: HTTP {status}")).with_url(url))
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `bytes a-b/total` or `bytes */total` → total.
fn content_range_total(resp: &reqwest::Response) -> Option<u64> {
    header(resp, reqwest::header::CONTENT_RANGE)?
        .rsplit('/')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn range_header(range: ByteRange) -> String {
    match range {
        ByteRange::Bounded { offset, length } => {
            format!("bytes={}-{}", offset, offset + length - 1)
        }
        ByteRange::From(offset) => format!("bytes={offset}-"),
        ByteRange::Suffix(n) => format!("bytes=-{n}"),
    }
}

/// Size, ETag, … and the whole-object checksums the one-byte reply advertises.
async fn query_head(
    client: &reqwest::Client,
    retry: &RetryConfig,
    url: &str,
) -> Result<(ObjectInfo, Vec<Checksum>)> {
    // A presigned URL is signed for one method, almost always GET: ask for one byte instead of
    // sending HEAD, and read the size from Content-Range.
    let resp = query_send(
        client,
        retry,
        url,
        &[(reqwest::header::RANGE, "bytes=0-0".into())],
    )
    .await?;
    let size = match resp.status().as_u16() {
        206 | 416 => content_range_total(&resp),
        _ => resp.content_length(),
    }
    .ok_or_else(|| {
        Error::new(
            ErrorCode::Generic,
            "the server did not say how large the object is",
        )
        .with_url(url)
    })?;
    let last_modified = header(&resp, reqwest::header::LAST_MODIFIED)
        .and_then(|v| DateTime::parse_from_rfc2822(&v).ok())
        .map(|d| d.with_timezone(&Utc));
    let offered = advertised(
        resp.headers(),
        resp.status().as_u16() == 206,
        Dialect::Other,
    );
    Ok((
        ObjectInfo {
            size,
            etag: header(&resp, reqwest::header::ETAG),
            last_modified,
            version: resp
                .headers()
                .get("x-amz-version-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        },
        offered,
    ))
}

async fn query_read(
    client: &reqwest::Client,
    retry: &RetryConfig,
    url: &str,
    range: Option<ByteRange>,
    if_match: Option<&str>,
) -> Result<Read> {
    let mut headers = Vec::new();
    if let Some(r) = range {
        headers.push((reqwest::header::RANGE, range_header(r)));
    }
    if let Some(e) = if_match {
        headers.push((reqwest::header::IF_MATCH, e.to_string()));
    }
    let resp = query_send(client, retry, url, &headers).await?;
    let status = resp.status().as_u16();
    if status == 416 {
        return Err(out_of_range(url));
    }
    if range.is_some() && status != 206 {
        return Err(Error::new(
            ErrorCode::NotSupported,
            "the server ignored the Range header",
        )
        .with_url(url));
    }
    let len = resp.content_length().ok_or_else(|| {
        Error::new(ErrorCode::Generic, "the server sent no Content-Length").with_url(url)
    })?;
    let size = if status == 206 {
        content_range_total(&resp).ok_or_else(|| {
            Error::new(ErrorCode::Generic, "a 206 reply without Content-Range").with_url(url)
        })?
    } else {
        len
    };
    let etag = header(&resp, reqwest::header::ETAG);
    let offered = advertised(resp.headers(), status == 206, Dialect::Other);
    let start = if status == 206 {
        content_range_start(&resp).ok_or_else(|| {
            Error::new(ErrorCode::Generic, "a 206 reply without Content-Range").with_url(url)
        })?
    } else {
        0
    };
    let cut = Cut {
        client: client.clone(),
        retry: retry.clone(),
        url: url.to_string(),
        etag: etag.clone(),
        offset: start,
        end: start + len,
        body: resp.bytes_stream().boxed(),
        resumes: 0,
        backoff: Backoff::new(&retry.backoff),
        started: Instant::now(),
    };
    Ok(Read {
        size,
        etag,
        len,
        offered,
        withheld: false,
        body: cut.stream(),
    })
}

/// `bytes a-b/total` → a.
fn content_range_start(resp: &reqwest::Response) -> Option<u64> {
    header(resp, reqwest::header::CONTENT_RANGE)?
        .trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A body that survives being cut off: a reset or an early close is followed by a ranged
/// request for the rest, pinned with `If-Match` to the ETag the body came with (so the bytes
/// cannot come from a replaced object), within the store's retry policy. Without a strong ETag
/// there is nothing to pin the rest to, and the cut is a `Network` error.
struct Cut {
    client: reqwest::Client,
    retry: RetryConfig,
    url: String,
    etag: Option<String>,
    /// The next byte expected, and the end (exclusive) of the range being read.
    offset: u64,
    end: u64,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    resumes: usize,
    backoff: Backoff,
    started: Instant,
}

impl Cut {
    fn stream(self) -> BoxStream<'static, Result<Bytes>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut cut = state?;
            loop {
                let failure = match cut.body.next().await {
                    Some(Ok(bytes)) => {
                        cut.offset += bytes.len() as u64;
                        return Some((Ok(bytes), Some(cut)));
                    }
                    None if cut.offset >= cut.end => return None,
                    Some(Err(e)) => Error::from_reqwest(e, &cut.url),
                    None => Error::new(
                        ErrorCode::Network,
                        format!(
                            "{}: the response body ended early",
                            crate::redact::url_for_display(&cut.url)
                        ),
                    )
                    .with_url(&cut.url),
                };
                if let Err(e) = cut.reopen(failure).await {
                    return Some((Err(e), None));
                }
            }
        })
        .boxed()
    }

    /// Ask for the bytes from `offset` on, or give `failure` back when that cannot be done.
    async fn reopen(&mut self, failure: Error) -> Result<()> {
        let resumable = matches!(failure.code(), ErrorCode::Network | ErrorCode::Timeout);
        let Some(etag) = self.etag.clone().filter(|e| !e.starts_with("W/")) else {
            return Err(if resumable {
                Error::new(
                    ErrorCode::Network,
                    format!(
                        "{}: the body was cut off at byte {} and the server offers no strong ETag to resume it safely",
                        crate::redact::url_for_display(&self.url),
                        self.offset
                    ),
                )
                .with_url(&self.url)
            } else {
                failure
            });
        };
        let wait = self.backoff.next();
        if !resumable
            || self.resumes >= self.retry.max_retries
            || self.started.elapsed() + wait > self.retry.retry_timeout
        {
            return Err(failure);
        }
        self.resumes += 1;
        tokio::time::sleep(wait).await;
        let headers = [
            (
                reqwest::header::RANGE,
                format!("bytes={}-{}", self.offset, self.end - 1),
            ),
            (reqwest::header::IF_MATCH, etag),
        ];
        let resp = query_send(&self.client, &self.retry, &self.url, &headers).await?;
        if resp.status().as_u16() != 206 || content_range_start(&resp) != Some(self.offset) {
            return Err(Error::new(
                ErrorCode::Network,
                format!(
                    "{}: the body was cut off and the server did not send the rest as asked",
                    crate::redact::url_for_display(&self.url)
                ),
            )
            .with_url(&self.url));
        }
        self.body = resp.bytes_stream().boxed();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Local files

pub(crate) fn file_etag(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_micros())
        .unwrap_or(0);
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    format!("{inode:x}-{mtime:x}-{:x}", meta.len())
}

pub(crate) fn file_info(path: &std::path::Path) -> Result<(ObjectInfo, std::fs::Metadata)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, &e))?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorCode::NotFound,
            format!("{}: not a file", path.display()),
        ));
    }
    Ok((
        ObjectInfo {
            size: meta.len(),
            etag: Some(file_etag(&meta)),
            last_modified: meta.modified().ok().map(DateTime::<Utc>::from),
            version: None,
        },
        meta,
    ))
}

async fn file_read(
    path: PathBuf,
    url: &str,
    range: Option<ByteRange>,
    if_match: Option<&str>,
) -> Result<Read> {
    let url = url.to_string();
    let if_match = if_match.map(str::to_string);
    let (size, etag, data) = blocking(move || {
        use std::io::{Read as _, Seek, SeekFrom};
        let mut f = std::fs::File::open(&path).map_err(|e| Error::io(&path, &e))?;
        let meta = f.metadata().map_err(|e| Error::io(&path, &e))?;
        if !meta.is_file() {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("{}: not a file", path.display()),
            ));
        }
        let etag = file_etag(&meta);
        if if_match.as_deref().is_some_and(|m| m != etag) {
            return Err(Error::new(
                ErrorCode::Precondition,
                format!("{}: the file changed", path.display()),
            ));
        }
        let size = meta.len();
        let (start, end) = match range {
            None => (0, size),
            Some(ByteRange::Bounded { offset, length }) => {
                (offset, offset.saturating_add(length).min(size))
            }
            Some(ByteRange::From(offset)) => (offset, size),
            Some(ByteRange::Suffix(n)) => (size.saturating_sub(n), size),
        };
        if range.is_some() && start >= size {
            return Err(out_of_range(&url));
        }
        let mut buf = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io(&path, &e))?;
        f.read_exact(&mut buf).map_err(|e| Error::io(&path, &e))?;
        Ok((size, etag, buf))
    })
    .await?;
    let len = data.len() as u64;
    Ok(Read {
        size,
        etag: Some(etag),
        len,
        offered: Vec::new(),
        withheld: false,
        body: futures::stream::once(async move { Ok(Bytes::from(data)) }).boxed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_statuses_take_the_codes_of_the_one_table() {
        let code = |status: u16| {
            let resp = http::Response::builder().status(status).body("").unwrap();
            check_status(reqwest::Response::from(resp), "https://h/o?sig=secret")
                .err()
                .map(|e| e.code())
        };
        for status in [401, 403, 404, 405, 408, 410, 412, 429, 500, 501, 503, 504] {
            assert_eq!(
                code(status),
                Some(crate::error::status_code(status)),
                "{status}"
            );
        }
        // A server that does not do this: not a generic failure.
        assert_eq!(code(405), Some(ErrorCode::NotSupported));
        // 416 is the caller's to read (an empty object's first part).
        assert_eq!(code(416), None);
        assert_eq!(code(206), None);
    }
}
