//! `Core`: the services every dialect calls. Each resource module (`certificates.rs`,
//! `transfers.rs`, ...) adds its operations to `Core` in an `impl Core` block, next to the
//! entity and its pure transition functions.

use std::future::Future;
use std::sync::Arc;

use certplane_pki::IssuingCa;

use crate::clock::{Clock, Millis};
use crate::error::{DomainError, DomainResult};
use crate::orders::DomainValidator;
use crate::store::Store;

#[derive(Clone)]
pub struct Core {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub issuer: Arc<IssuingCa>,
    /// Checks orders' proofs of domain ownership.
    pub validator: Arc<dyn DomainValidator>,
    /// How long an order may wait for its proof before it fails.
    pub validation_timeout_ms: Millis,
}

/// Orders fail after 72 hours without proof of domain ownership, unless configured otherwise.
pub const DEFAULT_VALIDATION_TIMEOUT_MS: Millis = 72 * 3_600_000;

/// Until a validator is configured, no proof is ever found.
struct NeverValid;

#[async_trait::async_trait]
impl DomainValidator for NeverValid {
    async fn check(&self, _order: &crate::orders::Order) -> bool {
        false
    }
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
            validator: Arc::new(NeverValid),
            validation_timeout_ms: DEFAULT_VALIDATION_TIMEOUT_MS,
        }
    }

    pub fn with_validation(
        mut self,
        validator: Arc<dyn DomainValidator>,
        timeout_ms: Millis,
    ) -> Self {
        self.validator = validator;
        self.validation_timeout_ms = timeout_ms;
        self
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
