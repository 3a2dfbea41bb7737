"""Reference logits of training/heads/intent_head.json for the Rust parity test
(src/guard/intent.rs): the first 40 asks of training/intent/wa.jsonl, 10
non-English asks (the first of each language in turn from wc.jsonl), and a few
edge cases of the tokenisers (empty text, Unicode case and whitespace, digits
that are not ASCII, underscores). Computed from the JSON alone, as
check_heads.py does, with the numpy MiniLM of embed.py.

Usage: ~/.cache/onlabel-ml/bin/python training/intent_reference.py > training/heads/intent_reference.jsonl
"""
import json
import math
import os
import re
import sys
from collections import Counter

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# The worktree's own model (bash models/fetch.sh), unless ONLABEL_EMBEDDER says otherwise.
os.environ.setdefault("ONLABEL_EMBEDDER", os.path.join(HERE, "..", "models", "minilm"))
from embed import embed  # noqa: E402

H = json.load(open(os.path.join(HERE, "heads", "intent_head.json"), encoding="utf-8"))
CV, WV = H["char_vocab"], H["word_vocab"]
CI, WI = np.array(H["char_idf"]), np.array(H["word_idf"])
W = {c: {k: np.array(v) for k, v in H["weights"][c].items()} for c in H["classes"]}
PV = H["classes"].index("pharmacovigilance")


def block(grams, vocab, idf):
    x = np.zeros(len(vocab))
    for g, n in Counter(grams).items():
        if g in vocab:
            x[vocab[g]] = (1 + math.log(n)) * idf[vocab[g]]
    nn = np.linalg.norm(x)
    return x / nn if nn else x


def chars(t):
    o = []
    for w in t.lower().split():
        w = " " + w + " "
        for n in (2, 3, 4):
            o += [w[i:i + n] for i in range(len(w) - n + 1)]
    return o


def words(t):
    w = re.findall(r"\w+", t.lower())
    return w + [a + " " + b for a, b in zip(w, w[1:])]


def cheap(t):
    n = max(1, len(t))
    nonascii = sum(1 for c in t if ord(c) > 127 and c.isalpha())
    return np.array([np.log1p(len(t)) / 6.0, 1.0 if re.search(r"\d", t) else 0.0, 1.0 if "?" in t else 0.0,
                     min(1.0, 10.0 * nonascii / n)], np.float32)


def logits(t, e):
    xc, xw, c = block(chars(t), CV, CI), block(words(t), WV, WI), cheap(t)
    z = np.array([W[k]["char"] @ xc + W[k]["word"] @ xw + W[k]["minilm"] @ e + W[k]["cheap"] @ c
                  for k in H["classes"]]) + np.array(H["bias"])
    z[PV] += H["threshold"]["pv_bias"]
    return z


def rows(name):
    return [json.loads(l) for l in open(os.path.join(HERE, "intent", name), encoding="utf-8") if l.strip()]


cases = [(r["id"], r["text"]) for r in rows("wa.jsonl")[:40]]
by_lang = {}
for r in rows("wc.jsonl"):
    if r["lang"] != "en":
        by_lang.setdefault(r["lang"], []).append(r)
picked = []
while len(picked) < 10:
    for lang in sorted(by_lang):
        if by_lang[lang] and len(picked) < 10:
            picked.append(by_lang[lang].pop(0))
cases += [(r["id"], r["text"]) for r in picked]
cases += [
    ("edge-empty", ""),
    ("edge-case", "İSTANBUL ΣΟΦΟΣ Straße ÉTÉ?"),
    ("edge-space", "dose\u00a0of\u2003Humira\x1cfor\u3000kids\tand\nteens"),
    ("edge-digits", "x² ½ tab ٣ times_daily 10mg"),
    ("edge-nfd", "la dose de Lipitor pendant la grossesse, l'e\u0301te\u0301 dernier"),
    ("edge-repeat", "price price price PRICE of the pen pen?"),
]
E = embed([t for _, t in cases], verbose=False)
for (i, t), e in zip(cases, E):
    z = logits(t, e)
    z0 = logits(t, np.zeros(384))
    print(json.dumps({"id": i, "text": t, "logits": [round(float(v), 6) for v in z],
                      "logits_no_embedding": [round(float(v), 6) for v in z0]}, ensure_ascii=False))
