//! Command-line options of dense retrieval: `ingest --embedder/--no-dense`,
//! `ask`/`eval --retrieval bm25|dense|fused`.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::copilot::Copilot;
use crate::index::dense::DEFAULT_DIR;
use crate::index::{Embedder, RetrievalMode};

/// The default retrieval mode of `ask` and `eval` (chosen on evals/labels.jsonl; see README).
pub const DEFAULT_RETRIEVAL: RetrievalMode = RetrievalMode::Bm25;

/// Dense options of `ingest`.
#[derive(Debug, Args)]
pub struct IngestDense {
    /// Embedding model folder (model.safetensors, tokenizer.json, config.json); default models/minilm if it exists.
    #[arg(long, value_name = "DIR", env = "ONLABEL_EMBEDDER")]
    pub embedder: Option<PathBuf>,
    /// Also embed every passage for dense/fused retrieval (BM25 wins on our
    /// evals, so vectors are opt-in: embedding costs seconds to minutes).
    #[arg(long)]
    pub dense: bool,
    /// Build the BM25 index only (the default; kept for scripts).
    #[arg(long, conflicts_with_all = ["embedder", "dense"])]
    pub no_dense: bool,
}

/// Dense options of the query commands.
#[derive(Debug, Args, Clone)]
pub struct QueryDense {
    /// Retrieval: bm25, dense (MiniLM cosine) or fused (reciprocal-rank fusion of both).
    #[arg(long, value_name = "MODE", value_parser = clap::value_parser!(RetrievalMode), default_value_t = DEFAULT_RETRIEVAL)]
    pub retrieval: RetrievalMode,
    /// Embedding model folder for the question; must be the model the index was built with.
    #[arg(long, value_name = "DIR", env = "ONLABEL_EMBEDDER")]
    pub embedder: Option<PathBuf>,
    /// The learned model that picks the sentence leading an answer: `cross`
    /// (the cross-encoder rescoring the sentence head's best candidates; needs
    /// the embedder's folder) or `head` (the cheap sentence head alone).
    #[arg(long, value_name = "MODEL", default_value = "cross", value_parser = ["cross", "head"], env = "ONLABEL_SENTENCE_MODEL")]
    pub sentence_model: String,
}

fn note(msg: &str) {
    tracing::warn!("{msg}");
    eprintln!("note: {msg}");
}

/// The embedder `ingest` uses: the given folder (an error if unusable), the
/// default folder if it exists, or none (with a note).
pub fn ingest_embedder(a: &IngestDense) -> anyhow::Result<Option<Embedder>> {
    if a.no_dense {
        return Ok(None);
    }
    match &a.embedder {
        Some(dir) => Ok(Some(Embedder::load(dir)?)),
        None if !a.dense => Ok(None),
        None if Path::new(DEFAULT_DIR).is_dir() => Ok(Some(Embedder::load(Path::new(DEFAULT_DIR))?)),
        None => {
            note(&format!("no embedding model at {DEFAULT_DIR}; building the BM25 index only (run `bash models/fetch.sh` for dense retrieval)"));
            Ok(None)
        }
    }
}

/// Gives the copilot its question embedder and retrieval mode. The
/// embedder is attached whenever it loads (the guard's learned intent head
/// reads the question's embedding, whatever the retrieval mode); retrieval
/// falls back to BM25 with a note when the index has no vectors or the
/// embedder is not the model the vectors were made with. Without the model
/// files, intent is decided by the rules alone (noted when dense retrieval
/// was asked for, logged otherwise).
pub fn attach(c: Copilot, q: &QueryDense) -> anyhow::Result<Copilot> {
    let want_dense = q.retrieval != RetrievalMode::Bm25;
    let meta = c.index().vectors_meta().cloned();
    if want_dense && meta.is_none() {
        note(&format!(
            "the index has no passage vectors; retrieving with bm25 instead of {} (re-run `onlabel ingest` with the embedder)",
            q.retrieval
        ));
    }
    let dir = q.embedder.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    let e = match Embedder::load(&dir) {
        Ok(e) => e,
        Err(err) if q.embedder.is_none() => {
            if want_dense && meta.is_some() {
                note(&format!("{err}; retrieving with bm25"));
            }
            tracing::warn!(error = %err, "no question embedder: the guard's intent head is not consulted (run `bash models/fetch.sh`)");
            return Ok(c);
        }
        Err(err) => return Err(err.into()),
    };
    let mode = match meta {
        Some(meta) if want_dense => {
            if e.sha256()? != meta.sha256 || e.dim() != meta.dim {
                note(&format!(
                    "the embedder at {} is not the model the index's vectors were made with ({} sha256:{}); retrieving with bm25 (rebuild with `onlabel ingest`)",
                    dir.display(),
                    meta.model,
                    meta.sha256.get(..12).unwrap_or(&meta.sha256)
                ));
                RetrievalMode::Bm25
            } else {
                q.retrieval
            }
        }
        _ => RetrievalMode::Bm25,
    };
    let c = c.with_embedder(e, mode);
    if q.sentence_model != "cross" {
        return Ok(c);
    }
    match crate::copilot::extractive::cross::CrossEncoder::load(&dir) {
        Ok(ce) => {
            tracing::info!(model = %ce.version(), "the cross-encoder picks the sentence that leads each answer");
            Ok(c.with_cross(ce))
        }
        Err(err) => {
            note(&format!("{err}; the sentence head alone picks the leading sentence"));
            Ok(c)
        }
    }
}
