-- Single-use keys (request signature nonces) with their expiry, shared by every node.
CREATE TABLE nonces (
    key        TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX nonces_expiry ON nonces (expires_at);
