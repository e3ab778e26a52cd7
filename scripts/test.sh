#!/usr/bin/env bash
# The test command: makes sure NATS JetStream and PostgreSQL are up (scripts/services.sh), then
# runs every test of the workspace against them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
exec cargo test --workspace --all-targets "$@"
