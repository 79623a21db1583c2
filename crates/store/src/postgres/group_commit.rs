//! Group commit for the PostgreSQL engine: the changes waiting when a writer is free share one
//! transaction and one durable COMMIT, as the SQLite engine's writer thread does.
//!
//! Every write is one statement that checks its own compare-and-set: an insert that finds its
//! key taken, or an update or delete that finds another version, raises `division_by_zero`
//! (`HAVING 1 / COUNT(*) = 1` over the rows it touched). A raised error aborts the transaction,
//! so `BEGIN`, every statement of every change in the group and `COMMIT` go out in one
//! pipelined flight: if every statement succeeded, the COMMIT committed them all; if one failed,
//! the server turned that COMMIT into a ROLLBACK and nothing of the group happened. Then the
//! group is split around the change that failed — the ones before it are tried again as a
//! group, the failed one alone (its own answer from its own transaction), then the rest — so a
//! change is answered only from a transaction that committed or from its own failure, never
//! from another change's.
//!
//! Change notices ride inside the write's statement (`pg_notify` over the rows it touched), so
//! a notice is sent exactly when its write happened and is delivered only if it commits.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_postgres::error::SqlState;

use certplane_core::error::{DomainError, DomainResult};
use certplane_core::store::{changes_of, Write};

use crate::feed::Feed;

use super::{fault, pg_fault, OpenTransaction, Param};

/// At most this many changes share one transaction. Bounded so that one failed change costs a
/// bounded amount of retried work, and a group's locks are held briefly.
const MAX_GROUP: usize = 64;

/// Writers working at once, each on its own connection: while one waits for its COMMIT to
/// reach the disk, the next group is already executing (PostgreSQL then flushes both commits'
/// WAL together).
const WRITERS: usize = 2;

/// A flight's bound: longer than the statement timeout, see [`flight`].
const FLIGHT_TIMEOUT: Duration = Duration::from_secs(2 * super::DB_TIMEOUT.as_secs() + 2);

/// Changes waiting for a writer; a full queue makes callers wait (back-pressure).
const QUEUE: usize = 4096;

/// How long a caller waits for its answer: its group's flights are each bounded by the
/// statement timeout, and a split group runs a few flights one after another.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// One change waiting to be committed.
pub(super) struct Pending {
    writes: Vec<Write>,
    answer: oneshot::Sender<DomainResult<()>>,
}

/// The queue into the writers.
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts the writers on the current runtime.
    pub(super) fn start(pool: Pool, feed: Arc<Feed>) -> GroupCommit {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WRITERS {
            tokio::spawn(writer(pool.clone(), feed.clone(), rx.clone()));
        }
        GroupCommit { queue }
    }

    /// Commits `writes` (all or none) in the next group; answers once that is durable.
    pub(super) async fn apply(&self, writes: Vec<Write>) -> DomainResult<()> {
        let (answer, rx) = oneshot::channel();
        self.queue
            .send(Pending { writes, answer })
            .await
            .map_err(|_| fault("write", "the writers stopped"))?;
        match tokio::time::timeout(ANSWER_WITHIN, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(fault("write", "the writer stopped before answering")),
            Err(_) => Err(fault("write", "timed out waiting for the commit")),
        }
    }
}

async fn writer(pool: Pool, feed: Arc<Feed>, rx: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    // None: the store is gone.
    while let Some(group) = super::next_flight(&rx, MAX_GROUP).await {
        commit_group(&pool, &feed, group).await;
    }
}

/// What one flight (BEGIN, the statements, COMMIT) came to.
enum Flight {
    Committed,
    /// Nothing committed: the statement of change `index` (within the flight) failed first.
    Failed {
        index: usize,
        error: DomainError,
    },
    /// The connection failed or the flight timed out: the outcome is unknown.
    Lost(DomainError),
}

/// Commits a group, splitting it around failed changes until every change is answered.
async fn commit_group(pool: &Pool, feed: &Feed, group: Vec<Pending>) {
    let mut answers: Vec<Option<oneshot::Sender<DomainResult<()>>>> = Vec::new();
    let mut writes: Vec<Vec<Write>> = Vec::new();
    for c in group {
        answers.push(Some(c.answer));
        writes.push(c.writes);
    }
    let mut answer = |i: usize, r: DomainResult<()>| {
        if let Some(tx) = answers[i].take() {
            // A caller that gave up no longer listens; its change's fate is as answered.
            let _ = tx.send(r);
        }
    };
    // Ranges still to commit, the next on top.
    let mut todo = vec![(0, writes.len())];
    while let Some((from, to)) = todo.pop() {
        // Announced and counted on this node before the callers hear of it, so nothing cached
        // here serves what a caller just changed; other nodes learn of it by NOTIFY (its echo
        // here is not announced again).
        let notices: Vec<_> = writes[from..to]
            .iter()
            .flat_map(|w| changes_of(w))
            .collect();
        feed.expect_echoes(&notices);
        let outcome = flight(pool, &writes[from..to]).await;
        if let Flight::Committed = outcome {
            notices.into_iter().for_each(|c| feed.publish(c));
        } else {
            feed.forget_echoes(&notices);
        }
        match outcome {
            Flight::Committed => (from..to).for_each(|i| answer(i, Ok(()))),
            Flight::Failed { index, error } if to - from == 1 => {
                debug_assert_eq!(index, 0);
                answer(from, Err(error));
            }
            Flight::Failed { index, .. } => {
                let failed = from + index;
                if failed + 1 < to {
                    todo.push((failed + 1, to));
                }
                todo.push((failed, failed + 1));
                if failed > from {
                    todo.push((from, failed));
                }
            }
            Flight::Lost(error) => {
                // The connection is gone; what is left gets another one.
                (from..to).for_each(|i| answer(i, Err(error.clone())));
            }
        }
    }
}

/// Every change of `changes` in one transaction, in one round trip (after the statements are
/// prepared on the connection, which is once per connection).
async fn flight(pool: &Pool, changes: &[Vec<Write>]) -> Flight {
    let run = async {
        let client = pool.get().await.map_err(|e| fault("connecting", e))?;
        let mut statements = Vec::new();
        for (index, writes) in changes.iter().enumerate() {
            for w in writes {
                let s = statement(w);
                let prepared = client
                    .prepare_cached(s.text)
                    .await
                    .map_err(|e| pg_fault("prepare", e))?;
                statements.push((index, w, prepared, s));
            }
        }
        if let [(_, w, prepared, s)] = statements.as_slice() {
            // One statement is its own transaction.
            let r = client.execute(prepared, &s.params()).await;
            return Ok(match r {
                Ok(_) => Flight::Committed,
                Err(e) => failed(0, w, e),
            });
        }
        let params: Vec<Vec<Param<'_>>> = statements.iter().map(|(.., s)| s.params()).collect();
        // Until COMMIT has answered, dropping the flight (its timeout) closes the connection
        // instead of pooling it mid-transaction; the server then rolls back.
        let tx = OpenTransaction(Some(client));
        let c = tx.client()?;
        // tokio-postgres sends requests in the order their futures are first polled.
        let (begun, results, committed) = tokio::join!(
            c.batch_execute("BEGIN"),
            join_all(
                statements
                    .iter()
                    .zip(&params)
                    .map(|((_, _, prepared, _), p)| c.execute(prepared, p))
            ),
            c.batch_execute("COMMIT"),
        );
        begun.map_err(|e| pg_fault("begin", e))?;
        let first_failure = statements
            .iter()
            .zip(results)
            .find_map(|((index, w, ..), r)| r.err().map(|e| failed(*index, w, e)));
        if let Some(f) = first_failure {
            // The COMMIT was a ROLLBACK.
            committed.map_err(|e| pg_fault("rollback", e))?;
            tx.finish();
            return Ok(f);
        }
        let outcome = match committed {
            Ok(()) => Flight::Committed,
            Err(e) => match pg_fault("commit", e) {
                e @ DomainError::Unavailable(_) => Flight::Lost(e),
                // Refused at COMMIT (a serialisation failure, say): nothing committed; each
                // change is tried again on its own.
                error => Flight::Failed { index: 0, error },
            },
        };
        tx.finish();
        Ok(outcome)
    };
    // The server's own statement timeout (each statement at most DB_TIMEOUT) fires first and
    // aborts the transaction, so its pipelined COMMIT rolls back. This bound is for a server
    // that stopped answering altogether: then the COMMIT already sent may still commit, and
    // the outcome is unknown (answered Unavailable, like any lost connection).
    match tokio::time::timeout(FLIGHT_TIMEOUT, run).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => Flight::Lost(e),
        Err(_) => Flight::Lost(fault("write", "timed out")),
    }
}

/// The failure of change `index`'s statement `w`: its own check, or what the server said.
fn failed(index: usize, w: &Write, e: tokio_postgres::Error) -> Flight {
    let taken = e.code() == Some(&SqlState::UNIQUE_VIOLATION) && matches!(w, Write::Insert(_));
    let error = if e.code() == Some(&SqlState::DIVISION_BY_ZERO) || taken {
        mismatch(w)
    } else {
        match pg_fault("write", e) {
            e @ DomainError::Unavailable(_) => return Flight::Lost(e),
            e => e,
        }
    };
    Flight::Failed { index, error }
}

/// What a failed check means for each kind of write.
fn mismatch(w: &Write) -> DomainError {
    match w {
        Write::Insert(d) | Write::InsertIfAbsent(d) => DomainError::AlreadyExists {
            resource: d.kind.resource(),
            id: d.key.clone(),
        },
        Write::Update { .. } | Write::Delete { .. } => DomainError::Stale,
    }
}

/// The statement text of one write and what it binds.
struct Statement<'a> {
    text: &'static str,
    write: &'a Write,
    kind: &'static str,
    notice: Option<String>,
}

impl<'a> Statement<'a> {
    fn params(&'a self) -> Vec<Param<'a>> {
        let kind: Param<'a> = &self.kind;
        let mut p: Vec<Param<'a>> = match self.write {
            Write::Insert(d) | Write::InsertIfAbsent(d) => vec![
                kind, &d.key, &d.account, &d.region, &d.idx1, &d.idx2, &d.body,
            ],
            Write::Update {
                doc: d,
                expected_version,
            } => vec![
                &d.account,
                &d.region,
                &d.idx1,
                &d.idx2,
                &d.body,
                kind,
                &d.key,
                expected_version,
            ],
            Write::Delete {
                key,
                expected_version,
                ..
            } => vec![kind, key, expected_version],
        };
        if let Some(n) = &self.notice {
            p.push(n);
        }
        p
    }
}

macro_rules! insert {
    ($table:literal, $unique:literal) => {
        concat!(
            "INSERT INTO ",
            $table,
            " (kind, key, account, region, idx1, idx2, version, body)
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7) ON CONFLICT ",
            $unique,
            " DO NOTHING"
        )
    };
    () => {
        insert!("documents", "(kind, key)")
    };
}
macro_rules! update {
    ($table:literal) => {
        concat!(
            "UPDATE ",
            $table,
            " SET account = $1, region = $2, idx1 = $3, idx2 = $4,
         body = $5, version = version + 1 WHERE kind = $6 AND key = $7 AND version = $8"
        )
    };
    () => {
        update!("documents")
    };
}
macro_rules! delete {
    ($table:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            " WHERE kind = $1 AND key = $2 AND version = $3"
        )
    };
    () => {
        delete!("documents")
    };
}
/// Raises `division_by_zero` unless the write touched its one row.
macro_rules! checked {
    ($write:expr) => {
        concat!(
            "WITH w AS (",
            $write,
            " RETURNING 1) SELECT 1 FROM w HAVING 1 / COUNT(*) = 1"
        )
    };
    ($write:expr, $notice:literal) => {
        concat!(
            "WITH w AS (",
            $write,
            " RETURNING 1) SELECT pg_notify('certplane_changes', $",
            $notice,
            ") FROM w HAVING 1 / COUNT(*) = 1"
        )
    };
}

const INSERT: &str = checked!(insert!());
const INSERT_NOTIFY: &str = checked!(insert!(), "8");
const INSERT_IF_ABSENT: &str = insert!();
const INSERT_IF_ABSENT_NOTIFY: &str = concat!(
    "WITH w AS (",
    insert!(),
    " RETURNING 1) SELECT pg_notify('certplane_changes', $8) FROM w"
);
const UPDATE: &str = checked!(update!());
const UPDATE_NOTIFY: &str = checked!(update!(), "9");
const DELETE: &str = checked!(delete!());
const DELETE_NOTIFY: &str = checked!(delete!(), "4");
/// The audit trail's own table (migration 0003); its kind is never watched, so no notices.
/// A plain insert: a key already there raises `unique_violation`, which aborts the transaction
/// as the checks of the other statements do, and is answered the same ([`failed`]), without
/// their CTE around every row of the trail.
const AUDIT_INSERT: &str = "INSERT INTO audit_events (kind, key, account, region, idx1, idx2, \
     version, body) VALUES ($1, $2, $3, $4, $5, $6, 1, $7)";
const AUDIT_INSERT_IF_ABSENT: &str = insert!("audit_events", "(key)");
const AUDIT_UPDATE: &str = checked!(update!("audit_events"));
const AUDIT_DELETE: &str = checked!(delete!("audit_events"));

fn statement(w: &Write) -> Statement<'_> {
    let notice = changes_of(std::slice::from_ref(w))
        .first()
        .map(crate::change_text::payload);
    let notify = notice.is_some();
    let kind = match w {
        Write::Insert(d) | Write::InsertIfAbsent(d) | Write::Update { doc: d, .. } => d.kind,
        Write::Delete { kind, .. } => *kind,
    };
    if crate::sql::table(kind) == "audit_events" {
        debug_assert!(!notify, "the audit trail is not watched");
        let text = match w {
            Write::Insert(_) => AUDIT_INSERT,
            Write::InsertIfAbsent(_) => AUDIT_INSERT_IF_ABSENT,
            Write::Update { .. } => AUDIT_UPDATE,
            Write::Delete { .. } => AUDIT_DELETE,
        };
        return Statement {
            text,
            write: w,
            kind: kind.as_str(),
            notice: None,
        };
    }
    let (text, kind) = match w {
        Write::Insert(d) => (if notify { INSERT_NOTIFY } else { INSERT }, d.kind),
        Write::InsertIfAbsent(d) => (
            if notify {
                INSERT_IF_ABSENT_NOTIFY
            } else {
                INSERT_IF_ABSENT
            },
            d.kind,
        ),
        Write::Update { doc: d, .. } => (if notify { UPDATE_NOTIFY } else { UPDATE }, d.kind),
        Write::Delete { kind, .. } => (if notify { DELETE_NOTIFY } else { DELETE }, *kind),
    };
    Statement {
        text,
        write: w,
        kind: kind.as_str(),
        notice,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The notice parameter follows the write's own parameters in every text.
    #[test]
    fn notice_parameter_numbers_follow_the_write() {
        for (text, n) in [
            (INSERT_NOTIFY, 8),
            (INSERT_IF_ABSENT_NOTIFY, 8),
            (UPDATE_NOTIFY, 9),
            (DELETE_NOTIFY, 4),
        ] {
            assert!(text.contains(&format!("pg_notify('certplane_changes', ${n})")));
            assert!(!text.contains(&format!("${}", n + 1)), "{text}");
        }
    }
}
