//! Dense retrieval: [`Embedder`] (all-MiniLM-L6-v2 run with candle), the
//! passage vectors stored beside the tantivy index ([`Vectors`]), cosine
//! search inside the same [`Filter`] as BM25, and reciprocal-rank fusion
//! ([`RetrievalMode::Fused`]).
//!
//! Files written beside the index by [`Index::build_with`]:
//!
//! - `vectors.bin`: f32 little-endian, `count × dim`, one row per passage in
//!   the order the passages were indexed;
//! - `vectors.json`: `{"model", "sha256", "dim", "count", "keys"}` where
//!   `sha256` is the hash of the embedder's `model.safetensors` and `keys`
//!   gives each row's `(doc_id, ordinal)` (rows are matched to tantivy
//!   documents through these keys when the index is opened, never by
//!   position alone).
//!
//! Every dense candidate goes through the same stored-field post-check
//! ([`Filter::allows`]) and the same `coverage` / `matched` / `title_score`
//! annotation as a BM25 hit, so the extractive generator's relevance gate
//! judges them alike.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tantivy::collector::DocSetCollector;
use tantivy::query::AllQuery;
use tantivy::{DocAddress, TantivyDocument};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{analysis, Filter, Hit, Index, SearchResult};
use crate::corpus::Passage;

/// Passages embedded per forward pass.
pub const BATCH: usize = 32;
/// Longest input in tokens (passages are chunked shorter than this in words).
pub const MAX_TOKENS: usize = 256;
/// The reciprocal-rank-fusion constant.
pub const RRF_K: f32 = 60.0;
/// Depth of each ranked list fused (BM25 top-N and dense top-N).
pub const FUSE_DEPTH: usize = 20;
/// The embedder's default folder (fetched by `models/fetch.sh`).
pub const DEFAULT_DIR: &str = "models/minilm";

/// What can go wrong with the embedder or the vectors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the embedding model is missing.
    #[error("the embedding model file {path} is missing: run `bash models/fetch.sh` (or point --embedder / ONLABEL_EMBEDDER at a folder holding model.safetensors, tokenizer.json and config.json)")]
    MissingFile {
        /// The missing file.
        path: PathBuf,
    },
    /// A model file could not be read or is not what it should be.
    #[error("cannot load the embedding model from {path}: {message}; run `bash models/fetch.sh` to fetch a good copy")]
    Load {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Running the model failed.
    #[error("embedding failed: {0}")]
    Embed(String),
    /// The vectors beside the index are damaged or inconsistent.
    #[error("the dense vectors at {path} are unusable ({message}); rebuild with `onlabel ingest`")]
    Vectors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// The stable code (see [`crate::error::CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            Error::MissingFile { .. } | Error::Load { .. } | Error::Embed(_) | Error::Vectors { .. } => "embedder_error",
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Embed(e.to_string())
    }
}

/// Which retriever answers a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetrievalMode {
    /// tantivy BM25 with synonym expansion only.
    #[default]
    Bm25,
    /// Cosine similarity of MiniLM embeddings only.
    Dense,
    /// Reciprocal-rank fusion (k = 60) of BM25 top-20 and dense top-20.
    Fused,
}

impl RetrievalMode {
    /// The spelling on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RetrievalMode::Bm25 => "bm25",
            RetrievalMode::Dense => "dense",
            RetrievalMode::Fused => "fused",
        }
    }
}

impl std::fmt::Display for RetrievalMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RetrievalMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bm25" => Ok(RetrievalMode::Bm25),
            "dense" => Ok(RetrievalMode::Dense),
            "fused" => Ok(RetrievalMode::Fused),
            _ => Err(format!("{s:?} is not a retrieval mode: use bm25, dense or fused")),
        }
    }
}

/// A sentence embedder: all-MiniLM-L6-v2 (BERT, 384 dimensions), mean-pooled
/// over the attention mask and L2-normalised, so a dot product is a cosine.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    name: String,
    weights: PathBuf,
    sha256: OnceLock<String>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("name", &self.name).field("dim", &self.dim).finish()
    }
}

impl Embedder {
    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Embedder, Error> {
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
        // The shipped tokenizer pads every input to 128: pad to the batch's longest instead.
        let padding = match tokenizer.get_padding() {
            Some(p) => PaddingParams { strategy: PaddingStrategy::BatchLongest, ..p.clone() },
            None => PaddingParams { strategy: PaddingStrategy::BatchLongest, ..PaddingParams::default() },
        };
        tokenizer.with_padding(Some(padding));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..TruncationParams::default() }))
            .map_err(|e| load_err(&tok_path, e.to_string()))?;
        let device = Device::Cpu;
        // SAFETY: the weights file is memory-mapped read-only; OnLabel never
        // writes it, and models/fetch.sh replaces it by rename, not in place.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(std::slice::from_ref(&weights), DType::F32, &device) }
            .map_err(|e| load_err(&weights, e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| load_err(&weights, e.to_string()))?;
        let name = dir.file_name().and_then(|n| n.to_str()).map(|n| {
            if n == "minilm" { "all-MiniLM-L6-v2".to_string() } else { n.to_string() }
        });
        Ok(Embedder {
            model,
            tokenizer,
            device,
            dim: config.hidden_size,
            name: name.unwrap_or_else(|| "all-MiniLM-L6-v2".into()),
            weights,
            sha256: OnceLock::new(),
        })
    }

    /// Embedding dimension (384 for MiniLM).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The model's name as recorded in `vectors.json`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// sha256 of `model.safetensors` (computed once, on first use).
    pub fn sha256(&self) -> Result<&str, Error> {
        if let Some(s) = self.sha256.get() {
            return Ok(s);
        }
        let s = sha256_file(&self.weights).map_err(|e| Error::Load { path: self.weights.clone(), message: e.to_string() })?;
        Ok(self.sha256.get_or_init(|| s))
    }

    /// Embeds texts in batches of [`BATCH`]: one unit vector per text, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        self.embed_with_progress(texts, &mut |_| {})
    }

    /// As [`Embedder::embed`], calling `progress` with the number of texts done.
    pub fn embed_with_progress(&self, texts: &[&str], progress: &mut dyn FnMut(usize)) -> Result<Vec<Vec<f32>>, Error> {
        // Batch texts of similar length together (less padding), then restore the order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let mut done = 0;
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (i, v) in chunk.iter().zip(self.embed_batch(&batch)?) {
                out[*i] = v;
            }
            done += chunk.len();
            progress(done);
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| Error::Embed(e.to_string()))?;
        let len = enc.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let n = enc.len();
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in &enc {
            // BatchLongest padding makes every row `len` long; pad defensively anyway.
            let (i, m) = (e.get_ids(), e.get_attention_mask());
            ids.extend_from_slice(i);
            ids.extend(std::iter::repeat_n(0, len - i.len()));
            mask.extend_from_slice(m);
            mask.extend(std::iter::repeat_n(0, len - m.len()));
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?; // (n, len, dim)
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
        let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (n, dim)
        let counts = m.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (n, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}

/// The text of a passage that is embedded: its title, then its text without
/// cross-references.
pub fn passage_text(p: &Passage) -> String {
    format!("{}: {}", p.title, analysis::strip_cross_references(&p.text))
}

/// `vectors.json`: what the vectors are and which passage each row is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VectorsMeta {
    /// Embedding model name.
    pub model: String,
    /// sha256 of the model's `model.safetensors`.
    pub sha256: String,
    /// Dimension of each vector.
    pub dim: usize,
    /// Number of vectors.
    pub count: usize,
    /// `(doc_id, ordinal)` of each row.
    pub keys: Vec<(String, u32)>,
}

/// The passage vectors of an index.
#[derive(Debug, Clone)]
pub struct Vectors {
    /// What they are.
    pub meta: VectorsMeta,
    data: Vec<f32>,
}

/// File names beside the index.
pub const VECTORS_BIN: &str = "vectors.bin";
/// See [`VECTORS_BIN`].
pub const VECTORS_JSON: &str = "vectors.json";

impl Vectors {
    /// Embeds passages (see [`passage_text`]) with `embedder`.
    pub fn embed(passages: &[Passage], embedder: &Embedder, progress: &mut dyn FnMut(usize)) -> Result<Vectors, Error> {
        let texts: Vec<String> = passages.iter().map(passage_text).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let rows = embedder.embed_with_progress(&refs, progress)?;
        let dim = embedder.dim();
        let mut data = Vec::with_capacity(rows.len() * dim);
        for r in &rows {
            data.extend_from_slice(r);
        }
        Ok(Vectors {
            meta: VectorsMeta {
                model: embedder.name().to_string(),
                sha256: embedder.sha256()?.to_string(),
                dim,
                count: rows.len(),
                keys: passages.iter().map(|p| (p.doc_id.clone(), p.ordinal)).collect(),
            },
            data,
        })
    }

    /// Writes `vectors.bin` and `vectors.json` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(self.data.len() * 4);
        for x in &self.data {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(dir.join(VECTORS_BIN), bytes)?;
        let json = serde_json::to_vec(&self.meta).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(VECTORS_JSON), json)
    }

    /// Reads the vectors beside an index; `None` when it has none.
    pub fn read(dir: &Path) -> Result<Option<Vectors>, Error> {
        let (bin, json) = (dir.join(VECTORS_BIN), dir.join(VECTORS_JSON));
        if !bin.exists() && !json.exists() {
            return Ok(None);
        }
        let bad = |path: &Path, message: String| Error::Vectors { path: path.to_owned(), message };
        let meta: VectorsMeta = serde_json::from_slice(&std::fs::read(&json).map_err(|e| bad(&json, e.to_string()))?)
            .map_err(|e| bad(&json, e.to_string()))?;
        let bytes = std::fs::read(&bin).map_err(|e| bad(&bin, e.to_string()))?;
        if meta.dim == 0 || bytes.len() != meta.count * meta.dim * 4 || meta.keys.len() != meta.count {
            return Err(bad(
                &bin,
                format!("{} bytes and {} keys for {} vectors of {} dimensions", bytes.len(), meta.keys.len(), meta.count, meta.dim),
            ));
        }
        let data = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok(Some(Vectors { meta, data }))
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.meta.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.meta.count == 0
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.meta.dim..(i + 1) * self.meta.dim]
    }
}

/// The vectors of an open index with each tantivy document's row.
#[derive(Debug)]
pub(super) struct DenseIndex {
    pub(super) vectors: Vectors,
    rows: HashMap<DocAddress, usize>,
}

impl DenseIndex {
    /// Matches rows to the documents of `searcher` by `(doc_id, ordinal)`.
    pub(super) fn attach(index: &Index, vectors: Vectors) -> super::Result<DenseIndex> {
        let searcher = index.reader.searcher();
        let tv = |source| super::Error::Tantivy { path: index.path.clone(), source };
        let by_key: HashMap<(&str, u32), usize> =
            vectors.meta.keys.iter().enumerate().map(|(i, (d, o))| ((d.as_str(), *o), i)).collect();
        let mut rows = HashMap::new();
        for addr in searcher.search(&AllQuery, &DocSetCollector).map_err(tv)? {
            let d: TantivyDocument = searcher.doc(addr).map_err(tv)?;
            let p = index.passage(&d)?;
            match by_key.get(&(p.doc_id.as_str(), p.ordinal)) {
                Some(&r) => {
                    rows.insert(addr, r);
                }
                None => {
                    return Err(Error::Vectors {
                        path: index.path.join(VECTORS_JSON),
                        message: format!("no vector for passage {} #{}", p.doc_id, p.ordinal),
                    }
                    .into())
                }
            }
        }
        Ok(DenseIndex { vectors, rows })
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Index {
    /// Whether the index has passage vectors (built with an embedder).
    pub fn has_vectors(&self) -> bool {
        self.dense.is_some()
    }

    /// What the passage vectors are (model, hash, dimension), if any.
    pub fn vectors_meta(&self) -> Option<&VectorsMeta> {
        self.dense.as_ref().map(|d| &d.vectors.meta)
    }

    /// Searches in a [`RetrievalMode`]. `query_vec` is the question embedded
    /// by the same model as the passages ([`Embedder::embed`]).
    ///
    /// - `Bm25` (or no `query_vec`, or no vectors in the index): exactly [`Index::search`].
    /// - `Dense`: the `limit` passages allowed by `filter` nearest to the question (cosine).
    /// - `Fused`: reciprocal-rank fusion (k = [`RRF_K`]) of BM25's and dense's top
    ///   [`FUSE_DEPTH`] (or `limit`, if larger); a hit's `score` is its fused score.
    ///
    /// In every mode the candidates are post-checked against `filter` on their
    /// stored fields, annotated with `coverage`, `matched` and `title_score`
    /// like BM25 hits, and put in final order by the same coverage-first
    /// rerank as BM25 (coverage, then the mode's own score normalised, then
    /// title match); at most `limit` are returned.
    pub fn search_with(
        &self,
        question: &str,
        query_vec: Option<&[f32]>,
        filter: &Filter,
        limit: usize,
        mode: RetrievalMode,
    ) -> super::Result<SearchResult> {
        super::contained(&self.path, "searching", || self.search_with_unchecked(question, query_vec, filter, limit, mode))
    }

    fn search_with_unchecked(
        &self,
        question: &str,
        query_vec: Option<&[f32]>,
        filter: &Filter,
        limit: usize,
        mode: RetrievalMode,
    ) -> super::Result<SearchResult> {
        let (dense, qv) = match (mode, self.dense.as_ref(), query_vec) {
            (RetrievalMode::Bm25, _, _) | (_, None, _) | (_, _, None) => return self.search(question, filter, limit),
            (_, Some(d), Some(q)) => (d, q),
        };
        if qv.len() != dense.vectors.meta.dim {
            return Err(Error::Vectors {
                path: self.path.join(VECTORS_JSON),
                message: format!("the question vector has {} dimensions, the passages {}", qv.len(), dense.vectors.meta.dim),
            }
            .into());
        }
        let (concepts, weights, bm25) = self.bm25_query(question, filter);
        let candidates: Vec<(f32, DocAddress)> = match mode {
            // Negative cosines count as zero in the rerank's normalisation.
            RetrievalMode::Dense => {
                self.dense_top(dense, qv, filter, limit)?.into_iter().map(|(s, a)| (s.max(0.0), a)).collect()
            }
            _ => {
                let depth = FUSE_DEPTH.max(limit);
                let lexical = match &bm25 {
                    Some(q) => self.bm25_top(q, depth)?,
                    None => Vec::new(),
                };
                let semantic = self.dense_top(dense, qv, filter, depth)?;
                rrf(&[lexical, semantic])
            }
        };
        let mut hits = self.annotate_all(candidates, filter, &concepts, &weights)?;
        super::rerank(&mut hits);
        hits.truncate(limit);
        Ok(SearchResult { concepts, weights, hits })
    }

    /// The `k` passages allowed by the filter query nearest to `qv`, best first.
    fn dense_top(&self, dense: &DenseIndex, qv: &[f32], filter: &Filter, k: usize) -> super::Result<Vec<(f32, DocAddress)>> {
        let searcher = self.reader.searcher();
        let allowed = searcher
            .search(&self.filter_query(filter), &DocSetCollector)
            .map_err(|source| super::Error::Tantivy { path: self.path.clone(), source })?;
        let mut scored: Vec<(f32, DocAddress)> = allowed
            .into_iter()
            .filter_map(|a| dense.rows.get(&a).map(|&r| (dot(qv, dense.vectors.row(r)), a)))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(k);
        Ok(scored)
    }

    /// Loads, post-checks and annotates candidates (in order).
    pub(super) fn annotate_all(
        &self,
        candidates: Vec<(f32, DocAddress)>,
        filter: &Filter,
        concepts: &[super::Concept],
        weights: &[f32],
    ) -> super::Result<Vec<Hit>> {
        let searcher = self.reader.searcher();
        let mut hits = Vec::with_capacity(candidates.len());
        for (score, addr) in candidates {
            let d: TantivyDocument =
                searcher.doc(addr).map_err(|source| super::Error::Tantivy { path: self.path.clone(), source })?;
            let passage = self.passage(&d)?;
            if !filter.allows(&passage) {
                tracing::warn!(doc = %passage.doc_id, "filter post-check rejected a hit the query let through");
                continue;
            }
            hits.push(self.annotate(passage, score, concepts, weights));
        }
        Ok(hits)
    }
}

/// Reciprocal-rank fusion: each list contributes `1 / (RRF_K + rank)` (rank
/// from 1) to a document's score. Best first; ties by document address.
pub fn rrf(lists: &[Vec<(f32, DocAddress)>]) -> Vec<(f32, DocAddress)> {
    let mut fused: HashMap<DocAddress, f32> = HashMap::new();
    for list in lists {
        for (rank, (_, addr)) in list.iter().enumerate() {
            *fused.entry(*addr).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<(f32, DocAddress)> = fused.into_iter().map(|(a, s)| (s, a)).collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_rewards_agreement() {
        let a = |d| DocAddress::new(0, d);
        let fused = rrf(&[vec![(9.0, a(1)), (8.0, a(2)), (7.0, a(3))], vec![(0.9, a(3)), (0.8, a(2)), (0.7, a(4))]]);
        let order: Vec<u32> = fused.iter().map(|(_, d)| d.doc_id).collect();
        // In both lists beats first in one list only.
        assert!(order[..2].contains(&2) && order[..2].contains(&3), "{fused:?}");
        assert!(order.contains(&4) && order.contains(&1));
        assert_eq!(fused.len(), 4);
    }

    #[test]
    fn modes_parse() {
        assert_eq!("Fused".parse::<RetrievalMode>().unwrap(), RetrievalMode::Fused);
        assert!("hybrid".parse::<RetrievalMode>().is_err());
    }
}

/// SHA-256 of a file, streamed in 1 MiB blocks (the embedder's weights are
/// ~90 MB). Kept here rather than borrowed from `llm`, so that `index` does
/// not depend on `llm` (which depends on `index` for its `Generator` trait).
fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest as _;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
