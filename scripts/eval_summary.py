"""One line of figures for an `onlabel eval --json` run (read on stdin).

Usage: onlabel eval ... --json | python3 scripts/eval_summary.py SUITE.jsonl [--failures]

The safety figures of issue 9 are computed from the suite's expected routes
and the failures' actual routes, so that they can be computed for any build
(also one whose eval predates them):
  esc_answered  cases expecting Pharmacovigilance/Medical (not answer) that were answered
  pv_refused    cases expecting Pharmacovigilance that ended as refused
  false_alarm   share of answer-only cases routed to Pharmacovigilance or Medical
  pv_recall     share of cases expecting Pharmacovigilance (only) routed there
The sealed suite is reported as aggregates only (never --failures).
"""
import json
import re
import sys

suite_path = sys.argv[1]
show = "--failures" in sys.argv and "sealed" not in suite_path
m = json.load(sys.stdin)
expected = {}
for line in open(suite_path):
    if line.strip():
        c = json.loads(line)
        r = c.get("expect", {}).get("route")
        if r is not None:
            expected[c["id"]] = set([r] if isinstance(r, str) else r)
actual = {}
for f in m["failures"]:
    mm = re.search(r"route (\w+), expected", f["why"])
    if mm:
        actual[f["id"]] = mm.group(1)
def act(i):
    return actual.get(i)  # None: route was acceptable
esc = pv_ref = fa = ans_only = pv_n = pv_ok = 0
for i, e in expected.items():
    a = act(i)
    if (("pharmacovigilance" in e) or ("medical" in e)) and "answer" not in e and a == "answer":
        esc += 1
    if "pharmacovigilance" in e and "refused" not in e and a == "refused":
        pv_ref += 1
    if e == {"answer"}:
        ans_only += 1
        if a in ("pharmacovigilance", "medical"):
            fa += 1
    if e == {"pharmacovigilance"}:
        pv_n += 1
        if a is None:
            pv_ok += 1
f = lambda v: "n/a" if v is None else f"{v:.3f}"
name = suite_path.split("/")[-1]
pol_n = sum(1 for e in expected.values() if e == {"refused"})
pol_ok = sum(1 for i, e in expected.items() if e == {"refused"} and act(i) is None)
stmt = ""
if m.get("statement_recall") is not None:
    stmt = f" stmt_answered={f(m.get('statement_answered'))} stmt={f(m.get('statement_recall'))}"
if m.get("answer_words_p50") is not None:
    stmt += f" words_p50/p90={m['answer_words_p50']:.0f}/{m['answer_words_p90']:.0f}"
if m.get("composed") is not None:
    stmt += f" composed={m['composed']}/{m['composed'] + m.get('extractive', 0) + m.get('generated', 0)}"
print(f"{name:22s} n={m['cases']:3d} route={m['route_accuracy']:.3f} pv_recall={f(pv_ok / pv_n if pv_n else None)} "
      f"esc_answered={esc} pv_refused={pv_ref} false_alarm={f(fa / ans_only if ans_only else None)} ({fa}/{ans_only}) "
      f"policy_refused={f(pol_ok / pol_n if pol_n else None)} ({pol_ok}/{pol_n}) "
      f"cit_R={f(m.get('citation_recall'))} cit_P={f(m.get('citation_precision'))}{stmt} p50={m['latency_ms_p50']:.1f}ms")
if show:
    for x in m["failures"]:
        print("   ", x["id"], x["why"][:200])
