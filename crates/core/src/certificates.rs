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
    /// True for an additional registration of a shared certificate (see "Several registrations
    /// of one certificate" below): its key is `<id>/<account>/<region>`, not the id.
    #[serde(default, skip_serializing_if = "is_false")]
    pub additional: bool,
    /// On the first registration (keyed by the id) of a shared certificate: the accounts and
    /// regions holding an additional registration, in the order they registered it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_registrations: Vec<Scope>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

// Several registrations of one certificate.
//
// AWS lets a certificate registered without a CA (RegisterCertificateWithoutCA, SNI_ONLY) be
// registered in several accounts and regions, each registration with its own ARN, status,
// dates and attachments. Every other certificate has exactly one registration.
//
// The first registration of a certificate is keyed by the certificate id alone, as every
// certificate always was (databases written before this change need nothing). Each further
// registration of a shared certificate is its own document keyed `<id>/<account>/<region>`
// (`additional_key`; ids are hex, so the first '/' ends the id) with `additional: true`, and
// the first registration lists the scopes of the others in `other_registrations`. Invariants,
// each kept by one compare-and-set transaction:
// - A document keyed by the id exists whenever any registration does, so "is this certificate
//   registered anywhere" (RegisterCertificate, the gateway's first contact) is still one read
//   of the id, and the unique key of the id still decides races between first registrations.
// - Adding a registration inserts its document and updates the first registration (its list)
//   at the version read, so it cannot commit against a first registration deleted or
//   changed meanwhile; two racing additions in one scope collide on the additional key.
// - Deleting the first registration while others exist promotes the oldest other one: its
//   content is written over the id's document (at the version read) and its own document is
//   deleted, in one transaction. Deleting an additional one removes it from the list.

/// The key of the additional registration of certificate `id` held in `scope`.
pub fn additional_key(id: &str, scope: &Scope) -> String {
    format!("{id}/{}/{}", scope.account, scope.region)
}

/// The certificate id of a certificate document's key (the key itself for a first registration).
pub fn certificate_id_of_key(key: &str) -> &str {
    key.split('/').next().unwrap_or(key)
}

/// Where a certificate is registered, as one scope sees it: `D` is how a document is held
/// (owned, or shared from the document cache).
#[derive(Debug, Clone)]
pub enum Registration<D = Stored<Certificate>> {
    /// The scope's own registration.
    Here(D),
    /// Registered, but not in this scope: the first registration (held elsewhere).
    Elsewhere(D),
    Nowhere,
}

impl<D> Registration<D> {
    /// The document this scope would decide on, whichever scope holds it.
    pub fn document(self) -> Option<D> {
        match self {
            Registration::Here(c) | Registration::Elsewhere(c) => Some(c),
            Registration::Nowhere => None,
        }
    }
}

impl Document for Certificate {
    const KIND: Kind = Kind::Certificate;
    fn key(&self) -> String {
        if self.additional {
            additional_key(self.id.as_str(), &self.scope())
        } else {
            self.id.to_string()
        }
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
            additional: false,
            other_registrations: Vec::new(),
        }
    }

    /// The account and region holding this registration.
    pub fn scope(&self) -> Scope {
        Scope::new(&self.owner, &self.region)
    }

    fn held_in(&self, scope: &Scope) -> bool {
        self.owner == scope.account && self.region == scope.region
    }

    /// Whether other accounts and regions may register this certificate too: it was registered
    /// without a CA (SNI_ONLY); DEFAULT-mode and CA-registered certificates keep one owner.
    pub fn is_shareable(&self) -> bool {
        self.mode == CertificateMode::SniOnly
            && self.ca_certificate_id.is_none()
            && self.origin == Origin::Registered
    }

    /// Whether this certificate has (or is) a registration besides the first one.
    pub fn has_other_registrations(&self) -> bool {
        self.additional || !self.other_registrations.is_empty()
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

/// [`Core::find_registration`] with documents read by `read` (a key in, the document if any
/// out), owned or shared alike.
async fn find_registration_by<D, R, Fut>(
    scope: &Scope,
    id: &CertificateId,
    read: R,
) -> DomainResult<Registration<D>>
where
    D: std::borrow::Borrow<Stored<Certificate>>,
    R: Fn(String) -> Fut,
    Fut: std::future::Future<Output = DomainResult<Option<D>>>,
{
    // Two tries: an additional registration promoted to the id's document between the two
    // reads is found there on the second; one deleted between them is gone.
    let mut tries = 0;
    loop {
        tries += 1;
        let Some(first) = read(id.to_string()).await? else {
            return Ok(Registration::Nowhere);
        };
        let cert = &first.borrow().value;
        if cert.held_in(scope) {
            return Ok(Registration::Here(first));
        }
        if !cert.other_registrations.contains(scope) {
            return Ok(Registration::Elsewhere(first));
        }
        if let Some(own) = read(additional_key(id.as_str(), scope)).await? {
            return Ok(Registration::Here(own));
        }
        if tries == 2 {
            return Ok(Registration::Elsewhere(first));
        }
    }
}

impl Core {
    /// Where certificate `id` is registered as `scope` sees it: the scope's own registration
    /// (the first one or an additional one), else the first registration, else nowhere.
    pub async fn find_registration(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<Registration> {
        find_registration_by(scope, id, |key| async move {
            store::get::<Certificate>(self.store(), &key).await
        })
        .await
    }

    /// Loads a certificate the caller can see (its own registration, or the certificate
    /// pending transfer to it).
    pub async fn load_visible_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<Stored<Certificate>> {
        match self.find_registration(scope, id).await? {
            Registration::Here(c) => Ok(c),
            Registration::Elsewhere(c) if c.value.visible_to(scope) => Ok(c),
            _ => Err(DomainError::not_found(Resource::Certificate, id.as_str())),
        }
    }

    /// Loads the caller's own registration of a certificate.
    pub async fn load_owned_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<Stored<Certificate>> {
        match self.find_registration(scope, id).await? {
            Registration::Here(c) => Ok(c),
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
        let already = || DomainError::AlreadyExists {
            resource: Resource::Certificate,
            id: CertificateId::of_der(&parsed.der).to_string(),
        };
        self.with_retry(|| async {
            let cert = Certificate::new(
                scope,
                &parsed,
                pem.to_string(),
                status,
                CertificateMode::SniOnly,
                Origin::Registered,
                self.now(),
            );
            let Some(first) = store::get::<Certificate>(self.store(), cert.id.as_str()).await?
            else {
                // The first registration anywhere. Losing the insert to a racing first
                // registration (of this scope or another) means deciding again against it.
                return match self.store().apply(vec![store::insert(&cert)?]).await {
                    Err(DomainError::AlreadyExists { .. }) => Err(DomainError::Stale),
                    other => other.map(|()| cert),
                };
            };
            let f = &first.value;
            // Registered here already; or held by one owner (DEFAULT mode, registered with a
            // CA, issued); or on its way to another account (a transfer moves the one
            // registration it has): 409, as before several registrations existed.
            if f.held_in(scope)
                || f.other_registrations.contains(scope)
                || !f.is_shareable()
                || f.status == CertificateStatus::PendingTransfer
            {
                return Err(already());
            }
            let mut extra = cert;
            extra.additional = true;
            let mut listed = f.clone();
            listed.other_registrations.push(scope.clone());
            match self
                .store()
                .apply(vec![first.update_to(&listed)?, store::insert(&extra)?])
                .await
            {
                Err(DomainError::AlreadyExists { .. }) => Err(already()),
                other => other.map(|()| extra),
            }
        })
        .await
    }

    /// DescribeCertificate: the certificate as the store holds it, shared with the other
    /// callers that read it since its last change ([`crate::doc_cache`]).
    pub async fn describe_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<Arc<Stored<Certificate>>> {
        let found = find_registration_by(scope, id, |key| async move {
            self.get_shared::<Certificate>(&key).await
        })
        .await?;
        match found {
            Registration::Here(c) => Ok(c),
            Registration::Elsewhere(c) if c.value.visible_to(scope) => Ok(c),
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
            writes.extend(self.registration_removal(&cur).await?);
            self.store().apply(writes).await
        })
        .await
    }

    /// The writes removing one registration, keeping the invariants of "Several registrations
    /// of one certificate": an additional one leaves the first one's list; the first one, when
    /// others exist, is replaced by the oldest other one.
    async fn registration_removal(&self, cur: &Stored<Certificate>) -> DomainResult<Vec<Write>> {
        let c = &cur.value;
        if c.additional {
            let Some(first) = store::get::<Certificate>(self.store(), c.id.as_str()).await? else {
                // Cannot be while the additional one exists: read both again.
                return Err(DomainError::Stale);
            };
            let mut listed = first.value.clone();
            listed.other_registrations.retain(|s| *s != c.scope());
            return Ok(vec![cur.delete(), first.update_to(&listed)?]);
        }
        let Some(next_scope) = c.other_registrations.first() else {
            return Ok(vec![cur.delete()]);
        };
        let Some(next) =
            store::get::<Certificate>(self.store(), &additional_key(c.id.as_str(), next_scope))
                .await?
        else {
            // Deleted after `cur` was read (which changed `cur`): read both again.
            return Err(DomainError::Stale);
        };
        let mut promoted = next.value.clone();
        promoted.additional = false;
        promoted.other_registrations = c.other_registrations[1..].to_vec();
        Ok(vec![
            next.delete(),
            Write::Update {
                doc: promoted.to_doc()?,
                expected_version: cur.version,
            },
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(mode: CertificateMode, ca: Option<CertificateId>) -> Certificate {
        let Ok(issuer) = certplane_pki::IssuingCa::generate("t", 0) else {
            panic!("CA generation failed")
        };
        let parsed = certplane_pki::parse_certificate_der(issuer.cert_der()).expect("parse");
        let mut c = Certificate::new(
            &Scope::new("111111111111", "us-east-1"),
            &parsed,
            String::new(),
            CertificateStatus::Inactive,
            mode,
            Origin::Registered,
            0,
        );
        c.ca_certificate_id = ca;
        c
    }

    #[test]
    fn additional_registrations_have_their_own_key() {
        let mut c = cert(CertificateMode::SniOnly, None);
        let id = c.id.to_string();
        assert_eq!(c.key(), id);
        assert_eq!(certificate_id_of_key(&c.key()), id);
        c.additional = true;
        c.owner = "222222222222".into();
        assert_eq!(c.key(), format!("{id}/222222222222/us-east-1"));
        assert_eq!(c.key(), additional_key(&id, &c.scope()));
        assert_eq!(certificate_id_of_key(&c.key()), id);
    }

    #[test]
    fn only_certificates_registered_without_a_ca_are_shareable() {
        assert!(cert(CertificateMode::SniOnly, None).is_shareable());
        assert!(!cert(CertificateMode::Default, None).is_shareable());
        let ca = CertificateId::of_der(&[9]);
        assert!(!cert(CertificateMode::SniOnly, Some(ca)).is_shareable());
        let mut issued = cert(CertificateMode::SniOnly, None);
        issued.origin = Origin::Issued;
        assert!(!issued.is_shareable());
    }

    #[test]
    fn bodies_written_before_several_registrations_still_decode() {
        let c = cert(CertificateMode::SniOnly, None);
        let body = serde_json::to_value(&c).expect("encode");
        // A single registration writes neither member: old and new bodies are the same.
        assert!(body.get("additional").is_none());
        assert!(body.get("other_registrations").is_none());
        let back: Certificate = serde_json::from_value(body).expect("decode");
        assert_eq!(back, c);
        assert!(!back.has_other_registrations());
    }
}
