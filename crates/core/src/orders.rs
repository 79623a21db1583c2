//! Certificate orders (Alibaba Cloud CAS applications): an order takes one unit of a quota
//! package, waits for proof of domain ownership (a DNS TXT record or a file on the web server),
//! is validated for real by a [`DomainValidator`], and yields a certificate of the one registry.
//!
//! States follow DescribeCertificateState's `Type`: `domain_verify` (waiting for the proof) →
//! `certificate` (issued), or `verify_fail` (no proof before the deadline); `payed` after
//! CancelOrderRequest withdrew an unissued application; `revoked` after
//! CancelCertificateForPackageRequest. Every quota change is in the transaction of the state
//! change it belongs to.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use certplane_pki::{generate_rsa_key, parse_certificate_pem, parse_csr, IssueRequest, Subject};

use crate::certificates::{Certificate, CertificateMode, CertificateStatus, Origin};
use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::{new_uuid, CertificateId, Scope};
use crate::packages::check_product_code;
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery, Stored};
use crate::user_certificates::{UserCertificate, UserCertificateSource};

/// The region CAS-made certificates carry in the shared registry (CAS has no regions).
pub const CAS_REGION: &str = "cn-hangzhou";
/// Validity of a certificate issued for an order: three months for the free trial plan
/// `digicert-free-1-free`, one year for every other plan (the SDK documents
/// `symantec-free-1-free` as "valid for 1 year").
pub fn order_cert_validity_ms(product_code: &str) -> Millis {
    if product_code == "digicert-free-1-free" {
        90 * DAY_MS
    } else {
        365 * DAY_MS
    }
}
/// Cancelling an issued order refunds its unit within this many calendar days of issuance.
pub const REFUND_WINDOW_DAYS: i64 = 30;
const DAY_MS: Millis = 86_400_000;
/// An issued certificate with less than this left is "about to expire" (ListUserCertificateOrder
/// reports it WILLEXPIRED) and its order may be renewed.
pub const EXPIRING_WITHIN_MS: Millis = 30 * DAY_MS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ValidateType {
    Dns,
    File,
}

impl ValidateType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "DNS" => Some(ValidateType::Dns),
            "FILE" => Some(ValidateType::File),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ValidateType::Dns => "DNS",
            ValidateType::File => "FILE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Withdrawn by CancelOrderRequest: no application pending, unit returned.
    Payed,
    DomainVerify,
    VerifyFail,
    Certificate,
    Revoked,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Payed => "payed",
            OrderState::DomainVerify => "domain_verify",
            OrderState::VerifyFail => "verify_fail",
            OrderState::Certificate => "certificate",
            OrderState::Revoked => "revoked",
        }
    }
}

/// What the customer must publish to prove control of the domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// DNS: the full record name (`_dnsauth.example.com`), type TXT, and its value.
    pub record_domain: Option<String>,
    pub record_type: Option<String>,
    pub record_value: Option<String>,
    /// FILE: served at `http://<domain><uri>` with exactly this content.
    pub uri: Option<String>,
    pub content: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub username: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: i64,
    pub account: String,
    pub product_code: String,
    pub domain: String,
    pub validate_type: ValidateType,
    pub csr: Option<String>,
    pub contact: Contact,
    pub state: OrderState,
    pub proof: Proof,
    pub created_at: Millis,
    /// No proof by then and the order fails.
    pub deadline: Millis,
    /// Whether this order currently holds a unit of its package.
    pub holds_unit: bool,
    pub issued_at: Option<Millis>,
    pub certificate_id: Option<CertificateId>,
    /// The CertId of the certificate in the user-certificate list (GetUserCertificateDetail).
    pub cert_id: Option<i64>,
    /// The server-made private key, kept until DescribeCertificateState has returned it once.
    pub private_key: Option<String>,
    pub revoked_at: Option<Millis>,
    pub refunded: bool,
    pub tags: Vec<(String, String)>,
}

impl Document for Order {
    const KIND: Kind = Kind::Order;
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn account(&self) -> String {
        self.account.clone()
    }
    fn region(&self) -> String {
        String::new()
    }
    fn idx1(&self) -> Option<String> {
        Some(self.product_code.clone())
    }
    fn idx2(&self) -> Option<String> {
        Some(self.state.as_str().to_string())
    }
}

/// Checks a domain's proof of ownership: the real DNS and HTTP lookups live in the binary.
#[async_trait]
pub trait DomainValidator: Send + Sync {
    /// True when the order's proof is published where it should be.
    async fn check(&self, order: &Order) -> bool;
}

/// For `--validation always-valid` in dev mode.
pub struct AlwaysValid;

#[async_trait]
impl DomainValidator for AlwaysValid {
    async fn check(&self, _order: &Order) -> bool {
        true
    }
}

/// A new application.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub product_code: String,
    pub domain: Option<String>,
    pub csr: Option<String>,
    pub validate_type: ValidateType,
    pub contact: Contact,
    pub tags: Vec<(String, String)>,
}

/// A DNS name a DV certificate can be issued for (a leading `*.` is allowed).
pub fn check_domain(d: &str) -> DomainResult<()> {
    let bad = || DomainError::invalid(format!("Domain {d:?} is not a valid domain name"));
    let name = d.strip_prefix("*.").unwrap_or(d);
    if name.is_empty() || name.len() > 253 || !name.contains('.') {
        return Err(bad());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad());
        }
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    Ok(())
}

fn random_token(bytes: usize) -> DomainResult<String> {
    let mut b = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| DomainError::internal("no randomness"))?;
    Ok(hex::encode(b))
}

/// A random positive id of the size Alibaba's order and certificate ids have.
pub(crate) fn random_id() -> DomainResult<i64> {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| DomainError::internal("no randomness"))?;
    Ok(10_000_000 + (u64::from_le_bytes(b) % 90_000_000_000) as i64)
}

impl Order {
    fn proof_for(domain: &str, vt: ValidateType) -> DomainResult<Proof> {
        let base = domain.strip_prefix("*.").unwrap_or(domain);
        let token = random_token(16)?;
        Ok(match vt {
            ValidateType::Dns => Proof {
                record_domain: Some(format!("_dnsauth.{base}")),
                record_type: Some("TXT".into()),
                record_value: Some(token),
                ..Proof::default()
            },
            ValidateType::File => Proof {
                uri: Some("/.well-known/pki-validation/fileauth.txt".into()),
                content: Some(token),
                ..Proof::default()
            },
        })
    }

    fn wrong_state(&self, what: &str) -> DomainError {
        DomainError::WrongState {
            current: self.state.as_str().into(),
            message: format!(
                "the order {} is in state {}; {what}",
                self.id,
                self.state.as_str()
            ),
        }
    }

    /// Whether a cancel at `now` is within the refund window: the issuance day counts as day 0
    /// and the refund holds through the end of calendar day 30 (UTC).
    pub fn refundable_at(&self, now: Millis) -> bool {
        match self.issued_at {
            Some(issued) => {
                now.div_euclid(DAY_MS) - issued.div_euclid(DAY_MS) <= REFUND_WINDOW_DAYS
            }
            None => false,
        }
    }
}

impl Core {
    async fn load_order(&self, account: &str, id: i64) -> DomainResult<Stored<Order>> {
        match store::get::<Order>(self.store(), &id.to_string()).await? {
            // Another account's order reads as missing.
            Some(o) if o.value.account == account => Ok(o),
            _ => Err(DomainError::not_found(Resource::Order, id.to_string())),
        }
    }

    /// CreateCertificateForPackageRequest / CreateCertificateRequest /
    /// CreateCertificateWithCsrRequest: takes one unit and starts domain validation.
    pub async fn create_order(&self, account: &str, req: NewOrder) -> DomainResult<Order> {
        check_product_code(&req.product_code)?;
        let csr_cn = match &req.csr {
            Some(csr) => Some(
                certplane_pki::parse_csr(csr)
                    .map_err(|e| DomainError::invalid(format!("Csr: {e}")))?
                    .common_name
                    .ok_or_else(|| DomainError::invalid("Csr: the CSR has no common name"))?,
            ),
            None => None,
        };
        // With both, the CSR's common name is the domain (as the SDK documents for Domain).
        let domain = match (csr_cn, req.domain.clone()) {
            (Some(cn), _) => cn,
            (None, Some(d)) if !d.is_empty() => d,
            _ => return Err(DomainError::invalid("Domain is required")),
        };
        check_domain(&domain)?;
        self.with_retry(|| async {
            let now = self.now();
            let package = self.load_package(account, &req.product_code).await?;
            let next = package.value.take_unit(now)?;
            let order = Order {
                id: random_id()?,
                account: account.to_string(),
                product_code: req.product_code.clone(),
                domain: domain.clone(),
                validate_type: req.validate_type,
                csr: req.csr.clone(),
                contact: req.contact.clone(),
                state: OrderState::DomainVerify,
                proof: Order::proof_for(&domain, req.validate_type)?,
                created_at: now,
                deadline: now.saturating_add(self.validation_timeout_ms),
                holds_unit: true,
                issued_at: None,
                certificate_id: None,
                cert_id: None,
                private_key: None,
                revoked_at: None,
                refunded: false,
                tags: req.tags.clone(),
            };
            match self
                .store()
                .apply(vec![package.update_to(&next)?, store::insert(&order)?])
                .await
            {
                // An order id collision: draw another.
                Err(DomainError::AlreadyExists { .. }) => Err(DomainError::Stale),
                other => other.map(|_| order),
            }
        })
        .await
    }

    /// Moves a `domain_verify` order on: fails it past its deadline, or issues its certificate
    /// once the validator finds the proof. Safe to call from several places at once (the
    /// background sweep, DescribeCertificateState, several nodes): the compare-and-set lets one
    /// of them write.
    pub async fn advance_order(&self, id: i64) -> DomainResult<()> {
        let Some(cur) = store::get::<Order>(self.store(), &id.to_string()).await? else {
            return Ok(());
        };
        if cur.value.state != OrderState::DomainVerify {
            return Ok(());
        }
        let now = self.now();
        if now > cur.value.deadline {
            let mut next = cur.value.clone();
            next.state = OrderState::VerifyFail;
            return match self.store().apply(vec![cur.update_to(&next)?]).await {
                Err(DomainError::Stale) => Ok(()),
                other => other,
            };
        }
        if !self.validator.check(&cur.value).await {
            return Ok(());
        }
        // The key is made once, outside the retries: RSA generation is the costly part.
        let key = self.order_key(&cur.value).await?;
        self.with_retry(|| async {
            let Some(cur) = store::get::<Order>(self.store(), &id.to_string()).await? else {
                return Ok(());
            };
            if cur.value.state != OrderState::DomainVerify {
                // Someone else issued (or failed) it meanwhile.
                return Ok(());
            }
            self.issue_order(&cur, &key, self.now()).await
        })
        .await
    }

    /// The public key an order's certificate certifies, and the private key when certplane
    /// makes it.
    async fn order_key(&self, order: &Order) -> DomainResult<(Vec<u8>, Option<String>)> {
        match &order.csr {
            Some(csr) => Ok((
                parse_csr(csr)
                    .map_err(|e| DomainError::invalid(format!("Csr: {e}")))?
                    .spki_der,
                None,
            )),
            None => {
                let (spki, keys) = tokio::task::spawn_blocking(generate_rsa_key)
                    .await
                    .map_err(|e| DomainError::internal(format!("key generation task: {e}")))?
                    .map_err(crate::certificates::pki_error)?;
                Ok((spki, Some(keys.private_key_pem.to_string())))
            }
        }
    }

    async fn issue_order(
        &self,
        cur: &Stored<Order>,
        key: &(Vec<u8>, Option<String>),
        now: Millis,
    ) -> DomainResult<()> {
        let order = &cur.value;
        let names = vec![order.domain.clone()];
        let (spki, private_key) = (key.0.clone(), key.1.clone());
        let (pem, _der) = self
            .issuer()
            .issue(&IssueRequest {
                subject: Subject::CommonName(order.domain.clone()),
                spki_der: &spki,
                dns_names: &names,
                not_before: now,
                not_after: now + order_cert_validity_ms(&order.product_code),
            })
            .map_err(crate::certificates::pki_error)?;
        let parsed = parse_certificate_pem(&pem).map_err(crate::certificates::pki_error)?;
        let scope = Scope::new(&order.account, CAS_REGION);
        let cert = Certificate::new(
            &scope,
            &parsed,
            pem.clone(),
            CertificateStatus::Active,
            CertificateMode::Default,
            Origin::Issued,
            now,
        );
        let user_cert = UserCertificate {
            id: random_id()?,
            account: order.account.clone(),
            name: format!("cert-{}", order.id),
            cert_pem: pem,
            key_pem: private_key.clone(),
            certificate_id: cert.id.clone(),
            order_id: Some(order.id),
            source: UserCertificateSource::Buy,
            created_at: now,
        };
        let package = self
            .load_package(&order.account, &order.product_code)
            .await?;
        let mut pkg = package.value.clone();
        pkg.issued_count += 1;
        pkg.updated_at = now;
        let mut next = order.clone();
        next.state = OrderState::Certificate;
        next.issued_at = Some(now);
        next.certificate_id = Some(cert.id.clone());
        next.cert_id = Some(user_cert.id);
        next.private_key = private_key;
        self.store()
            .apply(vec![
                cur.update_to(&next)?,
                package.update_to(&pkg)?,
                store::insert(&cert)?,
                store::insert(&user_cert)?,
            ])
            .await
    }

    /// DescribeCertificateState. Validation is attempted first, so a published proof is seen
    /// at once. A server-made private key is part of every answer for the issued order, as on
    /// Alibaba Cloud (it is also the `Key` of the certificate's GetUserCertificateDetail).
    pub async fn describe_order(&self, account: &str, id: i64) -> DomainResult<Order> {
        let cur = self.load_order(account, id).await?;
        if cur.value.state != OrderState::DomainVerify {
            return Ok(cur.value);
        }
        self.advance_order(id).await?;
        Ok(self.load_order(account, id).await?.value)
    }

    /// The background sweep: every order still waiting for its proof, across accounts.
    pub async fn orders_waiting_for_validation(&self) -> DomainResult<Vec<i64>> {
        let filter = Filter {
            idx2: Some(OrderState::DomainVerify.as_str().into()),
            ..Filter::default()
        };
        Ok(
            store::query::<Order>(self.store(), &filter, PageQuery::all())
                .await?
                .into_iter()
                .map(|o| o.value.id)
                .collect(),
        )
    }

    /// CancelOrderRequest: withdraws an application not yet issued; its unit comes back.
    pub async fn cancel_order(&self, account: &str, id: i64) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_order(account, id).await?;
            if cur.value.state != OrderState::DomainVerify {
                return Err(cur
                    .value
                    .wrong_state("only an order waiting for validation can be cancelled"));
            }
            let now = self.now();
            let mut next = cur.value.clone();
            next.state = OrderState::Payed;
            next.holds_unit = false;
            let package = self.load_package(account, &next.product_code).await?;
            self.store()
                .apply(vec![
                    cur.update_to(&next)?,
                    package.update_to(&package.value.return_unit(now))?,
                ])
                .await
        })
        .await
    }

    /// CancelCertificateForPackageRequest: revokes the issued certificate (REVOKED in the shared
    /// registry) and refunds the unit within the refund window. Returns whether it refunded.
    pub async fn cancel_certificate_for_package(
        &self,
        account: &str,
        id: i64,
    ) -> DomainResult<bool> {
        self.with_retry(|| async {
            let cur = self.load_order(account, id).await?;
            if cur.value.state != OrderState::Certificate {
                return Err(cur
                    .value
                    .wrong_state("only an issued order can be cancelled this way"));
            }
            let now = self.now();
            let refund = cur.value.refundable_at(now) && cur.value.holds_unit;
            let mut next = cur.value.clone();
            next.state = OrderState::Revoked;
            next.revoked_at = Some(now);
            next.refunded = refund;
            if refund {
                next.holds_unit = false;
            }
            let mut writes = vec![cur.update_to(&next)?];
            if let Some(cid) = &cur.value.certificate_id {
                if let Some(cert) = store::get::<Certificate>(self.store(), cid.as_str()).await? {
                    if cert.value.status != CertificateStatus::Revoked {
                        let mut revoked = cert.value.clone();
                        revoked.status = CertificateStatus::Revoked;
                        revoked.revocation_cause =
                            Some(crate::revocation::RevocationCause::OrderCancelled);
                        revoked.last_modified = now;
                        revoked.customer_version += 1;
                        revoked.generation_id = new_uuid();
                        writes.push(cert.update_to(&revoked)?);
                    }
                }
            }
            if refund {
                let package = self.load_package(account, &next.product_code).await?;
                writes.push(package.update_to(&package.value.return_unit(now))?);
            }
            self.store().apply(writes).await?;
            Ok(refund)
        })
        .await
    }

    /// DeleteCertificateRequest: deletes a failed order (its unit comes back) or a withdrawn one.
    pub async fn delete_order(&self, account: &str, id: i64) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = self.load_order(account, id).await?;
            if !matches!(cur.value.state, OrderState::VerifyFail | OrderState::Payed) {
                return Err(cur
                    .value
                    .wrong_state("only a failed (verify_fail) or cancelled order can be deleted"));
            }
            let mut writes = vec![cur.delete()];
            if cur.value.holds_unit {
                let package = self.load_package(account, &cur.value.product_code).await?;
                writes.push(package.update_to(&package.value.return_unit(self.now()))?);
            }
            self.store().apply(writes).await
        })
        .await
    }

    /// RenewCertificateOrderForPackageRequest: a new application for an issued order's domain,
    /// taking a new unit.
    pub async fn renew_order(
        &self,
        account: &str,
        id: i64,
        csr: Option<String>,
        tags: Vec<(String, String)>,
    ) -> DomainResult<Order> {
        let cur = self.load_order(account, id).await?.value;
        if !matches!(cur.state, OrderState::Certificate) {
            return Err(cur.wrong_state("only an issued order can be renewed"));
        }
        // "Only when the order of the certificate is in the expiring state": fewer than
        // EXPIRING_WITHIN_MS left, and not yet expired.
        let left = match self.order_certificate(&cur).await? {
            Some(cert) => cert.not_after - self.now(),
            None => 0,
        };
        if !(0..EXPIRING_WITHIN_MS).contains(&left) {
            return Err(cur.wrong_state(
                "only an order whose certificate is about to expire (under 30 days left) can be \
                 renewed",
            ));
        }
        self.create_order(
            account,
            NewOrder {
                product_code: cur.product_code.clone(),
                domain: Some(cur.domain.clone()),
                // Without a CSR the service makes a new key, as for a first order.
                csr,
                validate_type: cur.validate_type,
                contact: cur.contact.clone(),
                tags,
            },
        )
        .await
    }

    /// ListUserCertificateOrder's rows: the account's orders, newest first.
    pub async fn list_orders(&self, account: &str) -> DomainResult<Vec<Order>> {
        let filter = Filter {
            account: Some(account.to_string()),
            ..Filter::default()
        };
        let page = PageQuery {
            ascending: false,
            ..PageQuery::all()
        };
        Ok(store::query::<Order>(self.store(), &filter, page)
            .await?
            .into_iter()
            .map(|o| o.value)
            .collect())
    }

    /// The registry entry of an issued order.
    pub async fn order_certificate(&self, order: &Order) -> DomainResult<Option<Certificate>> {
        match &order.certificate_id {
            Some(id) => Ok(store::get::<Certificate>(self.store(), id.as_str())
                .await?
                .map(|c| c.value)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        for ok in [
            "example.com",
            "a-b.example.co.uk",
            "*.example.com",
            "xn--fsq.com",
        ] {
            assert!(check_domain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "com",
            "-a.com",
            "a..com",
            "exa mple.com",
            "1.2.3.4",
            "*.",
            "a_b.com",
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refund_window_counts_calendar_days() {
        let day = DAY_MS;
        let issued = 100 * day + 23 * 3_600_000; // late on day 100
        let mut o = Order {
            id: 1,
            account: "a".into(),
            product_code: "digicert-free-1-free".into(),
            domain: "example.com".into(),
            validate_type: ValidateType::Dns,
            csr: None,
            contact: Contact::default(),
            state: OrderState::Certificate,
            proof: Proof::default(),
            created_at: 0,
            deadline: 0,
            holds_unit: true,
            issued_at: Some(issued),
            certificate_id: None,
            cert_id: None,
            private_key: None,
            revoked_at: None,
            refunded: false,
            tags: vec![],
        };
        assert!(o.refundable_at(issued + 29 * day));
        assert!(o.refundable_at(130 * day + day - 1)); // the last millisecond of day 30
        assert!(!o.refundable_at(131 * day)); // day 31
        assert!(!o.refundable_at(issued + 31 * day));
        o.issued_at = None;
        assert!(!o.refundable_at(issued));
    }
}
