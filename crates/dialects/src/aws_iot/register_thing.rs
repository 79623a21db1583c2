//! AWS IoT RegisterThing: a template body and its parameters in, the certificate's PEM and
//! the ARN of every resource (keyed by the template's logical ids, as AWS answers) out.

use std::collections::BTreeMap;

use certplane_core::DomainError;
use serde_json::{json, Map, Value};

use super::input::{Call, Res};
use super::shapes;

fn parameters(cx: &Call<'_>) -> Res<BTreeMap<String, String>> {
    match cx.body_value("parameters") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(DomainError::invalid(format!(
                    "the parameter {k:?} must be a string"
                ))),
            })
            .collect(),
        Some(_) => Err(DomainError::invalid("parameters must be a map of strings")),
    }
}

pub(super) async fn register_thing(cx: &Call<'_>) -> Res<Value> {
    let body = cx.required_body_str("templateBody", 0, 10240)?;
    let params = parameters(cx)?;
    let r = cx.core.register_thing(&cx.scope, body, &params).await?;
    let (region, account) = (&cx.scope.region, &cx.scope.account);
    let mut arns = Map::new();
    if let Some((logical, name)) = &r.thing {
        arns.insert(
            logical.clone(),
            json!(shapes::thing_arn(region, account, name)),
        );
    }
    if let Some((logical, id)) = &r.certificate {
        arns.insert(
            logical.clone(),
            json!(shapes::cert_arn(region, account, id.as_str())),
        );
    }
    for (logical, name) in &r.policies {
        arns.insert(
            logical.clone(),
            json!(shapes::policy_arn(region, account, name)),
        );
    }
    let mut out = Map::new();
    if let Some(pem) = r.certificate_pem {
        out.insert("certificatePem".into(), json!(pem));
    }
    out.insert("resourceArns".into(), Value::Object(arns));
    Ok(Value::Object(out))
}
