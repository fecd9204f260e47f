//! The engine: one store cache and one request budget shared by every operation. Its methods
//! live with the path they run: reads in `download`, uploads in `write`, the rest in `manage`.

use crate::budget::Budget;
use crate::options::REQUEST_BUDGET;
use crate::store::Stores;

/// The engine: a store cache, the shared request budget, and the operations.
///
/// Memory is bounded by design rather than by a budget: file transfers stream every chunk to a
/// per-file writer queue of bounded length, and `get` writes parts straight into the one buffer
/// it returns.
#[derive(Debug)]
pub struct Engine {
    pub(crate) stores: Stores,
    pub(crate) requests: Budget,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// A new engine with an empty store cache.
    pub fn new() -> Self {
        Self {
            stores: Stores::new(),
            requests: Budget::new(REQUEST_BUDGET),
        }
    }
}
