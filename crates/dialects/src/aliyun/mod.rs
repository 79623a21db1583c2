//! Alibaba Cloud RPC dialects (one front end: parameters, v3/v1 signatures, replay protection,
//! the JSON error body) and the products behind it, chosen by the API version: CAS 2020-04-07
//! (`cas.rs`) and ApsaraMQ for MQTT's OnsMqtt 2020-04-20 (`onsmqtt.rs`).

/// An RPC product's actions: an enum with one variant per action, named exactly as Alibaba
/// Cloud names it, and its parse/name pair.
macro_rules! rpc_actions {
    ($(#[$doc:meta])* $($name:ident),* $(,)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Action { $($name),* }

        impl Action {
            pub fn parse(s: &str) -> Option<Action> {
                match s { $(stringify!($name) => Some(Action::$name),)* _ => None }
            }
            pub fn name(self) -> &'static str {
                match self { $(Action::$name => stringify!($name)),* }
            }
        }
    };
}
pub(crate) use rpc_actions;

pub mod cas;
pub mod error;
pub mod onsmqtt;
pub mod params;
pub mod signature;

use certplane_core::accounts::CloudKind;
use certplane_core::audit::{self, AuditEvent, Outcome};
use certplane_core::authz::{authorize, Principal};
use certplane_core::throttle::{self, Rate};
use certplane_core::Core;
use serde_json::Value;
use tracing::Instrument;

use crate::wire::{Request, Response};
use error::{from_api, from_domain, from_sig, ApiError, RpcError};
use params::Params;

/// The API version of the SSL Certificates Service.
pub const CAS_VERSION: &str = "2020-04-07";

/// What a request is throttled as: the dialect, the throttle action name (`cas:<Action>`,
/// `onsmqtt:<Action>`) and the product's published default rate.
struct ThrottleTarget {
    dialect: &'static str,
    action: String,
    default: Rate,
}

impl ThrottleTarget {
    /// `None` for an action or version that is refused anyway.
    fn of(version: &str, action: &str) -> Option<ThrottleTarget> {
        match version {
            CAS_VERSION => cas::Action::parse(action).map(|a| ThrottleTarget {
                dialect: "aliyun-cas",
                action: format!("cas:{}", a.name()),
                default: Rate::per_second(cas::CALLS_PER_SECOND_PER_USER),
            }),
            onsmqtt::ONSMQTT_VERSION => onsmqtt::Action::parse(action).map(|a| ThrottleTarget {
                dialect: "aliyun-onsmqtt",
                action: format!("onsmqtt:{}", a.name()),
                default: Rate::per_second(onsmqtt::CALLS_PER_SECOND_PER_USER),
            }),
            _ => None,
        }
    }
}

/// The account dev mode uses when the AccessKeyId is not a 16-digit uid.
pub const DEFAULT_DEV_UID: &str = "1000000000000000";

pub struct Aliyun {
    pub core: Core,
    pub dev: bool,
}

fn is_uid(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit())
}

impl Aliyun {
    pub fn new(core: Core, dev: bool) -> Self {
        Aliyun { core, dev }
    }

    /// An Alibaba Cloud RPC request names its version in `x-acs-version` or in `Version` and
    /// `Action` query parameters.
    pub fn recognises(req: &Request) -> bool {
        req.headers.contains_key("x-acs-version")
            || (req.raw_query.contains("Version=") && req.raw_query.contains("Action="))
    }

    pub async fn handle(&self, req: Request) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string().to_uppercase();
        let host = req.header("host").unwrap_or("certplane").to_string();
        // Every log line of the call carries the RequestId the client sees in the body.
        let span = tracing::info_span!("request", request_id = %request_id, dialect = "aliyun");
        let mut operation = None;
        let result = self
            .handle_inner(&req, &request_id, &mut operation)
            .instrument(span.clone())
            .await;
        let response = match result {
            Ok(mut v) => {
                if let Some(o) = v.as_object_mut() {
                    o.insert("RequestId".into(), Value::String(request_id));
                }
                Response::json(200, &v)
            }
            Err(e) => from_api(e).render(&request_id, &host),
        };
        response.for_operation(operation).logged_in(&span)
    }

    /// Takes a token for the caller, before anything is written for the request (its nonce
    /// included): a throttled call changes nothing.
    fn throttle(&self, target: Option<&ThrottleTarget>, caller: &str) -> Result<(), ApiError> {
        match target {
            Some(t) => self
                .core
                .throttle_call(t.dialect, caller, &t.action, t.default)
                .map_err(|e| from_domain(e).into()),
            None => Ok(()),
        }
    }

    /// Who signed the request: the uid and the user inside it. Throttled (`target`) once the
    /// signature is known good, so a forged request cannot spend another caller's tokens.
    async fn authenticate(
        &self,
        req: &Request,
        query: &[(String, String)],
        all: &[(String, String)],
        target: Option<&ThrottleTarget>,
    ) -> Result<Principal, ApiError> {
        let claim =
            match signature::claim(req, all) {
                None => return Err(RpcError::new(
                    400,
                    "IncompleteSignature",
                    "The request is not signed: an ACS3-HMAC-SHA256 Authorization header or the \
                     AccessKeyId and Signature parameters are required.",
                )
                .into()),
                Some(c) => c.map_err(from_sig)?,
            };
        if self.dev {
            let uid = if is_uid(&claim.access_key_id) {
                claim.access_key_id.clone()
            } else {
                DEFAULT_DEV_UID.to_string()
            };
            if self.core.throttle.enabled() {
                let caller = throttle::caller_of(&uid, None, true, Some(&claim.access_key_id));
                self.throttle(target, &caller)?;
            }
            return Ok(Principal::dev(uid, Some(claim.access_key_id)));
        }
        let resolved = match self.core.resolve_access_key(&claim.access_key_id).await {
            Ok(Some(r)) if r.key.kind == CloudKind::Aliyun => r,
            Ok(_) => {
                return Err(RpcError::new(
                    404,
                    "InvalidAccessKeyId.NotFound",
                    "Specified access key is not found.",
                )
                .into())
            }
            Err(e) => return Err(from_domain(e).into()),
        };
        let key = &resolved.key;
        if key.disabled {
            return Err(RpcError::new(
                400,
                "InvalidAccessKeyId.Inactive",
                "Specified access key is disabled.",
            )
            .into());
        }
        let now = self.core.now();
        signature::verify(req, &claim, query, all, &key.secret, now).map_err(from_sig)?;
        if self.core.throttle.enabled() {
            let caller = throttle::caller_of(&key.account, key.user.as_deref(), false, None);
            self.throttle(target, &caller)?;
        }
        // A timestamp may be up to the skew either side of now, so a nonce must be remembered
        // for twice the skew to refuse every replay the timestamp check lets through.
        let first_use = self
            .core
            .first_use_of_nonce("aliyun", &key.id, &claim.nonce, 2 * signature::MAX_SKEW_MS)
            .await
            .map_err(from_domain)?;
        if !first_use {
            return Err(RpcError::new(
                400,
                "SignatureNonceUsed",
                "Specified signature nonce was used already.",
            )
            .into());
        }
        let identity = match resolved.identity.clone() {
            Some(i) => i,
            // The key's user was deleted while the key was being read.
            None => {
                return Err(RpcError::new(
                    404,
                    "InvalidAccessKeyId.NotFound",
                    "Specified access key is not found.",
                )
                .into())
            }
        };
        Ok(Principal::verified(
            key.account.clone(),
            Some(key.id.clone()),
            identity,
            req.source_ip,
        ))
    }

    fn audit_event(
        &self,
        principal: &Principal,
        request_id: &str,
        dialect: &str,
        action: &str,
        resource: &str,
    ) -> AuditEvent {
        AuditEvent::for_call(
            principal,
            request_id,
            dialect,
            action,
            resource,
            self.core.now(),
        )
    }

    /// Records a denial; answers the error to return.
    async fn denied(&self, event: &AuditEvent, e: ApiError) -> ApiError {
        let wire = from_api(e.clone());
        crate::audit_outcome(&self.core, event, Outcome::Denied, &wire.code, wire.status).await;
        e
    }

    /// Records a failed mutating call; passes the result through.
    async fn audited(
        &self,
        event: &AuditEvent,
        result: Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        if let Err(e) = &result {
            if audit::is_mutating(&event.action) {
                let wire = from_api(e.clone());
                crate::audit_outcome(&self.core, event, Outcome::Error, &wire.code, wire.status)
                    .await;
            }
        }
        result
    }

    async fn handle_inner(
        &self,
        req: &Request,
        request_id: &str,
        operation: &mut Option<&'static str>,
    ) -> Result<Value, ApiError> {
        let (query, all) =
            params::read(req).map_err(|m| RpcError::new(400, "InvalidParameter", m))?;
        let p = Params::new(all.clone());
        let action = match req.header("x-acs-action") {
            Some(a) => a.to_string(),
            None => p.required("Action")?.to_string(),
        };
        let version = match req.header("x-acs-version") {
            Some(v) => v.to_string(),
            None => p.required("Version")?.to_string(),
        };
        // Named only when throttling is on: the name costs an allocation per request.
        let target = if self.core.throttle.enabled() {
            ThrottleTarget::of(&version, &action)
        } else {
            None
        };
        let principal = self
            .authenticate(req, &query, &all, target.as_ref())
            .await?;
        let uid = principal.account.clone();
        match version.as_str() {
            CAS_VERSION => {
                let Some(action) = cas::Action::parse(&action) else {
                    return Err(cas::unknown_action(&action));
                };
                *operation = Some(action.name());
                let ram = action.ram_action();
                let resource = format!("acs:cas:*:{uid}:*");
                let event = self.audit_event(&principal, request_id, "aliyun-cas", &ram, &resource);
                if let Err(e) = authorize(&principal, &ram, &resource) {
                    return Err(self.denied(&event, from_domain(e).into()).await);
                }
                let result =
                    audit::in_call(event.clone(), cas::dispatch(&self.core, &uid, action, &p))
                        .await;
                self.audited(&event, result).await
            }
            onsmqtt::ONSMQTT_VERSION => {
                let Some(action) = onsmqtt::Action::parse(&action) else {
                    return Err(onsmqtt::unknown_action(&action));
                };
                *operation = Some(action.name());
                let instance = onsmqtt::instance_param(&p)?;
                // The instance's region is not known before it is read; `*` as CAS does.
                let ram = action.ram_action();
                let resource = onsmqtt::instance_arn("*", &uid, &instance);
                let event =
                    self.audit_event(&principal, request_id, "aliyun-onsmqtt", ram, &resource);
                if let Err(e) = authorize(&principal, ram, &resource) {
                    return Err(self.denied(&event, error::onsmqtt_error(e.into())).await);
                }
                let result =
                    audit::in_call(event.clone(), onsmqtt::dispatch(&self.core, &uid, action, &p))
                        .await;
                self.audited(&event, result).await
            }
            other => Err(RpcError::new(
                400,
                "InvalidVersion",
                format!("Specified parameter Version {other:?} is not valid; certplane serves cas {CAS_VERSION} and OnsMqtt {}.", onsmqtt::ONSMQTT_VERSION),
            )
            .into()),
        }
    }
}
