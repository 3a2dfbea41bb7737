#!/usr/bin/env python3
"""Rebuild OnLabel's learned heads (intent_head.json, rerank_head.json) from the
training asks (training/intent/w?.jsonl) and the label texts.

Uses embed.py's numpy port of all-MiniLM-L6-v2 as run by index::dense::Embedder
(tokenizer.json, [CLS]/[SEP], truncation 256, mean pooling over the mask, L2);
holds the sentence splitter, the reranker pair features and both logistic heads.
Deterministic (lbfgs, fixed seed). Needs numpy, scipy, scikit-learn, tokenizers,
safetensors. Embeddings are cached under ./cache.

    python build_heads.py [--out out/] [--only intent|rerank] [--rerank-fit listwise|pointwise]
Paths: ONLABEL_EMBEDDER (models/minilm), ONLABEL_TRAIN_GLOB, ONLABEL_PI_DIR, ONLABEL_DEMO_DIR,
ONLABEL_RERANK_DUMP (training/cache/rerank_candidates.jsonl).

The sentence rerank head (copilot::extractive::select) learns from the candidate
sets the Rust extractive generator sees; write them first (BM25 index of both
corpora, as scripts/eval-all.sh builds it):
    onlabel ingest --corpus ../shared/data/pi --corpus corpora/demo --index /tmp/all-index
    ONLABEL_RERANK_INDEX=/tmp/all-index ONLABEL_RERANK_DUMP=training/cache/rerank_candidates.jsonl \
      cargo test --release --locked --lib copilot::extractive::select::tests::dump -- --ignored
then `python build_heads.py --only rerank --out heads` and `python rerank_reference.py`.
"""
import hashlib, json, math, os, re, sys, glob
from collections import Counter, defaultdict
import numpy as np
SEED = 0
PV_RECALL_TARGET = 0.97

# The numpy MiniLM (the same forward pass as index::dense::Embedder) lives in
# embed.py beside this file; check_heads.py and intent_reference.py use it too.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from embed import embed  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------- from common.py


ROUTES = ["answer", "medical", "pharmacovigilance", "refused"]
WRITERS = ["wa", "wb", "wc", "wd"]
SUITES = ["labels", "guard", "guard_probe", "dev_reports", "dev_offlabel", "demo", "sentences_dev"]
TRAIN_GLOB = os.environ.get("ONLABEL_TRAIN_GLOB", os.path.join(REPO, "training/intent/w?.jsonl"))
EVAL_DIR = os.path.join(REPO, "evals")


def load_train():
    rows = []
    for f in sorted(glob.glob(TRAIN_GLOB)):
        rows += [json.loads(l) for l in open(f, encoding="utf-8") if l.strip()]
    return rows


def load_suite(name):
    out = []
    for l in open(f"{EVAL_DIR}/{name}.jsonl", encoding="utf-8"):
        if not l.strip():
            continue
        d = json.loads(l)
        if d.get("task") != "ask":
            continue
        r = d["expect"].get("route")
        d["routes"] = r if isinstance(r, list) else [r]
        out.append(d)
    return out


DIGIT = re.compile(r"\d")


def cheap_feats(texts):
    """Cheap extra features: log length in chars, has a digit, has a question mark,
    share of non-ASCII letters (a crude non-English cue)."""
    f = []
    for t in texts:
        n = max(1, len(t))
        nonascii = sum(1 for c in t if ord(c) > 127 and c.isalpha())
        f.append([np.log1p(len(t)) / 6.0, 1.0 if DIGIT.search(t) else 0.0, 1.0 if "?" in t else 0.0,
                  min(1.0, 10.0 * nonascii / n)])
    return np.array(f, np.float32)

# ---------------------------------------------------------------- from labels.py

PI_DIR = os.environ.get("ONLABEL_PI_DIR", os.path.join(os.path.dirname(REPO), "shared/data/pi/text"))
DEMO_DIR = os.environ.get("ONLABEL_DEMO_DIR", os.path.join(REPO, "corpora/demo"))
DEMO_DOCS = ["zentravia-pi.md", "zentravia-faq.md"]  # approved, promotional (not the withdrawn 2024 PI, not the medical letter)

NUM_HEAD = re.compile(r"^(\d{1,2}(?:\.\d{1,2})*)\s+(\S.*)$")
ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|vs|Dr|approx|No|Fig|al|etc|Inc|St|mg|U\.S|min|max|ca)\.|\b[A-Z]\.)$")
SPLIT = re.compile(r"(?<=[.!?])[\"”’)]?\s+(?=[A-Z0-9\[(•\"“¿¡])")


def product_of(fname):
    return os.path.basename(fname).split("_")[0]


def _join_lines(lines):
    """Re-join cross-references broken over lines ('[see\\nWarnings (5.1)\\n].')."""
    out = []
    depth = 0
    for ln in lines:
        s = ln.rstrip()
        if out and (depth > 0 or (s.strip()[:1] in ("]", ",", ";", ")") and out[-1].strip())):
            out[-1] = out[-1].rstrip() + " " + s.strip()
        else:
            out.append(s)
        depth = max(0, out[-1].count("[") - out[-1].count("]"))
    return out


def _is_heading(s, md):
    if md:
        return s.startswith("#")
    if "|" in s or s.startswith(("•", "-", "*")) or len(s) > 110:
        return False
    if NUM_HEAD.match(s) and not s.rstrip().endswith((".", ":")):
        return True
    letters = [c for c in s if c.isalpha()]
    if letters and sum(c.isupper() for c in letters) / len(letters) > 0.8 and len(s) < 90:
        return True
    # short title-case line without final punctuation (haloperidol sub-headings)
    words = s.split()
    if 1 <= len(words) <= 9 and not s.endswith((".", ":", ";", ",")) and s[:1].isupper():
        return True
    return False


def split_sentences(text):
    parts = []
    buf = ""
    for piece in SPLIT.split(text):
        buf = (buf + " " + piece).strip() if buf else piece
        if ABBREV.search(buf):
            continue
        parts.append(buf)
        buf = ""
    if buf:
        parts.append(buf)
    return [p.strip() for p in parts if len(p.strip()) >= 3]


def parse_doc(path, product, doc):
    md = path.endswith(".md")
    lines = open(path, encoding="utf-8").read().split("\n")
    lines = _join_lines(lines)
    cands = []
    section, heading, major = "", "", ""
    for ln in lines:
        s = ln.strip()
        if not s or s.startswith("FICTIONAL DEMO DOCUMENT"):
            continue
        if _is_heading(s, md):
            h = s.lstrip("#").strip()
            m = NUM_HEAD.match(h)
            level = s.count("#") if md else 0
            if m:
                section = m.group(1)
                if "." not in section:
                    major = h
                heading = h if "." not in section else (major + " > " + h if major else h)
            else:
                if md and level <= 2 or (not md and sum(c.isupper() for c in h if c.isalpha()) > 0.8 * max(1, sum(c.isalpha() for c in h))):
                    major = h
                    heading = h
                    section = h
                else:
                    heading = (major + " > " + h) if major else h
                    section = heading
            continue
        if "|" in s or s.startswith(("•", "- ", "* ")) or re.match(r"^\(?\d+[.)]\s", s):
            sents = [s]  # table row / list item: one candidate
        else:
            sents = split_sentences(s)
        for t in sents:
            cands.append({"product": product, "doc": doc, "section": section, "heading": heading, "text": t})
    return cands


def load_all():
    cands = []
    for f in sorted(glob.glob(os.path.join(PI_DIR, "*.txt"))):
        p = product_of(f)
        cands += parse_doc(f, p, p + "-pi")
    for d in DEMO_DOCS:
        cands += parse_doc(os.path.join(DEMO_DIR, d), "zentravia", d[:-3])
    for i, c in enumerate(cands):
        c["id"] = i
    return cands


def norm(s):
    return re.sub(r"\s+", " ", s.replace("’", "'").replace("“", '"').replace("”", '"')).strip().lower()


WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def ngrams(s, n=4):
    w = WORD.findall(norm(s))
    return {tuple(w[i:i + n]) for i in range(max(1, len(w) - n + 1))}


def overlaps(quote, cand):
    """Does the candidate sentence overlap the verbatim quote?"""
    q, c = norm(quote), norm(cand)
    if q in c or (len(c) >= 25 and c in q):
        return True
    qg = ngrams(q)
    if not qg:
        return False
    return len(qg & ngrams(c)) / len(qg) >= 0.5


# ---------------------------------------------------------------- sentence rerank features (copilot::extractive::select)
# The features are computed over the candidate set the Rust extractive generator
# sees (every quotable sentence of the leading passages that clear its coverage
# bar), which `dump_training_candidates` in src/copilot/extractive/select.rs
# writes for the writers' answer asks (RERANK_DUMP below). Everything but the
# candidates' `concept` share (the Rust analyser's synonyms) is recomputed here
# from text, exactly as select.rs does; rerank_reference.py pins the two together.

RERANK_DUMP = os.environ.get("ONLABEL_RERANK_DUMP", os.path.join(REPO, "training/cache/rerank_candidates.jsonl"))
TOK = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)?")
STOP = set("""a an the of to in on for and or is are was were be been it its this that these those with by at as from
do does did can could should would may might will shall not no what which who whom how when where why if than then
there their they them he she his her we you your i me my our us pt pts patient patients dr doc label pi says say
about any some also just still get got ok okay hi pls please tell know want wants asked asking question drug""".split())


def toks(s):
    """lower-case, [a-z0-9]+(?:[.,][0-9]+)? runs, minus STOP, alphabetic tokens cut to 5 chars."""
    return [t[:5] if t.isascii() and t.isalpha() else t for t in TOK.findall(s.lower()) if t not in STOP]


SECTION_KINDS = ["boxed", "indications", "dosage", "forms", "contraindications", "warnings", "adverse", "interactions",
                 "populations", "abuse", "overdosage", "description", "pharmacology", "toxicology", "studies",
                 "supplied", "counseling", "faq", "other"]
KIND_WORDS = [("dosage", ["dosage", "dose and admin"]), ("forms", ["dosage forms"]), ("contraindications", ["contraindications"]),
              ("warnings", ["warnings and precautions", "warnings", "precautions"]),
              ("adverse", ["adverse"]), ("interactions", ["interactions"]),
              ("populations", ["specific populations", "use in specific", "pregnancy", "nursing", "pediatric", "geriatric"]),
              ("abuse", ["abuse", "dependence"]), ("overdosage", ["overdos"]), ("description", ["description"]),
              ("pharmacology", ["pharmacology", "pharmacokinetics", "mechanism"]),
              ("toxicology", ["toxicology", "carcinogenesis"]), ("studies", ["clinical studies"]),
              ("supplied", ["how supplied", "storage", "handling"]), ("counseling", ["counseling", "patient information", "medication guide"]),
              ("boxed", ["warning:", "boxed"]), ("indications", ["indications"])]
NUM_KIND = {"1": "indications", "2": "dosage", "3": "forms", "4": "contraindications", "5": "warnings", "6": "adverse",
            "7": "interactions", "8": "populations", "9": "abuse", "10": "overdosage", "11": "description",
            "12": "pharmacology", "13": "toxicology", "14": "studies", "15": "other", "16": "supplied", "17": "counseling"}


def section_kind(doc_id, section, title, parent):
    if doc_id.endswith("-faq"):
        return "faq"
    if section == "BW":
        return "boxed"
    m = re.match(r"^([0-9]{1,2})(\.|$)", section)
    if m and m.group(1) in NUM_KIND:
        return NUM_KIND[m.group(1)]
    h = (parent + " > " + title).lower()
    for k, words in KIND_WORDS:
        if any(w in h for w in words):
            return "forms" if k == "dosage" and "forms" in h else k
    return "other"


def bm25(q, docs, k1=1.2, b=0.75):
    """BM25 and idf coverage of each token list in docs for the question token set q (idf over docs)."""
    counts = [Counter(d) for d in docs]
    n = len(docs)
    avg = max(1.0, sum(len(d) for d in docs) / max(1, n))
    qt = sorted(q)
    idf = []
    for t in qt:
        df = sum(1 for c in counts if t in c)
        idf.append(math.log(1 + (n - df + 0.5) / (df + 0.5)) if df else 0.0)
    total = sum(idf) or 1.0
    sc, cov = [], []
    for c, d in zip(counts, docs):
        s = cv = 0.0
        for t, w in zip(qt, idf):
            f = c.get(t)
            if f:
                s += w * f * (k1 + 1) / (f + k1 * (1 - b + b * len(d) / avg))
                cv += w
        sc.append(s)
        cov.append(cv / total)
    return sc, cov


DIGIT_ASCII = re.compile(r"[0-9]")
FEATURES = ["concept", "concept_rel", "bm25_rel", "bm25_head_rel", "cover", "cover_head", "hit_rank", "hit_coverage", "hit_title",
            "first", "pos_rel", "log_len", "num_both", "num_shared"] + ["kind_" + k for k in SECTION_KINDS]
RANK_SCALE = 5.0


def rerank_features(question, cands):
    """One row per candidate, in FEATURES order (see select.rs's module docs)."""
    if not cands:
        return np.zeros((0, len(FEATURES)))
    qt = toks(question)
    q = set(qt)
    qnum = {t for t in qt if DIGIT_ASCII.search(t)}
    docs = [toks(c["text"]) for c in cands]
    hdocs = [toks(f"{c['parent']} {c['title']} {c['text']}") for c in cands]
    bm, cov = bm25(q, docs)
    bmh, covh = bm25(q, hdocs)
    bmx, bmhx = max(bm), max(bmh)
    cmax = max(c["concept"] for c in cands)
    qd = bool(DIGIT_ASCII.search(question))
    F = np.zeros((len(cands), len(FEATURES)))
    for i, c in enumerate(cands):
        F[i, :14] = [c["concept"], c["concept"] - cmax, bm[i] / (bmx + 1e-9), bmh[i] / (bmhx + 1e-9), cov[i], covh[i],
                     c["hit"] / RANK_SCALE, c["hit_coverage"], c["hit_title"], 1.0 if c["pos"] == 0 else 0.0,
                     c["pos"] / max(1, c["n_sentences"]), math.log1p(len(c["text"])) / 6.0,
                     1.0 if qd and DIGIT_ASCII.search(c["text"]) else 0.0, 1.0 if any(t in qnum for t in docs[i]) else 0.0]
        F[i, 14 + SECTION_KINDS.index(section_kind(c["doc_id"], c["section"], c["title"], c["parent"]))] = 1.0
    return F


# ---------------------------------------------------------------- training
import argparse
import warnings

from scipy.sparse import hstack as sp_hstack, csr_matrix
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

WORD_RE = re.compile(r"\w+")
CHAR_N = (2, 4)
CHAR_MAX, WORD_MAX, INTENT_C, RERANK_C = 10000, 4000, 10.0, 1.0
CHEAP_SPEC = ["ln(1+chars)/6", "1 if any digit", "1 if '?' present", "min(1, 10 * non-ASCII letters / chars)"]


def char_ngrams(t):
    """lowercase, split on whitespace, pad each word as ' word ', all char n-grams n=2..4."""
    out = []
    for w in t.lower().split():
        w = " " + w + " "
        for n in range(CHAR_N[0], CHAR_N[1] + 1):
            out += [w[i:i + n] for i in range(len(w) - n + 1)]
    return out


def word_ngrams(t):
    """lowercase \\w+ tokens (Unicode), unigrams and space-joined bigrams."""
    w = WORD_RE.findall(t.lower())
    return w + [a + " " + b for a, b in zip(w, w[1:])]


class IntentModel:
    def fit(self, texts, E, Cf, y):
        self.cv = TfidfVectorizer(analyzer=char_ngrams, min_df=2, sublinear_tf=True, max_features=CHAR_MAX).fit(texts)
        self.wv = TfidfVectorizer(analyzer=word_ngrams, min_df=2, sublinear_tf=True, max_features=WORD_MAX).fit(texts)
        self.lr = LogisticRegression(C=INTENT_C, max_iter=5000).fit(self.X(texts, E, Cf), y)
        return self

    def X(self, texts, E, Cf):
        return sp_hstack([self.cv.transform(texts), self.wv.transform(texts), csr_matrix(np.hstack([E, Cf]))]).tocsr()

    def logits(self, texts, E, Cf):
        return self.X(texts, E, Cf) @ self.lr.coef_.T + self.lr.intercept_


def r6(a):
    return [float(f"{x:.6g}") for x in np.asarray(a).ravel()]


def build_intent(out_dir):
    rows = load_train()
    texts = [r["text"] for r in rows]
    y = np.array([ROUTES.index(r["route"]) for r in rows])
    wr = np.array([r["writer"] for r in rows])
    E, Cf = embed(texts), cheap_feats(texts)
    L = np.zeros((len(rows), 4))
    for w in WRITERS:  # leave-one-writer-out logits, to set the PV bias
        tr, te = wr != w, wr == w
        m = IntentModel().fit([texts[i] for i in np.where(tr)[0]], E[tr], Cf[tr], y[tr])
        L[te] = m.logits([texts[i] for i in np.where(te)[0]], E[te], Cf[te])
    pv = ROUTES.index("pharmacovigilance")
    bias, curve = None, []
    for b in np.arange(0, 4.01, 0.25):
        M = L.copy(); M[:, pv] += b
        p = M.argmax(1)
        rec = float(((p == pv) & (y == pv)).sum() / (y == pv).sum())
        fa = float(((p == pv) & (y != pv)).sum() / (y != pv).sum())
        acc = float((p == y).mean())
        curve.append({"pv_bias": float(b), "pv_recall": round(rec, 4), "false_alarm": round(fa, 4), "accuracy": round(acc, 4)})
        if bias is None and rec >= PV_RECALL_TARGET:
            bias = float(b)
    m = IntentModel().fit(texts, E, Cf, y)
    cv, wv = m.cv, m.wv
    nc, nw = len(cv.vocabulary_), len(wv.vocabulary_)
    W = m.lr.coef_
    head = {
        "kind": "onlabel-intent-head", "version": 1, "classes": ROUTES,
        "feature_spec": {
            "blocks": ["char_tfidf", "word_tfidf", "minilm", "cheap"],
            "char_tfidf": "lowercase; split on whitespace; each word padded ' w '; every char n-gram n=2..4; "
                          "tf = 1+ln(count); x = tf*idf for n-grams in vocab; L2-normalise the block",
            "word_tfidf": "lowercase; tokens = Unicode \\w+ runs; unigrams + 'a b' bigrams; tf = 1+ln(count); x = tf*idf; L2-normalise the block",
            "minilm": "all-MiniLM-L6-v2 mean-pooled, L2-normalised (384), same as index::dense::Embedder",
            "cheap": CHEAP_SPEC,
            "logit": "z = W·[char, word, minilm, cheap] + b; z[pharmacovigilance] += threshold.pv_bias; route = argmax z",
        },
        "char_vocab": {k: int(v) for k, v in sorted(cv.vocabulary_.items(), key=lambda kv: kv[1])},
        "char_idf": r6(cv.idf_), "word_vocab": {k: int(v) for k, v in sorted(wv.vocabulary_.items(), key=lambda kv: kv[1])},
        "word_idf": r6(wv.idf_),
        "weights": {c: {"char": r6(W[i, :nc]), "word": r6(W[i, nc:nc + nw]), "minilm": r6(W[i, nc + nw:nc + nw + 384]),
                        "cheap": r6(W[i, nc + nw + 384:])} for i, c in enumerate(ROUTES)},
        "bias": r6(m.lr.intercept_),
        "threshold": {"pv_bias": bias, "pv_recall_target": PV_RECALL_TARGET, "lowo_curve": curve},
        "training": {"asks": len(rows), "writers": WRITERS, "C": INTENT_C, "seed": SEED},
    }
    json.dump(head, open(os.path.join(out_dir, "intent_head.json"), "w"), ensure_ascii=False, separators=(",", ":"))
    print(f"intent: {len(rows)} asks, vocab char={nc} word={nw}, pv_bias={bias}", file=sys.stderr)
    return m, bias


def load_rerank_groups(path=RERANK_DUMP):
    """The dumped candidate sets of the writers' answer asks, each with its labels
    (a candidate overlapping the writer's verbatim quote) and features."""
    groups = []
    for l in open(path, encoding="utf-8"):
        if not l.strip():
            continue
        g = json.loads(l)
        g["labels"] = np.array([overlaps(g["quote"], c["text"]) for c in g.get("cands", [])], float)
        g["today_first"] = bool(g.get("today")) and overlaps(g["quote"], g["today"][0])
        g["today_any"] = any(overlaps(g["quote"], t) for t in g.get("today", []))
        g["X"] = rerank_features(g["question"], g.get("cands", []))
        groups.append(g)
    return groups


def fit_listwise(groups, C=RERANK_C):
    """A linear scorer trained for top-1: per group, softmax over the candidates,
    maximise the probability mass on the positives (L2 penalty 1/(2C) on w)."""
    from scipy.optimize import minimize
    d = groups[0]["X"].shape[1]

    def loss(wb):
        w, tot, grad = wb, 0.0, np.zeros(d)
        for g in groups:
            z = g["X"] @ w
            z = z - z.max()
            e = np.exp(z)
            p = e / e.sum()
            pos = g["labels"] > 0
            pp = p[pos].sum()
            tot -= math.log(max(pp, 1e-300))
            # d(-log sum_pos p)/dw = E_p[x] - E_{p|pos}[x]
            grad += p @ g["X"] - (p[pos] / pp) @ g["X"][pos]
        tot += (w @ w) / (2 * C)
        grad += w / C
        return tot, grad

    r = minimize(loss, np.zeros(d), jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    return r.x, 0.0


def fit_pointwise(groups, C=RERANK_C):
    X = np.vstack([g["X"] for g in groups])
    Y = np.concatenate([g["labels"] for g in groups])
    m = LogisticRegression(C=C, max_iter=5000, class_weight="balanced").fit(X, Y)
    return m.coef_[0], float(m.intercept_[0])


def top1(w, g):
    s = g["X"] @ w
    return bool(g["labels"][int(np.argmax(s))] > 0)  # argmax: the first on a tie, as select.rs


def build_rerank(out_dir, fit_name="listwise"):
    groups = load_rerank_groups()
    with_cands = [g for g in groups if g.get("cands")]
    trainable = [g for g in with_cands if g["labels"].sum() > 0]
    fit = {"listwise": fit_listwise, "pointwise": fit_pointwise}[fit_name]
    lowo = {}
    for name, f in [("listwise", fit_listwise), ("pointwise", fit_pointwise)]:
        hits = {}
        for wr in WRITERS:
            tr = [g for g in trainable if g["writer"] != wr]
            w, _ = f(tr)
            te = [g for g in with_cands if g["writer"] == wr]
            hits[wr] = (sum(top1(w, g) for g in te), len(te))
        lowo[name] = hits
    base = {wr: (sum(g["today_first"] for g in with_cands if g["writer"] == wr), sum(1 for g in with_cands if g["writer"] == wr)) for wr in WRITERS}
    tany = {wr: (sum(g["today_any"] for g in with_cands if g["writer"] == wr), sum(1 for g in with_cands if g["writer"] == wr)) for wr in WRITERS}
    cmax = {wr: (sum(bool(g["labels"][int(np.argmax(g["X"][:, 0]))] > 0) for g in with_cands if g["writer"] == wr),
                 sum(1 for g in with_cands if g["writer"] == wr)) for wr in WRITERS}
    reach = {wr: (sum(g["labels"].sum() > 0 for g in with_cands if g["writer"] == wr), sum(1 for g in with_cands if g["writer"] == wr)) for wr in WRITERS}

    def fmt(h):
        a, n = sum(v[0] for v in h.values()), sum(v[1] for v in h.values())
        return {"all": round(a / n, 4), **{wr: round(v[0] / v[1], 4) for wr, v in h.items()}}

    figures = {"lowo_top1_listwise": fmt(lowo["listwise"]), "lowo_top1_pointwise": fmt(lowo["pointwise"]),
               "concept_selection_first_sentence": fmt(base), "concept_selection_any_sentence": fmt(tany),
               "max_concept_share_top1": fmt(cmax), "answer_sentence_among_candidates": fmt(reach)}
    for k, v in figures.items():
        print(f"rerank {k}: {v}", file=sys.stderr)
    w, b = fit(trainable)
    head = {
        "kind": "onlabel-sentence-rerank-head", "version": 2, "features": FEATURES,
        "weights": r6(w), "bias": float(b),
        "feature_spec": {
            "candidates": "every quotable sentence of the leading passages (Extractive::considered) that clear Extractive::answers, "
                          "in passage rank then label order (copilot::extractive::select::candidates)",
            "concept / concept_rel": "the sentence's share of the question's concept weight (extractive::concept_scores), and minus the set's best",
            "bm25_rel / bm25_head_rel": "BM25 (k1=1.2, b=0.75, idf=ln(1+(N-df+.5)/(df+.5)) over the N candidates, avg length >= 1) of the "
                                        "sentence / of parent + ' ' + title + ' ' + sentence, divided by the set's best + 1e-9",
            "cover / cover_head": "idf-weighted share of the question's distinct tokens in the sentence / headings + sentence (idf 0 for absent tokens; total 0 -> 1)",
            "tokens": "lower-case; runs of [a-z0-9]+(?:[.,][0-9]+)?; minus stopwords; alphabetic tokens cut to 5 characters",
            "hit_rank": "passage rank / 5", "hit_coverage / hit_title": "Hit::coverage, Hit::title_score",
            "first": "1 if the sentence opens its passage", "pos_rel": "position / the passage's sentence count",
            "log_len": "ln(1+chars)/6", "num_both": "1 if question and sentence both hold an ASCII digit",
            "num_shared": "1 if a question token holding a digit is a sentence token",
            "kind_*": "one-hot section kind: -faq document, BW, PLR section number, else heading words in 'parent > title' (lower-case), else other",
            "stopwords": sorted(STOP), "section_kinds": SECTION_KINDS, "plr_number_kind": NUM_KIND, "kind_words": KIND_WORDS,
            "score": "s = w·f + bias; the highest s (first on a tie) leads the answer",
        },
        "training": {"fit": fit_name, "groups_with_candidates": len(with_cands), "groups_trained": len(trainable),
                     "asks": len(groups), "pairs": int(sum(len(g["labels"]) for g in trainable)), "C": RERANK_C, "seed": SEED,
                     "figures": figures},
    }
    json.dump(head, open(os.path.join(out_dir, "rerank_head.json"), "w"), indent=1)
    print(f"rerank: {len(groups)} asks, {len(with_cands)} with candidates, {len(trainable)} with the answer among them", file=sys.stderr)


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    ap.add_argument("--only", choices=["intent", "rerank"], help="build one head only")
    ap.add_argument("--rerank-fit", choices=["listwise", "pointwise"], default="listwise")
    a = ap.parse_args()
    np.random.seed(SEED)
    os.makedirs(a.out, exist_ok=True)
    if a.only in (None, "intent"):
        build_intent(a.out)
    if a.only in (None, "rerank"):
        build_rerank(a.out, a.rerank_fit)
