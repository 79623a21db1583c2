//! Certificate quota packages (resource plans): per account and product code, a total count of
//! certificate applications, how many are used (held by an order) and how many were issued.
//! The quota still available is `total - used`.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::service::Core;
use crate::store::{self, Document, Kind, Stored, Write};

/// The product codes of Alibaba Cloud's certificate resource plans: the values the official
/// SDK documents for ProductCode, then the DV starter codes earlier plans used (kept so quota
/// added under them stays usable). Every plan is issued the same way here — certplane checks
/// domain control, not organizations (see COMPATIBILITY.md).
pub const PRODUCT_CODES: &[&str] = &[
    "digicert-free-1-free",
    "symantec-free-1-free",
    "symantec-dv-1-starter",
    "symantec-ov-1-personal",
    "symantec-ov-w-personal",
    "geotrust-dv-1-starter",
    "geotrust-dv-w-starter",
    "geotrust-ov-1-personal",
    "geotrust-ov-w-personal",
    "globalsign-dv-1-personal",
    "globalsign-dv-w-advanced",
    "globalsign-ov-1-personal",
    "globalsign-ov-w-advanced",
    "cfca-ov-1-personal",
    "cfca-ev-w-advanced",
    "symantec-dv-w-starter",
    "digicert-dv-1-starter",
    "digicert-dv-w-starter",
    "globalsign-dv-1-starter",
    "globalsign-dv-w-starter",
];

/// The plan DescribePackageState and the order calls use when no ProductCode is given (the
/// SDK documents `digicert-free-1-free` as the default).
pub const DEFAULT_PRODUCT_CODE: &str = "digicert-free-1-free";

/// What a product code says about its plan: `<brand>-<type>-<1|w>-<edition>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFacts {
    /// The CA brand (DigiCert, GeoTrust, GlobalSign, CFCA).
    pub brand: &'static str,
    /// `FREE`, `DV`, `OV` or `EV`.
    pub cert_type: &'static str,
    /// A wildcard plan (`-w-`) rather than a single domain (`-1-`).
    pub wildcard: bool,
}

pub fn plan_facts(code: &str) -> PlanFacts {
    let mut parts = code.split('-');
    let brand = match parts.next() {
        // Symantec's certificate business is DigiCert's (the SDK calls symantec-* DigiCert).
        Some("digicert" | "symantec") => "DigiCert",
        Some("geotrust") => "GeoTrust",
        Some("globalsign") => "GlobalSign",
        Some("cfca") => "CFCA",
        _ => "DigiCert",
    };
    let cert_type = match parts.next() {
        Some("free") => "FREE",
        Some("ov") => "OV",
        Some("ev") => "EV",
        _ => "DV",
    };
    PlanFacts {
        brand,
        cert_type,
        wildcard: parts.next() == Some("w"),
    }
}

pub fn check_product_code(code: &str) -> DomainResult<()> {
    if PRODUCT_CODES.contains(&code) {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "ProductCode {code:?} is not a known certificate resource plan"
        )))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub account: String,
    pub product_code: String,
    pub total_count: i64,
    pub used_count: i64,
    pub issued_count: i64,
    pub updated_at: Millis,
}

impl Package {
    pub fn key_for(account: &str, product_code: &str) -> String {
        format!("{account}:{product_code}")
    }

    pub fn remaining(&self) -> i64 {
        self.total_count - self.used_count
    }

    /// One more application holds a unit: the quota error when none is left.
    pub fn take_unit(&self, now: Millis) -> DomainResult<Package> {
        if self.remaining() <= 0 {
            return Err(DomainError::QuotaExhausted(format!(
                "no certificate quota of {} is left ({} of {} used)",
                self.product_code, self.used_count, self.total_count
            )));
        }
        let mut next = self.clone();
        next.used_count += 1;
        next.updated_at = now;
        Ok(next)
    }

    /// A withdrawn, failed or refunded application gives its unit back.
    pub fn return_unit(&self, now: Millis) -> Package {
        let mut next = self.clone();
        next.used_count = (next.used_count - 1).max(0);
        next.updated_at = now;
        next
    }
}

impl Document for Package {
    const KIND: Kind = Kind::Package;
    fn key(&self) -> String {
        Package::key_for(&self.account, &self.product_code)
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
}

impl Core {
    pub(crate) async fn load_package(
        &self,
        account: &str,
        product_code: &str,
    ) -> DomainResult<Stored<Package>> {
        store::get::<Package>(self.store(), &Package::key_for(account, product_code))
            .await?
            .ok_or_else(|| DomainError::not_found(Resource::Package, product_code))
    }

    /// DescribePackageState: a plan the account never bought reads as all zeros.
    pub async fn package_state(&self, account: &str, product_code: &str) -> DomainResult<Package> {
        check_product_code(product_code)?;
        match self.load_package(account, product_code).await {
            Ok(p) => Ok(p.value),
            Err(DomainError::NotFound { .. }) => Ok(Package {
                account: account.to_string(),
                product_code: product_code.to_string(),
                total_count: 0,
                used_count: 0,
                issued_count: 0,
                updated_at: self.now(),
            }),
            Err(e) => Err(e),
        }
    }

    /// `certplane admin cas package add`: buys `count` more units of a plan.
    pub async fn add_package(
        &self,
        account: &str,
        product_code: &str,
        count: i64,
    ) -> DomainResult<Package> {
        check_product_code(product_code)?;
        if count <= 0 {
            return Err(DomainError::invalid("the count must be a positive number"));
        }
        self.with_retry(|| async {
            let now = self.now();
            match store::get::<Package>(self.store(), &Package::key_for(account, product_code))
                .await?
            {
                Some(cur) => {
                    let mut next = cur.value.clone();
                    next.total_count += count;
                    next.updated_at = now;
                    self.store().apply(vec![cur.update_to(&next)?]).await?;
                    Ok(next)
                }
                None => {
                    let p = Package {
                        account: account.to_string(),
                        product_code: product_code.to_string(),
                        total_count: count,
                        used_count: 0,
                        issued_count: 0,
                        updated_at: now,
                    };
                    // A racing first purchase: the loser's insert fails and it retries as an
                    // update.
                    match self.store().apply(vec![Write::Insert(p.to_doc()?)]).await {
                        Err(DomainError::AlreadyExists { .. }) => Err(DomainError::Stale),
                        other => other.map(|_| p),
                    }
                }
            }
        })
        .await
    }
}
