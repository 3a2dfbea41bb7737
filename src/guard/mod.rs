//! [`Guard`]: screens every question before it is answered and every generated
//! sentence before it is shown.
//!
//! On input ([`Guard::screen_input`]) it decides the route:
//!
//! 1. an adverse event or special situation *reported* in the text →
//!    Pharmacovigilance (this beats everything; see [`ae`]);
//! 2. a forbidden request (pricing, samples or anything of value, competitor
//!    superiority, leaving out safety information, prompt injection) → refused
//!    with the reason;
//! 3. an off-label question (an indication, population, dose, frequency, route
//!    or combination the product's label does not cover, judged against the
//!    label's own sections 1, 2 and 8 by [`LabelReference`]) or an unsolicited
//!    request for scientific data → Medical Information, verbatim;
//! 4. otherwise answer.
//!
//! On output ([`Guard::screen_output`], [`Guard::check_fair_balance`]) it flags
//! off-label statements, absolute or superlative claims, minimisation of risk
//! and emails without fair balance; the caller drops flagged sentences. The
//! citation verifier ([`verify`]) checks every generated sentence against the
//! passage it cites before the output screen sees it.
//!
//! Every [`Flag`] carries the id of the rule that fired (a stable reason code)
//! and its evidence span. What is forbidden lives in `rules/guard-rules.toml`
//! (versioned, reviewed by MLR like a prompt) and the adverse-reaction terms in
//! `lexicon/ae_terms.txt`; this module only knows how to apply them.
//! Base64-looking tokens are decoded and screened too.
//!
//! This file keeps the order of the steps (`screen_input`, `screen_output`,
//! `screen_long`, `screen_unanswered`) and the public types; the off-label
//! judge is in `offlabel.rs`, the reading of ages, weights and doses in
//! `quantity.rs`, the windows of a long input in `window.rs`.

pub mod ae;
pub mod elements;
pub mod intent;
pub mod label_ref;
pub mod language;
mod offlabel;
mod quantity;
pub mod rules;
pub mod text;
pub mod verify;
mod window;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

pub use elements::Elements;
pub use label_ref::LabelReference;
pub use language::Reading;
pub use window::{WINDOW_CHARS, WINDOW_OVERLAP_CHARS};

use rules::Rules;
use text::{Norm, TermMatcher};
use window::windows;

/// What can go wrong while loading the rules or the lexicon. Deciding to block
/// an answer is not an error: that is a [`Verdict`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is malformed; names the file and the line.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The learned intent head is malformed.
    #[error(transparent)]
    Intent(#[from] intent::Error),
}

impl Error {
    /// The stable code (see [`crate::error::CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } | Error::Parse { .. } => "rules_invalid",
            Error::Intent(e) => e.code(),
        }
    }
}

/// Result with the guard [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the text is screened against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The product the rep is detailing.
    pub product: Option<&'a str>,
    /// What that product's label covers; without it no off-label check is possible.
    pub label: Option<&'a LabelReference>,
    /// The text's MiniLM embedding ([`crate::index::Embedder`]), when the
    /// caller has one: the learned intent head ([`intent`]) is consulted only
    /// with it (without it, the head's accuracy drops too far to act on).
    pub embedding: Option<&'a [f32]>,
}

/// One red flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// `adverse_event`, `special_situation`, `off_label`, `comparative_claim`,
    /// `pricing`, `value_to_hcp`, `omit_safety`, `prompt_injection`,
    /// `absolute_claim`, `minimisation`, `missing_fair_balance`, `unsolicited_request`,
    /// `policy_intent` (the learned intent head: rule `INTENT-REFUSED`).
    pub kind: String,
    /// The rule that fired: a stable reason code from the rules file.
    pub rule_id: String,
    /// The text that raised it (decoded, for base64 content).
    pub evidence: String,
    /// Byte span of the evidence in the screened text.
    pub span: (usize, usize),
}

/// Where a question goes: the guard's decision (see `../shared/DESIGN.md`, routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Answered from approved, unexpired passages, with citations.
    Answer,
    /// Escalated to Medical Information: off-label or unsolicited requests,
    /// questions no approved passage answers, text the guard cannot read.
    Medical,
    /// Escalated to Pharmacovigilance: something happened to a specific person.
    Pharmacovigilance,
    /// Policy only (pricing, value, competitor claims, omitting safety,
    /// prompt injection): the reason, no case.
    Refused,
}

impl Route {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Answer => "answer",
            Route::Medical => "medical",
            Route::Pharmacovigilance => "pharmacovigilance",
            Route::Refused => "refused",
        }
    }
}

/// The minimum elements of a valid individual case safety report, where present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AeReport {
    /// An identifiable patient ("45F", "Mrs. Kaplan", "her RA patient").
    pub patient: Option<String>,
    /// An identifiable reporter ("Dr. Patel", "the charge nurse").
    pub reporter: Option<String>,
    /// The suspect product.
    pub product: Option<String>,
    /// The adverse event as written (with its preferred term).
    pub event: Option<String>,
    /// Pregnancy or breastfeeding exposure, overdose, medication error, lack of efficacy…
    pub special_situation: Option<String>,
}

/// The decision on one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Where it goes.
    pub route: Route,
    /// Every flag raised, in order of rule precedence then position.
    pub flags: Vec<Flag>,
    /// Why it was not answered (for the rep), when it was not.
    pub reason: Option<String>,
    /// The AE report's elements, when routed to Pharmacovigilance.
    pub report: Option<AeReport>,
}

/// The two layers of AE classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// The text reports an adverse event or special situation experienced by a patient.
    pub adverse_event: bool,
    /// The text mentions an adverse-reaction term.
    pub ae_mention: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum VocabKind {
    Drug,
    Condition,
}

/// The most sentences (or parts after a colon) an input may have for the
/// told-beside test (`Guard::told_beside`): an ask with a report beside it;
/// longer text is a note, screened sentence by sentence by the E2D test.
const MAX_TOLD_BESIDE_UNITS: usize = 4;

/// The guard: compiled rules and lexicons. `Send + Sync`; build once, share.
#[derive(Debug)]
pub struct Guard {
    rules: Rules,
    /// The ICH E2D report elements (`rules/report-elements.toml`).
    elements: Elements,
    /// `guard-rules@N sha256:… report-elements@M sha256:…`: what decided.
    version: String,
    lexicon: ae::Lexicon,
    /// Drugs and conditions of the rules' vocabularies, in one matcher.
    vocab: TermMatcher,
    /// Payload of `vocab`: kind and group index.
    vocab_items: Vec<(VocabKind, usize)>,
    /// The learned intent head (issue 18): may only make a route stricter.
    intent: Option<std::sync::Arc<intent::IntentHead>>,
}


const BUILTIN_RULES: &str = include_str!("../../rules/guard-rules.toml");
const BUILTIN_LEXICON: &str = include_str!("../../lexicon/ae_terms.txt");
const BUILTIN_ELEMENTS: &str = include_str!("../../rules/report-elements.toml");

/// The files a guard is built from, relative to a rules root (the repository,
/// or the folder MLR reviews a candidate rule set in).
pub const RULES_FILE: &str = "rules/guard-rules.toml";
/// The report-element rules, relative to the rules root.
pub const ELEMENTS_FILE: &str = "rules/report-elements.toml";
/// The AE lexicon, relative to the rules root.
pub const LEXICON_FILE: &str = "lexicon/ae_terms.txt";

/// A text being screened: the original, its normalised form, and where its
/// spans land in the caller's text (a decoded base64 token maps to the token).
struct Seg<'a> {
    src: &'a str,
    norm: Norm,
    fixed_span: Option<(usize, usize)>,
}

impl Seg<'_> {
    fn flag(&self, kind: &str, rule_id: &str, (a, b): (usize, usize)) -> Flag {
        let (oa, ob) = self.norm.orig(a, b);
        Flag { kind: kind.to_string(), rule_id: rule_id.to_string(), evidence: self.src[oa..ob].to_string(), span: self.fixed_span.unwrap_or((oa, ob)) }
    }
    fn orig_text(&self, (a, b): (usize, usize)) -> String {
        let (oa, ob) = self.norm.orig(a, b);
        self.src[oa..ob].to_string()
    }
}

/// Collected decisions while screening.
#[derive(Default)]
struct Acc {
    flags: Vec<Flag>,
    /// `(route, reason)` per flag, parallel to `flags`.
    routes: Vec<(Route, String)>,
    report: AeReport,
}

impl Acc {
    fn push(&mut self, flag: Flag, route: Route, reason: &str) {
        if self.flags.iter().any(|f| f.rule_id == flag.rule_id && f.span == flag.span) {
            return;
        }
        self.flags.push(flag);
        self.routes.push((route, reason.to_string()));
    }
}

fn re(cell: &'static OnceLock<Regex>, p: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(p).expect("static regex"))
}

impl Guard {
    /// The guard with the rules and lexicon compiled into the binary.
    pub fn builtin() -> Result<Guard> {
        Guard::from_sources(
            (BUILTIN_RULES, Path::new(RULES_FILE)),
            (BUILTIN_ELEMENTS, Path::new(ELEMENTS_FILE)),
            (BUILTIN_LEXICON, Path::new(LEXICON_FILE)),
        )
    }

    /// The guard from the rule files under `root` (`rules/guard-rules.toml`,
    /// `rules/report-elements.toml`, `lexicon/ae_terms.txt`), read at run time:
    /// MLR reviews a rule change without a rebuild. Errors name the file and line.
    pub fn from_dir(root: &Path) -> Result<Guard> {
        Guard::from_files(&root.join(RULES_FILE), &root.join(ELEMENTS_FILE), &root.join(LEXICON_FILE))
    }

    /// The guard from a rules file and an AE lexicon on disk (e.g. a candidate
    /// version under MLR review). Errors name the file and line.
    pub fn from_files(rules: &Path, elements: &Path, ae_lexicon: &Path) -> Result<Guard> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::Io { path: p.to_owned(), source: e });
        Guard::from_sources((&read(rules)?, rules), (&read(elements)?, elements), (&read(ae_lexicon)?, ae_lexicon))
    }

    fn from_sources((rules_src, rules_path): (&str, &Path), (el_src, el_path): (&str, &Path), (lex_src, lex_path): (&str, &Path)) -> Result<Guard> {
        let rules = Rules::parse(rules_src, rules_path)?;
        let elements = Elements::parse(el_src, el_path)?;
        let lexicon = ae::Lexicon::parse(lex_src, lex_path)?;
        let lex_digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(lex_src.as_bytes()))
        };
        let version = format!("{} {} ae-lexicon sha256:{lex_digest}", rules.version, elements.version);
        let mut terms = Vec::new();
        let mut vocab_items = Vec::new();
        for (kind, groups) in [(VocabKind::Drug, &rules.drugs), (VocabKind::Condition, &rules.conditions)] {
            for (g, names) in groups.iter().enumerate() {
                let item = vocab_items.len();
                vocab_items.push((kind, g));
                for n in names {
                    terms.push((n.clone(), item));
                }
            }
        }
        let mut guard = Guard { rules, elements, version, lexicon, vocab: TermMatcher::new(&terms), vocab_items, intent: None };
        guard = guard.with_intent(intent::IntentHead::builtin()?);
        Ok(guard)
    }

    /// Sets the learned intent head (the one compiled into the binary is set
    /// by every constructor); its content hash joins [`Guard::rules_version`].
    pub fn with_intent(mut self, head: std::sync::Arc<intent::IntentHead>) -> Guard {
        if let Some(old) = &self.intent {
            self.version = self.version.replace(&format!(" {}", old.version()), "");
        }
        self.version = format!("{} {}", self.version, head.version());
        self.intent = Some(head);
        self
    }

    /// The learned intent head, if any.
    pub fn intent(&self) -> Option<&intent::IntentHead> {
        self.intent.as_deref()
    }

    /// The versions and content hashes of everything that decides a route,
    /// for the audit log (`guard-rules@5 sha256:… report-elements@1 sha256:…
    /// ae-lexicon sha256:…`).
    pub fn rules_version(&self) -> &str {
        &self.version
    }

    /// The report-element rules (for explaining a decision).
    pub fn elements(&self) -> &Elements {
        &self.elements
    }

    /// The drug vocabulary of the rules this guard was loaded with (`[vocab]
    /// drugs`): one group per drug, brand | generic | common misspellings,
    /// normalised (lower-case, accents folded). The copilot reads it for the
    /// names a rep may call an indexed product by.
    pub fn drug_vocabulary(&self) -> &[Vec<String>] {
        &self.rules.drugs
    }

    /// Number of lexicon entries (terms and patterns).
    pub fn lexicon_len(&self) -> usize {
        self.lexicon.len
    }

    /// Screens a question (or pasted notes) and decides its route.
    pub fn screen_input(&self, text: &str, ctx: &Context) -> Verdict {
        let mut acc = Acc::default();
        let seg = Seg { src: text, norm: Norm::new(text), fixed_span: None };
        self.screen_seg(&seg, ctx, &mut acc);
        for (span, decoded) in text::base64_segments(text) {
            let reason = self.rules.reasons.get("encoded").cloned().unwrap_or_default();
            let flag = Flag { kind: "prompt_injection".into(), rule_id: "INJ-ENCODED".into(), evidence: decoded.clone(), span };
            acc.push(flag, Route::Refused, &reason);
            let dseg = Seg { src: &decoded, norm: Norm::new(&decoded), fixed_span: Some(span) };
            self.screen_seg(&dseg, ctx, &mut acc);
        }
        self.screen_elements(&seg, ctx, &mut acc);
        let pv = acc.flags.iter().any(|f| f.kind == "adverse_event" || f.kind == "special_situation");
        let pick = |route: Route| acc.routes.iter().position(|(r, _)| *r == route);
        let (route, reason) = if pv {
            let i = acc.flags.iter().position(|f| f.kind == "adverse_event" || f.kind == "special_situation").unwrap_or(0);
            (Route::Pharmacovigilance, Some(acc.routes[i].1.clone()))
        } else if let Some(i) = pick(Route::Refused) {
            (Route::Refused, Some(acc.routes[i].1.clone()))
        } else if let Some(i) = pick(Route::Medical) {
            (Route::Medical, Some(acc.routes[i].1.clone()))
        } else {
            (Route::Answer, None)
        };
        // The learned intent head may only make the route stricter.
        let (route, reason, pv) = match self.intent_step(&seg, ctx, route, &mut acc) {
            Some((r, why)) => (r, Some(why), r == Route::Pharmacovigilance),
            None => (route, reason, pv),
        };
        // A refusal opens no case: a refused ask that names a specific
        // patient and a possible adverse reaction (the safety net's test)
        // goes to Pharmacovigilance as well. When in doubt, a report wins.
        let (route, reason, pv) = match route {
            Route::Refused => match self.refusal_safety_net(&seg, ctx, &mut acc) {
                Some(why) => (Route::Pharmacovigilance, Some(why), true),
                None => (route, reason, pv),
            },
            _ => (route, reason, pv),
        };
        let report = if pv {
            let mut r = acc.report.clone();
            if r.product.is_none() {
                r.product = ctx.product.map(str::to_string);
            }
            Some(r)
        } else {
            None
        };
        // Precedence order: PV flags first, then refused, then medical.
        let rank = |r: &Route| match r {
            Route::Pharmacovigilance => 0,
            Route::Refused => 1,
            Route::Medical => 2,
            Route::Answer => 3,
        };
        let mut order: Vec<usize> = (0..acc.flags.len()).collect();
        order.sort_by_key(|&i| (rank(&acc.routes[i].0), acc.flags[i].span.0));
        let flags = order.into_iter().map(|i| acc.flags[i].clone()).collect();
        let flags = if pv { ae::distinct_reports(&self.lexicon, flags) } else { flags };
        Verdict { route, flags, reason, report }
    }

    /// Screens a long input (visit notes of up to 64 KiB, a pasted email)
    /// every character of it: in overlapping windows of at most
    /// [`WINDOW_CHARS`] characters, cut at sentence ends where possible and
    /// overlapping by [`WINDOW_OVERLAP_CHARS`] so that a report split across
    /// a cut is still read whole. The route is the most urgent of the
    /// windows' (Pharmacovigilance, then refused, then Medical); the flags of
    /// every window are kept, with spans in the whole text.
    pub fn screen_long(&self, text: &str, ctx: &Context) -> Verdict {
        let windows = windows(text, WINDOW_CHARS, WINDOW_OVERLAP_CHARS);
        if windows.len() <= 1 {
            return self.screen_input(text, ctx);
        }
        // An embedding of the whole text says nothing about one window.
        let ctx = &Context { embedding: None, ..*ctx };
        let rank = |r: Route| match r {
            Route::Pharmacovigilance => 0,
            Route::Refused => 1,
            Route::Medical => 2,
            Route::Answer => 3,
        };
        let mut best: Option<Verdict> = None;
        let mut flags: Vec<Flag> = Vec::new();
        for (a, b) in windows {
            let mut v = self.screen_input(&text[a..b], ctx);
            for f in &mut v.flags {
                f.span = (f.span.0 + a, f.span.1 + a);
                if !flags.iter().any(|g| g.rule_id == f.rule_id && g.span == f.span) {
                    flags.push(f.clone());
                }
            }
            if best.as_ref().is_none_or(|w| rank(v.route) < rank(w.route)) {
                best = Some(v);
            }
        }
        let mut v = best.unwrap_or_else(|| self.screen_input("", ctx));
        flags.sort_by_key(|f| (rank(route_of_kind(&f.kind)), f.span.0));
        v.flags = if v.route == Route::Pharmacovigilance { ae::distinct_reports(&self.lexicon, flags) } else { flags };
        v
    }

    /// Where a question goes that no approved passage answers: never a dead
    /// end. A specific person and an event or a sign that something happened
    /// (the report elements' looser test, or an adverse-reaction term in a
    /// sentence about a specific patient, rule `AE-SAFETY-NET`) go to
    /// Pharmacovigilance; everything else is a Medical Information request
    /// (rule `MIR-NO-APPROVED-ANSWER`). When in doubt, a report wins;
    /// questions that can be answered never reach this check.
    pub fn screen_unanswered(&self, text: &str, ctx: &Context) -> Verdict {
        let seg = Seg { src: text, norm: Norm::new(text), fixed_span: None };
        let t = &seg.norm.text;
        let mentions = self.mention_spans(t, ctx);
        let blocked = ae::cue_blocker(&self.rules, t);
        if let Some(r) = self.elements.unanswered(t, &mentions, &|sp| blocked(sp)) {
            let mut acc = Acc::default();
            self.push_element_report(&seg, ctx, &r, &mut acc, "a specific person and something that happened to them, with no approved answer");
            let report = acc.report.clone();
            return Verdict { route: Route::Pharmacovigilance, flags: acc.flags, reason: Some(acc.routes[0].1.clone()), report: Some(report) };
        }
        if let Some((flag, mut report)) = self.safety_net(&seg, ctx) {
            self.capture_report(&seg, ctx, &mut report);
            return Verdict {
                route: Route::Pharmacovigilance,
                flags: vec![flag],
                reason: Some("a named patient and a possible adverse reaction, with no approved answer".into()),
                report: Some(report),
            };
        }
        // A policy ask that no passage answers is refused, not sent to
        // Medical; a report the rules missed goes to Pharmacovigilance.
        let mut acc = Acc::default();
        if let Some((route, why)) = self.intent_step(&seg, ctx, Route::Answer, &mut acc).filter(|(r, _)| *r != Route::Medical) {
            let mut report = None;
            if route == Route::Pharmacovigilance {
                let mut r = AeReport { product: ctx.product.map(str::to_string), ..Default::default() };
                self.capture_report(&seg, ctx, &mut r);
                report = Some(r);
            }
            return Verdict { route, flags: acc.flags, reason: Some(why), report };
        }
        let flag = Flag { kind: "no_approved_answer".into(), rule_id: "MIR-NO-APPROVED-ANSWER".into(), evidence: text.to_string(), span: (0, text.len()) };
        Verdict {
            route: Route::Medical,
            flags: vec![flag],
            reason: Some("no approved, current passage answers this question".into()),
            report: None,
        }
    }

    /// The safety net's test (rule `AE-SAFETY-NET`): the first
    /// adverse-reaction term in a sentence about a specific patient, outside
    /// negated, hypothetical and blocked clauses, as a flag and a report
    /// holding that event.
    fn safety_net(&self, seg: &Seg, ctx: &Context) -> Option<(Flag, AeReport)> {
        let t = &seg.norm.text;
        let (a, b, preferred) = ae::patient_mention(&self.lexicon, &self.rules, t, self.indications(ctx).as_ref()).filter(|m| !self.elements.blocked_at(t, m.0))?;
        let flag = seg.flag("adverse_event", "AE-SAFETY-NET", (a, b));
        let report = AeReport { event: Some(format!("{} ({preferred})", flag.evidence)), ..Default::default() };
        Some((flag, report))
    }

    /// The safety net under a refusal (rule `AE-SAFETY-NET`, as for a
    /// question no passage answers): a specific patient and an
    /// adverse-reaction term outside negated and hypothetical clauses.
    fn refusal_safety_net(&self, seg: &Seg, ctx: &Context, acc: &mut Acc) -> Option<String> {
        let (flag, found) = self.safety_net(seg, ctx)?;
        let why = "Refused as asked, but it names a specific patient and a possible adverse reaction: a refusal opens no case, so this goes to Pharmacovigilance (report within one business day).".to_string();
        if acc.report.event.is_none() {
            acc.report.event = found.event;
        }
        acc.push(flag, Route::Pharmacovigilance, &why);
        self.capture_report(seg, ctx, &mut acc.report);
        Some(why)
    }

    /// The learned intent head's step (see [`intent::IntentHead::stricter`]):
    /// when it makes `route` stricter, pushes its flag (rule `INTENT-…`, the
    /// whole text as evidence) and returns the new route and the reason,
    /// which gives the head's probability and the nearest training asks.
    fn intent_step(&self, seg: &Seg, ctx: &Context, route: Route, acc: &mut Acc) -> Option<(Route, String)> {
        let head = self.intent.as_deref()?;
        let off_label = acc.flags.iter().any(|f| f.kind == "off_label");
        let d = head.stricter(seg.src, ctx.embedding, route, off_label)?;
        let near: Vec<String> = head
            .nearest(seg.src, 3)
            .into_iter()
            .map(|n| {
                let t: String = n.text.chars().take(80).collect();
                let more = if n.text.chars().count() > 80 { "…" } else { "" };
                format!("{} \"{t}{more}\" ({})", n.id, n.route.as_str())
            })
            .collect();
        let evidence = format!("intent classifier: {} p={:.2}; nearest training asks: {}", d.route.as_str(), d.p, near.join("; "));
        let (kind, rule_id, why) = match d.route {
            Route::Refused => (
                "policy_intent",
                "INTENT-REFUSED",
                "This reads as a request a rep may not make (pricing, gifts or anything of value, samples, promotional claims, leaving out or rewording safety information, the tool's own instructions): it is refused, and no case is opened.",
            ),
            Route::Pharmacovigilance => (
                "adverse_event",
                "INTENT-PV",
                "This reads as something that happened to a specific person: it goes to Pharmacovigilance (report within one business day). Do not answer it from the label.",
            ),
            _ => ("unsolicited_request", "INTENT-MEDICAL", "This reads as a request for Medical Information (off-label, data the label does not hold, or advice for one patient): it goes to Medical Information."),
        };
        let span = seg.fixed_span.unwrap_or((0, seg.src.len()));
        let flag = Flag { kind: kind.into(), rule_id: rule_id.into(), evidence: seg.src.to_string(), span };
        let reason = format!("{why} ({evidence})");
        acc.push(flag, d.route, &reason);
        Some((d.route, reason))
    }

    /// AE lexicon mentions of normalised text as `(start, end, preferred)`,
    /// without those naming the product's own indication ([`ae::Indications`]).
    fn mention_spans(&self, t: &str, ctx: &Context) -> Vec<(usize, usize, String)> {
        let mentions = self.lexicon.mentions(t);
        let mentions = match self.indications(ctx) {
            Some(ind) => ind.events(t, mentions),
            None => mentions,
        };
        mentions.into_iter().map(|m| (m.start, m.end, m.preferred)).collect()
    }

    /// The indications of the product in context, from its label's section 1.
    fn indications(&self, ctx: &Context) -> Option<ae::Indications> {
        ctx.label.map(|l| ae::Indications::of(&self.lexicon, l, ctx.product)).filter(|i| !i.is_empty())
    }

    /// The report elements and the language check on one input (after the
    /// lexicon-and-cue rules): a report by its E2D elements goes to
    /// Pharmacovigilance; text the guard cannot read with confidence goes to
    /// a person (Pharmacovigilance when an event element matches, Medical
    /// Information otherwise), never to an answer.
    fn screen_elements(&self, seg: &Seg, ctx: &Context, acc: &mut Acc) {
        let t = &seg.norm.text;
        let already_pv = |acc: &Acc| acc.flags.iter().any(|f| f.kind == "adverse_event" || f.kind == "special_situation");
        let mentions = self.mention_spans(t, ctx);
        let blocked = ae::cue_blocker(&self.rules, t);
        if !already_pv(acc) {
            if let Some(r) = self.elements.report(t, &mentions, &|sp| blocked(sp)) {
                self.push_element_report(seg, ctx, &r, acc, "");
            }
        }
        let lang = &self.elements.language;
        match language::read(seg.src, lang) {
            Reading::English => {
                if !already_pv(acc) {
                    if let Some(r) = self.told_beside(t, ctx) {
                        self.push_element_report(seg, ctx, &r, acc, "told beside a question: a specific person and something that happened to them");
                    }
                }
            }
            Reading::Supported(code) => {
                if !already_pv(acc) {
                    if let Some(r) = self.elements.unanswered(t, &mentions, &|sp| blocked(sp)) {
                        self.push_element_report(seg, ctx, &r, acc, "");
                    } else if let Some(mut e) = self.elements.foreign_report(t) {
                        e.situation = Some(e.situation.unwrap_or_else(|| "adverse_event".into()));
                        let r = elements::ElementReport { person: e.clone(), event: e, realis: None };
                        self.push_element_report(seg, ctx, &r, acc, &format!("text in {code}: a person reads it"));
                    }
                }
                let flag = Flag { kind: "language".into(), rule_id: "LANG-NOT-ENGLISH".into(), evidence: seg.src.to_string(), span: seg.fixed_span.unwrap_or((0, seg.src.len())) };
                acc.push(flag, Route::Medical, &format!("the question is not in English ({code}); the approved material is, so a person answers it"));
            }
            Reading::Unreadable(why) => {
                if !already_pv(acc) {
                    if let Some(e) = self.elements.any_event(t) {
                        let r = elements::ElementReport { person: e.clone(), event: e, realis: None };
                        self.push_element_report(seg, ctx, &r, acc, "");
                    }
                }
                let flag = Flag { kind: "language".into(), rule_id: "LANG-UNREADABLE".into(), evidence: seg.src.to_string(), span: seg.fixed_span.unwrap_or((0, seg.src.len())) };
                acc.push(flag, Route::Medical, &format!("the guard cannot read this with confidence ({why}); a person reads it"));
            }
        }
    }

    /// A report told in its own sentence beside a question ("Does the label
    /// say anything about taking two doses by mistake? That is what Mr. Diaz
    /// did yesterday."): the question is answerable, so the unanswered
    /// path's element test never sees the report, and the stricter E2D test
    /// reads the sentences together. Each sentence (or part after a colon)
    /// of an input of more than one such unit that is not itself a question
    /// gets the unanswered path's test (a specific person and an unblocked
    /// event or narrative), with spans in the whole text.
    fn told_beside(&self, t: &str, ctx: &Context) -> Option<elements::ElementReport> {
        // Sentences, each cut again after a colon: a follow-up resolved as
        // "About liver tests (zentravia): Her results came back three times
        // the upper limit." holds the rep's own words after the colon.
        let units: Vec<(usize, usize)> = text::sentences(t)
            .into_iter()
            .flat_map(|(a, b)| {
                let mut cuts = vec![a];
                cuts.extend(t[a..b].match_indices(": ").map(|(i, _)| a + i + 2));
                cuts.push(b);
                cuts.windows(2).map(|w| (w[0], w[1])).filter(|(x, y)| !t[*x..*y].trim().is_empty()).collect::<Vec<_>>()
            })
            .collect();
        // An ask with a report beside it is short; a long note (screened in
        // windows, every sentence through the E2D test) is not read this way:
        // its patients' histories are not each a report.
        if !(2..=MAX_TOLD_BESIDE_UNITS).contains(&units.len()) {
            return None;
        }
        units.into_iter().find_map(|(a, b)| {
            let s = &t[a..b];
            if s.trim_end().ends_with('?') {
                return None;
            }
            let mentions = self.mention_spans(s, ctx);
            let blocked = ae::cue_blocker(&self.rules, s);
            let mut r = self.elements.unanswered(s, &mentions, &|sp| blocked(sp))?;
            for f in [Some(&mut r.event), Some(&mut r.person), r.realis.as_mut()].into_iter().flatten() {
                f.span = (f.span.0 + a, f.span.1 + a);
            }
            if r.event.id == elements::NARRATIVE_EVENT {
                // A narrative with no event word of its own ("that is what
                // Mr. Diaz did yesterday") reports the event the rest of the
                // input names, even inside the question; with no event
                // anywhere it is a patient's background, not a report.
                r.event = self.elements.any_event_in(t, &self.mention_spans(t, ctx))?;
            }
            Some(r)
        })
    }

    /// Records a report found by its elements: the flag (kind from the
    /// event's situation, rule id of the event element) and the report's
    /// patient and event.
    fn push_element_report(&self, seg: &Seg, ctx: &Context, r: &elements::ElementReport, acc: &mut Acc, reason: &str) {
        let situation = r.event.situation.as_deref().unwrap_or("adverse_event");
        let (kind, default_reason) = if situation == "adverse_event" {
            ("adverse_event", "Possible adverse event reported (a specific person, something that happened to them): this goes to Pharmacovigilance (report within one business day). Do not answer it from the label.")
        } else {
            ("special_situation", "Special situation reported (pregnancy or breastfeeding exposure, overdose, medication or handling error, accidental exposure, lack of efficacy): this goes to Pharmacovigilance.")
        };
        let reason = if reason.is_empty() { default_reason.to_string() } else { format!("{default_reason} ({reason})") };
        acc.push(seg.flag(kind, &r.event.id, r.event.span), Route::Pharmacovigilance, &reason);
        if acc.report.event.is_none() && situation == "adverse_event" {
            acc.report.event = Some(seg.orig_text(r.event.span));
        }
        if acc.report.special_situation.is_none() && situation != "adverse_event" {
            acc.report.special_situation = Some(situation.to_string());
            if acc.report.event.is_none() {
                acc.report.event = Some(seg.orig_text(r.event.span));
            }
        }
        if acc.report.patient.is_none() && r.person.class == elements::Class::Person {
            acc.report.patient = Some(seg.orig_text(r.person.span));
        }
        self.capture_report(seg, ctx, &mut acc.report);
    }

    /// Screens one generated sentence; an empty list means it may be shown.
    pub fn screen_output(&self, sentence: &str, ctx: &Context) -> Vec<Flag> {
        let seg = Seg { src: sentence, norm: Norm::new(sentence), fixed_span: None };
        let mut acc = Acc::default();
        let hits = self.vocab.find(&seg.norm.text);
        self.apply_rules(&seg, ctx, &hits, false, &mut acc);
        if let Some(label) = ctx.label {
            self.off_label(&seg, ctx, label, &hits, true, &mut acc);
        }
        acc.flags
    }

    /// Checks an email body for fair balance: benefit claims need risk
    /// information in the body or the Important Safety Information attached.
    pub fn check_fair_balance(&self, email_body: &str, isi_present: bool) -> Vec<Flag> {
        if isi_present {
            return Vec::new();
        }
        let seg = Seg { src: email_body, norm: Norm::new(email_body), fixed_span: None };
        let t = &seg.norm.text;
        match self.rules.benefit.re.find(t) {
            Some(m) if !self.rules.risk.re.is_match(t) => {
                let sent = text::sentences(t).into_iter().find(|s| s.0 <= m.start() && m.start() < s.1).unwrap_or((m.start(), m.end()));
                vec![seg.flag("missing_fair_balance", &self.rules.fair_balance_id, sent)]
            }
            _ => Vec::new(),
        }
    }

    /// Whether the text reports an adverse event and whether it mentions one.
    pub fn classify(&self, text: &str) -> Classification {
        let norm = Norm::new(text);
        let (mentions, reports) = ae::detect(&self.lexicon, &self.rules, &norm.text);
        let mut c = Classification { adverse_event: !reports.is_empty(), ae_mention: !mentions.is_empty() };
        for (_, decoded) in text::base64_segments(text) {
            let d = self.classify(&decoded);
            c.adverse_event |= d.adverse_event;
            c.ae_mention |= d.ae_mention;
        }
        c
    }

    /// The AE mentions of a text as `(original span, preferred term)`; for
    /// evaluation against span-level gold data.
    pub fn mentions(&self, text: &str) -> Vec<((usize, usize), String)> {
        let norm = Norm::new(text);
        self.lexicon.mentions(&norm.text).into_iter().map(|m| (norm.orig(m.start, m.end), m.preferred)).collect()
    }

    fn screen_seg(&self, seg: &Seg, ctx: &Context, acc: &mut Acc) {
        let t = &seg.norm.text;
        let (_, mut reports) = ae::detect_events(&self.lexicon, &self.rules, t, self.indications(ctx).as_ref());
        // A term in a clause the report elements block ("patients who had a
        // stroke", "tell Dr. Ng the neuropathy is…") is not a report either.
        reports.retain(|r| !r.event_text.is_some_and(|(a, _)| self.elements.blocked_at(t, a)));
        for r in &reports {
            let (kind, reason) = match r.kind {
                "adverse_event" => ("adverse_event", "Possible adverse event reported: this goes to Pharmacovigilance (report within one business day). Do not answer it from the label."),
                _ => ("special_situation", "Special situation reported (pregnancy or breastfeeding exposure, overdose, medication error, lack of efficacy or occupational exposure): this goes to Pharmacovigilance."),
            };
            acc.push(seg.flag(kind, &r.rule_id, r.span), Route::Pharmacovigilance, reason);
            if acc.report.event.is_none() {
                if let (Some(pref), Some(span)) = (&r.event, r.event_text) {
                    let written = seg.orig_text(span);
                    acc.report.event = Some(if written.to_lowercase() == *pref { written } else { format!("{written} ({pref})") });
                }
            }
            if acc.report.special_situation.is_none() {
                acc.report.special_situation = r.situation.clone();
            }
        }
        if !reports.is_empty() {
            self.capture_report(seg, ctx, &mut acc.report);
        }
        let hits = self.vocab.find(t);
        self.apply_rules(seg, ctx, &hits, true, acc);
        if let Some(label) = ctx.label {
            self.off_label(seg, ctx, label, &hits, false, acc);
        }
    }

    /// The drug group of the product in context.
    fn product_group(&self, ctx: &Context) -> Option<usize> {
        let p = Norm::new(ctx.product?).text;
        self.rules.drugs.iter().position(|names| names.iter().any(|n| *n == p))
    }

    /// Drug hits in `[a, b)` that are not the product.
    fn competitors<'s>(&'s self, ctx: &Context, hits: &'s [(usize, usize, usize)], (a, b): (usize, usize)) -> impl Iterator<Item = &'s (usize, usize, usize)> + 's {
        let pg = self.product_group(ctx);
        let items = &self.vocab_items;
        hits.iter().filter(move |h| h.0 >= a && h.1 <= b && items[h.2].0 == VocabKind::Drug && Some(items[h.2].1) != pg)
    }

    fn apply_rules(&self, seg: &Seg, ctx: &Context, hits: &[(usize, usize, usize)], input: bool, acc: &mut Acc) {
        let t = &seg.norm.text;
        let matched = self.rules.rule_set.matches(t);
        if !matched.matched_any() {
            return;
        }
        let sents = text::sentences(t);
        for i in matched.iter() {
            let rule = &self.rules.rules[i];
            if (input && !rule.input) || (!input && !rule.output) {
                continue;
            }
            for m in rule.pat.re.find_iter(t) {
                let sent = *sents.iter().find(|s| s.0 <= m.start() && m.start() < s.1.max(s.0 + 1)).unwrap_or(&(0, t.len()));
                let scope = if rule.unless_in_text { (0, t.len()) } else { sent };
                if rule.unless.as_ref().is_some_and(|u| u.is_match_in(t, scope.0, scope.1)) {
                    continue;
                }
                if rule.needs_competitor && self.competitors(ctx, hits, sent).next().is_none() {
                    continue;
                }
                acc.push(seg.flag(&rule.kind, &rule.id, (m.start(), m.end())), rule.route, &rule.reason);
                break;
            }
        }
    }

    fn reason(&self, key: &str) -> String {
        self.rules.reasons.get(key).cloned().unwrap_or_default()
    }

    /// Fills the patient and reporter of an AE report from the text.
    fn capture_report(&self, seg: &Seg, ctx: &Context, report: &mut AeReport) {
        static PATIENT: OnceLock<Regex> = OnceLock::new();
        static REPORTER: OnceLock<Regex> = OnceLock::new();
        let t = &seg.norm.text;
        if report.patient.is_none() {
            let p = re(
                &PATIENT,
                r"\b(?:\d{1,3} ?(?:[mf]\b|yo\b|y/o\b|-?years?[- ]old\b|-?month[- ]old\b)|(?:mrs?|ms)\.? [a-z]+\b|(?:(?:(?:my|her|his|their|our|the|a) |one of (?:dr\.? [a-z]+'s|her|his|their|the|our) )(?:[\w'-]+ ){0,2}?(?:patients?|pts?|resident|lady|man|woman|boy|girl|kid|child|son|daughter|baby|mom|wife|husband|infant)\b)|(?:mi|su|la|el|una?|le|la) (?:paciente|patiente?)\b|\bpt\b)",
            );
            if let Some(m) = p.find(t) {
                report.patient = Some(seg.orig_text((m.start(), m.end())));
            }
        }
        if report.reporter.is_none() {
            let r = re(&REPORTER, r"\b(?:(?:dr|dra|doctor|doctora)\.? [a-z][a-z'-]+|(?:charge |icu |the )?(?:nurse|pharmacist|nursing home|np|pa|ma)\b)");
            if let Some(m) = r.find(t) {
                report.reporter = Some(seg.orig_text((m.start(), m.end())));
            }
        }
        if report.product.is_none() {
            let hits = self.vocab.find(t);
            let pg = self.product_group(ctx);
            let product = hits.iter().find(|h| self.vocab_items[h.2].0 == VocabKind::Drug && (pg.is_none() || Some(self.vocab_items[h.2].1) == pg));
            report.product = match product {
                Some(h) => Some(seg.orig_text((h.0, h.1))),
                None => ctx.product.map(str::to_string),
            };
        }
    }
}

/// The route a flag kind escalates to (for ordering merged flags).
fn route_of_kind(kind: &str) -> Route {
    match kind {
        "adverse_event" | "special_situation" => Route::Pharmacovigilance,
        "pricing" | "value_to_hcp" | "comparative_claim" | "omit_safety" | "prompt_injection" | "policy_intent" => Route::Refused,
        _ => Route::Medical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::builtin().expect("builtin rules compile")
    }

    #[test]
    fn builtin_compiles_and_has_a_version() {
        let g = guard();
        assert!(g.rules_version().starts_with("guard-rules@"), "{}", g.rules_version());
        assert!(g.rules_version().contains("sha256:"));
        assert!(g.lexicon_len() > 500);
    }

    #[test]
    fn lab_changes_are_mentions_but_monitoring_advice_is_not() {
        let g = guard();
        for s in [
            "Dose-related increases in LDL-C were observed.",
            "The drug increases serum creatinine and decreases eGFR.",
            "Mean changes from baseline in hemoglobin were 0.47 g/dL.",
            "Hematocrit values >55% were reported in 1.3% of patients.",
            "All 5 patients had maximum ALT or AST levels >8 * ULN.",
            "Estrogen administration leads to increased thyroid-binding globulin (TBG) levels.",
            "Injection-site induration occurred in 2% of patients.",
        ] {
            assert!(!g.mentions(s).is_empty(), "no mention in {s:?}");
        }
        for s in ["Monitor serum potassium and LDL-C periodically.", "An increase in dose is not recommended."] {
            assert!(g.mentions(s).is_empty(), "mention in {s:?}: {:?}", g.mentions(s));
        }
    }

    #[test]
    fn unanswerable_patient_symptoms_go_to_pv_and_the_rest_to_medical() {
        let g = guard();
        let ctx = Context { product: Some("humira"), ..Default::default() };
        let v = g.screen_unanswered("Mrs. Alvarez has this tingling and numbness in her feet, anything on that?", &ctx);
        assert_eq!(v.route, Route::Pharmacovigilance);
        assert!(v.report.as_ref().and_then(|r| r.patient.clone()).is_some());
        for q in ["What does the label say about numbness and tingling?", "What if my patient gets numbness in her feet?", "What color is the cap on the vial?"] {
            let v = g.screen_unanswered(q, &ctx);
            assert_eq!(v.route, Route::Medical, "{q}: {v:?}");
            assert_eq!(v.flags[0].rule_id, "MIR-NO-APPROVED-ANSWER");
        }
    }

    #[test]
    fn a_report_told_beside_a_question_goes_to_pv_and_a_patients_background_does_not() {
        let g = guard();
        let ctx = Context { product: Some("zentravia"), ..Default::default() };
        for q in [
            // The event is named in the question, the person in the next sentence.
            "Does the label say anything about taking two doses by mistake? That is what Mr. Diaz did yesterday.",
            // A follow-up resolved with its topic: the rep's words follow the colon.
            "About liver tests (zentravia): Her results came back three times the upper limit.",
            "What does the PI say about rash? Mrs. Kaur broke out in hives after her second dose.",
        ] {
            let v = g.screen_input(q, &ctx);
            assert_eq!(v.route, Route::Pharmacovigilance, "{q}: {v:?}");
            assert!(v.report.is_some(), "{q}");
        }
        for q in [
            "Dr. Lee worries about liver toxicity with ZENTRAVIA. What does the label say?",
            "Dr. Lee worries about liver toxicity.",
            "what dyes are in the tablets? pt has a dye sensitivity",
            "does remdesivir mess w/ the liver? Dr. Patel wants to know at what ALT level you're supposed to stop it",
            "Dr. Ferris sees a lot of older patients in her clinic. What is the starting dose for them?",
            "About liver tests (zentravia): Same for older patients?",
        ] {
            let v = g.screen_input(q, &ctx);
            assert_ne!(v.route, Route::Pharmacovigilance, "{q}: {v:?}");
        }
    }

    #[test]
    fn label_question_mentions_but_does_not_report() {
        let c = guard().classify("What does the label say about rash?");
        assert_eq!(c, Classification { adverse_event: false, ae_mention: true });
    }

    #[test]
    fn hypothetical_is_not_a_report() {
        let g = guard();
        assert!(!g.classify("What if a patient gets a rash after the first dose?").adverse_event);
        assert!(g.classify("My patient got a rash after the first dose.").adverse_event);
    }

    #[test]
    fn report_captures_elements() {
        let v = guard().screen_input("Dr. Patel says her 45F patient got hives after the second Humira shot.", &Context { product: Some("humira"), ..Default::default() });
        assert_eq!(v.route, Route::Pharmacovigilance);
        let r = v.report.unwrap();
        assert_eq!(r.reporter.as_deref(), Some("Dr. Patel"));
        assert!(r.event.unwrap().contains("hives"));
        assert_eq!(r.product.as_deref(), Some("Humira"));
        assert!(r.patient.is_some());
        let f = &v.flags[0];
        assert_eq!(f.kind, "adverse_event");
        assert!(!f.rule_id.is_empty());
    }

    #[test]
    fn spans_point_into_the_original() {
        let text = "Il a fait une réaction après la perfusion, avec fièvre.";
        let v = guard().screen_input(text, &Context::default());
        assert_eq!(v.route, Route::Pharmacovigilance);
        for f in &v.flags {
            assert_eq!(&text[f.span.0..f.span.1], f.evidence);
        }
    }

    #[test]
    fn pricing_and_gifts_are_refused_with_rule_ids() {
        let g = guard();
        let v = g.screen_input("What's the list price of a pen?", &Context::default());
        assert_eq!(v.route, Route::Refused);
        assert_eq!(v.flags[0].kind, "pricing");
        assert!(v.reason.is_some());
        let v = g.screen_input("Can I give the doctor a gift card?", &Context::default());
        assert_eq!(v.flags[0].kind, "value_to_hcp");
    }

    #[test]
    fn absolute_claims_in_output_are_flagged() {
        let g = guard();
        let f = g.screen_output("Humira is completely safe and has no side effects.", &Context::default());
        assert!(f.iter().any(|f| f.kind == "absolute_claim"), "{f:?}");
        assert!(g.screen_output("Serious infections have been reported [1].", &Context::default()).is_empty());
    }

    #[test]
    fn fair_balance_needs_risk_or_isi() {
        let g = guard();
        let body = "Dear Dr. Shah, as discussed, Humira reduced signs and symptoms of RA in clinical trials.";
        assert_eq!(g.check_fair_balance(body, false)[0].kind, "missing_fair_balance");
        assert!(g.check_fair_balance(body, true).is_empty());
        let balanced = format!("{body} Serious infections and malignancies have been reported; see the boxed warning.");
        assert!(g.check_fair_balance(&balanced, false).is_empty());
    }

    #[test]
    fn bad_rules_file_names_the_line() {
        let dir = std::env::temp_dir().join(format!("guard-rules-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = dir.join("rules.toml");
        std::fs::write(&rules, BUILTIN_RULES.replacen("[[rule]]\n", "[[rule]]\nbogus_field = 1\n", 1)).unwrap();
        let lex = dir.join("lex.txt");
        std::fs::write(&lex, BUILTIN_LEXICON).unwrap();
        let el = dir.join("elements.toml");
        std::fs::write(&el, BUILTIN_ELEMENTS).unwrap();
        let e = Guard::from_files(&rules, &el, &lex).unwrap_err().to_string();
        assert!(e.contains("rules.toml:") && e.contains("bogus_field"), "{e}");
        assert!(Guard::from_files(&dir.join("missing.toml"), &el, &lex).unwrap_err().to_string().contains("missing.toml"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn guard_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Guard>();
    }
}
