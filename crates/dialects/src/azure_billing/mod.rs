//! Azure Billing transfers (Azure Resource Manager, `Microsoft.Billing`), as azure-mgmt-billing
//! sends it (api-version 2024-04-01), plus the 2019-10-01-preview routes and shapes of the
//! public reference (DELETE cancel, `initiateTransfer`, `acceptTransfer`, ...). One request:
//! api-version → bearer token → route → authorize → handler → core → render.
//!
//! The Entra token endpoint the SDK's credentials talk to is in `oauth.rs`; tokens are verified
//! in `token.rs`; shapes are in `transfers.rs`; every error goes through `error.rs`.

pub mod error;
pub mod oauth;
pub mod token;
mod transfers;

use std::sync::Arc;

use certplane_core::audit::{self, AuditEvent, Outcome};
use certplane_core::authz::{authorize, Principal};
use certplane_core::billing::{BillingScope, SectionKind};
use certplane_core::throttle::Rate;
use certplane_core::Core;
use tracing::Instrument;

use crate::wire::{Request, Response};
use error::{from_domain, ArmError, Side};
use token::{Caller, TokenError, TokenKeys};

pub const API_2024: &str = "2024-04-01";
pub const API_2019: &str = "2019-10-01-preview";

/// The wire version a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V2024,
    V2019Preview,
}

impl ApiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V2024 => API_2024,
            ApiVersion::V2019Preview => API_2019,
        }
    }
}

pub struct AzureBilling {
    pub core: Core,
    pub dev: bool,
    /// `https` when the listener serves TLS (used in the issuer and discovery URLs).
    pub scheme: &'static str,
    pub keys: oauth::Keys,
}

/// JSON with the content type ARM sends.
pub(crate) fn json_response(status: u16, v: &serde_json::Value) -> Response {
    Response {
        status,
        headers: vec![("content-type", "application/json; charset=utf-8".into())],
        body: serde_json::to_vec(v).unwrap_or_default(),
        operation: None,
    }
}

/// What a request asks for, after the `/providers/Microsoft.Billing` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    ListScoped(BillingScope),
    Initiate(BillingScope, String),
    /// 2019-10-01-preview `POST .../initiateTransfer`: the server names the transfer.
    InitiateNamed(BillingScope),
    GetScoped(BillingScope, String),
    Cancel(BillingScope, String),
    ListRecipient,
    GetRecipient(String),
    Accept(String),
    Validate(String),
    Decline(String),
}

impl Op {
    /// The operation's name, for the metrics' operation label (ARM's operation ids).
    fn name(&self) -> &'static str {
        match self {
            Op::ListScoped(_) => "Transfers_List",
            Op::Initiate(..) | Op::InitiateNamed(_) => "Transfers_Initiate",
            Op::GetScoped(..) => "Transfers_Get",
            Op::Cancel(..) => "Transfers_Cancel",
            Op::ListRecipient => "RecipientTransfers_List",
            Op::GetRecipient(_) => "RecipientTransfers_Get",
            Op::Accept(_) => "RecipientTransfers_Accept",
            Op::Validate(_) => "RecipientTransfers_Validate",
            Op::Decline(_) => "RecipientTransfers_Decline",
        }
    }

    fn side(&self) -> Side {
        match self {
            Op::ListScoped(_)
            | Op::Initiate(..)
            | Op::InitiateNamed(_)
            | Op::GetScoped(..)
            | Op::Cancel(..) => Side::Initiator,
            _ => Side::Recipient,
        }
    }

    /// The RBAC action name and the resource it touches, for the authorization seam.
    fn action(&self) -> (String, String) {
        let scoped = |scope: &BillingScope, verb: &str| {
            let kind = match scope.kind {
                SectionKind::Customer => "customers",
                SectionKind::InvoiceSection => "invoiceSections",
            };
            (
                format!(
                    "Microsoft.Billing/billingAccounts/billingProfiles/{kind}/transfers/{verb}"
                ),
                scope.path(),
            )
        };
        let recipient = |name: &str, verb: &str| {
            (
                format!("Microsoft.Billing/transfers/{verb}"),
                format!("/providers/Microsoft.Billing/transfers/{name}"),
            )
        };
        match self {
            Op::ListScoped(s) | Op::GetScoped(s, _) => scoped(s, "read"),
            Op::Initiate(s, _) | Op::InitiateNamed(s) => scoped(s, "write"),
            Op::Cancel(s, _) => scoped(s, "cancel/action"),
            Op::ListRecipient => recipient("", "read"),
            Op::GetRecipient(n) => recipient(n, "read"),
            Op::Accept(n) => recipient(n, "accept/action"),
            Op::Validate(n) => recipient(n, "validate/action"),
            Op::Decline(n) => recipient(n, "decline/action"),
        }
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Routes the decoded segments after `providers/Microsoft.Billing` (public for the fuzzer).
pub fn route(method: &str, segs: &[String], v: ApiVersion) -> Result<Op, ArmError> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let not_found = || {
        ArmError::new(
            404,
            "InvalidResourceType",
            format!(
                "The resource type '{}' could not be found in the namespace 'Microsoft.Billing' for api version '{}'.",
                s.iter().step_by(2).copied().collect::<Vec<_>>().join("/"),
                v.as_str()
            ),
        )
    };
    let bad_method = || {
        ArmError::new(
            405,
            "HttpMethodNotAllowed",
            format!("The HTTP method {method} is not supported by this resource."),
        )
    };
    let scope_of = |s: &[&str]| -> Option<BillingScope> {
        match s {
            [a, acct, p, prof, kind, name, ..]
                if eq(a, "billingAccounts") && eq(p, "billingProfiles") =>
            {
                let kind = if eq(kind, "customers") {
                    SectionKind::Customer
                } else if eq(kind, "invoiceSections") {
                    SectionKind::InvoiceSection
                } else {
                    return None;
                };
                Some(BillingScope {
                    account: acct.to_string(),
                    profile: prof.to_string(),
                    kind,
                    section: name.to_string(),
                })
            }
            _ => None,
        }
    };
    let preview = v == ApiVersion::V2019Preview;
    if let Some(scope) = scope_of(&s) {
        let op = match (&s[6..], method) {
            ([t], "GET") if eq(t, "transfers") => Op::ListScoped(scope),
            ([t], _) if eq(t, "transfers") => return Err(bad_method()),
            ([i], "POST") if preview && eq(i, "initiateTransfer") => Op::InitiateNamed(scope),
            ([t, n], "PUT") if eq(t, "transfers") && !preview => Op::Initiate(scope, n.to_string()),
            ([t, n], "GET") if eq(t, "transfers") => Op::GetScoped(scope, n.to_string()),
            ([t, n], "DELETE") if eq(t, "transfers") && preview => Op::Cancel(scope, n.to_string()),
            ([t, _], _) if eq(t, "transfers") => return Err(bad_method()),
            ([t, n, c], "POST") if eq(t, "transfers") && eq(c, "cancel") && !preview => {
                Op::Cancel(scope, n.to_string())
            }
            _ => return Err(not_found()),
        };
        return Ok(op);
    }
    let op = match (s.as_slice(), method) {
        ([t], "GET") if eq(t, "transfers") => Op::ListRecipient,
        ([t, n], "GET") if eq(t, "transfers") => Op::GetRecipient(n.to_string()),
        ([t, n, a], "POST") if eq(t, "transfers") => {
            let name = n.to_string();
            match (a.to_ascii_lowercase().as_str(), preview) {
                ("accept", false) | ("accepttransfer", true) => Op::Accept(name),
                ("validate", false) | ("validatetransfer", true) => Op::Validate(name),
                ("decline", false) | ("declinetransfer", true) => Op::Decline(name),
                _ => return Err(not_found()),
            }
        }
        ([t, ..], _) if eq(t, "transfers") && s.len() <= 3 => return Err(bad_method()),
        _ => return Err(not_found()),
    };
    Ok(op)
}

/// ARM's api-version rules: required; a well-formed but unserved one is
/// `NoRegisteredProviderFound`, a malformed one `InvalidApiVersionParameter`.
fn api_version(query: &[(String, String)]) -> Result<ApiVersion, ArmError> {
    let Some((_, v)) = query.iter().find(|(k, _)| eq(k, "api-version")) else {
        return Err(ArmError::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    match v.as_str() {
        API_2024 => Ok(ApiVersion::V2024),
        API_2019 => Ok(ApiVersion::V2019Preview),
        other => {
            let b = other.as_bytes();
            let well_formed = b.len() >= 10
                && b[..10].iter().enumerate().all(|(i, c)| {
                    if i == 4 || i == 7 {
                        *c == b'-'
                    } else {
                        c.is_ascii_digit()
                    }
                })
                && (b.len() == 10 || other[10..].starts_with('-'));
            if well_formed {
                Err(ArmError::bad_request(
                    "NoRegisteredProviderFound",
                    format!(
                        "No registered resource provider found for API version '{other}' and type 'transfers'. The supported api-versions are '{API_2024}, {API_2019}'."
                    ),
                ))
            } else {
                Err(ArmError::bad_request(
                    "InvalidApiVersionParameter",
                    format!(
                        "The api-version '{other}' is invalid. The supported versions are '{API_2024}, {API_2019}'."
                    ),
                ))
            }
        }
    }
}

impl AzureBilling {
    pub fn new(core: Core, dev: bool, tls: bool, keys: Option<Arc<TokenKeys>>) -> Self {
        AzureBilling {
            core,
            dev,
            scheme: if tls { "https" } else { "http" },
            keys,
        }
    }

    /// `/providers/Microsoft.Billing` and below (ARM is case-insensitive on these names).
    pub fn recognises(req: &Request) -> bool {
        let p = req.raw_path.as_bytes();
        let prefix = b"/providers/microsoft.billing";
        p.len() >= prefix.len()
            && p[..prefix.len()].eq_ignore_ascii_case(prefix)
            && (p.len() == prefix.len() || p[prefix.len()] == b'/')
    }

    /// The Entra endpoints (token, discovery, keys).
    pub fn recognises_oauth(req: &Request) -> bool {
        oauth::route(req).is_some()
    }

    /// Renders a refusal made before the dialect ran (oversized body).
    pub fn error(status: u16, code: &str, message: String) -> Response {
        with_ids(ArmError::new(status, code, message).render(), None)
    }

    pub async fn handle(&self, req: Request) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        // Every log line of the call carries the id the client sees in x-ms-request-id.
        let span =
            tracing::info_span!("request", request_id = %request_id, dialect = "azure-billing");
        if let Some((tenant, r)) = oauth::route(&req) {
            if !Self::recognises(&req) {
                let name = match r {
                    oauth::OauthRoute::OpenIdConfiguration => "OpenIdConfiguration",
                    oauth::OauthRoute::Token => "Token",
                    oauth::OauthRoute::Keys => "Keys",
                };
                return self
                    .handle_oauth(req, tenant, r)
                    .instrument(span.clone())
                    .await
                    .for_operation(Some(name))
                    .logged_in(&span);
            }
        }
        let correlation = req
            .header("x-ms-correlation-request-id")
            .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .map(str::to_string);
        let mut operation = None;
        let r = match self
            .handle_inner(&req, &request_id, &mut operation)
            .instrument(span.clone())
            .await
        {
            Ok(r) => r,
            Err(e) => e.render(),
        };
        with_request_id(r, request_id, correlation)
            .for_operation(operation)
            .logged_in(&span)
    }

    fn authenticate(&self, req: &Request) -> Result<Caller, ArmError> {
        let Some(h) = req.header("authorization") else {
            return Err(ArmError::unauthenticated(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            ));
        };
        let Some(token) = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Err(ArmError::unauthenticated(
                "AuthenticationFailedInvalidHeader",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            ));
        };
        let Some(keys) = &self.keys else {
            return Err(ArmError::new(
                503,
                "ServiceUnavailable",
                "The token signing key is not loaded.",
            ));
        };
        match keys.verify(token, self.core.now(), self.dev) {
            Ok(c) => Ok(c),
            Err(TokenError::Expired) => Err(ArmError::unauthenticated(
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            )),
            Err(TokenError::Invalid(m)) => Err(ArmError::unauthenticated(
                "InvalidAuthenticationToken",
                format!("The access token is invalid. {m}"),
            )),
        }
    }

    /// Who the token's holder is. Outside `--dev` the token's OAuth client decides: the
    /// tenant's root identity, or its user with the user's policies; a token whose client (or
    /// user) is gone is refused, as what it may do is no longer known.
    async fn principal(&self, token: &Caller, req: &Request) -> Result<Principal, ArmError> {
        if self.dev {
            return Ok(Principal::dev(token.email.clone(), token.client_id.clone()));
        }
        let gone = || {
            ArmError::unauthenticated(
                "InvalidAuthenticationToken",
                "The access token is invalid. Its client no longer exists.",
            )
        };
        let (Some(tenant), Some(client_id)) = (&token.tenant, &token.client_id) else {
            return Err(gone());
        };
        match self.core.oauth_identity(tenant, client_id).await {
            Ok(Some(identity)) => Ok(Principal::verified(
                token.email.clone(),
                Some(client_id.clone()),
                identity,
                req.source_ip,
            )),
            Ok(None) => Err(gone()),
            Err(e) => Err(from_domain(e, Side::Initiator)),
        }
    }

    async fn handle_inner(
        &self,
        req: &Request,
        request_id: &str,
        operation: &mut Option<&'static str>,
    ) -> Result<Response, ArmError> {
        let query = req
            .query_pairs()
            .map_err(|m| ArmError::bad_request("InvalidQueryParameter", m))?;
        let version = api_version(&query)?;
        let token = self.authenticate(req)?;
        let principal = self.principal(&token, req).await?;
        let caller = token.email;
        let segs = req
            .segments()
            .map_err(|m| ArmError::bad_request("InvalidResourceName", m))?;
        let op = route(req.method.as_str(), segs.get(2..).unwrap_or(&[]), version)?;
        *operation = Some(op.name());
        let (action, resource) = op.action();
        let side = op.side();
        // ARM counts reads and writes in separate buckets per principal; before anything else
        // touches the store, so a throttled call changes nothing and is not audited.
        let (bucket, default) = throttle_bucket(&action);
        self.core
            .throttle_principal("azure-billing", &principal, bucket, default)
            .map_err(|e| from_domain(e, side))?;
        let event = AuditEvent::for_call(
            &principal,
            request_id,
            "azure-billing",
            &action,
            &resource,
            self.core.now(),
        );
        if let Err(e) = authorize(&principal, &action, &resource) {
            let e = from_domain(e, side);
            crate::audit_outcome(&self.core, &event, Outcome::Denied, &e.code, e.status).await;
            return Err(e);
        }
        let skiptoken = query
            .iter()
            .find(|(k, _)| eq(k, "$skiptoken"))
            .map(|(_, v)| v.clone());
        let client_request_id = req.header("x-ms-client-request-id").map(str::to_string);
        let result = audit::in_call(
            event.clone(),
            transfers::dispatch(
                &self.core,
                &caller,
                op,
                version,
                &req.body,
                skiptoken.as_deref(),
                client_request_id.as_deref(),
            ),
        )
        .await;
        if let Err(e) = &result {
            if audit::is_mutating(&action) {
                crate::audit_outcome(&self.core, &event, Outcome::Error, &e.code, e.status).await;
            }
        }
        result
    }
}

/// ARM's documented per-principal tenant limits: 12,000 reads and 1,200 writes per hour. A
/// bucket that holds the hour's calls and refills at the hourly rate keeps to them.
fn throttle_bucket(action: &str) -> (&'static str, Rate) {
    if action.ends_with("/read") {
        ("billing:read", Rate::per_hour(12_000))
    } else {
        ("billing:write", Rate::per_hour(1_200))
    }
}

/// Every ARM answer names the request (`x-ms-request-id`) and its correlation id.
fn with_ids(r: Response, correlation: Option<String>) -> Response {
    with_request_id(r, uuid::Uuid::new_v4().to_string(), correlation)
}

fn with_request_id(r: Response, id: String, correlation: Option<String>) -> Response {
    let corr = correlation.unwrap_or_else(|| id.clone());
    r.with_header("x-ms-request-id", id)
        .with_header("x-ms-correlation-request-id", corr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn routes_both_versions() {
        let base = "billingAccounts/1/billingProfiles/p/customers/c/transfers";
        let v4 = ApiVersion::V2024;
        let v19 = ApiVersion::V2019Preview;
        assert!(matches!(
            route("GET", &segs(base), v4),
            Ok(Op::ListScoped(_))
        ));
        assert!(matches!(
            route("PUT", &segs(&format!("{base}/t1")), v4),
            Ok(Op::Initiate(_, n)) if n == "t1"
        ));
        assert!(matches!(
            route("POST", &segs(&format!("{base}/t1/cancel")), v4),
            Ok(Op::Cancel(..))
        ));
        assert!(matches!(
            route("DELETE", &segs(&format!("{base}/t1")), v19),
            Ok(Op::Cancel(..))
        ));
        assert!(route("DELETE", &segs(&format!("{base}/t1")), v4).is_err());
        assert!(matches!(
            route(
                "POST",
                &segs("billingAccounts/1/billingProfiles/p/invoiceSections/s/initiateTransfer"),
                v19
            ),
            Ok(Op::InitiateNamed(_))
        ));
        assert!(matches!(
            route("POST", &segs("transfers/t/acceptTransfer"), v19),
            Ok(Op::Accept(_))
        ));
        assert!(route("POST", &segs("transfers/t/acceptTransfer"), v4).is_err());
        assert!(matches!(
            route("POST", &segs("transfers/t/decline"), v4),
            Ok(Op::Decline(_))
        ));
        assert!(matches!(
            route("GET", &segs("transfers"), v4),
            Ok(Op::ListRecipient)
        ));
    }

    #[test]
    fn api_versions() {
        let q = |v: &str| vec![("api-version".to_string(), v.to_string())];
        assert_eq!(api_version(&q(API_2024)), Ok(ApiVersion::V2024));
        assert_eq!(api_version(&q(API_2019)), Ok(ApiVersion::V2019Preview));
        assert_eq!(
            api_version(&[]).map_err(|e| e.code),
            Err("MissingApiVersionParameter".to_string())
        );
        assert_eq!(
            api_version(&q("2020-05-01")).map_err(|e| e.code),
            Err("NoRegisteredProviderFound".to_string())
        );
        assert_eq!(
            api_version(&q("latest")).map_err(|e| e.code),
            Err("InvalidApiVersionParameter".to_string())
        );
    }
}
