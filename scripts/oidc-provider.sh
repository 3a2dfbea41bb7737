#!/usr/bin/env bash
# Installs the loopback OpenID provider of the single sign-on tests
# (tests/oidc/provider.mjs; tests/it/oidc.rs and browser_oidc.rs start it):
# the npm package `oidc-provider`, pinned in tests/oidc/package.json with its
# whole tree and integrity hashes in tests/oidc/package-lock.json, installed
# from the npm registry with `npm ci` (never a CDN) into tests/oidc/node_modules
# (gitignored), under Debian's nodejs.
# Idempotent: does nothing when the installed tree matches the lock file, so a
# test run needs no network once this has run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DIR="tests/oidc"
STAMP="$DIR/node_modules/.onlabel-lock-sha256"
want="$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -f "$DIR/node_modules/oidc-provider/package.json" ]; then
  echo "oidc-provider: $(node -p "require('./$DIR/node_modules/oidc-provider/package.json').version" 2>/dev/null || echo installed) already in $DIR/node_modules"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "oidc-provider: node or npm is missing; run as root (or: sudo apt-get install -y nodejs npm)" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show npm >/dev/null 2>&1; then
    apt-get update
  fi
  apt-get install -y nodejs npm
fi

# `npm ci` installs exactly the lock file (and checks every tarball's
# integrity); it refuses when package.json and the lock disagree.
(cd "$DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
echo "$want" > "$STAMP"
echo "oidc-provider: installed $(node -p "require('./$DIR/node_modules/oidc-provider/package.json').version") in $DIR/node_modules"
