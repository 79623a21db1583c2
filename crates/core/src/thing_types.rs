//! Thing types: a name things can be created with, its properties, and its deprecation. A type
//! that is deprecated keeps its things but takes no new ones; only a deprecated type without
//! things can be deleted (AWS's rule; its five-minute wait is not kept, see COMPATIBILITY.md).

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::{new_uuid, Scope};
use crate::paging::Page;
use crate::scoped::{scope_filter, scoped_document};
use crate::service::Core;
use crate::store::{Document, Filter, Kind, Stored, Write};
use crate::things::Thing;

/// One MQTT 5 propagating attribute of a thing type, kept as the client gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropagatingAttribute {
    pub user_property_key: Option<String>,
    pub thing_attribute: Option<String>,
    pub connection_attribute: Option<String>,
}

/// ThingTypeProperties. `None` members were never given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingTypeProperties {
    pub description: Option<String>,
    pub searchable_attributes: Option<Vec<String>>,
    pub propagating_attributes: Option<Vec<PropagatingAttribute>>,
}

impl ThingTypeProperties {
    /// UpdateThingType: each member given replaces the stored one; absent members stay.
    fn merged(&self, update: &ThingTypeProperties) -> ThingTypeProperties {
        ThingTypeProperties {
            description: update
                .description
                .clone()
                .or_else(|| self.description.clone()),
            searchable_attributes: update
                .searchable_attributes
                .clone()
                .or_else(|| self.searchable_attributes.clone()),
            propagating_attributes: update
                .propagating_attributes
                .clone()
                .or_else(|| self.propagating_attributes.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingType {
    pub name: String,
    pub id: String,
    pub account: String,
    pub region: String,
    pub properties: ThingTypeProperties,
    pub deprecated: bool,
    pub deprecation_date: Option<Millis>,
    pub created_at: Millis,
    pub tags: Vec<(String, String)>,
}

scoped_document!(ThingType, Kind::ThingType);

impl ThingType {
    /// DeprecateThingType, decided. Deprecating again keeps the first deprecation date.
    pub fn deprecate(&self, undo: bool, now: Millis) -> ThingType {
        let mut next = self.clone();
        if undo {
            next.deprecated = false;
            next.deprecation_date = None;
        } else if !self.deprecated {
            next.deprecated = true;
            next.deprecation_date = Some(now);
        }
        next
    }

    /// Whether a thing may newly take this type.
    pub fn check_assignable(&self) -> DomainResult<()> {
        if self.deprecated {
            return Err(DomainError::invalid(format!(
                "The thing type {} is deprecated: no thing can newly take it",
                self.name
            )));
        }
        Ok(())
    }
}

impl Core {
    pub(crate) async fn load_thing_type(
        &self,
        scope: &Scope,
        name: &str,
    ) -> DomainResult<Stored<ThingType>> {
        self.load_scoped(scope, name, Resource::ThingType).await
    }

    /// The write that guards giving a thing the type `name`: the type must exist and not be
    /// deprecated, and the compare-and-set of it unchanged makes a racing Deprecate or Delete
    /// and this assignment serialise (whichever loses re-reads and sees the other).
    pub(crate) async fn thing_type_guard(&self, scope: &Scope, name: &str) -> DomainResult<Write> {
        let ty = self.load_thing_type(scope, name).await?;
        ty.value.check_assignable()?;
        ty.update_to(&ty.value)
    }

    pub async fn create_thing_type(
        &self,
        scope: &Scope,
        name: &str,
        properties: ThingTypeProperties,
        tags: Vec<(String, String)>,
    ) -> DomainResult<ThingType> {
        let ty = ThingType {
            name: name.to_string(),
            id: new_uuid(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            properties,
            deprecated: false,
            deprecation_date: None,
            created_at: self.now(),
            tags,
        };
        self.insert_scoped(ty, Resource::ThingType, name).await
    }

    pub async fn describe_thing_type(&self, scope: &Scope, name: &str) -> DomainResult<ThingType> {
        Ok(self.load_thing_type(scope, name).await?.value)
    }

    /// ListThingTypes; `name_prefix` keeps the types whose name starts with it (moto's reading
    /// of the `thingTypeName` filter, which AWS's docs leave open).
    pub async fn list_thing_types(
        &self,
        scope: &Scope,
        name_prefix: Option<&str>,
        page: &Page,
    ) -> DomainResult<(Vec<ThingType>, Option<String>)> {
        self.list_scoped(scope, name_prefix, |t: &ThingType| &t.name, page)
            .await
    }

    pub async fn update_thing_type(
        &self,
        scope: &Scope,
        name: &str,
        update: &ThingTypeProperties,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_thing_type(scope, name).await?;
            let mut next = cur.value.clone();
            next.properties = cur.value.properties.merged(update);
            self.store().apply(vec![cur.update_to(&next)?]).await
        })
        .await
    }

    pub async fn deprecate_thing_type(
        &self,
        scope: &Scope,
        name: &str,
        undo: bool,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_thing_type(scope, name).await?;
            let next = cur.value.deprecate(undo, self.now());
            self.store().apply(vec![cur.update_to(&next)?]).await
        })
        .await
    }

    /// DeleteThingType: only a deprecated type with no things (400 InvalidRequest otherwise).
    pub async fn delete_thing_type(&self, scope: &Scope, name: &str) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_thing_type(scope, name).await?;
            if !cur.value.deprecated {
                return Err(DomainError::invalid(format!(
                    "The thing type {name} must be deprecated before it can be deleted"
                )));
            }
            let filter = Filter {
                idx1: Some(name.to_string()),
                ..scope_filter(scope)
            };
            if self.store().count(Thing::KIND, &filter).await? > 0 {
                return Err(DomainError::invalid(format!(
                    "The thing type {name} still has things; change their type first"
                )));
            }
            self.store().apply(vec![cur.delete()]).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty() -> ThingType {
        ThingType {
            name: "t".into(),
            id: "i".into(),
            account: "a".into(),
            region: "r".into(),
            properties: ThingTypeProperties::default(),
            deprecated: false,
            deprecation_date: None,
            created_at: 0,
            tags: Vec::new(),
        }
    }

    #[test]
    fn deprecation_refuses_new_things_and_undo_restores() {
        let t = ty();
        assert!(t.check_assignable().is_ok());
        let d = t.deprecate(false, 5);
        assert!(d.deprecated && d.deprecation_date == Some(5));
        assert!(matches!(
            d.check_assignable(),
            Err(DomainError::InvalidInput(_))
        ));
        assert_eq!(d.deprecate(false, 9).deprecation_date, Some(5));
        let u = d.deprecate(true, 10);
        assert!(!u.deprecated && u.deprecation_date.is_none());
    }

    #[test]
    fn updates_replace_only_given_members() {
        let base = ThingTypeProperties {
            description: Some("d".into()),
            searchable_attributes: Some(vec!["a".into()]),
            propagating_attributes: None,
        };
        let m = base.merged(&ThingTypeProperties {
            description: Some("e".into()),
            ..Default::default()
        });
        assert_eq!(m.description.as_deref(), Some("e"));
        assert_eq!(m.searchable_attributes, Some(vec!["a".to_string()]));
    }
}
