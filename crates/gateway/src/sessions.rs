//! Live sessions: every proxied connection, filed by its certificate id and its CA's registry
//! key, so a change to either finds the sessions it concerns without scanning them all.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use certplane_core::device_certificates::Tenant;
use tokio::sync::Notify;

/// One open session.
#[derive(Clone)]
pub struct Session {
    pub cert_id: String,
    pub ca_key: String,
    pub tenant: Tenant,
    /// The device certificate (DER), to decide again from the registry when the index lost
    /// track of it.
    pub der: Arc<Vec<u8>>,
    /// Notified once to close the session.
    pub kill: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    all: HashMap<u64, Session>,
    by_cert: HashMap<String, HashSet<u64>>,
    by_ca: HashMap<String, HashSet<u64>>,
}

#[derive(Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
    next: AtomicU64,
}

/// Unregisters its session when dropped (the connection ended, however it ended).
pub struct Registered {
    sessions: Arc<Sessions>,
    pub id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.sessions.remove(self.id);
    }
}

fn unfile(map: &mut HashMap<String, HashSet<u64>>, key: &str, id: u64) {
    if let Some(ids) = map.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            map.remove(key);
        }
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Each operation leaves the maps consistent before it can panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(self: &Arc<Self>, session: Session) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner
            .by_cert
            .entry(session.cert_id.clone())
            .or_default()
            .insert(id);
        inner
            .by_ca
            .entry(session.ca_key.clone())
            .or_default()
            .insert(id);
        inner.all.insert(id, session);
        certplane_core::metrics::gateway_session_opened();
        Registered {
            sessions: self.clone(),
            id,
        }
    }

    fn remove(&self, id: u64) {
        let mut inner = self.lock();
        if let Some(s) = inner.all.remove(&id) {
            certplane_core::metrics::gateway_session_closed();
            unfile(&mut inner.by_cert, &s.cert_id, id);
            unfile(&mut inner.by_ca, &s.ca_key, id);
        }
    }

    fn collect(inner: &Inner, ids: Option<&HashSet<u64>>) -> Vec<Session> {
        ids.into_iter()
            .flatten()
            .filter_map(|id| inner.all.get(id).cloned())
            .collect()
    }

    pub fn of_certificate(&self, cert_id: &str) -> Vec<Session> {
        let inner = self.lock();
        Self::collect(&inner, inner.by_cert.get(cert_id))
    }

    pub fn of_ca(&self, ca_key: &str) -> Vec<Session> {
        let inner = self.lock();
        Self::collect(&inner, inner.by_ca.get(ca_key))
    }

    pub fn all(&self) -> Vec<Session> {
        self.lock().all.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certplane_core::Scope;

    fn session(cert: &str, ca: &str) -> Session {
        Session {
            cert_id: cert.into(),
            ca_key: ca.into(),
            tenant: Tenant::Aws(Scope::new("111111111111", "us-east-1")),
            der: Arc::new(Vec::new()),
            kill: Arc::new(Notify::new()),
        }
    }

    #[test]
    fn sessions_are_found_by_certificate_and_ca_until_they_end() {
        let s = Arc::new(Sessions::default());
        let a = s.register(session("d1", "ca1"));
        let b = s.register(session("d1", "ca1"));
        let c = s.register(session("d2", "ca1"));
        assert_eq!(s.of_certificate("d1").len(), 2);
        assert_eq!(s.of_ca("ca1").len(), 3);
        assert_eq!(s.of_ca("ca2").len(), 0);
        drop(a);
        assert_eq!(s.of_certificate("d1").len(), 1);
        drop((b, c));
        assert!(s.is_empty());
        assert!(s.of_ca("ca1").is_empty());
    }
}
