-- Standalone mode's metagraph snapshots: the same tables and columns as
-- migrations/postgres/0002_metagraph.sql, in SQLite's types.

CREATE TABLE metagraph_snapshots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    netuid      INTEGER NOT NULL,
    block       INTEGER NOT NULL,
    block_hash  TEXT    NOT NULL,
    taken_at    TEXT    NOT NULL,
    UNIQUE (netuid, block)
);

CREATE INDEX metagraph_snapshots_taken_at ON metagraph_snapshots (taken_at);

CREATE TABLE neurons (
    snapshot_id      INTEGER NOT NULL REFERENCES metagraph_snapshots (id) ON DELETE CASCADE,
    uid              INTEGER NOT NULL,
    hotkey           TEXT    NOT NULL,
    coldkey          TEXT    NOT NULL,
    active           INTEGER NOT NULL,
    axon_ip          TEXT    NOT NULL DEFAULT '0.0.0.0',
    axon_port        INTEGER NOT NULL,
    axon_ip_type     INTEGER NOT NULL,
    axon_protocol    INTEGER NOT NULL,
    axon_version     INTEGER NOT NULL,
    stake_tao        REAL    NOT NULL,
    incentive        REAL    NOT NULL,
    consensus        REAL    NOT NULL,
    dividends        REAL    NOT NULL,
    validator_trust  REAL    NOT NULL,
    emission_tao     REAL    NOT NULL,
    validator_permit INTEGER NOT NULL,
    last_update      INTEGER NOT NULL,
    PRIMARY KEY (snapshot_id, uid)
);

CREATE INDEX neurons_hotkey ON neurons (hotkey, snapshot_id);

CREATE VIEW latest_neurons AS
SELECT s.netuid, s.block, s.taken_at, n.*
FROM metagraph_snapshots AS s
JOIN neurons AS n ON n.snapshot_id = s.id
WHERE s.id = (SELECT max(id) FROM metagraph_snapshots AS t WHERE t.netuid = s.netuid);
