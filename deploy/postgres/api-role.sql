-- The api's own Postgres role, sn1_api: what an api pod needs and nothing more. Run it as the
-- database's owner after `sn1-gateway migrate`, and again after each upgrade's migrations
-- (grants name the tables and columns that exist when it runs; it is safe to run again):
--
--   psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/postgres/api-role.sql
--   psql "$OWNER_DATABASE_URL" -c "ALTER ROLE sn1_api PASSWORD '…'"
--
-- then give the api DATABASE_URL=postgres://sn1_api:…@host/db. The workers, the audit writer,
-- the syncer and `migrate` keep the owner's role.
--
-- With it, a compromised api pod can make, change and revoke managed keys and read what the
-- status page shows (public chain data and the miners' timings), but cannot read a prompt, an
-- answer, a miner's text or which key asked what, nor write to the audit log or the metagraph.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sn1_api') THEN
        CREATE ROLE sn1_api LOGIN;
    END IF;
END
$$;

-- `Store::check_migrations`: is the schema the one this build expects?
GRANT SELECT ON _sqlx_migrations TO sn1_api;

-- Managed keys: admission (sn1_admit_key runs with the caller's rights), leases, usage, and
-- /admin/keys.
GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys, api_key_leases, api_key_usage TO sn1_api;
GRANT EXECUTE ON FUNCTION sn1_admit_key(text, uuid, double precision) TO sn1_api;

-- /status and /api/status: the metagraph (public on chain) ...
GRANT SELECT ON metagraph_snapshots, neurons TO sn1_api;
-- ... and the audit log's figures, never its texts or key ids (/api/requests/{id} included).
GRANT SELECT (request_id, created_at, endpoint, netuid, k, k_asked, strategy, status, error,
              selected_uid, time_to_first_chunk_ms, total_ms)
    ON completions TO sn1_api;
GRANT SELECT (request_id, uid, created_at, hotkey, outcome, status_code, time_to_first_byte_ms,
              total_ms, chunks, bytes, clean_reason, selected, verdict)
    ON miner_responses TO sn1_api;
