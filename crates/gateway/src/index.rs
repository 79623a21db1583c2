//! The in-memory index the handshake path reads: device certificates (id → status, scope, CA,
//! validity), CA certificates (registry key → status), MQTT instances, and recent refusals of
//! certificates the registry does not hold. It is filled on a miss (from the rows admission
//! read) and kept current by the store's change feed, so a known certificate's handshake needs
//! no database round trip.
//!
//! Every change the feed applies bumps an epoch. A miss records the epoch before reading the
//! database and caches what it read only if no change arrived meanwhile, so a row read before
//! a concurrent change can never overwrite the change's newer state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use certplane_core::ca_certificates::{CaCertificate, CaStatus};
use certplane_core::certificates::{
    additional_key, certificate_id_of_key, Certificate, CertificateStatus,
};
use certplane_core::clock::Millis;
use certplane_core::device_certificates::Refusal;
use certplane_core::mqtt_instances::MqttInstance;
use certplane_core::store::Document;
use certplane_core::{CertificateId, Scope};

/// How long a refusal of an unregistered certificate (unknown CA, expired before it was ever
/// registered…) is remembered: a device retrying in a loop costs one database read per this
/// period. Any CA change forgets them all at once.
pub const REFUSAL_TTL: Duration = Duration::from_secs(5);
/// How long "no such MQTT instance" is remembered for a server name (instances created by an
/// admin command in another process, on SQLite, are not on this process's feed).
pub const MISSING_INSTANCE_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertEntry {
    pub scope: Scope,
    pub status: CertificateStatus,
    pub ca_id: Option<CertificateId>,
    pub not_before: Millis,
    pub not_after: Millis,
    /// Other scopes may hold registrations of their own (SNI_ONLY, registered without a CA).
    pub shareable: bool,
}

impl CertEntry {
    pub fn of(c: &Certificate) -> Self {
        CertEntry {
            scope: Scope::new(&c.owner, &c.region),
            status: c.status,
            ca_id: c.ca_certificate_id.clone(),
            not_before: c.not_before,
            not_after: c.not_after,
            shareable: c.is_shareable(),
        }
    }
}

/// What the index knows about a device presenting a certificate to a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Admitted; the registry key of its CA (sessions are filed under it).
    Admit {
        ca_key: String,
    },
    Refuse(Refusal),
    /// Not enough cached: ask the registry.
    Unknown,
}

#[derive(Default)]
struct Inner {
    /// By certificate document key: the id for a certificate's first registration,
    /// `<id>/<account>/<region>` for another scope's registration of a shared certificate.
    certs: HashMap<String, CertEntry>,
    /// By CA registry key (`account:region:id`).
    cas: HashMap<String, CaStatus>,
    /// (certificate id, tenant scope) → why and when it was refused.
    refusals: HashMap<(String, Scope), (Refusal, Instant)>,
    instances: HashMap<String, MqttInstance>,
    missing_instances: HashMap<String, Instant>,
}

#[derive(Default)]
pub struct Index {
    inner: RwLock<Inner>,
    epoch: AtomicU64,
    /// The store's generation (see [`feed_generation`]) the feed follower last caught up
    /// with: every change counted up to it is applied here.
    applied: AtomicU64,
}

/// One number that moves with every change of a kind the index mirrors; `None` when the store
/// cannot tell (then the index is trusted as the feed keeps it, as before generations).
pub fn feed_generation(store: &dyn certplane_core::store::Store) -> Option<u64> {
    use certplane_core::store::{generation_of, Kind};
    generation_of(
        store,
        &[Kind::Certificate, Kind::CaCertificate, Kind::MqttInstance],
    )
}

/// The CA registry key of a certificate's CA in a scope.
pub fn ca_key(scope: &Scope, ca_id: &CertificateId) -> String {
    CaCertificate::key_for(scope, ca_id)
}

impl Index {
    /// Whether every change the store has counted (`generation`, read now) is applied here. A
    /// change committed a moment ago — by this node, before its caller was answered — may
    /// still be on its way through the feed; until it is applied, handshakes ask the registry,
    /// so a device registered or activated just now is let in and one deactivated just now
    /// is not.
    pub fn is_current(&self, generation: Option<u64>) -> bool {
        generation.is_none_or(|g| g == self.applied.load(Ordering::SeqCst))
    }

    /// The follower applied every change counted up to `generation`.
    pub fn caught_up(&self, generation: Option<u64>) {
        if let Some(g) = generation {
            self.applied.store(g, Ordering::SeqCst);
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-made entry (each write is one map
        // operation), so a poisoned lock is still consistent.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The decision for certificate `cert_id` presented to `scope` at `now`, from memory only.
    pub fn lookup(&self, scope: &Scope, cert_id: &str, now: Millis) -> Lookup {
        let inner = self.read();
        let own = inner.certs.get(&additional_key(cert_id, scope));
        let Some(c) = own.or_else(|| inner.certs.get(cert_id)) else {
            return match inner.refusals.get(&(cert_id.to_string(), scope.clone())) {
                Some((r, at)) if at.elapsed() < REFUSAL_TTL => Lookup::Refuse(r.clone()),
                _ => Lookup::Unknown,
            };
        };
        if now < c.not_before {
            return Lookup::Refuse(Refusal::NotYetValid);
        }
        if now > c.not_after {
            return Lookup::Refuse(Refusal::Expired);
        }
        if c.scope != *scope {
            // A shared certificate's first registration is elsewhere; this scope may hold one
            // of its own that is not cached: ask the registry.
            if c.shareable {
                return Lookup::Unknown;
            }
            return Lookup::Refuse(Refusal::RegisteredElsewhere);
        }
        if c.status != CertificateStatus::Active {
            return Lookup::Refuse(Refusal::NotActive(c.status));
        }
        // Registered without a CA: only the registry can tell whether a CA of the tenant
        // signed it (rare; such devices are decided by the database each time).
        let Some(ca_id) = &c.ca_id else {
            return Lookup::Unknown;
        };
        let key = ca_key(scope, ca_id);
        match inner.cas.get(&key) {
            Some(CaStatus::Active) => Lookup::Admit { ca_key: key },
            Some(CaStatus::Inactive) => Lookup::Refuse(Refusal::CaNotActive),
            None => Lookup::Unknown,
        }
    }

    /// Caches what a miss read from the registry, unless a change arrived since `epoch` (then
    /// the next handshake reads again).
    pub fn fill(
        &self,
        epoch: u64,
        cert_id: &str,
        scope: &Scope,
        cert: Option<&Certificate>,
        ca: Option<&CaCertificate>,
        refusal: Option<&Refusal>,
    ) {
        let mut inner = self.write();
        if self.epoch() != epoch {
            return;
        }
        if let Some(ca) = ca {
            inner.cas.insert(
                CaCertificate::key_for(&Scope::new(&ca.owner, &ca.region), &ca.id),
                ca.status,
            );
        }
        match (cert, refusal) {
            (Some(c), _) => {
                inner.certs.insert(c.key(), CertEntry::of(c));
            }
            (None, Some(r)) => {
                inner
                    .refusals
                    .retain(|_, (_, at)| at.elapsed() < REFUSAL_TTL);
                inner.refusals.insert(
                    (cert_id.to_string(), scope.clone()),
                    (r.clone(), Instant::now()),
                );
            }
            (None, None) => {}
        }
    }

    /// The feed saw the certificate document keyed `key` change; `now` is its state after the
    /// change (`None`: deleted).
    pub fn set_certificate(&self, key: &str, now: Option<&Certificate>) {
        let mut inner = self.write();
        match now {
            Some(c) => inner.certs.insert(key.to_string(), CertEntry::of(c)),
            None => inner.certs.remove(key),
        };
        let cert_id = certificate_id_of_key(key);
        inner.refusals.retain(|(id, _), _| id != cert_id);
        self.bump();
    }

    /// The feed saw the CA with registry key `key` change (`None`: deleted). A new or
    /// reactivated CA may admit certificates refused so far, so every refusal is forgotten.
    pub fn set_ca(&self, key: &str, now: Option<&CaCertificate>) {
        let mut inner = self.write();
        match now {
            Some(ca) => inner.cas.insert(key.to_string(), ca.status),
            None => inner.cas.remove(key),
        };
        inner.refusals.clear();
        self.bump();
    }

    /// The cached instance, `Some(None)` when it is known not to exist, `None` when unknown.
    pub fn instance(&self, id: &str) -> Option<Option<MqttInstance>> {
        let inner = self.read();
        if let Some(i) = inner.instances.get(id) {
            return Some(Some(i.clone()));
        }
        match inner.missing_instances.get(id) {
            Some(at) if at.elapsed() < MISSING_INSTANCE_TTL => Some(None),
            _ => None,
        }
    }

    /// Caches an instance lookup made at `epoch`.
    pub fn fill_instance(&self, epoch: u64, id: &str, found: Option<&MqttInstance>) {
        let mut inner = self.write();
        if self.epoch() != epoch {
            return;
        }
        match found {
            Some(i) => {
                inner.instances.insert(id.to_string(), i.clone());
            }
            None => {
                inner
                    .missing_instances
                    .retain(|_, at| at.elapsed() < MISSING_INSTANCE_TTL);
                inner
                    .missing_instances
                    .insert(id.to_string(), Instant::now());
            }
        }
    }

    /// The feed saw instance `id` change (`None`: deleted).
    pub fn set_instance(&self, id: &str, now: Option<&MqttInstance>) {
        let mut inner = self.write();
        inner.missing_instances.remove(id);
        match now {
            Some(i) => inner.instances.insert(id.to_string(), i.clone()),
            None => inner.instances.remove(id),
        };
        self.bump();
    }

    /// Events may have been lost: forget everything (the next handshakes read again).
    pub fn flush(&self) {
        let mut inner = self.write();
        *inner = Inner::default();
        self.bump();
    }

    /// How many device certificates are cached (for tests and logs).
    pub fn cached_certificates(&self) -> usize {
        self.read().certs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certplane_core::certificates::{CertificateMode, Origin, TransferData};

    fn id(c: char) -> CertificateId {
        CertificateId::parse(&c.to_string().repeat(64)).expect("id")
    }

    fn cert(scope: &Scope, status: CertificateStatus, ca: Option<CertificateId>) -> Certificate {
        Certificate {
            id: id('d'),
            owner: scope.account.clone(),
            region: scope.region.clone(),
            status,
            pem: String::new(),
            ca_certificate_id: ca,
            mode: CertificateMode::Default,
            previous_owner: None,
            created_at: 0,
            last_modified: 0,
            customer_version: 1,
            generation_id: String::new(),
            not_before: 1_000,
            not_after: 2_000,
            transfer: TransferData::default(),
            pending_transfer_to: None,
            origin: Origin::Registered,
            revocation_cause: None,
            additional: false,
            other_registrations: Vec::new(),
        }
    }

    fn ca(scope: &Scope, status: CaStatus) -> CaCertificate {
        CaCertificate {
            id: id('c'),
            owner: scope.account.clone(),
            region: scope.region.clone(),
            status,
            pem: String::new(),
            mode: CertificateMode::Default,
            auto_registration: false,
            registration_config: None,
            created_at: 0,
            last_modified: 0,
            customer_version: 1,
            generation_id: String::new(),
            not_before: 0,
            not_after: 10_000,
            subject_hash: String::new(),
            tags: Vec::new(),
            name: None,
            verification_pem: None,
            registration_code: None,
        }
    }

    #[test]
    fn known_certificates_are_decided_from_memory() {
        let ix = Index::default();
        let scope = Scope::new("1234567890123456", "mqtt:post-cn-a");
        let dev = id('d');
        assert_eq!(ix.lookup(&scope, dev.as_str(), 1_500), Lookup::Unknown);
        let e = ix.epoch();
        let active = cert(&scope, CertificateStatus::Active, Some(id('c')));
        ix.fill(
            e,
            dev.as_str(),
            &scope,
            Some(&active),
            Some(&ca(&scope, CaStatus::Active)),
            None,
        );
        let key = ca_key(&scope, &id('c'));
        assert_eq!(
            ix.lookup(&scope, dev.as_str(), 1_500),
            Lookup::Admit {
                ca_key: key.clone()
            }
        );
        // Validity on the server clock, the tenant, then the statuses.
        assert_eq!(
            ix.lookup(&scope, dev.as_str(), 999),
            Lookup::Refuse(Refusal::NotYetValid)
        );
        assert_eq!(
            ix.lookup(&scope, dev.as_str(), 2_001),
            Lookup::Refuse(Refusal::Expired)
        );
        assert_eq!(
            ix.lookup(&Scope::new("x", "y"), dev.as_str(), 1_500),
            Lookup::Refuse(Refusal::RegisteredElsewhere)
        );
        ix.set_ca(&key, Some(&ca(&scope, CaStatus::Inactive)));
        assert_eq!(
            ix.lookup(&scope, dev.as_str(), 1_500),
            Lookup::Refuse(Refusal::CaNotActive)
        );
        ix.set_ca(&key, Some(&ca(&scope, CaStatus::Active)));
        ix.set_certificate(
            dev.as_str(),
            Some(&cert(&scope, CertificateStatus::Inactive, Some(id('c')))),
        );
        assert_eq!(
            ix.lookup(&scope, dev.as_str(), 1_500),
            Lookup::Refuse(Refusal::NotActive(CertificateStatus::Inactive))
        );
        ix.set_certificate(dev.as_str(), None);
        assert_eq!(ix.lookup(&scope, dev.as_str(), 1_500), Lookup::Unknown);
        // A CA the index has not seen, or no CA at all: ask the registry.
        ix.set_certificate(dev.as_str(), Some(&active));
        ix.set_ca(&key, None);
        assert_eq!(ix.lookup(&scope, dev.as_str(), 1_500), Lookup::Unknown);
        ix.set_certificate(
            dev.as_str(),
            Some(&cert(&scope, CertificateStatus::Active, None)),
        );
        assert_eq!(ix.lookup(&scope, dev.as_str(), 1_500), Lookup::Unknown);
    }

    #[test]
    fn a_miss_read_before_a_change_is_not_cached() {
        let ix = Index::default();
        let scope = Scope::new("1", "r");
        let dev = id('d');
        let before = ix.epoch();
        // The change lands (and is applied) while the miss was reading the older row.
        ix.set_certificate(
            dev.as_str(),
            Some(&cert(&scope, CertificateStatus::Inactive, Some(id('c')))),
        );
        ix.fill(
            before,
            dev.as_str(),
            &scope,
            Some(&cert(&scope, CertificateStatus::Active, Some(id('c')))),
            Some(&ca(&scope, CaStatus::Active)),
            None,
        );
        assert_eq!(
            ix.lookup(&scope, dev.as_str(), 1_500),
            Lookup::Refuse(Refusal::NotActive(CertificateStatus::Inactive))
        );
    }

    #[test]
    fn refusals_of_unregistered_certificates_are_forgotten_on_ca_changes() {
        let ix = Index::default();
        let scope = Scope::new("1", "r");
        let dev = id('d');
        ix.fill(
            ix.epoch(),
            dev.as_str(),
            &scope,
            None,
            None,
            Some(&Refusal::UnknownCa),
        );
        assert_eq!(
            ix.lookup(&scope, dev.as_str(), 1_500),
            Lookup::Refuse(Refusal::UnknownCa)
        );
        assert_eq!(
            ix.lookup(&Scope::new("2", "r"), dev.as_str(), 1_500),
            Lookup::Unknown
        );
        ix.set_ca("1:r:new", Some(&ca(&scope, CaStatus::Active)));
        assert_eq!(ix.lookup(&scope, dev.as_str(), 1_500), Lookup::Unknown);
    }

    #[test]
    fn a_shared_certificate_is_decided_by_the_registration_of_the_tenant() {
        let ix = Index::default();
        let a = Scope::new("111111111111", "us-east-1");
        let b = Scope::new("222222222222", "us-east-1");
        let dev = id('d');
        let mut first = cert(&a, CertificateStatus::Active, None);
        first.mode = CertificateMode::SniOnly;
        first.other_registrations = vec![b.clone()];
        let mut theirs = cert(&b, CertificateStatus::Inactive, None);
        theirs.mode = CertificateMode::SniOnly;
        theirs.additional = true;
        // Only the first registration cached: B may hold one of its own, so ask the registry
        // rather than refuse it as registered elsewhere.
        ix.set_certificate(dev.as_str(), Some(&first));
        assert_eq!(ix.lookup(&b, dev.as_str(), 1_500), Lookup::Unknown);
        // B's registration cached under its own key decides B's devices.
        ix.set_certificate(&theirs.key(), Some(&theirs));
        assert_eq!(
            ix.lookup(&b, dev.as_str(), 1_500),
            Lookup::Refuse(Refusal::NotActive(CertificateStatus::Inactive))
        );
        // A's is ACTIVE without a CA: the registry decides (as for any CA-less certificate).
        assert_eq!(ix.lookup(&a, dev.as_str(), 1_500), Lookup::Unknown);
        ix.set_certificate(&theirs.key(), None);
        assert_eq!(ix.lookup(&b, dev.as_str(), 1_500), Lookup::Unknown);
        // A DEFAULT-mode certificate elsewhere is refused from memory, as before.
        ix.set_certificate(
            dev.as_str(),
            Some(&cert(&a, CertificateStatus::Active, Some(id('c')))),
        );
        assert_eq!(
            ix.lookup(&b, dev.as_str(), 1_500),
            Lookup::Refuse(Refusal::RegisteredElsewhere)
        );
    }

    #[test]
    fn a_flush_forgets_everything() {
        let ix = Index::default();
        let scope = Scope::new("1", "r");
        let e = ix.epoch();
        ix.fill(
            e,
            id('d').as_str(),
            &scope,
            Some(&cert(&scope, CertificateStatus::Active, Some(id('c')))),
            Some(&ca(&scope, CaStatus::Active)),
            None,
        );
        ix.fill_instance(ix.epoch(), "post-cn-gone", None);
        assert_eq!(ix.instance("post-cn-gone"), Some(None));
        ix.flush();
        assert!(ix.epoch() > e);
        assert_eq!(ix.cached_certificates(), 0);
        assert_eq!(ix.instance("post-cn-gone"), None);
    }
}
