//! The engine's defaults, for the TypeScript layer's test that both engines use the same ones
//! (test/defaults.test.ts compares them with src/options.ts).

use napi_derive::napi;
use objget_engine::options;

/// The native engine's default for each option that has one.
#[napi(object)]
pub struct NativeDefaults {
    pub part_size: i64,
    pub concurrency: u32,
    pub upload_part_size: i64,
    pub upload_concurrency: u32,
    pub max_retries: u32,
    pub retry_timeout_ms: i64,
    pub initial_backoff_ms: i64,
    pub read_timeout_ms: i64,
}

/// The engine's defaults, from `objget_engine::options`.
#[napi]
pub fn defaults() -> NativeDefaults {
    NativeDefaults {
        part_size: options::DEFAULT_PART_SIZE as i64,
        concurrency: options::DEFAULT_CONCURRENCY as u32,
        upload_part_size: options::DEFAULT_UPLOAD_PART as i64,
        upload_concurrency: options::DEFAULT_UPLOAD_CONCURRENCY as u32,
        max_retries: options::MAX_RETRIES,
        retry_timeout_ms: options::RETRY_TIMEOUT_MS as i64,
        initial_backoff_ms: options::INITIAL_BACKOFF_MS as i64,
        // TODO(merge): options::DEFAULT_READ_TIMEOUT_MS (being added to options.rs by another
        // helper); the engine's read timeout is the literal 60_000 in options.rs on this base.
        read_timeout_ms: 60_000,
    }
}
