#!/usr/bin/env bash
# Fuzzes the public HTTP contract: starts `sn1-gateway standalone --simnet` on a free port with a
# known key (and admin key: `/admin/keys` is fuzzed too, on its SQLite), runs schemathesis against its /openapi.json with that key, and fails on any 5xx,
# any answer the document does not describe (status, content type, headers, body schema), and
# any request the document forbids that is not refused with a 4xx. Under a minute once built.
#
#   scripts/schemathesis.sh [extra `st run` options, e.g. --seed 1 or -n 100]
#
# Needs schemathesis 4 (`pip install 'schemathesis>=4,<5'`). The simulated miners all behave and answer
# at once (first chunk after 1 ms), so a request's own `timeout` (0.1 s at least) never runs out
# and every 5xx is a gateway fault, not a slow miner. scripts/schemathesis_hooks.py gives `roles`
# and `messages` the same length (a rule the document cannot state), so requests reach a worker.
# `positive_data_acceptance` is left out for the same reason, and because an `exclude` that names
# every miner is schema-valid and rightly gets 422.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v st >/dev/null 2>&1; then
    st=(st)
elif python3 -c 'import schemathesis' 2>/dev/null; then
    st=(python3 -m schemathesis.cli) # installed where pip's scripts are not on PATH
else
    echo "schemathesis is not installed (pip install 'schemathesis>=4,<5')" >&2
    exit 2
fi
bin="${SN1_GATEWAY_BIN:-target/debug/sn1-gateway}"
if [ -z "${SN1_GATEWAY_BIN:-}" ]; then
    cargo build --quiet --bin sn1-gateway
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key="schemathesis-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
admin="schemathesis-admin-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
work=$(mktemp -d)
gateway_pid=""
cleanup() {
    if [ -n "$gateway_pid" ]; then
        kill -TERM "$gateway_pid" 2>/dev/null || true
        wait "$gateway_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

PORT="$port" HOST=127.0.0.1 EXPECTED_ACCESS_KEY="$key" ADMIN_KEY="$admin" DATA_DIR="$work/data" RUST_LOG=warn \
    "$bin" standalone --simnet --simnet-misbehaving 0 --simnet-first-byte-ms 1 \
    --simnet-latency-spread-ms 0 --simnet-chunk-gap-ms 1 >"$work/gateway.log" 2>&1 &
gateway_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
    if curl -fsS "$base/readyz" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$gateway_pid" 2>/dev/null; then
        cat "$work/gateway.log" >&2
        echo "sn1-gateway standalone exited before it was ready" >&2
        exit 1
    fi
    sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null

status=0
SCHEMATHESIS_HOOKS=scripts/schemathesis_hooks.py "${st[@]}" run "$base/openapi.json" \
    --header "api_key: $key" \
    --header "Authorization: Bearer $admin" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --phases examples,coverage,fuzzing \
    --max-examples 100 \
    --workers 2 \
    --request-timeout 30 \
    --generation-database none \
    --no-color \
    "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "---- sn1-gateway log (warnings and errors)" >&2
    tail -n 50 "$work/gateway.log" >&2
fi
exit "$status"
