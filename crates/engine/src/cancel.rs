//! Cancellation by id: a caller that cannot hand a [`CancellationToken`] across its boundary
//! (JavaScript, through napi) makes a [`CancelHandle`], passes its id with each call, and
//! cancels the handle when its signal fires. The call looks its token up with [`token`]; an id
//! that is absent or already released gets a token that is never cancelled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

use crate::CancellationToken;

/// The live handles' tokens by id.
static TOKENS: LazyLock<Mutex<HashMap<u32, CancellationToken>>> = LazyLock::new(Default::default);
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

fn tokens() -> MutexGuard<'static, HashMap<u32, CancellationToken>> {
    TOKENS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A registered cancellation token. Its id finds the token until the handle is released or
/// dropped.
#[derive(Debug)]
pub struct CancelHandle {
    id: u32,
    token: CancellationToken,
}

impl CancelHandle {
    /// A fresh, not yet cancelled handle, registered under a new id.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        tokens().insert(id, token.clone());
        Self { id, token }
    }

    /// The id calls pass to find this handle's token.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Cancel every call started with this handle's id.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Forget the id (the calls it guarded have settled); a later lookup gets a fresh token.
    pub fn release(&self) {
        tokens().remove(&self.id);
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        self.release();
    }
}

/// The token of a live handle's id; otherwise (no id, unknown or released) one never cancelled.
pub fn token(id: Option<u32>) -> CancellationToken {
    id.and_then(|id| tokens().get(&id).cloned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_s_id_finds_its_token_and_cancelling_reaches_it() {
        let h = CancelHandle::new();
        let t = token(Some(h.id()));
        assert!(!t.is_cancelled());
        h.cancel();
        assert!(t.is_cancelled());
        // A lookup after the cancel sees it too.
        assert!(token(Some(h.id())).is_cancelled());
    }

    #[test]
    fn handles_have_distinct_ids_and_independent_tokens() {
        let (a, b) = (CancelHandle::new(), CancelHandle::new());
        assert_ne!(a.id(), b.id());
        a.cancel();
        assert!(token(Some(a.id())).is_cancelled());
        assert!(!token(Some(b.id())).is_cancelled());
    }

    #[test]
    fn no_id_an_unknown_id_and_a_released_id_get_a_token_never_cancelled() {
        assert!(!token(None).is_cancelled());
        assert!(!token(Some(u32::MAX)).is_cancelled());
        let h = CancelHandle::new();
        h.cancel();
        h.release();
        assert!(!token(Some(h.id())).is_cancelled());
        assert!(!tokens().contains_key(&h.id()));
    }

    #[test]
    fn dropping_a_handle_forgets_its_id() {
        let h = CancelHandle::new();
        let id = h.id();
        assert!(tokens().contains_key(&id));
        drop(h);
        assert!(!tokens().contains_key(&id));
    }

    #[test]
    fn a_token_taken_before_the_release_still_sees_the_cancel() {
        let h = CancelHandle::new();
        let t = token(Some(h.id()));
        h.release();
        h.cancel();
        assert!(t.is_cancelled());
    }
}
