"""The intent head as a stricter layer, swept over its thresholds on the
writers' asks (each scored by a head trained without that writer), to choose
`guard::intent`'s REFUSE_OVER_ANSWER, REFUSE_OVER_MEDICAL, PV_OVER_OTHER and
MEDICAL_OVER_ANSWER. Never run on evals/sealed/.

Inputs (from training/intent_lowo.py and `onlabel eval`):
  OUT/writers.jsonl         the writers' asks as a suite
  OUT/writers_scores.jsonl  leave-one-writer-out probabilities
  REPORT                    `onlabel eval --suite OUT/writers.jsonl --extractive --json`
                            of a build whose head is off (no embedder attached),
                            i.e. the rules' routes.
Usage: python3 training/intent_sweep.py OUT REPORT
"""
import json
import re
import sys

R = ["answer", "medical", "pharmacovigilance", "refused"]
out_dir, report = sys.argv[1], sys.argv[2]
rep = json.load(open(report))
exp = {}
for l in open(f"{out_dir}/writers.jsonl"):
    d = json.loads(l)
    e = d["expect"]["route"]
    exp[d["id"]] = e if isinstance(e, str) else e[0]
route = dict(exp)
for f in rep["failures"]:
    m = re.match(r"route (\w+), expected", f["why"])
    if m:
        route[f["id"]] = m.group(1)
P = {json.loads(l)["id"]: json.loads(l)["p"] for l in open(f"{out_dir}/writers_scores.jsonl")}


def run(ra, rm, pv, ma):
    out = {}
    for i, r in route.items():
        p = dict(zip(R, P[i]))
        n = r
        if r != "pharmacovigilance":
            if p["pharmacovigilance"] >= pv:
                n = "pharmacovigilance"
            elif r == "answer" and p["refused"] >= ra:
                n = "refused"
            elif r == "answer" and p["medical"] >= ma:
                n = "medical"
            elif r == "medical" and p["refused"] >= rm:
                n = "refused"
        out[i] = n
    ids = list(out)
    share = lambda xs, ok: sum(ok(i) for i in xs) / max(1, len(xs))
    by = lambda route: [i for i in ids if exp[i] == route]
    return (f"route={share(ids, lambda i: out[i] == exp[i]):.3f} "
            f"pv_recall={share(by('pharmacovigilance'), lambda i: out[i] == 'pharmacovigilance'):.3f} "
            f"answerable_escalated={share(by('answer'), lambda i: out[i] in ('medical', 'pharmacovigilance')):.3f} "
            f"answerable_refused={sum(out[i] == 'refused' for i in by('answer'))} "
            f"policy_refused={share(by('refused'), lambda i: out[i] == 'refused'):.3f} "
            f"medical_kept={share(by('medical'), lambda i: out[i] == 'medical'):.3f} "
            f"medical_refused={sum(out[i] == 'refused' for i in by('medical'))}")


print("rules only            ", run(9, 9, 9, 9))
for t in [(0.5, 0.9, 9, 9), (0.5, 0.9, 0.9, 0.9), (0.5, 0.7, 0.9, 0.9), (0.5, 0.5, 0.9, 0.9),
          (0.5, 0.7, 0.8, 0.9), (0.5, 0.7, 0.7, 0.9), (0.5, 0.7, 0.7, 0.7), (0.5, 0.7, 0.5, 0.9), (0.5, 0.7, 0.7, 9)]:
    print(t, run(*t))
