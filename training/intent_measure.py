"""Figures for issue 18's intent head on the dev suites (never evals/sealed/):
the current pipeline's routes, the head alone, and the head as a stricter
layer (rules/pipeline say answer or medical and the head says refused with
p >= tau -> refused; pharmacovigilance and refused are never changed).

Inputs:
  REPORTS  a folder holding SUITE/report.json for each dev suite, from
           `onlabel eval --index ... --suite evals/SUITE.jsonl --extractive --report REPORTS/SUITE`
           (its metrics.outcomes give every case's route);
  SCORES   the head's probabilities per ask, written by the Rust test
           `ONLABEL_INTENT_SCORES=SCORES cargo test --release --locked --lib
           guard::intent::tests::on_the_dev_suites`.

Usage: python3 training/intent_measure.py REPORTS SCORES [SUITE.jsonl ...]
(default: the dev suites in evals/; a suite's name is its file name without
.jsonl, the name REPORTS and SCORES use). Variants without the embedding are
shown when SCORES holds `p_no_embedding`.
Figures as scripts/eval_summary.py defines them: route accuracy; PV recall
(cases expecting only PV routed there); false alarm (answer-only cases routed
to PV or Medical); policy_refused (refused-only cases refused); plus
ans_refused (answer-only cases refused: the cost a stricter layer can add,
which false alarm does not count).
"""
import json
import os
import sys

ROUTES = ["answer", "medical", "pharmacovigilance", "refused"]
SUITES = ["labels", "guard", "guard_probe", "dev_reports", "dev_offlabel", "sentences_dev", "demo"]
TAUS = [0.5, 0.6, 0.7, 0.8, 0.9]
HERE = os.path.dirname(os.path.abspath(__file__))
EVALS = os.path.join(HERE, "..", "evals")

reports, scores_path = sys.argv[1], sys.argv[2]
paths = sys.argv[3:] or [os.path.join(EVALS, s + ".jsonl") for s in SUITES]
SUITES = [os.path.basename(p)[:-len(".jsonl")] for p in paths]
SUITE_PATH = dict(zip(SUITES, paths))
scores = {}
for l in open(scores_path, encoding="utf-8"):
    d = json.loads(l)
    scores[(d["suite"], d["id"])] = d


def expected(suite):
    out = {}
    for l in open(SUITE_PATH[suite], encoding="utf-8"):
        l = l.strip()
        if not l or l.startswith("//"):
            continue
        c = json.loads(l)
        r = c.get("expect", {}).get("route")
        if c.get("task") == "ask" and r is not None:
            out[c["id"]] = set([r] if isinstance(r, str) else r)
    return out


def figures(exp, route):
    n = ok = pv_n = pv_ok = ans_n = fa = ans_ref = pol_n = pol_ok = 0
    for i, e in exp.items():
        a = route[i]
        n += 1
        ok += a in e
        if e == {"pharmacovigilance"}:
            pv_n += 1
            pv_ok += a == "pharmacovigilance"
        if e == {"answer"}:
            ans_n += 1
            fa += a in ("pharmacovigilance", "medical")
            ans_ref += a == "refused"
        if e == {"refused"}:
            pol_n += 1
            pol_ok += a == "refused"
    return dict(n=n, ok=ok, pv_n=pv_n, pv_ok=pv_ok, ans_n=ans_n, fa=fa, ans_ref=ans_ref, pol_n=pol_n, pol_ok=pol_ok)


def line(name, f):
    r = lambda a, b: "  n/a" if not b else f"{a / b:.3f}"
    return (f"  {name:18s} route={r(f['ok'], f['n'])} pv_recall={r(f['pv_ok'], f['pv_n'])} "
            f"false_alarm={r(f['fa'], f['ans_n'])} ({f['fa']}/{f['ans_n']}) policy_refused={r(f['pol_ok'], f['pol_n'])} "
            f"({f['pol_ok']}/{f['pol_n']}) ans_refused={f['ans_ref']}")


def add(t, f):
    for k, v in f.items():
        t[k] = t.get(k, 0) + v


def stricter(base, p, tau):
    return "refused" if base in ("answer", "medical") and p[ROUTES.index("refused")] >= tau else base


def argmax(p):
    return ROUTES[max(range(4), key=lambda k: p[k])]


no_emb = all("p_no_embedding" in d for d in scores.values())
variants = ["pipeline", "head"] + [f"stricter@{t}" for t in TAUS]
if no_emb:
    variants[2:2] = ["head_no_emb"]
    variants += [f"stricter_no_emb@{t}" for t in TAUS]
total = {v: {} for v in variants}
for suite in SUITES:
    exp = expected(suite)
    rep = json.load(open(os.path.join(reports, suite, "report.json"), encoding="utf-8"))
    base = {o["id"]: o["route"] for o in rep["metrics"]["outcomes"]}
    missing = [i for i in exp if i not in base or (suite, i) not in scores]
    if missing:
        sys.exit(f"{suite}: no route or no score for {missing[:5]}")
    routes = {"pipeline": base, "head": {i: argmax(scores[(suite, i)]["p"]) for i in exp}}
    for t in TAUS:
        routes[f"stricter@{t}"] = {i: stricter(base[i], scores[(suite, i)]["p"], t) for i in exp}
    if no_emb:
        routes["head_no_emb"] = {i: argmax(scores[(suite, i)]["p_no_embedding"]) for i in exp}
        for t in TAUS:
            routes[f"stricter_no_emb@{t}"] = {i: stricter(base[i], scores[(suite, i)]["p_no_embedding"], t) for i in exp}
    print(f"{suite} ({len(exp)} asks)")
    for v in variants:
        f = figures(exp, routes[v])
        add(total[v], f)
        print(line(v, f))
print("all suites (micro)")
for v in variants:
    print(line(v, total[v]))
