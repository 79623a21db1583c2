//! IAM-style policy documents: parsing with validation (a document that would not mean what its
//! author thinks is refused at create, with the reason) and evaluation of one request against a
//! user's documents. AWS's rules: an explicit Deny wins over any Allow; without a matching Allow
//! the answer is deny. Alibaba RAM documents (Version "1") use the same grammar.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::error::{DomainError, DomainResult};

/// The longest document accepted (AWS's limit for a managed policy, whitespace included).
pub const MAX_DOCUMENT_CHARS: usize = 6144;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A list of patterns, either the ones that must match (`Action`) or the ones that must not
/// (`NotAction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patterns {
    Match(Vec<Pattern>),
    Not(Vec<Pattern>),
}

/// One `Action` or `Resource` pattern, with its shape worked out once when the policy is
/// parsed: most patterns are `*`, a literal, or a literal with one trailing `*`, and those
/// match with one comparison instead of a glob walk (every request of a user matches its action
/// and resource against each statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    ascii: bool,
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `*`: anything.
    Any,
    /// No wildcard at all.
    Literal,
    /// A literal of this many bytes, then one `*` that ends the pattern.
    Prefix(usize),
    /// Anything else.
    Glob,
}

impl Pattern {
    pub fn new(text: String) -> Self {
        let wild = |b: u8| b == b'*' || b == b'?';
        let bytes = text.as_bytes();
        let shape = match bytes.iter().position(|&b| wild(b)) {
            None => Shape::Literal,
            Some(0) if bytes == b"*" => Shape::Any,
            Some(n) if n + 1 == bytes.len() && bytes[n] == b'*' => Shape::Prefix(n),
            Some(_) => Shape::Glob,
        };
        Pattern {
            ascii: text.is_ascii(),
            text,
            shape,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// [`wildcard_match`] (or [`wildcard_match_ignore_case`]) of this pattern against `value`.
    pub fn matches(&self, value: &str, ignore_case: bool) -> bool {
        self.matches_subject(&Subject::new(value), ignore_case)
    }

    fn matches_subject(&self, subject: &Subject<'_>, ignore_case: bool) -> bool {
        let value = subject.text;
        if self.shape == Shape::Any {
            return true;
        }
        // Case folding beyond ASCII (the Kelvin sign is a `k`) takes the general path.
        if ignore_case && !(self.ascii && subject.ascii) {
            return wildcard_match_ignore_case(&self.text, value);
        }
        let same = |a: &[u8], b: &[u8]| {
            if ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let (p, v) = (self.text.as_bytes(), value.as_bytes());
        match self.shape {
            Shape::Literal => same(p, v),
            // Equal bytes up to `n` are equal characters: the rest is whatever `*` matches.
            Shape::Prefix(n) => v.len() >= n && same(&p[..n], &v[..n]),
            _ if ignore_case => wildcard_match_ignore_case(&self.text, value),
            _ => wildcard_match(&self.text, value),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Bool,
    IpAddress,
    NotIpAddress,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "StringEquals" => Op::StringEquals,
            "StringNotEquals" => Op::StringNotEquals,
            "StringEqualsIgnoreCase" => Op::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Op::StringNotEqualsIgnoreCase,
            "StringLike" => Op::StringLike,
            "StringNotLike" => Op::StringNotLike,
            "ArnEquals" => Op::ArnEquals,
            "ArnLike" => Op::ArnLike,
            "ArnNotEquals" => Op::ArnNotEquals,
            "ArnNotLike" => Op::ArnNotLike,
            "Bool" => Op::Bool,
            "IpAddress" => Op::IpAddress,
            "NotIpAddress" => Op::NotIpAddress,
            _ => return None,
        })
    }

    /// Negated operators hold when the key is absent from the request (AWS's rule).
    fn negated(self) -> bool {
        matches!(
            self,
            Op::StringNotEquals
                | Op::StringNotEqualsIgnoreCase
                | Op::StringNotLike
                | Op::ArnNotEquals
                | Op::ArnNotLike
                | Op::NotIpAddress
        )
    }
}

/// One condition: `{"StringEquals": {"aws:username": ["alice"]}}` is one operator with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    op: Op,
    if_exists: bool,
    /// Lowercase: condition keys are case-insensitive.
    key: String,
    values: Vec<String>,
    /// The parsed networks of IpAddress / NotIpAddress.
    networks: Vec<(IpAddr, u8)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub actions: Patterns,
    pub resources: Patterns,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    pub version: String,
    pub statements: Vec<Statement>,
}

/// What the request carries beyond its action and resource, for `Condition`s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub username: Option<String>,
    pub account: Option<String>,
    pub principal_arn: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub secure_transport: Option<bool>,
}

impl Context {
    /// The values of a condition key (lowercase), `None` when the request has no such key.
    fn get(&self, key: &str) -> Option<Vec<String>> {
        let one = |v: &Option<String>| v.clone().map(|s| vec![s]);
        match key {
            "aws:username" | "acs:username" => one(&self.username),
            "aws:principalaccount" | "acs:principalaccount" => one(&self.account),
            "aws:principalarn" | "acs:principalarn" => one(&self.principal_arn),
            "aws:sourceip" | "acs:sourceip" => self.source_ip.map(|ip| vec![ip.to_string()]),
            "aws:securetransport" | "acs:securetransport" => {
                self.secure_transport.map(|b| vec![b.to_string()])
            }
            _ => None,
        }
    }
}

/// The outcome of evaluating a request against a set of documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No statement allows it.
    ImplicitDeny,
    /// A Deny statement matches.
    ExplicitDeny,
}

fn malformed(m: impl Into<String>) -> DomainError {
    DomainError::MalformedDocument(m.into())
}

/// `"x"` or `["x", "y"]`, never empty.
fn string_list(v: &Value, what: &str) -> DomainResult<Vec<String>> {
    let list = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(malformed(format!("every {what} must be a string"))),
            })
            .collect::<DomainResult<Vec<_>>>()?,
        _ => {
            return Err(malformed(format!(
                "{what} must be a string or an array of strings"
            )))
        }
    };
    if list.is_empty() {
        return Err(malformed(format!("{what} must not be empty")));
    }
    if list.iter().any(|s| s.is_empty()) {
        return Err(malformed(format!(
            "{what} must not contain an empty string"
        )));
    }
    Ok(list)
}

/// Condition values may be strings, booleans or numbers; they compare as text.
fn condition_values(v: &Value, what: &str) -> DomainResult<Vec<String>> {
    let scalar = |i: &Value| match i {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(malformed(format!(
            "the values of {what} must be strings, booleans or numbers"
        ))),
    };
    let list = match v {
        Value::Array(items) => items.iter().map(scalar).collect::<DomainResult<Vec<_>>>()?,
        other => vec![scalar(other)?],
    };
    if list.is_empty() {
        return Err(malformed(format!("{what} has no values")));
    }
    Ok(list)
}

fn parse_network(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.trim().parse::<u8>().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some((ip, len))
}

fn in_network(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    // An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d) is the IPv4 address.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn parse_conditions(v: &Value) -> DomainResult<Vec<Condition>> {
    let Value::Object(ops) = v else {
        return Err(malformed("Condition must be an object"));
    };
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let (base, if_exists) = match op_name.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (op_name.as_str(), false),
        };
        let op = Op::parse(base).ok_or_else(|| {
            malformed(format!(
                "the condition operator {op_name:?} is not supported (String*, Arn*, Bool, \
                 IpAddress and NotIpAddress are, with an optional IfExists suffix)"
            ))
        })?;
        let Value::Object(keys) = keys else {
            return Err(malformed(format!(
                "the condition {op_name} must map keys to values"
            )));
        };
        if keys.is_empty() {
            return Err(malformed(format!("the condition {op_name} names no key")));
        }
        for (key, values) in keys {
            if key.is_empty() {
                return Err(malformed(format!(
                    "the condition {op_name} has an empty key"
                )));
            }
            let values = condition_values(values, &format!("{op_name} {key}"))?;
            let mut networks = Vec::new();
            if matches!(op, Op::IpAddress | Op::NotIpAddress) {
                for s in &values {
                    networks.push(parse_network(s).ok_or_else(|| {
                        malformed(format!(
                            "{op_name} {key}: {s:?} is not an IP address or CIDR block"
                        ))
                    })?);
                }
            }
            if op == Op::Bool && values.iter().any(|s| s != "true" && s != "false") {
                return Err(malformed(format!(
                    "Bool {key}: the values must be true or false"
                )));
            }
            out.push(Condition {
                op,
                if_exists,
                key: key.to_ascii_lowercase(),
                values,
                networks,
            });
        }
    }
    Ok(out)
}

fn validate_action(a: &str) -> DomainResult<()> {
    if a == "*" {
        return Ok(());
    }
    let colon = matches!(a.split_once(':'), Some((service, name)) if !service.is_empty() && !name.is_empty());
    // ARM's operations are `Provider.Namespace/resource/verb` (Microsoft.Billing/transfers/read).
    let arm = matches!(a.split_once('/'), Some((ns, rest)) if ns.contains('.') && !rest.is_empty());
    if (colon || arm) && !a.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(malformed(format!(
            "the action {a:?} is not \"*\", service:Action (iot:DescribeCertificate) or an ARM \
             operation (Microsoft.Billing/transfers/read)"
        )))
    }
}

fn patterns(
    o: &Map<String, Value>,
    yes: &str,
    no: &str,
    check: fn(&str) -> DomainResult<()>,
) -> DomainResult<Patterns> {
    match (o.get(yes), o.get(no)) {
        (Some(v), None) => {
            let l = string_list(v, yes)?;
            l.iter().try_for_each(|s| check(s))?;
            Ok(Patterns::Match(l.into_iter().map(Pattern::new).collect()))
        }
        (None, Some(v)) => {
            let l = string_list(v, no)?;
            l.iter().try_for_each(|s| check(s))?;
            Ok(Patterns::Not(l.into_iter().map(Pattern::new).collect()))
        }
        (Some(_), Some(_)) => Err(malformed(format!(
            "a statement has either {yes} or {no}, not both"
        ))),
        (None, None) => Err(malformed(format!("a statement needs {yes} or {no}"))),
    }
}

fn parse_statement(v: &Value) -> DomainResult<Statement> {
    let Value::Object(o) = v else {
        return Err(malformed("each Statement must be an object"));
    };
    for k in o.keys() {
        match k.as_str() {
            "Sid" | "Effect" | "Action" | "NotAction" | "Resource" | "NotResource"
            | "Condition" => {}
            "Principal" | "NotPrincipal" => {
                return Err(malformed(format!(
                    "{k} belongs in resource policies; a user's policy names no principal"
                )))
            }
            other => return Err(malformed(format!("unknown statement field {other:?}"))),
        }
    }
    let sid = match o.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(malformed("Sid must be a string")),
    };
    let effect = match o.get("Effect") {
        Some(Value::String(s)) if s == "Allow" => Effect::Allow,
        Some(Value::String(s)) if s == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(malformed(format!(
                "Effect must be \"Allow\" or \"Deny\", got {other}"
            )))
        }
        None => return Err(malformed("a statement needs an Effect")),
    };
    let actions = patterns(o, "Action", "NotAction", validate_action)?;
    let resources = patterns(o, "Resource", "NotResource", |_| Ok(()))?;
    let conditions = match o.get("Condition") {
        Some(c) => parse_conditions(c)?,
        None => Vec::new(),
    };
    Ok(Statement {
        sid,
        effect,
        actions,
        resources,
        conditions,
    })
}

impl PolicyDocument {
    /// Parses and validates a document; the error says what is wrong.
    pub fn parse(text: &str) -> DomainResult<PolicyDocument> {
        if text.chars().count() > MAX_DOCUMENT_CHARS {
            return Err(malformed(format!(
                "the policy document is longer than {MAX_DOCUMENT_CHARS} characters"
            )));
        }
        let v: Value = serde_json::from_str(text)
            .map_err(|e| malformed(format!("the policy document is not JSON: {e}")))?;
        let Value::Object(o) = v else {
            return Err(malformed("the policy document must be a JSON object"));
        };
        for k in o.keys() {
            if !matches!(k.as_str(), "Version" | "Statement" | "Id") {
                return Err(malformed(format!("unknown policy field {k:?}")));
            }
        }
        let version = match o.get("Version") {
            Some(Value::String(s)) if matches!(s.as_str(), "2012-10-17" | "2008-10-17" | "1") => {
                s.clone()
            }
            Some(other) => {
                return Err(malformed(format!(
                    "Version must be \"2012-10-17\", \"2008-10-17\" or (Alibaba) \"1\", got {other}"
                )))
            }
            None => return Err(malformed("the policy document needs a Version")),
        };
        let statements = match o.get("Statement") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(parse_statement)
                .collect::<DomainResult<Vec<_>>>()?,
            Some(Value::Array(_)) => return Err(malformed("Statement must not be empty")),
            Some(obj @ Value::Object(_)) => vec![parse_statement(obj)?],
            Some(_) => return Err(malformed("Statement must be an object or an array")),
            None => return Err(malformed("the policy document needs a Statement")),
        };
        Ok(PolicyDocument {
            version,
            statements,
        })
    }
}

/// `*` matches any run of characters, `?` exactly one; everything else literally.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        // Bytes are characters here: no allocation on the hot path (every request of a user
        // matches its action and resource against each statement).
        return glob(pattern.as_bytes(), text.as_bytes(), b'*', b'?', |a, b| {
            a == b
        });
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob(&p, &t, '*', '?', |a, b| a == b)
}

/// [`wildcard_match`] ignoring case (IAM action names match case-insensitively).
pub fn wildcard_match_ignore_case(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        return glob(pattern.as_bytes(), text.as_bytes(), b'*', b'?', |a, b| {
            a.eq_ignore_ascii_case(&b)
        });
    }
    wildcard_match(&pattern.to_lowercase(), &text.to_lowercase())
}

/// Glob matching with one backtrack point (the last `star`), linear in practice.
fn glob<T: Copy + PartialEq>(p: &[T], t: &[T], star: T, any: T, eq: impl Fn(T, T) -> bool) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where the last `*` was and which text position it is currently matched up to.
    let mut last_star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(&c) if c == star => {
                last_star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == any || eq(c, t[ti]) => {
                pi += 1;
                ti += 1;
            }
            _ => match last_star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    last_star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == star)
}

/// An action or resource being matched, looked at once for every pattern it meets.
struct Subject<'a> {
    text: &'a str,
    ascii: bool,
}

impl<'a> Subject<'a> {
    fn new(text: &'a str) -> Self {
        Subject {
            text,
            ascii: text.is_ascii(),
        }
    }
}

fn matches_patterns(p: &Patterns, value: &Subject<'_>, ignore_case: bool) -> bool {
    let hit = |list: &[Pattern]| {
        list.iter()
            .any(|pat| pat.matches_subject(value, ignore_case))
    };
    match p {
        Patterns::Match(l) => hit(l),
        Patterns::Not(l) => !hit(l),
    }
}

impl Condition {
    fn holds(&self, cx: &Context) -> bool {
        let Some(actual) = cx.get(&self.key) else {
            return self.if_exists || self.op.negated();
        };
        // A key with several values (none today) matches when any of them does.
        let any = |f: &dyn Fn(&str, &str) -> bool| {
            actual
                .iter()
                .any(|a| self.values.iter().any(|want| f(want, a)))
        };
        match self.op {
            Op::StringEquals => any(&|w, a| w == a),
            Op::StringNotEquals => !any(&|w, a| w == a),
            Op::StringEqualsIgnoreCase => any(&|w, a| w.to_lowercase() == a.to_lowercase()),
            Op::StringNotEqualsIgnoreCase => !any(&|w, a| w.to_lowercase() == a.to_lowercase()),
            // AWS treats ArnEquals like ArnLike: both take wildcards.
            Op::StringLike | Op::ArnEquals | Op::ArnLike => any(&|w, a| wildcard_match(w, a)),
            Op::StringNotLike | Op::ArnNotEquals | Op::ArnNotLike => {
                !any(&|w, a| wildcard_match(w, a))
            }
            Op::Bool => any(&|w, a| w.eq_ignore_ascii_case(a)),
            Op::IpAddress | Op::NotIpAddress => {
                let inside = actual.iter().any(|a| {
                    a.parse::<IpAddr>()
                        .map(|ip| self.networks.iter().any(|n| in_network(ip, *n)))
                        .unwrap_or(false)
                });
                inside == (self.op == Op::IpAddress)
            }
        }
    }
}

impl Statement {
    fn applies(&self, action: &Subject<'_>, resource: &Subject<'_>, cx: &Context) -> bool {
        matches_patterns(&self.actions, action, true)
            && matches_patterns(&self.resources, resource, false)
            && self.conditions.iter().all(|c| c.holds(cx))
    }
}

/// Evaluates one request against every document of the caller.
pub fn evaluate<'a>(
    documents: impl IntoIterator<Item = &'a PolicyDocument>,
    action: &str,
    resource: &str,
    cx: &Context,
) -> Decision {
    let mut allowed = false;
    let (action, resource) = (Subject::new(action), Subject::new(resource));
    for doc in documents {
        for s in &doc.statements {
            if s.applies(&action, &resource, cx) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

#[cfg(test)]
#[path = "iam_tests.rs"]
mod tests;
