//! Whole-object reads through the RDMA module: parts land in its pool buffers (copied into
//! memory or written at their file offsets), or straight in caller-registered memory.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::checksum::{choose, Checksum};
use crate::error::{Error, Result};
use crate::landing::Landing;
use crate::options::{CallOptions, TransferOptions};
use crate::progress::Tracker;
use crate::rdma::TransferPath;

use super::file::{settle, Item, Target};
use super::sink::TempFile;
use super::verify::{verify_file, verify_memory};
use super::TransferResult;

/// `get` over RDMA: parts land in pool buffers and are copied into the returned buffer.
/// Finishes `tracker`.
pub(crate) async fn get(
    ctx: &std::sync::Arc<crate::s3::Ctx>,
    t: TransferOptions,
    tracker: &Tracker,
    cancel: &CancellationToken,
) -> Result<(Vec<u8>, TransferResult)> {
    let started = Instant::now();
    let head = crate::s3::head(ctx).await?;
    let expected = choose(t.checksum, &head.offered, ctx.url())?;
    let mut out = Landing::new(head.size)?;
    let (mut done, path) = crate::s3::read(
        ctx,
        &head,
        crate::s3::Land::Memory(&mut out),
        expected.as_ref(),
        tracker,
        cancel,
    )
    .await?;
    let out = out.into_vec()?;
    let checksum = verify_memory(expected.as_ref(), &mut done, &out, ctx.url())?;
    tracker.finish();
    Ok((out, whole_result(head, done.len(), checksum, path, started)))
}

/// `download` over RDMA: parts land in pool buffers and are written at their offsets.
pub(crate) async fn download(
    ctx: &std::sync::Arc<crate::s3::Ctx>,
    target: &Target,
    item: Item<'_>,
    cancel: &CancellationToken,
) -> Result<TransferResult> {
    let (place, t) = (&target.place, target.t);
    let Item {
        tracker,
        batch,
        started,
    } = item;
    let url = ctx.url();
    let head = crate::s3::head(ctx).await?;
    let expected = choose(t.checksum, &head.offered, url)?;
    let dest = &place.dest;
    let temp = TempFile::create(place, t.durable).await?;
    temp.set_len(head.size).await?;
    let (mut done, path) = crate::s3::read(
        ctx,
        &head,
        crate::s3::Land::File(temp.file(), &temp.path),
        expected.as_ref(),
        &tracker,
        cancel,
    )
    .await?;
    let checksum = verify_file(&temp, expected.as_ref(), &mut done, None, url).await?;
    settle(temp, dest, batch, head.size).await?;
    tracker.finish();
    Ok(whole_result(head, done.len(), checksum, path, started))
}

/// A whole S3 object into caller-registered memory (`allocRdmaBuffer`): by RDMA with no copy
/// on the client, or as HTTP bodies into the same memory (`ctx` from `Ctx::http_only`).
pub(crate) async fn into(
    ctx: &std::sync::Arc<crate::s3::Ctx>,
    url: &str,
    into: &mut [u8],
    opts: &CallOptions,
    cancel: &CancellationToken,
) -> Result<TransferResult> {
    let started = Instant::now();
    let tracker = Tracker::new(opts.progress.clone(), None);
    let head = crate::s3::head(ctx).await?;
    if head.size > into.len() as u64 {
        return Err(Error::invalid_argument(format!(
            "the object has {} bytes and `into` holds {}",
            head.size,
            into.len()
        ))
        .with_url(url));
    }
    let expected = choose(opts.transfer.checksum, &head.offered, url)?;
    let target = &mut into[..head.size as usize];
    let (mut done, path) = crate::s3::read(
        ctx,
        &head,
        crate::s3::Land::Registered(target),
        expected.as_ref(),
        &tracker,
        cancel,
    )
    .await?;
    let checksum = verify_memory(expected.as_ref(), &mut done, target, url)?;
    tracker.finish();
    Ok(whole_result(head, done.len(), checksum, path, started))
}

/// The result of a whole-object read by the RDMA module (RDMA or HTTP bodies).
fn whole_result(
    head: crate::s3::Head,
    parts: usize,
    checksum: Option<Checksum>,
    path: TransferPath,
    started: Instant,
) -> TransferResult {
    TransferResult {
        bytes: head.size,
        etag: head.etag,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        parts: parts as u32,
        checksum,
        resumed_bytes: 0,
        path,
    }
}
