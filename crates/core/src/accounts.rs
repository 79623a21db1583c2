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
}

impl std::fmt::Debug for AccessKey {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("account", &self.account)
            .field("kind", &self.kind)
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
        };
        let key = AccessKey {
            id,
            secret,
            account: acct.id,
            kind: acct.kind,
            created_at: self.now(),
        };
        self.store().apply(vec![store::insert(&key)?]).await?;
        Ok(key)
    }

    pub async fn access_key(&self, id: &str) -> DomainResult<Option<AccessKey>> {
        Ok(store::get::<AccessKey>(self.store(), id)
            .await?
            .map(|s| s.value))
    }
}
