"""Score the dev suites from heads/intent_head.json (or the file given) with a from-scratch inference (checks the feature spec)."""
import json, math, re, sys, numpy as np
from collections import Counter
from build_heads import load_suite, SUITES, ROUTES, cheap_feats  # common.py was folded into build_heads.py
from embed import embed
H = json.load(open(sys.argv[1] if len(sys.argv) > 1 else 'heads/intent_head.json'))
cv, wv = H['char_vocab'], H['word_vocab']; ci, wi = np.array(H['char_idf']), np.array(H['word_idf'])
W = {c: H['weights'][c] for c in H['classes']}
def block(grams, vocab, idf):
    x = np.zeros(len(vocab))
    for g, n in Counter(grams).items():
        if g in vocab: x[vocab[g]] = (1 + math.log(n)) * idf[vocab[g]]
    nn = np.linalg.norm(x); return x / nn if nn else x
def chars(t):
    o=[]
    for w in t.lower().split():
        w=' '+w+' '
        for n in (2,3,4): o += [w[i:i+n] for i in range(len(w)-n+1)]
    return o
def words(t):
    w=re.findall(r"\w+", t.lower()); return w+[a+' '+b for a,b in zip(w,w[1:])]
def route(t, e, c, bias):
    xc, xw = block(chars(t), cv, ci), block(words(t), wv, wi)
    z = np.array([np.dot(W[k]['char'], xc) + np.dot(W[k]['word'], xw) + np.dot(W[k]['minilm'], e) + np.dot(W[k]['cheap'], c) for k in H['classes']]) + np.array(H['bias'])
    z[2] += bias; return H['classes'][int(z.argmax())]
import sys
for bias in [float(b) for b in sys.argv[1:]] or [0.0, H["threshold"]["pv_bias"]]:
    tot = ok = 0; parts = []
    pvt = pvh = 0; fa = 0
    for s in SUITES:
        cs = load_suite(s); q = [c['question'] for c in cs]; E = embed(q, verbose=False); C = cheap_feats(q)
        pr = [route(t, e, c, bias) for t, e, c in zip(q, E, C)]
        o = sum(p in c['routes'] for p, c in zip(pr, cs)); ok += o; tot += len(cs); parts.append(f"{s}={o/len(cs):.3f}")
        for p, c in zip(pr, cs):
            if c['routes'] == ['pharmacovigilance']: pvt += 1; pvh += p == 'pharmacovigilance'
            if 'pharmacovigilance' not in c['routes']: fa += p == 'pharmacovigilance'
    print(f"pv_bias={bias}: " + " ".join(parts) + f" | micro={ok/tot:.3f} | PV recall {pvh}/{pvt}={pvh/pvt:.3f}, non-PV sent to PV {fa}")
