//! The parts of a read: the first request (which learns the object's size and ETag, and reads
//! a small object whole), then ranged parts pinned to that ETag, at most `concurrency` at once,
//! each holding a request from the engine's budget.

use futures::future::BoxFuture;
use futures::stream::{StreamExt, TryStreamExt};
use futures::FutureExt;
use tokio::sync::SemaphorePermit;

use crate::budget::Budget;
use crate::checksum::{choose, Checksum, ChecksumMode};
use crate::error::{ErrorCode, Result};
use crate::object::{plan, ByteRange};
use crate::options::TransferOptions;
use crate::progress::Tracker;

use super::sink::DonePart;
use super::source::{Read, Source};

/// The first request: the first part (or the whole object), its pinned ETag, and the
/// checksum to verify. `whole`: the whole object in one read, its bytes in order.
pub(super) async fn open<'a>(
    budget: &'a Budget,
    source: &Source,
    url: &str,
    t: TransferOptions,
    whole: bool,
) -> Result<Opened<'a>> {
    let permit = budget.permit().await?;
    // A store that withholds its checksums on a ranged read (S3) sends them on a whole one: ask
    // for the whole object and read its first part from the reply, so a small object costs one
    // request (no HEAD) and a large one learns its CRC without a HEAD too.
    let unranged = whole || (t.checksum != ChecksumMode::Off && source.withholds_on_ranges());
    let mut first = match (whole, unranged) {
        (true, _) => source.read(url, None, None).await?,
        (false, true) => first_part(source.read(url, None, None).await?, t.part_size),
        (false, false) => read_first(source, url, t.part_size).await?,
    };
    let etag = pin(&first);
    if etag.is_none() && first.len < first.size {
        // No strong ETag to pin parts to: one whole read instead.
        drop(first);
        first = source.read(url, None, None).await?;
    }
    let mut offered = std::mem::take(&mut first.offered);
    let no_crc = !offered.iter().any(|c| c.algorithm.is_crc());
    if no_crc && t.checksum != ChecksumMode::Off {
        // S3 advertises its CRCs on a HEAD, not on a ranged read, even one that covered the
        // whole object: a CRC is computed with hardware instructions as the bytes stream (and
        // combined from parallel parts), where MD5 or SHA-256 costs several times more CPU.
        let extra = match (etag.as_deref(), whole_withheld(&first)) {
            // An unranged reply carried whatever the store advertises: a HEAD adds nothing.
            (Some(_), _) if unranged => Vec::new(),
            (Some(e), _) => source.head_pinned(url, e).await?.1,
            // The whole object is already here: if the HEAD fails (the object was replaced
            // meanwhile), the reply's own checksums still describe the bytes it carries.
            (None, Some(e)) => source
                .head_pinned(url, e)
                .await
                .map(|(_, c)| c)
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        offered.extend(extra);
        offered.sort_by_key(|c| c.algorithm.rank());
        offered.dedup_by_key(|c| c.algorithm);
    }
    let expected = choose(t.checksum, &offered, url)?;
    Ok(Opened {
        first,
        permit,
        etag,
        expected,
    })
}

/// Fetch parts: `first` (already open, with its request permit) and every part of `rest`,
/// pinned to `etag`, at most `concurrency` at once; `deliver` takes each part's open read
/// and returns its CRC. Returns `(offset, length, crc)` for every part.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_parts<'a>(
    budget: &'a Budget,
    source: &'a Source,
    url: &'a str,
    etag: Option<&'a str>,
    first: Option<(Read, SemaphorePermit<'a>)>,
    rest: &[(u64, u64)],
    concurrency: usize,
    tracker: &'a Tracker,
    deliver: &'a (dyn Fn(u64, u64, Read) -> BoxFuture<'a, Result<u64>> + Sync),
) -> Result<Vec<DonePart>> {
    let mut jobs: Vec<BoxFuture<'a, Result<DonePart>>> = Vec::with_capacity(1 + rest.len());
    if let Some((read, permit)) = first {
        jobs.push(
            async move {
                let len = read.len;
                let crc = deliver(0, len, read).await?;
                drop(permit);
                tracker.part_done();
                Ok((0, len, crc))
            }
            .boxed(),
        );
    }
    for &(offset, len) in rest {
        jobs.push(
            async move {
                let _req = budget.permit().await?;
                let range = ByteRange::Bounded {
                    offset,
                    length: len,
                };
                let read = source.read(url, Some(range), etag).await?;
                let crc = deliver(offset, len, read).await?;
                tracker.part_done();
                Ok((offset, len, crc))
            }
            .boxed(),
        );
    }
    futures::stream::iter(jobs)
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// The first reply of a transfer and what it decided.
pub(super) struct Opened<'a> {
    pub(super) first: Read,
    pub(super) permit: SemaphorePermit<'a>,
    /// The strong ETag later parts are pinned to; `None`: `first` is the whole object.
    pub(super) etag: Option<String>,
    /// The checksum to verify.
    pub(super) expected: Option<Checksum>,
}

impl Opened<'_> {
    /// The parts after the first.
    pub(super) fn rest(&self, part_size: u64) -> Vec<(u64, u64)> {
        if self.etag.is_none() {
            return Vec::new();
        }
        plan(self.first.size, part_size)
            .into_iter()
            .filter(|p| p.0 >= self.first.len)
            .collect()
    }
}

/// The first request: the first part if the object is large, the whole object if it is not.
/// An empty object answers a ranged request with 416, and a server without ranges answers
/// with the whole body: both are read in one stream.
async fn read_first(source: &Source, url: &str, part_size: u64) -> Result<Read> {
    let range = ByteRange::Bounded {
        offset: 0,
        length: part_size,
    };
    match source.read(url, Some(range), None).await {
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::InvalidArgument | ErrorCode::NotSupported
            ) =>
        {
            source.read(url, None, None).await
        }
        other => other,
    }
}

/// The first part of a whole-object reply: its first `part_size` bytes when it is larger and
/// later parts can be pinned to its strong ETag (the rest of the reply is dropped unread, which
/// closes its connection), else all of it.
fn first_part(mut read: Read, part_size: u64) -> Read {
    let pinnable = read.etag.as_deref().is_some_and(|e| !e.starts_with("W/"));
    if read.len <= part_size || !pinnable {
        return read;
    }
    read.len = part_size;
    read.body = futures::stream::unfold(Some((read.body, part_size)), |state| async move {
        let (mut body, left) = state?;
        match body.next().await? {
            Ok(mut chunk) => {
                let take = left.min(chunk.len() as u64);
                chunk.truncate(take as usize);
                // At the end of the part the rest of the body is dropped here, at once.
                let next = (take < left).then(|| (body, left - take));
                Some((Ok(chunk), next))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
    .boxed();
    read
}

/// The strong ETag of a whole object read in one reply that withheld the store's checksums
/// (an S3 ranged read): a HEAD pinned to it learns them for the same bytes.
fn whole_withheld(first: &Read) -> Option<&str> {
    first
        .etag
        .as_deref()
        .filter(|e| first.withheld && !e.starts_with("W/") && first.len == first.size)
}

/// The ETag later parts can be pinned to: a strong one (If-Match compares strongly, so a weak
/// validator would fail every part), and only if there are later parts at all.
fn pin(first: &Read) -> Option<String> {
    first
        .etag
        .clone()
        .filter(|e| !e.starts_with("W/") && first.len < first.size)
}

#[cfg(test)]
mod tests {
    use futures::stream::StreamExt;

    use super::*;

    fn read(len: u64, etag: &str, withheld: bool) -> Read {
        Read {
            size: 1000,
            etag: Some(etag.to_string()),
            len,
            offered: Vec::new(),
            withheld,
            body: futures::stream::empty().boxed(),
        }
    }

    fn chunked(size: u64, etag: &str) -> Read {
        let chunks: Vec<Result<bytes::Bytes>> = (0..size)
            .step_by(7)
            .map(|i| Ok(bytes::Bytes::from(vec![i as u8; 7.min(size - i) as usize])))
            .collect();
        Read {
            size,
            etag: Some(etag.to_string()),
            len: size,
            offered: Vec::new(),
            withheld: false,
            body: futures::stream::iter(chunks).boxed(),
        }
    }

    async fn body_of(read: Read) -> Vec<u8> {
        read.body.map(|c| c.unwrap().to_vec()).concat().await
    }

    #[tokio::test]
    async fn a_whole_reply_is_cut_to_its_first_part_only_when_parts_can_be_pinned() {
        // Larger than a part, strong ETag: the first 10 bytes, the chunk across the boundary cut.
        let cut = first_part(chunked(30, "\"e\""), 10);
        assert_eq!((cut.len, cut.size), (10, 30));
        assert_eq!(pin(&cut).as_deref(), Some("\"e\""));
        let whole = body_of(chunked(30, "\"e\"")).await;
        assert_eq!(body_of(cut).await, whole[..10]);
        // A part boundary on a chunk boundary.
        assert_eq!(
            body_of(first_part(chunked(30, "\"e\""), 14)).await,
            whole[..14]
        );
        // No larger than a part, or a weak ETag (parts could not be pinned): all of it.
        for read in [
            first_part(chunked(30, "\"e\""), 30),
            first_part(chunked(30, "W/\"e\""), 10),
        ] {
            assert_eq!(read.len, 30);
            assert_eq!(body_of(read).await, whole);
        }
    }

    #[test]
    fn a_whole_object_whose_reply_withheld_checksums_asks_a_head() {
        // S3's ranged reply covering the whole object: a HEAD pinned to its ETag.
        assert_eq!(whole_withheld(&read(1000, "\"e\"", true)), Some("\"e\""));
        // A reply that carried the checksums (a 200), a first part only (the parts' HEAD
        // covers it), or a weak ETag (If-Match would fail): none.
        assert_eq!(whole_withheld(&read(1000, "\"e\"", false)), None);
        assert_eq!(whole_withheld(&read(10, "\"e\"", true)), None);
        assert_eq!(whole_withheld(&read(1000, "W/\"e\"", true)), None);
        assert_eq!(pin(&read(1000, "\"e\"", true)), None);
        assert_eq!(pin(&read(10, "\"e\"", true)).as_deref(), Some("\"e\""));
    }
}
