//! AWS IoT things and thing-principal operations.

use std::collections::BTreeMap;

use certplane_core::things::ThingQuery;
use certplane_core::DomainError;
use serde_json::{json, Value};

use super::input::{principal_ref, thing_name, Call, Res};
use super::shapes;

fn attributes(cx: &Call<'_>) -> Res<BTreeMap<String, String>> {
    let Some(payload) = cx.body_value("attributePayload") else {
        return Ok(BTreeMap::new());
    };
    let Some(attrs) = payload.get("attributes") else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(m) = attrs else {
        return Err(DomainError::invalid(
            "attributePayload.attributes must be an object",
        ));
    };
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) if k.len() <= 128 && s.len() <= 800 => Ok((k.clone(), s.clone())),
            _ => Err(DomainError::invalid(format!(
                "attribute {k:?} must be a string of at most 800 characters"
            ))),
        })
        .collect()
}

fn with_token(mut v: Value, next: Option<String>) -> Value {
    if let (Some(n), Some(o)) = (next, v.as_object_mut()) {
        o.insert("nextToken".into(), Value::String(n));
    }
    v
}

pub(super) async fn create_thing(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    let type_name = match cx.body_str("thingTypeName")? {
        Some(t) => Some(thing_name(t)?.to_string()),
        None => None,
    };
    let billing = cx.body_str("billingGroupName")?.map(str::to_string);
    let thing = cx
        .core
        .create_thing(&cx.scope, name, type_name, attributes(cx)?, billing)
        .await?;
    Ok(json!({
        "thingName": thing.name,
        "thingArn": shapes::thing_arn(&thing.region, &thing.account, &thing.name),
        "thingId": thing.id,
    }))
}

pub(super) async fn describe_thing(cx: &Call<'_>) -> Res<Value> {
    let thing = cx
        .core
        .describe_thing(&cx.scope, thing_name(cx.label()?)?)
        .await?;
    Ok(shapes::thing_description(&thing))
}

pub(super) async fn delete_thing(cx: &Call<'_>) -> Res<Value> {
    let expected = cx.q_int("expectedVersion", i64::MIN, i64::MAX)?;
    cx.core
        .delete_thing(&cx.scope, thing_name(cx.label()?)?, expected)
        .await?;
    Ok(json!({}))
}

pub(super) async fn list_things(cx: &Call<'_>) -> Res<Value> {
    let page = cx.token_page("things")?;
    let query = ThingQuery {
        attribute_name: cx.q("attributeName").map(str::to_string),
        attribute_value: cx.q("attributeValue").map(str::to_string),
        use_prefix_attribute_value: cx.q_bool("usePrefixAttributeValue")?.unwrap_or(false),
        type_name: cx.q("thingTypeName").map(str::to_string),
    };
    let (things, next) = cx.core.list_things(&cx.scope, &query, &page).await?;
    Ok(with_token(
        json!({ "things": things.iter().map(shapes::thing_item).collect::<Vec<_>>() }),
        next,
    ))
}

pub(super) async fn attach_thing_principal(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    let principal = cx.required_header("x-amzn-principal", "principal")?;
    let exclusive = match cx.q("thingPrincipalType") {
        None | Some("NON_EXCLUSIVE_THING") => false,
        Some("EXCLUSIVE_THING") => true,
        Some(v) => {
            return Err(DomainError::invalid(format!(
                "thingPrincipalType {v:?} is not EXCLUSIVE_THING or NON_EXCLUSIVE_THING"
            )))
        }
    };
    cx.core
        .attach_thing_principal(
            &cx.scope,
            name,
            principal,
            &principal_ref(principal, &cx.scope)?,
            exclusive,
        )
        .await?;
    Ok(json!({}))
}

pub(super) async fn detach_thing_principal(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    let principal = cx.required_header("x-amzn-principal", "principal")?;
    cx.core
        .detach_thing_principal(&cx.scope, name, &principal_ref(principal, &cx.scope)?)
        .await?;
    Ok(json!({}))
}

pub(super) async fn list_thing_principals(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    let page = cx.token_page("thing-principals")?;
    let (principals, next) = cx
        .core
        .list_thing_principals(&cx.scope, name, &page)
        .await?;
    Ok(with_token(json!({ "principals": principals }), next))
}

pub(super) async fn list_principal_things(cx: &Call<'_>) -> Res<Value> {
    let principal = cx.required_header("x-amzn-principal", "principal")?;
    let page = cx.token_page("principal-things")?;
    let (things, next) = cx
        .core
        .list_principal_things(&cx.scope, &principal_ref(principal, &cx.scope)?, &page)
        .await?;
    Ok(with_token(json!({ "things": things }), next))
}
