//! certplane's issuing CA: the key that signs every certificate certplane makes.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, RsaKeySize,
    SanType, SerialNumber, SubjectPublicKeyInfo,
};
use time::OffsetDateTime;
use x509_parser::der_parser::ber::BerObjectContent;
use x509_parser::prelude::{FromDer, X509Name};
use zeroize::Zeroizing;

use crate::ca_key::CaKey;
use crate::{Millis, PkiError};

/// A fresh key pair returned once to the caller of CreateKeysAndCertificate.
pub struct IssuedKeyPair {
    /// SubjectPublicKeyInfo, `-----BEGIN PUBLIC KEY-----`.
    pub public_key_pem: String,
    /// PKCS#1, `-----BEGIN RSA PRIVATE KEY-----`, as AWS IoT returns it.
    pub private_key_pem: Zeroizing<String>,
}

pub struct IssuingCa {
    cert_pem: String,
    cert_der: Vec<u8>,
    pub(crate) issuer: Issuer<'static, CaKey>,
    pub(crate) identity: CaIdentity,
    /// Where relying parties find this CA's certificate, CRL and OCSP responder; written into
    /// every device certificate [`IssuingCa::issue`] signs once set.
    distribution: Option<Distribution>,
}

/// What identifies the CA in URLs and OCSP requests, computed once from its certificate.
#[derive(Debug, Clone)]
pub(crate) struct CaIdentity {
    /// Lowercase hex of the first 16 bytes of SHA-256 over the CA certificate's
    /// SubjectPublicKeyInfo DER: stable for the key, whatever the certificate's other fields.
    pub(crate) ca_id: String,
    /// The subject name DER (what an OCSP CertID's issuerNameHash hashes).
    pub(crate) subject_der: Vec<u8>,
    /// The subjectPublicKey BIT STRING's contents (what issuerKeyHash hashes).
    pub(crate) public_key_bits: Vec<u8>,
    /// The subjectKeyIdentifier, which the certificates it signs name as their
    /// authorityKeyIdentifier.
    pub(crate) key_id: Option<Vec<u8>>,
    pub(crate) common_name: String,
    pub(crate) not_after: Millis,
}

impl CaIdentity {
    fn of_cert(cert_der: &[u8]) -> Result<Self, PkiError> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
            .map_err(|e| PkiError::Malformed(format!("issuing CA certificate: {e}")))?;
        let spki = &cert.tbs_certificate.subject_pki;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki.raw);
        let ca_id = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key_id = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.0.to_vec())
                }
                _ => None,
            });
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or("")
            .to_string();
        Ok(CaIdentity {
            ca_id,
            subject_der: cert.tbs_certificate.subject.as_raw().to_vec(),
            public_key_bits: spki.subject_public_key.data.to_vec(),
            key_id,
            common_name,
            not_after: cert.validity().not_after.timestamp().saturating_mul(1000),
        })
    }
}

/// The URLs written into issued certificates' AIA and CRL distribution points extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    pub ocsp_url: String,
    pub ca_issuers_url: String,
    pub crl_url: String,
    /// Where this CA's delta CRLs are, beside its complete CRL: named by the complete CRL's
    /// freshestCRL extension (issued certificates carry no freshestCRL).
    pub delta_crl_url: String,
}

/// id-pe-authorityInfoAccess (RFC 5280 §4.2.2.1).
const OID_AIA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
const OID_AD_OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
const OID_AD_CA_ISSUERS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 2];

/// The AuthorityInfoAccess extension value: rcgen has no field for it, so it is DER-encoded
/// here and added as a custom extension.
fn aia_extension(d: &Distribution) -> rcgen::CustomExtension {
    let value = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (method, url) in [
                (OID_AD_OCSP, &d.ocsp_url),
                (OID_AD_CA_ISSUERS, &d.ca_issuers_url),
            ] {
                w.next().write_sequence(|w| {
                    w.next()
                        .write_oid(&yasna::models::ObjectIdentifier::from_slice(method));
                    // accessLocation GeneralName: uniformResourceIdentifier [6] IA5String
                    w.next()
                        .write_tagged_implicit(yasna::Tag::context(6), |w| w.write_ia5_string(url));
                });
            }
        })
    });
    rcgen::CustomExtension::from_oid_content(OID_AIA, value)
}

/// Device certificates made by certplane are valid until the end of 2049, as AWS IoT's are.
pub const ISSUED_NOT_AFTER_MS: Millis = 2_524_607_999_000; // 2049-12-31T23:59:59Z

pub(crate) fn to_time(ms: Millis) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map_err(|e| PkiError::Signing(format!("time out of range: {e}")))
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| PkiError::Signing("no randomness for a serial number".into()))?;
    // Positive and exactly 16 bytes long in DER.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn sign_err(e: rcgen::Error) -> PkiError {
    PkiError::Signing(e.to_string())
}

/// Copies a DER-encoded X.509 name into rcgen's form, attribute by attribute.
fn name_from_der(der: &[u8]) -> Result<DistinguishedName, PkiError> {
    let (_, name) = X509Name::from_der(der)
        .map_err(|e| PkiError::Malformed(format!("the subject name is not valid: {e}")))?;
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        for attr in rdn.iter() {
            let oid: Vec<u64> = match attr.attr_type().iter() {
                Some(arcs) => arcs.collect(),
                None => continue,
            };
            if let Ok(value) = attr.as_str() {
                dn.push(
                    DnType::from_oid(&oid),
                    DnValue::Utf8String(value.to_string()),
                );
            }
        }
    }
    Ok(dn)
}

/// PKCS#8 `PrivateKeyInfo` → the PKCS#1 `RSAPrivateKey` it wraps.
fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Result<Vec<u8>, PkiError> {
    let bad = || PkiError::Signing("unexpected PKCS#8 layout".into());
    let (_, obj) = x509_parser::der_parser::parse_der(pkcs8).map_err(|_| bad())?;
    match &obj.content {
        BerObjectContent::Sequence(items) if items.len() >= 3 => {
            items[2].as_slice().map(<[u8]>::to_vec).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

impl IssuingCa {
    /// Makes a new self-signed ECDSA P-256 CA with a fresh software key.
    pub fn generate(common_name: &str, now: Millis) -> Result<Self, PkiError> {
        Self::self_signed(common_name, CaKey::generate_software()?, now)
    }

    /// Makes a new self-signed CA certificate for `key` (a software key or one in a token).
    pub fn self_signed(common_name: &str, key: CaKey, now: Millis) -> Result<Self, PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "certplane");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = to_time(now - 3_600_000)?;
        params.not_after = to_time(ISSUED_NOT_AFTER_MS + 86_400_000)?;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(sign_err)?;
        Ok(IssuingCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            identity: CaIdentity::of_cert(cert.der())?,
            issuer: Issuer::new(params, key),
            distribution: None,
        })
    }

    /// Loads a CA from its certificate (PEM; the first of a chain) and its key; the key must
    /// be the certificate's, and the certificate a CA certificate.
    pub fn from_parts(cert_pem: &str, key: CaKey) -> Result<Self, PkiError> {
        let cert_der = pem::parse(cert_pem.as_bytes())
            .map_err(|e| PkiError::Malformed(format!("CA certificate: {e}")))?
            .into_contents();
        // LF line endings, as every other PEM certplane writes (pem::encode defaults to CRLF).
        let cert_pem = pem::encode_config(
            &pem::Pem::new("CERTIFICATE", cert_der.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        let identity = CaIdentity::of_cert(&cert_der)?;
        if identity.public_key_bits != key.der_bytes() {
            return Err(PkiError::Rejected(
                "the private key does not belong to the CA certificate".into(),
            ));
        }
        let parsed = crate::parse_certificate_der(&cert_der)?;
        if !parsed.is_ca {
            return Err(PkiError::Rejected(
                "the certificate is not a CA certificate (basicConstraints cA is not set)".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| PkiError::Malformed(format!("CA certificate: {e}")))?;
        Ok(IssuingCa {
            identity,
            cert_pem,
            cert_der,
            issuer,
            distribution: None,
        })
    }

    /// Loads a CA from its certificate PEM and its PKCS#8 key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        Self::from_parts(cert_pem, CaKey::software_from_pem(key_pem)?)
    }

    /// Sets the public base URL (e.g. `https://ca.example.com`) relying parties reach this
    /// server at: certificates issued from now on name `{base}/ocsp`, `{base}/ca/{caId}.crt`
    /// and `{base}/crl/{caId}.crl`.
    pub fn with_public_url(mut self, base: &str) -> Self {
        let base = base.trim_end_matches('/');
        let id = &self.identity.ca_id;
        self.distribution = Some(Distribution {
            ocsp_url: format!("{base}/ocsp"),
            ca_issuers_url: format!("{base}/ca/{id}.crt"),
            crl_url: format!("{base}/crl/{id}.crl"),
            delta_crl_url: format!("{base}/crl/{id}-delta.crl"),
        });
        self
    }

    /// The stable id of this CA in URLs: see [`CaIdentity::ca_id`].
    pub fn ca_id(&self) -> &str {
        &self.identity.ca_id
    }

    pub fn distribution(&self) -> Option<&Distribution> {
        self.distribution.as_ref()
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The private key's PKCS#8 DER, for sealing it under the master key; `None` when the key
    /// is in a token. Never log it.
    pub fn key_pkcs8(&self) -> Option<Zeroizing<Vec<u8>>> {
        self.issuer.key().export_pkcs8()
    }

    /// The key's PKCS#8 PEM (for tests and exports of software keys).
    pub fn key_pem(&self) -> Option<Zeroizing<String>> {
        self.key_pkcs8()
            .map(|der| Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()))))
    }

    pub fn key(&self) -> &CaKey {
        self.issuer.key()
    }

    /// The subject common name.
    pub fn common_name(&self) -> &str {
        &self.identity.common_name
    }

    pub fn not_after(&self) -> Millis {
        self.identity.not_after
    }

    /// Whether this CA signed the certificate whose authorityKeyIdentifier and issuer name
    /// are given (the key id decides when both sides have one).
    pub fn signed(&self, authority_key_id: Option<&[u8]>, issuer_der: &[u8]) -> bool {
        match (authority_key_id, &self.identity.key_id) {
            (Some(aki), Some(ski)) => aki == ski.as_slice(),
            _ => issuer_der == self.identity.subject_der.as_slice(),
        }
    }

    /// Signs a certificate as asked.
    pub fn issue(&self, req: &IssueRequest<'_>) -> Result<(String, Vec<u8>), PkiError> {
        let public = SubjectPublicKeyInfo::from_der(req.spki_der)
            .map_err(|e| PkiError::Rejected(format!("unsupported public key: {e}")))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = match &req.subject {
            Subject::Der(der) => name_from_der(der)?,
            Subject::CommonName(cn) => {
                let mut dn = DistinguishedName::new();
                dn.push(DnType::CommonName, cn.as_str());
                dn
            }
        };
        for name in req.dns_names {
            let ia5 = name
                .as_str()
                .try_into()
                .map_err(|_| PkiError::Rejected(format!("{name:?} is not a valid DNS name")))?;
            params.subject_alt_names.push(SanType::DnsName(ia5));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        if let Some(d) = &self.distribution {
            params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
                uris: vec![d.crl_url.clone()],
            }];
            params.custom_extensions.push(aia_extension(d));
        }
        params.not_before = to_time(req.not_before)?;
        params.not_after = to_time(req.not_after)?;
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(&public, &self.issuer).map_err(sign_err)?;
        Ok((cert.pem(), cert.der().to_vec()))
    }

    /// A TLS server certificate (fresh ECDSA P-256 key, serverAuth) for the given DNS names
    /// and IP addresses, valid from an hour before `now` for `days`: its PEM and its key's
    /// PKCS#8 PEM.
    pub fn issue_tls_server(
        &self,
        dns_names: &[String],
        ips: &[std::net::IpAddr],
        now: Millis,
        days: i64,
    ) -> Result<(String, Zeroizing<String>), PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(sign_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "certplane");
        dn.push(
            DnType::CommonName,
            dns_names.first().map(String::as_str).unwrap_or("certplane"),
        );
        params.distinguished_name = dn;
        for name in dns_names {
            let ia5 = name
                .as_str()
                .try_into()
                .map_err(|_| PkiError::Rejected(format!("{name:?} is not a valid DNS name")))?;
            params.subject_alt_names.push(SanType::DnsName(ia5));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_time(now - 3_600_000)?;
        params.not_after = to_time(now.saturating_add(days.saturating_mul(86_400_000)))?;
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(&key, &self.issuer).map_err(sign_err)?;
        Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
    }

    /// CreateKeysAndCertificate: a new RSA-2048 key pair and a certificate for it.
    pub fn create_keys_and_certificate(
        &self,
        now: Millis,
    ) -> Result<(String, Vec<u8>, IssuedKeyPair), PkiError> {
        let (spki, keys) = generate_rsa_key()?;
        let (pem_text, der) = self.issue(&IssueRequest {
            subject: Subject::CommonName("certplane device certificate".into()),
            spki_der: &spki,
            dns_names: &[],
            not_before: now,
            not_after: ISSUED_NOT_AFTER_MS,
        })?;
        Ok((pem_text, der, keys))
    }
}

/// How long a TLS server certificate made at start stays valid (the CA/Browser Forum maximum;
/// the gateway makes a new one at every start anyway).
pub const SERVER_CERT_VALIDITY_MS: Millis = 397 * 86_400_000;

/// A TLS server certificate with its private key.
pub struct ServerCertificate {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// PKCS#8 DER of the fresh P-256 key.
    pub key_der: Zeroizing<Vec<u8>>,
}

impl IssuingCa {
    /// A TLS server certificate for `names` (DNS names, `*.` wildcards, or IP addresses, all
    /// in its subjectAltName) on a fresh ECDSA P-256 key, so clients that trust this CA
    /// (`ca.pem`) trust the server.
    pub fn issue_server_certificate(
        &self,
        names: &[String],
        now: Millis,
    ) -> Result<ServerCertificate, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(sign_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "certplane");
        dn.push(
            DnType::CommonName,
            names
                .first()
                .map(String::as_str)
                .unwrap_or("certplane device gateway"),
        );
        params.distinguished_name = dn;
        for name in names {
            let san = match name.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.as_str().try_into().map_err(|_| {
                    PkiError::Rejected(format!("{name:?} is not a valid DNS name"))
                })?),
            };
            params.subject_alt_names.push(san);
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_time(now - 3_600_000)?;
        params.not_after = to_time(now + SERVER_CERT_VALIDITY_MS)?;
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(&key, &self.issuer).map_err(sign_err)?;
        Ok(ServerCertificate {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_der: Zeroizing::new(key.serialize_der()),
        })
    }
}

/// Whose name a certificate carries.
pub enum Subject<'a> {
    /// A DER-encoded X.509 name, e.g. copied from a CSR.
    Der(&'a [u8]),
    CommonName(String),
}

/// What to certify: the subject, the public key (SubjectPublicKeyInfo DER), DNS names for the
/// subjectAltName extension, and the validity.
pub struct IssueRequest<'a> {
    pub subject: Subject<'a>,
    pub spki_der: &'a [u8],
    pub dns_names: &'a [String],
    pub not_before: Millis,
    pub not_after: Millis,
}

/// A fresh RSA-2048 key: its SubjectPublicKeyInfo DER and the PEM pair returned to the caller.
pub fn generate_rsa_key() -> Result<(Vec<u8>, IssuedKeyPair), PkiError> {
    let key =
        KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048).map_err(sign_err)?;
    let pkcs1 = Zeroizing::new(pkcs8_to_pkcs1(key.serialized_der())?);
    let private_key_pem = Zeroizing::new(pem::encode(&pem::Pem::new(
        "RSA PRIVATE KEY",
        pkcs1.to_vec(),
    )));
    Ok((
        key.subject_public_key_info(),
        IssuedKeyPair {
            public_key_pem: key.public_key_pem(),
            private_key_pem,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_certificate_pem, parse_csr, verify_signed_by};

    #[test]
    fn issued_certificates_chain_to_the_ca() -> Result<(), PkiError> {
        let ca = IssuingCa::generate("test CA", 1_700_000_000_000)?;
        let (pem_text, der, keys) = ca.create_keys_and_certificate(1_700_000_000_000)?;
        assert!(keys
            .private_key_pem
            .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(keys
            .public_key_pem
            .starts_with("-----BEGIN PUBLIC KEY-----"));
        let parsed = parse_certificate_pem(&pem_text)?;
        assert_eq!(parsed.der, der);
        assert!(verify_signed_by(&der, ca.cert_der()));
        let key = ca.key_pem().ok_or(PkiError::Signing("no key".into()))?;
        let reloaded = IssuingCa::from_pem(ca.cert_pem(), &key)?;
        // A key that is not the certificate's is refused.
        let other_key = IssuingCa::generate("x", 0)?
            .key_pem()
            .ok_or(PkiError::Signing("no key".into()))?;
        assert!(IssuingCa::from_pem(ca.cert_pem(), &other_key).is_err());
        let other = IssuingCa::generate("other", 1_700_000_000_000)?;
        let (_, der2, _) = reloaded.create_keys_and_certificate(1_700_000_000_000)?;
        assert!(verify_signed_by(&der2, ca.cert_der()));
        assert!(!verify_signed_by(&der2, other.cert_der()));
        Ok(())
    }

    #[test]
    fn issued_certificates_name_the_ocsp_crl_and_ca_urls() -> Result<(), PkiError> {
        let ca = IssuingCa::generate("test CA", 1_700_000_000_000)?
            .with_public_url("https://ca.example.com/");
        let id = ca.ca_id().to_string();
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        // Stable for the key: the reloaded CA has the same id.
        assert_eq!(
            IssuingCa::from_pem(
                ca.cert_pem(),
                &ca.key_pem().ok_or(PkiError::Signing("no key".into()))?
            )?
            .ca_id(),
            id
        );
        let (_, der, _) = ca.create_keys_and_certificate(1_700_000_000_000)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        let mut aia = Vec::new();
        let mut cdp = Vec::new();
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::AuthorityInfoAccess(a) => {
                    for d in &a.accessdescs {
                        aia.push((
                            d.access_method.to_id_string(),
                            format!("{:?}", d.access_location),
                        ));
                    }
                }
                x509_parser::extensions::ParsedExtension::CRLDistributionPoints(p) => {
                    cdp.push(format!("{p:?}"));
                }
                _ => {}
            }
        }
        assert_eq!(aia.len(), 2, "{aia:?}");
        assert_eq!(aia[0].0, "1.3.6.1.5.5.7.48.1");
        assert!(aia[0].1.contains("https://ca.example.com/ocsp"));
        assert_eq!(aia[1].0, "1.3.6.1.5.5.7.48.2");
        assert!(aia[1]
            .1
            .contains(&format!("https://ca.example.com/ca/{id}.crt")));
        assert!(
            cdp[0].contains(&format!("https://ca.example.com/crl/{id}.crl")),
            "{cdp:?}"
        );
        // Without a public URL, none of them.
        let plain = IssuingCa::generate("plain", 1_700_000_000_000)?;
        let (_, der, _) = plain.create_keys_and_certificate(1_700_000_000_000)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        assert!(cert.extensions().iter().all(|e| !matches!(
            e.parsed_extension(),
            x509_parser::extensions::ParsedExtension::AuthorityInfoAccess(_)
        )));
        Ok(())
    }

    #[test]
    fn server_certificates_name_hosts_and_addresses() -> Result<(), PkiError> {
        let ca = IssuingCa::generate("test CA", 1_700_000_000_000)?;
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "*.iot.us-east-1.localhost".to_string(),
        ];
        let server = ca.issue_server_certificate(&names, 1_700_000_000_000)?;
        assert!(verify_signed_by(&server.cert_der, ca.cert_der()));
        let (_, cert) = x509_parser::parse_x509_certificate(&server.cert_der)
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| PkiError::Malformed(e.to_string()))?
            .map(|s| format!("{:?}", s.value.general_names))
            .unwrap_or_default();
        assert!(san.contains("localhost") && san.contains("*.iot.us-east-1.localhost"));
        assert!(san.contains("IPAddress"), "{san}");
        assert!(ca
            .issue_server_certificate(&["é.example".into()], 0)
            .is_err());
        Ok(())
    }

    #[test]
    fn csr_subject_and_key_are_certified() -> Result<(), PkiError> {
        let ca = IssuingCa::generate("test CA", 1_700_000_000_000)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(sign_err)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "device-7");
        let csr = params.serialize_request(&key).map_err(sign_err)?;
        let info = parse_csr(&csr.pem().map_err(sign_err)?)?;
        let names = vec!["device-7.example.com".to_string()];
        let (pem_text, der) = ca.issue(&IssueRequest {
            subject: Subject::Der(&info.subject_der),
            spki_der: &info.spki_der,
            dns_names: &names,
            not_before: 0,
            not_after: ISSUED_NOT_AFTER_MS,
        })?;
        let parsed = parse_certificate_pem(&pem_text)?;
        assert_eq!(parsed.subject_cn.as_deref(), Some("device-7"));
        assert!(verify_signed_by(&der, ca.cert_der()));
        assert!(parse_csr(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
        )
        .is_err());
        Ok(())
    }
}
