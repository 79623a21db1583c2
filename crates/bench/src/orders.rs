//! Alibaba CAS workloads against certplane `--dev --validation always-valid`: the order round
//! trip (CreateCertificateForPackageRequest with a CSR → DescribeCertificateState, which issues
//! → CancelCertificateForPackageRequest) and DescribeCertificateState of issued orders.

use std::time::Instant;

use tokio::task::JoinSet;

use crate::http::Conn;
use crate::workloads::{Kind, Measured, Outcome, Settings};

/// The Alibaba uid of the order workloads; its package is filled by the bench script.
pub const UID: &str = "1234567890123456";
pub const PRODUCT_CODE: &str = "digicert-free-1-free";
const CAS: &str = "2020-04-07";

fn order_id(body: &[u8]) -> Option<i64> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("OrderId")?
        .as_i64()
}

/// One order from creation to issuance; its id.
async fn issue(conn: &mut Conn, csr: &str, n: u64) -> Result<i64, String> {
    let q = format!(
        "ProductCode={PRODUCT_CODE}&Domain=bench{n}.example.com&ValidateType=DNS&Csr={csr}"
    );
    let r = conn
        .rpc("CreateCertificateForPackageRequest", CAS, UID, &q)
        .await?;
    if !r.is_success() {
        return Err(format!("create: HTTP {} {}", r.status, r.body_snippet(300)));
    }
    let id = order_id(&r.body).ok_or("create: no OrderId")?;
    let r = conn
        .rpc(
            "DescribeCertificateState",
            CAS,
            UID,
            &format!("OrderId={id}"),
        )
        .await?;
    let issued = serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| {
            v.get("Type")
                .and_then(|t| t.as_str())
                .map(|t| t == "certificate")
        })
        .unwrap_or(false);
    if !r.is_success() || !issued {
        return Err(format!(
            "describe: HTTP {} {} (is the server running with --validation always-valid?)",
            r.status,
            r.body_snippet(300)
        ));
    }
    Ok(id)
}

async fn round_trip(conn: &mut Conn, csr: &str, n: u64) -> Result<(), String> {
    let id = issue(conn, csr, n).await?;
    let r = conn
        .rpc(
            "CancelCertificateForPackageRequest",
            CAS,
            UID,
            &format!("OrderId={id}"),
        )
        .await?;
    if r.is_success() {
        Ok(())
    } else {
        Err(format!("cancel: HTTP {} {}", r.status, r.body_snippet(300)))
    }
}

pub async fn run(s: &Settings, kind: Kind) -> Outcome {
    let Some(csr) = s.csr.clone() else {
        return Outcome::Failed("the order workloads need --csr-file".into());
    };
    let n = s.concurrency.max(1);
    let mut set = JoinSet::new();
    for i in 0..n {
        let target = s.targets[i % s.targets.len()].clone();
        let csr = csr.clone();
        let duration = s.duration;
        set.spawn(async move {
            let mut conn = Conn::new(target, false);
            // Setup: one issued order to describe.
            let mut seq = (i as u64) << 32;
            let described = match kind {
                Kind::OrderDescribe => Some(issue(&mut conn, &csr, seq).await?),
                _ => None,
            };
            let deadline = Instant::now() + duration;
            let (mut ok, mut errors, mut lat) = (0u64, 0u64, Vec::with_capacity(16 * 1024));
            let mut first_error = None;
            while Instant::now() < deadline {
                seq += 1;
                let t = Instant::now();
                let r = match described {
                    Some(id) => conn
                        .rpc(
                            "DescribeCertificateState",
                            CAS,
                            UID,
                            &format!("OrderId={id}"),
                        )
                        .await
                        .and_then(|r| {
                            if r.is_success() {
                                Ok(())
                            } else {
                                Err(format!("HTTP {} {}", r.status, r.body_snippet(300)))
                            }
                        }),
                    None => round_trip(&mut conn, &csr, seq).await,
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
            Ok::<_, String>((ok, errors, lat))
        });
    }
    let cpu_before = crate::cpu::snapshot(&s.cpu);
    let start = Instant::now();
    let (mut ok, mut errors, mut latencies_ns) = (0, 0, Vec::new());
    while let Some(j) = set.join_next().await {
        match j {
            Ok(Ok((o, e, l))) => {
                ok += o;
                errors += e;
                latencies_ns.extend(l);
            }
            Ok(Err(e)) => return Outcome::Failed(format!("setup: {e}")),
            Err(e) => return Outcome::Failed(format!("worker task: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let cpu = crate::cpu::since(&s.cpu, &cpu_before);
    latencies_ns.sort_unstable();
    Outcome::Measured(Measured {
        ok,
        errors,
        elapsed,
        latencies_ns,
        cpu,
    })
}
