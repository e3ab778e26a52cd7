-- Managed API keys in standalone mode: the tables of migrations/postgres/0005_api_keys.sql in
-- SQLite's types (timestamps as RFC 3339 text). Admission is done by
-- contracts/src/store/sqlite/keys.rs under one lock (one process owns this file).

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    key_sha256   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT,
    rpm          INTEGER CHECK (rpm > 0),
    max_streams  INTEGER CHECK (max_streams > 0),
    tokens       REAL NOT NULL DEFAULT 0,
    refilled_at  TEXT NOT NULL
);

CREATE TABLE api_key_leases (
    request_id   TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    expires_at   TEXT NOT NULL
);
CREATE INDEX api_key_leases_key_id ON api_key_leases (key_id, expires_at);

CREATE TABLE api_key_usage (
    key_id       TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    minute       TEXT NOT NULL,
    requests     INTEGER NOT NULL DEFAULT 0,
    streams      INTEGER NOT NULL DEFAULT 0,
    rejected     INTEGER NOT NULL DEFAULT 0,
    est_tokens   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, minute)
);
