#!/usr/bin/env bash
# Runs the README's ```sh blocks, in order, in one shell, in a fresh copy of
# the repository (tracked and new files; the fetched models linked in), with a
# fresh per-user data and config directory — so that the README cannot rot.
#
# Usage: bash scripts/readme-check.sh [BINARY]
#   BINARY (default target/release/onlabel, or $CARGO_TARGET_DIR's) is linked
#   in as the copy's target/release/onlabel; `cargo build` is then a no-op.
#
# A line ending in `# exit N` must exit with N (an expected refusal); any
# other line must succeed. Not run, because they are the test itself, take
# minutes or need tools the README does not install: `bash scripts/test.sh`,
# `cargo bench`, `bench/speed.sh`, `bench/all.sh`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-${CARGO_TARGET_DIR:-$repo/target}/release/onlabel}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
[ -x "$bin" ] || { echo "readme-check: no binary at $bin (cargo build --release first)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
clone="$work/clone"
mkdir -p "$clone"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue
  mkdir -p "$clone/$(dirname "$f")" && cp -p "$f" "$clone/$f"
done)
# The fetched models (ignored by git) and ../shared/data, as on a developer's machine.
for f in "$repo"/models/*.gguf "$repo"/models/minilm; do
  [ -e "$f" ] && ln -s "$f" "$clone/models/$(basename "$f")"
done
[ -d "$repo/../shared" ] && ln -s "$(cd "$repo/../shared" && pwd)" "$work/shared"
mkdir -p "$clone/target/release"
ln -s "$bin" "$clone/target/release/onlabel"

export XDG_DATA_HOME="$work/home/data" XDG_CONFIG_HOME="$work/home/config"
export ONLABEL_DEMO_CHECK=1  # scripts/demo.sh starts the server, asks once over HTTP, stops
export ONLABEL_CLUSTER_CHECK=1  # scripts/cluster.sh starts the cluster, asks through the balancer until both replicas answered, stops
unset ONLABEL_DATA ONLABEL_CONFIG ONLABEL_INDEX ONLABEL_TOKEN ONLABEL_ROOT ONLABEL_THRESHOLDS CARGO_TARGET_DIR

python3 - "$repo/README.md" > "$work/readme.sh" <<'PY'
import re, shlex, sys
text = open(sys.argv[1]).read()
skip = re.compile(r"^\s*(bash scripts/test\.sh|(taskset \S+ \S+ )?cargo bench|bash bench/(speed|all)\.sh)")
print('cargo() { if [ "$1" = build ]; then echo "(readme-check: the binary under test is current)"; else command cargo "$@"; fi; }')
print('export -f cargo')
n = 0
for block in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or skip.match(line):
            continue
        n += 1
        m = re.search(r"#\s*exit (\d+)", line)
        want = m.group(1) if m else "0"
        print(f"echo {shlex.quote('$ ' + line)}")
        print(f"set +e; {line}\nrc=$?; set -e")
        print(f'if [ "$rc" != {want} ]; then echo "readme-check: README command {n} exited $rc, expected {want}: "{shlex.quote(line)} >&2; exit 1; fi')
print(f'echo "readme-check: all {n} README commands ran as written"')
PY
cd "$clone"
bash -eu -o pipefail "$work/readme.sh"
