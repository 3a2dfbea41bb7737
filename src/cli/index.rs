//! `onlabel index publish|status`: the versioned index root that several
//! `onlabel serve` replicas share ([`crate::index::versions`]).
//!
//! `publish` is the one command after an MLR-approved corpus change (a new
//! document, a renewal, a withdrawal set in `manifest.toml`): it builds a
//! new, immutable version beside the live one and flips `CURRENT`; every
//! replica serving the root switches to it within its `--index-poll-secs`.

use std::time::Instant;

use clap::{Args, Subcommand};

use super::ingest::{self, IngestArgs, Loaded};
use super::{error, outln, EXIT_OK};
use crate::index::versions::{self, DEFAULT_KEEP};

/// `onlabel index …`.
#[derive(Debug, Subcommand)]
pub(super) enum IndexCommand {
    /// Build a new version of a versioned index root from the corpora and make
    /// it live (replicas switch at their next poll); old versions beyond --keep are removed.
    Publish(PublishArgs),
    /// Show the live version of a versioned index root and the versions kept.
    Status(StatusArgs),
}

impl IndexCommand {
    /// The `--index` slot the config file's `index` fills.
    pub(super) fn index_mut(&mut self) -> &mut Option<std::path::PathBuf> {
        match self {
            IndexCommand::Publish(p) => &mut p.ingest.index,
            IndexCommand::Status(s) => &mut s.index,
        }
    }
}

/// Options of `onlabel index publish`: those of `ingest` (`--index` is the
/// versioned root), and how many versions to keep.
#[derive(Debug, Args)]
pub(super) struct PublishArgs {
    #[command(flatten)]
    pub(super) ingest: IngestArgs,
    /// Versions to keep, the live one included (at least 2: replicas may still
    /// be serving the previous one until their next poll).
    #[arg(long, default_value_t = DEFAULT_KEEP)]
    keep: usize,
}

/// Options of `onlabel index status`.
#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// The versioned index root; default: the config file's `index`.
    #[arg(long, env = "ONLABEL_INDEX")]
    index: Option<std::path::PathBuf>,
}

/// Runs `onlabel index …`.
pub(super) fn run(cmd: &IndexCommand, json: bool) -> anyhow::Result<i32> {
    match cmd {
        IndexCommand::Publish(a) => publish(a, json),
        IndexCommand::Status(a) => status(a, json),
    }
}

fn publish(a: &PublishArgs, json: bool) -> anyhow::Result<i32> {
    let t = Instant::now();
    let Loaded { index_dir: root, corpus, passages, warnings, embedder } = ingest::load(&a.ingest, json)?;
    let (bar, report) = ingest::progress(passages.len(), json);
    let out = versions::publish(&root, &corpus, &passages, embedder.as_ref(), a.keep, report).map_err(error::index_error)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let failures: Vec<String> = corpus.failures.iter().map(|e| e.to_string()).collect();
    let secs = t.elapsed().as_secs_f64();
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "root": root, "version": out.version, "unchanged": out.unchanged, "previous": out.previous,
                "pruned": out.pruned, "seconds": secs, "failures": failures, "warnings": warnings,
            })
        );
        return Ok(EXIT_OK);
    }
    for f in &failures {
        eprintln!("skipped: {f}");
    }
    let v = &out.version;
    if out.unchanged {
        outln!("unchanged: the corpus is the live version {} of {} (nothing built, nothing switched)", v.id, root.display());
        return Ok(EXIT_OK);
    }
    outln!(
        "published {} ({} documents, {} passages{}) in {:.2} s; live for every replica at its next poll{}",
        v.id,
        v.documents,
        v.passages,
        if v.withdrawn.is_empty() { String::new() } else { format!("; withdrawn: {}", v.withdrawn.join(", ")) },
        secs,
        match &out.previous {
            Some(p) => format!(" (was {p})"),
            None => String::new(),
        }
    );
    if !out.pruned.is_empty() {
        outln!("removed old versions: {}", out.pruned.join(", "));
    }
    Ok(EXIT_OK)
}

fn status(a: &StatusArgs, json: bool) -> anyhow::Result<i32> {
    let root = a.index.clone().ok_or(error::Error::NoIndex)?;
    if !versions::is_root(&root) {
        return Err(error::Error::BadInput {
            field: "--index",
            reason: format!(
                "{} is not a versioned index root (no CURRENT, no versions/): a flat index from `onlabel ingest` has no versions; \
                 `onlabel index publish --index NEW_DIR --corpus DIR` makes a root",
                root.display()
            ),
        }
        .into());
    }
    let live = versions::current(&root).map_err(error::index_error)?;
    let all = versions::list(&root).map_err(error::index_error)?;
    if json {
        outln!("{}", serde_json::json!({"root": root, "current": live, "versions": all}));
        return Ok(EXIT_OK);
    }
    for v in &all {
        let mark = if live.as_deref() == Some(v.id.as_str()) { "*" } else { " " };
        outln!(
            "{mark} {}  {}  {} documents, {} passages{}",
            v.id,
            v.published_at,
            v.documents,
            v.passages,
            if v.withdrawn.is_empty() { String::new() } else { format!(", withdrawn: {}", v.withdrawn.join(", ")) }
        );
    }
    Ok(EXIT_OK)
}
