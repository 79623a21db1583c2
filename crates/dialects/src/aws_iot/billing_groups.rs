//! AWS IoT billing groups and the things in them.

use certplane_core::billing_groups::BillingGroup;
use certplane_core::DomainError;
use serde_json::{json, Map, Value};

use super::input::{check_len, pattern_value, thing_name, Call, Res};
use super::shapes;

pub(super) fn billing_group_name(v: &str) -> Res<&str> {
    pattern_value("billingGroupName", v, 1, 128, ":_-")
}

fn with_token(mut v: Value, next: Option<String>) -> Value {
    if let (Some(n), Some(o)) = (next, v.as_object_mut()) {
        o.insert("nextToken".into(), Value::String(n));
    }
    v
}

fn arn(g: &BillingGroup) -> String {
    shapes::billing_group_arn(&g.region, &g.account, &g.name)
}

/// `billingGroupProperties.billingGroupDescription`, when given.
fn description(cx: &Call<'_>) -> Res<Option<String>> {
    let Some(v) = cx.body_value("billingGroupProperties") else {
        return Ok(None);
    };
    let Value::Object(p) = v else {
        return Err(DomainError::invalid(
            "billingGroupProperties must be an object",
        ));
    };
    match p.get("billingGroupDescription") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(d)) => {
            check_len("billingGroupDescription", d, 0, 2028)?;
            if d.chars().any(|c| c.is_control()) {
                return Err(DomainError::invalid(
                    "billingGroupDescription may not contain control characters",
                ));
            }
            Ok(Some(d.clone()))
        }
        Some(_) => Err(DomainError::invalid(
            "billingGroupDescription must be a string",
        )),
    }
}

/// The name in `name_member`, or the last part of the ARN in `arn_member`.
fn name_or_arn<'c>(
    cx: &'c Call<'_>,
    name_member: &str,
    arn_member: &str,
    arn_kind: &str,
) -> Res<&'c str> {
    if let Some(n) = cx.body_str(name_member)? {
        return Ok(n);
    }
    let Some(a) = cx.body_str(arn_member)? else {
        return Err(DomainError::invalid(format!(
            "{name_member} or {arn_member} is required"
        )));
    };
    let prefix = format!(
        "arn:aws:iot:{}:{}:{arn_kind}/",
        cx.scope.region, cx.scope.account
    );
    a.strip_prefix(&prefix).ok_or_else(|| {
        DomainError::invalid(format!(
            "{arn_member} {a:?} is not a {arn_kind} ARN of this account and region"
        ))
    })
}

pub(super) async fn create_billing_group(cx: &Call<'_>) -> Res<Value> {
    let name = billing_group_name(cx.label()?)?;
    let g = cx
        .core
        .create_billing_group(&cx.scope, name, description(cx)?, cx.body_tags()?)
        .await?;
    Ok(json!({
        "billingGroupName": g.name,
        "billingGroupArn": arn(&g),
        "billingGroupId": g.id,
    }))
}

pub(super) async fn describe_billing_group(cx: &Call<'_>) -> Res<Value> {
    let g = cx
        .core
        .describe_billing_group(&cx.scope, billing_group_name(cx.label()?)?)
        .await?;
    let mut props = Map::new();
    if let Some(d) = &g.description {
        props.insert("billingGroupDescription".into(), json!(d));
    }
    Ok(json!({
        "billingGroupName": g.name,
        "billingGroupId": g.id,
        "billingGroupArn": arn(&g),
        "version": g.version,
        "billingGroupProperties": props,
        "billingGroupMetadata": { "creationDate": shapes::ts(g.created_at) },
    }))
}

pub(super) async fn list_billing_groups(cx: &Call<'_>) -> Res<Value> {
    let page = cx.token_page("billing-groups")?;
    let prefix = match cx.q("namePrefixFilter") {
        Some(p) => Some(billing_group_name(p)?),
        None => None,
    };
    let (groups, next) = cx
        .core
        .list_billing_groups(&cx.scope, prefix, &page)
        .await?;
    let items: Vec<Value> = groups
        .iter()
        .map(|g| json!({ "groupName": g.name, "groupArn": arn(g) }))
        .collect();
    Ok(with_token(json!({ "billingGroups": items }), next))
}

pub(super) async fn update_billing_group(cx: &Call<'_>) -> Res<Value> {
    let name = billing_group_name(cx.label()?)?;
    if cx.body_value("billingGroupProperties").is_none() {
        return Err(DomainError::invalid("billingGroupProperties is required"));
    }
    let expected = match cx.body_value("expectedVersion") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| DomainError::invalid("expectedVersion must be an integer"))?,
        ),
    };
    let version = cx
        .core
        .update_billing_group(&cx.scope, name, description(cx)?, expected)
        .await?;
    Ok(json!({ "version": version }))
}

pub(super) async fn delete_billing_group(cx: &Call<'_>) -> Res<Value> {
    let name = billing_group_name(cx.label()?)?;
    let expected = cx.q_int("expectedVersion", i64::MIN, i64::MAX)?;
    cx.core
        .delete_billing_group(&cx.scope, name, expected)
        .await?;
    Ok(json!({}))
}

async fn set_membership(cx: &Call<'_>, add: bool) -> Res<Value> {
    let group = billing_group_name(name_or_arn(
        cx,
        "billingGroupName",
        "billingGroupArn",
        "billinggroup",
    )?)?;
    let thing = thing_name(name_or_arn(cx, "thingName", "thingArn", "thing")?)?;
    cx.core
        .set_thing_billing_group(&cx.scope, thing, group, add)
        .await?;
    Ok(json!({}))
}

pub(super) async fn add_thing_to_billing_group(cx: &Call<'_>) -> Res<Value> {
    set_membership(cx, true).await
}

pub(super) async fn remove_thing_from_billing_group(cx: &Call<'_>) -> Res<Value> {
    set_membership(cx, false).await
}

pub(super) async fn list_things_in_billing_group(cx: &Call<'_>) -> Res<Value> {
    let name = billing_group_name(cx.label()?)?;
    let page = cx.token_page("billing-group-things")?;
    let (things, next) = cx
        .core
        .list_things_in_billing_group(&cx.scope, name, &page)
        .await?;
    Ok(with_token(json!({ "things": things }), next))
}
