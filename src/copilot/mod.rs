//! [`Copilot`]: the pipeline of every input, in one place.
//!
//! [`Copilot::run`] (`run.rs`) is the one entry: a [`Request`] (a question,
//! a chat conversation, a follow-up email or a visit summary; product,
//! requester, options) goes through
//! check → guard on the input (an adverse event, an off-label ask or a
//! policy breach escalates here and opens a case) → retrieve (approved,
//! unexpired, audience-allowed passages of the product) → compose (the
//! composer puts the learned scorer's answering statement first and the
//! qualifiers a fair answer needs after it, verbatim, joined only by the
//! approved `answer` template's connectives — the rank-quoted extractive
//! answer is its fallback; the model, when one is attached and allowed,
//! writes sentences that the verifier checks against their passage) →
//! verifier and guard on every output sentence → the audit
//! record → only then the [`Outcome`] and the verified sentences
//! ([`Event`]) reach the caller. When the model is to run, the quoted
//! answer — verified and screened already — reaches the caller first, after
//! its own record ([`Event::Quote`], issue 23), and the model is skipped when
//! the quote holds every sentence it would be shown.
//!
//! This file keeps the order of the steps of a question (`ask_with` and
//! `answer_for`); each concern has its own file: the entry and the record
//! (`run.rs`), which product a question is about (`product.rs`,
//! [`Resolved`]), a question answered from several products' labels
//! (`across.rs`), escalation to a case (`escalate.rs`), citation numbering
//! (`cite.rs`, [`cite`]), the composed answer (`compose.rs`, [`Composer`]),
//! the rank-quoted extractive answer (`extractive.rs`), the model-backed one (`grounded.rs`), emails and summaries (`email.rs`) and
//! the approved wording around their statements (`templates.rs`), and the
//! audit record of each output (`trace.rs`).

mod across;
mod cite;
pub mod compose;
pub mod email;
mod escalate;
pub mod extractive;
pub mod followup;
pub mod grounded;
pub mod notes;
pub mod trace;
mod product;
mod run;
pub mod templates;

use std::time::Instant;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use cite::cite;
pub use compose::Composer;
pub use extractive::Extractive;
pub use grounded::Grounded;
pub use product::Resolved;
pub use run::{Outcome, Request, Task, Trace};
pub use templates::DraftTemplates;

use cite::Numbering;
use product::ProductNames;

use crate::index::{Filter, Index, SearchResult};
use crate::llm::Generator;

/// What can go wrong while answering.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Retrieval failed.
    #[error(transparent)]
    Index(#[from] crate::index::Error),
    /// Opening an escalation case failed: the question must not be reported as escalated.
    #[error("could not open the escalation case; tell the rep to report it by phone: {0}")]
    Cases(crate::cases::Error),
    /// The question is empty or too long.
    #[error("{0}")]
    BadQuestion(String),
    /// The product given is not in the index: nothing is screened, answered
    /// or opened for it (a typo must not become a case).
    #[error("no product {product:?} in the index (it holds: {known}); pick one of those (`onlabel products`, GET /api/v1/products)")]
    UnknownProduct {
        /// The product as given (trimmed, lower-case).
        product: String,
        /// The products the index holds, comma-separated.
        known: String,
    },
    /// A draft template (`email`, `summary`) does not render.
    #[error("the draft template {template} does not render: {reason}; fix it and have the fixed version approved")]
    Template {
        /// `name@N`.
        template: String,
        /// minijinja's message.
        reason: String,
    },
    /// The audit record could not be appended: the output is not handed out.
    #[error("the audit record could not be written, so nothing was shown: {0}")]
    Audit(#[from] crate::audit::Error),
}

impl Error {
    /// The stable code (see [`crate::error::CODES`]): a bad question is the
    /// caller's to fix (400, exit 2); a case that could not be opened is
    /// `escalation_failed`, whose public message says to report by phone.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Index(e) => e.code(),
            Error::Cases(_) => "escalation_failed",
            Error::BadQuestion(_) => "bad_question",
            Error::UnknownProduct { .. } => "unknown_product",
            Error::Template { .. } => "template_invalid",
            Error::Audit(e) => e.code(),
        }
    }
}

/// Result with the copilot [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest question accepted, in characters (a pasted call transcript is cut
/// down by the rep, not silently truncated by us).
pub const MAX_QUESTION_CHARS: usize = 2_000;
/// Longest greeting a rep may write around an email's approved text, in characters.
pub const MAX_GREETING_CHARS: usize = 200;
/// Longest sign-off a rep may write after an email's approved text, in characters.
pub const MAX_CLOSING_CHARS: usize = 500;
/// Largest visit notes `summarize` accepts, in bytes (CLI file and HTTP body alike).
pub const MAX_NOTES_BYTES: u64 = 64 * 1024;

/// Where an answer went: the guard's decision type, re-exported.
pub use crate::guard::Route;

/// How the answer text was produced: the generator's type, used by [`Answer`].
pub use crate::llm::Mode;

/// One citation: the approved passage a marker `[n]` points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// The marker number.
    pub n: usize,
    /// Document id.
    pub doc_id: String,
    /// Section label.
    pub section: String,
    /// Section title.
    pub title: String,
    /// MLR approval code of the document.
    pub mlr_number: String,
    /// The passage text.
    pub quote: String,
    /// The PDF page the passage starts on (PDF documents only).
    #[serde(default)]
    pub page: Option<u32>,
    /// Where the web UI shows the passage in its approved document:
    /// `/#/source/DOC_ID?passage=ORDINAL` (the id percent-encoded).
    #[serde(default)]
    pub source_url: String,
}

impl Citation {
    /// The citation label `DOC_ID §SECTION`.
    pub fn label(&self) -> String {
        format!("{} §{}", self.doc_id, self.section)
    }
}

/// The web UI's address of a passage in its approved document (see
/// [`Citation::source_url`]): `/#/source/DOC_ID?passage=ORDINAL`, the id
/// percent-encoded (every byte but `A-Z a-z 0-9 - . _ ~`).
pub fn source_url(doc_id: &str, ordinal: u32) -> String {
    let mut id = String::with_capacity(doc_id.len());
    for b in doc_id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            id.push(b as char);
        } else {
            id.push_str(&format!("%{b:02X}"));
        }
    }
    format!("/#/source/{id}?passage={ordinal}")
}

/// A red flag raised on the question or the answer: kind, rule id (reason
/// code), evidence text and span — the guard's own type.
pub use crate::guard::Flag;

/// Time spent in each stage, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Screening by the guard.
    pub guard: f64,
    /// Retrieval.
    pub retrieve: f64,
    /// Answer generation (extractive and, when a model runs, generated).
    pub generate: f64,
    /// Time from the question to the first verified sentence handed out:
    /// the quoted answer ([`Quote`]) when one is shown while the model
    /// composes, else the first generated sentence, else the quoted
    /// (composed or extractive) answer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub first_sentence: Option<f64>,
    /// Time from the question to the model's first sentence that passed the
    /// verifier and the output guard (absent when no model ran or none passed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub first_generated: Option<f64>,
    /// Time from the question to the model's first token (never shown: it is verified first).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub first_token: Option<f64>,
}

/// The answer to one question: the JSON object of `ask --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Where the question went.
    pub route: Route,
    /// The answer text with `[n]` markers, or the reason it was not answered.
    pub answer: String,
    /// How the text was produced.
    pub mode: Mode,
    /// Citations, numbered as in the text.
    pub citations: Vec<Citation>,
    /// Flags raised by the guard.
    pub flags: Vec<Flag>,
    /// Case opened for Medical or Pharmacovigilance, if any.
    pub case_id: Option<String>,
    /// Prompt version used (none on the extractive path): the registry's
    /// `name@N` when the template is registered, else the template header's.
    pub prompt_version: Option<String>,
    /// SHA-256 of that prompt template's content (set with `prompt_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_sha256: Option<String>,
    /// Model file and hash (none on the extractive path).
    pub model: Option<String>,
    /// Audit record id: the `seq` of the record that traces this answer
    /// (set by the caller that appends it, [`crate::copilot::trace`]).
    pub audit_id: Option<u64>,
    /// Version of the guard rules that screened this answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_rules: Option<String>,
    /// Stage timings.
    pub timings_ms: Timings,
    /// Tokens the model generated for this answer (absent when no model ran),
    /// whether or not its sentences survived verification: the work done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_tokens: Option<usize>,
    /// Ids (`DOC_ID#ORDINAL`) of the passages retrieved for this answer, for
    /// the audit record; not part of the JSON answer.
    #[serde(skip)]
    pub retrieved: Vec<String>,
    /// The product answered for: the one given, else the one the question
    /// names, else the index's only product (see [`Copilot::resolve_product`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// A note to the rep on how the question was taken (which product, why
    /// several labels answer): not product content, never cited, never part
    /// of `answer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When no product was given or named and several products' labels
    /// answer: one part per product, in the order of `answer`'s blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// Why the answer is quoted (`mode` composed or extractive) although
    /// the model was to write it: the model failed, or the inference
    /// server is down and its circuit is open. Absent when the model ran
    /// (whether or not its sentences passed the verifier) or was not asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// The verified quoted answer handed out at once while the model
    /// composed ([`Event::Quote`]); absent when no model ran after it.
    /// `answer` is the model's verified answer when one survived, else the
    /// same text as this quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Quote>,
}

/// Why a generated answer fell back to quoted approved text ([`Answer::fallback`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    /// The error's stable code (`generator_unavailable`: unreachable, timed
    /// out, overloaded, broken off or circuit open; `generator_error`: the
    /// server refused the request; `model_error`, `overloaded`: the
    /// in-process model).
    pub reason: String,
    /// What the code means (`docs/errors.md`): the public text, without
    /// the server's address or the error's detail.
    pub message: String,
    /// The error itself, for the audit record and the log only (it names
    /// the inference server): never sent to the client.
    #[serde(skip)]
    pub detail: String,
}

impl Fallback {
    /// The fallback for a generation error.
    pub fn from_error(e: &crate::llm::Error) -> Fallback {
        let code = e.code();
        let message = crate::error::lookup(code).map(|c| c.meaning.to_string()).unwrap_or_else(|| "the model failed; the answer is quoted from approved text".into());
        Fallback { reason: code.to_string(), message, detail: e.to_string() }
    }
}

/// The quoted answer — approved sentences, verbatim, each with its
/// citation, already through the citation verifier and the output guard —
/// handed out the moment it is ready, before the model runs (issue 23,
/// point 4): the rep reads it while the model composes, and the model's
/// answer (if any sentence of it survives verification) follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// The text with `[n]` markers: `sentences` joined by spaces.
    pub answer: String,
    /// Each sentence with its marker, in order.
    pub sentences: Vec<String>,
    /// How it was produced: `composed` or `extractive` (quoted verbatim).
    pub mode: Mode,
    /// Its citations, numbered as in its text (the model's answer numbers its own).
    pub citations: Vec<Citation>,
    /// The approved `answer` template that framed it (composed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<String>,
    /// SHA-256 of that template (set with `prompt_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_sha256: Option<String>,
    /// Milliseconds from the question to the quote being ready.
    pub ms: f64,
    /// The `seq` of its own audit record, appended before it was handed out
    /// (set by [`Copilot::run`]; none when run without a trace).
    pub audit_id: Option<u64>,
    /// Ids (`DOC_ID#ORDINAL`) of the passages retrieved, for its audit record.
    #[serde(skip)]
    pub retrieved: Vec<String>,
    /// The guard rules that screened it, for its audit record.
    #[serde(skip)]
    pub guard_rules: Option<String>,
}

/// One product's block of a per-product answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// The product.
    pub product: String,
    /// Its sentences with their `[n]` markers (one block of `answer`).
    pub answer: String,
    /// The citation numbers the block uses.
    pub citations: Vec<usize>,
}

/// Most products a per-product answer quotes; the other products whose labels
/// answer are named in its note.
pub const MAX_PARTS: usize = 3;

/// Options of one question.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The question as typed.
    pub question: String,
    /// Product the rep is detailing.
    pub product: Option<String>,
    /// Role of the asker (`rep`, `medical`, …).
    pub role: String,
    /// Date the question is asked on (expiry is judged against it).
    pub as_of: NaiveDate,
}

/// What the pipeline reports while it works (for streaming front ends).
/// Nothing unverified is ever reported: no raw model text leaves the copilot.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The verified quoted answer, handed out at once when a model is about
    /// to compose one (before its first token): the rep has a cited answer
    /// while the model works. [`Copilot::run`] appends its own audit record
    /// first. Not part of the `Sentence` stream.
    Quote(Quote),
    /// One sentence of the final answer with its final `[n]` marker, as soon
    /// as it has passed the verifier and the output guard; the answer's text
    /// is these sentences joined by spaces, in this order (the quote's again
    /// when nothing the model wrote survived).
    Sentence(String),
}

/// Who is asking, for the cases the guard opens.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The rep's user id (the reporter of record of a case).
    pub user: String,
    /// The HCP the rep is talking to, if known.
    pub hcp: Option<String>,
    /// A Medical Information route opens no case: the answer says what
    /// would be sent and the rep confirms it, with the HCP's words and
    /// consent, later (`POST /api/v1/medical-requests/{id}/confirm`). Set
    /// for the web/API ask only ([`Task::Visit`]); reports
    /// (Pharmacovigilance) never wait.
    pub defer_medical: bool,
}

impl Default for Requester {
    fn default() -> Self {
        Requester { user: "unknown".into(), hcp: None, defer_medical: false }
    }
}

/// An index ready to replace a copilot's ([`Copilot::prepare_index`]).
pub struct IndexSwap {
    /// The newly opened index.
    index: Index,
    /// The guard's label references built from it, per product.
    labels: std::collections::HashMap<String, crate::guard::LabelReference>,
}

/// The pipeline, holding the index, the guard, the case store and the generators.
pub struct Copilot {
    index: Index,
    extractive: Extractive,
    grounded: Option<Grounded>,
    guard: Option<std::sync::Arc<crate::guard::Guard>>,
    labels: std::collections::HashMap<String, crate::guard::LabelReference>,
    cases: Option<crate::cases::CaseStore>,
    /// Passages retrieved per question before the relevance gate.
    pub top_k: usize,
    // --- dense retrieval (index::dense) ---
    /// Embeds the question for dense / fused retrieval; none: BM25 only.
    embedder: Option<std::sync::Arc<crate::index::Embedder>>,
    /// Retrieval mode used when an embedder is set and the index has vectors.
    pub retrieval: crate::index::RetrievalMode,
    /// The index's products and their names, read on first use.
    products: std::sync::OnceLock<Vec<ProductNames>>,
    /// The approved wording around the statements of emails, summaries and
    /// composed answers.
    drafts: DraftTemplates,
    /// Composes the rep's answers (the default); `None`: rank-quoted
    /// extractive answers (`--compose off`, to compare the two).
    composer: Option<Composer>,
}

impl Copilot {
    /// A copilot over an index, answering extractively.
    pub fn new(index: Index) -> Copilot {
        Copilot {
            index,
            extractive: Extractive::default(),
            grounded: None,
            guard: None,
            labels: Default::default(),
            cases: None,
            top_k: 20,
            embedder: None,
            retrieval: crate::index::RetrievalMode::Bm25,
            products: std::sync::OnceLock::new(),
            drafts: DraftTemplates::builtin(),
            composer: Some(Composer::default()),
        }
    }

    /// Sets the composer of the rep's answers; `None` answers with the
    /// rank-quoted extractive selection (`mode: extractive`).
    pub fn with_composer(mut self, composer: Option<Composer>) -> Copilot {
        self.composer = composer;
        self
    }

    /// The composer, if answers are composed.
    pub fn composer(&self) -> Option<&Composer> {
        self.composer.as_ref()
    }

    /// Sets the draft templates (the registry's live `email` and `summary`;
    /// without this call, the ones compiled into this build).
    pub fn with_drafts(mut self, drafts: DraftTemplates) -> Copilot {
        self.drafts = drafts;
        self
    }

    /// The draft templates in use.
    pub fn drafts(&self) -> &DraftTemplates {
        &self.drafts
    }

    /// Mutable access to the draft templates (to swap in a newly approved version).
    pub fn drafts_mut(&mut self) -> &mut DraftTemplates {
        &mut self.drafts
    }

    /// Adds the guard; builds each product's label reference (sections 1, 2
    /// and 8) from the indexed, currently approved passages.
    pub fn with_guard(mut self, guard: std::sync::Arc<crate::guard::Guard>, as_of: NaiveDate) -> Result<Copilot> {
        let all = self.index.passages(&Filter::for_role("medical", None, as_of))?;
        let products: std::collections::BTreeSet<String> = all.iter().map(|p| p.product.clone()).collect();
        for p in products {
            self.labels.insert(p.clone(), crate::guard::LabelReference::from_passages(&p, &all));
        }
        self.guard = Some(guard);
        // Product names come from the guard's vocabulary: read them afresh.
        self.products = std::sync::OnceLock::new();
        Ok(self)
    }

    /// Adds the case store: escalations open durable cases there.
    pub fn with_cases(mut self, cases: crate::cases::CaseStore) -> Copilot {
        self.cases = Some(cases);
        self
    }

    /// The guard, if any.
    pub fn guard(&self) -> Option<&crate::guard::Guard> {
        self.guard.as_deref()
    }

    // --- dense retrieval (index::dense) ---
    /// Adds the question embedder and the retrieval mode (BM25, dense or
    /// fused). Without vectors in the index, retrieval stays BM25.
    pub fn with_embedder(mut self, embedder: impl Into<std::sync::Arc<crate::index::Embedder>>, mode: crate::index::RetrievalMode) -> Copilot {
        self.embedder = Some(embedder.into());
        self.retrieval = mode;
        self
    }

    /// Adds the cross-encoder that picks the sentence leading each answer
    /// (the extractive composer's [`extractive::cross`]).
    pub fn with_cross(mut self, ce: impl Into<std::sync::Arc<extractive::cross::CrossEncoder>>) -> Copilot {
        self.extractive.cross = Some(ce.into());
        self
    }

    /// The retrieval mode questions actually use (BM25 without an embedder or vectors).
    pub fn retrieval(&self) -> crate::index::RetrievalMode {
        match &self.embedder {
            Some(_) if self.index.has_vectors() => self.retrieval,
            _ => crate::index::RetrievalMode::Bm25,
        }
    }

    /// Retrieves passages for a question in the copilot's retrieval mode. If
    /// embedding the question fails, falls back to BM25 (with a warning).
    pub fn retrieve(&self, question: &str, filter: &Filter) -> Result<SearchResult> {
        let mode = self.retrieval();
        if mode == crate::index::RetrievalMode::Bm25 {
            return Ok(self.index.search(question, filter, self.top_k)?);
        }
        let v = self.embed_question(question);
        self.retrieve_embedded(question, v.as_deref(), filter)
    }

    /// [`Copilot::retrieve`] with the question's embedding already computed
    /// (by [`Copilot::embed_question`]; `None`: BM25 only).
    pub fn retrieve_embedded(&self, question: &str, embedding: Option<&[f32]>, filter: &Filter) -> Result<SearchResult> {
        let mode = self.retrieval();
        match embedding {
            Some(v) if mode != crate::index::RetrievalMode::Bm25 => Ok(self.index.search_with(question, Some(v), filter, self.top_k, mode)?),
            _ => Ok(self.index.search(question, filter, self.top_k)?),
        }
    }

    /// The question's MiniLM embedding, when an embedder is attached: dense
    /// retrieval and the guard's intent head use the same vector. A failure
    /// is logged and read as no embedding (BM25 and the rules alone).
    pub fn embed_question(&self, question: &str) -> Option<Vec<f32>> {
        let e = self.embedder.as_ref()?;
        match e.embed(&[question]) {
            Ok(v) => v.into_iter().next(),
            Err(err) => {
                tracing::warn!(error = %err, "embedding the question failed; retrieving with BM25 only, intent by the rules alone");
                None
            }
        }
    }
    // --- end dense retrieval ---

    /// Adds the model-backed generator (its answers fall back to extractive).
    pub fn with_model(mut self, g: Grounded) -> Copilot {
        self.grounded = Some(g);
        self
    }

    /// The model-backed generator, if any.
    pub fn grounded(&self) -> Option<&Grounded> {
        self.grounded.as_ref()
    }

    /// Mutable access to the model-backed generator (e.g. to switch constrained decoding).
    pub fn grounded_mut(&mut self) -> Option<&mut Grounded> {
        self.grounded.as_mut()
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Readies a switch to another index (a newly published version, see
    /// [`crate::index::versions`]): builds what the copilot derives from
    /// its index — the guard's label references — without touching the
    /// copilot, so that a server does this outside its lock and holds the
    /// write lock only for [`Copilot::install_index`].
    pub fn prepare_index(&self, index: Index, as_of: NaiveDate) -> Result<IndexSwap> {
        let labels = match &self.guard {
            Some(_) => {
                let all = index.passages(&Filter::for_role("medical", None, as_of))?;
                let products: std::collections::BTreeSet<String> = all.iter().map(|p| p.product.clone()).collect();
                products.into_iter().map(|p| (p.clone(), crate::guard::LabelReference::from_passages(&p, &all))).collect()
            }
            None => Default::default(),
        };
        Ok(IndexSwap { index, labels })
    }

    /// Puts a prepared index in place (every later question retrieves from
    /// it) and returns the one it replaces, to be dropped outside the lock.
    pub fn install_index(&mut self, swap: IndexSwap) -> Index {
        self.labels = swap.labels;
        // The product names are read from the index on first use.
        self.products = std::sync::OnceLock::new();
        std::mem::replace(&mut self.index, swap.index)
    }

    /// Answers one question through [`Copilot::run`] without an audit
    /// record (benchmarks, tests, and library use with no log at hand; every
    /// front end passes a [`Trace`]); the model runs when one is attached.
    #[tracing::instrument(skip_all, fields(product = ask.product.as_deref().unwrap_or("*"), role = %ask.role))]
    pub fn ask(&self, ask: &Ask) -> Result<Answer> {
        self.ask_streaming(ask, &mut |_| {})
    }

    /// [`Copilot::ask`], reporting each verified sentence as it passes.
    pub fn ask_streaming(&self, ask: &Ask, on_event: &mut dyn FnMut(Event)) -> Result<Answer> {
        let req = Request {
            task: Task::Ask { question: ask.question.clone() },
            product: ask.product.clone(),
            role: ask.role.clone(),
            as_of: ask.as_of,
            requester: Requester::default(),
            generate: true,
        };
        // `run`'s steps for a question, with no record to wait for.
        self.check(&req)?;
        self.ask_with(ask, &req.requester, true, on_event)
    }

    /// The answer step of [`Copilot::run`] for one question: the guard
    /// screens it first (and may escalate it, opening a case), then retrieval
    /// and generation (`generate = false`: the rep's "quote only" answer,
    /// the model never runs), then the guard screens every generated sentence.
    pub(crate) fn ask_with(&self, ask: &Ask, who: &Requester, generate: bool, on_event: &mut dyn FnMut(Event)) -> Result<Answer> {
        let q = ask.question.trim();
        if q.is_empty() {
            return Err(Error::BadQuestion("the question is empty: type the HCP's question or objection".into()));
        }
        if q.chars().count() > MAX_QUESTION_CHARS {
            return Err(Error::BadQuestion(format!(
                "the question is {} characters, over the {MAX_QUESTION_CHARS}-character limit: shorten it to the HCP's actual question",
                q.chars().count()
            )));
        }
        let t0 = Instant::now();
        // Without a product, the question is not answered from whichever
        // label ranks first: the product it names, the index's only product,
        // or each product's own label, separately (`ask_across`).
        let resolved = self.resolve_product(ask);
        let with_product;
        let (ask, note) = match (&resolved, &ask.product) {
            (Resolved::Named(p), None) => {
                with_product = Ask { product: Some(p.clone()), ..ask.clone() };
                (&with_product, Some(format!("Answered from the {p} label: the question names {p}.")))
            }
            (Resolved::Only(p), None) => {
                with_product = Ask { product: Some(p.clone()), ..ask.clone() };
                (&with_product, None)
            }
            _ => (ask, None),
        };
        let product_key = ask.product.as_deref().map(|p| p.trim().to_lowercase());
        let embedding = self.embed_question(q);
        let mut ctx = self.guard_context(product_key.as_deref());
        ctx.embedding = embedding.as_deref();
        let mut timings = Timings::default();
        let guard_rules = self.guard.as_ref().map(|g| g.rules_version().to_string());
        // The guard screens first, product or not: an adverse event told
        // without naming the product still opens a Pharmacovigilance case.
        if let Some(g) = &self.guard {
            let verdict = g.screen_input(q, &ctx);
            timings.guard = t0.elapsed().as_secs_f64() * 1e3;
            if verdict.route != Route::Answer {
                let mut a = self.escalate(ask, who, &verdict, timings)?;
                a.guard_rules = guard_rules;
                a.product = product_key;
                return Ok(a);
            }
        }
        if let Resolved::Several(products) = &resolved {
            let mut a = self.ask_across(ask, who, products, embedding.as_deref(), generate, timings, t0, on_event)?;
            a.guard_rules = a.guard_rules.or(guard_rules);
            return Ok(a);
        }
        let mut a = self.answer_for(ask, who, q, &ctx, timings, t0, guard_rules, generate, on_event)?;
        a.product = product_key;
        if a.route == Route::Answer {
            a.note = a.note.or(note);
        }
        Ok(a)
    }

    /// Retrieval, generation and citation for a question whose product is
    /// decided (or, without a guard, not needed); the guard has passed it.
    #[allow(clippy::too_many_arguments)]
    fn answer_for(
        &self,
        ask: &Ask,
        who: &Requester,
        q: &str,
        ctx: &crate::guard::Context,
        mut timings: Timings,
        t0: Instant,
        guard_rules: Option<String>,
        generate: bool,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Answer> {
        let ctx = *ctx;
        let filter = Filter::for_role(&ask.role, ask.product.as_deref(), ask.as_of);
        let tr = Instant::now();
        let search = self.retrieve_embedded(q, ctx.embedding, &filter)?;
        let retrieved: Vec<String> = search.hits.iter().map(|h| format!("{}#{}", h.passage.doc_id, h.passage.ordinal)).collect();
        timings.retrieve = tr.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let draft = self.extractive.draft(q, &search, &search.hits);
        if draft.sentences.is_empty() {
            timings.generate = t1.elapsed().as_secs_f64() * 1e3;
            // Nothing dies as "can't answer": a specific person to whom
            // something happened goes to Pharmacovigilance, anything else is
            // a Medical Information request.
            let v = match self.guard.as_ref() {
                Some(g) => g.screen_unanswered(q, &ctx),
                None => crate::guard::Verdict {
                    route: Route::Medical,
                    flags: Vec::new(),
                    reason: Some("no approved, current passage answers this question".into()),
                    report: None,
                },
            };
            let mut a = self.escalate(ask, who, &v, timings)?;
            a.guard_rules = guard_rules;
            a.retrieved = retrieved;
            return Ok(a);
        }
        // The answer shown at once: composed (the default; its statements
        // pass the verifier and the output guard in `composed`), else the
        // rank-quoted extractive answer (approved sentences verbatim).
        let (quick, quick_sentences, quick_plain, screened) =
            match self.composed(q, &search, &ctx, draft.sentences.first().filter(|_| self.extractive.learned_first)) {
                Some(c) => (
                    compose::answer(&c, &search.hits, timings.clone()),
                    c.parts.iter().map(compose::Part::marked).collect::<Vec<_>>(),
                    c.parts.iter().map(|p| p.sentence.text.clone()).collect::<Vec<_>>(),
                    true,
                ),
                None => {
                    let mut marks = Numbering::default();
                    (
                        cite(&draft, &search.hits, timings.clone()),
                        draft.sentences.iter().map(|s| marks.mark(s)).collect(),
                        draft.sentences.iter().map(|s| s.text.clone()).collect(),
                        false,
                    )
                }
            };
        // The model is bounded by what it can still add: it copies clauses of
        // the sentences it is shown, so when the quote already holds every
        // one of them it could only restate the quote — it is not run.
        let model = self.grounded.as_ref().filter(|_| generate);
        let restates = model.is_some_and(|g| quote_holds(&quick_plain, &g.select(&search, &search.hits, &self.extractive)));
        if restates {
            tracing::debug!(target: "onlabel::generation", "model skipped: the quoted answer holds every sentence it would be shown");
        }
        let Some(g) = model.filter(|_| !restates) else {
            timings.first_sentence = Some(t0.elapsed().as_secs_f64() * 1e3);
            timings.generate = t1.elapsed().as_secs_f64() * 1e3;
            for s in quick_sentences {
                on_event(Event::Sentence(s));
            }
            return Ok(Answer { timings_ms: timings, guard_rules, retrieved, ..quick });
        };
        // The quote is handed out now, before the model's first token (issue
        // 23): a composed quote passed the verifier and the output guard
        // statement by statement; an extractive one is checked the same way
        // here (a sentence failing either keeps the quote back, and it is
        // shown only if the model's answer fails, as before).
        let screened = screened
            || draft.sentences.iter().all(|s| {
                search.hits.get(s.passage).is_some_and(|h| crate::guard::verify::judge(&s.text, &h.passage.text, crate::index::Analyzer::shared()).is_none())
                    && self.guard.as_ref().is_none_or(|g| g.screen_output(&s.text, &ctx).is_empty())
            });
        let quote = screened.then(|| Quote {
            answer: quick.answer.clone(),
            sentences: quick_sentences.clone(),
            mode: quick.mode,
            citations: quick.citations.clone(),
            prompt_version: quick.prompt_version.clone(),
            prompt_sha256: quick.prompt_sha256.clone(),
            ms: t0.elapsed().as_secs_f64() * 1e3,
            audit_id: None,
            retrieved: retrieved.clone(),
            guard_rules: guard_rules.clone(),
        });
        if let Some(qt) = &quote {
            on_event(Event::Quote(qt.clone()));
            timings.first_sentence = Some(t0.elapsed().as_secs_f64() * 1e3);
        }
        // Each generated sentence reaches the caller only once it has passed
        // the verifier (in `Grounded::answer`) and the output guard (here).
        let mut output_flags = Vec::new();
        let mut marks = Numbering::default();
        let mut first_verified = None;
        let outcome = g.answer(q, &search, &search.hits, &self.extractive, &mut |s| {
            if let Some(guard) = &self.guard {
                let f = guard.screen_output(&s.text, &ctx);
                if !f.is_empty() {
                    output_flags.extend(f);
                    return false;
                }
            }
            if first_verified.is_none() {
                first_verified = Some(t0.elapsed().as_secs_f64() * 1e3);
            }
            on_event(Event::Sentence(marks.mark(s)));
            true
        });
        timings.first_generated = first_verified;
        timings.generate = t1.elapsed().as_secs_f64() * 1e3;
        let model = Some(g.model.id().to_string());
        let prompt_version = Some(g.prompt.id());
        let mut generated_tokens = None;
        let mut fallback = None;
        let mut answer = match outcome {
            Ok(o) => {
                generated_tokens = o.generation.as_ref().map(|g| g.generated_tokens);
                timings.first_token = o.first_token_ms.map(|ms| ms + (t1.duration_since(t0).as_secs_f64() * 1e3));
                match o.draft {
                    Some(d) => cite(&d, &search.hits, timings.clone()),
                    None => {
                        // Nothing generated survived (or the generation was
                        // abandoned at its rejected first sentence): the
                        // composed (or extractive) answer stands — already
                        // shown as the quote, or shown now.
                        for s in &quick_sentences {
                            on_event(Event::Sentence(s.clone()));
                        }
                        first_verified = Some(t0.elapsed().as_secs_f64() * 1e3);
                        quick
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "generation failed; answering with the composed (or extractive) answer");
                fallback = Some(Fallback::from_error(&e));
                for s in &quick_sentences {
                    on_event(Event::Sentence(s.clone()));
                }
                first_verified = Some(t0.elapsed().as_secs_f64() * 1e3);
                quick
            }
        };
        if timings.first_sentence.is_none() {
            timings.first_sentence = first_verified;
        }
        answer.timings_ms = timings;
        answer.quote = quote;
        answer.generated_tokens = generated_tokens;
        answer.model = model;
        // When the model ran, the answer names the prompt the model was
        // told (what MLR approved for it), whatever text stood in the end;
        // a composed fallback's `answer` template is then not named (known
        // gap: the record has one prompt field).
        answer.prompt_version = prompt_version;
        answer.prompt_sha256 = Some(crate::prompts::sha256_hex(g.prompt.source.as_bytes()));
        answer.guard_rules = guard_rules;
        answer.retrieved = retrieved;
        answer.flags.extend(output_flags);
        answer.fallback = fallback;
        Ok(answer)
    }

    /// The guard's context for a product (its label reference, if indexed).
    fn guard_context<'a>(&'a self, product: Option<&'a str>) -> crate::guard::Context<'a> {
        crate::guard::Context { product, label: product.and_then(|p| self.labels.get(p)), embedding: None }
    }

    /// Screens a rep's input of any length with the guard only (every
    /// character, in overlapping windows: [`crate::guard::Guard::screen_long`]);
    /// `Some` is the escalation (or refusal) answer, `None` means the input
    /// may be answered.
    fn ask_guard_only(&self, ask: &Ask, who: &Requester) -> Result<Option<Answer>> {
        let Some(g) = &self.guard else { return Ok(None) };
        let product_key = ask.product.as_deref().map(|p| p.trim().to_lowercase());
        let ctx = self.guard_context(product_key.as_deref());
        let v = g.screen_long(ask.question.trim(), &ctx);
        if v.route == Route::Answer {
            return Ok(None);
        }
        let mut a = self.escalate(ask, who, &v, Timings::default())?;
        a.guard_rules = Some(g.rules_version().to_string());
        Ok(Some(a))
    }
}

/// Whether the quoted answer already holds every sentence the model would
/// be shown ([`Grounded::select`]): the model copies clauses of those
/// sentences (constrained decoding) and the verifier keeps only what they
/// support, so it could only restate the quote. True when it would be shown
/// nothing (it would write nothing).
fn quote_holds(quoted: &[String], shown: &[grounded::Shown]) -> bool {
    shown.iter().all(|p| crate::corpus::text::sentences(&p.text).iter().all(|s| quoted.iter().any(|q| email::same_statement(q, s))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(n: usize, text: &str) -> grounded::Shown {
        grounded::Shown { n, text: text.into(), hit: n - 1 }
    }

    /// Issue 23: the model is not run when the quote already holds every
    /// sentence it would be shown — and is run when one is left to add.
    #[test]
    fn the_model_is_skipped_only_when_the_quote_holds_all_it_would_be_shown() {
        let quoted = vec![
            "During treatment, monitor liver tests every 4 weeks for the first 12 weeks.".to_string(),
            "Assess lipid parameters approximately 12 weeks after initiation.".to_string(),
        ];
        let all = [shown(1, "During treatment, monitor liver tests every 4 weeks for the first 12 weeks. Assess lipid parameters approximately 12 weeks after initiation.")];
        assert!(quote_holds(&quoted, &all));
        let more = [all[0].clone(), shown(2, "Interrupt treatment if ALT rises above 5 times the upper limit of normal.")];
        assert!(!quote_holds(&quoted, &more));
        let one_left = [shown(1, "During treatment, monitor liver tests every 4 weeks for the first 12 weeks. Obtain a lipid panel before starting.")];
        assert!(!quote_holds(&quoted, &one_left));
        assert!(quote_holds(&quoted, &[]), "shown nothing, the model writes nothing");
    }
}
