//! The one authorization seam. Every operation of every dialect calls [`authorize`] with the
//! cloud's own action name (`iot:CancelCertificateTransfer`) and the resource it touches (the
//! certificate's ARN). Dev mode and an account's root user are allowed everything in the
//! account; a user is allowed what its IAM-style policies allow ([`crate::iam`]).

use std::net::IpAddr;
use std::sync::Arc;

use crate::error::DomainError;
use crate::iam::{self, Context, Decision, PolicyDocument};

/// Which identity inside the account is calling.
#[derive(Debug, Clone)]
pub enum Identity {
    /// `--dev`: signatures are not checked and everything is allowed, as before identities.
    Dev,
    /// The account's root user: every key made without `--user` (and every key made before
    /// users existed).
    Root,
    /// A user, with its attached policies parsed when the request was authenticated.
    User {
        name: String,
        /// How its cloud names it (`arn:aws:iam::111122223333:user/alice`).
        arn: String,
        policies: Arc<Vec<Arc<PolicyDocument>>>,
    },
}

/// Who is calling, once the dialect has authenticated the request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account: String,
    /// The access key that signed the request (`None` in dev mode without one).
    pub access_key_id: Option<String>,
    pub identity: Identity,
    /// The client's address, for `aws:SourceIp` / `acs:SourceIp` conditions.
    pub source_ip: Option<IpAddr>,
}

impl Principal {
    /// A dev-mode caller: everything allowed.
    pub fn dev(account: impl Into<String>, access_key_id: Option<String>) -> Self {
        Principal {
            account: account.into(),
            access_key_id,
            identity: Identity::Dev,
            source_ip: None,
        }
    }

    /// A verified caller whose identity is known.
    pub fn verified(
        account: impl Into<String>,
        access_key_id: Option<String>,
        identity: Identity,
        source_ip: Option<IpAddr>,
    ) -> Self {
        Principal {
            account: account.into(),
            access_key_id,
            identity,
            source_ip,
        }
    }

    /// The user name of the caller, if it is a user (not root, not dev).
    pub fn user_name(&self) -> Option<&str> {
        match &self.identity {
            Identity::User { name, .. } => Some(name),
            Identity::Dev | Identity::Root => None,
        }
    }
}

pub fn authorize(principal: &Principal, action: &str, resource: &str) -> Result<(), DomainError> {
    let (name, arn, policies) = match &principal.identity {
        Identity::Dev | Identity::Root => return Ok(()),
        Identity::User {
            name,
            arn,
            policies,
        } => (name, arn, policies),
    };
    let cx = Context {
        username: Some(name.clone()),
        account: Some(principal.account.clone()),
        principal_arn: Some(arn.clone()),
        source_ip: principal.source_ip,
        secure_transport: None,
    };
    match iam::evaluate(policies.iter().map(|p| &**p), action, resource, &cx) {
        Decision::Allow => Ok(()),
        d @ (Decision::ImplicitDeny | Decision::ExplicitDeny) => Err(DomainError::AccessDenied {
            principal: arn.clone(),
            action: action.to_string(),
            resource: resource.to_string(),
            explicit: d == Decision::ExplicitDeny,
        }),
    }
}
