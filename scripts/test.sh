#!/usr/bin/env bash
# The test command: makes sure NATS JetStream and PostgreSQL are up (scripts/services.sh), then
# runs every test of the workspace against them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
cargo test --workspace --all-targets "$@"
# The HTTP contract, fuzzed from /openapi.json (schemathesis 4, ~10 s after the build), in a
# virtual environment of its own (PyPI).
st_venv=target/schemathesis-venv
if ! command -v st >/dev/null 2>&1 && [ ! -x "$st_venv/bin/st" ]; then
    python3 -m venv "$st_venv"
    "$st_venv/bin/pip" install --quiet 'schemathesis>=4,<5'
fi
PATH="$PWD/$st_venv/bin:$PATH" bash scripts/schemathesis.sh
