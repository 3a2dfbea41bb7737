#!/usr/bin/env bash
# The main command on a fresh machine: fetch models, build, index the fictional
# demo corpus, and answer a sample objection with citations.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash models/fetch.sh
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-target}/release/onlabel"
"$bin" ingest --corpus corpora/demo --index data/demo-index
echo
echo '$ onlabel ask --product zentravia "Dr. Lee worries about liver toxicity"'
"$bin" ask --index data/demo-index --product zentravia "Dr. Lee worries about liver toxicity"
