//! AWS IoT billing groups and the things in them.

use certplane_core::billing_groups::BillingGroup;
use certplane_core::DomainError;
use serde_json::{json, Map, Value};

use super::input::{description_member, pattern_value, thing_name, with_token, Call, Res};
use super::shapes;

pub(super) fn billing_group_name(v: &str) -> Res<&str> {
    pattern_value("billingGroupName", v, 1, 128, ":_-")
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
    description_member("billingGroupDescription", p.get("billingGroupDescription"))
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
    let expected = cx.body_expected_version()?;
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
    let group = billing_group_name(cx.name_or_arn(
        "billingGroupName",
        "billingGroupArn",
        "billinggroup",
    )?)?;
    let thing = thing_name(cx.name_or_arn("thingName", "thingArn", "thing")?)?;
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
