"""numpy forward pass of all-MiniLM-L6-v2, matching OnLabel's candle Embedder
(src/index/dense.rs): tokenizer.json with [CLS]/[SEP] added, truncation to 256
tokens (LongestFirst, stride 0), padding to the batch's longest with id 0,
token_type_ids all 0, BERT with exact (erf) GELU, attention mask added as
f32::MIN on padded keys, mean pooling over the attention mask, L2 normalise.

Embeddings are cached on disk keyed by sha1(text) (cache/emb_*.npz).
"""
import hashlib
import json
import os
import sys

import numpy as np
from scipy.special import erf
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MODEL_DIR = os.environ.get(
    "ONLABEL_EMBEDDER", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "minilm"))
MAX_TOKENS = 256
CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache")


class MiniLM:
    def __init__(self, model_dir=MODEL_DIR):
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        self.eps = float(cfg["layer_norm_eps"])
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.dim = cfg["hidden_size"]
        assert cfg["hidden_act"] == "gelu"  # candle: HiddenAct::Gelu -> gelu_erf
        self.w = {k: v.astype(np.float32) for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()
                  if not k.endswith("position_ids")}
        # pre-transpose linear weights (torch layout is out x in)
        for k in list(self.w):
            if k.endswith(".weight") and self.w[k].ndim == 2 and "embeddings" not in k:
                self.w[k] = np.ascontiguousarray(self.w[k].T)
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(MAX_TOKENS)

    def _ln(self, x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[p + ".weight"] + self.w[p + ".bias"]

    def _lin(self, x, p):
        return x @ self.w[p + ".weight"] + self.w[p + ".bias"]

    def forward(self, ids, mask):
        n, L = ids.shape
        w = self.w
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:L][None] \
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        x = self._ln(x, "embeddings.LayerNorm")
        H, d = self.n_heads, self.dim // self.n_heads
        add_mask = ((1.0 - mask.astype(np.float32)) * np.finfo(np.float32).min)[:, None, None, :]
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."
            q = self._lin(x, p + "attention.self.query").reshape(n, L, H, d).transpose(0, 2, 1, 3)
            k = self._lin(x, p + "attention.self.key").reshape(n, L, H, d).transpose(0, 2, 3, 1)
            v = self._lin(x, p + "attention.self.value").reshape(n, L, H, d).transpose(0, 2, 1, 3)
            s = (q @ k) / np.float32(np.sqrt(d)) + add_mask
            s = s - s.max(-1, keepdims=True)
            e = np.exp(s)
            a = e / e.sum(-1, keepdims=True)
            ctx = (a @ v).transpose(0, 2, 1, 3).reshape(n, L, self.dim)
            x = self._ln(self._lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = self._lin(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / np.float32(np.sqrt(2.0))))
            x = self._ln(self._lin(h.astype(np.float32), p + "output.dense") + x, p + "output.LayerNorm")
        return x

    def embed_uncached(self, texts, batch=32):
        encs = self.tok.encode_batch(list(texts), add_special_tokens=True)
        order = np.argsort([len(e.ids) for e in encs], kind="stable")  # length-sorted batches: less padding
        out = np.zeros((len(texts), self.dim), np.float32)
        for b in range(0, len(order), batch):
            idx = order[b:b + batch]
            L = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), L), np.int64)
            mask = np.zeros((len(idx), L), np.float32)
            for r, i in enumerate(idx):
                ids[r, :len(encs[i].ids)] = encs[i].ids
                mask[r, :len(encs[i].ids)] = encs[i].attention_mask
            h = self.forward(ids, mask)
            m = mask[:, :, None]
            mean = (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            out[idx] = mean / np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)
        return out


_MODEL = None
_CACHE = None


def _key(t):
    return hashlib.sha1(t.encode("utf-8")).hexdigest()


def _load_cache():
    global _CACHE
    if _CACHE is None:
        _CACHE = {}
        os.makedirs(CACHE_DIR, exist_ok=True)
        for f in sorted(os.listdir(CACHE_DIR)):
            if f.startswith("emb_") and f.endswith(".npz"):
                z = np.load(os.path.join(CACHE_DIR, f))
                for k, v in zip(z["keys"], z["vecs"]):
                    _CACHE[str(k)] = v
    return _CACHE


def embed(texts, batch=32, verbose=True):
    """Unit vectors (len(texts), 384) for texts, from the disk cache where possible."""
    global _MODEL
    cache = _load_cache()
    todo = sorted({t for t in texts if _key(t) not in cache})
    if todo:
        if _MODEL is None:
            _MODEL = MiniLM()
        chunk = 512
        for c in range(0, len(todo), chunk):
            part = todo[c:c + chunk]
            vecs = _MODEL.embed_uncached(part, batch=batch)
            keys = [_key(t) for t in part]
            for k, v in zip(keys, vecs):
                cache[k] = v
            fn = os.path.join(CACHE_DIR, f"emb_{os.getpid()}_{len(os.listdir(CACHE_DIR)):05d}.npz")
            np.savez(fn, keys=np.array(keys), vecs=vecs)
            if verbose:
                print(f"embedded {min(c + chunk, len(todo))}/{len(todo)}", file=sys.stderr, flush=True)
    if not len(texts):
        return np.zeros((0, 384), np.float32)
    return np.stack([cache[_key(t)] for t in texts])


if __name__ == "__main__":
    texts = ["liver enzyme elevation", "transaminase increase", "The tablets are supplied in bottles of thirty."]
    m = MiniLM()
    v = m.embed_uncached(texts)
    print("norms", np.linalg.norm(v, axis=1))
    print("near", float(v[0] @ v[1]), "far", float(v[0] @ v[2]))
    alone = m.embed_uncached(texts[:1])
    print("alone vs batched", float(alone[0] @ v[0]))
    more = ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."]
    w = m.embed_uncached(more)
    print("eating/bread", float(w[0] @ w[1]), "eating/movie", float(w[0] @ w[2]))
    print("first 5 dims of 'liver enzyme elevation':", v[0][:5])
