//! Storage engines for certplane: SQLite (the embedded default, one node) and PostgreSQL
//! (several nodes on one database), both behind core's `Store` trait.

#[cfg(test)]
mod audit_cost;
mod change_text;
#[cfg(test)]
mod conformance;
mod feed;
pub mod postgres;
mod sql;
pub mod sqlite;
#[cfg(test)]
mod test_db;

use std::path::Path;
use std::sync::Arc;

use certplane_core::store::Store;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The numbered migrations, by engine; names are identical across engines.
pub(crate) const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_documents",
        include_str!("../migrations/sqlite/0001_documents.sql"),
    ),
    (
        2,
        "0002_nonces",
        include_str!("../migrations/sqlite/0002_nonces.sql"),
    ),
    (
        3,
        "0003_audit_events",
        include_str!("../migrations/sqlite/0003_audit_events.sql"),
    ),
];
pub(crate) const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_documents",
        include_str!("../migrations/postgres/0001_documents.sql"),
    ),
    (
        2,
        "0002_nonces",
        include_str!("../migrations/postgres/0002_nonces.sql"),
    ),
    (
        3,
        "0003_audit_events",
        include_str!("../migrations/postgres/0003_audit_events.sql"),
    ),
];

/// How often (at most) a node deletes expired single-use keys.
pub(crate) const NONCE_PURGE_EVERY_MS: i64 = 60_000;

/// Both engines record a single-use key with this upsert: a new key is inserted, an expired
/// one is taken over, a live one is left alone (no row changes, so the claim is refused).
pub(crate) const CLAIM_NONCE_SQL: &str = "INSERT INTO nonces (key, expires_at) VALUES ($1, $2)
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
     WHERE nonces.expires_at <= $3";
pub(crate) const PURGE_NONCES_SQL: &str = "DELETE FROM nonces WHERE expires_at <= $1";

/// Opens the configured engine: PostgreSQL when a database URL is given, else SQLite in
/// `<data_dir>/certplane.db`. Pending migrations are applied either way.
pub async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Arc<dyn Store>, String> {
    match database_url {
        Some(url) if !url.is_empty() => Ok(Arc::new(PostgresStore::open(url).await?)),
        _ => Ok(Arc::new(SqliteStore::open(data_dir)?)),
    }
}
