#!/usr/bin/env bash
# The peer benchmark in one command (issue 12): the mock OpenAI backend called directly, through
# our gateway (api + worker over a nats-server of its own) and through TensorZero's gateway, side
# by side; the tables go to stdout and to target/peer-bench/results.md.
#
#   scripts/peer-bench.sh                 # the full run (10 s rounds, 1/16/64/256 streams, 2 reps)
#   scripts/peer-bench.sh --quick         # 3 s rounds
#   scripts/peer-bench.sh --secs 5 --reps 3 --streams 1,64
#   SN1_BASELINE_BIN=/path/to/old/sn1-gateway scripts/peer-bench.sh   # plus an older build
#
# Needs nats-server (on the PATH, /usr/sbin/nats-server, or NATS_SERVER) and python3 >= 3.9 with
# venv for TensorZero (installed from PyPI into target/peer-venv on first use; without it the
# benchmark runs without TensorZero and says so).
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
venv="$target/peer-venv"

cargo build --release --bin sn1-gateway
cargo bench --bench peer --no-run

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import tensorzero' 2>/dev/null; then
  echo "peer-bench: installing tensorzero into $venv" >&2
  if python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --upgrade pip \
    && "$venv/bin/pip" install --quiet tensorzero; then
    :
  else
    echo "peer-bench: could not install tensorzero; the benchmark runs without it" >&2
  fi
fi
export PEER_PYTHON="$(realpath -ms "$venv/bin/python")"

exec cargo bench --bench peer -- "$@"
