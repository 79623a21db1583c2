//! The three workloads: setup (untimed), then N connections looping until the deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cpu;

use tokio::task::JoinSet;

use crate::http::{Conn, Response, Target};

/// The account of the describe and update workloads (moto's default account).
pub const DEFAULT_ACCOUNT: &str = "123456789012";
/// Transfer source and target accounts.
pub const SOURCE_ACCOUNT: &str = "111111111111";
pub const TARGET_ACCOUNT: &str = "222222222222";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Describe,
    Update,
    Transfer,
    /// Alibaba CAS: order (with a CSR) → issue (DescribeCertificateState) → cancel-for-package.
    Order,
    /// Alibaba CAS: DescribeCertificateState of issued orders.
    OrderDescribe,
    /// Azure Billing (see azure.rs): token issuance, get, list, initiate → accept → completed.
    AzureToken,
    AzureGet,
    AzureList,
    AzureFlow,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Describe => "describe",
            Kind::Update => "update",
            Kind::Transfer => "transfer",
            Kind::Order => "order",
            Kind::OrderDescribe => "order-describe",
            Kind::AzureToken => "azure-token",
            Kind::AzureGet => "azure-get",
            Kind::AzureList => "azure-list",
            Kind::AzureFlow => "azure-flow",
        }
    }

    pub fn parse(s: &str) -> Result<Kind, String> {
        match s.trim() {
            "describe" => Ok(Kind::Describe),
            "update" => Ok(Kind::Update),
            "transfer" => Ok(Kind::Transfer),
            "order" => Ok(Kind::Order),
            "order-describe" => Ok(Kind::OrderDescribe),
            "azure-token" => Ok(Kind::AzureToken),
            "azure-get" => Ok(Kind::AzureGet),
            "azure-list" => Ok(Kind::AzureList),
            "azure-flow" => Ok(Kind::AzureFlow),
            other => Err(format!(
                "unknown workload {other:?} (describe, update, transfer, order, order-describe, azure-token, azure-get, azure-list, azure-flow)"
            )),
        }
    }

    /// What one counted operation is.
    pub fn unit(self) -> &'static str {
        match self {
            Kind::Transfer | Kind::Order | Kind::AzureFlow => "round trips/s",
            _ => "requests/s",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// One or more servers (nodes of one service); connection i goes to target i mod n.
    pub targets: Vec<Target>,
    pub label: String,
    pub concurrency: usize,
    pub duration: Duration,
    pub account_header: bool,
    /// A form-encoded PEM CSR for the order workloads.
    pub csr: Option<String>,
    /// Process groups whose CPU time the timed loop reports (the load generator is always one).
    pub cpu: Vec<crate::cpu::Watch>,
    /// Shell commands run right before and right after each timed loop (AWS and Azure
    /// workloads).
    pub before_loop: Option<String>,
    pub after_loop: Option<String>,
}

/// Runs a `--before-loop`/`--after-loop` command and waits for it.
pub(crate) fn hook(command: &Option<String>) -> Result<(), String> {
    let Some(c) = command else { return Ok(()) };
    match std::process::Command::new("sh").arg("-c").arg(c).status() {
        Ok(st) if st.success() => Ok(()),
        Ok(st) => Err(format!("{c:?} exited with {st}")),
        Err(e) => Err(format!("running {c:?}: {e}")),
    }
}

/// The measured result of one workload.
#[derive(Debug)]
pub struct Measured {
    /// Operations that succeeded (a transfer round trip counts once).
    pub ok: u64,
    /// Operations with a non-2xx answer or a transport error.
    pub errors: u64,
    /// From the start of the timed loop until the last connection finished.
    pub elapsed: Duration,
    /// Every operation's duration in nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
    /// CPU time each watched process group spent in the timed loop.
    pub cpu: crate::cpu::Spent,
}

impl Measured {
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// Nearest-rank percentile in milliseconds (`q` in 0..=1).
    pub fn percentile_ms(&self, q: f64) -> f64 {
        let n = self.latencies_ns.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.latencies_ns[rank - 1] as f64 / 1e6
    }
}

#[derive(Debug)]
pub enum Outcome {
    Measured(Measured),
    /// The target does not implement an operation of the workload.
    Unsupported(String),
    /// Setup failed (cannot create certificates, connection refused…).
    Failed(String),
}

/// Prints the first error of a workload once (to stderr).
struct ErrorLog {
    prefix: String,
    printed: AtomicBool,
}

impl ErrorLog {
    fn report(&self, what: &str, detail: String) {
        if !self.printed.swap(true, Ordering::Relaxed) {
            eprintln!("{}: first error: {what}: {detail}", self.prefix);
        }
    }
}

fn describe_response(r: &Response) -> String {
    format!(
        "HTTP {} {} {}",
        r.status,
        if r.content_type.is_empty() {
            "(no content-type)"
        } else {
            &r.content_type
        },
        r.body_snippet(300)
    )
}

/// Send one request; true on 2xx. Failures go to the error log.
async fn one(
    conn: &mut Conn,
    method: &str,
    path: &str,
    account: &str,
    body: Option<&[u8]>,
    log: &ErrorLog,
) -> bool {
    match conn.request(method, path, account, body).await {
        Ok(r) if r.is_success() => true,
        Ok(r) => {
            log.report(&format!("{method} {path}"), describe_response(&r));
            false
        }
        Err(e) => {
            log.report(&format!("{method} {path}"), format!("transport: {e}"));
            false
        }
    }
}

/// A non-2xx answer that means "not implemented here": a 5xx, or any non-JSON body (moto's
/// HTML 500 page, a 404 page for an unknown route).
fn looks_unimplemented(r: &Response) -> bool {
    !r.is_success() && (r.status >= 500 || !r.is_json())
}

/// Open `n` connections and create one active certificate on each (concurrently).
async fn create_certificates(
    s: &Settings,
    account: &'static str,
    n: usize,
) -> Result<Vec<(Conn, String)>, String> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let target = s.targets[i % s.targets.len()].clone();
        let mut conn = Conn::new(target, s.account_header);
        set.spawn(async move {
            let r = conn
                .request(
                    "POST",
                    "/keys-and-certificate?setAsActive=true",
                    account,
                    None,
                )
                .await
                .map_err(|e| format!("CreateKeysAndCertificate: {e}"))?;
            if !r.is_success() {
                return Err(format!(
                    "CreateKeysAndCertificate: {}",
                    describe_response(&r)
                ));
            }
            let v: serde_json::Value = serde_json::from_slice(&r.body)
                .map_err(|e| format!("CreateKeysAndCertificate: body is not JSON: {e}"))?;
            let id = v
                .get("certificateId")
                .and_then(|x| x.as_str())
                .ok_or("CreateKeysAndCertificate: no certificateId in the answer")?
                .to_string();
            Ok::<_, String>((i, conn, id))
        });
    }
    let mut out: Vec<Option<(Conn, String)>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, conn, id) = joined.map_err(|e| format!("setup task: {e}"))??;
        if let Some(slot) = out.get_mut(i) {
            *slot = Some((conn, id));
        }
    }
    out.into_iter()
        .map(|x| x.ok_or_else(|| "setup lost a connection".to_string()))
        .collect()
}

/// What one connection does in the timed loop.
enum Plan {
    /// Describe these paths round-robin, starting at `next`.
    Describe {
        paths: Arc<Vec<String>>,
        next: usize,
    },
    /// Alternate these two UpdateCertificate paths.
    Update { paths: [String; 2], next: usize },
    /// TransferCertificate then RejectCertificateTransfer.
    Transfer { transfer: String, reject: String },
}

struct ConnStats {
    ok: u64,
    errors: u64,
    latencies_ns: Vec<u64>,
}

async fn worker(
    mut conn: Conn,
    mut plan: Plan,
    deadline: Instant,
    log: Arc<ErrorLog>,
) -> ConnStats {
    let mut stats = ConnStats {
        ok: 0,
        errors: 0,
        latencies_ns: Vec::with_capacity(64 * 1024),
    };
    while Instant::now() < deadline {
        let start = Instant::now();
        let ok = match &mut plan {
            Plan::Describe { paths, next } => {
                let i = *next % paths.len().max(1);
                *next = next.wrapping_add(1);
                match paths.get(i) {
                    Some(p) => one(&mut conn, "GET", p, DEFAULT_ACCOUNT, None, &log).await,
                    None => false,
                }
            }
            Plan::Update { paths, next } => {
                let p = &paths[*next % 2];
                *next = next.wrapping_add(1);
                one(&mut conn, "PUT", p, DEFAULT_ACCOUNT, None, &log).await
            }
            Plan::Transfer { transfer, reject } => {
                one(
                    &mut conn,
                    "PATCH",
                    transfer,
                    SOURCE_ACCOUNT,
                    Some(b"{}"),
                    &log,
                )
                .await
                    && one(
                        &mut conn,
                        "PATCH",
                        reject,
                        TARGET_ACCOUNT,
                        Some(b"{}"),
                        &log,
                    )
                    .await
            }
        };
        stats
            .latencies_ns
            .push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if ok {
            stats.ok += 1;
        } else {
            stats.errors += 1;
        }
    }
    stats
}

fn transfer_paths(id: &str) -> (String, String) {
    (
        format!("/transfer-certificate/{id}?targetAwsAccount={TARGET_ACCOUNT}"),
        format!("/reject-certificate-transfer/{id}"),
    )
}

/// Setup, then the timed loop.
pub async fn run(s: &Settings, kind: Kind) -> Outcome {
    if matches!(kind, Kind::Order | Kind::OrderDescribe) {
        return crate::orders::run(s, kind).await;
    }
    if matches!(
        kind,
        Kind::AzureToken | Kind::AzureGet | Kind::AzureList | Kind::AzureFlow
    ) {
        return crate::azure::run(s, kind).await;
    }
    let n = s.concurrency.max(1);
    let account = match kind {
        Kind::Transfer => SOURCE_ACCOUNT,
        _ => DEFAULT_ACCOUNT,
    };
    let conns = match create_certificates(s, account, n).await {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("setup: {e}")),
    };
    let log = Arc::new(ErrorLog {
        prefix: format!("{} {}", s.label, kind.name()),
        printed: AtomicBool::new(false),
    });

    let mut plans: Vec<(Conn, Plan)> = Vec::with_capacity(n);
    match kind {
        // Handled at the top; kept here so the match stays exhaustive.
        Kind::Order | Kind::OrderDescribe => return crate::orders::run(s, kind).await,
        Kind::AzureToken | Kind::AzureGet | Kind::AzureList | Kind::AzureFlow => {
            return crate::azure::run(s, kind).await
        }
        Kind::Describe => {
            let paths: Arc<Vec<String>> = Arc::new(
                conns
                    .iter()
                    .map(|(_, id)| format!("/certificates/{id}"))
                    .collect(),
            );
            for (i, (conn, _)) in conns.into_iter().enumerate() {
                let plan = Plan::Describe {
                    paths: Arc::clone(&paths),
                    next: i,
                };
                plans.push((conn, plan));
            }
        }
        Kind::Update => {
            for (conn, id) in conns {
                let plan = Plan::Update {
                    paths: [
                        format!("/certificates/{id}?newStatus=INACTIVE"),
                        format!("/certificates/{id}?newStatus=ACTIVE"),
                    ],
                    next: 0,
                };
                plans.push((conn, plan));
            }
        }
        Kind::Transfer => {
            // A transfer needs an INACTIVE certificate.
            let mut set = JoinSet::new();
            for (i, (mut conn, id)) in conns.into_iter().enumerate() {
                set.spawn(async move {
                    let path = format!("/certificates/{id}?newStatus=INACTIVE");
                    let r = conn.request("PUT", &path, SOURCE_ACCOUNT, None).await;
                    (i, conn, id, r)
                });
            }
            let mut ready: Vec<Option<(Conn, String)>> = (0..n).map(|_| None).collect();
            while let Some(joined) = set.join_next().await {
                let (i, conn, id, r) = match joined {
                    Ok(x) => x,
                    Err(e) => return Outcome::Failed(format!("setup task: {e}")),
                };
                match r {
                    Ok(r) if r.is_success() => {}
                    Ok(r) => {
                        return Outcome::Failed(format!(
                            "setup: UpdateCertificate INACTIVE: {}",
                            describe_response(&r)
                        ))
                    }
                    Err(e) => return Outcome::Failed(format!("setup: UpdateCertificate: {e}")),
                }
                if let Some(slot) = ready.get_mut(i) {
                    *slot = Some((conn, id));
                }
            }
            for (i, slot) in ready.into_iter().enumerate() {
                let Some((mut conn, id)) = slot else {
                    return Outcome::Failed("setup lost a connection".into());
                };
                let (transfer, reject) = transfer_paths(&id);
                if i == 0 {
                    // Probe one round trip: does the target implement transfers at all?
                    for (path, acct) in [(&transfer, SOURCE_ACCOUNT), (&reject, TARGET_ACCOUNT)] {
                        match conn.request("PATCH", path, acct, Some(b"{}")).await {
                            Ok(r) if looks_unimplemented(&r) => {
                                return Outcome::Unsupported(format!(
                                    "PATCH {} answered {}",
                                    path.split('?').next().unwrap_or(path),
                                    describe_response(&r)
                                ))
                            }
                            Ok(_) => {}
                            Err(e) => return Outcome::Failed(format!("probe: {e}")),
                        }
                    }
                }
                plans.push((conn, Plan::Transfer { transfer, reject }));
            }
        }
    }

    if let Err(e) = hook(&s.before_loop) {
        return Outcome::Failed(e);
    }
    let cpu_before = cpu::snapshot(&s.cpu);
    let start = Instant::now();
    let deadline = start + s.duration;
    let mut set = JoinSet::new();
    for (conn, plan) in plans {
        set.spawn(worker(conn, plan, deadline, Arc::clone(&log)));
    }
    let mut ok = 0;
    let mut errors = 0;
    let mut latencies_ns = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(st) => {
                ok += st.ok;
                errors += st.errors;
                latencies_ns.extend_from_slice(&st.latencies_ns);
            }
            Err(e) => return Outcome::Failed(format!("worker task: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu::since(&s.cpu, &cpu_before);
    if let Err(e) = hook(&s.after_loop) {
        return Outcome::Failed(e);
    }
    latencies_ns.sort_unstable();
    Outcome::Measured(Measured {
        ok,
        errors,
        elapsed,
        latencies_ns,
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let m = Measured {
            ok: 100,
            errors: 0,
            elapsed: Duration::from_secs(2),
            latencies_ns: (1..=100).map(|i| i * 1_000_000).collect(),
            cpu: Vec::new(),
        };
        assert_eq!(m.percentile_ms(0.5), 50.0);
        assert_eq!(m.percentile_ms(0.99), 99.0);
        assert_eq!(m.rps(), 50.0);
    }
}
