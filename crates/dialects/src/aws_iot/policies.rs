//! AWS IoT policy operations, including the four deprecated principal-policy calls.

use certplane_core::policies::parse_version_id;
use certplane_core::DomainError;
use serde_json::{json, Value};

use super::input::{policy_name, principal_ref, Call, Res};
use super::shapes;

fn with_marker(mut v: Value, next: Option<String>) -> Value {
    if let (Some(n), Some(o)) = (next, v.as_object_mut()) {
        o.insert("nextMarker".into(), Value::String(n));
    }
    v
}

fn target<'c>(cx: &'c Call<'_>) -> Res<&'c str> {
    match cx.body_str("target")? {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(DomainError::invalid("target is required")),
    }
}

pub(super) async fn create_policy(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.label()?)?;
    let document = cx.required_body_str("policyDocument", 0, 404_600)?;
    let policy = cx
        .core
        .create_policy(&cx.scope, name, document, cx.body_tags()?)
        .await?;
    Ok(json!({
        "policyName": policy.name,
        "policyArn": shapes::policy_arn(&policy.region, &policy.account, &policy.name),
        "policyDocument": policy.document,
        "policyVersionId": policy.version_id,
    }))
}

pub(super) async fn get_policy(cx: &Call<'_>) -> Res<Value> {
    let p = cx
        .core
        .get_policy(&cx.scope, policy_name(cx.label()?)?)
        .await?;
    Ok(shapes::policy_description(&p))
}

pub(super) async fn delete_policy(cx: &Call<'_>) -> Res<Value> {
    cx.core
        .delete_policy(&cx.scope, policy_name(cx.label()?)?)
        .await?;
    Ok(Value::Null)
}

pub(super) async fn list_policies(cx: &Call<'_>) -> Res<Value> {
    let page = cx.marker_page("policies")?;
    let (policies, next) = cx.core.list_policies(&cx.scope, &page).await?;
    let items: Vec<Value> = policies
        .iter()
        .map(|p| shapes::policy_item(&p.region, &p.account, &p.name))
        .collect();
    Ok(with_marker(json!({ "policies": items }), next))
}

pub(super) async fn attach_policy(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.label()?)?;
    let t = target(cx)?;
    cx.core
        .attach_policy(&cx.scope, name, t, &principal_ref(t, &cx.scope)?)
        .await?;
    Ok(Value::Null)
}

pub(super) async fn detach_policy(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.label()?)?;
    let t = target(cx)?;
    cx.core
        .detach_policy(&cx.scope, name, &principal_ref(t, &cx.scope)?)
        .await?;
    Ok(Value::Null)
}

async fn policies_of(cx: &Call<'_>, t: &str, recursive: bool, list: &'static str) -> Res<Value> {
    let page = cx.marker_page(list)?;
    let (names, next) = cx
        .core
        .list_attached_policies(&cx.scope, &principal_ref(t, &cx.scope)?, recursive, &page)
        .await?;
    let items: Vec<Value> = names
        .iter()
        .map(|n| shapes::policy_item(&cx.scope.region, &cx.scope.account, n))
        .collect();
    Ok(with_marker(json!({ "policies": items }), next))
}

pub(super) async fn list_attached_policies(cx: &Call<'_>) -> Res<Value> {
    let t = cx.label()?;
    let recursive = cx.q_bool("recursive")?.unwrap_or(false);
    policies_of(cx, t, recursive, "attached-policies").await
}

pub(super) async fn list_targets_for_policy(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.label()?)?;
    let page = cx.marker_page("policy-targets")?;
    let (targets, next) = cx
        .core
        .list_targets_for_policy(&cx.scope, name, &page)
        .await?;
    Ok(with_marker(json!({ "targets": targets }), next))
}

pub(super) async fn attach_principal_policy(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.label()?)?;
    let p = cx.required_header("x-amzn-iot-principal", "principal")?;
    cx.core
        .attach_policy(&cx.scope, name, p, &principal_ref(p, &cx.scope)?)
        .await?;
    Ok(Value::Null)
}

pub(super) async fn detach_principal_policy(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.label()?)?;
    let p = cx.required_header("x-amzn-iot-principal", "principal")?;
    cx.core
        .detach_policy(&cx.scope, name, &principal_ref(p, &cx.scope)?)
        .await?;
    Ok(Value::Null)
}

pub(super) async fn list_principal_policies(cx: &Call<'_>) -> Res<Value> {
    let p = cx.required_header("x-amzn-iot-principal", "principal")?;
    policies_of(cx, p, false, "principal-policies").await
}

pub(super) async fn list_policy_principals(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.required_header("x-amzn-iot-policy", "policyName")?)?;
    let page = cx.marker_page("policy-principals")?;
    let (targets, next) = cx
        .core
        .list_targets_for_policy(&cx.scope, name, &page)
        .await?;
    Ok(with_marker(json!({ "principals": targets }), next))
}

pub(super) async fn create_policy_version(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.label()?)?;
    let document = cx.required_body_str("policyDocument", 0, 404_600)?;
    let set_as_default = cx.q_bool("setAsDefault")?.unwrap_or(false);
    let (p, v) = cx
        .core
        .create_policy_version(&cx.scope, name, document, set_as_default)
        .await?;
    Ok(json!({
        "policyArn": shapes::policy_arn(&p.region, &p.account, &p.name),
        "policyDocument": v.document,
        "policyVersionId": v.id.to_string(),
        "isDefaultVersion": p.version_id == v.id.to_string(),
    }))
}

pub(super) async fn get_policy_version(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.label()?)?;
    let id = parse_version_id(cx.sub_label()?)?;
    let (p, v) = cx.core.get_policy_version(&cx.scope, name, id).await?;
    Ok(json!({
        "policyArn": shapes::policy_arn(&p.region, &p.account, &p.name),
        "policyName": p.name,
        "policyDocument": v.document,
        "policyVersionId": v.id.to_string(),
        "isDefaultVersion": p.version_id == v.id.to_string(),
        "creationDate": shapes::ts(v.created_at),
        // A version never changes once made.
        "lastModifiedDate": shapes::ts(v.created_at),
        "generationId": p.generation_id,
    }))
}

pub(super) async fn list_policy_versions(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.label()?)?;
    let p = cx.core.get_policy(&cx.scope, name).await?;
    let items: Vec<Value> = p
        .versions()
        .iter()
        .map(|v| {
            json!({
                "versionId": v.id.to_string(),
                "isDefaultVersion": p.version_id == v.id.to_string(),
                "createDate": shapes::ts(v.created_at),
            })
        })
        .collect();
    Ok(json!({ "policyVersions": items }))
}

pub(super) async fn set_default_policy_version(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.label()?)?;
    let id = parse_version_id(cx.sub_label()?)?;
    cx.core
        .set_default_policy_version(&cx.scope, name, id)
        .await?;
    Ok(Value::Null)
}

pub(super) async fn delete_policy_version(cx: &Call<'_>) -> Res<Value> {
    let name = policy_name(cx.label()?)?;
    let id = parse_version_id(cx.sub_label()?)?;
    cx.core.delete_policy_version(&cx.scope, name, id).await?;
    Ok(Value::Null)
}
