//! Reading certificates that clients send us.

use x509_parser::prelude::*;

use crate::{Millis, PkiError};

/// The facts certplane keeps about a certificate it parsed.
#[derive(Debug, Clone)]
pub struct ParsedCertificate {
    pub der: Vec<u8>,
    pub not_before: Millis,
    pub not_after: Millis,
    /// DER of the subject and issuer names, for matching a certificate to its issuer.
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    pub subject_cn: Option<String>,
    /// The subject's other naming attributes (first of each), as JITP templates read them.
    pub subject: SubjectNames,
    pub is_ca: bool,
    pub self_issued: bool,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// Serial number, upper-case hex without separators.
    pub serial_hex: String,
    pub issuer_cn: Option<String>,
    /// DNS names of the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// `RSA`, `ECC` or `OTHER`.
    pub key_algorithm: &'static str,
    /// The authorityKeyIdentifier's keyIdentifier: which CA key signed it.
    pub authority_key_id: Option<Vec<u8>>,
}

/// Naming attributes of a certificate's subject besides its common name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectNames {
    pub country: Option<String>,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub dn_qualifier: Option<String>,
    pub state: Option<String>,
}

fn first_str<'a, 'b>(mut it: impl Iterator<Item = &'b AttributeTypeAndValue<'a>>) -> Option<String>
where
    'a: 'b,
{
    it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
}

fn subject_names(name: &X509Name<'_>) -> SubjectNames {
    SubjectNames {
        country: first_str(name.iter_country()),
        organization: first_str(name.iter_organization()),
        organizational_unit: first_str(name.iter_organizational_unit()),
        dn_qualifier: first_str(
            name.iter_by_oid(&x509_parser::oid_registry::OID_X509_DN_QUALIFIER),
        ),
        state: first_str(name.iter_state_or_province()),
    }
}

const MAX_PEM: usize = 65536;

/// Parses exactly one PEM `CERTIFICATE` (the first one when a chain is given).
pub fn parse_certificate_pem(pem_text: &str) -> Result<ParsedCertificate, PkiError> {
    if pem_text.len() > MAX_PEM {
        return Err(PkiError::Malformed(
            "the certificate PEM is longer than 65536 characters".into(),
        ));
    }
    let blocks = ::pem::parse_many(pem_text.as_bytes())
        .map_err(|e| PkiError::Malformed(format!("the certificate is not valid PEM: {e}")))?;
    let first = blocks
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .ok_or_else(|| PkiError::Malformed("no PEM CERTIFICATE block was found".into()))?;
    parse_certificate_der(first.contents())
}

pub fn parse_certificate_der(der: &[u8]) -> Result<ParsedCertificate, PkiError> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| PkiError::Malformed(format!("the certificate is not valid X.509: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::Malformed(
            "trailing bytes after the certificate".into(),
        ));
    }
    let subject_cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .map(|bc| bc.value.ca)
        .unwrap_or(false);
    let issuer_cn = cert
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    Ok(ParsedCertificate {
        der: der[..der.len() - rest.len()].to_vec(),
        not_before: cert.validity().not_before.timestamp().saturating_mul(1000),
        not_after: cert.validity().not_after.timestamp().saturating_mul(1000),
        subject_der: cert.subject().as_raw().to_vec(),
        issuer_der: cert.issuer().as_raw().to_vec(),
        subject_cn,
        subject: subject_names(cert.subject()),
        is_ca,
        authority_key_id: cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            }),
        self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
        spki_der: cert.public_key().raw.to_vec(),
        serial_hex: hex_upper(cert.raw_serial()),
        issuer_cn,
        dns_names: cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        key_algorithm: match cert.public_key().parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(_)) => "RSA",
            Ok(x509_parser::public_key::PublicKey::EC(_)) => "ECC",
            _ => "OTHER",
        },
    })
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// True when `cert_der` carries a valid signature made by the key of `issuer_der`'s subject.
pub fn verify_signed_by(cert_der: &[u8], issuer_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, issuer))) = (
        X509Certificate::from_der(cert_der),
        X509Certificate::from_der(issuer_der),
    ) else {
        return false;
    };
    cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Checks that a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) is the key of `cert`.
pub fn check_key_matches(key_pem: &str, cert: &ParsedCertificate) -> Result<(), PkiError> {
    let key = rcgen::KeyPair::from_pem(key_pem)
        .map_err(|e| PkiError::Malformed(format!("the private key is not valid: {e}")))?;
    use rcgen::PublicKeyData;
    if key.subject_public_key_info() == cert.spki_der {
        Ok(())
    } else {
        Err(PkiError::Rejected(
            "the private key does not belong to the certificate".into(),
        ))
    }
}
