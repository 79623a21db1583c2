//! The measurements every layer reports, through the `metrics` facade: the binary installs a
//! Prometheus recorder at `serve` (and renders `GET /metrics`); without one (admin commands,
//! unit tests) every call here is a no-op. The names live here once, so the dialects, the
//! gateway and the binary agree on them.
//!
//! Each call looks its series up in the recorder's sharded registry (no global lock) and
//! updates an atomic, so these are cheap enough for the request path.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::error::DomainResult;
use crate::store::{Change, Filter, Kind, PageQuery, Store, StoredDoc, Write};

/// Calls refused by throttling (counter; labels `dialect`, `action`).
pub const THROTTLED_CALLS: &str = "certplane_throttled_calls_total";
/// Calls refused by the authorization seam (counter; labels `dialect`, `action`).
pub const DENIED_CALLS: &str = "certplane_denied_calls_total";
/// Time a store call took (histogram, seconds; label `operation`).
pub const STORE_DURATION: &str = "certplane_store_operation_duration_seconds";
/// Live device sessions of the mTLS gateway (gauge).
pub const GATEWAY_SESSIONS: &str = "certplane_gateway_sessions";

/// Counts a call refused by throttling. `dialect` is the audit trail's dialect name
/// (`aws-iot`, `aliyun-cas`, `aliyun-onsmqtt`, `azure-billing`); `action` the authorization
/// action (`iot:DescribeCertificate`, …), a closed set per dialect, so the series stay few.
pub fn throttled(dialect: &str, action: &str) {
    metrics::counter!(THROTTLED_CALLS, "dialect" => dialect.to_string(), "action" => action.to_string())
        .increment(1);
}

/// Counts a call the authorization seam refused (labels as [`throttled`]).
pub fn denied(dialect: &str, action: &str) {
    metrics::counter!(DENIED_CALLS, "dialect" => dialect.to_string(), "action" => action.to_string())
        .increment(1);
}

/// A gateway session was admitted.
pub fn gateway_session_opened() {
    metrics::gauge!(GATEWAY_SESSIONS).increment(1.0);
}

/// A gateway session ended.
pub fn gateway_session_closed() {
    metrics::gauge!(GATEWAY_SESSIONS).decrement(1.0);
}

/// The HELP texts of the metrics above; called once the recorder is installed.
pub fn describe() {
    metrics::describe_counter!(
        THROTTLED_CALLS,
        "API calls refused with the cloud's throttling error, by dialect and action."
    );
    metrics::describe_counter!(
        DENIED_CALLS,
        "API calls refused by authorization (the caller's policies), by dialect and action."
    );
    metrics::describe_histogram!(
        STORE_DURATION,
        metrics::Unit::Seconds,
        "Time store calls took, by store operation."
    );
    metrics::describe_gauge!(
        GATEWAY_SESSIONS,
        "Device sessions the mTLS gateway is proxying now."
    );
    // Present from the start (0), so a dashboard sees the series before the first device.
    metrics::gauge!(GATEWAY_SESSIONS).increment(0.0);
}

/// Wraps a store engine: every call's duration goes to [`STORE_DURATION`], labelled with the
/// trait method (a closed set of seven).
pub struct TimedStore {
    inner: Arc<dyn Store>,
}

impl TimedStore {
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(TimedStore { inner })
    }
}

fn observe(operation: &'static str, started: Instant) {
    metrics::histogram!(STORE_DURATION, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

#[async_trait]
impl Store for TimedStore {
    fn changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.inner.changes()
    }
    fn generation(&self, kind: Kind) -> Option<u64> {
        self.inner.generation(kind)
    }
    fn unchanged_since(&self, kind: Kind, key: &str, since: u64) -> Option<bool> {
        self.inner.unchanged_since(kind, key, since)
    }
    fn counts_changes_before_answering(&self) -> bool {
        self.inner.counts_changes_before_answering()
    }
    async fn version(&self, kind: Kind, key: &str) -> DomainResult<Option<(i64, i64)>> {
        let t = Instant::now();
        let r = self.inner.version(kind, key).await;
        observe("version", t);
        r
    }
    async fn get(&self, kind: Kind, key: &str) -> DomainResult<Option<StoredDoc>> {
        let t = Instant::now();
        let r = self.inner.get(kind, key).await;
        observe("get", t);
        r
    }
    async fn get_many(&self, kind: Kind, keys: &[String]) -> DomainResult<Vec<StoredDoc>> {
        let t = Instant::now();
        let r = self.inner.get_many(kind, keys).await;
        observe("get_many", t);
        r
    }
    async fn query(
        &self,
        kind: Kind,
        filter: &Filter,
        page: PageQuery,
    ) -> DomainResult<Vec<StoredDoc>> {
        let t = Instant::now();
        let r = self.inner.query(kind, filter, page).await;
        observe("query", t);
        r
    }
    async fn count(&self, kind: Kind, filter: &Filter) -> DomainResult<u64> {
        let t = Instant::now();
        let r = self.inner.count(kind, filter).await;
        observe("count", t);
        r
    }
    async fn count_by_field(&self, kind: Kind, field: &str) -> DomainResult<Vec<(String, u64)>> {
        let t = Instant::now();
        let r = self.inner.count_by_field(kind, field).await;
        observe("count_by_field", t);
        r
    }
    async fn apply(&self, writes: Vec<Write>) -> DomainResult<()> {
        let t = Instant::now();
        let r = self.inner.apply(writes).await;
        observe("apply", t);
        r
    }
    async fn reset(&self) -> DomainResult<()> {
        let t = Instant::now();
        let r = self.inner.reset().await;
        observe("reset", t);
        r
    }
    async fn claim_once(&self, key: &str, now_ms: i64, expires_at_ms: i64) -> DomainResult<bool> {
        let t = Instant::now();
        let r = self.inner.claim_once(key, now_ms, expires_at_ms).await;
        observe("claim_once", t);
        r
    }
}
