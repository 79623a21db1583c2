//! What the audit row costs a durable write: the same update of a certificate-sized document
//! committed with and without the audit row of the call that made it (built and serialized as
//! `AuditedStore` does, in the same transaction), on both engines, the two alternated in rounds
//! so each sees the same machine. Prints its figures; asserts nothing about speed.
//!
//!   cargo test --release -p certplane-store audit_cost_per_write -- --ignored --nocapture

use std::sync::Arc;
use std::time::{Duration, Instant};

use certplane_core::audit::AuditEvent;
use certplane_core::authz::Principal;
use certplane_core::store::{self, Doc, Kind, Store, Write};

use crate::test_db::TestDb;
use crate::{PostgresStore, SqliteStore};

/// Documents, one per concurrent writer.
const WRITERS: usize = 32;
const ROUNDS: usize = 5;
/// Writes per round, one after another (the latency figure).
const SEQUENTIAL: usize = 200;
/// How long the writers run per round (the throughput figure).
const CONCURRENT_FOR: Duration = Duration::from_secs(2);

/// A body the size of a registered certificate's (its PEM is most of it).
fn certificate_doc(key: &str, n: u64) -> Doc {
    Doc {
        kind: Kind::Certificate,
        key: key.into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        idx1: Some("ACTIVE".into()),
        idx2: None,
        body: format!(
            "{{\"id\":\"{key}\",\"status\":\"{}\",\"n\":{n},\"pem\":\"{}\"}}",
            if n.is_multiple_of(2) {
                "ACTIVE"
            } else {
                "INACTIVE"
            },
            "M".repeat(1800)
        ),
    }
}

fn audit_row(key: &str, n: u64) -> AuditEvent {
    let principal = Principal::dev("123456789012", Some("AKIAIOSFODNN7EXAMPLE".into()));
    AuditEvent::for_call(
        &principal,
        // A random request id, as every dialect makes.
        &certplane_core::ids::new_uuid(),
        "aws-iot",
        "iot:UpdateCertificate",
        &format!("arn:aws:iot:us-east-1:123456789012:cert/{key}"),
        1_764_806_400_000 + i64::try_from(n).unwrap_or(0),
    )
}

/// One durable update of `key` from `version`, with the audit row when `audited`.
async fn write(s: &dyn Store, key: &str, version: i64, n: u64, audited: bool) {
    let mut writes = vec![Write::Update {
        doc: certificate_doc(key, n),
        expected_version: version,
    }];
    if audited {
        writes.push(store::insert(&audit_row(key, n)).expect("audit row"));
    }
    s.apply(writes).await.expect("durable update");
}

struct Figures {
    latencies: Vec<Duration>,
    writes_per_s: Vec<f64>,
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn measure(engine: &str, s: Arc<dyn Store>) {
    let keys: Vec<String> = (0..WRITERS).map(|i| format!("bench-cert-{i:02}")).collect();
    s.apply(
        keys.iter()
            .map(|k| Write::Insert(certificate_doc(k, 0)))
            .collect(),
    )
    .await
    .expect("insert");
    let mut versions = vec![1i64; WRITERS];
    let mut n = 0u64;
    let mut plain = Figures {
        latencies: Vec::new(),
        writes_per_s: Vec::new(),
    };
    let mut audited = Figures {
        latencies: Vec::new(),
        writes_per_s: Vec::new(),
    };
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always meets a warmer machine.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for with_audit in order {
            let figures = if with_audit { &mut audited } else { &mut plain };
            for _ in 0..SEQUENTIAL {
                n += 1;
                let t = Instant::now();
                write(&*s, &keys[0], versions[0], n, with_audit).await;
                figures.latencies.push(t.elapsed());
                versions[0] += 1;
            }
            let started = Instant::now();
            let tasks: Vec<_> = (0..WRITERS)
                .map(|i| {
                    let (s, key, mut version) = (s.clone(), keys[i].clone(), versions[i]);
                    let base = n + 1 + (i as u64) * 1_000_000;
                    tokio::spawn(async move {
                        let mut done = 0u64;
                        while started.elapsed() < CONCURRENT_FOR {
                            write(&*s, &key, version, base + done, with_audit).await;
                            version += 1;
                            done += 1;
                        }
                        (version, done)
                    })
                })
                .collect();
            let mut total = 0;
            for (i, t) in tasks.into_iter().enumerate() {
                let (version, done) = t.await.expect("writer");
                versions[i] = version;
                total += done;
            }
            n += (WRITERS as u64) * 1_000_000;
            figures
                .writes_per_s
                .push(total as f64 / started.elapsed().as_secs_f64());
        }
    }
    for f in [&mut plain, &mut audited] {
        f.latencies.sort();
    }
    let (p50, a50) = (
        quantile(&plain.latencies, 0.5),
        quantile(&audited.latencies, 0.5),
    );
    let (p99, a99) = (
        quantile(&plain.latencies, 0.99),
        quantile(&audited.latencies, 0.99),
    );
    let (pw, aw) = (median(plain.writes_per_s), median(audited.writes_per_s));
    println!(
        "{engine}: one writer ({} writes each): without the row p50 {p50:.0} µs p99 {p99:.0} µs; \
         with it p50 {a50:.0} µs p99 {a99:.0} µs; the row adds {:.0} µs ({:+.1}%) at the median",
        plain.latencies.len(),
        a50 - p50,
        (a50 / p50 - 1.0) * 100.0
    );
    println!(
        "{engine}: {WRITERS} writers (median of {ROUNDS} rounds of {} s): without the row \
         {pw:.0} writes/s; with it {aw:.0} writes/s ({:+.1}%)",
        CONCURRENT_FOR.as_secs(),
        (aw / pw - 1.0) * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn audit_cost_per_write() {
    let row = store::insert(&audit_row("bench-cert-00", 1)).expect("row");
    if let Write::Insert(d) = &row {
        println!(
            "audit row: {} bytes of JSON beside a {}-byte certificate document",
            d.body.len(),
            certificate_doc("bench-cert-00", 1).body.len()
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).expect("open sqlite"));
    measure("SQLite", sqlite).await;
    if let Some(db) = TestDb::create().await {
        let pg: Arc<dyn Store> = Arc::new(PostgresStore::open(&db.url).await.expect("open pg"));
        measure("PostgreSQL", pg).await;
        db.drop_db().await;
    }
}
