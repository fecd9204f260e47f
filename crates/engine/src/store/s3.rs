//! S3 stores (and S3-compatible ones: MinIO, R2, …), with what objget's own signed requests
//! need kept beside them.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

use super::{
    allow_http, base_client_options, build_error, configure, connector, is_loopback, is_true,
    Backend, Cloud, RawParts, Stores,
};
use crate::error::{Error, ErrorCode, Result};
use crate::locate::Location;
use crate::options::StoreOptions;

impl Stores {
    pub(super) async fn s3(
        &self,
        loc: &Location,
        opts: &StoreOptions,
        upload_checksum: bool,
    ) -> Result<(Backend, RawParts)> {
        // Ask S3 for its stored checksums on every read (signed, as a default header).
        let mut checksum_mode = reqwest::header::HeaderMap::new();
        checksum_mode.insert(
            "x-amz-checksum-mode",
            reqwest::header::HeaderValue::from_static("ENABLED"),
        );
        let http = Arc::new(Mutex::new(None));
        let client = base_client_options(opts)?.with_default_headers(checksum_mode);
        let b = AmazonS3Builder::new().with_client(
            connector(opts)?.keeping(http.clone()),
            client,
            opts,
        );
        let mut b = configure(b, &opts.config, loc)?;
        // The AWS profile's region and endpoint, where nothing else gives one (an R2 URL names
        // its own endpoint).
        let given = |b: &AmazonS3Builder, k: AmazonS3ConfigKey| {
            b.get_config_value(&k).is_some_and(|v| !v.is_empty())
        };
        if let Some(region) = &opts.profile_region {
            if !given(&b, AmazonS3ConfigKey::Region) {
                b = b.with_config(AmazonS3ConfigKey::Region, region);
            }
        }
        if let Some(endpoint) = &opts.profile_endpoint {
            let url_names_bucket_only =
                loc.store_url.starts_with("s3://") || loc.store_url.starts_with("s3a://");
            if url_names_bucket_only
                && !given(&b, AmazonS3ConfigKey::Endpoint)
                && !given(&b, AmazonS3ConfigKey::S3Endpoint)
            {
                b = b.with_config(AmazonS3ConfigKey::Endpoint, endpoint);
            }
        }
        b = b.url(&loc.store_url);
        if opts.skip_signature {
            b = b.skip_signature();
        }
        // `ifNotExists` for large uploads publishes with a copy completed by a conditional
        // CompleteMultipartUpload (If-None-Match), which S3, R2 and MinIO honour.
        if b.get_config_value(&AmazonS3ConfigKey::CopyIfNotExists)
            .is_none()
        {
            b = b.with_config(AmazonS3ConfigKey::CopyIfNotExists, "multipart");
        }
        // Uploads carry a CRC64NVME the server verifies (S3's own default checksum).
        if upload_checksum && b.get_config_value(&AmazonS3ConfigKey::Checksum).is_none() {
            b = b.with_config(AmazonS3ConfigKey::Checksum, "crc64nvme");
        }
        let endpoint = b
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_default();
        let configured = b.get_config_value(&AmazonS3ConfigKey::Client(
            object_store::ClientConfigKey::AllowHttp,
        ));
        b = b.with_allow_http(allow_http(opts, &endpoint, &loc.store_url, configured));
        // Over TLS the body needs no SHA-256 in the signature: TLS protects it and the server
        // verifies its CRC64NVME (what AWS's own SDKs do). Nor on a loopback endpoint, where no
        // network lies between the bytes and the server to tamper with them. Plain HTTP across
        // a network keeps the signed payload.
        // (The builder reports a default for this key, so "set by the user" is read from the
        // options and the environment.)
        let chosen = std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_some()
            || opts.config.keys().any(|k| {
                matches!(
                    k.parse::<AmazonS3ConfigKey>(),
                    Ok(AmazonS3ConfigKey::UnsignedPayload)
                )
            });
        if (endpoint.is_empty() || endpoint.starts_with("https://") || is_loopback(&endpoint))
            && !chosen
        {
            b = b.with_config(AmazonS3ConfigKey::UnsignedPayload, "true");
        }
        let has = |k: AmazonS3ConfigKey| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        let unsigned = is_true(b.get_config_value(&AmazonS3ConfigKey::SkipSignature));
        // Where the credentials come from, first match wins: the caller's source; static keys
        // (options, then AWS_ACCESS_KEY_ID); a web identity or container credentials named in
        // the options; the AWS SDKs' default chain when the binding set one (profiles, SSO,
        // credential_process, web identity, containers, IMDS); object_store's own providers.
        let explicit = |k: AmazonS3ConfigKey| {
            opts.config
                .keys()
                .any(|name| name.parse::<AmazonS3ConfigKey>().is_ok_and(|p| p == k))
        };
        let source = if unsigned {
            None
        } else if let Some(id) = opts.credentials {
            Some(id)
        } else if has(AmazonS3ConfigKey::AccessKeyId)
            || explicit(AmazonS3ConfigKey::WebIdentityTokenFile)
            || explicit(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
            || explicit(AmazonS3ConfigKey::ContainerCredentialsFullUri)
        {
            None
        } else {
            crate::credentials::aws_default_chain()
        };
        let has_credentials = source.is_some()
            || (has(AmazonS3ConfigKey::AccessKeyId) && has(AmazonS3ConfigKey::SecretAccessKey))
            || has(AmazonS3ConfigKey::WebIdentityTokenFile)
            || has(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
            || has(AmazonS3ConfigKey::ContainerCredentialsFullUri)
            || unsigned;
        if let Some(id) = source {
            b = b.with_credentials(crate::credentials::aws(id).map_err(|e| e.with_url(&loc.url))?);
        }
        if !has_credentials {
            let endpoint = b
                .get_config_value(&AmazonS3ConfigKey::MetadataEndpoint)
                .unwrap_or_else(|| "http://169.254.169.254".into());
            self.require_metadata(loc, Some("AWS_EC2_METADATA_DISABLED"), &endpoint, "AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a web identity or container credentials)").await?;
        }
        let value = |k: &str| {
            AmazonS3ConfigKey::from_str(k)
                .ok()
                .and_then(|k| b.get_config_value(&k))
                .filter(|v| !v.is_empty())
        };
        let unsupported = if value("aws_server_side_encryption").is_some()
            || value("aws_sse_customer_key_base64").is_some()
        {
            Some("server-side encryption settings")
        } else if is_true(value("aws_request_payer")) {
            Some("requester pays")
        } else if is_true(value("aws_skip_signature")) {
            Some("unsigned requests")
        } else {
            None
        };
        let multipart_conditional = b
            .get_config_value(&AmazonS3ConfigKey::CopyIfNotExists)
            .is_some_and(|v| v == "multipart");
        let store = Arc::new(b.build().map_err(|e| build_error(e, loc))?);
        let (http, binder) = http
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Error::new(ErrorCode::Generic, "S3 store built without a client"))?;
        let raw = RawParts {
            store: store.clone(),
            http,
            binder,
            retry: opts.retry_config(),
            unsupported,
            multipart_conditional,
        };
        Ok((Backend::Store(store), raw))
    }
}
