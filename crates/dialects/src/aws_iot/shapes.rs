//! AWS IoT response shapes: ARNs, timestamps and the JSON of each entity.

use certplane_core::ca_certificates::CaCertificate;
use certplane_core::certificates::Certificate;
use certplane_core::clock::Millis;
use certplane_core::policies::Policy;
use certplane_core::things::Thing;
use serde_json::{json, Map, Value};

pub fn cert_arn(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:iot:{region}:{account}:cert/{id}")
}
pub fn ca_arn(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:iot:{region}:{account}:cacert/{id}")
}
pub fn thing_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:iot:{region}:{account}:thing/{name}")
}
pub fn thing_type_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:iot:{region}:{account}:thingtype/{name}")
}
pub fn thing_group_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:iot:{region}:{account}:thinggroup/{name}")
}
pub fn billing_group_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:iot:{region}:{account}:billinggroup/{name}")
}
pub fn policy_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:iot:{region}:{account}:policy/{name}")
}
pub fn provisioning_template_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:iot:{region}:{account}:provisioningtemplate/{name}")
}

/// rest-json timestamps: epoch seconds as a JSON number with millisecond precision.
pub fn ts(ms: Millis) -> Value {
    serde_json::Number::from_f64(ms as f64 / 1000.0)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v);
    }
}

pub fn certificate_arn_of(c: &Certificate) -> String {
    cert_arn(&c.region, &c.owner, c.id.as_str())
}

/// CertificateDescription.
pub fn certificate_description(c: &Certificate) -> Value {
    let mut transfer = Map::new();
    let t = &c.transfer;
    put(
        &mut transfer,
        "transferMessage",
        t.transfer_message.clone().map(Value::String),
    );
    put(
        &mut transfer,
        "rejectReason",
        t.reject_reason.clone().map(Value::String),
    );
    put(&mut transfer, "transferDate", t.transfer_date.map(ts));
    put(&mut transfer, "acceptDate", t.accept_date.map(ts));
    put(&mut transfer, "rejectDate", t.reject_date.map(ts));
    let mut d = Map::new();
    d.insert(
        "certificateArn".into(),
        Value::String(certificate_arn_of(c)),
    );
    d.insert("certificateId".into(), Value::String(c.id.to_string()));
    put(
        &mut d,
        "caCertificateId",
        c.ca_certificate_id
            .as_ref()
            .map(|i| Value::String(i.to_string())),
    );
    d.insert("status".into(), Value::String(c.status.as_str().into()));
    d.insert("certificatePem".into(), Value::String(c.pem.clone()));
    d.insert("ownedBy".into(), Value::String(c.owner.clone()));
    put(
        &mut d,
        "previousOwnedBy",
        c.previous_owner.clone().map(Value::String),
    );
    d.insert("creationDate".into(), ts(c.created_at));
    d.insert("lastModifiedDate".into(), ts(c.last_modified));
    d.insert("customerVersion".into(), json!(c.customer_version));
    d.insert("transferData".into(), Value::Object(transfer));
    d.insert(
        "generationId".into(),
        Value::String(c.generation_id.clone()),
    );
    d.insert(
        "validity".into(),
        json!({ "notBefore": ts(c.not_before), "notAfter": ts(c.not_after) }),
    );
    d.insert(
        "certificateMode".into(),
        Value::String(c.mode.as_str().into()),
    );
    Value::Object(d)
}

/// Certificate (list item).
pub fn certificate_item(c: &Certificate) -> Value {
    json!({
        "certificateArn": certificate_arn_of(c),
        "certificateId": c.id.as_str(),
        "status": c.status.as_str(),
        "certificateMode": c.mode.as_str(),
        "creationDate": ts(c.created_at),
    })
}

/// OutgoingCertificate.
pub fn outgoing_item(c: &Certificate) -> Value {
    let mut d = Map::new();
    d.insert(
        "certificateArn".into(),
        Value::String(certificate_arn_of(c)),
    );
    d.insert("certificateId".into(), Value::String(c.id.to_string()));
    put(
        &mut d,
        "transferredTo",
        c.pending_transfer_to.clone().map(Value::String),
    );
    put(&mut d, "transferDate", c.transfer.transfer_date.map(ts));
    put(
        &mut d,
        "transferMessage",
        c.transfer.transfer_message.clone().map(Value::String),
    );
    d.insert("creationDate".into(), ts(c.created_at));
    Value::Object(d)
}

pub fn ca_arn_of(c: &CaCertificate) -> String {
    ca_arn(&c.region, &c.owner, c.id.as_str())
}

/// DescribeCACertificate's whole output.
pub fn ca_description(c: &CaCertificate) -> Value {
    let mut out = Map::new();
    out.insert(
        "certificateDescription".into(),
        json!({
            "certificateArn": ca_arn_of(c),
            "certificateId": c.id.as_str(),
            "status": c.status.as_str(),
            "certificatePem": c.pem,
            "ownedBy": c.owner,
            "creationDate": ts(c.created_at),
            "autoRegistrationStatus": if c.auto_registration { "ENABLE" } else { "DISABLE" },
            "lastModifiedDate": ts(c.last_modified),
            "customerVersion": c.customer_version,
            "generationId": c.generation_id,
            "validity": { "notBefore": ts(c.not_before), "notAfter": ts(c.not_after) },
            "certificateMode": c.mode.as_str(),
        }),
    );
    if let Some(rc) = &c.registration_config {
        let mut m = Map::new();
        put(
            &mut m,
            "templateBody",
            rc.template_body.clone().map(Value::String),
        );
        put(&mut m, "roleArn", rc.role_arn.clone().map(Value::String));
        put(
            &mut m,
            "templateName",
            rc.template_name.clone().map(Value::String),
        );
        out.insert("registrationConfig".into(), Value::Object(m));
    }
    Value::Object(out)
}

pub fn ca_item(c: &CaCertificate) -> Value {
    json!({
        "certificateArn": ca_arn_of(c),
        "certificateId": c.id.as_str(),
        "status": c.status.as_str(),
        "creationDate": ts(c.created_at),
    })
}

pub fn thing_description(t: &Thing) -> Value {
    let mut d = Map::new();
    d.insert("defaultClientId".into(), Value::String(t.name.clone()));
    d.insert("thingName".into(), Value::String(t.name.clone()));
    d.insert("thingId".into(), Value::String(t.id.clone()));
    d.insert(
        "thingArn".into(),
        Value::String(thing_arn(&t.region, &t.account, &t.name)),
    );
    put(
        &mut d,
        "thingTypeName",
        t.type_name.clone().map(Value::String),
    );
    d.insert("attributes".into(), json!(t.attributes));
    d.insert("version".into(), json!(t.version));
    put(
        &mut d,
        "billingGroupName",
        t.billing_group.clone().map(Value::String),
    );
    Value::Object(d)
}

pub fn thing_item(t: &Thing) -> Value {
    let mut d = Map::new();
    d.insert("thingName".into(), Value::String(t.name.clone()));
    put(
        &mut d,
        "thingTypeName",
        t.type_name.clone().map(Value::String),
    );
    d.insert(
        "thingArn".into(),
        Value::String(thing_arn(&t.region, &t.account, &t.name)),
    );
    d.insert("attributes".into(), json!(t.attributes));
    d.insert("version".into(), json!(t.version));
    Value::Object(d)
}

pub fn policy_item(region: &str, account: &str, name: &str) -> Value {
    json!({ "policyName": name, "policyArn": policy_arn(region, account, name) })
}

pub fn policy_description(p: &Policy) -> Value {
    json!({
        "policyName": p.name,
        "policyArn": policy_arn(&p.region, &p.account, &p.name),
        "policyDocument": p.document,
        "defaultVersionId": p.version_id,
        "creationDate": ts(p.created_at),
        "lastModifiedDate": ts(p.last_modified),
        "generationId": p.generation_id,
    })
}
