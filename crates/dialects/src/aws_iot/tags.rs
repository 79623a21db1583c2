//! AWS IoT TagResource, UntagResource, ListTagsForResource, for every taggable resource
//! certplane holds: policies, thing types, thing groups, billing groups, CA certificates,
//! provisioning templates.

use certplane_core::error::Resource;
use certplane_core::tags::TaggedKind;
use certplane_core::DomainError;
use serde_json::{json, Value};

use super::input::{check_len, Call, Res};

/// The resource an ARN names, in the caller's account and region.
fn resource<'a>(cx: &Call<'_>, arn: &'a str) -> Res<(TaggedKind, &'a str)> {
    check_len("resourceArn", arn, 1, 2048)?;
    let prefix = format!("arn:aws:iot:{}:{}:", cx.scope.region, cx.scope.account);
    let Some(rest) = arn.strip_prefix(prefix.as_str()) else {
        // Another account's or region's resource is one the caller does not have.
        return Err(DomainError::not_found(Resource::Policy, arn));
    };
    let Some((kind, name)) = rest.split_once('/') else {
        return Err(DomainError::invalid(format!(
            "resourceArn {arn:?} does not name a resource"
        )));
    };
    let kind = match kind {
        "policy" => TaggedKind::Policy,
        "thingtype" => TaggedKind::ThingType,
        "thinggroup" => TaggedKind::ThingGroup,
        "billinggroup" => TaggedKind::BillingGroup,
        "cacert" => TaggedKind::CaCertificate,
        "provisioningtemplate" => TaggedKind::ProvisioningTemplate,
        other => {
            return Err(DomainError::invalid(format!(
                "certplane holds no taggable resource of type {other:?}"
            )))
        }
    };
    if name.is_empty() {
        return Err(DomainError::invalid(format!(
            "resourceArn {arn:?} does not name a resource"
        )));
    }
    Ok((kind, name))
}

pub(super) async fn tag_resource(cx: &Call<'_>) -> Res<Value> {
    let arn = cx.required_body_str("resourceArn", 1, 2048)?;
    let (kind, name) = resource(cx, arn)?;
    if cx.body_value("tags").is_none() {
        return Err(DomainError::invalid("tags is required"));
    }
    let tags = cx.body_tags()?;
    cx.core.tag_resource(&cx.scope, kind, name, &tags).await?;
    Ok(json!({}))
}

pub(super) async fn untag_resource(cx: &Call<'_>) -> Res<Value> {
    let arn = cx.required_body_str("resourceArn", 1, 2048)?;
    let (kind, name) = resource(cx, arn)?;
    let keys: Vec<String> = match cx.body_value("tagKeys") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|k| match k {
                Value::String(s) => {
                    check_len("tagKeys", s, 1, 128)?;
                    Ok(s.clone())
                }
                _ => Err(DomainError::invalid("tagKeys must be a list of strings")),
            })
            .collect::<Res<_>>()?,
        _ => return Err(DomainError::invalid("tagKeys is required (a list)")),
    };
    cx.core.untag_resource(&cx.scope, kind, name, &keys).await?;
    Ok(json!({}))
}

pub(super) async fn list_tags_for_resource(cx: &Call<'_>) -> Res<Value> {
    let Some(arn) = cx.q("resourceArn") else {
        return Err(DomainError::invalid("resourceArn is required"));
    };
    let (kind, name) = resource(cx, arn)?;
    // At most 50 tags: always one page, so a nextToken is never given (one sent is ignored).
    let tags = cx
        .core
        .list_tags_for_resource(&cx.scope, kind, name)
        .await?;
    let items: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    Ok(json!({ "tags": items }))
}
