#!/usr/bin/env bash
# Side-by-side speed of our candle engine and llama.cpp, in one run, on the
# same GGUF file and the same thread count. See bench/README.md.
#
#   bash bench/speed.sh
#
# Env: ONLABEL_BENCH_THREADS (2), ONLABEL_BENCH_RUNS (3), ONLABEL_BENCH_QUESTIONS (20),
#      ONLABEL_BENCH_MODEL (models/SmolLM2-135M-Instruct.Q4_1.gguf),
#      ONLABEL_BENCH_CACHE (~/.cache/onlabel-bench), CARGO_TARGET_DIR (cargo's default),
#      ONLABEL_SPEED_KEEP (unset: a directory to copy the raw JSON of both engines into;
#      bench/all.sh reads it).
set -euo pipefail
cd "$(dirname "$0")/.."

export ONLABEL_BENCH_THREADS="${ONLABEL_BENCH_THREADS:-2}"
export ONLABEL_BENCH_RUNS="${ONLABEL_BENCH_RUNS:-3}"
export ONLABEL_BENCH_QUESTIONS="${ONLABEL_BENCH_QUESTIONS:-20}"
export ONLABEL_BENCH_MODEL="${ONLABEL_BENCH_MODEL:-$PWD/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
export RAYON_NUM_THREADS="$ONLABEL_BENCH_THREADS"
T="$ONLABEL_BENCH_THREADS"; R="$ONLABEL_BENCH_RUNS"; MODEL="$ONLABEL_BENCH_MODEL"
[[ -f "$MODEL" ]] || { echo "no model at $MODEL: run \`bash models/fetch.sh\`" >&2; exit 2; }

# 1. llama.cpp (built once into the cache, outside the crate's build).
BIN=$(bash bench/llama_cpp.sh | tail -n1)
OUT=$(mktemp -d "${TMPDIR:-/tmp}/onlabel-speed.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

# 2. Build ours before timing anything.
cargo bench --bench llm --no-run >&2

# 3. Ours: engine rows, then the copilot on the eval questions.
echo "== ours (candle, $T threads, $R runs)" >&2
ONLABEL_BENCH_JSON="$OUT/ours.json" cargo bench --bench llm >&2

# 4. llama.cpp on the same file and thread count.
read -r P G < <(python3 -c '
import json,sys
d=json.load(open(sys.argv[1])); c=d.get("copilot",{}).get("engine_cold",{})
p=c.get("prompt_tokens") or 0; g=c.get("generated_tokens") or 0
print(int(p) if p==p else 0, int(g) if g==g else 0)' "$OUT/ours.json")
echo "== llama.cpp ($BIN/llama-bench, -t $T, -r $R)" >&2
PP="128,512,1024"; [[ "$P" -gt 0 ]] && PP="$PP,$P"
"$BIN/llama-bench" -m "$MODEL" -t "$T" -r "$R" -p "$PP" -n 128 -d 0 -o json > "$OUT/ll1.json"
"$BIN/llama-bench" -m "$MODEL" -t "$T" -r "$R" -p 0 -n 128 -d 512 -o json > "$OUT/ll2.json"
if [[ "$P" -gt 0 && "$G" -gt 1 ]]; then
  "$BIN/llama-bench" -m "$MODEL" -t "$T" -r "$R" -p 0 -n "$((G - 1))" -d "$P" -o json > "$OUT/ll3.json"
else
  echo "[]" > "$OUT/ll3.json"
fi

if [[ -n "${ONLABEL_SPEED_KEEP:-}" ]]; then
  mkdir -p "$ONLABEL_SPEED_KEEP" && cp "$OUT"/*.json "$ONLABEL_SPEED_KEEP"/
fi

# 5. The table.
python3 - "$OUT" <<'PY'
import json, statistics, sys, os
out = sys.argv[1]
ours = json.load(open(os.path.join(out, "ours.json")))
ll = []
for f in ("ll1.json", "ll2.json", "ll3.json"):
    ll += json.load(open(os.path.join(out, f)))

def ll_ts(n_prompt, n_gen, depth):
    for r in ll:
        if r["n_prompt"] == n_prompt and r["n_gen"] == n_gen and r.get("n_depth", 0) == depth:
            return statistics.median(r["samples_ts"])
    return float("nan")

def ratio(a, b):
    return a / b if b and b == b and a == a else float("nan")

rows = []
eng = {r["row"]: r["median"] for r in ours.get("engine", [])}
spec = {"pp128": (128, 0, 0), "pp512": (512, 0, 0), "pp1024": (1024, 0, 0), "tg128": (0, 128, 0), "tg128@d512": (0, 128, 512)}
for name, (p, g, d) in spec.items():
    if name in eng:
        rows.append((name, "tok/s", eng[name], ll_ts(p, g, d)))
c = ours.get("copilot")
notes = []
if c:
    e = c["engine_cold"]
    P, G = int(e["prompt_tokens"]), int(e["generated_tokens"])
    pp = ll_ts(P, 0, 0)
    tg = ll_ts(0, G - 1, P) if G > 1 else float("nan")
    ll_ttft = P / pp * 1e3
    ll_total = ll_ttft + ((G - 1) / tg * 1e3 if G > 1 else 0.0)
    rows.append((f"copilot prompt TTFT ({P} tok)", "ms", e["ttft_ms"], ll_ttft))
    rows.append((f"copilot prompt total (+{G} tok)", "ms", e["total_ms"], ll_total))
    notes.append(f"copilot rows: the median eval prompt ({P} tokens) and median answer ({G} tokens), cold (no KV prefix reuse), "
                 f"through the bare engine. llama.cpp figures are computed from llama-bench: TTFT = {P} / pp{P} tok/s, "
                 f"total = TTFT + {G - 1} / tg{G - 1}@d{P} tok/s (llama-bench does not time single requests).")

thr = ours["threads"]; runs = ours["runs"]
print(f"\nOnLabel speed: {os.path.basename(ours['model'])}, {thr} threads, median of {runs} runs, both engines in this run\n")
print(f"{'row':<34} {'unit':>5} {'ours':>10} {'llama.cpp':>10} {'ours/llama.cpp':>15}")
print("-" * 78)
for name, unit, a, b in rows:
    print(f"{name:<34} {unit:>5} {a:>10.1f} {b:>10.1f} {ratio(a, b):>15.2f}")
print("\n(tok/s rows: below 1 means we are slower; ms rows: above 1 means we are slower)")
for n in notes:
    print("\nnote: " + n)
if c:
    print(f"\ncopilot end to end (ours; Copilot::ask with the Grounded generator, the approved prompt's prefix reused from the KV cache),")
    print(f"{c['questions']} questions of evals/labels.jsonl, {c['generated']} answered by the model, median of {runs} runs per question:")
    print(f"{'':<24} {'p50':>9} {'p95':>9}")
    for k, label in [("first_sentence_ms", "first verified sentence"), ("first_generated_ms", "first generated sentence"),
                     ("first_token_ms", "first generated token"),
                     ("total_ms", "full answer"), ("prompt_tokens", "prompt tokens"), ("generated_tokens", "generated tokens")]:
        unit = " ms" if k.endswith("_ms") else ""
        if k in c:
            p50, p95 = (float("nan") if c[k][q] is None else c[k][q] for q in ("p50", "p95"))
            print(f"{label + unit:<24} {p50:>9.1f} {p95:>9.1f}")
    if "model_skipped" in c:
        print(f"model skipped on {c['model_skipped']} of {c['questions']} questions (the quote held every sentence it would be shown)")
PY
