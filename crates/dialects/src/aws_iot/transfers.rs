//! AWS IoT certificate transfer operations.

use certplane_core::ids::parse_aws_account;
use certplane_core::DomainError;
use serde_json::{json, Value};

use super::input::{Call, Res};
use super::shapes;

pub(super) async fn transfer_certificate(cx: &Call<'_>) -> Res<Value> {
    let id = cx.label_cert_id()?;
    let target = cx
        .q("targetAwsAccount")
        .ok_or_else(|| DomainError::invalid("targetAwsAccount is required"))?;
    let target = parse_aws_account(target)?;
    let message = cx.body_str("transferMessage")?;
    cx.core
        .transfer_certificate(&cx.scope, &id, &target, message)
        .await?;
    Ok(json!({
        "transferredCertificateArn": shapes::cert_arn(&cx.scope.region, &target, id.as_str())
    }))
}

pub(super) async fn accept_certificate_transfer(cx: &Call<'_>) -> Res<Value> {
    let id = cx.label_cert_id()?;
    let active = cx.q_bool("setAsActive")?.unwrap_or(false);
    cx.core
        .accept_certificate_transfer(&cx.scope, &id, active)
        .await?;
    Ok(Value::Null)
}

pub(super) async fn reject_certificate_transfer(cx: &Call<'_>) -> Res<Value> {
    let id = cx.label_cert_id()?;
    let reason = cx.body_str("rejectReason")?;
    cx.core
        .reject_certificate_transfer(&cx.scope, &id, reason)
        .await?;
    Ok(Value::Null)
}

pub(super) async fn cancel_certificate_transfer(cx: &Call<'_>) -> Res<Value> {
    let id = cx.label_cert_id()?;
    cx.core.cancel_certificate_transfer(&cx.scope, &id).await?;
    Ok(Value::Null)
}

pub(super) async fn list_outgoing_certificates(cx: &Call<'_>) -> Res<Value> {
    let page = cx.marker_page("certificates-out-going")?;
    let (certs, next) = cx.core.list_outgoing_certificates(&cx.scope, &page).await?;
    let mut v = json!({ "outgoingCertificates": certs.iter().map(shapes::outgoing_item).collect::<Vec<_>>() });
    if let (Some(n), Some(o)) = (next, v.as_object_mut()) {
        o.insert("nextMarker".into(), Value::String(n));
    }
    Ok(v)
}
