//! `certplane admin audit`: reads the audit trail (every committed API change, every denial and
//! every failed mutating call), oldest first. Nothing changes it.

use certplane_core::audit::{AuditEvent, AuditQuery};
use certplane_core::clock::rfc3339;
use serde_json::json;

use crate::bootstrap::{self, Location};

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Only rows at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    account: Option<String>,
    /// Only rows of this user.
    #[arg(long)]
    principal: Option<String>,
    /// Only rows of this action (`iot:UpdateCertificate`).
    #[arg(long)]
    action: Option<String>,
    /// Only rows on this resource (its full ARN).
    #[arg(long)]
    resource: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: Location,
}

fn parse_since(s: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("--since {s:?} is not an RFC 3339 time: {e}"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("--since {s:?} is out of range"))
}

fn event_json(e: &AuditEvent) -> serde_json::Value {
    json!({
        "time": rfc3339(e.time),
        "requestId": e.request_id,
        "account": e.account,
        "user": e.user,
        "accessKeyId": e.access_key_id,
        "sourceIp": e.source_ip,
        "dialect": e.dialect,
        "action": e.action,
        "resource": e.resource,
        "outcome": e.outcome.as_str(),
        "errorCode": e.error_code,
    })
}

pub async fn run(a: AuditArgs) -> Result<(), String> {
    let q = AuditQuery {
        since: a.since.as_deref().map(parse_since).transpose()?,
        account: a.account,
        user: a.principal,
        action: a.action,
        resource: a.resource,
    };
    let core = bootstrap::open(&a.dir).await?.core;
    let events = core.audit_events(&q).await.map_err(|e| e.to_string())?;
    for e in &events {
        if a.json {
            println!("{}", event_json(e));
        } else {
            println!(
                "{}  {:<8}  {:<16}  {:<16}  {:<40}  {}  {}",
                rfc3339(e.time),
                e.outcome.as_str(),
                e.account,
                e.user.as_deref().unwrap_or("(root)"),
                e.action,
                e.resource,
                e.error_code.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}
