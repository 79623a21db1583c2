//! AWS IoT billing groups: a named group a thing belongs to at most one of. The membership is
//! the thing's own `billing_group` (indexed as the thing's idx2), so moving a thing is one
//! compare-and-set of the thing, and the group is compare-and-set unchanged beside it so a
//! racing DeleteBillingGroup cannot leave a thing in a deleted group.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::{DomainResult, Resource};
use crate::ids::{new_uuid, Scope};
use crate::paging::Page;
use crate::scoped::{check_version, scope_filter, scoped_document, scoped_key};
use crate::service::Core;
use crate::store::{self, Filter, Kind, PageQuery, Stored, Write};
use crate::things::{page_filtered, Thing};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingGroup {
    pub name: String,
    pub id: String,
    pub account: String,
    pub region: String,
    pub description: Option<String>,
    /// AWS's `version`, starting at 1 and raised by each update.
    pub version: i64,
    pub created_at: Millis,
    pub tags: Vec<(String, String)>,
}

scoped_document!(BillingGroup, Kind::BillingGroup);

impl BillingGroup {
    fn check_version(&self, expected: Option<i64>) -> DomainResult<()> {
        check_version(Resource::BillingGroup, &self.name, self.version, expected)
    }
}

impl Core {
    async fn load_billing_group(
        &self,
        scope: &Scope,
        name: &str,
    ) -> DomainResult<Stored<BillingGroup>> {
        self.load_scoped(scope, name, Resource::BillingGroup).await
    }

    /// The write that guards putting a thing in billing group `name`: it must exist, and it
    /// is compare-and-set unchanged.
    pub(crate) async fn billing_group_guard(
        &self,
        scope: &Scope,
        name: &str,
    ) -> DomainResult<Write> {
        let g = self.load_billing_group(scope, name).await?;
        g.update_to(&g.value)
    }

    fn things_in_billing_group_filter(scope: &Scope, name: &str) -> Filter {
        Filter {
            idx2: Some(name.to_string()),
            ..scope_filter(scope)
        }
    }

    /// CreateBillingGroup: a name that exists is AlreadyExists, whatever its properties.
    pub async fn create_billing_group(
        &self,
        scope: &Scope,
        name: &str,
        description: Option<String>,
        tags: Vec<(String, String)>,
    ) -> DomainResult<BillingGroup> {
        let g = BillingGroup {
            name: name.to_string(),
            id: new_uuid(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            description,
            version: 1,
            created_at: self.now(),
            tags,
        };
        self.insert_scoped(g, Resource::BillingGroup, name).await
    }

    pub async fn describe_billing_group(
        &self,
        scope: &Scope,
        name: &str,
    ) -> DomainResult<BillingGroup> {
        Ok(self.load_billing_group(scope, name).await?.value)
    }

    pub async fn list_billing_groups(
        &self,
        scope: &Scope,
        name_prefix: Option<&str>,
        page: &Page,
    ) -> DomainResult<(Vec<BillingGroup>, Option<String>)> {
        self.list_scoped(scope, name_prefix, |g: &BillingGroup| &g.name, page)
            .await
    }

    /// UpdateBillingGroup: the new version.
    pub async fn update_billing_group(
        &self,
        scope: &Scope,
        name: &str,
        description: Option<String>,
        expected_version: Option<i64>,
    ) -> DomainResult<i64> {
        self.with_retry(|| async {
            let cur = self.load_billing_group(scope, name).await?;
            cur.value.check_version(expected_version)?;
            let mut next = cur.value.clone();
            if description.is_some() {
                next.description = description.clone();
            }
            next.version += 1;
            self.store().apply(vec![cur.update_to(&next)?]).await?;
            Ok(next.version)
        })
        .await
    }

    /// DeleteBillingGroup: a group that does not exist is already deleted (the model gives
    /// this call no ResourceNotFoundException); its things leave it in the same transaction.
    pub async fn delete_billing_group(
        &self,
        scope: &Scope,
        name: &str,
        expected_version: Option<i64>,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let Some(cur) =
                store::get::<BillingGroup>(self.store(), &scoped_key(scope, name)).await?
            else {
                return Ok(());
            };
            cur.value.check_version(expected_version)?;
            let mut writes = vec![cur.delete()];
            let things = store::query::<Thing>(
                self.store(),
                &Self::things_in_billing_group_filter(scope, name),
                PageQuery::all(),
            )
            .await?;
            for t in things {
                let mut next = t.value.clone();
                next.billing_group = None;
                writes.push(t.update_to(&next)?);
            }
            self.store().apply(writes).await
        })
        .await
    }

    /// AddThingToBillingGroup (`Some`) / RemoveThingFromBillingGroup (`None`, only when the
    /// thing is in `group`). A thing is in at most one billing group: adding moves it.
    pub async fn set_thing_billing_group(
        &self,
        scope: &Scope,
        thing: &str,
        group: &str,
        add: bool,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let guard = self.billing_group_guard(scope, group).await?;
            let t: Stored<Thing> = self.load_scoped(scope, thing, Resource::Thing).await?;
            let mut next = t.value.clone();
            if add {
                next.billing_group = Some(group.to_string());
            } else if t.value.billing_group.as_deref() == Some(group) {
                next.billing_group = None;
            } else {
                return Ok(());
            }
            if next == t.value {
                return Ok(());
            }
            self.store().apply(vec![guard, t.update_to(&next)?]).await
        })
        .await
    }

    pub async fn list_things_in_billing_group(
        &self,
        scope: &Scope,
        group: &str,
        page: &Page,
    ) -> DomainResult<(Vec<String>, Option<String>)> {
        self.load_billing_group(scope, group).await?;
        let rows = store::query::<Thing>(
            self.store(),
            &Self::things_in_billing_group_filter(scope, group),
            PageQuery::all(),
        )
        .await?;
        let (rows, next) = page_filtered(rows, page, |_| true);
        Ok((rows.into_iter().map(|t| t.name).collect(), next))
    }
}
