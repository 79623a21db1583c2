//! RegisterThing: a provisioning template's thing, certificate and policies, the certificate
//! attached to the thing and the policies to the certificate, all in ONE store transaction.
//! Everything the template names is read and checked first; the writes (inserts of what is
//! new, compare-and-sets of what exists, unchanged or changed) then commit together or not
//! at all, so a template whose last resource fails leaves nothing behind, and a racing change
//! to anything read makes the whole registration re-read and decide again.

use std::collections::{BTreeMap, BTreeSet};

use crate::certificates::{principal_key, Certificate, CertificateStatus};
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::{CertificateId, Scope};
use crate::policies::{Policy, PolicyTarget, MAX_POLICIES_PER_TARGET};
use crate::provisioning::{CertificateSource, Plan, PolicyPlan, Template, ThingPlan};
use crate::service::Core;
use crate::store::{self, Document, Write};
use crate::thing_groups::{ThingGroupMember, MAX_GROUPS_PER_THING};
use crate::things::{Thing, ThingPrincipal};

/// What a registration made or used, by the template's logical ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registered {
    /// The certificate's PEM (new or existing), when the template has a certificate.
    pub certificate_pem: Option<String>,
    pub thing: Option<(String, String)>,
    pub certificate: Option<(String, CertificateId)>,
    /// (logical id, policy name).
    pub policies: Vec<(String, String)>,
}

/// The name of a policy a template gives only by its document: AWS names it after a hash of
/// the document (40 upper-case hex digits in its documentation's example; which hash is not
/// documented, SHA-1 gives that shape).
pub fn document_policy_name(document: &str) -> String {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        document.as_bytes(),
    );
    hex::encode_upper(d.as_ref())
}

/// A name of the model's `[a-zA-Z0-9:_-]{1,128}` (things, thing types, groups): templates
/// reach the registry without the dialect's member checks.
fn check_name(what: &str, v: &str) -> DomainResult<()> {
    let ok = (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "The {what} {v:?} must be 1 to 128 of [a-zA-Z0-9:_-]"
        )))
    }
}

fn cert_arn(scope: &Scope, id: &CertificateId) -> String {
    format!("arn:aws:iot:{}:{}:cert/{id}", scope.region, scope.account)
}

impl Core {
    /// RegisterThing with a template body and its parameters.
    pub async fn register_thing(
        &self,
        scope: &Scope,
        body: &str,
        parameters: &BTreeMap<String, String>,
    ) -> DomainResult<Registered> {
        let plan = Template::parse(body)?.resolve(parameters)?;
        if let Some(t) = &plan.thing {
            check_name("thing name", &t.name)?;
            if let Some(ty) = &t.type_name {
                check_name("thing type name", ty)?;
            }
            for g in t.groups.iter().chain(&t.billing_group) {
                check_name("group name", g)?;
            }
        }
        // A new certificate is signed once: a retry after a lost race stores the same one.
        let issued = match &plan.certificate {
            Some(c) => match &c.source {
                CertificateSource::Csr(csr) => Some(self.certificate_from_csr(
                    scope,
                    csr,
                    c.status.unwrap_or(CertificateStatus::Inactive),
                )?),
                CertificateSource::Id(_) => None,
            },
            None => None,
        };
        self.with_retry(|| async {
            let (writes, out) = self
                .provisioning_writes(scope, &plan, issued.as_ref())
                .await?;
            // An insert that meets a racing creator's row: re-read and decide again (the thing
            // or policy then exists and is used as it is).
            match self.store().apply(writes).await {
                Ok(()) => Ok(out),
                Err(DomainError::AlreadyExists { .. }) => Err(DomainError::Stale),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// The template a CA's `registrationConfig` gives just-in-time provisioning: its
    /// `templateBody`, else the default version of the provisioning template `templateName`
    /// names in the CA's account and region — when that template exists, is enabled and is of
    /// type JITP (AWS's rule for a CA's template); otherwise none, and the certificate is
    /// registered PENDING_ACTIVATION as without one.
    pub(crate) async fn jitp_template(
        &self,
        scope: &Scope,
        config: Option<&crate::ca_certificates::RegistrationConfig>,
    ) -> DomainResult<Option<String>> {
        let Some(config) = config else {
            return Ok(None);
        };
        if let Some(body) = &config.template_body {
            return Ok(Some(body.clone()));
        }
        let Some(name) = config.template_name.as_deref() else {
            return Ok(None);
        };
        let template = match self.load_provisioning_template(scope, name).await {
            Ok(t) => t.value,
            Err(DomainError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if !template.enabled || template.template_type != "JITP" {
            return Ok(None);
        }
        Ok(template.default_body().ok().map(str::to_string))
    }

    /// Just-in-time provisioning: the writes that register `cert` (a device certificate seen
    /// for the first time under a CA with auto-registration) together with everything its
    /// CA's template names, and the certificate as the template leaves it (its `Status`).
    /// The parameters are the ones AWS gives a JITP template: `AWS::IoT::Certificate::Id`,
    /// `::SerialNumber` and the subject's `::CommonName`, `::Country`, `::Organization`,
    /// `::OrganizationalUnit`, `::DistinguishedNameQualifier`, `::StateName`.
    pub(crate) async fn jitp_writes(
        &self,
        scope: &Scope,
        body: &str,
        cert: &Certificate,
        parsed: &certplane_pki::ParsedCertificate,
    ) -> DomainResult<(Vec<Write>, Certificate)> {
        let mut params = BTreeMap::new();
        params.insert("AWS::IoT::Certificate::Id".to_string(), cert.id.to_string());
        if let Some(cn) = &parsed.subject_cn {
            params.insert("AWS::IoT::Certificate::CommonName".to_string(), cn.clone());
        }
        params.insert(
            "AWS::IoT::Certificate::SerialNumber".to_string(),
            parsed.serial_hex.clone(),
        );
        // The subject's other fields, as AWS's JITP extracts them.
        let subject = &parsed.subject;
        for (name, value) in [
            ("Country", &subject.country),
            ("Organization", &subject.organization),
            ("OrganizationalUnit", &subject.organizational_unit),
            ("DistinguishedNameQualifier", &subject.dn_qualifier),
            ("StateName", &subject.state),
        ] {
            if let Some(v) = value {
                params.insert(format!("AWS::IoT::Certificate::{name}"), v.clone());
            }
        }
        let template = Template::parse(body)?;
        // "The certificate must contain values for all of the parameters in the template
        // body" (AWS's JITP documentation): a declared parameter without a value or a
        // Default fails the provisioning.
        let missing = template.unvalued_parameters(&params);
        if !missing.is_empty() {
            return Err(DomainError::invalid(format!(
                "the device certificate gives no value for the template's parameters {}",
                missing.join(", ")
            )));
        }
        let plan = template.resolve(&params)?;
        match plan.certificate.as_ref().map(|c| &c.source) {
            Some(CertificateSource::Id(id)) if id == cert.id.as_str() => {}
            None => {}
            Some(_) => {
                return Err(DomainError::invalid(
                    "a JITP template's certificate must be the registering one \
                     (CertificateId: {\"Ref\": \"AWS::IoT::Certificate::Id\"})",
                ))
            }
        }
        let (mut writes, _) = self.provisioning_writes(scope, &plan, Some(cert)).await?;
        let status = plan
            .certificate
            .as_ref()
            .and_then(|c| c.status)
            .unwrap_or(cert.status);
        if plan.certificate.is_none() {
            writes.push(store::insert(cert)?);
        }
        let mut after = cert.clone();
        after.status = status;
        Ok((writes, after))
    }

    /// Every write a resolved template needs, read and checked against the store now; the
    /// caller applies them as one transaction.
    async fn provisioning_writes(
        &self,
        scope: &Scope,
        plan: &Plan,
        issued: Option<&Certificate>,
    ) -> DomainResult<(Vec<Write>, Registered)> {
        let mut writes = Vec::new();
        let mut out = Registered::default();
        let now = self.now();
        // The certificate: new (inserted), or the account's own (compare-and-set, with the
        // template's status when it gives one).
        let cert = match (&plan.certificate, issued) {
            (None, _) => None,
            (Some(c), Some(new)) => {
                let mut new = new.clone();
                if let Some(s) = c.status {
                    new.status = s;
                }
                writes.push(store::insert(&new)?);
                Some((c.logical_id.clone(), new))
            }
            (Some(c), None) => {
                let CertificateSource::Id(id) = &c.source else {
                    return Err(DomainError::internal("a CSR certificate was not issued"));
                };
                let id = CertificateId::parse(id)?;
                let cur = self.load_owned_certificate(scope, &id).await?;
                if cur.value.status == CertificateStatus::PendingTransfer {
                    return Err(DomainError::invalid(format!(
                        "the certificate {id} is pending transfer; nothing can be attached to it"
                    )));
                }
                let next = match c.status {
                    Some(s) => cur.value.set_status(s, now)?.unwrap_or(cur.value.clone()),
                    None => cur.value.clone(),
                };
                writes.push(cur.update_to(&next)?);
                Some((c.logical_id.clone(), next))
            }
        };
        if let Some((logical, c)) = &cert {
            out.certificate_pem = Some(c.pem.clone());
            out.certificate = Some((logical.clone(), c.id.clone()));
        }
        let principal = cert
            .as_ref()
            .map(|(_, c)| (cert_arn(scope, &c.id), principal_key(&c.id)));

        let mut seen_policies = BTreeSet::new();
        for p in &plan.policies {
            let name = self
                .plan_policy(scope, p, &mut seen_policies, &mut writes)
                .await?;
            out.policies.push((p.logical_id.clone(), name));
        }
        if let Some((arn, key)) = &principal {
            let attached = self.policy_attachments_of_target(scope, key).await?;
            let mut count = attached.len();
            for name in &seen_policies {
                if attached.iter().any(|a| &a.value.policy_name == name) {
                    continue;
                }
                count += 1;
                if count > MAX_POLICIES_PER_TARGET {
                    return Err(DomainError::LimitExceeded(format!(
                        "at most {MAX_POLICIES_PER_TARGET} policies can be attached to one target"
                    )));
                }
                writes.push(Write::InsertIfAbsent(
                    PolicyTarget {
                        account: scope.account.clone(),
                        region: scope.region.clone(),
                        policy_name: name.clone(),
                        target: arn.clone(),
                        target_key: key.clone(),
                        created_at: now,
                    }
                    .to_doc()?,
                ));
            }
        }

        if let Some(t) = &plan.thing {
            self.plan_thing(scope, t, &mut writes).await?;
            if let Some((arn, key)) = &principal {
                let others = self.things_of_principal(scope, key).await?;
                if others
                    .iter()
                    .any(|o| o.value.thing_name != t.name && o.value.exclusive)
                {
                    return Err(DomainError::invalid(format!(
                        "the principal {arn} is attached exclusively to another thing"
                    )));
                }
                writes.push(Write::InsertIfAbsent(
                    ThingPrincipal {
                        account: scope.account.clone(),
                        region: scope.region.clone(),
                        thing_name: t.name.clone(),
                        principal: arn.clone(),
                        principal_key: key.clone(),
                        exclusive: false,
                        created_at: now,
                    }
                    .to_doc()?,
                ));
            }
            out.thing = Some((t.logical_id.clone(), t.name.clone()));
        }
        Ok((writes, out))
    }

    /// One policy resource: an existing policy (compare-and-set unchanged, so a racing
    /// DeletePolicy serialises) or a new one from its document. The name is returned.
    async fn plan_policy(
        &self,
        scope: &Scope,
        p: &PolicyPlan,
        seen: &mut BTreeSet<String>,
        writes: &mut Vec<Write>,
    ) -> DomainResult<String> {
        let name = match (&p.name, &p.document) {
            (Some(n), _) => n.clone(),
            (None, Some(d)) => document_policy_name(d),
            (None, None) => {
                return Err(DomainError::invalid("a policy needs a name or a document"))
            }
        };
        if !seen.insert(name.clone()) {
            return Ok(name);
        }
        match self.load_policy(scope, &name).await {
            Ok(cur) => {
                if let Some(d) = &p.document {
                    if d != &cur.value.document {
                        return Err(DomainError::AlreadyExists {
                            resource: Resource::Policy,
                            id: name,
                        });
                    }
                }
                writes.push(cur.update_to(&cur.value)?);
            }
            Err(DomainError::NotFound { .. }) => match &p.document {
                Some(d) => writes.push(store::insert(&Policy::new(
                    scope,
                    &name,
                    d,
                    Vec::new(),
                    self.now(),
                )?)?),
                None => return Err(DomainError::not_found(Resource::Policy, name)),
            },
            Err(e) => return Err(e),
        }
        Ok(name)
    }

    /// The thing resource: a thing that exists is used as it is (AWS's DO_NOTHING), compare-
    /// and-set unchanged; a new one is inserted with its type, billing group and groups, each
    /// of which must exist and is compare-and-set unchanged beside it.
    async fn plan_thing(
        &self,
        scope: &Scope,
        t: &ThingPlan,
        writes: &mut Vec<Write>,
    ) -> DomainResult<()> {
        match self.load_thing(scope, &t.name).await {
            Ok(cur) => {
                writes.push(cur.update_to(&cur.value)?);
                return Ok(());
            }
            Err(DomainError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        if let Some(ty) = &t.type_name {
            writes.push(self.thing_type_guard(scope, ty).await?);
        }
        if let Some(g) = &t.billing_group {
            writes.push(self.billing_group_guard(scope, g).await?);
        }
        let groups: BTreeSet<&String> = t.groups.iter().collect();
        if groups.len() > MAX_GROUPS_PER_THING {
            return Err(DomainError::LimitExceeded(format!(
                "a thing can be in at most {MAX_GROUPS_PER_THING} thing groups"
            )));
        }
        let now = self.now();
        for g in groups {
            let group = self.load_thing_group(scope, g).await?;
            writes.push(group.update_to(&group.value)?);
            writes.push(store::insert(&ThingGroupMember {
                account: scope.account.clone(),
                region: scope.region.clone(),
                group: g.clone(),
                thing: t.name.clone(),
                created_at: now,
            })?);
        }
        writes.push(store::insert(&Thing {
            name: t.name.clone(),
            id: crate::ids::new_uuid(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            type_name: t.type_name.clone(),
            attributes: t.attributes.clone(),
            version: 1,
            billing_group: t.billing_group.clone(),
            created_at: now,
        })?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_policy_is_named_by_forty_hex_digits() {
        let n = document_policy_name("{}");
        assert_eq!(n.len(), 40);
        assert!(n
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
        assert_eq!(n, document_policy_name("{}"));
        assert_ne!(n, document_policy_name("{ }"));
    }
}
