//! The API listener's connection handling, plain HTTP and `--tls` alike: a cap on concurrent
//! connections that refuses politely, a time limit on request heads (which also ends idle
//! kept-alive connections), and one accept loop that keeps serving when descriptors run out.
//!
//! Why not `axum::serve`: it sets no header timeout and no connection cap, so a few thousand
//! clients that send half a request head hold the server's descriptors for ever.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Descriptors kept free for the database, the data dir and the gateway's own accepts when the
/// default connection cap is derived from the process's descriptor limit.
const RESERVED_DESCRIPTORS: u64 = 256;
/// What a client over the cap reads before its connection is closed (plain HTTP; a TLS client
/// over the cap sees its connection closed before the handshake).
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
    Content-Type: text/plain\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 56\r\n\r\n\
    certplane is at its connection limit; retry in a moment\n";

#[derive(clap::Args, Clone, Debug)]
pub struct ListenerArgs {
    /// Seconds a client has to send a complete request head, counted from the connection's
    /// start or from the end of the previous response (so it is also the idle keep-alive
    /// timeout). Slow or stalled clients are disconnected after it.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout: u64,
    /// Seconds a client has to send a request body once its head has arrived; a slower body
    /// is answered 408 in the dialect's error format.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_body_timeout: u64,
    /// Concurrent API connections at most; one more is answered 503 and closed. Default: what
    /// the process's descriptor limit allows (raised to its hard limit at start) minus 256.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
}

impl ListenerArgs {
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.request_body_timeout)
    }
}

/// The connection cap in force: the flag, or the descriptor limit (raised as far as the hard
/// limit allows) minus a reserve.
fn connection_cap(args: &ListenerArgs) -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let derived = limit.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    let cap = args.max_connections.unwrap_or(derived);
    if cap > derived {
        tracing::warn!(
            max_connections = cap,
            descriptor_limit = limit,
            "--max-connections is above what the descriptor limit allows; accepts may fail \
             before the cap is reached"
        );
    }
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Held while a connection is served; the count of live ones is the cap's measure.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(live: &Arc<AtomicUsize>, cap: usize) -> Option<Slot> {
        let mut now = live.load(Ordering::Relaxed);
        loop {
            if now >= cap {
                return None;
            }
            match live.compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(Slot(live.clone())),
                Err(seen) => now = seen,
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    args: &ListenerArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let acceptor = tls.map(TlsAcceptor::from);
    let cap = connection_cap(args);
    let header_timeout = Duration::from_secs(args.header_read_timeout);
    let live = Arc::new(AtomicUsize::new(0));
    tracing::info!(max_connections = cap, "API listener ready");
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
        let Some(slot) = Slot::take(&live, cap) else {
            tokio::spawn(refuse(tcp, acceptor.is_none()));
            continue;
        };
        let acceptor = acceptor.clone();
        // Every request of the connection carries its peer, for source-address policy
        // conditions.
        let router = router.clone().layer(axum::Extension(Peer(peer)));
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tcp.set_nodelay(true);
            let result = match acceptor {
                None => serve_http(tcp, router, header_timeout).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_http(stream, router, header_timeout).await,
                        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

async fn serve_http<S>(stream: S, router: Router, header_timeout: Duration) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router))
        .await
        .map_err(|e| e.to_string())
}

/// The TCP peer of the connection a request arrived on (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Over the cap: a plain-HTTP client is told so (503, Retry-After) without its request being
/// read; a TLS client's connection is closed before the handshake, which costs nothing.
async fn refuse(mut tcp: TcpStream, plain: bool) {
    if plain {
        let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(OVER_CAPACITY)).await;
        let _ = tcp.shutdown().await;
    }
}
