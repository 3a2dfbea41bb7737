#!/usr/bin/env bash
# The main command on a fresh machine: fetch the models, build, index the
# fictional demo corpus, create one demo user per role, and start the server
# (web UI and API) on it, printing the URL and each role's token.
#
# Idempotent and quick the second time: models already verified are not
# fetched again, cargo rebuilds nothing when nothing changed, the demo index
# is rebuilt only when a file of corpora/demo is newer than it, and the demo
# users (and their tokens) are kept.
#
# The demo's data directory — its store and the tokens file (mode 600, in a
# mode-700 folder) — lives outside the repository, in the per-user data
# directory: the repository is the prompt registry's root, and nothing secret
# belongs under it.
#
# Env: ONLABEL_ADDR (default 127.0.0.1:8080).
#      ONLABEL_DEMO_DATA: the demo's data directory
#      (default ${XDG_DATA_HOME:-~/.local/share}/onlabel-demo).
#      ONLABEL_DEMO_CHECK=1: start the server, ask it one question over HTTP,
#      then stop it (what scripts/readme-check.sh runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash models/fetch.sh
bash scripts/ui-deps.sh   # pdf.js from the npm registry (integrity-pinned), embedded by the build
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-target}/release/onlabel"
stamp=data/demo-index/onlabel-index.json
if [ -f "$stamp" ] && [ -z "$(find corpora/demo -newer "$stamp" -print -quit)" ] && [ "$bin" -ot "$stamp" ]; then
  echo "demo index data/demo-index is up to date"
else
  "$bin" ingest --corpus corpora/demo --index data/demo-index
fi

# Demo users, one per role; the first is the admin who adds the others.
data="${ONLABEL_DEMO_DATA:-${XDG_DATA_HOME:-$HOME/.local/share}/onlabel-demo}"
tokens="$data/demo-tokens.txt"
repo=$(pwd -P)
mkdir -p "$data"
case "$(cd "$data" && pwd -P)/" in
  "$repo"/*) echo "demo.sh: $data is inside the repository; set ONLABEL_DEMO_DATA to a folder outside it" >&2; exit 2 ;;
esac
chmod 700 "$data"
if [ ! -s "$tokens" ]; then
  umask 077
  admin=$("$bin" --data "$data" users add --id demo-admin --name "Dana Admin (demo)" --role admin 2>/dev/null)
  echo "admin demo-admin $admin" > "$tokens.tmp"
  for spec in "rep demo-rep Riley_Rep" "mlr_reviewer demo-mlr Morgan_MLR" "mlr_reviewer demo-mlr2 Micah_MLR" \
              "medical demo-medical Avery_Medical" "compliance demo-compliance Casey_Compliance"; do
    read -r role id name <<<"$spec"
    t=$(ONLABEL_TOKEN="$admin" "$bin" --data "$data" users add --as demo-admin --id "$id" --name "${name//_/ } (demo)" --role "$role" 2>/dev/null)
    echo "$role $id $t" >> "$tokens.tmp"
  done
  mv "$tokens.tmp" "$tokens"
fi
chmod 600 "$tokens"

addr="${ONLABEL_ADDR:-127.0.0.1:8080}"
[ "${ONLABEL_DEMO_CHECK:-}" = 1 ] && addr=127.0.0.1:0
echo
echo "Demo sign-in tokens (paste one into the web UI; also in $tokens):"
while read -r role id token; do
  printf '  %-13s %-16s %s\n' "$role" "$id" "$token"
done < "$tokens"
echo

serve=("$bin" --data "$data" serve --index data/demo-index --addr "$addr")
if [ "${ONLABEL_DEMO_CHECK:-}" != 1 ]; then
  exec "${serve[@]}"
fi

# Check mode: start, ask one question as the rep over HTTP, stop (SIGTERM).
log=$(mktemp)
"${serve[@]}" > "$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 300); do
  grep -q "serving on http://" "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
url=$(grep -o "http://[0-9.:]*" "$log" | head -n1)
echo "OnLabel is serving on $url/"
rep=$(awk '$1 == "rep" {print $3}' "$tokens")
python3 - "$url" "$rep" <<'PY'
import json, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url + "/api/v1/ask", method="POST",
    data=json.dumps({"question": "Dr. Lee worries about liver toxicity", "product": "zentravia"}).encode(),
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
a = json.load(urllib.request.urlopen(req, timeout=120))
print("$ POST /api/v1/ask  Dr. Lee worries about liver toxicity")
print(a["answer"])
for c in a["citations"]:
    print(f"[{c['n']}] {c['doc_id']} §{c['section']} — {c['title']} (MLR {c['mlr_number']})")
assert a["route"] == "answer" and a["citations"], a
PY
kill -TERM $pid
wait $pid
trap - EXIT
rm -f "$log"
