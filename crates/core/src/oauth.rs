//! OAuth2 clients (client-credentials grant) and the token signing key. A client belongs to a
//! tenant and names the principal's email; its secret is kept only as a salted PBKDF2 hash. The
//! signing key is one document, so every node of a shared database issues and verifies the same
//! tokens. The JWT wire format itself belongs to the dialect.

use std::num::NonZeroU32;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::billing::check_email;
use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::service::Core;
use crate::store::{self, Doc, Document, Kind, Write};

const PBKDF2_ITERATIONS: u32 = 10_000;

/// An OAuth client as the import file (or the admin command) describes it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OauthClientSpec {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub email: String,
}

impl std::fmt::Debug for OauthClientSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OauthClientSpec")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// Tenants and client ids: 1 to 128 letters, digits, `-`, `_` or `.`.
pub fn valid_oauth_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl OauthClientSpec {
    pub fn check(&self) -> DomainResult<()> {
        if !valid_oauth_name(&self.tenant) || !valid_oauth_name(&self.client_id) {
            return Err(DomainError::invalid(format!(
                "OAuth client {:?} of tenant {:?}: tenant and clientId must be 1 to 128 letters, digits, '-', '_' or '.'",
                self.client_id, self.tenant
            )));
        }
        if self.client_secret.len() < 8 || self.client_secret.len() > 256 {
            return Err(DomainError::invalid(format!(
                "the secret of OAuth client {} must be 8 to 256 characters",
                self.client_id
            )));
        }
        check_email("OAuth client email", &self.email)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthClient {
    pub tenant: String,
    pub client_id: String,
    pub email: String,
    /// base64url salt and PBKDF2-HMAC-SHA256 of the secret.
    pub salt: String,
    pub secret_hash: String,
    pub created_at: Millis,
    /// A disabled client gets no tokens (Entra's disabled-application error).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// The user of the tenant (an Azure account) the client acts for; `None`: the tenant's
    /// root identity, allowed everything (every client made before users existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl OauthClient {
    pub fn key_for(tenant: &str, client_id: &str) -> String {
        format!("{tenant}/{client_id}")
    }

    fn hash(salt: &[u8], secret: &str) -> Vec<u8> {
        let mut out = [0u8; 32];
        let iterations = NonZeroU32::new(PBKDF2_ITERATIONS).unwrap_or(NonZeroU32::MIN);
        aws_lc_rs::pbkdf2::derive(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            secret.as_bytes(),
            &mut out,
        );
        out.to_vec()
    }

    /// Constant-time check of a presented secret.
    pub fn verify_secret(&self, secret: &str) -> bool {
        let (Ok(salt), Ok(want)) = (
            URL_SAFE_NO_PAD.decode(&self.salt),
            URL_SAFE_NO_PAD.decode(&self.secret_hash),
        ) else {
            return false;
        };
        let iterations = NonZeroU32::new(PBKDF2_ITERATIONS).unwrap_or(NonZeroU32::MIN);
        aws_lc_rs::pbkdf2::verify(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            secret.as_bytes(),
            &want,
        )
        .is_ok()
    }

    fn new(spec: &OauthClientSpec, now: Millis) -> DomainResult<Self> {
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| DomainError::internal("no randomness"))?;
        Ok(OauthClient {
            tenant: spec.tenant.clone(),
            client_id: spec.client_id.clone(),
            email: spec.email.clone(),
            salt: URL_SAFE_NO_PAD.encode(salt),
            secret_hash: URL_SAFE_NO_PAD.encode(Self::hash(&salt, &spec.client_secret)),
            created_at: now,
            disabled: false,
            user: None,
        })
    }
}

impl Document for OauthClient {
    const KIND: Kind = Kind::OauthClient;
    fn key(&self) -> String {
        Self::key_for(&self.tenant, &self.client_id)
    }
    fn account(&self) -> String {
        self.tenant.clone()
    }
    fn region(&self) -> String {
        String::new()
    }
    fn idx1(&self) -> Option<String> {
        Some(self.email.to_ascii_lowercase())
    }
}

/// A random secret of 40 URL-safe characters (240 bits).
pub fn new_client_secret() -> DomainResult<String> {
    let mut b = [0u8; 30];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| DomainError::internal("no randomness"))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// The key tokens are signed with, as stored (PKCS#8 DER, base64url).
#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: String,
    pub pkcs8: String,
    pub created_at: Millis,
}

const SIGNING_KEY: &str = "oauth";

impl Core {
    /// Creates or updates an OAuth client from a spec. `Some(true)` created, `Some(false)`
    /// updated, `None` already exactly so (same email, the secret verifies).
    pub async fn upsert_oauth_client(&self, spec: &OauthClientSpec) -> DomainResult<Option<bool>> {
        spec.check()?;
        let key = OauthClient::key_for(&spec.tenant, &spec.client_id);
        self.with_retry(|| async {
            match store::get::<OauthClient>(self.store(), &key).await? {
                None => {
                    let c = OauthClient::new(spec, self.now())?;
                    self.store().apply(vec![store::insert(&c)?]).await?;
                    Ok(Some(true))
                }
                Some(cur)
                    if cur.value.email == spec.email
                        && cur.value.verify_secret(&spec.client_secret) =>
                {
                    Ok(None)
                }
                Some(cur) => {
                    let mut c = OauthClient::new(spec, self.now())?;
                    c.created_at = cur.value.created_at;
                    // Re-importing a spec changes its secret or email, not whether the
                    // operator disabled it.
                    c.disabled = cur.value.disabled;
                    c.user = cur.value.user.clone();
                    self.store().apply(vec![cur.update_to(&c)?]).await?;
                    Ok(Some(false))
                }
            }
        })
        .await
    }

    /// A new client with a generated id and secret; the secret is returned once.
    pub async fn create_oauth_client(
        &self,
        tenant: &str,
        email: &str,
    ) -> DomainResult<OauthClientSpec> {
        self.create_user_oauth_client(tenant, email, None).await
    }

    /// A new client acting for `user` of the tenant (whose Azure account must exist then), or
    /// for the tenant's root identity.
    pub async fn create_user_oauth_client(
        &self,
        tenant: &str,
        email: &str,
        user: Option<&str>,
    ) -> DomainResult<OauthClientSpec> {
        let spec = OauthClientSpec {
            tenant: tenant.to_string(),
            client_id: crate::ids::new_uuid(),
            client_secret: new_client_secret()?,
            email: email.to_string(),
        };
        spec.check()?;
        let mut c = OauthClient::new(&spec, self.now())?;
        let mut writes = Vec::new();
        if let Some(name) = user {
            // As for access keys: the client is made only if its user still exists when it
            // commits (a compare-and-set of the unchanged user beside the insert).
            let u = store::get::<crate::users::User>(
                self.store(),
                &crate::users::User::key_for(tenant, name),
            )
            .await?
            .ok_or_else(|| DomainError::not_found(crate::error::Resource::User, name))?;
            writes.push(u.update_to(&u.value)?);
            c.user = Some(name.to_string());
        }
        writes.push(store::insert(&c)?);
        self.store().apply(writes).await?;
        Ok(spec)
    }

    /// Who a verified token of `client_id` in `tenant` acts as. `None` when the client (or its
    /// user) no longer exists: its tokens must then be refused, since what it was allowed is
    /// no longer known.
    pub async fn oauth_identity(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> DomainResult<Option<crate::authz::Identity>> {
        let Some(c) =
            store::get::<OauthClient>(self.store(), &OauthClient::key_for(tenant, client_id))
                .await?
        else {
            return Ok(None);
        };
        match &c.value.user {
            None => Ok(Some(crate::authz::Identity::Root)),
            Some(name) => {
                self.user_identity(tenant, name, c.value.client_id.clone())
                    .await
            }
        }
    }

    /// Disables or enables (`Some`) or deletes (`None`) every OAuth client with this client id
    /// (one per tenant that has it). False when there is none.
    pub async fn set_oauth_client_state(
        &self,
        client_id: &str,
        disabled: Option<bool>,
    ) -> DomainResult<bool> {
        self.with_retry(|| async {
            let all = store::query::<OauthClient>(
                self.store(),
                &store::Filter::default(),
                store::PageQuery::all(),
            )
            .await?;
            let mut writes = Vec::new();
            for c in all.iter().filter(|c| c.value.client_id == client_id) {
                match disabled {
                    Some(d) => {
                        let mut next = c.value.clone();
                        next.disabled = d;
                        writes.push(c.update_to(&next)?);
                    }
                    None => writes.push(c.delete()),
                }
            }
            if writes.is_empty() {
                return Ok(false);
            }
            self.store().apply(writes).await?;
            Ok(true)
        })
        .await
    }

    /// The client if `secret` is its secret (`None` for an unknown client or a wrong secret).
    pub async fn authenticate_oauth_client(
        &self,
        tenant: &str,
        client_id: &str,
        secret: &str,
    ) -> DomainResult<Option<OauthClient>> {
        let Some(c) =
            store::get::<OauthClient>(self.store(), &OauthClient::key_for(tenant, client_id))
                .await?
        else {
            return Ok(None);
        };
        let client = c.value;
        let ok = tokio::task::spawn_blocking({
            let client = client.clone();
            let secret = secret.to_string();
            move || client.verify_secret(&secret)
        })
        .await
        .map_err(|e| DomainError::internal(format!("secret check: {e}")))?;
        Ok(ok.then_some(client))
    }

    /// The token signing key, made by `generate` at first use (two nodes starting at once: one
    /// insert wins and both use the winner).
    pub async fn signing_key(
        &self,
        generate: impl FnOnce() -> DomainResult<SigningKey>,
    ) -> DomainResult<SigningKey> {
        if let Some(d) = self.store().get(Kind::SigningKey, SIGNING_KEY).await? {
            return decode_key(&d.doc.body);
        }
        let key = generate()?;
        let body = serde_json::to_string(&key)
            .map_err(|e| DomainError::internal(format!("encoding the signing key: {e}")))?;
        self.store()
            .apply(vec![Write::InsertIfAbsent(Doc {
                kind: Kind::SigningKey,
                key: SIGNING_KEY.into(),
                account: String::new(),
                region: String::new(),
                idx1: None,
                idx2: None,
                body,
            })])
            .await?;
        let d = self
            .store()
            .get(Kind::SigningKey, SIGNING_KEY)
            .await?
            .ok_or_else(|| DomainError::not_found(Resource::Issuer, SIGNING_KEY))?;
        decode_key(&d.doc.body)
    }
}

fn decode_key(body: &str) -> DomainResult<SigningKey> {
    serde_json::from_str(body)
        .map_err(|e| DomainError::internal(format!("decoding the signing key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_only_themselves() {
        let spec = OauthClientSpec {
            tenant: "t".into(),
            client_id: "c".into(),
            client_secret: "s3cret-value".into(),
            email: "a@b.example".into(),
        };
        let c = OauthClient::new(&spec, 0).expect("client");
        assert!(c.verify_secret("s3cret-value"));
        assert!(!c.verify_secret("s3cret-valuf"));
        assert!(!format!("{spec:?}").contains("s3cret"));
    }
}
