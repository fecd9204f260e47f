//! objget's own multipart upload: created with a full-object CRC64NVME, parts put
//! concurrently (by RDMA or in HTTP bodies), completed (with a signed `If-None-Match: *` for
//! `ifNotExists`: the conditional multipart object_store does not have) or aborted on any
//! failure. A completion whose reply was lost is recognised as the AWS SDKs do.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use http::Method;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    all_ended, already_exists, b64, error_code, header, meta_header, spawn_put, status_error,
    xml_field, Ctx, PartDone, Put, PutOptions, PutSource,
};
use crate::checksum::Checksum;
use crate::error::{Error, ErrorCode, Result};
use crate::object::plan;
use crate::options::MAX_PARTS;
use crate::progress::Tracker;
use crate::rdma::{user_registration, TransferPath};

/// Upload `source` to `ctx`'s key: one PUT up to the part size, multipart above it.
pub(crate) async fn upload(
    ctx: &Arc<Ctx>,
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
    let part = ctx.transport.part_size.max(size.div_ceil(MAX_PARTS));
    if part > ctx.transport.part_size {
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
        PutSource::Bytes(b) if ctx.transport.shim.is_some() => {
            user_registration(b.as_ptr(), b.len()).map(|(_, _, busy)| busy)
        }
        _ => None,
    };
    let _busy = match &user {
        Some(busy) => Some(busy.clone().lock_owned().await),
        None => None,
    };
    let in_flight = if user.is_some() {
        1
    } else {
        ctx.transport.buffers
    };
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
        if !status.is_success() || error_code(&body).is_some() || !completed {
            let code = error_code(&body).unwrap_or_default();
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
    status.as_u16() == 404 && error_code(&body).as_deref() == Some("NoSuchUpload")
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
