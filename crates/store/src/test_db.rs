//! A fresh PostgreSQL database per test, for the engine's own tests and its benchmarks.

use tokio_postgres::NoTls;

/// A fresh database on the test server, dropped when the guard goes. `None` (and a loud
/// SKIPPED) when no server answers, unless `CI=true`, where that is a failure.
pub(crate) struct TestDb {
    admin_url: String,
    name: String,
    pub(crate) url: String,
}

impl TestDb {
    pub(crate) async fn create() -> Option<TestDb> {
        let admin_url = std::env::var("CERTPLANE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let client = match tokio_postgres::connect(&admin_url, NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client
            }
            Err(e) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("PostgreSQL at {admin_url} is unreachable and CI=true: {e}");
                }
                eprintln!("SKIPPED: PostgreSQL tests (no server at {admin_url}: {e})");
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("certplane_store_{}_{nanos}", std::process::id());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("CERTPLANE_TEST_POSTGRES must end in /<database>"),
        };
        Some(TestDb {
            admin_url,
            name,
            url,
        })
    }

    pub(crate) async fn drop_db(self) {
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
