//! AWS IoT provisioning templates and their versions: Create, Describe, List, Update, Delete,
//! and the five version calls.

use certplane_core::provisioning_templates::{
    ProvisioningHook, ProvisioningTemplate, TemplateSettings, TemplateUpdate,
};
use certplane_core::DomainError;
use serde_json::{json, Map, Value};

use super::input::{check_len, with_token, Call, Res};
use super::shapes;

/// TemplateName: 1..36 of `[0-9A-Za-z_-]`.
fn template_name(v: &str) -> Res<&str> {
    check_len("templateName", v, 1, 36)?;
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        return Err(DomainError::invalid(format!(
            "templateName {v:?} must match ^[0-9A-Za-z_-]+$"
        )));
    }
    Ok(v)
}

fn arn(t: &ProvisioningTemplate) -> String {
    shapes::provisioning_template_arn(&t.region, &t.account, &t.name)
}

/// TemplateVersionId in the path: an integer.
fn version_id(cx: &Call<'_>) -> Res<i64> {
    let v = cx.sub_label()?;
    v.parse::<i64>()
        .map_err(|_| DomainError::invalid(format!("versionId {v:?} must be an integer")))
}

/// TemplateDescription: at most 500 characters, no control characters (`[^\p{C}]*`).
fn description(cx: &Call<'_>) -> Res<Option<String>> {
    match cx.body_str("description")? {
        None => Ok(None),
        Some(d) => {
            check_len("description", d, 0, 500)?;
            if d.chars().any(char::is_control) {
                return Err(DomainError::invalid(
                    "description may not contain control characters",
                ));
            }
            Ok(Some(d.to_string()))
        }
    }
}

fn role_arn(cx: &Call<'_>) -> Res<Option<String>> {
    match cx.body_str("provisioningRoleArn")? {
        None => Ok(None),
        Some(r) => {
            check_len("provisioningRoleArn", r, 20, 2048)?;
            Ok(Some(r.to_string()))
        }
    }
}

fn hook(cx: &Call<'_>) -> Res<Option<ProvisioningHook>> {
    let Some(v) = cx.body_value("preProvisioningHook") else {
        return Ok(None);
    };
    let Value::Object(h) = v else {
        return Err(DomainError::invalid(
            "preProvisioningHook must be an object",
        ));
    };
    let target_arn = match h.get("targetArn") {
        Some(Value::String(t)) => {
            check_len("targetArn", t, 0, 2048)?;
            t.clone()
        }
        _ => {
            return Err(DomainError::invalid(
                "preProvisioningHook.targetArn is required",
            ))
        }
    };
    let payload_version = match h.get("payloadVersion") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => {
            check_len("payloadVersion", p, 10, 32)?;
            Some(p.clone())
        }
        Some(_) => return Err(DomainError::invalid("payloadVersion must be a string")),
    };
    Ok(Some(ProvisioningHook {
        target_arn,
        payload_version,
    }))
}

fn hook_json(h: &ProvisioningHook) -> Value {
    let mut m = Map::new();
    m.insert("targetArn".into(), json!(h.target_arn));
    if let Some(p) = &h.payload_version {
        m.insert("payloadVersion".into(), json!(p));
    }
    Value::Object(m)
}

fn template_body<'c>(cx: &'c Call<'_>) -> Res<&'c str> {
    cx.required_body_str("templateBody", 0, 10240)
}

pub(super) async fn create_provisioning_template(cx: &Call<'_>) -> Res<Value> {
    let name = template_name(cx.required_body_str("templateName", 1, 36)?)?;
    let body = template_body(cx)?;
    let template_type = match cx.body_str("type")? {
        None => None,
        Some(t @ ("FLEET_PROVISIONING" | "JITP")) => Some(t.to_string()),
        Some(t) => {
            return Err(DomainError::invalid(format!(
                "type {t:?} is not FLEET_PROVISIONING or JITP"
            )))
        }
    };
    let settings = TemplateSettings {
        description: description(cx)?,
        enabled: cx.body_bool("enabled")?,
        role_arn: role_arn(cx)?,
        hook: hook(cx)?,
        template_type,
    };
    let t = cx
        .core
        .create_provisioning_template(&cx.scope, name, body, settings, cx.body_tags()?)
        .await?;
    Ok(json!({
        "templateArn": arn(&t),
        "templateName": t.name,
        "defaultVersionId": t.default_version,
    }))
}

pub(super) async fn describe_provisioning_template(cx: &Call<'_>) -> Res<Value> {
    let t = cx
        .core
        .describe_provisioning_template(&cx.scope, template_name(cx.label()?)?)
        .await?;
    let mut v = json!({
        "templateArn": arn(&t),
        "templateName": t.name,
        "creationDate": shapes::ts(t.created_at),
        "lastModifiedDate": shapes::ts(t.last_modified),
        "defaultVersionId": t.default_version,
        "templateBody": t.default_body()?,
        "enabled": t.enabled,
        "provisioningRoleArn": t.role_arn,
        "type": t.template_type,
    });
    if let Some(o) = v.as_object_mut() {
        if let Some(d) = &t.description {
            o.insert("description".into(), json!(d));
        }
        if let Some(h) = &t.hook {
            o.insert("preProvisioningHook".into(), hook_json(h));
        }
    }
    Ok(v)
}

pub(super) async fn list_provisioning_templates(cx: &Call<'_>) -> Res<Value> {
    let page = cx.token_page("provisioning-templates")?;
    let (templates, next) = cx
        .core
        .list_provisioning_templates(&cx.scope, &page)
        .await?;
    let items: Vec<Value> = templates
        .iter()
        .map(|t| {
            let mut m = json!({
                "templateArn": arn(t),
                "templateName": t.name,
                "creationDate": shapes::ts(t.created_at),
                "lastModifiedDate": shapes::ts(t.last_modified),
                "enabled": t.enabled,
                "type": t.template_type,
            });
            if let (Some(d), Some(o)) = (&t.description, m.as_object_mut()) {
                o.insert("description".into(), json!(d));
            }
            m
        })
        .collect();
    Ok(with_token(json!({ "templates": items }), next))
}

pub(super) async fn update_provisioning_template(cx: &Call<'_>) -> Res<Value> {
    let name = template_name(cx.label()?)?;
    let default_version = match cx.body_value("defaultVersionId") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| DomainError::invalid("defaultVersionId must be an integer"))?,
        ),
    };
    let update = TemplateUpdate {
        settings: TemplateSettings {
            description: description(cx)?,
            enabled: cx.body_bool("enabled")?,
            role_arn: role_arn(cx)?,
            hook: hook(cx)?,
            template_type: None,
        },
        default_version,
        remove_hook: cx.body_bool("removePreProvisioningHook")?.unwrap_or(false),
    };
    cx.core
        .update_provisioning_template(&cx.scope, name, &update)
        .await?;
    Ok(json!({}))
}

pub(super) async fn delete_provisioning_template(cx: &Call<'_>) -> Res<Value> {
    let name = template_name(cx.label()?)?;
    cx.core
        .delete_provisioning_template(&cx.scope, name)
        .await?;
    Ok(json!({}))
}

pub(super) async fn create_provisioning_template_version(cx: &Call<'_>) -> Res<Value> {
    let name = template_name(cx.label()?)?;
    let body = template_body(cx)?;
    let set_default = cx.q_bool("setAsDefault")?.unwrap_or(false);
    let (t, id) = cx
        .core
        .create_provisioning_template_version(&cx.scope, name, body, set_default)
        .await?;
    Ok(json!({
        "templateArn": arn(&t),
        "templateName": t.name,
        "versionId": id,
        "isDefaultVersion": id == t.default_version,
    }))
}

pub(super) async fn describe_provisioning_template_version(cx: &Call<'_>) -> Res<Value> {
    let name = template_name(cx.label()?)?;
    let (v, is_default) = cx
        .core
        .describe_provisioning_template_version(&cx.scope, name, version_id(cx)?)
        .await?;
    Ok(json!({
        "versionId": v.id,
        "creationDate": shapes::ts(v.created_at),
        "templateBody": v.body,
        "isDefaultVersion": is_default,
    }))
}

pub(super) async fn list_provisioning_template_versions(cx: &Call<'_>) -> Res<Value> {
    let name = template_name(cx.label()?)?;
    let page = cx.token_page("provisioning-template-versions")?;
    let (versions, next) = cx
        .core
        .list_provisioning_template_versions(&cx.scope, name, &page)
        .await?;
    let items: Vec<Value> = versions
        .iter()
        .map(|(v, d)| {
            json!({
                "versionId": v.id,
                "creationDate": shapes::ts(v.created_at),
                "isDefaultVersion": d,
            })
        })
        .collect();
    Ok(with_token(json!({ "versions": items }), next))
}

pub(super) async fn delete_provisioning_template_version(cx: &Call<'_>) -> Res<Value> {
    let name = template_name(cx.label()?)?;
    cx.core
        .delete_provisioning_template_version(&cx.scope, name, version_id(cx)?)
        .await?;
    Ok(json!({}))
}
