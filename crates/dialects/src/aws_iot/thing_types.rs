//! AWS IoT thing types: Create, Describe, List, Update, Deprecate, Delete.

use certplane_core::thing_types::{PropagatingAttribute, ThingType, ThingTypeProperties};
use certplane_core::DomainError;
use serde_json::{json, Map, Value};

use super::input::{check_len, description_member, pattern_value, thing_name, Call, Res};
use super::shapes;
use super::things::ATTRIBUTE_NAME_CHARS;

fn opt_str<'v>(obj: &'v Map<String, Value>, key: &str) -> Res<Option<&'v str>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(DomainError::invalid(format!("{key} must be a string"))),
    }
}

/// ThingTypeProperties from the body (absent → all members absent).
fn properties(cx: &Call<'_>) -> Res<ThingTypeProperties> {
    let Some(v) = cx.body_value("thingTypeProperties") else {
        return Ok(ThingTypeProperties::default());
    };
    let Value::Object(p) = v else {
        return Err(DomainError::invalid(
            "thingTypeProperties must be an object",
        ));
    };
    let description = description_member("thingTypeDescription", p.get("thingTypeDescription"))?;
    let searchable_attributes = match p.get("searchableAttributes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => {
                        Ok(
                            pattern_value("searchableAttributes", s, 1, 128, ATTRIBUTE_NAME_CHARS)?
                                .to_string(),
                        )
                    }
                    _ => Err(DomainError::invalid(
                        "searchableAttributes must be a list of strings",
                    )),
                })
                .collect::<Res<Vec<_>>>()?,
        ),
        Some(_) => return Err(DomainError::invalid("searchableAttributes must be a list")),
    };
    let propagating_attributes = match p.get("mqtt5Configuration") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => match m.get("propagatingAttributes") {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|i| {
                        let Value::Object(a) = i else {
                            return Err(DomainError::invalid(
                                "each propagatingAttribute must be an object",
                            ));
                        };
                        let field = |k: &str| -> Res<Option<String>> {
                            match opt_str(a, k)? {
                                Some(s) => {
                                    check_len(k, s, 0, 128)?;
                                    Ok(Some(s.to_string()))
                                }
                                None => Ok(None),
                            }
                        };
                        Ok(PropagatingAttribute {
                            user_property_key: field("userPropertyKey")?,
                            thing_attribute: field("thingAttribute")?,
                            connection_attribute: field("connectionAttribute")?,
                        })
                    })
                    .collect::<Res<Vec<_>>>()?,
            ),
            Some(_) => {
                return Err(DomainError::invalid(
                    "mqtt5Configuration.propagatingAttributes must be a list",
                ))
            }
        },
        Some(_) => return Err(DomainError::invalid("mqtt5Configuration must be an object")),
    };
    Ok(ThingTypeProperties {
        description,
        searchable_attributes,
        propagating_attributes,
    })
}

fn properties_json(p: &ThingTypeProperties) -> Value {
    let mut m = Map::new();
    if let Some(d) = &p.description {
        m.insert("thingTypeDescription".into(), json!(d));
    }
    if let Some(s) = &p.searchable_attributes {
        m.insert("searchableAttributes".into(), json!(s));
    }
    if let Some(attrs) = &p.propagating_attributes {
        let items: Vec<Value> = attrs
            .iter()
            .map(|a| {
                let mut o = Map::new();
                for (k, v) in [
                    ("userPropertyKey", &a.user_property_key),
                    ("thingAttribute", &a.thing_attribute),
                    ("connectionAttribute", &a.connection_attribute),
                ] {
                    if let Some(v) = v {
                        o.insert(k.into(), json!(v));
                    }
                }
                Value::Object(o)
            })
            .collect();
        m.insert(
            "mqtt5Configuration".into(),
            json!({ "propagatingAttributes": items }),
        );
    }
    Value::Object(m)
}

fn metadata_json(t: &ThingType) -> Value {
    let mut m = Map::new();
    m.insert("deprecated".into(), json!(t.deprecated));
    if let Some(d) = t.deprecation_date {
        m.insert("deprecationDate".into(), shapes::ts(d));
    }
    m.insert("creationDate".into(), shapes::ts(t.created_at));
    Value::Object(m)
}

fn arn(t: &ThingType) -> String {
    shapes::thing_type_arn(&t.region, &t.account, &t.name)
}

pub(super) async fn create_thing_type(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    let t = cx
        .core
        .create_thing_type(&cx.scope, name, properties(cx)?, cx.body_tags()?)
        .await?;
    Ok(json!({
        "thingTypeName": t.name,
        "thingTypeArn": arn(&t),
        "thingTypeId": t.id,
    }))
}

pub(super) async fn describe_thing_type(cx: &Call<'_>) -> Res<Value> {
    let t = cx
        .core
        .describe_thing_type(&cx.scope, thing_name(cx.label()?)?)
        .await?;
    Ok(json!({
        "thingTypeName": t.name,
        "thingTypeId": t.id,
        "thingTypeArn": arn(&t),
        "thingTypeProperties": properties_json(&t.properties),
        "thingTypeMetadata": metadata_json(&t),
    }))
}

pub(super) async fn list_thing_types(cx: &Call<'_>) -> Res<Value> {
    let page = cx.token_page("thing-types")?;
    let prefix = match cx.q("thingTypeName") {
        Some(n) => Some(thing_name(n)?),
        None => None,
    };
    let (types, next) = cx.core.list_thing_types(&cx.scope, prefix, &page).await?;
    let items: Vec<Value> = types
        .iter()
        .map(|t| {
            json!({
                "thingTypeName": t.name,
                "thingTypeArn": arn(t),
                "thingTypeProperties": properties_json(&t.properties),
                "thingTypeMetadata": metadata_json(t),
            })
        })
        .collect();
    let mut out = json!({ "thingTypes": items });
    if let (Some(n), Some(o)) = (next, out.as_object_mut()) {
        o.insert("nextToken".into(), Value::String(n));
    }
    Ok(out)
}

pub(super) async fn update_thing_type(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    cx.core
        .update_thing_type(&cx.scope, name, &properties(cx)?)
        .await?;
    Ok(json!({}))
}

pub(super) async fn deprecate_thing_type(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    let undo = cx.body_bool("undoDeprecate")?.unwrap_or(false);
    cx.core.deprecate_thing_type(&cx.scope, name, undo).await?;
    Ok(json!({}))
}

pub(super) async fn delete_thing_type(cx: &Call<'_>) -> Res<Value> {
    let name = thing_name(cx.label()?)?;
    cx.core.delete_thing_type(&cx.scope, name).await?;
    Ok(json!({}))
}
