//! Unique claims: values that must stay unique within a namespace on every node — an uploaded
//! certificate's name in its account, a DEFAULT-mode CA certificate in its region. A claim is a
//! document keyed by the namespaced value and inserted in the same transaction as what needs
//! it, so of two racing creators the store's unique key lets exactly one commit; the loser's
//! whole transaction fails with `AlreadyExists`. Request idempotence tokens (Alibaba's
//! ClientToken) are claims too, holding what the first request made.

use serde::{Deserialize, Serialize};

use crate::error::DomainResult;
use crate::service::Core;
use crate::store::{self, Document, Kind, Write};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub namespace: String,
    pub value: String,
    pub account: String,
    /// The key of the document holding the claim.
    pub holder: String,
}

impl Claim {
    fn key_for(namespace: &str, value: &str) -> String {
        // Namespaces hold no '/', so the first one ends the namespace whatever the value holds.
        format!("{namespace}/{value}")
    }
}

impl Document for Claim {
    const KIND: Kind = Kind::Claim;
    fn key(&self) -> String {
        Self::key_for(&self.namespace, &self.value)
    }
    fn account(&self) -> String {
        self.account.clone()
    }
    fn region(&self) -> String {
        String::new()
    }
    fn idx1(&self) -> Option<String> {
        Some(self.holder.clone())
    }
    fn idx2(&self) -> Option<String> {
        None
    }
}

/// The write that claims `value` in `namespace` for `holder` (fails the batch with
/// `AlreadyExists` when someone holds it).
pub fn claim(namespace: &str, value: &str, account: &str, holder: &str) -> DomainResult<Write> {
    store::insert(&Claim {
        namespace: namespace.to_string(),
        value: value.to_string(),
        account: account.to_string(),
        holder: holder.to_string(),
    })
}

impl Core {
    /// Who holds `value` in `namespace`, if anyone.
    pub(crate) async fn claim_holder(
        &self,
        namespace: &str,
        value: &str,
    ) -> DomainResult<Option<String>> {
        Ok(
            store::get::<Claim>(self.store(), &Claim::key_for(namespace, value))
                .await?
                .map(|c| c.value.holder),
        )
    }

    /// The write that gives `value` back, when `holder` holds it (a claim made before claims
    /// existed, or held by someone else, is left alone).
    pub(crate) async fn release_claim(
        &self,
        namespace: &str,
        value: &str,
        holder: &str,
    ) -> DomainResult<Option<Write>> {
        let key = Claim::key_for(namespace, value);
        Ok(store::get::<Claim>(self.store(), &key)
            .await?
            .filter(|c| c.value.holder == holder)
            .map(|c| c.delete()))
    }
}
