//! Azure Blob Storage stores.

use std::sync::Arc;

use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};

use super::{allow_http, build_error, is_true, Backend, Cloud, Stores};
use crate::error::Result;
use crate::locate::Location;
use crate::options::StoreOptions;

impl Stores {
    pub(super) async fn azure(&self, loc: &Location, opts: &StoreOptions) -> Result<Backend> {
        let mut b = MicrosoftAzureBuilder::start(loc, opts)?;
        let endpoint = b
            .get_config_value(&AzureConfigKey::Endpoint)
            .unwrap_or_default();
        let allow = allow_http(
            opts,
            &endpoint,
            &loc.store_url,
            b.get_config_value(&AzureConfigKey::Client(
                object_store::ClientConfigKey::AllowHttp,
            )),
        );
        b = b.with_config(
            AzureConfigKey::Client(object_store::ClientConfigKey::AllowHttp),
            allow.to_string(),
        );
        if let Some(id) = opts.credentials {
            b = b
                .with_credentials(crate::credentials::azure(id).map_err(|e| e.with_url(&loc.url))?);
        }
        let has = |k: AzureConfigKey| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        let credential_type = b
            .get_config_value(&AzureConfigKey::CredentialType)
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("auto"));
        let has_credentials = opts.credentials.is_some()
            || has(AzureConfigKey::AccessKey)
            || has(AzureConfigKey::SasKey)
            || has(AzureConfigKey::Token)
            || (has(AzureConfigKey::ClientId) && has(AzureConfigKey::ClientSecret))
            || has(AzureConfigKey::FederatedTokenFile)
            || is_true(b.get_config_value(&AzureConfigKey::UseAzureCli))
            || has(AzureConfigKey::FabricTokenServiceUrl)
            || credential_type.is_some()
            || is_true(b.get_config_value(&AzureConfigKey::UseEmulator))
            || is_true(b.get_config_value(&AzureConfigKey::SkipSignature));
        if !has_credentials {
            let endpoint = b
                .get_config_value(&AzureConfigKey::MsiEndpoint)
                .unwrap_or_else(|| "http://169.254.169.254".into());
            self.require_metadata(loc, None, &endpoint, "Azure credentials (AZURE_STORAGE_ACCOUNT_KEY, a SAS token, a client secret or a federated token)").await?;
        }
        let store = b.build().map_err(|e| build_error(e, loc))?;
        Ok(Backend::Store(Arc::new(store)))
    }
}
