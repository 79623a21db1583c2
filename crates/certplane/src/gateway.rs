//! `serve --gateway …`: the device gateway beside the API listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use certplane_core::device_endpoints::DEFAULT_DEVICE_DOMAIN;
use certplane_core::Core;
use certplane_gateway::{default_server_names, Gateway, GatewayConfig, Identity, TenantRef};

#[derive(clap::Args, Clone, Debug)]
pub struct GatewayArgs {
    /// Open the mTLS device gateway on this address (HOST:PORT).
    #[arg(long = "gateway")]
    gateway_listen: Option<SocketAddr>,
    /// The MQTT broker admitted devices are proxied to (HOST:PORT).
    #[arg(long = "gateway-upstream")]
    gateway_upstream: Option<String>,
    /// The tenant of connections whose TLS server name selects none: an MQTT instance id, or
    /// aws:ACCOUNT:REGION.
    #[arg(long = "gateway-tenant")]
    gateway_tenant: Option<String>,
    /// The gateway's certificate chain (PEM); default: one issued at start by certplane's CA.
    #[arg(long = "gateway-cert", requires = "gateway_key")]
    gateway_cert: Option<PathBuf>,
    /// The private key of --gateway-cert (PEM).
    #[arg(long = "gateway-key", requires = "gateway_cert")]
    gateway_key: Option<PathBuf>,
    /// The domain of device endpoint names: a<account>-ats.iot.<region>.<domain> (what
    /// DescribeEndpoint returns) and <instance-id>.mqtt.<domain>.
    #[arg(long = "gateway-domain", default_value = DEFAULT_DEVICE_DOMAIN)]
    pub gateway_domain: String,
}

/// Starts the gateway when `--gateway` is given, and prints its ready line.
pub async fn start(core: &Core, args: &GatewayArgs) -> Result<Option<Gateway>, String> {
    let Some(listen) = args.gateway_listen else {
        if args.gateway_upstream.is_some()
            || args.gateway_tenant.is_some()
            || args.gateway_cert.is_some()
        {
            return Err(
                "--gateway-upstream, --gateway-tenant and --gateway-cert need --gateway ADDR"
                    .into(),
            );
        }
        return Ok(None);
    };
    let upstream = args
        .gateway_upstream
        .clone()
        .ok_or("--gateway needs --gateway-upstream HOST:PORT (the MQTT broker)")?;
    let default_tenant = args
        .gateway_tenant
        .as_deref()
        .map(TenantRef::parse)
        .transpose()?;
    let domain = args
        .gateway_domain
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if domain.is_empty() {
        return Err("--gateway-domain must not be empty".into());
    }
    let identity = match (&args.gateway_cert, &args.gateway_key) {
        (Some(cert), Some(key)) => Identity::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => Identity::Issued(default_server_names(&domain)),
    };
    let gateway = Gateway::start(
        core.clone(),
        GatewayConfig {
            listen,
            upstream,
            default_tenant,
            domain,
            identity,
        },
    )
    .await?;
    println!("certplane gateway listening on {}", gateway.local_addr);
    Ok(Some(gateway))
}
