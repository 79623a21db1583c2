//! Azure Billing workloads against certplane `--dev` seeded by `bench/azure.sh` (the constants
//! below name its seed). Every ARM call carries an ES256 token from certplane's own token
//! endpoint, so each one pays the signature verification.
//!
//! * `azure-token`: `POST /{tenant}/oauth2/v2.0/token` (client-credentials; PBKDF2 check of the
//!   secret + ES256 signing).
//! * `azure-get`: `GET .../customers/{c}/transfers/{t}` of one Pending transfer per connection.
//! * `azure-list`: `GET .../customers/{c}/transfers` (a full first page of 20).
//! * `azure-flow`: `PUT` initiate + `POST .../accept` of a fresh product, one round trip; after
//!   the timed loop it waits until every accepted transfer is Completed and prints the
//!   end-to-end completed-transfers rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::http::{Conn, Response};
use crate::workloads::{Kind, Measured, Outcome, Settings};

pub const TENANT: &str = "bench";
pub const INITIATOR: (&str, &str) = ("bench-initiator", "bench-initiator-secret");
pub const RECIPIENT: (&str, &str) = ("bench-recipient", "bench-recipient-secret");
pub const RECIPIENT_EMAIL: &str = "recipient@bench.example";
/// The seed holds products `bench-0` … `bench-{PRODUCTS-1}` held by the recipient.
pub const PRODUCTS: u64 = 30_000;
const SCOPE: &str =
    "/providers/Microsoft.Billing/billingAccounts/PCN.bench/billingProfiles/p/customers/c";
const V: &str = "api-version=2024-04-01";

fn check(r: Result<Response, String>, what: &str) -> Result<Response, String> {
    match r {
        Ok(r) if r.is_success() => Ok(r),
        Ok(r) => Err(format!("{what}: HTTP {} {}", r.status, r.body_snippet(300))),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

fn token_form(client: (&str, &str)) -> String {
    format!(
        "client_id={}&grant_type=client_credentials&client_info=1&client_secret={}&scope=https%3A%2F%2Fmanagement.azure.com%2F.default",
        client.0, client.1
    )
}

async fn token(conn: &mut Conn, client: (&str, &str)) -> Result<String, String> {
    let form = token_form(client);
    let r = check(
        conn.plain(
            "POST",
            &format!("/{TENANT}/oauth2/v2.0/token"),
            &[],
            Some(("application/x-www-form-urlencoded", form.as_bytes())),
        )
        .await,
        "token",
    )?;
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v.get("access_token")?.as_str().map(str::to_string))
        .ok_or_else(|| "token: no access_token".to_string())
}

async fn initiate(conn: &mut Conn, bearer: &str, name: &str) -> Result<Response, String> {
    let body = format!("{{\"properties\": {{\"recipientEmailId\": \"{RECIPIENT_EMAIL}\"}}}}");
    check(
        conn.plain(
            "PUT",
            &format!("{SCOPE}/transfers/{name}?{V}"),
            &[("Authorization", bearer), ("Accept", "application/json")],
            Some(("application/json", body.as_bytes())),
        )
        .await,
        "initiate",
    )
}

async fn accept(conn: &mut Conn, bearer: &str, name: &str, product: u64) -> Result<(), String> {
    let body = format!(
        "{{\"properties\": {{\"productDetails\": [{{\"productType\": \"AzureSubscription\", \"productId\": \"bench-{product}\"}}]}}}}"
    );
    check(
        conn.plain(
            "POST",
            &format!("/providers/Microsoft.Billing/transfers/{name}/accept?{V}"),
            &[("Authorization", bearer), ("Accept", "application/json")],
            Some(("application/json", body.as_bytes())),
        )
        .await,
        "accept",
    )
    .map(|_| ())
}

fn status_of(r: &Response) -> String {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| {
            v.get("properties")?
                .get("transferStatus")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// A run-unique prefix for transfer names (lower-case alphanumerics).
fn run_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("b{:x}", nanos % (1u128 << 40))
}

struct Ctx {
    prefix: String,
    next_product: AtomicU64,
}

pub async fn run(s: &Settings, kind: Kind) -> Outcome {
    let n = s.concurrency.max(1);
    let ctx = Arc::new(Ctx {
        prefix: run_prefix(),
        next_product: AtomicU64::new(0),
    });
    // Setup (untimed): tokens, and what the reads read.
    let mut setup = Vec::with_capacity(n);
    for i in 0..n {
        let mut conn = Conn::new(s.targets[i % s.targets.len()].clone(), false);
        let alice = match token(&mut conn, INITIATOR).await {
            Ok(t) => format!("Bearer {t}"),
            Err(e) => return Outcome::Failed(format!("setup: {e} (seeded with bench/azure.sh?)")),
        };
        let bob = match token(&mut conn, RECIPIENT).await {
            Ok(t) => format!("Bearer {t}"),
            Err(e) => return Outcome::Failed(format!("setup: {e}")),
        };
        let own = format!("{}s{i}", ctx.prefix);
        if matches!(kind, Kind::AzureGet | Kind::AzureList) {
            if let Err(e) = initiate(&mut conn, &alice, &own).await {
                return Outcome::Failed(format!("setup: {e}"));
            }
        }
        setup.push((conn, alice, bob, own));
    }
    if kind == Kind::AzureList {
        // At least a full page.
        if let Some((conn, alice, _, _)) = setup.first_mut() {
            for j in 0..20 {
                if let Err(e) = initiate(conn, alice, &format!("{}l{j}", ctx.prefix)).await {
                    return Outcome::Failed(format!("setup: {e}"));
                }
            }
        }
    }
    if let Err(e) = crate::workloads::hook(&s.before_loop) {
        return Outcome::Failed(e);
    }
    let cpu_before = crate::cpu::snapshot(&s.cpu);
    let start = Instant::now();
    let deadline = start + s.duration;
    let mut set = JoinSet::new();
    for (i, (mut conn, alice, bob, own)) in setup.into_iter().enumerate() {
        let ctx = Arc::clone(&ctx);
        set.spawn(async move {
            let (mut ok, mut errors, mut lat) = (0u64, 0u64, Vec::with_capacity(16 * 1024));
            let mut first_error = None;
            let mut accepted = Vec::new();
            let mut seq = 0u64;
            let get = format!("{SCOPE}/transfers/{own}?{V}");
            let list = format!("{SCOPE}/transfers?{V}");
            while Instant::now() < deadline {
                seq += 1;
                let t = Instant::now();
                let r = match kind {
                    Kind::AzureToken => token(&mut conn, INITIATOR).await.map(|_| ()),
                    Kind::AzureGet => check(
                        conn.plain("GET", &get, &[("Authorization", &alice)], None)
                            .await,
                        "get",
                    )
                    .map(|_| ()),
                    Kind::AzureList => check(
                        conn.plain("GET", &list, &[("Authorization", &alice)], None)
                            .await,
                        "list",
                    )
                    .map(|_| ()),
                    _ => {
                        let name = format!("{}f{i}x{seq}", ctx.prefix);
                        let product = ctx.next_product.fetch_add(1, Ordering::Relaxed);
                        if product >= PRODUCTS {
                            Err("out of seeded products".to_string())
                        } else {
                            match initiate(&mut conn, &alice, &name).await {
                                Ok(_) => accept(&mut conn, &bob, &name, product)
                                    .await
                                    .map(|()| accepted.push(name)),
                                Err(e) => Err(e),
                            }
                        }
                    }
                };
                lat.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
                match r {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                eprintln!("{} first error: {e}", kind.name());
            }
            (ok, errors, lat, accepted, conn, alice)
        });
    }
    let (mut ok, mut errors, mut latencies_ns) = (0, 0, Vec::new());
    let mut to_check = Vec::new();
    while let Some(j) = set.join_next().await {
        match j {
            Ok((o, e, l, accepted, conn, alice)) => {
                ok += o;
                errors += e;
                latencies_ns.extend(l);
                to_check.push((conn, alice, accepted));
            }
            Err(e) => return Outcome::Failed(format!("worker task: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let cpu = crate::cpu::since(&s.cpu, &cpu_before);
    if let Err(e) = crate::workloads::hook(&s.after_loop) {
        return Outcome::Failed(e);
    }
    if kind == Kind::AzureFlow {
        drain(to_check, start, elapsed).await;
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

/// Waits until every accepted transfer is Completed (checking the most recent ones first, the
/// sweep takes them in creation order), then prints the end-to-end rate.
async fn drain(to_check: Vec<(Conn, String, Vec<String>)>, start: Instant, loop_time: Duration) {
    let total: usize = to_check.iter().map(|(_, _, a)| a.len()).sum();
    let limit = Instant::now() + Duration::from_secs(300);
    let mut set = JoinSet::new();
    for (mut conn, alice, accepted) in to_check {
        set.spawn(async move {
            let mut done = 0usize;
            for name in accepted.iter().rev() {
                loop {
                    let r = conn
                        .plain(
                            "GET",
                            &format!("{SCOPE}/transfers/{name}?{V}"),
                            &[("Authorization", &alice)],
                            None,
                        )
                        .await;
                    match r {
                        Ok(r) if status_of(&r) == "Completed" => {
                            done += 1;
                            break;
                        }
                        _ if Instant::now() > limit => return done,
                        _ => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }
            done
        });
    }
    let mut completed = 0;
    while let Some(Ok(d)) = set.join_next().await {
        completed += d;
    }
    let all = start.elapsed().as_secs_f64();
    println!(
        "azure-flow completed: {completed}/{total} transfers Completed {all:.2} s after the loop began (loop {:.2} s, drain {:.2} s): {:.1} completed transfers/s end to end",
        loop_time.as_secs_f64(),
        all - loop_time.as_secs_f64(),
        completed as f64 / all.max(f64::EPSILON)
    );
}
