//! What a registry status means to relying parties: the one rule the CRL and the OCSP
//! responder share. A certificate certplane's CA signed is good while ACTIVE, revoked for good
//! once REVOKED, and on hold (revoked with reason certificateHold, undone on reactivation)
//! in every other status, since none of those may be used to connect.

use certplane_pki::RevocationReason;
use serde::{Deserialize, Serialize};

use crate::certificates::{Certificate, CertificateStatus, Origin};
use crate::clock::Millis;

/// Why a certificate was revoked, when the API that revoked it says more than "revoked".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationCause {
    /// CAS CancelCertificateForPackageRequest: the order was cancelled.
    OrderCancelled,
}

/// A certificate's standing with relying parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationState {
    Good,
    Revoked {
        at: Millis,
        reason: Option<RevocationReason>,
    },
    /// Not ACTIVE and not REVOKED (AWS INACTIVE, OnsMqtt status "0", a pending transfer...).
    Hold {
        since: Millis,
    },
}

impl RevocationState {
    /// The state as a revocation: `None` when good.
    pub fn as_revocation(self, list_holds: bool) -> Option<(Millis, Option<RevocationReason>)> {
        match self {
            RevocationState::Good => None,
            RevocationState::Revoked { at, reason } => Some((at, reason)),
            RevocationState::Hold { since } if list_holds => {
                Some((since, Some(RevocationReason::CertificateHold)))
            }
            RevocationState::Hold { .. } => None,
        }
    }
}

/// Whether certplane's CA signed this certificate: only those are on its CRL and answered by
/// its OCSP responder. Registered certificates are signed by someone else's CA.
pub fn signed_by_held_ca(c: &Certificate) -> bool {
    c.origin == Origin::Issued
}

/// The certificate's state. The time is its last modification: a REVOKED certificate never
/// changes again, so that is when it was revoked; for a hold it is when it was last changed.
pub fn revocation_state(c: &Certificate) -> RevocationState {
    match c.status {
        CertificateStatus::Active => RevocationState::Good,
        CertificateStatus::Revoked => RevocationState::Revoked {
            at: c.last_modified,
            reason: c.revocation_cause.map(|cause| match cause {
                RevocationCause::OrderCancelled => RevocationReason::CessationOfOperation,
            }),
        },
        CertificateStatus::Inactive
        | CertificateStatus::PendingTransfer
        | CertificateStatus::RegisterInactive
        | CertificateStatus::PendingActivation => RevocationState::Hold {
            since: c.last_modified,
        },
    }
}
