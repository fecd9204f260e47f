//! One object through objget's own S3 requests: HEAD, a GET in parts into a file, memory or a
//! caller's registered buffer, and a PUT (whole or one part of a multipart upload), each by RDMA
//! where the transport has it and with the bytes in the HTTP body otherwise.
//!
//! Every RDMA request has an empty body and `UNSIGNED-PAYLOAD`, the token among the SigV4
//! SignedHeaders; GETs are parts of at most 1 GiB, each with its own token and pinned with
//! If-Match; PUTs and UploadParts carry the CRC64NVME of the real bytes, so a server that ignores
//! the token cannot store an empty object in their place. `x-amz-rdma-reply` says what the
//! server did: 200/204/206 done, 501 declined (a GET's bytes then come in the body; a PUT is
//! re-sent with one), absent: the server ignored the token.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use futures::stream::{StreamExt, TryStreamExt};
use futures::FutureExt;
use http::Method;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{error_code, header, status_error, Ctx, Headers};
use crate::checksum::{advertised, crc64, Algorithm, Checksum, Dialect};
use crate::error::{Error, ErrorCode, Result};
use crate::fs::{read_bytes_at, read_exact_at};
use crate::landing::Landing;
use crate::object::plan;
use crate::options::RdmaMode;
use crate::progress::Tracker;
use crate::rdma::{user_registration, Lease, SendPtr, Slot, TransferPath, OP_GET, OP_PUT};

/// What a HEAD says.
pub(crate) struct Head {
    pub(crate) size: u64,
    pub(crate) etag: Option<String>,
    pub(crate) offered: Vec<Checksum>,
}

/// One HEAD, asking for the stored checksums.
pub(crate) async fn head(ctx: &Ctx) -> Result<Head> {
    let resp = ctx
        .request(
            Method::HEAD,
            vec![],
            vec![("x-amz-checksum-mode".into(), "ENABLED".into())],
            Bytes::new(),
        )
        .await?;
    let status = resp.status();
    if !status.is_success() {
        return Err(status_error(status, b"", "HEAD", &ctx.url));
    }
    let size = header(&resp, "content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Error::new(ErrorCode::Generic, "HEAD without a Content-Length").with_url(&ctx.url)
        })?;
    Ok(Head {
        size,
        etag: header(&resp, "etag").map(str::to_string),
        offered: advertised(resp.headers(), false, Dialect::S3),
    })
}

/// GET one part into `slot`, by RDMA when the shim is there and the server has not declined,
/// otherwise from the body.
async fn get_part(
    ctx: &Ctx,
    etag: Option<&str>,
    range: Option<(u64, u64)>,
    slot: Slot,
    declined: &AtomicBool,
    doubt: &AtomicBool,
) -> Result<TransferPath> {
    let mut headers = Vec::new();
    if let Some((start, len)) = range.filter(|&(_, len)| len > 0) {
        headers.push(("range".into(), format!("bytes={start}-{}", start + len - 1)));
    }
    if let Some(e) = etag {
        headers.push(("if-match".into(), e.to_string()));
    }
    // A zero-length part (an empty object) goes over plain HTTP: there is nothing to move, and
    // a token for zero bytes is untested with NVIDIA's library.
    let token = match &ctx.transport.shim {
        Some(shim) if slot.len > 0 && !declined.load(Ordering::Relaxed) => {
            match shim.token(slot.base.0, slot.len, slot.offset, OP_GET) {
                Ok(t) => Some(t),
                Err(e) => {
                    ctx.unusable(e, declined)?;
                    None
                }
            }
        }
        _ => None,
    };
    if let Some(t) = &token {
        headers.push(("x-amz-rdma-token".into(), t.as_str().to_string()));
    }
    let resp = match ctx
        .request(Method::GET, vec![], headers, Bytes::new())
        .await
    {
        Ok(r) => r,
        Err(e) => {
            // No reply: the server may have accepted the token and still be writing.
            doubt.store(token.is_some(), Ordering::Relaxed);
            return Err(e);
        }
    };
    let status = resp.status();
    let reply = header(&resp, "x-amz-rdma-reply").map(str::to_string);
    if token.is_some() && status.as_u16() == 501 && ctx.transport.mode != RdmaMode::Require {
        // Declined with no body to read: the part again, without a token.
        drop(resp);
        drop(token);
        declined.store(true, Ordering::Relaxed);
        return Box::pin(get_part(ctx, etag, range, slot, declined, doubt)).await;
    }
    if !status.is_success() {
        let body = resp.into_body().bytes().await.unwrap_or_default();
        if token.is_some() && status.as_u16() == 501 {
            return Err(ctx.declined("GET"));
        }
        return Err(status_error(status, &body, "GET", &ctx.url));
    }
    if token.is_some() && matches!(reply.as_deref(), Some("200" | "204" | "206")) {
        let moved = header(&resp, "x-amz-rdma-bytes-transferred")
            .or_else(|| header(&resp, "x-amz-rdma-bytes"))
            .and_then(|v| v.parse::<u64>().ok());
        // Without a byte count, a whole-object GET's CRC64NVME (sent with the reply) is checked
        // over the bytes that landed.
        let sent_crc = header(&resp, "x-amz-checksum-crc64nvme")
            .filter(|c| range.is_none() && !c.contains('-'))
            .map(str::to_string);
        drop(resp);
        drop(token);
        // Never success without proof, or the buffer may hold what an earlier transfer left
        // there: the count of bytes moved, equal to this part; or, when the server sends none,
        // the object's checksum over the landed bytes (a 204 only for an empty part).
        let proof = match (reply.as_deref(), moved, sent_crc) {
            (_, Some(m), _) => Some(m == slot.len as u64),
            (_, None, Some(c)) => Some(b64(crc64(slot.bytes())) == c),
            (Some("204"), None, None) => Some(slot.len == 0),
            (_, None, None) => None,
        };
        match proof {
            Some(true) => return Ok(TransferPath::Rdma),
            Some(false) => {
                return Err(Error::new(
                    ErrorCode::RdmaTransferFailed,
                    format!(
                        "the server answered x-amz-rdma-reply {} but {} where {} bytes were asked for",
                        reply.as_deref().unwrap_or_default(),
                        moved.map_or_else(
                            || "the landed bytes do not match the object's CRC64NVME".to_string(),
                            |m| format!("moved {m} bytes")
                        ),
                        slot.len
                    ),
                )
                .with_url(&ctx.url));
            }
            None if ctx.transport.mode == RdmaMode::Require => {
                return Err(Error::new(
                    ErrorCode::RdmaTransferFailed,
                    format!(
                        "the server answered x-amz-rdma-reply {} with no count of bytes moved and no checksum to verify them by (rdma: 'require')",
                        reply.as_deref().unwrap_or_default()
                    ),
                )
                .with_url(&ctx.url));
            }
            None => {
                // Under `true`: this part again over HTTP, and later ones too (this server
                // gives no proof a transfer worked).
                declined.store(true, Ordering::Relaxed);
                return Box::pin(get_part(ctx, etag, range, slot, declined, doubt)).await;
            }
        }
    }
    if token.is_some() {
        // 501: declined; no reply header: the server ignored the token. Either way the bytes
        // are in the body, and later parts go without a token.
        drop(token);
        if ctx.transport.mode == RdmaMode::Require {
            return Err(ctx.declined("GET"));
        }
        declined.store(true, Ordering::Relaxed);
    }
    let out = slot.bytes();
    let mut at = 0usize;
    let mut body = resp.into_body().bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            doubt.store(true, Ordering::Relaxed);
            Error::new(ErrorCode::Generic, "reading the body failed")
                .with_url(&ctx.url)
                .with_cause(&e)
        })?;
        let end = at + chunk.len();
        if end > out.len() {
            return Err(short(ctx, end, slot.len));
        }
        out[at..end].copy_from_slice(&chunk);
        at = end;
    }
    if at != slot.len {
        return Err(short(ctx, at, slot.len));
    }
    Ok(TransferPath::Http)
}

fn short(ctx: &Ctx, got: usize, want: usize) -> Error {
    Error::new(
        ErrorCode::Generic,
        format!("the server sent {got} bytes for a part of {want}: neither RDMA nor the body delivered it"),
    )
    .with_url(&ctx.url)
}

/// Where a whole object lands.
pub(crate) enum Land<'a> {
    /// A file, written at offsets.
    File(&'a Arc<std::fs::File>, &'a std::path::Path),
    /// Memory the engine allocated (`get`): each part is copied from its pool buffer into its
    /// slot.
    Memory(&'a mut Landing),
    /// Caller-registered memory (`get(…, { into })`): RDMA writes straight into it.
    Registered(&'a mut [u8]),
}

/// Read the object `head` describes into `land`; returns the parts `(offset, len, crc)` and the
/// path that moved the bytes.
pub(crate) async fn read(
    ctx: &Arc<Ctx>,
    head: &Head,
    land: Land<'_>,
    expected: Option<&Checksum>,
    tracker: &Tracker,
    cancel: &CancellationToken,
) -> Result<(Vec<(u64, u64, u64)>, TransferPath)> {
    let parts = plan(head.size, ctx.transport.part_size);
    tracker.plan(head.size, parts.len() as u32);
    let whole = parts.len() == 1;
    let etag = head.etag.as_deref();
    let declined = AtomicBool::new(false);
    let (registered, _busy) = match &land {
        Land::Registered(out) => {
            let (base, offset, busy) = user_registration(out.as_ptr(), out.len())
                .map(|(base, offset, busy)| (SendPtr(base), offset, busy))
                .ok_or_else(|| {
                    Error::invalid_argument("`into` must be a buffer from allocRdmaBuffer")
                })?;
            // One transfer at a time on a caller's registration: this call's parts one after
            // another, and a second call into the same buffer waits for this one.
            (Some((base, offset)), Some(busy.lock_owned().await))
        }
        _ => (None, None),
    };
    let in_flight = if registered.is_some() {
        1
    } else {
        ctx.transport.buffers
    };
    // With neither RDMA nor a caller buffer, parts still need somewhere to land first.
    let scratch_len = ctx.transport.part_size.min(head.size.max(1)) as usize;
    let pool = ctx.transport.pool();
    let (file, memory) = match land {
        Land::File(f, p) => (Some((f.clone(), p.to_path_buf())), None),
        Land::Memory(m) => (None, Some(m.slots(parts.iter().copied())?)),
        Land::Registered(_) => (None, None),
    };
    let memory = memory.as_ref();
    let declined = Arc::new(declined);
    let etag = etag.map(str::to_string);
    // Every part's request runs in a task of its own, tracked: this function returns only once
    // each has ended, so no server can still be writing into a buffer (the caller's, or a pool
    // buffer back in the pool) after the call is over, whatever ended it.
    let tasks = TaskTracker::new();
    let mut jobs = Vec::with_capacity(parts.len());
    for (offset, len) in parts {
        let (pool, file, declined, etag, tasks) = (
            pool.clone(),
            file.clone(),
            declined.clone(),
            etag.clone(),
            tasks.clone(),
        );
        jobs.push(
            async move {
                // Each part's request counts against the engine's one request budget.
                let _permit = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(Error::aborted(&ctx.url)),
                    p = ctx.transport.budget.permit() => p?,
                };
                if cancel.is_cancelled() {
                    return Err(Error::aborted(&ctx.url));
                }
                let range = (!whole).then_some((offset, len));
                let mut crc = crate::checksum::PartCrc::new(expected);
                let mut lease = match (&registered, &pool) {
                    (Some(_), _) => None,
                    (None, Some(p)) => Some(match p.lease().await {
                        Ok(l) => Lease::Pool(l),
                        // Registration failed: RDMA is not usable now (see `unusable`).
                        Err(e) => {
                            ctx.unusable(e, &declined)?;
                            Lease::Heap(vec![0u8; scratch_len])
                        }
                    }),
                    (None, None) => Some(Lease::Heap(vec![0u8; scratch_len])),
                };
                let slot = match (registered, lease.as_mut()) {
                    (Some((base, at)), _) => Slot {
                        base,
                        offset: at + offset as usize,
                        len: len as usize,
                    },
                    (None, Some(l)) => l.slot(len as usize),
                    (None, None) => unreachable!("a part lands in a caller buffer or a lease"),
                };
                // The task owns the landing buffer. A request that ended in doubt (the reply
                // never came) may still have a server writing: its pool buffer is retired, not
                // reused.
                let task_ctx = ctx.clone();
                let (lease, path) = tasks
                    .spawn(async move {
                        let doubt = AtomicBool::new(false);
                        let r =
                            get_part(&task_ctx, etag.as_deref(), range, slot, &declined, &doubt)
                                .await;
                        let lease = match lease {
                            Some(l) if doubt.load(Ordering::Relaxed) => {
                                l.retire();
                                None
                            }
                            l => l,
                        };
                        (lease, r)
                    })
                    .await
                    .map_err(|e| {
                        Error::new(ErrorCode::Generic, format!("RDMA part task failed: {e}"))
                    })?;
                let path = path?;
                tracker.add(len);
                crc.update(slot.bytes());
                if let Some(slots) = memory {
                    let mut out = slots.take(offset)?;
                    if !(out.write(slot.bytes()) && out.finish()) {
                        return Err(short(ctx, slot.len, len as usize));
                    }
                }
                if let Some((file, fpath)) = file {
                    crate::fs::blocking(move || {
                        let _lease = lease;
                        crate::fs::write_all_at(&file, slot.bytes(), offset)
                            .map_err(|e| Error::io(&fpath, &e))
                    })
                    .await?;
                }
                tracker.part_done();
                Ok::<_, Error>(((offset, len, crc.finish().0), path))
            }
            .boxed(),
        );
    }
    let done = all_ended(jobs, in_flight, &tasks).await?;
    let path = if done.iter().all(|(_, p)| *p == TransferPath::Rdma) {
        TransferPath::Rdma
    } else {
        TransferPath::Http
    };
    Ok((done.into_iter().map(|(d, _)| d).collect(), path))
}

/// Run part jobs, `in_flight` at a time, and return only once every request task they spawned
/// on `tasks` has ended, whether they all succeeded or one failed first.
pub(super) async fn all_ended<'a, T>(
    jobs: Vec<futures::future::BoxFuture<'a, Result<T>>>,
    in_flight: usize,
    tasks: &TaskTracker,
) -> Result<Vec<T>> {
    let collected = futures::stream::iter(jobs)
        .buffer_unordered(in_flight)
        .try_collect()
        .await;
    tasks.close();
    tasks.wait().await;
    collected
}

/// Where an upload's bytes come from.
#[derive(Clone)]
pub(crate) enum PutSource {
    /// A file of known size, read part by part into registered buffers.
    File(Arc<std::fs::File>, std::path::PathBuf, u64),
    /// Bytes in memory: sent from where they are when they lie in a caller's RDMA buffer,
    /// copied into registered buffers otherwise.
    Bytes(Bytes),
}

impl PutSource {
    pub(crate) fn size(&self) -> u64 {
        match self {
            PutSource::File(_, _, n) => *n,
            PutSource::Bytes(b) => b.len() as u64,
        }
    }
}

/// Settings of one upload.
pub(crate) struct PutOptions<'a> {
    pub(crate) if_not_exists: bool,
    pub(crate) content_type: Option<&'a str>,
    pub(crate) metadata: &'a BTreeMap<String, String>,
}

/// The outcome of an upload.
pub(crate) struct Put {
    pub(crate) etag: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) parts: u32,
    pub(crate) crc64nvme: u64,
    pub(crate) path: TransferPath,
}

pub(super) fn b64(crc: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// Fill `slot` with the source's bytes at `offset`.
async fn fill(source: &PutSource, offset: u64, slot: Slot) -> Result<()> {
    match source {
        PutSource::Bytes(b) => {
            slot.bytes()
                .copy_from_slice(&b[offset as usize..offset as usize + slot.len]);
            Ok(())
        }
        PutSource::File(file, path, _) => {
            let (file, path) = (file.clone(), path.clone());
            crate::fs::blocking(move || {
                let slot = slot;
                read_exact_at(&file, slot.bytes(), offset).map_err(|e| Error::io(&path, &e))
            })
            .await
        }
    }
}

pub(super) fn already_exists(ctx: &Ctx) -> Error {
    Error::new(
        ErrorCode::AlreadyExists,
        "the object already exists (ifNotExists)",
    )
    .with_url(&ctx.url)
}

pub(super) fn meta_header(key: &str) -> Result<std::borrow::Cow<'static, str>> {
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::invalid_argument(format!(
            "metadata key {key:?}: only letters, digits, '-' and '_' travel in an HTTP header"
        )));
    }
    Ok(format!("x-amz-meta-{}", key.to_ascii_lowercase()).into())
}

/// [`put_part`] in a task of its own, which owns the registered buffer until the server is
/// done with it, whatever happens to the caller.
pub(super) async fn spawn_put(
    ctx: &Arc<Ctx>,
    source: &PutSource,
    range: (u64, u64),
    multipart: Option<(String, String)>,
    headers: Headers,
    declined: &Arc<AtomicBool>,
    tasks: &TaskTracker,
) -> Result<(PartDone, TransferPath)> {
    // The request counts against the engine's one request budget until it has ended.
    let _permit = ctx.transport.budget.permit().await?;
    let (ctx, source, declined) = (ctx.clone(), source.clone(), declined.clone());
    tasks
        .spawn(async move { put_part(&ctx, &source, range, multipart, headers, &declined).await })
        .await
        .map_err(|e| Error::new(ErrorCode::Generic, format!("RDMA part task failed: {e}")))?
}

pub(super) struct PartDone {
    pub(super) etag: Option<String>,
    pub(super) version: Option<String>,
    pub(super) crc: u64,
}

/// PUT one part (or the whole object when `multipart` is `None`): by RDMA from a registered
/// buffer with an empty body, or, once declined, with the bytes in the body.
async fn put_part(
    ctx: &Ctx,
    source: &PutSource,
    (offset, len): (u64, u64),
    multipart: Option<(String, String)>,
    mut headers: Headers,
    declined: &AtomicBool,
) -> Result<(PartDone, TransferPath)> {
    let query = match &multipart {
        Some((n, id)) => vec![("partNumber", n.clone()), ("uploadId", id.clone())],
        None => vec![],
    };
    let what = if multipart.is_some() {
        "UploadPart"
    } else {
        "PUT"
    };
    if ctx.transport.shim.is_none() || len == 0 {
        // No RDMA, or nothing to move (an empty object never carries a token): the part goes
        // straight into the body (a slice of a Buffer, or one read of
        // the file), with no registered buffer in between.
        let body = match source {
            PutSource::Bytes(b) => b.slice(offset as usize..(offset + len) as usize),
            PutSource::File(file, path, _) => {
                read_bytes_at(file.clone(), path.clone(), offset, len).await?
            }
        };
        let crc = crc64(&body);
        headers.push(("x-amz-checksum-crc64nvme".into(), b64(crc)));
        return send_body(ctx, query, headers, body, crc, what).await;
    }
    // The bytes, in registered memory: the caller's own buffer, or a pool buffer filled here.
    let zero_copy = match source {
        PutSource::Bytes(b) => user_registration(b.as_ptr(), b.len()).map(|(base, at, _)| Slot {
            base: SendPtr(base),
            offset: at + offset as usize,
            len: len as usize,
        }),
        PutSource::File(..) => None,
    };
    let mut lease = None;
    let slot = match zero_copy {
        Some(s) => s,
        None => {
            let leased = match ctx.transport.pool() {
                Some(p) if !declined.load(Ordering::Relaxed) => match p.lease().await {
                    Ok(l) => Some(Lease::Pool(l)),
                    // Registration failed: RDMA is not usable now.
                    Err(e) => {
                        ctx.unusable(e, declined)?;
                        None
                    }
                },
                _ => None,
            };
            let mut l = leased.unwrap_or_else(|| Lease::Heap(vec![0u8; len.max(1) as usize]));
            let s = l.slot(len as usize);
            fill(source, offset, s).await?;
            lease = Some(l);
            s
        }
    };
    let crc = crc64(slot.bytes());
    headers.push(("x-amz-checksum-crc64nvme".into(), b64(crc)));
    if let Some(shim) = ctx
        .transport
        .shim
        .as_ref()
        .filter(|_| !declined.load(Ordering::Relaxed))
    {
        let token = match shim.token(slot.base.0, slot.len, slot.offset, OP_PUT) {
            Ok(t) => Some(t),
            Err(e) => {
                ctx.unusable(e, declined)?;
                None
            }
        };
        if let Some(token) = token {
            let mut h = headers.clone();
            h.push(("x-amz-rdma-token".into(), token.as_str().to_string()));
            h.push(("content-length".into(), "0".into()));
            let resp = match ctx
                .request(Method::PUT, query.clone(), h, Bytes::new())
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    // No reply: the server may still be reading the buffer; never reuse it.
                    if let Some(l) = lease.take() {
                        l.retire();
                    }
                    return Err(e);
                }
            };
            drop(token);
            let status = resp.status();
            let reply = header(&resp, "x-amz-rdma-reply").map(str::to_string);
            let stored_crc = header(&resp, "x-amz-checksum-crc64nvme").map(str::to_string);
            let etag = header(&resp, "etag").map(str::to_string);
            let version = header(&resp, "x-amz-version-id").map(str::to_string);
            let body = resp.into_body().bytes().await.unwrap_or_default();
            let code = error_code(&body).unwrap_or_default();
            // Proof the bytes arrived, cheapest first: the reply header; without it, the
            // server's echo of the CRC64NVME it validated; without that, for a whole object, a
            // HEAD whose size and CRC64NVME are ours.
            let proven = status.is_success()
                && (matches!(reply.as_deref(), Some("200" | "204"))
                    || (reply.is_none() && stored_crc.as_deref() == Some(b64(crc).as_str()))
                    || (reply.is_none()
                        && stored_crc.is_none()
                        && multipart.is_none()
                        && stored_as(ctx, len, crc).await));
            if proven {
                return Ok((PartDone { etag, version, crc }, TransferPath::Rdma));
            }
            if status.is_success() && reply.is_none() {
                // Stored, maybe, but nothing proves these bytes: under `true` the part is sent
                // again with its bytes in the body (replacing whatever was stored), never failed.
                if ctx.transport.mode == RdmaMode::Require {
                    return Err(Error::new(
                        ErrorCode::RdmaTransferFailed,
                        format!("{what}: the server answered {status} with no x-amz-rdma-reply and no checksum proving the bytes arrived (rdma: 'require')"),
                    )
                    .with_url(&ctx.url));
                }
                declined.store(true, Ordering::Relaxed);
                let body = Bytes::copy_from_slice(slot.bytes());
                drop(lease);
                return send_body(ctx, query, headers, body, crc, what).await;
            }
            let ignored = reply.is_none()
                && (status.is_success()
                    || matches!(
                        code.as_str(),
                        "BadDigest"
                            | "XAmzContentChecksumMismatch"
                            | "InvalidDigest"
                            | "IncompleteBody"
                    ));
            let is_declined = reply.as_deref() == Some("501") || status.as_u16() == 501 || ignored;
            if !is_declined {
                if opts_conflict(status.as_u16(), &code)
                    && headers.iter().any(|(k, _)| *k == "if-none-match")
                {
                    return Err(already_exists(ctx));
                }
                return Err(status_error(status, &body, what, &ctx.url));
            }
            if ctx.transport.mode == RdmaMode::Require {
                return Err(ctx.declined(what));
            }
            declined.store(true, Ordering::Relaxed);
        }
    }
    // Over HTTP: the same bytes in the body (one copy out of the registered buffer).
    let body = Bytes::copy_from_slice(slot.bytes());
    drop(lease);
    send_body(ctx, query, headers, body, crc, what).await
}

/// Whether the object now stored is `len` bytes with CRC64NVME `crc` (a HEAD that asks for the
/// stored checksums): the proof of an RDMA PUT whose reply carried none.
async fn stored_as(ctx: &Ctx, len: u64, crc: u64) -> bool {
    head(ctx).await.is_ok_and(|h| {
        h.size == len
            && h.offered.iter().any(|c| {
                c.algorithm == Algorithm::Crc64Nvme && c.value == crc.to_be_bytes().as_slice()
            })
    })
}

/// A PUT or UploadPart with the bytes in the body.
async fn send_body(
    ctx: &Ctx,
    query: Vec<(&'static str, String)>,
    headers: Headers,
    body: Bytes,
    crc: u64,
    what: &str,
) -> Result<(PartDone, TransferPath)> {
    let resp = ctx
        .request(Method::PUT, query, headers.clone(), body)
        .await?;
    let status = resp.status();
    let etag = header(&resp, "etag").map(str::to_string);
    let version = header(&resp, "x-amz-version-id").map(str::to_string);
    let body = resp.into_body().bytes().await.unwrap_or_default();
    if !status.is_success() {
        let code = error_code(&body).unwrap_or_default();
        if opts_conflict(status.as_u16(), &code)
            && headers.iter().any(|(k, _)| *k == "if-none-match")
        {
            return Err(already_exists(ctx));
        }
        return Err(status_error(status, &body, what, &ctx.url));
    }
    Ok((PartDone { etag, version, crc }, TransferPath::Http))
}

fn opts_conflict(status: u16, code: &str) -> bool {
    status == 412 || code == "PreconditionFailed"
}
