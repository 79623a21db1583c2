//! CA certificates customers register (RegisterCACertificate & co.) and the per-account
//! registration code that proves possession of a CA's key.

use serde::{Deserialize, Serialize};

use certplane_pki::{parse_certificate_pem, verify_signed_by};

use crate::certificates::{pki_error, CertificateMode};
use crate::claims;
use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::{new_uuid, CertificateId, Scope};
use crate::paging::Page;
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery, Write};

/// At most this many CA certificates with one subject per account and region (AWS quota).
pub const MAX_CAS_PER_SUBJECT: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaStatus {
    Active,
    Inactive,
}

impl CaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaStatus::Active => "ACTIVE",
            CaStatus::Inactive => "INACTIVE",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(CaStatus::Active),
            "INACTIVE" => Some(CaStatus::Inactive),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationConfig {
    pub template_body: Option<String>,
    pub role_arn: Option<String>,
    pub template_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaCertificate {
    pub id: CertificateId,
    pub owner: String,
    pub region: String,
    pub status: CaStatus,
    pub pem: String,
    pub mode: CertificateMode,
    pub auto_registration: bool,
    pub registration_config: Option<RegistrationConfig>,
    pub created_at: Millis,
    pub last_modified: Millis,
    pub customer_version: i64,
    pub generation_id: String,
    pub not_before: Millis,
    pub not_after: Millis,
    /// Hex SHA-256 of the subject name's DER: device certificates find their CA by it.
    pub subject_hash: String,
    pub tags: Vec<(String, String)>,
    /// The CA's name where the API gives one (ApsaraMQ for MQTT `CaName`).
    #[serde(default)]
    pub name: Option<String>,
    /// The proof-of-possession certificate it was registered with (MQTT `VerificationContent`).
    #[serde(default)]
    pub verification_pem: Option<String>,
    /// The registration code its verification certificate proved.
    #[serde(default)]
    pub registration_code: Option<String>,
}

impl CaCertificate {
    pub fn key_for(scope: &Scope, id: &CertificateId) -> String {
        format!("{}:{}:{}", scope.account, scope.region, id)
    }
}

impl Document for CaCertificate {
    const KIND: Kind = Kind::CaCertificate;
    fn key(&self) -> String {
        CaCertificate::key_for(&Scope::new(&self.owner, &self.region), &self.id)
    }
    fn account(&self) -> String {
        self.owner.clone()
    }
    fn region(&self) -> String {
        self.region.clone()
    }
    fn idx1(&self) -> Option<String> {
        Some(self.id.to_string())
    }
    fn idx2(&self) -> Option<String> {
        Some(self.subject_hash.clone())
    }
}

/// The account's registration code (64 hex), kept until DeleteRegistrationCode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationCode {
    pub account: String,
    pub region: String,
    pub code: String,
    pub created_at: Millis,
}

impl RegistrationCode {
    fn key_for(scope: &Scope) -> String {
        format!("{}:{}", scope.account, scope.region)
    }
}

impl Document for RegistrationCode {
    const KIND: Kind = Kind::RegistrationCode;
    fn key(&self) -> String {
        RegistrationCode::key_for(&Scope::new(&self.account, &self.region))
    }
    fn account(&self) -> String {
        self.account.clone()
    }
    fn region(&self) -> String {
        self.region.clone()
    }
}

fn subject_hash(subject_der: &[u8]) -> String {
    CertificateId::of_der(subject_der).to_string()
}

fn random_code() -> DomainResult<String> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| DomainError::internal("no randomness"))?;
    Ok(hex::encode(b))
}

/// What RegisterCACertificate was asked to do.
#[derive(Debug, Clone, Default)]
pub struct CaRegistration<'a> {
    pub ca_pem: &'a str,
    pub verification_pem: Option<&'a str>,
    pub mode: Option<CertificateMode>,
    pub set_as_active: bool,
    pub allow_auto_registration: bool,
    pub registration_config: Option<RegistrationConfig>,
    pub tags: Vec<(String, String)>,
    pub name: Option<String>,
    /// Each registration code proves one CA only (ApsaraMQ); AWS keeps a code until deleted.
    pub consume_registration_code: bool,
}

/// What UpdateCACertificate was asked to change.
#[derive(Debug, Clone, Default)]
pub struct CaUpdate {
    pub status: Option<CaStatus>,
    pub auto_registration: Option<bool>,
    pub registration_config: Option<RegistrationConfig>,
    pub remove_auto_registration: bool,
}

impl Core {
    /// GetRegistrationCode: the same code until it is deleted.
    pub async fn get_registration_code(&self, scope: &Scope) -> DomainResult<String> {
        let key = RegistrationCode::key_for(scope);
        if let Some(c) = store::get::<RegistrationCode>(self.store(), &key).await? {
            return Ok(c.value.code);
        }
        let code = RegistrationCode {
            account: scope.account.clone(),
            region: scope.region.clone(),
            code: random_code()?,
            created_at: self.now(),
        };
        // Two racing first calls: one insert wins and both answer with the stored code.
        self.store()
            .apply(vec![Write::InsertIfAbsent(code.to_doc()?)])
            .await?;
        store::get::<RegistrationCode>(self.store(), &key)
            .await?
            .map(|c| c.value.code)
            .ok_or_else(|| DomainError::internal("registration code vanished after insert"))
    }

    /// DeleteRegistrationCode: idempotent; the next GetRegistrationCode makes a new code.
    pub async fn delete_registration_code(&self, scope: &Scope) -> DomainResult<()> {
        self.with_retry(|| async {
            match store::get::<RegistrationCode>(self.store(), &RegistrationCode::key_for(scope))
                .await?
            {
                Some(c) => self.store().apply(vec![c.delete()]).await,
                None => Ok(()),
            }
        })
        .await
    }

    /// Whether a CA of this scope was registered with this (one-use) registration code: each
    /// CA keeps the code it proved, so no separate record of spent codes is needed.
    async fn registration_code_used(&self, scope: &Scope, code: &str) -> DomainResult<bool> {
        let filter = Filter {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            ..Filter::default()
        };
        Ok(
            store::query::<CaCertificate>(self.store(), &filter, PageQuery::all())
                .await?
                .iter()
                .any(|c| c.value.registration_code.as_deref() == Some(code)),
        )
    }

    pub(crate) async fn cas_with_subject(
        &self,
        scope: &Scope,
        subject_der: &[u8],
    ) -> DomainResult<Vec<CaCertificate>> {
        let filter = Filter {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            idx2: Some(subject_hash(subject_der)),
            ..Filter::default()
        };
        Ok(
            store::query::<CaCertificate>(self.store(), &filter, PageQuery::all())
                .await?
                .into_iter()
                .map(|s| s.value)
                .collect(),
        )
    }

    pub async fn register_ca_certificate(
        &self,
        scope: &Scope,
        req: CaRegistration<'_>,
    ) -> DomainResult<CaCertificate> {
        let ca = parse_certificate_pem(req.ca_pem).map_err(pki_error)?;
        if !ca.is_ca {
            return Err(DomainError::BadCertificate(
                "the certificate is not a CA certificate (basicConstraints CA:TRUE is missing)"
                    .into(),
            ));
        }
        let mode = req.mode.unwrap_or(CertificateMode::Default);
        // The code proven, and (when the API uses each code once) the write that consumes it.
        let mut proven_code: Option<(String, Option<Write>)> = None;
        match (mode, req.verification_pem) {
            (CertificateMode::Default, None) => {
                return Err(DomainError::invalid(
                    "verificationCertificate is required when certificateMode is DEFAULT",
                ))
            }
            (CertificateMode::SniOnly, Some(_)) => {
                return Err(DomainError::invalid(
                    "verificationCertificate must not be given when certificateMode is SNI_ONLY",
                ))
            }
            (CertificateMode::Default, Some(v)) => {
                let ver = parse_certificate_pem(v).map_err(pki_error)?;
                let code = self.get_registration_code(scope).await?;
                if ver.subject_cn.as_deref() != Some(code.as_str()) {
                    if req.consume_registration_code {
                        if let Some(cn) = ver.subject_cn.as_deref() {
                            if self.registration_code_used(scope, cn).await? {
                                return Err(DomainError::RegistrationCodeUsed(
                                    "the verification certificate carries a register code that \
                                     already registered a CA; get a new one"
                                        .into(),
                                ));
                            }
                        }
                    }
                    return Err(DomainError::RegistrationCodeMismatch(
                        "the verification certificate's common name is not this account's \
                         registration code"
                            .into(),
                    ));
                }
                let consume = if req.consume_registration_code {
                    store::get::<RegistrationCode>(self.store(), &RegistrationCode::key_for(scope))
                        .await?
                        .filter(|c| c.value.code == code)
                        .map(|c| c.delete())
                } else {
                    None
                };
                proven_code = Some((code, consume));
                if !verify_signed_by(&ver.der, &ca.der) {
                    return Err(DomainError::BadCertificate(
                        "the verification certificate is not signed by the CA certificate's key"
                            .into(),
                    ));
                }
            }
            (CertificateMode::SniOnly, None) => {}
        }
        let id = CertificateId::of_der(&ca.der);
        if mode == CertificateMode::Default {
            // A DEFAULT-mode CA belongs to one account per region.
            let filter = Filter {
                region: Some(scope.region.clone()),
                idx1: Some(id.to_string()),
                ..Filter::default()
            };
            let taken = store::query::<CaCertificate>(self.store(), &filter, PageQuery::all())
                .await?
                .into_iter()
                .any(|c| c.value.mode == CertificateMode::Default);
            if taken {
                return Err(DomainError::AlreadyExists {
                    resource: Resource::CaCertificate,
                    id: id.to_string(),
                });
            }
        }
        if self.cas_with_subject(scope, &ca.subject_der).await?.len() >= MAX_CAS_PER_SUBJECT {
            return Err(DomainError::LimitExceeded(format!(
                "at most {MAX_CAS_PER_SUBJECT} CA certificates with the same subject can be \
                 registered in one account and region"
            )));
        }
        let now = self.now();
        let cert = CaCertificate {
            id: id.clone(),
            owner: scope.account.clone(),
            region: scope.region.clone(),
            status: if req.set_as_active {
                CaStatus::Active
            } else {
                CaStatus::Inactive
            },
            pem: req.ca_pem.to_string(),
            mode,
            auto_registration: req.allow_auto_registration,
            registration_config: req.registration_config,
            created_at: now,
            last_modified: now,
            customer_version: 1,
            generation_id: new_uuid(),
            not_before: ca.not_before,
            not_after: ca.not_after,
            subject_hash: subject_hash(&ca.subject_der),
            tags: req.tags,
            name: req.name,
            verification_pem: req.verification_pem.map(str::to_string),
            registration_code: proven_code.as_ref().map(|(c, _)| c.clone()),
        };
        let mut writes = vec![store::insert(&cert)?];
        let consumes_code = match proven_code.and_then(|(_, w)| w) {
            Some(w) => {
                writes.push(w);
                true
            }
            None => false,
        };
        if mode == CertificateMode::Default {
            // The check above reads; this claim makes two racing registrations (from two
            // accounts, or two nodes) unable to both commit.
            writes.push(claims::claim(
                &default_ca_namespace(&scope.region),
                id.as_str(),
                &scope.account,
                &cert.key(),
            )?);
        }
        self.store().apply(writes).await.map_err(|e| match e {
            DomainError::AlreadyExists { .. } => DomainError::AlreadyExists {
                resource: Resource::CaCertificate,
                id: id.to_string(),
            },
            // Another registration consumed the same code first.
            DomainError::Stale if consumes_code => DomainError::RegistrationCodeUsed(
                "the register code has already been used; get a new one".into(),
            ),
            other => other,
        })?;
        Ok(cert)
    }

    pub(crate) async fn load_ca(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<store::Stored<CaCertificate>> {
        store::get::<CaCertificate>(self.store(), &CaCertificate::key_for(scope, id))
            .await?
            .ok_or_else(|| DomainError::not_found(Resource::CaCertificate, id.as_str()))
    }

    pub async fn describe_ca_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<CaCertificate> {
        Ok(self.load_ca(scope, id).await?.value)
    }

    pub async fn list_ca_certificates(
        &self,
        scope: &Scope,
        page: &Page,
        template_name: Option<&str>,
    ) -> DomainResult<(Vec<CaCertificate>, Option<String>)> {
        let filter = Filter {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            ..Filter::default()
        };
        let Some(t) = template_name else {
            let rows = store::query::<CaCertificate>(self.store(), &filter, page.query).await?;
            let (rows, next) = page.finish(rows, |r| r.seq);
            return Ok((rows.into_iter().map(|r| r.value).collect(), next));
        };
        // Filter first, then cut the page, so pageSize counts matches and a page is only
        // short at the end.
        let rows = store::query::<CaCertificate>(self.store(), &filter, PageQuery::all()).await?;
        Ok(crate::things::page_filtered(rows, page, |c| {
            c.registration_config
                .as_ref()
                .and_then(|r| r.template_name.as_deref())
                == Some(t)
        }))
    }

    pub async fn update_ca_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
        update: &CaUpdate,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_ca(scope, id).await?;
            let mut next = cur.value.clone();
            if let Some(s) = update.status {
                next.status = s;
            }
            if let Some(a) = update.auto_registration {
                next.auto_registration = a;
            }
            if let Some(rc) = &update.registration_config {
                next.registration_config = Some(rc.clone());
            }
            if update.remove_auto_registration {
                next.registration_config = None;
                next.auto_registration = false;
            }
            if next == cur.value {
                return Ok(());
            }
            next.last_modified = self.now();
            next.customer_version += 1;
            next.generation_id = new_uuid();
            self.store().apply(vec![cur.update_to(&next)?]).await
        })
        .await
    }

    pub async fn delete_ca_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_ca(scope, id).await?;
            if cur.value.status == CaStatus::Active {
                return Err(DomainError::WrongState {
                    current: "ACTIVE".into(),
                    message: format!(
                        "CA certificate {id} is ACTIVE; set it INACTIVE before deleting it"
                    ),
                });
            }
            let mut writes = vec![cur.delete()];
            writes.extend(
                self.release_claim(
                    &default_ca_namespace(&scope.region),
                    id.as_str(),
                    &cur.value.key(),
                )
                .await?,
            );
            self.store().apply(writes).await
        })
        .await
    }
}

/// A DEFAULT-mode CA certificate belongs to one account per region (a claim in this namespace).
pub(crate) fn default_ca_namespace(region: &str) -> String {
    format!("default-ca:{region}")
}
