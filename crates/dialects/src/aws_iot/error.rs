//! The one place domain errors become AWS IoT wire errors: status, `x-amzn-ErrorType` code,
//! `message`, and the modeled extra members. The match is exhaustive on purpose: a new
//! `DomainError` variant must be mapped here before anything compiles.

use certplane_core::error::{DomainError, Resource};
use certplane_core::Scope;
use serde_json::{json, Value};

use super::router::Endpoint;
use super::shapes;
use crate::wire::Response;

#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub extra: Option<Value>,
}

impl WireError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        WireError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        WireError::new(400, "InvalidRequestException", message)
    }

    pub fn render(&self, request_id: &str) -> Response {
        let mut body = json!({ "message": self.message });
        if let (Some(Value::Object(extra)), Some(obj)) = (&self.extra, body.as_object_mut()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        Response::json(self.status, &body)
            .with_header("x-amzn-errortype", self.code)
            .with_header("x-amzn-requestid", request_id)
    }
}

/// The ARN AWS would name in ResourceAlreadyExistsException's `resourceArn`.
fn arn_of(resource: Resource, id: &str, scope: &Scope) -> Option<String> {
    match resource {
        Resource::Certificate => Some(shapes::cert_arn(&scope.region, &scope.account, id)),
        Resource::CaCertificate => Some(shapes::ca_arn(&scope.region, &scope.account, id)),
        Resource::Thing => Some(shapes::thing_arn(&scope.region, &scope.account, id)),
        Resource::Policy => Some(shapes::policy_arn(&scope.region, &scope.account, id)),
        Resource::ThingType => Some(shapes::thing_type_arn(&scope.region, &scope.account, id)),
        Resource::ThingGroup => Some(shapes::thing_group_arn(&scope.region, &scope.account, id)),
        Resource::BillingGroup => {
            Some(shapes::billing_group_arn(&scope.region, &scope.account, id))
        }
        _ => None,
    }
}

pub fn from_domain(e: &DomainError, ep: Endpoint, scope: &Scope) -> WireError {
    use Endpoint as E;
    let msg = e.to_string();
    if ep == E::RegisterThing {
        // The model gives RegisterThing one code for a template's resource that cannot be
        // made or used (missing, conflicting, over a limit): ResourceRegistrationFailure.
        match e {
            DomainError::InvalidInput(_)
            | DomainError::Stale
            | DomainError::Throttled { .. }
            | DomainError::Unavailable(_)
            | DomainError::Internal(_) => {}
            _ => return WireError::new(400, "ResourceRegistrationFailureException", msg),
        }
    }
    match e {
        // AWS's own text where it is known (moto's tests copy it).
        DomainError::NotFound {
            resource: Resource::Policy,
            ..
        } => WireError::new(404, "ResourceNotFoundException", "Policy not found"),
        DomainError::NotFound { .. } => WireError::new(404, "ResourceNotFoundException", msg),
        DomainError::AlreadyExists { resource, id } => {
            // The modeled extras carry the id the resource is known by on the wire.
            // Core reports the wire id (certificate id, thing or policy name), which for a
            // thing may itself contain ':'.
            let (rid, message) = match resource {
                Resource::Certificate | Resource::CaCertificate => (
                    id.clone(),
                    "The certificate is already provisioned or registered".to_string(),
                ),
                // moto's text, which its tests match.
                Resource::ThingGroup => (
                    id.clone(),
                    format!(
                        "Thing Group {id} already exists in current account with different \
                         properties"
                    ),
                ),
                Resource::Policy => (
                    id.clone(),
                    format!("Policy cannot be created - name already exists (name={id})"),
                ),
                _ => (id.clone(), msg),
            };
            let mut w = WireError::new(409, "ResourceAlreadyExistsException", message);
            let arn = arn_of(*resource, &rid, scope);
            w.extra = Some(json!({ "resourceId": rid, "resourceArn": arn }));
            w
        }
        DomainError::InvalidInput(_) => WireError::invalid(msg),
        DomainError::MalformedDocument(_) => match ep {
            E::CreatePolicy | E::CreatePolicyVersion => {
                WireError::new(400, "MalformedPolicyException", msg)
            }
            _ => WireError::invalid(msg),
        },
        DomainError::WrongState { .. } => match ep {
            E::DeleteThing
            | E::UpdateThing
            | E::UpdateThingGroup
            | E::DeleteThingGroup
            | E::UpdateBillingGroup
            | E::DeleteBillingGroup => WireError::new(409, "VersionConflictException", msg),
            _ => WireError::new(406, "CertificateStateException", msg),
        },
        DomainError::TransferFinished { .. } => {
            WireError::new(410, "TransferAlreadyCompletedException", msg)
        }
        // Which party may act is not documented; a wrong party gets InvalidRequest
        // (COMPATIBILITY.md).
        DomainError::NotPermitted(_) => WireError::invalid(msg),
        DomainError::StillAttached(_) => match ep {
            E::TransferCertificate => WireError::new(409, "TransferConflictException", msg),
            E::DeleteThing => WireError::invalid(msg),
            _ => WireError::new(409, "DeleteConflictException", msg),
        },
        DomainError::LimitExceeded(_) | DomainError::QuotaExhausted(_) => match ep {
            // The model gives these no LimitExceededException.
            E::AddThingToThingGroup | E::UpdateThingGroupsForThing => WireError::invalid(msg),
            E::CreatePolicyVersion | E::CreateProvisioningTemplateVersion => {
                WireError::new(409, "VersionsLimitExceededException", msg)
            }
            _ => WireError::new(410, "LimitExceededException", msg),
        },
        DomainError::BadCertificate(_) => match ep {
            E::RegisterCertificate | E::RegisterCertificateWithoutCA | E::RegisterCACertificate => {
                WireError::new(400, "CertificateValidationException", msg)
            }
            _ => WireError::invalid(msg),
        },
        DomainError::RegistrationCodeMismatch(_) | DomainError::RegistrationCodeUsed(_) => {
            WireError::new(400, "RegistrationCodeValidationException", msg)
        }
        DomainError::AmbiguousIssuer(_) => WireError::new(409, "CertificateConflictException", msg),
        // IAM's message shape, which AWS IoT's 401 carries for a policy denial.
        DomainError::AccessDenied {
            principal,
            action,
            resource,
            explicit,
        } => WireError::new(
            401,
            "UnauthorizedException",
            format!(
                "User: {principal} is not authorized to perform: {action} on resource: \
                 {resource} {}",
                if *explicit {
                    "with an explicit deny in an identity-based policy".to_string()
                } else {
                    format!("because no identity-based policy allows the {action} action")
                }
            ),
        ),
        DomainError::NotImplemented(_) => WireError::new(400, "NotImplementedException", msg),
        // The API reference gives ThrottlingException HTTP 400 on every operation (botocore
        // and the CLI's legacy retry mode read it as a throttle with that status); AWS's text.
        DomainError::Throttled { .. } => {
            WireError::new(400, "ThrottlingException", "Rate exceeded")
        }
        DomainError::Stale | DomainError::Unavailable(_) => {
            WireError::new(503, "ServiceUnavailableException", msg)
        }
        DomainError::Internal(_) => {
            tracing::warn!(error = %msg, operation = ep.name(), "internal failure");
            WireError::new(
                500,
                "InternalFailureException",
                "An unexpected error has occurred",
            )
        }
    }
}

/// The error codes the botocore model lists for each operation (plus the authentication codes
/// every AWS endpoint can answer); `from_domain` must only ever emit codes from this list.
pub fn documented_codes(ep: Endpoint) -> &'static [&'static str] {
    use Endpoint as E;
    match ep {
        E::CreateKeysAndCertificate
        | E::CreateCertificateFromCsr
        | E::ListCertificates
        | E::ListCACertificates
        | E::ListOutgoingCertificates
        | E::ListCertificatesByCA
        | E::GetRegistrationCode
        | E::ListThings
        | E::ListThingTypes
        | E::ListPolicies => &[
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
        E::RegisterCertificate => &[
            "ResourceAlreadyExistsException",
            "InvalidRequestException",
            "CertificateValidationException",
            "CertificateStateException",
            "CertificateConflictException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
        E::RegisterCertificateWithoutCA => &[
            "ResourceAlreadyExistsException",
            "InvalidRequestException",
            "CertificateStateException",
            "CertificateValidationException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
        E::RegisterCACertificate => &[
            "ResourceNotFoundException",
            "ResourceAlreadyExistsException",
            "RegistrationCodeValidationException",
            "InvalidRequestException",
            "CertificateValidationException",
            "ThrottlingException",
            "LimitExceededException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
        E::UpdateCertificate | E::DeleteCACertificate => &[
            "ResourceNotFoundException",
            "CertificateStateException",
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
        E::DeleteCertificate => &[
            "CertificateStateException",
            "DeleteConflictException",
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
            "ResourceNotFoundException",
        ],
        E::TransferCertificate => &[
            "InvalidRequestException",
            "ResourceNotFoundException",
            "CertificateStateException",
            "TransferConflictException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
        E::AcceptCertificateTransfer
        | E::RejectCertificateTransfer
        | E::CancelCertificateTransfer => &[
            "ResourceNotFoundException",
            "TransferAlreadyCompletedException",
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
        E::CreateThing => &[
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
            "ResourceAlreadyExistsException",
            "ResourceNotFoundException",
        ],
        E::CreateThingType => &[
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
            "ResourceAlreadyExistsException",
        ],
        E::UpdateThing => &[
            "InvalidRequestException",
            "VersionConflictException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
            "ResourceNotFoundException",
        ],
        // The model's codes; every operation can also answer 503 when the database is down
        // and 401/403 on authentication.
        E::CreateThingGroup | E::CreateBillingGroup => &[
            "InvalidRequestException",
            "ResourceAlreadyExistsException",
            "ThrottlingException",
            "InternalFailureException",
            "UnauthorizedException",
            "ServiceUnavailableException",
        ],
        E::UpdateThingGroup | E::UpdateBillingGroup => &[
            "InvalidRequestException",
            "VersionConflictException",
            "ThrottlingException",
            "InternalFailureException",
            "ResourceNotFoundException",
            "UnauthorizedException",
            "ServiceUnavailableException",
        ],
        E::DeleteThingGroup | E::DeleteBillingGroup => &[
            "InvalidRequestException",
            "VersionConflictException",
            "ThrottlingException",
            "InternalFailureException",
            "UnauthorizedException",
            "ServiceUnavailableException",
        ],
        E::DeleteThing => &[
            "ResourceNotFoundException",
            "VersionConflictException",
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
        E::CreatePolicy => &[
            "ResourceAlreadyExistsException",
            "MalformedPolicyException",
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
        E::CreatePolicyVersion => &[
            "ResourceNotFoundException",
            "MalformedPolicyException",
            "VersionsLimitExceededException",
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
        E::DeletePolicy | E::DeletePolicyVersion => &[
            "DeleteConflictException",
            "ResourceNotFoundException",
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
        E::TagResource => &[
            "InvalidRequestException",
            "InternalFailureException",
            "ResourceNotFoundException",
            "ThrottlingException",
            "LimitExceededException",
            "UnauthorizedException",
            "ServiceUnavailableException",
        ],
        E::CreateProvisioningTemplate => &[
            "InternalFailureException",
            // Not in the model for these calls; a store outage must still answer retryably.
            "ServiceUnavailableException",
            "InvalidRequestException",
            "LimitExceededException",
            "ThrottlingException",
            "UnauthorizedException",
            "ResourceAlreadyExistsException",
        ],
        E::UpdateProvisioningTemplate => &[
            "InternalFailureException",
            // Not in the model for these calls; a store outage must still answer retryably.
            "ServiceUnavailableException",
            "InvalidRequestException",
            "ResourceNotFoundException",
            "UnauthorizedException",
            "ConflictingResourceUpdateException",
            // Not in the model for this call; certplane throttles every call (COMPATIBILITY.md).
            "ThrottlingException",
        ],
        E::DeleteProvisioningTemplate | E::DeleteProvisioningTemplateVersion => &[
            "InternalFailureException",
            // Not in the model for these calls; a store outage must still answer retryably.
            "ServiceUnavailableException",
            "InvalidRequestException",
            "ResourceNotFoundException",
            "DeleteConflictException",
            "ThrottlingException",
            "ConflictingResourceUpdateException",
            "UnauthorizedException",
        ],
        E::CreateProvisioningTemplateVersion => &[
            "VersionsLimitExceededException",
            "InternalFailureException",
            // Not in the model for these calls; a store outage must still answer retryably.
            "ServiceUnavailableException",
            "InvalidRequestException",
            "ThrottlingException",
            "ResourceNotFoundException",
            "UnauthorizedException",
            "ConflictingResourceUpdateException",
        ],
        E::DescribeProvisioningTemplate
        | E::DescribeProvisioningTemplateVersion
        | E::ListProvisioningTemplateVersions => &[
            "InternalFailureException",
            // Not in the model for these calls; a store outage must still answer retryably.
            "ServiceUnavailableException",
            "InvalidRequestException",
            "ResourceNotFoundException",
            "ThrottlingException",
            "UnauthorizedException",
        ],
        E::ListProvisioningTemplates => &[
            "InternalFailureException",
            // Not in the model for these calls; a store outage must still answer retryably.
            "ServiceUnavailableException",
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
        ],
        E::RegisterThing => &[
            "InternalFailureException",
            "ServiceUnavailableException",
            "InvalidRequestException",
            "UnauthorizedException",
            "ThrottlingException",
            "ConflictingResourceUpdateException",
            "ResourceRegistrationFailureException",
        ],
        E::AttachPolicy
        | E::DetachPolicy
        | E::ListAttachedPolicies
        | E::ListTargetsForPolicy
        | E::AttachPrincipalPolicy => &[
            "ResourceNotFoundException",
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
            "LimitExceededException",
        ],
        _ => &[
            "ResourceNotFoundException",
            "InvalidRequestException",
            "ThrottlingException",
            "UnauthorizedException",
            "ServiceUnavailableException",
            "InternalFailureException",
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certplane_core::error::TransferOutcome;

    fn sample_errors() -> Vec<DomainError> {
        vec![
            DomainError::not_found(Resource::Certificate, "x"),
            DomainError::AlreadyExists {
                resource: Resource::Certificate,
                id: "x".into(),
            },
            DomainError::invalid("bad"),
            DomainError::WrongState {
                current: "ACTIVE".into(),
                message: "m".into(),
            },
            DomainError::TransferFinished {
                outcome: TransferOutcome::Accepted,
            },
            DomainError::NotPermitted("m".into()),
            DomainError::StillAttached("m".into()),
            DomainError::LimitExceeded("m".into()),
            DomainError::BadCertificate("m".into()),
            DomainError::RegistrationCodeMismatch("m".into()),
            DomainError::AmbiguousIssuer("m".into()),
            DomainError::Unavailable("m".into()),
            DomainError::Internal("m".into()),
            DomainError::MalformedDocument("m".into()),
        ]
    }

    /// Which domain errors each operation's service can return (read off core).
    fn produced(ep: Endpoint) -> Vec<usize> {
        use Endpoint as E;
        // Indexes into `sample_errors`; 0 NotFound .. 12 Internal. Every service can also
        // answer Unavailable (11) and Internal (12) and InvalidInput (2).
        let base = vec![2, 11, 12];
        let extra: &[usize] = match ep {
            E::RegisterCertificate => &[1, 8, 10],
            E::RegisterCertificateWithoutCA => &[1, 8],
            E::RegisterCACertificate => &[1, 7, 8, 9],
            E::UpdateCertificate => &[0, 3],
            E::DeleteCertificate => &[0, 3, 6],
            E::TransferCertificate => &[0, 3, 6],
            E::AcceptCertificateTransfer
            | E::RejectCertificateTransfer
            | E::CancelCertificateTransfer => &[0, 4, 5],
            E::DescribeCertificate | E::DescribeCACertificate | E::UpdateCACertificate => &[0],
            E::DeleteCACertificate => &[0, 3],
            E::CreateThing => &[0, 1],
            E::CreateThingType => &[1],
            E::UpdateThing | E::UpdateThingGroup => &[0, 3],
            E::CreateThingGroup | E::CreateBillingGroup => &[1],
            E::DeleteThingGroup | E::DeleteBillingGroup => &[3],
            E::UpdateBillingGroup => &[0, 3],
            E::TagResource => &[0, 7],
            E::AddThingToThingGroup | E::UpdateThingGroupsForThing => &[0, 7],
            E::DeleteThing => &[3, 6],
            E::CreatePolicy => &[1, 13],
            E::DeletePolicy | E::DeletePolicyVersion => &[0, 6],
            E::CreatePolicyVersion => &[0, 7, 13],
            E::AttachPolicy | E::AttachPrincipalPolicy => &[0, 7],
            E::CreateProvisioningTemplate => &[1],
            E::ListProvisioningTemplates => &[],
            E::CreateProvisioningTemplateVersion => &[0, 7],
            E::DeleteProvisioningTemplateVersion => &[0, 6],
            E::RegisterThing => &[0, 1, 3, 6, 7, 8, 13],
            E::CreateKeysAndCertificate
            | E::CreateCertificateFromCsr
            | E::ListCertificates
            | E::ListCACertificates
            | E::ListOutgoingCertificates
            | E::ListCertificatesByCA
            | E::GetRegistrationCode
            | E::ListThings
            | E::ListThingTypes
            | E::ListPolicies => &[],
            _ => &[0],
        };
        base.into_iter().chain(extra.iter().copied()).collect()
    }

    #[test]
    fn every_emitted_code_is_documented_for_its_operation() {
        let scope = Scope::new("123456789012", "us-east-1");
        let errors = sample_errors();
        for ep in Endpoint::ALL {
            for i in produced(*ep) {
                let w = from_domain(&errors[i], *ep, &scope);
                assert!(
                    documented_codes(*ep).contains(&w.code),
                    "{} emits {} for {:?}",
                    ep.name(),
                    w.code,
                    errors[i]
                );
            }
        }
    }

    #[test]
    fn throttling_is_the_documented_throttling_exception_everywhere() {
        let scope = Scope::new("123456789012", "us-east-1");
        let e = DomainError::Throttled {
            action: "iot:DescribeCertificate".into(),
            retry_after_ms: 100,
        };
        for ep in Endpoint::ALL {
            let w = from_domain(&e, *ep, &scope);
            assert_eq!(
                (w.status, w.code),
                (400, "ThrottlingException"),
                "{}",
                ep.name()
            );
            assert!(
                documented_codes(*ep).contains(&w.code),
                "{} does not document ThrottlingException",
                ep.name()
            );
        }
    }

    #[test]
    fn already_exists_carries_resource_id_and_arn() {
        let scope = Scope::new("123456789012", "eu-west-1");
        let w = from_domain(
            &DomainError::AlreadyExists {
                resource: Resource::Certificate,
                id: "ab".into(),
            },
            Endpoint::RegisterCertificate,
            &scope,
        );
        assert_eq!((w.status, w.code), (409, "ResourceAlreadyExistsException"));
        let extra = w.extra.expect("extras");
        assert_eq!(extra["resourceId"], "ab");
        assert_eq!(
            extra["resourceArn"],
            "arn:aws:iot:eu-west-1:123456789012:cert/ab"
        );
    }
}
