//! AWS IoT device-certificate operations.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use certplane_core::certificates::{Certificate, CertificateStatus};
use certplane_core::store::Stored;
use serde_json::{json, Value};

use super::input::{Call, Res};
use super::shapes;

fn status_member(v: &str, name: &str) -> Res<CertificateStatus> {
    CertificateStatus::parse(v).ok_or_else(|| {
        certplane_core::DomainError::invalid(format!(
            "{name} {v:?} is not one of ACTIVE, INACTIVE, REVOKED, PENDING_TRANSFER, \
             REGISTER_INACTIVE, PENDING_ACTIVATION"
        ))
    })
}

pub(super) async fn create_keys_and_certificate(cx: &Call<'_>) -> Res<Value> {
    let active = cx.q_bool("setAsActive")?.unwrap_or(false);
    let (cert, keys) = cx
        .core
        .create_keys_and_certificate(&cx.scope, active)
        .await?;
    Ok(json!({
        "certificateArn": shapes::certificate_arn_of(&cert),
        "certificateId": cert.id.as_str(),
        "certificatePem": cert.pem,
        "keyPair": { "PublicKey": keys.public_key_pem, "PrivateKey": keys.private_key_pem.as_str() },
    }))
}

pub(super) async fn create_certificate_from_csr(cx: &Call<'_>) -> Res<Value> {
    let active = cx.q_bool("setAsActive")?.unwrap_or(false);
    let csr = cx.required_body_str("certificateSigningRequest", 1, 4096)?;
    let cert = cx
        .core
        .create_certificate_from_csr(&cx.scope, csr, active)
        .await?;
    Ok(json!({
        "certificateArn": shapes::certificate_arn_of(&cert),
        "certificateId": cert.id.as_str(),
        "certificatePem": cert.pem,
    }))
}

/// The status a registration asks for: `setAsActive=true` wins, else `status`, else INACTIVE.
fn registration_status(cx: &Call<'_>, set_as_active: Option<bool>) -> Res<CertificateStatus> {
    let status = match cx.body_str("status")? {
        Some(s) => Some(status_member(s, "status")?),
        None => None,
    };
    Ok(match (set_as_active, status) {
        (Some(true), _) => CertificateStatus::Active,
        (_, Some(s)) => s,
        _ => CertificateStatus::Inactive,
    })
}

pub(super) async fn register_certificate(cx: &Call<'_>) -> Res<Value> {
    let pem = cx.required_body_str("certificatePem", 1, 65536)?;
    let ca_pem = cx.body_str("caCertificatePem")?;
    if let Some(c) = ca_pem {
        super::input::check_len("caCertificatePem", c, 1, 65536)?;
    }
    let status = registration_status(cx, cx.q_bool("setAsActive")?)?;
    let cert = cx
        .core
        .register_certificate(&cx.scope, pem, ca_pem, status)
        .await?;
    Ok(
        json!({ "certificateArn": shapes::certificate_arn_of(&cert), "certificateId": cert.id.as_str() }),
    )
}

pub(super) async fn register_certificate_without_ca(cx: &Call<'_>) -> Res<Value> {
    let pem = cx.required_body_str("certificatePem", 1, 65536)?;
    let status = registration_status(cx, None)?;
    let cert = cx
        .core
        .register_certificate_without_ca(&cx.scope, pem, status)
        .await?;
    Ok(
        json!({ "certificateArn": shapes::certificate_arn_of(&cert), "certificateId": cert.id.as_str() }),
    )
}

/// DescribeCertificate answers already rendered, each beside the shared document it renders:
/// an answer is reused only for that very document (the core shares one `Arc` per document
/// content while it is unchanged), so a changed certificate is rendered again. Rendering is
/// most of a cached describe's cost (the PEM alone is ~1.3 kB of escaped JSON).
#[derive(Default)]
pub struct Described {
    answers: RwLock<HashMap<String, RenderedAnswer>>,
}

/// A certificate document and its DescribeCertificate body.
type RenderedAnswer = (Arc<Stored<Certificate>>, Arc<[u8]>);

/// Answers kept at most (~1.8 kB each, ~30 MB in all); past it they start over.
const DESCRIBED: usize = 16_384;

impl Described {
    fn answer(&self, cert: &Arc<Stored<Certificate>>) -> Vec<u8> {
        // The document's key: the registrations of one certificate in several accounts are
        // documents of their own.
        let key = certplane_core::store::Document::key(&cert.value);
        if let Ok(answers) = self.answers.read() {
            if let Some((doc, body)) = answers.get(&key) {
                if Arc::ptr_eq(doc, cert) {
                    return body.to_vec();
                }
            }
        }
        let body = serde_json::to_vec(
            &json!({ "certificateDescription": shapes::certificate_description(&cert.value) }),
        )
        .unwrap_or_default();
        if let Ok(mut answers) = self.answers.write() {
            if answers.len() >= DESCRIBED {
                answers.clear();
            }
            answers.insert(key, (cert.clone(), body.as_slice().into()));
        }
        body
    }
}

/// The JSON body, rendered.
pub(super) async fn describe_certificate(cx: &Call<'_>, described: &Described) -> Res<Vec<u8>> {
    let cert = cx
        .core
        .describe_certificate(&cx.scope, &cx.label_cert_id()?)
        .await?;
    Ok(described.answer(&cert))
}

pub(super) async fn list_certificates(cx: &Call<'_>) -> Res<Value> {
    let page = cx.marker_page("certificates")?;
    let (certs, next) = cx.core.list_certificates(&cx.scope, &page).await?;
    Ok(list_body(
        certs.iter().map(shapes::certificate_item).collect(),
        next,
    ))
}

pub(super) async fn list_certificates_by_ca(cx: &Call<'_>) -> Res<Value> {
    let ca = cx.label_cert_id()?;
    let page = cx.marker_page("certificates-by-ca")?;
    let (certs, next) = cx
        .core
        .list_certificates_by_ca(&cx.scope, &ca, &page)
        .await?;
    Ok(list_body(
        certs.iter().map(shapes::certificate_item).collect(),
        next,
    ))
}

fn list_body(items: Vec<Value>, next: Option<String>) -> Value {
    let mut v = json!({ "certificates": items });
    if let (Some(n), Some(o)) = (next, v.as_object_mut()) {
        o.insert("nextMarker".into(), Value::String(n));
    }
    v
}

pub(super) async fn update_certificate(cx: &Call<'_>) -> Res<Value> {
    let id = cx.label_cert_id()?;
    let status = match cx.q("newStatus") {
        Some(s) => status_member(s, "newStatus")?,
        None => {
            return Err(certplane_core::DomainError::invalid(
                "newStatus is required",
            ))
        }
    };
    cx.core.update_certificate(&cx.scope, &id, status).await?;
    Ok(Value::Null)
}

pub(super) async fn delete_certificate(cx: &Call<'_>) -> Res<Value> {
    let id = cx.label_cert_id()?;
    let force = cx.q_bool("forceDelete")?.unwrap_or(false);
    cx.core.delete_certificate(&cx.scope, &id, force).await?;
    Ok(Value::Null)
}
