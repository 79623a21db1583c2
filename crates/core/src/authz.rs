//! The one authorization seam. Every operation of every dialect calls [`authorize`] with the
//! cloud's own action name (`iot:CancelCertificateTransfer`) and the resource it touches (the
//! certificate's ARN). Today it allows everything; policies fill it in later without touching
//! any caller.

use crate::error::DomainError;

/// Who is calling, once the dialect has authenticated the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: String,
    /// The access key that signed the request (`None` in dev mode without one).
    pub access_key_id: Option<String>,
}

pub fn authorize(
    _principal: &Principal,
    _action: &str,
    _resource: &str,
) -> Result<(), DomainError> {
    Ok(())
}
