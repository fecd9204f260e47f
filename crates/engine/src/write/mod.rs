//! Uploads. The path is chosen once, in [`Engine::upload`]:
//!
//! - RDMA (`rdma: true | 'require'` on S3, from a file or a Buffer): objget's own S3 requests
//!   with the bytes in registered memory (`crate::s3`);
//! - `ifNotExists` above one part on S3, from a file or a Buffer: objget's own multipart upload
//!   completed with a signed `If-None-Match` (object_store has no conditional multipart);
//! - otherwise object_store: one PUT up to one part, its parallel multipart upload above
//!   ([`multipart`]), and for `ifNotExists` a staged upload published by a conditional copy
//!   ([`conditional`]).
//!
//! Any failure or cancellation aborts a multipart upload, so nothing is left behind.

mod conditional;
mod multipart;

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, ObjectStore, PutMode, PutOptions, PutPayload,
};
use tokio_util::sync::CancellationToken;

use crate::budget::Budget;
use crate::checksum::{combine, crc64, Algorithm, Checksum};
use crate::engine::Engine;
use crate::error::{Error, ErrorCode, Result};
use crate::fs::{blocking, read_range};
use crate::locate::{Location, Scheme};
use crate::options::{RdmaMode, UploadOptions, DEFAULT_UPLOAD_PART, MAX_PART, MAX_PARTS, MIN_PART};
use crate::progress::Tracker;
use crate::rdma::TransferPath;
use crate::s3::{self, PutSource};
use multipart::Parts;

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
    pub path: TransferPath,
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

/// The way one upload goes, chosen once.
enum Route {
    /// objget's own S3 requests: by RDMA, or the conditional multipart over HTTP.
    Own(Arc<s3::Ctx>, PutSource),
    /// object_store: one PUT, its multipart upload, or staging and a conditional copy.
    Store(UploadSource),
}

/// What an upload through object_store sends: one PUT, or parts.
enum Body {
    One(Bytes),
    Many(Parts),
}

/// One upload through object_store: where it goes and what it reports to.
#[derive(Clone, Copy)]
struct Target<'a> {
    store: &'a Arc<dyn ObjectStore>,
    /// The engine's request budget: every part (and a single PUT) takes a permit from it.
    budget: &'a Budget,
    opts: &'a UploadOptions,
    tracker: &'a Tracker,
    url: &'a str,
    cancel: &'a CancellationToken,
}

impl Engine {
    /// Upload a file, bytes or a stream to `url`: one PUT up to one part, parallel multipart
    /// above. Any failure or cancellation aborts the multipart upload, so nothing is left behind.
    pub async fn upload(
        &self,
        source: UploadSource,
        url: &str,
        opts: &UploadOptions,
        cancel: &CancellationToken,
    ) -> Result<UploadResult> {
        opts.parts.validate()?;
        let loc = Location::parse(url)?;
        match self.upload_route(&loc, url, source, opts).await? {
            Route::Own(ctx, source) => own(&ctx, source, opts, cancel).await,
            Route::Store(source) => self.through_store(&loc, url, source, opts, cancel).await,
        }
    }

    /// Choose the upload's path.
    async fn upload_route(
        &self,
        loc: &Location,
        url: &str,
        source: UploadSource,
        opts: &UploadOptions,
    ) -> Result<Route> {
        if let Some(ctx) = self.rdma_ctx(loc, url, &opts.rdma, &opts.store).await? {
            return match source {
                UploadSource::Stream(_) if opts.rdma.mode == RdmaMode::Require => {
                    Err(Error::new(
                        ErrorCode::NotSupported,
                        "rdma uploads read from a file or a Buffer; a stream goes over HTTP (rdma: true)",
                    )
                    .with_url(url))
                }
                // Under `rdma: true` a stream goes over HTTP.
                UploadSource::Stream(rx) => Ok(Route::Store(UploadSource::Stream(rx))),
                source => Ok(Route::Own(ctx, put_source(source).await?)),
            };
        }
        // ifNotExists above one part on S3: objget's own multipart upload, completed with a
        // signed If-None-Match (object_store has no conditional multipart).
        let size = match &source {
            _ if !opts.if_not_exists || loc.scheme != Scheme::S3 => None,
            UploadSource::Bytes(b) => Some(b.len() as u64),
            UploadSource::File(p) => Some(file_size(p).await?),
            UploadSource::Stream(_) => None,
        };
        if let Some(size) = size {
            let part = upload_part_size(size, opts.parts.size);
            self.stores().backend(loc, &opts.store).await?;
            // A store configured with another conditional mechanism (a lock table) or with
            // settings objget's requests do not carry keeps object_store's path.
            if size > part && self.stores().own_conditional_multipart(loc, &opts.store) {
                let raw = self.stores().s3_raw(loc, &opts.store).await?;
                let ctx = s3::Ctx::http(
                    loc,
                    url,
                    raw,
                    part,
                    opts.parts.concurrency(),
                    &self.requests,
                );
                return Ok(Route::Own(ctx, put_source(source).await?));
            }
        }
        Ok(Route::Store(source))
    }

    /// An upload through object_store.
    async fn through_store(
        &self,
        loc: &Location,
        url: &str,
        source: UploadSource,
        opts: &UploadOptions,
        cancel: &CancellationToken,
    ) -> Result<UploadResult> {
        let (store, path) = self.writable(loc, &opts.store).await?;
        let tracker = Tracker::new(opts.progress.clone(), None);
        let attributes = attributes(opts);
        if cancel.is_cancelled() {
            return Err(Error::aborted(url));
        }
        let target = Target {
            store: &store,
            budget: &self.requests,
            opts,
            tracker: &tracker,
            url,
            cancel,
        };
        let r = match body(source, opts, url, cancel).await? {
            Body::One(bytes) => single(&target, &path, bytes, attributes).await?,
            Body::Many(parts)
                if opts.if_not_exists
                    && loc.scheme == Scheme::S3
                    && (!attributes.is_empty()
                        || parts.plan().is_some_and(|(size, _)| size > MAX_PART)) =>
            {
                // Only a stream gets here (files and Buffers took objget's own conditional
                // multipart); object_store's conditional copy on S3 is one UploadPartCopy
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
                self.staged(&target, &path, &mut parts, attributes).await?
            }
            Body::Many(mut parts) => {
                multipart::multipart(&target, &path, &mut parts, attributes).await?
            }
        };
        tracker.finish();
        Ok(r)
    }
}

/// Either the whole object fits one PUT, or its parts come from `Parts`.
async fn body(
    source: UploadSource,
    opts: &UploadOptions,
    url: &str,
    cancel: &CancellationToken,
) -> Result<Body> {
    Ok(match source {
        UploadSource::Bytes(b) => {
            let part = upload_part_size(b.len() as u64, opts.parts.size);
            if b.len() as u64 <= part {
                Body::One(b)
            } else {
                let size = b.len() as u64;
                Body::Many(Parts::sized(UploadSource::Bytes(b), size, part))
            }
        }
        UploadSource::File(p) => {
            let size = file_size(&p).await?;
            let part = upload_part_size(size, opts.parts.size);
            if size <= part {
                Body::One(read_range(&p, 0, size).await?)
            } else {
                Body::Many(Parts::sized(UploadSource::File(p), size, part))
            }
        }
        UploadSource::Stream(mut rx) => {
            let part = upload_part_size(0, opts.parts.size);
            let mut first = BytesMut::new();
            // One byte more than a part decides: multipart.
            let ended = multipart::fill(&mut rx, &mut first, part + 1, cancel, url).await?;
            if ended {
                Body::One(first.freeze())
            } else {
                Body::Many(Parts::stream(rx, first, part))
            }
        }
    })
}

/// The whole object in one PUT (conditional for `ifNotExists`).
async fn single(
    t: &Target<'_>,
    path: &Path,
    bytes: Bytes,
    attributes: Attributes,
) -> Result<UploadResult> {
    let size = bytes.len() as u64;
    t.tracker.plan(size, 1);
    let sum = combine(Algorithm::Crc64Nvme, &mut [(0, size, crc64(&bytes))]);
    let mode = if t.opts.if_not_exists {
        PutMode::Create
    } else {
        PutMode::Overwrite
    };
    let options = PutOptions {
        mode,
        attributes,
        ..Default::default()
    };
    // A single PUT dropped mid-body stores nothing. It waits for a permit of the engine's
    // request budget like every other request.
    let put = async {
        let _permit = t.budget.permit().await?;
        let payload = PutPayload::from_bytes(bytes);
        t.store
            .put_opts(path, payload, options)
            .await
            .map_err(|e| Error::from_store(e, t.url))
    };
    let put = tokio::select! {
        biased;
        _ = t.cancel.cancelled() => return Err(Error::aborted(t.url)),
        r = put => r?,
    };
    t.tracker.add(size);
    t.tracker.part_done();
    Ok(UploadResult {
        etag: put.e_tag,
        version: put.version,
        bytes: size,
        parts: 1,
        checksum: sum,
        path: TransferPath::Http,
    })
}

/// A file or Buffer as objget's own S3 requests read it (a stream never goes that way).
async fn put_source(source: UploadSource) -> Result<PutSource> {
    match source {
        UploadSource::Bytes(b) => Ok(PutSource::Bytes(b)),
        UploadSource::File(p) => {
            let p2 = p.clone();
            let (file, len) = blocking(move || {
                let f = std::fs::File::open(&p2).map_err(|e| Error::io(&p2, &e))?;
                let len = f.metadata().map_err(|e| Error::io(&p2, &e))?.len();
                Ok((f, len))
            })
            .await?;
            Ok(PutSource::File(Arc::new(file), p, len))
        }
        UploadSource::Stream(_) => unreachable!("a stream goes through object_store"),
    }
}

/// An upload through objget's own S3 requests (RDMA, or the conditional multipart over HTTP):
/// a Buffer in a caller's RDMA buffer goes with no copy.
async fn own(
    ctx: &Arc<s3::Ctx>,
    source: PutSource,
    opts: &UploadOptions,
    cancel: &CancellationToken,
) -> Result<UploadResult> {
    let tracker = Tracker::new(opts.progress.clone(), None);
    let put = s3::PutOptions {
        if_not_exists: opts.if_not_exists,
        content_type: opts.content_type.as_deref(),
        metadata: &opts.metadata,
    };
    let size = source.size();
    // Cancellation is handled inside: parts stop, a multipart upload is aborted.
    let done = s3::upload(ctx, source, put, &tracker, cancel).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{UploadParts, REQUEST_BUDGET};
    use std::time::Duration;

    /// Upload parts take their permits from the budget reads take theirs from: with every
    /// permit held (as reads in flight hold them), no part goes; once they are back, it does.
    #[tokio::test]
    async fn upload_parts_and_reads_share_one_request_budget() {
        let engine = Engine::new();
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let opts = UploadOptions {
            parts: UploadParts {
                size: Some(MIN_PART),
                ..Default::default()
            },
            ..Default::default()
        };
        for (name, len, parts) in [("many.bin", 2 * MIN_PART + 1, 3), ("one.bin", 10, 1)] {
            let url = dir.path().join(name).to_string_lossy().into_owned();
            let held = engine
                .requests
                .acquire_many(REQUEST_BUDGET as u32)
                .await
                .unwrap();
            let data = Bytes::from(vec![7u8; len as usize]);
            let upload = engine.upload(UploadSource::Bytes(data), &url, &opts, &cancel);
            tokio::pin!(upload);
            let early = tokio::time::timeout(Duration::from_millis(300), &mut upload).await;
            assert!(
                early.is_err(),
                "{name}: uploaded while the budget was spent"
            );
            drop(held);
            let r = upload.await.unwrap();
            assert_eq!((r.bytes, r.parts), (len, parts));
            assert_eq!(std::fs::metadata(dir.path().join(name)).unwrap().len(), len);
        }
    }

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
}
