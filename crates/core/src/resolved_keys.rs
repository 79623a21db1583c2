//! Access keys resolved for authentication — the key with its secret opened, its user and the
//! user's parsed policies — kept between requests, so a signed request reads none of them
//! from the store. An entry is current while the store's generations of the credential kinds
//! (access keys, users, policies) are the ones it was read under: any change to any credential,
//! made by this server, an admin command or another node, moves them and every entry is read
//! again at its next use. On a store that does not count every change before its writer
//! answers (PostgreSQL, see `Store::counts_changes_before_answering`), or cannot see every
//! change (`generation` is `None`), nothing is kept.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::accounts::AccessKey;
use crate::authz::Identity;
use crate::error::DomainResult;
use crate::service::Core;
use crate::store::Kind;

/// An access key and who it authenticates.
pub struct ResolvedKey {
    pub key: AccessKey,
    /// `None` when the key's user is gone.
    pub identity: Option<Identity>,
}

/// Entries kept at most; past it the cache starts over (keys in use are few).
const ENTRIES: usize = 8192;

const CREDENTIALS: [Kind; 3] = [Kind::AccessKey, Kind::User, Kind::IamPolicy];

#[derive(Default)]
pub struct ResolvedKeys {
    entries: RwLock<HashMap<String, (u64, Arc<ResolvedKey>)>>,
}

impl ResolvedKeys {
    fn current(&self, id: &str, generation: u64) -> Option<Arc<ResolvedKey>> {
        let entries = self.entries.read().ok()?;
        match entries.get(id) {
            Some((g, r)) if *g == generation => Some(r.clone()),
            _ => None,
        }
    }

    fn keep(&self, id: &str, generation: u64, resolved: Arc<ResolvedKey>) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= ENTRIES {
                entries.clear();
            }
            entries.insert(id.to_string(), (generation, resolved));
        }
    }
}

impl Core {
    /// The access key `id` with its identity, from the cache when nothing changed since.
    pub async fn resolve_access_key(&self, id: &str) -> DomainResult<Option<Arc<ResolvedKey>>> {
        // Read before the store is: a change committed while the key is read moves the
        // generation past the one the entry is kept under, so it is not served again.
        // Only where every credential change is counted before its writer answers: on
        // PostgreSQL an admin command's or another node's change would be heard a moment after
        // it was acknowledged, and a disabled key must be refused at once.
        let store = self.store();
        let generation = if store.counts_changes_before_answering() {
            crate::store::generation_of(store, &CREDENTIALS)
        } else {
            None
        };
        if let Some(hit) = generation.and_then(|g| self.resolved_keys.current(id, g)) {
            return Ok(Some(hit));
        }
        let Some(key) = self.access_key(id).await? else {
            return Ok(None);
        };
        let identity = self.identity_of(&key).await?;
        let resolved = Arc::new(ResolvedKey { key, identity });
        if let Some(g) = generation {
            self.resolved_keys.keep(id, g, resolved.clone());
        }
        Ok(Some(resolved))
    }
}
