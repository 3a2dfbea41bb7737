//! [`Error`]: the command line's own failures, and the one place that turns
//! any failure into a message, a stable JSON `code` and an exit code.
//!
//! Every command's error goes through [`report`]: on stderr as
//! `error: MESSAGE`; with `--json` also on stdout as
//! `{"error": {"code": CODE, "message": MESSAGE}}`. The codes are stable
//! (scripts match on them); the exit codes are DESIGN.md's: 1 a check
//! failed (including a store that failed its own checks), 2 bad usage or
//! bad input, 3 permission denied.

use std::path::PathBuf;

use super::{outln, EXIT_BAD_INPUT, EXIT_CHECK_FAILED};

/// Failures found by the command line itself (before or around the library).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `ingest` found nothing to index; the existing index was not replaced.
    #[error(
        "nothing to index: {why}; the index at {index} was left as it was. \
         Fix the manifest (or run with --keep-going to see every failure), or pass --allow-empty to build an empty index"
    )]
    EmptyCorpus {
        /// What was found instead of documents.
        why: String,
        /// The index that was not replaced.
        index: PathBuf,
    },
    /// No index was given by flag, environment or config file.
    #[error("no index given: pass --index DIR, set ONLABEL_INDEX, or put `index = \"DIR\"` in the config file (see `onlabel info`)")]
    NoIndex,
    /// The index exists but cannot be read.
    #[error(
        "the index at {path} is damaged or was built by an incompatible onlabel ({detail}); \
         re-run `onlabel ingest --corpus DIR --index {path}` to rebuild it"
    )]
    DamagedIndex {
        /// The index directory.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// A file given on the command line could not be read or is unusable.
    #[error("{what} {path}: {reason}")]
    BadFile {
        /// What the file is for ("notes file").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A bad value on the command line.
    #[error("{field}: {reason}")]
    BadInput {
        /// The option.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::EmptyCorpus { .. } => "corpus_empty",
            Error::NoIndex => "index_not_set",
            Error::DamagedIndex { .. } => "index_damaged",
            Error::BadFile { .. } => "bad_file",
            Error::BadInput { .. } => "bad_input",
        }
    }
}

/// Turns an index error into the CLI's message: a damaged index names its
/// directory and says to re-run `ingest`.
pub fn index_error(e: crate::index::Error) -> anyhow::Error {
    use crate::index::Error as I;
    match e {
        I::Tantivy { path, source } => Error::DamagedIndex { path, detail: source.to_string() }.into(),
        I::Schema { path, field } => Error::DamagedIndex { path, detail: format!("missing field {field}") }.into(),
        I::Damaged { path, detail } => Error::DamagedIndex { path, detail }.into(),
        I::Catalogue { path, source } => Error::DamagedIndex { path, detail: catalogue_detail(&source) }.into(),
        other => other.into(),
    }
}

/// What a damaged document catalogue reports: the file and the JSON error.
fn catalogue_detail(e: &serde_json::Error) -> String {
    format!("{}: {e}", crate::index::catalogue::CATALOGUE)
}

/// The index error inside `cause`, however it was wrapped (the library's
/// wrappers are `transparent`, so the chain itself skips them).
fn inner_index<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a crate::index::Error> {
    use crate::copilot::Error as C;
    if let Some(i) = cause.downcast_ref::<crate::index::Error>() {
        return Some(i);
    }
    match cause.downcast_ref::<crate::Error>() {
        Some(crate::Error::Index(i)) | Some(crate::Error::Copilot(C::Index(i))) => return Some(i),
        _ => {}
    }
    match cause.downcast_ref::<C>() {
        Some(C::Index(i)) => Some(i),
        _ => None,
    }
}

/// A damaged index met after opening (during a search) reads like one met
/// at opening: it names the directory and says to re-run `ingest`.
fn as_damaged(e: &anyhow::Error) -> Option<Error> {
    use crate::index::Error as I;
    e.chain().find_map(inner_index).and_then(|i| match i {
        I::Tantivy { path, source } => Some(Error::DamagedIndex { path: path.clone(), detail: source.to_string() }),
        I::Damaged { path, detail } => Some(Error::DamagedIndex { path: path.clone(), detail: detail.clone() }),
        I::Schema { path, field } => Some(Error::DamagedIndex { path: path.clone(), detail: format!("missing field {field}") }),
        I::Catalogue { path, source } => Some(Error::DamagedIndex { path: path.clone(), detail: catalogue_detail(source) }),
        _ => None,
    })
}

/// The message of an error chain, each cause once: our error types print
/// their OS error inside their own message, so a cause already contained in
/// what was printed is not repeated (`No such file or directory (os error 2)` once).
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if out.contains(&c) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&c);
    }
    out
}

/// The stable code and exit code of any error a command returns.
pub fn classify(e: &anyhow::Error) -> (&'static str, i32) {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<Error>() {
            return (c.code(), EXIT_BAD_INPUT);
        }
        if cause.is::<clap::Error>() {
            return ("usage", EXIT_BAD_INPUT);
        }
        if let Some(c) = cause.downcast_ref::<super::config::Error>() {
            return (
                match c {
                    super::config::Error::Io { .. } => "config_unreadable",
                    super::config::Error::Parse { .. } => "config_invalid",
                    super::config::Error::NoDataDir => "no_data_dir",
                },
                EXIT_BAD_INPUT,
            );
        }
        if let Some(c) = cause.downcast_ref::<crate::Error>() {
            return library(c);
        }
        if let Some(c) = cause.downcast_ref::<crate::store::Error>() {
            return store(c);
        }
        if let Some(c) = cause.downcast_ref::<crate::index::Error>() {
            return index(c);
        }
        if let Some(c) = cause.downcast_ref::<crate::corpus::Error>() {
            return (corpus(c), EXIT_BAD_INPUT);
        }
        if let Some(c) = cause.downcast_ref::<crate::eval::Error>() {
            return (eval(c), EXIT_BAD_INPUT);
        }
        if let Some(c) = cause.downcast_ref::<crate::cases::Error>() {
            return cases(c);
        }
        if let Some(c) = cause.downcast_ref::<crate::copilot::Error>() {
            return copilot(c);
        }
        if cause.is::<crate::llm::Error>() {
            return ("model_error", EXIT_BAD_INPUT);
        }
        if cause.is::<crate::guard::Error>() {
            return ("rules_invalid", EXIT_BAD_INPUT);
        }
    }
    ("bad_input", EXIT_BAD_INPUT)
}

fn library(e: &crate::Error) -> (&'static str, i32) {
    use crate::Error as E;
    match e {
        E::Store(s) => store(s),
        E::Index(i) => index(i),
        E::Corpus(c) => (corpus(c), EXIT_BAD_INPUT),
        E::Eval(v) => (eval(v), EXIT_BAD_INPUT),
        E::Cases(c) => cases(c),
        E::Copilot(c) => copilot(c),
        E::Llm(_) => ("model_error", EXIT_BAD_INPUT),
        E::Guard(_) => ("rules_invalid", EXIT_BAD_INPUT),
        other => (super::signin::code(other), super::signin::exit_code(other)),
    }
}

/// The stable code of a store error.
pub fn store_code(e: &crate::store::Error) -> &'static str {
    store(e).0
}

fn store(e: &crate::store::Error) -> (&'static str, i32) {
    use crate::store::Error as S;
    match e {
        S::Io { .. } => ("store_io", EXIT_BAD_INPUT),
        S::NotADatabase { .. } => ("store_not_a_database", EXIT_CHECK_FAILED),
        S::ForeignDatabase { .. } => ("store_not_onlabel", EXIT_CHECK_FAILED),
        S::Corrupt { .. } => ("store_corrupt", EXIT_CHECK_FAILED),
        S::NewerSchema { .. } => ("store_newer_schema", EXIT_CHECK_FAILED),
        S::NoWal { .. } | S::Sqlite { .. } => ("store_error", EXIT_CHECK_FAILED),
    }
}

fn index(e: &crate::index::Error) -> (&'static str, i32) {
    use crate::index::Error as I;
    match e {
        I::Missing { .. } => ("index_missing", EXIT_BAD_INPUT),
        I::Schema { .. } | I::Tantivy { .. } | I::Damaged { .. } | I::Catalogue { .. } => ("index_damaged", EXIT_BAD_INPUT),
        I::Io { .. } => ("index_io", EXIT_BAD_INPUT),
        I::Dense(_) => ("embedder_error", EXIT_BAD_INPUT),
    }
}

fn corpus(e: &crate::corpus::Error) -> &'static str {
    use crate::corpus::Error as C;
    match e {
        C::ManifestIo { .. } | C::ManifestParse { .. } | C::BadDate { .. } | C::BadField { .. } | C::DuplicateId { .. } => {
            "manifest_invalid"
        }
        _ => "document_invalid",
    }
}

fn eval(e: &crate::eval::Error) -> &'static str {
    match e {
        crate::eval::Error::Report { .. } => "report_io",
        _ => "suite_invalid",
    }
}

fn cases(e: &crate::cases::Error) -> (&'static str, i32) {
    match e {
        crate::cases::Error::Store(s) => store(s),
        _ if e.is_user_error() => (e.code(), EXIT_BAD_INPUT),
        _ => (e.code(), EXIT_CHECK_FAILED),
    }
}

fn copilot(e: &crate::copilot::Error) -> (&'static str, i32) {
    match e {
        crate::copilot::Error::Index(i) => index(i),
        crate::copilot::Error::Cases(c) => cases(c),
        crate::copilot::Error::BadQuestion(_) => ("bad_question", EXIT_BAD_INPUT),
    }
}

/// Prints an error (stderr; with `json` also the error object on stdout) and
/// returns its exit code (permission errors are 3, through `signin::exit_code`).
pub fn report(e: &anyhow::Error, json: bool) -> i32 {
    let (code, exit) = classify(e);
    let msg = match as_damaged(e) {
        Some(d) => d.to_string(),
        None => message(e),
    };
    eprintln!("error: {msg}");
    if json {
        outln!("{}", serde_json::json!({"error": {"code": code, "message": msg}}));
    }
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e: anyhow::Error = crate::store::Error::Io { path: "x".into(), source: io }.into();
        let m = message(&e);
        assert_eq!(m.matches("not found").count() + m.matches("No such file").count(), 1, "{m}");
    }

    #[test]
    fn a_damaged_index_met_in_a_search_says_to_re_ingest() {
        let inner = crate::index::Error::Damaged { path: "idx".into(), detail: "a passage lacks its doc_id field".into() };
        let e: anyhow::Error = crate::Error::Copilot(crate::copilot::Error::Index(inner)).into();
        let d = as_damaged(&e).map(|d| d.to_string()).unwrap_or_default();
        assert!(d.contains("idx") && d.contains("re-run `onlabel ingest"), "{d}");
        assert_eq!(classify(&e).0, "index_damaged");
    }
}
