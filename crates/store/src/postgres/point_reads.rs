//! Point reads (one document, or one document's version, by key) shared out: the reads waiting
//! when a reader is free go to the database together, one `key = ANY($2)` statement per kind,
//! all of them in one pipelined flight on one connection, as writes share one commit in
//! `group_commit`.
//!
//! Why: on a busy node most of PostgreSQL's work for a point read is the statement itself
//! (bind, snapshot, executor start and end, one message each way), not the index lookup, so
//! thirty reads in one statement cost the database little more than one. Each read still sees
//! every write acknowledged before it was asked for: a reader takes a read off the queue before
//! it sends the statement that answers it, so that statement's snapshot is taken after the
//! read began. With nothing else waiting a read goes out at once, alone.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::Pool;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot, Mutex};

use certplane_core::error::DomainResult;
use certplane_core::store::{Kind, StoredDoc};

use super::{bounded, fault, pg_fault, row_to_doc, Param};
use crate::sql::{self, COLUMNS};

/// Readers working at once, each with its own connection for the length of a flight.
const READERS: usize = 4;

/// At most this many reads share one flight.
const MAX_FLIGHT: usize = 256;

/// Reads waiting for a reader; a full queue makes callers wait (back-pressure).
const QUEUE: usize = 8192;

/// What a read wants of its document.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Want {
    Doc,
    /// `(version, seq)` only.
    Version,
}

/// What a read found.
#[derive(Clone)]
pub(super) enum Found {
    Doc(StoredDoc),
    Version(i64, i64),
}

struct Pending {
    kind: Kind,
    key: String,
    want: Want,
    answer: oneshot::Sender<DomainResult<Option<Found>>>,
}

/// The queue into the readers.
pub(super) struct PointReads {
    queue: mpsc::Sender<Pending>,
}

impl PointReads {
    /// Starts the readers on the current runtime.
    pub(super) fn start(pool: Pool) -> PointReads {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..READERS {
            tokio::spawn(reader(pool.clone(), rx.clone()));
        }
        PointReads { queue }
    }

    /// Reads `key` of `kind` in the next flight.
    pub(super) async fn read(
        &self,
        kind: Kind,
        key: &str,
        want: Want,
    ) -> DomainResult<Option<Found>> {
        let (answer, rx) = oneshot::channel();
        let pending = Pending {
            kind,
            key: key.to_string(),
            want,
            answer,
        };
        bounded("read", async {
            self.queue
                .send(pending)
                .await
                .map_err(|_| fault("read", "the readers stopped"))?;
            rx.await
                .map_err(|_| fault("read", "the reader stopped before answering"))?
        })
        .await
    }
}

async fn reader(pool: Pool, rx: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    // None: the store is gone.
    while let Some(flight) = super::next_flight(&rx, MAX_FLIGHT).await {
        answer_flight(&pool, flight).await;
    }
}

/// One statement's worth of a flight: the reads of one kind wanting the same thing.
struct Group {
    kind: Kind,
    want: Want,
    keys: Vec<String>,
}

async fn answer_flight(pool: &Pool, flight: Vec<Pending>) {
    // Reads of one key share its row (a hot document read by many at once).
    let mut groups: Vec<Group> = Vec::new();
    let mut slot: HashMap<(Kind, Want), usize> = HashMap::new();
    for p in &flight {
        let g = *slot.entry((p.kind, p.want)).or_insert_with(|| {
            groups.push(Group {
                kind: p.kind,
                want: p.want,
                keys: Vec::new(),
            });
            groups.len() - 1
        });
        if !groups[g].keys.contains(&p.key) {
            groups[g].keys.push(p.key.clone());
        }
    }
    match bounded("read", run(pool, &groups)).await {
        Ok(found) => {
            for p in flight {
                // Not found is no row; a key asked twice in one flight is answered twice.
                let r = found.get(&(p.kind, p.want, p.key)).cloned();
                let _ = p.answer.send(r.transpose());
            }
        }
        Err(e) => {
            for p in flight {
                // A caller that gave up no longer listens.
                let _ = p.answer.send(Err(e.clone()));
            }
        }
    }
}

type Answers = HashMap<(Kind, Want, String), DomainResult<Found>>;

/// Every group's statement on one connection, pipelined.
async fn run(pool: &Pool, groups: &[Group]) -> DomainResult<Answers> {
    let client = pool.get().await.map_err(|e| fault("connecting", e))?;
    let mut statements = Vec::with_capacity(groups.len());
    for g in groups {
        let text = statement_text(g.kind, g.want, g.keys.len());
        let s = client
            .prepare_cached(&text)
            .await
            .map_err(|e| pg_fault("prepare", e))?;
        statements.push(s);
    }
    let kinds: Vec<&str> = groups.iter().map(|g| g.kind.as_str()).collect();
    let params: Vec<[Param<'_>; 2]> = groups
        .iter()
        .zip(&kinds)
        .map(|(g, kind)| -> [Param<'_>; 2] {
            match g.keys.as_slice() {
                [key] => [kind, key],
                _ => [kind, &g.keys],
            }
        })
        .collect();
    let results = join_all(
        statements
            .iter()
            .zip(&params)
            .map(|(s, p)| client.query(s, p)),
    )
    .await;
    let mut answers = Answers::new();
    for (g, rows) in groups.iter().zip(results) {
        let rows = rows.map_err(|e| pg_fault("read", e))?;
        for r in &rows {
            let (key, found) = match g.want {
                Want::Doc => match row_to_doc(r) {
                    Ok(d) => (d.doc.key.clone(), Ok(Found::Doc(d))),
                    Err(e) => match r.try_get::<_, String>(1) {
                        Ok(key) => (key, Err(e)),
                        Err(_) => return Err(e),
                    },
                },
                Want::Version => {
                    let key: String = r.try_get(0).map_err(|e| fault("reading a key", e))?;
                    let version = r.try_get(1).map_err(|e| fault("reading a version", e))?;
                    let seq = r.try_get(2).map_err(|e| fault("reading a seq", e))?;
                    (key, Ok(Found::Version(version, seq)))
                }
            };
            answers.insert((g.kind, g.want, key), found);
        }
    }
    Ok(answers)
}

fn statement_text(kind: Kind, want: Want, keys: usize) -> String {
    let columns = match want {
        Want::Doc => COLUMNS,
        Want::Version => "key, version, seq",
    };
    let keyed = if keys == 1 {
        "key = $2"
    } else {
        "key = ANY($2)"
    };
    format!(
        "SELECT {columns} FROM {} WHERE kind = $1 AND {keyed}",
        sql::table(kind)
    )
}
