//! The header-capturing connector: object_store's HTTP client with the headers and status of
//! each reply recorded for [`capture`] (object_store keeps only size, ETag and version of a
//! reply; the checksum headers are dropped).

use std::sync::{Arc, Mutex};

use reqwest::header::HeaderMap;

use super::client::{Binder, Connector};

/// Reply headers captured for the reads made inside [`capture`].
#[derive(Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Option<(HeaderMap, u16)>>>);

impl Seen {
    pub(crate) fn take(&self) -> Option<(HeaderMap, u16)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

tokio::task_local! {
    static SEEN: Seen;
}

/// Run `fut`, recording the headers and status of the last reply any request inside it got.
pub(crate) async fn capture<F: std::future::Future>(seen: Seen, fut: F) -> F::Output {
    SEEN.scope(seen, fut).await
}

/// Where a [`HeaderSpy`] keeps the client it made last, with a [`Binder`] for its settings.
pub(crate) type Kept = Arc<Mutex<Option<(object_store::client::HttpClient, Binder)>>>;

/// object_store's HTTP client (built by `store::client`), with reply headers recorded for
/// [`capture`] (object_store keeps only size, ETag and version of a reply; the checksum headers
/// are dropped).
#[derive(Debug, Default)]
pub(crate) struct HeaderSpy {
    connector: Connector,
    /// Where to keep the client it makes (objget's own signed S3 requests share it), with a
    /// [`Binder`] for the same settings. The last one made is the store's own: a builder first
    /// connects its credential provider's.
    keep: Option<Kept>,
}

impl HeaderSpy {
    pub(crate) fn new(connector: Connector) -> Self {
        Self {
            connector,
            keep: None,
        }
    }

    pub(crate) fn keeping(mut self, slot: Kept) -> Self {
        self.keep = Some(slot);
        self
    }
}

impl object_store::client::HttpConnector for HeaderSpy {
    fn connect(
        &self,
        options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let inner = self.connector.connect(options)?;
        let client = object_store::client::HttpClient::new(SpyService(inner));
        if let Some(slot) = &self.keep {
            let binder = Binder::new(options.clone(), self.connector.tls.clone());
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((client.clone(), binder));
        }
        Ok(client)
    }
}

#[derive(Debug)]
struct SpyService(object_store::client::HttpClient);

#[async_trait::async_trait]
impl object_store::client::HttpService for SpyService {
    async fn call(
        &self,
        req: object_store::client::HttpRequest,
    ) -> std::result::Result<object_store::client::HttpResponse, object_store::client::HttpError>
    {
        let resp = match self.0.execute(req).await {
            Ok(resp) => resp,
            // A refused certificate is refused again on every retry: make it one object_store
            // does not retry.
            Err(e) if crate::error::certificate_problem(&e).is_some() => {
                return Err(object_store::client::HttpError::new(
                    object_store::client::HttpErrorKind::Unknown,
                    e,
                ));
            }
            Err(e) => return Err(e),
        };
        let _ = SEEN.try_with(|s| {
            *s.0.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((resp.headers().clone(), resp.status().as_u16()));
        });
        Ok(resp)
    }
}
