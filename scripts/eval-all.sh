#!/usr/bin/env bash
# Runs every eval suite on its corpus and prints one line of figures each.
# Usage: bash scripts/eval-all.sh [BINARY] [extra eval flags…]
#   BINARY defaults to target/release/onlabel (or $CARGO_TARGET_DIR's).
# The sealed suite (evals/sealed/) is reported as aggregates only: never read
# its failures, never tune on it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
B="${1:-${CARGO_TARGET_DIR:-target}/release/onlabel}"
shift || true
EXTRA=("$@")
W="${EVAL_WORK:-$(mktemp -d)}"
[ -d "$W/labels-index" ] || "$B" ingest --corpus ../shared/data/pi --index "$W/labels-index" >/dev/null
[ -d "$W/demo-index" ] || "$B" ingest --corpus corpora/demo --index "$W/demo-index" >/dev/null
# The suites written across all six products (five labels and the demo
# product) run on one index holding both corpora, as a field force would.
[ -d "$W/all-index" ] || "$B" ingest --corpus ../shared/data/pi --corpus corpora/demo --index "$W/all-index" >/dev/null 2>&1
run() {
  local suite=$1 index=$2
  "$B" --data "$W/data" eval --index "$index" --suite "$suite" --json --extractive ${EXTRA[@]+"${EXTRA[@]}"} 2>/dev/null \
    | python3 scripts/eval_summary.py "$suite" ${SHOW_FAILURES:+--failures}
}
run evals/labels.jsonl "$W/labels-index"
run evals/guard.jsonl "$W/labels-index"
run evals/guard_probe.jsonl "$W/labels-index"
run evals/demo.jsonl "$W/demo-index"
run evals/dev_reports.jsonl "$W/labels-index"
run evals/dev_offlabel.jsonl "$W/labels-index"
run evals/sentences_dev.jsonl "$W/all-index"
if [ -n "${SEALED:-}" ]; then
  run evals/sealed/heldout.jsonl "$W/labels-index"
  run evals/sealed/heldout2.jsonl "$W/all-index"
  run evals/sealed/sentences.jsonl "$W/all-index"
  run evals/sealed/heldout3.jsonl "$W/all-index"
  run evals/sealed/sentences2.jsonl "$W/all-index"
fi
