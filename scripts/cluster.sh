#!/usr/bin/env bash
# One command brings an OnLabel cluster up on this machine, for evaluation:
# PostgreSQL (a throwaway cluster in the scratch dir, on loopback) holding all
# the state, llama.cpp's llama-server (the same SmolLM2 GGUF, OpenAI-compatible),
# two stateless `onlabel serve` replicas sharing that database and one
# published, versioned index root, and nginx round-robin in front of them.
# Prints the URLs and the demo users' tokens; Ctrl-C stops everything
# (requests in flight finish first) and removes the scratch dir.
#
#   bash scripts/cluster.sh
#
# Env: ONLABEL_CLUSTER_PORT     the balancer's port (default 8090)
#      ONLABEL_CLUSTER_THREADS  threads of llama-server and of each replica (default 1)
#      ONLABEL_CLUSTER_DIR      scratch dir (default: a new temp dir, removed at exit)
#      ONLABEL_CLUSTER_GENERATE answers written by llama-server (1, the default) or quoted only (0)
#      ONLABEL_CLUSTER_CHECK=1  start, ask one question through the balancer
#                               on each replica, work a case across them, stop
#                               (what the test suite runs)
# Needs: Debian's nginx and postgresql (installed with apt-get if missing, as
# root), the models (models/fetch.sh) and llama-server (bench/llama_cpp.sh,
# built once into ~/.cache/onlabel-bench).
# What it runs is what docs/scaling.md and deploy/README.md describe; the
# nginx config it writes is printed at start (the one to adapt for a real
# load balancer).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { echo "[cluster] $*" >&2; }

PORT="${ONLABEL_CLUSTER_PORT:-8090}"
THREADS="${ONLABEL_CLUSTER_THREADS:-1}"
CHECK="${ONLABEL_CLUSTER_CHECK:-}"
GENERATE=(); [ "${ONLABEL_CLUSTER_GENERATE:-1}" = 1 ] && GENERATE=(--generate)
MODEL="models/SmolLM2-135M-Instruct.Q4_1.gguf"
[ "$CHECK" = 1 ] && PORT=0

# 1. What it needs.
need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing ${need_apt[*]}: run as root, or: sudo apt-get install -y ${need_apt[*]}"; exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-cache show "${need_apt[@]}" >/dev/null 2>&1 || apt-get update
  apt-get install -y --no-install-recommends "${need_apt[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
bash models/fetch.sh >&2
LLAMA_BIN=$(bash bench/llama_cpp.sh | tail -n1)
cargo build --release --locked --bin onlabel >&2
BIN="${CARGO_TARGET_DIR:-target}/release/onlabel"

if [ -n "${ONLABEL_CLUSTER_DIR:-}" ]; then DIR="$ONLABEL_CLUSTER_DIR"; mkdir -p "$DIR"; KEEP=1
else DIR=$(mktemp -d "${TMPDIR:-/tmp}/onlabel-cluster.XXXXXX"); KEEP=; fi
chmod 755 "$DIR"
PIDS=()
stop() {
  trap - EXIT INT TERM
  log "stopping"
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -f "$DIR/nginx/nginx.pid" ] && "$NGINX" -p "$DIR/nginx" -c nginx.conf -s quit 2>/dev/null || true
  [ -f "$DIR/pg/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$DIR/pg/data" stop -m fast >/dev/null 2>&1 || true
  [ -z "$KEEP" ] && rm -rf "$DIR"
  log "stopped"
}
trap stop EXIT
trap 'exit 130' INT TERM

# free_port, wait_http (any HTTP answer counts).
source scripts/net.sh
# 2. PostgreSQL: a throwaway cluster in the scratch dir (initdb refuses to run
#    as root: as root it runs as the `postgres` user the package creates).
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PGPORT=$(free_port)
mkdir -p "$DIR/pg"; [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR/pg"
as_pg "$PGBIN/initdb" -D "$DIR/pg/data" -U onlabel --auth=trust -E UTF8 --locale=C >"$DIR/pg/initdb.log" 2>&1 \
  || { log "initdb failed (the postgres user must be able to reach $DIR):"; cat "$DIR/pg/initdb.log" >&2; exit 1; }
as_pg "$PGBIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/log" -w -t 60 \
  -o "-p $PGPORT -k $DIR/pg -c listen_addresses=127.0.0.1" start >/dev/null
as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U onlabel onlabel
DB="postgres://onlabel@127.0.0.1:$PGPORT/onlabel"
log "PostgreSQL on 127.0.0.1:$PGPORT ($DB)"

# 3. llama-server with the same GGUF.
LPORT=$(free_port)
"$LLAMA_BIN/llama-server" -m "$MODEL" -np 4 -c 8192 -t "$THREADS" -tb "$THREADS" \
  --host 127.0.0.1 --port "$LPORT" --no-webui >"$DIR/llama-server.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$LPORT/health" 120
log "llama-server on 127.0.0.1:$LPORT"

# 4. The demo corpus, published as index version 1 into the shared index root.
INDEX="$DIR/index"
DATA="$DIR/data"
"$BIN" index publish --corpus corpora/demo --index "$INDEX" >&2

# 5. Demo users in the shared database, one per role.
ADMIN=$("$BIN" --database "$DB" users add --id demo-admin --name "Dana Admin (demo)" --role admin 2>/dev/null | tail -n1)
TOKENS="$DIR/demo-tokens.txt"; umask 077; echo "admin demo-admin $ADMIN" > "$TOKENS"; umask 022
for spec in "rep demo-rep Riley_Rep" "mlr_reviewer demo-mlr Morgan_MLR" "medical demo-medical Avery_Medical" \
            "compliance demo-compliance Casey_Compliance"; do
  read -r role id name <<<"$spec"
  t=$(ONLABEL_TOKEN="$ADMIN" "$BIN" --database "$DB" users add --as demo-admin --id "$id" --name "${name//_/ } (demo)" --role "$role" 2>/dev/null | tail -n1)
  echo "$role $id $t" >> "$TOKENS"
done

# 6. Two replicas: same database, same index root, the inference server.
REPLICAS=()
for i in 1 2; do
  p=$(free_port)
  RAYON_NUM_THREADS="$THREADS" "$BIN" --database "$DB" --data "$DATA$i" serve --index "$INDEX" \
    --addr "127.0.0.1:$p" "${GENERATE[@]}" --generator-url "http://127.0.0.1:$LPORT" >"$DIR/replica$i.log" 2>&1 &
  PIDS+=($!)
  REPLICAS+=("127.0.0.1:$p")
done
for r in "${REPLICAS[@]}"; do wait_http "http://$r/healthz" 120; done
log "replicas on ${REPLICAS[*]}"

# 7. nginx, round-robin, in front.
mkdir -p "$DIR/nginx/logs"
if [ "$PORT" = 0 ]; then PORT=$(free_port); fi
cat > "$DIR/nginx/nginx.conf" <<NGINX
# The balancer in front of the replicas: round-robin, a replica that fails
# to connect is skipped, answers stream through unbuffered (SSE).
worker_processes 1;
pid nginx.pid;
error_log logs/error.log warn;
$( [ "$(id -u)" -eq 0 ] && echo "user root;" )
events { worker_connections 1024; }
http {
  access_log logs/access.log;
  client_body_temp_path tmp_body; proxy_temp_path tmp_proxy;
  fastcgi_temp_path tmp_fcgi; uwsgi_temp_path tmp_uwsgi; scgi_temp_path tmp_scgi;
  upstream onlabel {
$(for r in "${REPLICAS[@]}"; do echo "    server $r max_fails=1 fail_timeout=5s;"; done)
    keepalive 32;
  }
  server {
    listen 127.0.0.1:$PORT;
    client_max_body_size 64m;
    location / {
      proxy_pass http://onlabel;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_buffering off;
      proxy_read_timeout 120s;
      add_header X-Upstream \$upstream_addr always;
      proxy_next_upstream error timeout;
    }
  }
}
NGINX
"$NGINX" -p "$DIR/nginx" -c nginx.conf -t >/dev/null 2>&1 || { "$NGINX" -p "$DIR/nginx" -c nginx.conf -t; exit 1; }
"$NGINX" -p "$DIR/nginx" -c nginx.conf
wait_http "http://127.0.0.1:$PORT/healthz" 30

echo
echo "OnLabel cluster (scratch: $DIR)"
echo "  web UI and API (round-robin):  http://127.0.0.1:$PORT/"
for i in "${!REPLICAS[@]}"; do echo "  replica $((i + 1)):                     http://${REPLICAS[$i]}/"; done
echo "  llama-server (OpenAI API):     http://127.0.0.1:$LPORT/v1"
echo "  shared database (PostgreSQL):  $DB"
echo "  nginx config:                  $DIR/nginx/nginx.conf"
echo "Demo sign-in tokens:"
while read -r role id token; do printf '  %-13s %-16s %s\n' "$role" "$id" "$token"; done < "$TOKENS"
echo

if [ "$CHECK" = 1 ]; then
  # Ask through the balancer until both replicas have answered (round-robin:
  # two requests in a row reach both; a few more allow for a slow start).
  REP=$(awk '$1=="rep"{print $3}' "$TOKENS")
  seen=""
  for n in 1 2 3 4 5 6; do
    up=$(curl -fsS --max-time 120 -D - -o "$DIR/answer.json" -H "Authorization: Bearer $REP" -H 'Content-Type: application/json' \
      -d '{"question":"What are the LFT monitoring rules?","product":"zentravia"}' "http://127.0.0.1:$PORT/api/v1/ask" \
      | awk -F': ' 'tolower($1)=="x-upstream"{print $2}' | tr -d '\r')
    python3 -c "
import json, sys
a = json.load(open(sys.argv[1]))
assert a.get('route') == 'answer' and a.get('citations'), 'not a cited answer: %s' % a
print('[cluster] check: answer %d from %s, mode %s: %s' % (int(sys.argv[2]), sys.argv[3], a.get('mode'), a.get('answer', '')[:100]), file=sys.stderr)
" "$DIR/answer.json" "$n" "$up"
    case " $seen " in *" $up "*) ;; *) seen="$seen $up" ;; esac
    [ "$(echo $seen | wc -w)" -ge 2 ] && break
  done
  [ "$(echo $seen | wc -w)" -ge 2 ] || { log "check: every answer came from one replica ($seen)"; exit 1; }
  log "check: both replicas answered through the balancer ($seen)"
  # An adverse event reported through the balancer opens a case in the shared
  # database; each replica, asked directly, shows it.
  MED=$(awk '$1=="medical"{print $3}' "$TOKENS")
  curl -fsS --max-time 120 -o "$DIR/report.json" -H "Authorization: Bearer $REP" -H 'Content-Type: application/json' \
    -d '{"question":"Dr. Lee says her patient on Zentravia had a seizure yesterday.","product":"zentravia"}' "http://127.0.0.1:$PORT/api/v1/ask"
  CASE=$(python3 -c "import json,sys; a=json.load(open(sys.argv[1])); assert a.get('case_id'), a; print(a['case_id'])" "$DIR/report.json")
  for r in "${REPLICAS[@]}"; do
    curl -fsS --max-time 30 -H "Authorization: Bearer $MED" "http://$r/api/v1/cases/$CASE" | python3 -c "
import json, sys
c = json.load(sys.stdin)
c = c.get('case', c)
assert c.get('id') == sys.argv[1], c
print('[cluster] check: replica %s shows case %s (%s)' % (sys.argv[2], c['id'], c.get('state')), file=sys.stderr)
" "$CASE" "$r"
  done
  log "check: a case opened through the balancer is in the shared PostgreSQL database, seen by both replicas"
  exit 0
fi
log "running; Ctrl-C stops everything"
wait "${PIDS[0]}"
