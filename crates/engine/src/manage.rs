//! Managing objects: exists, remove, list and copy.
//!
//! Every operation works on an object_store store: the cloud stores, and `LocalFileSystem` for
//! local paths. A URL with a query string (presigned, SAS) is read-only here: `exists` works,
//! the rest is `NotSupported`.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::engine::Engine;
use crate::error::{Error, ErrorCode, Result};
use crate::fs::absolute;
use crate::locate::{Location, Scheme};
use crate::object::ObjectInfo;
use crate::options::StoreOptions;
use crate::store::Backend;

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
pub const URL_KEY: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
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

impl Engine {
    /// The store and key that write operations use for `loc`.
    pub(crate) async fn writable(
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
            let publisher = self.publisher(&store, to, opts).await?;
            publisher.copy_if_not_exists(&src, &dst).await
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
}
