//! What the CRL and the OCSP responder read on every answer, kept in memory per node: for each
//! held CA, the certificates it signed (serial → registry id and revocation state, plus the
//! pre-signed OCSP answer), its CRL entries already encoded, in serial order, and its recent
//! changes in time order for the delta CRL ([`Changes`]). A change moves one certificate
//! (O(log n)); a CRL rebuild only concatenates the encoded entries, and a delta CRL reads only
//! the changes since its base.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use certplane_core::certificates::Certificate;
use certplane_core::clock::Millis;
use certplane_core::held_cas::CaSet;
use certplane_core::revocation::{revocation_state, signed_by_held_ca, RevocationState};
use certplane_pki::{serial_from_hex, CertId, CertStatus, RevocationReason, RevokedEntry};

use crate::revocation_changes::Changes;

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
    /// The time its entry in [`Signed::changes`] is kept under, when it has one.
    changed_at: Option<Millis>,
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
    changes: Changes,
}

impl Signed {
    /// Revision 0 is the empty entry set (what a CA with no certificates has too); every
    /// change takes a new revision. Changes before `changes_from` are not kept.
    fn new(changes_from: Millis) -> Self {
        Signed {
            certs: HashMap::new(),
            crl: BTreeMap::new(),
            crl_bytes: 0,
            revision: 0,
            changes: Changes::new(changes_from),
        }
    }

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
    /// Where a CA first seen keeps its changes from: all (`Millis::MIN`) with delta CRLs,
    /// none (`Millis::MAX`) without.
    changes_from: Millis,
    by_ca: HashMap<String, Signed>,
    /// registry id → (CA id, serial): parsed once per certificate.
    placed: HashMap<String, (String, Vec<u8>)>,
}

impl Index {
    /// `deltas`: keep the changes delta CRLs list.
    pub fn new(list_holds: bool, deltas: bool) -> Self {
        Index {
            list_holds,
            changes_from: if deltas { Millis::MIN } else { Millis::MAX },
            by_ca: HashMap::new(),
            placed: HashMap::new(),
        }
    }

    /// A new index to fill from a full read, reusing what `self` parsed (serials and issuers
    /// never change) and keeping no older changes than `self` does.
    pub fn fresh(&self) -> Self {
        let by_ca = self
            .by_ca
            .iter()
            .map(|(ca, s)| (ca.clone(), Signed::new(s.changes.kept_since())))
            .collect();
        Index {
            list_holds: self.list_holds,
            changes_from: self.changes_from,
            by_ca,
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
        // A certificate changed since it was made may have been on hold before (only a status
        // change or a transfer touches it): when good again, a delta CRL takes it off.
        let modified = (c.last_modified > c.created_at).then_some(c.last_modified);
        self.put_placed(key, ca_id, serial, revocation_state(c), modified);
    }

    /// Records the state of the certificate `key` that CA `ca_id` signed with `serial`;
    /// `modified`: when it was last changed, if ever since it was made.
    pub fn put_placed(
        &mut self,
        key: String,
        ca_id: String,
        serial: Vec<u8>,
        state: RevocationState,
        modified: Option<Millis>,
    ) {
        let revocation = state.as_revocation(self.list_holds);
        let entry = revocation.and_then(|(at, reason)| encode(&serial, at, reason));
        // What a delta CRL says of it, and since when: its CRL entry from the time it was
        // revoked or held; removeFromCRL from the time it became good again (RFC 5280 §5.3.1).
        // With holds off the CRL, no certificate ever comes off one.
        let change = match (revocation, &entry) {
            (Some((at, _)), Some(der)) => Some((at, der.clone())),
            (None, _) if self.list_holds && state == RevocationState::Good => {
                modified.and_then(|at| {
                    encode(&serial, at, Some(RevocationReason::RemoveFromCrl)).map(|d| (at, d))
                })
            }
            _ => None,
        };
        let changes_from = self.changes_from;
        let signed = self
            .by_ca
            .entry(ca_id)
            .or_insert_with(|| Signed::new(changes_from));
        signed.set_crl_entry(&serial, entry);
        if let Some(at) = signed.certs.get(&serial).and_then(|e| e.changed_at) {
            signed.changes.remove(at, &serial);
        }
        let changed_at = change.map(|(at, der)| {
            signed.changes.insert(at, &serial, der);
            at
        });
        signed.certs.insert(
            serial,
            Indexed {
                key,
                state,
                changed_at,
                presigned: Vec::new(),
            },
        );
    }

    /// A certificate deleted from the registry leaves the complete CRL and the delta CRL both
    /// (no removeFromCRL: deleting is not a status change; see COMPATIBILITY.md).
    pub fn remove(&mut self, key: &str) {
        if let Some((ca, serial)) = self.placed.remove(key) {
            if let Some(m) = self.by_ca.get_mut(&ca) {
                if let Some(at) = m.certs.remove(&serial).and_then(|e| e.changed_at) {
                    m.changes.remove(at, &serial);
                }
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

    /// One CA's delta CRL entries: the certificates whose status changed at or after `since`,
    /// DER, concatenated in serial order.
    pub fn delta_entries(&self, ca_id: &str, since: Millis) -> Vec<u8> {
        self.by_ca
            .get(ca_id)
            .map_or_else(Vec::new, |s| s.changes.entries_since(since))
    }

    /// Forgets one CA's changes before `since` (no delta this node signs reads them any
    /// more). False when older changes were already forgotten: the index must be read again
    /// to list them.
    pub fn forget_changes_before(&mut self, ca_id: &str, since: Millis) -> bool {
        let changes_from = self.changes_from;
        self.by_ca
            .entry(ca_id.to_string())
            .or_insert_with(|| Signed::new(changes_from))
            .changes
            .forget_before(since)
    }

    /// Keeps every change of one CA from now on (before a full read that must list changes
    /// older than those kept).
    pub fn keep_all_changes(&mut self, ca_id: &str) {
        if let Some(s) = self.by_ca.get_mut(ca_id) {
            s.changes = Changes::new(Millis::MIN);
        }
    }
}

/// A revokedCertificates entry, DER.
fn encode(serial: &[u8], at: Millis, reason: Option<RevocationReason>) -> Option<Box<[u8]>> {
    let mut der = Vec::with_capacity(48);
    RevokedEntry {
        serial: serial.to_vec(),
        revoked_at: at,
        reason,
    }
    .encode_der(&mut der)
    .ok()
    .map(|()| der.into_boxed_slice())
}

/// What the responder says about a certificate in this state.
pub fn cert_status(state: RevocationState, list_holds: bool) -> CertStatus {
    match state.as_revocation(list_holds) {
        None => CertStatus::Good,
        Some((at, reason)) => CertStatus::Revoked { at, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "ca";

    fn revoked(at: Millis) -> RevocationState {
        RevocationState::Revoked { at, reason: None }
    }

    /// As [`Index::put`] does once the certificate is parsed.
    fn put(idx: &mut Index, serial: u8, state: RevocationState, modified: Option<Millis>) {
        let key = format!("k{serial}");
        idx.placed
            .insert(key.clone(), (CA.to_string(), vec![serial]));
        idx.put_placed(key, CA.into(), vec![serial], state, modified);
    }

    fn entry(serial: u8, at: Millis, reason: Option<RevocationReason>) -> Vec<u8> {
        encode(&[serial], at, reason).map_or_else(Vec::new, Vec::from)
    }

    #[test]
    fn delta_lists_the_current_state_of_what_changed_since_the_base() {
        let mut idx = Index::new(true, true);
        // Before the base (changes from 200 on): in the complete CRL only.
        put(&mut idx, 1, revoked(100), Some(100));
        put(&mut idx, 5, RevocationState::Good, None);
        // Revoked after the base.
        put(&mut idx, 2, revoked(300), Some(300));
        // Held, then taken off hold: removeFromCRL.
        put(&mut idx, 3, RevocationState::Hold { since: 250 }, Some(250));
        put(&mut idx, 3, RevocationState::Good, Some(400));
        // Held, then revoked: revoked.
        put(&mut idx, 4, RevocationState::Hold { since: 300 }, Some(300));
        put(&mut idx, 4, revoked(350), Some(350));
        assert!(idx.forget_changes_before(CA, 200));
        let want = [
            entry(2, 300, None),
            entry(3, 400, Some(RevocationReason::RemoveFromCrl)),
            entry(4, 350, None),
        ]
        .concat();
        assert_eq!(idx.delta_entries(CA, 200), want);
        // The complete CRL: 1, 2 and 4.
        let (full, _) = idx.crl_entries(CA);
        assert_eq!(
            full,
            [
                entry(1, 100, None),
                entry(2, 300, None),
                entry(4, 350, None)
            ]
            .concat()
        );
        // A deleted certificate leaves both.
        idx.remove("k2");
        assert_eq!(
            idx.delta_entries(CA, 200),
            [
                entry(3, 400, Some(RevocationReason::RemoveFromCrl)),
                entry(4, 350, None)
            ]
            .concat()
        );
        // A base earlier than what was forgotten asks for a new read.
        assert!(!idx.forget_changes_before(CA, 100));
        // A rescan keeps forgetting what is forgotten.
        let fresh = idx.fresh();
        assert_eq!(
            fresh.by_ca.get(CA).map(|s| s.changes.kept_since()),
            Some(200)
        );
    }

    #[test]
    fn without_holds_or_deltas_nothing_comes_off_hold() {
        let mut idx = Index::new(false, true);
        put(&mut idx, 3, RevocationState::Hold { since: 250 }, Some(250));
        put(&mut idx, 3, RevocationState::Good, Some(400));
        assert!(idx.delta_entries(CA, 0).is_empty());
        let mut off = Index::new(true, false);
        put(&mut off, 2, revoked(300), Some(300));
        assert!(off.delta_entries(CA, 0).is_empty());
        assert_eq!(off.by_ca.get(CA).map(|s| s.changes.len()), Some(0));
    }

    /// The delta of a CA with a million entries and 1,000 changes since its base, built from
    /// the index and signed. `bash bench/crl.sh` runs it:
    /// `cargo test --release -p certplane delta_of_a_million -- --ignored --nocapture`.
    #[test]
    #[ignore = "a benchmark: a million entries"]
    fn delta_of_a_million() -> Result<(), certplane_pki::PkiError> {
        let n: u64 = std::env::var("BENCH_DELTA_ENTRIES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let changes = 1_000u64;
        let base: Millis = 1_790_000_000_000;
        let ca = certplane_pki::IssuingCa::generate("delta bench CA", base - 86_400_000)?;
        let mut idx = Index::new(true, true);
        idx.forget_changes_before(CA, base);
        let serial = |i: u64| {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &i.to_be_bytes());
            let mut s = d.as_ref()[..16].to_vec();
            s[0] = (s[0] & 0x7f) | 0x01;
            s
        };
        for i in 0..n {
            let at = base - 1_000 - Millis::try_from(i).unwrap_or(0);
            let state = if i % 3 == 0 {
                RevocationState::Hold { since: at }
            } else {
                revoked(at)
            };
            idx.put_placed(format!("k{i}"), CA.into(), serial(i), state, Some(at));
        }
        // After the base: new revocations, and holds taken off.
        for i in 0..changes {
            let at = base + 1_000 + Millis::try_from(i).unwrap_or(0);
            let (s, state) = if i % 2 == 0 {
                (n + i, revoked(at))
            } else {
                (i * 3, RevocationState::Good)
            };
            idx.put_placed(format!("k{s}"), CA.into(), serial(s), state, Some(at));
        }
        // Five builds (list the changes since the base, sign, PEM); the median is reported.
        let links = certplane_pki::CrlLinks {
            freshest_crl: None,
            delta_base: Some(1),
        };
        let mut times = Vec::with_capacity(5);
        let mut delta = None;
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let der = idx.delta_entries(CA, base);
            delta =
                Some(ca.sign_crl_der_linked(2, base + 60_000, base + 3_660_000, links, &der)?);
            times.push(t.elapsed());
        }
        times.sort();
        let elapsed = times[times.len() / 2];
        let delta = delta.ok_or(certplane_pki::PkiError::Signing("no delta".into()))?;
        let listed = x509_parser::parse_x509_crl(&delta.der)
            .map(|(_, c)| c.iter_revoked_certificates().count())
            .unwrap_or(0);
        println!(
            "{{\"entries\": {n}, \"changes_since_base\": {changes}, \"delta_build_ms\": {:.3}, \"delta_der_bytes\": {}, \"listed\": {listed}}}",
            elapsed.as_secs_f64() * 1000.0,
            delta.der.len()
        );
        assert_eq!(listed as u64, changes);
        Ok(())
    }
}
