//! S3 over RDMA through NVIDIA cuObject: the object's bytes move by RDMA between the server and
//! registered host memory, while the HTTP request carries only a signed `x-amz-rdma-token`.
//!
//! Wire contract (../shared/specs/rdma.md, section 2): every RDMA request has an empty body and
//! `UNSIGNED-PAYLOAD`, the token among the SigV4 SignedHeaders; GETs are parts of at most 1 GiB,
//! each with its own token and pinned with If-Match; PUTs and UploadParts carry the CRC64NVME of
//! the real bytes, so a server that ignores the token cannot store an empty object in their
//! place. `x-amz-rdma-reply` says what the server did: 200/204/206 done, 501 declined (a GET's
//! bytes then come in the body; a PUT is re-sent with one), absent: the server ignored the token.
//!
//! Under `rdma: true` a declined or unavailable RDMA path falls back to HTTP bodies and the
//! result says `path: 'http'`; under `'require'` it fails with `RdmaUnavailable` or
//! `RdmaDeclined`. Registered buffers come from a pool and always go back to it; tokens are
//! released when their request is over, whatever happened.

mod pool;
mod shim;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use futures::stream::{StreamExt, TryStreamExt};
use futures::FutureExt;
use http::Method;
use object_store::path::Path;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use pool::{Pool, RegBuf};
pub use shim::set_search_path;
use shim::{Shim, OP_GET, OP_PUT};

use crate::checksum::{advertised, crc64, Checksum, Dialect};
use crate::error::{Error, ErrorCode, Result};
use crate::fs::{read_bytes_at, read_exact_at};
use crate::locate::Location;
use crate::object::plan;
use crate::options::{RdmaMode, StoreOptions, MAX_PARTS};
use crate::progress::Tracker;
use crate::s3::{self, header, status_error, xml_field, Headers, Req, S3Raw};

/// Which data path moved an object's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransferPath {
    /// HTTP bodies.
    #[default]
    Http,
    /// RDMA into or out of registered memory.
    Rdma,
}

impl TransferPath {
    /// `"http"` or `"rdma"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Rdma => "rdma",
        }
    }
}

/// Whether RDMA can be used in this process, and if not, why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RdmaStatus {
    /// The shim loaded and the cuObject client is connected.
    pub available: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// `"sdk"` (NVIDIA's library) or `"simulator"` (the project's test double).
    pub backend: Option<String>,
    /// The shim's path.
    pub shim: Option<String>,
    /// Live registrations (pool and caller buffers).
    pub registrations: u64,
    /// Tokens minted and not yet released (0 between transfers).
    pub tokens: u64,
}

/// Load the shim if that was not tried yet, and report.
pub fn rdma_status() -> RdmaStatus {
    match shim::shim() {
        Ok(s) => {
            let (registrations, tokens) = s.stats();
            RdmaStatus {
                available: true,
                reason: None,
                backend: Some(s.backend.clone()),
                shim: Some(s.path.display().to_string()),
                registrations,
                tokens,
            }
        }
        Err(shim::Unavailable(reason)) => RdmaStatus {
            reason: Some(reason),
            ..RdmaStatus::default()
        },
    }
}

/// Caller-held registered memory (`allocRdmaBuffer`): RDMA reads land in it with no copy.
pub struct RdmaBuffer {
    buf: RegBuf,
}

/// A live caller buffer: its length, and the lock that keeps it to one transfer at a time
/// (one registered buffer must not carry two transfers at once).
struct UserReg {
    len: usize,
    busy: Arc<tokio::sync::Mutex<()>>,
}

/// Start address → every live caller buffer.
static USER: Mutex<BTreeMap<usize, UserReg>> = Mutex::new(BTreeMap::new());

impl RdmaBuffer {
    /// Allocate and register `len` bytes (page-aligned, zeroed). Fails with `RdmaUnavailable`
    /// and the reason when RDMA cannot be used here.
    pub fn alloc(len: usize) -> Result<Self> {
        let shim = shim::shim()
            .map_err(|shim::Unavailable(r)| Error::new(ErrorCode::RdmaUnavailable, r))?;
        let buf = RegBuf::new(&shim, len)?;
        let busy = Arc::new(tokio::sync::Mutex::new(()));
        user_map().insert(buf.base() as usize, UserReg { len, busy });
        Ok(Self { buf })
    }

    /// The first byte.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.buf.base()
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Never: an RDMA buffer has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == 0
    }
}

impl Drop for RdmaBuffer {
    fn drop(&mut self) {
        user_map().remove(&(self.buf.base() as usize));
    }
}

fn user_map() -> std::sync::MutexGuard<'static, BTreeMap<usize, UserReg>> {
    USER.lock().unwrap_or_else(|p| p.into_inner())
}

/// The caller buffer holding `[ptr, ptr + len)`: its start, the offset of `ptr` in it, and its
/// one-transfer-at-a-time lock.
fn user_registration(
    ptr: *const u8,
    len: usize,
) -> Option<(*mut u8, usize, Arc<tokio::sync::Mutex<()>>)> {
    let addr = ptr as usize;
    let map = user_map();
    let (&base, reg) = map.range(..=addr).next_back()?;
    (addr + len <= base + reg.len).then(|| (base as *mut u8, addr - base, reg.busy.clone()))
}

/// A raw pointer moved between tasks; every user writes a disjoint range.
#[derive(Clone, Copy)]
struct SendPtr(*mut u8);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// One call's RDMA context: the store's signer, the key, and the shim when RDMA is usable.
#[derive(Clone)]
pub(crate) struct Ctx {
    shim: Option<Arc<Shim>>,
    raw: S3Raw,
    key: Path,
    url: String,
    mode: RdmaMode,
    part_size: u64,
    buffers: usize,
}

impl Ctx {
    /// `None` when the call does not ask for RDMA or must go over HTTP (unavailable under
    /// `true`); `RdmaUnavailable` under `'require'`.
    pub(crate) fn plan(
        loc: &Location,
        url: &str,
        store: &StoreOptions,
        raw: impl FnOnce() -> Result<S3Raw>,
    ) -> Result<Option<Ctx>> {
        let o = store.rdma;
        o.validate(loc, store)?;
        if o.mode == RdmaMode::Off {
            return Ok(None);
        }
        let shim = match shim::shim() {
            Ok(s) => s,
            Err(shim::Unavailable(reason)) if o.mode == RdmaMode::Require => {
                return Err(Error::new(ErrorCode::RdmaUnavailable, reason).with_url(url))
            }
            Err(_) => return Ok(None),
        };
        Ok(Some(Ctx {
            shim: Some(shim),
            raw: raw()?,
            key: loc.path.clone(),
            url: url.to_string(),
            mode: o.mode,
            part_size: o.part_size(),
            buffers: o.buffers(),
        }))
    }

    /// A context that reads over HTTP into caller memory (`into` without RDMA).
    pub(crate) fn http_only(loc: &Location, url: &str, store: &StoreOptions, raw: S3Raw) -> Ctx {
        Self::http(loc, url, raw, store.rdma.part_size(), store.rdma.buffers())
    }

    /// A context for objget's own signed S3 requests with the bytes in HTTP bodies: the
    /// conditional multipart upload object_store does not have.
    pub(crate) fn http(
        loc: &Location,
        url: &str,
        raw: S3Raw,
        part_size: u64,
        concurrency: usize,
    ) -> Ctx {
        Ctx {
            shim: None,
            raw,
            key: loc.path.clone(),
            url: url.to_string(),
            mode: RdmaMode::Prefer,
            part_size,
            buffers: concurrency.max(1),
        }
    }

    /// Sign and send one request for this call's key.
    async fn request(
        &self,
        method: Method,
        query: Vec<(&'static str, String)>,
        headers: Headers,
        body: Bytes,
    ) -> Result<object_store::client::HttpResponse> {
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

    fn pool(&self) -> Option<Arc<Pool>> {
        let shim = self.shim.as_ref()?;
        Some(Pool::shared(shim, self.part_size as usize, self.buffers))
    }

    /// The shim failed to register memory or mint a token: under `'require'` that is
    /// `RdmaUnavailable`; under `true` this transfer goes on over HTTP.
    fn unusable(&self, e: Error, declined: &AtomicBool) -> Result<()> {
        if self.mode == RdmaMode::Require {
            return Err(Error::new(ErrorCode::RdmaUnavailable, e.to_string()).with_url(&self.url));
        }
        declined.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn declined(&self, what: &str) -> Error {
        Error::new(
            ErrorCode::RdmaDeclined,
            format!("{what}: the server did not accept the RDMA token (rdma: 'require')"),
        )
        .with_url(&self.url)
    }
}

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

/// Where a part lands: `len` bytes at `offset` within the registration starting at `base`.
#[derive(Clone, Copy)]
struct Slot {
    base: SendPtr,
    offset: usize,
    len: usize,
}

impl Slot {
    // The memory is not owned by the slot: a slot is a handle to a disjoint range of a live
    // registration (a leased pool buffer or a caller's RDMA buffer), used by one part at a time.
    #[allow(clippy::mut_from_ref)]
    fn bytes(&self) -> &mut [u8] {
        // SAFETY: a slot names memory of a live registration, and parts never overlap.
        unsafe { std::slice::from_raw_parts_mut(self.base.0.add(self.offset), self.len) }
    }
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
    let token = match &ctx.shim {
        Some(shim) if !declined.load(Ordering::Relaxed) => {
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
    if token.is_some() && status.as_u16() == 501 && ctx.mode != RdmaMode::Require {
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
        drop(resp);
        drop(token);
        // The server must say it moved exactly this part (a 204 only for an empty one):
        // otherwise the buffer may hold what an earlier transfer left there.
        let evidence = match (reply.as_deref(), moved) {
            (Some("204"), None) => slot.len == 0,
            (_, Some(m)) => m == slot.len as u64,
            (_, None) => false,
        };
        if !evidence {
            return Err(Error::new(
                ErrorCode::RdmaTransferFailed,
                format!(
                    "the server answered x-amz-rdma-reply {} with {} bytes moved where {} were asked for",
                    reply.as_deref().unwrap_or_default(),
                    moved.map_or_else(|| "no count of".to_string(), |m| m.to_string()),
                    slot.len
                ),
            )
            .with_url(&ctx.url));
        }
        return Ok(TransferPath::Rdma);
    }
    if token.is_some() {
        // 501: declined; no reply header: the server ignored the token. Either way the bytes
        // are in the body, and later parts go without a token.
        drop(token);
        if ctx.mode == RdmaMode::Require {
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
    /// Memory the engine allocated (`get`): each part is copied from its pool buffer.
    Memory(&'a mut [u8]),
    /// Caller-registered memory (`get(…, { into })`): RDMA writes straight into it.
    Registered(&'a mut [u8]),
}

/// Read the object `head` describes into `land`; returns the parts `(offset, len, crc)` and the
/// path that moved the bytes.
pub(crate) async fn read(
    ctx: &Ctx,
    head: &Head,
    land: Land<'_>,
    expected: Option<&Checksum>,
    tracker: &Tracker,
    cancel: &CancellationToken,
) -> Result<(Vec<(u64, u64, u64)>, TransferPath)> {
    let parts = plan(head.size, ctx.part_size);
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
    let in_flight = if registered.is_some() { 1 } else { ctx.buffers };
    // With neither RDMA nor a caller buffer, parts still need somewhere to land first.
    let scratch_len = ctx.part_size.min(head.size.max(1)) as usize;
    let pool = ctx.pool();
    let (file, memory) = match land {
        Land::File(f, p) => (Some((f.clone(), p.to_path_buf())), None),
        Land::Memory(m) => (None, Some(SendPtr(m.as_mut_ptr()))),
        Land::Registered(_) => (None, None),
    };
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
                if let Some(ptr) = memory {
                    // SAFETY: `memory` is the whole object's buffer; parts are disjoint.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            slot.base.0,
                            ptr.0.add(offset as usize),
                            len as usize,
                        )
                    };
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
async fn all_ended<'a, T>(
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

/// A part's landing memory: a registered pool buffer, or plain memory when RDMA is not used.
enum Lease {
    Pool(pool::Lease),
    Heap(Vec<u8>),
}

impl Lease {
    /// Never reuse this buffer: a server may still be writing into it.
    fn retire(self) {
        if let Lease::Pool(l) = self {
            l.retire();
        }
    }

    fn slot(&mut self, len: usize) -> Slot {
        let base = match self {
            Lease::Pool(l) => l.base(),
            Lease::Heap(v) => v.as_mut_ptr(),
        };
        Slot {
            base: SendPtr(base),
            offset: 0,
            len,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Uploads

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
    fn size(&self) -> u64 {
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

fn b64(crc: u64) -> String {
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

/// Upload `source` to `ctx`'s key: one PUT up to the part size, multipart above it.
pub(crate) async fn upload(
    ctx: &Ctx,
    source: PutSource,
    opts: PutOptions<'_>,
    tracker: &Tracker,
    cancel: &CancellationToken,
) -> Result<Put> {
    if cancel.is_cancelled() {
        return Err(Error::aborted(&ctx.url));
    }
    let size = source.size();
    // Parts stay within S3's 10,000 and the registered buffer they pass through.
    let part = ctx.part_size.max(size.div_ceil(MAX_PARTS));
    if part > ctx.part_size {
        return Err(Error::invalid_argument(format!(
            "{size} bytes need parts of {part} bytes to stay within 10,000 parts; raise rdmaPartSize"
        )));
    }
    let parts = plan(size, part);
    tracker.plan(size, parts.len() as u32);
    let mut common = Vec::new();
    if let Some(ct) = opts.content_type {
        common.push(("content-type".into(), ct.to_string()));
    }
    for (k, v) in opts.metadata {
        common.push((meta_header(k)?, v.clone()));
    }
    let declined = Arc::new(AtomicBool::new(false));
    let tasks = TaskTracker::new();
    // Bytes in a caller's RDMA buffer go from there, one transfer at a time on it.
    let user = match &source {
        PutSource::Bytes(b) if ctx.shim.is_some() => {
            user_registration(b.as_ptr(), b.len()).map(|(_, _, busy)| busy)
        }
        _ => None,
    };
    let _busy = match &user {
        Some(busy) => Some(busy.clone().lock_owned().await),
        None => None,
    };
    let in_flight = if user.is_some() { 1 } else { ctx.buffers };
    if parts.len() == 1 {
        let mut headers = common.clone();
        if opts.if_not_exists {
            headers.push(("if-none-match".into(), "*".into()));
        }
        // Once sent, an RDMA PUT has no body left to cut short: an abort now may still find
        // the object stored by the server.
        let (done, path) =
            spawn_put(ctx, &source, (0, size), None, headers, &declined, &tasks).await?;
        tracker.add(size);
        tracker.part_done();
        return Ok(Put {
            etag: done.etag,
            version: done.version,
            parts: 1,
            crc64nvme: done.crc,
            path,
        });
    }
    // Multipart: created, parts put concurrently, completed (If-None-Match: * for
    // ifNotExists, signed like every other header), or aborted on any failure.
    let mut create = common.clone();
    create.push(("x-amz-checksum-algorithm".into(), "CRC64NVME".into()));
    create.push(("x-amz-checksum-type".into(), "FULL_OBJECT".into()));
    let resp = ctx
        .request(
            Method::POST,
            vec![("uploads", String::new())],
            create,
            Bytes::new(),
        )
        .await?;
    let status = resp.status();
    let body = resp.into_body().bytes().await.unwrap_or_default();
    if !status.is_success() {
        return Err(status_error(
            status,
            &body,
            "CreateMultipartUpload",
            &ctx.url,
        ));
    }
    let upload_id = xml_field(&body, "UploadId").ok_or_else(|| {
        Error::new(
            ErrorCode::Generic,
            "CreateMultipartUpload answered without an UploadId",
        )
        .with_url(&ctx.url)
    })?;
    let outcome = async {
        let mut jobs = Vec::with_capacity(parts.len());
        for (i, &range) in parts.iter().enumerate() {
            let (source, declined, upload_id, tasks) = (&source, &declined, &upload_id, &tasks);
            jobs.push(async move {
                // An abort stops the parts not yet started; those in flight end in their
                // tasks, and the upload is aborted once they have.
                if cancel.is_cancelled() {
                    return Err(Error::aborted(&ctx.url));
                }
                let part_no = (i + 1).to_string();
                let q = (part_no, upload_id.clone());
                let (done, path) =
                    spawn_put(ctx, source, range, Some(q), vec![], declined, tasks).await?;
                tracker.add(range.1);
                tracker.part_done();
                Ok::<_, Error>((i + 1, range.1, done, path))
            }.boxed());
        }
        // Every part request has ended before the upload is completed or aborted (a part
        // still uploading during an abort may survive it).
        let mut done = all_ended(jobs, in_flight, &tasks).await?;
        done.sort_by_key(|d| d.0);
        let mut xml = String::from("<CompleteMultipartUpload>");
        let mut crcs = Vec::with_capacity(done.len());
        let mut at = 0;
        for (n, len, d, _) in &done {
            let etag = d.etag.as_deref().unwrap_or_default();
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag><ChecksumCRC64NVME>{}</ChecksumCRC64NVME></Part>",
                xml_escape(etag),
                b64(d.crc)
            ));
            crcs.push((at, *len, d.crc));
            at += len;
        }
        xml.push_str("</CompleteMultipartUpload>");
        let whole = crate::checksum::combine(crate::checksum::Algorithm::Crc64Nvme, &mut crcs);
        let whole = crc_u64(&whole);
        let mut headers = vec![("x-amz-checksum-crc64nvme".into(), b64(whole)), ("x-amz-checksum-type".into(), "FULL_OBJECT".into())];
        if opts.if_not_exists {
            headers.push(("if-none-match".into(), "*".into()));
        }
        let query = vec![("uploadId", upload_id.clone())];
        let resp = ctx
            .request(Method::POST, query, headers, Bytes::from(xml))
            .await?;
        let status = resp.status();
        let (etag, version) = (
            header(&resp, "etag").map(str::to_string),
            header(&resp, "x-amz-version-id").map(str::to_string),
        );
        // A body that cannot be read is no proof of success: S3 may answer 200 and put its
        // error in the body.
        let body = resp.into_body().bytes().await.map_err(|e| {
            Error::new(ErrorCode::Generic, "reading CompleteMultipartUpload's answer failed")
                .with_url(&ctx.url)
                .with_cause(&e)
        })?;
        let path = if done.iter().all(|d| d.3 == TransferPath::Rdma) {
            TransferPath::Rdma
        } else {
            TransferPath::Http
        };
        let completed = xml_field(&body, "ETag").is_some() || etag.is_some();
        if !status.is_success() || s3::error_code(&body).is_some() || !completed {
            let code = s3::error_code(&body).unwrap_or_default();
            let precondition = status.as_u16() == 412 || code == "PreconditionFailed";
            // A retried completion whose first reply was lost finds the upload gone
            // (NoSuchUpload) or, under If-None-Match, the object it made (412). When the upload
            // is gone and the object in place is the one these parts make, it succeeded.
            if code == "NoSuchUpload" || (opts.if_not_exists && precondition) {
                let gone = code == "NoSuchUpload" || upload_gone(ctx, &upload_id).await;
                let ours = if gone {
                    stored_is_ours(ctx, &done, whole).await
                } else {
                    None
                };
                if let Some((etag, version)) = ours {
                    return Ok(Put {
                        etag,
                        version,
                        parts: done.len() as u32,
                        crc64nvme: whole,
                        path,
                    });
                }
            }
            if opts.if_not_exists && precondition {
                return Err(already_exists(ctx));
            }
            return Err(status_error(status, &body, "CompleteMultipartUpload", &ctx.url));
        }
        Ok(Put {
            etag: etag.or_else(|| xml_field(&body, "ETag").map(|e| e.replace("&quot;", "\""))),
            version,
            parts: done.len() as u32,
            crc64nvme: whole,
            path,
        })
    }
    .await;
    if outcome.is_err() {
        abort(ctx, &upload_id).await;
    }
    outcome
}

/// Whether a multipart upload no longer exists (ListParts answers NoSuchUpload): completed or
/// aborted.
async fn upload_gone(ctx: &Ctx, upload_id: &str) -> bool {
    let query = vec![
        ("max-parts", "1".to_string()),
        ("uploadId", upload_id.to_string()),
    ];
    let Ok(resp) = ctx.request(Method::GET, query, vec![], Bytes::new()).await else {
        return false;
    };
    let status = resp.status();
    let body = resp.into_body().bytes().await.unwrap_or_default();
    status.as_u16() == 404 && s3::error_code(&body).as_deref() == Some("NoSuchUpload")
}

/// The multipart ETag S3 gives the object these parts complete: the MD5 of the parts' MD5s,
/// `-N`. `None` where a part's ETag is not its MD5 (KMS, SSE-C).
fn multipart_etag<A, B, D>(done: &[(A, B, PartDone, D)]) -> Option<String> {
    use md5::Digest as _;
    let mut md5 = md5::Md5::new();
    for d in done {
        let hex = d.2.etag.as_deref()?.trim_matches('"');
        if hex.len() != 32 {
            return None;
        }
        for i in (0..32).step_by(2) {
            md5.update([u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()?]);
        }
    }
    let sum: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{sum}-{}", done.len()))
}

/// The ETag and version of the object at the upload's key when it is the one these parts make
/// (its multipart ETag or its CRC64NVME `whole` matches): how the AWS SDKs recognise a
/// completion whose reply was lost.
async fn stored_is_ours<A, B, D>(
    ctx: &Ctx,
    done: &[(A, B, PartDone, D)],
    whole: u64,
) -> Option<(Option<String>, Option<String>)> {
    let resp = ctx
        .request(Method::HEAD, vec![], vec![], Bytes::new())
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let etag = header(&resp, "etag").map(str::to_string);
    let by_etag = multipart_etag(done).is_some_and(|want| {
        etag.as_deref()
            .is_some_and(|e| e.trim_matches('"').eq_ignore_ascii_case(&want))
    });
    let by_crc = header(&resp, "x-amz-checksum-crc64nvme") == Some(b64(whole).as_str());
    let version = header(&resp, "x-amz-version-id").map(str::to_string);
    (by_etag || by_crc).then_some((etag, version))
}

/// Abort a multipart upload; a failure here leaves what S3's lifecycle rules clean up.
pub(crate) async fn abort(ctx: &Ctx, upload_id: &str) {
    let query = vec![("uploadId", upload_id.to_string())];
    let _ = ctx
        .request(Method::DELETE, query, vec![], Bytes::new())
        .await;
}

fn crc_u64(c: &Checksum) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c.value[..8]);
    u64::from_be_bytes(b)
}

fn already_exists(ctx: &Ctx) -> Error {
    Error::new(
        ErrorCode::AlreadyExists,
        "the object already exists (ifNotExists)",
    )
    .with_url(&ctx.url)
}

fn meta_header(key: &str) -> Result<std::borrow::Cow<'static, str>> {
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
async fn spawn_put(
    ctx: &Ctx,
    source: &PutSource,
    range: (u64, u64),
    multipart: Option<(String, String)>,
    headers: Headers,
    declined: &Arc<AtomicBool>,
    tasks: &TaskTracker,
) -> Result<(PartDone, TransferPath)> {
    let (ctx, source, declined) = (ctx.clone(), source.clone(), declined.clone());
    tasks
        .spawn(async move { put_part(&ctx, &source, range, multipart, headers, &declined).await })
        .await
        .map_err(|e| Error::new(ErrorCode::Generic, format!("RDMA part task failed: {e}")))?
}

struct PartDone {
    etag: Option<String>,
    version: Option<String>,
    crc: u64,
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
    if ctx.shim.is_none() {
        // No RDMA: the part goes straight into the body (a slice of a Buffer, or one read of
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
            let leased = match ctx.pool() {
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
            let code = s3::error_code(&body).unwrap_or_default();
            let accepted = status.is_success()
                && (matches!(reply.as_deref(), Some("200" | "204"))
                // No reply header, but the stored bytes carry our checksum: they arrived.
                || (reply.is_none() && stored_crc.as_deref() == Some(b64(crc).as_str())));
            if accepted {
                return Ok((PartDone { etag, version, crc }, TransferPath::Rdma));
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
            if ctx.mode == RdmaMode::Require {
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
        let code = s3::error_code(&body).unwrap_or_default();
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

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multipart_etag_is_the_md5_of_the_part_md5s() {
        let part = |etag: &str| {
            (
                0,
                0,
                PartDone {
                    etag: Some(etag.to_string()),
                    version: None,
                    crc: 0,
                },
                (),
            )
        };
        let done = [
            part("\"0cc175b9c0f1b6a831c399e269772661\""),
            part("92eb5ffee6ae2fec3ad71c777531578f"),
        ];
        assert_eq!(
            multipart_etag(&done).as_deref(),
            Some("96e024ba2074fe77e8e965ba43a704be-2")
        );
        // A part ETag that is not an MD5 (KMS, SSE-C): no multipart ETag to compare.
        assert_eq!(multipart_etag(&[part("\"abc\"")]), None);
    }
}
