//! One budget for every request in flight across the process: download parts, upload parts
//! (object_store's multipart and objget's own) and RDMA parts all take a permit from the same
//! [`Budget`], the engine's, so that no path runs its own unbounded loop beside the others.

use std::sync::Arc;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{Error, ErrorCode, Result};

/// Requests in flight, bounded: a permit per request, held until its answer is read.
#[derive(Debug, Clone)]
pub(crate) struct Budget(Arc<Semaphore>);

impl Budget {
    /// A budget of `requests` permits.
    pub(crate) fn new(requests: usize) -> Self {
        Self(Arc::new(Semaphore::new(requests)))
    }

    /// Wait for a permit; it goes back when dropped.
    pub(crate) async fn permit(&self) -> Result<SemaphorePermit<'_>> {
        self.0
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorCode::Generic, "the request budget was closed"))
    }
}

/// The semaphore itself, for tests that look at or hold its permits.
#[cfg(test)]
impl std::ops::Deref for Budget {
    type Target = Semaphore;

    fn deref(&self) -> &Semaphore {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_permit_goes_back_when_dropped() {
        let b = Budget::new(1);
        let p = b.permit().await.unwrap();
        assert_eq!(b.available_permits(), 0);
        drop(p);
        assert_eq!(b.available_permits(), 1);
    }
}
