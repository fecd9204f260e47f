//! The engine and its façade: one store cache and one request budget shared by every
//! operation. Each read parses its URL, lets [`Engine::route`] choose its path once, and calls
//! the read path (`read`); uploads live in `write`, listings, copies and removals in `manage`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::budget::Budget;
use crate::checksum::{ChecksumMode, Dialect};
use crate::error::{Error, ErrorCode, Result};
use crate::locate::{Location, Scheme};
use crate::object::{ByteRange, ObjectInfo};
use crate::options::{CallOptions, RdmaMode, RdmaOptions, StoreOptions, REQUEST_BUDGET};
use crate::progress::Tracker;
use crate::read::{self, cancellable, Batch, Item, Route, Source, TransferResult};
use crate::store::{Backend, Stores};

/// The engine: a store cache, the shared request budget, and the operations.
///
/// Memory is bounded by design rather than by a budget: file transfers stream every chunk to a
/// per-file writer queue of bounded length, and `get` writes parts straight into the one buffer
/// it returns.
#[derive(Debug)]
pub struct Engine {
    pub(crate) stores: Stores,
    pub(crate) requests: Budget,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// A new engine with an empty store cache.
    pub fn new() -> Self {
        Self {
            stores: Stores::new(),
            requests: Budget::new(REQUEST_BUDGET),
        }
    }

    pub(crate) fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The path a read of `loc` takes: RDMA when `rdma` is given (the read may use it) and asks
    /// for it and the store can take it, else the store, query URL or file that serves `loc`.
    async fn route(
        &self,
        loc: &Location,
        url: &str,
        opts: &StoreOptions,
        rdma: Option<&RdmaOptions>,
    ) -> Result<Route> {
        if let Some(rdma) = rdma {
            if let Some(ctx) = self.rdma_ctx(loc, url, rdma, opts).await? {
                return Ok(Route::Rdma(ctx));
            }
        }
        Ok(Route::Source(self.source(loc, opts).await?))
    }

    /// The store, query URL or file that serves `loc`.
    async fn source(&self, loc: &Location, opts: &StoreOptions) -> Result<Source> {
        Ok(match self.stores.backend(loc, opts).await? {
            Backend::Store(store) => {
                let dialect = if loc.scheme == Scheme::S3 {
                    Dialect::S3
                } else {
                    Dialect::Other
                };
                Source::Store(store, loc.path.clone(), dialect)
            }
            Backend::Query(client, retry) => Source::Query(client, retry),
            Backend::File => Source::File(loc.file.clone().unwrap_or_default()),
        })
    }

    /// The RDMA context of a call, when it asks for RDMA and may use it.
    pub(crate) async fn rdma_ctx(
        &self,
        loc: &Location,
        url: &str,
        rdma: &RdmaOptions,
        store: &StoreOptions,
    ) -> Result<Option<std::sync::Arc<crate::s3::Ctx>>> {
        if rdma.mode == RdmaMode::Off {
            return Ok(None);
        }
        let raw = async {
            if loc.scheme == Scheme::S3 {
                self.stores.s3_raw(loc, store).await
            } else {
                Err(Error::new(ErrorCode::Generic, "no S3 signer"))
            }
        };
        crate::s3::Ctx::plan(loc, url, rdma, store, &self.requests, raw).await
    }

    /// Size, ETag, modification time and version of an object.
    pub async fn head(&self, url: &str, opts: &StoreOptions) -> Result<ObjectInfo> {
        let loc = Location::parse(url)?;
        self.source(&loc, opts).await?.head(url).await
    }

    /// Read an object (or a range of it) into memory. Whole large objects come as parallel
    /// parts written straight into their slices of one buffer.
    pub async fn get(
        &self,
        url: &str,
        range: Option<ByteRange>,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>> {
        opts.transfer.validate()?;
        if range.is_some() && opts.transfer.checksum == ChecksumMode::Required {
            return Err(Error::invalid_argument(
                "checksum 'required' verifies whole objects; a byte range cannot be verified",
            ));
        }
        if let Some(ByteRange::Bounded { length: 0, .. } | ByteRange::Suffix(0)) = range {
            return Ok(Vec::new());
        }
        let work = async {
            let loc = Location::parse(url)?;
            if range.is_some() && opts.rdma.mode == RdmaMode::Require {
                return Err(Error::invalid_argument(
                    "rdma reads whole objects; a byte range goes over HTTP (rdma: true)",
                ));
            }
            let route = self
                .route(
                    &loc,
                    url,
                    &opts.store,
                    range.is_none().then_some(&opts.rdma),
                )
                .await?;
            let tracker = Tracker::new(opts.progress.clone(), None);
            let budget = &self.requests;
            Ok(match (route, range) {
                (Route::Rdma(ctx), _) => {
                    read::rdma_get(&ctx, opts.transfer, &tracker, cancel)
                        .await?
                        .0
                }
                (Route::Source(source), Some(r)) => {
                    read::range(budget, &source, url, r, &tracker).await?
                }
                (Route::Source(source), None) => {
                    let started = Instant::now();
                    read::whole(budget, &source, url, opts.transfer, &tracker, started)
                        .await?
                        .0
                }
            })
        };
        cancellable(cancel, url, work).await
    }

    /// Read a whole object into memory, with the transfer's result (`path` says whether RDMA
    /// moved it).
    pub async fn get_detailed(
        &self,
        url: &str,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<(Vec<u8>, TransferResult)> {
        opts.transfer.validate()?;
        let work = async {
            let loc = Location::parse(url)?;
            let tracker = Tracker::new(opts.progress.clone(), None);
            let started = Instant::now();
            match self.route(&loc, url, &opts.store, Some(&opts.rdma)).await? {
                Route::Rdma(ctx) => read::rdma_get(&ctx, opts.transfer, &tracker, cancel).await,
                Route::Source(source) => {
                    read::whole(
                        &self.requests,
                        &source,
                        url,
                        opts.transfer,
                        &tracker,
                        started,
                    )
                    .await
                }
            }
        };
        cancellable(cancel, url, work).await
    }

    /// Read a whole S3 object into caller-registered memory (`allocRdmaBuffer`): by RDMA with
    /// no copy on the client, or over HTTP into the same memory when RDMA is off, unavailable
    /// under `rdma: true`, or declined.
    pub async fn get_into(
        &self,
        url: &str,
        into: &mut [u8],
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<TransferResult> {
        opts.transfer.validate()?;
        let work = async {
            let loc = Location::parse(url)?;
            if loc.scheme != Scheme::S3 {
                return Err(Error::invalid_argument(
                    "`into` takes an S3 URL: registered buffers are for S3 over RDMA",
                ));
            }
            let ctx = match self.route(&loc, url, &opts.store, Some(&opts.rdma)).await? {
                Route::Rdma(ctx) => ctx,
                Route::Source(_) => crate::s3::Ctx::http_only(
                    &loc,
                    url,
                    &opts.rdma,
                    &self.requests,
                    self.stores.s3_raw(&loc, &opts.store).await?,
                ),
            };
            read::rdma_into(&ctx, url, into, opts, cancel).await
        };
        // Not dropped on abort (parts check `cancel` and the requests in flight end first):
        // a server may be writing into the caller's memory until then.
        if cancel.is_cancelled() {
            return Err(Error::aborted(url));
        }
        work.await
    }

    /// Download an object to `dest` (parent directories are created). On failure `dest` is
    /// untouched and nothing is left behind (with `resume`, the part file and its journal stay
    /// for the next attempt unless the object changed or failed its checksum).
    pub async fn download(
        &self,
        url: &str,
        dest: &Path,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Result<TransferResult> {
        self.download_item(url, dest, opts, cancel, None, None)
            .await
    }

    async fn download_item(
        &self,
        url: &str,
        dest: &Path,
        opts: &CallOptions,
        cancel: &CancellationToken,
        index: Option<u32>,
        batch: Option<(&Batch, usize)>,
    ) -> Result<TransferResult> {
        opts.transfer.validate()?;
        let started = Instant::now();
        // Not dropped on abort: waits on the network give way to `cancel` where they are (see
        // `cancellable`), but file work runs to its end, so that when the call returns no
        // write of it is still in flight (the writer thread has drained and written its last
        // journal record, a rename has happened or not).
        let work = async {
            let loc = Location::parse(url)?;
            let target = read::prepare(dest, opts).await?;
            let route = self.route(
                &loc,
                url,
                &opts.store,
                target.rdma_may().then_some(&opts.rdma),
            );
            let route = cancellable(cancel, url, route).await?;
            let item = Item {
                tracker: Tracker::new(opts.progress.clone(), index),
                batch,
                started,
            };
            match route {
                Route::Rdma(ctx) => {
                    let rdma = read::rdma_download(&ctx, &target, item, cancel);
                    cancellable(cancel, url, rdma).await
                }
                Route::Source(source) => {
                    read::download(&self.requests, &source, url, target, item, cancel).await
                }
            }
        };
        if cancel.is_cancelled() {
            return Err(Error::aborted(url));
        }
        work.await
    }

    /// Download many objects with at most `concurrency` objects in flight (their parts share the
    /// engine's request budget). Every item runs to its own end; outcomes come back in input
    /// order. Progress reports carry the item's index.
    ///
    /// Finished files go through one group commit (`read::Batch`): an item's slot takes the
    /// next object as soon as its bytes are written and verified, the files are synced together
    /// and each renamed into place only once durable, and the directories are fsynced once each
    /// at the end. Durable when the call returns, and no destination name ever points at bytes
    /// that are not.
    pub async fn download_many(
        &self,
        items: Vec<(String, PathBuf)>,
        concurrency: usize,
        opts: &CallOptions,
        cancel: &CancellationToken,
    ) -> Vec<Result<TransferResult>> {
        let concurrency = concurrency.max(1);
        let commit = Batch::new(opts.transfer.durable);
        let batch = &commit;
        let mut outcomes: Vec<(usize, Result<TransferResult>)> =
            futures::stream::iter(items.into_iter().enumerate())
                .map(|(i, (url, dest))| async move {
                    let item = Some((batch, i));
                    let r = self
                        .download_item(&url, &dest, opts, cancel, Some(i as u32), item)
                        .await;
                    (i, r)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        outcomes.sort_by_key(|(i, _)| *i);
        let mut outcomes: Vec<_> = outcomes.into_iter().map(|(_, r)| r).collect();
        commit.finish(&mut outcomes).await;
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::TransferOptions;
    use std::sync::Arc;

    fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn small_parts() -> CallOptions {
        CallOptions {
            transfer: TransferOptions {
                part_size: 64 * 1024,
                concurrency: 3,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn file_get_in_parts_ranges_and_download() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_001u32).map(|i| (i * 31 % 251) as u8).collect();
        let src = write(dir.path(), "src.bin", &data);
        let url = src.to_str().unwrap();
        let e = Engine::new();
        let o = small_parts();
        let c = CancellationToken::new();
        assert_eq!(e.get(url, None, &o, &c).await.unwrap(), data);
        let r = ByteRange::Bounded {
            offset: 10,
            length: 20,
        };
        assert_eq!(e.get(url, Some(r), &o, &c).await.unwrap(), &data[10..30]);
        assert_eq!(
            e.get(url, Some(ByteRange::Suffix(7)), &o, &c)
                .await
                .unwrap(),
            &data[data.len() - 7..]
        );
        assert_eq!(
            e.get(url, Some(ByteRange::From(299_990)), &o, &c)
                .await
                .unwrap(),
            &data[299_990..]
        );
        assert_eq!(e.head(url, &o.store).await.unwrap().size, 300_001);
        let dest = dir.path().join("out/nested/copy.bin");
        let res = e.download(url, &dest, &o, &c).await.unwrap();
        assert_eq!(res.bytes, 300_001);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(
            std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
            1,
            "no temporaries left"
        );
    }

    #[tokio::test]
    async fn bad_transfer_options_are_invalid_arguments() {
        let e = Engine::new();
        let o = CallOptions {
            transfer: TransferOptions {
                part_size: 1,
                concurrency: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        let err = e
            .get("/x", None, &o, &CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
    }

    #[tokio::test]
    async fn missing_file_is_not_found_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::new();
        let dest = dir.path().join("d.bin");
        let err = e
            .download(
                dir.path().join("nope").to_str().unwrap(),
                &dest,
                &CallOptions::default(),
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn cancelled_before_start_is_aborted() {
        let dir = tempfile::tempdir().unwrap();
        let src = write(dir.path(), "s", b"abc");
        let c = CancellationToken::new();
        c.cancel();
        let err = Engine::new()
            .download(
                src.to_str().unwrap(),
                &dir.path().join("d"),
                &CallOptions::default(),
                &c,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Aborted);
        assert!(!dir.path().join("d").exists());
    }

    #[tokio::test]
    async fn download_many_keeps_input_order_and_reports_each() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", b"aaa");
        let items = vec![
            (a.to_str().unwrap().to_string(), dir.path().join("o/a")),
            (
                dir.path().join("missing").to_str().unwrap().to_string(),
                dir.path().join("o/b"),
            ),
            ("ftp://x/y".to_string(), dir.path().join("o/c")),
        ];
        let out = Engine::new()
            .download_many(items, 2, &CallOptions::default(), &CancellationToken::new())
            .await;
        assert_eq!(out[0].as_ref().unwrap().bytes, 3);
        assert_eq!(out[1].as_ref().unwrap_err().code(), ErrorCode::NotFound);
        assert_eq!(
            out[2].as_ref().unwrap_err().code(),
            ErrorCode::UnsupportedScheme
        );
        assert!(!dir.path().join("o/b").exists());
    }

    #[tokio::test]
    async fn progress_reports_end_with_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let src = write(dir.path(), "p", &vec![7u8; 200_000]);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut o = small_parts();
        o.progress = Some(Arc::new(move |p| sink.lock().unwrap().push(p)));
        Engine::new()
            .get(src.to_str().unwrap(), None, &o, &CancellationToken::new())
            .await
            .unwrap();
        let last = *seen.lock().unwrap().last().unwrap();
        assert_eq!(last.bytes, 200_000);
        assert_eq!(last.total, Some(200_000));
        assert_eq!((last.parts_done, last.parts_total), (4, 4));
    }
}
