-- The audit trail in a table of its own. Its rows are only ever added, in time order, and read
-- a page at a time in that order (by account, or all of them); in the documents table each row
-- also took an entry in four indexes made for the other kinds, which cost a durable write about
-- as much as the change the row records. Same columns as documents, so both are read alike.
-- No AUTOINCREMENT (its counter row is one more write per row): rows are never deleted, so the
-- next rowid is always past every seq handed out.
CREATE TABLE audit_events (
    seq     INTEGER PRIMARY KEY,
    kind    TEXT   NOT NULL,
    key     TEXT   NOT NULL UNIQUE,
    account TEXT   NOT NULL,
    region  TEXT   NOT NULL,
    idx1    TEXT,
    idx2    TEXT,
    version INTEGER NOT NULL,
    body    TEXT   NOT NULL
);
CREATE INDEX audit_events_account ON audit_events (account, seq);
-- The trail so far moves over in its order.
INSERT INTO audit_events (kind, key, account, region, idx1, idx2, version, body)
    SELECT kind, key, account, region, idx1, idx2, version, body FROM documents
    WHERE kind = 'audit_event' ORDER BY seq;
DELETE FROM documents WHERE kind = 'audit_event';
