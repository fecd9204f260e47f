//! Google Cloud Storage stores.

use std::sync::Arc;

use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

use super::{allow_http, build_error, is_true, Backend, Cloud, Stores};
use crate::error::Result;
use crate::locate::Location;
use crate::options::StoreOptions;

impl Stores {
    pub(super) async fn gcs(&self, loc: &Location, opts: &StoreOptions) -> Result<Backend> {
        let mut b = GoogleCloudStorageBuilder::start(loc, opts)?;
        // An emulator's base URL: `google_base_url`, or inside the service-account key
        // (gcs_base_url).
        let base_url = b
            .get_config_value(&GoogleConfigKey::BaseUrl)
            .or_else(|| {
                b.get_config_value(&GoogleConfigKey::ServiceAccountKey)
                    .and_then(|k| serde_json::from_str::<serde_json::Value>(&k).ok())
                    .and_then(|v| v.get("gcs_base_url")?.as_str().map(str::to_string))
            })
            .unwrap_or_default();
        let configured = b.get_config_value(&GoogleConfigKey::Client(
            object_store::ClientConfigKey::AllowHttp,
        ));
        let allow = allow_http(opts, &base_url, &loc.store_url, configured);
        b = b.with_config(
            GoogleConfigKey::Client(object_store::ClientConfigKey::AllowHttp),
            allow.to_string(),
        );
        if let Some(id) = opts.credentials {
            b = b.with_credentials(crate::credentials::gcp(id).map_err(|e| e.with_url(&loc.url))?);
        }
        let has = |k: GoogleConfigKey| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        let has_credentials = opts.credentials.is_some()
            || has(GoogleConfigKey::ServiceAccount)
            || has(GoogleConfigKey::ServiceAccountKey)
            || has(GoogleConfigKey::ApplicationCredentials)
            || has(GoogleConfigKey::BearerToken)
            || is_true(b.get_config_value(&GoogleConfigKey::SkipSignature));
        // Application default credentials where gcloud writes them: object_store reads the
        // well-known file under $HOME (%APPDATA% on Windows) itself, but not the one under
        // CLOUDSDK_CONFIG, gcloud's own override of its directory, which is handed over here.
        let (adc_found, adc_path) = if has_credentials {
            (false, None)
        } else {
            gcloud_adc()
        };
        if let Some(path) = adc_path {
            b = b.with_config(GoogleConfigKey::ApplicationCredentials, path);
        }
        if !has_credentials && !adc_found {
            self.require_metadata(loc, Some("NO_GCE_CHECK"), &gce_metadata_endpoint(), "Google credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, GOOGLE_SERVICE_ACCOUNT or GOOGLE_SERVICE_ACCOUNT_KEY)").await?;
        }
        let store = b.build().map_err(|e| build_error(e, loc))?;
        Ok(Backend::Store(Arc::new(store)))
    }
}

/// Where gcloud keeps application default credentials: whether the well-known file object_store
/// reads itself exists, and the path of one under `CLOUDSDK_CONFIG` (which it does not read)
/// when `GOOGLE_APPLICATION_CREDENTIALS` does not name another.
fn gcloud_adc() -> (bool, Option<String>) {
    const FILE: &str = "application_default_credentials.json";
    if let Some(dir) = std::env::var_os("CLOUDSDK_CONFIG").filter(|d| !d.is_empty()) {
        let path = std::path::Path::new(&dir).join(FILE);
        if path.is_file() {
            return (true, Some(path.to_string_lossy().into_owned()));
        }
    }
    let (var, dir) = if cfg!(windows) {
        ("APPDATA", "gcloud")
    } else {
        ("HOME", ".config/gcloud")
    };
    let found = std::env::var_os(var)
        .is_some_and(|h| std::path::Path::new(&h).join(dir).join(FILE).is_file());
    (found, None)
}

/// The GCE metadata server object_store asks (GCE_METADATA_HOST, GCE_METADATA_ROOT,
/// GCE_METADATA_IP, else the link-local address).
fn gce_metadata_endpoint() -> String {
    ["GCE_METADATA_HOST", "GCE_METADATA_ROOT", "GCE_METADATA_IP"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|h| !h.is_empty()))
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| "http://169.254.169.254".into())
}
