//! Things and the principals (certificates) attached to them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::certificates::{principal_key, CertificateStatus};
use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::{new_uuid, CertificateId, Scope};
use crate::paging::Page;
use crate::scoped::{scope_filter, scoped_document};
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery, Stored};

/// A principal as an attachment names it: a certificate of the registry, or any other principal
/// string the cloud accepts (Cognito identities, thing groups), kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalRef {
    Certificate(CertificateId),
    Other(String),
}

impl PrincipalRef {
    pub fn key(&self) -> String {
        match self {
            PrincipalRef::Certificate(id) => principal_key(id),
            PrincipalRef::Other(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thing {
    pub name: String,
    pub id: String,
    pub account: String,
    pub region: String,
    pub type_name: Option<String>,
    pub attributes: BTreeMap<String, String>,
    /// The thing's own version (AWS `version`), starting at 1.
    pub version: i64,
    pub billing_group: Option<String>,
    pub created_at: Millis,
}

// Braces, not parentheses: rustfmt would put commas between the items.
scoped_document! {
    Thing,
    Kind::Thing,
    fn idx1(&self) -> Option<String> {
        self.type_name.clone()
    }
    /// Its billing group's things are found by it.
    fn idx2(&self) -> Option<String> {
        self.billing_group.clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingPrincipal {
    pub account: String,
    pub region: String,
    pub thing_name: String,
    /// The principal exactly as the client gave it (an ARN, usually).
    pub principal: String,
    pub principal_key: String,
    pub exclusive: bool,
    pub created_at: Millis,
}

impl Document for ThingPrincipal {
    const KIND: Kind = Kind::ThingPrincipal;
    fn key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.account, self.region, self.thing_name, self.principal_key
        )
    }
    fn account(&self) -> String {
        self.account.clone()
    }
    fn region(&self) -> String {
        self.region.clone()
    }
    fn idx1(&self) -> Option<String> {
        Some(self.thing_name.clone())
    }
    fn idx2(&self) -> Option<String> {
        Some(self.principal_key.clone())
    }
}

impl Thing {
    /// A request's `expectedVersion` against the thing's (VersionConflict when they differ).
    pub fn check_version(&self, expected: Option<i64>) -> DomainResult<()> {
        crate::scoped::check_version(Resource::Thing, &self.name, self.version, expected)
    }
}

/// What an UpdateThing changes.
#[derive(Debug, Clone, Default)]
pub struct ThingUpdate {
    pub type_name: Option<String>,
    pub remove_type: bool,
    pub attributes: Option<BTreeMap<String, String>>,
    pub merge: bool,
    pub expected_version: Option<i64>,
}

/// ListThings filters.
#[derive(Debug, Clone, Default)]
pub struct ThingQuery {
    pub attribute_name: Option<String>,
    pub attribute_value: Option<String>,
    pub use_prefix_attribute_value: bool,
    pub type_name: Option<String>,
}

impl ThingQuery {
    fn matches(&self, t: &Thing) -> bool {
        if let Some(ty) = &self.type_name {
            if t.type_name.as_ref() != Some(ty) {
                return false;
            }
        }
        match (&self.attribute_name, &self.attribute_value) {
            (Some(n), v) => match t.attributes.get(n) {
                None => false,
                Some(actual) => match v {
                    None => true,
                    Some(v) if self.use_prefix_attribute_value => actual.starts_with(v.as_str()),
                    Some(v) => actual == v,
                },
            },
            (None, Some(v)) => t.attributes.values().any(|a| {
                if self.use_prefix_attribute_value {
                    a.starts_with(v.as_str())
                } else {
                    a == v
                }
            }),
            (None, None) => true,
        }
    }
}

/// Pages a filtered list: scans in creation order from the token and keeps `size + 1` matches.
pub(crate) fn page_filtered<T: Clone>(
    rows: Vec<Stored<T>>,
    page: &Page,
    keep: impl Fn(&T) -> bool,
) -> (Vec<T>, Option<String>) {
    let mut rows = rows;
    rows.sort_by_key(|r| if page.query.ascending { r.seq } else { -r.seq });
    let picked: Vec<Stored<T>> = rows
        .into_iter()
        .filter(|r| match page.query.after_seq {
            Some(after) if page.query.ascending => r.seq > after,
            Some(after) => r.seq < after,
            None => true,
        })
        .filter(|r| keep(&r.value))
        .take(page.query.limit)
        .collect();
    let (rows, next) = page.finish(picked, |r| r.seq);
    (rows.into_iter().map(|r| r.value).collect(), next)
}

/// The thing-group name a principal ARN of the caller's account and region names, if it is one.
pub(crate) fn thing_group_of<'t>(text: &'t str, scope: &Scope) -> Option<&'t str> {
    let prefix = format!("arn:aws:iot:{}:{}:thinggroup/", scope.region, scope.account);
    text.strip_prefix(prefix.as_str())
}

/// The target key of a thing group of the caller's account and region (its ARN, which is
/// what [`thing_group_of`] accepts back).
pub(crate) fn thing_group_target_key(scope: &Scope, name: &str) -> String {
    format!(
        "arn:aws:iot:{}:{}:thinggroup/{name}",
        scope.region, scope.account
    )
}

impl Core {
    /// A thing group named as a principal: a missing one is reported by the ARN the caller
    /// gave (AWS's message names it).
    async fn load_named_thing_group(
        &self,
        scope: &Scope,
        name: &str,
        arn: &str,
    ) -> DomainResult<Stored<crate::thing_groups::ThingGroup>> {
        match self.load_thing_group(scope, name).await {
            Err(DomainError::NotFound { resource, .. }) => {
                Err(DomainError::not_found(resource, arn))
            }
            other => other,
        }
    }

    pub(crate) async fn load_thing(
        &self,
        scope: &Scope,
        name: &str,
    ) -> DomainResult<Stored<Thing>> {
        self.load_scoped(scope, name, Resource::Thing).await
    }

    /// CreateThing. Creating a thing that exists with the same type and attributes succeeds
    /// and returns it; with different ones it is AlreadyExists.
    pub async fn create_thing(
        &self,
        scope: &Scope,
        name: &str,
        type_name: Option<String>,
        attributes: BTreeMap<String, String>,
        billing_group: Option<String>,
    ) -> DomainResult<Thing> {
        let thing = Thing {
            name: name.to_string(),
            id: new_uuid(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            type_name,
            attributes,
            version: 1,
            billing_group,
            created_at: self.now(),
        };
        // A Stale means the type changed (deprecated, deleted) between the read and the
        // commit: re-read it and decide again.
        self.with_retry(|| async {
            let mut writes = Vec::new();
            if let Some(ty) = &thing.type_name {
                writes.push(self.thing_type_guard(scope, ty).await?);
            }
            if let Some(g) = &thing.billing_group {
                writes.push(self.billing_group_guard(scope, g).await?);
            }
            writes.push(store::insert(&thing)?);
            match self.store().apply(writes).await {
                Ok(()) => Ok(thing.clone()),
                Err(DomainError::AlreadyExists { .. }) => {
                    let existing = self.load_thing(scope, name).await?.value;
                    if existing.type_name == thing.type_name
                        && existing.attributes == thing.attributes
                    {
                        Ok(existing)
                    } else {
                        Err(DomainError::AlreadyExists {
                            resource: Resource::Thing,
                            id: name.to_string(),
                        })
                    }
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    pub async fn describe_thing(&self, scope: &Scope, name: &str) -> DomainResult<Thing> {
        Ok(self.load_thing(scope, name).await?.value)
    }

    /// DeleteThing: deleting a thing that does not exist succeeds (as in AWS IoT).
    pub async fn delete_thing(
        &self,
        scope: &Scope,
        name: &str,
        expected_version: Option<i64>,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let Some(cur) =
                store::get::<Thing>(self.store(), &crate::scoped::scoped_key(scope, name)).await?
            else {
                return Ok(());
            };
            cur.value.check_version(expected_version)?;
            if !self.principals_of_thing(scope, name).await?.is_empty() {
                return Err(DomainError::StillAttached(format!(
                    "Cannot delete. Thing {name} is still attached to one or more principals"
                )));
            }
            // Its group memberships go with it.
            let mut writes = vec![cur.delete()];
            writes.extend(
                self.groups_of_thing(scope, name)
                    .await?
                    .iter()
                    .map(|m| m.delete()),
            );
            self.store().apply(writes).await
        })
        .await
    }

    /// UpdateThing. Attributes: with `merge` the given ones are added to the thing's (an
    /// empty value removes one); without, they replace them all (empty values dropped).
    pub async fn update_thing(
        &self,
        scope: &Scope,
        name: &str,
        update: &ThingUpdate,
    ) -> DomainResult<()> {
        if update.remove_type && update.type_name.is_some() {
            return Err(DomainError::invalid(
                "removeThingType and thingTypeName cannot both be given",
            ));
        }
        self.with_retry(|| async {
            let cur = self.load_thing(scope, name).await?;
            cur.value.check_version(update.expected_version)?;
            let mut writes = Vec::new();
            let mut next = cur.value.clone();
            if let Some(ty) = &update.type_name {
                if cur.value.type_name.as_ref() != Some(ty) {
                    writes.push(self.thing_type_guard(scope, ty).await?);
                }
                next.type_name = Some(ty.clone());
            }
            if update.remove_type {
                next.type_name = None;
            }
            if let Some(attrs) = &update.attributes {
                if !update.merge {
                    next.attributes.clear();
                }
                for (k, v) in attrs {
                    if v.is_empty() {
                        next.attributes.remove(k);
                    } else {
                        next.attributes.insert(k.clone(), v.clone());
                    }
                }
            }
            next.version = cur.value.version + 1;
            writes.push(cur.update_to(&next)?);
            self.store().apply(writes).await
        })
        .await
    }

    pub async fn list_things(
        &self,
        scope: &Scope,
        query: &ThingQuery,
        page: &Page,
    ) -> DomainResult<(Vec<Thing>, Option<String>)> {
        let filter = scope_filter(scope);
        let all_q = PageQuery {
            ascending: page.query.ascending,
            ..PageQuery::all()
        };
        let rows = store::query::<Thing>(self.store(), &filter, all_q).await?;
        Ok(page_filtered(rows, page, |t| query.matches(t)))
    }

    pub(crate) async fn principals_of_thing(
        &self,
        scope: &Scope,
        thing: &str,
    ) -> DomainResult<Vec<Stored<ThingPrincipal>>> {
        let filter = Filter {
            idx1: Some(thing.to_string()),
            ..scope_filter(scope)
        };
        store::query::<ThingPrincipal>(self.store(), &filter, PageQuery::all()).await
    }

    pub(crate) async fn things_of_principal(
        &self,
        scope: &Scope,
        principal_key: &str,
    ) -> DomainResult<Vec<Stored<ThingPrincipal>>> {
        let filter = Filter {
            idx2: Some(principal_key.to_string()),
            ..scope_filter(scope)
        };
        store::query::<ThingPrincipal>(self.store(), &filter, PageQuery::all()).await
    }

    /// A principal that must exist in the caller's scope (certificates are checked).
    pub(crate) async fn check_principal(
        &self,
        scope: &Scope,
        principal: &PrincipalRef,
    ) -> DomainResult<()> {
        match principal {
            PrincipalRef::Certificate(id) => {
                self.load_owned_certificate(scope, id).await?;
            }
            PrincipalRef::Other(text) => {
                if let Some(name) = thing_group_of(text, scope) {
                    self.load_named_thing_group(scope, name, text).await?;
                }
            }
        }
        Ok(())
    }

    /// The writes that guard an attachment to `principal`: for a certificate, a compare-and-set
    /// of it unchanged, so an attachment and a TransferCertificate (which requires a certificate
    /// with nothing attached) cannot both commit against the same version — whichever loses
    /// re-reads and sees the other. A certificate pending transfer takes no new attachments:
    /// it would reach its new owner with the old owner's attachments.
    pub(crate) async fn attachment_guard(
        &self,
        scope: &Scope,
        principal: &PrincipalRef,
    ) -> DomainResult<Vec<store::Write>> {
        let id = match principal {
            PrincipalRef::Certificate(id) => id,
            PrincipalRef::Other(text) => {
                // A thing group of the caller's must exist, and stays while it is attached to.
                return match thing_group_of(text, scope) {
                    Some(name) => {
                        let g = self.load_named_thing_group(scope, name, text).await?;
                        Ok(vec![g.update_to(&g.value)?])
                    }
                    None => Ok(Vec::new()),
                };
            }
        };
        let cert = self.load_owned_certificate(scope, id).await?;
        if cert.value.status == CertificateStatus::PendingTransfer {
            return Err(DomainError::invalid(format!(
                "the certificate {id} is pending transfer; nothing can be attached to it"
            )));
        }
        Ok(vec![cert.update_to(&cert.value)?])
    }

    pub async fn attach_thing_principal(
        &self,
        scope: &Scope,
        thing: &str,
        principal_text: &str,
        principal: &PrincipalRef,
        exclusive: bool,
    ) -> DomainResult<()> {
        self.load_thing(scope, thing).await?;
        self.with_retry(|| async {
            let mut writes = self.attachment_guard(scope, principal).await?;
            let key = principal.key();
            let others = self.things_of_principal(scope, &key).await?;
            let elsewhere: Vec<_> = others
                .iter()
                .filter(|o| o.value.thing_name != thing)
                .collect();
            if !elsewhere.is_empty() && (exclusive || elsewhere.iter().any(|o| o.value.exclusive)) {
                return Err(DomainError::invalid(format!(
                "the principal {principal_text} is attached exclusively, or cannot be attached \
                 exclusively because it is attached to another thing"
            )));
            }
            let link = ThingPrincipal {
                account: scope.account.clone(),
                region: scope.region.clone(),
                thing_name: thing.to_string(),
                principal: principal_text.to_string(),
                principal_key: key,
                exclusive,
                created_at: self.now(),
            };
            writes.push(store::Write::InsertIfAbsent(link.to_doc()?));
            self.store().apply(writes).await
        })
        .await
    }

    pub async fn detach_thing_principal(
        &self,
        scope: &Scope,
        thing: &str,
        principal: &PrincipalRef,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            self.load_thing(scope, thing).await?;
            let key = format!(
                "{}:{}:{}:{}",
                scope.account,
                scope.region,
                thing,
                principal.key()
            );
            let link = store::get::<ThingPrincipal>(self.store(), &key)
                .await?
                .ok_or_else(|| DomainError::not_found(Resource::Attachment, principal.key()))?;
            self.store().apply(vec![link.delete()]).await
        })
        .await
    }

    /// ListThingPrincipals(V2): the thing's attachments; `exclusive` keeps only those of that
    /// kind (V2's thingPrincipalType filter).
    pub async fn list_thing_principals(
        &self,
        scope: &Scope,
        thing: &str,
        exclusive: Option<bool>,
        page: &Page,
    ) -> DomainResult<(Vec<ThingPrincipal>, Option<String>)> {
        self.load_thing(scope, thing).await?;
        let rows = self.principals_of_thing(scope, thing).await?;
        Ok(page_filtered(rows, page, |r| {
            exclusive.is_none_or(|e| r.exclusive == e)
        }))
    }

    /// ListPrincipalThings(V2): the principal's attachments, filtered as above.
    pub async fn list_principal_things(
        &self,
        scope: &Scope,
        principal: &PrincipalRef,
        exclusive: Option<bool>,
        page: &Page,
    ) -> DomainResult<(Vec<ThingPrincipal>, Option<String>)> {
        self.check_principal(scope, principal).await?;
        let rows = self.things_of_principal(scope, &principal.key()).await?;
        Ok(page_filtered(rows, page, |r| {
            exclusive.is_none_or(|e| r.exclusive == e)
        }))
    }
}
