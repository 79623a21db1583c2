//! Access-key secrets at rest: sealed under the deployment's master key (the one that seals the
//! CA keys; AES-256-GCM, the key id as associated data so a sealed secret moved to another key
//! does not open), opened when a request's signature is checked. A stolen database holds no
//! usable secret.

use std::sync::Arc;

use base64::Engine as _;
use certplane_pki::{MasterKey, Sealed};
use serde::{Deserialize, Serialize};

use crate::accounts::AccessKey;
use crate::error::{DomainError, DomainResult};
use crate::service::Core;
use crate::store::{self, Filter, PageQuery, Store, Write};

/// A secret as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret {
    pub master_key_id: String,
    pub nonce: String,
    pub ciphertext: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> DomainResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| DomainError::internal(format!("a sealed access-key secret: {e}")))
}

/// The stored form of `key`: its secret sealed, the plain field empty.
pub fn sealed_form(master: &MasterKey, key: &AccessKey) -> DomainResult<AccessKey> {
    let Sealed {
        key_id,
        nonce,
        ciphertext,
    } = master
        .seal(key.secret.as_bytes(), key.id.as_bytes())
        .map_err(|e| DomainError::internal(format!("sealing an access-key secret: {e}")))?;
    let mut stored = key.clone();
    stored.secret = String::new();
    stored.sealed_secret = Some(SealedSecret {
        master_key_id: key_id,
        nonce: b64(&nonce),
        ciphertext: b64(&ciphertext),
    });
    Ok(stored)
}

/// `key` as read from the store, with its secret opened (a key stored before sealing existed
/// comes back as it is).
pub fn opened_form(master: Option<&MasterKey>, mut key: AccessKey) -> DomainResult<AccessKey> {
    let Some(sealed) = key.sealed_secret.take() else {
        return Ok(key);
    };
    let Some(master) = master else {
        return Err(DomainError::internal(format!(
            "the secret of access key {} is sealed and no master key is configured",
            key.id
        )));
    };
    let plain = master
        .open(
            &Sealed {
                key_id: sealed.master_key_id,
                nonce: unb64(&sealed.nonce)?,
                ciphertext: unb64(&sealed.ciphertext)?,
            },
            key.id.as_bytes(),
        )
        .map_err(|e| DomainError::internal(format!("opening access key {}: {e}", key.id)))?;
    key.secret = String::from_utf8(plain.to_vec())
        .map_err(|_| DomainError::internal(format!("access key {}: not text", key.id)))?;
    Ok(key)
}

/// The writes that re-seal every sealed access-key secret from `old` to `new`, each a
/// compare-and-set on the version read, for the master-key rotation's one transaction.
pub async fn reseal_writes(
    store: &dyn Store,
    old: &MasterKey,
    new: &MasterKey,
) -> DomainResult<Vec<Write>> {
    let mut writes = Vec::new();
    for stored in store::query::<AccessKey>(store, &Filter::default(), PageQuery::all()).await? {
        if stored.value.sealed_secret.is_none() {
            continue;
        }
        let plain = opened_form(Some(old), stored.value.clone())?;
        writes.push(stored.update_to(&sealed_form(new, &plain)?)?);
    }
    Ok(writes)
}

impl Core {
    /// Seals the secrets of access keys made from now on (and opens sealed ones) with
    /// `master`.
    pub fn with_master_key(self, master: Arc<MasterKey>) -> Self {
        self.set_master_key(master);
        self
    }

    /// Replaces the master key (an operator rotated it while the server runs: the stored
    /// secrets are sealed under the new one from that transaction on).
    pub fn set_master_key(&self, master: Arc<MasterKey>) {
        match self.master_key.write() {
            Ok(mut slot) => *slot = Some(master),
            Err(poisoned) => *poisoned.into_inner() = Some(master),
        }
    }

    fn current_master_key(&self) -> Option<Arc<MasterKey>> {
        match self.master_key.read() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The form of `key` to write.
    pub(crate) fn stored_key_form(&self, key: &AccessKey) -> DomainResult<AccessKey> {
        match self.current_master_key() {
            Some(m) => sealed_form(&m, key),
            None => Ok(key.clone()),
        }
    }

    pub(crate) fn open_key(&self, key: AccessKey) -> DomainResult<AccessKey> {
        if key.sealed_secret.is_none() {
            return Ok(key);
        }
        opened_form(self.current_master_key().as_deref(), key)
    }

    /// Seals every access-key secret still stored in plain text (keys made by an older
    /// release). Returns how many; a key changed meanwhile by someone else is left for the
    /// next start.
    pub async fn seal_plain_access_keys(&self) -> DomainResult<usize> {
        let Some(master) = self.current_master_key() else {
            return Ok(0);
        };
        let mut sealed = 0;
        for stored in
            store::query::<AccessKey>(self.store(), &Filter::default(), PageQuery::all()).await?
        {
            if stored.value.sealed_secret.is_some() || stored.value.secret.is_empty() {
                continue;
            }
            let write = stored.update_to(&sealed_form(&master, &stored.value)?)?;
            match self.store().apply(vec![write]).await {
                Ok(()) => sealed += 1,
                Err(DomainError::Stale) | Err(DomainError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sealed)
    }
}
