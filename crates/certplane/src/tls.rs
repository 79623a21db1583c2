//! `serve --tls`: the rustls server configuration (a certificate issued at start by certplane's
//! CA for `localhost` and `127.0.0.1`, or `--tls-cert/--tls-key`); `listener.rs` serves the
//! router over it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;

use certplane_core::Core;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

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
                .issuer()
                .issue_tls_server(&names, &ips, core.now(), 365)
                .map_err(|e| format!("issuing the TLS certificate: {e}"))?;
            let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
                .map_err(|e| format!("loading the issued TLS certificate: {e}"))?;
            let ca = CertificateDer::from_pem_slice(core.issuer().cert_pem().as_bytes())
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
