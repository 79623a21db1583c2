//! The signer seam: every signature certplane makes with a CA key (certificates, CRLs, OCSP
//! responses) goes through [`CaKey`], whether the key is in memory or inside a PKCS#11 token.

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};
use zeroize::Zeroizing;

use crate::pkcs11::TokenKey;
use crate::PkiError;

/// A CA's private key.
pub enum CaKey {
    /// Held in memory (decrypted from the store with the master key at start).
    Software(KeyPair),
    /// Never leaves its PKCS#11 token; each signature is one call into the token.
    Token(TokenKey),
}

impl CaKey {
    /// A fresh ECDSA P-256 software key.
    pub fn generate_software() -> Result<Self, PkiError> {
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map(CaKey::Software)
            .map_err(|e| PkiError::Signing(e.to_string()))
    }

    /// A software key from its PKCS#8 PEM (or DER) form.
    pub fn software_from_pem(key_pem: &str) -> Result<Self, PkiError> {
        KeyPair::from_pem(key_pem)
            .map(CaKey::Software)
            .map_err(|e| PkiError::Malformed(format!("CA private key: {e}")))
    }

    /// A software key from its PKCS#8 DER (as unsealed from the store).
    pub fn software_from_pkcs8(der: &[u8]) -> Result<Self, PkiError> {
        KeyPair::try_from(der)
            .map(CaKey::Software)
            .map_err(|e| PkiError::Malformed(format!("CA private key: {e}")))
    }

    /// The PKCS#8 DER of a software key, for sealing under the master key; `None` for a token
    /// key, which cannot be exported.
    pub fn export_pkcs8(&self) -> Option<Zeroizing<Vec<u8>>> {
        match self {
            CaKey::Software(k) => Some(Zeroizing::new(k.serialize_der())),
            CaKey::Token(_) => None,
        }
    }

    /// Where the key lives, for `admin ca list`.
    pub fn custody(&self) -> &'static str {
        match self {
            CaKey::Software(_) => "software",
            CaKey::Token(_) => "pkcs11",
        }
    }
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CaKey::Software(k) => k.der_bytes(),
            CaKey::Token(k) => k.public_point(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            CaKey::Software(k) => k.algorithm(),
            CaKey::Token(_) => &rcgen::PKCS_ECDSA_P256_SHA256,
        }
    }
}

impl SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            CaKey::Software(k) => k.sign(msg),
            CaKey::Token(k) => k.sign_ecdsa_sha256(msg).map_err(|e| {
                // rcgen's error for a remote key carries no text: log the token's reason.
                tracing::warn!("the PKCS#11 token refused to sign: {e}");
                rcgen::Error::RemoteKeyError
            }),
        }
    }
}
