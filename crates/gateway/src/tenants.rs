//! Which registry a connection is checked against: its TLS server name first, else the
//! configured default (`--gateway-tenant`).

use certplane_core::device_endpoints::{first_label, parse_ats_endpoint};
use certplane_core::ids::parse_aws_account;
use certplane_core::mqtt_instances::parse_instance_id;
use certplane_core::Scope;

/// A tenant named in configuration or by a server name, before the instance is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRef {
    /// An ApsaraMQ for MQTT instance id.
    Mqtt(String),
    /// An AWS account and region.
    Aws(Scope),
}

impl TenantRef {
    /// `--gateway-tenant`: an instance id, or `aws:ACCOUNT:REGION`.
    pub fn parse(s: &str) -> Result<TenantRef, String> {
        if let Some(rest) = s.strip_prefix("aws:") {
            let (account, region) = rest.split_once(':').ok_or_else(|| {
                format!(
                    "an AWS tenant is aws:ACCOUNT:REGION (aws:111111111111:us-east-1), got {s:?}"
                )
            })?;
            let account = parse_aws_account(account).map_err(|e| e.to_string())?;
            let region_ok = !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !region_ok {
                return Err(format!("{region:?} is not an AWS region name"));
            }
            return Ok(TenantRef::Aws(Scope::new(account, region)));
        }
        parse_instance_id(s)
            .map(TenantRef::Mqtt)
            .map_err(|e| format!("--gateway-tenant: {e}, or aws:ACCOUNT:REGION"))
    }
}

/// What a server name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameRoute {
    /// `a<account>-ats.iot.<region>.<domain>`.
    Aws(Scope),
    /// The first label could be an instance id: that instance if it exists, else the default.
    MaybeInstance(String),
    /// Nothing in the name: the default tenant.
    Default,
}

/// Reads a TLS server name (SNI); `domain` is the gateway's endpoint domain.
pub fn route_name(server_name: Option<&str>, domain: &str) -> NameRoute {
    let Some(name) = server_name.filter(|n| !n.is_empty()) else {
        return NameRoute::Default;
    };
    if let Some(scope) = parse_ats_endpoint(name, domain) {
        return NameRoute::Aws(scope);
    }
    let label = first_label(name);
    if parse_instance_id(&label).is_ok() {
        NameRoute::MaybeInstance(label)
    } else {
        NameRoute::Default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_route() {
        assert_eq!(
            route_name(
                Some("a111111111111-ats.iot.us-east-1.localhost"),
                "localhost"
            ),
            NameRoute::Aws(Scope::new("111111111111", "us-east-1"))
        );
        assert_eq!(
            route_name(Some("post-cn-abc123.mqtt.localhost"), "localhost"),
            NameRoute::MaybeInstance("post-cn-abc123".into())
        );
        assert_eq!(
            route_name(Some("POST-CN-ABC123.mqtt.aliyuncs.com"), "localhost"),
            NameRoute::MaybeInstance("post-cn-abc123".into())
        );
        // An ATS name under another domain is not an AWS route; its first label is no
        // instance id either (it has no such shape problem, so it is looked up).
        assert_eq!(
            route_name(Some("a111111111111-ats.iot.us-east-1.other"), "localhost"),
            NameRoute::MaybeInstance("a111111111111-ats".into())
        );
        assert_eq!(route_name(None, "localhost"), NameRoute::Default);
        assert_eq!(route_name(Some(""), "localhost"), NameRoute::Default);
        assert_eq!(
            route_name(Some("x_y.example"), "localhost"),
            NameRoute::Default
        );
    }

    #[test]
    fn configured_tenants_parse() {
        assert_eq!(
            TenantRef::parse("aws:111111111111:eu-west-1"),
            Ok(TenantRef::Aws(Scope::new("111111111111", "eu-west-1")))
        );
        assert_eq!(
            TenantRef::parse("post-cn-abc"),
            Ok(TenantRef::Mqtt("post-cn-abc".into()))
        );
        for bad in [
            "aws:1:us-east-1",
            "aws:111111111111",
            "aws:111111111111:",
            "Post_CN",
            "",
        ] {
            assert!(TenantRef::parse(bad).is_err(), "{bad}");
        }
    }
}
