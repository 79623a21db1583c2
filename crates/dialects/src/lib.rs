//! Wire dialects: one module per cloud API. Each does routing, signature checking,
//! request/response shapes and the mapping of domain errors to that cloud's wire errors —
//! and nothing else: business rules live in `certplane-core`.

pub mod aliyun;
pub mod aws_iot;
pub mod azure_billing;
pub mod wire;

/// Records how an audited call ended (a denial, or a failed mutating call) in a write of its
/// own. The caller's answer does not depend on it: the call has failed either way.
pub async fn audit_outcome(
    core: &certplane_core::Core,
    event: &certplane_core::audit::AuditEvent,
    outcome: certplane_core::audit::Outcome,
    code: &str,
) {
    if outcome == certplane_core::audit::Outcome::Denied {
        certplane_core::metrics::denied(&event.dialect, &event.action);
    }
    if let Err(e) = core.record_audit(&event.ended(outcome, code)).await {
        tracing::warn!(error = %e, request_id = %event.request_id, "audit row not written");
    }
}
