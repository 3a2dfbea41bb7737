//! [`Copilot`]: the pipeline of one question, in one place.
//!
//! retrieve (approved, unexpired, audience-allowed passages of the product)
//! → decide whether anything approved answers the question
//! → generate an answer from the passages ([`Generator`]; the extractive
//! generator quotes label sentences verbatim)
//! → cite every sentence.
//!
//! The guard, the prompt registry, the local model and the audit log slot in
//! around these steps in later issues; the [`Answer`] already has their fields.

pub mod email;
pub mod extractive;
pub mod grounded;
pub mod verify;

use std::time::Instant;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use extractive::Extractive;
pub use grounded::Grounded;

use crate::corpus::Passage;
use crate::index::{Filter, Hit, Index, SearchResult};

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
        }
    }
}

/// Result with the copilot [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest question accepted, in characters (a pasted call transcript is cut
/// down by the rep, not silently truncated by us).
pub const MAX_QUESTION_CHARS: usize = 2_000;
/// Largest visit notes `summarize` accepts, in bytes (CLI file and HTTP body alike).
pub const MAX_NOTES_BYTES: u64 = 64 * 1024;

/// Where an answer went: the guard's decision type, re-exported.
pub use crate::guard::Route;

/// How the answer text was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Written by the model and verified sentence by sentence.
    Generated,
    /// Approved sentences quoted verbatim.
    Extractive,
}

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
}

impl Citation {
    /// The citation label `DOC_ID §SECTION`.
    pub fn label(&self) -> String {
        format!("{} §{}", self.doc_id, self.section)
    }
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
    /// Time from the question to the first verified sentence shown (generated, or extractive without a model).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub first_sentence: Option<f64>,
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
    /// (set by the caller that appends it, [`crate::audit::trace`]).
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

/// How the product of a question was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// `--product` (or the request's `product`) gave it.
    Given(String),
    /// The question names it (brand or generic name), and no other product of the index.
    Named(String),
    /// The index holds only this product.
    Only(String),
    /// No product given or named, and the index holds several: these (the
    /// ones the question names, if it names more than one; else all).
    Several(Vec<String>),
}

impl Resolved {
    /// The single product, if there is one.
    pub fn product(&self) -> Option<&str> {
        match self {
            Resolved::Given(p) | Resolved::Named(p) | Resolved::Only(p) => Some(p),
            Resolved::Several(_) => None,
        }
    }
}

/// A product of the index and the names a question may call it by.
#[derive(Debug, Clone)]
struct ProductNames {
    /// The product id (lower-case, as in the manifest).
    product: String,
    /// Lower-case names: the product id, its brand as printed, generic names
    /// the label gives in parentheses after the brand ("HUMIRA (adalimumab)").
    names: Vec<String>,
}

/// Generic names a label gives after its brand: `BRAND (generic …)`.
fn generic_names(product: &str, texts: &[&str]) -> Vec<String> {
    let pat = format!(r"(?i)\b{}\s*(?:®|\(r\))?\s*\(([a-z][a-z -]{{2,40}}?)\)", regex::escape(product));
    let Ok(re) = regex::Regex::new(&pat) else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for t in texts {
        for c in re.captures_iter(t) {
            let g = c[1].trim().to_lowercase();
            let first = g.split_whitespace().next().unwrap_or("").to_string();
            for n in [g, first] {
                if n.len() >= 4 && n != product && !out.contains(&n) && !["see", "with", "and", "for", "the"].contains(&n.as_str()) {
                    out.push(n);
                }
            }
        }
        if out.len() >= 4 {
            break;
        }
    }
    out
}

/// The guard's drug vocabulary (`[vocab] drugs` of the built-in
/// `rules/guard-rules.toml`: brand | generic | common misspellings), read for
/// the names a rep may call an indexed product by.
fn drug_vocabulary() -> Vec<Vec<String>> {
    const RULES: &str = include_str!("../../rules/guard-rules.toml");
    let Ok(v) = toml::from_str::<toml::Value>(RULES) else { return Vec::new() };
    v.get("vocab")
        .and_then(|v| v.get("drugs"))
        .and_then(|d| d.as_array())
        .map(|groups| {
            groups
                .iter()
                .filter_map(|g| g.as_str())
                .map(|g| g.split('|').map(|n| n.trim().to_lowercase()).filter(|n| !n.is_empty()).collect())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `name` occurs in lower-case `text` as whole words.
fn names_in(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric()) && after.is_none_or(|c| !c.is_alphanumeric())
    })
}

/// One sentence of an answer with the passage it is quoted from or supported by.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    /// The text, without marker.
    pub text: String,
    /// Index into the passages given to the generator.
    pub passage: usize,
}

/// What a generator produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Sentences, each tied to one passage.
    pub sentences: Vec<Sentence>,
    /// How they were produced.
    pub mode: Mode,
}

/// Turns a question and its retrieved passages into cited sentences. The
/// extractive generator is the first implementation; a local model and an
/// HTTP backend come later and fall back to it.
pub trait Generator: Send + Sync {
    /// Produces sentences, each tied to one of `hits`. An empty draft means
    /// nothing in the hits answers the question.
    fn draft(&self, question: &str, search: &SearchResult, hits: &[Hit]) -> Draft;
}

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
    /// One answer sentence with its final `[n]` marker, as soon as it has
    /// passed the verifier and the output guard; the answer's text is these
    /// sentences joined by spaces, in this order.
    Sentence(String),
}

/// Numbers sentences' passages in order of first use, as [`cite`] does, so
/// that streamed sentences carry the markers the final answer has.
#[derive(Debug, Default)]
struct Numbering {
    used: Vec<usize>,
}

impl Numbering {
    fn mark(&mut self, s: &Sentence) -> String {
        let n = match self.used.iter().position(|u| *u == s.passage) {
            Some(i) => i + 1,
            None => {
                self.used.push(s.passage);
                self.used.len()
            }
        };
        format!("{} [{n}]", s.text)
    }
}

/// Who is asking, for the cases the guard opens.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The rep's user id (the reporter of record of a case).
    pub user: String,
    /// The HCP the rep is talking to, if known.
    pub hcp: Option<String>,
}

impl Default for Requester {
    fn default() -> Self {
        Requester { user: "unknown".into(), hcp: None }
    }
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
        }
    }

    /// The index's products with the names a question may use for them
    /// (every indexed document counts, withdrawn and expired ones too: the
    /// rep still means that product).
    fn product_names(&self) -> &[ProductNames] {
        self.products.get_or_init(|| {
            let all = Filter {
                product: None,
                audiences: vec![crate::corpus::Audience::Promotional, crate::corpus::Audience::Medical],
                as_of: NaiveDate::MIN,
            };
            let passages = match self.index.passages(&all) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "listing the index's products failed; questions without a product are answered across products");
                    return Vec::new();
                }
            };
            let vocab = drug_vocabulary();
            let mut by_product: std::collections::BTreeMap<String, Vec<&Passage>> = Default::default();
            for p in &passages {
                by_product.entry(p.product.to_lowercase()).or_default().push(p);
            }
            by_product
                .into_iter()
                .map(|(product, ps)| {
                    // The brand is printed at the head of the label: its first passages.
                    let mut head: Vec<&Passage> = ps.clone();
                    head.sort_by_key(|p| p.ordinal);
                    let texts: Vec<&str> = head.iter().map(|p| p.text.as_str()).collect();
                    let mut names = vec![product.clone()];
                    names.extend(generic_names(&product, &texts));
                    for g in vocab.iter().filter(|g| g.contains(&product)) {
                        names.extend(g.iter().filter(|n| n.len() >= 4).cloned());
                    }
                    names.sort();
                    names.dedup();
                    ProductNames { product, names }
                })
                .collect()
        })
    }

    /// The products the index holds (lower-case, sorted).
    pub fn products(&self) -> Vec<String> {
        self.product_names().iter().map(|p| p.product.clone()).collect()
    }

    /// Decides which product a question is about: the one given; else, in an
    /// index of several products, the one the question names (brand or
    /// generic name) — several named, or none, is [`Resolved::Several`] —
    /// and in an index of one product, that product.
    pub fn resolve_product(&self, ask: &Ask) -> Resolved {
        if let Some(p) = ask.product.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            return Resolved::Given(p.to_string());
        }
        let all = self.product_names();
        if let [only] = all {
            return Resolved::Only(only.product.clone());
        }
        let q = ask.question.to_lowercase();
        let named: Vec<String> = all.iter().filter(|p| p.names.iter().any(|n| names_in(&q, n))).map(|p| p.product.clone()).collect();
        match named.as_slice() {
            [one] => Resolved::Named(one.clone()),
            [] => Resolved::Several(all.iter().map(|p| p.product.clone()).collect()),
            _ => Resolved::Several(named),
        }
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
        let (Some(e), true) = (&self.embedder, mode != crate::index::RetrievalMode::Bm25) else {
            return Ok(self.index.search(question, filter, self.top_k)?);
        };
        match e.embed(&[question]) {
            Ok(v) => Ok(self.index.search_with(question, v.first().map(Vec::as_slice), filter, self.top_k, mode)?),
            Err(err) => {
                tracing::warn!(error = %err, "embedding the question failed; retrieving with BM25 only");
                Ok(self.index.search(question, filter, self.top_k)?)
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

    /// Answers one question.
    #[tracing::instrument(skip_all, fields(product = ask.product.as_deref().unwrap_or("*"), role = %ask.role))]
    pub fn ask(&self, ask: &Ask) -> Result<Answer> {
        self.ask_streaming(ask, &mut |_| {})
    }

    /// Answers one question, reporting each verified sentence as it passes.
    pub fn ask_streaming(&self, ask: &Ask, on_event: &mut dyn FnMut(Event)) -> Result<Answer> {
        self.ask_as(ask, &Requester::default(), on_event)
    }

    /// Answers one question for a known requester: the guard screens it first
    /// (and may escalate it, opening a case), then retrieval and generation,
    /// then the guard screens every generated sentence.
    pub fn ask_as(&self, ask: &Ask, who: &Requester, on_event: &mut dyn FnMut(Event)) -> Result<Answer> {
        self.ask_with(ask, who, true, on_event)
    }

    /// [`Copilot::ask_as`], quoting approved passages verbatim without running
    /// the model (`generate = false`): the rep's "quote only" answer, and the
    /// retrieval-only path of the server. Guard, cases and verification are
    /// the same.
    pub fn ask_with(&self, ask: &Ask, who: &Requester, generate: bool, on_event: &mut dyn FnMut(Event)) -> Result<Answer> {
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
        let ctx = self.guard_context(product_key.as_deref());
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
            let mut a = self.ask_across(ask, who, products, timings, t0, on_event)?;
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
        let search = self.retrieve(q, &filter)?;
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
        let extractive = cite(&draft, &search.hits, timings.clone());
        let Some(g) = self.grounded.as_ref().filter(|_| generate) else {
            timings.first_sentence = Some(t0.elapsed().as_secs_f64() * 1e3);
            timings.generate = t1.elapsed().as_secs_f64() * 1e3;
            let mut marks = Numbering::default();
            for s in &draft.sentences {
                on_event(Event::Sentence(marks.mark(s)));
            }
            return Ok(Answer { timings_ms: timings, guard_rules, retrieved, ..extractive });
        };
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
        timings.generate = t1.elapsed().as_secs_f64() * 1e3;
        let model = Some(g.model.id().to_string());
        let prompt_version = Some(g.prompt.id());
        let mut generated_tokens = None;
        let mut answer = match outcome {
            Ok(o) => {
                generated_tokens = o.generation.as_ref().map(|g| g.generated_tokens);
                timings.first_token = o.first_token_ms.map(|ms| ms + (t1.duration_since(t0).as_secs_f64() * 1e3));
                match o.draft {
                    Some(d) => cite(&d, &search.hits, timings.clone()),
                    None => {
                        // Nothing generated survived (or the generation was
                        // abandoned at its rejected first sentence): the
                        // verified extractive answer stands, shown now.
                        let mut marks = Numbering::default();
                        for s in &draft.sentences {
                            on_event(Event::Sentence(marks.mark(s)));
                        }
                        first_verified = Some(t0.elapsed().as_secs_f64() * 1e3);
                        extractive
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "generation failed; answering extractively");
                let mut marks = Numbering::default();
                for s in &draft.sentences {
                    on_event(Event::Sentence(marks.mark(s)));
                }
                first_verified = Some(t0.elapsed().as_secs_f64() * 1e3);
                extractive
            }
        };
        if let Some(ms) = first_verified {
            timings.first_sentence = Some(ms);
        }
        answer.timings_ms = timings;
        answer.generated_tokens = generated_tokens;
        answer.model = model;
        answer.prompt_version = prompt_version;
        answer.prompt_sha256 = Some(crate::prompts::sha256_hex(g.prompt.source.as_bytes()));
        answer.guard_rules = guard_rules;
        answer.retrieved = retrieved;
        answer.flags.extend(output_flags);
        Ok(answer)
    }

    /// Answers a question that names no product, in an index of several:
    /// each product's own label is searched (with its own concept weights).
    /// None answers: the usual Medical Information request (or
    /// Pharmacovigilance safety net). One answers: that product's answer, the
    /// whole pipeline again with its label (guard context included), and a
    /// note saying so. Several answer: each label's extractive answer, as a
    /// separate part and block (at most [`MAX_PARTS`]; the others named in
    /// the note) — quoted, not generated, so that the rep does not wait for
    /// one generation per product. A per-product answer is not streamed
    /// sentence by sentence (its blocks need their headings): it comes whole.
    fn ask_across(&self, ask: &Ask, who: &Requester, products: &[String], mut timings: Timings, t0: Instant, on_event: &mut dyn FnMut(Event)) -> Result<Answer> {
        let q = ask.question.trim();
        let tr = Instant::now();
        let mut retrieved = Vec::new();
        let mut found: Vec<(String, SearchResult, Draft)> = Vec::new();
        for p in products {
            let filter = Filter::for_role(&ask.role, Some(p), ask.as_of);
            let search = self.retrieve(q, &filter)?;
            retrieved.extend(search.hits.iter().map(|h| format!("{}#{}", h.passage.doc_id, h.passage.ordinal)));
            let draft = self.extractive.draft(q, &search, &search.hits);
            let top = search.hits.first().map(|h| (h.coverage, h.score)).unwrap_or_default();
            tracing::debug!(product = %p, coverage = top.0, score = top.1, answered = !draft.sentences.is_empty(), "per-product retrieval");
            if !draft.sentences.is_empty() {
                found.push((p.clone(), search, draft));
            }
        }
        timings.retrieve = tr.elapsed().as_secs_f64() * 1e3;
        let listed = products.join(", ");
        match found.len() {
            0 => {
                let ctx = self.guard_context(None);
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
                a.guard_rules = self.guard.as_ref().map(|g| g.rules_version().to_string());
                a.retrieved = retrieved;
                Ok(a)
            }
            1 => {
                let p = found[0].0.clone();
                let one = Ask { product: Some(p.clone()), ..ask.clone() };
                let mut a = self.ask_as(&one, who, on_event)?;
                if a.route == Route::Answer {
                    a.note = Some(format!(
                        "The question names no product; of the products in this index ({listed}) only the {p} label answers it, so this is the {p} answer. Name the product to be sure."
                    ));
                }
                Ok(a)
            }
            _ => {
                // The best-covered label first.
                let best = |r: &SearchResult| r.hits.first().map(|h| (h.coverage, h.score)).unwrap_or_default();
                found.sort_by(|a, b| best(&b.1).partial_cmp(&best(&a.1)).unwrap_or(std::cmp::Ordering::Equal));
                let others: Vec<String> = found.iter().skip(MAX_PARTS).map(|f| f.0.clone()).collect();
                found.truncate(MAX_PARTS);
                let t1 = Instant::now();
                let mut citations: Vec<Citation> = Vec::new();
                let mut used: Vec<(usize, usize)> = Vec::new();
                let mut parts = Vec::new();
                for (pi, (product, search, draft)) in found.iter().enumerate() {
                    let mut sentences = Vec::new();
                    let mut nums = Vec::new();
                    for s in &draft.sentences {
                        let n = match used.iter().position(|u| *u == (pi, s.passage)) {
                            Some(i) => i + 1,
                            None => {
                                used.push((pi, s.passage));
                                citations.push(citation(used.len(), &search.hits[s.passage].passage));
                                used.len()
                            }
                        };
                        if !nums.contains(&n) {
                            nums.push(n);
                        }
                        sentences.push(format!("{} [{n}]", s.text));
                    }
                    parts.push(Part { product: product.clone(), answer: sentences.join(" "), citations: nums });
                }
                timings.generate = t1.elapsed().as_secs_f64() * 1e3;
                timings.first_sentence = Some(t0.elapsed().as_secs_f64() * 1e3);
                let names: Vec<&str> = parts.iter().map(|p| p.product.as_str()).collect();
                let mut note = format!(
                    "The question names no product, and this index holds several ({listed}): here is what each label says, separately ({}). Name the product for one label's answer.",
                    names.join(", ")
                );
                if !others.is_empty() {
                    note.push_str(&format!(" The {} label{} also answer{} it.", others.join(", "), if others.len() > 1 { "s" } else { "" }, if others.len() > 1 { "" } else { "s" }));
                }
                Ok(Answer {
                    route: Route::Answer,
                    answer: parts.iter().map(|p| p.answer.as_str()).collect::<Vec<_>>().join("\n\n"),
                    mode: Mode::Extractive,
                    citations,
                    flags: Vec::new(),
                    case_id: None,
                    prompt_version: None,
                    prompt_sha256: None,
                    model: None,
                    audit_id: None,
                    guard_rules: self.guard.as_ref().map(|g| g.rules_version().to_string()),
                    timings_ms: timings,
                    generated_tokens: None,
                    retrieved,
                    product: None,
                    note: Some(note),
                    parts,
                })
            }
        }
    }

    /// The guard's context for a product (its label reference, if indexed).
    fn guard_context<'a>(&'a self, product: Option<&'a str>) -> crate::guard::Context<'a> {
        crate::guard::Context { product, label: product.and_then(|p| self.labels.get(p)) }
    }

    /// Screens a rep's input of any length with the guard only (every
    /// character, in overlapping windows: [`crate::guard::Guard::screen_long`]);
    /// `Some` is the escalation (or refusal) answer, `None` means the input
    /// may be answered.
    pub(crate) fn ask_guard_only(&self, ask: &Ask, who: &Requester) -> Result<Option<Answer>> {
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

    /// Routes a flagged question: opens a Pharmacovigilance or Medical
    /// Information case (when a case store is attached) and tells the rep what
    /// happens next; a forbidden request is refused with the reason. The
    /// answer carries no promotional content.
    fn escalate(&self, ask: &Ask, who: &Requester, v: &crate::guard::Verdict, timings: Timings) -> Result<Answer> {
        use crate::cases::{CaseKind, NewCase};
        let kind = match v.route {
            Route::Pharmacovigilance => Some(CaseKind::Pharmacovigilance),
            Route::Medical => Some(CaseKind::MedicalInformation),
            _ => None,
        };
        let mut case_id = None;
        if let (Some(kind), Some(store)) = (kind, &self.cases) {
            let r = v.report.clone().unwrap_or_default();
            let event = r.event.clone().or_else(|| r.special_situation.clone()).or_else(|| v.reason.clone());
            let case = store
                .open_case(NewCase {
                    kind,
                    product: ask.product.clone(),
                    question: ask.question.clone(),
                    reporter: who.user.clone(),
                    hcp: who.hcp.clone().or(r.reporter.clone()),
                    patient: r.patient.clone(),
                    suspect_product: r.product.clone().or(ask.product.clone()),
                    event,
                    flags_json: serde_json::to_string(&v.flags).unwrap_or_else(|_| "[]".into()),
                    now: chrono::Utc::now(),
                })
                .map_err(Error::Cases)?;
            case_id = Some(case.id);
        }
        let case_text = |who: &str, sla: &str| match &case_id {
            Some(id) => format!("It has been sent to {who} as case {id}; {sla}"),
            None => format!("Send it to {who} now (no case store is configured here); {sla}"),
        };
        let answer = match v.route {
            Route::Pharmacovigilance => format!(
                "This sounds like an adverse event or a special situation (pregnancy, overdose, medication error or lack of effect) that must be reported. {} Pharmacovigilance will follow up within one business day. Do not give product information on this now; note the patient details, who reported it and when.",
                case_text("Pharmacovigilance", "they have the rep's words verbatim.")
            ),
            Route::Medical if v.flags.iter().all(|f| f.rule_id == "MIR-NO-APPROVED-ANSWER") => format!(
                "No approved, current passage for {} answers this, so it is a Medical Information request. {} Medical Information will answer the HCP directly within two business days; don't improvise an answer.",
                ask.product.as_deref().unwrap_or("the products you detail"),
                case_text("Medical Information", "the HCP's question is recorded verbatim.")
            ),
            Route::Medical => format!(
                "This question goes beyond the approved labeling{}. {} Medical Information will answer the HCP directly; do not answer it yourself.",
                v.reason.as_deref().map(|r| format!(" ({})", r.trim_end_matches('.'))).unwrap_or_default(),
                case_text("Medical Information", "the HCP's question is recorded verbatim.")
            ),
            _ => format!(
                "I can't help with that request: {}.",
                v.reason.as_deref().unwrap_or("it is not something a rep may discuss or provide").trim_end_matches('.')
            ),
        };
        Ok(Answer {
            route: v.route,
            answer,
            mode: Mode::Extractive,
            citations: Vec::new(),
            flags: v.flags.clone(),
            case_id,
            prompt_version: None,
            model: None,
            audit_id: None,
            guard_rules: None,
            timings_ms: timings,
            prompt_sha256: None,
            generated_tokens: None,
            retrieved: Vec::new(),
            product: None,
            note: None,
            parts: Vec::new(),
        })
    }
}

/// Numbers the passages in order of first use and writes `text [n]` sentences.
pub fn cite(draft: &Draft, hits: &[Hit], timings: Timings) -> Answer {
    let mut used: Vec<usize> = Vec::new();
    let mut parts = Vec::new();
    for s in &draft.sentences {
        let n = match used.iter().position(|u| *u == s.passage) {
            Some(i) => i + 1,
            None => {
                used.push(s.passage);
                used.len()
            }
        };
        parts.push(format!("{} [{n}]", s.text));
    }
    let citations = used
        .iter()
        .enumerate()
        .map(|(i, &pi)| citation(i + 1, &hits[pi].passage))
        .collect();
    Answer {
        route: Route::Answer,
        answer: parts.join(" "),
        mode: draft.mode,
        citations,
        flags: Vec::new(),
        case_id: None,
        prompt_version: None,
        model: None,
        audit_id: None,
        guard_rules: None,
        timings_ms: timings,
        prompt_sha256: None,
        generated_tokens: None,
        retrieved: Vec::new(),
        product: None,
        note: None,
        parts: Vec::new(),
    }
}

fn citation(n: usize, p: &Passage) -> Citation {
    Citation {
        n,
        doc_id: p.doc_id.clone(),
        section: p.section.clone(),
        title: p.title.clone(),
        mlr_number: p.mlr_number.clone(),
        quote: p.text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_names_are_whole_words() {
        assert!(names_in("can humira be given with live vaccines?", "humira"));
        assert!(names_in("is atorvastatin ok?", "atorvastatin"));
        assert!(!names_in("is the humiran shortage over?", "humira"));
    }

    #[test]
    fn generic_names_come_from_brand_parentheses() {
        let g = generic_names("lipitor", &["LIPITOR® (atorvastatin calcium) Tablets for oral use", "LIPITOR (see 5.1)"]);
        assert_eq!(g, ["atorvastatin calcium", "atorvastatin"]);
    }
}
