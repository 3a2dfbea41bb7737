//! [`Llama`]: our own forward pass for llama-family GGUF models, on candle
//! tensors and kernels and our own CPU kernels.
//!
//! The structure follows `candle_transformers::models::quantized_llama` (the
//! reference, also used by the equality test), with the changes mid-call
//! latency needs:
//! - Q4_1 matrices in tiles of eight rows ([`super::q4_1`]), activations
//!   quantized once per input and shared by the query/key/value (gate/up)
//!   products, which run in one dispatch;
//! - a decode path on plain slices ([`Llama::decode_batch`]): preallocated
//!   buffers (no allocation per token), RMSNorm, RoPE and attention over the
//!   KV cache in [`super::cpu`], our Q8_0 LM-head kernel ([`super::q8_0`]);
//!   it decodes one new token for each of several sequences in one pass,
//!   reading every weight once for all of them (the batching engine,
//!   [`super::engine`], is built on it);
//! - KV caches separate from the weights ([`KvCache`], one per sequence),
//!   preallocated and written in place; truncating one to a prefix is free
//!   and copying a prefix between them is a memcpy, which is how the
//!   approved prompt's fixed instructions are evaluated once and reused
//!   across questions;
//! - the LM head only for the last position; causal masks built once per shape.
//!
//! Every kernel reproduces the reference's floating-point operations in the
//! same order, so logits are bit-identical and greedy outputs equal. This
//! matters more than it seems: activations are re-quantized to Q8_1 before
//! every matrix, so a last-bit difference becomes a different rounding, and
//! a decode path that was merely "close" (FMA accumulation, a vectorised
//! `exp`) agreed with the reference on 32 greedy tokens for 1 prompt in 10.

use std::collections::HashMap;

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, IndexOp, Module, Tensor};

use super::q4_1::matmul_into;
use super::Error;

/// Longest context our KV cache holds (tokens).
pub const MAX_CONTEXT: usize = 2048;

/// A quantized linear layer: our exact AVX2 kernel for Q4_1 weights
/// ([`super::q4_1`]; candle's own is scalar), candle's `QMatMul` otherwise.
enum Linear {
    Q41(super::q4_1::Q41),
    Q80(super::q8_0::Q80),
    Candle(QMatMul),
}

/// `x @ W^T` for several matrices taking the same input: with Q4_1 weights
/// the activations are quantized once and all products run in one dispatch;
/// otherwise each matrix's own forward.
fn project(x: &Tensor, ws: &[&Linear]) -> candle_core::Result<Vec<Tensor>> {
    let q41s: Option<Vec<&super::q4_1::Q41>> = ws.iter().map(|w| if let Linear::Q41(q) = w { Some(q) } else { None }).collect();
    let Some(q41s) = q41s else {
        return ws.iter().map(|w| w.forward(x)).collect();
    };
    let rows = super::q4_1::QRows::new(x)?;
    let outs = super::q4_1::matmul_many(&q41s, &rows)?;
    let mut dims = x.dims().to_vec();
    dims.pop();
    outs.into_iter()
        .zip(q41s)
        .map(|(o, w)| {
            let mut d = dims.clone();
            d.push(w.rows());
            Tensor::from_vec(o, d, &Device::Cpu)
        })
        .collect()
}

/// The Q4_1 kernel of a layer on the decode path, which is only built when
/// every layer is Q4_1.
fn q41(l: &Linear) -> &super::q4_1::Q41 {
    match l {
        Linear::Q41(w) => w,
        _ => unreachable!("the decode path is only built when every layer is Q4_1"),
    }
}

impl Linear {
    fn new(t: QTensor) -> Result<Linear, Error> {
        if std::env::var_os("ONLABEL_CANDLE_Q4_1").is_none() {
            if let Some(q) = super::q4_1::Q41::new(&t) {
                return Ok(Linear::Q41(q));
            }
            if let Some(q) = super::q8_0::Q80::new(&t) {
                return Ok(Linear::Q80(q));
            }
        }
        Ok(Linear::Candle(QMatMul::from_qtensor(t)?))
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Linear::Q41(q) => q.forward(x),
            Linear::Q80(q) => q.forward(x),
            Linear::Candle(q) => q.forward(x),
        }
    }
}

struct Layer {
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    attn_norm: candle_nn::RmsNorm,
    ffn_norm: candle_nn::RmsNorm,
    w_gate: Linear,
    w_down: Linear,
    w_up: Linear,
    /// RMSNorm weights as plain vectors, for the decode path.
    attn_norm_w: Vec<f32>,
    ffn_norm_w: Vec<f32>,
}

/// One sequence's keys and values for every layer, preallocated and written
/// in place. The weights ([`Llama`]) are shared by every sequence; a cache
/// is what one sequence owns, so several sequences can be decoded together
/// ([`Llama::decode_batch`]), each attending to its own cache.
#[derive(Default)]
pub struct KvCache {
    /// Keys per layer, `[n_kv_head][ctx][head_dim]`.
    k: Vec<Vec<f32>>,
    /// Values per layer, same layout.
    v: Vec<Vec<f32>>,
    /// Positions it can hold (the stride of the layout).
    ctx: usize,
    /// Positions currently valid.
    pos: usize,
    /// Key/value width of one position of one head.
    head_dim: usize,
    /// Key/value heads.
    n_kv_head: usize,
}

impl KvCache {
    /// Positions it can hold.
    pub fn capacity(&self) -> usize {
        self.ctx
    }

    /// Positions currently valid.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Keeps only the first `len` positions (free: later ones are overwritten).
    pub fn truncate(&mut self, len: usize) {
        self.pos = self.pos.min(len);
    }

    /// Positions currently valid.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether no position is valid.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// A cache of exactly the first `len` valid positions (a copy of the same floats).
    pub fn prefix_copy(&self, len: usize) -> KvCache {
        let len = len.min(self.pos);
        let mut c = KvCache::zeros(self.k.len(), self.n_kv_head, len, self.head_dim);
        c.copy_prefix_from(self, len);
        c
    }

    /// An empty cache of `ctx` positions for `n_layer` layers.
    fn zeros(n_layer: usize, n_kv_head: usize, ctx: usize, head_dim: usize) -> KvCache {
        let size = n_kv_head * ctx * head_dim;
        KvCache {
            k: (0..n_layer).map(|_| vec![0f32; size]).collect(),
            v: (0..n_layer).map(|_| vec![0f32; size]).collect(),
            ctx,
            pos: 0,
            head_dim,
            n_kv_head,
        }
    }

    /// Makes the first `len` positions those of `src` (a shared prefix, e.g.
    /// the approved prompt's fixed instructions evaluated once): the same
    /// floats as if they had been computed here.
    pub fn copy_prefix_from(&mut self, src: &KvCache, len: usize) {
        let len = len.min(src.pos).min(self.ctx);
        let hd = self.head_dim;
        for (dst, s) in self.k.iter_mut().zip(&src.k).chain(self.v.iter_mut().zip(&src.v)) {
            for h in 0..self.n_kv_head {
                let (d0, s0) = (h * self.ctx * hd, h * src.ctx * hd);
                dst[d0..d0 + len * hd].copy_from_slice(&s[s0..s0 + len * hd]);
            }
        }
        self.pos = len;
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|l| l.len() * 4).sum()
    }
}

/// Buffers of the decode path for several sequences at once (row-major, one
/// row per sequence), grown to the largest batch seen and then reused, so
/// that a decode step allocates nothing.
struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Attention scores, n_head × the longest cache per row.
    att: Vec<f32>,
    y: Vec<f32>,
    o: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
    acts: super::q4_1::QRows,
    acts_ff: super::q4_1::QRows,
    acts8: Vec<super::q8_0::Acts8>,
}

impl Scratch {
    fn new(c: &Config, n_ff: usize) -> Scratch {
        Scratch {
            x: Vec::new(),
            xn: Vec::new(),
            q: Vec::new(),
            k: Vec::new(),
            v: Vec::new(),
            att: Vec::new(),
            y: Vec::new(),
            o: Vec::new(),
            gate: Vec::new(),
            up: Vec::new(),
            down: Vec::new(),
            acts: super::q4_1::QRows::with_capacity(1, c.n_embd),
            acts_ff: super::q4_1::QRows::with_capacity(1, n_ff),
            acts8: Vec::new(),
        }
    }

    /// Room for `b` rows with caches of up to `ctx` positions.
    fn ensure(&mut self, b: usize, c: &Config, n_ff: usize, ctx: usize) {
        let kv = c.n_kv_head * c.head_dim;
        let grow = |v: &mut Vec<f32>, n: usize| {
            if v.len() < n {
                v.resize(n, 0.0);
            }
        };
        grow(&mut self.x, b * c.n_embd);
        grow(&mut self.xn, b * c.n_embd);
        grow(&mut self.q, b * c.n_embd);
        grow(&mut self.k, b * kv);
        grow(&mut self.v, b * kv);
        grow(&mut self.att, b * c.n_head * ctx);
        grow(&mut self.y, b * c.n_embd);
        grow(&mut self.o, b * c.n_embd);
        grow(&mut self.gate, b * n_ff);
        grow(&mut self.up, b * n_ff);
        grow(&mut self.down, b * c.n_embd);
        while self.acts8.len() < b {
            self.acts8.push(super::q8_0::Acts8::new(c.n_embd));
        }
    }
}

/// Model hyper-parameters read from the GGUF metadata.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Attention heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_head: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// NEOX-style (non-interleaved) RoPE.
    pub rope_neox: bool,
    /// Context length the model was trained for.
    pub n_ctx_train: usize,
}

/// A loaded llama-family model with its KV cache.
pub struct Llama {
    /// Hyper-parameters.
    pub config: Config,
    embeddings: candle_nn::Embedding,
    layers: Vec<Layer>,
    norm: candle_nn::RmsNorm,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
    masks: HashMap<(usize, usize), Tensor>,
    device: Device,
    /// RoPE tables as plain vectors `[position][rope_dim / 2]`, for decode.
    cos_v: Vec<f32>,
    sin_v: Vec<f32>,
    /// Final RMSNorm weight, plain.
    norm_w: Vec<f32>,
    /// Decode buffers; `None` when some weight is not Q4_1 (the generic path
    /// on candle ops is used instead).
    scratch: Option<Scratch>,
    /// Feed-forward width (for the scratch buffers).
    n_ff: usize,
    /// Prefill attention through [`super::causal`] (AVX2+FMA, head_dim 64;
    /// `ONLABEL_REFERENCE_PREFILL` turns it off to compare with the candle ops).
    causal: bool,
    /// Logits of the last forward: one row per sequence of a decode batch,
    /// the last position otherwise.
    logits: Vec<f32>,
    /// The model's own KV cache, used by the single-sequence API
    /// ([`Llama::forward`], [`Llama::truncate`], ...).
    cache: KvCache,
}

fn rms_norm(t: QTensor, eps: f64, dev: &Device) -> Result<(candle_nn::RmsNorm, Vec<f32>), Error> {
    let w = t.dequantize(dev)?;
    let v = w.flatten_all()?.to_vec1::<f32>()?;
    Ok((candle_nn::RmsNorm::new(w, eps), v))
}

impl Llama {
    /// Loads the weights of a GGUF file whose metadata has been read into `ct`.
    pub fn load<R: std::io::Read + std::io::Seek>(
        ct: &gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Llama, Error> {
        let arch = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if arch != "llama" {
            return Err(Error::Unsupported(format!(
                "architecture {arch:?}: only llama-family GGUF models (general.architecture = \"llama\") are supported"
            )));
        }
        let get = |k: &str| {
            ct.metadata.get(k).ok_or_else(|| Error::Unsupported(format!("GGUF metadata lacks {k}")))
        };
        let u = |k: &str| -> Result<usize, Error> {
            get(k)?.to_u32().map(|v| v as usize).map_err(|_| Error::Unsupported(format!("{k} is not an integer")))
        };
        let n_head = u("llama.attention.head_count")?;
        let n_kv_head = u("llama.attention.head_count_kv")?;
        let n_layer = u("llama.block_count")?;
        let n_embd = u("llama.embedding_length")?;
        let head_dim = n_embd / n_head;
        let eps = get("llama.attention.layer_norm_rms_epsilon")?
            .to_f32()
            .map_err(|_| Error::Unsupported("rms epsilon".into()))? as f64;
        let rope_base = ct.metadata.get("llama.rope.freq_base").and_then(|v| v.to_f32().ok()).unwrap_or(10_000.0);
        let rope_dim = ct.metadata.get("llama.rope.dimension_count").and_then(|v| v.to_u32().ok()).map(|v| v as usize).unwrap_or(head_dim);
        let n_ctx_train = ct.metadata.get("llama.context_length").and_then(|v| v.to_u32().ok()).map(|v| v as usize).unwrap_or(MAX_CONTEXT);
        let config = Config { n_head, n_kv_head, n_layer, n_embd, head_dim, eps, rope_base, rope_neox: false, n_ctx_train };

        let tok = ct.tensor(reader, "token_embd.weight", device)?;
        let emb = tok.dequantize(device)?;
        let output = match ct.tensor(reader, "output.weight", device) {
            Ok(t) => Linear::new(t)?,
            Err(_) => Linear::new(tok)?, // tied embeddings
        };
        let (norm, norm_w) = rms_norm(ct.tensor(reader, "output_norm.weight", device)?, eps, device)?;
        let mut layers = Vec::with_capacity(n_layer);
        let ctx = MAX_CONTEXT.min(n_ctx_train.max(1));
        for i in 0..n_layer {
            let p = format!("blk.{i}");
            let q = |name: &str, r: &mut R| -> Result<Linear, Error> {
                Linear::new(ct.tensor(r, &format!("{p}.{name}.weight"), device)?)
            };
            let (attn_norm, attn_norm_w) = rms_norm(ct.tensor(reader, &format!("{p}.attn_norm.weight"), device)?, eps, device)?;
            let (ffn_norm, ffn_norm_w) = rms_norm(ct.tensor(reader, &format!("{p}.ffn_norm.weight"), device)?, eps, device)?;
            layers.push(Layer {
                wq: q("attn_q", reader)?,
                wk: q("attn_k", reader)?,
                wv: q("attn_v", reader)?,
                wo: q("attn_output", reader)?,
                w_gate: q("ffn_gate", reader)?,
                w_down: q("ffn_down", reader)?,
                w_up: q("ffn_up", reader)?,
                attn_norm,
                ffn_norm,
                attn_norm_w,
                ffn_norm_w,
            });
        }
        let theta: Vec<f32> =
            (0..rope_dim).step_by(2).map(|i| 1f32 / rope_base.powf(i as f32 / rope_dim as f32)).collect();
        let theta = Tensor::new(theta.as_slice(), device)?;
        let idx = Tensor::arange(0, ctx as u32, device)?.to_dtype(DType::F32)?.reshape((ctx, 1))?;
        let freqs = idx.matmul(&theta.reshape((1, theta.elem_count()))?)?;
        let (cos, sin) = (freqs.cos()?, freqs.sin()?);
        let cos_v = cos.flatten_all()?.to_vec1::<f32>()?;
        let sin_v = sin.flatten_all()?.to_vec1::<f32>()?;
        let all_q41 = layers.iter().all(|l| {
            [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down].iter().all(|w| matches!(w, Linear::Q41(_)))
        });
        let n_ff = match layers.first().map(|l| &l.w_up) {
            Some(Linear::Q41(w)) => w.rows(),
            _ => 0,
        };
        let fast = all_q41
            && rope_dim == head_dim
            && n_embd % 32 == 0
            && n_ff % 32 == 0
            && std::env::var_os("ONLABEL_REFERENCE_DECODE").is_none();
        let scratch = fast.then(|| Scratch::new(&config, n_ff));
        let causal = super::causal::available(head_dim) && std::env::var_os("ONLABEL_REFERENCE_PREFILL").is_none();
        tracing::debug!(fast_decode = fast, causal_prefill = causal, "model loaded");
        Ok(Llama {
            config,
            embeddings: candle_nn::Embedding::new(emb, n_embd),
            layers,
            norm,
            output,
            cos,
            sin,
            masks: HashMap::new(),
            device: device.clone(),
            cos_v,
            sin_v,
            norm_w,
            scratch,
            n_ff,
            causal,
            logits: Vec::new(),
            cache: KvCache::default(),
        }
        .with_own_cache(ctx))
    }

    fn with_own_cache(mut self, ctx: usize) -> Llama {
        self.cache = self.new_cache(ctx);
        self
    }

    /// An empty KV cache for one sequence of up to `ctx` positions (at most
    /// [`Llama::max_context`]): `n_layer × 2 × n_kv_head × ctx × head_dim`
    /// floats, allocated now.
    pub fn new_cache(&self, ctx: usize) -> KvCache {
        let c = self.config;
        KvCache::zeros(c.n_layer, c.n_kv_head, ctx.min(self.max_context()), c.head_dim)
    }

    /// The longest cache this model's RoPE tables cover.
    pub fn max_context(&self) -> usize {
        self.cos.dim(0).unwrap_or(0)
    }

    /// Size of the vocabulary (length of a logits row).
    pub fn vocab_size(&self) -> usize {
        match &self.output {
            Linear::Q41(w) => w.rows(),
            Linear::Q80(w) => w.rows(),
            Linear::Candle(_) => self.embeddings.embeddings().dim(0).unwrap_or(0),
        }
    }

    /// Turns the causal prefill attention ([`super::causal`]) off or back on
    /// (when the CPU allows it): off, the prefill runs the candle operations
    /// it replaces — for comparisons (the tests) and as an escape hatch
    /// (`ONLABEL_REFERENCE_PREFILL=1` at load does the same).
    pub fn set_causal_prefill(&mut self, on: bool) {
        self.causal = on && super::causal::available(self.config.head_dim);
    }

    /// Capacity of the model's own KV cache in tokens.
    pub fn capacity(&self) -> usize {
        self.cache.ctx
    }

    /// Positions currently in the model's own KV cache.
    pub fn position(&self) -> usize {
        self.cache.pos
    }

    /// Keeps only the first `len` positions of the model's own KV cache (a
    /// prefix reuse; later positions are overwritten by the next forward).
    pub fn truncate(&mut self, len: usize) {
        self.cache.truncate(len);
    }

    fn mask(&mut self, seq_len: usize, index_pos: usize) -> Result<Tensor, Error> {
        let kv = index_pos + seq_len;
        if let Some(m) = self.masks.get(&(seq_len, kv)) {
            return Ok(m.clone());
        }
        let data: Vec<f32> = (0..seq_len)
            .flat_map(|i| (0..kv).map(move |j| if j > i + index_pos { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let m = Tensor::from_slice(&data, (seq_len, kv), &self.device)?;
        self.masks.insert((seq_len, kv), m.clone());
        Ok(m)
    }

    /// Runs `tokens` at the current position and returns the logits of the last one.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Tensor, Error> {
        let device = self.device.clone();
        let logits = self.forward_logits(tokens)?;
        Ok(Tensor::from_slice(logits, logits.len(), &device)?)
    }

    /// Runs `tokens` at the current position and returns the logits of the
    /// last one as a slice (valid until the next call). One token goes through
    /// the decode path ([`Llama::decode_one`]) when the model allows it.
    pub fn forward_logits(&mut self, tokens: &[u32]) -> Result<&[f32], Error> {
        let mut cache = std::mem::take(&mut self.cache);
        let r = self.forward_in(&mut cache, tokens).map(|l| l.len());
        self.cache = cache;
        let n = r?;
        Ok(&self.logits[..n])
    }

    /// [`Llama::forward_logits`] on a given sequence's cache (the weights are
    /// shared; the batching engine keeps one cache per slot). Prefill of
    /// several tokens runs on candle ops; one token goes through the decode
    /// path ([`Llama::decode_batch`] with one row) when the model allows it.
    pub fn forward_in(&mut self, cache: &mut KvCache, tokens: &[u32]) -> Result<&[f32], Error> {
        let seq_len = tokens.len();
        if seq_len == 0 {
            return Err(Error::Generation("forward called with no tokens".into()));
        }
        if cache.pos + seq_len > cache.ctx {
            return Err(Error::ContextFull { needed: cache.pos + seq_len, capacity: cache.ctx });
        }
        if seq_len == 1 && self.scratch.is_some() {
            self.decode_batch(&mut [cache], tokens)?;
        } else {
            let t = self.forward_candle(cache, tokens)?;
            self.logits.clear();
            self.logits.extend_from_slice(&t.to_vec1::<f32>()?);
        }
        Ok(&self.logits)
    }

    /// Copies new keys or values `(1, n_kv_head, seq, head_dim)` into a cache at `index_pos`.
    fn cache_write(&self, cache: &mut [f32], ctx: usize, new: &Tensor, index_pos: usize) -> Result<(), Error> {
        let (hd, n_kv) = (self.config.head_dim, self.config.n_kv_head);
        let new = new.flatten_all()?.to_vec1::<f32>()?;
        let seq = new.len() / (n_kv * hd);
        for h in 0..n_kv {
            let dst = (h * ctx + index_pos) * hd;
            cache[dst..dst + seq * hd].copy_from_slice(&new[h * seq * hd..(h + 1) * seq * hd]);
        }
        Ok(())
    }

    /// [`Llama::cache_write`], then returns the cached `(1, n_kv_head, kv_len, head_dim)`.
    fn cache_write_read(&self, cache: &mut [f32], ctx: usize, new: &Tensor, index_pos: usize, kv_len: usize) -> Result<Tensor, Error> {
        let (hd, n_kv) = (self.config.head_dim, self.config.n_kv_head);
        self.cache_write(cache, ctx, new, index_pos)?;
        let mut all = Vec::with_capacity(n_kv * kv_len * hd);
        for h in 0..n_kv {
            all.extend_from_slice(&cache[h * ctx * hd..(h * ctx + kv_len) * hd]);
        }
        Ok(Tensor::from_vec(all, (1, n_kv, kv_len, hd), &self.device)?)
    }

    /// The forward pass on candle ops: prefill (any number of tokens) and the
    /// generic decode path for models the decode kernels do not cover.
    fn forward_candle(&mut self, cache: &mut KvCache, tokens: &[u32]) -> Result<Tensor, Error> {
        let seq_len = tokens.len();
        let index_pos = cache.pos;
        let c = self.config;
        let x = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let mask = if seq_len > 1 { Some(self.mask(seq_len, index_pos)?) } else { None };
        let cos = self.cos.narrow(0, index_pos, seq_len)?;
        let sin = self.sin.narrow(0, index_pos, seq_len)?;
        let mut h = self.embeddings.forward(&x)?;
        let kv_len = index_pos + seq_len;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let ctx = cache.ctx;
        let this = &*self;
        let result = (|| -> Result<Tensor, Error> {
            for (li, layer) in this.layers.iter().enumerate() {
                let residual = h.clone();
                let xs = layer.attn_norm.forward(&h)?;
                let qkv = project(&xs, &[&layer.wq, &layer.wk, &layer.wv])?;
                let q = qkv[0].reshape((1, seq_len, c.n_head, c.head_dim))?.transpose(1, 2)?.contiguous()?;
                let k = qkv[1].reshape((1, seq_len, c.n_kv_head, c.head_dim))?.transpose(1, 2)?.contiguous()?;
                let v = qkv[2].reshape((1, seq_len, c.n_kv_head, c.head_dim))?.transpose(1, 2)?.contiguous()?;
                let (q, k) = if c.rope_neox {
                    (candle_nn::rotary_emb::rope(&q, &cos, &sin)?, candle_nn::rotary_emb::rope(&k, &cos, &sin)?)
                } else {
                    (candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?, candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?)
                };
                let groups = c.n_head / c.n_kv_head;
                let y = if seq_len >= super::causal::MIN_SEQ && this.causal {
                    // Prefill through the causal kernel: the candle ops' bits
                    // without the masked half or the materialised scores.
                    this.cache_write(&mut cache.k[li], ctx, &k, index_pos)?;
                    this.cache_write(&mut cache.v[li], ctx, &v, index_pos)?;
                    let qv = q.flatten_all()?.to_vec1::<f32>()?;
                    let mut y = vec![0f32; seq_len * c.n_embd];
                    super::causal::attention(&qv, &cache.k[li], &cache.v[li], ctx, index_pos, seq_len, c.n_head, c.n_kv_head, &mut y);
                    Tensor::from_vec(y, (1, seq_len, c.n_embd), &this.device)?
                } else {
                    let k_all = this.cache_write_read(&mut cache.k[li], ctx, &k, index_pos, kv_len)?;
                    let v_all = this.cache_write_read(&mut cache.v[li], ctx, &v, index_pos, kv_len)?;
                    if seq_len == 1 {
                        // Generic decode: one query row per head, each KV head repeated
                        // for its query heads — the reference's arithmetic.
                        let k_rep = candle_transformers::utils::repeat_kv(k_all, groups)?;
                        let v_rep = candle_transformers::utils::repeat_kv(v_all, groups)?;
                        let att = (q.matmul(&k_rep.t()?)? / (c.head_dim as f64).sqrt())?;
                        let att = candle_nn::ops::softmax_last_dim(&att)?;
                        let y = att.matmul(&v_rep)?.transpose(1, 2)?.reshape((1, 1, c.n_embd))?;
                        let h1 = (layer.wo.forward(&y)? + residual)?;
                        let xs = layer.ffn_norm.forward(&h1)?;
                        let gate = candle_nn::ops::silu(&layer.w_gate.forward(&xs)?)?;
                        let up = layer.w_up.forward(&xs)?;
                        h = (layer.w_down.forward(&(gate * up)?)? + h1)?;
                        continue;
                    }
                    // Prefill, grouped-query attention: fold the query heads of one KV head into rows.
                    let q = q.reshape((1, c.n_kv_head, groups * seq_len, c.head_dim))?;
                    let att = (q.matmul(&k_all.t()?)? * scale)?;
                    let att = match &mask {
                        Some(m) => {
                            let att = att.reshape((1, c.n_kv_head, groups, seq_len, kv_len))?;
                            att.broadcast_add(m)?.reshape((1, c.n_kv_head, groups * seq_len, kv_len))?
                        }
                        None => att,
                    };
                    let att = candle_nn::ops::softmax_last_dim(&att)?;
                    let y = att.matmul(&v_all)?; // (1, kv, groups*seq, d)
                    y.reshape((1, c.n_head, seq_len, c.head_dim))?.transpose(1, 2)?.reshape((1, seq_len, c.n_embd))?
                };
                let h1 = (layer.wo.forward(&y)? + residual)?;
                let xs = layer.ffn_norm.forward(&h1)?;
                let gate_up = project(&xs, &[&layer.w_gate, &layer.w_up])?;
                let gate = candle_nn::ops::silu(&gate_up[0])?;
                h = (layer.w_down.forward(&(gate * &gate_up[1])?)? + h1)?;
            }
            let last = h.i((.., seq_len - 1, ..))?;
            let last = this.norm.forward(&last)?;
            let logits = this.output.forward(&last)?.squeeze(0)?;
            Ok(logits.to_dtype(DType::F32)?.contiguous()?)
        })();
        let logits = result?;
        cache.pos = kv_len;
        Ok(logits)
    }

    /// The decode path: one new token for each of several sequences through
    /// every layer at once, each sequence at its own position against its
    /// own KV cache. Returns the logits, one row of [`Llama::vocab_size`]
    /// per sequence (valid until the next call).
    ///
    /// Plain slices and preallocated buffers: RMSNorm per row, Q8_1
    /// activations quantized once per matrix input, our Q4_1 kernel over all
    /// rows in one dispatch per group of matrices (each tile of weights read
    /// once for every row: decoding B sequences costs far less than B single
    /// steps, since one step is dominated by streaming the weights), RoPE at
    /// each row's position, the new keys and values written in place into
    /// each cache, attention of all (sequence, head) pairs in one dispatch,
    /// the Q8_0 LM head over all rows. Rows never mix: each row's floats go
    /// through the same operations in the same order as a batch of one (see
    /// the bit-identity tests below), so greedy outputs do not depend on what
    /// else is being decoded.
    pub fn decode_batch(&mut self, caches: &mut [&mut KvCache], tokens: &[u32]) -> Result<&[f32], Error> {
        let c = self.config;
        let b = tokens.len();
        if b == 0 || caches.len() != b {
            return Err(Error::Generation(format!("decode_batch: {} tokens for {} caches", b, caches.len())));
        }
        let (hd, e, kv) = (c.head_dim, c.n_embd, c.n_kv_head * c.head_dim);
        let half = hd / 2;
        let eps = c.eps as f32;
        let n_ff = self.n_ff;
        let max_ctx = caches.iter().map(|k| k.ctx).max().unwrap_or(0);
        for cache in caches.iter() {
            if cache.pos + 1 > cache.ctx {
                return Err(Error::ContextFull { needed: cache.pos + 1, capacity: cache.ctx });
            }
            if cache.k.len() != c.n_layer || cache.ctx > self.max_context() {
                return Err(Error::Generation("KV cache was not made by this model".into()));
            }
        }
        let Some(s) = self.scratch.as_mut() else {
            return Err(Error::Generation("decode path not available for this model".into()));
        };
        s.ensure(b, &c, n_ff, max_ctx);
        {
            let emb = self.embeddings.embeddings();
            let (st, layout) = emb.storage_and_layout();
            let table = match &*st {
                candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)) => &v[layout.start_offset()..],
                _ => return Err(Error::Generation("embedding table is not f32 on the CPU".into())),
            };
            for (i, &token) in tokens.iter().enumerate() {
                let off = token as usize * e;
                let row = table
                    .get(off..off + e)
                    .ok_or_else(|| Error::Generation(format!("token id {token} is outside the vocabulary")))?;
                s.x[i * e..(i + 1) * e].copy_from_slice(row);
            }
        }
        let pos: Vec<usize> = caches.iter().map(|k| k.pos).collect();
        for (li, layer) in self.layers.iter().enumerate() {
            for i in 0..b {
                super::cpu::rms_norm(&s.x[i * e..(i + 1) * e], &layer.attn_norm_w, eps, &mut s.xn[i * e..(i + 1) * e]);
            }
            s.acts.quantize(&s.xn, b);
            matmul_into(&mut [
                (q41(&layer.wq), &s.acts, &mut s.q[..b * e]),
                (q41(&layer.wk), &s.acts, &mut s.k[..b * kv]),
                (q41(&layer.wv), &s.acts, &mut s.v[..b * kv]),
            ]);
            for (i, cache) in caches.iter_mut().enumerate() {
                let p = pos[i];
                let (cos, sin) = (&self.cos_v[p * half..(p + 1) * half], &self.sin_v[p * half..(p + 1) * half]);
                super::cpu::rope_i(&mut s.q[i * e..(i + 1) * e], hd, cos, sin);
                super::cpu::rope_i(&mut s.k[i * kv..(i + 1) * kv], hd, cos, sin);
                let ctx = cache.ctx;
                for h in 0..c.n_kv_head {
                    let dst = (h * ctx + p) * hd;
                    let src = i * kv + h * hd;
                    cache.k[li][dst..dst + hd].copy_from_slice(&s.k[src..src + hd]);
                    cache.v[li][dst..dst + hd].copy_from_slice(&s.v[src..src + hd]);
                }
            }
            {
                let row_att = c.n_head * max_ctx;
                let mut seqs: Vec<super::cpu::Attend<'_>> = caches
                    .iter()
                    .zip(s.att.chunks_mut(row_att))
                    .zip(s.y.chunks_mut(e))
                    .zip(s.q.chunks(e))
                    .enumerate()
                    .map(|(i, (((cache, att), y), q))| super::cpu::Attend {
                        q,
                        k_cache: &cache.k[li],
                        v_cache: &cache.v[li],
                        ctx: cache.ctx,
                        kv_len: pos[i] + 1,
                        att,
                        y,
                    })
                    .collect();
                super::cpu::attention_many(&mut seqs, c.n_head, c.n_kv_head, hd);
            }
            s.acts.quantize(&s.y, b);
            matmul_into(&mut [(q41(&layer.wo), &s.acts, &mut s.o[..b * e])]);
            super::cpu::add_assign(&mut s.x[..b * e], &s.o[..b * e]);
            for i in 0..b {
                super::cpu::rms_norm(&s.x[i * e..(i + 1) * e], &layer.ffn_norm_w, eps, &mut s.xn[i * e..(i + 1) * e]);
            }
            s.acts.quantize(&s.xn, b);
            matmul_into(&mut [
                (q41(&layer.w_gate), &s.acts, &mut s.gate[..b * n_ff]),
                (q41(&layer.w_up), &s.acts, &mut s.up[..b * n_ff]),
            ]);
            super::cpu::silu_mul(&mut s.gate[..b * n_ff], &s.up[..b * n_ff]);
            s.acts_ff.quantize(&s.gate, b);
            matmul_into(&mut [(q41(&layer.w_down), &s.acts_ff, &mut s.down[..b * e])]);
            super::cpu::add_assign(&mut s.x[..b * e], &s.down[..b * e]);
        }
        for i in 0..b {
            super::cpu::rms_norm(&s.x[i * e..(i + 1) * e], &self.norm_w, eps, &mut s.xn[i * e..(i + 1) * e]);
        }
        let vocab = match &self.output {
            Linear::Q41(w) => w.rows(),
            Linear::Q80(w) => w.rows(),
            Linear::Candle(_) => 0,
        };
        match &self.output {
            Linear::Q41(w) => {
                s.acts.quantize(&s.xn, b);
                self.logits.resize(b * vocab, 0.0);
                matmul_into(&mut [(w, &s.acts, &mut self.logits[..])]);
            }
            Linear::Q80(w) => {
                for (a, x) in s.acts8.iter_mut().zip(s.xn.chunks(e)).take(b) {
                    a.quantize(x);
                }
                let acts: Vec<&super::q8_0::Acts8> = s.acts8[..b].iter().collect();
                self.logits.resize(b * vocab, 0.0);
                w.matmul_rows(&acts, &mut self.logits, vocab);
            }
            Linear::Candle(m) => {
                // Row by row, as a batch of one would: candle's kernels are not ours to keep row-exact.
                self.logits.clear();
                for i in 0..b {
                    let x = Tensor::from_slice(&s.xn[i * e..(i + 1) * e], (1, e), &self.device)?;
                    let out = m.forward(&x)?;
                    let (st, layout) = out.storage_and_layout();
                    match &*st {
                        candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)) => {
                            self.logits.extend_from_slice(&v[layout.start_offset()..layout.start_offset() + out.elem_count()]);
                        }
                        _ => return Err(Error::Generation("LM head output is not f32 on the CPU".into())),
                    }
                }
            }
        }
        for cache in caches.iter_mut() {
            cache.pos += 1;
        }
        Ok(&self.logits)
    }

    /// The logits of the last forward ([`Llama::decode_batch`]: one row per sequence).
    pub fn last_logits(&self) -> &[f32] {
        &self.logits
    }

    /// Logits as a vector (for sampling and masks).
    pub fn logits_vec(logits: &Tensor) -> Result<Vec<f32>, Error> {
        Ok(logits.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Argmax of a logits vector.
    pub fn argmax(v: &[f32]) -> u32 {
        v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap_or(0)
    }
}
