#!/usr/bin/env bash
# Load test of the two deployments on loopback, in one run (issue 22,
# point 5): a single `onlabel serve` process (SQLite, the model in process)
# against the cluster of scripts/cluster.sh (PostgreSQL, llama-server with
# the same GGUF, two replicas behind nginx round-robin), at 1, 4 and 16
# concurrent clients, quoted (retrieval-only) and generated answers; prints
# one markdown table with the ratio cluster / single process. Both sides get
# the same threads for inference (ONLABEL_BENCH_THREADS). Bounded: every
# loadgen run stops at its request count or its time limit.
#
#   bash bench/cluster_load.sh
#
# Env (defaults):
#   ONLABEL_LOAD_CLIENTS   "1 4 16"   concurrency levels
#   ONLABEL_LOAD_GEN_REQS  per level: max(8, 3 × clients) generated requests
#   ONLABEL_LOAD_RET_REQS  per level: max(50, 25 × clients) quoted requests
#   ONLABEL_LOAD_SECS      90         time limit of one loadgen run, seconds
#   ONLABEL_BENCH_THREADS  2          inference threads (candle / llama-server)
#   ONLABEL_LOAD_KEEP      unset      keep the scratch directory
# The machine should be otherwise idle: figures from a loaded machine are noise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CLIENTS="${ONLABEL_LOAD_CLIENTS:-1 4 16}"
SECS="${ONLABEL_LOAD_SECS:-90}"
THREADS="${ONLABEL_BENCH_THREADS:-2}"
log() { echo "[cluster_load.sh] $*" >&2; }

bash models/fetch.sh >&2
cargo build --release --locked --bin onlabel --example loadgen >&2
TGT="${CARGO_TARGET_DIR:-target}/release"
BIN="$TGT/onlabel"
LOADGEN="$TGT/examples/loadgen"

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/onlabel-cluster-load.XXXXXX")
chmod 755 "$SCRATCH" # the cluster's PostgreSQL runs as the postgres user under root
PIDS=()
cleanup() {
  # TERM, not INT: a job started with `&` in a script ignores SIGINT (bash
  # without job control), so cluster.sh never saw the INT and the wait
  # below hung after the table was printed. cluster.sh traps TERM and
  # stops its children; `onlabel serve` drains on TERM.
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ -z "${ONLABEL_LOAD_KEEP:-}" ]]; then rm -rf "$SCRATCH"; else log "kept $SCRATCH"; fi
}
trap cleanup EXIT
source scripts/net.sh # free_port, wait_http

# The cluster, in the background, until it says it runs.
CPORT=$(free_port)
ONLABEL_CLUSTER_DIR="$SCRATCH/cluster" ONLABEL_CLUSTER_PORT="$CPORT" ONLABEL_CLUSTER_THREADS="$THREADS" \
  bash scripts/cluster.sh >"$SCRATCH/cluster.out" 2>"$SCRATCH/cluster.err" &
CPID=$!; PIDS+=("$CPID")
for _ in $(seq 1 900); do
  grep -q "running; Ctrl-C" "$SCRATCH/cluster.err" 2>/dev/null && break
  kill -0 "$CPID" 2>/dev/null || { log "cluster.sh exited:"; tail -n 30 "$SCRATCH/cluster.err" >&2; exit 1; }
  sleep 1
done
grep -q "running; Ctrl-C" "$SCRATCH/cluster.err" || { log "the cluster did not start in 15 min"; exit 1; }
CTOKEN=$(awk '$1=="rep"{print $3}' "$SCRATCH/cluster/demo-tokens.txt")
log "cluster on :$CPORT"

# The single process: SQLite, the model in process, the same index content.
DATA="$SCRATCH/single"
ADMIN=$("$BIN" --data "$DATA" users add --id load-admin --name "Load Admin" --role admin | tail -n1)
STOKEN=$(ONLABEL_TOKEN="$ADMIN" "$BIN" --data "$DATA" users add --id load-rep --name "Load Rep" --role rep --as load-admin | tail -n1)
"$BIN" --data "$DATA" ingest --corpus corpora/demo --index "$SCRATCH/index" >&2
SPORT=$(free_port)
RAYON_NUM_THREADS="$THREADS" "$BIN" --data "$DATA" serve --generate --index "$SCRATCH/index" --addr "127.0.0.1:$SPORT" \
  >"$SCRATCH/single.log" 2>&1 &
SPID=$!; PIDS+=("$SPID")
wait_http "http://127.0.0.1:$SPORT/healthz" 60 "$SPID" "$SCRATCH/single.log"
log "single process on :$SPORT"

RESULTS="$SCRATCH/results.jsonl"
: >"$RESULTS"
STATUS=0
run() { # label, extra args...
  local label=$1; shift
  "$LOADGEN" --label "$label" --duration-secs "$SECS" --suite evals/demo.jsonl "$@" >>"$RESULTS" || STATUS=1
}
for c in $CLIENTS; do
  ret=${ONLABEL_LOAD_RET_REQS:-$(( 25 * c > 50 ? 25 * c : 50 ))}
  gen=${ONLABEL_LOAD_GEN_REQS:-$(( 3 * c > 8 ? 3 * c : 8 ))}
  run single-quoted --target onlabel --url "http://127.0.0.1:$SPORT" --token "$STOKEN" --extractive --clients "$c" --requests "$ret" --warmup 2 --pid "$SPID"
  run cluster-quoted --target onlabel --url "http://127.0.0.1:$CPORT" --token "$CTOKEN" --extractive --clients "$c" --requests "$ret" --warmup 2
  run single-generated --target onlabel --url "http://127.0.0.1:$SPORT" --token "$STOKEN" --clients "$c" --requests "$gen" --warmup 1 --pid "$SPID"
  run cluster-generated --target onlabel --url "http://127.0.0.1:$CPORT" --token "$CTOKEN" --clients "$c" --requests "$gen" --warmup 1
done

python3 - "$RESULTS" "$THREADS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["label"], r["clients"]): r for r in rows}
print(f"\nSingle process (SQLite, model in process) vs cluster (PostgreSQL, llama-server, 2 replicas behind nginx), loopback, {sys.argv[2]} inference threads each.\n")
print("| answers | clients | single req/s | cluster req/s | cluster / single | single p50 / p99 ms | cluster p50 / p99 ms | cluster answers generated | errors (single, cluster) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for kind in ["quoted", "generated"]:
    for c in sorted({r["clients"] for r in rows}):
        s, k = by.get((f"single-{kind}", c)), by.get((f"cluster-{kind}", c))
        if not s or not k:
            continue
        ratio = k["req_per_s"] / s["req_per_s"] if s["req_per_s"] else float("nan")
        gen = f'{k.get("generated_answers", 0)}/{k["requests"]}' if kind == "generated" else ""
        print(f'| {kind} | {c} | {s["req_per_s"]:.2f} | {k["req_per_s"]:.2f} | {ratio:.2f} | {s["p50_ms"]:.0f} / {s["p99_ms"]:.0f} | {k["p50_ms"]:.0f} / {k["p99_ms"]:.0f} | {gen} | {s["bad"]}, {k["bad"]} |')
for r in rows:
    if r["bad"]:
        print(f'\nFAILED: {r["label"]} at {r["clients"]} clients: {r["bad"]} bad responses, first: {r["first_error"]}')
EOF
exit $STATUS
