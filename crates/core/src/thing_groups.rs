//! Static thing groups: a hierarchy of named groups (a group has at most one parent, fixed at
//! creation) and the things that are members of them. A membership is its own document, so
//! adding and removing things never rewrites the group; every change that depends on a group
//! or thing still existing compare-and-sets it unchanged in the same transaction.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::{new_uuid, Scope};
use crate::paging::Page;
use crate::scoped::{check_version, scope_filter, scoped_document};
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery, Stored, Write};
use crate::things::{page_filtered, Thing};

/// AWS IoT: a hierarchy is at most 7 levels deep.
pub const MAX_GROUP_DEPTH: usize = 7;
/// AWS IoT: a thing belongs to at most 10 thing groups.
pub const MAX_GROUPS_PER_THING: usize = 10;

/// A group's own properties. `attributes` is `None` until some are set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProperties {
    pub description: Option<String>,
    pub attributes: Option<BTreeMap<String, String>>,
}

/// An attributePayload: the attributes given and whether they merge into the old ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeChange {
    pub attributes: BTreeMap<String, String>,
    pub merge: bool,
}

impl GroupProperties {
    /// UpdateThingGroup / UpdateBillingGroup: a description given replaces the old; attributes
    /// merge (an empty value removes one) or replace. Empty results read as none.
    pub fn updated(
        &self,
        description: Option<String>,
        change: Option<&AttributeChange>,
    ) -> GroupProperties {
        let mut next = self.clone();
        if description.is_some() {
            next.description = description;
        }
        if let Some(c) = change {
            let mut attrs = if c.merge {
                self.attributes.clone().unwrap_or_default()
            } else {
                BTreeMap::new()
            };
            for (k, v) in &c.attributes {
                if v.is_empty() {
                    attrs.remove(k);
                } else {
                    attrs.insert(k.clone(), v.clone());
                }
            }
            next.attributes = (!attrs.is_empty()).then_some(attrs);
        }
        next
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingGroup {
    pub name: String,
    pub id: String,
    pub account: String,
    pub region: String,
    pub parent: Option<String>,
    /// The group's ancestors, root first (the parent last).
    pub ancestors: Vec<String>,
    pub properties: GroupProperties,
    /// AWS's `version`, starting at 1 and raised by each update.
    pub version: i64,
    pub created_at: Millis,
    pub tags: Vec<(String, String)>,
}

scoped_document! {
    ThingGroup,
    Kind::ThingGroup,
    /// Children are found by their parent.
    fn idx1(&self) -> Option<String> {
        self.parent.clone()
    }
}

/// A thing's membership of a static thing group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingGroupMember {
    pub account: String,
    pub region: String,
    pub group: String,
    pub thing: String,
    pub created_at: Millis,
}

impl ThingGroupMember {
    fn key_for(scope: &Scope, group: &str, thing: &str) -> String {
        // Group names hold no '/', so the first one ends the group whatever the thing holds.
        format!("{}:{}:{group}/{thing}", scope.account, scope.region)
    }
}

impl Document for ThingGroupMember {
    const KIND: Kind = Kind::ThingGroupMember;
    fn key(&self) -> String {
        Self::key_for(
            &Scope::new(&self.account, &self.region),
            &self.group,
            &self.thing,
        )
    }
    fn account(&self) -> String {
        self.account.clone()
    }
    fn region(&self) -> String {
        self.region.clone()
    }
    fn idx1(&self) -> Option<String> {
        Some(self.group.clone())
    }
    fn idx2(&self) -> Option<String> {
        Some(self.thing.clone())
    }
}

/// ListThingGroups filters.
#[derive(Debug, Clone, Default)]
pub struct GroupQuery {
    pub parent: Option<String>,
    pub name_prefix: Option<String>,
    /// Descendants at every depth (the default) or only direct children (roots, without a
    /// parent).
    pub recursive: bool,
}

impl GroupQuery {
    fn matches(&self, g: &ThingGroup) -> bool {
        let place = match (&self.parent, self.recursive) {
            (Some(p), true) => g.ancestors.contains(p),
            (Some(p), false) => g.parent.as_ref() == Some(p),
            (None, true) => true,
            (None, false) => g.parent.is_none(),
        };
        place
            && self
                .name_prefix
                .as_ref()
                .is_none_or(|p| g.name.starts_with(p.as_str()))
    }
}

impl Core {
    pub(crate) async fn load_thing_group(
        &self,
        scope: &Scope,
        name: &str,
    ) -> DomainResult<Stored<ThingGroup>> {
        self.load_scoped(scope, name, Resource::ThingGroup).await
    }

    async fn load_member_thing(&self, scope: &Scope, name: &str) -> DomainResult<Stored<Thing>> {
        self.load_scoped(scope, name, Resource::Thing).await
    }

    /// CreateThingGroup. The same name with the same parent and properties returns the group
    /// that exists; anything else is AlreadyExists.
    pub async fn create_thing_group(
        &self,
        scope: &Scope,
        name: &str,
        parent: Option<&str>,
        properties: GroupProperties,
        tags: Vec<(String, String)>,
    ) -> DomainResult<ThingGroup> {
        self.with_retry(|| async {
            let mut writes = Vec::new();
            let mut ancestors = Vec::new();
            if let Some(p) = parent {
                let pg =
                    store::get::<ThingGroup>(self.store(), &crate::scoped::scoped_key(scope, p))
                        .await?
                        .ok_or_else(|| {
                            DomainError::invalid(format!(
                                "the parent thing group {p} does not exist"
                            ))
                        })?;
                if pg.value.ancestors.len() + 1 >= MAX_GROUP_DEPTH {
                    return Err(DomainError::invalid(format!(
                        "a thing group hierarchy is at most {MAX_GROUP_DEPTH} levels deep"
                    )));
                }
                ancestors = pg.value.ancestors.clone();
                ancestors.push(p.to_string());
                // The parent unchanged: a racing DeleteThingGroup of it loses (or wins first
                // and this re-reads a missing parent).
                writes.push(pg.update_to(&pg.value)?);
            }
            let group = ThingGroup {
                name: name.to_string(),
                id: new_uuid(),
                account: scope.account.clone(),
                region: scope.region.clone(),
                parent: parent.map(str::to_string),
                ancestors,
                properties: properties.clone(),
                version: 1,
                created_at: self.now(),
                tags: tags.clone(),
            };
            writes.push(store::insert(&group)?);
            match self.store().apply(writes).await {
                Ok(()) => Ok(group),
                Err(DomainError::AlreadyExists { .. }) => {
                    let existing = self.load_thing_group(scope, name).await?.value;
                    if existing.parent == group.parent && existing.properties == group.properties {
                        Ok(existing)
                    } else {
                        Err(DomainError::AlreadyExists {
                            resource: Resource::ThingGroup,
                            id: name.to_string(),
                        })
                    }
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    pub async fn describe_thing_group(
        &self,
        scope: &Scope,
        name: &str,
    ) -> DomainResult<ThingGroup> {
        Ok(self.load_thing_group(scope, name).await?.value)
    }

    /// UpdateThingGroup: the new version.
    pub async fn update_thing_group(
        &self,
        scope: &Scope,
        name: &str,
        description: Option<String>,
        change: Option<AttributeChange>,
        expected_version: Option<i64>,
    ) -> DomainResult<i64> {
        self.with_retry(|| async {
            let cur = self.load_thing_group(scope, name).await?;
            check_group_version(&cur.value, expected_version)?;
            let mut next = cur.value.clone();
            next.properties = cur
                .value
                .properties
                .updated(description.clone(), change.as_ref());
            next.version += 1;
            self.store().apply(vec![cur.update_to(&next)?]).await?;
            Ok(next.version)
        })
        .await
    }

    /// DeleteThingGroup: a group that does not exist is already deleted (as in AWS IoT); a
    /// group with child groups is refused; its memberships and policy attachments go with it.
    pub async fn delete_thing_group(
        &self,
        scope: &Scope,
        name: &str,
        expected_version: Option<i64>,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let Some(cur) = store::get::<ThingGroup>(self.store(), &crate::scoped::scoped_key(scope, name)).await?
            else {
                return Ok(());
            };
            check_group_version(&cur.value, expected_version)?;
            let children = Filter {
                idx1: Some(name.to_string()),
                ..scope_filter(scope)
            };
            if self.store().count(Kind::ThingGroup, &children).await? > 0 {
                return Err(DomainError::invalid(format!(
                    "Cannot delete thing group : {name} when there are still child groups attached to it"
                )));
            }
            let mut writes = vec![cur.delete()];
            writes.extend(self.members_of_group(scope, name).await?.iter().map(|m| m.delete()));
            // Its policy attachments go too: an attachment compare-and-sets the group, so none
            // can slip in after this read, and a new group of the name starts with none.
            let key = crate::things::thing_group_target_key(scope, name);
            writes.extend(
                self.policy_attachments_of_target(scope, &key)
                    .await?
                    .iter()
                    .map(|a| a.delete()),
            );
            self.store().apply(writes).await
        })
        .await
    }

    pub async fn list_thing_groups(
        &self,
        scope: &Scope,
        query: &GroupQuery,
        page: &Page,
    ) -> DomainResult<(Vec<ThingGroup>, Option<String>)> {
        if let Some(p) = &query.parent {
            self.load_thing_group(scope, p).await?;
        }
        let rows = store::query::<ThingGroup>(self.store(), &scope_filter(scope), PageQuery::all())
            .await?;
        Ok(page_filtered(rows, page, |g| query.matches(g)))
    }

    async fn members_of_group(
        &self,
        scope: &Scope,
        group: &str,
    ) -> DomainResult<Vec<Stored<ThingGroupMember>>> {
        let f = Filter {
            idx1: Some(group.to_string()),
            ..scope_filter(scope)
        };
        store::query::<ThingGroupMember>(self.store(), &f, PageQuery::all()).await
    }

    pub(crate) async fn groups_of_thing(
        &self,
        scope: &Scope,
        thing: &str,
    ) -> DomainResult<Vec<Stored<ThingGroupMember>>> {
        let f = Filter {
            idx2: Some(thing.to_string()),
            ..scope_filter(scope)
        };
        store::query::<ThingGroupMember>(self.store(), &f, PageQuery::all()).await
    }

    /// UpdateThingGroupsForThing (and, with one group, Add/RemoveThingToThingGroup): every
    /// change commits together or none does. Adding a thing already a member and removing one
    /// that is not are no-ops.
    pub async fn update_thing_groups_for_thing(
        &self,
        scope: &Scope,
        thing: &str,
        add: &[String],
        remove: &[String],
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let t = self.load_member_thing(scope, thing).await?;
            // The thing unchanged: a racing DeleteThing (which drops memberships) serialises.
            let mut writes: Vec<Write> = vec![t.update_to(&t.value)?];
            let memberships = self.groups_of_thing(scope, thing).await?;
            let current: BTreeSet<String> =
                memberships.iter().map(|m| m.value.group.clone()).collect();
            let mut after = current.clone();
            // Each group named, unchanged: a racing DeleteThingGroup serialises with this.
            let named: BTreeSet<&String> = add.iter().chain(remove).collect();
            for g in named {
                let group = self.load_thing_group(scope, g).await?;
                writes.push(group.update_to(&group.value)?);
            }
            for m in &memberships {
                if remove.contains(&m.value.group) {
                    after.remove(&m.value.group);
                    writes.push(m.delete());
                }
            }
            for g in add {
                if after.insert(g.clone()) {
                    writes.push(store::insert(&ThingGroupMember {
                        account: scope.account.clone(),
                        region: scope.region.clone(),
                        group: g.clone(),
                        thing: thing.to_string(),
                        created_at: self.now(),
                    })?);
                }
            }
            if after.len() > MAX_GROUPS_PER_THING && after.len() > current.len() {
                return Err(DomainError::LimitExceeded(format!(
                    "a thing can be in at most {MAX_GROUPS_PER_THING} thing groups"
                )));
            }
            // An insert racing another of the same membership: re-read, it is then a no-op.
            match self.store().apply(writes).await {
                Err(DomainError::AlreadyExists { .. }) => Err(DomainError::Stale),
                other => other,
            }
        })
        .await
    }

    /// ListThingsInThingGroup: the members, and with `recursive` those of every descendant
    /// group too (each thing once).
    pub async fn list_things_in_thing_group(
        &self,
        scope: &Scope,
        group: &str,
        recursive: bool,
        page: &Page,
    ) -> DomainResult<(Vec<String>, Option<String>)> {
        self.load_thing_group(scope, group).await?;
        let mut groups = vec![group.to_string()];
        if recursive {
            let all =
                store::query::<ThingGroup>(self.store(), &scope_filter(scope), PageQuery::all())
                    .await?;
            groups.extend(
                all.into_iter()
                    .filter(|g| g.value.ancestors.iter().any(|a| a == group))
                    .map(|g| g.value.name),
            );
        }
        let mut rows = Vec::new();
        for g in &groups {
            rows.extend(self.members_of_group(scope, g).await?);
        }
        rows.sort_by_key(|r| r.seq);
        let mut seen = BTreeSet::new();
        rows.retain(|r| seen.insert(r.value.thing.clone()));
        let (rows, next) = page_filtered(rows, page, |_| true);
        Ok((rows.into_iter().map(|m| m.thing).collect(), next))
    }

    /// ListThingGroupsForThing: the groups, each with its hierarchy.
    pub async fn list_thing_groups_for_thing(
        &self,
        scope: &Scope,
        thing: &str,
        page: &Page,
    ) -> DomainResult<(Vec<String>, Option<String>)> {
        self.load_member_thing(scope, thing).await?;
        let rows = self.groups_of_thing(scope, thing).await?;
        let (rows, next) = page_filtered(rows, page, |_| true);
        Ok((rows.into_iter().map(|m| m.group).collect(), next))
    }
}

fn check_group_version(g: &ThingGroup, expected: Option<i64>) -> DomainResult<()> {
    check_version(Resource::ThingGroup, &g.name, g.version, expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, ancestors: &[&str]) -> ThingGroup {
        ThingGroup {
            name: name.into(),
            id: "i".into(),
            account: "a".into(),
            region: "r".into(),
            parent: ancestors.last().map(|s| s.to_string()),
            ancestors: ancestors.iter().map(|s| s.to_string()).collect(),
            properties: GroupProperties::default(),
            version: 1,
            created_at: 0,
            tags: Vec::new(),
        }
    }

    #[test]
    fn queries_follow_the_hierarchy() {
        let leaf = group("leaf", &["root", "mid"]);
        let q = |parent: Option<&str>, recursive| GroupQuery {
            parent: parent.map(str::to_string),
            name_prefix: None,
            recursive,
        };
        assert!(q(Some("root"), true).matches(&leaf));
        assert!(!q(Some("root"), false).matches(&leaf));
        assert!(q(Some("mid"), false).matches(&leaf));
        assert!(!q(None, false).matches(&leaf));
        assert!(q(None, false).matches(&group("root", &[])));
    }

    #[test]
    fn attributes_merge_or_replace_and_empty_values_remove() {
        let p = GroupProperties::default();
        let set = |pairs: &[(&str, &str)], merge| AttributeChange {
            attributes: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            merge,
        };
        let p = p.updated(None, Some(&set(&[("a", "1")], true)));
        let p = p.updated(Some("d".into()), Some(&set(&[("b", "2")], true)));
        assert_eq!(p.attributes.as_ref().map(|a| a.len()), Some(2));
        let p = p.updated(None, Some(&set(&[("a", "")], true)));
        assert_eq!(p.attributes.as_ref().map(|a| a.len()), Some(1));
        let p = p.updated(None, Some(&set(&[], false)));
        assert_eq!((p.attributes, p.description.as_deref()), (None, Some("d")));
    }
}
