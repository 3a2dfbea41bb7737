//! `onlabel ingest`: load corpora (manifest.toml + files), build the search
//! index and its document catalogue.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use chrono::NaiveDate;
use clap::Args;

use super::{dense, error, outln, today, EXIT_OK};
use crate::corpus::{Corpus, Limits};
use crate::index::Index;

/// Options of `onlabel ingest`.
#[derive(Debug, Args)]
pub(super) struct IngestArgs {
    /// A corpus folder holding manifest.toml (repeatable).
    #[arg(long = "corpus", required = true)]
    pub(super) corpora: Vec<PathBuf>,
    /// Where to write the index (replaced atomically); default: the config file's `index`.
    #[arg(long, env = "ONLABEL_INDEX")]
    pub(super) index: Option<PathBuf>,
    /// Skip documents that fail to load instead of stopping at the first.
    #[arg(long)]
    pub(super) keep_going: bool,
    /// Build the index even when no document loaded (by default an empty or
    /// all-failing corpus never replaces an existing index).
    #[arg(long)]
    pub(super) allow_empty: bool,
    /// Largest document accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_doc_bytes)]
    pub(super) max_doc_bytes: u64,
    #[command(flatten)]
    pub(super) dense: dense::IngestDense,
}

/// The warnings `ingest` prints for documents that load but can never be
/// cited: withdrawn, or already past their last valid day.
fn unusable_documents(corpus: &Corpus, today: NaiveDate) -> Vec<String> {
    let mut w = Vec::new();
    for d in &corpus.documents {
        let m = &d.meta;
        if m.status == crate::corpus::Status::Withdrawn {
            w.push(format!("document {} ({}) is withdrawn: it is indexed but will never be retrieved or cited", m.id, m.mlr_number));
        } else if m.expires_on < today {
            w.push(format!(
                "document {} ({}) expired on {}: it is indexed but will never be retrieved or cited; ingest its renewed version",
                m.id, m.mlr_number, m.expires_on
            ));
        }
    }
    w
}

/// A corpus loaded for `ingest` or `index publish`, with what is needed to build it.
pub(super) struct Loaded {
    /// Where the index goes (a flat directory, or a versioned root).
    pub(super) index_dir: PathBuf,
    /// The documents that loaded (and the failures, with `--keep-going`).
    pub(super) corpus: Corpus,
    /// Their passages.
    pub(super) passages: Vec<crate::corpus::Passage>,
    /// Documents that load but can never be cited (already printed unless `--json`).
    pub(super) warnings: Vec<String>,
    /// The passage embedder, with `--dense`.
    pub(super) embedder: Option<crate::index::Embedder>,
}

/// Loads the corpora of `a`, refusing an empty result (unless
/// `--allow-empty`) and printing the unusable-document warnings.
pub(super) fn load(a: &IngestArgs, json: bool) -> anyhow::Result<Loaded> {
    let index_dir = a.index.clone().ok_or(error::Error::NoIndex)?;
    let limits = Limits { max_doc_bytes: a.max_doc_bytes, ..Limits::default() };
    let corpus = Corpus::load(&a.corpora, limits, a.keep_going)?;
    let passages = corpus.passages(limits);
    if passages.is_empty() && !a.allow_empty {
        let why = if !corpus.failures.is_empty() {
            let first = corpus.failures.first().map(|e| e.to_string()).unwrap_or_default();
            match corpus.failures.len() {
                1 => format!("its only document failed to load ({first})"),
                n => format!("all {n} documents failed to load (the first: {first})"),
            }
        } else if corpus.documents.is_empty() {
            let list: Vec<String> = a.corpora.iter().map(|c| c.join("manifest.toml").display().to_string()).collect();
            format!("{} lists no document", list.join(", "))
        } else {
            format!("the {} documents loaded hold no text", corpus.documents.len())
        };
        if !json {
            for f in &corpus.failures {
                eprintln!("skipped: {f}");
            }
        }
        return Err(error::Error::EmptyCorpus { why, index: index_dir }.into());
    }
    let warnings = unusable_documents(&corpus, today());
    if !json {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }
    let embedder = dense::ingest_embedder(&a.dense)?;
    Ok(Loaded { index_dir, corpus, passages, warnings, embedder })
}

/// A progress bar on a terminal (none under `--json` or when piped), and
/// the callback [`crate::index::Index::build_with`] reports to.
pub(super) fn progress(total: usize, json: bool) -> (Option<indicatif::ProgressBar>, impl FnMut(crate::index::BuildStage, usize)) {
    let bar = if std::io::stderr().is_terminal() && !json {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} passages {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let shared = bar.clone();
    let mut shown = None;
    let report = move |stage, i: usize| {
        if let Some(b) = &shared {
            if shown != Some(stage) {
                shown = Some(stage);
                b.set_message(if stage == crate::index::BuildStage::Embedding { "embedding" } else { "indexing" });
            }
            b.set_position(i as u64)
        }
    };
    (bar, report)
}

/// Runs `onlabel ingest`.
pub(super) fn run(a: &IngestArgs, json: bool) -> anyhow::Result<i32> {
    let t = Instant::now();
    let index_dir = a.index.clone().ok_or(error::Error::NoIndex)?;
    if crate::index::versions::is_root(&index_dir) {
        return Err(error::Error::BadInput {
            field: "--index",
            reason: format!(
                "{} is a versioned index root that replicas serve; `ingest` would replace it whole. \
                 Publish a new version into it with `onlabel index publish --corpus DIR --index {}` instead",
                index_dir.display(),
                index_dir.display()
            ),
        }
        .into());
    }
    let Loaded { index_dir, corpus, passages, warnings, embedder } = load(a, json)?;
    let (bar, report) = progress(passages.len(), json);
    let built = Index::build_with(&index_dir, &passages, report, embedder.as_ref())?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    crate::index::catalogue::write(&index_dir, &corpus, &passages)?;
    let sections: usize = corpus.documents.iter().map(|d| d.sections.len()).sum();
    let pages: usize = corpus.documents.iter().map(|d| d.pages).sum();
    let secs = t.elapsed().as_secs_f64();
    let failures: Vec<String> = corpus.failures.iter().map(|e| e.to_string()).collect();
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "documents": corpus.documents.len(), "sections": sections, "passages": passages.len(),
                "pages": pages, "seconds": secs, "index": index_dir, "failures": failures,
                "embed_seconds": built.embed_seconds, "warnings": warnings,
            })
        );
    } else {
        for f in &failures {
            eprintln!("skipped: {f}");
        }
        outln!(
            "indexed {} documents, {} sections, {} passages in {:.2} s → {}{}",
            corpus.documents.len(),
            sections,
            passages.len(),
            secs,
            index_dir.display(),
            if failures.is_empty() { String::new() } else { format!(" ({} skipped)", failures.len()) }
        );
        match built.embed_seconds {
            Some(s) => println!("embedded {} passages in {:.2} s ({:.0} passages/s)", passages.len(), s, passages.len() as f64 / s.max(1e-9)),
            None => println!("no passage vectors (BM25 only)"),
        }
    }
    Ok(EXIT_OK)
}
