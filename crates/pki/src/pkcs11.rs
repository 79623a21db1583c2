//! CA keys inside a PKCS#11 token (an HSM, or SoftHSM2 in tests): certplane generates the key
//! in the token, keeps only its id, and asks the token for every signature. The private key is
//! created non-extractable and sensitive, so it never leaves the token.

use std::path::PathBuf;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::PkiError;

/// Which token to use and how to log in to it.
#[derive(Clone)]
pub struct TokenConfig {
    /// The PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    pub module: PathBuf,
    /// The token's label (as set by `softhsm2-util --init-token --label …`).
    pub token_label: String,
    /// The user PIN: read from a file or the environment, never from a flag value.
    pub pin: Zeroizing<String>,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .finish_non_exhaustive()
    }
}

/// An open token: the loaded module and the slot holding the configured token.
pub struct Token {
    ctx: Pkcs11,
    slot: Slot,
    pin: Zeroizing<String>,
    label: String,
}

/// A CA private key in a token, with one logged-in session for its signatures.
pub struct TokenKey {
    session: Mutex<Session>,
    key: ObjectHandle,
    /// The uncompressed EC point (0x04 ‖ X ‖ Y): the subjectPublicKey of the CA certificate.
    point: Vec<u8>,
    /// CKA_ID of the key pair, as stored in the CA's record.
    id: Vec<u8>,
}

fn err(what: &str) -> impl Fn(cryptoki::error::Error) -> PkiError + '_ {
    move |e| PkiError::Signing(format!("PKCS#11: {what}: {e}"))
}

/// DER of the prime256v1 (P-256) curve OID, as CKA_EC_PARAMS wants it.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

impl Token {
    /// Loads the module and finds the token by label.
    pub fn open(cfg: &TokenConfig) -> Result<Token, PkiError> {
        let ctx = Pkcs11::new(&cfg.module).map_err(|e| {
            PkiError::Signing(format!(
                "PKCS#11: loading the module {}: {e}",
                cfg.module.display()
            ))
        })?;
        match ctx.initialize(CInitializeArgs::OsThreads) {
            Ok(()) => {}
            Err(cryptoki::error::Error::AlreadyInitialized) => {}
            Err(e) => return Err(err("initializing the module")(e)),
        }
        let slots = ctx
            .get_slots_with_initialized_token()
            .map_err(err("listing the slots"))?;
        let mut labels = Vec::new();
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(err("reading a token's info"))?;
            let label = info.label().trim_end().to_string();
            if label == cfg.token_label {
                return Ok(Token {
                    ctx,
                    slot,
                    pin: cfg.pin.clone(),
                    label,
                });
            }
            labels.push(label);
        }
        Err(PkiError::Signing(format!(
            "PKCS#11: no initialized token labelled {:?} in {} (tokens found: {labels:?})",
            cfg.token_label,
            cfg.module.display()
        )))
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    fn session(&self) -> Result<Session, PkiError> {
        let session = self
            .ctx
            .open_rw_session(self.slot)
            .map_err(err("opening a session"))?;
        let pin = AuthPin::new(self.pin.to_string());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) => {}
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => return Err(err("logging in (check the PIN)")(e)),
        }
        Ok(session)
    }

    /// Generates a new P-256 key pair in the token, labelled `label`.
    pub fn generate_key(&self, label: &str) -> Result<TokenKey, PkiError> {
        let mut id = vec![0u8; 16];
        aws_lc_rs::rand::fill(&mut id)
            .map_err(|_| PkiError::Signing("no randomness for a key id".into()))?;
        let session = self.session()?;
        let public = [
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        let (pub_handle, key) = session
            .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
            .map_err(err("generating a P-256 key pair"))?;
        let point = ec_point(&session, pub_handle)?;
        Ok(TokenKey {
            session: Mutex::new(session),
            key,
            point,
            id,
        })
    }

    /// The key pair with CKA_ID `id`, made earlier by [`Token::generate_key`].
    pub fn find_key(&self, id: &[u8]) -> Result<TokenKey, PkiError> {
        let session = self.session()?;
        let find = |class: ObjectClass| -> Result<ObjectHandle, PkiError> {
            let found = session
                .find_objects(&[
                    Attribute::Class(class),
                    Attribute::KeyType(KeyType::EC),
                    Attribute::Id(id.to_vec()),
                ])
                .map_err(err("searching the token"))?;
            found.first().copied().ok_or_else(|| {
                PkiError::Signing(format!(
                    "PKCS#11: the token {:?} holds no EC key with id {}",
                    self.label,
                    id.iter().map(|b| format!("{b:02x}")).collect::<String>()
                ))
            })
        };
        let key = find(ObjectClass::PRIVATE_KEY)?;
        let public = find(ObjectClass::PUBLIC_KEY)?;
        let point = ec_point(&session, public)?;
        Ok(TokenKey {
            session: Mutex::new(session),
            key,
            point,
            id: id.to_vec(),
        })
    }
}

/// CKA_EC_POINT is the DER OCTET STRING of the point (some tokens give the bare point).
fn ec_point(session: &Session, public: ObjectHandle) -> Result<Vec<u8>, PkiError> {
    let attrs = session
        .get_attributes(public, &[AttributeType::EcPoint])
        .map_err(err("reading the public key"))?;
    let raw = attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| PkiError::Signing("PKCS#11: the public key has no EC point".into()))?;
    let point = match raw.as_slice() {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest.to_vec(),
        [0x04, ..] if raw.len() == 65 => raw.clone(),
        _ => {
            return Err(PkiError::Signing(
                "PKCS#11: the key is not an uncompressed P-256 point".into(),
            ))
        }
    };
    Ok(point)
}

impl TokenKey {
    pub fn public_point(&self) -> &[u8] {
        &self.point
    }

    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// ECDSA over SHA-256 of `msg`, DER-encoded (ECDSA-Sig-Value) as X.509 carries it. The
    /// token gets the digest (CKM_ECDSA), which every token supports, and answers r ‖ s.
    pub fn sign_ecdsa_sha256(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg);
        let session = self
            .session
            .lock()
            .map_err(|_| PkiError::Signing("PKCS#11: the session lock is poisoned".into()))?;
        let raw = session
            .sign(&Mechanism::Ecdsa, self.key, digest.as_ref())
            .map_err(err("signing"))?;
        if raw.len() != 64 {
            return Err(PkiError::Signing(format!(
                "PKCS#11: a P-256 signature is 64 bytes, the token gave {}",
                raw.len()
            )));
        }
        Ok(ecdsa_der(&raw[..32], &raw[32..]))
    }
}

/// SEQUENCE { INTEGER r, INTEGER s } from the two unsigned big-endian halves.
fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(v: &[u8]) -> Vec<u8> {
        let v = match v.iter().position(|b| *b != 0) {
            Some(i) => &v[i..],
            None => &[0u8][..],
        };
        let mut out = vec![0x02];
        let pad = v[0] & 0x80 != 0;
        out.push(u8::try_from(v.len() + usize::from(pad)).unwrap_or(0));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    }
    let body = [integer(r), integer(s)].concat();
    let mut out = vec![0x30, u8::try_from(body.len()).unwrap_or(0)];
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_halves_become_der_integers() {
        let r = [0u8; 32];
        let mut s = [0xffu8; 32];
        s[0] = 0x80;
        let der = ecdsa_der(&r, &s);
        assert_eq!(&der[..5], &[0x30, 38, 0x02, 1, 0]);
        assert_eq!(&der[5..8], &[0x02, 33, 0]);
        assert_eq!(der.len(), 2 + 3 + 35);
    }
}
