//! Several certplane nodes on one PostgreSQL database, and what happens when the database dies.
//!
//! Each test creates its own database (on `CERTPLANE_TEST_POSTGRES`, default the machine's
//! server at 127.0.0.1:5432, database `test`) or its own PostgreSQL cluster, and drops it after.
//! Without a reachable server the tests print SKIPPED, unless `CI=true`, where that fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_iot::types::CertificateStatus;
use tokio_postgres::NoTls;

use crate::harness::{describe_err, new_cert, ok, Server, ACCOUNT_A};
use crate::race::race;

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn skip(why: &str) {
    if ci() {
        panic!("CI=true and a required service is missing: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// A database of its own on the shared test server, dropped on `drop_db`.
pub struct TestDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create(tag: &str) -> Option<TestDb> {
        let admin_url = std::env::var("CERTPLANE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let client = match tokio_postgres::connect(&admin_url, NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client
            }
            Err(e) => {
                skip(&format!("PostgreSQL at {admin_url} is unreachable: {e}"));
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("certplane_it_{tag}_{}_{nanos}", std::process::id());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("CERTPLANE_TEST_POSTGRES ends in /<database>");
        Some(TestDb {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }

    pub async fn drop_db(self) {
        if let Ok((client, conn)) = tokio_postgres::connect(&self.admin_url, NoTls).await {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        }
    }
}

fn node(url: &str) -> Server {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    Server::start_with(dir, &["--database-url".to_string(), url.to_string()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_are_one_service() {
    let Some(db) = TestDb::create("nodes").await else {
        return;
    };
    {
        let n1 = node(&db.url);
        let n2 = node(&db.url);
        // One issuing CA for the service.
        let ca1 = std::fs::read_to_string(n1.data_dir().join("ca.pem")).expect("ca.pem");
        let ca2 = std::fs::read_to_string(n2.data_dir().join("ca.pem")).expect("ca.pem");
        assert_eq!(ca1, ca2, "both nodes must sign with the same CA");
        // A change through one node is visible through the other at once.
        let a1 = n1.client(ACCOUNT_A);
        let a2 = n2.client(ACCOUNT_A);
        let id = new_cert(&a1, CertificateStatus::Active).await;
        let d = ok(
            a2.describe_certificate().certificate_id(&id).send().await,
            "describe through node 2",
        );
        assert_eq!(
            d.certificate_description().and_then(|d| d.status()),
            Some(&CertificateStatus::Active)
        );
        ok(
            a2.update_certificate()
                .certificate_id(&id)
                .new_status(CertificateStatus::Revoked)
                .send()
                .await,
            "revoke through node 2",
        );
        let d = ok(
            a1.describe_certificate().certificate_id(&id).send().await,
            "describe through node 1",
        );
        assert_eq!(
            d.certificate_description().and_then(|d| d.status()),
            Some(&CertificateStatus::Revoked)
        );
        // Unique names stay unique under concurrent creation across nodes: of 16 racing
        // CreatePolicy calls for one name with different documents, exactly one succeeds.
        let mut tasks = Vec::new();
        for i in 0..16 {
            let c = if i % 2 == 0 {
                n1.client(ACCOUNT_A)
            } else {
                n2.client(ACCOUNT_A)
            };
            tasks.push(tokio::spawn(async move {
                c.create_policy()
                    .policy_name("contended")
                    .policy_document(format!("{{\"n\": {i}}}"))
                    .send()
                    .await
                    .map_err(|e| describe_err(&e))
            }));
        }
        let mut created = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(_) => created += 1,
                Err(e) => assert!(e.contains("ResourceAlreadyExistsException"), "{e}"),
            }
        }
        assert_eq!(created, 1);
        // The same registration code through either node.
        let c1 = ok(a1.get_registration_code().send().await, "code via 1");
        let c2 = ok(a2.get_registration_code().send().await, "code via 2");
        assert_eq!(c1.registration_code(), c2.registration_code());
    }
    db.drop_db().await;
}

/// 2 nodes × 16 clients racing Accept, Reject and Cancel on one transfer, 500 rounds: exactly
/// one winner per round, across nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_across_two_nodes_has_one_winner_per_round() {
    let Some(db) = TestDb::create("race").await else {
        return;
    };
    {
        let n1 = node(&db.url);
        let n2 = node(&db.url);
        let rounds = std::env::var("CERTPLANE_RACE_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(500);
        race(&[&n1, &n2], rounds).await;
    }
    db.drop_db().await;
}

/// A PostgreSQL cluster of the test's own, so it can be stopped and started.
struct OwnCluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl OwnCluster {
    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).output().expect("run a PostgreSQL tool")
    }

    fn create() -> Option<OwnCluster> {
        let Some(bin) = pg_bin() else {
            skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin");
            return None;
        };
        // PostgreSQL refuses to run as root: run it as the postgres user then.
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = std::env::temp_dir().join(format!(
            "certplane-pg-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        if as_postgres {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chown of the cluster dir to postgres");
        }
        let c = OwnCluster {
            dir,
            port: free_port(),
            bin,
            as_postgres,
        };
        let data = c.data();
        let out = c.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.start();
        Some(c)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        let out = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops at once, as a crash would (`-m immediate`).
    fn kill(&self) {
        let out = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(Path::new(&self.dir));
    }
}

#[derive(Debug)]
struct Attempt {
    name: String,
    elapsed: Duration,
    result: Result<(), String>,
}

/// Creates things in a loop until `until`, recording every attempt.
async fn load(node: String, worker: usize, until: Instant) -> Vec<Attempt> {
    let conf = aws_sdk_iot::Config::builder()
        .behavior_version(aws_sdk_iot::config::BehaviorVersion::latest())
        .region(aws_sdk_iot::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_iot::config::Credentials::new(
            ACCOUNT_A, "x", None, None, "faults",
        ))
        .endpoint_url(node)
        .retry_config(aws_sdk_iot::config::retry::RetryConfig::disabled())
        .build();
    let client = aws_sdk_iot::Client::from_conf(conf);
    let mut out = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        let name = format!("w{worker}-{n}");
        n += 1;
        let t = Instant::now();
        let r = client.create_thing().thing_name(&name).send().await;
        out.push(Attempt {
            name,
            elapsed: t.elapsed(),
            result: r.map(|_| ()).map_err(|e| describe_err(&e)),
        });
        if out.last().is_some_and(|a| a.result.is_err()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    out
}

/// PostgreSQL stopped under load: requests fail fast (≤ 5 s) with 503
/// ServiceUnavailableException, never a 500 or a hang; the node recovers by itself when the
/// database is back, and every acknowledged write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_fails_fast_and_recovers_without_losing_writes() {
    let Some(pg) = OwnCluster::create() else {
        return;
    };
    let server = node(&pg.url());
    let endpoint = server.endpoint();
    let start = Instant::now();
    let until = start + Duration::from_secs(12);
    let workers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(load(endpoint.clone(), w, until)))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.kill();
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    pg.start();
    let up_at = Instant::now();
    let mut attempts = Vec::new();
    for w in workers {
        attempts.extend(w.await.expect("load worker"));
    }
    let acked: Vec<&Attempt> = attempts.iter().filter(|a| a.result.is_ok()).collect();
    let failed: Vec<&Attempt> = attempts.iter().filter(|a| a.result.is_err()).collect();
    assert!(!acked.is_empty(), "no write succeeded before the outage");
    assert!(!failed.is_empty(), "the outage was not noticed");
    for a in &failed {
        let e = a.result.as_ref().err().cloned().unwrap_or_default();
        assert!(
            e.contains("ServiceUnavailableException"),
            "{}: a failure during the outage must be 503 ServiceUnavailable, got {e}",
            a.name
        );
    }
    let slowest = attempts.iter().map(|a| a.elapsed).max().unwrap_or_default();
    assert!(
        slowest <= Duration::from_millis(6500),
        "a request took {slowest:?}: requests must fail fast (≤ 5 s) while the database is down"
    );
    // Recovery: writes succeed again after the database is back, without restarting the node.
    let recovered_after = attempts.iter().filter(|a| a.result.is_ok()).count();
    let late_ok = load(
        endpoint.clone(),
        99,
        Instant::now() + Duration::from_secs(1),
    )
    .await;
    assert!(
        late_ok.iter().any(|a| a.result.is_ok()),
        "the node did not recover after the database came back: {:?}",
        late_ok.last()
    );
    // Nothing acknowledged is lost.
    let client = server.client(ACCOUNT_A);
    for a in &acked {
        ok(
            client.describe_thing().thing_name(&a.name).send().await,
            "an acknowledged thing must exist after the outage",
        );
    }
    eprintln!(
        "outage: {} acknowledged, {} refused with 503, slowest {slowest:?}, down for {:?}, \
         {} acknowledged in total before the check",
        acked.len(),
        failed.len(),
        up_at - down_at,
        recovered_after
    );
}

fn admin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_certplane"))
        .arg("admin")
        .args(args)
        .env_remove("CERTPLANE_DATA_DIR")
        .env_remove("CERTPLANE_DATABASE_URL")
        .output()
        .expect("run certplane admin")
}

/// A SQLite deployment moves to PostgreSQL with nothing lost: every document (certificates,
/// transfers, CAs, the issuing CA key, accounts and access keys) exports identically from both,
/// and a node on the new database serves the old state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_from_sqlite_import_into_postgres_loses_nothing() {
    let Some(db) = TestDb::create("import").await else {
        return;
    };
    {
        let sqlite = Server::start();
        let dir = sqlite.data_dir().display().to_string();
        let a = sqlite.client(ACCOUNT_A);
        let active = new_cert(&a, CertificateStatus::Active).await;
        let pending = new_cert(&a, CertificateStatus::Inactive).await;
        ok(
            a.transfer_certificate()
                .certificate_id(&pending)
                .target_aws_account(crate::harness::ACCOUNT_B)
                .transfer_message("moving")
                .send()
                .await,
            "TransferCertificate",
        );
        ok(
            a.create_policy()
                .policy_name("p")
                .policy_document("{}")
                .send()
                .await,
            "CreatePolicy",
        );
        let out = admin(&[
            "account",
            "create",
            "--aws-account-id",
            "444455556666",
            "--data-dir",
            &dir,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = admin(&[
            "access-key",
            "create",
            "--account",
            "444455556666",
            "--data-dir",
            &dir,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sqlite_dir = sqlite.kill();

        let export = admin(&[
            "export",
            "--data-dir",
            &sqlite_dir.path().display().to_string(),
        ]);
        assert!(
            export.status.success(),
            "{}",
            String::from_utf8_lossy(&export.stderr)
        );
        let dump = sqlite_dir.path().join("dump.jsonl");
        std::fs::write(&dump, &export.stdout).expect("write dump");
        let lines = String::from_utf8_lossy(&export.stdout).lines().count();
        assert!(lines >= 8, "the export is too small: {lines} lines");

        let pg_dir = tempfile::tempdir().expect("temp dir");
        let pg_dir_s = pg_dir.path().display().to_string();
        let import = admin(&[
            "import",
            "--database-url",
            &db.url,
            "--data-dir",
            &pg_dir_s,
            &dump.display().to_string(),
        ]);
        assert!(
            import.status.success(),
            "{}",
            String::from_utf8_lossy(&import.stderr)
        );
        // Importing twice is refused: the target is no longer empty.
        let again = admin(&[
            "import",
            "--database-url",
            &db.url,
            "--data-dir",
            &pg_dir_s,
            &dump.display().to_string(),
        ]);
        assert!(!again.status.success());

        let re_export = admin(&["export", "--database-url", &db.url, "--data-dir", &pg_dir_s]);
        assert!(re_export.status.success());
        assert_eq!(
            String::from_utf8_lossy(&re_export.stdout),
            String::from_utf8_lossy(&export.stdout),
            "every document must come back identical from PostgreSQL"
        );

        // The PostgreSQL node signs with the same CA and serves the old state: the CA key
        // travels sealed, so the node needs the master key the SQLite deployment made.
        let pg = Server::start_with(
            Arc::new(tempfile::tempdir().expect("temp dir")),
            &[
                "--database-url".to_string(),
                db.url.clone(),
                "--master-key-file".to_string(),
                sqlite_dir.path().join("master.key").display().to_string(),
            ],
        );
        let old_ca = std::fs::read_to_string(sqlite_dir.path().join("ca.pem")).expect("ca");
        let new_ca = std::fs::read_to_string(pg.data_dir().join("ca.pem")).expect("ca");
        assert_eq!(old_ca, new_ca);
        let a = pg.client(ACCOUNT_A);
        let d = ok(
            a.describe_certificate()
                .certificate_id(&active)
                .send()
                .await,
            "describe after import",
        );
        assert_eq!(
            d.certificate_description().and_then(|d| d.status()),
            Some(&CertificateStatus::Active)
        );
        let b = pg.client(crate::harness::ACCOUNT_B);
        ok(
            b.accept_certificate_transfer()
                .certificate_id(&pending)
                .send()
                .await,
            "the pending transfer survives the move",
        );
    }
    db.drop_db().await;
}
