//! # OnLabel
//!
//! An on-label copilot for pharmaceutical field teams: a rep types an HCP's
//! objection, OnLabel answers from MLR-approved Prescribing Information and FAQ
//! documents only, with a citation on every sentence.
//!
//! ## Layout
//!
//! The modules follow the flow of one question (see `DESIGN.md`; the README's
//! *Architecture* section has the same map). Each module's `mod.rs` names its
//! entry type in its first doc line and keeps the order of its steps; each
//! concern it needs has a file of its own:
//!
//! | module | owns | files |
//! | --- | --- | --- |
//! | [`corpus`] | [`corpus::Corpus`]: documents and their MLR metadata, loaded per format into PI sections, chunked into passages that never cross a section; the one sentence splitter | `manifest.rs` (`manifest.toml`), `pdf.rs` (pdf-extract, panic-guarded), `markdown.rs`, `text.rs` (plain text, and `sentence_spans`: the sentence splitter of chunking, guard and verifier), `spl.rs` (DailyMed SPL XML), `sections_json.rs`, `structure.rs` (section detection in plain label text), `chunk.rs` (sections into passages) |
//! | [`index`] | [`index::Index`]: the tantivy index of passages, BM25 search with medical-aware analysis, the filters (product, audience, `approved`, unexpired, approved by the query's date) checked in the query and again on every hit; a damaged index is an error, never a crash | `analysis.rs` (analyzer, `lexicon/` synonyms and stop words, a question's concepts), `sections.rs` (what a question asks for, as standard PI sections), `dense.rs` (MiniLM embedder, passage vectors, the BM25 / dense / fused choice), `catalogue.rs` (the product catalogue: every indexed document with its product, MLR number and validity), `versions.rs` (the versioned index root replicas share: `CURRENT`, `versions/`, publish), `readonly.rs` (the read-only tantivy directory: a served index is never written) |
//! | [`llm`] | [`llm::LocalModel`]: a llama-family GGUF model run in-process on candle — chat template (minijinja), greedy or sampled decoding with token and wall-clock budgets, streaming; the [`llm::Generator`] trait every composer implements; [`llm::ChatModel`], this model or an OpenAI-compatible inference server ([`llm::RemoteModel`]) | `model.rs` (our forward pass, KV caches, prefix reuse), `engine.rs` (the thread that decodes concurrent generations in shared steps), `tokenizer.rs` (rebuilt from the GGUF's metadata), `generator.rs` (`Generator`), `remote.rs` (the inference server's client: streaming, timeouts, retries on 429/503, circuit breaker, model identity), `gbnf.rs` (the copy constraint as a grammar), `cpu.rs`, `q4_1.rs`, `q8_0.rs` (CPU kernels) |
//! | [`guard`] | [`guard::Guard`]: screens every input (Pharmacovigilance, refused, Medical Information, or answer) and every output sentence (off-label, absolute claims, minimised risk, fair balance); the citation verifier | `ae.rs` (adverse-event mentions and reports), `elements.rs` (ICH E2D report elements), `language.rs` (can the guard read this text), `rules.rs` (`rules/guard-rules.toml`), `offlabel.rs` (the off-label judge), `label_ref.rs` (what a label covers: its sections 1, 2 and 8), `quantity.rs` (ages, weights, doses), `window.rs` (windows over a long input), `text.rs` (normalisation, screening windows, base64), `verify.rs` (the citation verifier) |
//! | [`copilot`] | [`copilot::Copilot`]: the pipeline of every input — check → guard → retrieve → compose → verify → guard on the output → audit record → the caller | `run.rs` (the one entry, `Copilot::run(Request) -> Outcome`, for ask, chat, email and summarize; it appends the audit record before anything reaches the caller), `product.rs` (which product a question is about), `across.rs` (a question answered from several products' labels), `escalate.rs` (a case opened, or a refusal with its reason), `cite.rs` (citation numbering), `extractive.rs` (quotes label sentences verbatim), `grounded.rs` (sentences written by the model, then verified), `email.rs` (email drafts and visit summaries), `notes.rs` (visit notes clause by clause: questions, follow-ups, discussion), `templates.rs` (the approved email and summary templates, `prompts/email.j2` and `prompts/summary.j2`), `trace.rs` (an output becomes its audit record) |
//! | [`prompts`] | [`prompts::Registry`]: the versioned registry of prompt templates, guard rules and lexicons — states, MLR e-signatures, eval evidence, the load-time hash check | `file.rs` (`PromptFile`: a template and the name and version it declares), `live.rs` (`live_prompt`, `live_template`: the approved version the copilot runs), `source.rs` (artefact files confined to `prompts/`, `rules/`, `lexicon/`), `thresholds.rs` (`evals/thresholds.toml`), `diff.rs` (`prompts diff`) |
//! | [`users`] | [`users::Users`]: people, roles (rep, mlr_reviewer, compliance, medical, admin) and argon2id-hashed tokens and passwords; sign-in for the CLI (`--as` + token) and the server (bearer token, or password → session cookie) | `throttle.rs` (failed sign-ins counted in the store: throttle, then lock), `password.rs` (argon2id, length policy, common/breached-password check), `sessions.rs` (server-side browser sessions: idle and absolute timeouts, CSRF token, step-up) |
//! | [`audit`] | [`audit::Audit`]: the append-only, hash-chained audit log and its verification, on either backend | `log.rs` ([`audit::Audit`]: one ordered append inside the store's write transaction, for several replicas), `export.rs` (JSON Lines and CSV for inspectors) |
//! | [`cases`] | [`cases::CaseStore`]: escalations to Pharmacovigilance and Medical Information — durable queue, owners, history, each change audited | `state.rs` (states and case ids), `due.rs` (the SLA clock) |
//! | [`store`] | [`store::Store`]: the one SQLite file (`onlabel.sqlite`) for state that survives restarts: opening, refusing foreign files, WAL; or PostgreSQL (`--database postgres://…`) | `sql.rs` ([`store::Sql`]: the portable dialect every store writes in, one implementation per backend), `database.rs` ([`store::Database`]: which backend), `pg.rs` ([`store::pg::PgStore`]: the connection pool), `migrations.rs` (with `migrations/NNNN_*.sql` and `migrations/postgres/NNNN_*.sql`) |
//! | [`eval`] | [`eval::Suite`]: eval suites, the run through [`copilot::Copilot::run`], metrics | `recorded.rs` (a run kept as evidence: audit record, registry eval runs; what `onlabel eval` and `POST /api/v1/evals` run), `report.rs` (HTML, Markdown, JSON) |
//! | [`server`] | the HTTP service (axum, [`server::router`]): DESIGN's routes under `/api/v1`, the OpenAI-compatible `/v1`, bearer auth and roles, limits, the bounded queue, request ids, metrics, the web UI; it imports nothing from `cli` | one file per resource: `me.rs`, `index_watch.rs` (no route: swaps in a newly published index version), `ask.rs`, `drafts.rs` (email, summarize), `prompts.rs`, `cases.rs`, `audit.rs`, `evals.rs`, `health.rs`, `openai.rs`, `metrics.rs`, `openapi.rs`, `ui.rs` (with `ui/`); `auth.rs` (tokens, roles), `work.rs` (the queue) |
//! | [`cli`] | [`cli::Cli`]: the clap command tree and dispatch; `main.rs` only calls [`cli::run`] | one file per command: `ingest.rs`, `index.rs`, `ask.rs`, `email.rs`, `summarize.rs`, `eval.rs`, `products.rs`, `serve.rs`, `info.rs`, `cases.rs`, `prompts.rs`, `users.rs`, `audit.rs`; shared: `query.rs` (query options, the copilot built from them), `dense.rs`, `signin.rs`, `config.rs` (the config file), `error.rs` (messages, codes, exit status) |
//! | [`error`] | [`error::CODES`]: the one table of stable error codes, with their exit and HTTP statuses (`docs/errors.md` is generated from it) | — |
//! | [`input`] | [`input::read_limited`]: a file a person names, read with its size limit | — |
//!
//! The command line and the server are edges: they parse, call
//! [`copilot::Copilot::run`] (or a module's own entry) and render. No module
//! reaches back into `cli`, and no two modules depend on each other in a
//! circle (`scripts/module-graph.sh` prints the graph and fails on a cycle).
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
