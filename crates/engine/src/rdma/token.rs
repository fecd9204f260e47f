//! RDMA tokens: minted by the shim for a slice of a live registration, sent verbatim in the
//! signed `x-amz-rdma-token` header, and released when their guard drops, whatever happened to
//! the request that carried them.

use std::ffi::{c_char, c_int};
use std::sync::Arc;

use super::shim::{text, Shim};
use crate::error::Result;

impl Shim {
    /// A token for `len` bytes at `offset` within the registration starting at `base`,
    /// released when the returned guard drops.
    pub(crate) fn token(
        self: &Arc<Self>,
        base: *mut u8,
        len: usize,
        offset: usize,
        op: c_int,
    ) -> Result<Token> {
        let mut out: *mut c_char = std::ptr::null_mut();
        // SAFETY: the shim validates that the slice lies within a live registration.
        let rc = unsafe { (self.token)(self.handle, base.cast(), len, offset, op, &mut out) };
        if rc != 0 || out.is_null() {
            return Err(self.fail("token minting", rc));
        }
        let text = text(out);
        Ok(Token {
            shim: self.clone(),
            raw: out,
            text,
        })
    }
}

/// A minted token; released on drop, whatever happened to the request that carried it.
pub(crate) struct Token {
    shim: Arc<Shim>,
    raw: *mut c_char,
    text: String,
}

// SAFETY: the raw pointer is only handed back to the shim, which serializes calls.
unsafe impl Send for Token {}
unsafe impl Sync for Token {}

impl Token {
    /// The descriptor, sent verbatim.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        // SAFETY: `raw` came from objget_rdma_token and is released once.
        unsafe { (self.shim.token_release)(self.shim.handle, self.raw) };
    }
}
