//! Storage engines for certplane: SQLite (the embedded default, one node) and PostgreSQL
//! (several nodes on one database), both behind core's `Store` trait.

#[cfg(test)]
mod conformance;
pub mod postgres;
mod sql;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use certplane_core::store::Store;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The numbered migrations, by engine; names are identical across engines.
pub(crate) const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "0001_documents",
    include_str!("../migrations/sqlite/0001_documents.sql"),
)];
pub(crate) const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "0001_documents",
    include_str!("../migrations/postgres/0001_documents.sql"),
)];

/// Opens the configured engine: PostgreSQL when a database URL is given, else SQLite in
/// `<data_dir>/certplane.db`. Pending migrations are applied either way.
pub async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Arc<dyn Store>, String> {
    match database_url {
        Some(url) if !url.is_empty() => Ok(Arc::new(PostgresStore::open(url).await?)),
        _ => Ok(Arc::new(SqliteStore::open(data_dir)?)),
    }
}
