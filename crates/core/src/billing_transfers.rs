//! Billing ownership transfers (Azure Billing "transfers"): an owner of a customer (partner
//! agreement) or an invoice section (customer agreement) asks a recipient, by email, to move the
//! billing of products the recipient holds to that scope.
//!
//! ```text
//! Pending ──cancel (initiator side)──▶ Canceled
//!    │ ──decline (recipient)─────────▶ Declined
//!    │ ──now ≥ expiresAt─────────────▶ Expired      (lazily, compare-and-set on the clock)
//!    └──accept (recipient, products)─▶ InProgress ──▶ Completed | CompletedWithErrors | Failed
//!                                       per product NotStarted → InProgress → Completed | Failed
//! ```
//!
//! The transfer is one document keyed by its name (the recipient API addresses a transfer by
//! name alone, so names are unique in the deployment). Every change is one `apply` with a
//! compare-and-set on the transfer (and, on accept and completion, on each product), so of an
//! accept and a cancel racing on one transfer exactly one commits and the other, re-reading,
//! gets the precise conflict. Accepted transfers advance one step per [`Core::advance_billing_transfer`]
//! call (the binary's sweep makes one every second), so processing survives a restart.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::billing::{
    check_email, email_key, valid_product_id, valid_transfer_name, BillingScope, Product,
    ProductStatus, ProductType, SectionKind,
};
use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery, Stored, Write};

/// Transfers expire 15 days after they are made unless configured otherwise.
pub const DEFAULT_TRANSFER_TTL_MS: Millis = 15 * 24 * 3_600_000;
/// Most items on one list page.
pub const PAGE_SIZE: usize = 20;
/// Most products one accept may name.
pub const MAX_PRODUCTS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferState {
    Pending,
    InProgress,
    Completed,
    CompletedWithErrors,
    Failed,
    Canceled,
    Declined,
    Expired,
}

impl TransferState {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferState::Pending => "Pending",
            TransferState::InProgress => "InProgress",
            TransferState::Completed => "Completed",
            TransferState::CompletedWithErrors => "CompletedWithErrors",
            TransferState::Failed => "Failed",
            TransferState::Canceled => "Canceled",
            TransferState::Declined => "Declined",
            TransferState::Expired => "Expired",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductTransferState {
    NotStarted,
    InProgress,
    Completed,
    Failed,
}

impl ProductTransferState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductTransferState::NotStarted => "NotStarted",
            ProductTransferState::InProgress => "InProgress",
            ProductTransferState::Completed => "Completed",
            ProductTransferState::Failed => "Failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductTransfer {
    pub product_type: ProductType,
    pub product_id: String,
    pub status: ProductTransferState,
    pub error: Option<ProductError>,
}

/// The last state-changing call, so that a retry of it (same client request id) gets the same
/// answer instead of a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastAction {
    pub action: String,
    pub request_id: String,
    pub caller: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingTransfer {
    pub name: String,
    pub scope: BillingScope,
    pub recipient: String,
    pub initiator: String,
    pub reseller_id: Option<String>,
    pub status: TransferState,
    pub canceled_by: Option<String>,
    pub products: Vec<ProductTransfer>,
    pub created_at: Millis,
    pub last_modified: Millis,
    pub expires_at: Millis,
    pub last_action: Option<LastAction>,
}

impl Document for BillingTransfer {
    const KIND: Kind = Kind::BillingTransfer;
    fn key(&self) -> String {
        self.name.clone()
    }
    /// The scope's ARM path: the initiator-side lists filter on it.
    fn account(&self) -> String {
        self.scope.path()
    }
    fn region(&self) -> String {
        String::new()
    }
    /// The recipient (lower case): the recipient lists filter on it.
    fn idx1(&self) -> Option<String> {
        Some(email_key(&self.recipient))
    }
    /// Set only while accepted products are moving: the sweep's work list.
    fn idx2(&self) -> Option<String> {
        (self.status == TransferState::InProgress).then(|| IN_PROGRESS.to_string())
    }
}

const IN_PROGRESS: &str = "InProgress";

/// One requested product of an accept or validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRef {
    pub product_type: ProductType,
    pub product_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

/// One finding of a validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductValidation {
    pub product_id: String,
    pub findings: Vec<Finding>,
}

impl ProductValidation {
    /// `Failed` when a finding blocks the transfer, `Warning` when some only warn, else `Passed`.
    pub fn status(&self) -> &'static str {
        if self.findings.iter().any(|f| f.level == Level::Error) {
            "Failed"
        } else if self.findings.is_empty() {
            "Passed"
        } else {
            "Warning"
        }
    }
}

/// Validation codes that block an accept (the dialect maps each to its wire code).
pub const NOT_INTENDED_RECIPIENT: &str = "NotIntendedRecipient";
pub const PRODUCT_NOT_FOUND: &str = "ProductNotFound";
pub const PRODUCT_NOT_HELD: &str = "ProductNotHeldByRecipient";
pub const PRODUCT_DISABLED: &str = "ProductDisabled";
pub const PRODUCT_TYPE_MISMATCH: &str = "ProductTypeMismatch";
pub const PRODUCT_IN_TRANSFER: &str = "ProductTransferInProgress";
pub const PRODUCT_ALREADY_IN_SCOPE: &str = "ProductAlreadyBilledToScope";

/// Which list a page token belongs to, so a token of one list cannot page another.
pub fn encode_page_token(list: &str, seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{list}:{seq}"))
}

pub fn decode_page_token(list: &str, token: &str) -> DomainResult<i64> {
    let bad = || DomainError::invalid(format!("the $skiptoken {token:?} is not valid"));
    if token.len() > 512 {
        return Err(bad());
    }
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix("v1:")
        .and_then(|r| r.strip_prefix(list))
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|r| r.parse().ok())
        .ok_or_else(bad)
}

impl BillingTransfer {
    fn not_pending(&self) -> DomainError {
        DomainError::WrongState {
            current: self.status.as_str().into(),
            message: format!(
                "the transfer {} is {}; only a Pending transfer can be changed",
                self.name,
                self.status.as_str()
            ),
        }
    }

    fn is_recipient(&self, caller: &str) -> bool {
        email_key(&self.recipient) == email_key(caller)
    }

    fn not_recipient(&self, caller: &str) -> DomainError {
        DomainError::NotPermitted(format!(
            "{caller} is not the recipient of the transfer {}",
            self.name
        ))
    }

    /// The expired version of a Pending transfer whose time is up.
    fn expired_at(&self, now: Millis) -> Option<BillingTransfer> {
        (self.status == TransferState::Pending && now >= self.expires_at).then(|| {
            let mut t = self.clone();
            t.status = TransferState::Expired;
            t.last_modified = now;
            t
        })
    }

    /// Was this exact call (same action, caller and client request id) the one that made the
    /// current state?
    fn replays(&self, action: &str, caller: &str, request_id: Option<&str>) -> bool {
        match (&self.last_action, request_id) {
            (Some(a), Some(id)) => {
                a.action == action && a.request_id == id && a.caller == email_key(caller)
            }
            _ => false,
        }
    }

    fn record(&mut self, action: &str, caller: &str, request_id: Option<&str>) {
        self.last_action = request_id.map(|id| LastAction {
            action: action.to_string(),
            request_id: id.to_string(),
            caller: email_key(caller),
        });
    }

    /// The pure decision of a cancel (initiator side) or decline (recipient).
    pub fn decide_end(
        &self,
        caller: &str,
        to: TransferState,
        now: Millis,
        request_id: Option<&str>,
    ) -> DomainResult<BillingTransfer> {
        if self.status != TransferState::Pending {
            return Err(self.not_pending());
        }
        if now >= self.expires_at {
            return Err(DomainError::WrongState {
                current: TransferState::Expired.as_str().into(),
                message: format!("the transfer {} has expired", self.name),
            });
        }
        let mut t = self.clone();
        t.status = to;
        t.last_modified = now;
        if to == TransferState::Canceled {
            t.canceled_by = Some(caller.to_string());
        }
        t.record(to.as_str(), caller, request_id);
        Ok(t)
    }

    /// Per-product findings for the products a recipient would accept, from the products as
    /// stored (`None`: no such product).
    pub fn validate(
        &self,
        caller: &str,
        wanted: &[(ProductRef, Option<&Product>)],
    ) -> Vec<ProductValidation> {
        let recipient = self.is_recipient(caller);
        let scope = self.scope.path();
        wanted
            .iter()
            .map(|(r, p)| {
                let mut findings = Vec::new();
                let mut err = |code: &'static str, message: String| {
                    findings.push(Finding {
                        level: Level::Error,
                        code,
                        message,
                    })
                };
                if !recipient {
                    err(
                        NOT_INTENDED_RECIPIENT,
                        format!(
                            "The intended recipient of the transfer {} is different from the caller {caller}.",
                            self.name
                        ),
                    );
                }
                match p {
                    None => err(
                        PRODUCT_NOT_FOUND,
                        format!("The product {} does not exist.", r.product_id),
                    ),
                    Some(p) => {
                        if recipient && email_key(&p.owner) != email_key(caller) {
                            err(
                                PRODUCT_NOT_HELD,
                                format!("The product {} is not held by {caller}.", p.id),
                            );
                        }
                        if p.product_type != r.product_type {
                            err(
                                PRODUCT_TYPE_MISMATCH,
                                format!(
                                    "The product {} is a {}, not a {}.",
                                    p.id,
                                    p.product_type.as_str(),
                                    r.product_type.as_str()
                                ),
                            );
                        }
                        if p.status == ProductStatus::Disabled {
                            err(
                                PRODUCT_DISABLED,
                                format!(
                                    "The product {} is disabled; only active products can be transferred.",
                                    p.id
                                ),
                            );
                        }
                        if p.in_transfer.is_some() {
                            err(
                                PRODUCT_IN_TRANSFER,
                                format!("The product {} is already being transferred.", p.id),
                            );
                        }
                        if p.scope.as_deref() == Some(scope.as_str()) {
                            findings.push(Finding {
                                level: Level::Warning,
                                code: PRODUCT_ALREADY_IN_SCOPE,
                                message: format!("The product {} is already billed to {scope}.", p.id),
                            });
                        }
                    }
                }
                ProductValidation {
                    product_id: r.product_id.clone(),
                    findings,
                }
            })
            .collect()
    }

    /// One step of processing an accepted transfer: NotStarted products start; started ones
    /// finish (moving the product's billing, or failing with its rehearsal code). Returns the
    /// new transfer and the products to write, or `None` when there is nothing to do.
    pub fn step(&self, products: &[Option<Stored<Product>>], now: Millis) -> Option<Step> {
        if self.status != TransferState::InProgress {
            return None;
        }
        let mut t = self.clone();
        t.last_modified = now;
        let mut writes = Vec::new();
        if t.products
            .iter()
            .any(|p| p.status == ProductTransferState::NotStarted)
        {
            for p in &mut t.products {
                if p.status == ProductTransferState::NotStarted {
                    p.status = ProductTransferState::InProgress;
                }
            }
            return Some((t, writes));
        }
        let scope = self.scope.path();
        for (pt, stored) in t.products.iter_mut().zip(products) {
            if pt.status != ProductTransferState::InProgress {
                continue;
            }
            let fail = match stored {
                None => Some(ProductError {
                    code: PRODUCT_NOT_FOUND.into(),
                    message: format!("The product {} no longer exists.", pt.product_id),
                }),
                Some(s) => {
                    let p = &s.value;
                    let mut next = p.clone();
                    if next.in_transfer.as_deref() == Some(self.name.as_str()) {
                        next.in_transfer = None;
                    }
                    let fail = if let Some(code) = &p.transfer_failure {
                        Some(ProductError {
                            code: code.clone(),
                            message: format!(
                                "The product {} could not be transferred ({code}).",
                                p.id
                            ),
                        })
                    } else if p.status == ProductStatus::Disabled {
                        Some(ProductError {
                            code: PRODUCT_DISABLED.into(),
                            message: format!("The product {} was disabled.", p.id),
                        })
                    } else {
                        next.scope = Some(scope.clone());
                        None
                    };
                    if next != *p {
                        writes.push((s.clone(), next));
                    }
                    fail
                }
            };
            pt.status = if fail.is_some() {
                ProductTransferState::Failed
            } else {
                ProductTransferState::Completed
            };
            pt.error = fail;
        }
        let done = t
            .products
            .iter()
            .filter(|p| p.status == ProductTransferState::Completed)
            .count();
        t.status = if done == t.products.len() {
            TransferState::Completed
        } else if done == 0 {
            TransferState::Failed
        } else {
            TransferState::CompletedWithErrors
        };
        Some((t, writes))
    }
}

/// One processing step: the new transfer and each product's (read, new) pair to write.
pub type Step = (BillingTransfer, Vec<(Stored<Product>, Product)>);

/// Checks and normalises the products of an accept or validate request.
pub fn check_product_refs(refs: &[ProductRef]) -> DomainResult<()> {
    if refs.is_empty() {
        return Err(DomainError::invalid(
            "properties.productDetails must name at least one product",
        ));
    }
    if refs.len() > MAX_PRODUCTS {
        return Err(DomainError::invalid(format!(
            "properties.productDetails may name at most {MAX_PRODUCTS} products"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for r in refs {
        if !valid_product_id(&r.product_id) {
            return Err(DomainError::invalid(format!(
                "productId {:?} is not a valid product id",
                r.product_id
            )));
        }
        if !seen.insert(r.product_id.as_str()) {
            return Err(DomainError::invalid(format!(
                "the product {} is named twice in properties.productDetails",
                r.product_id
            )));
        }
    }
    Ok(())
}

/// A page of transfers and the token of the next page.
pub type TransferPage = (Vec<BillingTransfer>, Option<String>);

impl Core {
    pub fn with_billing_transfer_ttl(mut self, ttl_ms: Millis) -> Self {
        self.billing_transfer_ttl_ms = ttl_ms;
        self
    }

    async fn load_billing_transfer(&self, name: &str) -> DomainResult<Stored<BillingTransfer>> {
        store::get::<BillingTransfer>(self.store(), name)
            .await?
            .ok_or_else(|| DomainError::not_found(Resource::BillingTransfer, name))
    }

    /// The transfer as it is now: a Pending one whose time is up is first stored as Expired
    /// (compare-and-set; a lost race re-reads).
    async fn current_billing_transfer(&self, name: &str) -> DomainResult<Stored<BillingTransfer>> {
        self.with_retry(|| async {
            let cur = self.load_billing_transfer(name).await?;
            self.expire_if_due(cur).await
        })
        .await
    }

    async fn expire_if_due(
        &self,
        cur: Stored<BillingTransfer>,
    ) -> DomainResult<Stored<BillingTransfer>> {
        match cur.value.expired_at(self.now()) {
            None => Ok(cur),
            Some(t) => {
                self.store().apply(vec![cur.update_to(&t)?]).await?;
                Ok(Stored {
                    value: t,
                    version: cur.version + 1,
                    seq: cur.seq,
                })
            }
        }
    }

    /// PUT of a transfer under a scope: creates it Pending (`true`), or answers the same
    /// Pending transfer for an identical request (`false`).
    pub async fn initiate_billing_transfer(
        &self,
        caller: &str,
        scope: &BillingScope,
        name: &str,
        recipient: &str,
        reseller_id: Option<&str>,
    ) -> DomainResult<(BillingTransfer, bool)> {
        if !valid_transfer_name(name) {
            return Err(DomainError::invalid(format!(
                "transferName {name:?} must be 1 to 128 lower-case letters or digits"
            )));
        }
        check_email("properties.recipientEmailId", recipient)?;
        if let Some(r) = reseller_id {
            if r.is_empty() || r.len() > 64 || !r.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(DomainError::invalid(format!(
                    "properties.resellerId {r:?} must be 1 to 64 letters or digits"
                )));
            }
        }
        if reseller_id.is_some() && scope.kind == SectionKind::InvoiceSection {
            return Err(DomainError::invalid(
                "properties.resellerId applies to partner (customer) transfers only",
            ));
        }
        self.authorize_billing_scope(scope, caller).await?;
        self.with_retry(|| async {
            let now = self.now();
            if let Some(cur) = store::get::<BillingTransfer>(self.store(), name).await? {
                let cur = self.expire_if_due(cur).await?.value;
                let same = cur.status == TransferState::Pending
                    && cur.scope == *scope
                    && email_key(&cur.recipient) == email_key(recipient)
                    && email_key(&cur.initiator) == email_key(caller)
                    && cur.reseller_id.as_deref() == reseller_id;
                return if same {
                    Ok((cur, false))
                } else {
                    Err(DomainError::AlreadyExists {
                        resource: Resource::BillingTransfer,
                        id: name.to_string(),
                    })
                };
            }
            let t = BillingTransfer {
                name: name.to_string(),
                scope: scope.clone(),
                recipient: recipient.to_string(),
                initiator: caller.to_string(),
                reseller_id: reseller_id.map(str::to_string),
                status: TransferState::Pending,
                canceled_by: None,
                products: Vec::new(),
                created_at: now,
                last_modified: now,
                expires_at: now.saturating_add(self.billing_transfer_ttl_ms),
                last_action: None,
            };
            match self.store().apply(vec![store::insert(&t)?]).await {
                Ok(()) => Ok((t, true)),
                // A racing creator won: decide again against what it stored.
                Err(DomainError::AlreadyExists { .. }) => Err(DomainError::Stale),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// A transfer made under `scope`, as its initiator side sees it.
    pub async fn scoped_billing_transfer(
        &self,
        caller: &str,
        scope: &BillingScope,
        name: &str,
    ) -> DomainResult<BillingTransfer> {
        self.authorize_billing_scope(scope, caller).await?;
        let t = self.current_billing_transfer(name).await?.value;
        if t.scope != *scope {
            return Err(DomainError::not_found(Resource::BillingTransfer, name));
        }
        Ok(t)
    }

    async fn page_of(
        &self,
        list: &str,
        filter: Filter,
        token: Option<&str>,
    ) -> DomainResult<TransferPage> {
        let after_seq = match token {
            Some(t) if !t.is_empty() => Some(decode_page_token(list, t)?),
            _ => None,
        };
        let rows = store::query::<BillingTransfer>(
            self.store(),
            &filter,
            PageQuery {
                after_seq,
                limit: PAGE_SIZE + 1,
                ascending: true,
            },
        )
        .await?;
        let more = rows.len() > PAGE_SIZE;
        let mut out = Vec::with_capacity(PAGE_SIZE);
        let mut last_seq = None;
        for row in rows.into_iter().take(PAGE_SIZE) {
            last_seq = Some(row.seq);
            let name = row.value.name.clone();
            let t = match self.expire_if_due(row).await {
                Ok(t) => t.value,
                // Someone else changed it meanwhile: show it as it is now.
                Err(DomainError::Stale) => self.current_billing_transfer(&name).await?.value,
                Err(e) => return Err(e),
            };
            out.push(t);
        }
        let next = match (more, last_seq) {
            (true, Some(seq)) => Some(encode_page_token(list, seq)),
            _ => None,
        };
        Ok((out, next))
    }

    /// One page (at most 20) of the transfers made under `scope`, oldest first.
    pub async fn list_scoped_billing_transfers(
        &self,
        caller: &str,
        scope: &BillingScope,
        token: Option<&str>,
    ) -> DomainResult<TransferPage> {
        self.authorize_billing_scope(scope, caller).await?;
        self.page_of(
            "scope",
            Filter {
                account: Some(scope.path()),
                ..Default::default()
            },
            token,
        )
        .await
    }

    /// Cancel by the initiator side (any owner of the scope). A replay of the call that
    /// canceled it answers the canceled transfer again.
    pub async fn cancel_billing_transfer(
        &self,
        caller: &str,
        scope: &BillingScope,
        name: &str,
        request_id: Option<&str>,
    ) -> DomainResult<BillingTransfer> {
        self.authorize_billing_scope(scope, caller).await?;
        self.with_retry(|| async {
            let cur = self.load_billing_transfer(name).await?;
            if cur.value.scope != *scope {
                return Err(DomainError::not_found(Resource::BillingTransfer, name));
            }
            let cur = self.expire_if_due(cur).await?;
            self.end_billing_transfer(cur, caller, TransferState::Canceled, request_id)
                .await
        })
        .await
    }

    /// A transfer addressed to `caller`.
    pub async fn recipient_billing_transfer(
        &self,
        caller: &str,
        name: &str,
    ) -> DomainResult<BillingTransfer> {
        let t = self.current_billing_transfer(name).await?.value;
        if !t.is_recipient(caller) {
            return Err(t.not_recipient(caller));
        }
        Ok(t)
    }

    /// One page of the transfers addressed to `caller`, oldest first.
    pub async fn list_recipient_billing_transfers(
        &self,
        caller: &str,
        token: Option<&str>,
    ) -> DomainResult<TransferPage> {
        self.page_of(
            "recipient",
            Filter {
                idx1: Some(email_key(caller)),
                ..Default::default()
            },
            token,
        )
        .await
    }

    async fn load_products(
        &self,
        refs: &[ProductRef],
    ) -> DomainResult<Vec<Option<Stored<Product>>>> {
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            out.push(self.billing_product(&r.product_id).await?);
        }
        Ok(out)
    }

    /// What accepting these products would find; changes nothing.
    pub async fn validate_billing_transfer(
        &self,
        caller: &str,
        name: &str,
        refs: &[ProductRef],
    ) -> DomainResult<Vec<ProductValidation>> {
        check_product_refs(refs)?;
        let t = self.current_billing_transfer(name).await?.value;
        if t.status != TransferState::Pending {
            return Err(t.not_pending());
        }
        let products = self.load_products(refs).await?;
        let wanted: Vec<(ProductRef, Option<&Product>)> = refs
            .iter()
            .cloned()
            .zip(products.iter().map(|p| p.as_ref().map(|s| &s.value)))
            .collect();
        Ok(t.validate(caller, &wanted))
    }

    /// Accept by the recipient: the transfer becomes InProgress and each product is marked as
    /// moving in it, all in one compare-and-set transaction. Refused, changing nothing, when a
    /// product is not transferable.
    pub async fn accept_billing_transfer(
        &self,
        caller: &str,
        name: &str,
        refs: &[ProductRef],
        request_id: Option<&str>,
    ) -> DomainResult<BillingTransfer> {
        check_product_refs(refs)?;
        self.with_retry(|| async {
            let cur = self
                .expire_if_due(self.load_billing_transfer(name).await?)
                .await?;
            if !cur.value.is_recipient(caller) {
                return Err(cur.value.not_recipient(caller));
            }
            if cur.value.replays("Accepted", caller, request_id) {
                return Ok(cur.value);
            }
            if cur.value.status != TransferState::Pending {
                return Err(cur.value.not_pending());
            }
            let products = self.load_products(refs).await?;
            let wanted: Vec<(ProductRef, Option<&Product>)> = refs
                .iter()
                .cloned()
                .zip(products.iter().map(|p| p.as_ref().map(|s| &s.value)))
                .collect();
            for v in cur.value.validate(caller, &wanted) {
                if let Some(f) = v.findings.iter().find(|f| f.level == Level::Error) {
                    // The products were read after the transfer: if the transfer moved on
                    // meanwhile (a racing accept marked these products), its state is the
                    // answer, so decide again from a fresh read.
                    if self.load_billing_transfer(name).await?.version != cur.version {
                        return Err(DomainError::Stale);
                    }
                    return Err(DomainError::WrongState {
                        current: f.code.to_string(),
                        message: f.message.clone(),
                    });
                }
            }
            let now = self.now();
            let mut t = cur.value.clone();
            t.status = TransferState::InProgress;
            t.last_modified = now;
            t.products = refs
                .iter()
                .map(|r| ProductTransfer {
                    product_type: r.product_type,
                    product_id: r.product_id.clone(),
                    status: ProductTransferState::NotStarted,
                    error: None,
                })
                .collect();
            t.record("Accepted", caller, request_id);
            let mut writes: Vec<Write> = vec![cur.update_to(&t)?];
            for p in products.iter().flatten() {
                let mut next = p.value.clone();
                next.in_transfer = Some(name.to_string());
                writes.push(p.update_to(&next)?);
            }
            self.store().apply(writes).await?;
            Ok(t)
        })
        .await
    }

    /// Decline by the recipient.
    pub async fn decline_billing_transfer(
        &self,
        caller: &str,
        name: &str,
        request_id: Option<&str>,
    ) -> DomainResult<BillingTransfer> {
        self.with_retry(|| async {
            let cur = self
                .expire_if_due(self.load_billing_transfer(name).await?)
                .await?;
            if !cur.value.is_recipient(caller) {
                return Err(cur.value.not_recipient(caller));
            }
            self.end_billing_transfer(cur, caller, TransferState::Declined, request_id)
                .await
        })
        .await
    }

    /// Cancel or decline, once the caller's side is checked: a replay of the call that made
    /// the current state answers it again; otherwise one compare-and-set from Pending.
    async fn end_billing_transfer(
        &self,
        cur: Stored<BillingTransfer>,
        caller: &str,
        to: TransferState,
        request_id: Option<&str>,
    ) -> DomainResult<BillingTransfer> {
        if cur.value.replays(to.as_str(), caller, request_id) {
            return Ok(cur.value);
        }
        let t = cur.value.decide_end(caller, to, self.now(), request_id)?;
        self.store().apply(vec![cur.update_to(&t)?]).await?;
        Ok(t)
    }

    /// The names of accepted transfers whose products are still moving.
    pub async fn billing_transfers_in_progress(&self) -> DomainResult<Vec<String>> {
        Ok(store::query::<BillingTransfer>(
            self.store(),
            &Filter {
                idx2: Some(IN_PROGRESS.into()),
                ..Default::default()
            },
            PageQuery {
                after_seq: None,
                limit: 1000,
                ascending: true,
            },
        )
        .await?
        .into_iter()
        .map(|s| s.value.name)
        .collect())
    }

    /// Advances an accepted transfer by one step (see [`BillingTransfer::step`]); returns its
    /// status afterwards. Racing advancers (two nodes' sweeps) commit one step each at most.
    pub async fn advance_billing_transfer(&self, name: &str) -> DomainResult<TransferState> {
        self.with_retry(|| async {
            let cur = self.load_billing_transfer(name).await?;
            let refs: Vec<ProductRef> = cur
                .value
                .products
                .iter()
                .map(|p| ProductRef {
                    product_type: p.product_type,
                    product_id: p.product_id.clone(),
                })
                .collect();
            let products = self.load_products(&refs).await?;
            let Some((t, moved)) = cur.value.step(&products, self.now()) else {
                return Ok(cur.value.status);
            };
            let mut writes = vec![cur.update_to(&t)?];
            for (stored, next) in &moved {
                writes.push(stored.update_to(next)?);
            }
            self.store().apply(writes).await?;
            Ok(t.status)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer() -> BillingTransfer {
        BillingTransfer {
            name: "t1".into(),
            scope: BillingScope {
                account: "1".into(),
                profile: "p".into(),
                kind: SectionKind::InvoiceSection,
                section: "s".into(),
            },
            recipient: "Bob@Example.com".into(),
            initiator: "alice@example.com".into(),
            reseller_id: None,
            status: TransferState::Pending,
            canceled_by: None,
            products: vec![],
            created_at: 0,
            last_modified: 0,
            expires_at: 1000,
            last_action: None,
        }
    }

    fn product(id: &str, failure: Option<&str>) -> Product {
        Product {
            id: id.into(),
            product_type: ProductType::AzureSubscription,
            status: ProductStatus::Active,
            owner: "bob@example.com".into(),
            transfer_failure: failure.map(str::to_string),
            scope: None,
            in_transfer: Some("t1".into()),
        }
    }

    #[test]
    fn only_pending_transfers_end_and_expiry_wins() {
        let t = transfer();
        let c = t
            .decide_end("alice@example.com", TransferState::Canceled, 10, Some("r1"))
            .expect("cancel");
        assert_eq!(c.status, TransferState::Canceled);
        assert_eq!(c.canceled_by.as_deref(), Some("alice@example.com"));
        assert!(c.replays("Canceled", "ALICE@example.com", Some("r1")));
        assert!(!c.replays("Canceled", "alice@example.com", Some("r2")));
        assert!(matches!(
            c.decide_end("x@example.com", TransferState::Declined, 11, None),
            Err(DomainError::WrongState { .. })
        ));
        assert!(t.expired_at(999).is_none());
        assert_eq!(
            t.expired_at(1000).map(|t| t.status),
            Some(TransferState::Expired)
        );
        assert!(t
            .decide_end("a@b.c", TransferState::Canceled, 1000, None)
            .is_err());
    }

    #[test]
    fn validation_finds_the_wrong_recipient_and_bad_products() {
        let t = transfer();
        let mut disabled = product("p2", None);
        disabled.status = ProductStatus::Disabled;
        disabled.in_transfer = None;
        let mut ok = product("p1", None);
        ok.in_transfer = None;
        let r = |id: &str| ProductRef {
            product_type: ProductType::AzureSubscription,
            product_id: id.into(),
        };
        let v = t.validate(
            "bob@example.com",
            &[
                (r("p1"), Some(&ok)),
                (r("p2"), Some(&disabled)),
                (r("p3"), None),
            ],
        );
        assert_eq!(v[0].status(), "Passed");
        assert_eq!(v[1].findings[0].code, PRODUCT_DISABLED);
        assert_eq!(v[2].findings[0].code, PRODUCT_NOT_FOUND);
        let w = t.validate("eve@example.com", &[(r("p1"), Some(&ok))]);
        assert_eq!(w[0].status(), "Failed");
        assert_eq!(w[0].findings[0].code, NOT_INTENDED_RECIPIENT);
    }

    #[test]
    fn processing_ends_completed_with_errors_when_some_fail() {
        let mut t = transfer();
        t.status = TransferState::InProgress;
        t.products = ["p1", "p2"]
            .iter()
            .map(|id| ProductTransfer {
                product_type: ProductType::AzureSubscription,
                product_id: id.to_string(),
                status: ProductTransferState::NotStarted,
                error: None,
            })
            .collect();
        let stored = |p: Product| {
            Some(Stored {
                value: p,
                version: 1,
                seq: 1,
            })
        };
        let products = vec![
            stored(product("p1", None)),
            stored(product("p2", Some("Nope"))),
        ];
        let (t1, w1) = t.step(&products, 5).expect("start");
        assert!(w1.is_empty());
        assert!(t1
            .products
            .iter()
            .all(|p| p.status == ProductTransferState::InProgress));
        let (t2, w2) = t1.step(&products, 6).expect("finish");
        assert_eq!(t2.status, TransferState::CompletedWithErrors);
        assert_eq!(
            t2.products[1].error.as_ref().map(|e| e.code.as_str()),
            Some("Nope")
        );
        assert_eq!(w2.len(), 2);
        assert_eq!(w2[0].1.scope.as_deref(), Some(t.scope.path().as_str()));
        assert_eq!(w2[1].1.scope, None);
        assert!(t2.step(&products, 7).is_none());
    }

    #[test]
    fn page_tokens_are_url_safe_and_scoped() {
        let tok = encode_page_token("scope", 123456);
        assert!(tok
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(decode_page_token("scope", &tok), Ok(123456));
        assert!(decode_page_token("recipient", &tok).is_err());
    }
}
