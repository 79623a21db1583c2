//! Users inside accounts and the IAM-style policies attached to them. An account's root user is
//! not stored: it is every access key without a user (all keys made before users existed).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::accounts::{AccessKey, CloudKind};
use crate::authz::Identity;
use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::iam::PolicyDocument;
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery, Stored};

/// AWS's limit of managed policies attached to one user.
pub const MAX_POLICIES_PER_USER: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub account: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Names of the account's policies attached to this user, in attach order.
    #[serde(default)]
    pub policies: Vec<String>,
    pub created_at: Millis,
}

impl User {
    pub fn key_for(account: &str, name: &str) -> String {
        format!("{account}/{name}")
    }
}

impl Document for User {
    const KIND: Kind = Kind::User;
    fn key(&self) -> String {
        User::key_for(&self.account, &self.name)
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
}

/// A customer-managed policy: the document as the operator wrote it (validated at create).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamPolicy {
    pub account: String,
    pub name: String,
    pub document: String,
    pub created_at: Millis,
}

impl Document for IamPolicy {
    const KIND: Kind = Kind::IamPolicy;
    fn key(&self) -> String {
        User::key_for(&self.account, &self.name)
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
}

/// IAM's user name characters (`[\w+=,.@-]`), 1 to 64 of them.
pub fn valid_user_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// IAM's policy name characters, 1 to 128 of them.
pub fn valid_policy_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// The caller's name in its cloud's denial messages and `aws:PrincipalArn`.
pub fn user_arn(kind: CloudKind, account: &str, name: &str) -> String {
    match kind {
        CloudKind::Aws => format!("arn:aws:iam::{account}:user/{name}"),
        CloudKind::Aliyun => format!("acs:ram::{account}:user/{name}"),
        // ARM names a caller by its object id, which is the OAuth client's id (the caller
        // passes that instead); the user name is the best this can say.
        CloudKind::Azure => name.to_string(),
    }
}

fn by_account(account: &str) -> Filter {
    Filter {
        account: Some(account.to_string()),
        ..Filter::default()
    }
}

impl Core {
    async fn existing_account(&self, account: &str) -> DomainResult<crate::accounts::Account> {
        self.get_account(account)
            .await?
            .ok_or_else(|| DomainError::not_found(Resource::Account, account))
    }

    pub async fn create_user(
        &self,
        account: &str,
        name: &str,
        email: Option<&str>,
    ) -> DomainResult<User> {
        if !valid_user_name(name) {
            return Err(DomainError::invalid(format!(
                "a user name is 1 to 64 of A-Z a-z 0-9 _+=,.@- (got {name:?})"
            )));
        }
        if let Some(e) = email {
            if e.len() > 254 || !e.contains('@') || e.chars().any(char::is_whitespace) {
                return Err(DomainError::invalid(format!(
                    "{e:?} is not an email address"
                )));
            }
        }
        self.existing_account(account).await?;
        let user = User {
            account: account.to_string(),
            name: name.to_string(),
            email: email.map(str::to_string),
            policies: Vec::new(),
            created_at: self.now(),
        };
        self.store()
            .apply(vec![store::insert(&user)?])
            .await
            .map_err(|e| match e {
                DomainError::AlreadyExists { .. } => DomainError::AlreadyExists {
                    resource: Resource::User,
                    id: name.to_string(),
                },
                other => other,
            })?;
        Ok(user)
    }

    pub async fn list_users(&self, account: &str) -> DomainResult<Vec<User>> {
        self.existing_account(account).await?;
        Ok(
            store::query::<User>(self.store(), &by_account(account), PageQuery::all())
                .await?
                .into_iter()
                .map(|s| s.value)
                .collect(),
        )
    }

    pub async fn get_user(&self, account: &str, name: &str) -> DomainResult<Option<User>> {
        Ok(
            store::get::<User>(self.store(), &User::key_for(account, name))
                .await?
                .map(|s| s.value),
        )
    }

    /// Deletes the user and, in the same transaction, its access keys: a key must never
    /// outlive its user (it would otherwise fall back to nothing, or worse, to root).
    pub async fn delete_user(&self, account: &str, name: &str) -> DomainResult<()> {
        self.with_retry(|| async {
            let user = store::get::<User>(self.store(), &User::key_for(account, name))
                .await?
                .ok_or_else(|| DomainError::not_found(Resource::User, name))?;
            let mut writes = vec![user.delete()];
            for k in self.stored_keys(account).await? {
                if k.value.user.as_deref() == Some(name) {
                    writes.push(k.delete());
                }
            }
            // An Azure tenant's users hold OAuth clients instead of keys.
            for c in store::query::<crate::oauth::OauthClient>(
                self.store(),
                &by_account(account),
                PageQuery::all(),
            )
            .await?
            {
                if c.value.user.as_deref() == Some(name) {
                    writes.push(c.delete());
                }
            }
            self.store().apply(writes).await
        })
        .await
    }

    pub(crate) async fn stored_keys(&self, account: &str) -> DomainResult<Vec<Stored<AccessKey>>> {
        store::query::<AccessKey>(self.store(), &by_account(account), PageQuery::all()).await
    }

    pub async fn create_iam_policy(
        &self,
        account: &str,
        name: &str,
        document: &str,
    ) -> DomainResult<IamPolicy> {
        if !valid_policy_name(name) {
            return Err(DomainError::invalid(format!(
                "a policy name is 1 to 128 of A-Z a-z 0-9 _+=,.@- (got {name:?})"
            )));
        }
        PolicyDocument::parse(document)?;
        self.existing_account(account).await?;
        let policy = IamPolicy {
            account: account.to_string(),
            name: name.to_string(),
            document: document.to_string(),
            created_at: self.now(),
        };
        self.store()
            .apply(vec![store::insert(&policy)?])
            .await
            .map_err(|e| match e {
                DomainError::AlreadyExists { .. } => DomainError::AlreadyExists {
                    resource: Resource::IamPolicy,
                    id: name.to_string(),
                },
                other => other,
            })?;
        Ok(policy)
    }

    pub async fn get_iam_policy(&self, account: &str, name: &str) -> DomainResult<IamPolicy> {
        store::get::<IamPolicy>(self.store(), &User::key_for(account, name))
            .await?
            .map(|s| s.value)
            .ok_or_else(|| DomainError::not_found(Resource::IamPolicy, name))
    }

    pub async fn list_iam_policies(&self, account: &str) -> DomainResult<Vec<IamPolicy>> {
        self.existing_account(account).await?;
        Ok(
            store::query::<IamPolicy>(self.store(), &by_account(account), PageQuery::all())
                .await?
                .into_iter()
                .map(|s| s.value)
                .collect(),
        )
    }

    /// Attaches or detaches a policy: one compare-and-set of the user.
    pub async fn set_iam_policy_attached(
        &self,
        account: &str,
        policy: &str,
        user: &str,
        attached: bool,
    ) -> DomainResult<User> {
        self.get_iam_policy(account, policy).await?;
        self.with_retry(|| async {
            let stored = store::get::<User>(self.store(), &User::key_for(account, user))
                .await?
                .ok_or_else(|| DomainError::not_found(Resource::User, user))?;
            let mut next = stored.value.clone();
            let present = next.policies.iter().any(|p| p == policy);
            match (attached, present) {
                (true, true) | (false, false) => return Ok(next),
                (true, false) => {
                    if next.policies.len() >= MAX_POLICIES_PER_USER {
                        return Err(DomainError::LimitExceeded(format!(
                            "a user has at most {MAX_POLICIES_PER_USER} policies"
                        )));
                    }
                    next.policies.push(policy.to_string());
                }
                (false, true) => next.policies.retain(|p| p != policy),
            }
            self.store().apply(vec![stored.update_to(&next)?]).await?;
            Ok(next)
        })
        .await
    }

    /// Who a verified key acts as: the root user, or its user with the user's policies parsed.
    /// `None` when the key's user no longer exists (the key must then be refused).
    pub async fn identity_of(&self, key: &AccessKey) -> DomainResult<Option<Identity>> {
        let Some(name) = &key.user else {
            return Ok(Some(Identity::Root));
        };
        self.user_identity(&key.account, name, user_arn(key.kind, &key.account, name))
            .await
    }

    /// A user with its policies parsed, named `arn` in denials; `None` when it does not exist.
    pub async fn user_identity(
        &self,
        account: &str,
        name: &str,
        arn: String,
    ) -> DomainResult<Option<Identity>> {
        let Some(user) = self.get_user(account, name).await? else {
            return Ok(None);
        };
        let mut documents = Vec::with_capacity(user.policies.len());
        for p in &user.policies {
            // A policy attached and then deleted would simply grant nothing; none can be
            // deleted today, but a missing one must not fail the caller's request.
            let key = User::key_for(account, p);
            if let Some(raw) = self.store().get(Kind::IamPolicy, &key).await? {
                documents.push(self.policy_cache.parsed(raw)?);
            }
        }
        Ok(Some(Identity::User {
            arn,
            name: user.name,
            policies: Arc::new(documents),
        }))
    }
}

/// Parsed policy documents by store key and version. A user's request reads its policies again
/// (so an edit shows at the next request, whichever node or process made it) but decodes and
/// parses each version of a document once: parsing a 20-statement document is most of what
/// authorization would otherwise cost.
#[derive(Default)]
pub struct PolicyCache {
    parsed: std::sync::RwLock<std::collections::HashMap<String, CachedPolicy>>,
}

/// ((creation seq, version), parsed document) of one store key: the seq tells a document
/// deleted and made again (its version starts over) from the one cached.
type CachedPolicy = ((i64, i64), Arc<PolicyDocument>);

/// Documents kept at most; past it the cache starts over (documents are few and small).
const POLICY_CACHE_ENTRIES: usize = 4096;

impl PolicyCache {
    fn parsed(&self, raw: store::StoredDoc) -> DomainResult<Arc<PolicyDocument>> {
        if let Ok(map) = self.parsed.read() {
            if let Some((version, doc)) = map.get(&raw.doc.key) {
                if *version == (raw.seq, raw.version) {
                    return Ok(doc.clone());
                }
            }
        }
        let key = raw.doc.key.clone();
        let version = (raw.seq, raw.version);
        let stored = Stored::<IamPolicy>::decode(raw)?;
        let doc = Arc::new(PolicyDocument::parse(&stored.value.document)?);
        if let Ok(mut map) = self.parsed.write() {
            if map.len() >= POLICY_CACHE_ENTRIES {
                map.clear();
            }
            map.insert(key, (version, doc.clone()));
        }
        Ok(doc)
    }
}
