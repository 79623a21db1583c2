//! AWS IoT's default request rates per API, the throttle's defaults for this dialect
//! (`serve --throttle-rate iot:<Operation>=RATE` overrides them). Sources and the figures
//! that are not published: COMPATIBILITY.md, "Throttling".

use certplane_core::throttle::Rate;

use super::router::Endpoint;

/// The AWS IoT Core API throttling table gives the certificate APIs (CreateKeysAndCertificate,
/// RegisterCertificate, DescribeCertificate, UpdateCertificate, the CA and transfer calls) 10
/// transactions per second per account and region. certplane applies the same 10 TPS to the
/// registry APIs around them (things, groups, policies, tags, templates), whose figures it does
/// not reproduce, so no call is unlimited by default.
pub const CERTIFICATE_API_TPS: f64 = 10.0;

/// The default rate of `ep`.
pub fn default_rate(ep: Endpoint) -> Rate {
    // One figure today; an operation whose published rate differs gets its own arm here.
    let _ = ep;
    Rate::per_second(CERTIFICATE_API_TPS)
}
