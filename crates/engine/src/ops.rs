//! Object operations besides reading: upload (single PUT or parallel multipart, optionally
//! refusing to overwrite), exists, remove, list and copy.
//!
//! Every operation works on an object_store store: the cloud stores, and `LocalFileSystem` for
//! local paths (atomic puts by rename, `ifNotExists` by hard link). A URL with a query string
//! (presigned, SAS) is read-only here: `exists` works, the rest is `NotSupported`.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, MultipartUpload, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload,
};
use tokio_util::sync::CancellationToken;

use crate::checksum::{combine, crc64, Algorithm, Checksum};
use crate::engine::Engine;
use crate::error::{Error, ErrorCode, Result};
use crate::fs::{blocking, read_range};
use crate::locate::{Location, Scheme};
use crate::object::ObjectInfo;
use crate::options::{
    StoreOptions, UploadOptions, DEFAULT_UPLOAD_CONCURRENCY, DEFAULT_UPLOAD_PART, MAX_PARTS,
    MIN_PART,
};
use crate::progress::Tracker;
use crate::store::Backend;

/// Where upload bytes come from.
#[derive(Debug)]
pub enum UploadSource {
    /// A local file, read part by part.
    File(PathBuf),
    /// Bytes already in memory.
    Bytes(Bytes),
    /// Chunks of unknown total length (a Node stream), cut into parts as they arrive: memory
    /// stays near `concurrency × partSize` whatever the length. The sender closing ends it.
    Stream(tokio::sync::mpsc::Receiver<Bytes>),
}

/// The outcome of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadResult {
    /// The stored object's ETag.
    pub etag: Option<String>,
    /// Its version, where the store versions objects.
    pub version: Option<String>,
    /// Bytes sent.
    pub bytes: u64,
    /// Parts (1 for a single PUT).
    pub parts: u32,
    /// CRC64NVME of the bytes sent, computed as they were read (S3 also verified it: every
    /// request carried it).
    pub checksum: Checksum,
    /// Which data path moved the bytes.
    pub path: crate::rdma::TransferPath,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key, relative to the store's root.
    pub key: String,
    /// Its key below the listed prefix (what `downloadPrefix` turns into a file path).
    pub relative: String,
    /// Its full URL.
    pub url: String,
    /// Size, ETag, modification time, version.
    pub info: ObjectInfo,
}

/// What a key must have percent-encoded to travel in a URL path (`/` stays: it separates).
const URL_KEY: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// A key as a URL path: characters a URL reserves percent-encoded, and the dots of a `.` or
/// `..` segment too, so that the URL does not name another key once a parser resolves it.
fn url_key(key: &str) -> String {
    key.split('/')
        .map(|seg| match seg {
            "." => "%2E".to_string(),
            ".." => "%2E%2E".to_string(),
            s => percent_encoding::utf8_percent_encode(s, URL_KEY).to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The part size an upload of `size` bytes uses: the requested one, raised to the providers'
/// minimum and until the object fits in 10,000 parts.
pub fn upload_part_size(size: u64, requested: Option<u64>) -> u64 {
    let mut part = requested.unwrap_or(DEFAULT_UPLOAD_PART).max(MIN_PART);
    while size.div_ceil(part) > MAX_PARTS {
        part *= 2;
    }
    part
}

impl Engine {
    /// The store and key that write operations use for `loc`.
    async fn writable(
        &self,
        loc: &Location,
        opts: &StoreOptions,
    ) -> Result<(Arc<dyn ObjectStore>, Path)> {
        match self.stores().backend(loc, opts).await? {
            Backend::Store(store) => Ok((store, loc.path.clone())),
            Backend::File => {
                let file = loc.file.clone().unwrap_or_default();
                let file = absolute(&file)?;
                let path = Path::from_absolute_path(&file)
                    .map_err(|e| Error::invalid_argument(format!("{}: {e}", file.display())))?;
                Ok((Arc::new(LocalFileSystem::new()), path))
            }
            Backend::Query(..) => Err(Error::new(
                ErrorCode::NotSupported,
                "a URL with a query string (presigned, SAS) can only be read",
            )
            .with_url(&loc.url)),
        }
    }

    /// Whether an object exists: `false` only for `NotFound`; any other failure is an error.
    pub async fn exists(&self, url: &str, opts: &StoreOptions) -> Result<bool> {
        match self.head(url, opts).await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Remove objects; one that does not exist is not an error (removal is idempotent). Objects
    /// of one store go in batches where the store has a batch delete (S3 DeleteObjects).
    pub async fn remove(&self, urls: &[String], opts: &StoreOptions) -> Result<()> {
        /// One store's share of the URLs: the store, its keys, and a URL to name in errors.
        type Group = (Arc<dyn ObjectStore>, Vec<Path>, String);
        let mut groups: BTreeMap<(Scheme, String), Group> = BTreeMap::new();
        for url in urls {
            let loc = Location::parse(url)?;
            let (store, path) = self.writable(&loc, opts).await?;
            groups
                .entry((loc.scheme, loc.store_url.clone()))
                .or_insert_with(|| (store, Vec::new(), url.clone()))
                .1
                .push(path);
        }
        for (_, (store, paths, url)) in groups {
            let paths = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
            let mut results = store.delete_stream(paths);
            while let Some(r) = results.next().await {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(Error::from_store(e, &url)),
                }
            }
        }
        Ok(())
    }

    /// Copy an object to another key of the same store (server-side where the store can).
    pub async fn copy(
        &self,
        from: &str,
        to: &str,
        if_not_exists: bool,
        opts: &StoreOptions,
    ) -> Result<()> {
        let (a, b) = (Location::parse(from)?, Location::parse(to)?);
        if a.scheme != b.scheme || a.store_url != b.store_url {
            return Err(Error::invalid_argument(
                "copy works within one store (same scheme and bucket/container/host); download and upload to move between stores",
            ));
        }
        let (store, src) = self.writable(&a, opts).await?;
        let (_, dst) = self.writable(&b, opts).await?;
        let r = if if_not_exists {
            store.copy_if_not_exists(&src, &dst).await
        } else {
            store.copy(&src, &dst).await
        };
        r.map_err(|e| Error::from_store(e, to))
    }

    /// Every object under a prefix URL (`s3://bucket/dir/`), recursively, as the store pages
    /// them. S3 keys come exactly as stored, folder markers (`dir/sub/`) and keys object_store's
    /// `Path` refuses (control characters, `.`/`..` or empty segments) included: objget lists
    /// S3 with its own signed ListObjectsV2.
    pub async fn list(
        &self,
        prefix_url: &str,
        opts: &StoreOptions,
    ) -> Result<BoxStream<'static, Result<Listed>>> {
        let loc = Location::parse(prefix_url)?;
        let (store, path) = self.writable(&loc, opts).await?;
        let prefix = (!path.as_ref().is_empty()).then_some(path);
        let below = prefix
            .as_ref()
            .map(|p| format!("{}/", p.as_ref()))
            .unwrap_or_default();
        let base = loc.store_url.trim_end_matches('/').to_string();
        let scheme = loc.scheme;
        let url = prefix_url.to_string();
        // A store whose settings objget's own requests do not carry (requester pays, unsigned
        // requests…) keeps object_store's listing.
        if scheme == Scheme::S3 {
            if let Ok(raw) = self.stores().s3_raw(&loc, opts).await {
                return Ok(raw
                    .list(below.clone(), url)
                    .map_ok(move |o| {
                        let rel = o.key.strip_prefix(below.as_str()).unwrap_or(&o.key);
                        Listed {
                            relative: rel.to_string(),
                            url: format!("{base}/{}", url_key(&o.key)),
                            key: o.key,
                            info: ObjectInfo {
                                size: o.size,
                                etag: o.etag,
                                last_modified: o.last_modified,
                                version: None,
                            },
                        }
                    })
                    .boxed());
            }
        }
        let local = LocalFileSystem::new();
        let dir = loc
            .file
            .clone()
            .map(|f| absolute(&f))
            .transpose()?
            .unwrap_or_default();
        Ok(store
            .list(prefix.as_ref())
            .map_err(move |e| Error::from_store(e, &url))
            .map_ok(move |meta| {
                let raw = meta.location.as_ref();
                let rel = raw.strip_prefix(below.as_str()).unwrap_or(raw);
                // Cloud keys come as they are; local names come percent-encoded by object_store
                // where they hold characters it reserves. A URL carries a key's `?`, `#`, `%`,
                // space… percent-encoded, which Location::parse decodes back.
                let (key, relative, url) = if scheme == Scheme::File {
                    // A local name's own characters, from the filesystem path itself.
                    let file = local.path_to_filesystem(&meta.location).unwrap_or_default();
                    let relative = file
                        .strip_prefix(&dir)
                        .map(|r| r.to_string_lossy().replace('\\', "/"))
                        .unwrap_or_default();
                    let file = file.to_string_lossy().into_owned();
                    (file.trim_start_matches('/').to_string(), relative, file)
                } else {
                    (
                        raw.to_string(),
                        rel.to_string(),
                        format!("{base}/{}", url_key(raw)),
                    )
                };
                Listed {
                    relative,
                    key,
                    url,
                    info: ObjectInfo {
                        size: meta.size,
                        etag: meta.e_tag,
                        last_modified: Some(meta.last_modified),
                        version: meta.version,
                    },
                }
            })
            .boxed())
    }

    /// Upload a file, bytes or a stream to `url`: one PUT up to one part, parallel multipart
    /// above. Any failure or cancellation aborts the multipart upload, so nothing is left behind.
    pub async fn upload(
        &self,
        source: UploadSource,
        url: &str,
        opts: &UploadOptions,
        cancel: &CancellationToken,
    ) -> Result<UploadResult> {
        if let Some(requested) = opts.part_size {
            if !(64 * 1024..=5 * 1024 * 1024 * 1024).contains(&requested) {
                return Err(Error::invalid_argument(format!(
                    "partSize must be between 64 KiB and 5 GiB, got {requested}"
                )));
            }
        }
        let loc = Location::parse(url)?;
        let source = match self.rdma_ctx(&loc, url, &opts.store).await? {
            Some(ctx) => return self.rdma_upload(&ctx, source, opts, cancel).await,
            None => source,
        };
        // ifNotExists above one part on S3: objget's own multipart upload, completed with a
        // signed If-None-Match (object_store has no conditional multipart).
        let source = match source {
            UploadSource::File(_) | UploadSource::Bytes(_)
                if opts.if_not_exists && loc.scheme == Scheme::S3 =>
            {
                let size = match &source {
                    UploadSource::Bytes(b) => b.len() as u64,
                    UploadSource::File(p) => file_size(p).await?,
                    UploadSource::Stream(_) => unreachable!("matched above"),
                };
                let part = upload_part_size(size, opts.part_size);
                self.stores().backend(&loc, &opts.store).await?;
                // A store configured with another conditional mechanism (a lock table) or
                // with settings objget's requests do not carry keeps object_store's path.
                if size > part && self.stores().own_conditional_multipart(&loc, &opts.store) {
                    let raw = self.stores().s3_raw(&loc, &opts.store).await?;
                    let concurrency = opts
                        .concurrency
                        .unwrap_or(DEFAULT_UPLOAD_CONCURRENCY)
                        .max(1);
                    let ctx = crate::s3::Ctx::http(&loc, url, raw, part, concurrency);
                    return self.rdma_upload(&ctx, source, opts, cancel).await;
                }
                source
            }
            s => s,
        };
        let (store, path) = self.writable(&loc, &opts.store).await?;
        let tracker = Tracker::new(opts.progress.clone(), None);
        let attributes = attributes(opts);
        if cancel.is_cancelled() {
            return Err(Error::aborted(url));
        }
        // Either the whole object fits one PUT, or its parts come from `Parts`.
        let body = match source {
            UploadSource::Bytes(b) => {
                let part = upload_part_size(b.len() as u64, opts.part_size);
                if b.len() as u64 <= part {
                    Body::One(b)
                } else {
                    let size = b.len() as u64;
                    Body::Many(Parts::sized(UploadSource::Bytes(b), size, part))
                }
            }
            UploadSource::File(p) => {
                let size = file_size(&p).await?;
                let part = upload_part_size(size, opts.part_size);
                if size <= part {
                    Body::One(read_range(&p, 0, size).await?)
                } else {
                    Body::Many(Parts::sized(UploadSource::File(p), size, part))
                }
            }
            UploadSource::Stream(mut rx) => {
                let part = upload_part_size(0, opts.part_size);
                let mut first = BytesMut::new();
                let mut ended = false;
                while first.len() as u64 <= part {
                    let next = tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Err(Error::aborted(url)),
                        c = rx.recv() => c,
                    };
                    match next {
                        Some(c) => first.extend_from_slice(&c),
                        None => {
                            ended = true;
                            break;
                        }
                    }
                }
                if ended {
                    Body::One(first.freeze())
                } else {
                    Body::Many(Parts::stream(rx, first, part))
                }
            }
        };
        let r = match body {
            Body::One(bytes) => {
                let size = bytes.len() as u64;
                tracker.plan(size, 1);
                let sum = combine(Algorithm::Crc64Nvme, &mut [(0, size, crc64(&bytes))]);
                let mode = if opts.if_not_exists {
                    PutMode::Create
                } else {
                    PutMode::Overwrite
                };
                let options = PutOptions {
                    mode,
                    attributes,
                    ..Default::default()
                };
                // A single PUT dropped mid-body stores nothing.
                let put = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(Error::aborted(url)),
                    r = store.put_opts(&path, PutPayload::from_bytes(bytes), options) => {
                        r.map_err(|e| Error::from_store(e, url))?
                    }
                };
                tracker.add(size);
                tracker.part_done();
                UploadResult {
                    etag: put.e_tag,
                    version: put.version,
                    bytes: size,
                    parts: 1,
                    checksum: sum,
                    path: crate::rdma::TransferPath::Http,
                }
            }
            Body::Many(parts)
                if opts.if_not_exists
                    && loc.scheme == Scheme::S3
                    && (!attributes.is_empty()
                        || parts.plan().is_some_and(|(size, _)| size > 5 << 30)) =>
            {
                // Only a stream gets here (files and Buffers took objget's own conditional
                // multipart above); object_store's conditional copy on S3 is one UploadPartCopy
                // without attributes.
                drop(parts);
                return Err(Error::new(
                    ErrorCode::NotSupported,
                    "ifNotExists above one part from a stream on S3 is published by a conditional \
                     copy, which keeps no contentType or metadata and copies at most 5 GiB; \
                     upload from a file or a Buffer instead",
                )
                .with_url(url));
            }
            Body::Many(mut parts) if opts.if_not_exists => {
                self.upload_new_multipart(
                    &store, &path, &mut parts, opts, attributes, &tracker, url, cancel,
                )
                .await?
            }
            Body::Many(mut parts) => {
                multipart(
                    &store, &path, &mut parts, opts, attributes, &tracker, url, cancel,
                )
                .await?
            }
        };
        tracker.finish();
        Ok(r)
    }

    /// The store that publishes a staged upload: on S3 one without upload checksums (MinIO
    /// wants a checksum on every part of such an upload, object_store's UploadPartCopy sends
    /// none).
    async fn publisher(
        &self,
        store: &Arc<dyn ObjectStore>,
        url: &str,
        opts: &StoreOptions,
    ) -> Result<Arc<dyn ObjectStore>> {
        let loc = Location::parse(url)?;
        if loc.scheme != Scheme::S3 {
            return Ok(store.clone());
        }
        let plain = StoreOptions {
            no_upload_checksum: true,
            ..opts.clone()
        };
        Ok(self.writable(&loc, &plain).await?.0)
    }

    /// `ifNotExists` for an object too large for one PUT: object_store has no conditional
    /// multipart completion, so the parts go to a hidden staging key beside the destination and
    /// a conditional server-side copy publishes it (S3: a multipart copy completed with
    /// If-None-Match; GCS: generation match 0; Azure: If-None-Match; files: a hard link). The
    /// staging object is always removed.
    #[allow(clippy::too_many_arguments)]
    async fn upload_new_multipart(
        &self,
        store: &Arc<dyn ObjectStore>,
        path: &Path,
        parts: &mut Parts,
        opts: &UploadOptions,
        attributes: Attributes,
        tracker: &Tracker,
        url: &str,
        cancel: &CancellationToken,
    ) -> Result<UploadResult> {
        let staging = staging_path(path);
        let r = multipart(
            store, &staging, parts, opts, attributes, tracker, url, cancel,
        )
        .await;
        let published = match r {
            Ok(r) => match self.publisher(store, url, &opts.store).await {
                Ok(publisher) => publisher
                    .copy_if_not_exists(&staging, path)
                    .await
                    .map(|()| r)
                    .map_err(|e| Error::from_store(e, url)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let _ = store.delete(&staging).await;
        let mut r = published?;
        // The copy's ETag is the destination's: read it back.
        if let Ok(meta) = store.head(path).await {
            r.etag = meta.e_tag;
            r.version = meta.version;
        }
        Ok(r)
    }
}

/// What an upload sends: one PUT, or parts.
enum Body {
    One(Bytes),
    Many(Parts),
}

/// The parts of a multipart upload, in order.
enum Parts {
    /// A file or bytes of known size.
    Sized {
        source: UploadSource,
        size: u64,
        part: u64,
        offset: u64,
    },
    /// A stream of unknown length, cut into parts of `part` bytes (the last may be shorter).
    /// The size doubles every 1,000 parts, so that 10,000 parts reach past S3's 5 TiB limit
    /// while a short stream keeps small parts (R2, which wants equal parts, then takes
    /// streams up to 1,000 parts).
    Stream {
        rx: tokio::sync::mpsc::Receiver<Bytes>,
        pending: BytesMut,
        part: u64,
        offset: u64,
        ended: bool,
        index: u64,
    },
}

impl Parts {
    fn sized(source: UploadSource, size: u64, part: u64) -> Self {
        Self::Sized {
            source,
            size,
            part,
            offset: 0,
        }
    }

    fn stream(rx: tokio::sync::mpsc::Receiver<Bytes>, first: BytesMut, part: u64) -> Self {
        Self::Stream {
            rx,
            pending: first,
            part,
            offset: 0,
            ended: false,
            index: 0,
        }
    }

    /// Total size and part count, when known in advance.
    fn plan(&self) -> Option<(u64, u64)> {
        match self {
            Self::Sized { size, part, .. } => Some((*size, size.div_ceil(*part))),
            Self::Stream { .. } => None,
        }
    }

    /// The next part and its offset; `None` at the end.
    async fn next(
        &mut self,
        cancel: &CancellationToken,
        url: &str,
    ) -> Result<Option<(u64, Bytes)>> {
        match self {
            Self::Sized {
                source,
                size,
                part,
                offset,
            } => {
                if *offset >= *size {
                    return Ok(None);
                }
                let at = *offset;
                let len = (*part).min(*size - at);
                let bytes = match source {
                    UploadSource::Bytes(b) => b.slice(at as usize..(at + len) as usize),
                    UploadSource::File(p) => read_range(p, at, len).await?,
                    UploadSource::Stream(_) => unreachable!("streams are Parts::Stream"),
                };
                *offset += len;
                Ok(Some((at, bytes)))
            }
            Self::Stream {
                rx,
                pending,
                part,
                offset,
                ended,
                index,
            } => {
                let size = (*part << (*index / 1000).min(10)).min(5 << 30);
                while (pending.len() as u64) < size && !*ended {
                    let next = tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Err(Error::aborted(url)),
                        c = rx.recv() => c,
                    };
                    match next {
                        Some(c) => pending.extend_from_slice(&c),
                        None => *ended = true,
                    }
                }
                if pending.is_empty() {
                    return Ok(None);
                }
                let take = (size as usize).min(pending.len());
                let bytes = pending.split_to(take).freeze();
                let at = *offset;
                *offset += take as u64;
                *index += 1;
                Ok(Some((at, bytes)))
            }
        }
    }
}

async fn file_size(p: &FsPath) -> Result<u64> {
    let p = p.to_path_buf();
    blocking(move || {
        let m = std::fs::metadata(&p).map_err(|e| Error::io(&p, &e))?;
        if !m.is_file() {
            return Err(Error::invalid_argument(format!(
                "{}: not a file",
                p.display()
            )));
        }
        Ok(m.len())
    })
    .await
}

fn staging_path(path: &Path) -> Path {
    let s = path.as_ref();
    let (dir, name) = s.rsplit_once('/').map_or(("", s), |(d, n)| (d, n));
    let staged = format!(".{name}.objget-upload-{:016x}", rand::random::<u64>());
    if dir.is_empty() {
        Path::from(staged)
    } else {
        Path::from(format!("{dir}/{staged}"))
    }
}

impl Engine {
    /// An upload over RDMA: from a file or a Buffer (one in a caller's RDMA buffer goes with no
    /// copy); a stream goes over HTTP under `rdma: true`.
    async fn rdma_upload(
        &self,
        ctx: &crate::s3::Ctx,
        source: UploadSource,
        opts: &UploadOptions,
        cancel: &CancellationToken,
    ) -> Result<UploadResult> {
        use crate::options::RdmaMode;
        use crate::s3::{PutOptions, PutSource};
        let url = ctx.url().to_string();
        let source = match source {
            UploadSource::Bytes(b) => PutSource::Bytes(b),
            UploadSource::File(p) => {
                let p2 = p.clone();
                let file = blocking(move || {
                    let f = std::fs::File::open(&p2).map_err(|e| Error::io(&p2, &e))?;
                    let len = f.metadata().map_err(|e| Error::io(&p2, &e))?.len();
                    Ok((f, len))
                })
                .await?;
                PutSource::File(Arc::new(file.0), p, file.1)
            }
            UploadSource::Stream(rx) => {
                if opts.store.rdma.mode == RdmaMode::Require {
                    return Err(Error::new(
                        ErrorCode::NotSupported,
                        "rdma uploads read from a file or a Buffer; a stream goes over HTTP (rdma: true)",
                    )
                    .with_url(&url));
                }
                let mut plain = opts.clone();
                plain.store.rdma = Default::default();
                return Box::pin(self.upload(UploadSource::Stream(rx), &url, &plain, cancel)).await;
            }
        };
        let tracker = Tracker::new(opts.progress.clone(), None);
        let put = PutOptions {
            if_not_exists: opts.if_not_exists,
            content_type: opts.content_type.as_deref(),
            metadata: &opts.metadata,
        };
        let size = match &source {
            PutSource::Bytes(b) => b.len() as u64,
            PutSource::File(_, _, n) => *n,
        };
        // Cancellation is handled inside: parts stop, a multipart upload is aborted.
        let done = crate::s3::upload(ctx, source, put, &tracker, cancel).await?;
        tracker.finish();
        Ok(UploadResult {
            etag: done.etag,
            version: done.version,
            bytes: size,
            parts: done.parts,
            checksum: Checksum {
                algorithm: Algorithm::Crc64Nvme,
                value: done.crc64nvme.to_be_bytes().to_vec(),
            },
            path: done.path,
        })
    }
}

fn attributes(opts: &UploadOptions) -> Attributes {
    let mut a = Attributes::new();
    if let Some(ct) = &opts.content_type {
        a.insert(Attribute::ContentType, AttributeValue::from(ct.clone()));
    }
    for (k, v) in &opts.metadata {
        a.insert(
            Attribute::Metadata(k.clone().into()),
            AttributeValue::from(v.clone()),
        );
    }
    a
}

/// A parallel multipart upload; aborted on any failure or cancellation.
#[allow(clippy::too_many_arguments)]
async fn multipart(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    parts: &mut Parts,
    opts: &UploadOptions,
    attributes: Attributes,
    tracker: &Tracker,
    url: &str,
    cancel: &CancellationToken,
) -> Result<UploadResult> {
    let mut upload = store
        .put_multipart_opts(
            path,
            PutMultipartOptions {
                attributes,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| Error::from_store(e, url))?;
    if let Some((size, count)) = parts.plan() {
        tracker.plan(size, count as u32);
    }
    let concurrency = opts
        .concurrency
        .unwrap_or(DEFAULT_UPLOAD_CONCURRENCY)
        .max(1);
    let mut crcs = Vec::new();
    // Cancellation is checked here rather than by dropping this future, so that the upload is
    // always aborted and no part is left on the server.
    let outcome = async {
        let mut inflight = futures::stream::FuturesOrdered::new();
        let mut more = true;
        while more || !inflight.is_empty() {
            if more && inflight.len() < concurrency {
                match parts.next(cancel, url).await? {
                    Some((offset, bytes)) => {
                        let len = bytes.len() as u64;
                        crcs.push((offset, len, crc64(&bytes)));
                        let fut = upload.put_part(PutPayload::from_bytes(bytes));
                        inflight.push_back(async move { fut.await.map(|()| len) });
                        continue;
                    }
                    None => more = false,
                }
            }
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Error::aborted(url)),
                r = inflight.next() => r,
            };
            if let Some(r) = next {
                let len = r.map_err(|e| Error::from_store(e, url))?;
                tracker.add(len);
                tracker.part_done();
            }
        }
        // Completion is not cancelled: once it is sent the object may exist, and an `Aborted`
        // would then be a lie.
        match upload.complete().await {
            Ok(put) => Ok((put.e_tag, put.version)),
            // A retried completion whose first reply was lost finds the upload gone
            // (NoSuchUpload): the object may be in place, ours. Then it succeeded.
            Err(e @ object_store::Error::NotFound { .. }) => {
                let bytes = crcs.iter().map(|p| p.1).sum();
                let sum = combine(Algorithm::Crc64Nvme, &mut crcs.clone());
                match stored_is(store, path, bytes, &sum).await {
                    Some(meta) => Ok((meta.e_tag, meta.version)),
                    None => Err(Error::from_store(e, url)),
                }
            }
            Err(e) => Err(Error::from_store(e, url)),
        }
    }
    .await;
    match outcome {
        Ok((etag, version)) => {
            let bytes = crcs.iter().map(|p| p.1).sum();
            Ok(UploadResult {
                etag,
                version,
                bytes,
                parts: crcs.len() as u32,
                checksum: combine(Algorithm::Crc64Nvme, &mut crcs),
                path: crate::rdma::TransferPath::Http,
            })
        }
        Err(e) => {
            let _ = upload.abort().await;
            Err(e)
        }
    }
}

/// The object at `path`, when it is `size` bytes with the CRC64NVME `sum` (S3 keeps one for
/// every object uploaded with it, whatever the part boundaries): how a completion whose reply
/// was lost is recognised, as the AWS SDKs do. `None` when it is not, or cannot be told.
async fn stored_is(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    size: u64,
    sum: &Checksum,
) -> Option<object_store::ObjectMeta> {
    let seen = crate::checksum::Seen::default();
    let meta = crate::checksum::capture(seen.clone(), store.head(path))
        .await
        .ok()?;
    let (headers, _) = seen.take()?;
    let offered = crate::checksum::advertised(&headers, false, crate::checksum::Dialect::Other);
    (meta.size == size && offered.contains(sum)).then_some(meta)
}

fn absolute(p: &FsPath) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .map_err(|e| Error::io(FsPath::new("."), &e))?
            .join(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_respect_the_minimum_and_the_part_limit() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(upload_part_size(100, None), DEFAULT_UPLOAD_PART);
        assert_eq!(upload_part_size(100, Some(MIB)), MIN_PART);
        assert_eq!(upload_part_size(100 * MIB, Some(8 * MIB)), 8 * MIB);
        // 5 TiB in 16 MiB parts would be 327,680 parts: doubled until it fits in 10,000.
        let five_tib = 5 * 1024 * 1024 * MIB;
        let p = upload_part_size(five_tib, None);
        assert!(five_tib.div_ceil(p) <= MAX_PARTS);
        assert_eq!(p, 1024 * MIB);
    }

    #[test]
    fn staging_keys_sit_hidden_beside_the_destination() {
        let s = staging_path(&Path::from("a/b/model.bin"));
        assert!(s.as_ref().starts_with("a/b/.model.bin.objget-upload-"));
        let s = staging_path(&Path::from("top.bin"));
        assert!(s.as_ref().starts_with(".top.bin.objget-upload-"));
    }
}
