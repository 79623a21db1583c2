//! The gateway's TLS: rustls with the aws-lc-rs provider, TLS 1.2 and 1.3, a client
//! certificate required. The verifier insists on a certificate and checks the handshake
//! signature made with its key (so the device holds the private key); whether the certificate
//! may connect is the registry's decision, taken right after the handshake
//! (`admission.rs`), because it depends on the tenant the server name selects and on state
//! that changes.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{
    aws_lc_rs, verify_tls12_signature, verify_tls13_signature, CryptoProvider,
    WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use certplane_pki::IssuingCa;

#[derive(Debug)]
struct DeviceCertVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for DeviceCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: devices of many CAs (every tenant's) connect here, and clients send their
        // certificate when the list is empty.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The chain, validity and status are the registry's to judge after the handshake.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The gateway's own certificate: made at start by certplane's CA, or read from files.
pub enum Identity {
    /// Issued by the issuing CA for these names (DNS names, wildcards, IP addresses).
    Issued(Vec<String>),
    Files {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    },
}

fn read_identity(
    identity: &Identity,
    issuer: &IssuingCa,
    now: i64,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    match identity {
        Identity::Issued(names) => {
            let made = issuer
                .issue_server_certificate(names, now)
                .map_err(|e| format!("issuing the gateway's server certificate: {e}"))?;
            Ok((
                vec![CertificateDer::from(made.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_der.to_vec())),
            ))
        }
        Identity::Files { cert, key } => {
            let chain = read_chain(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("reading the gateway key {}: {e}", key.display()))?;
            Ok((chain, key))
        }
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("reading the gateway certificate {}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(chain)
}

/// The server configuration of the listener.
pub fn server_config(
    identity: &Identity,
    issuer: &IssuingCa,
    now: i64,
) -> Result<Arc<ServerConfig>, String> {
    let provider: Arc<CryptoProvider> = Arc::new(aws_lc_rs::default_provider());
    let verifier = DeviceCertVerifier {
        algorithms: provider.signature_verification_algorithms,
    };
    let (chain, key) = read_identity(identity, issuer, now)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("configuring TLS: {e}"))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(chain, key)
        .map_err(|e| format!("the gateway certificate and key do not fit: {e}"))?;
    // Devices reconnect with a full handshake: a resumed session would skip the client
    // certificate, and a ticket a device kept must not outlive a revocation.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(config))
}
