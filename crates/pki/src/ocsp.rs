//! OCSP (RFC 6960): reading requests and signing responses with the issuing CA's key. Pure: the
//! caller looks the statuses up and passes the times.

use rcgen::PublicKeyData;
use rcgen::SigningKey;
use yasna::models::{GeneralizedTime, ObjectIdentifier};
use yasna::{DERWriter, Tag};

use crate::crl::{canonical_serial, RevocationReason};
use crate::issuer::{to_time, IssuingCa};
use crate::{Millis, PkiError};

/// id-pkix-ocsp-nonce.
const OID_NONCE: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 2];
/// id-pkix-ocsp-basic.
const OID_BASIC: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 1];

/// More single requests than this in one OCSPRequest is answered malformedRequest: no client
/// asks for that many at once, and it bounds the signing work one request can cause.
pub const MAX_SINGLE_REQUESTS: usize = 64;

/// OCSPResponseStatus values other than successful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspError {
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    Unauthorized = 6,
}

/// The hash algorithm of a CertID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertIdHash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
    /// One certplane does not compute: such a CertID never matches the CA.
    Other,
}

impl CertIdHash {
    fn of_oid(oid: &ObjectIdentifier) -> Self {
        match oid.components().as_slice() {
            [1, 3, 14, 3, 2, 26] => CertIdHash::Sha1,
            [2, 16, 840, 1, 101, 3, 4, 2, 1] => CertIdHash::Sha256,
            [2, 16, 840, 1, 101, 3, 4, 2, 2] => CertIdHash::Sha384,
            [2, 16, 840, 1, 101, 3, 4, 2, 3] => CertIdHash::Sha512,
            _ => CertIdHash::Other,
        }
    }

    fn digest(self, data: &[u8]) -> Option<Vec<u8>> {
        use aws_lc_rs::digest;
        let alg = match self {
            CertIdHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            CertIdHash::Sha256 => &digest::SHA256,
            CertIdHash::Sha384 => &digest::SHA384,
            CertIdHash::Sha512 => &digest::SHA512,
            CertIdHash::Other => return None,
        };
        Some(digest::digest(alg, data).as_ref().to_vec())
    }
}

/// One CertID of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// The CertID exactly as the client sent it, echoed in the answer so it matches.
    pub der: Vec<u8>,
    pub hash: CertIdHash,
    pub issuer_name_hash: Vec<u8>,
    pub issuer_key_hash: Vec<u8>,
    /// Canonical serial bytes (see [`canonical_serial`]).
    pub serial: Vec<u8>,
}

/// A parsed OCSPRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest {
    pub certs: Vec<CertId>,
    /// The nonce extension, whole (DER of the Extension), to echo in the response.
    pub nonce_extension: Option<Vec<u8>>,
}

fn malformed(e: yasna::ASN1Error) -> PkiError {
    PkiError::Malformed(format!("not a valid OCSP request: {e}"))
}

fn parse_cert_id(der: &[u8]) -> Result<CertId, PkiError> {
    let (hash, issuer_name_hash, issuer_key_hash, serial) = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let hash = r.next().read_sequence(|r| {
                let oid = r.next().read_oid()?;
                // Parameters: NULL or absent; anything else is tolerated and ignored.
                r.read_optional(|r| r.read_der())?;
                Ok(CertIdHash::of_oid(&oid))
            })?;
            let name = r.next().read_bytes()?;
            let key = r.next().read_bytes()?;
            let (serial, _) = r.next().read_bigint_bytes()?;
            Ok((hash, name, key, serial))
        })
    })
    .map_err(malformed)?;
    Ok(CertId {
        der: der.to_vec(),
        hash,
        issuer_name_hash,
        issuer_key_hash,
        serial: canonical_serial(&serial),
    })
}

/// Reads an OCSPRequest (DER). Signed requests are accepted; their signature is not checked
/// (certplane answers anyone, as public responders do).
pub fn parse_ocsp_request(der: &[u8]) -> Result<OcspRequest, PkiError> {
    if !crate::der_lengths::well_formed(der) {
        return Err(PkiError::Malformed(
            "the OCSP request is not well-formed DER (a length runs past its end)".into(),
        ));
    }
    let (cert_ids, extensions) = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let parts = r.next().read_sequence(|r| {
                r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_i64()))?;
                r.read_optional(|r| r.read_tagged(Tag::context(1), |r| r.read_der()))?;
                let mut ids = Vec::new();
                r.next().read_sequence_of(|r| {
                    let id = r.read_sequence(|r| {
                        let id = r.next().read_der()?;
                        r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_der()))?;
                        Ok(id)
                    })?;
                    ids.push(id);
                    Ok(())
                })?;
                let mut exts = Vec::new();
                r.read_optional(|r| {
                    r.read_tagged(Tag::context(2), |r| {
                        r.read_sequence_of(|r| {
                            exts.push(r.read_der()?);
                            Ok(())
                        })
                    })
                })?;
                Ok((ids, exts))
            })?;
            r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_der()))?;
            Ok(parts)
        })
    })
    .map_err(malformed)?;
    if cert_ids.is_empty() {
        return Err(PkiError::Malformed(
            "the OCSP request lists no certificate".into(),
        ));
    }
    if cert_ids.len() > MAX_SINGLE_REQUESTS {
        return Err(PkiError::Malformed(format!(
            "the OCSP request lists more than {MAX_SINGLE_REQUESTS} certificates"
        )));
    }
    let certs = cert_ids
        .iter()
        .map(|d| parse_cert_id(d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut nonce_extension = None;
    for ext in extensions {
        let oid = yasna::parse_der(&ext, |r| {
            r.read_sequence(|r| {
                let oid = r.next().read_oid()?;
                r.read_optional(|r| r.read_bool())?;
                r.next().read_bytes()?;
                Ok(oid)
            })
        })
        .map_err(malformed)?;
        if oid.components().as_slice() == OID_NONCE {
            nonce_extension = Some(ext);
        }
    }
    Ok(OcspRequest {
        certs,
        nonce_extension,
    })
}

/// What the responder says about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    Revoked {
        at: Millis,
        reason: Option<RevocationReason>,
    },
    Unknown,
}

/// One SingleResponse to sign.
#[derive(Debug, Clone)]
pub struct SingleAnswer<'a> {
    pub cert_id: &'a CertId,
    pub status: CertStatus,
    pub this_update: Millis,
    pub next_update: Option<Millis>,
}

/// An unsuccessful OCSPResponse: just the status (RFC 6960 §4.2.1).
pub fn ocsp_error_response(status: OcspError) -> Vec<u8> {
    yasna::construct_der(|w| w.write_sequence(|w| w.next().write_enum(status as i64)))
}

fn write_time(w: DERWriter, ms: Millis) -> Result<(), PkiError> {
    let t = to_time(ms)?;
    w.write_generalized_time(&GeneralizedTime::from_datetime(t));
    Ok(())
}

/// The signatureAlgorithm for the CA's key, as certificates signed by rcgen carry it.
pub(crate) fn signature_algorithm(key: &crate::CaKey) -> Result<Vec<u8>, PkiError> {
    let alg = key.algorithm();
    let (oid, null): (&[u64], bool) = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        (&[1, 2, 840, 10045, 4, 3, 2], false)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        (&[1, 2, 840, 10045, 4, 3, 3], false)
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        (&[1, 2, 840, 113549, 1, 1, 11], true)
    } else if alg == &rcgen::PKCS_ED25519 {
        (&[1, 3, 101, 112], false)
    } else {
        return Err(PkiError::Signing(
            "the CA key's algorithm cannot sign OCSP responses".into(),
        ));
    };
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&ObjectIdentifier::from_slice(oid));
            if null {
                w.next().write_null();
            }
        })
    }))
}

impl IssuingCa {
    /// Whether a CertID names this CA as the issuer (its name and key hashes match).
    pub fn issued(&self, id: &CertId) -> bool {
        let name = id.hash.digest(&self.identity.subject_der);
        let key = id.hash.digest(&self.identity.public_key_bits);
        name.as_deref() == Some(id.issuer_name_hash.as_slice())
            && key.as_deref() == Some(id.issuer_key_hash.as_slice())
    }

    /// A successful OCSPResponse carrying a BasicOCSPResponse signed by the CA itself
    /// (responderID byKey, no certs: the CA is the issuer, so clients need no delegation).
    pub fn sign_ocsp_response(
        &self,
        answers: &[SingleAnswer<'_>],
        nonce_extension: Option<&[u8]>,
        produced_at: Millis,
    ) -> Result<Vec<u8>, PkiError> {
        let key_hash = CertIdHash::Sha1
            .digest(&self.identity.public_key_bits)
            .ok_or_else(|| PkiError::Signing("no SHA-1".into()))?;
        // Times are checked before writing, since yasna's writer closures cannot fail.
        for a in answers {
            to_time(a.this_update)?;
            if let Some(n) = a.next_update {
                to_time(n)?;
            }
            if let CertStatus::Revoked { at, .. } = a.status {
                to_time(at)?;
            }
        }
        to_time(produced_at)?;
        let tbs = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next()
                    .write_tagged(Tag::context(2), |w| w.write_bytes(&key_hash));
                let _ = write_time(w.next(), produced_at);
                w.next().write_sequence(|w| {
                    for a in answers {
                        w.next().write_sequence(|w| {
                            w.next().write_der(&a.cert_id.der);
                            match a.status {
                                CertStatus::Good => w
                                    .next()
                                    .write_tagged_implicit(Tag::context(0), |w| w.write_null()),
                                CertStatus::Unknown => w
                                    .next()
                                    .write_tagged_implicit(Tag::context(2), |w| w.write_null()),
                                CertStatus::Revoked { at, reason } => {
                                    w.next().write_tagged_implicit(Tag::context(1), |w| {
                                        w.write_sequence(|w| {
                                            let _ = write_time(w.next(), at);
                                            if let Some(r) = reason {
                                                w.next().write_tagged(Tag::context(0), |w| {
                                                    w.write_enum(r.code())
                                                });
                                            }
                                        })
                                    })
                                }
                            }
                            let _ = write_time(w.next(), a.this_update);
                            if let Some(n) = a.next_update {
                                w.next().write_tagged(Tag::context(0), |w| {
                                    let _ = write_time(w, n);
                                });
                            }
                        });
                    }
                });
                if let Some(ext) = nonce_extension {
                    w.next().write_tagged(Tag::context(1), |w| {
                        w.write_sequence(|w| w.next().write_der(ext))
                    });
                }
            })
        });
        let key = self.issuer.key();
        let alg = signature_algorithm(key)?;
        let signature = key
            .sign(&tbs)
            .map_err(|e| PkiError::Signing(e.to_string()))?;
        let basic = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&tbs);
                w.next().write_der(&alg);
                w.next()
                    .write_bitvec_bytes(&signature, signature.len().saturating_mul(8));
            })
        });
        Ok(yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_enum(0);
                w.next().write_tagged(Tag::context(0), |w| {
                    w.write_sequence(|w| {
                        w.next().write_oid(&ObjectIdentifier::from_slice(OID_BASIC));
                        w.next().write_bytes(&basic);
                    })
                });
            })
        }))
    }
}

/// Builds a CertID for a certificate issued by `issuer_der` (SHA-1, as OpenSSL does): for tests
/// and for clients of this crate.
pub fn cert_id_for(issuer_der: &[u8], serial: &[u8]) -> Result<Vec<u8>, PkiError> {
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer_der)
        .map_err(|e| PkiError::Malformed(e.to_string()))?;
    let sha1 = |d: &[u8]| CertIdHash::Sha1.digest(d).unwrap_or_default();
    let name_hash = sha1(issuer.tbs_certificate.subject.as_raw());
    let key_hash = sha1(&issuer.tbs_certificate.subject_pki.subject_public_key.data);
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&ObjectIdentifier::from_slice(&[1, 3, 14, 3, 2, 26]));
                w.next().write_null();
            });
            w.next().write_bytes(&name_hash);
            w.next().write_bytes(&key_hash);
            w.next().write_bigint_bytes(serial, true);
        })
    }))
}

/// An OCSPRequest for the given CertIDs, with a nonce when given: for tests.
pub fn build_ocsp_request(cert_ids: &[Vec<u8>], nonce: Option<&[u8]>) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next().write_sequence(|w| {
                    for id in cert_ids {
                        w.next().write_sequence(|w| w.next().write_der(id));
                    }
                });
                if let Some(n) = nonce {
                    w.next().write_tagged(Tag::context(2), |w| {
                        w.write_sequence(|w| {
                            w.next().write_sequence(|w| {
                                w.next().write_oid(&ObjectIdentifier::from_slice(OID_NONCE));
                                w.next()
                                    .write_bytes(&yasna::construct_der(|w| w.write_bytes(n)));
                            })
                        })
                    });
                }
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::der_parser::ber::BerObjectContent;
    use x509_parser::der_parser::parse_der;

    fn ca() -> Result<IssuingCa, PkiError> {
        IssuingCa::generate("ocsp CA", 1_700_000_000_000)
    }

    #[test]
    fn requests_round_trip_and_match_the_ca() -> Result<(), PkiError> {
        let ca = ca()?;
        let other = IssuingCa::generate("other", 1_700_000_000_000)?;
        let ids = vec![
            cert_id_for(ca.cert_der(), &[0x41, 1])?,
            cert_id_for(other.cert_der(), &[0x42])?,
        ];
        let req = parse_ocsp_request(&build_ocsp_request(&ids, Some(b"0123456789abcdef")))?;
        assert_eq!(req.certs.len(), 2);
        assert_eq!(req.certs[0].serial, vec![0x41, 1]);
        assert!(ca.issued(&req.certs[0]));
        assert!(!ca.issued(&req.certs[1]));
        assert!(req.nonce_extension.is_some());
        let plain = parse_ocsp_request(&build_ocsp_request(&ids[..1], None))?;
        assert!(plain.nonce_extension.is_none());
        Ok(())
    }

    #[test]
    fn garbage_and_truncated_requests_are_malformed() -> Result<(), PkiError> {
        let ca = ca()?;
        let good = build_ocsp_request(&[cert_id_for(ca.cert_der(), &[1])?], None);
        for bad in [
            &b""[..],
            &b"hello"[..],
            &good[..good.len() - 1],
            &good[..3],
            &build_ocsp_request(&[], None)[..],
        ] {
            assert!(matches!(
                parse_ocsp_request(bad),
                Err(PkiError::Malformed(_))
            ));
        }
        let too_many: Vec<_> = (0..=MAX_SINGLE_REQUESTS)
            .map(|i| cert_id_for(ca.cert_der(), &[1, i as u8]))
            .collect::<Result<_, _>>()?;
        assert!(parse_ocsp_request(&build_ocsp_request(&too_many, None)).is_err());
        Ok(())
    }

    #[test]
    fn responses_are_well_formed_and_signed() -> Result<(), PkiError> {
        let ca = ca()?;
        let ids = [
            cert_id_for(ca.cert_der(), &[0x41])?,
            cert_id_for(ca.cert_der(), &[0x42])?,
        ];
        let req = parse_ocsp_request(&build_ocsp_request(&ids, Some(b"nonce-nonce-1234")))?;
        let answers = [
            SingleAnswer {
                cert_id: &req.certs[0],
                status: CertStatus::Good,
                this_update: 1_700_000_000_000,
                next_update: Some(1_700_003_600_000),
            },
            SingleAnswer {
                cert_id: &req.certs[1],
                status: CertStatus::Revoked {
                    at: 1_699_999_000_000,
                    reason: Some(RevocationReason::CertificateHold),
                },
                this_update: 1_700_000_000_000,
                next_update: None,
            },
        ];
        let resp =
            ca.sign_ocsp_response(&answers, req.nonce_extension.as_deref(), 1_700_000_000_000)?;
        let bad = |m: &str| PkiError::Malformed(m.to_string());
        let (rest, outer) = parse_der(&resp).map_err(|e| bad(&e.to_string()))?;
        assert!(rest.is_empty());
        let BerObjectContent::Sequence(items) = &outer.content else {
            return Err(bad("not a sequence"));
        };
        assert_eq!(items[0].as_u32().ok(), Some(0));
        // Dig out the BasicOCSPResponse and check its signature with x509-parser's verifier.
        let bytes = items[1].as_slice().map_err(|e| bad(&e.to_string()))?;
        let (_, rb) = parse_der(bytes).map_err(|e| bad(&e.to_string()))?;
        let BerObjectContent::Sequence(rb) = &rb.content else {
            return Err(bad("responseBytes"));
        };
        let basic = rb[1].as_slice().map_err(|e| bad(&e.to_string()))?;
        let (_, b) = parse_der(basic).map_err(|e| bad(&e.to_string()))?;
        let BerObjectContent::Sequence(b) = &b.content else {
            return Err(bad("basic"));
        };
        let BerObjectContent::Sequence(rd) = &b[0].content else {
            return Err(bad("tbsResponseData"));
        };
        // responderID, producedAt, responses, responseExtensions (the nonce).
        assert_eq!(rd.len(), 4);
        let BerObjectContent::Sequence(responses) = &rd[2].content else {
            return Err(bad("responses"));
        };
        assert_eq!(responses.len(), 2);
        let nonce_seen = basic
            .windows(b"nonce-nonce-1234".len())
            .any(|w| w == b"nonce-nonce-1234");
        assert!(nonce_seen);
        // The signature covers the tbsResponseData exactly as encoded.
        let (tbs_der, sig) = yasna::parse_der(basic, |r| {
            r.read_sequence(|r| {
                let tbs = r.next().read_der()?;
                r.next().read_der()?;
                let (sig, _) = r.next().read_bitvec_bytes()?;
                Ok((tbs, sig))
            })
        })
        .map_err(|e| bad(&e.to_string()))?;
        let (_, ca_cert) =
            x509_parser::parse_x509_certificate(ca.cert_der()).map_err(|e| bad(&e.to_string()))?;
        let key = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            ca_cert.public_key().subject_public_key.data.to_vec(),
        );
        assert!(key.verify(&tbs_der, &sig).is_ok());
        Ok(())
    }

    #[test]
    fn error_responses_carry_only_the_status() {
        assert_eq!(
            ocsp_error_response(OcspError::MalformedRequest),
            vec![0x30, 0x03, 0x0a, 0x01, 0x01]
        );
        assert_eq!(
            ocsp_error_response(OcspError::Unauthorized),
            vec![0x30, 0x03, 0x0a, 0x01, 0x06]
        );
    }
}
