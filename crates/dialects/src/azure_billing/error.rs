//! The one place errors become Azure Resource Manager wire errors: the status and the
//! `{"error": {"code", "message"}}` body azure-core parses. Exhaustive on `DomainError`.
//!
//! Never `MissingSubscriptionRegistration` (the SDK's auto-registration policy would intercept
//! it), and `Retry-After` only on 429/503 (any other status carrying it is retried by the SDK).

use certplane_core::billing_transfers as bt;
use certplane_core::error::{DomainError, Resource};
use serde_json::json;

use crate::wire::Response;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// `WWW-Authenticate` for a 401.
    pub challenge: Option<String>,
    /// Seconds for `Retry-After` (429/503 only; 1 when not set).
    pub retry_after_secs: Option<u64>,
}

impl ArmError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        ArmError {
            status,
            code: code.into(),
            message: message.into(),
            challenge: None,
            retry_after_secs: None,
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ArmError::new(400, code, message)
    }

    /// 401 with the bearer challenge.
    pub fn unauthenticated(code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = ArmError::new(401, code, message.clone());
        e.challenge = Some(format!(
            "Bearer authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"invalid_token\", error_description=\"{}\"",
            message.replace(['"', '\\'], "'")
        ));
        e
    }

    pub fn render(&self) -> Response {
        let mut r = super::json_response(
            self.status,
            &json!({ "error": { "code": self.code, "message": self.message } }),
        );
        if let Some(c) = &self.challenge {
            r = r.with_header("www-authenticate", c.clone());
        }
        if self.status == 429 || self.status == 503 {
            let secs = self.retry_after_secs.unwrap_or(1).max(1);
            r = r.with_header("retry-after", secs.to_string());
        }
        r
    }
}

/// Which side of a transfer the call acts for (a refusal reads differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Partner and invoice-section operations: the caller needs a role on the scope.
    Initiator,
    /// `/transfers/...`: the caller must be the transfer's recipient.
    Recipient,
}

const PRODUCT_CODES: [&str; 6] = [
    bt::PRODUCT_NOT_FOUND,
    bt::PRODUCT_NOT_HELD,
    bt::PRODUCT_DISABLED,
    bt::PRODUCT_TYPE_MISMATCH,
    bt::PRODUCT_IN_TRANSFER,
    bt::NOT_INTENDED_RECIPIENT,
];

pub fn from_domain(e: DomainError, side: Side) -> ArmError {
    let msg = e.to_string();
    match e {
        DomainError::NotFound { resource, id } => match resource {
            Resource::BillingTransfer | Resource::Transfer => ArmError::new(
                404,
                "TransferNotFound",
                format!("The transfer {id} was not found."),
            ),
            Resource::BillingAccount => ArmError::new(
                404,
                "BillingAccountNotFound",
                format!("The billing account {id} was not found."),
            ),
            Resource::BillingScope => ArmError::new(
                404,
                "ResourceNotFound",
                format!("The billing scope {id} was not found."),
            ),
            _ => ArmError::new(404, "ResourceNotFound", msg),
        },
        DomainError::AlreadyExists { id, .. } => ArmError::new(
            409,
            "TransferAlreadyExists",
            format!(
                "A different transfer named {id} already exists; transfer names are unique in the deployment."
            ),
        ),
        DomainError::InvalidInput(_) | DomainError::MalformedDocument(_) => {
            ArmError::bad_request("InvalidInput", msg)
        }
        DomainError::WrongState { current, message } => {
            if current == bt::TransferState::Expired.as_str() {
                ArmError::new(409, "TransferExpired", message)
            } else if let Some(code) = PRODUCT_CODES.iter().find(|c| **c == current) {
                ArmError::bad_request(code, message)
            } else {
                ArmError::new(409, "InvalidTransferStatus", message)
            }
        }
        DomainError::TransferFinished { .. } => ArmError::new(409, "InvalidTransferStatus", msg),
        DomainError::NotPermitted(_) => match side {
            Side::Initiator => ArmError::new(403, "AuthorizationFailed", msg),
            Side::Recipient => ArmError::new(403, "NotIntendedRecipient", msg),
        },
        DomainError::StillAttached(_) => ArmError::new(409, "Conflict", msg),
        DomainError::LimitExceeded(_) | DomainError::QuotaExhausted(_) => {
            ArmError::bad_request("QuotaExceeded", msg)
        }
        DomainError::BadCertificate(_)
        | DomainError::RegistrationCodeMismatch(_)
        | DomainError::RegistrationCodeUsed(_)
        | DomainError::AmbiguousIssuer(_) => ArmError::bad_request("InvalidInput", msg),
        DomainError::NotImplemented(_) => ArmError::new(501, "NotImplemented", msg),
        // ARM's own text for a missing role assignment.
        DomainError::AccessDenied {
            principal,
            action,
            resource,
            ..
        } => ArmError::new(
            403,
            "AuthorizationFailed",
            format!(
                "The client '{principal}' with object id '{principal}' does not have \
                 authorization to perform action '{action}' over scope '{resource}' or the \
                 scope is invalid. If access was recently granted, please refresh your \
                 credentials."
            ),
        ),
        // ARM's throttling answer: 429, Retry-After in seconds, and the request kind
        // (`read` / `write`) the exhausted bucket counts.
        DomainError::Throttled {
            action,
            retry_after_ms,
        } => {
            let kind = action.rsplit(':').next().unwrap_or("read");
            let secs = retry_after_ms.div_ceil(1000).max(1);
            let mut e = ArmError::new(
                429,
                "SubscriptionRequestsThrottled",
                format!(
                    "Number of '{kind}' requests for tenant actor exceeded. Please try again \
                     after '{secs}' seconds after additional tokens are available."
                ),
            );
            e.retry_after_secs = Some(secs);
            e
        }
        DomainError::Stale | DomainError::Unavailable(_) => {
            ArmError::new(503, "ServiceUnavailable", msg)
        }
        DomainError::Internal(_) => {
            tracing::warn!(error = %msg, "internal failure");
            ArmError::new(
                500,
                "InternalServerError",
                "The server encountered an internal error; see the certplane log.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_429_with_retry_after_in_seconds() {
        let e = from_domain(
            DomainError::Throttled {
                action: "billing:write".into(),
                retry_after_ms: 2500,
            },
            Side::Initiator,
        );
        assert_eq!(
            (e.status, e.code.as_str()),
            (429, "SubscriptionRequestsThrottled")
        );
        assert!(e.message.contains("'write'"), "{}", e.message);
        let r = e.render();
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "retry-after" && v.as_str() == "3"));
    }

    #[test]
    fn retry_after_only_on_429_and_503() {
        for (status, want) in [(400, false), (401, false), (409, false), (503, true)] {
            let r = ArmError::new(status, "X", "y").render();
            assert_eq!(
                r.headers.iter().any(|(k, _)| *k == "retry-after"),
                want,
                "{status}"
            );
        }
    }

    #[test]
    fn product_refusals_are_400_and_state_conflicts_409() {
        let e = from_domain(
            DomainError::WrongState {
                current: bt::PRODUCT_DISABLED.into(),
                message: "m".into(),
            },
            Side::Recipient,
        );
        assert_eq!((e.status, e.code.as_str()), (400, bt::PRODUCT_DISABLED));
        let e = from_domain(
            DomainError::WrongState {
                current: "Canceled".into(),
                message: "m".into(),
            },
            Side::Recipient,
        );
        assert_eq!((e.status, e.code.as_str()), (409, "InvalidTransferStatus"));
        assert_ne!(e.code, "MissingSubscriptionRegistration");
    }
}
