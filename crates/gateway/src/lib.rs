//! certplane's device gateway: a TLS listener that lets a device through to the MQTT broker
//! only while its client certificate is active in the registry of the tenant it connects to,
//! and closes its session as soon as that stops being true.
//!
//! - `tls.rs`: rustls configuration and the client certificate verifier.
//! - `tenants.rs`: server name (SNI) → tenant.
//! - `index.rs`: the in-memory index the handshake path reads.
//! - `admission.rs`: index first, the registry on a miss.
//! - `sessions.rs`: live sessions by certificate and CA.
//! - `feed.rs`: the store's change feed applied to the index and to live sessions.
//! - `proxy.rs`: one connection, from handshake to its end.

mod admission;
mod feed;
pub mod index;
mod proxy;
pub mod sessions;
pub mod tenants;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use certplane_core::Core;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use tenants::TenantRef;
pub use tls::{server_config, Identity};

/// How the gateway is set up (`certplane serve --gateway …`).
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// The broker allowed connections are proxied to, `HOST:PORT`.
    pub upstream: String,
    /// The tenant of connections whose server name selects none.
    pub default_tenant: Option<TenantRef>,
    /// The domain of the endpoint names (`a<account>-ats.iot.<region>.<domain>`).
    pub domain: String,
    pub identity: Identity,
}

/// The names the issued server certificate carries: loopback, and wildcards for every route
/// under `domain` (one per AWS region, since a wildcard covers one label only).
pub fn default_server_names(domain: &str) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        domain.to_string(),
        format!("*.{domain}"),
        format!("*.mqtt.{domain}"),
    ];
    names.extend(AWS_REGIONS.iter().map(|r| format!("*.iot.{r}.{domain}")));
    names.dedup();
    names
}

/// The AWS regions AWS IoT Core runs in (for the server certificate's wildcard names).
const AWS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "ca-west-1",
    "mx-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "me-south-1",
    "me-central-1",
    "il-central-1",
    "af-south-1",
    "ap-east-1",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// What every connection and the feed follower share.
pub(crate) struct Shared {
    pub core: Core,
    pub index: index::Index,
    pub sessions: Arc<sessions::Sessions>,
    pub upstream: String,
    pub default_tenant: Option<TenantRef>,
    pub domain: String,
}

/// A running gateway.
pub struct Gateway {
    pub local_addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// Binds the listener and starts serving; the change feed is subscribed before the first
    /// connection is accepted, so nothing cached can miss a change.
    pub async fn start(core: Core, config: GatewayConfig) -> Result<Gateway, String> {
        let tls = tls::server_config(&config.identity, &core.issuer(), core.now())?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("the gateway cannot listen on {}: {e}", config.listen))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| format!("reading the gateway's address: {e}"))?;
        let feed = core.store().changes();
        // Subscribed: whatever the index learns from now on is either on the feed or read
        // fresh from the registry.
        let subscribed_at = index::feed_generation(core.store());
        let shared = Arc::new(Shared {
            core,
            index: index::Index::default(),
            sessions: Arc::new(sessions::Sessions::default()),
            upstream: config.upstream,
            default_tenant: config.default_tenant,
            domain: config.domain,
        });
        shared.index.caught_up(subscribed_at);
        let follower = tokio::spawn(feed::follow(shared.clone(), feed));
        let acceptor = tokio::spawn(proxy::accept_loop(
            shared.clone(),
            listener,
            tokio_rustls::TlsAcceptor::from(tls),
        ));
        Ok(Gateway {
            local_addr,
            shared,
            tasks: vec![follower, acceptor],
        })
    }

    /// How many device sessions are open.
    pub fn open_sessions(&self) -> usize {
        self.shared.sessions.len()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
