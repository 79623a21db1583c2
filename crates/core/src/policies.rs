//! Policies and their attachments to targets (certificates and other principals).

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::{new_uuid, Scope};
use crate::paging::Page;
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery, Stored};
use crate::things::{page_filtered, PrincipalRef};

/// AWS IoT's quota of policies attached to one target.
pub const MAX_POLICIES_PER_TARGET: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub account: String,
    pub region: String,
    pub document: String,
    pub version_id: String,
    pub created_at: Millis,
    pub last_modified: Millis,
    pub generation_id: String,
    pub tags: Vec<(String, String)>,
}

fn scoped_key(scope: &Scope, name: &str) -> String {
    format!("{}:{}:{}", scope.account, scope.region, name)
}

impl Document for Policy {
    const KIND: Kind = Kind::Policy;
    fn key(&self) -> String {
        scoped_key(&Scope::new(&self.account, &self.region), &self.name)
    }
    fn account(&self) -> String {
        self.account.clone()
    }
    fn region(&self) -> String {
        self.region.clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyTarget {
    pub account: String,
    pub region: String,
    pub policy_name: String,
    /// The target exactly as the client gave it.
    pub target: String,
    pub target_key: String,
    pub created_at: Millis,
}

impl Document for PolicyTarget {
    const KIND: Kind = Kind::PolicyTarget;
    fn key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.account, self.region, self.policy_name, self.target_key
        )
    }
    fn account(&self) -> String {
        self.account.clone()
    }
    fn region(&self) -> String {
        self.region.clone()
    }
    fn idx1(&self) -> Option<String> {
        Some(self.policy_name.clone())
    }
    fn idx2(&self) -> Option<String> {
        Some(self.target_key.clone())
    }
}

impl Core {
    async fn load_policy(&self, scope: &Scope, name: &str) -> DomainResult<Stored<Policy>> {
        store::get::<Policy>(self.store(), &scoped_key(scope, name))
            .await?
            .ok_or_else(|| DomainError::not_found(Resource::Policy, name))
    }

    /// CreatePolicy. The document must be a JSON object (else MalformedDocument).
    pub async fn create_policy(
        &self,
        scope: &Scope,
        name: &str,
        document: &str,
        tags: Vec<(String, String)>,
    ) -> DomainResult<Policy> {
        match serde_json::from_str::<serde_json::Value>(document) {
            Ok(serde_json::Value::Object(_)) => {}
            _ => {
                return Err(DomainError::MalformedDocument(
                    "the policy document is not a JSON object".into(),
                ))
            }
        }
        let now = self.now();
        let policy = Policy {
            name: name.to_string(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            document: document.to_string(),
            version_id: "1".into(),
            created_at: now,
            last_modified: now,
            generation_id: new_uuid(),
            tags,
        };
        self.store()
            .apply(vec![store::insert(&policy)?])
            .await
            .map_err(|e| match e {
                DomainError::AlreadyExists { .. } => DomainError::AlreadyExists {
                    resource: Resource::Policy,
                    id: name.to_string(),
                },
                other => other,
            })?;
        Ok(policy)
    }

    pub async fn get_policy(&self, scope: &Scope, name: &str) -> DomainResult<Policy> {
        Ok(self.load_policy(scope, name).await?.value)
    }

    pub async fn delete_policy(&self, scope: &Scope, name: &str) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_policy(scope, name).await?;
            if !self.targets_of_policy(scope, name).await?.is_empty() {
                return Err(DomainError::StillAttached(format!(
                    "The policy {name} is attached to one or more targets; detach it first"
                )));
            }
            self.store().apply(vec![cur.delete()]).await
        })
        .await
    }

    pub async fn list_policies(
        &self,
        scope: &Scope,
        page: &Page,
    ) -> DomainResult<(Vec<Policy>, Option<String>)> {
        let filter = Filter {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            ..Filter::default()
        };
        let rows = store::query::<Policy>(self.store(), &filter, page.query).await?;
        let (rows, next) = page.finish(rows, |r| r.seq);
        Ok((rows.into_iter().map(|r| r.value).collect(), next))
    }

    async fn targets_of_policy(
        &self,
        scope: &Scope,
        policy: &str,
    ) -> DomainResult<Vec<Stored<PolicyTarget>>> {
        let filter = Filter {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            idx1: Some(policy.to_string()),
            ..Filter::default()
        };
        store::query::<PolicyTarget>(self.store(), &filter, PageQuery::all()).await
    }

    pub(crate) async fn policy_attachments_of_target(
        &self,
        scope: &Scope,
        target_key: &str,
    ) -> DomainResult<Vec<Stored<PolicyTarget>>> {
        let filter = Filter {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            idx2: Some(target_key.to_string()),
            ..Filter::default()
        };
        store::query::<PolicyTarget>(self.store(), &filter, PageQuery::all()).await
    }

    /// AttachPolicy / AttachPrincipalPolicy. Attaching twice is a no-op.
    pub async fn attach_policy(
        &self,
        scope: &Scope,
        policy: &str,
        target_text: &str,
        target: &PrincipalRef,
    ) -> DomainResult<()> {
        self.load_policy(scope, policy).await?;
        self.with_retry(|| async {
            let key = target.key();
            let existing = self.policy_attachments_of_target(scope, &key).await?;
            if existing.iter().any(|e| e.value.policy_name == policy) {
                // Already attached (a no-op), but the principal must still be the caller's.
                return self.check_principal(scope, target).await;
            }
            let mut writes = self.attachment_guard(scope, target).await?;
            if existing.len() >= MAX_POLICIES_PER_TARGET {
                return Err(DomainError::LimitExceeded(format!(
                    "at most {MAX_POLICIES_PER_TARGET} policies can be attached to one target"
                )));
            }
            let link = PolicyTarget {
                account: scope.account.clone(),
                region: scope.region.clone(),
                policy_name: policy.to_string(),
                target: target_text.to_string(),
                target_key: key,
                created_at: self.now(),
            };
            writes.push(store::Write::InsertIfAbsent(link.to_doc()?));
            self.store().apply(writes).await
        })
        .await
    }

    /// DetachPolicy / DetachPrincipalPolicy: NotFound when not attached.
    pub async fn detach_policy(
        &self,
        scope: &Scope,
        policy: &str,
        target: &PrincipalRef,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            self.load_policy(scope, policy).await?;
            let key = format!(
                "{}:{}:{}:{}",
                scope.account,
                scope.region,
                policy,
                target.key()
            );
            let link = store::get::<PolicyTarget>(self.store(), &key)
                .await?
                .ok_or_else(|| DomainError::not_found(Resource::Attachment, target.key()))?;
            self.store().apply(vec![link.delete()]).await
        })
        .await
    }

    /// ListAttachedPolicies / ListPrincipalPolicies: (policy name) of one target.
    pub async fn list_attached_policies(
        &self,
        scope: &Scope,
        target: &PrincipalRef,
        page: &Page,
    ) -> DomainResult<(Vec<String>, Option<String>)> {
        self.check_principal(scope, target).await?;
        let rows = self
            .policy_attachments_of_target(scope, &target.key())
            .await?;
        let (rows, next) = page_filtered(rows, page, |_| true);
        Ok((rows.into_iter().map(|r| r.policy_name).collect(), next))
    }

    /// ListTargetsForPolicy / ListPolicyPrincipals: the targets of one policy.
    pub async fn list_targets_for_policy(
        &self,
        scope: &Scope,
        policy: &str,
        page: &Page,
    ) -> DomainResult<(Vec<String>, Option<String>)> {
        self.load_policy(scope, policy).await?;
        let rows = self.targets_of_policy(scope, policy).await?;
        let (rows, next) = page_filtered(rows, page, |_| true);
        Ok((rows.into_iter().map(|r| r.target).collect(), next))
    }
}
