//! # OnLabel
//!
//! An on-label copilot for pharmaceutical field teams: a rep types an HCP's
//! objection, OnLabel answers from MLR-approved Prescribing Information and FAQ
//! documents only, with a citation on every sentence.
//!
//! ## Layout
//!
//! The modules follow the flow of one question (see `DESIGN.md`):
//!
//! | module | owns |
//! | --- | --- |
//! | [`corpus`] | documents and their MLR metadata; loaders (PDF, Markdown, text, SPL XML, sections JSON); PI section detection; chunking into passages that never cross a section |
//! | [`index`] | the tantivy schema, building and opening an index, BM25 search with medical-aware analysis and synonyms, filters (status, expiry, audience, product) |
//! | [`llm`] | candle model loading from GGUF, tokenizer from GGUF metadata, chat template, decoding, streaming |
//! | [`copilot`] | the pipeline: retrieve, generate (extractive for now, behind the [`llm::Generator`] trait), cite |
//! | [`guard`] | AE mention and report detection, off-label and red-flag rules (from `rules/guard-rules.toml`), output claim checks, the citation verifier; routes every question |
//! | [`prompts`] | the versioned registry of prompts, guard rules and lexicons: states, MLR e-signatures, eval evidence, the load-time hash check |
//! | [`users`] | people, roles (rep, mlr_reviewer, compliance, medical, admin) and argon2-hashed tokens; sign-in |
//! | [`audit`] | the append-only, hash-chained audit log; verification and export |
//! | [`cases`] | escalations to Medical and Pharmacovigilance: durable queue, states, SLA clock, history |
//! | [`store`] | the one SQLite file (`onlabel.sqlite`) for state that survives restarts; its migrations |
//! | [`eval`] | the eval harness: suites, metrics, reports |
//! | [`cli`] | clap commands; `main.rs` stays thin |
//! | [`error`] | the one table of stable error codes, with their exit and HTTP statuses |
//!
//! The `server` module (later) slots
//! into [`copilot`] without changing its output shape: every answer already
//! carries a `route`, `flags`, `case_id` and `prompt_version`.
#![warn(missing_docs)]

pub mod audit;
pub mod cases;
pub mod cli;
pub mod copilot;
pub mod corpus;
pub mod error;
pub mod eval;
pub mod guard;
pub mod index;
pub mod input;
pub mod llm;
pub mod prompts;
pub mod server;
pub mod store;
pub mod users;

/// The crate-wide error: each module's own error, wrapped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or parsing a document or a manifest failed.
    #[error(transparent)]
    Corpus(#[from] corpus::Error),
    /// Building, opening or searching the index failed.
    #[error(transparent)]
    Index(#[from] index::Error),
    /// Running the copilot pipeline failed.
    #[error(transparent)]
    Copilot(#[from] copilot::Error),
    /// Loading or running the local model failed.
    #[error(transparent)]
    Llm(#[from] llm::Error),
    /// Reading an eval suite or writing a report failed.
    #[error(transparent)]
    Eval(#[from] eval::Error),
    /// Opening, reading or changing a case failed.
    #[error(transparent)]
    Cases(#[from] cases::Error),
    /// The SQLite store could not be opened, is damaged, or failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Loading the guard's rules or lexicon failed.
    #[error(transparent)]
    Guard(#[from] guard::Error),
    /// A prompt-registry step failed or was refused.
    #[error(transparent)]
    Prompts(#[from] prompts::Error),
    /// Signing in, or a user change, failed or was refused.
    #[error(transparent)]
    Users(#[from] users::Error),
    /// Appending to or reading the audit log failed.
    #[error(transparent)]
    Audit(#[from] audit::Error),
}

impl Error {
    /// The stable code of the wrapped module error (a key of
    /// [`error::CODES`], which gives its exit and HTTP statuses).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Corpus(e) => e.code(),
            Error::Index(e) => e.code(),
            Error::Copilot(e) => e.code(),
            Error::Llm(e) => e.code(),
            Error::Eval(e) => e.code(),
            Error::Cases(e) => e.code(),
            Error::Store(e) => e.code(),
            Error::Guard(e) => e.code(),
            Error::Prompts(e) => e.code(),
            Error::Users(e) => e.code(),
            Error::Audit(e) => e.code(),
        }
    }
}

/// Result with the crate-wide [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
