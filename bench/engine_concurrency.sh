#!/usr/bin/env bash
# Engine-level concurrency bench: aggregate generated tokens/s of C clients
# calling LocalModel::generate at once (examples/llm_speed.rs `concurrent`),
# for two builds of the example run alternately in one invocation (before
# and after an engine change), so that the ratio is measured under the same
# machine load. Optionally llama.cpp's llama-batched-bench is not used: the
# server-level comparison with llama-server is bench/load.sh.
#
#   bash bench/engine_concurrency.sh BEFORE_BIN AFTER_BIN [LEVELS] [REPEATS]
#
# BEFORE_BIN / AFTER_BIN: builds of `cargo build --release --example llm_speed`
# (copy the first one aside before rebuilding). LEVELS default "1,4,16",
# REPEATS default 2. Env: ONLABEL_BENCH_THREADS (2), MAX_TOKENS (80), ROUNDS (2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BEFORE=${1:?before binary}
AFTER=${2:?after binary}
LEVELS=${3:-1,4,16}
REPEATS=${4:-2}
export RAYON_NUM_THREADS="${ONLABEL_BENCH_THREADS:-2}"
for r in $(seq 1 "$REPEATS"); do
  for which in before after; do
    bin=$BEFORE; [[ $which == after ]] && bin=$AFTER
    echo "## $which (repeat $r)"
    "$bin" concurrent "$LEVELS"
  done
done
