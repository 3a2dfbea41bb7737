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
# pdf.js for the web UI's source page (tests/it/browser_source.rs), from the
# npm registry with its integrity pinned; embedded by the build below.
bash scripts/ui-deps.sh
# The loopback OpenID provider of the SSO tests (tests/oidc/), from the npm registry, pinned.
bash scripts/oidc-provider.sh
# The deployment files (deploy/): hadolint, kubernetes-validate, systemd-analyze.
bash scripts/lint-deploy.sh
# The browser tests (tests/it/browser.rs) drive Debian's headless Chromium
# through chromedriver; install both once (apt-get update only when the
# package lists do not know them yet).
if [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test: /usr/bin/chromedriver is missing; run as root (or: sudo apt-get install -y chromium chromium-driver)" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show chromium-driver >/dev/null 2>&1; then
    apt-get update
  fi
  apt-get install -y chromium chromium-driver
fi
# The PostgreSQL tests (tests/it/audit_pg.rs) start a throwaway cluster of
# their own (initdb + pg_ctl from Debian's postgresql package, in a temp dir,
# on a free loopback port); install the package once, without the default
# cluster the package would otherwise create and start.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test: PostgreSQL is missing; run as root (or: sudo apt-get install -y postgresql)" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/onlabel-tests.conf
  if ! apt-cache show postgresql >/dev/null 2>&1; then
    apt-get update
  fi
  apt-get install -y postgresql
fi
# The real `openai` Python package, for the OpenAI-compatible endpoint's test
# (tests/it/server.rs), in a virtualenv outside the clone; installed once.
venv="${ONLABEL_VENV:-$HOME/.cache/onlabel-venv}"
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openai>=1.50,<4"
fi
export ONLABEL_PYTHON="$venv/bin/python"
# llama.cpp's llama-server, for the remote-generator tests (tests/it/remote.rs):
# built once from the llama-cpp-python sdist into a cache outside the clone
# (bench/llama_cpp.sh prints its bin directory last); the tests fail, and say
# so, without it.
llama_bin=$(bash bench/llama_cpp.sh | tail -n1)
export ONLABEL_LLAMA_SERVER="$llama_bin/llama-server"
cargo test --release --locked "$@"
