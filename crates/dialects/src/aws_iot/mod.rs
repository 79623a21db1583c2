//! The AWS IoT certificate API (rest-json, SigV4), as boto3, the aws CLI and aws-sdk-iot send
//! it. One request: authenticate → route → authorize → handler → core → render.

mod billing_groups;
mod ca_certificates;
mod certificates;
mod endpoints;
pub mod error;
mod input;
mod other_operations;
mod policies;
mod provisioning_templates;
pub mod rates;
mod register_thing;
pub mod router;
pub mod shapes;
pub mod sigv4;
mod tags;
mod thing_groups;
mod thing_types;
mod things;
mod transfers;

use certplane_core::audit::{self, AuditEvent, Outcome};
use certplane_core::authz::{authorize, Principal};
use certplane_core::{Core, Scope};
use serde_json::Value;
use tracing::Instrument;

use crate::wire::{Request, Response};
use error::{from_domain, WireError};
use input::Call;
use router::{Endpoint, Route};
use sigv4::SigError;

/// The account dev mode uses when nothing else names one (moto's default).
pub const DEFAULT_DEV_ACCOUNT: &str = "123456789012";

pub struct AwsIot {
    pub core: Core,
    /// Emulator mode: signatures are parsed but not checked (see README).
    pub dev: bool,
    /// The domain of the device gateway's endpoint names (DescribeEndpoint).
    pub device_domain: String,
    /// SigV4 signing keys already derived.
    signing_keys: std::sync::Arc<sigv4::SigningKeys>,
    /// DescribeCertificate answers already rendered.
    described: std::sync::Arc<certificates::Described>,
}

/// What an operation answers: a JSON value (`Null`: no body), or JSON already rendered.
enum Answer {
    Value(Value),
    Rendered(Vec<u8>),
}

fn is_aws_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

impl AwsIot {
    pub fn new(core: Core, dev: bool) -> Self {
        AwsIot {
            core,
            dev,
            device_domain: certplane_core::device_endpoints::DEFAULT_DEVICE_DOMAIN.to_string(),
            signing_keys: Default::default(),
            described: Default::default(),
        }
    }

    /// Names the gateway's endpoints under `domain` (`--gateway-domain`).
    pub fn with_device_domain(mut self, domain: &str) -> Self {
        self.device_domain = domain.to_string();
        self
    }

    /// Who signed the request, and for which region.
    async fn authenticate(&self, req: &Request) -> Result<(Principal, String), WireError> {
        let Some(header) = req.header("authorization") else {
            return Err(WireError::new(
                403,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ));
        };
        let incomplete = |m: String| WireError::new(400, "IncompleteSignatureException", m);
        let auth = sigv4::parse_authorization(header).map_err(|e| match e {
            SigError::Malformed(m) => incomplete(m),
            _ => incomplete("the Authorization header is not valid".into()),
        })?;
        sigv4::request_time(req, &auth).map_err(|e| match e {
            SigError::Malformed(m) => incomplete(m),
            _ => incomplete("the request time is not valid".into()),
        })?;
        if self.dev {
            let account = if is_aws_account(&auth.access_key_id) {
                auth.access_key_id.clone()
            } else {
                match req.header("x-moto-account-id") {
                    Some(a) if is_aws_account(a) => a.to_string(),
                    Some(a) => {
                        return Err(WireError::invalid(format!(
                            "x-moto-account-id {a:?} is not a 12-digit account id"
                        )))
                    }
                    None => DEFAULT_DEV_ACCOUNT.to_string(),
                }
            };
            return Ok((
                Principal::dev(account, Some(auth.access_key_id)),
                auth.region,
            ));
        }
        // An unknown key, a disabled one and one whose user is gone get the same answer: AWS
        // answers an inactive key as an invalid token.
        let invalid = || {
            WireError::new(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        };
        let resolved = match self.core.resolve_access_key(&auth.access_key_id).await {
            Ok(Some(r))
                if r.key.kind == certplane_core::accounts::CloudKind::Aws && !r.key.disabled =>
            {
                r
            }
            Ok(_) => return Err(invalid()),
            Err(e) => {
                return Err(from_domain(
                    &e,
                    Endpoint::DescribeCertificate,
                    &Scope::new("", &auth.region),
                ))
            }
        };
        let key = &resolved.key;
        let signing_key = self.signing_keys.get(&key.id, &key.secret, &auth);
        sigv4::verify_with_key(req, &auth, &signing_key, self.core.now()).map_err(|e| match e {
            SigError::Expired(m) => WireError::new(403, "InvalidSignatureException", m),
            SigError::Malformed(m) => incomplete(m),
            SigError::Missing | SigError::Mismatch => WireError::new(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method.",
            ),
        })?;
        // The key's user was deleted: the same answer as an unknown key.
        let Some(identity) = resolved.identity.clone() else {
            return Err(invalid());
        };
        Ok((
            Principal::verified(
                key.account.clone(),
                Some(key.id.clone()),
                identity,
                req.source_ip,
            ),
            auth.region,
        ))
    }

    pub async fn handle(&self, req: Request) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        // Every log line of the call carries the id the client sees in x-amzn-RequestId.
        let span = tracing::info_span!("request", request_id = %request_id, dialect = "aws-iot");
        let mut operation = None;
        let result = self
            .handle_inner(&req, &request_id, &mut operation)
            .instrument(span.clone())
            .await;
        let response = match result {
            Ok(Answer::Value(Value::Null)) => Response {
                status: 200,
                headers: vec![("x-amzn-requestid", request_id)],
                body: Vec::new(),
                operation: None,
            },
            Ok(Answer::Value(v)) => {
                Response::json(200, &v).with_header("x-amzn-requestid", request_id)
            }
            Ok(Answer::Rendered(body)) => Response {
                status: 200,
                headers: vec![
                    ("content-type", "application/json".into()),
                    ("x-amzn-requestid", request_id),
                ],
                body,
                operation: None,
            },
            Err(e) => e.render(&request_id),
        };
        response.for_operation(operation).logged_in(&span)
    }

    async fn handle_inner(
        &self,
        req: &Request,
        request_id: &str,
        operation: &mut Option<&'static str>,
    ) -> Result<Answer, WireError> {
        let (principal, region) = self.authenticate(req).await?;
        let segs = req.segments().map_err(WireError::invalid)?;
        let method = req.method.as_str();
        let Some(Route {
            endpoint,
            label,
            sub,
        }) = router::route(method, &segs)
        else {
            let what = match router::other_operation(method, &segs) {
                Some(op) => format!("certplane does not implement the AWS IoT operation {op}"),
                None => format!(
                    "certplane does not implement {method} {}: no AWS IoT operation has this route",
                    req.raw_path
                ),
            };
            return Err(WireError::new(400, "NotImplementedException", what));
        };
        *operation = Some(endpoint.name());
        let scope = Scope::new(principal.account.clone(), region);
        let resource = endpoint.resource_arn(&scope.region, &scope.account, label.as_deref());
        let action = endpoint.action();
        // Before anything reads or writes the store: a throttled call changes nothing and is
        // not audited (COMPATIBILITY.md, "Throttling").
        self.core
            .throttle_principal("aws-iot", &principal, action, rates::default_rate(endpoint))
            .map_err(|e| from_domain(&e, endpoint, &scope))?;
        let event = AuditEvent::for_call(
            &principal,
            request_id,
            "aws-iot",
            action,
            &resource,
            self.core.now(),
        );
        if let Err(e) = authorize(&principal, action, &resource) {
            let w = from_domain(&e, endpoint, &scope);
            crate::audit_outcome(&self.core, &event, Outcome::Denied, w.code, w.status).await;
            return Err(w);
        }
        let result = async {
            let query = req.query_pairs().map_err(WireError::invalid)?;
            let call = Call::new(&self.core, scope.clone(), label, sub, query, req)
                .map_err(|e| from_domain(&e, endpoint, &scope))?;
            audit::in_call(event.clone(), async {
                if endpoint == Endpoint::DescribeCertificate {
                    return certificates::describe_certificate(&call, &self.described)
                        .await
                        .map(Answer::Rendered);
                }
                dispatch(endpoint, &call, &self.device_domain)
                    .await
                    .map(Answer::Value)
            })
            .await
            .map_err(|e| from_domain(&e, endpoint, &scope))
        }
        .await;
        if let Err(w) = &result {
            if audit::is_mutating(action) {
                crate::audit_outcome(&self.core, &event, Outcome::Error, w.code, w.status).await;
            }
        }
        result
    }
}

async fn dispatch(ep: Endpoint, cx: &Call<'_>, device_domain: &str) -> input::Res<Value> {
    use Endpoint as E;
    match ep {
        E::CreateKeysAndCertificate => certificates::create_keys_and_certificate(cx).await,
        E::CreateCertificateFromCsr => certificates::create_certificate_from_csr(cx).await,
        E::RegisterCertificate => certificates::register_certificate(cx).await,
        E::RegisterCertificateWithoutCA => certificates::register_certificate_without_ca(cx).await,
        E::DescribeCertificate => Err(certplane_core::DomainError::internal(
            "DescribeCertificate is answered before dispatch",
        )),
        E::ListCertificates => certificates::list_certificates(cx).await,
        E::ListCertificatesByCA => certificates::list_certificates_by_ca(cx).await,
        E::UpdateCertificate => certificates::update_certificate(cx).await,
        E::DeleteCertificate => certificates::delete_certificate(cx).await,
        E::GetRegistrationCode => ca_certificates::get_registration_code(cx).await,
        E::DeleteRegistrationCode => ca_certificates::delete_registration_code(cx).await,
        E::RegisterCACertificate => ca_certificates::register_ca_certificate(cx).await,
        E::DescribeCACertificate => ca_certificates::describe_ca_certificate(cx).await,
        E::ListCACertificates => ca_certificates::list_ca_certificates(cx).await,
        E::UpdateCACertificate => ca_certificates::update_ca_certificate(cx).await,
        E::DeleteCACertificate => ca_certificates::delete_ca_certificate(cx).await,
        E::TransferCertificate => transfers::transfer_certificate(cx).await,
        E::AcceptCertificateTransfer => transfers::accept_certificate_transfer(cx).await,
        E::RejectCertificateTransfer => transfers::reject_certificate_transfer(cx).await,
        E::CancelCertificateTransfer => transfers::cancel_certificate_transfer(cx).await,
        E::ListOutgoingCertificates => transfers::list_outgoing_certificates(cx).await,
        E::CreateThing => things::create_thing(cx).await,
        E::DescribeThing => things::describe_thing(cx).await,
        E::DeleteThing => things::delete_thing(cx).await,
        E::ListThings => things::list_things(cx).await,
        E::AttachThingPrincipal => things::attach_thing_principal(cx).await,
        E::DetachThingPrincipal => things::detach_thing_principal(cx).await,
        E::ListThingPrincipals => things::list_thing_principals(cx).await,
        E::ListPrincipalThings => things::list_principal_things(cx).await,
        E::CreatePolicy => policies::create_policy(cx).await,
        E::GetPolicy => policies::get_policy(cx).await,
        E::DeletePolicy => policies::delete_policy(cx).await,
        E::ListPolicies => policies::list_policies(cx).await,
        E::AttachPolicy => policies::attach_policy(cx).await,
        E::DetachPolicy => policies::detach_policy(cx).await,
        E::ListAttachedPolicies => policies::list_attached_policies(cx).await,
        E::ListTargetsForPolicy => policies::list_targets_for_policy(cx).await,
        E::AttachPrincipalPolicy => policies::attach_principal_policy(cx).await,
        E::DetachPrincipalPolicy => policies::detach_principal_policy(cx).await,
        E::ListPrincipalPolicies => policies::list_principal_policies(cx).await,
        E::ListPolicyPrincipals => policies::list_policy_principals(cx).await,
        E::CreatePolicyVersion => policies::create_policy_version(cx).await,
        E::GetPolicyVersion => policies::get_policy_version(cx).await,
        E::ListPolicyVersions => policies::list_policy_versions(cx).await,
        E::SetDefaultPolicyVersion => policies::set_default_policy_version(cx).await,
        E::DeletePolicyVersion => policies::delete_policy_version(cx).await,
        E::UpdateThing => things::update_thing(cx).await,
        E::CreateThingType => thing_types::create_thing_type(cx).await,
        E::DescribeThingType => thing_types::describe_thing_type(cx).await,
        E::ListThingTypes => thing_types::list_thing_types(cx).await,
        E::UpdateThingType => thing_types::update_thing_type(cx).await,
        E::DeprecateThingType => thing_types::deprecate_thing_type(cx).await,
        E::DeleteThingType => thing_types::delete_thing_type(cx).await,
        E::CreateThingGroup => thing_groups::create_thing_group(cx).await,
        E::DescribeThingGroup => thing_groups::describe_thing_group(cx).await,
        E::ListThingGroups => thing_groups::list_thing_groups(cx).await,
        E::UpdateThingGroup => thing_groups::update_thing_group(cx).await,
        E::DeleteThingGroup => thing_groups::delete_thing_group(cx).await,
        E::AddThingToThingGroup => thing_groups::add_thing_to_thing_group(cx).await,
        E::RemoveThingFromThingGroup => thing_groups::remove_thing_from_thing_group(cx).await,
        E::ListThingsInThingGroup => thing_groups::list_things_in_thing_group(cx).await,
        E::ListThingGroupsForThing => thing_groups::list_thing_groups_for_thing(cx).await,
        E::UpdateThingGroupsForThing => thing_groups::update_thing_groups_for_thing(cx).await,
        E::CreateBillingGroup => billing_groups::create_billing_group(cx).await,
        E::DescribeBillingGroup => billing_groups::describe_billing_group(cx).await,
        E::ListBillingGroups => billing_groups::list_billing_groups(cx).await,
        E::UpdateBillingGroup => billing_groups::update_billing_group(cx).await,
        E::DeleteBillingGroup => billing_groups::delete_billing_group(cx).await,
        E::AddThingToBillingGroup => billing_groups::add_thing_to_billing_group(cx).await,
        E::RemoveThingFromBillingGroup => billing_groups::remove_thing_from_billing_group(cx).await,
        E::ListThingsInBillingGroup => billing_groups::list_things_in_billing_group(cx).await,
        E::TagResource => tags::tag_resource(cx).await,
        E::UntagResource => tags::untag_resource(cx).await,
        E::ListTagsForResource => tags::list_tags_for_resource(cx).await,
        E::CreateProvisioningTemplate => {
            provisioning_templates::create_provisioning_template(cx).await
        }
        E::DescribeProvisioningTemplate => {
            provisioning_templates::describe_provisioning_template(cx).await
        }
        E::ListProvisioningTemplates => {
            provisioning_templates::list_provisioning_templates(cx).await
        }
        E::UpdateProvisioningTemplate => {
            provisioning_templates::update_provisioning_template(cx).await
        }
        E::DeleteProvisioningTemplate => {
            provisioning_templates::delete_provisioning_template(cx).await
        }
        E::CreateProvisioningTemplateVersion => {
            provisioning_templates::create_provisioning_template_version(cx).await
        }
        E::DescribeProvisioningTemplateVersion => {
            provisioning_templates::describe_provisioning_template_version(cx).await
        }
        E::ListProvisioningTemplateVersions => {
            provisioning_templates::list_provisioning_template_versions(cx).await
        }
        E::DeleteProvisioningTemplateVersion => {
            provisioning_templates::delete_provisioning_template_version(cx).await
        }
        E::RegisterThing => register_thing::register_thing(cx).await,
        E::ListThingPrincipalsV2 => things::list_thing_principals_v2(cx).await,
        E::ListPrincipalThingsV2 => things::list_principal_things_v2(cx).await,
        E::DescribeEndpoint => endpoints::describe_endpoint(cx, device_domain),
    }
}
