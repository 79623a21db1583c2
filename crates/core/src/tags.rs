//! Resource tags (AWS IoT TagResource, UntagResource, ListTagsForResource). Tags live inside
//! the tagged entity's own document, so tagging is one compare-and-set of it and a tag can
//! never outlive its resource.

use crate::billing_groups::BillingGroup;
use crate::ca_certificates::CaCertificate;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::Scope;
use crate::policies::Policy;
use crate::provisioning_templates::ProvisioningTemplate;
use crate::service::Core;
use crate::store::Document;
use crate::thing_groups::ThingGroup;
use crate::thing_types::ThingType;

/// AWS's limit of tags on one resource.
pub const MAX_TAGS: usize = 50;

/// A tag list.
pub type Tags = Vec<(String, String)>;

/// How a call changes a resource's tags (the identity for a read).
type TagChange<'c> = &'c (dyn Fn(&[(String, String)]) -> DomainResult<Tags> + Sync);

/// A resource that carries tags.
pub trait Tagged: Document + Clone {
    fn tags_mut(&mut self) -> &mut Vec<(String, String)>;
}

macro_rules! tagged {
    ($($t:ty),*) => {$(
        impl Tagged for $t {
            fn tags_mut(&mut self) -> &mut Vec<(String, String)> {
                &mut self.tags
            }
        }
    )*};
}
tagged!(
    Policy,
    ThingType,
    ThingGroup,
    BillingGroup,
    CaCertificate,
    ProvisioningTemplate
);

/// Which taggable resource an ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaggedKind {
    Policy,
    ThingType,
    ThingGroup,
    BillingGroup,
    CaCertificate,
    ProvisioningTemplate,
}

/// TagResource, decided: the tags merged in (a key given again takes the new value), or
/// InvalidInput for an `aws:` key and LimitExceeded past 50 tags.
pub fn with_tags(
    current: &[(String, String)],
    add: &[(String, String)],
) -> DomainResult<Vec<(String, String)>> {
    let mut next: Vec<(String, String)> = current.to_vec();
    for (k, v) in add {
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(DomainError::invalid(format!(
                "the tag key {k:?} uses the reserved prefix aws:"
            )));
        }
        match next.iter_mut().find(|(nk, _)| nk == k) {
            Some(slot) => slot.1 = v.clone(),
            None => next.push((k.clone(), v.clone())),
        }
    }
    if next.len() > MAX_TAGS {
        return Err(DomainError::LimitExceeded(format!(
            "a resource can have at most {MAX_TAGS} tags"
        )));
    }
    Ok(next)
}

impl Core {
    async fn retag<T: Tagged>(
        &self,
        scope: &Scope,
        name: &str,
        resource: Resource,
        change: TagChange<'_>,
    ) -> DomainResult<Vec<(String, String)>> {
        self.with_retry(|| async {
            let cur = self.load_scoped::<T>(scope, name, resource).await?;
            let mut next = cur.value.clone();
            let tags = change(next.tags_mut())?;
            if &tags == next.tags_mut() {
                return Ok(tags);
            }
            *next.tags_mut() = tags.clone();
            self.store().apply(vec![cur.update_to(&next)?]).await?;
            Ok(tags)
        })
        .await
    }

    async fn retag_kind(
        &self,
        scope: &Scope,
        kind: TaggedKind,
        name: &str,
        change: TagChange<'_>,
    ) -> DomainResult<Vec<(String, String)>> {
        match kind {
            TaggedKind::Policy => {
                self.retag::<Policy>(scope, name, Resource::Policy, change)
                    .await
            }
            TaggedKind::ThingType => {
                self.retag::<ThingType>(scope, name, Resource::ThingType, change)
                    .await
            }
            TaggedKind::ThingGroup => {
                self.retag::<ThingGroup>(scope, name, Resource::ThingGroup, change)
                    .await
            }
            TaggedKind::BillingGroup => {
                self.retag::<BillingGroup>(scope, name, Resource::BillingGroup, change)
                    .await
            }
            TaggedKind::CaCertificate => {
                self.retag::<CaCertificate>(scope, name, Resource::CaCertificate, change)
                    .await
            }
            TaggedKind::ProvisioningTemplate => {
                self.retag::<ProvisioningTemplate>(
                    scope,
                    name,
                    Resource::ProvisioningTemplate,
                    change,
                )
                .await
            }
        }
    }

    pub async fn tag_resource(
        &self,
        scope: &Scope,
        kind: TaggedKind,
        name: &str,
        tags: &[(String, String)],
    ) -> DomainResult<()> {
        self.retag_kind(scope, kind, name, &|cur| with_tags(cur, tags))
            .await
            .map(|_| ())
    }

    pub async fn untag_resource(
        &self,
        scope: &Scope,
        kind: TaggedKind,
        name: &str,
        keys: &[String],
    ) -> DomainResult<()> {
        self.retag_kind(scope, kind, name, &|cur| {
            Ok(cur
                .iter()
                .filter(|(k, _)| !keys.contains(k))
                .cloned()
                .collect())
        })
        .await
        .map(|_| ())
    }

    /// ListTagsForResource: every tag (at most 50, so one page).
    pub async fn list_tags_for_resource(
        &self,
        scope: &Scope,
        kind: TaggedKind,
        name: &str,
    ) -> DomainResult<Vec<(String, String)>> {
        self.retag_kind(scope, kind, name, &|cur| Ok(cur.to_vec()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn tags_merge_refuse_aws_prefix_and_stop_at_fifty() {
        let cur = vec![t("a", "1")];
        assert_eq!(
            with_tags(&cur, &[t("a", "2"), t("b", "3")]),
            Ok(vec![t("a", "2"), t("b", "3")])
        );
        assert!(matches!(
            with_tags(&cur, &[t("AWS:x", "1")]),
            Err(DomainError::InvalidInput(_))
        ));
        let many: Vec<_> = (0..50).map(|i| t(&format!("k{i}"), "v")).collect();
        assert!(matches!(
            with_tags(&cur, &many),
            Err(DomainError::LimitExceeded(_))
        ));
    }
}
