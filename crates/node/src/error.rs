//! Engine errors as JavaScript sees them: a real `Error` whose `code` is the stable objget code
//! (`ErrorCode::as_str`), whose `message` is the engine's scrubbed message, with `url` (without
//! its query string) and `cause` (an `Error` holding the scrubbed cause chain) when known.
//!
//! napi-rs turns the status of a `napi::Error<S>` into `err.code`, but an `async fn` can only
//! reject with `napi::Error<Status>` (napi-rs#1632, napi-rs#2299), and no error carries extra
//! properties. So every fallible binding returns [`JsResult`]: its conversion runs on the
//! JavaScript thread, builds the error object there, and hands it back as a `napi::Error` that
//! holds a reference to it, which napi-rs throws (sync) or rejects with (async) as it is.

use napi::bindgen_prelude::{JsError, Object, ToNapiValue, TypeName, Unknown, ValueType};
use napi::sys;

/// A binding's outcome: the value, or an engine error thrown / rejected as a real `Error`.
/// Functions that return it say their JavaScript type with `ts_return_type`.
pub struct JsResult<T>(pub objget_engine::Result<T>);

impl<T> From<objget_engine::Result<T>> for JsResult<T> {
    fn from(r: objget_engine::Result<T>) -> Self {
        Self(r)
    }
}

impl<T: ToNapiValue> ToNapiValue for JsResult<T> {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        match val.0 {
            // SAFETY: called by napi-rs on the JavaScript thread with its env.
            Ok(v) => unsafe { T::to_napi_value(env, v) },
            Err(e) => {
                // SAFETY: as above.
                let error = unsafe { NativeError::to_napi_value(env, NativeError(e)) }?;
                // SAFETY: `error` was just created in `env`.
                Err(napi::Error::from(unsafe {
                    Unknown::from_raw_unchecked(env, error)
                }))
            }
        }
    }
}

/// An engine error as a JavaScript `Error` value (a `downloadMany` item's failure).
pub struct NativeError(pub objget_engine::Error);

impl TypeName for NativeError {
    fn type_name() -> &'static str {
        "Error"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for NativeError {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let e = val.0;
        let error = napi::Error::new(e.code().as_str(), e.message());
        // SAFETY: called by napi-rs on the JavaScript thread with its env.
        let value = unsafe { JsError::from(error).into_value(env) };
        if value.is_null() {
            return Err(napi::Error::from_reason("could not create an error object"));
        }
        let mut object = Object::from_raw(env, value);
        if let Some(url) = e.url() {
            object.set("url", url)?;
        }
        if let Some(cause) = e.cause() {
            // SAFETY: as above.
            object.set("cause", unsafe { plain_error(env, cause) }?)?;
        }
        Ok(value)
    }
}

/// A JavaScript `Error` with this message and no `code`.
unsafe fn plain_error(env: sys::napi_env, message: &str) -> napi::Result<Unknown<'static>> {
    // SAFETY: called on the JavaScript thread with its env.
    unsafe {
        let message = String::to_napi_value(env, message.to_owned())?;
        let mut error = std::ptr::null_mut();
        napi::check_status!(sys::napi_create_error(
            env,
            std::ptr::null_mut(),
            message,
            &mut error
        ))?;
        Ok(Unknown::from_raw_unchecked(env, error))
    }
}

/// Every stable error code, from the engine's one list (`ErrorCode::ALL`). The TypeScript list
/// in src/errors.ts is checked against it by test/error-codes.test.ts.
///
/// ```js
/// errorCodes() // ['NotFound', 'PermissionDenied', …, 'Generic']
/// ```
#[napi_derive::napi]
pub fn error_codes() -> Vec<String> {
    objget_engine::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}
