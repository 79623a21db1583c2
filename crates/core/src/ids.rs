//! Identifiers parsed at the edge: everything inside takes these newtypes.

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// The registry id of a certificate: the lower-case hex SHA-256 of its DER (AWS `certificateId`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CertificateId(String);

impl CertificateId {
    /// Parses a client-supplied id: exactly 64 hex characters (AWS `CertificateId`).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DomainError::invalid(format!(
                "certificateId must be 64 hexadecimal characters, got {} characters",
                s.chars().count()
            )));
        }
        Ok(CertificateId(s.to_ascii_lowercase()))
    }

    pub fn of_der(der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        CertificateId(hex::encode(digest.as_ref()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CertificateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a caller's state lives: one account in one region. Other clouds without regions use a
/// fixed region name of their own.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

impl Scope {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        Scope {
            account: account.into(),
            region: region.into(),
        }
    }
}

/// An AWS account id: exactly 12 digits.
pub fn parse_aws_account(s: &str) -> Result<String, DomainError> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(DomainError::invalid(format!(
            "an AWS account id must be exactly 12 digits, got {s:?}"
        )))
    }
}

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
