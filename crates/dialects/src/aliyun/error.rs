//! The one place errors become Alibaba Cloud RPC wire errors: status and `Code`, with the JSON
//! body `{"RequestId", "HostId", "Code", "Message", "Recommend"}` the SDKs read.
//! Exhaustive on `DomainError`: a new variant breaks this file until it is mapped.

use certplane_core::error::{DomainError, Resource};
use serde_json::json;

use super::params::ParamError;
use super::signature::SigError;
use crate::wire::Response;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// `x-acs-retry-after` (milliseconds): sent with throttling errors only; the SDK raises
    /// its ThrottlingException for any error carrying it.
    pub retry_after_ms: Option<u64>,
}

/// Whatever a handler can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    Domain(DomainError),
    Param(ParamError),
    Rpc(RpcError),
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Domain(e)
    }
}
impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        ApiError::Param(e)
    }
}
impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> Self {
        ApiError::Rpc(e)
    }
}

impl RpcError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        RpcError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// The gateway's per-user flow control (spec: 400 + `x-acs-retry-after`), with the
    /// message Alibaba Cloud's gateway sends.
    pub fn throttled(retry_after_ms: u64) -> Self {
        RpcError {
            retry_after_ms: Some(retry_after_ms.max(1)),
            ..RpcError::new(
                400,
                "Throttling.User",
                "Request was denied due to user flow control.",
            )
        }
    }

    pub fn render(&self, request_id: &str, host: &str) -> Response {
        let r = Response::json(
            self.status,
            &json!({
                "RequestId": request_id,
                "HostId": host,
                "Code": self.code,
                "Message": self.message,
                "Recommend": format!("certplane: see COMPATIBILITY.md for {}", self.code),
            }),
        );
        match self.retry_after_ms {
            Some(ms) => r.with_header("x-acs-retry-after", ms.to_string()),
            None => r,
        }
    }
}

pub fn from_sig(e: SigError) -> RpcError {
    match e {
        SigError::Incomplete(m) => RpcError::new(400, "IncompleteSignature", m),
        SigError::BadTimestamp(m) => RpcError::new(400, "InvalidTimeStamp.Format", m),
        SigError::Expired(m) => RpcError::new(400, "InvalidTimeStamp.Expired", m),
        SigError::Mismatch => RpcError::new(
            400,
            "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation.",
        ),
    }
}

fn param_name_code(prefix: &str, name: &str) -> String {
    // `Tags.1.Key` → `Tags`; gateway codes name the parameter.
    let base = name.split('.').next().unwrap_or(name);
    format!("{prefix}{base}")
}

pub fn from_api(e: ApiError) -> RpcError {
    match e {
        ApiError::Rpc(r) => r,
        ApiError::Param(ParamError::Missing(name)) => RpcError::new(
            400,
            param_name_code("Missing", &name),
            format!("{name} is mandatory for this action."),
        ),
        ApiError::Param(ParamError::Invalid(name, m)) => {
            RpcError::new(400, param_name_code("Invalid", &name), m)
        }
        ApiError::Domain(d) => from_domain(d),
    }
}

pub fn from_domain(e: DomainError) -> RpcError {
    let msg = e.to_string();
    match e {
        DomainError::NotFound { resource, .. } => match resource {
            Resource::Package => RpcError::new(404, "NotFoundPackage", msg),
            Resource::Order => RpcError::new(404, "NotFoundOrder", msg),
            Resource::UserCertificate => RpcError::new(404, "NotFoundCertificate", msg),
            _ => RpcError::new(404, "NotFound", msg),
        },
        DomainError::AlreadyExists { resource, .. } => match resource {
            Resource::UserCertificate => RpcError::new(400, "NameRepeat", msg),
            _ => RpcError::new(400, "AlreadyExists", msg),
        },
        DomainError::InvalidInput(_) | DomainError::MalformedDocument(_) => {
            RpcError::new(400, "InvalidParameter", msg)
        }
        DomainError::WrongState { .. } => RpcError::new(403, "OrderStateError", msg),
        DomainError::TransferFinished { .. } => RpcError::new(403, "OrderStateError", msg),
        DomainError::NotPermitted(_) => RpcError::new(403, "NoPermission", msg),
        DomainError::StillAttached(_) => RpcError::new(400, "ResourceInUse", msg),
        DomainError::LimitExceeded(_) => RpcError::new(400, "QuotaExceeded", msg),
        DomainError::QuotaExhausted(_) => RpcError::new(404, "NotRemainCount", msg),
        DomainError::BadCertificate(_) => RpcError::new(400, "InvalidCertificate", msg),
        DomainError::RegistrationCodeMismatch(_) | DomainError::RegistrationCodeUsed(_) => {
            RpcError::new(400, "InvalidParameter", msg)
        }
        DomainError::AmbiguousIssuer(_) => RpcError::new(400, "InvalidParameter", msg),
        // The gateway's RAM denial, naming what was refused as Alibaba's message does.
        DomainError::AccessDenied {
            action, resource, ..
        } => RpcError::new(
            403,
            "NoPermission",
            format!(
                "You are not authorized to do this action. Resource: {resource} Action: {action}"
            ),
        ),
        DomainError::NotImplemented(_) => RpcError::new(404, "InvalidApi.NotFound", msg),
        DomainError::Throttled { retry_after_ms, .. } => RpcError::throttled(retry_after_ms),
        DomainError::Stale | DomainError::Unavailable(_) => {
            RpcError::new(503, "ServiceUnavailable", msg)
        }
        DomainError::Internal(_) => {
            tracing::warn!(error = %msg, "internal failure");
            RpcError::new(
                500,
                "InternalError",
                "The request processing has failed due to some unknown error.",
            )
        }
    }
}

/// The documented message of ParameterFieldCheckFailed, followed by what is wrong.
fn parameter_error(detail: &str) -> RpcError {
    RpcError::new(
        400,
        "ParameterFieldCheckFailed",
        format!(
            "Failed to validate the parameters. The parameters may be missing or invalid. \
             {detail}"
        ),
    )
}

/// ApsaraMQ for MQTT's wire errors. Where the documentation answers a client mistake with HTTP
/// 500 (FindDeviceBySnError, MqttInstanceNotFound in older tables), the code is kept and the
/// status is 4xx, as ApsaraMQ's own status adjustment did (COMPATIBILITY.md).
pub fn onsmqtt_error(e: ApiError) -> ApiError {
    ApiError::Rpc(match e {
        ApiError::Rpc(r) => r,
        ApiError::Param(ParamError::Missing(name)) => {
            parameter_error(&format!("{name} is mandatory for this action."))
        }
        ApiError::Param(ParamError::Invalid(_, m)) => parameter_error(&m),
        ApiError::Domain(d) => match d {
            DomainError::NotFound {
                resource: Resource::CaCertificate,
                id,
            } => RpcError::new(
                400,
                "FindCaBySnError",
                format!("Failed to find the CA by the SN. Please check sn is valid. ({id})"),
            ),
            DomainError::NotFound {
                resource: Resource::Certificate,
                id,
            } => RpcError::new(
                400,
                "FindDeviceBySnError",
                format!(
                    "Failed to find the device certificate by the SN. Please check sn is valid \
                     ({id})"
                ),
            ),
            DomainError::NotFound {
                resource: Resource::MqttInstance,
                id,
            } => RpcError::new(
                400,
                "MqttInstanceNotFound",
                format!("Specified instance is not found. ({id})"),
            ),
            DomainError::AlreadyExists {
                resource: Resource::CaCertificate,
                ..
            } => RpcError::new(
                401,
                "SnNotUnique",
                "Sn is not unique in global. This CA certificate is already registered.",
            ),
            DomainError::RegistrationCodeMismatch(m) => RpcError::new(
                400,
                "RegisterCodeError",
                format!("Register code error in verification certificate. ({m})"),
            ),
            DomainError::RegistrationCodeUsed(m) => RpcError::new(
                401,
                "RegisterCodeUsed",
                format!("Register code has been used. ({m})"),
            ),
            DomainError::BadCertificate(m) => RpcError::new(
                401,
                "CertificateContentError",
                format!(
                    "Certificate content error, please check ca/verification certificate \
                     content. BasicConstraints extension should be set to true in CA \
                     certificate. ({m})"
                ),
            ),
            DomainError::LimitExceeded(m) => RpcError::new(
                401,
                "CaNumExceed",
                format!("CA certificate num exceed. ({m})"),
            ),
            DomainError::InvalidInput(m)
            | DomainError::MalformedDocument(m)
            | DomainError::WrongState { message: m, .. } => parameter_error(&m),
            DomainError::NotPermitted(_) => RpcError::new(
                403,
                "MqttOwnerCheckError",
                "Failed to validate the instance permission.",
            ),
            // Seed 003's code for a failed RAM check.
            DomainError::AccessDenied { .. } => RpcError::new(
                403,
                "PermissionCheckFailed",
                "Failed to verify API permissions.",
            ),
            DomainError::NotImplemented(m) => RpcError::new(
                404,
                "ApiNotSupport",
                format!("The specified API is not supported. ({m})"),
            ),
            other @ (DomainError::NotFound { .. }
            | DomainError::AlreadyExists { .. }
            | DomainError::TransferFinished { .. }
            | DomainError::StillAttached(_)
            | DomainError::QuotaExhausted(_)
            | DomainError::AmbiguousIssuer(_)
            | DomainError::Stale
            | DomainError::Throttled { .. }
            | DomainError::Unavailable(_)
            | DomainError::Internal(_)) => from_domain(other),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_throttling_user_with_retry_after_in_ms() {
        let e = DomainError::Throttled {
            action: "onsmqtt:GetRegisterCode".into(),
            retry_after_ms: 0,
        };
        for r in [
            from_domain(e.clone()),
            from_api(onsmqtt_error(ApiError::Domain(e.clone()))),
        ] {
            assert_eq!((r.status, r.code.as_str()), (400, "Throttling.User"));
            let resp = r.render("RID", "host");
            assert!(resp
                .headers
                .iter()
                .any(|(k, v)| *k == "x-acs-retry-after" && v.as_str() == "1"));
        }
        let other = RpcError::new(400, "InvalidParameter", "m").render("RID", "host");
        assert!(!other.headers.iter().any(|(k, _)| *k == "x-acs-retry-after"));
    }
}
