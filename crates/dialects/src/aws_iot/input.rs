//! Reading AWS IoT requests: path labels, query members, JSON body members, header members.
//! botocore checks only required members, types and minimums before sending, so every maximum,
//! pattern and enum is checked here (spec §2).

use certplane_core::error::DomainError;
use certplane_core::paging::Page;
use certplane_core::{CertificateId, Core, Scope};
use serde_json::{Map, Value};

use crate::wire::Request;

pub(super) type Res<T> = Result<T, DomainError>;

fn invalid(m: impl Into<String>) -> DomainError {
    DomainError::invalid(m)
}

/// One authenticated, routed call.
pub(super) struct Call<'a> {
    pub core: &'a Core,
    pub scope: Scope,
    pub label: Option<String>,
    /// The second path label (a policy version id), for the operations that have one.
    pub sub: Option<String>,
    pub query: Vec<(String, String)>,
    pub req: &'a Request,
    body: Option<Map<String, Value>>,
}

impl<'a> Call<'a> {
    pub fn new(
        core: &'a Core,
        scope: Scope,
        label: Option<String>,
        sub: Option<String>,
        query: Vec<(String, String)>,
        req: &'a Request,
    ) -> Res<Self> {
        let body = if req.body.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(&req.body) {
                Ok(Value::Object(m)) => Some(m),
                Ok(_) => return Err(invalid("the request body must be a JSON object")),
                Err(e) => return Err(invalid(format!("the request body is not valid JSON: {e}"))),
            }
        };
        Ok(Call {
            core,
            scope,
            label,
            sub,
            query,
            req,
            body,
        })
    }

    pub fn label(&self) -> Res<&str> {
        self.label
            .as_deref()
            .ok_or_else(|| invalid("the request path is missing its resource name"))
    }

    pub fn sub_label(&self) -> Res<&str> {
        self.sub
            .as_deref()
            .ok_or_else(|| invalid("the request path is missing its second label"))
    }

    pub fn label_cert_id(&self) -> Res<CertificateId> {
        CertificateId::parse(self.label()?)
    }

    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn q_bool(&self, name: &str) -> Res<Option<bool>> {
        match self.q(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(invalid(format!("{name} must be true or false, got {v:?}"))),
        }
    }

    pub fn q_int(&self, name: &str, min: i64, max: i64) -> Res<Option<i64>> {
        match self.q(name) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(invalid(format!(
                    "{name} must be an integer from {min} to {max}, got {v:?}"
                ))),
            },
        }
    }

    /// A `marker`/`pageSize`/`isAscendingOrder` page: default size 25; `isAscendingOrder`
    /// defaults to false, so newest first (COMPATIBILITY.md).
    pub fn marker_page(&self, list: &'static str) -> Res<Page> {
        let size = self.q_int("pageSize", 1, 250)?.unwrap_or(25);
        let ascending = self.q_bool("isAscendingOrder")?.unwrap_or(false);
        let marker = self.q("marker");
        if let Some(m) = marker {
            if m.len() > 1024 {
                return Err(invalid("marker must be at most 1024 characters"));
            }
        }
        Page::new(list, marker, size as usize, ascending)
    }

    /// A `nextToken`/`maxResults` page (ascending creation order). AWS documents no default
    /// size; 50 is moto's (COMPATIBILITY.md).
    pub fn token_page(&self, list: &'static str) -> Res<Page> {
        let size = self.q_int("maxResults", 1, 250)?.unwrap_or(50);
        Page::new(list, self.q("nextToken"), size as usize, true)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.req.header(name)
    }

    pub fn required_header(&self, name: &str, member: &str) -> Res<&str> {
        match self.header(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(invalid(format!("{member} is required (header {name})"))),
        }
    }

    pub fn body_value(&self, key: &str) -> Option<&Value> {
        self.body.as_ref().and_then(|b| b.get(key))
    }

    pub fn body_str(&self, key: &str) -> Res<Option<&str>> {
        match self.body_value(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(invalid(format!("{key} must be a string"))),
        }
    }

    pub fn body_bool(&self, key: &str) -> Res<Option<bool>> {
        match self.body_value(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(format!("{key} must be a boolean"))),
        }
    }

    pub fn required_body_str(&self, key: &str, min: usize, max: usize) -> Res<&str> {
        let v = self
            .body_str(key)?
            .ok_or_else(|| invalid(format!("{key} is required")))?;
        check_len(key, v, min, max)?;
        Ok(v)
    }

    /// `expectedVersion` in the body (UpdateThing, UpdateThingGroup, UpdateBillingGroup).
    pub fn body_expected_version(&self) -> Res<Option<i64>> {
        match self.body_value("expectedVersion") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| invalid("expectedVersion must be an integer")),
        }
    }

    /// The name in `name_member`, or the last part of the ARN in `arn_member` (the calls that
    /// take either, such as AddThingToThingGroup and AddThingToBillingGroup).
    pub fn name_or_arn(&self, name_member: &str, arn_member: &str, arn_kind: &str) -> Res<&str> {
        if let Some(n) = self.body_str(name_member)? {
            return Ok(n);
        }
        let Some(a) = self.body_str(arn_member)? else {
            return Err(invalid(format!(
                "{name_member} or {arn_member} is required"
            )));
        };
        let prefix = format!(
            "arn:aws:iot:{}:{}:{arn_kind}/",
            self.scope.region, self.scope.account
        );
        a.strip_prefix(&prefix).ok_or_else(|| {
            invalid(format!(
                "{arn_member} {a:?} is not a {arn_kind} ARN of this account and region"
            ))
        })
    }

    /// `tags`: a list of {Key, Value}.
    pub fn body_tags(&self) -> Res<Vec<(String, String)>> {
        let Some(v) = self.body_value("tags") else {
            return Ok(Vec::new());
        };
        let Value::Array(items) = v else {
            return Err(invalid("tags must be a list"));
        };
        items
            .iter()
            .map(|t| {
                let k = t
                    .get("Key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("each tag needs a Key"))?;
                check_len("Tag.Key", k, 1, 128)?;
                if let Some(bad) = k.chars().find(|c| {
                    !(c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(*c))
                }) {
                    return Err(invalid(format!("Tag.Key {k:?} may not contain {bad:?}")));
                }
                let v = t.get("Value").and_then(Value::as_str).unwrap_or("");
                check_len("Tag.Value", v, 0, 256)?;
                Ok((k.to_string(), v.to_string()))
            })
            .collect()
    }
}

/// A list answer with `nextToken` added when there is a next page.
pub(super) fn with_token(mut v: Value, next: Option<String>) -> Value {
    if let (Some(n), Some(o)) = (next, v.as_object_mut()) {
        o.insert("nextToken".into(), Value::String(n));
    }
    v
}

/// A resource description member (thingTypeDescription, thingGroupDescription,
/// billingGroupDescription, a template's description): at most 2028 characters and no control
/// characters (the model's `[\p{Graph}\x20]*`).
pub(super) fn description_member(member: &str, v: Option<&Value>) -> Res<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(d)) => {
            check_len(member, d, 0, 2028)?;
            if d.chars().any(|c| c.is_control()) {
                return Err(invalid(format!(
                    "{member} may not contain control characters"
                )));
            }
            Ok(Some(d.clone()))
        }
        Some(_) => Err(invalid(format!("{member} must be a string"))),
    }
}

pub(super) fn check_len(name: &str, v: &str, min: usize, max: usize) -> Res<()> {
    let n = v.chars().count();
    if n < min || n > max {
        return Err(invalid(format!(
            "{name} must be {min} to {max} characters long, got {n}"
        )));
    }
    Ok(())
}

/// A value of at most `max` characters, each a letter or digit or one of `extra` (the model's
/// `[a-zA-Z0-9<extra>]` patterns), at least `min` long.
pub(super) fn pattern_value<'v>(
    name: &str,
    v: &'v str,
    min: usize,
    max: usize,
    extra: &str,
) -> Res<&'v str> {
    check_len(name, v, min, max)?;
    if let Some(bad) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(*c)))
    {
        return Err(invalid(format!(
            "{name} {v:?} may not contain {bad:?} (allowed: letters, digits and {extra})"
        )));
    }
    Ok(v)
}

/// ThingName / ThingTypeName: 1..128 of `[a-zA-Z0-9:_-]`.
pub(super) fn thing_name(v: &str) -> Res<&str> {
    check_len("thingName", v, 1, 128)?;
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
    {
        return Err(invalid(format!(
            "thingName {v:?} must match [a-zA-Z0-9:_-]+"
        )));
    }
    Ok(v)
}

/// PolicyName: 1..128 of `[\w+=,.@-]`.
pub(super) fn policy_name(v: &str) -> Res<&str> {
    check_len("policyName", v, 1, 128)?;
    if !v
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-'))
    {
        return Err(invalid(format!("policyName {v:?} must match [\\w+=,.@-]+")));
    }
    Ok(v)
}

/// A principal/target as AWS IoT names it: a certificate ARN
/// (`arn:<partition>:iot:<region>:<account>:cert/<id>`) refers to the registry; anything else
/// (Cognito identity, thing-group ARN) is kept verbatim. A certificate ARN naming another
/// account or region names a certificate the caller does not have: 404, as for a missing one.
pub(super) fn principal_ref(v: &str, scope: &Scope) -> Res<certplane_core::things::PrincipalRef> {
    use certplane_core::error::Resource;
    use certplane_core::things::PrincipalRef;
    if v.is_empty() {
        return Err(invalid("the principal must not be empty"));
    }
    if v.starts_with("arn:") {
        if let Some((prefix, id)) = v.rsplit_once(":cert/") {
            let id = CertificateId::parse(id)?;
            let parts: Vec<&str> = prefix.split(':').collect();
            let in_scope = matches!(parts.as_slice(),
                ["arn", _, "iot", region, account] if *region == scope.region && *account == scope.account);
            if !in_scope {
                return Err(DomainError::not_found(Resource::Certificate, id.as_str()));
            }
            return Ok(PrincipalRef::Certificate(id));
        }
    }
    Ok(PrincipalRef::Other(v.to_string()))
}
