//! objget's own S3 requests, signed with object_store's `AwsAuthorizer` and sent on the store's
//! own HTTP client: the RDMA requests, the conditional multipart upload and ListObjectsV2 all
//! go through this client.

mod client;

pub(crate) use client::{error_code, header, status_error, xml_field, Headers, Req, S3Raw};
