-- The audit log: one row per request (completions) and one per queried miner
-- (miner_responses). Written by the audit writer from the JetStream stream <PREFIX>_AUDIT;
-- inserts are idempotent on the primary keys, so a redelivered record never duplicates a row.

CREATE TABLE completions (
    request_id            uuid PRIMARY KEY,          -- UUID v7: time-ordered
    created_at            timestamptz NOT NULL,
    api_key_id            text NOT NULL,             -- an id (hash prefix), never the key
    endpoint              text NOT NULL,             -- chat | echo
    netuid                integer NOT NULL,
    k                     integer NOT NULL,
    timeout_s             double precision NOT NULL,
    strategy              text NOT NULL,             -- first | longest | shortest
    sampling_mode         text NOT NULL,             -- random | top_incentive
    exclude               jsonb NOT NULL DEFAULT '[]',
    roles                 jsonb NOT NULL DEFAULT '[]',
    messages              jsonb,                     -- NULL under content policy hash/none or after retention
    messages_sha256       text,
    selected_uid          integer,
    completion            text,                      -- NULL under content policy hash/none or after retention
    completion_sha256     text,
    status                text NOT NULL,             -- answered | broken | timeout | no_answer | no_candidates | cancelled | echo
    error                 text,
    time_to_first_chunk_ms double precision,
    total_ms              double precision NOT NULL,
    k_asked               integer NOT NULL           -- miners actually asked
);

CREATE INDEX completions_created_at ON completions (created_at);
CREATE INDEX completions_api_key_created_at ON completions (api_key_id, created_at);

CREATE TABLE miner_responses (
    request_id            uuid NOT NULL REFERENCES completions (request_id) ON DELETE CASCADE,
    uid                   integer NOT NULL,
    created_at            timestamptz NOT NULL,      -- the request's, for time-range queries per uid
    hotkey                text NOT NULL,
    outcome               text NOT NULL,             -- ok | empty | refused | error | timeout | connect_failure | cancelled
    status_code           integer,
    time_to_first_byte_ms double precision,
    total_ms              double precision,
    chunks                integer NOT NULL,
    bytes                 bigint NOT NULL,
    text                  text,                      -- capped; NULL under content policy hash/none or after retention
    text_sha256           text,
    clean_reason          text,
    selected              boolean NOT NULL,
    PRIMARY KEY (request_id, uid)
);

CREATE INDEX miner_responses_uid_created_at ON miner_responses (uid, created_at);
CREATE INDEX miner_responses_created_at ON miner_responses (created_at);

-- Per-miner health over the last hour: success and empty rates, time to first byte.
CREATE VIEW miner_stats_last_hour AS
SELECT uid,
       max(hotkey) AS hotkey,
       count(*) AS replies,
       avg((outcome = 'ok')::int)::double precision AS success_rate,
       avg((outcome = 'empty')::int)::double precision AS empty_rate,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY time_to_first_byte_ms) AS ttfb_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY time_to_first_byte_ms) AS ttfb_p95_ms
FROM miner_responses
WHERE created_at > now() - interval '1 hour'
GROUP BY uid;
