-- Standalone mode's audit log: the same tables and columns as migrations/postgres/0003_audit.sql,
-- in SQLite's types (uuid, timestamptz and jsonb as text; booleans as integers).

CREATE TABLE completions (
    request_id            TEXT PRIMARY KEY,
    created_at            TEXT NOT NULL,
    api_key_id            TEXT NOT NULL,
    endpoint              TEXT NOT NULL,
    netuid                INTEGER NOT NULL,
    k                     INTEGER NOT NULL,
    timeout_s             REAL NOT NULL,
    strategy              TEXT NOT NULL,
    sampling_mode         TEXT NOT NULL,
    exclude               TEXT NOT NULL DEFAULT '[]',
    roles                 TEXT NOT NULL DEFAULT '[]',
    messages              TEXT,
    messages_sha256       TEXT,
    selected_uid          INTEGER,
    completion            TEXT,
    completion_sha256     TEXT,
    status                TEXT NOT NULL,
    error                 TEXT,
    time_to_first_chunk_ms REAL,
    total_ms              REAL NOT NULL,
    k_asked               INTEGER NOT NULL
);

CREATE INDEX completions_created_at ON completions (created_at);
CREATE INDEX completions_api_key_created_at ON completions (api_key_id, created_at);

CREATE TABLE miner_responses (
    request_id            TEXT NOT NULL REFERENCES completions (request_id) ON DELETE CASCADE,
    uid                   INTEGER NOT NULL,
    created_at            TEXT NOT NULL,
    hotkey                TEXT NOT NULL,
    outcome               TEXT NOT NULL,
    status_code           INTEGER,
    time_to_first_byte_ms REAL,
    total_ms              REAL,
    chunks                INTEGER NOT NULL,
    bytes                 INTEGER NOT NULL,
    text                  TEXT,
    text_sha256           TEXT,
    clean_reason          TEXT,
    selected              INTEGER NOT NULL,
    PRIMARY KEY (request_id, uid)
);

CREATE INDEX miner_responses_uid_created_at ON miner_responses (uid, created_at);
CREATE INDEX miner_responses_created_at ON miner_responses (created_at);
