//! One device connection: TLS handshake, tenant, decision, then bytes copied both ways to the
//! broker until either side closes or the session is killed. A refused device gets its TCP
//! connection closed right after the handshake: it never reaches the broker.

use std::sync::Arc;
use std::time::Duration;

use certplane_core::CertificateId;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::admission::{decide, tenant_for, Verdict};
use crate::sessions::Session;
use crate::Shared;

/// A device that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Copy buffers per direction: MQTT packets of idle devices are small, and 10,000 idle
/// connections should not hold 160 MiB of buffers.
const COPY_BUFFER: usize = 4096;
/// How often a decision is retaken when changes keep landing while a device is admitted.
const MAX_REDECISIONS: usize = 3;

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tls: TlsAcceptor) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(shared, tls, tcp).await {
                        tracing::debug!(%peer, "gateway: connection ended: {e}");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, "gateway: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(shared: Arc<Shared>, tls: TlsAcceptor, tcp: TcpStream) -> Result<(), String> {
    let _ = tcp.set_nodelay(true);
    let mut device = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake failed: {e}"))?;
    let (server_name, der) = {
        let conn = device.get_ref().1;
        let der = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .ok_or("no client certificate")?;
        (conn.server_name().map(str::to_string), der)
    };
    let core = &shared.core;
    let tenant = tenant_for(
        core,
        &shared.index,
        server_name.as_deref(),
        &shared.domain,
        shared.default_tenant.as_ref(),
    )
    .await
    .map_err(|e| format!("finding the tenant: {e}"))?
    .ok_or_else(|| format!("no tenant for server name {server_name:?} and no default"))?;
    let cert_id = CertificateId::of_der(&der).to_string();
    let der = Arc::new(der);

    // Decide, file the session, and decide again if a change was applied meanwhile: the feed
    // updates the index before it looks for sessions, so either it finds this session or
    // this loop sees its change.
    let mut registered = None;
    for _ in 0..MAX_REDECISIONS {
        let epoch = shared.index.epoch();
        let verdict = decide(core, &shared.index, &tenant, &cert_id, &der)
            .await
            .map_err(|e| format!("deciding on {cert_id}: {e}"))?;
        let ca_key = match verdict {
            Verdict::Admit { ca_key } => ca_key,
            Verdict::Refuse(r) => {
                tracing::info!(certificate = %cert_id, reason = %r, "gateway: refused a device");
                return Err(format!("refused: {r}"));
            }
        };
        if registered.is_none() {
            let kill = Arc::new(tokio::sync::Notify::new());
            let reg = shared.sessions.register(Session {
                cert_id: cert_id.clone(),
                ca_key,
                tenant: tenant.clone(),
                der: der.clone(),
                kill: kill.clone(),
            });
            registered = Some((reg, kill));
        }
        if shared.index.epoch() == epoch {
            break;
        }
    }
    let Some((_registration, kill)) = registered else {
        return Err("no decision".into());
    };

    let mut broker = tokio::time::timeout(UPSTREAM_TIMEOUT, TcpStream::connect(&shared.upstream))
        .await
        .map_err(|_| format!("the broker {} did not answer", shared.upstream))?
        .map_err(|e| format!("connecting to the broker {}: {e}", shared.upstream))?;
    let _ = broker.set_nodelay(true);
    tokio::select! {
        r = tokio::io::copy_bidirectional_with_sizes(&mut device, &mut broker, COPY_BUFFER, COPY_BUFFER) => {
            r.map(|_| ()).map_err(|e| format!("proxying: {e}"))
        }
        _ = kill.notified() => {
            // Dropping both streams closes both sockets at once: the device sees its
            // connection end, the broker its client go.
            Err(format!("session of {cert_id} closed: the certificate or its CA is no longer active"))
        }
    }
}
