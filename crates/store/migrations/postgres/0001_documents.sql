-- Every entity is a document: unique (kind, key), a few indexed columns, a JSON body.
-- `seq` is the creation order list pages follow; `version` is the compare-and-set counter.
-- Plain SQL only (no advisory locks, no engine-only types) so PostgreSQL-wire distributed
-- databases can run it too.
CREATE TABLE documents (
    seq     BIGSERIAL PRIMARY KEY,
    kind    TEXT   NOT NULL,
    key     TEXT   NOT NULL,
    account TEXT   NOT NULL,
    region  TEXT   NOT NULL,
    idx1    TEXT,
    idx2    TEXT,
    version BIGINT NOT NULL,
    body    TEXT   NOT NULL,
    UNIQUE (kind, key)
);
CREATE INDEX documents_scope  ON documents (kind, account, region, seq);
CREATE INDEX documents_region ON documents (kind, region, seq);
CREATE INDEX documents_idx1   ON documents (kind, idx1, seq);
CREATE INDEX documents_idx2   ON documents (kind, idx2, seq);
