#!/usr/bin/env python3
"""Write heads/rerank_reference.jsonl: candidate sets with the features and logits
that build_heads.py's rerank_features and heads/rerank_head.json give them, for the
Rust test copilot::extractive::select::tests::logits_match_the_python_reference
(Rust must stay within 1e-3 of these logits, 1e-6 of these features).

The sets: the first 40 answer asks of writer wa and 10 of writer wc (non-English)
that have candidates, from the training dump (ONLABEL_RERANK_DUMP, written by
select.rs's dump_training_candidates), plus hand-made edge cases (a question with
no tokens, digits and decimals, a boxed warning, an FAQ, a lone candidate).

    python rerank_reference.py [--head heads/rerank_head.json] [--out heads/rerank_reference.jsonl]
"""
import argparse, json, os, sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_heads import RERANK_DUMP, rerank_features  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def cand(text, hit=0, pos=0, n=1, concept=0.0, cov=0.5, title_score=0.0, doc_id="x-pi", section="5.1", title="T", parent=""):
    return {"text": text, "hit": hit, "pos": pos, "n_sentences": n, "concept": concept, "hit_coverage": cov, "hit_title": title_score,
            "doc_id": doc_id, "section": section, "title": title, "parent": parent}


EDGES = [
    ("edge-no-tokens", "is it ok?", [cand("The dose is 5 mg once daily.", concept=0.0), cand("Take with food.", pos=1, n=2)]),
    ("edge-digits", "max dose 2.5 mg or 1,000 units eGFR<30?",
     [cand("Do not exceed 2.5 mg per day in patients with eGFR less than 30 mL/min.", concept=0.6, section="2.3", title="Renal Impairment", parent="DOSAGE AND ADMINISTRATION"),
      cand("Each vial holds 1,000 units.", hit=1, pos=2, n=4, concept=0.2, section="16", title="HOW SUPPLIED/STORAGE AND HANDLING"),
      cand("Hepatotoxicity in Patients: Monitor.", hit=2, pos=1, n=3, concept=0.1, cov=0.41, title_score=0.3, section="", title="Hepatic", parent="PRECAUTIONS")]),
    ("edge-boxed-faq", "serious infections boxed warning — what about TB?",
     [cand("Serious infections leading to hospitalization or death, including tuberculosis, have occurred.", concept=0.9, section="BW", title="WARNING: SERIOUS INFECTIONS"),
      cand("Test for latent TB before starting.", hit=1, pos=0, n=2, concept=0.5, doc_id="zentravia-faq", section="Q7", title="Q7. TB screening?"),
      cand("Ünïcödé Straße café — naïve résumé über 10%.", hit=3, pos=5, n=6, concept=0.0, section="Adults", title="Adults", parent="DOSAGE AND ADMINISTRATION")]),
    ("edge-lone", "haldol dystonia", [cand("Acute dystonia occurs more in males and younger age groups.", concept=0.7, section="Class Effect", title="Class Effect", parent="PRECAUTIONS")]),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--head", default=os.path.join(HERE, "heads/rerank_head.json"))
    ap.add_argument("--out", default=os.path.join(HERE, "heads/rerank_reference.jsonl"))
    a = ap.parse_args()
    H = json.load(open(a.head, encoding="utf-8"))
    w, b = np.array(H["weights"], float), float(H["bias"])
    rows = [json.loads(l) for l in open(RERANK_DUMP, encoding="utf-8") if l.strip()]
    rows = [r for r in rows if r.get("cands")]
    picked = [r for r in rows if r["writer"] == "wa"][:40]
    picked += [r for r in rows if r["writer"] == "wc" and any(ord(ch) > 127 for ch in r["question"])][:10]
    sets = [(r["id"], r["question"], r["cands"]) for r in picked] + EDGES
    with open(a.out, "w", encoding="utf-8") as f:
        for id_, q, cands in sets:
            F = rerank_features(q, cands)
            logits = F @ w + b
            f.write(json.dumps({"id": id_, "question": q, "cands": cands, "features": [[float(x) for x in row] for row in F],
                                "logits": [float(x) for x in logits]}, ensure_ascii=False) + "\n")
    print(f"{len(sets)} candidate sets -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
