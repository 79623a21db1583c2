//! `serve --tls`: the rustls server configuration (a certificate issued at start by certplane's
//! CA for `localhost` and `127.0.0.1`, or `--tls-cert/--tls-key`) and the accept loop that
//! serves the same router over TLS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use certplane_core::Core;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// Serve HTTPS (every dialect). Without --tls-cert/--tls-key the certificate is issued at
    /// start by certplane's CA for localhost and 127.0.0.1 (trust <data-dir>/ca.pem).
    #[arg(long)]
    pub tls: bool,
    /// PEM certificate chain to serve instead (needs --tls and --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server config, or `None` without `--tls`.
pub fn config(args: &TlsArgs, core: &Core) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    if !args.tls {
        if args.tls_cert.is_some() {
            return Err("--tls-cert and --tls-key need --tls".into());
        }
        return Ok(None);
    }
    let (chain, key) = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            let chain = CertificateDer::pem_file_iter(c)
                .map_err(|e| format!("reading {}: {e}", c.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("reading {}: {e}", c.display()))?;
            if chain.is_empty() {
                return Err(format!("{} holds no certificate", c.display()));
            }
            let key = PrivateKeyDer::from_pem_file(k)
                .map_err(|e| format!("reading the private key {}: {e}", k.display()))?;
            (chain, key)
        }
        _ => {
            let names = vec!["localhost".to_string()];
            let ips = [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ];
            let (cert_pem, key_pem) = core
                .issuer
                .issue_tls_server(&names, &ips, core.now(), 365)
                .map_err(|e| format!("issuing the TLS certificate: {e}"))?;
            let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
                .map_err(|e| format!("loading the issued TLS certificate: {e}"))?;
            let ca = CertificateDer::from_pem_slice(core.issuer.cert_pem().as_bytes())
                .map_err(|e| format!("loading the CA certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| format!("loading the issued TLS key: {e}"))?;
            (vec![cert, ca], key)
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(cfg)))
}

/// Accepts TLS connections until `shutdown` resolves, each served by `router` over HTTP/1.1.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let acceptor = TlsAcceptor::from(cfg);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = TowerToHyperService::new(router);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "TLS connection ended with an error");
            }
        });
    }
}
