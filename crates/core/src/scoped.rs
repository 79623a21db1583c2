//! Resources named within one account and region (things, thing types, thing groups, billing
//! groups, policies, provisioning templates): their store key, the filter that lists them, and
//! the load, create, list and version check each of them does the same way.

use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::Scope;
use crate::paging::Page;
use crate::service::Core;
use crate::store::{self, Document, Filter, PageQuery, Stored};
use crate::things::page_filtered;

/// The store key of the resource `name` in `scope`. Names are unique per account and region,
/// so the key holds all three.
pub(crate) fn scoped_key(scope: &Scope, name: &str) -> String {
    format!("{}:{}:{}", scope.account, scope.region, name)
}

/// Every document of one kind in `scope`.
pub(crate) fn scope_filter(scope: &Scope) -> Filter {
    Filter {
        account: Some(scope.account.clone()),
        region: Some(scope.region.clone()),
        ..Filter::default()
    }
}

/// The `Document` of a struct with `name`, `account` and `region` fields, keyed by
/// [`scoped_key`]; any further `fn idx1`/`fn idx2` items are passed through.
macro_rules! scoped_document {
    ($ty:ty, $kind:expr $(, $($extra:item)*)?) => {
        impl $crate::store::Document for $ty {
            const KIND: $crate::store::Kind = $kind;
            fn key(&self) -> String {
                $crate::scoped::scoped_key(
                    &$crate::ids::Scope::new(&self.account, &self.region),
                    &self.name,
                )
            }
            fn account(&self) -> String {
                self.account.clone()
            }
            fn region(&self) -> String {
                self.region.clone()
            }
            $($($extra)*)?
        }
    };
}
pub(crate) use scoped_document;

/// A request's `expectedVersion` against the resource's own version: VersionConflict (409)
/// when they differ, as AWS answers for things, thing groups and billing groups.
pub(crate) fn check_version(
    resource: Resource,
    name: &str,
    version: i64,
    expected: Option<i64>,
) -> DomainResult<()> {
    match expected {
        Some(v) if v != version => Err(DomainError::WrongState {
            current: version.to_string(),
            message: format!(
                "the {} {name} is at version {version}, not {v}",
                resource.name()
            ),
        }),
        _ => Ok(()),
    }
}

impl Core {
    /// The resource `name` of `scope`, or NotFound naming it as `resource`.
    pub(crate) async fn load_scoped<T: Document>(
        &self,
        scope: &Scope,
        name: &str,
        resource: Resource,
    ) -> DomainResult<Stored<T>> {
        store::get::<T>(self.store(), &scoped_key(scope, name))
            .await?
            .ok_or_else(|| DomainError::not_found(resource, name))
    }

    /// Inserts a new resource alone; a name that exists is AlreadyExists, whatever its
    /// properties.
    pub(crate) async fn insert_scoped<T: Document>(
        &self,
        doc: T,
        resource: Resource,
        name: &str,
    ) -> DomainResult<T> {
        match self.store().apply(vec![store::insert(&doc)?]).await {
            Ok(()) => Ok(doc),
            Err(DomainError::AlreadyExists { .. }) => Err(DomainError::AlreadyExists {
                resource,
                id: name.to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// A page of the resources of `scope` in creation order, keeping those `name_of` gives a
    /// name starting with `name_prefix` (all when it is `None`).
    pub(crate) async fn list_scoped<T: Document + Clone>(
        &self,
        scope: &Scope,
        name_prefix: Option<&str>,
        name_of: fn(&T) -> &str,
        page: &Page,
    ) -> DomainResult<(Vec<T>, Option<String>)> {
        let rows = store::query::<T>(self.store(), &scope_filter(scope), PageQuery::all()).await?;
        Ok(page_filtered(rows, page, |t| {
            name_prefix.is_none_or(|p| name_of(t).starts_with(p))
        }))
    }
}
