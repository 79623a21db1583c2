//! What a delta CRL lists, kept per CA beside the complete CRL's entries: the certificates whose
//! revocation status changed recently, ordered by the time of the change, each with the entry
//! a delta CRL carries for it (its current state; removeFromCRL when it came off hold). A delta
//! on a base taken at time T reads the changes from T on, so it costs the number of changes
//! since the base, not the size of the complete CRL.

use std::collections::BTreeMap;
use std::ops::Bound;

use certplane_core::clock::Millis;

/// When a certificate's status changed, and its serial: the order changes are kept in.
type ChangeKey = (Millis, Box<[u8]>);

#[derive(Default)]
pub struct Changes {
    /// (time of the change, serial) → the delta CRL entry, DER.
    by_time: BTreeMap<ChangeKey, Box<[u8]>>,
    /// Changes before this were forgotten ([`Changes::forget_before`]); `Millis::MIN` when
    /// all are kept.
    kept_since: Millis,
}

impl Changes {
    pub fn new(kept_since: Millis) -> Self {
        Changes {
            by_time: BTreeMap::new(),
            kept_since,
        }
    }

    /// Records the change of `serial` at `at` (the caller removes its previous change first).
    /// A change older than what is kept is dropped: no delta asks for it.
    pub fn insert(&mut self, at: Millis, serial: &[u8], entry: Box<[u8]>) {
        if at >= self.kept_since {
            self.by_time.insert((at, serial.into()), entry);
        }
    }

    pub fn remove(&mut self, at: Millis, serial: &[u8]) {
        // Borrowing a tuple key is not possible: build it (only on a change of a certificate
        // that had changed before, so not on the hot path of a first revocation).
        self.by_time.remove(&(at, Box::<[u8]>::from(serial)));
    }

    /// Drops the changes before `since`: the base of every delta this node signs from now on
    /// is later. Returns false when `since` is earlier than what is already forgotten (the
    /// base moved back: the store was restored or the clock moved); the changes in between
    /// are then missing until the index is read again.
    pub fn forget_before(&mut self, since: Millis) -> bool {
        if since < self.kept_since {
            return false;
        }
        // Every rebuild asks again with the same base: nothing to drop.
        if since == self.kept_since {
            return true;
        }
        self.by_time = self.by_time.split_off(&(since, Box::from([])));
        self.kept_since = since;
        true
    }

    pub fn kept_since(&self) -> Millis {
        self.kept_since
    }

    /// The delta CRL entries of the changes at or after `since`, DER, concatenated in serial
    /// order (as the complete CRL lists them).
    pub fn entries_since(&self, since: Millis) -> Vec<u8> {
        let mut listed: Vec<(&[u8], &[u8])> = self
            .by_time
            .range((Bound::Included((since, Box::from([]))), Bound::Unbounded))
            .map(|((_, serial), der)| (&serial[..], &der[..]))
            .collect();
        listed.sort_unstable_by_key(|(serial, _)| *serial);
        let mut out = Vec::with_capacity(listed.iter().map(|(_, d)| d.len()).sum());
        for (_, der) in listed {
            out.extend_from_slice(der);
        }
        out
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_time.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_changes_since_in_serial_order_and_forgets_older() {
        let mut c = Changes::new(Millis::MIN);
        c.insert(100, &[3], Box::from([0xa3]));
        c.insert(200, &[1], Box::from([0xa1]));
        c.insert(300, &[2], Box::from([0xa2]));
        assert_eq!(c.entries_since(0), vec![0xa1, 0xa2, 0xa3]);
        assert_eq!(c.entries_since(200), vec![0xa1, 0xa2]);
        c.remove(200, &[1]);
        assert_eq!(c.entries_since(0), vec![0xa2, 0xa3]);
        assert!(c.forget_before(150));
        assert_eq!(c.len(), 1);
        // Older than what is kept: not recorded.
        c.insert(120, &[4], Box::from([0xa4]));
        assert_eq!(c.entries_since(0), vec![0xa2]);
        assert!(!c.forget_before(100));
    }
}
