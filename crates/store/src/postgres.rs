//! The PostgreSQL engine, for several certplane nodes sharing one database.
//!
//! Changes commit in groups (`group_commit`): the changes waiting when a writer is free share
//! one READ COMMITTED transaction and one durable COMMIT (`synchronous_commit` is left at its
//! default, on), each change still all-or-nothing and answered only once its commit returned.
//! Updates and deletes are compare-and-sets on `version` — PostgreSQL re-checks the `WHERE`
//! against a row another transaction just changed, so of two racing writers exactly one sees
//! its row.
//!
//! Every call is bounded in time: the pool waits at most 5 s for a connection, a connection
//! attempt at most 5 s, and each statement at most 5 s (`statement_timeout`), so with the
//! database down requests fail fast with `Unavailable`, and the pool reconnects by itself when
//! it is back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use certplane_core::error::{DomainError, DomainResult};
use certplane_core::store::{Change, Doc, Filter, Kind, PageQuery, Store, StoredDoc, Write};
use tokio::sync::broadcast;

use crate::sql::{self, Arg, Placeholders, COLUMNS};
use crate::{CLAIM_NONCE_SQL, NONCE_PURGE_EVERY_MS, POSTGRES_MIGRATIONS, PURGE_NONCES_SQL};

mod group_commit;
mod listen;
mod point_reads;

use point_reads::{Found, Want};

/// Upper bound on any single database interaction.
pub const DB_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PostgresStore {
    pool: Pool,
    /// When this node last deleted expired nonces (each node purges on its own; a purge is
    /// idempotent, so nodes need not agree).
    last_nonce_purge_ms: std::sync::atomic::AtomicI64,
    /// The change feed, fed by one LISTEN connection per node (started by the first
    /// subscriber, so admin commands never open it).
    feed: Arc<crate::feed::Feed>,
    listen_config: tokio_postgres::Config,
    listening: std::sync::Once,
    /// Where `apply` sends its changes: they commit in groups (see `group_commit`).
    writer: group_commit::GroupCommit,
    /// Where `get` and `version` send their reads: they go out in flights (see `point_reads`).
    point_reads: point_reads::PointReads,
}

fn fault(context: &str, e: impl std::fmt::Display) -> DomainError {
    tracing::warn!(error = %e, "postgres: {context}");
    DomainError::Unavailable(format!("the database is unavailable ({context})"))
}

fn pg_fault(context: &str, e: tokio_postgres::Error) -> DomainError {
    // Only connection-level trouble is "unavailable"; a statement the server rejects for
    // another reason is our bug and stays loud.
    match e.code() {
        // A distributed PostgreSQL-wire database (SERIALIZABLE) reports a lost race this way:
        // the service re-reads and re-decides, as for a failed compare-and-set.
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            DomainError::Stale
        }
        Some(c)
            if *c == SqlState::QUERY_CANCELED
                || c.code().starts_with("08")
                || c.code().starts_with("57") =>
        {
            fault(context, e)
        }
        Some(_) => DomainError::Internal(format!("postgres {context}: {e}")),
        // No SQL state: the connection is gone or the socket failed — or a client-side
        // encoding error, which is our bug.
        None if e.is_closed()
            || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) =>
        {
            fault(context, e)
        }
        None => DomainError::Internal(format!("postgres {context}: {e}")),
    }
}

async fn bounded<T>(
    context: &str,
    f: impl std::future::Future<Output = DomainResult<T>>,
) -> DomainResult<T> {
    match tokio::time::timeout(DB_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(fault(context, "timed out")),
    }
}

/// The next flight of a queue shared by several workers: the first item to arrive and, up to
/// `max`, whatever else is waiting then (never waiting for more); `None` once the queue closed.
async fn next_flight<T>(
    rx: &tokio::sync::Mutex<tokio::sync::mpsc::Receiver<T>>,
    max: usize,
) -> Option<Vec<T>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut flight = vec![first];
    while flight.len() < max {
        match rx.try_recv() {
            Ok(item) => flight.push(item),
            Err(_) => break,
        }
    }
    Some(flight)
}

fn row_to_doc(r: &tokio_postgres::Row) -> DomainResult<StoredDoc> {
    let kind: String = r.try_get(0).map_err(DomainError::internal)?;
    let get = |i: usize| -> DomainResult<String> { r.try_get(i).map_err(DomainError::internal) };
    let opt =
        |i: usize| -> DomainResult<Option<String>> { r.try_get(i).map_err(DomainError::internal) };
    Ok(StoredDoc {
        doc: Doc {
            kind: Kind::parse(&kind)
                .ok_or_else(|| DomainError::internal(format!("unknown document kind {kind}")))?,
            key: get(1)?,
            account: get(2)?,
            region: get(3)?,
            idx1: opt(4)?,
            idx2: opt(5)?,
            body: get(8)?,
        },
        version: r.try_get(6).map_err(DomainError::internal)?,
        seq: r.try_get(7).map_err(DomainError::internal)?,
    })
}

impl PostgresStore {
    /// Connects (lazily, through the pool) and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, String> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("the database URL is not valid: {e}"))?;
        config.connect_timeout(DB_TIMEOUT);
        config.options(format!("-c statement_timeout={}", DB_TIMEOUT.as_millis()));
        if config.get_application_name().is_none() {
            config.application_name("certplane");
        }
        let listen_config = {
            let mut c = config.clone();
            c.application_name("certplane-listen");
            c
        };
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .wait_timeout(Some(DB_TIMEOUT))
            .create_timeout(Some(DB_TIMEOUT))
            .recycle_timeout(Some(DB_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("building the connection pool: {e}"))?;
        let feed = Arc::new(crate::feed::Feed::new());
        let store = PostgresStore {
            pool: pool.clone(),
            last_nonce_purge_ms: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
            feed: feed.clone(),
            listen_config,
            listening: std::sync::Once::new(),
            writer: group_commit::GroupCommit::start(pool.clone(), feed),
            point_reads: point_reads::PointReads::start(pool.clone()),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> DomainResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| fault("connecting", e))
    }

    /// Applies the numbered migrations not yet applied. Nodes starting together serialise on
    /// the `schema_migrations` primary key: the second waits, then finds the row and skips.
    async fn migrate(&self) -> Result<(), String> {
        let mut client = self.client().await.map_err(|e| e.to_string())?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
            )
            .await
            .or_else(|e| {
                // Two nodes creating the table at once: one of them sees a duplicate.
                if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                    Ok(())
                } else {
                    Err(format!("creating schema_migrations: {e}"))
                }
            })?;
        let current: i64 = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| format!("reading the schema version: {e}"))?;
        let known = POSTGRES_MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current > known {
            return Err(format!(
                "the database schema is at version {current} but this certplane knows only up \
                 to {known}; use a newer certplane binary"
            ));
        }
        for (version, name, text) in POSTGRES_MIGRATIONS.iter().filter(|m| m.0 > current) {
            let tx = client
                .transaction()
                .await
                .map_err(|e| format!("migration {name}: {e}"))?;
            let claimed = tx
                .execute(
                    "INSERT INTO schema_migrations (version, name, applied_at)
                     VALUES ($1, $2, CAST(now() AS TEXT)) ON CONFLICT (version) DO NOTHING",
                    &[version, name],
                )
                .await
                .map_err(|e| format!("migration {name}: {e}"))?;
            if claimed == 0 {
                // Another node applied it meanwhile.
                continue;
            }
            tx.batch_execute(text)
                .await
                .map_err(|e| format!("migration {name}: {e}"))?;
            tx.commit()
                .await
                .map_err(|e| format!("migration {name}: {e}"))?;
        }
        Ok(())
    }

    async fn read(&self, text: String, args: Vec<Arg>) -> DomainResult<Vec<tokio_postgres::Row>> {
        bounded("read", async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(&text)
                .await
                .map_err(|e| pg_fault("prepare", e))?;
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
                .iter()
                .map(|a| match a {
                    Arg::Text(s) => s as &(dyn tokio_postgres::types::ToSql + Sync),
                    Arg::Int(i) => i as &(dyn tokio_postgres::types::ToSql + Sync),
                })
                .collect();
            client
                .query(&stmt, &params)
                .await
                .map_err(|e| pg_fault("read", e))
        })
        .await
    }
}

type Param<'a> = &'a (dyn ToSql + Sync);

/// A pooled connection inside a transaction opened by a pipelined `BEGIN`. Until `finish`
/// (COMMIT or ROLLBACK answered), dropping it — a timeout, a cancelled request — takes the
/// connection out of the pool and closes it: no pooled connection is ever left inside a
/// half-done transaction, and the server rolls back when the socket closes.
struct OpenTransaction(Option<deadpool_postgres::Object>);

impl OpenTransaction {
    fn client(&self) -> DomainResult<&deadpool_postgres::Object> {
        self.0
            .as_ref()
            .ok_or_else(|| DomainError::internal("transaction already finished"))
    }

    fn finish(mut self) {
        // Back to the pool in a clean state.
        drop(self.0.take());
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn generation(&self, kind: Kind) -> Option<u64> {
        self.feed.generation(kind)
    }

    /// Only a change already heard is known here; whether another node changed the document a
    /// moment ago only the database can tell.
    fn unchanged_since(&self, kind: Kind, key: &str, since: u64) -> Option<bool> {
        if self.feed.unchanged_since(kind, key, since) {
            None
        } else {
            Some(false)
        }
    }

    async fn version(&self, kind: Kind, key: &str) -> DomainResult<Option<(i64, i64)>> {
        match self.point_reads.read(kind, key, Want::Version).await? {
            Some(Found::Version(version, seq)) => Ok(Some((version, seq))),
            Some(Found::Doc(_)) => Err(DomainError::internal("a version read answered a document")),
            None => Ok(None),
        }
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        let rx = self.feed.subscribe();
        self.listening
            .call_once(|| match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(listen::run(self.listen_config.clone(), self.feed.clone()));
                }
                Err(_) => {
                    tracing::warn!("postgres: no async runtime; the change feed stays silent")
                }
            });
        rx
    }

    async fn get(&self, kind: Kind, key: &str) -> DomainResult<Option<StoredDoc>> {
        match self.point_reads.read(kind, key, Want::Doc).await? {
            Some(Found::Doc(d)) => Ok(Some(d)),
            Some(Found::Version(..)) => {
                Err(DomainError::internal("a document read answered a version"))
            }
            None => Ok(None),
        }
    }

    async fn get_many(&self, kind: Kind, keys: &[String]) -> DomainResult<Vec<StoredDoc>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = bounded("read", async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM {} WHERE kind = $1 AND key = ANY($2)",
                    sql::table(kind)
                ))
                .await
                .map_err(|e| pg_fault("prepare", e))?;
            client
                .query(&stmt, &[&kind.as_str(), &keys])
                .await
                .map_err(|e| pg_fault("read", e))
        })
        .await?;
        rows.iter().map(row_to_doc).collect()
    }

    async fn query(
        &self,
        kind: Kind,
        filter: &Filter,
        page: PageQuery,
    ) -> DomainResult<Vec<StoredDoc>> {
        let (text, args) = sql::select(Placeholders::Dollar, COLUMNS, kind, filter, Some(page));
        self.read(text, args)
            .await?
            .iter()
            .map(row_to_doc)
            .collect()
    }

    async fn count(&self, kind: Kind, filter: &Filter) -> DomainResult<u64> {
        let (text, args) = sql::select(Placeholders::Dollar, "COUNT(*)", kind, filter, None);
        let rows = self.read(text, args).await?;
        let n: i64 = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(DomainError::internal)?
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn count_by_field(&self, kind: Kind, field: &str) -> DomainResult<Vec<(String, u64)>> {
        certplane_core::store::valid_field_name(field)?;
        // The body column is TEXT (plain SQL, see migration 0001), so it is cast per row.
        let rows = self
            .read(
                format!(
                    "SELECT v, COUNT(*) FROM (SELECT (body::jsonb) ->> $2::text AS v FROM {} \
                     WHERE kind = $1 AND jsonb_typeof((body::jsonb) -> $2::text) = 'string') \
                     AS s GROUP BY v",
                    sql::table(kind)
                ),
                vec![
                    Arg::Text(kind.as_str().to_string()),
                    Arg::Text(field.to_string()),
                ],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let v: String = r.try_get(0).map_err(DomainError::internal)?;
                let n: i64 = r.try_get(1).map_err(DomainError::internal)?;
                Ok((v, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    async fn apply(&self, writes: Vec<Write>) -> DomainResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        self.writer.apply(writes).await
    }

    async fn claim_once(&self, key: &str, now_ms: i64, expires_at_ms: i64) -> DomainResult<bool> {
        use std::sync::atomic::Ordering;
        bounded("claim", async {
            let client = self.client().await?;
            let last = self.last_nonce_purge_ms.load(Ordering::Relaxed);
            if now_ms - last >= NONCE_PURGE_EVERY_MS
                && self
                    .last_nonce_purge_ms
                    .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                let stmt = client
                    .prepare_cached(PURGE_NONCES_SQL)
                    .await
                    .map_err(|e| pg_fault("prepare", e))?;
                client
                    .execute(&stmt, &[&now_ms])
                    .await
                    .map_err(|e| pg_fault("purging nonces", e))?;
            }
            let stmt = client
                .prepare_cached(CLAIM_NONCE_SQL)
                .await
                .map_err(|e| pg_fault("prepare", e))?;
            // One statement, its own durable transaction. Two nodes claiming the same key
            // race on its primary key: the loser's upsert sees the winner's live row and
            // changes nothing.
            let n = client
                .execute(&stmt, &[&key, &expires_at_ms, &now_ms])
                .await
                .map_err(|e| pg_fault("claiming a nonce", e))?;
            Ok(n == 1)
        })
        .await
    }

    async fn reset(&self) -> DomainResult<()> {
        bounded("reset", async {
            let client = self.client().await?;
            let kinds: Vec<String> = sql::reset_kinds().into_iter().map(str::to_string).collect();
            // Every node drops what it cached: one "missed" notice in the same transaction.
            let tx = OpenTransaction(Some(client));
            let c = tx.client()?;
            let missed = crate::change_text::payload(&Change::Missed);
            let kinds_param: [Param<'_>; 1] = [&kinds];
            let missed_param: [Param<'_>; 1] = [&missed];
            let (begun, deleted, notified, committed) = tokio::join!(
                c.batch_execute("BEGIN"),
                c.execute("DELETE FROM documents WHERE kind = ANY($1)", &kinds_param),
                c.execute(listen::NOTIFY_SQL, &missed_param),
                c.batch_execute("COMMIT"),
            );
            begun.map_err(|e| pg_fault("reset", e))?;
            deleted.map_err(|e| pg_fault("reset", e))?;
            notified.map_err(|e| pg_fault("reset", e))?;
            committed.map_err(|e| pg_fault("reset", e))?;
            tx.finish();
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conformance;
    use crate::test_db::TestDb;

    /// A change whose caller gave up while a row lock held it is still all-or-nothing; one
    /// held past the statement timeout answers Unavailable and leaves nothing; neither leaves a
    /// pooled connection inside an open transaction.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_batch_leaves_no_open_transaction() {
        let Some(db) = TestDb::create().await else {
            return;
        };
        {
            let s = PostgresStore::open(&db.url).await.expect("open");
            let thing = |key: &str, body: &str| conformance::doc(key, "1", None, body);
            s.apply(vec![Write::Insert(thing("locked", "0"))])
                .await
                .expect("insert");
            // Another session holds the row lock the batch's second write needs.
            let (locker, conn) = tokio_postgres::connect(&db.url, NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            let lock = "BEGIN; UPDATE documents SET body = body WHERE key = 'locked'";
            locker.batch_execute(lock).await.expect("lock");
            let batch = s.apply(vec![
                Write::Insert(thing("abandoned", "{}")),
                Write::Update {
                    doc: thing("locked", "1"),
                    expected_version: 1,
                },
            ]);
            let r = tokio::time::timeout(Duration::from_millis(300), batch).await;
            assert!(r.is_err(), "the batch should still be waiting: {r:?}");
            locker.batch_execute("ROLLBACK").await.expect("unlock");

            // Nothing of ours sits idle in a transaction, and the abandoned change happened
            // whole or not at all.
            let mut idle_in_tx = 1;
            for _ in 0..50 {
                idle_in_tx = locker
                    .query_one(
                        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()
                         AND application_name = 'certplane' AND state LIKE 'idle in transaction%'",
                        &[],
                    )
                    .await
                    .expect("activity")
                    .get::<_, i64>(0);
                if idle_in_tx == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(idle_in_tx, 0);
            let abandoned = s.get(Kind::Thing, "abandoned").await.expect("get");
            let locked = s
                .get(Kind::Thing, "locked")
                .await
                .expect("get")
                .expect("present");
            assert_eq!(abandoned.is_some(), locked.version == 2, "{locked:?}");

            // Held past the statement timeout: Unavailable, and nothing of it kept.
            locker.batch_execute(lock).await.expect("lock again");
            let r = s
                .apply(vec![
                    Write::Insert(thing("timed-out", "{}")),
                    Write::Update {
                        doc: thing("locked", "2"),
                        expected_version: locked.version,
                    },
                ])
                .await;
            assert!(matches!(r, Err(DomainError::Unavailable(_))), "{r:?}");
            locker.batch_execute("ROLLBACK").await.expect("unlock");
            assert!(s
                .get(Kind::Thing, "timed-out")
                .await
                .expect("get")
                .is_none());
            // And the store goes on committing through its pool.
            for i in 0..20 {
                s.apply(vec![Write::Insert(thing(&format!("after-{i}"), "{}"))])
                    .await
                    .expect("insert after");
            }
            let row = locker
                .query_one(
                    "SELECT COUNT(*) FROM documents WHERE key LIKE 'after-%'",
                    &[],
                )
                .await
                .expect("count");
            assert_eq!(row.get::<_, i64>(0), 20);
        }
        db.drop_db().await;
    }

    /// The LISTEN connection killed by the server: the feed says `Missed`, reconnects, and
    /// goes on delivering changes.
    async fn listener_reconnects(s: &PostgresStore, url: &str) {
        let mut rx = s.changes();
        let (admin, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
        tokio::spawn(conn);
        let killed = admin
            .query_one(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = 'certplane-listen' AND datname = current_database()",
                &[],
            )
            .await
            .expect("terminate")
            .get::<_, i64>(0);
        assert_eq!(killed, 1, "one LISTEN connection per store");
        let next = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event after the kill")
            .expect("feed open");
        assert_eq!(next, Change::Missed);
        // Changes made after the reconnect arrive again.
        conformance::expect_change_after_insert(s, &mut rx, "after-reconnect").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite_on_postgres() {
        let Some(db) = TestDb::create().await else {
            return;
        };
        {
            let s = PostgresStore::open(&db.url).await.expect("open");
            conformance::insert_get_and_duplicates(&s).await;
            conformance::get_many_reads_the_ones_that_exist(&s).await;
            conformance::compare_and_set(&s).await;
            conformance::batches_are_atomic(&s).await;
            conformance::queries_filter_and_page_in_creation_order(&s).await;
            conformance::counts_by_body_field(&s).await;
            conformance::reset_keeps_credentials(&s).await;
            conformance::audit_rows_behave_like_documents(&s).await;
            conformance::crl_counter_survives_reset(&s).await;
            // The feed is live once LISTEN has taken effect, which it announces.
            let mut first = s.changes();
            let ready = tokio::time::timeout(Duration::from_secs(10), first.recv()).await;
            assert!(matches!(ready, Ok(Ok(Change::Missed))), "{ready:?}");
            conformance::change_feed(&s).await;
            conformance::generations_move_before_apply_returns(&s).await;
            let s = Arc::new(s);
            conformance::concurrent_changes_answer_alone(s.clone()).await;
            conformance::concurrent_point_reads_answer_each_their_own(s.clone()).await;
            listener_reconnects(&s, &db.url).await;
            conformance::racing_updates_have_one_winner(s.clone()).await;
            conformance::single_use_keys(s).await;
            // A second node on the same database sees the first node's writes at once, and
            // opening it again does not re-run migrations.
            let other = PostgresStore::open(&db.url).await.expect("second open");
            assert!(other
                .get(Kind::AccessKey, "k")
                .await
                .expect("get")
                .is_some());
            // A schema newer than this binary is refused with a clear message.
            let (client, conn) = tokio_postgres::connect(&db.url, NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            client
                .execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', '')",
                    &[],
                )
                .await
                .expect("insert");
            let err = PostgresStore::open(&db.url).await.err().expect("refused");
            assert!(err.contains("newer certplane"), "{err}");
        }
        db.drop_db().await;
    }
}
