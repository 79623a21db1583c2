//! The embedded SQLite engine: WAL journal with `synchronous=FULL`, so a commit is on disk
//! before `apply` returns.
//!
//! Writes go to one writer thread that commits in groups: it takes every batch waiting in its
//! queue, runs each inside its own SAVEPOINT (a batch that fails — a lost compare-and-set, a
//! duplicate key — is rolled back alone), then makes them all durable with one COMMIT, and only
//! then answers each caller. Reads use a small pool of read-only connections, which WAL lets
//! run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use rusqlite::{params, params_from_iter, Connection, ErrorCode, OpenFlags, OptionalExtension};
use tokio::sync::{broadcast, oneshot};

use certplane_core::error::{DomainError, DomainResult};
use certplane_core::store::{
    changes_of, Change, Doc, Filter, Kind, PageQuery, Store, StoredDoc, Write,
};

use crate::feed::Feed;
use crate::sql::{self, Arg, Placeholders, COLUMNS};
use crate::{CLAIM_NONCE_SQL, NONCE_PURGE_EVERY_MS, PURGE_NONCES_SQL, SQLITE_MIGRATIONS};

/// At most this many batches share one COMMIT.
const MAX_GROUP: usize = 256;

enum Job {
    Apply(Vec<Write>, oneshot::Sender<DomainResult<()>>),
    Reset(oneshot::Sender<DomainResult<()>>),
    Claim {
        key: String,
        now_ms: i64,
        expires_at_ms: i64,
        answer: oneshot::Sender<DomainResult<bool>>,
    },
}

pub struct SqliteStore {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// The change feed: published by the writer thread once a group has committed, and, in
    /// the data dir's hub process, by the other processes' reports (`feed_socket`).
    feed: Arc<Feed>,
    /// The hub's socket path (`None` when the data dir's path is too long for one).
    socket: Option<PathBuf>,
    hub: std::sync::Once,
}

mod feed_socket;

fn fault(context: &str, e: rusqlite::Error) -> DomainError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            DomainError::Unavailable(format!("{context}: database busy"))
        }
        // The disk, not the request: a full or failing disk, or a data dir made read-only, is
        // an outage the server recovers from once it ends (the transaction rolled back).
        Some(ErrorCode::DiskFull)
        | Some(ErrorCode::SystemIoFailure)
        | Some(ErrorCode::ReadOnly)
        | Some(ErrorCode::CannotOpen) => {
            tracing::warn!(error = %e, "{context}: the database's disk failed");
            DomainError::Unavailable(format!("{context}: {e}"))
        }
        _ => DomainError::Internal(format!("{context}: {e}")),
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Applies the numbered migrations not yet applied; refuses a schema newer than this binary.
fn migrate(conn: &mut Connection) -> Result<(), String> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .map_err(|e| format!("creating schema_migrations: {e}"))?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(|e| format!("reading the schema version: {e}"))?;
    let known = SQLITE_MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > known {
        return Err(format!(
            "the database schema is at version {current} but this certplane knows only up to \
             {known}; use a newer certplane binary"
        ));
    }
    for (version, name, sql) in SQLITE_MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| format!("migration {name}: {e}"))?;
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {name}: {e}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, datetime('now'))",
            params![version, name],
        )
        .map_err(|e| format!("migration {name}: {e}"))?;
        tx.commit().map_err(|e| format!("migration {name}: {e}"))?;
    }
    Ok(())
}

/// The write statements of one table.
struct WriteSql {
    insert: &'static str,
    insert_if_absent: &'static str,
    update: &'static str,
    delete: &'static str,
}

macro_rules! write_sql {
    ($table:literal, $unique:literal) => {
        WriteSql {
            insert: concat!(
                "INSERT INTO ",
                $table,
                " (kind, key, account, region, idx1, idx2, version, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7)"
            ),
            insert_if_absent: concat!(
                "INSERT INTO ",
                $table,
                " (kind, key, account, region, idx1, idx2, version, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7) ON CONFLICT ",
                $unique,
                " DO NOTHING"
            ),
            update: concat!(
                "UPDATE ",
                $table,
                " SET account = ?1, region = ?2, idx1 = ?3, idx2 = ?4,
                 body = ?5, version = version + 1
                 WHERE kind = ?6 AND key = ?7 AND version = ?8"
            ),
            delete: concat!(
                "DELETE FROM ",
                $table,
                " WHERE kind = ?1 AND key = ?2 AND version = ?3"
            ),
        }
    };
}

const DOCUMENTS_SQL: WriteSql = write_sql!("documents", "(kind, key)");
const AUDIT_SQL: WriteSql = write_sql!("audit_events", "(key)");

fn write_sql(kind: Kind) -> &'static WriteSql {
    match sql::table(kind) {
        "audit_events" => &AUDIT_SQL,
        _ => &DOCUMENTS_SQL,
    }
}

fn run_write(conn: &Connection, w: &Write) -> DomainResult<()> {
    match w {
        Write::Insert(d) | Write::InsertIfAbsent(d) => {
            let sql = if matches!(w, Write::Insert(_)) {
                write_sql(d.kind).insert
            } else {
                write_sql(d.kind).insert_if_absent
            };
            let mut stmt = conn.prepare_cached(sql).map_err(|e| fault("insert", e))?;
            match stmt.execute(params![
                d.kind.as_str(),
                d.key,
                d.account,
                d.region,
                d.idx1,
                d.idx2,
                d.body
            ]) {
                Ok(_) => Ok(()),
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                    Err(DomainError::AlreadyExists {
                        resource: d.kind.resource(),
                        id: d.key.clone(),
                    })
                }
                Err(e) => Err(fault("insert", e)),
            }
        }
        Write::Update {
            doc: d,
            expected_version,
        } => {
            let mut stmt = conn
                .prepare_cached(write_sql(d.kind).update)
                .map_err(|e| fault("update", e))?;
            let n = stmt
                .execute(params![
                    d.account,
                    d.region,
                    d.idx1,
                    d.idx2,
                    d.body,
                    d.kind.as_str(),
                    d.key,
                    expected_version
                ])
                .map_err(|e| fault("update", e))?;
            if n == 1 {
                Ok(())
            } else {
                Err(DomainError::Stale)
            }
        }
        Write::Delete {
            kind,
            key,
            expected_version,
        } => {
            let mut stmt = conn
                .prepare_cached(write_sql(*kind).delete)
                .map_err(|e| fault("delete", e))?;
            let n = stmt
                .execute(params![kind.as_str(), key, expected_version])
                .map_err(|e| fault("delete", e))?;
            if n == 1 {
                Ok(())
            } else {
                Err(DomainError::Stale)
            }
        }
    }
}

/// Runs one job inside the group's transaction; `true` unless a claim found its key taken.
fn run_job(conn: &Connection, job: &Job, last_purge_ms: &mut i64) -> DomainResult<bool> {
    match job {
        Job::Apply(writes, _) => writes
            .iter()
            .try_for_each(|w| run_write(conn, w))
            .map(|()| true),
        Job::Reset(_) => {
            let kinds = sql::reset_kinds();
            let placeholders = vec!["?"; kinds.len()].join(", ");
            conn.execute(
                &format!("DELETE FROM documents WHERE kind IN ({placeholders})"),
                params_from_iter(kinds),
            )
            .map(|_| true)
            .map_err(|e| fault("reset", e))
        }
        Job::Claim {
            key,
            now_ms,
            expires_at_ms,
            ..
        } => {
            if *now_ms - *last_purge_ms >= NONCE_PURGE_EVERY_MS {
                conn.prepare_cached(PURGE_NONCES_SQL)
                    .and_then(|mut st| st.execute(params![now_ms]))
                    .map_err(|e| fault("purging nonces", e))?;
                *last_purge_ms = *now_ms;
            }
            let n = conn
                .prepare_cached(CLAIM_NONCE_SQL)
                .and_then(|mut st| st.execute(params![key, expires_at_ms, now_ms]))
                .map_err(|e| fault("claiming a nonce", e))?;
            Ok(n == 1)
        }
    }
}

fn answer(job: Job, result: DomainResult<bool>) {
    // The caller may have gone away (client disconnected); the write stands regardless.
    match job {
        Job::Apply(_, tx) | Job::Reset(tx) => {
            let _ = tx.send(result.map(|_| ()));
        }
        Job::Claim { answer, .. } => {
            let _ = answer.send(result);
        }
    }
}

/// Announces what a committed job changed (nothing for a job that was rolled back), and keeps
/// it for the hub.
fn publish(feed: &Feed, job: &Job, result: &DomainResult<bool>, report: &mut Vec<Change>) {
    if result.is_err() {
        return;
    }
    let changes = match job {
        Job::Apply(writes, _) => changes_of(writes),
        Job::Reset(_) => vec![Change::Missed],
        Job::Claim { .. } => Vec::new(),
    };
    for c in changes {
        feed.publish(c.clone());
        report.push(c);
    }
}

/// The writer thread: group commit with one SAVEPOINT per batch.
fn writer_loop(
    conn: Connection,
    jobs: mpsc::Receiver<Job>,
    feed: Arc<Feed>,
    mut reporter: feed_socket::Reporter,
) {
    let mut last_purge_ms = i64::MIN / 2;
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = fault("begin", e);
            tracing::warn!(error = %err, "sqlite: cannot start a write transaction");
            for job in group {
                answer(job, Err(err.clone()));
            }
            continue;
        }
        let mut results = Vec::with_capacity(group.len());
        for job in &group {
            let r = conn
                .execute_batch("SAVEPOINT batch")
                .map_err(|e| fault("savepoint", e))
                .and_then(|_| run_job(&conn, job, &mut last_purge_ms));
            let closed = if r.is_err() {
                conn.execute_batch("ROLLBACK TO batch; RELEASE batch")
            } else {
                conn.execute_batch("RELEASE batch")
            };
            results.push(match closed {
                Ok(()) => r,
                Err(e) => Err(fault("release", e)),
            });
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                let mut report = Vec::new();
                for (job, r) in group.iter().zip(&results) {
                    publish(&feed, job, r, &mut report);
                }
                // Another process is the hub (or none is): it hears of the change before
                // any caller here is answered.
                if !feed.is_complete() {
                    reporter.report(&report);
                }
                for (job, r) in group.into_iter().zip(results) {
                    answer(job, r);
                }
            }
            Err(e) => {
                let err = fault("commit", e);
                tracing::warn!(error = %err, "sqlite: commit failed; the group is rolled back");
                let _ = conn.execute_batch("ROLLBACK");
                for job in group {
                    answer(job, Err(err.clone()));
                }
            }
        }
    }
}

fn row_to_doc(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, StoredDoc)> {
    let kind: String = r.get(0)?;
    Ok((
        kind,
        StoredDoc {
            doc: Doc {
                kind: Kind::Certificate, // replaced by the caller from the kind text
                key: r.get(1)?,
                account: r.get(2)?,
                region: r.get(3)?,
                idx1: r.get(4)?,
                idx2: r.get(5)?,
                body: r.get(8)?,
            },
            version: r.get(6)?,
            seq: r.get(7)?,
        },
    ))
}

impl SqliteStore {
    /// Opens (creating if needed) `<dir>/certplane.db` and applies pending migrations.
    pub fn open(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("creating the data dir {}: {e}", dir.display()))?;
        let path = dir.join("certplane.db");
        let mut writer =
            Connection::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        configure(&writer).map_err(|e| format!("configuring {}: {e}", path.display()))?;
        migrate(&mut writer)?;
        let (tx, rx) = mpsc::channel();
        let feed = Arc::new(Feed::new());
        let writer_feed = feed.clone();
        let socket = feed_socket::socket_path(&path);
        let reporter = feed_socket::Reporter::new(socket.clone());
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(writer, rx, writer_feed, reporter))
            .map_err(|e| format!("starting the sqlite writer thread: {e}"))?;
        Ok(SqliteStore {
            path,
            readers: Mutex::new(Vec::new()),
            jobs: Mutex::new(tx),
            feed,
            socket,
            hub: std::sync::Once::new(),
        })
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> DomainResult<T> {
        let pooled = self.readers.lock().ok().and_then(|mut p| p.pop());
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| fault("opening a reader", e))?;
                c.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(|e| fault("configuring a reader", e))?;
                c
            }
        };
        let out = f(&conn).map_err(|e| fault("read", e));
        if let Ok(mut p) = self.readers.lock() {
            p.push(conn);
        }
        out
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<DomainResult<T>>) -> Job,
    ) -> DomainResult<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .lock()
            .map_err(|_| DomainError::internal("sqlite writer queue poisoned"))?
            .send(make(tx))
            .map_err(|_| DomainError::Unavailable("the sqlite writer has stopped".into()))?;
        rx.await
            .map_err(|_| DomainError::Unavailable("the sqlite writer has stopped".into()))?
    }
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::Text(s) => s.to_sql(),
            Arg::Int(i) => i.to_sql(),
        }
    }
}

fn fix_kind(kind_text: String, mut d: StoredDoc) -> rusqlite::Result<StoredDoc> {
    d.doc.kind = Kind::parse(&kind_text).ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(0, kind_text, rusqlite::types::Type::Text)
    })?;
    Ok(d)
}

#[async_trait]
impl Store for SqliteStore {
    fn changes(&self) -> broadcast::Receiver<Change> {
        // The first subscriber (the server; admin commands never subscribe) becomes the hub.
        self.hub.call_once(|| {
            let Some(path) = &self.socket else {
                tracing::warn!(
                    "sqlite: the data dir's path is too long for a feed socket; changes made \
                     by other processes (admin commands) are seen only by polling"
                );
                return;
            };
            if tokio::runtime::Handle::try_current().is_err() {
                return;
            }
            match feed_socket::serve(path, self.feed.clone()) {
                Ok(()) => self.feed.set_complete(true),
                Err(e) => tracing::warn!(
                    error = %e,
                    "sqlite: not the data dir's feed hub; changes of other processes are not \
                     announced here"
                ),
            }
        });
        self.feed.subscribe()
    }

    fn generation(&self, kind: Kind) -> Option<u64> {
        self.feed.generation(kind)
    }

    /// Every change to this data dir is counted here before its writer answers: this process's
    /// own at commit, other processes' before they return (see `feed_socket`).
    fn unchanged_since(&self, kind: Kind, key: &str, since: u64) -> Option<bool> {
        Some(self.feed.unchanged_since(kind, key, since))
    }

    fn counts_changes_before_answering(&self) -> bool {
        true
    }

    async fn get(&self, kind: Kind, key: &str) -> DomainResult<Option<StoredDoc>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM {} WHERE kind = ?1 AND key = ?2",
                sql::table(kind)
            ))?;
            stmt.query_row(params![kind.as_str(), key], row_to_doc)
                .optional()?
                .map(|(k, d)| fix_kind(k, d))
                .transpose()
        })
    }

    async fn query(
        &self,
        kind: Kind,
        filter: &Filter,
        page: PageQuery,
    ) -> DomainResult<Vec<StoredDoc>> {
        let (text, args) = sql::select(Placeholders::Question, COLUMNS, kind, filter, Some(page));
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&text)?;
            let rows = stmt.query_map(params_from_iter(args.iter()), row_to_doc)?;
            rows.map(|r| r.and_then(|(k, d)| fix_kind(k, d))).collect()
        })
    }

    async fn count(&self, kind: Kind, filter: &Filter) -> DomainResult<u64> {
        let (text, args) = sql::select(Placeholders::Question, "COUNT(*)", kind, filter, None);
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&text)?;
            let n: i64 = stmt.query_row(params_from_iter(args.iter()), |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    async fn count_by_field(&self, kind: Kind, field: &str) -> DomainResult<Vec<(String, u64)>> {
        certplane_core::store::valid_field_name(field)?;
        let path = format!("$.{field}");
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT json_extract(body, ?2), COUNT(*) FROM {} \
                 WHERE kind = ?1 AND json_extract(body, ?2) IS NOT NULL GROUP BY 1",
                sql::table(kind)
            ))?;
            let rows = stmt.query_map(params![kind.as_str(), path], |r| {
                let v: rusqlite::types::Value = r.get(0)?;
                let n: i64 = r.get(1)?;
                Ok((v, n))
            })?;
            let mut out = Vec::new();
            for row in rows {
                // Only string members are counted: a number or object there is no state name.
                if let (rusqlite::types::Value::Text(v), n) = row? {
                    out.push((v, u64::try_from(n).unwrap_or(0)));
                }
            }
            Ok(out)
        })
    }

    async fn apply(&self, writes: Vec<Write>) -> DomainResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        self.submit(|tx| Job::Apply(writes, tx)).await
    }

    async fn reset(&self) -> DomainResult<()> {
        self.submit(Job::Reset).await
    }

    async fn claim_once(&self, key: &str, now_ms: i64, expires_at_ms: i64) -> DomainResult<bool> {
        self.submit(|answer| Job::Claim {
            key: key.to_string(),
            now_ms,
            expires_at_ms,
            answer,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conformance;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        (dir, store)
    }

    #[tokio::test]
    async fn conformance_suite() {
        let (_d, s) = open();
        conformance::insert_get_and_duplicates(&s).await;
        conformance::get_many_reads_the_ones_that_exist(&s).await;
        conformance::compare_and_set(&s).await;
        conformance::batches_are_atomic(&s).await;
        conformance::queries_filter_and_page_in_creation_order(&s).await;
        conformance::counts_by_body_field(&s).await;
        conformance::reset_keeps_credentials(&s).await;
        conformance::audit_rows_behave_like_documents(&s).await;
        conformance::crl_counter_survives_reset(&s).await;
        conformance::change_feed(&s).await;
        conformance::generations_move_before_apply_returns(&s).await;
    }

    /// Another process on the data dir (an admin command) reports each commit to the hub (the
    /// server) and is answered only once the hub counted and announced it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_processes_report_to_the_hub() {
        let (d, hub) = open();
        let mut rx = hub.changes();
        let before = hub
            .generation(Kind::AccessKey)
            .expect("the first subscriber is the hub");
        // Stands for the admin command's process: its own store on the same files.
        let other = SqliteStore::open(d.path()).expect("open again");
        assert_eq!(other.generation(Kind::AccessKey), None);
        let _ = other.changes();
        assert_eq!(
            other.generation(Kind::AccessKey),
            None,
            "a second subscriber on the data dir is not a hub"
        );
        other
            .apply(vec![Write::Insert(conformance::watched(
                Kind::AccessKey,
                "AKIDREPORTED",
                "{}",
            ))])
            .await
            .expect("insert");
        assert_ne!(hub.generation(Kind::AccessKey), Some(before));
        assert_eq!(
            conformance::next_change(&mut rx).await,
            Change::Changed {
                kind: Kind::AccessKey,
                key: "AKIDREPORTED".into()
            }
        );
        // A second report on the kept connection.
        other
            .apply(vec![Write::Delete {
                kind: Kind::AccessKey,
                key: "AKIDREPORTED".into(),
                expected_version: 1,
            }])
            .await
            .expect("delete");
        assert_eq!(
            conformance::next_change(&mut rx).await,
            Change::Changed {
                kind: Kind::AccessKey,
                key: "AKIDREPORTED".into()
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_updates() {
        let (_d, s) = open();
        let s = Arc::new(s);
        conformance::racing_updates_have_one_winner(s.clone()).await;
        conformance::concurrent_changes_answer_alone(s.clone()).await;
        conformance::concurrent_point_reads_answer_each_their_own(s.clone()).await;
        conformance::single_use_keys(s).await;
    }

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = SqliteStore::open(dir.path()).expect("open");
            s.apply(vec![Write::Insert(Doc {
                kind: Kind::Policy,
                key: "durable".into(),
                account: "a".into(),
                region: "r".into(),
                idx1: None,
                idx2: None,
                body: "{}".into(),
            })])
            .await
            .expect("insert");
        }
        let s = SqliteStore::open(dir.path()).expect("reopen");
        assert!(s.get(Kind::Policy, "durable").await.expect("get").is_some());
    }

    /// A data dir from before migration 0003 keeps its audit trail: the rows move to their own
    /// table, in their order, and read back as before.
    #[tokio::test]
    async fn the_audit_trail_moves_to_its_own_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(SqliteStore::open(dir.path()).expect("open"));
        let conn = Connection::open(dir.path().join("certplane.db")).expect("conn");
        conn.execute_batch(
            "DROP TABLE audit_events;
             DELETE FROM schema_migrations WHERE version = 3;
             INSERT INTO documents (kind, key, account, region, idx1, idx2, version, body) VALUES
               ('audit_event', 'r2/0', '1', '', NULL, 'iot:A', 1, '{\"n\":2}'),
               ('thing', 't', '1', 'r', NULL, NULL, 1, '{}'),
               ('audit_event', 'r1/0', '1', '', NULL, 'iot:B', 1, '{\"n\":1}');",
        )
        .expect("an older schema");
        drop(conn);
        let s = SqliteStore::open(dir.path()).expect("migrated");
        let rows = s
            .query(Kind::AuditEvent, &Filter::default(), PageQuery::all())
            .await
            .expect("query");
        let keys: Vec<_> = rows.iter().map(|d| d.doc.key.as_str()).collect();
        assert_eq!(keys, ["r2/0", "r1/0"], "moved in their order");
        assert!(s.get(Kind::Thing, "t").await.expect("get").is_some());
        let conn = Connection::open(dir.path().join("certplane.db")).expect("conn");
        let left: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM documents WHERE kind = 'audit_event'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(left, 0);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(SqliteStore::open(dir.path()).expect("open"));
        let conn = Connection::open(dir.path().join("certplane.db")).expect("conn");
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', '')",
            [],
        )
        .expect("insert");
        drop(conn);
        let err = SqliteStore::open(dir.path()).err().expect("refused");
        assert!(err.contains("newer certplane"), "{err}");
    }
}
