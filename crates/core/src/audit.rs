//! The audit trail. Every API call that commits a change leaves a row written **in the same
//! transaction as the change**: the dialect runs the call inside [`in_call`], and the store
//! wrapper ([`AuditedStore`]) adds the row to every `apply` batch made inside it, so the change
//! and its record commit or vanish together. A denial, or a mutating call that failed, is
//! recorded in a write of its own ([`Core::record_audit`]). No API changes the trail; export and
//! import carry it like every other kind.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::DomainResult;
use crate::service::Core;
use crate::store::{self, Change, Document, Filter, Kind, PageQuery, Store, StoredDoc, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allowed,
    Denied,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub time: Millis,
    pub request_id: String,
    /// Which of the call's transactions this row rode in (0 for the first); [`OUTCOME_PART`]
    /// for the row of a denial or a failure, written on its own.
    pub part: u32,
    pub account: String,
    /// The user, or `None` for the account's root user (and dev mode).
    pub user: Option<String>,
    pub access_key_id: Option<String>,
    pub source_ip: Option<String>,
    pub dialect: String,
    pub action: String,
    pub resource: String,
    pub outcome: Outcome,
    pub error_code: Option<String>,
}

impl Document for AuditEvent {
    const KIND: Kind = Kind::AuditEvent;
    /// Time first: rows are added in key order, at the end of the key index, instead of at a
    /// random place (request ids are random), so a commit dirties the same few index pages.
    /// Rows written before keep their `<request id>/<part>` keys; no reader parses either.
    fn key(&self) -> String {
        format!("{:013}/{}/{}", self.time, self.request_id, self.part)
    }
    fn account(&self) -> String {
        self.account.clone()
    }
    fn region(&self) -> String {
        String::new()
    }
    fn idx1(&self) -> Option<String> {
        self.user.clone()
    }
    fn idx2(&self) -> Option<String> {
        Some(self.action.clone())
    }
}

pub const OUTCOME_PART: u32 = u32::MAX;

impl AuditEvent {
    /// The row of an authorized call of `principal` (outcome `allowed` until it is known).
    pub fn for_call(
        principal: &crate::authz::Principal,
        request_id: &str,
        dialect: &str,
        action: &str,
        resource: &str,
        time: Millis,
    ) -> Self {
        AuditEvent {
            time,
            request_id: request_id.to_string(),
            part: 0,
            account: principal.account.clone(),
            user: principal.user_name().map(str::to_string),
            access_key_id: principal.access_key_id.clone(),
            source_ip: principal.source_ip.map(|ip| ip.to_string()),
            dialect: dialect.to_string(),
            action: action.to_string(),
            resource: resource.to_string(),
            outcome: Outcome::Allowed,
            error_code: None,
        }
    }

    /// The same call, ended by a denial or an error with the cloud's `code`.
    pub fn ended(&self, outcome: Outcome, code: &str) -> Self {
        AuditEvent {
            part: OUTCOME_PART,
            outcome,
            error_code: Some(code.to_string()),
            ..self.clone()
        }
    }
}

/// Whether an action can change anything, by its cloud's naming: reads are Describe*, List*,
/// Get* (AWS, CAS, OnsMqtt) and `…/read` (ARM). A failed call is recorded only when it may
/// have been a change, so failing reads cost no write.
pub fn is_mutating(action: &str) -> bool {
    let name = action.rsplit(':').next().unwrap_or(action);
    !(name.starts_with("Describe")
        || name.starts_with("List")
        || name.starts_with("Get")
        || action.ends_with("/read"))
}

struct CallContext {
    template: AuditEvent,
    parts: AtomicU32,
}

tokio::task_local! {
    static CALL: Arc<CallContext>;
}

/// Runs one authorized API call: every transaction it commits carries its audit row.
pub async fn in_call<F: Future>(event: AuditEvent, call: F) -> F::Output {
    let cx = Arc::new(CallContext {
        template: event,
        parts: AtomicU32::new(0),
    });
    CALL.scope(cx, call).await
}

fn row_for_this_call() -> Option<AuditEvent> {
    CALL.try_with(|cx| {
        let mut e = cx.template.clone();
        e.part = cx.parts.fetch_add(1, Ordering::Relaxed);
        e
    })
    .ok()
}

/// Wraps the engine: an `apply` made inside [`in_call`] also inserts the call's audit row.
pub struct AuditedStore {
    inner: Arc<dyn Store>,
}

impl AuditedStore {
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(AuditedStore { inner })
    }
}

#[async_trait]
impl Store for AuditedStore {
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
        self.inner.version(kind, key).await
    }
    async fn get(&self, kind: Kind, key: &str) -> DomainResult<Option<StoredDoc>> {
        self.inner.get(kind, key).await
    }
    async fn get_many(&self, kind: Kind, keys: &[String]) -> DomainResult<Vec<StoredDoc>> {
        self.inner.get_many(kind, keys).await
    }
    async fn query(
        &self,
        kind: Kind,
        filter: &Filter,
        page: PageQuery,
    ) -> DomainResult<Vec<StoredDoc>> {
        self.inner.query(kind, filter, page).await
    }
    async fn count(&self, kind: Kind, filter: &Filter) -> DomainResult<u64> {
        self.inner.count(kind, filter).await
    }
    async fn count_by_field(&self, kind: Kind, field: &str) -> DomainResult<Vec<(String, u64)>> {
        self.inner.count_by_field(kind, field).await
    }
    async fn apply(&self, mut writes: Vec<Write>) -> DomainResult<()> {
        if !writes.is_empty() {
            if let Some(row) = row_for_this_call() {
                writes.push(store::insert(&row)?);
            }
        }
        self.inner.apply(writes).await
    }
    async fn reset(&self) -> DomainResult<()> {
        self.inner.reset().await
    }
    async fn claim_once(&self, key: &str, now_ms: i64, expires_at_ms: i64) -> DomainResult<bool> {
        self.inner.claim_once(key, now_ms, expires_at_ms).await
    }
}

/// What `admin audit` asks for; `None` does not filter.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since: Option<Millis>,
    pub account: Option<String>,
    pub user: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
}

impl Core {
    /// A denial, or a failed mutating call: its own write, outside any call's transaction.
    pub async fn record_audit(&self, event: &AuditEvent) -> DomainResult<()> {
        self.store().apply(vec![store::insert(event)?]).await
    }

    /// [`Core::record_audit`] by a task of its own, for a caller that must not wait for it
    /// (the store is failing, and the write would wait out the same fault).
    pub fn record_audit_in_background(&self, event: AuditEvent) {
        let core = self.clone();
        let write = async move {
            if let Err(e) = core.record_audit(&event).await {
                tracing::warn!(error = %e, request_id = %event.request_id, "audit row not written");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(write);
            }
            Err(_) => tracing::warn!("audit row not written: no async runtime"),
        }
    }

    /// Audit rows in commit order, read a page at a time.
    pub async fn audit_events(&self, q: &AuditQuery) -> DomainResult<Vec<AuditEvent>> {
        let filter = Filter {
            account: q.account.clone(),
            idx1: q.user.clone(),
            idx2: q.action.clone(),
            ..Filter::default()
        };
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = store::query::<AuditEvent>(
                self.store(),
                &filter,
                PageQuery {
                    after_seq: after,
                    limit: 1000,
                    ascending: true,
                },
            )
            .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            out.extend(page.into_iter().map(|s| s.value).filter(|e| {
                q.since.is_none_or(|t| e.time >= t)
                    && q.resource.as_ref().is_none_or(|r| &e.resource == r)
            }));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::is_mutating;

    #[test]
    fn reads_are_not_mutating() {
        for (a, want) in [
            ("iot:DescribeCertificate", false),
            ("iot:ListCertificates", false),
            ("iot:GetPolicy", false),
            ("iot:UpdateCertificate", true),
            ("iot:CancelCertificateTransfer", true),
            ("yundun-cert:DescribePackageState", false),
            ("yundun-cert:CreateCertificateForPackageRequest", true),
            ("mq:UnregisterDeviceCertificate", true),
            ("mq:GetDeviceCertificate", false),
            ("Microsoft.Billing/transfers/read", false),
            ("Microsoft.Billing/transfers/accept/action", true),
        ] {
            assert_eq!(is_mutating(a), want, "{a}");
        }
    }
}
