//! What the CRL and the OCSP responder read on every answer, kept in memory per node: for each
//! held CA, the certificates it signed (serial → registry id and revocation state, plus the
//! pre-signed OCSP answer) and its CRL entries already encoded, in serial order. A change moves
//! one certificate (O(log n)); a CRL rebuild only concatenates the encoded entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use certplane_core::certificates::Certificate;
use certplane_core::clock::Millis;
use certplane_core::held_cas::CaSet;
use certplane_core::revocation::{revocation_state, signed_by_held_ca, RevocationState};
use certplane_pki::{serial_from_hex, CertId, CertStatus, RevokedEntry};

/// Revisions of CRL entry sets, unique across index instances (a rescan builds a new index):
/// equal revision, equal entries. 0 is the empty set.
static NEXT_REVISION: AtomicU64 = AtomicU64::new(1);

fn next_revision() -> u64 {
    NEXT_REVISION.fetch_add(1, Ordering::Relaxed)
}

/// CertID forms kept per certificate: SHA-1 and SHA-256 CertIDs, with and without a leading
/// zero in the serial, are the forms real clients send.
const PRESIGNED_FORMS: usize = 4;

#[derive(Clone)]
struct Indexed {
    key: String,
    state: RevocationState,
    /// The last signed single-certificate answers without a nonce (one per CertID form the
    /// clients use, at most [`PRESIGNED_FORMS`]), served again while fresh. Replacing the
    /// entry on a change (every `put`) drops them, so a status change shows as soon as the
    /// change feed brings it. Empty (no allocation) for most certificates.
    presigned: Vec<Arc<Presigned>>,
}

/// A signed OCSP response for one CertID, as the client asked for it (its hash algorithm).
pub struct Presigned {
    pub cert_id_der: Vec<u8>,
    pub this_update: Millis,
    pub body: bytes::Bytes,
}

/// One CA's certificates and CRL entries.
struct Signed {
    certs: HashMap<Vec<u8>, Indexed>,
    /// serial → the revokedCertificates entry, DER ([`RevokedEntry::encode_der`]).
    crl: BTreeMap<Box<[u8]>, Box<[u8]>>,
    crl_bytes: usize,
    revision: u64,
}

impl Default for Signed {
    /// Revision 0 is the empty entry set (what a CA with no certificates has too); every
    /// change takes a new revision.
    fn default() -> Self {
        Signed {
            certs: HashMap::new(),
            crl: BTreeMap::new(),
            crl_bytes: 0,
            revision: 0,
        }
    }
}

impl Signed {
    fn set_crl_entry(&mut self, serial: &[u8], entry: Option<Box<[u8]>>) {
        let old = match entry {
            Some(der) => {
                if self.crl.get(serial) == Some(&der) {
                    return;
                }
                self.crl_bytes += der.len();
                self.crl.insert(serial.into(), der)
            }
            None => self.crl.remove(serial),
        };
        if let Some(old) = &old {
            self.crl_bytes -= old.len();
        }
        if old.is_some() || self.crl.contains_key(serial) {
            self.revision = next_revision();
        }
    }
}

/// The certificates each held CA signed.
pub struct Index {
    list_holds: bool,
    by_ca: HashMap<String, Signed>,
    /// registry id → (CA id, serial): parsed once per certificate.
    placed: HashMap<String, (String, Vec<u8>)>,
}

impl Index {
    pub fn new(list_holds: bool) -> Self {
        Index {
            list_holds,
            by_ca: HashMap::new(),
            placed: HashMap::new(),
        }
    }

    /// A new index to fill from a full read, reusing what `self` parsed (serials and issuers
    /// never change).
    pub fn fresh(&self) -> Self {
        Index {
            list_holds: self.list_holds,
            by_ca: HashMap::new(),
            placed: self.placed.clone(),
        }
    }

    /// After a full read into `self` (made by [`Index::fresh`] from `old`): forgets the
    /// parsed placements of certificates that are gone, and keeps the old revision of each
    /// CA whose CRL entries are unchanged, so a rescan signs no needless CRL.
    pub fn settle(&mut self, old: &Index) {
        let by_ca = &self.by_ca;
        self.placed.retain(|k, (ca, s)| {
            by_ca
                .get(ca.as_str())
                .and_then(|m| m.certs.get(s))
                .is_some_and(|e| &e.key == k)
        });
        for (ca, signed) in &mut self.by_ca {
            if let Some(before) = old.by_ca.get(ca) {
                if before.crl == signed.crl {
                    signed.revision = before.revision;
                }
            }
        }
    }

    pub fn put(&mut self, c: &Certificate, cas: &CaSet) {
        let key = c.id.to_string();
        if !signed_by_held_ca(c) {
            self.remove(&key);
            return;
        }
        let (ca_id, serial) = match self.placed.get(&key) {
            Some(p) => p.clone(),
            None => {
                let Ok(parsed) = certplane_pki::parse_certificate_pem(&c.pem) else {
                    return;
                };
                let Some(serial) = serial_from_hex(&parsed.serial_hex) else {
                    return;
                };
                // A certificate of a CA this node has not loaded yet waits for the rescan
                // that follows every change of the held CAs.
                let Some(ca) = cas.signer_of(&parsed) else {
                    return;
                };
                (ca.ca_id().to_string(), serial)
            }
        };
        self.placed
            .insert(key.clone(), (ca_id.clone(), serial.clone()));
        self.put_placed(key, ca_id, serial, revocation_state(c));
    }

    /// Records the state of the certificate `key` that CA `ca_id` signed with `serial`.
    pub fn put_placed(
        &mut self,
        key: String,
        ca_id: String,
        serial: Vec<u8>,
        state: RevocationState,
    ) {
        let entry = state
            .as_revocation(self.list_holds)
            .and_then(|(at, reason)| {
                let mut der = Vec::with_capacity(48);
                RevokedEntry {
                    serial: serial.clone(),
                    revoked_at: at,
                    reason,
                }
                .encode_der(&mut der)
                .ok()
                .map(|()| der.into_boxed_slice())
            });
        let signed = self.by_ca.entry(ca_id).or_default();
        signed.set_crl_entry(&serial, entry);
        signed.certs.insert(
            serial,
            Indexed {
                key,
                state,
                presigned: Vec::new(),
            },
        );
    }

    pub fn remove(&mut self, key: &str) {
        if let Some((ca, serial)) = self.placed.remove(key) {
            if let Some(m) = self.by_ca.get_mut(&ca) {
                m.certs.remove(&serial);
                m.set_crl_entry(&serial, None);
            }
        }
    }

    /// The registry id of the certificate with this serial.
    pub fn lookup(&self, ca_id: &str, serial: &[u8]) -> Option<String> {
        self.by_ca
            .get(ca_id)?
            .certs
            .get(serial)
            .map(|e| e.key.clone())
    }

    /// The pre-signed answer for this CertID, while it is fresh at `now`.
    pub fn presigned(
        &self,
        ca_id: &str,
        id: &CertId,
        now: Millis,
        fresh_ms: Millis,
    ) -> Option<bytes::Bytes> {
        let e = self.by_ca.get(ca_id)?.certs.get(&id.serial)?;
        let p = e.presigned.iter().find(|p| p.cert_id_der == id.der)?;
        (p.this_update <= now && now < p.this_update + fresh_ms).then(|| p.body.clone())
    }

    /// Keeps a signed answer, unless the certificate changed since its status was read: the
    /// index then holds another state than the one signed, and the answer is not kept.
    pub fn keep_presigned(&mut self, ca_id: &str, serial: &[u8], signed: CertStatus, p: Presigned) {
        let list_holds = self.list_holds;
        let Some(e) = self
            .by_ca
            .get_mut(ca_id)
            .and_then(|m| m.certs.get_mut(serial))
        else {
            return;
        };
        if cert_status(e.state, list_holds) != signed {
            return;
        }
        let kept = &mut e.presigned;
        kept.retain(|k| k.cert_id_der != p.cert_id_der);
        if kept.len() >= PRESIGNED_FORMS {
            kept.remove(0);
        }
        kept.push(Arc::new(p));
    }

    /// The revision of one CA's CRL entries: equal revisions, equal entries.
    pub fn crl_revision(&self, ca_id: &str) -> u64 {
        self.by_ca.get(ca_id).map_or(0, |s| s.revision)
    }

    /// One CA's CRL entries, DER, concatenated in serial order, with their revision.
    pub fn crl_entries(&self, ca_id: &str) -> (Vec<u8>, u64) {
        let Some(s) = self.by_ca.get(ca_id) else {
            return (Vec::new(), 0);
        };
        let mut out = Vec::with_capacity(s.crl_bytes);
        for der in s.crl.values() {
            out.extend_from_slice(der);
        }
        (out, s.revision)
    }
}

/// What the responder says about a certificate in this state.
pub fn cert_status(state: RevocationState, list_holds: bool) -> CertStatus {
    match state.as_revocation(list_holds) {
        None => CertStatus::Good,
        Some((at, reason)) => CertStatus::Revoked { at, reason },
    }
}
