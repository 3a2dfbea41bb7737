//! [`Error`]: the command line's own failures, and the one place that turns
//! any failure into a message, a stable JSON `code` and an exit code.
//!
//! Every command's error goes through [`report`]: on stderr as
//! `error: MESSAGE`; with `--json` also on stdout as
//! `{"error": {"code": CODE, "message": MESSAGE}}`. The codes are stable
//! (scripts match on them) and their exit codes come from the one table,
//! [`crate::error::CODES`] (DESIGN.md's: 1 a check failed, including a store
//! that failed its own checks, 2 bad usage or bad input, 3 permission denied).

use std::path::PathBuf;

use super::outln;

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

/// The stable code and exit code of any error a command returns: the
/// code of the outermost cause that has one (`bad_input` when none has),
/// its exit status from [`crate::error::CODES`].
pub fn classify(e: &anyhow::Error) -> (&'static str, i32) {
    let code = e.chain().find_map(code_of).unwrap_or("bad_input");
    (code, crate::error::exit_status(code))
}

/// The code of one cause, if it is one of ours (or clap's).
fn code_of(cause: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use crate::error::Coded;
    if cause.is::<clap::Error>() {
        return Some("usage");
    }
    macro_rules! first_of {
        ($($t:ty),*) => {$(
            if let Some(c) = cause.downcast_ref::<$t>() {
                return Some(Coded::code(c));
            }
        )*};
    }
    first_of!(
        Error,
        super::config::Error,
        crate::Error,
        crate::store::Error,
        crate::index::Error,
        crate::index::dense::Error,
        crate::corpus::Error,
        crate::eval::Error,
        crate::cases::Error,
        crate::copilot::Error,
        crate::llm::Error,
        crate::guard::Error,
        crate::users::Error,
        crate::prompts::Error,
        crate::audit::Error,
        crate::server::Error
    );
    None
}

/// Prints an error (stderr; with `json` also the error object on stdout) and
/// returns its exit code (from the table: permission errors are 3).
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


crate::coded!(Error);
