#!/usr/bin/env bash
# The main command on a fresh machine: fetch models, build, index the fictional
# demo corpus, and answer a sample objection with citations.
# Idempotent and quick the second time: models already verified are not
# fetched again, cargo rebuilds nothing when nothing changed, and the demo
# index is rebuilt only when a file of corpora/demo is newer than it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash models/fetch.sh
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-target}/release/onlabel"
stamp=data/demo-index/onlabel-index.json
if [ -f "$stamp" ] && [ -z "$(find corpora/demo -newer "$stamp" -print -quit)" ] && [ "$bin" -ot "$stamp" ]; then
  echo "demo index data/demo-index is up to date"
else
  "$bin" ingest --corpus corpora/demo --index data/demo-index
fi
echo
echo '$ onlabel ask --index data/demo-index --product zentravia "Dr. Lee worries about liver toxicity"'
"$bin" ask --index data/demo-index --product zentravia "Dr. Lee worries about liver toxicity"
