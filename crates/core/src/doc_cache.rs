//! Decoded documents kept between requests, so a read that finds its document unchanged
//! neither reads nor decodes it again (DescribeCertificate answers most of its calls this way).
//!
//! Only kinds on the change feed ([`Kind::is_watched`]) are kept, and an entry is served only
//! while the store says it is still what it holds ([`Store::unchanged_since`]): SQLite knows
//! this without I/O, since every writer — this process, and an admin command in another — has
//! it counted before it answers; PostgreSQL asks the database for the row's version, because
//! another node's change reaches this node's feed only after that node has answered. So every
//! read sees every write acknowledged before it began, on whichever node, as an uncached read
//! would. Nothing expires by time.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::DomainResult;
use crate::service::Core;
use crate::store::{self, Document, Kind, Stored};

/// Entries kept at most per kind; past it the kind's entries start over. A decoded certificate
/// with its PEM is ~2.5 kB, so the certificates' entries stay under ~40 MB, however large the
/// registry (a miss only costs the read the cache would have saved).
const ENTRIES: usize = 16_384;

struct Entry {
    /// The kind's generation this entry is known to be current at.
    since: AtomicU64,
    version: i64,
    seq: i64,
    /// An `Arc<Stored<T>>` of the entry's kind.
    doc: Arc<dyn Any + Send + Sync>,
}

/// One map per kind, so a lookup needs no owned key.
pub struct DocCache {
    entries: [RwLock<HashMap<String, Arc<Entry>>>; Kind::ALL.len()],
}

impl Default for DocCache {
    fn default() -> Self {
        DocCache {
            entries: std::array::from_fn(|_| RwLock::default()),
        }
    }
}

impl DocCache {
    fn entry(&self, kind: Kind, key: &str) -> Option<Arc<Entry>> {
        self.entries[kind as usize].read().ok()?.get(key).cloned()
    }

    fn keep(&self, kind: Kind, key: &str, entry: Entry) {
        if let Ok(mut entries) = self.entries[kind as usize].write() {
            if entries.len() >= ENTRIES {
                entries.clear();
            }
            entries.insert(key.to_string(), Arc::new(entry));
        }
    }

    fn forget(&self, kind: Kind, key: &str) {
        if let Ok(mut entries) = self.entries[kind as usize].write() {
            entries.remove(key);
        }
    }
}

impl Core {
    /// The document `key` of `T`'s kind, shared with the other readers that found it
    /// unchanged; read from the store when it changed, or when nothing may be cached on it.
    pub async fn get_shared<T>(&self, key: &str) -> DomainResult<Option<Arc<Stored<T>>>>
    where
        T: Document + 'static,
    {
        let store = self.store();
        let kind = T::KIND;
        // Read before the document is: a change committed meanwhile counts past it, so the
        // entry kept below is not served once that change is known.
        let now = match store.generation(kind) {
            Some(g) if kind.is_watched() => g,
            _ => return Ok(store::get::<T>(store, key).await?.map(Arc::new)),
        };
        let cache = &self.doc_cache;
        if let Some(entry) = cache.entry(kind, key) {
            if let Ok(doc) = entry.doc.clone().downcast::<Stored<T>>() {
                let since = entry.since.load(Ordering::Acquire);
                let current = match store.unchanged_since(kind, key, since) {
                    Some(known) => known,
                    None => store.version(kind, key).await? == Some((entry.version, entry.seq)),
                };
                if current {
                    // Current at `now` as well: checks from now on start there.
                    entry.since.fetch_max(now, Ordering::AcqRel);
                    return Ok(Some(doc));
                }
            }
        }
        match store::get::<T>(store, key).await? {
            Some(stored) => {
                let stored = Arc::new(stored);
                cache.keep(
                    kind,
                    key,
                    Entry {
                        since: AtomicU64::new(now),
                        version: stored.version,
                        seq: stored.seq,
                        doc: stored.clone(),
                    },
                );
                Ok(Some(stored))
            }
            None => {
                cache.forget(kind, key);
                Ok(None)
            }
        }
    }
}
