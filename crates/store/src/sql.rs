//! SQL text shared by the engines: the same statements, only the placeholder style differs
//! (`?` for SQLite, `$n` for PostgreSQL).

use certplane_core::store::{Filter, Kind, PageQuery};

#[derive(Clone, Copy)]
pub(crate) enum Placeholders {
    Question,
    Dollar,
}

impl Placeholders {
    fn nth(self, n: usize) -> String {
        match self {
            Placeholders::Question => "?".into(),
            Placeholders::Dollar => format!("${n}"),
        }
    }
}

/// A bound argument: the filters are text, the page cursor is a number.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// The table a kind's rows live in: the audit trail has its own (only added to, in time order;
/// see migration 0003), every other kind shares `documents`.
pub(crate) fn table(kind: Kind) -> &'static str {
    match kind {
        Kind::AuditEvent => "audit_events",
        _ => "documents",
    }
}

pub(crate) const COLUMNS: &str = "kind, key, account, region, idx1, idx2, version, seq, body";

/// `WHERE` text and its arguments for a filter (and optionally a page) over one kind.
pub(crate) fn select(
    style: Placeholders,
    what: &str,
    kind: Kind,
    f: &Filter,
    page: Option<PageQuery>,
) -> (String, Vec<Arg>) {
    let mut args = vec![Arg::Text(kind.as_str().to_string())];
    let mut sql = format!(
        "SELECT {what} FROM {} WHERE kind = {}",
        table(kind),
        style.nth(1)
    );
    let mut push = |sql: &mut String, clause: &str, v: Arg| {
        args.push(v);
        sql.push_str(&clause.replace('#', &style.nth(args.len())));
    };
    if let Some(v) = &f.account {
        push(&mut sql, " AND account = #", Arg::Text(v.clone()));
    }
    if let Some(v) = &f.region {
        push(&mut sql, " AND region = #", Arg::Text(v.clone()));
    }
    if let Some(v) = &f.idx1 {
        push(&mut sql, " AND idx1 = #", Arg::Text(v.clone()));
    }
    if let Some(v) = &f.idx2 {
        push(&mut sql, " AND idx2 = #", Arg::Text(v.clone()));
    }
    if let Some(v) = &f.account_or_idx2 {
        push(&mut sql, " AND (account = #", Arg::Text(v.clone()));
        push(&mut sql, " OR idx2 = #)", Arg::Text(v.clone()));
    }
    if f.has_idx2 {
        sql.push_str(" AND idx2 IS NOT NULL");
    }
    if let Some(page) = page {
        if let Some(after) = page.after_seq {
            let clause = if page.ascending {
                " AND seq > #"
            } else {
                " AND seq < #"
            };
            push(&mut sql, clause, Arg::Int(after));
        }
        let order = if page.ascending { "ASC" } else { "DESC" };
        let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
        sql.push_str(&format!(" ORDER BY seq {order} LIMIT {limit}"));
    }
    (sql, args)
}

/// The kinds `reset` deletes.
pub(crate) fn reset_kinds() -> Vec<&'static str> {
    Kind::ALL
        .iter()
        .filter(|k| !k.survives_reset())
        .map(|k| k.as_str())
        .collect()
}
