//! The storage seam. Entities are kept as documents: a kind, a unique key, a few indexed columns
//! (account, region, two secondary keys) and a JSON body. Every engine implements this one trait;
//! the typed helpers at the bottom convert entities to and from documents.
//!
//! Every state change goes through [`Store::apply`]: all its writes commit in one durable
//! transaction or none do, and each `Update`/`Delete` is a compare-and-set on the version read
//! earlier, so of two racing calls only one can win.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DomainError, DomainResult};

/// The kinds of document certplane keeps. The string is the stored name: never change one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Certificate,
    Transfer,
    CaCertificate,
    RegistrationCode,
    Thing,
    Policy,
    ThingPrincipal,
    PolicyTarget,
    Account,
    AccessKey,
    Issuer,
    Package,
    Order,
    UserCertificate,
    Claim,
    MqttInstance,
    BillingAccount,
    BillingProduct,
    BillingTransfer,
    OauthClient,
    SigningKey,
    ThingType,
    ThingGroup,
    ThingGroupMember,
    BillingGroup,
    /// Per held CA: the last CRL number used, so numbers grow across restarts and nodes.
    CrlState,
    ProvisioningTemplate,
    /// A user inside an account (IAM-style identity), with the names of its policies.
    User,
    /// A customer-managed IAM-style policy document of an account.
    IamPolicy,
    /// One row of the audit trail (crate::audit).
    AuditEvent,
}

impl Kind {
    pub const ALL: [Kind; 30] = [
        Kind::Certificate,
        Kind::Transfer,
        Kind::CaCertificate,
        Kind::RegistrationCode,
        Kind::Thing,
        Kind::Policy,
        Kind::ThingPrincipal,
        Kind::PolicyTarget,
        Kind::Account,
        Kind::AccessKey,
        Kind::Issuer,
        Kind::Package,
        Kind::Order,
        Kind::UserCertificate,
        Kind::Claim,
        Kind::MqttInstance,
        Kind::BillingAccount,
        Kind::BillingProduct,
        Kind::BillingTransfer,
        Kind::OauthClient,
        Kind::SigningKey,
        Kind::ThingType,
        Kind::ThingGroup,
        Kind::ThingGroupMember,
        Kind::BillingGroup,
        Kind::CrlState,
        Kind::ProvisioningTemplate,
        Kind::User,
        Kind::IamPolicy,
        Kind::AuditEvent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Certificate => "certificate",
            Kind::Transfer => "transfer",
            Kind::CaCertificate => "ca_certificate",
            Kind::RegistrationCode => "registration_code",
            Kind::Thing => "thing",
            Kind::Policy => "policy",
            Kind::ThingPrincipal => "thing_principal",
            Kind::PolicyTarget => "policy_target",
            Kind::Account => "account",
            Kind::AccessKey => "access_key",
            Kind::Issuer => "issuer",
            Kind::Package => "package",
            Kind::Order => "order",
            Kind::UserCertificate => "user_certificate",
            Kind::Claim => "claim",
            Kind::MqttInstance => "mqtt_instance",
            Kind::BillingAccount => "billing_account",
            Kind::BillingProduct => "billing_product",
            Kind::BillingTransfer => "billing_transfer",
            Kind::OauthClient => "oauth_client",
            Kind::SigningKey => "signing_key",
            Kind::ThingType => "thing_type",
            Kind::ThingGroup => "thing_group",
            Kind::ThingGroupMember => "thing_group_member",
            Kind::BillingGroup => "billing_group",
            Kind::CrlState => "crl_state",
            Kind::ProvisioningTemplate => "provisioning_template",
            Kind::User => "user",
            Kind::IamPolicy => "iam_policy",
            Kind::AuditEvent => "audit_event",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The resource a document of this kind is, for errors raised by the store itself.
    pub fn resource(self) -> crate::error::Resource {
        use crate::error::Resource;
        match self {
            Kind::Certificate => Resource::Certificate,
            Kind::Transfer => Resource::Transfer,
            Kind::CaCertificate => Resource::CaCertificate,
            Kind::RegistrationCode => Resource::RegistrationCode,
            Kind::Thing => Resource::Thing,
            Kind::Policy => Resource::Policy,
            Kind::ThingPrincipal | Kind::PolicyTarget => Resource::Attachment,
            Kind::Account => Resource::Account,
            Kind::AccessKey => Resource::AccessKey,
            Kind::Issuer => Resource::Issuer,
            Kind::Package => Resource::Package,
            Kind::Order => Resource::Order,
            Kind::UserCertificate => Resource::UserCertificate,
            // A lost claim is reported by the service that made it, as its own resource.
            Kind::Claim => Resource::UserCertificate,
            Kind::MqttInstance => Resource::MqttInstance,
            Kind::BillingAccount => Resource::BillingAccount,
            Kind::BillingProduct => Resource::BillingProduct,
            Kind::BillingTransfer => Resource::BillingTransfer,
            Kind::OauthClient => Resource::OauthClient,
            Kind::SigningKey | Kind::CrlState => Resource::Issuer,
            Kind::ThingType => Resource::ThingType,
            Kind::ThingGroup => Resource::ThingGroup,
            Kind::ThingGroupMember => Resource::Attachment,
            Kind::BillingGroup => Resource::BillingGroup,
            Kind::ProvisioningTemplate => Resource::ProvisioningTemplate,
            Kind::User => Resource::User,
            Kind::IamPolicy => Resource::IamPolicy,
            Kind::AuditEvent => Resource::AuditEvent,
        }
    }

    /// Kinds whose committed changes the store announces on its change feed
    /// ([`Store::changes`]): what the device gateway's in-memory index mirrors, and the
    /// credentials a request is authenticated with (the resolved-key cache).
    pub fn is_watched(self) -> bool {
        matches!(
            self,
            Kind::Certificate
                | Kind::CaCertificate
                | Kind::MqttInstance
                | Kind::AccessKey
                | Kind::User
                | Kind::IamPolicy
        )
    }

    /// Kinds that `reset` (dev mode) keeps: the issuing CA, its CRL number (CRL numbers never
    /// go back), the token signing key, the credentials (users and their policies too) and the
    /// audit trail (no API changes it, reset included).
    pub fn survives_reset(self) -> bool {
        matches!(
            self,
            Kind::Issuer
                | Kind::Account
                | Kind::AccessKey
                | Kind::MqttInstance
                | Kind::OauthClient
                | Kind::SigningKey
                | Kind::CrlState
                | Kind::User
                | Kind::IamPolicy
                | Kind::AuditEvent
        )
    }
}

/// One stored document as the engines see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub kind: Kind,
    pub key: String,
    pub account: String,
    pub region: String,
    pub idx1: Option<String>,
    pub idx2: Option<String>,
    /// JSON text of the entity.
    pub body: String,
}

/// A document read back, with its compare-and-set version and its insertion sequence number
/// (the stable creation order that list pages follow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDoc {
    pub doc: Doc,
    pub version: i64,
    pub seq: i64,
}

/// One write inside an [`Store::apply`] batch.
#[derive(Debug, Clone)]
pub enum Write {
    /// Fails the batch with `AlreadyExists` when (kind, key) is taken.
    Insert(Doc),
    /// Inserts unless (kind, key) is taken; never fails for that reason.
    InsertIfAbsent(Doc),
    /// Replaces the document if its version is still `expected_version`; else the batch is
    /// `Stale`. The stored version becomes `expected_version + 1`.
    Update { doc: Doc, expected_version: i64 },
    /// Deletes the document if its version is still `expected_version`; else `Stale`.
    Delete {
        kind: Kind,
        key: String,
        expected_version: i64,
    },
}

/// Which documents of one kind a query wants. `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub account: Option<String>,
    pub region: Option<String>,
    pub idx1: Option<String>,
    pub idx2: Option<String>,
    /// Matches documents whose account **or** idx2 equals this (owner or transfer target).
    pub account_or_idx2: Option<String>,
    /// Only documents that have an idx2.
    pub has_idx2: bool,
}

/// A page request in creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    /// Continue after (ascending) or before (descending) this sequence number.
    pub after_seq: Option<i64>,
    pub limit: usize,
    pub ascending: bool,
}

impl PageQuery {
    pub fn all() -> Self {
        PageQuery {
            after_seq: None,
            limit: usize::MAX,
            ascending: true,
        }
    }
}

/// One event of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A document of a watched kind was inserted, updated or deleted by a committed
    /// transaction: re-read it to learn its state.
    Changed { kind: Kind, key: String },
    /// Events may have been lost (the PostgreSQL LISTEN connection dropped, a dev-mode reset):
    /// whatever a subscriber cached from the store must be re-read.
    Missed,
}

/// How many feed events a slow subscriber may fall behind before it sees `Lagged` (which it
/// must treat as [`Change::Missed`]).
pub const CHANGE_FEED_CAPACITY: usize = 8192;

/// The `Change`s a batch of writes announces once it has committed.
pub fn changes_of(writes: &[Write]) -> Vec<Change> {
    writes
        .iter()
        .filter_map(|w| {
            let (kind, key) = match w {
                Write::Insert(d) | Write::InsertIfAbsent(d) | Write::Update { doc: d, .. } => {
                    (d.kind, &d.key)
                }
                Write::Delete { kind, key, .. } => (*kind, key),
            };
            kind.is_watched().then(|| Change::Changed {
                kind,
                key: key.clone(),
            })
        })
        .collect()
}

/// One counter per kind that moves whenever a document of that kind changes, kept by an engine
/// for [`Store::generation`]: a cache compares the counter it read before loading with the
/// current one, with no lock and no I/O.
#[derive(Debug)]
pub struct Generations {
    counters: [std::sync::atomic::AtomicU64; Kind::ALL.len()],
}

impl Default for Generations {
    fn default() -> Self {
        Generations {
            counters: std::array::from_fn(|_| std::sync::atomic::AtomicU64::new(0)),
        }
    }
}

impl Generations {
    pub fn get(&self, kind: Kind) -> u64 {
        self.counters[kind as usize].load(std::sync::atomic::Ordering::Acquire)
    }

    /// A change of `kind`: the generation that counts it.
    pub fn bump_kind(&self, kind: Kind) -> u64 {
        self.counters[kind as usize].fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1
    }

    pub fn bump_all(&self) {
        for c in &self.counters {
            c.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

/// One number that moves whenever a document of any of `kinds` changes ([`Store::generation`]
/// summed); `None` when the store cannot see every change.
pub fn generation_of(store: &dyn Store, kinds: &[Kind]) -> Option<u64> {
    kinds
        .iter()
        .try_fold(0u64, |sum, k| Some(sum.wrapping_add(store.generation(*k)?)))
}

#[async_trait]
pub trait Store: Send + Sync {
    /// A counter that moves whenever a document of the watched `kind` changes, whoever changed
    /// it: before `apply` returns for a change made through this store, and for a change made
    /// elsewhere (another process, another node) as soon as this store learns of it. `None`
    /// when this store cannot see every change (then nothing may be cached on it).
    fn generation(&self, _kind: Kind) -> Option<u64> {
        None
    }
    /// The change feed: every committed change to a document of a watched kind
    /// ([`Kind::is_watched`]) on this store, whichever node made it (SQLite: this process;
    /// PostgreSQL: every node on the database). Events arrive after the commit. A receiver
    /// that lags (`RecvError::Lagged`) or sees [`Change::Missed`] must re-read what it caches.
    fn changes(&self) -> tokio::sync::broadcast::Receiver<Change>;
    /// Whether the document `key` of a watched `kind`, read once `generation(kind)` had answered
    /// `since`, is still what the store holds, known without I/O: `Some(true)` unchanged,
    /// `Some(false)` changed (or no longer known), `None` when only the database can tell —
    /// PostgreSQL, where another node's change reaches this one's feed only after it has
    /// committed and been acknowledged (then ask [`Store::version`]).
    fn unchanged_since(&self, _kind: Kind, _key: &str, _since: u64) -> Option<bool> {
        Some(false)
    }
    /// Whether every change — this process's, another process's, another node's — is counted
    /// in [`Store::generation`] before its writer answers (SQLite: its writers report to the
    /// feed's hub first), so a cache checked against generations alone reads every
    /// acknowledged write at once. PostgreSQL: another node's change is counted only once its
    /// NOTIFY arrives, after that node has answered.
    fn counts_changes_before_answering(&self) -> bool {
        false
    }
    /// The `(version, seq)` of document `key` — which content it holds: `version` moves with
    /// every update and `seq` is new with every insert — or `None` when there is none.
    async fn version(&self, kind: Kind, key: &str) -> DomainResult<Option<(i64, i64)>> {
        Ok(self.get(kind, key).await?.map(|d| (d.version, d.seq)))
    }
    async fn get(&self, kind: Kind, key: &str) -> DomainResult<Option<StoredDoc>>;
    /// The documents of `keys` that exist, in no particular order: one read for a burst of
    /// change notices (an engine with round trips answers in one).
    async fn get_many(&self, kind: Kind, keys: &[String]) -> DomainResult<Vec<StoredDoc>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.extend(self.get(kind, key).await?);
        }
        Ok(out)
    }
    async fn query(
        &self,
        kind: Kind,
        filter: &Filter,
        page: PageQuery,
    ) -> DomainResult<Vec<StoredDoc>>;
    async fn count(&self, kind: Kind, filter: &Filter) -> DomainResult<u64>;
    /// How many documents of `kind` hold each value of the top-level string member `field` of
    /// their body (documents without it are not counted), in one aggregate query: the gauges
    /// a metrics scrape reads (certificates by status, transfers and orders by state).
    /// `field` must pass [`valid_field_name`].
    async fn count_by_field(&self, kind: Kind, field: &str) -> DomainResult<Vec<(String, u64)>>;
    /// Commits every write or none, durably, before returning.
    async fn apply(&self, writes: Vec<Write>) -> DomainResult<()>;
    /// Dev mode: deletes every document whose kind does not survive a reset.
    async fn reset(&self) -> DomainResult<()>;
    /// Replay protection shared by every node on the store: records `key` until
    /// `expires_at_ms` and answers true, or answers false when `key` is already recorded and
    /// has not expired at `now_ms`. Durable before it answers; expired keys are purged now and
    /// then.
    async fn claim_once(&self, key: &str, now_ms: i64, expires_at_ms: i64) -> DomainResult<bool>;
}

/// A body member name `count_by_field` accepts: ASCII letters, digits and `_`, so the JSON path
/// built from it needs no quoting.
pub fn valid_field_name(field: &str) -> DomainResult<()> {
    if !field.is_empty()
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "{field:?} is not a document field name (letters, digits and _ only)"
        )))
    }
}

/// An entity kept as a document.
pub trait Document: Serialize + DeserializeOwned + Send + Sync {
    const KIND: Kind;
    fn key(&self) -> String;
    fn account(&self) -> String;
    fn region(&self) -> String;
    fn idx1(&self) -> Option<String> {
        None
    }
    fn idx2(&self) -> Option<String> {
        None
    }

    fn to_doc(&self) -> DomainResult<Doc> {
        Ok(Doc {
            kind: Self::KIND,
            key: self.key(),
            account: self.account(),
            region: self.region(),
            idx1: self.idx1(),
            idx2: self.idx2(),
            body: serde_json::to_string(self).map_err(|e| {
                DomainError::internal(format!("encoding {}: {e}", Self::KIND.as_str()))
            })?,
        })
    }
}

/// A typed entity read back with its version and sequence number.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub value: T,
    pub version: i64,
    pub seq: i64,
}

impl<T: Document> Stored<T> {
    pub fn decode(d: StoredDoc) -> DomainResult<Self> {
        let value = serde_json::from_str(&d.doc.body).map_err(|e| {
            DomainError::internal(format!(
                "decoding {} {}: {e}",
                d.doc.kind.as_str(),
                d.doc.key
            ))
        })?;
        Ok(Stored {
            value,
            version: d.version,
            seq: d.seq,
        })
    }

    /// The compare-and-set update of this entity to `new`.
    pub fn update_to(&self, new: &T) -> DomainResult<Write> {
        Ok(Write::Update {
            doc: new.to_doc()?,
            expected_version: self.version,
        })
    }

    pub fn delete(&self) -> Write {
        Write::Delete {
            kind: T::KIND,
            key: self.value.key(),
            expected_version: self.version,
        }
    }
}

pub fn insert<T: Document>(v: &T) -> DomainResult<Write> {
    Ok(Write::Insert(v.to_doc()?))
}

/// Typed reads over any `Store`.
pub async fn get<T: Document>(store: &dyn Store, key: &str) -> DomainResult<Option<Stored<T>>> {
    match store.get(T::KIND, key).await? {
        Some(d) => Ok(Some(Stored::decode(d)?)),
        None => Ok(None),
    }
}

pub async fn query<T: Document>(
    store: &dyn Store,
    filter: &Filter,
    page: PageQuery,
) -> DomainResult<Vec<Stored<T>>> {
    store
        .query(T::KIND, filter, page)
        .await?
        .into_iter()
        .map(Stored::decode)
        .collect()
}
