//! The master key and AES-256-GCM sealing of CA private keys at rest: a stolen database (or
//! data dir without the master key file) holds no usable CA key.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use crate::PkiError;

/// A 256-bit key that seals every software CA key of a deployment.
pub struct MasterKey {
    bytes: Zeroizing<Vec<u8>>,
    id: String,
}

/// A sealed secret: a random 96-bit nonce and the ciphertext with its 128-bit tag appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The [`MasterKey::id`] that sealed it, so a wrong key is named, not just refused.
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The only algorithm sealed keys use, as written beside them.
pub const SEALING_ALGORITHM: &str = "AES-256-GCM";

impl MasterKey {
    pub fn generate() -> Result<Self, PkiError> {
        let mut bytes = Zeroizing::new(vec![0u8; 32]);
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| PkiError::Signing("no randomness for a master key".into()))?;
        Ok(Self::from_bytes(bytes))
    }

    fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Self {
        let mut tagged = b"certplane master key id\0".to_vec();
        tagged.extend_from_slice(&bytes);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &tagged);
        tagged.iter_mut().for_each(|b| *b = 0);
        let id = hex_of(&digest.as_ref()[..8]);
        MasterKey { bytes, id }
    }

    /// Reads a master key file's text: 64 hex digits (surrounding whitespace ignored).
    pub fn from_text(text: &str) -> Result<Self, PkiError> {
        let t = text.trim();
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PkiError::Malformed(
                "a master key file holds exactly 64 hexadecimal digits (32 bytes)".into(),
            ));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(32));
        for pair in t.as_bytes().chunks(2) {
            let hi = hex_val(pair[0]);
            let lo = hex_val(pair[1]);
            bytes.push((hi << 4) | lo);
        }
        Ok(Self::from_bytes(bytes))
    }

    /// The text a master key file holds.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}\n", hex_of(&self.bytes)))
    }

    /// A public fingerprint of the key (16 hex digits): safe to log and store.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn aead(&self) -> Result<LessSafeKey, PkiError> {
        UnboundKey::new(&AES_256_GCM, &self.bytes)
            .map(LessSafeKey::new)
            .map_err(|_| PkiError::Signing("the master key is not a valid AES-256 key".into()))
    }

    /// Seals `plaintext`, bound to `context` (the CA id: a sealed key cannot be moved to
    /// another CA's record).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, PkiError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| PkiError::Signing("no randomness for a nonce".into()))?;
        let mut in_out = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut in_out,
            )
            .map_err(|_| PkiError::Signing("sealing failed".into()))?;
        Ok(Sealed {
            key_id: self.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext: in_out,
        })
    }

    /// Opens what [`MasterKey::seal`] sealed; a wrong key or altered bytes fail.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        if sealed.key_id != self.id {
            return Err(PkiError::Rejected(format!(
                "sealed under master key {} but the master key given is {}",
                sealed.key_id, self.id
            )));
        }
        let nonce: [u8; NONCE_LEN] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| PkiError::Malformed("a sealed key's nonce is not 12 bytes".into()))?;
        let mut in_out = Zeroizing::new(sealed.ciphertext.clone());
        let len = self
            .aead()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut in_out,
            )
            .map_err(|_| PkiError::Rejected("the master key does not open this sealed key".into()))?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_their_key_and_context() -> Result<(), PkiError> {
        let k = MasterKey::generate()?;
        let sealed = k.seal(b"secret", b"ca-1")?;
        assert_ne!(sealed.ciphertext, b"secret".to_vec());
        assert_eq!(k.open(&sealed, b"ca-1")?.as_slice(), b"secret");
        assert!(k.open(&sealed, b"ca-2").is_err());
        let reread = MasterKey::from_text(&k.to_text())?;
        assert_eq!(reread.id(), k.id());
        assert_eq!(reread.open(&sealed, b"ca-1")?.as_slice(), b"secret");
        let other = MasterKey::generate()?;
        assert!(other.open(&sealed, b"ca-1").is_err());
        // Same id but altered ciphertext: the tag check fails.
        let mut bent = sealed.clone();
        bent.ciphertext[0] ^= 1;
        assert!(k.open(&bent, b"ca-1").is_err());
        assert!(MasterKey::from_text("abc").is_err());
        assert!(MasterKey::from_text(&"g".repeat(64)).is_err());
        Ok(())
    }
}
