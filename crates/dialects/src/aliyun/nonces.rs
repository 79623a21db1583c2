//! Replay protection: a signature nonce may be used once within the timestamp window.
//! Kept in memory per node (see COMPATIBILITY.md): a replay to the same node within 15 minutes
//! is refused; the timestamp window bounds replays across nodes.

use std::collections::HashMap;
use std::sync::Mutex;

use super::signature::MAX_SKEW_MS;

#[derive(Default)]
pub struct NonceCache {
    seen: Mutex<HashMap<String, i64>>,
}

impl NonceCache {
    /// Records the nonce; false when it was already seen within the window.
    pub fn first_use(&self, access_key_id: &str, nonce: &str, now_ms: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        // Forget nonces older than twice the window now and then, so memory stays bounded by
        // the request rate.
        if seen.len() > 100_000 {
            seen.retain(|_, at| now_ms - *at <= 2 * MAX_SKEW_MS);
        }
        let key = format!("{access_key_id}\u{0}{nonce}");
        match seen.get(&key) {
            Some(at) if now_ms - *at <= 2 * MAX_SKEW_MS => false,
            _ => {
                seen.insert(key, now_ms);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_used_once() {
        let c = NonceCache::default();
        assert!(c.first_use("k", "n1", 0));
        assert!(!c.first_use("k", "n1", 1000));
        assert!(c.first_use("other", "n1", 1000));
        assert!(c.first_use("k", "n1", 3 * MAX_SKEW_MS));
    }
}
