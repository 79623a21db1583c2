//! The billing model the Azure Billing dialect serves: billing accounts (Microsoft Partner
//! Agreement and Microsoft Customer Agreement) with their billing profiles, customers and invoice
//! sections, and the products (subscriptions, reservations, ...) that those scopes bill. A
//! deployment is seeded from one JSON document ([`BillingImport`]); importing it again changes
//! nothing that is already as described.
//!
//! One billing account is one document (its whole hierarchy, which only the import changes);
//! one product is one document, keyed by its id and indexed by its holder's email and the scope
//! that bills it, so a transfer moves it with a compare-and-set on that document.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult, Resource};
use crate::oauth::OauthClientSpec;
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery, Stored};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgreementType {
    MicrosoftPartnerAgreement,
    MicrosoftCustomerAgreement,
}

/// A customer (MPA) or an invoice section (MCA): a scope that bills products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Section {
    pub name: String,
    #[serde(default)]
    pub owners: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillingProfile {
    pub name: String,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub customers: Vec<Section>,
    #[serde(default)]
    pub invoice_sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillingAccount {
    pub name: String,
    pub agreement_type: AgreementType,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub billing_profiles: Vec<BillingProfile>,
}

impl Document for BillingAccount {
    const KIND: Kind = Kind::BillingAccount;
    fn key(&self) -> String {
        self.name.clone()
    }
    fn account(&self) -> String {
        self.name.clone()
    }
    fn region(&self) -> String {
        String::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProductType {
    AzureSubscription,
    AzureReservation,
    Department,
    SavingsPlan,
    #[serde(rename = "SAAS")]
    Saas,
}

impl ProductType {
    pub const ALL: [ProductType; 5] = [
        ProductType::AzureSubscription,
        ProductType::AzureReservation,
        ProductType::Department,
        ProductType::SavingsPlan,
        ProductType::Saas,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProductType::AzureSubscription => "AzureSubscription",
            ProductType::AzureReservation => "AzureReservation",
            ProductType::Department => "Department",
            ProductType::SavingsPlan => "SavingsPlan",
            ProductType::Saas => "SAAS",
        }
    }

    /// Case-insensitive, as the SDK's enums are.
    pub fn parse(s: &str) -> Option<ProductType> {
        ProductType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductStatus {
    Active,
    Disabled,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductStatus::Active => "Active",
            ProductStatus::Disabled => "Disabled",
        }
    }
}

/// A product as the import file describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductSpec {
    pub id: String,
    pub product_type: ProductType,
    pub status: ProductStatus,
    pub owner: String,
    #[serde(default)]
    pub transfer_failure: Option<String>,
    /// certplane extension: the ARM path of the customer or invoice section billing it now.
    #[serde(default)]
    pub scope: Option<String>,
}

/// A product, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub product_type: ProductType,
    pub status: ProductStatus,
    /// The email of whoever holds it (as written in the import; compared case-insensitively).
    pub owner: String,
    /// A product with this error code fails to move (to rehearse CompletedWithErrors).
    pub transfer_failure: Option<String>,
    /// The ARM path of the scope that bills it (`None`: billed outside this deployment).
    pub scope: Option<String>,
    /// The accepted transfer moving it now, if any (a product moves in one transfer at a time).
    pub in_transfer: Option<String>,
}

impl Document for Product {
    const KIND: Kind = Kind::BillingProduct;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn account(&self) -> String {
        email_key(&self.owner)
    }
    fn region(&self) -> String {
        String::new()
    }
    fn idx1(&self) -> Option<String> {
        Some(email_key(&self.owner))
    }
    fn idx2(&self) -> Option<String> {
        self.scope.clone()
    }
}

/// The whole import document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillingImport {
    #[serde(default)]
    pub billing_accounts: Vec<BillingAccount>,
    #[serde(default)]
    pub products: Vec<ProductSpec>,
    #[serde(default)]
    pub oauth_clients: Vec<OauthClientSpec>,
}

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub billing_accounts_created: usize,
    pub billing_accounts_updated: usize,
    pub products_created: usize,
    pub products_updated: usize,
    pub oauth_clients_created: usize,
    pub oauth_clients_updated: usize,
    pub unchanged: usize,
}

/// Emails are compared without regard to case.
pub fn email_key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn check_email(field: &str, email: &str) -> DomainResult<()> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
            }
            None => false,
        };
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "{field} {email:?} is not a valid email address"
        )))
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// billingAccountName: digits, `PCN.` + alphanumerics, or a GUID optionally followed by
/// `:` GUID `_` `YYYY-MM-DD` (types.json).
pub fn valid_account_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 128 {
        return false;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    if let Some(rest) = s.strip_prefix("PCN.") {
        return !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric());
    }
    match s.split_once(':') {
        None => is_guid(s),
        Some((a, rest)) => {
            is_guid(a)
                && match rest.split_once('_') {
                    Some((g, d)) => is_guid(g) && is_date(d),
                    None => false,
                }
        }
    }
}

/// billingProfileName, customerName, invoiceSectionName: `[a-zA-Z\d-_]{1,128}`.
pub fn valid_section_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// transferName: `^[a-z0-9]*$`, and (certplane) 1 to 128 characters.
pub fn valid_transfer_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Product ids: 1 to 256 printable characters without `/`.
pub fn valid_product_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && !s.chars().any(|c| c.is_control() || c == '/')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SectionKind {
    Customer,
    InvoiceSection,
}

/// Where a transfer is made: a customer of an MPA billing profile, or an invoice section of an
/// MCA billing profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingScope {
    pub account: String,
    pub profile: String,
    pub kind: SectionKind,
    pub section: String,
}

impl BillingScope {
    pub fn account_path(&self) -> String {
        format!(
            "/providers/Microsoft.Billing/billingAccounts/{}",
            self.account
        )
    }
    pub fn profile_path(&self) -> String {
        format!("{}/billingProfiles/{}", self.account_path(), self.profile)
    }
    /// The ARM path of the customer or invoice section.
    pub fn path(&self) -> String {
        let seg = match self.kind {
            SectionKind::Customer => "customers",
            SectionKind::InvoiceSection => "invoiceSections",
        };
        format!("{}/{seg}/{}", self.profile_path(), self.section)
    }

    /// Refuses names outside the documented patterns.
    pub fn check(&self) -> DomainResult<()> {
        if !valid_account_name(&self.account) {
            return Err(DomainError::invalid(format!(
                "billingAccountName {:?} is not a valid billing account name",
                self.account
            )));
        }
        for (field, v) in [
            ("billingProfileName", &self.profile),
            (
                match self.kind {
                    SectionKind::Customer => "customerName",
                    SectionKind::InvoiceSection => "invoiceSectionName",
                },
                &self.section,
            ),
        ] {
            if !valid_section_name(v) {
                return Err(DomainError::invalid(format!(
                    "{field} {v:?} must be 1 to 128 letters, digits, '-' or '_'"
                )));
            }
        }
        Ok(())
    }
}

fn owns(owners: &[String], who: &str) -> bool {
    owners.iter().any(|o| email_key(o) == who)
}

impl BillingAccount {
    /// Checks the scope exists in this account, fits its agreement type and is owned by
    /// `caller` (an owner of the account or profile owns everything under it).
    pub fn authorize_scope(&self, scope: &BillingScope, caller: &str) -> DomainResult<()> {
        let who = email_key(caller);
        let profile = self
            .billing_profiles
            .iter()
            .find(|p| p.name == scope.profile)
            .ok_or_else(|| DomainError::not_found(Resource::BillingScope, scope.profile_path()))?;
        let (sections, want) = match scope.kind {
            SectionKind::Customer => (&profile.customers, AgreementType::MicrosoftPartnerAgreement),
            SectionKind::InvoiceSection => (
                &profile.invoice_sections,
                AgreementType::MicrosoftCustomerAgreement,
            ),
        };
        if self.agreement_type != want {
            return Err(DomainError::invalid(format!(
                "the billing account {} has agreement type {:?}; {} transfers need {:?}",
                self.name,
                self.agreement_type,
                match scope.kind {
                    SectionKind::Customer => "customer (partner)",
                    SectionKind::InvoiceSection => "invoice section",
                },
                want
            )));
        }
        let section = sections
            .iter()
            .find(|s| s.name == scope.section)
            .ok_or_else(|| DomainError::not_found(Resource::BillingScope, scope.path()))?;
        if owns(&self.owners, &who) || owns(&profile.owners, &who) || owns(&section.owners, &who) {
            Ok(())
        } else {
            Err(DomainError::NotPermitted(format!(
                "{caller} does not own {} (nor its billing profile or account)",
                scope.path()
            )))
        }
    }

    fn check(&self) -> DomainResult<()> {
        if !valid_account_name(&self.name) {
            return Err(DomainError::invalid(format!(
                "billing account name {:?} is not a valid billing account name (digits, PCN.<alphanumerics>, or GUID[:GUID_YYYY-MM-DD])",
                self.name
            )));
        }
        let mut emails: Vec<&String> = self.owners.iter().collect();
        let mut profiles = std::collections::HashSet::new();
        for p in &self.billing_profiles {
            if !valid_section_name(&p.name) || !profiles.insert(&p.name) {
                return Err(DomainError::invalid(format!(
                    "billing profile {:?} of {}: the name is invalid or repeated",
                    p.name, self.name
                )));
            }
            emails.extend(p.owners.iter());
            let mut names = std::collections::HashSet::new();
            for s in p.customers.iter().chain(p.invoice_sections.iter()) {
                if !valid_section_name(&s.name) || !names.insert((&s.name, 0)) {
                    return Err(DomainError::invalid(format!(
                        "customer or invoice section {:?} of {}/{}: the name is invalid or repeated",
                        s.name, self.name, p.name
                    )));
                }
                emails.extend(s.owners.iter());
            }
        }
        for e in emails {
            check_email("owner", e)?;
        }
        Ok(())
    }
}

impl ProductSpec {
    fn check(&self) -> DomainResult<()> {
        if !valid_product_id(&self.id) {
            return Err(DomainError::invalid(format!(
                "product id {:?} must be 1 to 256 printable characters without '/'",
                self.id
            )));
        }
        check_email("product owner", &self.owner)?;
        if let Some(code) = &self.transfer_failure {
            if code.is_empty()
                || code.len() > 64
                || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
            {
                return Err(DomainError::invalid(format!(
                    "transferFailure of product {} must be an error code (letters, digits, '.')",
                    self.id
                )));
            }
        }
        Ok(())
    }
}

/// Products written per import transaction.
const IMPORT_CHUNK: usize = 500;

impl Core {
    pub async fn billing_account(&self, name: &str) -> DomainResult<Stored<BillingAccount>> {
        store::get::<BillingAccount>(self.store(), name)
            .await?
            .ok_or_else(|| {
                DomainError::not_found(
                    Resource::BillingAccount,
                    format!("/providers/Microsoft.Billing/billingAccounts/{name}"),
                )
            })
    }

    /// Checks `caller` may make and manage transfers under `scope`.
    pub async fn authorize_billing_scope(
        &self,
        scope: &BillingScope,
        caller: &str,
    ) -> DomainResult<()> {
        scope.check()?;
        self.billing_account(&scope.account)
            .await?
            .value
            .authorize_scope(scope, caller)
    }

    pub async fn billing_product(&self, id: &str) -> DomainResult<Option<Stored<Product>>> {
        store::get::<Product>(self.store(), id).await
    }

    /// Every product, in import order.
    pub async fn billing_products(&self) -> DomainResult<Vec<Product>> {
        Ok(
            store::query::<Product>(self.store(), &Filter::default(), PageQuery::all())
                .await?
                .into_iter()
                .map(|s| s.value)
                .collect(),
        )
    }

    /// Loads an import document: creates what is missing, updates what differs, leaves the
    /// rest. Each entity is its own compare-and-set write, so an import may run while the
    /// server does (a product moving in a transfer keeps its transfer and, unless the file
    /// names one, its scope).
    pub async fn billing_import(&self, import: &BillingImport) -> DomainResult<ImportReport> {
        for a in &import.billing_accounts {
            a.check()?;
        }
        for p in &import.products {
            p.check()?;
        }
        for c in &import.oauth_clients {
            c.check()?;
        }
        let mut report = ImportReport::default();
        for a in &import.billing_accounts {
            let outcome = self
                .with_retry(|| async {
                    match store::get::<BillingAccount>(self.store(), &a.name).await? {
                        None => {
                            self.store().apply(vec![store::insert(a)?]).await?;
                            Ok(Some(true))
                        }
                        Some(cur) if cur.value == *a => Ok(None),
                        Some(cur) => {
                            self.store().apply(vec![cur.update_to(a)?]).await?;
                            Ok(Some(false))
                        }
                    }
                })
                .await?;
            match outcome {
                Some(true) => report.billing_accounts_created += 1,
                Some(false) => report.billing_accounts_updated += 1,
                None => report.unchanged += 1,
            }
        }
        // Products go in chunks, one transaction each (compare-and-set on every product read),
        // so a large catalogue loads in a few commits.
        for chunk in import.products.chunks(IMPORT_CHUNK) {
            let (created, updated, unchanged) = self
                .with_retry(|| async {
                    let mut writes = Vec::new();
                    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
                    for p in chunk {
                        match store::get::<Product>(self.store(), &p.id).await? {
                            None => {
                                writes.push(store::insert(&Product {
                                    id: p.id.clone(),
                                    product_type: p.product_type,
                                    status: p.status,
                                    owner: p.owner.clone(),
                                    transfer_failure: p.transfer_failure.clone(),
                                    scope: p.scope.clone(),
                                    in_transfer: None,
                                })?);
                                created += 1;
                            }
                            Some(cur) => {
                                let mut new = cur.value.clone();
                                new.product_type = p.product_type;
                                new.status = p.status;
                                new.owner = p.owner.clone();
                                new.transfer_failure = p.transfer_failure.clone();
                                if p.scope.is_some() {
                                    new.scope = p.scope.clone();
                                }
                                if new == cur.value {
                                    unchanged += 1;
                                } else {
                                    writes.push(cur.update_to(&new)?);
                                    updated += 1;
                                }
                            }
                        }
                    }
                    if !writes.is_empty() {
                        match self.store().apply(writes).await {
                            // Created by someone else meanwhile: read again.
                            Err(DomainError::AlreadyExists { .. }) => {
                                return Err(DomainError::Stale)
                            }
                            other => other?,
                        }
                    }
                    Ok((created, updated, unchanged))
                })
                .await?;
            report.products_created += created;
            report.products_updated += updated;
            report.unchanged += unchanged;
        }
        for c in &import.oauth_clients {
            match self.upsert_oauth_client(c).await? {
                Some(true) => report.oauth_clients_created += 1,
                Some(false) => report.oauth_clients_updated += 1,
                None => report.unchanged += 1,
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_patterns() {
        assert!(valid_account_name("12345"));
        assert!(valid_account_name("PCN.abc123"));
        assert!(valid_account_name(
            "10000000-0000-0000-0000-000000000000:00000000-0000-0000-0000-000000000000_2019-05-31"
        ));
        assert!(valid_account_name("10000000-0000-0000-0000-000000000000"));
        assert!(!valid_account_name("acct 1"));
        assert!(!valid_account_name(
            "10000000-0000-0000-0000-000000000000:x"
        ));
        assert!(valid_section_name("prof_1-A"));
        assert!(!valid_section_name("a/b"));
        assert!(valid_transfer_name("abc123"));
        assert!(!valid_transfer_name("Abc"));
        assert!(!valid_transfer_name("a-b"));
        assert!(!valid_transfer_name(""));
    }

    #[test]
    fn emails() {
        assert!(check_email("e", "user@contoso.com").is_ok());
        for bad in [
            "",
            "user",
            "@contoso.com",
            "user@",
            "user@contoso",
            "a b@c.d",
            "a@@b.c",
        ] {
            assert!(check_email("e", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn product_types_parse_case_insensitively() {
        assert_eq!(ProductType::parse("saas"), Some(ProductType::Saas));
        assert_eq!(
            ProductType::parse("AzureSubscription"),
            Some(ProductType::AzureSubscription)
        );
        assert_eq!(ProductType::parse("ReservedInstance"), None);
    }
}
