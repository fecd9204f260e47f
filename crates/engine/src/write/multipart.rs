//! object_store's parallel multipart upload: the parts of a file, a Buffer or a stream, a few in
//! flight, aborted on any failure or cancellation; a completion whose reply was lost is
//! recognised by the object's CRC64NVME.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::stream::StreamExt;
use object_store::path::Path;
use object_store::{
    Attributes, MultipartUpload, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutPayload,
};
use tokio_util::sync::CancellationToken;

use super::{Target, UploadResult, UploadSource};
use crate::checksum::{combine, crc64, Algorithm, Checksum};
use crate::error::{Error, Result};
use crate::fs::{blocking, read_exact_at};
use crate::options::MAX_PART;
use crate::rdma::TransferPath;

/// The buffers a file's parts are read into, each back here once the part's request has let go
/// of it: an upload holds its parts in flight and no more, in the same pages (no fresh zeroed
/// allocation, no page faults, no heap left fragmented by a part's worth per worker thread).
#[derive(Default)]
pub(super) struct PartBuffers(Mutex<Vec<Vec<u8>>>);

/// A part's bytes in a pooled buffer; returned to the pool when the last `Bytes` is dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<PartBuffers>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if let Ok(mut free) = self.pool.0.lock() {
            free.push(buf);
        }
    }
}

impl PartBuffers {
    /// `len` bytes of the file `path` at `offset`, in a pooled buffer.
    async fn read(
        self: &Arc<Self>,
        path: &std::path::Path,
        offset: u64,
        len: u64,
    ) -> Result<Bytes> {
        let mut buf = self
            .0
            .lock()
            .ok()
            .and_then(|mut f| f.pop())
            .unwrap_or_default();
        // Same-sized parts reuse the buffer as it is; only the first (or a longer) one is zeroed.
        buf.resize(len as usize, 0);
        let path = path.to_path_buf();
        let buf = blocking(move || {
            let f = std::fs::File::open(&path).map_err(|e| Error::io(&path, &e))?;
            read_exact_at(&f, &mut buf, offset).map_err(|e| Error::io(&path, &e))?;
            Ok(buf)
        })
        .await?;
        Ok(Bytes::from_owner(Pooled {
            buf,
            pool: Arc::clone(self),
        }))
    }
}

/// The parts of a multipart upload, in order.
pub(super) enum Parts {
    /// A file or bytes of known size.
    Sized {
        source: UploadSource,
        size: u64,
        part: u64,
        offset: u64,
        buffers: Arc<PartBuffers>,
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
    pub(super) fn sized(source: UploadSource, size: u64, part: u64) -> Self {
        Self::Sized {
            source,
            size,
            part,
            offset: 0,
            buffers: Arc::default(),
        }
    }

    pub(super) fn stream(
        rx: tokio::sync::mpsc::Receiver<Bytes>,
        first: BytesMut,
        part: u64,
    ) -> Self {
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
    pub(super) fn plan(&self) -> Option<(u64, u64)> {
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
                buffers,
            } => {
                if *offset >= *size {
                    return Ok(None);
                }
                let at = *offset;
                let len = (*part).min(*size - at);
                let bytes = match source {
                    UploadSource::Bytes(b) => b.slice(at as usize..(at + len) as usize),
                    UploadSource::File(p) => buffers.read(p, at, len).await?,
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
                let size = (*part << (*index / 1000).min(10)).min(MAX_PART);
                if !*ended {
                    *ended = fill(rx, pending, size, cancel, url).await?;
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

/// Read chunks of `rx` into `buf` until it holds `want` bytes or the stream ends (`true`).
pub(super) async fn fill(
    rx: &mut tokio::sync::mpsc::Receiver<Bytes>,
    buf: &mut BytesMut,
    want: u64,
    cancel: &CancellationToken,
    url: &str,
) -> Result<bool> {
    while (buf.len() as u64) < want {
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Error::aborted(url)),
            c = rx.recv() => c,
        };
        match next {
            Some(c) => buf.extend_from_slice(&c),
            None => return Ok(true),
        }
    }
    Ok(false)
}

/// A parallel multipart upload; aborted on any failure or cancellation.
pub(super) async fn multipart(
    t: &Target<'_>,
    path: &Path,
    parts: &mut Parts,
    attributes: Attributes,
) -> Result<UploadResult> {
    let Target {
        store,
        budget,
        opts,
        tracker,
        url,
        cancel,
    } = *t;
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
    let concurrency = opts.parts.concurrency();
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
                        // The part's request waits for a permit of the engine's budget.
                        inflight.push_back(async move {
                            let _permit = budget.permit().await?;
                            fut.await
                                .map(|()| len)
                                .map_err(|e| Error::from_store(e, url))
                        });
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
                let len = r?;
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
                path: TransferPath::Http,
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
    let seen = crate::store::spy::Seen::default();
    let meta = crate::store::spy::capture(seen.clone(), store.head(path))
        .await
        .ok()?;
    let (headers, _) = seen.take()?;
    let offered = crate::checksum::advertised(&headers, false, crate::checksum::Dialect::Other);
    (meta.size == size && offered.contains(sum)).then_some(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part's buffer goes back to the pool when its last `Bytes` is dropped, and the next part
    /// is read into the same memory; the bytes are the file's at each offset.
    #[tokio::test]
    async fn part_buffers_are_reused_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let pool = Arc::new(PartBuffers::default());
        let a = pool.read(&path, 0, 1000).await.unwrap();
        assert_eq!(&a[..], &data[..1000]);
        let first = a.as_ptr();
        let held = a.clone();
        drop(a);
        // Still held (as object_store holds a part for its retries): a new buffer.
        let b = pool.read(&path, 1000, 1000).await.unwrap();
        assert_ne!(b.as_ptr(), first);
        drop(held);
        let c = pool.read(&path, 2000, 1000).await.unwrap();
        assert_eq!(c.as_ptr(), first);
        assert_eq!(&c[..], &data[2000..]);
        assert_eq!(&b[..], &data[1000..2000]);
    }
}
