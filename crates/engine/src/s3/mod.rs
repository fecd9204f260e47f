//! objget's own S3 requests, signed with object_store's `AwsAuthorizer` and sent on the store's
//! own HTTP client: `client` signs and sends (and lists keys exactly as stored), `object` reads
//! and writes one object, `multipart` is the multipart upload with its conditional completion.
//! RDMA is a transport these requests use (`crate::rdma`), never the reverse.

mod client;
mod multipart;
mod object;

pub(crate) use client::{error_code, header, status_error, xml_field, Ctx, Headers, S3Raw};
pub(crate) use multipart::upload;
use object::{all_ended, already_exists, b64, meta_header, spawn_put, PartDone};
pub(crate) use object::{head, read, Head, Land, Put, PutOptions, PutSource};
