"""Leave-one-writer-out probabilities of the intent head on the 2,951 training
asks, and those asks as an eval suite, so that the head as a stricter layer
can be measured on wording neither the rules nor (for each ask) the head were
fitted to. Same model, features and PV bias as build_heads.py / intent_head.json.

Usage: ~/.cache/onlabel-ml/bin/python training/intent_lowo.py OUT_DIR
Writes OUT_DIR/writers.jsonl (a suite for `onlabel eval`) and
OUT_DIR/writers_scores.jsonl (for training/intent_measure.py).
"""
import json
import os
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("ONLABEL_EMBEDDER", os.path.join(HERE, "..", "models", "minilm"))
os.environ.setdefault("ONLABEL_TRAIN_GLOB", os.path.join(HERE, "intent", "w?.jsonl"))
sys.path.insert(0, HERE)
import build_heads as B  # noqa: E402

warnings.filterwarnings("ignore")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
pv_bias = json.load(open(os.path.join(HERE, "heads", "intent_head.json")))["threshold"]["pv_bias"]
rows = B.load_train()
texts = [r["text"] for r in rows]
y = np.array([B.ROUTES.index(r["route"]) for r in rows])
wr = np.array([r["writer"] for r in rows])
E, Cf = B.embed(texts), B.cheap_feats(texts)
L = np.zeros((len(rows), 4))
for w in B.WRITERS:
    tr, te = wr != w, wr == w
    m = B.IntentModel().fit([texts[i] for i in np.where(tr)[0]], E[tr], Cf[tr], y[tr])
    L[te] = m.logits([texts[i] for i in np.where(te)[0]], E[te], Cf[te])
L[:, B.ROUTES.index("pharmacovigilance")] += pv_bias
P = np.exp(L - L.max(1, keepdims=True))
P /= P.sum(1, keepdims=True)
with open(os.path.join(out, "writers.jsonl"), "w", encoding="utf-8") as s, \
        open(os.path.join(out, "writers_scores.jsonl"), "w", encoding="utf-8") as f:
    for r, p in zip(rows, P):
        s.write(json.dumps({"id": r["id"], "task": "ask", "product": r["product"], "question": r["text"],
                            "expect": {"route": r["route"]}}, ensure_ascii=False) + "\n")
        f.write(json.dumps({"suite": "writers", "id": r["id"], "p": [float(x) for x in p]}) + "\n")
acc = float((L.argmax(1) == y).mean())
print(f"{len(rows)} asks, leave-one-writer-out route accuracy {acc:.3f}", file=sys.stderr)
