//! The engine's defaults, for the TypeScript layer's test that both engines use the same ones
//! (test/defaults.test.ts compares them with src/options.ts).

use napi_derive::napi;
use objget_engine::options;

/// The native engine's default for each option that has one, and its download limits.
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
    pub connect_timeout_ms: i64,
    pub backoff_base: f64,
    pub max_backoff_ms: i64,
    /// The download limits: smallest and largest part, most requests in flight.
    pub min_part_size: i64,
    pub max_part_size: i64,
    pub max_concurrency: u32,
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
        read_timeout_ms: options::DEFAULT_READ_TIMEOUT_MS as i64,
        connect_timeout_ms: options::DEFAULT_CONNECT_TIMEOUT_MS as i64,
        backoff_base: options::BACKOFF_BASE,
        max_backoff_ms: options::MAX_BACKOFF_MS as i64,
        min_part_size: options::MIN_REQUESTED_PART as i64,
        max_part_size: options::MAX_READ_PART as i64,
        max_concurrency: options::REQUEST_BUDGET as u32,
    }
}
