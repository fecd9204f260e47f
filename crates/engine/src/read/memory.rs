//! Reads into memory (`get`): a byte range in one request, or a whole object whose parts land
//! in their slots of one buffer allocated without zero fill (`crate::landing`).

use std::time::Instant;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use futures::FutureExt;

use crate::budget::Budget;
use crate::checksum::PartCrc;
use crate::error::Result;
use crate::landing::{Landing, PartOut};
use crate::object::ByteRange;
use crate::options::TransferOptions;
use crate::progress::Tracker;
use crate::rdma::TransferPath;

use super::parts::{open, run_parts};
use super::source::{Read, Source};
use super::verify::verify_memory;
use super::{check_len, cut_short, TransferResult};

/// A byte range read into memory, in one request. Finishes `tracker`.
pub(crate) async fn range(
    budget: &Budget,
    source: &Source,
    url: &str,
    r: ByteRange,
    tracker: &Tracker,
) -> Result<Vec<u8>> {
    let _permit = budget.permit().await?;
    let read = match source.read(url, Some(r), None).await {
        Ok(read) => read,
        // The last n bytes of an empty object are no bytes. HTTP cannot say so
        // (S3 answers `Content-Range: bytes 0--1/0`, others 416): what the
        // object's size says decides.
        Err(e) if matches!(r, ByteRange::Suffix(_)) => {
            return match source.head(url).await {
                Ok(info) if info.size == 0 => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    tracker.plan(read.len, 1);
    let mut out = Landing::new(read.len)?;
    {
        let slots = out.slots([(0, read.len)])?;
        fill(read.body, slots.take(0)?, tracker, url, &mut PartCrc::None).await?;
    }
    let out = out.into_vec()?;
    tracker.finish();
    Ok(out)
}

/// A whole object read into memory: large ones as parallel parts written straight into their
/// slices of one buffer. Finishes `tracker`.
pub(crate) async fn whole(
    budget: &Budget,
    source: &Source,
    url: &str,
    t: TransferOptions,
    tracker: &Tracker,
    started: Instant,
) -> Result<(Vec<u8>, TransferResult)> {
    let opened = open(budget, source, url, t, false).await?;
    let seen_etag = opened.etag.clone().or_else(|| opened.first.etag.clone());
    let size = opened.first.size;
    let rest = opened.rest(t.part_size);
    tracker.plan(size, 1 + rest.len() as u32);
    let mut out = Landing::new(size)?;
    // Every part's slot in the one buffer, taken by the part that fills it.
    let slots = out.slots(std::iter::once((0, opened.first.len)).chain(rest.iter().copied()))?;
    let expected = opened.expected.clone();
    let deliver = |offset: u64, len: u64, read: Read| {
        let slot = slots.take(offset);
        let expected = expected.as_ref();
        async move {
            check_len(&read, len, url)?;
            let mut crc = PartCrc::new(expected);
            fill(read.body, slot?, tracker, url, &mut crc).await?;
            Ok(crc.finish().0)
        }
        .boxed()
    };
    let etag = opened.etag.clone();
    let (first, permit) = (opened.first, opened.permit);
    let mut done = run_parts(
        budget,
        source,
        url,
        etag.as_deref(),
        Some((first, permit)),
        &rest,
        t.concurrency,
        tracker,
        &deliver,
    )
    .await?;
    drop(slots);
    let out = out.into_vec()?;
    let checksum = verify_memory(expected.as_ref(), &mut done, &out, url)?;
    tracker.finish();
    let result = TransferResult {
        bytes: out.len() as u64,
        etag: seen_etag,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        parts: done.len() as u32,
        checksum,
        resumed_bytes: 0,
        path: TransferPath::Http,
    };
    Ok((out, result))
}

/// Copy a body into `out`, which it must fill exactly.
async fn fill(
    mut body: BoxStream<'static, Result<Bytes>>,
    mut out: PartOut<'_>,
    tracker: &Tracker,
    url: &str,
    crc: &mut PartCrc,
) -> Result<()> {
    while let Some(c) = body.next().await {
        let c = c?;
        if !out.write(&c) {
            let got = (out.written() + c.len()) as u64;
            return Err(cut_short(url, out.len() as u64, got));
        }
        crc.update(&c);
        tracker.add(c.len() as u64);
    }
    let (want, got) = (out.len() as u64, out.written() as u64);
    if !out.finish() {
        return Err(cut_short(url, want, got));
    }
    Ok(())
}
