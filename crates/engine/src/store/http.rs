//! Plain HTTP(S) stores (object_store's HTTP store, for URLs without a query string).

use std::sync::Arc;

use object_store::http::HttpBuilder;

use super::{allow_http, base_client_options, build_error, connector, Backend};
use crate::error::Result;
use crate::locate::Location;
use crate::options::StoreOptions;

pub(super) fn store(loc: &Location, opts: &StoreOptions) -> Result<Backend> {
    let client =
        base_client_options(opts)?.with_allow_http(allow_http(opts, "", &loc.store_url, None));
    let store = HttpBuilder::new()
        .with_http_connector(connector(opts)?)
        .with_url(&loc.store_url)
        .with_client_options(client)
        .with_retry(opts.retry_config())
        .build()
        .map_err(|e| build_error(e, loc))?;
    Ok(Backend::Store(Arc::new(store)))
}
