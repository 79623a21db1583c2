//! The Alibaba CAS user-certificate list: certificates an order issued and certificates the
//! customer uploaded (UploadUserCertificate), each with a numeric CertId. Every one of them is
//! also an entry of the shared certificate registry.

use serde::{Deserialize, Serialize};

use certplane_pki::parse_certificate_pem;

use crate::certificates::{pki_error, Certificate, CertificateMode, CertificateStatus, Origin};
use crate::claims;
use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::{CertificateId, Scope};
use crate::orders::{random_id, CAS_REGION};
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery, Stored, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserCertificateSource {
    /// Issued for an order.
    Buy,
    /// Uploaded by the customer.
    Upload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCertificate {
    pub id: i64,
    pub account: String,
    pub name: String,
    pub cert_pem: String,
    pub key_pem: Option<String>,
    pub certificate_id: CertificateId,
    pub order_id: Option<i64>,
    pub source: UserCertificateSource,
    pub created_at: Millis,
}

impl Document for UserCertificate {
    const KIND: Kind = Kind::UserCertificate;
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn account(&self) -> String {
        self.account.clone()
    }
    fn region(&self) -> String {
        String::new()
    }
    fn idx1(&self) -> Option<String> {
        Some(self.name.clone())
    }
    fn idx2(&self) -> Option<String> {
        Some(self.certificate_id.to_string())
    }
}

/// A ClientToken is claimed per action and account, holding what the first call made.
fn token_namespace(action: &str, account: &str) -> String {
    format!("client-token:{action}:{account}")
}

/// Uploaded certificates' names are unique per account (a claim in this namespace).
fn name_namespace(account: &str) -> String {
    format!("cas-certificate-name:{account}")
}

impl Core {
    async fn load_user_certificate(
        &self,
        account: &str,
        id: i64,
    ) -> DomainResult<Stored<UserCertificate>> {
        match store::get::<UserCertificate>(self.store(), &id.to_string()).await? {
            Some(c) if c.value.account == account => Ok(c),
            _ => Err(DomainError::not_found(
                Resource::UserCertificate,
                id.to_string(),
            )),
        }
    }

    /// The certificate an earlier upload with this ClientToken made, if it is still there.
    async fn uploaded_with_token(
        &self,
        account: &str,
        token: &str,
    ) -> DomainResult<Option<UserCertificate>> {
        let Some(holder) = self
            .claim_holder(&token_namespace("UploadUserCertificate", account), token)
            .await?
        else {
            return Ok(None);
        };
        Ok(store::get::<UserCertificate>(self.store(), &holder)
            .await?
            .map(|c| c.value))
    }

    /// UploadUserCertificate. The name is unique per account; the certificate joins the
    /// registry (ACTIVE) unless it is there already. A retry with the same `client_token`
    /// answers the certificate the first call made instead of uploading again.
    pub async fn upload_user_certificate(
        &self,
        account: &str,
        name: &str,
        cert_pem: &str,
        key_pem: Option<&str>,
        client_token: Option<&str>,
    ) -> DomainResult<UserCertificate> {
        if let Some(token) = client_token {
            if let Some(done) = self.uploaded_with_token(account, token).await? {
                return Ok(done);
            }
        }
        let parsed = parse_certificate_pem(cert_pem).map_err(pki_error)?;
        if let Some(key) = key_pem {
            certplane_pki::check_key_matches(key, &parsed).map_err(pki_error)?;
        }
        let by_name = Filter {
            account: Some(account.to_string()),
            idx1: Some(name.to_string()),
            ..Filter::default()
        };
        if self.store().count(Kind::UserCertificate, &by_name).await? > 0 {
            return Err(DomainError::AlreadyExists {
                resource: Resource::UserCertificate,
                id: name.to_string(),
            });
        }
        let now = self.now();
        let scope = Scope::new(account, CAS_REGION);
        let cert = Certificate::new(
            &scope,
            &parsed,
            cert_pem.to_string(),
            CertificateStatus::Active,
            CertificateMode::Default,
            Origin::Registered,
            now,
        );
        let user_cert = UserCertificate {
            id: random_id()?,
            account: account.to_string(),
            name: name.to_string(),
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.map(str::to_string),
            certificate_id: cert.id.clone(),
            order_id: None,
            source: UserCertificateSource::Upload,
            created_at: now,
        };
        let mut writes = vec![
            claims::claim(&name_namespace(account), name, account, &user_cert.key())?,
            Write::InsertIfAbsent(cert.to_doc()?),
            store::insert(&user_cert)?,
        ];
        if let Some(token) = client_token {
            writes.push(claims::claim(
                &token_namespace("UploadUserCertificate", account),
                token,
                account,
                &user_cert.key(),
            )?);
        }
        match self.store().apply(writes).await {
            Ok(()) => Ok(user_cert),
            Err(DomainError::AlreadyExists { .. }) => {
                // Two calls with one token raced: the winner's certificate is the answer.
                if let Some(token) = client_token {
                    if let Some(done) = self.uploaded_with_token(account, token).await? {
                        return Ok(done);
                    }
                }
                Err(DomainError::AlreadyExists {
                    resource: Resource::UserCertificate,
                    id: name.to_string(),
                })
            }
            Err(e) => Err(e),
        }
    }

    pub async fn get_user_certificate(
        &self,
        account: &str,
        id: i64,
    ) -> DomainResult<UserCertificate> {
        Ok(self.load_user_certificate(account, id).await?.value)
    }

    /// DeleteUserCertificate: removes it from the list (the registry keeps its history). A
    /// retry with the `client_token` of a delete that succeeded succeeds again.
    pub async fn delete_user_certificate(
        &self,
        account: &str,
        id: i64,
        client_token: Option<&str>,
    ) -> DomainResult<()> {
        let token_space = token_namespace("DeleteUserCertificate", account);
        self.with_retry(|| async {
            if let Some(token) = client_token {
                if self.claim_holder(&token_space, token).await? == Some(id.to_string()) {
                    return Ok(());
                }
            }
            let cur = self.load_user_certificate(account, id).await?;
            let mut writes = vec![cur.delete()];
            if let Some(token) = client_token {
                writes.push(claims::claim(
                    &token_space,
                    token,
                    account,
                    &id.to_string(),
                )?);
            }
            writes.extend(
                self.release_claim(&name_namespace(account), &cur.value.name, &cur.value.key())
                    .await?,
            );
            self.store().apply(writes).await.map_err(|e| match e {
                // Only the token claim can collide here: it answered another certificate.
                DomainError::AlreadyExists { .. } => DomainError::invalid(
                    "this ClientToken was already used by a DeleteUserCertificate request for \
                     another certificate",
                ),
                other => other,
            })
        })
        .await
    }

    pub async fn list_user_certificates(
        &self,
        account: &str,
    ) -> DomainResult<Vec<UserCertificate>> {
        let filter = Filter {
            account: Some(account.to_string()),
            ..Filter::default()
        };
        Ok(
            store::query::<UserCertificate>(self.store(), &filter, PageQuery::all())
                .await?
                .into_iter()
                .map(|c| c.value)
                .collect(),
        )
    }
}
