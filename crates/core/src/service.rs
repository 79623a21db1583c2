//! `Core`: the services every dialect calls. Each resource module (`certificates.rs`,
//! `transfers.rs`, ...) adds its operations to `Core` in an `impl Core` block, next to the
//! entity and its pure transition functions.

use std::future::Future;
use std::sync::Arc;

use certplane_pki::IssuingCa;

use crate::held_cas::{CaSet, HeldCas};

use crate::clock::{Clock, Millis};
use crate::error::{DomainError, DomainResult};
use crate::orders::DomainValidator;
use crate::store::Store;

#[derive(Clone)]
pub struct Core {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The CAs certplane holds; [`Core::issuer`] is the one that signs.
    pub cas: Arc<HeldCas>,
    /// Checks orders' proofs of domain ownership.
    pub validator: Arc<dyn DomainValidator>,
    /// How long an order may wait for its proof before it fails.
    pub validation_timeout_ms: Millis,
    /// How long a billing transfer stays Pending before it expires.
    pub billing_transfer_ttl_ms: Millis,
    /// Per-principal, per-action rate limits (off unless `serve` turns them on).
    pub throttle: Arc<crate::throttle::Throttle>,
    /// Seals access-key secrets at rest ([`crate::secrets`]); `None` stores them plain.
    /// Swapped when an operator rotates the master key while the server runs.
    pub master_key: Arc<std::sync::RwLock<Option<Arc<certplane_pki::MasterKey>>>>,
    /// Users' policy documents, parsed once per version.
    pub policy_cache: Arc<crate::users::PolicyCache>,
    /// Access keys resolved for authentication, while no credential changed.
    pub resolved_keys: Arc<crate::resolved_keys::ResolvedKeys>,
    /// Decoded documents of watched kinds, served while the store says they are unchanged.
    pub doc_cache: Arc<crate::doc_cache::DocCache>,
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

/// How long a service keeps re-reading and re-deciding after losing compare-and-set races
/// before giving up with `Unavailable`. Many callers on one hot record (a quota package taking
/// orders) win one at a time per commit, so this is a time budget, not a small count.
const RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(4);

impl Core {
    /// A core whose only held CA is `issuer`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, issuer: Arc<IssuingCa>) -> Self {
        Self::with_cas(
            store,
            clock,
            Arc::new(HeldCas::new(CaSet::new(issuer, Vec::new()))),
        )
    }

    pub fn with_cas(store: Arc<dyn Store>, clock: Arc<dyn Clock>, cas: Arc<HeldCas>) -> Self {
        Core {
            // Every call's changes carry its audit row in their own transaction; the timing
            // wrapper sits on the engine, so it measures the engine's calls (audit rows
            // included).
            store: crate::audit::AuditedStore::wrap(crate::metrics::TimedStore::wrap(store)),
            clock,
            cas,
            validator: Arc::new(NeverValid),
            validation_timeout_ms: DEFAULT_VALIDATION_TIMEOUT_MS,
            billing_transfer_ttl_ms: crate::billing_transfers::DEFAULT_TRANSFER_TTL_MS,
            throttle: Arc::new(crate::throttle::Throttle::disabled()),
            master_key: Arc::new(std::sync::RwLock::new(None)),
            policy_cache: Arc::default(),
            resolved_keys: Arc::default(),
            doc_cache: Arc::default(),
        }
    }

    pub fn with_throttle(mut self, throttle: crate::throttle::Throttle) -> Self {
        self.throttle = Arc::new(throttle);
        self
    }

    /// [`Core::throttle_call`] for an authenticated principal.
    pub fn throttle_principal(
        &self,
        dialect: &str,
        principal: &crate::authz::Principal,
        action: &str,
        default: crate::throttle::Rate,
    ) -> DomainResult<()> {
        if !self.throttle.enabled() {
            return Ok(());
        }
        let caller = crate::throttle::caller_key(principal);
        self.throttle_call(dialect, &caller, action, default)
    }

    /// Takes a token for `caller` (a [`crate::throttle::caller_key`]) and `action` (the
    /// throttle action name, `default` its cloud's published rate). Dialects call it before
    /// the operation reads or writes anything, so a throttled call changes nothing.
    pub fn throttle_call(
        &self,
        dialect: &str,
        caller: &str,
        action: &str,
        default: crate::throttle::Rate,
    ) -> DomainResult<()> {
        match self.throttle.check(caller, action, default, self.now()) {
            Ok(()) => Ok(()),
            Err(t) => {
                crate::throttle::on_throttled(dialect, action);
                Err(DomainError::Throttled {
                    action: action.to_string(),
                    retry_after_ms: t.retry_after_ms,
                })
            }
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

    /// The CA that signs new certificates now.
    pub fn issuer(&self) -> Arc<IssuingCa> {
        self.cas.active()
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
        let started = std::time::Instant::now();
        let mut losses: u32 = 0;
        loop {
            match attempt().await {
                Err(DomainError::Stale) => {}
                other => return other,
            }
            losses += 1;
            if started.elapsed() > RETRY_BUDGET {
                return Err(DomainError::Unavailable(
                    "too much contention on one record; retry".into(),
                ));
            }
            // After a few immediate retries, back off a little (randomised, growing to ~8 ms)
            // so a crowd of losers does not stampede the next commit.
            if losses > 3 {
                let mut b = [0u8; 2];
                let _ = aws_lc_rs::rand::fill(&mut b);
                let cap = 1u64 << losses.min(13);
                let micros = u64::from(u16::from_le_bytes(b)) % cap;
                tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
            }
        }
    }
}
