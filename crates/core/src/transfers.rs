//! Cross-account certificate ownership transfers: initiate, accept, reject, cancel.
//!
//! A transfer is its own record (kept after it ends), so an action on a finished transfer gets
//! the precise `TransferFinished` answer. Every action writes the certificate and the transfer in
//! one transaction, each with a compare-and-set on the version read: of many racing callers
//! exactly one wins and the others, re-reading, see the transfer finished.

use serde::{Deserialize, Serialize};

use crate::certificates::{principal_key, Certificate, CertificateStatus};
use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource, TransferOutcome};
use crate::ids::{new_uuid, CertificateId, Scope};
use crate::paging::Page;
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery, Stored};

/// Longest transferMessage / rejectReason, in characters.
pub const MAX_MESSAGE_CHARS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransferStatus {
    Pending,
    Accepted,
    Rejected,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: String,
    pub certificate_id: CertificateId,
    pub source: String,
    pub target: String,
    pub region: String,
    pub status: TransferStatus,
    pub message: Option<String>,
    pub reject_reason: Option<String>,
    pub created_at: Millis,
    pub finished_at: Option<Millis>,
}

impl Document for Transfer {
    const KIND: Kind = Kind::Transfer;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn account(&self) -> String {
        self.source.clone()
    }
    fn region(&self) -> String {
        self.region.clone()
    }
    fn idx1(&self) -> Option<String> {
        Some(self.certificate_id.to_string())
    }
    fn idx2(&self) -> Option<String> {
        Some(self.target.clone())
    }
}

/// What the caller wants to do with a pending transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferAction {
    Accept { set_as_active: bool },
    Reject,
    Cancel,
}

pub fn check_message(field: &str, m: Option<&str>) -> DomainResult<()> {
    match m {
        Some(m) if m.chars().count() > MAX_MESSAGE_CHARS => Err(DomainError::invalid(format!(
            "{field} must be at most {MAX_MESSAGE_CHARS} characters, got {}",
            m.chars().count()
        ))),
        _ => Ok(()),
    }
}

impl Transfer {
    fn outcome(&self) -> Option<TransferOutcome> {
        match self.status {
            TransferStatus::Pending => None,
            TransferStatus::Accepted => Some(TransferOutcome::Accepted),
            TransferStatus::Rejected => Some(TransferOutcome::Rejected),
            TransferStatus::Cancelled => Some(TransferOutcome::Cancelled),
        }
    }

    /// The pure decision: given the pending transfer, its certificate and the caller, the new
    /// certificate and transfer, or the precise error.
    pub fn decide(
        &self,
        cert: &Certificate,
        caller: &str,
        action: TransferAction,
        reject_reason: Option<&str>,
        now: Millis,
    ) -> DomainResult<(Certificate, Transfer)> {
        if let Some(outcome) = self.outcome() {
            return Err(DomainError::TransferFinished { outcome });
        }
        let allowed = match action {
            TransferAction::Accept { .. } | TransferAction::Reject => caller == self.target,
            TransferAction::Cancel => caller == self.source,
        };
        if !allowed {
            return Err(DomainError::NotPermitted(match action {
                TransferAction::Cancel => format!(
                    "only the source account {} can cancel the transfer of certificate {}",
                    self.source, self.certificate_id
                ),
                _ => format!(
                    "only the target account {} can accept or reject the transfer of certificate {}",
                    self.target, self.certificate_id
                ),
            }));
        }
        // The certificate must still be in the state this transfer put it in. If it is not,
        // the two reads straddled another caller's commit: re-read (the retry then sees the
        // transfer finished, or both records consistent).
        if cert.status != CertificateStatus::PendingTransfer
            || cert.pending_transfer_to.as_deref() != Some(self.target.as_str())
        {
            return Err(DomainError::Stale);
        }
        let mut c = cert.clone();
        let mut t = self.clone();
        c.pending_transfer_to = None;
        c.last_modified = now;
        c.customer_version += 1;
        c.generation_id = new_uuid();
        t.finished_at = Some(now);
        match action {
            TransferAction::Accept { set_as_active } => {
                c.previous_owner = Some(self.source.clone());
                c.owner = self.target.clone();
                c.status = if set_as_active {
                    CertificateStatus::Active
                } else {
                    CertificateStatus::Inactive
                };
                c.transfer.accept_date = Some(now);
                t.status = TransferStatus::Accepted;
            }
            TransferAction::Reject => {
                c.status = CertificateStatus::Inactive;
                c.transfer.reject_reason = reject_reason.map(str::to_string);
                c.transfer.reject_date = Some(now);
                t.status = TransferStatus::Rejected;
                t.reject_reason = reject_reason.map(str::to_string);
            }
            TransferAction::Cancel => {
                c.status = CertificateStatus::Inactive;
                t.status = TransferStatus::Cancelled;
            }
        }
        Ok((c, t))
    }
}

impl Core {
    /// TransferCertificate: starts moving a certificate to another account of the same region.
    pub async fn transfer_certificate(
        &self,
        scope: &Scope,
        id: &CertificateId,
        target: &str,
        message: Option<&str>,
    ) -> DomainResult<Certificate> {
        check_message("transferMessage", message)?;
        self.with_retry(|| async {
            let cur = self.load_owned_certificate(scope, id).await?;
            let cert = &cur.value;
            match cert.status {
                CertificateStatus::Active => {
                    return Err(DomainError::WrongState {
                        current: cert.status.as_str().into(),
                        message: format!(
                            "Certificate {id} is ACTIVE; set it INACTIVE before transferring it"
                        ),
                    })
                }
                CertificateStatus::Inactive | CertificateStatus::RegisterInactive => {}
                other => {
                    return Err(DomainError::WrongState {
                        current: other.as_str().into(),
                        message: format!(
                            "Certificate {id} is {} and cannot be transferred",
                            other.as_str()
                        ),
                    })
                }
            }
            // A transfer moves a certificate's one registration; one registered in several
            // accounts or regions (SNI_ONLY) has no single owner to move (COMPATIBILITY.md).
            if cert.has_other_registrations() {
                return Err(DomainError::StillAttached(format!(
                    "Certificate {id} is registered in other accounts or regions too; a \
                     certificate with several registrations cannot be transferred"
                )));
            }
            if target == scope.account {
                return Err(DomainError::invalid(
                    "a certificate cannot be transferred to the account that owns it",
                ));
            }
            let principal = principal_key(id);
            if !self
                .policy_attachments_of_target(scope, &principal)
                .await?
                .is_empty()
            {
                return Err(DomainError::StillAttached(format!(
                    "Certificate {id} has policies attached; detach them before transferring it"
                )));
            }
            if !self
                .things_of_principal(scope, &principal)
                .await?
                .is_empty()
            {
                return Err(DomainError::StillAttached(format!(
                    "Certificate {id} is attached to things; detach them before transferring it"
                )));
            }
            let now = self.now();
            let transfer = Transfer {
                id: new_uuid(),
                certificate_id: id.clone(),
                source: scope.account.clone(),
                target: target.to_string(),
                region: scope.region.clone(),
                status: TransferStatus::Pending,
                message: message.map(str::to_string),
                reject_reason: None,
                created_at: now,
                finished_at: None,
            };
            let mut next = cert.clone();
            next.status = CertificateStatus::PendingTransfer;
            next.pending_transfer_to = Some(target.to_string());
            next.transfer = crate::certificates::TransferData {
                transfer_message: message.map(str::to_string),
                transfer_date: Some(now),
                ..Default::default()
            };
            next.last_modified = now;
            next.customer_version += 1;
            next.generation_id = new_uuid();
            self.store()
                .apply(vec![cur.update_to(&next)?, store::insert(&transfer)?])
                .await?;
            Ok(next)
        })
        .await
    }

    /// The newest transfer of a certificate in which the caller is source or target.
    async fn latest_transfer_for(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<Option<Stored<Transfer>>> {
        let filter = Filter {
            region: Some(scope.region.clone()),
            idx1: Some(id.to_string()),
            account_or_idx2: Some(scope.account.clone()),
            ..Filter::default()
        };
        let page = PageQuery {
            after_seq: None,
            limit: 1,
            ascending: false,
        };
        Ok(store::query::<Transfer>(self.store(), &filter, page)
            .await?
            .into_iter()
            .next())
    }

    /// AcceptCertificateTransfer, RejectCertificateTransfer and CancelCertificateTransfer.
    pub async fn finish_transfer(
        &self,
        scope: &Scope,
        id: &CertificateId,
        action: TransferAction,
        reject_reason: Option<&str>,
    ) -> DomainResult<Certificate> {
        check_message("rejectReason", reject_reason)?;
        self.with_retry(|| async {
            // The certificate is read before the transfer: a winner commits both at once, so
            // the transfer read here is never older than the certificate read.
            let cert = store::get::<Certificate>(self.store(), id.as_str()).await?;
            let transfer = self
                .latest_transfer_for(scope, id)
                .await?
                .ok_or_else(|| DomainError::not_found(Resource::Certificate, id.as_str()))?;
            if let Some(outcome) = transfer.value.outcome() {
                return Err(DomainError::TransferFinished { outcome });
            }
            let cert =
                cert.ok_or_else(|| DomainError::not_found(Resource::Certificate, id.as_str()))?;
            let (c, t) = transfer.value.decide(
                &cert.value,
                &scope.account,
                action,
                reject_reason,
                self.now(),
            )?;
            self.store()
                .apply(vec![cert.update_to(&c)?, transfer.update_to(&t)?])
                .await?;
            Ok(c)
        })
        .await
    }

    pub async fn accept_certificate_transfer(
        &self,
        scope: &Scope,
        id: &CertificateId,
        set_as_active: bool,
    ) -> DomainResult<Certificate> {
        self.finish_transfer(scope, id, TransferAction::Accept { set_as_active }, None)
            .await
    }

    pub async fn reject_certificate_transfer(
        &self,
        scope: &Scope,
        id: &CertificateId,
        reason: Option<&str>,
    ) -> DomainResult<Certificate> {
        self.finish_transfer(scope, id, TransferAction::Reject, reason)
            .await
    }

    pub async fn cancel_certificate_transfer(
        &self,
        scope: &Scope,
        id: &CertificateId,
    ) -> DomainResult<Certificate> {
        self.finish_transfer(scope, id, TransferAction::Cancel, None)
            .await
    }

    /// ListOutgoingCertificates: the caller's certificates with a pending transfer.
    pub async fn list_outgoing_certificates(
        &self,
        scope: &Scope,
        page: &Page,
    ) -> DomainResult<(Vec<Certificate>, Option<String>)> {
        let filter = Filter {
            account: Some(scope.account.clone()),
            region: Some(scope.region.clone()),
            has_idx2: true,
            ..Filter::default()
        };
        let rows = store::query::<Certificate>(self.store(), &filter, page.query).await?;
        let (rows, next) = page.finish(rows, |r| r.seq);
        Ok((rows.into_iter().map(|r| r.value).collect(), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificates::{CertificateMode, Origin, TransferData};

    fn pending() -> (Certificate, Transfer) {
        let id = CertificateId::of_der(b"x");
        let cert = Certificate {
            id: id.clone(),
            owner: "111111111111".into(),
            region: "us-east-1".into(),
            status: CertificateStatus::PendingTransfer,
            pem: String::new(),
            ca_certificate_id: None,
            mode: CertificateMode::Default,
            previous_owner: None,
            created_at: 0,
            last_modified: 0,
            customer_version: 1,
            generation_id: String::new(),
            not_before: 0,
            not_after: 0,
            transfer: TransferData::default(),
            pending_transfer_to: Some("222222222222".into()),
            origin: Origin::Issued,
            revocation_cause: None,
            additional: false,
            other_registrations: Vec::new(),
        };
        let t = Transfer {
            id: "t".into(),
            certificate_id: id,
            source: "111111111111".into(),
            target: "222222222222".into(),
            region: "us-east-1".into(),
            status: TransferStatus::Pending,
            message: None,
            reject_reason: None,
            created_at: 0,
            finished_at: None,
        };
        (cert, t)
    }

    const SRC: &str = "111111111111";
    const DST: &str = "222222222222";

    #[test]
    fn transition_table() {
        let actions = [
            TransferAction::Accept {
                set_as_active: true,
            },
            TransferAction::Accept {
                set_as_active: false,
            },
            TransferAction::Reject,
            TransferAction::Cancel,
        ];
        for status in [
            TransferStatus::Pending,
            TransferStatus::Accepted,
            TransferStatus::Rejected,
            TransferStatus::Cancelled,
        ] {
            for action in actions {
                for caller in [SRC, DST, "333333333333"] {
                    let (cert, mut t) = pending();
                    t.status = status;
                    let got = t.decide(&cert, caller, action, Some("why"), 5);
                    match (status, action, caller) {
                        (
                            TransferStatus::Pending,
                            TransferAction::Accept { set_as_active },
                            DST,
                        ) => {
                            let (c, t) = got.expect("accept by target");
                            assert_eq!(c.owner, DST);
                            assert_eq!(c.previous_owner.as_deref(), Some(SRC));
                            assert_eq!(
                                c.status,
                                if set_as_active {
                                    CertificateStatus::Active
                                } else {
                                    CertificateStatus::Inactive
                                }
                            );
                            assert_eq!(c.transfer.accept_date, Some(5));
                            assert_eq!(t.status, TransferStatus::Accepted);
                        }
                        (TransferStatus::Pending, TransferAction::Reject, DST) => {
                            let (c, t) = got.expect("reject by target");
                            assert_eq!(c.owner, SRC);
                            assert_eq!(c.status, CertificateStatus::Inactive);
                            assert_eq!(c.transfer.reject_reason.as_deref(), Some("why"));
                            assert_eq!(t.status, TransferStatus::Rejected);
                        }
                        (TransferStatus::Pending, TransferAction::Cancel, SRC) => {
                            let (c, t) = got.expect("cancel by source");
                            assert_eq!(c.owner, SRC);
                            assert_eq!(c.status, CertificateStatus::Inactive);
                            assert_eq!(c.pending_transfer_to, None);
                            assert_eq!(t.status, TransferStatus::Cancelled);
                        }
                        (TransferStatus::Pending, _, _) => {
                            assert!(matches!(got, Err(DomainError::NotPermitted(_))), "{got:?}")
                        }
                        _ => assert!(
                            matches!(got, Err(DomainError::TransferFinished { .. })),
                            "{got:?}"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn messages_are_limited_to_128_characters() {
        assert!(check_message("m", Some(&"é".repeat(128))).is_ok());
        assert!(check_message("m", Some(&"a".repeat(129))).is_err());
        assert!(check_message("m", None).is_ok());
    }
}
