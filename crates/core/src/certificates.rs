//! Device certificates: the one registry every dialect shares, the lifecycle state machine
//! (issue, register, activate, inactivate, revoke, delete) and its services.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use certplane_pki::{
    parse_certificate_pem, parse_csr, verify_signed_by, IssueRequest, ParsedCertificate, PkiError,
    Subject,
};

use crate::ca_certificates::CaCertificate;
use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::{new_uuid, CertificateId, Scope};
use crate::paging::Page;
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, Stored, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertificateStatus {
    Active,
    Inactive,
    Revoked,
    PendingTransfer,
    RegisterInactive,
    PendingActivation,
}

impl CertificateStatus {
    pub const ALL: [CertificateStatus; 6] = [
        CertificateStatus::Active,
        CertificateStatus::Inactive,
        CertificateStatus::Revoked,
        CertificateStatus::PendingTransfer,
        CertificateStatus::RegisterInactive,
        CertificateStatus::PendingActivation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CertificateStatus::Active => "ACTIVE",
            CertificateStatus::Inactive => "INACTIVE",
            CertificateStatus::Revoked => "REVOKED",
            CertificateStatus::PendingTransfer => "PENDING_TRANSFER",
            CertificateStatus::RegisterInactive => "REGISTER_INACTIVE",
            CertificateStatus::PendingActivation => "PENDING_ACTIVATION",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertificateMode {
    Default,
    SniOnly,
}

impl CertificateMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateMode::Default => "DEFAULT",
            CertificateMode::SniOnly => "SNI_ONLY",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "DEFAULT" => Some(CertificateMode::Default),
            "SNI_ONLY" => Some(CertificateMode::SniOnly),
            _ => None,
        }
    }
}

/// The latest transfer as the certificate's description shows it (AWS `transferData`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferData {
    pub transfer_message: Option<String>,
    pub reject_reason: Option<String>,
    pub transfer_date: Option<Millis>,
    pub accept_date: Option<Millis>,
    pub reject_date: Option<Millis>,
}

/// Which API made the certificate; the registry itself is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Issued by certplane's CA (CreateKeysAndCertificate, CreateCertificateFromCsr, orders).
    Issued,
    /// Brought by the customer (RegisterCertificate*).
    Registered,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub id: CertificateId,
    pub owner: String,
    pub region: String,
    pub status: CertificateStatus,
    pub pem: String,
    pub ca_certificate_id: Option<CertificateId>,
    pub mode: CertificateMode,
    pub previous_owner: Option<String>,
    pub created_at: Millis,
    pub last_modified: Millis,
    pub customer_version: i64,
    pub generation_id: String,
    pub not_before: Millis,
    pub not_after: Millis,
    pub transfer: TransferData,
    /// The account a pending transfer goes to; set exactly while PENDING_TRANSFER.
    pub pending_transfer_to: Option<String>,
    pub origin: Origin,
    /// Why it was revoked, when the revoking API said (for the CRL and OCSP reason code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_cause: Option<crate::revocation::RevocationCause>,
}

impl Document for Certificate {
    const KIND: Kind = Kind::Certificate;
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn account(&self) -> String {
        self.owner.clone()
    }
    fn region(&self) -> String {
        self.region.clone()
    }
    fn idx1(&self) -> Option<String> {
        self.ca_certificate_id.as_ref().map(ToString::to_string)
    }
    fn idx2(&self) -> Option<String> {
        self.pending_transfer_to.clone()
    }
}

/// Statuses a client may ask for when registering a certificate.
pub fn registrable_status(s: CertificateStatus) -> DomainResult<CertificateStatus> {
    match s {
        CertificateStatus::Active | CertificateStatus::Inactive | CertificateStatus::Revoked => {
            Ok(s)
        }
        other => Err(DomainError::invalid(format!(
            "a certificate cannot be registered with status {}",
            other.as_str()
        ))),
    }
}

pub(crate) fn pki_error(e: PkiError) -> DomainError {
    match e {
        PkiError::Malformed(m) | PkiError::Rejected(m) => DomainError::BadCertificate(m),
        PkiError::Signing(m) => DomainError::Internal(m),
    }
}

impl Certificate {
    pub(crate) fn new(
        scope: &Scope,
        parsed: &ParsedCertificate,
        pem: String,
        status: CertificateStatus,
        mode: CertificateMode,
        origin: Origin,
        now: Millis,
    ) -> Self {
        Certificate {
            id: CertificateId::of_der(&parsed.der),
            owner: scope.account.clone(),
            region: scope.region.clone(),
            status,
            pem,
            ca_certificate_id: None,
            mode,
            previous_owner: None,
            created_at: now,
            last_modified: now,
            customer_version: 1,
            generation_id: new_uuid(),
            not_before: parsed.not_before,
            not_after: parsed.not_after,
            transfer: TransferData::default(),
            pending_transfer_to: None,
            origin,
            revocation_cause: None,
        }
    }

    fn touched(mut self, now: Millis) -> Self {
        self.last_modified = now;
        self.customer_version += 1;
        self.generation_id = new_uuid();
        self
    }

    /// UpdateCertificate. `Ok(None)` means "already in that status": nothing to write.
    pub fn set_status(&self, new: CertificateStatus, now: Millis) -> DomainResult<Option<Self>> {
        match new {
            CertificateStatus::PendingTransfer
            | CertificateStatus::PendingActivation
            | CertificateStatus::RegisterInactive => {
                return Err(DomainError::invalid(format!(
                    "the status {} cannot be set with UpdateCertificate",
                    new.as_str()
                )))
            }
            CertificateStatus::Active
            | CertificateStatus::Inactive
            | CertificateStatus::Revoked => {}
        }
        if self.status == new {
            return Ok(None);
        }
        match self.status {
            CertificateStatus::Revoked => Err(DomainError::WrongState {
                current: self.status.as_str().into(),
                message: format!(
                    "Certificate {} is REVOKED; a revoked certificate's status cannot change",
                    self.id
                ),
            }),
            CertificateStatus::PendingTransfer => Err(DomainError::WrongState {
                current: self.status.as_str().into(),
                message: format!(
                    "Certificate {} is PENDING_TRANSFER; cancel or reject the transfer first",
                    self.id
                ),
            }),
            _ => {
                let mut next = self.clone();
                next.status = new;
                Ok(Some(next.touched(now)))
            }
        }
    }

    /// DeleteCertificate's state rule (attachments are checked by the service).
    pub fn check_deletable(&self) -> DomainResult<()> {
        match self.status {
            CertificateStatus::Active => Err(DomainError::WrongState {
                current: self.status.as_str().into(),
                message: format!(
                    "Certificate must be deactivated (not ACTIVE) before deletion. Id: {}",
                    self.id
                ),
            }),
            CertificateStatus::PendingTransfer => Err(DomainError::WrongState {
                current: self.status.as_str().into(),
                message: format!(
                    "Certificate {} has a pending transfer; cancel it before deletion",
                    self.id
                ),
            }),
            _ => Ok(()),
        }
    }

    pub fn visible_to(&self, scope: &Scope) -> bool {
        self.region == scope.region
            && (self.owner == scope.account
                || self.pending_transfer_to.as_deref() == Some(scope.account.as_str()))
    }
}

/// The principal key attachments use for a certificate, whatever ARN spelled it.
pub fn principal_key(id: &CertificateId) -> String {
    format!("cert/{id}")
}

impl Core {
    /// Loads a certificate the caller can see (owner, or target of its pending transfer).
    pub async fn load_visible_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<Stored<Certificate>> {
        match store::get::<Certificate>(self.store(), id.as_str()).await? {
            Some(c) if c.value.visible_to(scope) => Ok(c),
            _ => Err(DomainError::not_found(Resource::Certificate, id.as_str())),
        }
    }

    /// Loads a certificate the caller owns.
    pub async fn load_owned_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<Stored<Certificate>> {
        match store::get::<Certificate>(self.store(), id.as_str()).await? {
            Some(c) if c.value.owner == scope.account && c.value.region == scope.region => Ok(c),
            _ => Err(DomainError::not_found(Resource::Certificate, id.as_str())),
        }
    }

    async fn insert_certificate(&self, cert: &Certificate) -> DomainResult<()> {
        self.store()
            .apply(vec![store::insert(cert)?])
            .await
            .map_err(|e| match e {
                DomainError::AlreadyExists { .. } => DomainError::AlreadyExists {
                    resource: Resource::Certificate,
                    id: cert.id.to_string(),
                },
                other => other,
            })
    }

    /// CreateKeysAndCertificate: a new RSA-2048 key pair and a certificate from certplane's CA.
    pub async fn create_keys_and_certificate(
        &self,
        scope: &Scope,
        set_as_active: bool,
    ) -> DomainResult<(Certificate, certplane_pki::IssuedKeyPair)> {
        let now = self.now();
        let issuer = self.issuer();
        // RSA key generation takes tens of milliseconds of CPU: keep it off the request threads.
        let (pem, _der, keys) =
            tokio::task::spawn_blocking(move || issuer.create_keys_and_certificate(now))
                .await
                .map_err(|e| DomainError::internal(format!("key generation task: {e}")))?
                .map_err(pki_error)?;
        let parsed = parse_certificate_pem(&pem).map_err(pki_error)?;
        let cert = Certificate::new(
            scope,
            &parsed,
            pem,
            if set_as_active {
                CertificateStatus::Active
            } else {
                CertificateStatus::Inactive
            },
            CertificateMode::Default,
            Origin::Issued,
            now,
        );
        self.insert_certificate(&cert).await?;
        Ok((cert, keys))
    }

    /// CreateCertificateFromCsr: certifies the CSR's own key; every call makes a new certificate.
    pub async fn create_certificate_from_csr(
        &self,
        scope: &Scope,
        csr_pem: &str,
        set_as_active: bool,
    ) -> DomainResult<Certificate> {
        let status = if set_as_active {
            CertificateStatus::Active
        } else {
            CertificateStatus::Inactive
        };
        let cert = self.certificate_from_csr(scope, csr_pem, status)?;
        self.insert_certificate(&cert).await?;
        Ok(cert)
    }

    /// A new certificate from certplane's CA for the CSR's key, not yet stored (RegisterThing
    /// stores it with the rest of its template).
    pub(crate) fn certificate_from_csr(
        &self,
        scope: &Scope,
        csr_pem: &str,
        status: CertificateStatus,
    ) -> DomainResult<Certificate> {
        let csr = parse_csr(csr_pem).map_err(|e| match e {
            PkiError::Malformed(m) | PkiError::Rejected(m) => DomainError::InvalidInput(m),
            PkiError::Signing(m) => DomainError::Internal(m),
        })?;
        let now = self.now();
        let (pem, _der) = self
            .issuer()
            .issue(&IssueRequest {
                subject: Subject::Der(&csr.subject_der),
                spki_der: &csr.spki_der,
                dns_names: &[],
                not_before: now,
                not_after: certplane_pki::issuer_not_after(),
            })
            .map_err(pki_error)?;
        let parsed = parse_certificate_pem(&pem).map_err(pki_error)?;
        Ok(Certificate::new(
            scope,
            &parsed,
            pem,
            status,
            CertificateMode::Default,
            Origin::Issued,
            now,
        ))
    }

    /// RegisterCertificate: a device certificate signed by a CA registered in this scope.
    pub async fn register_certificate(
        &self,
        scope: &Scope,
        pem: &str,
        ca_pem: Option<&str>,
        status: CertificateStatus,
    ) -> DomainResult<Certificate> {
        let status = registrable_status(status)?;
        let parsed = parse_certificate_pem(pem).map_err(pki_error)?;
        // AWS answers a certificate that is already registered before looking at any CA.
        let id = CertificateId::of_der(&parsed.der);
        if store::get::<Certificate>(self.store(), id.as_str())
            .await?
            .is_some()
        {
            return Err(DomainError::AlreadyExists {
                resource: Resource::Certificate,
                id: id.to_string(),
            });
        }
        let ca =
            match ca_pem {
                Some(ca_pem) => {
                    let ca_parsed = parse_certificate_pem(ca_pem).map_err(pki_error)?;
                    let ca_id = CertificateId::of_der(&ca_parsed.der);
                    let ca = store::get::<CaCertificate>(
                        self.store(),
                        &CaCertificate::key_for(scope, &ca_id),
                    )
                    .await?
                    .ok_or_else(|| {
                        DomainError::BadCertificate(format!(
                        "the CA certificate {ca_id} is not registered in this account and region"
                    ))
                    })?;
                    if !verify_signed_by(&parsed.der, &ca_parsed.der) {
                        return Err(DomainError::BadCertificate(
                            "the certificate is not signed by the given CA certificate".into(),
                        ));
                    }
                    ca.value
                }
                None => {
                    let candidates = self.cas_with_subject(scope, &parsed.issuer_der).await?;
                    let mut signers: Vec<CaCertificate> = candidates
                        .into_iter()
                        .filter(|ca| {
                            parse_certificate_pem(&ca.pem)
                                .map(|c| verify_signed_by(&parsed.der, &c.der))
                                .unwrap_or(false)
                        })
                        .collect();
                    match signers.len() {
                        0 => return Err(DomainError::BadCertificate(
                            "the certificate is not signed by any CA certificate registered in \
                             this account and region"
                                .into(),
                        )),
                        1 => signers.remove(0),
                        n => {
                            return Err(DomainError::AmbiguousIssuer(format!(
                            "{n} registered CA certificates could have signed this certificate; \
                             pass caCertificatePem to choose one"
                        )))
                        }
                    }
                }
            };
        // A CA's status gates authentication, not registration (COMPATIBILITY.md).
        let now = self.now();
        let mut cert = Certificate::new(
            scope,
            &parsed,
            pem.to_string(),
            status,
            ca.mode,
            Origin::Registered,
            now,
        );
        cert.ca_certificate_id = Some(ca.id.clone());
        self.insert_certificate(&cert).await?;
        Ok(cert)
    }

    /// RegisterCertificateWithoutCA: any certificate; its mode is SNI_ONLY.
    pub async fn register_certificate_without_ca(
        &self,
        scope: &Scope,
        pem: &str,
        status: CertificateStatus,
    ) -> DomainResult<Certificate> {
        let status = registrable_status(status)?;
        let parsed = parse_certificate_pem(pem).map_err(pki_error)?;
        let cert = Certificate::new(
            scope,
            &parsed,
            pem.to_string(),
            status,
            CertificateMode::SniOnly,
            Origin::Registered,
            self.now(),
        );
        self.insert_certificate(&cert).await?;
        Ok(cert)
    }

    /// DescribeCertificate: the certificate as the store holds it, shared with the other
    /// callers that read it since its last change ([`crate::doc_cache`]).
    pub async fn describe_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<Arc<Stored<Certificate>>> {
        match self.get_shared::<Certificate>(id.as_str()).await? {
            Some(c) if c.value.visible_to(scope) => Ok(c),
            _ => Err(DomainError::not_found(Resource::Certificate, id.as_str())),
        }
    }

    /// ListCertificates: the caller's certificates plus those pending transfer to it.
    pub async fn list_certificates(
        &self,
        scope: &Scope,
        page: &Page,
    ) -> DomainResult<(Vec<Certificate>, Option<String>)> {
        let filter = Filter {
            region: Some(scope.region.clone()),
            account_or_idx2: Some(scope.account.clone()),
            ..Filter::default()
        };
        let rows = store::query::<Certificate>(self.store(), &filter, page.query).await?;
        let (rows, next) = page.finish(rows, |r| r.seq);
        Ok((rows.into_iter().map(|r| r.value).collect(), next))
    }

    pub async fn list_certificates_by_ca(
        &self,
        scope: &Scope,
        ca_id: &CertificateId,
        page: &Page,
    ) -> DomainResult<(Vec<Certificate>, Option<String>)> {
        let filter = Filter {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            idx1: Some(ca_id.to_string()),
            ..Filter::default()
        };
        let rows = store::query::<Certificate>(self.store(), &filter, page.query).await?;
        let (rows, next) = page.finish(rows, |r| r.seq);
        Ok((rows.into_iter().map(|r| r.value).collect(), next))
    }

    pub async fn update_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
        new_status: CertificateStatus,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_owned_certificate(scope, id).await?;
            match cur.value.set_status(new_status, self.now())? {
                Some(next) => self.store().apply(vec![cur.update_to(&next)?]).await,
                None => Ok(()),
            }
        })
        .await
    }

    pub async fn delete_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
        force: bool,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_owned_certificate(scope, id).await?;
            cur.value.check_deletable()?;
            let principal = principal_key(id);
            let things = self.things_of_principal(scope, &principal).await?;
            if !things.is_empty() {
                return Err(DomainError::StillAttached(format!(
                    "Things must be detached before deletion (arn: arn:aws:iot:{}:{}:cert/{id})",
                    scope.region, scope.account
                )));
            }
            let policies = self.policy_attachments_of_target(scope, &principal).await?;
            if !policies.is_empty() && !force {
                return Err(DomainError::StillAttached(format!(
                    "Certificate policies must be detached before deletion (arn: \
                     arn:aws:iot:{}:{}:cert/{id})",
                    scope.region, scope.account
                )));
            }
            let mut writes: Vec<Write> = policies.iter().map(|p| p.delete()).collect();
            writes.push(cur.delete());
            self.store().apply(writes).await
        })
        .await
    }
}
