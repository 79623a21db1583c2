//! What an engine knows of committed changes: the broadcast feed subscribers read, the
//! per-kind generation counters caches check, and whether this process sees every change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::broadcast;

use certplane_core::store::{Change, Generations, Kind, CHANGE_FEED_CAPACITY};

/// Own changes awaiting their NOTIFY echo, kept at most.
const MAX_ECHOES: usize = 65_536;
/// Documents whose last change is remembered (for [`Feed::unchanged_since`]), at most; past it
/// the memory starts over and everything cached before counts as changed.
const MAX_RECENT: usize = 65_536;

/// When each recently changed document last changed, as the generation of its kind that
/// counted the change: a cache entry read at generation `g` is current unless its document's
/// last change counts past `g`. What is forgotten (on overflow, or when changes were missed)
/// raises the kind's floor: entries read before it are no longer known to be current.
struct Recent {
    last: [HashMap<String, u64>; Kind::ALL.len()],
    floor: [u64; Kind::ALL.len()],
}

impl Recent {
    fn forget_all(&mut self, generations: &Generations) {
        for (i, kind) in Kind::ALL.iter().enumerate() {
            self.last[i].clear();
            self.floor[i] = generations.get(*kind);
        }
    }
}

pub(crate) struct Feed {
    sender: broadcast::Sender<Change>,
    generations: Generations,
    /// PostgreSQL: changes this node announced itself at commit whose NOTIFY has not come back
    /// yet (see [`Feed::expect_echoes`]).
    echoes: Mutex<HashMap<Change, u32>>,
    /// Taken with every change counted, and by a cache check only once its kind's generation
    /// has moved.
    recent: Mutex<Recent>,
    /// SQLite: this process is the data dir's feed hub; PostgreSQL: the LISTEN connection is
    /// up. Until then (and while it is down) [`Feed::generation`] is `None`.
    complete: AtomicBool,
}

impl Feed {
    pub(crate) fn new() -> Feed {
        Feed {
            sender: broadcast::channel(CHANGE_FEED_CAPACITY).0,
            generations: Generations::default(),
            echoes: Mutex::default(),
            recent: Mutex::new(Recent {
                last: std::array::from_fn(|_| HashMap::new()),
                floor: [0; Kind::ALL.len()],
            }),
            complete: AtomicBool::new(false),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// A committed change: announced, then counted. Whoever reads a generation that counts a
    /// change finds its event already on the feed (a follower that drains the feed after
    /// reading the generation has applied everything it counts), and a cache that checks its
    /// generation once this returns no longer serves what the change replaced.
    pub(crate) fn publish(&self, change: Change) {
        // `send` fails only when nobody subscribes: nothing to tell then.
        let _ = self.sender.send(change.clone());
        self.count(&change);
    }

    /// Moves the generation and remembers which document moved it, in one step under the
    /// `recent` lock: a check that saw the new generation finds the document remembered.
    fn count(&self, change: &Change) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        match change {
            Change::Changed { kind, key } => {
                let generation = self.generations.bump_kind(*kind);
                let last = &mut recent.last[*kind as usize];
                if last.len() >= MAX_RECENT {
                    recent.forget_all(&self.generations);
                }
                recent.last[*kind as usize].insert(key.clone(), generation);
            }
            Change::Missed => {
                self.generations.bump_all();
                recent.forget_all(&self.generations);
            }
        }
    }

    /// Whether no change to document `key` of `kind` has been counted since its kind's
    /// generation was `since` — false whenever that is not known (this process does not see
    /// every change, or the change was forgotten).
    pub(crate) fn unchanged_since(&self, kind: Kind, key: &str, since: u64) -> bool {
        if !self.is_complete() {
            return false;
        }
        if self.generations.get(kind) == since {
            return true;
        }
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        since >= recent.floor[kind as usize]
            && recent.last[kind as usize]
                .get(key)
                .is_none_or(|changed| *changed <= since)
    }

    /// Changes this node is about to commit: their NOTIFY, which every node (this one too)
    /// receives — possibly before the COMMIT's own answer arrives here — is not announced
    /// again on this node, which announces them itself once committed ([`Feed::publish`]).
    pub(crate) fn expect_echoes(&self, changes: &[Change]) {
        if let Ok(mut echoes) = self.echoes.lock() {
            if echoes.len() >= MAX_ECHOES {
                // Notifications lost with a LISTEN connection never come back; past this many
                // the rest are announced twice, which only costs a re-read.
                echoes.clear();
            }
            for c in changes {
                *echoes.entry(c.clone()).or_insert(0) += 1;
            }
        }
    }

    /// The changes of [`Feed::expect_echoes`] did not commit (or may not have). One whose
    /// expected echo was already taken — by another node's change of the same document,
    /// mistaken for it — is announced now, so that change is not missed.
    pub(crate) fn forget_echoes(&self, changes: &[Change]) {
        let mut taken = Vec::new();
        if let Ok(mut echoes) = self.echoes.lock() {
            for c in changes {
                match echoes.get_mut(c) {
                    Some(n) if *n > 1 => *n -= 1,
                    Some(_) => {
                        echoes.remove(c);
                    }
                    None => taken.push(c.clone()),
                }
            }
        }
        for c in taken {
            self.publish(c);
        }
    }

    /// A change heard from the database: announced unless it is the echo of one this node
    /// announced itself. (Taking another node's change of the same document for the echo is
    /// harmless: the echo still to come is then announced, after it, and subscribers read the
    /// document when it arrives.)
    pub(crate) fn publish_heard(&self, change: Change) {
        if let Change::Missed = change {
            if let Ok(mut echoes) = self.echoes.lock() {
                echoes.clear();
            }
            self.publish(change);
            return;
        }
        if let Ok(mut echoes) = self.echoes.lock() {
            if let Some(n) = echoes.get_mut(&change) {
                *n -= 1;
                if *n == 0 {
                    echoes.remove(&change);
                }
                return;
            }
        }
        self.publish(change);
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    pub(crate) fn generation(&self, kind: Kind) -> Option<u64> {
        self.complete
            .load(Ordering::Acquire)
            .then(|| self.generations.get(kind))
    }

    /// From now on every change is seen (or, with `false`, no longer is). Becoming complete
    /// moves every counter first, so nothing cached before counts as current.
    pub(crate) fn set_complete(&self, complete: bool) {
        if complete {
            self.count(&Change::Missed);
        }
        self.complete.store(complete, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(key: &str) -> Change {
        Change::Changed {
            kind: Kind::Certificate,
            key: key.into(),
        }
    }

    #[test]
    fn unchanged_since_names_only_the_documents_that_changed() {
        let feed = Feed::new();
        let g = feed.generations.get(Kind::Certificate);
        // Until the feed sees every change nothing is known to be unchanged.
        assert!(!feed.unchanged_since(Kind::Certificate, "a", g));
        feed.set_complete(true);
        let g0 = feed.generation(Kind::Certificate).unwrap_or_default();
        assert!(feed.unchanged_since(Kind::Certificate, "a", g0));
        feed.publish(changed("a"));
        assert!(!feed.unchanged_since(Kind::Certificate, "a", g0));
        assert!(feed.unchanged_since(Kind::Certificate, "b", g0));
        // Read again after the change: current from then on.
        let g1 = feed.generation(Kind::Certificate).unwrap_or_default();
        assert!(feed.unchanged_since(Kind::Certificate, "a", g1));
        // Another kind's change moves nothing here.
        feed.publish(Change::Changed {
            kind: Kind::User,
            key: "a".into(),
        });
        assert!(feed.unchanged_since(Kind::Certificate, "a", g1));
        // Missed changes: nothing read before is known to be current.
        feed.publish(Change::Missed);
        assert!(!feed.unchanged_since(Kind::Certificate, "b", g1));
        let g2 = feed.generation(Kind::Certificate).unwrap_or_default();
        assert!(feed.unchanged_since(Kind::Certificate, "b", g2));
        feed.set_complete(false);
        assert!(!feed.unchanged_since(Kind::Certificate, "b", g2));
    }

    #[test]
    fn forgetting_past_the_bound_raises_the_floor() {
        let feed = Feed::new();
        feed.set_complete(true);
        let g0 = feed.generation(Kind::Certificate).unwrap_or_default();
        for i in 0..MAX_RECENT {
            feed.publish(changed(&format!("k{i}")));
        }
        assert!(feed.unchanged_since(Kind::Certificate, "untouched", g0));
        // One more: the memory starts over and what was read before counts as changed.
        feed.publish(changed("one-more"));
        assert!(!feed.unchanged_since(Kind::Certificate, "untouched", g0));
        let g1 = feed.generation(Kind::Certificate).unwrap_or_default();
        assert!(feed.unchanged_since(Kind::Certificate, "untouched", g1));
        assert!(!feed.unchanged_since(Kind::Certificate, "one-more", g1 - 1));
    }
}
