//! AWS IoT things and thing-principal operations.

use std::collections::BTreeMap;

use certplane_core::things::{ThingQuery, ThingUpdate};
use certplane_core::DomainError;
use serde_json::{json, Value};

use super::input::{pattern_value, principal_ref, thing_name, with_token, Call, Res};

/// The model's AttributeName pattern `[a-zA-Z0-9_.,@/:#-]+` (the letters and digits aside).
pub(super) const ATTRIBUTE_NAME_CHARS: &str = "_.,@/:#-";
/// The model's AttributeValue pattern `[a-zA-Z0-9_.,@/:#=\[\]-]*`.
const ATTRIBUTE_VALUE_CHARS: &str = "_.,@/:#=[]-";
use super::shapes;

fn attributes(cx: &Call<'_>) -> Res<BTreeMap<String, String>> {
    Ok(attribute_payload(cx)?.map(|(a, _)| a).unwrap_or_default())
}

/// `attributePayload`: its attributes (when given) and `merge`.
fn attribute_payload(cx: &Call<'_>) -> Res<Option<(BTreeMap<String, String>, bool)>> {
    parse_attribute_payload(cx.body_value("attributePayload"))
}

/// An AttributePayload value (things, thing groups, billing groups share the shape).
pub(super) fn parse_attribute_payload(
    payload: Option<&Value>,
) -> Res<Option<(BTreeMap<String, String>, bool)>> {
    let Some(payload) = payload else {
        return Ok(None);
    };
    let Value::Object(payload) = payload else {
        return Err(DomainError::invalid("attributePayload must be an object"));
    };
    let merge = match payload.get("merge") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(DomainError::invalid(
                "attributePayload.merge must be a boolean",
            ))
        }
    };
    let Some(attrs) = payload.get("attributes") else {
        return Ok(Some((BTreeMap::new(), merge)));
    };
    let Value::Object(m) = attrs else {
        return Err(DomainError::invalid(
            "attributePayload.attributes must be an object",
        ));
    };
    m.iter()
        .map(|(k, v)| {
            pattern_value("attribute name", k, 1, 128, ATTRIBUTE_NAME_CHARS)?;
            match v {
                Value::String(s) => {
                    pattern_value("attribute value", s, 0, 800, ATTRIBUTE_VALUE_CHARS)?;
                    Ok((k.clone(), s.clone()))
                }
                _ => Err(DomainError::invalid(format!(
                    "attribute {k:?} must be a string"
                ))),
            }
        })
        .collect::<Res<BTreeMap<_, _>>>()
        .map(|a| Some((a, merge)))
}

pub(super) async fn create_thing(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    let type_name = match cx.body_str("thingTypeName")? {
        Some(t) => Some(thing_name(t)?.to_string()),
        None => None,
    };
    let billing = match cx.body_str("billingGroupName")? {
        Some(b) => Some(pattern_value("billingGroupName", b, 1, 128, ":_-")?.to_string()),
        None => None,
    };
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

pub(super) async fn update_thing(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    let type_name = match cx.body_str("thingTypeName")? {
        Some(t) => Some(thing_name(t)?.to_string()),
        None => None,
    };
    let expected_version = cx.body_expected_version()?;
    let (attributes, merge) = match attribute_payload(cx)? {
        Some((a, m)) => (Some(a), m),
        None => (None, false),
    };
    let update = ThingUpdate {
        type_name,
        remove_type: cx.body_bool("removeThingType")?.unwrap_or(false),
        attributes,
        merge,
        expected_version,
    };
    cx.core.update_thing(&cx.scope, name, &update).await?;
    Ok(json!({}))
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
    let attribute_name = match cx.q("attributeName") {
        Some(n) => Some(pattern_value(
            "attributeName",
            n,
            1,
            128,
            ATTRIBUTE_NAME_CHARS,
        )?),
        None => None,
    };
    let attribute_value = match cx.q("attributeValue") {
        Some(v) => Some(pattern_value(
            "attributeValue",
            v,
            0,
            800,
            ATTRIBUTE_VALUE_CHARS,
        )?),
        None => None,
    };
    let type_name = match cx.q("thingTypeName") {
        Some(t) => Some(thing_name(t)?),
        None => None,
    };
    let query = ThingQuery {
        attribute_name: attribute_name.map(str::to_string),
        attribute_value: attribute_value.map(str::to_string),
        use_prefix_attribute_value: cx.q_bool("usePrefixAttributeValue")?.unwrap_or(false),
        type_name: type_name.map(str::to_string),
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
    let exclusive = thing_principal_type(cx)?.unwrap_or(false);
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

/// `thingPrincipalType` in the query: `Some(true)` for EXCLUSIVE_THING.
fn thing_principal_type(cx: &Call<'_>) -> Res<Option<bool>> {
    match cx.q("thingPrincipalType") {
        None => Ok(None),
        Some("NON_EXCLUSIVE_THING") => Ok(Some(false)),
        Some("EXCLUSIVE_THING") => Ok(Some(true)),
        Some(v) => Err(DomainError::invalid(format!(
            "thingPrincipalType {v:?} is not EXCLUSIVE_THING or NON_EXCLUSIVE_THING"
        ))),
    }
}

fn principal_type_name(exclusive: bool) -> &'static str {
    if exclusive {
        "EXCLUSIVE_THING"
    } else {
        "NON_EXCLUSIVE_THING"
    }
}

pub(super) async fn list_thing_principals(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    let page = cx.token_page("thing-principals")?;
    let (rows, next) = cx
        .core
        .list_thing_principals(&cx.scope, name, None, &page)
        .await?;
    let principals: Vec<&str> = rows.iter().map(|r| r.principal.as_str()).collect();
    Ok(with_token(json!({ "principals": principals }), next))
}

pub(super) async fn list_thing_principals_v2(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    let filter = thing_principal_type(cx)?;
    let page = cx.token_page("thing-principals-v2")?;
    let (rows, next) = cx
        .core
        .list_thing_principals(&cx.scope, name, filter, &page)
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "principal": r.principal,
                "thingPrincipalType": principal_type_name(r.exclusive),
            })
        })
        .collect();
    Ok(with_token(json!({ "thingPrincipalObjects": items }), next))
}

pub(super) async fn list_principal_things(cx: &Call<'_>) -> Res<Value> {
    let principal = cx.required_header("x-amzn-principal", "principal")?;
    let page = cx.token_page("principal-things")?;
    let (rows, next) = cx
        .core
        .list_principal_things(
            &cx.scope,
            &principal_ref(principal, &cx.scope)?,
            None,
            &page,
        )
        .await?;
    let things: Vec<&str> = rows.iter().map(|r| r.thing_name.as_str()).collect();
    Ok(with_token(json!({ "things": things }), next))
}

pub(super) async fn list_principal_things_v2(cx: &Call<'_>) -> Res<Value> {
    let principal = cx.required_header("x-amzn-principal", "principal")?;
    let filter = thing_principal_type(cx)?;
    let page = cx.token_page("principal-things-v2")?;
    let (rows, next) = cx
        .core
        .list_principal_things(
            &cx.scope,
            &principal_ref(principal, &cx.scope)?,
            filter,
            &page,
        )
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "thingName": r.thing_name,
                "thingPrincipalType": principal_type_name(r.exclusive),
            })
        })
        .collect();
    Ok(with_token(json!({ "principalThingObjects": items }), next))
}
