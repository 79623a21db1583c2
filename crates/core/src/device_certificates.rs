//! Device certificates as ApsaraMQ for MQTT sees them (CA and device certificates found by
//! serial number inside an instance), and admission: the one rule deciding whether a device
//! presenting a certificate may talk to a broker, for an MQTT instance or an AWS account.
//!
//! Both kinds of tenant keep their certificates in the shared registry (`certificates.rs`,
//! `ca_certificates.rs`); this module adds the lookups by serial and the automatic registration
//! of a device certificate the first time a device presents it.

use certplane_pki::{parse_certificate_der, parse_certificate_pem, verify_signed_by};

use crate::ca_certificates::{CaCertificate, CaRegistration, CaStatus};
use crate::certificates::{
    pki_error, Certificate, CertificateMode, CertificateStatus, Origin, Registration,
};
use crate::claims;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::{CertificateId, Scope};
use crate::mqtt_instances::MqttInstance;
use crate::service::Core;
use crate::store::{self, Document, Filter, PageQuery, Stored, Write};

/// A serial number as ApsaraMQ shows it (`Sn`, `CaSn`, `DeviceSn`): the lower-case hex of the
/// serial's DER content octets.
pub fn serial_sn(serial_hex: &str) -> String {
    serial_hex.to_ascii_lowercase()
}

/// Serials compare as numbers written in hex: case and leading zeros do not matter.
pub fn same_serial(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim_start_matches('0').to_ascii_lowercase();
    norm(a) == norm(b)
}

fn canonical_serial(s: &str) -> String {
    let t = s.trim_start_matches('0').to_ascii_lowercase();
    if t.is_empty() {
        "0".into()
    } else {
        t
    }
}

/// A serial number a client sent: hex digits, at most 128 characters (the documented limit).
pub fn parse_sn(name: &str, s: &str) -> DomainResult<String> {
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DomainError::invalid(format!(
            "{name} must be a certificate serial number in hex (1 to 128 characters), got {s:?}"
        )));
    }
    Ok(s.to_ascii_lowercase())
}

/// The claim namespace keeping device serials unique under one CA of one instance (and finding
/// a device certificate by its serial in one read).
fn device_namespace(scope: &Scope, ca: &CertificateId) -> String {
    format!("device-sn:{}:{}", scope.region, ca)
}

/// Who a gateway connection is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenant {
    Mqtt(MqttInstance),
    /// An AWS account and region.
    Aws(Scope),
}

impl Tenant {
    pub fn scope(&self) -> Scope {
        match self {
            Tenant::Mqtt(i) => i.registry_scope(),
            Tenant::Aws(s) => s.clone(),
        }
    }
}

/// Why a device is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotYetValid,
    Expired,
    /// No CA registered in the tenant signed the certificate.
    UnknownCa,
    CaNotActive,
    /// Registered, but not ACTIVE (inactive, revoked, pending transfer or activation).
    NotActive(CertificateStatus),
    /// The certificate is registered to another tenant.
    RegisteredElsewhere,
    /// AWS without auto-registration on the CA: the certificate must be registered first.
    NotRegistered,
    /// Another certificate of the same CA already holds this serial number.
    DuplicateSerial,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotYetValid => f.write_str("the certificate is not yet valid"),
            Refusal::Expired => f.write_str("the certificate has expired"),
            Refusal::UnknownCa => f.write_str("no registered CA certificate signed it"),
            Refusal::CaNotActive => f.write_str("its CA certificate is not active"),
            Refusal::NotActive(s) => write!(f, "the certificate is {}", s.as_str()),
            Refusal::RegisteredElsewhere => {
                f.write_str("the certificate is registered to another tenant")
            }
            Refusal::NotRegistered => f.write_str("the certificate is not registered"),
            Refusal::DuplicateSerial => {
                f.write_str("another certificate of its CA has the same serial number")
            }
        }
    }
}

/// The decision on one device certificate.
#[derive(Debug, Clone)]
pub struct Admission {
    pub certificate_id: CertificateId,
    /// The CA that signed it, when one registered in the tenant did.
    pub ca_id: Option<CertificateId>,
    pub verdict: Result<(), Refusal>,
    /// True when this call registered the certificate.
    pub registered_now: bool,
}

impl Core {
    /// RegisterCaCertificate: proof of possession against the instance's register code; the CA
    /// is active at once.
    pub async fn register_mqtt_ca(
        &self,
        instance: &MqttInstance,
        name: &str,
        ca_pem: &str,
        verification_pem: &str,
    ) -> DomainResult<CaCertificate> {
        self.register_ca_certificate(
            &instance.registry_scope(),
            CaRegistration {
                ca_pem,
                verification_pem: Some(verification_pem),
                mode: Some(CertificateMode::Default),
                set_as_active: true,
                name: Some(name.to_string()),
                consume_registration_code: true,
                ..CaRegistration::default()
            },
        )
        .await
    }

    /// The instance's CA certificates in registration order.
    pub async fn instance_cas(&self, scope: &Scope) -> DomainResult<Vec<Stored<CaCertificate>>> {
        let filter = Filter {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            ..Filter::default()
        };
        store::query::<CaCertificate>(self.store(), &filter, PageQuery::all()).await
    }

    /// The CA certificate of the instance with this serial.
    pub async fn ca_by_sn(&self, scope: &Scope, sn: &str) -> DomainResult<Stored<CaCertificate>> {
        for ca in self.instance_cas(scope).await? {
            let parsed = parse_certificate_pem(&ca.value.pem).map_err(pki_error)?;
            if same_serial(&parsed.serial_hex, sn) {
                return Ok(ca);
            }
        }
        Err(DomainError::not_found(Resource::CaCertificate, sn))
    }

    pub async fn set_ca_status_by_sn(
        &self,
        scope: &Scope,
        sn: &str,
        status: CaStatus,
    ) -> DomainResult<()> {
        let ca = self.ca_by_sn(scope, sn).await?;
        self.update_ca_certificate(
            scope,
            &ca.value.id,
            &crate::ca_certificates::CaUpdate {
                status: Some(status),
                ..Default::default()
            },
        )
        .await
    }

    /// DeleteCaCertificate: the CA and every device certificate it signed, in one transaction.
    pub async fn delete_ca_with_devices(&self, scope: &Scope, sn: &str) -> DomainResult<()> {
        self.with_retry(|| async {
            let ca = self.ca_by_sn(scope, sn).await?;
            let devices = self.devices_of_ca(scope, &ca.value.id).await?;
            let mut writes: Vec<Write> = Vec::with_capacity(devices.len() * 2 + 2);
            for d in &devices {
                writes.extend(self.device_claim_release(scope, &d.value).await?);
                writes.push(d.delete());
            }
            writes.extend(
                self.release_claim(
                    &crate::ca_certificates::default_ca_namespace(&scope.region),
                    ca.value.id.as_str(),
                    &ca.value.key(),
                )
                .await?,
            );
            writes.push(ca.delete());
            self.store().apply(writes).await
        })
        .await
    }

    async fn devices_of_ca(
        &self,
        scope: &Scope,
        ca: &CertificateId,
    ) -> DomainResult<Vec<Stored<Certificate>>> {
        let filter = Filter {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            idx1: Some(ca.to_string()),
            ..Filter::default()
        };
        store::query::<Certificate>(self.store(), &filter, PageQuery::all()).await
    }

    async fn device_claim_release(
        &self,
        scope: &Scope,
        cert: &Certificate,
    ) -> DomainResult<Option<Write>> {
        let Some(ca) = &cert.ca_certificate_id else {
            return Ok(None);
        };
        let parsed = parse_certificate_pem(&cert.pem).map_err(pki_error)?;
        self.release_claim(
            &device_namespace(scope, ca),
            &canonical_serial(&parsed.serial_hex),
            &cert.key(),
        )
        .await
    }

    /// The device certificate with serial `device_sn` signed by the instance's CA `ca_sn`.
    pub async fn device_by_sn(
        &self,
        scope: &Scope,
        ca_sn: &str,
        device_sn: &str,
    ) -> DomainResult<Stored<Certificate>> {
        let ca = self.ca_by_sn(scope, ca_sn).await?;
        let missing = || DomainError::not_found(Resource::Certificate, device_sn);
        let holder = self
            .claim_holder(
                &device_namespace(scope, &ca.value.id),
                &canonical_serial(device_sn),
            )
            .await?
            .ok_or_else(missing)?;
        match store::get::<Certificate>(self.store(), &holder).await? {
            Some(c) if c.value.owner == scope.account && c.value.region == scope.region => Ok(c),
            _ => Err(missing()),
        }
    }

    /// One page (1-based `page_no`) of the instance's device certificates, optionally only those
    /// of one CA, in registration order, and how many there are in all.
    pub async fn list_devices(
        &self,
        scope: &Scope,
        ca: Option<&CertificateId>,
        page_no: usize,
        page_size: usize,
    ) -> DomainResult<(Vec<Certificate>, u64)> {
        let filter = Filter {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            idx1: ca.map(ToString::to_string),
            ..Filter::default()
        };
        let total = self
            .store()
            .count(crate::store::Kind::Certificate, &filter)
            .await?;
        let skip = page_no.saturating_sub(1).saturating_mul(page_size);
        if skip as u64 >= total {
            return Ok((Vec::new(), total));
        }
        let rows = store::query::<Certificate>(
            self.store(),
            &filter,
            PageQuery {
                after_seq: None,
                limit: skip.saturating_add(page_size),
                ascending: true,
            },
        )
        .await?;
        Ok((
            rows.into_iter().skip(skip).map(|r| r.value).collect(),
            total,
        ))
    }

    pub async fn set_device_status_by_sn(
        &self,
        scope: &Scope,
        ca_sn: &str,
        device_sn: &str,
        status: CertificateStatus,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.device_by_sn(scope, ca_sn, device_sn).await?;
            match cur.value.set_status(status, self.now())? {
                Some(next) => self.store().apply(vec![cur.update_to(&next)?]).await,
                None => Ok(()),
            }
        })
        .await
    }

    /// DeleteDeviceCertificate: whatever its status (the next connection registers it again).
    pub async fn delete_device_by_sn(
        &self,
        scope: &Scope,
        ca_sn: &str,
        device_sn: &str,
    ) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.device_by_sn(scope, ca_sn, device_sn).await?;
            let mut writes: Vec<Write> = self
                .device_claim_release(scope, &cur.value)
                .await?
                .into_iter()
                .collect();
            writes.push(cur.delete());
            self.store().apply(writes).await
        })
        .await
    }

    /// Decides whether a device presenting `device_der` may connect to `tenant`'s broker, on the
    /// server clock, registering the certificate when it is seen for the first time under an
    /// active CA: on an MQTT instance as an active device certificate; on AWS, for a CA with
    /// auto-registration on, as PENDING_ACTIVATION (refused until activated, as AWS JITR does).
    pub async fn admit_device(
        &self,
        tenant: &Tenant,
        device_der: &[u8],
    ) -> DomainResult<Admission> {
        let parsed = parse_certificate_der(device_der).map_err(pki_error)?;
        let certificate_id = CertificateId::of_der(&parsed.der);
        let refuse = |ca_id: Option<CertificateId>, r: Refusal| Admission {
            certificate_id: certificate_id.clone(),
            ca_id,
            verdict: Err(r),
            registered_now: false,
        };
        let now = self.now();
        if now < parsed.not_before {
            return Ok(refuse(None, Refusal::NotYetValid));
        }
        if now > parsed.not_after {
            return Ok(refuse(None, Refusal::Expired));
        }
        let scope = tenant.scope();
        let signer = self
            .cas_with_subject(&scope, &parsed.issuer_der)
            .await?
            .into_iter()
            .find(|ca| {
                parse_certificate_pem(&ca.pem)
                    .map(|c| verify_signed_by(&parsed.der, &c.der))
                    .unwrap_or(false)
            });
        let Some(ca) = signer else {
            return Ok(refuse(None, Refusal::UnknownCa));
        };
        let ca_id = Some(ca.id.clone());
        if ca.status != CaStatus::Active {
            return Ok(refuse(ca_id, Refusal::CaNotActive));
        }
        // The first connections of one device may race (two nodes, a reconnect): one insert
        // wins and the losers decide against the winner's row.
        for _ in 0..3 {
            // The tenant's own registration; a certificate registered in several accounts
            // (SNI_ONLY) is decided by the registration of the account the device named.
            let existing = match self.find_registration(&scope, &certificate_id).await? {
                Registration::Here(c) => Some(c),
                Registration::Elsewhere(_) => {
                    return Ok(refuse(ca_id, Refusal::RegisteredElsewhere))
                }
                Registration::Nowhere => None,
            };
            if let Some(existing) = existing {
                let c = existing.value;
                if c.status != CertificateStatus::Active {
                    return Ok(refuse(ca_id, Refusal::NotActive(c.status)));
                }
                return Ok(Admission {
                    certificate_id,
                    ca_id,
                    verdict: Ok(()),
                    registered_now: false,
                });
            }
            let status = match tenant {
                Tenant::Mqtt(_) => CertificateStatus::Active,
                Tenant::Aws(_) if ca.auto_registration => CertificateStatus::PendingActivation,
                Tenant::Aws(_) => return Ok(refuse(ca_id, Refusal::NotRegistered)),
            };
            let mut cert = Certificate::new(
                &scope,
                &parsed,
                pem_of(&parsed.der),
                status,
                ca.mode,
                Origin::Registered,
                now,
            );
            cert.ca_certificate_id = Some(ca.id.clone());
            let jitp_body = match tenant {
                Tenant::Aws(_) => {
                    self.jitp_template(&scope, ca.registration_config.as_ref())
                        .await?
                }
                Tenant::Mqtt(_) => None,
            };
            let mut writes = match jitp_body.as_deref() {
                // Just-in-time provisioning: the certificate and its template's resources in
                // one transaction. A template that cannot be applied leaves the certificate
                // registered PENDING_ACTIVATION, as without one (COMPATIBILITY.md).
                Some(body) => match self.jitp_writes(&scope, body, &cert, &parsed).await {
                    Ok((w, after)) => {
                        cert = after;
                        w
                    }
                    Err(DomainError::Stale) => continue,
                    Err(_) => vec![store::insert(&cert)?],
                },
                None => vec![store::insert(&cert)?],
            };
            if matches!(tenant, Tenant::Mqtt(_)) {
                writes.push(claims::claim(
                    &device_namespace(&scope, &ca.id),
                    &canonical_serial(&parsed.serial_hex),
                    &scope.account,
                    &cert.key(),
                )?);
            }
            match self.store().apply(writes).await {
                Ok(()) => {
                    return Ok(Admission {
                        certificate_id,
                        ca_id,
                        verdict: match status {
                            CertificateStatus::Active => Ok(()),
                            other => Err(Refusal::NotActive(other)),
                        },
                        registered_now: true,
                    })
                }
                // A template's thing, policy or group changed underneath (a racing first
                // connection of the same device included): read everything again.
                Err(DomainError::Stale) => continue,
                Err(DomainError::AlreadyExists { .. }) if jitp_body.is_some() => continue,
                Err(DomainError::AlreadyExists { .. }) => {
                    // Either a racing first connection registered it (decide against that row)
                    // or another certificate under this CA holds the serial.
                    if store::get::<Certificate>(self.store(), certificate_id.as_str())
                        .await?
                        .is_none()
                    {
                        return Ok(refuse(ca_id, Refusal::DuplicateSerial));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(DomainError::Unavailable(
            "the device certificate's registration kept racing; retry".into(),
        ))
    }
}

/// PEM text of a DER certificate (what GetDeviceCertificate's DeviceContent shows).
pub fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_as_hex_numbers() {
        assert!(same_serial("00F269", "f269"));
        assert!(same_serial("0", "000"));
        assert!(!same_serial("f269", "f26900"));
        assert_eq!(canonical_serial("000Ab"), "ab");
        assert_eq!(canonical_serial("00"), "0");
    }

    #[test]
    fn serial_parameters_are_bounded_hex() {
        assert_eq!(parse_sn("Sn", "00F2").ok().as_deref(), Some("00f2"));
        assert!(parse_sn("Sn", "").is_err());
        assert!(parse_sn("Sn", "12g").is_err());
        assert!(parse_sn("Sn", &"a".repeat(129)).is_err());
        assert!(parse_sn("Sn", &"a".repeat(128)).is_ok());
    }

    #[test]
    fn pem_of_round_trips_through_the_parser() {
        let ca = certplane_pki::IssuingCa::generate("t", 0);
        let Ok(ca) = ca else {
            panic!("CA generation failed")
        };
        let pem = pem_of(ca.cert_der());
        let parsed = parse_certificate_pem(&pem);
        assert!(matches!(parsed, Ok(p) if p.der == ca.cert_der()));
    }
}
