//! Certificate revocation lists (RFC 5280 §5) signed by the issuing CA. Pure: the caller
//! chooses the entries, the CRL number and the times.

use rcgen::SigningKey;
#[cfg(test)]
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
    /// Only on delta CRLs (RFC 5280 §5.3.1): the certificate is no longer on hold.
    RemoveFromCrl,
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
            RevocationReason::RemoveFromCrl => 8,
            RevocationReason::PrivilegeWithdrawn => 9,
        }
    }

    #[cfg(test)]
    fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
            RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            RevocationReason::CaCompromise => rcgen::RevocationReason::CaCompromise,
            RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
            RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            RevocationReason::CertificateHold => rcgen::RevocationReason::CertificateHold,
            RevocationReason::RemoveFromCrl => rcgen::RevocationReason::RemoveFromCrl,
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

/// What a CRL says beyond its number, times and entries: the extensions that tie complete and
/// delta CRLs together. The default is a complete CRL with no delta.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrlLinks<'a> {
    /// freshestCRL (RFC 5280 §5.2.6, non-critical) on a complete CRL: the URL of its delta CRLs.
    pub freshest_crl: Option<&'a str>,
    /// deltaCRLIndicator (RFC 5280 §5.2.4, critical): this is a delta CRL on the complete CRL
    /// with this number (BaseCRLNumber).
    pub delta_base: Option<u64>,
}

/// A signed CRL.
#[derive(Debug, Clone)]
pub struct SignedCrl {
    pub der: Vec<u8>,
    pub pem: String,
}

impl RevokedEntry {
    /// This entry of revokedCertificates, DER, appended to `out`: what a CRL rebuild copies
    /// (the caller may keep it, so a rebuild of a million entries only concatenates).
    pub fn encode_der(&self, out: &mut Vec<u8>) -> Result<(), PkiError> {
        let mut serial: &[u8] = &self.serial;
        while let [0, rest @ ..] = serial {
            serial = rest;
        }
        let pad = serial.first().is_none_or(|b| b & 0x80 != 0);
        let int_len = serial.len() + usize::from(pad);
        let time = crl_time(self.revoked_at)?;
        let reason = self
            .reason
            .filter(|r| *r != RevocationReason::Unspecified)
            .map(|r| r.code());
        // Extensions { Extension { reasonCode OID, OCTET STRING { ENUMERATED } } }
        let ext_len = if reason.is_some() { 14 } else { 0 };
        let int_tlv = 1 + len_of_len(int_len) + int_len;
        let content = int_tlv + time.len() + ext_len;
        out.reserve(1 + len_of_len(content) + content);
        out.push(0x30);
        push_len(out, content);
        out.push(0x02);
        push_len(out, int_len);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(serial);
        out.extend_from_slice(&time);
        if let Some(code) = reason {
            let code = u8::try_from(code).map_err(|_| PkiError::Signing("reason code".into()))?;
            out.extend_from_slice(&[
                0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01, code,
            ]);
        }
        Ok(())
    }
}

/// A CRL Time as rcgen writes it (RFC 5280 §5.1.2.4): UTCTime for 1950 to 2049, else
/// GeneralizedTime; whole seconds.
fn crl_time(ms: Millis) -> Result<Vec<u8>, PkiError> {
    let t = crate::issuer::to_time(ms)?;
    let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    Ok(if (1950..2050).contains(&y) {
        let mut v = vec![0x17, 13];
        v.extend_from_slice(format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100).as_bytes());
        v
    } else if (0..=9999).contains(&y) {
        let mut v = vec![0x18, 15];
        v.extend_from_slice(format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z").as_bytes());
        v
    } else {
        return Err(PkiError::Signing(format!(
            "year {y} does not fit a CRL time"
        )));
    })
}

fn len_of_len(n: usize) -> usize {
    if n < 0x80 {
        1
    } else {
        1 + (usize::BITS - n.leading_zeros()).div_ceil(8) as usize
    }
}

fn push_len(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A non-negative INTEGER, DER (the CRL number and BaseCRLNumber).
fn der_uint(n: u64) -> Vec<u8> {
    let mut magnitude: &[u8] = &n.to_be_bytes();
    while let [0, rest @ ..] = magnitude {
        magnitude = rest;
    }
    let mut int = Vec::with_capacity(9);
    if magnitude.first().is_none_or(|b| b & 0x80 != 0) {
        int.push(0);
    }
    int.extend_from_slice(magnitude);
    tlv(0x02, &int)
}

/// A TLV with `tag` around `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + len_of_len(content.len()) + content.len());
    v.push(tag);
    push_len(&mut v, content.len());
    v.extend_from_slice(content);
    v
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
        let mut der = Vec::with_capacity(entries.len().saturating_mul(40));
        for e in entries {
            e.encode_der(&mut der)?;
        }
        self.sign_crl_der(number, this_update, next_update, &der)
    }

    /// Signs a CRL whose revokedCertificates are `entries_der`: the concatenated DER of each
    /// entry ([`RevokedEntry::encode_der`]). The same bytes rcgen writes for the same CRL
    /// (a test holds them equal), without building a value per entry, so a million entries
    /// sign in well under a second.
    pub fn sign_crl_der(
        &self,
        number: u64,
        this_update: Millis,
        next_update: Millis,
        entries_der: &[u8],
    ) -> Result<SignedCrl, PkiError> {
        self.sign_crl_der_linked(
            number,
            this_update,
            next_update,
            CrlLinks::default(),
            entries_der,
        )
    }

    /// [`IssuingCa::sign_crl_der`] with the extensions of `links`: a complete CRL naming its
    /// delta CRLs, or a delta CRL naming its base.
    pub fn sign_crl_der_linked(
        &self,
        number: u64,
        this_update: Millis,
        next_update: Millis,
        links: CrlLinks<'_>,
        entries_der: &[u8],
    ) -> Result<SignedCrl, PkiError> {
        // A CA certificate without a subjectKeyIdentifier (an imported one): RFC 5280
        // §4.2.1.2 method (1), the SHA-1 of its subjectPublicKey.
        let derived;
        let key_id = match &self.identity.key_id {
            Some(id) => id,
            None => {
                derived = aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                    &self.identity.public_key_bits,
                );
                derived.as_ref()
            }
        };
        let key = self.issuer.key();
        let alg = crate::ocsp::signature_algorithm(key)?;
        // authorityKeyIdentifier { keyIdentifier [0] } and cRLNumber, both non-critical.
        let mut aki = vec![0x06, 0x03, 0x55, 0x1d, 0x23];
        aki.extend(tlv(0x04, &tlv(0x30, &tlv(0x80, key_id))));
        let mut crl_number = vec![0x06, 0x03, 0x55, 0x1d, 0x14];
        crl_number.extend(tlv(0x04, &der_uint(number)));
        let mut exts = tlv(0x30, &aki);
        exts.extend(tlv(0x30, &crl_number));
        if let Some(base) = links.delta_base {
            // Critical, so a relying party that does not know delta CRLs rejects this one
            // rather than taking it for a complete CRL (RFC 5280 §5.2.4).
            let mut ext = vec![0x06, 0x03, 0x55, 0x1d, 0x1b, 0x01, 0x01, 0xff];
            ext.extend(tlv(0x04, &der_uint(base)));
            exts.extend(tlv(0x30, &ext));
        }
        if let Some(url) = links.freshest_crl {
            // The CRLDistributionPoints syntax: one DistributionPoint whose fullName is the URI.
            let mut ext = vec![0x06, 0x03, 0x55, 0x1d, 0x2e];
            let point = tlv(0x30, &tlv(0xa0, &tlv(0xa0, &tlv(0x86, url.as_bytes()))));
            ext.extend(tlv(0x04, &tlv(0x30, &point)));
            exts.extend(tlv(0x30, &ext));
        }
        let exts = tlv(0xa0, &tlv(0x30, &exts));
        let mut head = vec![0x02, 0x01, 0x01]; // version v2
        head.extend_from_slice(&alg);
        head.extend_from_slice(&self.identity.subject_der);
        head.extend_from_slice(&crl_time(this_update)?);
        head.extend_from_slice(&crl_time(next_update)?);
        // RFC 5280 §5.1.2.6: no revoked certificates, no revokedCertificates field.
        let list_len = if entries_der.is_empty() {
            0
        } else {
            1 + len_of_len(entries_der.len()) + entries_der.len()
        };
        // Each large buffer is written once, at its final size: a million entries make a
        // 40 MB CRL, and every extra copy would be another 40 MB at the peak.
        let tbs_len = head.len() + list_len + exts.len();
        let mut tbs = Vec::with_capacity(1 + len_of_len(tbs_len) + tbs_len);
        tbs.push(0x30);
        push_len(&mut tbs, tbs_len);
        tbs.extend_from_slice(&head);
        if !entries_der.is_empty() {
            tbs.push(0x30);
            push_len(&mut tbs, entries_der.len());
            tbs.extend_from_slice(entries_der);
        }
        tbs.extend_from_slice(&exts);
        let signature = key
            .sign(&tbs)
            .map_err(|e| PkiError::Signing(e.to_string()))?;
        let mut bits = Vec::with_capacity(signature.len() + 1);
        bits.push(0); // no unused bits
        bits.extend_from_slice(&signature);
        let bits = tlv(0x03, &bits);
        let body_len = tbs.len() + alg.len() + bits.len();
        let mut der = Vec::with_capacity(1 + len_of_len(body_len) + body_len);
        der.push(0x30);
        push_len(&mut der, body_len);
        der.extend_from_slice(&tbs);
        drop(tbs);
        der.extend_from_slice(&alg);
        der.extend_from_slice(&bits);
        let block = pem::Pem::new("X509 CRL", der);
        let pem = pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        let der = block.into_contents();
        Ok(SignedCrl { der, pem })
    }

    /// The same CRL through rcgen: the reference the direct encoder is tested against.
    #[cfg(test)]
    fn sign_crl_rcgen(
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

    /// The tbsCertList of a CRL, as signed.
    fn tbs_of(der: &[u8]) -> Result<Vec<u8>, PkiError> {
        let (_, parsed) = CertificateRevocationList::from_der(der)
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        Ok(parsed.tbs_cert_list.as_ref().to_vec())
    }

    #[test]
    fn direct_encoding_equals_rcgen_and_verifies() -> Result<(), PkiError> {
        let ca = IssuingCa::generate("crl CA", 1_700_000_000_000)?;
        let mut entries = vec![
            RevokedEntry {
                serial: vec![0x01],
                revoked_at: 1_700_000_100_000,
                reason: None,
            },
            RevokedEntry {
                serial: vec![0x80, 0x00, 0x01],
                revoked_at: 1_700_000_200_999,
                reason: Some(RevocationReason::CertificateHold),
            },
            RevokedEntry {
                serial: vec![0x7f; 20],
                // 2051: GeneralizedTime.
                revoked_at: 2_556_144_000_000,
                reason: Some(RevocationReason::Unspecified),
            },
            RevokedEntry {
                serial: vec![0x42; 16],
                revoked_at: 1_700_000_300_000,
                reason: Some(RevocationReason::CessationOfOperation),
            },
        ];
        // Enough entries for long-form lengths everywhere.
        for i in 0u32..3000 {
            entries.push(RevokedEntry {
                serial: [&[0x55u8][..], &i.to_be_bytes()].concat(),
                revoked_at: 1_700_000_000_000 + i64::from(i) * 1000,
                reason: (i % 2 == 0).then_some(RevocationReason::KeyCompromise),
            });
        }
        for (number, list) in [
            (1u64, &entries[..0]),
            (0x80, &entries[..4]),
            (u64::MAX, &entries[..]),
        ] {
            let direct = ca.sign_crl(number, 1_700_000_400_000, 1_700_004_000_000, list)?;
            let reference =
                ca.sign_crl_rcgen(number, 1_700_000_400_000, 1_700_004_000_000, list)?;
            assert_eq!(tbs_of(&direct.der)?, tbs_of(&reference.der)?, "{number}");
            let (rest, parsed) = CertificateRevocationList::from_der(&direct.der)
                .map_err(|e| PkiError::Malformed(e.to_string()))?;
            assert!(rest.is_empty());
            let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der())
                .map_err(|e| PkiError::Malformed(e.to_string()))?;
            assert!(parsed.verify_signature(ca_cert.public_key()).is_ok());
            assert_eq!(parsed.iter_revoked_certificates().count(), list.len());
            assert!(direct.pem.starts_with("-----BEGIN X509 CRL-----\n"));
        }
        Ok(())
    }

    /// The extension with this OID (dotted) of a parsed CRL: (critical, value).
    fn extension<'a>(
        crl: &'a CertificateRevocationList<'_>,
        oid: &str,
    ) -> Option<(bool, &'a [u8])> {
        crl.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid)
            .map(|e| (e.critical, e.value))
    }

    #[test]
    fn delta_crl_carries_a_critical_base_number_and_remove_from_crl() -> Result<(), PkiError> {
        let ca = IssuingCa::generate("crl CA", 1_700_000_000_000)?;
        let entries = vec![
            RevokedEntry {
                serial: vec![0x41],
                revoked_at: 1_700_000_100_000,
                reason: Some(RevocationReason::KeyCompromise),
            },
            RevokedEntry {
                serial: vec![0x42],
                revoked_at: 1_700_000_200_000,
                reason: Some(RevocationReason::RemoveFromCrl),
            },
        ];
        let mut der = Vec::new();
        for e in &entries {
            e.encode_der(&mut der)?;
        }
        let links = CrlLinks {
            freshest_crl: None,
            delta_base: Some(300),
        };
        let delta =
            ca.sign_crl_der_linked(0x1234, 1_700_000_300_000, 1_700_003_900_000, links, &der)?;
        let (rest, parsed) = CertificateRevocationList::from_der(&delta.der)
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        assert!(rest.is_empty());
        assert_eq!(
            parsed.crl_number().map(|n| n.to_string()),
            Some("4660".into())
        );
        let (critical, value) =
            extension(&parsed, "2.5.29.27").ok_or(PkiError::Malformed("no indicator".into()))?;
        assert!(critical, "deltaCRLIndicator must be critical");
        let (_, base) = x509_parser::der_parser::der::parse_der_integer(value)
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        assert_eq!(base.as_u64().ok(), Some(300));
        assert!(extension(&parsed, "2.5.29.46").is_none());
        let reasons: Vec<_> = parsed
            .iter_revoked_certificates()
            .map(|r| r.reason_code().map(|(_, c)| c.0))
            .collect();
        assert_eq!(reasons, vec![Some(1), Some(8)]);
        let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der())
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        assert!(parsed.verify_signature(ca_cert.public_key()).is_ok());
        Ok(())
    }

    #[test]
    fn complete_crl_names_its_delta_in_freshest_crl() -> Result<(), PkiError> {
        let ca = IssuingCa::generate("crl CA", 1_700_000_000_000)?;
        let url = "https://pki.example.test/crl/abc-delta.crl";
        let links = CrlLinks {
            freshest_crl: Some(url),
            delta_base: None,
        };
        let crl = ca.sign_crl_der_linked(9, 1_700_000_300_000, 1_700_003_900_000, links, &[])?;
        let (_, parsed) = CertificateRevocationList::from_der(&crl.der)
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        let (critical, value) =
            extension(&parsed, "2.5.29.46").ok_or(PkiError::Malformed("no freshestCRL".into()))?;
        assert!(!critical);
        // The CRLDistributionPoints syntax, which x509-parser reads for certificates.
        let (_, points) = x509_parser::extensions::CRLDistributionPoints::from_der(value)
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        let names: Vec<String> = points
            .iter()
            .filter_map(|p| match &p.distribution_point {
                Some(x509_parser::extensions::DistributionPointName::FullName(n)) => Some(
                    n.iter()
                        .map(|g| g.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => None,
            })
            .collect();
        assert_eq!(names, vec![format!("URI({url})")]);
        assert!(extension(&parsed, "2.5.29.27").is_none());
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
