-- Managed API keys (issue #14). Only a SHA-256 of each key is kept (the key is shown once, when
-- it is made). Limits hold for the whole fleet because every api replica admits a request with
-- one call of sn1_admit_key, which locks the key's row: the rpm token bucket and the leases of
-- the answers in flight are read and changed under that lock, so two replicas never both take
-- the last token. The same rules for SQLite are in contracts/src/store/sqlite/keys.rs.

CREATE TABLE api_keys (
    id           text PRIMARY KEY,                  -- key-<16 hex>: public; in audit rows and spans
    name         text NOT NULL,
    key_sha256   text NOT NULL UNIQUE,              -- hex SHA-256 of the key; never the key
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    rpm          integer CHECK (rpm > 0),           -- requests per minute, fleet-wide; NULL: none
    max_streams  integer CHECK (max_streams > 0),   -- answers in flight at once; NULL: none
    tokens       double precision NOT NULL DEFAULT 0, -- the rpm bucket: requests it holds ...
    refilled_at  timestamptz NOT NULL DEFAULT now() -- ... as of this time (refills rpm/60 per s)
);

-- One row per request in flight with a key that has max_streams; released when its answer
-- ends, and expired by its deadline should the api replica die first.
CREATE TABLE api_key_leases (
    request_id   uuid PRIMARY KEY,
    key_id       text NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX api_key_leases_key_id ON api_key_leases (key_id, expires_at);

-- Usage per key and minute: requests served (streamed or not), streamed ones, requests refused
-- by a limit, and estimated tokens (prompt and answer, ⌈characters / 4⌉ each). Each api replica
-- adds what it served once a second (one row per key), so busy keys cause no lock queue here.
CREATE TABLE api_key_usage (
    key_id       text NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    minute       timestamptz NOT NULL,
    requests     bigint NOT NULL DEFAULT 0,
    streams      bigint NOT NULL DEFAULT 0,
    rejected     bigint NOT NULL DEFAULT 0,
    est_tokens   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, minute)
);

-- Admits one request with the key whose SHA-256 is p_sha256: verdict is admitted (a lease taken
-- when the key has max_streams: leased; key_expires_at: when the key expires), unknown, revoked,
-- expired, rpm (retry_after_s says when a token is back) or streams.
CREATE FUNCTION sn1_admit_key(p_sha256 text, p_request uuid, p_lease_s double precision)
RETURNS TABLE (admitted_key text, verdict text, retry_after_s double precision, leased boolean,
               key_expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    k api_keys%ROWTYPE;
    live integer;
    bucket double precision;
BEGIN
    -- The commit need not wait for the WAL flush while the row lock is held: losing the last
    -- few milliseconds of admissions in a Postgres crash gives back a few tokens and leases,
    -- which is harmless; waiting for the disk would queue every request of a busy key.
    PERFORM set_config('synchronous_commit', 'off', true);
    -- A key's requests queue on its row; past 250 ms the admission gives up (SQLSTATE 55P03)
    -- instead of holding a pooled connection while a flood of one key's requests waits.
    PERFORM set_config('lock_timeout', '250ms', true);
    SELECT * INTO k FROM api_keys AS a WHERE a.key_sha256 = p_sha256 FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::text, 'unknown'::text, NULL::double precision, false, NULL::timestamptz;
        RETURN;
    END IF;
    IF k.revoked_at IS NOT NULL THEN
        RETURN QUERY SELECT k.id, 'revoked'::text, NULL::double precision, false, NULL::timestamptz;
        RETURN;
    END IF;
    IF k.expires_at IS NOT NULL AND k.expires_at <= now() THEN
        RETURN QUERY SELECT k.id, 'expired'::text, NULL::double precision, false, NULL::timestamptz;
        RETURN;
    END IF;
    IF k.max_streams IS NOT NULL THEN
        DELETE FROM api_key_leases AS l WHERE l.key_id = k.id AND l.expires_at <= now();
        SELECT count(*) INTO live FROM api_key_leases AS l WHERE l.key_id = k.id;
        IF live >= k.max_streams THEN
            INSERT INTO api_key_usage AS u (key_id, minute, rejected)
            VALUES (k.id, date_trunc('minute', now()), 1)
            ON CONFLICT (key_id, minute) DO UPDATE SET rejected = u.rejected + 1;
            RETURN QUERY SELECT k.id, 'streams'::text, 1.0::double precision, false, NULL::timestamptz;
            RETURN;
        END IF;
    END IF;
    IF k.rpm IS NOT NULL THEN
        bucket := least(k.rpm::double precision,
                        k.tokens + extract(epoch FROM now() - k.refilled_at) * k.rpm / 60.0);
        IF bucket < 1 THEN
            INSERT INTO api_key_usage AS u (key_id, minute, rejected)
            VALUES (k.id, date_trunc('minute', now()), 1)
            ON CONFLICT (key_id, minute) DO UPDATE SET rejected = u.rejected + 1;
            RETURN QUERY SELECT k.id, 'rpm'::text, (1 - bucket) * 60.0 / k.rpm, false, NULL::timestamptz;
            RETURN;
        END IF;
        UPDATE api_keys AS a SET tokens = bucket - 1, refilled_at = now() WHERE a.id = k.id;
    END IF;
    IF k.max_streams IS NOT NULL THEN
        INSERT INTO api_key_leases (request_id, key_id, expires_at)
        VALUES (p_request, k.id, now() + make_interval(secs => p_lease_s))
        ON CONFLICT (request_id) DO NOTHING;
    END IF;
    RETURN QUERY SELECT k.id, 'admitted'::text, NULL::double precision, k.max_streams IS NOT NULL,
                        k.expires_at;
END
$$;
