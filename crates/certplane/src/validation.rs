//! Real domain validation for orders: a DNS TXT lookup of the record the order asked for, or an
//! HTTP GET of the validation file, both resolved through one configurable resolver (so a test
//! can run its own DNS server and point names at 127.0.0.1).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use certplane_core::orders::{DomainValidator, Order, ValidateType};
use certplane_core::Core;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use http_body_util::{BodyExt, Empty, Limited};

/// How long one DNS or HTTP check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the background sweep retries orders waiting for their proof.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(3);
/// Largest validation file read.
const MAX_FILE_BYTES: usize = 64 * 1024;

pub struct RealValidator {
    resolver: TokioResolver,
    http_port: u16,
}

impl RealValidator {
    /// `dns`: the resolver to ask (`None`: the system's, from /etc/resolv.conf).
    pub fn new(dns: Option<SocketAddr>, http_port: u16) -> Result<Self, String> {
        let mut builder = match dns {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("reading the system DNS configuration: {e}"))?,
        };
        let opts = builder.options_mut();
        // A proof is looked up again every few seconds: never answer from a cache.
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        let resolver = builder
            .build()
            .map_err(|e| format!("building the DNS resolver: {e}"))?;
        Ok(RealValidator {
            resolver,
            http_port,
        })
    }

    async fn txt_values(&self, name: &str) -> Vec<String> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.resolver.txt_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                tracing::debug!(name, error = %e, "validation TXT lookup failed");
                Vec::new()
            }
        }
    }

    async fn address_of(&self, host: &str) -> Option<IpAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(ip);
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        match self.resolver.lookup_ip(fqdn.as_str()).await {
            Ok(ips) => ips.iter().next(),
            Err(e) => {
                tracing::debug!(host, error = %e, "validation address lookup failed");
                None
            }
        }
    }

    /// GET http://<domain>:<port><uri>, connecting to the resolver's address for the domain.
    async fn fetch(&self, domain: &str, uri: &str) -> Option<Bytes> {
        let ip = self.address_of(domain).await?;
        let stream = tokio::net::TcpStream::connect((ip, self.http_port))
            .await
            .ok()?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(conn);
        let request = http::Request::get(uri)
            .header(http::header::HOST, domain)
            .header(http::header::USER_AGENT, "certplane-domain-validation")
            .body(Empty::<Bytes>::new())
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        if response.status() != http::StatusCode::OK {
            return None;
        }
        Limited::new(response.into_body(), MAX_FILE_BYTES)
            .collect()
            .await
            .ok()
            .map(|b| b.to_bytes())
    }
}

#[async_trait]
impl DomainValidator for RealValidator {
    async fn check(&self, order: &Order) -> bool {
        let check = async {
            match order.validate_type {
                ValidateType::Dns => {
                    let (Some(name), Some(want)) =
                        (&order.proof.record_domain, &order.proof.record_value)
                    else {
                        return false;
                    };
                    self.txt_values(name).await.iter().any(|v| v.trim() == want)
                }
                ValidateType::File => {
                    let (Some(uri), Some(want)) = (&order.proof.uri, &order.proof.content) else {
                        return false;
                    };
                    let domain = order.domain.trim_start_matches("*.");
                    match self.fetch(domain, uri).await {
                        Some(body) => String::from_utf8_lossy(&body).trim() == want.trim(),
                        None => false,
                    }
                }
            }
        };
        tokio::time::timeout(CHECK_TIMEOUT, check)
            .await
            .unwrap_or(false)
    }
}

/// Retries every order waiting for its proof, every few seconds, for the life of the server.
pub fn spawn_sweep(core: Core) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tick.tick().await;
            let ids = match core.orders_waiting_for_validation().await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, "validation sweep: cannot list orders");
                    continue;
                }
            };
            for id in ids {
                if let Err(e) = core.advance_order(id).await {
                    tracing::warn!(order = id, error = %e, "validation sweep: order not advanced");
                }
            }
        }
    })
}
