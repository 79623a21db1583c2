//! AWS IoT static thing groups and their members. Dynamic groups need fleet indexing and stay
//! NotImplementedException (their routes are not served).

use certplane_core::thing_groups::{AttributeChange, GroupProperties, GroupQuery, ThingGroup};
use certplane_core::{DomainError, Scope};
use serde_json::{json, Map, Value};

use super::input::{description_member, pattern_value, thing_name, with_token, Call, Res};
use super::shapes;
use super::things::parse_attribute_payload;

pub(super) fn group_name(v: &str) -> Res<&str> {
    pattern_value("thingGroupName", v, 1, 128, ":_-")
}

/// `thingGroupProperties` (or `billingGroupProperties`): the description and the attribute
/// change it asks for.
pub(super) fn group_properties(
    cx: &Call<'_>,
    member: &str,
    member_name: &str,
) -> Res<(Option<String>, Option<AttributeChange>)> {
    let Some(v) = cx.body_value(member) else {
        return Ok((None, None));
    };
    let Value::Object(p) = v else {
        return Err(DomainError::invalid(format!("{member} must be an object")));
    };
    let description = description_member(member_name, p.get(member_name))?;
    let change = parse_attribute_payload(p.get("attributePayload"))?
        .map(|(attributes, merge)| AttributeChange { attributes, merge });
    Ok((description, change))
}

fn properties_json(p: &GroupProperties) -> Value {
    let mut m = Map::new();
    if let Some(d) = &p.description {
        m.insert("thingGroupDescription".into(), json!(d));
    }
    if let Some(a) = &p.attributes {
        m.insert("attributePayload".into(), json!({ "attributes": a }));
    }
    Value::Object(m)
}

fn name_and_arn(scope: &Scope, name: &str) -> Value {
    json!({
        "groupName": name,
        "groupArn": shapes::thing_group_arn(&scope.region, &scope.account, name),
    })
}

fn arn(g: &ThingGroup) -> String {
    shapes::thing_group_arn(&g.region, &g.account, &g.name)
}

pub(super) async fn create_thing_group(cx: &Call<'_>) -> Res<Value> {
    let name = group_name(cx.label()?)?;
    let parent = match cx.body_str("parentGroupName")? {
        Some(p) => Some(group_name(p)?),
        None => None,
    };
    let (description, change) =
        group_properties(cx, "thingGroupProperties", "thingGroupDescription")?;
    let properties = GroupProperties::default().updated(description, change.as_ref());
    let g = cx
        .core
        .create_thing_group(&cx.scope, name, parent, properties, cx.body_tags()?)
        .await?;
    Ok(json!({
        "thingGroupName": g.name,
        "thingGroupArn": arn(&g),
        "thingGroupId": g.id,
    }))
}

pub(super) async fn describe_thing_group(cx: &Call<'_>) -> Res<Value> {
    let g = cx
        .core
        .describe_thing_group(&cx.scope, group_name(cx.label()?)?)
        .await?;
    let mut meta = Map::new();
    if let Some(p) = &g.parent {
        meta.insert("parentGroupName".into(), json!(p));
        let chain: Vec<Value> = g
            .ancestors
            .iter()
            .map(|a| name_and_arn(&cx.scope, a))
            .collect();
        meta.insert("rootToParentThingGroups".into(), Value::Array(chain));
    }
    meta.insert("creationDate".into(), shapes::ts(g.created_at));
    Ok(json!({
        "thingGroupName": g.name,
        "thingGroupId": g.id,
        "thingGroupArn": arn(&g),
        "version": g.version,
        "thingGroupProperties": properties_json(&g.properties),
        "thingGroupMetadata": meta,
    }))
}

pub(super) async fn list_thing_groups(cx: &Call<'_>) -> Res<Value> {
    let page = cx.token_page("thing-groups")?;
    let query = GroupQuery {
        parent: match cx.q("parentGroup") {
            Some(p) => Some(group_name(p)?.to_string()),
            None => None,
        },
        name_prefix: match cx.q("namePrefixFilter") {
            Some(p) => Some(group_name(p)?.to_string()),
            None => None,
        },
        recursive: cx.q_bool("recursive")?.unwrap_or(true),
    };
    let (groups, next) = cx.core.list_thing_groups(&cx.scope, &query, &page).await?;
    let items: Vec<Value> = groups
        .iter()
        .map(|g| name_and_arn(&cx.scope, &g.name))
        .collect();
    Ok(with_token(json!({ "thingGroups": items }), next))
}

pub(super) async fn update_thing_group(cx: &Call<'_>) -> Res<Value> {
    let name = group_name(cx.label()?)?;
    if cx.body_value("thingGroupProperties").is_none() {
        return Err(DomainError::invalid("thingGroupProperties is required"));
    }
    let (description, change) =
        group_properties(cx, "thingGroupProperties", "thingGroupDescription")?;
    let version = cx
        .core
        .update_thing_group(
            &cx.scope,
            name,
            description,
            change,
            cx.body_expected_version()?,
        )
        .await?;
    Ok(json!({ "version": version }))
}

pub(super) async fn delete_thing_group(cx: &Call<'_>) -> Res<Value> {
    let name = group_name(cx.label()?)?;
    let expected = cx.q_int("expectedVersion", i64::MIN, i64::MAX)?;
    cx.core
        .delete_thing_group(&cx.scope, name, expected)
        .await?;
    Ok(json!({}))
}

fn override_dynamic(cx: &Call<'_>) -> Res<()> {
    // Only static groups exist here, so there is no dynamic membership to override.
    cx.body_bool("overrideDynamicGroups")?;
    Ok(())
}

pub(super) async fn add_thing_to_thing_group(cx: &Call<'_>) -> Res<Value> {
    override_dynamic(cx)?;
    let group = group_name(cx.name_or_arn("thingGroupName", "thingGroupArn", "thinggroup")?)?;
    let thing = thing_name(cx.name_or_arn("thingName", "thingArn", "thing")?)?;
    cx.core
        .update_thing_groups_for_thing(&cx.scope, thing, &[group.to_string()], &[])
        .await?;
    Ok(json!({}))
}

pub(super) async fn remove_thing_from_thing_group(cx: &Call<'_>) -> Res<Value> {
    let group = group_name(cx.name_or_arn("thingGroupName", "thingGroupArn", "thinggroup")?)?;
    let thing = thing_name(cx.name_or_arn("thingName", "thingArn", "thing")?)?;
    cx.core
        .update_thing_groups_for_thing(&cx.scope, thing, &[], &[group.to_string()])
        .await?;
    Ok(json!({}))
}

fn group_list(cx: &Call<'_>, member: &str) -> Res<Vec<String>> {
    match cx.body_value(member) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(group_name(s)?.to_string()),
                _ => Err(DomainError::invalid(format!(
                    "{member} must be a list of names"
                ))),
            })
            .collect(),
        Some(_) => Err(DomainError::invalid(format!("{member} must be a list"))),
    }
}

pub(super) async fn update_thing_groups_for_thing(cx: &Call<'_>) -> Res<Value> {
    override_dynamic(cx)?;
    let thing = match cx.body_str("thingName")? {
        Some(t) => thing_name(t)?,
        None => return Err(DomainError::invalid("thingName is required")),
    };
    let add = group_list(cx, "thingGroupsToAdd")?;
    let remove = group_list(cx, "thingGroupsToRemove")?;
    cx.core
        .update_thing_groups_for_thing(&cx.scope, thing, &add, &remove)
        .await?;
    Ok(json!({}))
}

pub(super) async fn list_things_in_thing_group(cx: &Call<'_>) -> Res<Value> {
    let name = group_name(cx.label()?)?;
    let page = cx.token_page("thing-group-things")?;
    let recursive = cx.q_bool("recursive")?.unwrap_or(false);
    let (things, next) = cx
        .core
        .list_things_in_thing_group(&cx.scope, name, recursive, &page)
        .await?;
    Ok(with_token(json!({ "things": things }), next))
}

pub(super) async fn list_thing_groups_for_thing(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    let page = cx.token_page("thing-groups-for-thing")?;
    let (groups, next) = cx
        .core
        .list_thing_groups_for_thing(&cx.scope, name, &page)
        .await?;
    let items: Vec<Value> = groups.iter().map(|g| name_and_arn(&cx.scope, g)).collect();
    Ok(with_token(json!({ "thingGroups": items }), next))
}
