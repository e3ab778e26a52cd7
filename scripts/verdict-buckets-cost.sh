#!/usr/bin/env bash
# Cost of the workers' score refresh query (`Store::verdict_buckets`, every worker every
# REFRESH s) on Postgres with a realistic audit log: ROWS judged miner replies from MINERS
# miners spread over the last 30 minutes (plus as many older rows), in a fresh database with
# every migration applied. Prints EXPLAIN (ANALYZE, BUFFERS) and the median of RUNS timed runs,
# first as inserted (recent pages not yet all-visible: heap fetches) then after VACUUM.
#
#   scripts/verdict-buckets-cost.sh            # 500k rows, 1,000 miners
#   ROWS=1000000 MINERS=2000 scripts/verdict-buckets-cost.sh
#
# KEEP=1 keeps the database. Needs psql and a local server with trust auth (scripts/services.sh); ADMIN_URL overrides.
set -euo pipefail
ROWS=${ROWS:-500000}
MINERS=${MINERS:-1000}
RUNS=${RUNS:-5}
ADMIN_URL=${ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB="sn1_vbcost_$(date +%s)"
here="$(cd "$(dirname "$0")/.." && pwd)"

psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
URL="${ADMIN_URL%/*}/$DB"
if [ -z "${KEEP:-}" ]; then
    trap 'psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null' EXIT
else
    echo "keeping database $DB"
fi
for f in "$here"/migrations/postgres/*.sql; do
    psql -q -v ON_ERROR_STOP=1 "$URL" -f "$f" >/dev/null
done

# k = 3 replies per request; half the rows in the 30-minute window, half older (up to 2 h).
psql -q -v ON_ERROR_STOP=1 "$URL" <<SQL
INSERT INTO completions (request_id, created_at, api_key_id, endpoint, netuid, k, timeout_s,
                         strategy, sampling_mode, status, total_ms, k_asked)
SELECT md5(i::text)::uuid,
       now() - (CASE WHEN i % 2 = 0 THEN random() * 1790 ELSE 1800 + random() * 5400 END)
               * interval '1 second',
       'key', 'chat', 1, 3, 10, 'first', 'reliable', 'answered', 500, 3
FROM generate_series(1, ($ROWS * 2) / 3) AS i;
INSERT INTO miner_responses (request_id, uid, created_at, hotkey, outcome, status_code,
                             time_to_first_byte_ms, total_ms, chunks, bytes, text, selected,
                             axon, verdict)
SELECT c.request_id, u, c.created_at, '5Hotkey' || u, 'ok', 200, 20 + random() * 2000, 900, 30,
       450, NULL, j = 0, '10.0.' || (u / 250) || '.' || (u % 250) || ':8091',
       (ARRAY['usable','usable','usable','unusable','short','stalled','failed','unknown'])
           [1 + floor(random() * 8)::int]
FROM completions c, generate_series(0, 2) AS j,
     LATERAL (SELECT (abs(hashtext(c.request_id::text || j)) % $MINERS) AS u) m
ON CONFLICT DO NOTHING;
ANALYZE completions, miner_responses;
SQL
echo "rows: $(psql -tA "$URL" -c "SELECT count(*) FROM miner_responses"), in the last 30 min: $(psql -tA "$URL" -c "SELECT count(*) FROM miner_responses WHERE created_at > now() - interval '30 minutes'"), miners: $MINERS"

QUERY="SELECT hotkey, axon, verdict, date_trunc('minute', created_at), count(*),
              coalesce(sum(time_to_first_byte_ms), 0)::float8, count(time_to_first_byte_ms)
       FROM miner_responses
       WHERE created_at > now() - interval '30 minutes' AND verdict IS NOT NULL
             AND verdict <> 'unknown' AND axon IS NOT NULL
       GROUP BY 1, 2, 3, 4"

measure() {
    echo "== $1"
    psql -tA "$URL" -c "EXPLAIN (ANALYZE, BUFFERS) $QUERY"
    local times=()
    for _ in $(seq "$RUNS"); do
        times+=("$(psql -tA "$URL" -c "EXPLAIN (ANALYZE, FORMAT JSON) $QUERY" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])')")
    done
    printf '%s\n' "${times[@]}" | sort -n |
        awk -v what="$1" '{a[NR]=$1} END {printf "%s: median of %d runs %.1f ms (min %.1f, max %.1f)\n", what, NR, a[int((NR+1)/2)], a[1], a[NR]}'
}
measure "as inserted (no vacuum yet)"
psql -q "$URL" -c "VACUUM (ANALYZE) miner_responses"
measure "after VACUUM"
