//! AWS IoT provisioning templates and their versions. Versions live inside their template's
//! document (at most five, as AWS allows), so every version change is one compare-and-set of
//! the template and cannot race a DeleteProvisioningTemplate.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::Scope;
use crate::paging::Page;
use crate::provisioning::Template;
use crate::scoped::scoped_document;
use crate::service::Core;
use crate::store::{Kind, Stored};
use crate::things::page_filtered;

/// AWS IoT keeps at most five versions of one provisioning template.
pub const MAX_TEMPLATE_VERSIONS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVersion {
    pub id: i64,
    pub body: String,
    pub created_at: Millis,
}

/// A pre-provisioning hook, kept as given (certplane calls no Lambda: COMPATIBILITY.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningHook {
    pub target_arn: String,
    pub payload_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningTemplate {
    pub name: String,
    pub account: String,
    pub region: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub role_arn: String,
    pub hook: Option<ProvisioningHook>,
    /// FLEET_PROVISIONING or JITP.
    pub template_type: String,
    pub default_version: i64,
    /// Every version, oldest first.
    pub versions: Vec<TemplateVersion>,
    /// The highest version id ever given: ids are never reused, even after a delete.
    pub last_version_id: i64,
    pub created_at: Millis,
    pub last_modified: Millis,
    pub tags: Vec<(String, String)>,
}

scoped_document!(ProvisioningTemplate, Kind::ProvisioningTemplate);

/// What CreateProvisioningTemplate is given besides the name and the body.
#[derive(Debug, Clone, Default)]
pub struct TemplateSettings {
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub role_arn: Option<String>,
    pub hook: Option<ProvisioningHook>,
    pub template_type: Option<String>,
}

/// What UpdateProvisioningTemplate changes (absent members stay).
#[derive(Debug, Clone, Default)]
pub struct TemplateUpdate {
    pub settings: TemplateSettings,
    pub default_version: Option<i64>,
    pub remove_hook: bool,
}

impl ProvisioningTemplate {
    pub fn version(&self, id: i64) -> DomainResult<&TemplateVersion> {
        self.versions.iter().find(|v| v.id == id).ok_or_else(|| {
            DomainError::not_found(
                Resource::ProvisioningTemplateVersion,
                format!("{}:{id}", self.name),
            )
        })
    }

    pub fn default_body(&self) -> DomainResult<&str> {
        Ok(&self.version(self.default_version)?.body)
    }

    /// CreateProvisioningTemplateVersion, decided: a sixth version is refused.
    pub fn with_new_version(
        &self,
        body: &str,
        set_default: bool,
        now: Millis,
    ) -> DomainResult<Self> {
        if self.versions.len() >= MAX_TEMPLATE_VERSIONS {
            return Err(DomainError::LimitExceeded(format!(
                "The provisioning template {} already has {MAX_TEMPLATE_VERSIONS} versions; \
                 delete one first",
                self.name
            )));
        }
        let mut next = self.clone();
        next.last_version_id += 1;
        next.versions.push(TemplateVersion {
            id: next.last_version_id,
            body: body.to_string(),
            created_at: now,
        });
        if set_default {
            next.default_version = next.last_version_id;
        }
        next.last_modified = now;
        Ok(next)
    }

    /// DeleteProvisioningTemplateVersion, decided: the default version stays.
    pub fn without_version(&self, id: i64) -> DomainResult<Self> {
        self.version(id)?;
        if id == self.default_version {
            return Err(DomainError::StillAttached(format!(
                "Cannot delete the default version {id} of the provisioning template {}",
                self.name
            )));
        }
        let mut next = self.clone();
        next.versions.retain(|v| v.id != id);
        Ok(next)
    }

    fn updated(&self, u: &TemplateUpdate, now: Millis) -> DomainResult<Self> {
        let mut next = self.clone();
        if let Some(d) = &u.settings.description {
            next.description = Some(d.clone());
        }
        if let Some(e) = u.settings.enabled {
            next.enabled = e;
        }
        if let Some(r) = &u.settings.role_arn {
            next.role_arn = r.clone();
        }
        if u.remove_hook {
            next.hook = None;
        } else if let Some(h) = &u.settings.hook {
            next.hook = Some(h.clone());
        }
        if let Some(v) = u.default_version {
            self.version(v)?;
            next.default_version = v;
        }
        next.last_modified = now;
        Ok(next)
    }
}

impl Core {
    pub(crate) async fn load_provisioning_template(
        &self,
        scope: &Scope,
        name: &str,
    ) -> DomainResult<Stored<ProvisioningTemplate>> {
        self.load_scoped(scope, name, Resource::ProvisioningTemplate)
            .await
    }

    pub async fn create_provisioning_template(
        &self,
        scope: &Scope,
        name: &str,
        body: &str,
        settings: TemplateSettings,
        tags: Vec<(String, String)>,
    ) -> DomainResult<ProvisioningTemplate> {
        Template::parse(body)?;
        let role_arn = settings
            .role_arn
            .ok_or_else(|| DomainError::invalid("provisioningRoleArn is required"))?;
        let now = self.now();
        let t = ProvisioningTemplate {
            name: name.to_string(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            description: settings.description,
            enabled: settings.enabled.unwrap_or(false),
            role_arn,
            hook: settings.hook,
            template_type: settings
                .template_type
                .unwrap_or_else(|| "FLEET_PROVISIONING".to_string()),
            default_version: 1,
            versions: vec![TemplateVersion {
                id: 1,
                body: body.to_string(),
                created_at: now,
            }],
            last_version_id: 1,
            created_at: now,
            last_modified: now,
            tags,
        };
        self.insert_scoped(t, Resource::ProvisioningTemplate, name)
            .await
    }

    pub async fn describe_provisioning_template(
        &self,
        scope: &Scope,
        name: &str,
    ) -> DomainResult<ProvisioningTemplate> {
        Ok(self.load_provisioning_template(scope, name).await?.value)
    }

    pub async fn list_provisioning_templates(
        &self,
        scope: &Scope,
        page: &Page,
    ) -> DomainResult<(Vec<ProvisioningTemplate>, Option<String>)> {
        self.list_scoped(scope, None, |t: &ProvisioningTemplate| &t.name, page)
            .await
    }

    pub async fn update_provisioning_template(
        &self,
        scope: &Scope,
        name: &str,
        update: &TemplateUpdate,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_provisioning_template(scope, name).await?;
            let next = cur.value.updated(update, self.now())?;
            self.store().apply(vec![cur.update_to(&next)?]).await
        })
        .await
    }

    pub async fn delete_provisioning_template(
        &self,
        scope: &Scope,
        name: &str,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_provisioning_template(scope, name).await?;
            self.store().apply(vec![cur.delete()]).await
        })
        .await
    }

    pub async fn create_provisioning_template_version(
        &self,
        scope: &Scope,
        name: &str,
        body: &str,
        set_default: bool,
    ) -> DomainResult<(ProvisioningTemplate, i64)> {
        Template::parse(body)?;
        self.with_retry(|| async {
            let cur = self.load_provisioning_template(scope, name).await?;
            let next = cur.value.with_new_version(body, set_default, self.now())?;
            self.store().apply(vec![cur.update_to(&next)?]).await?;
            let id = next.last_version_id;
            Ok((next, id))
        })
        .await
    }

    pub async fn describe_provisioning_template_version(
        &self,
        scope: &Scope,
        name: &str,
        id: i64,
    ) -> DomainResult<(TemplateVersion, bool)> {
        let t = self.load_provisioning_template(scope, name).await?.value;
        let v = t.version(id)?.clone();
        Ok((v, id == t.default_version))
    }

    pub async fn list_provisioning_template_versions(
        &self,
        scope: &Scope,
        name: &str,
        page: &Page,
    ) -> DomainResult<(Vec<(TemplateVersion, bool)>, Option<String>)> {
        let t = self.load_provisioning_template(scope, name).await?;
        // Versions are paged by id as if each were its own row (ids only grow).
        let rows: Vec<Stored<(TemplateVersion, bool)>> = t
            .value
            .versions
            .iter()
            .map(|v| Stored {
                value: (v.clone(), v.id == t.value.default_version),
                version: t.version,
                seq: v.id,
            })
            .collect();
        Ok(page_filtered(rows, page, |_| true))
    }

    pub async fn delete_provisioning_template_version(
        &self,
        scope: &Scope,
        name: &str,
        id: i64,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_provisioning_template(scope, name).await?;
            let next = cur.value.without_version(id)?;
            self.store().apply(vec![cur.update_to(&next)?]).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> ProvisioningTemplate {
        ProvisioningTemplate {
            name: "t".into(),
            account: "a".into(),
            region: "r".into(),
            description: None,
            enabled: false,
            role_arn: "arn:aws:iam::123456789012:role/x".into(),
            hook: None,
            template_type: "FLEET_PROVISIONING".into(),
            default_version: 1,
            versions: vec![TemplateVersion {
                id: 1,
                body: "{}".into(),
                created_at: 0,
            }],
            last_version_id: 1,
            created_at: 0,
            last_modified: 0,
            tags: vec![],
        }
    }

    #[test]
    fn versions_count_up_stop_at_five_and_keep_the_default() {
        let mut t = template();
        for i in 2..=5 {
            t = t.with_new_version("{}", i == 3, 0).unwrap();
            assert_eq!(t.last_version_id, i);
        }
        assert_eq!(t.default_version, 3);
        assert!(matches!(
            t.with_new_version("{}", false, 0),
            Err(DomainError::LimitExceeded(_))
        ));
        assert!(matches!(
            t.without_version(3),
            Err(DomainError::StillAttached(_))
        ));
        let t = t.without_version(5).unwrap();
        assert_eq!(t.versions.len(), 4);
        // Ids are never reused after a delete.
        let t = t.with_new_version("{}", false, 0).unwrap();
        assert_eq!(t.last_version_id, 6);
    }
}
