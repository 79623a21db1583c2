//! Bearer tokens: ES256 JWTs that certplane's token endpoint issues and every ARM call verifies
//! (signature, expiry on the server clock, audience), plus, in `--dev` only, unsigned
//! (`alg: none`) JWTs whose `email` or `upn` claim names the caller, as emulators accept.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use certplane_core::clock::Millis;
use certplane_core::error::{DomainError, DomainResult};
use certplane_core::oauth::SigningKey;
use certplane_core::Core;
use serde_json::{json, Value};

/// The audience (and token resource) of Azure Resource Manager.
pub const ARM_AUDIENCE: &str = "https://management.azure.com";
/// Issued tokens live an hour, as Entra's do.
pub const TOKEN_LIFETIME_S: i64 = 3600;
/// Clock skew allowed on `nbf` / `exp`.
const SKEW_S: i64 = 300;
/// Longest bearer token looked at.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

pub struct TokenKeys {
    kid: String,
    pair: EcdsaKeyPair,
}

/// Who a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub email: String,
    pub subject: String,
    /// The token's tenant (`tid`) and OAuth client (`appid`), when it names them.
    pub tenant: Option<String>,
    pub client_id: Option<String>,
}

/// Why a token was refused (ARM's codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Invalid(String),
    Expired,
}

fn generate() -> DomainResult<SigningKey> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| DomainError::internal("generating the token signing key"))?;
    let mut kid = [0u8; 12];
    aws_lc_rs::rand::fill(&mut kid).map_err(|_| DomainError::internal("no randomness"))?;
    Ok(SigningKey {
        kid: URL_SAFE_NO_PAD.encode(kid),
        algorithm: "ES256".into(),
        pkcs8: URL_SAFE_NO_PAD.encode(pkcs8.as_ref()),
        created_at: 0,
    })
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default())
}

impl TokenKeys {
    /// The deployment's signing key (made and stored at first start).
    pub async fn load(core: &Core) -> DomainResult<TokenKeys> {
        let key = core.signing_key(generate).await?;
        let der = URL_SAFE_NO_PAD
            .decode(&key.pkcs8)
            .map_err(|_| DomainError::internal("the stored signing key is not base64url"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|_| DomainError::internal("the stored signing key does not load"))?;
        Ok(TokenKeys { kid: key.kid, pair })
    }

    /// A fresh key that is not stored (for the fuzzer and tests: tokens it signs outlive
    /// nothing).
    pub fn ephemeral() -> DomainResult<TokenKeys> {
        let key = generate()?;
        let der = URL_SAFE_NO_PAD
            .decode(&key.pkcs8)
            .map_err(|_| DomainError::internal("the signing key is not base64url"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|_| DomainError::internal("the signing key does not load"))?;
        Ok(TokenKeys { kid: key.kid, pair })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS entry of the public key.
    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key().as_ref();
        // Uncompressed point: 0x04 || X || Y.
        let (x, y) = if public.len() == 65 {
            (&public[1..33], &public[33..65])
        } else {
            (&public[..0], &public[..0])
        };
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        })
    }

    /// A signed access token for `email`, valid an hour from `now` (server clock).
    pub fn issue(
        &self,
        issuer: &str,
        tenant: &str,
        client_id: &str,
        email: &str,
        audience: &str,
        now: Millis,
    ) -> DomainResult<String> {
        let iat = now.div_euclid(1000);
        let header = json!({ "typ": "JWT", "alg": "ES256", "kid": self.kid });
        let claims = json!({
            "aud": audience, "iss": issuer, "iat": iat, "nbf": iat,
            "exp": iat + TOKEN_LIFETIME_S, "tid": tenant, "sub": client_id, "oid": client_id,
            "appid": client_id, "azp": client_id, "email": email, "upn": email,
            "ver": "2.0", "idtyp": "app",
        });
        let signing_input = format!("{}.{}", b64json(&header), b64json(&claims));
        let sig = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| DomainError::internal("signing a token"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }

    /// Checks a bearer token: an ES256 token of this deployment (signature, `exp`/`nbf` against
    /// `now`, audience ARM), or in dev mode also an unsigned one.
    pub fn verify(&self, token: &str, now: Millis, dev: bool) -> Result<Caller, TokenError> {
        let bad = |m: &str| TokenError::Invalid(m.to_string());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(bad("The access token is too long."));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(
                "The access token is not a JWT (header.claims.signature).",
            ));
        };
        let decode = |p: &str| -> Result<Value, TokenError> {
            let raw = URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .or_else(|_| STANDARD.decode(p))
                .map_err(|_| bad("The access token is not base64url."))?;
            serde_json::from_slice(&raw).map_err(|_| bad("The access token is not JSON."))
        };
        let header = decode(h)?;
        let claims = decode(c)?;
        match header.get("alg").and_then(Value::as_str) {
            Some("ES256") => {
                if header.get("kid").and_then(Value::as_str) != Some(self.kid.as_str()) {
                    return Err(bad("The access token was not issued by this certplane."));
                }
                let sig = URL_SAFE_NO_PAD
                    .decode(s)
                    .map_err(|_| bad("The access token signature is not base64url."))?;
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
                    .verify(format!("{h}.{c}").as_bytes(), &sig)
                    .map_err(|_| bad("The access token signature is invalid."))?;
                let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
                if aud.trim_end_matches('/') != ARM_AUDIENCE {
                    return Err(bad(&format!(
                        "The access token has an invalid audience {aud:?}; it must be {ARM_AUDIENCE}."
                    )));
                }
                let now_s = now.div_euclid(1000);
                match claims.get("exp").and_then(Value::as_i64) {
                    Some(exp) if now_s < exp + SKEW_S => {}
                    Some(_) => return Err(TokenError::Expired),
                    None => return Err(bad("The access token has no expiry.")),
                }
                if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64) {
                    if now_s + SKEW_S < nbf {
                        return Err(bad("The access token is not valid yet."));
                    }
                }
            }
            Some(a) if dev && a.eq_ignore_ascii_case("none") => {
                if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
                    if now.div_euclid(1000) >= exp {
                        return Err(TokenError::Expired);
                    }
                }
            }
            Some(a) if a.eq_ignore_ascii_case("none") => {
                return Err(bad(
                    "Unsigned access tokens are accepted only by a server in --dev mode.",
                ))
            }
            _ => return Err(bad("The access token's algorithm is not supported.")),
        }
        let email = ["email", "upn", "unique_name", "preferred_username"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(Value::as_str))
            .filter(|e| certplane_core::billing::check_email("email", e).is_ok())
            .ok_or_else(|| bad("The access token names no valid email (email or upn claim)."))?;
        let subject = claims
            .get("oid")
            .or_else(|| claims.get("sub"))
            .and_then(Value::as_str)
            .unwrap_or(email)
            .to_string();
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Caller {
            email: email.to_string(),
            subject,
            tenant: text("tid"),
            client_id: text("appid").or_else(|| text("azp")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        let k = generate().expect("key");
        let der = URL_SAFE_NO_PAD.decode(&k.pkcs8).expect("der");
        TokenKeys {
            kid: k.kid,
            pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).expect("pair"),
        }
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let k = keys();
        let now = 1_800_000_000_000;
        let t = k
            .issue("iss", "t", "c", "a@b.example", ARM_AUDIENCE, now)
            .expect("token");
        let who = k.verify(&t, now, false).expect("valid");
        assert_eq!(who.email, "a@b.example");
        assert_eq!(
            k.verify(&t, now + (TOKEN_LIFETIME_S + SKEW_S) * 1000, false),
            Err(TokenError::Expired)
        );
        // Another deployment's key, a flipped byte, the wrong audience: refused.
        assert!(keys().verify(&t, now, false).is_err());
        let mut tampered = t.clone().into_bytes();
        let i = tampered.len() - 5;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        assert!(k
            .verify(&String::from_utf8(tampered).expect("utf8"), now, false)
            .is_err());
        let other = k
            .issue(
                "iss",
                "t",
                "c",
                "a@b.example",
                "https://graph.microsoft.com",
                now,
            )
            .expect("token");
        assert!(k.verify(&other, now, false).is_err());
    }

    #[test]
    fn unsigned_tokens_only_in_dev() {
        let k = keys();
        let t = format!(
            "{}.{}.",
            b64json(&json!({"alg": "none"})),
            b64json(&json!({"upn": "bob@example.com"}))
        );
        assert_eq!(
            k.verify(&t, 0, true).map(|c| c.email),
            Ok("bob@example.com".to_string())
        );
        assert!(k.verify(&t, 0, false).is_err());
        assert!(k.verify("abc", 0, true).is_err());
    }
}
