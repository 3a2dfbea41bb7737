#!/usr/bin/env bash
# Load test on loopback: OnLabel's server (retrieval-only and generated
# answers) and llama.cpp's llama-server (same GGUF, same prompts, same
# thread count) at 1, 4 and 16 concurrent clients, in one run; prints one
# markdown table. Bounded: every loadgen run stops at its request count or
# its time limit, whichever comes first; both servers are stopped at exit.
#
#   bash bench/load.sh
#
# Env (defaults):
#   ONLABEL_LOAD_CLIENTS   "1 4 16"   concurrency levels
#   ONLABEL_LOAD_GEN_REQS  per level: max(8, 3 × clients) generated requests
#   ONLABEL_LOAD_RET_REQS  per level: max(50, 25 × clients) retrieval requests
#   ONLABEL_LOAD_SECS      90         time limit of one loadgen run, seconds
#   ONLABEL_BENCH_THREADS  2          threads of both engines
#   ONLABEL_LOAD_SUITES    "evals/demo.jsonl"  question suites (answer-route cases)
#   ONLABEL_LOAD_KEEP      unset      keep the scratch directory
# Needs the model (bash models/fetch.sh) and, the first time, network for
# bench/llama_cpp.sh (which builds llama-server from the llama-cpp-python sdist).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CLIENTS="${ONLABEL_LOAD_CLIENTS:-1 4 16}"
SECS="${ONLABEL_LOAD_SECS:-90}"
THREADS="${ONLABEL_BENCH_THREADS:-2}"
SUITES="${ONLABEL_LOAD_SUITES:-evals/demo.jsonl}"
MODEL="models/SmolLM2-135M-Instruct.Q4_1.gguf"
log() { echo "[load.sh] $*" >&2; }

[[ -f "$MODEL" ]] || bash models/fetch.sh
LLAMA_BIN=$(bash bench/llama_cpp.sh | tail -n1)
[[ -x "$LLAMA_BIN/llama-server" ]] || { log "no llama-server in $LLAMA_BIN"; exit 1; }

log "building onlabel and the load generator"
cargo build --release --locked --bin onlabel --example loadgen >&2
TGT="${CARGO_TARGET_DIR:-target}/release"
BIN="$TGT/onlabel"
LOADGEN="$TGT/examples/loadgen"

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/onlabel-load.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ -z "${ONLABEL_LOAD_KEEP:-}" ]]; then rm -rf "$SCRATCH"; else log "kept $SCRATCH"; fi
}
trap cleanup EXIT

# free_port, wait_http (any HTTP answer; wait_ok below needs a 2xx).
source scripts/net.sh
wait_ok() { # url, seconds
  local url=$1 n=$2
  for _ in $(seq 1 $((n * 5))); do
    if python3 -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  log "no answer from $url after ${n}s"; return 1
}

# Scratch data dir, users, demo index.
DATA="$SCRATCH/data"
ADMIN=$("$BIN" --data "$DATA" users add --id load-admin --name "Load Admin" --role admin | tail -n1)
TOKEN=$(ONLABEL_TOKEN="$ADMIN" "$BIN" --data "$DATA" users add --id load-rep --name "Load Rep" --role rep --as load-admin | tail -n1)
"$BIN" --data "$DATA" ingest --corpus corpora/demo --index "$SCRATCH/index" >&2

# Servers: ours with the machine's thread count for candle, llama-server
# with -np 16 slots of 1024 positions (the copilot's prompts plus 80 tokens
# fit), -t/-tb THREADS, greedy requests from the loadgen.
OPORT=$(free_port)
RAYON_NUM_THREADS="$THREADS" "$BIN" --data "$DATA" serve --generate --index "$SCRATCH/index" --addr "127.0.0.1:$OPORT" \
  >"$SCRATCH/onlabel.log" 2>&1 &
OPID=$!; PIDS+=("$OPID")
LPORT=$(free_port)
"$LLAMA_BIN/llama-server" -m "$MODEL" -np 16 -c $((16 * 1024)) -t "$THREADS" -tb "$THREADS" \
  --host 127.0.0.1 --port "$LPORT" --no-webui >"$SCRATCH/llama-server.log" 2>&1 &
LPID=$!; PIDS+=("$LPID")
wait_ok "http://127.0.0.1:$LPORT/health" 120
# Any HTTP answer (even 401/404) means our server listens.
wait_http "http://127.0.0.1:$OPORT/healthz" 60 "$OPID" "$SCRATCH/onlabel.log"
log "onlabel serve on :$OPORT (pid $OPID), llama-server on :$LPORT (pid $LPID)"

SUITE_ARGS=()
for s in $SUITES; do SUITE_ARGS+=(--suite "$s"); done
RESULTS="$SCRATCH/results.jsonl"
: >"$RESULTS"
STATUS=0
run() { # label, extra args...
  local label=$1; shift
  if ! "$LOADGEN" --label "$label" --duration-secs "$SECS" "${SUITE_ARGS[@]}" "$@" >>"$RESULTS"; then
    STATUS=1
  fi
}
for c in $CLIENTS; do
  ret=${ONLABEL_LOAD_RET_REQS:-$(( 25 * c > 50 ? 25 * c : 50 ))}
  gen=${ONLABEL_LOAD_GEN_REQS:-$(( 3 * c > 8 ? 3 * c : 8 ))}
  run retrieval --target onlabel --url "http://127.0.0.1:$OPORT" --token "$TOKEN" --extractive \
    --clients "$c" --requests "$ret" --warmup 2 --pid "$OPID"
  run generated --target onlabel --url "http://127.0.0.1:$OPORT" --token "$TOKEN" \
    --clients "$c" --requests "$gen" --warmup 1 --pid "$OPID"
  run llama --target llama --url "http://127.0.0.1:$LPORT" --index "$SCRATCH/index" \
    --clients "$c" --requests "$gen" --warmup 1 --pid "$LPID"
done

python3 - "$RESULTS" "$THREADS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
llama = {r["clients"]: r for r in rows if r["target"] == "llama"}
print(f"\nLoad test on loopback, {sys.argv[2]} threads per engine, same GGUF; generated tokens/s are all clients' tokens over the run's wall time.\n")
print("| path | clients | requests | req/s | p50 ms | p99 ms | tokens/s | ratio vs llama-server | 5xx (overload) | peak RSS MiB |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    name = {"retrieval": "onlabel retrieval-only", "generated": "onlabel generated", "llama": "llama-server /completion"}[r["label"]]
    tps = "" if r["label"] == "retrieval" else f'{r["tokens_per_s"]:.1f}'
    ratio = ""
    if r["label"] == "generated" and r["clients"] in llama and llama[r["clients"]]["tokens_per_s"] > 0:
        ratio = f'{r["tokens_per_s"] / llama[r["clients"]]["tokens_per_s"]:.2f}'
    rss = r["peak_rss_kib"] / 1024 if r["peak_rss_kib"] else float("nan")
    print(f'| {name} | {r["clients"]} | {r["requests"]} | {r["req_per_s"]:.2f} | {r["p50_ms"]:.0f} | {r["p99_ms"]:.0f} | {tps} | {ratio} | {r["fivexx"]} ({r["overload_answers"]}) | {rss:.0f} |')
gen = [r for r in rows if r["label"] == "generated"]
if gen:
    print("\nOnLabel generated answers written by the model: " + ", ".join(f'{r["generated_answers"]}/{r["requests"]} at {r["clients"]}' for r in gen))
bad = [r for r in rows if r["bad"]]
for r in bad:
    print(f'\nFAILED: {r["label"]} at {r["clients"]} clients: {r["bad"]} bad responses, first: {r["first_error"]}')
EOF
exit $STATUS
