//! `ifNotExists` above one part where objget's own conditional multipart does not apply: the
//! parts go to a hidden staging key beside the destination, and a conditional server-side copy
//! publishes it (S3: a multipart copy completed with If-None-Match; GCS: generation match 0;
//! Azure: If-None-Match; files: a hard link). The staging object is always removed.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{Attributes, ObjectStore, ObjectStoreExt};

use super::multipart::{multipart, Parts};
use super::{Target, UploadResult};
use crate::engine::Engine;
use crate::error::{Error, ErrorCode, Result};
use crate::locate::{Location, Scheme};
use crate::options::StoreOptions;
use crate::store::Backend;

impl Engine {
    /// The store that makes a conditional copy (publishing a staged upload, or `copy` with
    /// `ifNotExists`): on S3 one without upload checksums (MinIO wants a checksum on every part
    /// of such an upload, object_store's UploadPartCopy sends none).
    pub(crate) async fn publisher(
        &self,
        store: &Arc<dyn ObjectStore>,
        url: &str,
        opts: &StoreOptions,
    ) -> Result<Arc<dyn ObjectStore>> {
        let loc = Location::parse(url)?;
        if loc.scheme != Scheme::S3 {
            return Ok(store.clone());
        }
        match self.stores().without_upload_checksum(&loc, opts).await? {
            Backend::Store(store) => Ok(store),
            _ => Ok(store.clone()),
        }
    }

    /// Upload `parts` to a staging key, then publish it at `path` unless an object is there.
    pub(super) async fn staged(
        &self,
        t: &Target<'_>,
        path: &Path,
        parts: &mut Parts,
        attributes: Attributes,
    ) -> Result<UploadResult> {
        let staging = staging_path(path);
        let r = multipart(t, &staging, parts, attributes).await;
        // An abort stops the multipart upload before its completion is sent (completion is
        // never cancelled), and the upload is already aborted: no staging object exists, so
        // there is nothing to remove and the abort settles one request sooner.
        if let Err(e) = &r {
            if e.code() == ErrorCode::Aborted {
                return r;
            }
        }
        let published = match r {
            Ok(r) => match self.publisher(t.store, t.url, &t.opts.store).await {
                Ok(publisher) => publisher
                    .copy_if_not_exists(&staging, path)
                    .await
                    .map(|()| r)
                    .map_err(|e| Error::from_store(e, t.url)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let _ = t.store.delete(&staging).await;
        let mut r = published?;
        // The copy's ETag is the destination's: read it back.
        if let Ok(meta) = t.store.head(path).await {
            r.etag = meta.e_tag;
            r.version = meta.version;
        }
        Ok(r)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_keys_sit_hidden_beside_the_destination() {
        let s = staging_path(&Path::from("a/b/model.bin"));
        assert!(s.as_ref().starts_with("a/b/.model.bin.objget-upload-"));
        let s = staging_path(&Path::from("top.bin"));
        assert!(s.as_ref().starts_with(".top.bin.objget-upload-"));
    }
}
