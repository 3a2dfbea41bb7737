#!/usr/bin/env bash
# Vendors the web UI's third-party scripts from the npm registry (never a CDN)
# into src/server/ui/vendor/ (gitignored), where rust-embed embeds them into
# the binary at build time. Today: pdf.js (pdfjs-dist), which renders a cited
# PDF page on the #/source page.
#
# The package version and its registry integrity (`npm view pdfjs-dist@VER
# dist.integrity`) are pinned here; a tarball whose sha512 differs is refused.
# Idempotent: does nothing when the pinned files are already in place.
# Without these files the server still builds and runs; the source page then
# shows PDF passages as text and says to run this script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PDFJS_VERSION="4.10.38"
PDFJS_INTEGRITY="sha512-/Y3fcFrXEAsMjJXeL9J8+ZG9U01LbuWaYypvDW2ycW1jL269L3js3DVBjDJ0Up9Np1uqDXsDrRihHANhZOlwdQ=="
DEST="src/server/ui/vendor/pdfjs"
FILES=(build/pdf.min.mjs build/pdf.worker.min.mjs LICENSE)

if [ -f "$DEST/VERSION" ] && [ "$(cat "$DEST/VERSION")" = "$PDFJS_VERSION $PDFJS_INTEGRITY" ]; then
  ok=1
  for f in "${FILES[@]}"; do [ -s "$DEST/$(basename "$f")" ] || ok=0; done
  if [ "$ok" = 1 ]; then
    echo "ui-deps: pdfjs-dist $PDFJS_VERSION already in $DEST"
    exit 0
  fi
fi

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ui-deps: npm is missing; run as root (or: sudo apt-get install -y nodejs npm)" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show npm >/dev/null 2>&1; then
    apt-get update
  fi
  apt-get install -y nodejs npm
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "pdfjs-dist@$PDFJS_VERSION" >/dev/null)
tarball="$tmp/pdfjs-dist-$PDFJS_VERSION.tgz"
if [ ! -f "$tarball" ]; then
  echo "ui-deps: npm pack did not produce $tarball" >&2
  exit 1
fi
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$got" != "$PDFJS_INTEGRITY" ]; then
  echo "ui-deps: pdfjs-dist@$PDFJS_VERSION integrity mismatch: expected $PDFJS_INTEGRITY, got $got" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$tmp"
mkdir -p "$DEST"
for f in "${FILES[@]}"; do
  cp "$tmp/package/$f" "$DEST/$(basename "$f")"
done
echo "$PDFJS_VERSION $PDFJS_INTEGRITY" > "$DEST/VERSION"
# rust-embed tracks the files it embedded, not new ones: make the next build
# re-embed the folder.
touch src/server/ui.rs
echo "ui-deps: pdfjs-dist $PDFJS_VERSION (integrity checked) -> $DEST"
