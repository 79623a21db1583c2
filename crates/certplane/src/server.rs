//! The HTTP listener: health, the dev-mode endpoints, and the dialects.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::Router;
use certplane_core::clock::{rfc3339, Clock, OffsetClock};
use certplane_core::orders::{AlwaysValid, DomainValidator};
use certplane_core::Core;
use certplane_dialects::aliyun::error::RpcError;
use certplane_dialects::aliyun::Aliyun;
use certplane_dialects::aws_iot::error::WireError;
use certplane_dialects::aws_iot::AwsIot;
use certplane_dialects::azure_billing::token::TokenKeys;
use certplane_dialects::azure_billing::AzureBilling;
use certplane_dialects::wire::{self, MAX_BODY_BYTES};
use http::{Method, StatusCode};
use serde_json::json;

use crate::bootstrap::{self, Location};
use crate::validation::RealValidator;

struct App {
    aws: AwsIot,
    aliyun: Aliyun,
    azure: AzureBilling,
    revocation: Arc<crate::revocation::Revocation>,
    clock: Arc<OffsetClock>,
    dev: bool,
    body_timeout: std::time::Duration,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// How orders' domain ownership is checked.
#[derive(clap::Args, Clone, Debug)]
pub struct ValidationArgs {
    /// The DNS server (HOST:PORT) validation lookups go to; default: the system's resolver.
    #[arg(long)]
    dns_resolver: Option<SocketAddr>,
    /// The port the HTTP file validation connects to.
    #[arg(long, default_value_t = 80)]
    validation_http_port: u16,
    /// `real` checks DNS and HTTP; `always-valid` (only with --dev) accepts every order.
    #[arg(long, value_enum, default_value_t = ValidationMode::Real)]
    validation: ValidationMode,
    /// Seconds an order may wait for its proof before it fails (server time).
    #[arg(long, default_value_t = 72 * 3600)]
    validation_timeout: i64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidationMode {
    Real,
    AlwaysValid,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (fields, span fields such as the request id).
    Json,
}

/// Every flag of `certplane serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// How log lines on stderr are written.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    at: Location,
    /// Emulator mode for tests: signatures are not checked, /moto-api/reset and the settable
    /// /dev/clock are enabled.
    #[arg(long)]
    dev: bool,
    #[command(flatten)]
    validation: ValidationArgs,
    #[command(flatten)]
    tls: crate::tls::TlsArgs,
    #[command(flatten)]
    billing: crate::billing::BillingArgs,
    #[command(flatten)]
    gateway: crate::gateway::GatewayArgs,
    #[command(flatten)]
    listener: crate::listener::ListenerArgs,
    #[command(flatten)]
    revocation: crate::revocation::RevocationArgs,
    #[command(flatten)]
    throttle: crate::throttling::ThrottleArgs,
}

impl ServeArgs {
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }
}

pub async fn serve(args: &ServeArgs) -> Result<(), String> {
    let ServeArgs {
        log_format: _,
        listen,
        at,
        dev,
        validation,
        tls,
        billing,
        gateway: gateway_args,
        listener: listener_args,
        revocation: revocation_args,
        throttle: throttle_args,
    } = args;
    let (listen, dev) = (*listen, *dev);
    // First: everything started below may already count something.
    let metrics = crate::metrics::install()?;
    // Bound first: the default public URL (written into issued certificates) is the address
    // actually listened on.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("reading the listen address: {e}"))?;
    let public_url = revocation_args.public_url(addr, tls.tls)?;
    let opened = bootstrap::open_with(at, Some(&public_url)).await?;
    if let Some(warning) = opened.key_source.as_ref().and_then(|s| s.warning()) {
        tracing::warn!("{warning}");
    }
    let validator: Arc<dyn DomainValidator> = match validation.validation {
        ValidationMode::AlwaysValid if !dev => {
            return Err("--validation always-valid is only allowed with --dev".into())
        }
        ValidationMode::AlwaysValid => Arc::new(AlwaysValid),
        ValidationMode::Real => Arc::new(RealValidator::new(
            validation.dns_resolver,
            validation.validation_http_port,
        )?),
    };
    if validation.validation_timeout <= 0 {
        return Err("--validation-timeout must be a positive number of seconds".into());
    }
    let core = opened.core.with_validation(
        validator,
        validation.validation_timeout.saturating_mul(1000),
    );
    let core = billing.apply(core)?.with_throttle(throttle_args.build(dev));
    let tls_config = crate::tls::config(tls, &core)?;
    let keys = TokenKeys::load(&core)
        .await
        .map_err(|e| format!("loading the token signing key: {e}"))?;
    let sweep = crate::validation::spawn_sweep(core.clone());
    let billing_sweep = crate::billing::spawn_sweep(core.clone());
    let gateway = crate::gateway::start(&core, gateway_args).await?;
    let (revocation, revocation_task) =
        crate::revocation::Revocation::start(&core, revocation_args).await?;
    let ca_watch = watch_cas(
        opened.custody.clone(),
        core.clone(),
        at.data_dir.clone(),
        revocation.clone(),
    );
    let app = Arc::new(App {
        aws: AwsIot::new(core.clone(), dev).with_device_domain(&gateway_args.gateway_domain),
        aliyun: Aliyun::new(core.clone(), dev),
        azure: AzureBilling::new(core, dev, tls_config.is_some(), Some(Arc::new(keys))),
        revocation,
        clock: opened.clock,
        dev,
        body_timeout: listener_args.body_timeout(),
        metrics,
    });
    let router = Router::new().fallback(handle).with_state(app);
    println!(
        "certplane listening on {}://{addr}{}",
        if tls_config.is_some() {
            "https"
        } else {
            "http"
        },
        if dev { " (dev mode)" } else { "" }
    );
    let served =
        crate::listener::serve(listener, tls_config, router, listener_args, shutdown()).await;
    sweep.abort();
    billing_sweep.abort();
    revocation_task.abort();
    ca_watch.abort();
    drop(gateway);
    served
}

/// Follows operators' changes to the held CAs (`certplane admin ca …`, from any process or
/// node): on a change event, and every two seconds (a SQLite file changed by another process
/// sends no event), the CA records are compared and, when they changed, the set is rebuilt and
/// swapped in. A set that fails to load (a master key file not yet replaced after a rotation)
/// keeps the old set serving and is retried.
fn watch_cas(
    custody: Arc<crate::ca_custody::Custody>,
    core: Core,
    data_dir: std::path::PathBuf,
    revocation: Arc<crate::revocation::Revocation>,
) -> tokio::task::JoinHandle<()> {
    use certplane_core::store::{Change, Kind};
    let mut feed = core.store().changes();
    tokio::spawn(async move {
        // One ticker for the whole loop: a busy feed of other kinds must not keep pushing the
        // next poll away.
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = feed.recv() => match ev {
                    Ok(Change::Changed { kind: Kind::Issuer, .. } | Change::Missed)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Ok(Change::Changed { .. }) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {}
            }
            match custody.changed().await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!("checking the CA records: {e}");
                    continue;
                }
            }
            let current = core.cas.snapshot();
            match custody.load(Some(&current)).await {
                Ok(set) => {
                    if let Err(e) = crate::bootstrap::write_ca_bundle(&data_dir, &set) {
                        tracing::warn!("{e}");
                    }
                    tracing::info!(active = %set.active().ca_id(), held = set.all().len(), "the held CAs changed");
                    core.cas.replace(set);
                    revocation.cas_changed().await;
                    // A master-key rotation re-seals the CA records: the access-key secrets
                    // were re-sealed in the same transaction.
                    match custody.current_master_key().await {
                        Ok(key) => core.set_master_key(Arc::new(key)),
                        Err(e) => tracing::warn!("re-reading the master key: {e}"),
                    }
                }
                Err(e) => tracing::error!("the held CAs changed but cannot be loaded: {e}"),
            }
        }
    })
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn to_http(r: wire::Response) -> http::Response<Body> {
    let mut b = http::Response::builder().status(r.status);
    for (k, v) in r.headers {
        b = b.header(k, v);
    }
    b.body(Body::from(r.body)).unwrap_or_else(|_| {
        let mut resp = http::Response::new(Body::empty());
        *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        resp
    })
}

fn json_response(status: u16, v: serde_json::Value) -> http::Response<Body> {
    to_http(wire::Response::json(status, &v))
}

async fn handle(State(app): State<Arc<App>>, req: http::Request<Body>) -> http::Response<Body> {
    let started = std::time::Instant::now();
    let (response, dialect, operation) = dispatch(&app, req).await;
    crate::metrics::record_request(dialect, operation, response.status().as_u16(), started);
    response
}

/// The `dialect` label of requests that no cloud dialect answers (health, metrics, dev mode).
const SERVER: &str = "server";
/// The `operation` label of a request no route matched.
const UNKNOWN: &str = "unknown";

/// Answers a request, with the dialect and operation labels it is counted under.
async fn dispatch(
    app: &App,
    req: http::Request<Body>,
) -> (http::Response<Body>, &'static str, &'static str) {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/healthz") => {
            return (
                json_response(200, json!({ "status": "ok" })),
                SERVER,
                "healthz",
            )
        }
        // Unauthenticated, like /healthz: what it shows is counts, never names or keys.
        (&Method::GET, "/metrics") => {
            let text = crate::metrics::scrape(&app.metrics, &app.aws.core).await;
            let response = http::Response::builder()
                .status(200)
                .header(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)
                .body(Body::from(text))
                .unwrap_or_else(|_| {
                    let mut r = http::Response::new(Body::empty());
                    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    r
                });
            return (response, SERVER, "metrics");
        }
        // Only a bare `GET /`: `GET /?Action=…`, or a signed GET / with x-acs-version, is an
        // Alibaba RPC call.
        (&Method::GET, "/")
            if app.dev
                && parts.uri.query().is_none()
                && !parts.headers.contains_key("x-acs-version") =>
        {
            return (
                json_response(200, json!({ "service": "certplane", "mode": "dev" })),
                SERVER,
                "root",
            )
        }
        (&Method::POST, "/moto-api/reset") if app.dev => {
            app.clock.reset();
            let response = match app.aws.core.store().reset().await {
                Ok(()) => json_response(200, json!({ "status": "ok" })),
                Err(e) => json_response(503, json!({ "message": e.to_string() })),
            };
            return (response, SERVER, "reset");
        }
        (&Method::GET, "/dev/clock") if app.dev => {
            return (
                json_response(200, json!({ "now": rfc3339(app.clock.now()) })),
                SERVER,
                "clock",
            )
        }
        (&Method::POST, "/dev/clock") if app.dev => {
            let bytes = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
            let secs = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("advanceSeconds").and_then(|s| s.as_i64()));
            let response = match secs {
                Some(s) if s >= 0 => {
                    json_response(200, json!({ "now": rfc3339(app.clock.advance(s)) }))
                }
                _ => json_response(
                    400,
                    json!({ "message": "body must be {\"advanceSeconds\": N} with N >= 0" }),
                ),
            };
            return (response, SERVER, "clock");
        }
        _ => {}
    }
    if crate::revocation::Revocation::recognises(&parts.method, &path) {
        let operation = if path.starts_with("/ocsp") {
            "ocsp"
        } else if path.starts_with("/crl/") {
            "crl"
        } else {
            "ca"
        };
        // An oversized OCSP body is no OCSP request: answered malformedRequest, never a 5xx.
        let body = read_body(body).await.unwrap_or_default();
        let response = app
            .revocation
            .handle(&parts.method, &path, &parts.headers, &body)
            .await;
        return (response, "revocation", operation);
    }
    let mut request = wire::Request {
        method: parts.method,
        raw_path: path,
        raw_query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body: bytes::Bytes::new(),
        source_ip: parts
            .extensions
            .get::<crate::listener::Peer>()
            .map(|p| p.0.ip()),
    };
    let aliyun = Aliyun::recognises(&request);
    let azure =
        !aliyun && (AzureBilling::recognises(&request) || AzureBilling::recognises_oauth(&request));
    let dialect = if aliyun {
        "aliyun"
    } else if azure {
        "azure-billing"
    } else {
        "aws-iot"
    };
    // The Alibaba and Azure code, and AWS's name for the same refusal.
    let refused = |status: u16, code: &'static str, aws_code: &'static str, message: String| {
        let id = uuid::Uuid::new_v4().to_string().to_uppercase();
        let response = to_http(if aliyun {
            RpcError::new(status, code, message).render(&id, "certplane")
        } else if azure {
            AzureBilling::error(status, code, message)
        } else {
            WireError::new(status, aws_code, message).render(&id)
        });
        (response, dialect, UNKNOWN)
    };
    request.body = match tokio::time::timeout(app.body_timeout, read_body(body)).await {
        Ok(Ok(b)) => b,
        Ok(Err(())) => {
            return refused(
                413,
                "RequestEntityTooLarge",
                "RequestEntityTooLargeException",
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        }
        Err(_) => {
            return refused(
                408,
                "RequestTimeout",
                "RequestTimeoutException",
                format!(
                    "the request body did not arrive within {} s",
                    app.body_timeout.as_secs()
                ),
            )
        }
    };
    // Boxed: a dialect's future holds the state of its largest operation (kilobytes), and
    // unboxed it is copied at every layer the request passes through (callgrind: ~13k
    // instructions of memcpy per DescribeCertificate).
    let response = if aliyun {
        Box::pin(app.aliyun.handle(request)).await
    } else if azure {
        Box::pin(app.azure.handle(request)).await
    } else {
        Box::pin(app.aws.handle(request)).await
    };
    let operation = response.operation.unwrap_or(UNKNOWN);
    (to_http(response), dialect, operation)
}

/// How much of an oversized body is still read (and dropped) before answering 413, so a client
/// that sends the whole body before reading the answer (most do) gets the 413 instead of a
/// broken connection. Bodies beyond this are cut off.
const DRAIN_LIMIT_BYTES: usize = 16 * 1024 * 1024;

/// The request body, or `Err` when it is larger than `MAX_BODY_BYTES` (or unreadable).
async fn read_body(mut body: Body) -> Result<bytes::Bytes, ()> {
    use http_body_util::BodyExt;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(()) };
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen <= MAX_BODY_BYTES {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT_BYTES {
                return Err(());
            }
        }
    }
    if seen > MAX_BODY_BYTES {
        Err(())
    } else {
        Ok(buf.freeze())
    }
}
