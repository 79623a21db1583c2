//! Storage engines for certplane. SQLite is the embedded default.

pub mod sqlite;

pub use sqlite::SqliteStore;

/// The numbered migrations, by engine; names are identical across engines.
pub(crate) const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "0001_documents",
    include_str!("../migrations/sqlite/0001_documents.sql"),
)];
