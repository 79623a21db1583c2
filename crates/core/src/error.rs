//! The one domain error enum. Meanings only: no HTTP status, no cloud error code. Each dialect
//! maps every variant (exhaustively, no `_`) to its own wire error in its `error.rs`.

use thiserror::Error;

/// What kind of thing an error is about; dialects use it to pick messages and extra fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Certificate,
    CaCertificate,
    Transfer,
    Thing,
    Policy,
    PolicyVersion,
    ThingType,
    ThingGroup,
    BillingGroup,
    Attachment,
    RegistrationCode,
    Account,
    AccessKey,
    Issuer,
    Package,
    Order,
    UserCertificate,
    MqttInstance,
    BillingAccount,
    BillingScope,
    BillingProduct,
    BillingTransfer,
    OauthClient,
    ProvisioningTemplate,
    ProvisioningTemplateVersion,
    User,
    IamPolicy,
    AuditEvent,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Certificate => "certificate",
            Resource::CaCertificate => "CA certificate",
            Resource::Transfer => "transfer",
            Resource::Thing => "thing",
            Resource::Policy => "policy",
            Resource::PolicyVersion => "policy version",
            Resource::ThingType => "thing type",
            Resource::ThingGroup => "thing group",
            Resource::BillingGroup => "billing group",
            Resource::Attachment => "attachment",
            Resource::RegistrationCode => "registration code",
            Resource::Account => "account",
            Resource::AccessKey => "access key",
            Resource::Issuer => "issuing CA",
            Resource::Package => "certificate resource plan",
            Resource::Order => "order",
            Resource::UserCertificate => "certificate",
            Resource::MqttInstance => "MQTT instance",
            Resource::BillingAccount => "billing account",
            Resource::BillingScope => "billing scope",
            Resource::BillingProduct => "product",
            Resource::BillingTransfer => "transfer",
            Resource::OauthClient => "OAuth client",
            Resource::ProvisioningTemplate => "provisioning template",
            Resource::ProvisioningTemplateVersion => "provisioning template version",
            Resource::User => "user",
            Resource::IamPolicy => "IAM policy",
            Resource::AuditEvent => "audit record",
        }
    }
}

/// How a finished transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferOutcome {
    Accepted,
    Rejected,
    Cancelled,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DomainError {
    #[error("the {} {id} does not exist", .resource.name())]
    NotFound { resource: Resource, id: String },
    #[error("the {} {id} already exists", .resource.name())]
    AlreadyExists { resource: Resource, id: String },
    #[error("{0}")]
    InvalidInput(String),
    /// A document the caller supplied (a policy) that does not parse; distinct from other
    /// input errors because AWS answers it with its own code.
    #[error("{0}")]
    MalformedDocument(String),
    /// The entity is in a state that forbids the action (AWS: CertificateStateException).
    #[error("{message}")]
    WrongState { current: String, message: String },
    /// Accept, reject or cancel on a transfer that has already ended.
    #[error("the transfer has already been {}", outcome_word(*.outcome))]
    TransferFinished { outcome: TransferOutcome },
    /// The caller is a party to the resource but not the one allowed to do this.
    #[error("{0}")]
    NotPermitted(String),
    /// Still attached to a thing or a policy, or still needed by something that depends on it
    /// (a policy's non-default versions, a default version, a group's children).
    #[error("{0}")]
    StillAttached(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    QuotaExhausted(String),
    /// The certificate itself is unacceptable (bad signature, unknown issuer, expired...).
    #[error("{0}")]
    BadCertificate(String),
    /// The proof of possession does not carry the expected registration code.
    #[error("{0}")]
    RegistrationCodeMismatch(String),
    /// The proof of possession carries a one-use registration code that already registered a
    /// CA (ApsaraMQ answers it with its own code).
    #[error("{0}")]
    RegistrationCodeUsed(String),
    /// The caller's policies do not allow the action on the resource (an IAM-style denial,
    /// distinct from `NotPermitted`, which is about a party to a resource). `principal` is
    /// the caller as its cloud names it in the message (an ARN, a user name).
    #[error("{principal} is not authorized to perform {action} on resource {resource}")]
    AccessDenied {
        principal: String,
        action: String,
        resource: String,
        explicit: bool,
    },
    /// More than one registered CA could have signed the certificate.
    #[error("{0}")]
    AmbiguousIssuer(String),
    /// A compare-and-set lost a race; services re-read and re-decide.
    #[error("the record changed underneath this request")]
    Stale,
    #[error("{0} is not implemented by certplane")]
    NotImplemented(String),
    /// The caller's rate for this action is used up (on this node); the call did nothing.
    /// `action` is the throttle action name (`iot:DescribeCertificate`, `billing:write`).
    #[error("Rate exceeded for {action}")]
    Throttled { action: String, retry_after_ms: u64 },
    #[error("the service is temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn outcome_word(o: TransferOutcome) -> &'static str {
    match o {
        TransferOutcome::Accepted => "accepted",
        TransferOutcome::Rejected => "rejected",
        TransferOutcome::Cancelled => "cancelled",
    }
}

impl DomainError {
    pub fn not_found(resource: Resource, id: impl Into<String>) -> Self {
        DomainError::NotFound {
            resource,
            id: id.into(),
        }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        DomainError::InvalidInput(msg.into())
    }
    pub fn internal(ctx: impl std::fmt::Display) -> Self {
        DomainError::Internal(ctx.to_string())
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
