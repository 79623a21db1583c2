//! Replay protection for signed requests: a signature nonce is good once per access key
//! within the signing window, on every node that shares the store (a replay sent to another
//! node is refused just as one sent to the same node).

use aws_lc_rs::digest;

use crate::clock::Millis;
use crate::error::DomainResult;
use crate::Core;

impl Core {
    /// Records the nonce and answers true on its first use; false when `access_key_id` used it
    /// within the last `window_ms`.
    pub async fn first_use_of_nonce(
        &self,
        dialect: &str,
        access_key_id: &str,
        nonce: &str,
        window_ms: Millis,
    ) -> DomainResult<bool> {
        let now = self.now();
        self.store()
            .claim_once(
                &nonce_key(dialect, access_key_id, nonce),
                now,
                now + window_ms,
            )
            .await
    }
}

/// The nonce is client text of any length and content; its digest keeps the stored key short
/// and free of bytes a database text column refuses (NUL).
fn nonce_key(dialect: &str, access_key_id: &str, nonce: &str) -> String {
    let d = digest::digest(&digest::SHA256, nonce.as_bytes());
    format!("{dialect}/{access_key_id}/{}", hex::encode(d.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_distinct() {
        let a = nonce_key("aliyun", "LTAI1", &"x\u{0}".repeat(10_000));
        assert!(a.len() < 100 && !a.contains('\u{0}'));
        assert_ne!(
            nonce_key("aliyun", "LTAI1", "n"),
            nonce_key("aliyun", "LTAI2", "n")
        );
        assert_ne!(
            nonce_key("aliyun", "LTAI1", "n"),
            nonce_key("aliyun", "LTAI1", "m")
        );
    }
}
