//! The CAs whose keys certplane holds: the active one signs every new certificate; all of them
//! (the active one, CAs retired by a rotation, CAs created or imported for later) keep
//! answering CRL and OCSP for what they signed. The set is swapped whole when an operator
//! changes it (`certplane admin ca …`, seen through the store's change feed), so a request
//! always works with one consistent set.

use std::sync::{Arc, RwLock};

use certplane_pki::{IssuingCa, ParsedCertificate};

/// One consistent set of held CAs.
pub struct CaSet {
    active: Arc<IssuingCa>,
    /// Every held CA, the active one included.
    all: Vec<Arc<IssuingCa>>,
}

impl CaSet {
    /// `others` may contain `active` again; it is kept once.
    pub fn new(active: Arc<IssuingCa>, others: Vec<Arc<IssuingCa>>) -> Self {
        let mut all = vec![active.clone()];
        for ca in others {
            if ca.ca_id() != active.ca_id() {
                all.push(ca);
            }
        }
        CaSet { active, all }
    }

    pub fn active(&self) -> &Arc<IssuingCa> {
        &self.active
    }

    /// The active CA first, then the others in the order given.
    pub fn all(&self) -> &[Arc<IssuingCa>] {
        &self.all
    }

    pub fn by_id(&self, ca_id: &str) -> Option<&Arc<IssuingCa>> {
        self.all.iter().find(|c| c.ca_id() == ca_id)
    }

    /// The held CA that signed `cert` (matched by authorityKeyIdentifier, else issuer name):
    /// after a rotation that may be a retired CA, not the active one.
    pub fn signer_of(&self, cert: &ParsedCertificate) -> Option<&Arc<IssuingCa>> {
        self.all
            .iter()
            .find(|ca| ca.signed(cert.authority_key_id.as_deref(), &cert.issuer_der))
    }
}

pub struct HeldCas {
    current: RwLock<Arc<CaSet>>,
}

impl HeldCas {
    pub fn new(set: CaSet) -> Self {
        HeldCas {
            current: RwLock::new(Arc::new(set)),
        }
    }

    /// The set as it is now; later changes do not affect the returned value.
    pub fn snapshot(&self) -> Arc<CaSet> {
        match self.current.read() {
            Ok(s) => s.clone(),
            // A writer panicked mid-swap: the old set is still whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The CA that signs new certificates.
    pub fn active(&self) -> Arc<IssuingCa> {
        self.snapshot().active.clone()
    }

    pub fn replace(&self, set: CaSet) {
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut s) => *s = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }
}
