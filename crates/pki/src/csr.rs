//! Certificate signing requests: signature check, key strength check, and what we copy out.

use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

use crate::PkiError;

/// What certplane certifies from a CSR: its subject and its own public key.
#[derive(Debug, Clone)]
pub struct CsrInfo {
    pub subject_der: Vec<u8>,
    pub spki_der: Vec<u8>,
    /// The subject's first common name, if any.
    pub common_name: Option<String>,
}

const MAX_CSR: usize = 4096;

/// Parses a PEM CSR, checks its self-signature and that its key is RSA ≥ 2048 bits or ECDSA on
/// P-256/P-384/P-521 (the keys AWS IoT accepts).
pub fn parse_csr(pem_text: &str) -> Result<CsrInfo, PkiError> {
    if pem_text.len() > MAX_CSR {
        return Err(PkiError::Malformed(
            "the certificate signing request is longer than 4096 characters".into(),
        ));
    }
    let block = ::pem::parse(pem_text.as_bytes()).map_err(|e| {
        PkiError::Malformed(format!(
            "the certificate signing request is not valid PEM: {e}"
        ))
    })?;
    if block.tag() != "CERTIFICATE REQUEST" && block.tag() != "NEW CERTIFICATE REQUEST" {
        return Err(PkiError::Malformed(format!(
            "expected a PEM CERTIFICATE REQUEST, got {}",
            block.tag()
        )));
    }
    let (_, csr) = X509CertificationRequest::from_der(block.contents()).map_err(|e| {
        PkiError::Malformed(format!("the certificate signing request is not valid: {e}"))
    })?;
    csr.verify_signature().map_err(|_| {
        PkiError::Rejected("the signature of the certificate signing request is not valid".into())
    })?;
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) if rsa.key_size() >= 2048 => {}
            Ok(PublicKey::RSA(rsa)) => {
                return Err(PkiError::Rejected(format!(
                    "the RSA key is {} bits; at least 2048 bits are required",
                    rsa.key_size()
                )))
            }
            _ => {
                return Err(PkiError::Malformed(
                    "the RSA public key is not valid".into(),
                ))
            }
        }
    } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let ok = matches!(curve, Some(c) if c == OID_EC_P256 || c == OID_NIST_EC_P384 || c == OID_NIST_EC_P521);
        if !ok {
            return Err(PkiError::Rejected(
                "the EC key must be on curve P-256, P-384 or P-521".into(),
            ));
        }
    } else {
        return Err(PkiError::Rejected(format!(
            "the key algorithm {alg} is not supported; use RSA (2048 bits or more) or ECDSA"
        )));
    }
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    Ok(CsrInfo {
        subject_der: info.subject.as_raw().to_vec(),
        spki_der: spki.raw.to_vec(),
        common_name,
    })
}
