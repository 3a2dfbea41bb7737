"""Train OnLabel's sentence cross-encoder (copilot::extractive::cross): a
low-rank adapter (LoRA, rank 8, on the 36 linear layers of all-MiniLM-L6-v2's
six blocks) and a linear head over the mean-pooled output, reading
"question [SEP] title: sentence" pairs.

Data: the candidate sets the Rust extractive generator sees for the writers'
answer asks (training/intent/w*.jsonl, written by people who read no rules,
code or evals), dumped by
    onlabel ingest --corpus ../shared/data/pi --corpus corpora/demo --index /tmp/all-index
    ONLABEL_RERANK_INDEX=/tmp/all-index ONLABEL_RERANK_DUMP=$PWD/training/cache/rerank_candidates.jsonl \
      cargo test --release --locked --lib copilot::extractive::select::tests::dump -- --ignored
A candidate is positive when it overlaps the writer's verbatim quote
(build_heads.overlaps). Only the cheap sentence head's best TOP_K candidates
are read, as at run time; the loss is listwise (softmax over the group, mass
on the positives).

Needs a venv with torch, transformers, tokenizers, safetensors, numpy, scipy
and scikit-learn from PyPI (CPU is enough: ~15-25 min an epoch on 2 cores).

    python train_cross.py --holdout wa      # measure on one held-out writer
    python train_cross.py --final           # train on all writers and write
                                            # heads/cross_adapter.safetensors,
                                            # heads/cross_head.json, heads/cross_reference.jsonl
Deterministic for a given machine and torch build (seed 0, 2 threads); a
rebuild elsewhere may differ in the last bits, which is why the shipped
adapter, not the script, is what the tests pin (cross_reference.jsonl).
"""
import sys, json, math, os, time, random, argparse, hashlib
import numpy as np, torch, torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import build_heads as bh
from tokenizers import Tokenizer
from transformers import BertModel

ap = argparse.ArgumentParser()
ap.add_argument('--holdout', default=None, help='writer to hold out and measure on')
ap.add_argument('--final', action='store_true', help='train on every writer and write the shipped files')
ap.add_argument('--epochs', type=int, default=1)
ap.add_argument('--rank', type=int, default=8)
ap.add_argument('--maxlen', type=int, default=80)
ap.add_argument('--topk', type=int, default=6, help='candidates read in training')
ap.add_argument('--run-topk', type=int, default=3, help='candidates rescored at run time (cross_head.json top_k)')
ap.add_argument('--lr', type=float, default=3e-4)
ap.add_argument('--lam', type=float, default=None, help='lambda to ship (default: from --lambda-from)')
ap.add_argument('--lambda-from', default=None, help='JSON file(s, comma-separated) of holdout runs to pick lambda from')
ap.add_argument('--out', default=os.path.join(HERE, 'heads'))
a = ap.parse_args()
assert a.final or a.holdout, "pass --holdout WRITER or --final"
torch.manual_seed(0); random.seed(0); np.random.seed(0); torch.set_num_threads(2)
MODEL = os.environ.get("ONLABEL_EMBEDDER", os.path.join(REPO, "models", "minilm"))
tok = Tokenizer.from_file(os.path.join(MODEL, 'tokenizer.json')); tok.no_padding(); tok.enable_truncation(a.maxlen)
LAMBDAS = [0, 0.25, 0.5, 1, 2, 4, 8, 1000]

groups = bh.load_rerank_groups()
withc = [g for g in groups if g.get("cands")]
trainable = [g for g in withc if g["labels"].sum() > 0]
# The cheap head picks the TOP_K candidates the cross-encoder reads; in a
# holdout run it is trained without the held-out writer.
w_cheap, _ = bh.fit_listwise([g for g in trainable if g["writer"] != a.holdout])
for g in withc:
    s = g["X"] @ w_cheap; g["cheap"] = s; g["order"] = np.argsort(-s, kind="stable")[:a.topk]


def cand_text(c):
    """As CrossEncoder::pair_text: `title: sentence`."""
    return (c["title"] + ": " if c["title"] else "") + c["text"]


def encode(q, texts):
    encs = [tok.encode(q, t) for t in texts]
    L = max(len(e.ids) for e in encs)
    ids = torch.zeros(len(encs), L, dtype=torch.long); tt = torch.zeros_like(ids); m = torch.zeros_like(ids)
    for i, e in enumerate(encs):
        n = len(e.ids); ids[i, :n] = torch.tensor(e.ids); tt[i, :n] = torch.tensor(e.type_ids); m[i, :n] = 1
    return ids, tt, m


class LoRA(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__(); self.base = base; self.s = alpha / r
        self.A = nn.Parameter(torch.randn(r, base.in_features) * (1 / math.sqrt(base.in_features)))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x):
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.s


LAYERS = []
for i in range(6):
    p = f"encoder.layer.{i}."
    LAYERS += [p + "attention.self.query", p + "attention.self.key", p + "attention.self.value",
               p + "attention.output.dense", p + "intermediate.dense", p + "output.dense"]


class CE(nn.Module):
    def __init__(self):
        super().__init__()
        self.bert = BertModel.from_pretrained(MODEL, add_pooling_layer=False)
        for p in self.bert.parameters():
            p.requires_grad = False
        self.loras = {}
        for name in LAYERS:
            parent_name, attr = name.rsplit(".", 1)
            parent = self.bert.get_submodule(parent_name)
            lora = LoRA(getattr(parent, attr), a.rank, 2 * a.rank)
            setattr(parent, attr, lora); self.loras[name] = lora
        self.head = nn.Linear(self.bert.config.hidden_size, 1)

    def forward(self, ids, tt, m):
        h = self.bert(input_ids=ids, token_type_ids=tt, attention_mask=m).last_hidden_state
        mf = m.unsqueeze(-1).float()
        return self.head((h * mf).sum(1) / mf.sum(1)).squeeze(-1)


model = CE()
params = [p for p in model.parameters() if p.requires_grad]
print('trainable params', sum(p.numel() for p in params), file=sys.stderr)
opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
train = [g for g in withc if g["writer"] != a.holdout and g["labels"][g["order"]].sum() > 0]
test = [g for g in withc if g["writer"] == a.holdout] if a.holdout else []
steps = a.epochs * len(train)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / steps))
t0 = time.time()
for ep in range(a.epochs):
    random.shuffle(train); tot = 0
    model.train()
    for gi, g in enumerate(train):
        idx = g["order"]; lab = torch.tensor(g["labels"][idx] > 0)
        z = model(*encode(g["question"], [cand_text(g["cands"][i]) for i in idx]))
        loss = -torch.logsumexp(torch.log_softmax(z, 0)[lab], 0)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step(); tot += loss.item()
        if gi % 50 == 0:
            print(f'ep {ep} {gi}/{len(train)} loss {tot / (gi + 1):.3f} {time.time() - t0:.0f}s', file=sys.stderr, flush=True)
model.eval()


def scores(q, texts):
    with torch.no_grad():
        return model(*encode(q, texts)).numpy()


if test:
    zs = [scores(g["question"], [cand_text(g["cands"][i]) for i in g["order"]]) for g in test]
    res = {}
    for lam in LAMBDAS:
        hit = 0
        for g, z in zip(test, zs):
            idx = g["order"]; comb = g["cheap"][idx] + lam * z if lam < 1000 else z
            hit += bool(g["labels"][idx[int(np.argmax(comb))]] > 0)
        res[str(lam)] = hit / len(test)
    out = {"holdout": a.holdout, "n": len(test), "cheap_top1": sum(bool(g["labels"][g["order"][0]] > 0) for g in test) / len(test),
           "reach_topk": sum(bool(g["labels"][g["order"]].sum() > 0) for g in test) / len(test), "top1_by_lambda": res,
           "epochs": a.epochs, "topk": a.topk, "maxlen": a.maxlen, "rank": a.rank, "seconds": round(time.time() - t0)}
    print(json.dumps(out))
    json.dump(out, open(os.path.join(a.out, f"cross_holdout_{a.holdout}.json"), "w"), indent=1)

if a.final:
    from safetensors.numpy import save_file
    tensors = {}
    for name, l in model.loras.items():
        tensors[name + ".lora_a"] = l.A.detach().numpy().astype(np.float32)
        tensors[name + ".lora_b"] = l.B.detach().numpy().astype(np.float32)
    tensors["head.weight"] = model.head.weight.detach().numpy().astype(np.float32)
    tensors["head.bias"] = model.head.bias.detach().numpy().astype(np.float32)
    path = os.path.join(a.out, "cross_adapter.safetensors")
    save_file(tensors, path)
    holdouts = [json.load(open(f)) for f in (a.lambda_from or "").split(",") if f]
    lam = a.lam
    if lam is None:
        assert holdouts, "pass --lam or --lambda-from"
        # the lambda with the best mean held-out top-1 (not the 'cross only' column)
        lam = max((float(l) for l in holdouts[0]["top1_by_lambda"] if float(l) < 1000),
                  key=lambda l: sum(h["top1_by_lambda"][str(l) if str(l) in h["top1_by_lambda"] else str(int(l))] for h in holdouts))
    head = {"kind": "onlabel-cross-encoder", "version": 1, "base": "all-MiniLM-L6-v2", "rank": a.rank, "scale": 2.0,
            "max_tokens": a.maxlen, "top_k": a.run_topk, "lambda": lam, "margin": 2.0, "layers": LAYERS,
            "pair": {"text": "tokenizer pair (question, title + ': ' + sentence), truncated longest-first to max_tokens",
                     "pooling": "mean over the attention mask, then head.weight . pooled + head.bias",
                     "merge": "W' = W + scale * lora_b @ lora_a for every layer in `layers`",
                     "use": "rescore the cheap sentence head's best top_k candidates (stable order); final = cheap logit + lambda * cross"},
            "training": {"candidates_read_in_training": a.topk, "asks": "training/intent/w*.jsonl answer asks with candidates (rerank_candidates.jsonl)", "groups": len(train),
                         "epochs": a.epochs, "lr": a.lr, "seed": 0, "loss": "listwise softmax, mass on the positives",
                         "adapter_sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(), "holdouts": holdouts,
                         "seconds": round(time.time() - t0)}}
    json.dump(head, open(os.path.join(a.out, "cross_head.json"), "w"), indent=1)
    # the reference candle is checked against (cross.rs test)
    with open(os.path.join(a.out, "cross_reference.jsonl"), "w") as f:
        for g in [g for g in withc][::max(1, len(withc) // 8)][:8]:
            texts = [cand_text(g["cands"][i]) for i in g["order"]]
            f.write(json.dumps({"question": g["question"], "texts": texts, "scores": [round(float(x), 6) for x in scores(g["question"], texts)]}, ensure_ascii=False) + "\n")
    print("wrote", path, "lambda", lam, file=sys.stderr)
