//! The names devices connect to, and which tenant a name selects (the device gateway routes a
//! connection by its TLS server name).
//!
//! AWS: `a<account>-ats.iot.<region>.<domain>`, the shape of AWS IoT's ATS data endpoint
//! (`<prefix>-ats.iot.<region>.amazonaws.com`) with a prefix derived from the account id, so
//! the name gives the account back without a lookup. ApsaraMQ for MQTT: any name whose first
//! label is an instance id (`post-cn-….mqtt.<domain>`, like `post-cn-….mqtt.aliyuncs.com`).

use crate::ids::Scope;

/// The domain device endpoint names end in unless configured (`*.localhost` resolves to the
/// loopback address on most systems, RFC 6761).
pub const DEFAULT_DEVICE_DOMAIN: &str = "localhost";

/// The ATS data endpoint of an AWS account and region (what DescribeEndpoint returns for
/// `endpointType=iot:Data-ATS`).
pub fn ats_endpoint(account: &str, region: &str, domain: &str) -> String {
    format!("a{account}-ats.iot.{region}.{domain}")
}

/// The AWS account and region an ATS endpoint name selects, when `name` is one under `domain`.
pub fn parse_ats_endpoint(name: &str, domain: &str) -> Option<Scope> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let rest = name.strip_suffix(&domain)?.strip_suffix('.')?;
    let mut labels = rest.split('.');
    let (prefix, iot, region) = (labels.next()?, labels.next()?, labels.next()?);
    if labels.next().is_some() || iot != "iot" {
        return None;
    }
    let account = prefix.strip_prefix('a')?.strip_suffix("-ats")?;
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && region_ok)
        .then(|| Scope::new(account, region))
}

/// The MQTT instance endpoint name under `domain`.
pub fn mqtt_endpoint(instance_id: &str, domain: &str) -> String {
    format!("{instance_id}.mqtt.{domain}")
}

/// The first label of a server name (the candidate MQTT instance id), lower-cased.
pub fn first_label(name: &str) -> String {
    name.split('.').next().unwrap_or("").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ats_names_round_trip() {
        let name = ats_endpoint("111111111111", "us-east-1", "iot.example.com");
        assert_eq!(name, "a111111111111-ats.iot.us-east-1.iot.example.com");
        assert_eq!(
            parse_ats_endpoint(&name, "iot.example.com"),
            Some(Scope::new("111111111111", "us-east-1"))
        );
        assert_eq!(
            parse_ats_endpoint("A111111111111-ATS.iot.eu-west-2.localhost.", "localhost"),
            Some(Scope::new("111111111111", "eu-west-2"))
        );
    }

    #[test]
    fn other_names_select_no_aws_account() {
        for name in [
            "a111111111111-ats.iot.us-east-1.other.com",
            "a11111111111-ats.iot.us-east-1.localhost",
            "b111111111111-ats.iot.us-east-1.localhost",
            "a111111111111.iot.us-east-1.localhost",
            "a111111111111-ats.mqtt.us-east-1.localhost",
            "x.a111111111111-ats.iot.us-east-1.localhost",
            "a111111111111-ats.iot..localhost",
            "localhost",
            "",
        ] {
            assert_eq!(parse_ats_endpoint(name, "localhost"), None, "{name}");
        }
        assert_eq!(first_label("Post-CN-abc.mqtt.localhost"), "post-cn-abc");
    }
}
