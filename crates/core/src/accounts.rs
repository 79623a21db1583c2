//! Accounts and the access keys that sign requests for them (used outside `--dev`).

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::service::Core;
use crate::store::{self, Document, Kind};

/// Which cloud's identities an account or key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudKind {
    Aws,
    Aliyun,
    /// An Entra tenant: its callers are OAuth clients, which may belong to users.
    Azure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub kind: CloudKind,
    pub created_at: Millis,
}

impl Document for Account {
    const KIND: Kind = Kind::Account;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn account(&self) -> String {
        self.id.clone()
    }
    fn region(&self) -> String {
        String::new()
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub account: String,
    pub kind: CloudKind,
    pub created_at: Millis,
    /// The user the key belongs to; `None` is the account's root user (every key made
    /// before users existed decodes so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A disabled key is refused as its cloud refuses an inactive key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// The secret as stored: sealed under the master key (`secret` is then empty in the
    /// store; [`Core::access_key`] opens it). `None` for keys an older release stored plain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<crate::secrets::SealedSecret>,
}

impl std::fmt::Debug for AccessKey {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("account", &self.account)
            .field("kind", &self.kind)
            .field("user", &self.user)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl Document for AccessKey {
    const KIND: Kind = Kind::AccessKey;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn account(&self) -> String {
        self.account.clone()
    }
    fn region(&self) -> String {
        String::new()
    }
}

fn random_text(len: usize, alphabet: &[u8]) -> DomainResult<String> {
    let mut bytes = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| DomainError::internal("no randomness"))?;
    Ok(bytes
        .into_iter()
        .map(|b| alphabet[usize::from(b) % alphabet.len()] as char)
        .collect())
}

impl Core {
    pub async fn create_account(&self, id: &str, kind: CloudKind) -> DomainResult<Account> {
        let account = Account {
            id: id.to_string(),
            kind,
            created_at: self.now(),
        };
        self.store()
            .apply(vec![store::insert(&account)?])
            .await
            .map_err(|e| match e {
                DomainError::AlreadyExists { .. } => DomainError::AlreadyExists {
                    resource: Resource::Account,
                    id: id.to_string(),
                },
                other => other,
            })?;
        Ok(account)
    }

    pub async fn get_account(&self, id: &str) -> DomainResult<Option<Account>> {
        Ok(store::get::<Account>(self.store(), id)
            .await?
            .map(|s| s.value))
    }

    /// Makes an access key for an existing account. AWS-style ids are `AKIA` + 16 characters
    /// and secrets 40; Alibaba-style ids are `LTAI` + 20 and secrets 30.
    pub async fn create_access_key(&self, account: &str) -> DomainResult<AccessKey> {
        self.create_user_access_key(account, None).await
    }

    /// Makes an access key of `user` (the root user when `None`). The user must exist.
    pub async fn create_user_access_key(
        &self,
        account: &str,
        user: Option<&str>,
    ) -> DomainResult<AccessKey> {
        let acct = self
            .get_account(account)
            .await?
            .ok_or_else(|| DomainError::not_found(Resource::Account, account))?;
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let (id, secret) = match acct.kind {
            CloudKind::Aws => (
                format!("AKIA{}", random_text(16, UPPER)?),
                random_text(40, SECRET)?,
            ),
            CloudKind::Aliyun => (
                format!("LTAI{}", random_text(20, &SECRET[..62])?),
                random_text(30, &SECRET[..62])?,
            ),
            CloudKind::Azure => {
                return Err(DomainError::invalid(format!(
                    "{account} is an Azure tenant: its callers are OAuth clients (admin \
                     oauth-client create --tenant {account} --email E --user NAME)"
                )))
            }
        };
        let key = AccessKey {
            id,
            secret,
            account: acct.id,
            kind: acct.kind,
            created_at: self.now(),
            user: user.map(str::to_string),
            disabled: false,
            sealed_secret: None,
        };
        let mut writes = vec![store::insert(&self.stored_key_form(&key)?)?];
        if let Some(name) = user {
            // The key is made only if its user still exists when it commits: a compare-and-set
            // of the user (unchanged) beside the insert, so a racing `user delete` cannot leave
            // a key without its user.
            let u = store::get::<crate::users::User>(
                self.store(),
                &crate::users::User::key_for(account, name),
            )
            .await?
            .ok_or_else(|| DomainError::not_found(Resource::User, name))?;
            writes.push(u.update_to(&u.value)?);
        }
        self.store().apply(writes).await?;
        Ok(key)
    }

    /// Every access key of an account, as stored (secrets sealed: callers print ids only).
    pub async fn list_access_keys(&self, account: &str) -> DomainResult<Vec<AccessKey>> {
        Ok(self
            .stored_keys(account)
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect())
    }

    /// Disables or re-enables a key: one compare-and-set.
    pub async fn set_access_key_disabled(&self, id: &str, disabled: bool) -> DomainResult<()> {
        self.with_retry(|| async {
            let stored = store::get::<AccessKey>(self.store(), id)
                .await?
                .ok_or_else(|| DomainError::not_found(Resource::AccessKey, id))?;
            if stored.value.disabled == disabled {
                return Ok(());
            }
            let mut next = stored.value.clone();
            next.disabled = disabled;
            self.store().apply(vec![stored.update_to(&next)?]).await
        })
        .await
    }

    pub async fn delete_access_key(&self, id: &str) -> DomainResult<()> {
        self.with_retry(|| async {
            let stored = store::get::<AccessKey>(self.store(), id)
                .await?
                .ok_or_else(|| DomainError::not_found(Resource::AccessKey, id))?;
            self.store().apply(vec![stored.delete()]).await
        })
        .await
    }

    /// The key with its secret opened, for checking a request's signature.
    pub async fn access_key(&self, id: &str) -> DomainResult<Option<AccessKey>> {
        match store::get::<AccessKey>(self.store(), id).await? {
            Some(s) => Ok(Some(self.open_key(s.value)?)),
            None => Ok(None),
        }
    }
}
