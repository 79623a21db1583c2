//! Provisioning template bodies: parsing the `Parameters` and `Resources` sections and
//! resolving them, with the parameters a RegisterThing call gives, into a plan of the thing,
//! certificate and policies to make. Pure: nothing here reads or writes the store.
//!
//! Intrinsics, as AWS documents for provisioning templates: `Ref` (a parameter's value or its
//! `Default`; a parameter with neither leaves the property out), `Fn::Join` and `Fn::Sub`
//! (`${Name}` from the parameters, or from the variable map of the two-element form).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::certificates::CertificateStatus;
use crate::error::{DomainError, DomainResult};

pub const THING_TYPE: &str = "AWS::IoT::Thing";
pub const CERTIFICATE_TYPE: &str = "AWS::IoT::Certificate";
pub const POLICY_TYPE: &str = "AWS::IoT::Policy";

fn invalid(m: impl Into<String>) -> DomainError {
    DomainError::invalid(m)
}

/// One resource of the `Resources` section, unresolved.
#[derive(Debug, Clone, PartialEq)]
struct TemplateResource {
    logical_id: String,
    kind: String,
    properties: Map<String, Value>,
}

/// A parsed template body.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Each declared parameter and its default, if it has one.
    parameters: BTreeMap<String, Option<String>>,
    resources: Vec<TemplateResource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThingPlan {
    pub logical_id: String,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    pub type_name: Option<String>,
    pub groups: Vec<String>,
    pub billing_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// A new certificate from certplane's CA for this CSR.
    Csr(String),
    /// A certificate the account already has.
    Id(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePlan {
    pub logical_id: String,
    pub source: CertificateSource,
    pub status: Option<CertificateStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPlan {
    pub logical_id: String,
    /// The policy's name; `None` with a document means "named after the document's hash".
    pub name: Option<String>,
    pub document: Option<String>,
}

/// What a resolved template asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub thing: Option<ThingPlan>,
    pub certificate: Option<CertificatePlan>,
    pub policies: Vec<PolicyPlan>,
}

fn object<'v>(v: &'v Value, what: &str) -> DomainResult<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| invalid(format!("{what} must be a JSON object")))
}

impl Template {
    /// Parses and checks a body: a JSON object with a `Resources` object whose resources each
    /// have a known `Type`; `Parameters`, when present, declare each parameter's `Default`.
    pub fn parse(body: &str) -> DomainResult<Template> {
        let v: Value = serde_json::from_str(body)
            .map_err(|e| invalid(format!("The template body is not valid JSON: {e}")))?;
        let top = object(&v, "The template body")?;
        let mut parameters = BTreeMap::new();
        if let Some(p) = top.get("Parameters") {
            for (name, decl) in object(p, "Parameters")? {
                let decl = object(decl, &format!("The parameter {name}"))?;
                let default = match decl.get("Default") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    Some(_) => {
                        return Err(invalid(format!(
                            "The default of the parameter {name} must be a string"
                        )))
                    }
                };
                parameters.insert(name.clone(), default);
            }
        }
        let resources_v = top
            .get("Resources")
            .ok_or_else(|| invalid("The template body has no Resources section"))?;
        let mut resources = Vec::new();
        for (logical_id, r) in object(resources_v, "Resources")? {
            let r = object(r, &format!("The resource {logical_id}"))?;
            let kind = match r.get("Type") {
                Some(Value::String(t))
                    if [THING_TYPE, CERTIFICATE_TYPE, POLICY_TYPE].contains(&t.as_str()) =>
                {
                    t.clone()
                }
                Some(Value::String(t)) => {
                    return Err(invalid(format!(
                        "The resource {logical_id} has the type {t}, which is not \
                         {THING_TYPE}, {CERTIFICATE_TYPE} or {POLICY_TYPE}"
                    )))
                }
                _ => return Err(invalid(format!("The resource {logical_id} has no Type"))),
            };
            let properties = match r.get("Properties") {
                None | Some(Value::Null) => Map::new(),
                Some(p) => object(p, &format!("The properties of {logical_id}"))?.clone(),
            };
            resources.push(TemplateResource {
                logical_id: logical_id.clone(),
                kind,
                properties,
            });
        }
        let count = |k: &str| resources.iter().filter(|r| r.kind == k).count();
        if count(THING_TYPE) > 1 || count(CERTIFICATE_TYPE) > 1 {
            return Err(invalid(
                "A provisioning template declares at most one thing and one certificate",
            ));
        }
        Ok(Template {
            parameters,
            resources,
        })
    }

    /// The declared parameters that `given` leaves without a value and that have no
    /// `Default` (JITP requires a value for every one, AWS documents).
    pub fn unvalued_parameters(&self, given: &BTreeMap<String, String>) -> Vec<String> {
        self.parameters
            .iter()
            .filter(|(name, default)| default.is_none() && !given.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The template with `given` parameters applied.
    pub fn resolve(&self, given: &BTreeMap<String, String>) -> DomainResult<Plan> {
        let r = Resolver {
            parameters: &self.parameters,
            given,
        };
        let mut plan = Plan::default();
        for res in &self.resources {
            let p = &res.properties;
            match res.kind.as_str() {
                THING_TYPE => {
                    let name = r.string_prop(p, "ThingName")?.ok_or_else(|| {
                        invalid(format!("The thing {} has no ThingName", res.logical_id))
                    })?;
                    plan.thing = Some(ThingPlan {
                        logical_id: res.logical_id.clone(),
                        name,
                        attributes: r.attributes(p.get("AttributePayload"))?,
                        type_name: r.string_prop(p, "ThingTypeName")?,
                        groups: r.string_list(p.get("ThingGroups"), "ThingGroups")?,
                        billing_group: r.string_prop(p, "BillingGroup")?,
                    });
                }
                CERTIFICATE_TYPE => {
                    let csr = r.string_prop(p, "CertificateSigningRequest")?;
                    let id = r.string_prop(p, "CertificateId")?;
                    if p.contains_key("CertificatePem") {
                        return Err(invalid(
                            "certplane does not register a CertificatePem from a template; \
                             register it first and name it by CertificateId",
                        ));
                    }
                    let source = match (csr, id) {
                        (Some(c), None) => CertificateSource::Csr(c),
                        (None, Some(i)) => CertificateSource::Id(i),
                        _ => {
                            return Err(invalid(format!(
                                "The certificate {} needs exactly one of \
                                 CertificateSigningRequest and CertificateId",
                                res.logical_id
                            )))
                        }
                    };
                    let status = match r.string_prop(p, "Status")? {
                        None => None,
                        Some(s) => match CertificateStatus::parse(&s) {
                            Some(
                                st @ (CertificateStatus::Active | CertificateStatus::Inactive),
                            ) => Some(st),
                            _ => {
                                return Err(invalid(format!(
                                    "The certificate status {s:?} is not ACTIVE or INACTIVE"
                                )))
                            }
                        },
                    };
                    plan.certificate = Some(CertificatePlan {
                        logical_id: res.logical_id.clone(),
                        source,
                        status,
                    });
                }
                _ => {
                    let name = r.string_prop(p, "PolicyName")?;
                    let document = r.string_prop(p, "PolicyDocument")?;
                    if name.is_none() && document.is_none() {
                        return Err(invalid(format!(
                            "The policy {} needs a PolicyName or a PolicyDocument",
                            res.logical_id
                        )));
                    }
                    plan.policies.push(PolicyPlan {
                        logical_id: res.logical_id.clone(),
                        name,
                        document,
                    });
                }
            }
        }
        Ok(plan)
    }
}

struct Resolver<'t> {
    parameters: &'t BTreeMap<String, Option<String>>,
    given: &'t BTreeMap<String, String>,
}

impl Resolver<'_> {
    /// A parameter's value: the one given, else its default; `None` when it has neither.
    fn parameter(&self, name: &str) -> Option<String> {
        self.given
            .get(name)
            .cloned()
            .or_else(|| self.parameters.get(name).cloned().flatten())
    }

    /// A property value that must come out a string (`None`: left out).
    fn string(&self, v: &Value, what: &str) -> DomainResult<Option<String>> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            Value::Number(n) => Ok(Some(n.to_string())),
            Value::Bool(b) => Ok(Some(b.to_string())),
            Value::Object(o) if o.len() == 1 => {
                let (f, arg) = o.iter().next().ok_or_else(|| invalid("empty intrinsic"))?;
                match f.as_str() {
                    "Ref" => match arg {
                        Value::String(name) => Ok(self.parameter(name)),
                        _ => Err(invalid(format!("Ref in {what} must name a parameter"))),
                    },
                    "Fn::Join" => self.join(arg, what).map(Some),
                    "Fn::Sub" => self.sub(arg, what).map(Some),
                    other => Err(invalid(format!(
                        "{what} uses {other}, which certplane does not evaluate (Ref, \
                         Fn::Join and Fn::Sub are)"
                    ))),
                }
            }
            _ => Err(invalid(format!("{what} must be a string"))),
        }
    }

    fn join(&self, arg: &Value, what: &str) -> DomainResult<String> {
        let parts = match arg {
            Value::Array(a) if a.len() == 2 => a,
            _ => {
                return Err(invalid(format!(
                    "Fn::Join in {what} takes [delimiter, [values]]"
                )))
            }
        };
        let (Value::String(delim), Value::Array(items)) = (&parts[0], &parts[1]) else {
            return Err(invalid(format!(
                "Fn::Join in {what} takes [delimiter, [values]]"
            )));
        };
        let mut out = Vec::new();
        for i in items {
            out.push(self.string(i, what)?.unwrap_or_default());
        }
        Ok(out.join(delim))
    }

    fn sub(&self, arg: &Value, what: &str) -> DomainResult<String> {
        let (text, vars) = match arg {
            Value::String(s) => (s.as_str(), None),
            Value::Array(a) if a.len() == 2 => match (&a[0], &a[1]) {
                (Value::String(s), Value::Object(m)) => (s.as_str(), Some(m)),
                _ => {
                    return Err(invalid(format!(
                        "Fn::Sub in {what} takes a string or [string, {{variables}}]"
                    )))
                }
            },
            _ => {
                return Err(invalid(format!(
                    "Fn::Sub in {what} takes a string or [string, {{variables}}]"
                )))
            }
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(invalid(format!("Fn::Sub in {what} has an unclosed ${{")));
            };
            let name = &after[..end];
            let value = match vars.and_then(|m| m.get(name)) {
                Some(v) => self.string(v, what)?,
                None => self.parameter(name),
            };
            out.push_str(&value.unwrap_or_default());
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn string_prop(&self, p: &Map<String, Value>, key: &str) -> DomainResult<Option<String>> {
        match p.get(key) {
            None => Ok(None),
            Some(v) => self.string(v, key),
        }
    }

    fn string_list(&self, v: Option<&Value>, what: &str) -> DomainResult<Vec<String>> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for i in items {
                    if let Some(s) = self.string(i, what)? {
                        out.push(s);
                    }
                }
                Ok(out)
            }
            Some(_) => Err(invalid(format!("{what} must be a list"))),
        }
    }

    fn attributes(&self, v: Option<&Value>) -> DomainResult<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let Some(v) = v else {
            return Ok(out);
        };
        for (k, val) in object(v, "AttributePayload")? {
            if let Some(s) = self.string(val, &format!("AttributePayload.{k}"))? {
                out.insert(k.clone(), s);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BODY: &str = r#"{
        "Parameters": {
            "ThingName": {"Type": "String"},
            "Location": {"Type": "String", "Default": "WA"},
            "CSR": {"Type": "String"}
        },
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": {"Ref": "ThingName"},
                "AttributePayload": {"loc": {"Ref": "Location"}, "missing": {"Ref": "Nope"}},
                "ThingGroups": ["g1", {"Fn::Join": ["-", ["g", {"Ref": "Location"}]]}]
            }},
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
                "CertificateSigningRequest": {"Ref": "CSR"}, "Status": "ACTIVE"
            }},
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {
                "PolicyDocument": {"Fn::Sub": "{\"thing\": \"${ThingName}\"}"}
            }}
        }
    }"#;

    #[test]
    fn unvalued_parameters_are_the_declared_ones_without_value_or_default() {
        let t = Template::parse(BODY).unwrap();
        assert_eq!(
            t.unvalued_parameters(&params(&[("ThingName", "dev1")])),
            vec!["CSR".to_string()]
        );
        assert!(t
            .unvalued_parameters(&params(&[("ThingName", "d"), ("CSR", "pem")]))
            .is_empty());
    }

    #[test]
    fn parameters_defaults_and_intrinsics_resolve() {
        let t = Template::parse(BODY).unwrap();
        let plan = t
            .resolve(&params(&[("ThingName", "dev1"), ("CSR", "pem")]))
            .unwrap();
        let thing = plan.thing.unwrap();
        assert_eq!(thing.name, "dev1");
        assert_eq!(thing.attributes, params(&[("loc", "WA")]));
        assert_eq!(thing.groups, vec!["g1".to_string(), "g-WA".to_string()]);
        let cert = plan.certificate.unwrap();
        assert_eq!(cert.source, CertificateSource::Csr("pem".into()));
        assert_eq!(cert.status, Some(CertificateStatus::Active));
        assert_eq!(
            plan.policies[0].document.as_deref(),
            Some("{\"thing\": \"dev1\"}")
        );
        // A given value beats the default.
        let plan = t
            .resolve(&params(&[
                ("ThingName", "d"),
                ("CSR", "p"),
                ("Location", "NY"),
            ]))
            .unwrap();
        assert_eq!(plan.thing.unwrap().attributes, params(&[("loc", "NY")]));
    }

    #[test]
    fn a_missing_thing_name_and_unknown_types_are_refused() {
        let t = Template::parse(BODY).unwrap();
        assert!(matches!(
            t.resolve(&params(&[("CSR", "p")])),
            Err(DomainError::InvalidInput(_))
        ));
        for bad in [
            "[]",
            "{}",
            r#"{"Resources": {"x": {"Type": "AWS::IAM::Role"}}}"#,
            r#"{"Resources": {"x": {"Type": "AWS::IoT::Thing"}, "y": {"Type": "AWS::IoT::Thing"}}}"#,
            "not json",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sub_with_a_variable_map() {
        let r = Resolver {
            parameters: &BTreeMap::new(),
            given: &params(&[("A", "1")]),
        };
        let v: Value = serde_json::from_str(r#"["${A}-${B}", {"B": "two"}]"#).unwrap();
        assert_eq!(r.sub(&v, "x").unwrap(), "1-two");
    }
}
