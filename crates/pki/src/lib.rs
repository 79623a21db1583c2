//! PKI for certplane: parsing and checking X.509 certificates and CSRs, and the issuing CA that
//! signs certificates. Pure functions over bytes; no storage, no clock of its own (callers pass
//! "now").

mod ca_key;
mod crl;
mod csr;
mod der_lengths;
mod issuer;
mod ocsp;
mod parse;
mod pkcs11;
mod sealing;

pub use ca_key::CaKey;
pub use crl::{
    canonical_serial, serial_from_hex, CrlLinks, RevocationReason, RevokedEntry, SignedCrl,
};
pub use csr::{parse_csr, CsrInfo};
pub use issuer::{
    generate_rsa_key, Distribution, IssueRequest, IssuedKeyPair, IssuingCa, ServerCertificate,
    Subject, ISSUED_NOT_AFTER_MS,
};
pub use ocsp::{
    build_ocsp_request, cert_id_for, ocsp_error_response, parse_ocsp_request, CertId, CertIdHash,
    CertStatus, OcspError, OcspRequest, SingleAnswer, MAX_SINGLE_REQUESTS,
};

/// The notAfter of every certificate certplane issues.
pub fn issuer_not_after() -> Millis {
    ISSUED_NOT_AFTER_MS
}
pub use parse::{
    check_key_matches, parse_certificate_der, parse_certificate_pem, verify_signed_by,
    ParsedCertificate, SubjectNames,
};

pub use pkcs11::{Token, TokenConfig, TokenKey};
pub use sealing::{MasterKey, Sealed, SEALING_ALGORITHM};

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PkiError {
    /// The input is not a well-formed PEM/DER object of the expected type.
    #[error("{0}")]
    Malformed(String),
    /// Well-formed but unacceptable: bad signature, weak key, wrong type.
    #[error("{0}")]
    Rejected(String),
    /// Our own key material or signer failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Milliseconds since the Unix epoch, the unit the domain uses.
pub type Millis = i64;
