//! `Core`: the services every dialect calls. Each resource module (`certificates.rs`,
//! `transfers.rs`, ...) adds its operations to `Core` in an `impl Core` block, next to the
//! entity and its pure transition functions.

use std::future::Future;
use std::sync::Arc;

use certplane_pki::IssuingCa;

use crate::clock::{Clock, Millis};
use crate::error::{DomainError, DomainResult};
use crate::store::Store;

#[derive(Clone)]
pub struct Core {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub issuer: Arc<IssuingCa>,
}

/// How often a service re-reads and re-decides after losing a compare-and-set race before
/// giving up with `Unavailable` (only reachable under pathological contention).
const MAX_ATTEMPTS: usize = 16;

impl Core {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, issuer: Arc<IssuingCa>) -> Self {
        Core {
            store,
            clock,
            issuer,
        }
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Runs load → decide → apply until it either commits or fails with a real domain error.
    /// A `Stale` (lost race) re-runs the closure, which re-reads and so decides against the
    /// winner's state: the loser gets the precise error, never a silent success.
    pub async fn with_retry<T, F, Fut>(&self, mut attempt: F) -> DomainResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = DomainResult<T>>,
    {
        for _ in 0..MAX_ATTEMPTS {
            match attempt().await {
                Err(DomainError::Stale) => continue,
                other => return other,
            }
        }
        Err(DomainError::Unavailable(
            "too much contention on one record; retry".into(),
        ))
    }
}
