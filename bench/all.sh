#!/usr/bin/env bash
# Every serving-speed figure of issue 23 in one run, each beside its peer:
#   1. the engine rows vs llama.cpp's llama-bench and the copilot end to end
#      (first verified sentence of the quoting path, p50/p95)  — bench/speed.sh
#   2. the read-bandwidth ceiling (1 and THREADS threads) and decode tokens/s
#      as a share of it, ours and llama.cpp's                  — examples/bandwidth.rs
#   3. the load table at 1, 4, 16 and 32 clients vs llama-server — bench/load.sh
# then a summary of the issue's "done when" lines. See bench/README.md.
#
#   bash bench/all.sh
#
# Env: everything bench/speed.sh and bench/load.sh read (ONLABEL_BENCH_THREADS,
# ONLABEL_BENCH_RUNS, ONLABEL_LOAD_SECS, …); ONLABEL_LOAD_CLIENTS defaults to
# "1 4 16 32" here; ONLABEL_BW_MIB (512) the bandwidth buffer.
# Takes about half an hour on 2 threads. Run it on a quiet machine: both
# engines spin at barriers, and other work on the cores skews every figure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export ONLABEL_BENCH_THREADS="${ONLABEL_BENCH_THREADS:-2}"
export ONLABEL_LOAD_CLIENTS="${ONLABEL_LOAD_CLIENTS:-1 4 16 32}"
MODEL="${ONLABEL_BENCH_MODEL:-$PWD/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
OUT=$(mktemp -d "${TMPDIR:-/tmp}/onlabel-all.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
log() { echo "[all.sh] $*" >&2; }

log "1/3 engine rows and the copilot end to end (bench/speed.sh)"
ONLABEL_SPEED_KEEP="$OUT/speed" bash bench/speed.sh | tee "$OUT/speed.txt"

log "2/3 read-bandwidth ceiling (examples/bandwidth.rs)"
cargo build --release --locked --example bandwidth >&2
"${CARGO_TARGET_DIR:-target}/release/examples/bandwidth" "$MODEL" > "$OUT/bandwidth.json"

log "3/3 load table at $ONLABEL_LOAD_CLIENTS clients (bench/load.sh)"
LOAD_STATUS=0
bash bench/load.sh | tee "$OUT/load.txt" || LOAD_STATUS=$?

python3 - "$OUT" <<'PY'
import json, os, re, statistics, sys
out = sys.argv[1]
ours = json.load(open(os.path.join(out, "speed", "ours.json")))
bw = json.load(open(os.path.join(out, "bandwidth.json")))
ll = []
for f in ("ll1.json", "ll2.json", "ll3.json"):
    p = os.path.join(out, "speed", f)
    if os.path.exists(p):
        ll += json.load(open(p))
eng = {r["row"]: r["median"] for r in ours.get("engine", [])}
ll_tg = next((statistics.median(r["samples_ts"]) for r in ll if r["n_prompt"] == 0 and r["n_gen"] == 128 and r.get("n_depth", 0) == 0), float("nan"))
nan = float("nan")
per_tok = bw["weight_bytes_per_token"]
ceiling = bw["gbps_n"] * 1e9

print("\n== Decode as a share of the read-bandwidth ceiling")
print(f"read bandwidth (streaming sum over {bw['buffer_mib']} MiB): {bw['gbps_1']:.1f} GB/s on 1 thread, {bw['gbps_n']:.1f} GB/s on {bw['threads']} threads")
print(f"weights read per decoded token: {per_tok / 1e6:.1f} MB ({os.path.basename(bw['model'])}, as stored in the GGUF)\n")
print(f"{'engine':<12} {'tg128 tok/s':>12} {'GB/s of weights':>16} {'share of ceiling':>17}")
for name, tps in (("ours", eng.get("tg128", nan)), ("llama.cpp", ll_tg)):
    gbs = tps * per_tok / 1e9
    print(f"{name:<12} {tps:>12.1f} {gbs:>16.1f} {gbs * 1e9 / ceiling:>16.0%}")

print("\n== Issue 23, done when (this run)")
rows = {"pp128": (128, 0, 0), "pp512": (512, 0, 0), "pp1024": (1024, 0, 0), "tg128": (0, 128, 0), "tg128@d512": (0, 128, 512)}
def ll_ts(p, g, d):
    return next((statistics.median(r["samples_ts"]) for r in ll if r["n_prompt"] == p and r["n_gen"] == g and r.get("n_depth", 0) == d), nan)
for name, (p, g, d) in rows.items():
    if name in eng:
        r = eng[name] / ll_ts(p, g, d)
        print(f"  engine {name:<11} {r:5.2f}x llama.cpp   (target >= 1.5x)  {'ok' if r >= 1.5 else 'NOT MET'}")
share = eng.get("tg128", nan) * per_tok / ceiling
print(f"  decode share       {share:5.0%}            (target >= 60%)   {'ok' if share >= 0.6 else 'NOT MET'}")
load = open(os.path.join(out, "load.txt")).read()
table = [[x.strip() for x in line.strip().strip("|").split("|")] for line in load.splitlines() if line.startswith("| ")]
p99 = {f[1]: float(f[5]) for f in table if len(f) >= 8 and f[0] == "llama-server /completion"}
for f in table:
    if len(f) < 8 or f[0] != "onlabel generated":
        continue
    c, ratio = f[1], f[7]
    r = float(ratio) if ratio else nan
    worse = float(f[5]) > p99.get(c, nan)
    print(f"  load, {c:>2} clients    {r:5.2f}x llama-server (target >= 1.2x) {'ok' if r >= 1.2 else 'NOT MET'};"
          f" p99 {f[5]} vs {p99.get(c, nan):.0f} ms {'NOT MET' if worse else 'ok'}")
c = ours.get("copilot")
if c:
    fs = c["first_sentence_ms"]
    p50 = nan if fs["p50"] is None else fs["p50"]
    p95 = nan if fs["p95"] is None else fs["p95"]
    print(f"  first verified sentence (quoting path) p50 {p50:.1f} ms, p95 {p95:.1f} ms (target p50 <= 50 ms) {'ok' if p50 <= 50 else 'NOT MET'}")
PY
exit "$LOAD_STATUS"
