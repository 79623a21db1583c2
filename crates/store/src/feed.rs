//! What an engine knows of committed changes: the broadcast feed subscribers read, the
//! per-kind generation counters caches check, and whether this process sees every change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::broadcast;

use certplane_core::store::{Change, Generations, Kind, CHANGE_FEED_CAPACITY};

/// Own changes awaiting their NOTIFY echo, kept at most.
const MAX_ECHOES: usize = 65_536;

pub(crate) struct Feed {
    sender: broadcast::Sender<Change>,
    generations: Generations,
    /// PostgreSQL: changes this node announced itself at commit whose NOTIFY has not come back
    /// yet (see [`Feed::expect_echoes`]).
    echoes: Mutex<HashMap<Change, u32>>,
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
        self.generations.bump(&change);
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
            self.generations.bump_all();
        }
        self.complete.store(complete, Ordering::Release);
    }
}
