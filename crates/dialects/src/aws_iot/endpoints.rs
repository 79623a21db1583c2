//! DescribeEndpoint: the name devices connect to, which is certplane's device gateway.

use certplane_core::device_endpoints::ats_endpoint;
use serde_json::{json, Value};

use certplane_core::error::DomainError;

use super::input::{Call, Res};

fn invalid(m: String) -> DomainError {
    DomainError::invalid(m)
}

/// `iot:Data-ATS` (and no type, which AWS answers with its legacy data endpoint) names the
/// gateway's route for this account and region; the other endpoint types are services
/// certplane does not run.
pub(super) fn describe_endpoint(cx: &Call<'_>, domain: &str) -> Res<Value> {
    match cx.q("endpointType") {
        None | Some("iot:Data-ATS") | Some("iot:Data") => Ok(json!({
            "endpointAddress": ats_endpoint(&cx.scope.account, &cx.scope.region, domain)
        })),
        Some(other @ ("iot:CredentialProvider" | "iot:Jobs")) => Err(invalid(format!(
            "certplane serves only the iot:Data-ATS endpoint (its device gateway), not {other}"
        ))),
        Some(other) => Err(invalid(format!(
            "endpointType must be iot:Data, iot:Data-ATS, iot:CredentialProvider or iot:Jobs, \
             got {other:?}"
        ))),
    }
}
