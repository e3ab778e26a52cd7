-- Metagraph snapshots written by `sn1-gateway metagraph-syncer` (issue #4): one row per sync in
-- `metagraph_snapshots`, one row per neuron in `neurons`, normalised the way the bittensor SDK
-- reports them (u16 / 65535, rao / 1e9; stake_tao is the SDK's `S`). Workers read the newest
-- snapshot of their netuid; people query `latest_neurons`.

CREATE TABLE metagraph_snapshots (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    netuid      INTEGER     NOT NULL CHECK (netuid BETWEEN 0 AND 65535),
    -- The finalized block the neurons were read at, and its hash (0x-hex).
    block       BIGINT      NOT NULL CHECK (block >= 0),
    block_hash  TEXT        NOT NULL,
    taken_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- One snapshot per block: a second syncer (or a restart) never stores the same block twice.
    CONSTRAINT metagraph_snapshots_netuid_block UNIQUE (netuid, block)
);

-- "The newest snapshot of a netuid" (highest id) and retention by age.
CREATE INDEX metagraph_snapshots_netuid_id ON metagraph_snapshots (netuid, id DESC);
CREATE INDEX metagraph_snapshots_taken_at ON metagraph_snapshots (taken_at);

CREATE TABLE neurons (
    -- Pruning a snapshot deletes its neurons.
    snapshot_id      BIGINT           NOT NULL REFERENCES metagraph_snapshots (id) ON DELETE CASCADE,
    uid              INTEGER          NOT NULL CHECK (uid BETWEEN 0 AND 65535),
    hotkey           TEXT             NOT NULL,  -- SS58
    coldkey          TEXT             NOT NULL,  -- SS58
    active           BOOLEAN          NOT NULL,
    axon_ip          TEXT             NOT NULL DEFAULT '0.0.0.0',  -- as the SDK prints it
    axon_port        INTEGER          NOT NULL CHECK (axon_port BETWEEN 0 AND 65535),
    axon_ip_type     SMALLINT         NOT NULL,
    axon_protocol    SMALLINT         NOT NULL,
    axon_version     BIGINT           NOT NULL,
    stake_tao        DOUBLE PRECISION NOT NULL,  -- the SDK's S (SubnetState.total_stake / 1e9)
    incentive        DOUBLE PRECISION NOT NULL,  -- I, u16 / 65535
    consensus        DOUBLE PRECISION NOT NULL,  -- C
    dividends        DOUBLE PRECISION NOT NULL,  -- D
    validator_trust  DOUBLE PRECISION NOT NULL,  -- Tv
    emission_tao     DOUBLE PRECISION NOT NULL,  -- E, rao / 1e9
    validator_permit BOOLEAN          NOT NULL,
    last_update      BIGINT           NOT NULL,  -- block of the last weight update
    PRIMARY KEY (snapshot_id, uid)
);

-- A hotkey's history across snapshots.
CREATE INDEX neurons_hotkey ON neurons (hotkey, snapshot_id);

-- The neurons of the newest snapshot of each netuid.
CREATE VIEW latest_neurons AS
SELECT s.netuid, s.block, s.taken_at, n.*
FROM (
    SELECT DISTINCT ON (netuid) id, netuid, block, taken_at
    FROM metagraph_snapshots
    ORDER BY netuid, id DESC
) AS s
JOIN neurons AS n ON n.snapshot_id = s.id;
