//! Wire dialects: one module per cloud API. Each does routing, signature checking,
//! request/response shapes and the mapping of domain errors to that cloud's wire errors —
//! and nothing else: business rules live in `certplane-core`.

pub mod aliyun;
pub mod aws_iot;
pub mod azure_billing;
pub mod wire;

/// Records how an audited call ended (a denial, or a failed mutating call) in a write of its
/// own. The caller's answer does not depend on it: the call has failed either way. When it
/// failed because the store is unavailable (`status` 503), the row is written in the
/// background: that write would most likely wait out the same fault, and the client would hear
/// of its failure only a store timeout later (AWS: 17 s instead of 5 s with the database gone).
pub async fn audit_outcome(
    core: &certplane_core::Core,
    event: &certplane_core::audit::AuditEvent,
    outcome: certplane_core::audit::Outcome,
    code: &str,
    status: u16,
) {
    if outcome == certplane_core::audit::Outcome::Denied {
        certplane_core::metrics::denied(&event.dialect, &event.action);
    }
    let row = event.ended(outcome, code);
    if status == 503 {
        core.record_audit_in_background(row);
    } else if let Err(e) = core.record_audit(&row).await {
        tracing::warn!(error = %e, request_id = %row.request_id, "audit row not written");
    }
}
