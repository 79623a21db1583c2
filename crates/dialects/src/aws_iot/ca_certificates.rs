//! AWS IoT CA-certificate and registration-code operations.

use certplane_core::ca_certificates::{CaRegistration, CaStatus, CaUpdate, RegistrationConfig};
use certplane_core::certificates::CertificateMode;
use certplane_core::DomainError;
use serde_json::{json, Value};

use super::input::{check_len, Call, Res};
use super::shapes;

fn registration_config(cx: &Call<'_>) -> Res<Option<RegistrationConfig>> {
    let Some(v) = cx.body_value("registrationConfig") else {
        return Ok(None);
    };
    let Value::Object(m) = v else {
        return Err(DomainError::invalid("registrationConfig must be an object"));
    };
    let field = |k: &str, min: usize, max: usize| -> Res<Option<String>> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                check_len(k, s, min, max)?;
                Ok(Some(s.clone()))
            }
            Some(_) => Err(DomainError::invalid(format!("{k} must be a string"))),
        }
    };
    let template_name = field("templateName", 1, 36)?;
    if let Some(t) = &template_name {
        check_template_name(t)?;
    }
    Ok(Some(RegistrationConfig {
        template_body: field("templateBody", 0, 10240)?,
        role_arn: field("roleArn", 20, 2048)?,
        template_name,
    }))
}

pub(super) async fn get_registration_code(cx: &Call<'_>) -> Res<Value> {
    let code = cx.core.get_registration_code(&cx.scope).await?;
    Ok(json!({ "registrationCode": code }))
}

pub(super) async fn delete_registration_code(cx: &Call<'_>) -> Res<Value> {
    cx.core.delete_registration_code(&cx.scope).await?;
    Ok(json!({}))
}

pub(super) async fn register_ca_certificate(cx: &Call<'_>) -> Res<Value> {
    let ca_pem = cx.required_body_str("caCertificate", 1, 65536)?;
    let verification_pem = match cx.body_str("verificationCertificate")? {
        Some("") => None,
        Some(v) => {
            check_len("verificationCertificate", v, 1, 65536)?;
            Some(v)
        }
        None => None,
    };
    let mode = match cx.body_str("certificateMode")? {
        None => None,
        Some(m) => Some(CertificateMode::parse(m).ok_or_else(|| {
            DomainError::invalid(format!("certificateMode {m:?} is not DEFAULT or SNI_ONLY"))
        })?),
    };
    let req = CaRegistration {
        ca_pem,
        verification_pem,
        mode,
        set_as_active: cx.q_bool("setAsActive")?.unwrap_or(false),
        allow_auto_registration: cx.q_bool("allowAutoRegistration")?.unwrap_or(false),
        registration_config: registration_config(cx)?,
        tags: cx.body_tags()?,
        name: None,
        consume_registration_code: false,
    };
    let ca = cx.core.register_ca_certificate(&cx.scope, req).await?;
    Ok(json!({ "certificateArn": shapes::ca_arn_of(&ca), "certificateId": ca.id.as_str() }))
}

pub(super) async fn describe_ca_certificate(cx: &Call<'_>) -> Res<Value> {
    let ca = cx
        .core
        .describe_ca_certificate(&cx.scope, &cx.label_cert_id()?)
        .await?;
    Ok(shapes::ca_description(&ca))
}

pub(super) async fn list_ca_certificates(cx: &Call<'_>) -> Res<Value> {
    let page = cx.marker_page("cacertificates")?;
    let template = cx.q("templateName");
    if let Some(t) = template {
        check_template_name(t)?;
    }
    let (cas, next) = cx
        .core
        .list_ca_certificates(&cx.scope, &page, template)
        .await?;
    let mut v = json!({ "certificates": cas.iter().map(shapes::ca_item).collect::<Vec<_>>() });
    if let (Some(n), Some(o)) = (next, v.as_object_mut()) {
        o.insert("nextMarker".into(), Value::String(n));
    }
    Ok(v)
}

pub(super) async fn update_ca_certificate(cx: &Call<'_>) -> Res<Value> {
    let id = cx.label_cert_id()?;
    let status = match cx.q("newStatus") {
        None => None,
        Some(s) => Some(CaStatus::parse(s).ok_or_else(|| {
            DomainError::invalid(format!("newStatus {s:?} is not ACTIVE or INACTIVE"))
        })?),
    };
    let auto_registration = match cx.q("newAutoRegistrationStatus") {
        None => None,
        Some("ENABLE") => Some(true),
        Some("DISABLE") => Some(false),
        Some(s) => {
            return Err(DomainError::invalid(format!(
                "newAutoRegistrationStatus {s:?} is not ENABLE or DISABLE"
            )))
        }
    };
    let update = CaUpdate {
        status,
        auto_registration,
        registration_config: registration_config(cx)?,
        remove_auto_registration: cx.body_bool("removeAutoRegistration")?.unwrap_or(false),
    };
    cx.core
        .update_ca_certificate(&cx.scope, &id, &update)
        .await?;
    Ok(Value::Null)
}

pub(super) async fn delete_ca_certificate(cx: &Call<'_>) -> Res<Value> {
    cx.core
        .delete_ca_certificate(&cx.scope, &cx.label_cert_id()?)
        .await?;
    Ok(json!({}))
}

/// The model's TemplateName: 1 to 36 characters of `[0-9A-Za-z_-]`.
fn check_template_name(t: &str) -> Res<()> {
    if (1..=36).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "templateName must be 1 to 36 characters matching ^[0-9A-Za-z_-]+$",
        ))
    }
}
