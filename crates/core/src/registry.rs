//! The operator's view of the one certificate registry, whatever dialect made each entry.

use crate::certificates::Certificate;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::CertificateId;
use crate::service::Core;
use crate::store::{self, Filter, PageQuery};

impl Core {
    pub async fn registry_list(&self) -> DomainResult<Vec<Certificate>> {
        Ok(
            store::query::<Certificate>(self.store(), &Filter::default(), PageQuery::all())
                .await?
                .into_iter()
                .map(|s| s.value)
                .collect(),
        )
    }

    pub async fn registry_show(&self, id: &CertificateId) -> DomainResult<Certificate> {
        store::get::<Certificate>(self.store(), id.as_str())
            .await?
            .map(|s| s.value)
            .ok_or_else(|| DomainError::not_found(Resource::Certificate, id.as_str()))
    }
}
