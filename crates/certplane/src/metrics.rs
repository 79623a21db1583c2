//! `GET /metrics`: the Prometheus recorder, the request metrics the listener records, and the
//! gauges computed from the store at scrape time. The metrics other crates report (denied and
//! throttled calls, store latency, gateway sessions) are named in `certplane_core::metrics`;
//! a throttling layer counts its refusals with `certplane_core::metrics::throttled`.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use certplane_core::certificates::CertificateStatus;
use certplane_core::orders::OrderState;
use certplane_core::store::Kind;
use certplane_core::Core;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// API requests answered (counter; labels `dialect`, `operation`, `status`).
pub const REQUESTS: &str = "certplane_requests_total";
/// Time from a request's head to its answer (histogram, seconds; `dialect`, `operation`).
pub const REQUEST_DURATION: &str = "certplane_request_duration_seconds";
/// Certificates in the registry by status (gauge).
pub const CERTIFICATES: &str = "certplane_certificates";
/// Ownership transfers waiting for the recipient (gauge; label `dialect`).
pub const PENDING_TRANSFERS: &str = "certplane_pending_transfers";
/// Certificate orders by state (gauge; label `state`).
pub const ORDERS: &str = "certplane_orders";
/// 1 when the last scrape could read the store's counts, else 0 (gauge).
pub const STORE_UP: &str = "certplane_store_up";

/// Bucket bounds (seconds) of every `_seconds` histogram: from a cached read (~100 µs) to a
/// stalled database (10 s).
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];
/// How often histogram samples are folded into their buckets between scrapes (bounds the
/// memory held for them under load).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder (once, at `serve`) and starts its upkeep.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
        .map_err(|e| format!("configuring the metrics histograms: {e}"))?
        .install_recorder()
        .map_err(|e| format!("installing the metrics recorder: {e}"))?;
    describe();
    certplane_core::metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn describe() {
    metrics::describe_counter!(
        REQUESTS,
        "API requests answered, by dialect, the cloud's operation name (unknown: no route) and \
         HTTP status."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time from a request's arrival to its answer, by dialect and operation."
    );
    metrics::describe_gauge!(
        CERTIFICATES,
        "Certificates in the registry by status (read from the store at scrape time)."
    );
    metrics::describe_gauge!(
        PENDING_TRANSFERS,
        "Ownership transfers waiting for their recipient, by dialect (read at scrape time)."
    );
    metrics::describe_gauge!(
        ORDERS,
        "Certificate orders by state: payed and domain_verify are pending, certificate is \
         active (read at scrape time)."
    );
    metrics::describe_gauge!(
        STORE_UP,
        "1 when the last scrape read the store's counts, 0 when the store failed."
    );
}

/// The status codes as label values, made once: a request's labels then cost no allocation.
static STATUS_LABELS: LazyLock<Vec<String>> =
    LazyLock::new(|| (0u16..600).map(|s| s.to_string()).collect());

fn status_label(status: u16) -> &'static str {
    STATUS_LABELS
        .get(usize::from(status))
        .map_or("other", String::as_str)
}

/// Records one answered request. `operation` comes from the dialect's own routing (a closed
/// set), so the number of series stays bounded.
pub fn record_request(
    dialect: &'static str,
    operation: &'static str,
    status: u16,
    started: Instant,
) {
    metrics::counter!(
        REQUESTS,
        "dialect" => dialect,
        "operation" => operation,
        "status" => status_label(status)
    )
    .increment(1);
    metrics::histogram!(REQUEST_DURATION, "dialect" => dialect, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

const ORDER_STATES: [OrderState; 5] = [
    OrderState::Payed,
    OrderState::DomainVerify,
    OrderState::VerifyFail,
    OrderState::Certificate,
    OrderState::Revoked,
];

/// Sets the gauges read from the store: one aggregate query per kind.
async fn read_gauges(core: &Core) -> Result<(), certplane_core::DomainError> {
    let store = core.store();
    let certificates = store.count_by_field(Kind::Certificate, "status").await?;
    let transfers = store.count_by_field(Kind::Transfer, "status").await?;
    let billing = store
        .count_by_field(Kind::BillingTransfer, "status")
        .await?;
    let orders = store.count_by_field(Kind::Order, "state").await?;
    let count_of = |counts: &[(String, u64)], value: &str| {
        counts
            .iter()
            .find(|(v, _)| v == value)
            .map_or(0.0, |(_, n)| *n as f64)
    };
    // Every known status is set, so a status that drops to none reads 0 (not its last value).
    for status in CertificateStatus::ALL {
        metrics::gauge!(CERTIFICATES, "status" => status.as_str())
            .set(count_of(&certificates, status.as_str()));
    }
    metrics::gauge!(PENDING_TRANSFERS, "dialect" => "aws-iot").set(count_of(&transfers, "PENDING"));
    metrics::gauge!(PENDING_TRANSFERS, "dialect" => "azure-billing")
        .set(count_of(&billing, "Pending"));
    for state in ORDER_STATES {
        metrics::gauge!(ORDERS, "state" => state.as_str()).set(count_of(&orders, state.as_str()));
    }
    Ok(())
}

/// The body of `GET /metrics` (Prometheus text format 0.0.4).
pub async fn scrape(handle: &PrometheusHandle, core: &Core) -> String {
    match read_gauges(core).await {
        Ok(()) => metrics::gauge!(STORE_UP).set(1.0),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the store's counts could not be read");
            metrics::gauge!(STORE_UP).set(0.0);
        }
    }
    handle.render()
}

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
