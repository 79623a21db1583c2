//! Certificate revocation lists (RFC 5280 §5) signed by the issuing CA. Pure: the caller
//! chooses the entries, the CRL number and the times.

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};

use crate::issuer::IssuingCa;
use crate::{Millis, PkiError};

/// Why a certificate is revoked (RFC 5280 §5.3.1 CRLReason; the OCSP responder uses the
/// same codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// The CRLReason ENUMERATED value.
    pub fn code(self) -> i64 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::CertificateHold => 6,
            RevocationReason::PrivilegeWithdrawn => 9,
        }
    }

    fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
            RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            RevocationReason::CaCompromise => rcgen::RevocationReason::CaCompromise,
            RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
            RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            RevocationReason::CertificateHold => rcgen::RevocationReason::CertificateHold,
            RevocationReason::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// One certificate on a CRL (or answered revoked by OCSP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RevokedEntry {
    /// The serial number's magnitude, big-endian, without leading zero bytes.
    pub serial: Vec<u8>,
    pub revoked_at: Millis,
    /// `None` for "unspecified": RFC 5280 §5.3.1 says to leave the reasonCode out then.
    pub reason: Option<RevocationReason>,
}

/// A signed CRL.
#[derive(Debug, Clone)]
pub struct SignedCrl {
    pub der: Vec<u8>,
    pub pem: String,
}

impl IssuingCa {
    /// Signs a CRL with number `number` listing `entries`, valid from `this_update` to
    /// `next_update`.
    pub fn sign_crl(
        &self,
        number: u64,
        this_update: Millis,
        next_update: Millis,
        entries: &[RevokedEntry],
    ) -> Result<SignedCrl, PkiError> {
        let time = crate::issuer::to_time;
        let mut revoked_certs = Vec::with_capacity(entries.len());
        for e in entries {
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&e.serial),
                revocation_time: time(e.revoked_at)?,
                reason_code: e
                    .reason
                    .filter(|r| *r != RevocationReason::Unspecified)
                    .map(RevocationReason::to_rcgen),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: time(this_update)?,
            next_update: time(next_update)?,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            // Ignored when signing with an issuer loaded from its certificate, which keeps
            // the certificate's own subjectKeyIdentifier for the CRL's authorityKeyIdentifier.
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(|e| PkiError::Signing(e.to_string()))?;
        let pem = crl.pem().map_err(|e| PkiError::Signing(e.to_string()))?;
        Ok(SignedCrl {
            der: crl.der().to_vec(),
            pem,
        })
    }
}

/// Big-endian serial bytes without leading zeros (so `00 8f` and `8f` compare equal).
pub fn canonical_serial(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// The serial bytes of an upper- or lower-case hex serial (as [`crate::ParsedCertificate`]
/// keeps it), or `None` when it is not hex.
pub fn serial_from_hex(hex: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = hex
        .chars()
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<_>>()?;
    let mut out = Vec::with_capacity(digits.len() / 2 + 1);
    let mut iter = digits.iter();
    if digits.len() % 2 == 1 {
        out.push(*iter.next()?);
    }
    while let (Some(hi), Some(lo)) = (iter.next(), iter.next()) {
        out.push(hi * 16 + lo);
    }
    Some(canonical_serial(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;
    use x509_parser::revocation_list::CertificateRevocationList;

    #[test]
    fn crl_lists_entries_with_reasons_and_number() -> Result<(), PkiError> {
        let ca = IssuingCa::generate("crl CA", 1_700_000_000_000)?;
        let entries = vec![
            RevokedEntry {
                serial: vec![0x41, 0x02, 0x03],
                revoked_at: 1_700_000_100_000,
                reason: None,
            },
            RevokedEntry {
                serial: vec![0x42],
                revoked_at: 1_700_000_200_000,
                reason: Some(RevocationReason::CertificateHold),
            },
        ];
        let crl = ca.sign_crl(7, 1_700_000_300_000, 1_700_003_900_000, &entries)?;
        assert!(crl.pem.starts_with("-----BEGIN X509 CRL-----"));
        let (rest, parsed) = CertificateRevocationList::from_der(&crl.der)
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        assert!(rest.is_empty());
        assert_eq!(parsed.crl_number().map(|n| n.to_string()), Some("7".into()));
        assert_eq!(parsed.last_update().timestamp(), 1_700_000_300);
        assert_eq!(
            parsed.next_update().map(|t| t.timestamp()),
            Some(1_700_003_900)
        );
        let revoked: Vec<_> = parsed.iter_revoked_certificates().collect();
        assert_eq!(revoked.len(), 2);
        assert_eq!(revoked[0].raw_serial(), &[0x41, 0x02, 0x03]);
        assert!(revoked[0].reason_code().is_none());
        assert_eq!(revoked[1].reason_code().map(|(_, r)| r.0), Some(6));
        assert_eq!(revoked[1].revocation_date.timestamp(), 1_700_000_200);
        // Signed by the CA's key.
        let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der())
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        assert_eq!(parsed.issuer(), ca_cert.subject());
        assert!(parsed.verify_signature(ca_cert.public_key()).is_ok());
        Ok(())
    }

    #[test]
    fn serials_are_canonical() {
        assert_eq!(serial_from_hex("008F"), Some(vec![0x8f]));
        assert_eq!(serial_from_hex("abc"), Some(vec![0x0a, 0xbc]));
        assert_eq!(serial_from_hex("xyz"), None);
        assert_eq!(canonical_serial(&[0, 0, 1]), vec![1]);
    }
}
