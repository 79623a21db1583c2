//! Policies and their attachments to targets (certificates and other principals).

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::{new_uuid, Scope};
use crate::paging::Page;
use crate::scoped::{scope_filter, scoped_document};
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery, Stored};
use crate::things::{page_filtered, PrincipalRef};

/// AWS IoT's quota of policies attached to one target.
pub const MAX_POLICIES_PER_TARGET: usize = 10;

/// AWS IoT keeps at most five versions of one policy (the default among them).
pub const MAX_POLICY_VERSIONS: usize = 5;

/// One version of a policy. Versions live inside their policy's document, so every version
/// change is one compare-and-set on the policy and cannot race a DeletePolicy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub id: u64,
    pub document: String,
    pub created_at: Millis,
}

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
    /// Every version, oldest first. Empty in policies stored before versions existed: those
    /// have exactly one version, `version_id` holding `document` (see [`Policy::versions`]).
    #[serde(default)]
    pub versions: Vec<PolicyVersion>,
    /// The highest version id ever given: ids are never reused, even after a delete.
    #[serde(default)]
    pub last_version_id: u64,
}

impl Policy {
    /// A new policy whose one version, 1, is the default; the document must be a JSON object
    /// (else MalformedDocument).
    pub(crate) fn new(
        scope: &Scope,
        name: &str,
        document: &str,
        tags: Vec<(String, String)>,
        now: Millis,
    ) -> DomainResult<Policy> {
        check_document(document)?;
        Ok(Policy {
            name: name.to_string(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            document: document.to_string(),
            version_id: "1".into(),
            created_at: now,
            last_modified: now,
            generation_id: new_uuid(),
            tags,
            versions: vec![PolicyVersion {
                id: 1,
                document: document.to_string(),
                created_at: now,
            }],
            last_version_id: 1,
        })
    }

    /// The versions, oldest first (a policy stored before versions existed has one).
    pub fn versions(&self) -> Vec<PolicyVersion> {
        if self.versions.is_empty() {
            vec![PolicyVersion {
                id: self.version_id.parse().unwrap_or(1),
                document: self.document.clone(),
                created_at: self.created_at,
            }]
        } else {
            self.versions.clone()
        }
    }

    fn max_id(&self) -> u64 {
        let newest = self.versions().iter().map(|v| v.id).max().unwrap_or(1);
        newest.max(self.last_version_id)
    }

    pub fn version(&self, id: u64) -> DomainResult<PolicyVersion> {
        self.versions()
            .into_iter()
            .find(|v| v.id == id)
            .ok_or_else(|| {
                DomainError::not_found(Resource::PolicyVersion, format!("{}:{id}", self.name))
            })
    }

    /// CreatePolicyVersion, decided: the policy with a new version (the default when
    /// `set_as_default`), or LimitExceeded when it already has five.
    pub fn with_new_version(
        &self,
        document: &str,
        set_as_default: bool,
        now: Millis,
    ) -> DomainResult<(Policy, PolicyVersion)> {
        let mut versions = self.versions();
        if versions.len() >= MAX_POLICY_VERSIONS {
            return Err(DomainError::LimitExceeded(format!(
                "The policy {} already has the maximum number of versions ({MAX_POLICY_VERSIONS})",
                self.name
            )));
        }
        let v = PolicyVersion {
            id: self.max_id() + 1,
            document: document.to_string(),
            created_at: now,
        };
        versions.push(v.clone());
        let mut next = self.clone();
        next.last_version_id = v.id;
        next.versions = versions;
        next.last_modified = now;
        if set_as_default {
            next.version_id = v.id.to_string();
            next.document = v.document.clone();
        }
        Ok((next, v))
    }

    /// SetDefaultPolicyVersion, decided.
    pub fn with_default(&self, id: u64, now: Millis) -> DomainResult<Policy> {
        let v = self.version(id)?;
        let mut next = self.clone();
        next.versions = self.versions();
        next.last_version_id = self.max_id();
        next.version_id = v.id.to_string();
        next.document = v.document;
        next.last_modified = now;
        Ok(next)
    }

    /// DeletePolicyVersion, decided: the default version cannot go (DeletePolicy does that).
    pub fn without_version(&self, id: u64) -> DomainResult<Policy> {
        self.version(id)?;
        if self.version_id == id.to_string() {
            return Err(DomainError::StillAttached(
                "Cannot delete the default version of a policy".into(),
            ));
        }
        let mut next = self.clone();
        next.last_version_id = self.max_id();
        next.versions = self.versions().into_iter().filter(|v| v.id != id).collect();
        Ok(next)
    }
}

/// A policy version id on the wire: `[0-9]+`.
pub fn parse_version_id(s: &str) -> DomainResult<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::invalid(format!(
            "policyVersionId {s:?} must match [0-9]+"
        )));
    }
    s.parse()
        .map_err(|_| DomainError::invalid(format!("policyVersionId {s:?} is out of range")))
}

fn check_document(document: &str) -> DomainResult<()> {
    match serde_json::from_str::<serde_json::Value>(document) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(DomainError::MalformedDocument(
            "the policy document is not a JSON object".into(),
        )),
    }
}

scoped_document!(Policy, Kind::Policy);

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
    pub(crate) async fn load_policy(
        &self,
        scope: &Scope,
        name: &str,
    ) -> DomainResult<Stored<Policy>> {
        self.load_scoped(scope, name, Resource::Policy).await
    }

    /// CreatePolicy. The document must be a JSON object (else MalformedDocument).
    pub async fn create_policy(
        &self,
        scope: &Scope,
        name: &str,
        document: &str,
        tags: Vec<(String, String)>,
    ) -> DomainResult<Policy> {
        let policy = Policy::new(scope, name, document, tags, self.now())?;
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
                    "The policy cannot be deleted as the policy is attached to one or more \
                     principals (name={name})"
                )));
            }
            // AWS: a policy's non-default versions must be deleted before the policy.
            if cur.value.versions().len() > 1 {
                return Err(DomainError::StillAttached(
                    "Cannot delete the policy because it has one or more policy versions \
                     attached to it"
                        .into(),
                ));
            }
            self.store().apply(vec![cur.delete()]).await
        })
        .await
    }

    /// CreatePolicyVersion.
    pub async fn create_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        document: &str,
        set_as_default: bool,
    ) -> DomainResult<(Policy, PolicyVersion)> {
        check_document(document)?;
        self.with_retry(|| async {
            let cur = self.load_policy(scope, name).await?;
            let (next, v) = cur
                .value
                .with_new_version(document, set_as_default, self.now())?;
            self.store().apply(vec![cur.update_to(&next)?]).await?;
            Ok((next, v))
        })
        .await
    }

    /// GetPolicyVersion: the policy and the version asked for.
    pub async fn get_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        id: u64,
    ) -> DomainResult<(Policy, PolicyVersion)> {
        let p = self.load_policy(scope, name).await?.value;
        let v = p.version(id)?;
        Ok((p, v))
    }

    pub async fn set_default_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        id: u64,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_policy(scope, name).await?;
            let next = cur.value.with_default(id, self.now())?;
            self.store().apply(vec![cur.update_to(&next)?]).await
        })
        .await
    }

    pub async fn delete_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        id: u64,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_policy(scope, name).await?;
            let next = cur.value.without_version(id)?;
            self.store().apply(vec![cur.update_to(&next)?]).await
        })
        .await
    }

    pub async fn list_policies(
        &self,
        scope: &Scope,
        page: &Page,
    ) -> DomainResult<(Vec<Policy>, Option<String>)> {
        let filter = scope_filter(scope);
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
            idx1: Some(policy.to_string()),
            ..scope_filter(scope)
        };
        store::query::<PolicyTarget>(self.store(), &filter, PageQuery::all()).await
    }

    pub(crate) async fn policy_attachments_of_target(
        &self,
        scope: &Scope,
        target_key: &str,
    ) -> DomainResult<Vec<Stored<PolicyTarget>>> {
        let filter = Filter {
            idx2: Some(target_key.to_string()),
            ..scope_filter(scope)
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

    /// ListAttachedPolicies / ListPrincipalPolicies: (policy name) of one target. With
    /// `recursive`, a thing group's target also lists the policies attached to its ancestors
    /// (each policy once, at its first attachment); other targets have no ancestors, so
    /// `recursive` changes nothing for them. Pages follow attachment order across levels.
    pub async fn list_attached_policies(
        &self,
        scope: &Scope,
        target: &PrincipalRef,
        recursive: bool,
        page: &Page,
    ) -> DomainResult<(Vec<String>, Option<String>)> {
        let group = match target {
            PrincipalRef::Other(text) if recursive => {
                crate::things::thing_group_of(text, scope).map(str::to_string)
            }
            _ => None,
        };
        let Some(group) = group else {
            self.check_principal(scope, target).await?;
            let rows = self
                .policy_attachments_of_target(scope, &target.key())
                .await?;
            let (rows, next) = page_filtered(rows, page, |_| true);
            return Ok((rows.into_iter().map(|r| r.policy_name).collect(), next));
        };
        // The group exists (else NotFound, named by the caller's ARN); its ancestors cannot be
        // deleted while it is their descendant, and its parent is fixed at creation.
        self.check_principal(scope, target).await?;
        let g = self.load_thing_group(scope, &group).await?;
        let mut rows = self
            .policy_attachments_of_target(scope, &target.key())
            .await?;
        for ancestor in &g.value.ancestors {
            let key = crate::things::thing_group_target_key(scope, ancestor);
            rows.extend(self.policy_attachments_of_target(scope, &key).await?);
        }
        rows.sort_by_key(|r| r.seq);
        let mut seen = std::collections::BTreeSet::new();
        rows.retain(|r| seen.insert(r.value.policy_name.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            name: "p".into(),
            account: "a".into(),
            region: "r".into(),
            document: "{}".into(),
            version_id: "1".into(),
            created_at: 0,
            last_modified: 0,
            generation_id: "g".into(),
            tags: Vec::new(),
            versions: Vec::new(),
            last_version_id: 0,
        }
    }

    #[test]
    fn versions_count_up_never_reuse_ids_and_stop_at_five() {
        let mut p = policy();
        for want in 2..=5u64 {
            let (next, v) = p
                .with_new_version("{\"v\":1}", false, 1)
                .expect("new version");
            assert_eq!(v.id, want);
            assert_eq!(next.version_id, "1");
            p = next;
        }
        assert!(matches!(
            p.with_new_version("{}", false, 1),
            Err(DomainError::LimitExceeded(_))
        ));
        let p = p.without_version(5).expect("delete 5");
        let (p, v) = p.with_new_version("{}", true, 2).expect("new default");
        assert_eq!(v.id, 6);
        assert_eq!(p.version_id, "6");
        assert!(matches!(
            p.without_version(6),
            Err(DomainError::StillAttached(_))
        ));
        assert!(matches!(
            p.without_version(5),
            Err(DomainError::NotFound { .. })
        ));
        let p = p.with_default(2, 3).expect("set default");
        assert_eq!(
            (p.version_id.as_str(), p.document.as_str()),
            ("2", "{\"v\":1}")
        );
    }

    #[test]
    fn version_ids_are_digits() {
        assert_eq!(parse_version_id("12"), Ok(12));
        for bad in ["", "-1", "a", "99999999999999999999"] {
            assert!(parse_version_id(bad).is_err(), "{bad}");
        }
    }
}
