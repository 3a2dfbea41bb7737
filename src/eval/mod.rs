//! [`Suite`]: eval suites (`evals/*.jsonl`), their metrics and reports.
//!
//! A suite is one JSON case a line (format in DESIGN.md). `run` answers every
//! case with the real pipeline and computes the metrics compliance reads:
//! route accuracy, citation recall and precision, the supported-sentence
//! rate, latencies, and a list of failures with the reason for each;
//! [`report`] writes them for compliance (HTML with charts, Markdown, JSON);
//! [`recorded`] is a run kept as evidence (audit record, registry eval runs),
//! as `onlabel eval` and the server's `POST /api/v1/evals` run it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::copilot::{Answer, Copilot};

pub mod recorded;
pub mod report;
pub use report::write_report;

/// What can go wrong reading a suite or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The suite file cannot be read.
    #[error("cannot read suite {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a valid case.
    #[error("{path}:{line}: invalid case: {message}")]
    BadCase {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// The suite holds no case.
    #[error("{path}: the suite has no cases (one JSON case a line; blank lines and // comments are skipped)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Two cases share an id.
    #[error("{path}:{line}: duplicate case id {id:?}")]
    DuplicateId {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The id.
        id: String,
    },
    /// The report could not be written.
    #[error("cannot write report to {path}: {source}")]
    Report {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The metrics could not be turned into JSON (a bug: they always can).
    #[error("cannot serialise the eval metrics: {0}")]
    Metrics(serde_json::Error),
}

impl Error {
    /// The stable code (see [`crate::error::CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } | Error::BadCase { .. } | Error::Empty { .. } | Error::DuplicateId { .. } => "suite_invalid",
            Error::Report { .. } => "report_io",
            Error::Metrics(_) => "internal",
        }
    }
}

/// Result with the eval [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One route or a list of acceptable routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Routes {
    /// Exactly this route.
    One(String),
    /// Any of these.
    Any(Vec<String>),
}

/// The routes a case may expect (DESIGN.md).
pub const ROUTES: &[&str] = &["answer", "medical", "pharmacovigilance", "refused"];

/// The tasks a suite may hold.
pub const TASKS: &[&str] = &["ask", "classify", "email"];

impl Routes {
    /// The routes, in the order written.
    pub fn list(&self) -> Vec<&str> {
        match self {
            Routes::One(x) => vec![x.as_str()],
            Routes::Any(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// How a failure reason names them: `answer`, or `answer or medical`.
    pub fn describe(&self) -> String {
        let l = self.list();
        match l.split_last() {
            None => "no route".into(),
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }

    /// Whether `r` is acceptable.
    pub fn accepts(&self, r: &str) -> bool {
        match self {
            Routes::One(x) => x == r,
            Routes::Any(v) => v.iter().any(|x| x == r),
        }
    }
}

/// What a case expects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Acceptable route(s).
    pub route: Option<Routes>,
    /// Sections a right answer may cite (any is correct).
    #[serde(default)]
    pub sections: Vec<String>,
    /// Sections a right answer must all cite.
    #[serde(default)]
    pub sections_all: Vec<String>,
    /// The text reports an adverse event (classify cases).
    pub adverse_event: Option<bool>,
    /// The text mentions an adverse reaction term (classify cases).
    pub ae_mention: Option<bool>,
    /// An email must carry fair balance (email cases).
    pub fair_balance: Option<bool>,
    /// Key phrases, verbatim from the one label sentence that answers the
    /// question: a right answer contains every one of them (compared
    /// case-insensitively, with runs of white space made one space). Cases
    /// with phrases measure whether reps get *the statement*, not only a
    /// section that holds it ([`Metrics::statement_recall`]).
    #[serde(default)]
    pub phrases: Vec<String>,
}

/// One eval case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique id.
    pub id: String,
    /// `ask`, `classify` or `email`.
    pub task: String,
    /// Product the question is about.
    #[serde(default)]
    pub product: Option<String>,
    /// The question (ask).
    #[serde(default)]
    pub question: Option<String>,
    /// The text (classify).
    #[serde(default)]
    pub text: Option<String>,
    /// HCP name (email).
    #[serde(default)]
    pub hcp: Option<String>,
    /// Topics discussed (email).
    #[serde(default)]
    pub topics: Option<String>,
    /// Expectations.
    pub expect: Expect,
}

/// Largest suite file read, bytes (the biggest shipped is about 50 KB).
pub const MAX_SUITE_BYTES: u64 = 16 * 1024 * 1024;

/// A parsed suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its cases, in file order.
    pub cases: Vec<Case>,
}

impl Suite {
    /// Reads a JSONL suite; blank lines and `//` comments are skipped. Strict:
    /// an unknown field, task or route, or a suite without cases, is an error
    /// that names the line (a typo like `sectons` must not silently pass).
    pub fn read(path: &Path) -> Result<Suite> {
        let text = crate::input::read_text_limited(path, MAX_SUITE_BYTES).map_err(|e| Error::Io { path: path.to_owned(), source: e })?;
        let mut cases = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with("//") {
                continue;
            }
            let case: Case = serde_json::from_str(l)
                .map_err(|e| Error::BadCase { path: path.to_owned(), line: i + 1, message: e.to_string() })?;
            let bad = |message: String| Error::BadCase { path: path.to_owned(), line: i + 1, message };
            if !TASKS.contains(&case.task.as_str()) {
                return Err(bad(format!("case {:?}: unknown task {:?} (one of {})", case.id, case.task, TASKS.join(", "))));
            }
            if let Some(r) = &case.expect.route {
                if let Some(x) = r.list().into_iter().find(|x| !ROUTES.contains(x)) {
                    return Err(bad(format!("case {:?}: unknown route {x:?} (one of {})", case.id, ROUTES.join(", "))));
                }
            }
            if !ids.insert(case.id.clone()) {
                return Err(Error::DuplicateId { path: path.to_owned(), line: i + 1, id: case.id });
            }
            cases.push(case);
        }
        if cases.is_empty() {
            return Err(Error::Empty { path: path.to_owned() });
        }
        Ok(Suite { path: path.to_owned(), cases })
    }
}

/// Compares section labels the way DESIGN.md says: case-insensitive,
/// ignoring punctuation and spaces.
pub fn same_section(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>();
    norm(a) == norm(b)
}

/// Whether `text` contains `phrase`, case-insensitively, with every run of
/// white space taken as one space (label text wraps lines where answers do not).
pub fn contains_phrase(text: &str, phrase: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let p = norm(phrase);
    !p.is_empty() && norm(text).contains(&p)
}

/// One failing case and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Case id.
    pub id: String,
    /// What went wrong.
    pub why: String,
}

/// One case's outcome, for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Case id.
    pub id: String,
    /// The question.
    pub question: String,
    /// Route taken.
    pub route: String,
    /// Citation labels given.
    pub cited: Vec<String>,
    /// Expected sections.
    pub expected: Vec<String>,
    /// The answer text.
    pub answer: String,
    /// Whether the case passed.
    pub pass: bool,
    /// Latency in ms.
    pub latency_ms: f64,
}

/// Metrics of one run (the JSON of `eval --json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    /// Suite file.
    pub suite: String,
    /// Cases evaluated.
    pub cases: usize,
    /// Cases of a task this build cannot evaluate yet (listed in failures).
    pub skipped: usize,
    /// Classify cases evaluated (AE report / mention).
    pub classified: usize,
    /// Share of ask/email cases whose route (and, for emails, content rules) is acceptable.
    pub route_accuracy: f64,
    /// Share of answer cases citing at least one expected section.
    pub citation_recall: Option<f64>,
    /// Share of citations (in answer cases) pointing at an expected section.
    pub citation_precision: Option<f64>,
    /// Share of answer sentences supported by their cited passage.
    pub supported_sentence_rate: Option<f64>,
    /// Of the cases with `expect.phrases`: the share answered (route
    /// `answer`) at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_answered: Option<f64>,
    /// Of the cases with `expect.phrases`: the share whose answer contains
    /// every key phrase (the statement the HCP needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_recall: Option<f64>,
    /// Median words of the answers given (route `answer`; citation markers
    /// not counted): a rep reads it out loud mid-call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_words_p50: Option<f64>,
    /// 90th percentile of the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_words_p90: Option<f64>,
    /// Answers in generated mode.
    pub generated: usize,
    /// Answers in extractive mode.
    pub extractive: usize,
    /// Answers in composed mode.
    #[serde(default)]
    pub composed: usize,
    /// AE report precision (not evaluated before the guard exists).
    pub ae_precision: Option<f64>,
    /// AE report recall.
    pub ae_recall: Option<f64>,
    /// AE report F1.
    pub ae_f1: Option<f64>,
    /// AE mention precision.
    pub mention_precision: Option<f64>,
    /// AE mention recall.
    pub mention_recall: Option<f64>,
    /// AE mention F1.
    pub mention_f1: Option<f64>,
    /// Cases that expect Pharmacovigilance or Medical (and not an answer) but were answered.
    #[serde(default)]
    pub escalations_answered: usize,
    /// Cases that expect Pharmacovigilance but ended as `refused`.
    #[serde(default)]
    pub reports_refused: usize,
    /// Share of answer-only cases routed to Pharmacovigilance or Medical.
    #[serde(default)]
    pub false_alarm_rate: Option<f64>,
    /// Median latency per case, ms.
    pub latency_ms_p50: f64,
    /// 95th percentile latency, ms.
    pub latency_ms_p95: f64,
    /// Failing cases and why.
    pub failures: Vec<Failure>,
    /// Every case's outcome (for reports; omitted from `--json` summaries when empty).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub outcomes: Vec<Outcome>,
}

fn f1(tp: usize, fp: usize, fn_: usize) -> Option<f64> {
    if tp + fp + fn_ == 0 {
        return None;
    }
    let p = if tp + fp == 0 { 0.0 } else { tp as f64 / (tp + fp) as f64 };
    let r = if tp + fn_ == 0 { 0.0 } else { tp as f64 / (tp + fn_) as f64 };
    Some(if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) })
}

/// Evaluates an email case; `None` when this build cannot draft emails.
/// Returns the failure reasons (empty = pass).
fn email_case(copilot: &Copilot, case: &Case, as_of: chrono::NaiveDate, lat: &mut Vec<f64>) -> Option<String> {
    let topics = case.topics.clone()?;
    let req = crate::copilot::Request {
        task: crate::copilot::Task::Email { topics, hcp: case.hcp.clone().unwrap_or_else(|| "Doctor".into()), greeting: None, closing: None },
        product: case.product.clone(),
        role: "rep".into(),
        as_of,
        requester: crate::copilot::Requester { user: "eval".into(), hcp: case.hcp.clone(), defer_medical: false },
        generate: false,
    };
    let t = Instant::now();
    // No trace: the eval run is recorded as a whole (`recorded`).
    let d = match copilot.run(&req, None, &mut |_| {}) {
        Ok(crate::copilot::Outcome::Email(d)) => d,
        Ok(_) => return Some("error: the copilot returned no email draft".into()),
        Err(e) => return Some(format!("error: {e}")),
    };
    lat.push(t.elapsed().as_secs_f64() * 1e3);
    let mut why = Vec::new();
    if let Some(r) = &case.expect.route {
        if !r.accepts(d.route.as_str()) {
            why.push(format!("route {}, expected {}", d.route.as_str(), r.describe()));
        }
    }
    if d.route == crate::copilot::Route::Answer {
        if case.expect.fair_balance == Some(true) && d.isi.is_empty() {
            why.push("no Important Safety Information (fair balance)".into());
        }
        if !d.banner.contains("DRAFT") || !d.body.contains("DRAFT") {
            why.push("no draft banner".into());
        }
        // Only cited statements: every statement and ISI line has a marker that resolves to a reference quoting it.
        for s in d.statements.iter().chain(&d.isi) {
            if !d.references.iter().any(|c| c.n == s.n && c.quote.contains(&s.text)) {
                why.push(format!("the statement \"{}\" has no citation that quotes it", s.text));
            }
        }
        if !case.expect.sections.is_empty() {
            let cited: Vec<String> = d.references.iter().map(|c| c.label()).collect();
            if !cited.iter().any(|c| case.expect.sections.iter().any(|e| same_section(c, e))) {
                why.push(format!("cited {}, expected {}", labels(&cited, "and"), labels(&case.expect.sections, "or")));
            }
        }
        if d.flags.iter().any(|f| f.kind == "missing_fair_balance") {
            why.push("the guard found no fair balance (safety information)".into());
        }
    }
    Some(why.join("; "))
}

/// Section labels as a failure reason reads them: `nothing`, `a §1`,
/// `a §1 and b §2` (or `or`).
fn labels(l: &[String], conj: &str) -> String {
    match l.split_last() {
        None => "nothing".into(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} {conj} {last}", rest.join(", ")),
    }
}

/// Words of an answer as read out: whitespace-separated, `[n]` markers not counted.
pub fn answer_words(text: &str) -> usize {
    text.split_whitespace().filter(|w| !(w.starts_with('[') && w.trim_end_matches([',', '.', ';']).ends_with(']') && w[1..].starts_with(|c: char| c.is_ascii_digit()))).count()
}

/// Percentile (nearest-rank) of unsorted values.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Whether each answer sentence is supported by its cited passage. For the
/// extractive path this is a verbatim check (the sentence must occur in the
/// quoted passage); for composed answers the same after a connective the
/// compiled-in `answer` template lists ([`supported_sentences_with`] takes
/// the list); for generated answers it is the citation verifier's
/// judgement against the cited passage. Returns (supported, total).
pub fn supported_sentences(a: &Answer) -> (usize, usize) {
    let listed = crate::copilot::compose::connectives(&crate::copilot::DraftTemplates::builtin().answer).unwrap_or_default();
    supported_sentences_with(a, &listed)
}

/// [`supported_sentences`] with the connectives a composed answer may use
/// (the copilot's live `answer` template's).
pub fn supported_sentences_with(a: &Answer, connectives: &[String]) -> (usize, usize) {
    let re = marker_re();
    let mut ok = 0;
    let mut total = 0;
    let mut last = 0;
    for m in re.captures_iter(&a.answer) {
        let whole = m.get(0).map(|x| x.range()).unwrap_or(0..0);
        let sentence = a.answer[last..whole.start].trim();
        last = whole.end;
        if sentence.is_empty() {
            continue;
        }
        total += 1;
        let n: usize = m[1].parse().unwrap_or(0);
        let ok_here = |c: &crate::copilot::Citation| match a.mode {
            crate::copilot::Mode::Extractive => c.quote.contains(sentence),
            // A listed connective, then the approved sentence verbatim.
            crate::copilot::Mode::Composed => {
                c.quote.contains(sentence)
                    || connectives.iter().any(|k| sentence.strip_prefix(k.as_str()).and_then(|r| r.strip_prefix(' ')).is_some_and(|r| c.quote.contains(r)))
            }
            crate::copilot::Mode::Generated => {
                crate::guard::verify::judge(sentence, &c.quote, crate::index::Analyzer::shared()).is_none()
            }
        };
        if a.citations.iter().any(|c| c.n == n && ok_here(c)) {
            ok += 1;
        }
    }
    if !a.answer[last..].trim().is_empty() {
        total += 1; // trailing text without a marker is never supported
    }
    (ok, total)
}

fn marker_re() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\[(\d+)\]").expect("static regex"))
}

/// Runs a suite through the copilot.
pub fn run(copilot: &Copilot, suite: &Suite, role: &str, as_of: chrono::NaiveDate) -> Metrics {
    run_with(copilot, suite, role, as_of, &mut |_| {})
}

/// As [`run`], calling `progress` with the number of cases done (for a progress bar).
pub fn run_with(
    copilot: &Copilot,
    suite: &Suite,
    role: &str,
    as_of: chrono::NaiveDate,
    progress: &mut dyn FnMut(usize),
) -> Metrics {
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    let mut latencies = Vec::new();
    let mut words: Vec<f64> = Vec::new();
    let (mut routed_ok, mut evaluated, mut skipped) = (0usize, 0usize, 0usize);
    let (mut ans_cases, mut ans_hit) = (0usize, 0usize);
    let (mut cites, mut cites_ok) = (0usize, 0usize);
    let (mut sup, mut sup_total) = (0usize, 0usize);
    let (mut generated, mut extractive, mut composed) = (0usize, 0usize, 0usize);
    let listed = crate::copilot::compose::connectives(&copilot.drafts().answer).unwrap_or_default();
    let (mut stmt_cases, mut stmt_answered, mut stmt_hit) = (0usize, 0usize, 0usize);
    // Confusion counts: (tp, fp, fn) for AE reports and for AE mentions.
    let (mut ae_tp, mut ae_fp, mut ae_fn) = (0usize, 0usize, 0usize);
    let (mut m_tp, mut m_fp, mut m_fn) = (0usize, 0usize, 0usize);
    let mut classified = 0usize;
    // Safety counts (issue 9): escalations answered, reports refused, false alarms.
    let (mut esc_answered, mut reports_refused, mut answer_only, mut false_alarms) = (0usize, 0usize, 0usize, 0usize);
    for (done, case) in suite.cases.iter().enumerate() {
        progress(done);
        if case.task == "classify" {
            let (Some(g), Some(text)) = (copilot.guard(), case.text.as_deref()) else {
                skipped += 1;
                failures.push(Failure { id: case.id.clone(), why: "classify case needs the guard and a text".into() });
                continue;
            };
            classified += 1;
            let c = g.classify(text);
            let mut why = Vec::new();
            if let Some(exp) = case.expect.adverse_event {
                match (exp, c.adverse_event) {
                    (true, true) => ae_tp += 1,
                    (false, true) => ae_fp += 1,
                    (true, false) => ae_fn += 1,
                    _ => {}
                }
                if exp != c.adverse_event {
                    why.push(format!("adverse_event {}, expected {exp}", c.adverse_event));
                }
            }
            if let Some(exp) = case.expect.ae_mention {
                match (exp, c.ae_mention) {
                    (true, true) => m_tp += 1,
                    (false, true) => m_fp += 1,
                    (true, false) => m_fn += 1,
                    _ => {}
                }
                if exp != c.ae_mention {
                    why.push(format!("ae_mention {}, expected {exp}", c.ae_mention));
                }
            }
            if !why.is_empty() {
                failures.push(Failure { id: case.id.clone(), why: why.join("; ") });
            }
            continue;
        }
        if case.task == "email" {
            if let Some(f) = email_case(copilot, case, as_of, &mut latencies) {
                evaluated += 1;
                if f.is_empty() {
                    routed_ok += 1;
                } else {
                    failures.push(Failure { id: case.id.clone(), why: f });
                }
            } else {
                skipped += 1;
            }
            continue;
        }
        if case.task != "ask" {
            skipped += 1;
            failures.push(Failure { id: case.id.clone(), why: format!("task {:?} is not evaluated by this build", case.task) });
            continue;
        }
        let Some(question) = case.question.as_deref() else {
            failures.push(Failure { id: case.id.clone(), why: "ask case without a question".into() });
            continue;
        };
        evaluated += 1;
        let req = crate::copilot::Request {
            task: crate::copilot::Task::Ask { question: question.to_string() },
            product: case.product.clone(),
            role: role.to_string(),
            as_of,
            requester: crate::copilot::Requester::default(),
            generate: true,
        };
        let t = Instant::now();
        // No trace: the eval run is recorded as a whole (`recorded`).
        let answer = match copilot.run(&req, None, &mut |_| {}).map(crate::copilot::Outcome::into_answer) {
            Ok(Some(a)) => a,
            Ok(None) => {
                failures.push(Failure { id: case.id.clone(), why: "error: the copilot returned no answer".into() });
                continue;
            }
            Err(e) => {
                failures.push(Failure { id: case.id.clone(), why: format!("error: {e}") });
                continue;
            }
        };
        let ms = t.elapsed().as_secs_f64() * 1e3;
        latencies.push(ms);
        let route = answer.route.as_str();
        let expects_pv = case.expect.route.as_ref().is_some_and(|r| r.accepts("pharmacovigilance"));
        match (expects_pv, route == "pharmacovigilance") {
            (true, true) => ae_tp += 1,
            (false, true) => ae_fp += 1,
            (true, false) => ae_fn += 1,
            _ => {}
        }
        if let Some(r) = &case.expect.route {
            let escalation = (r.accepts("pharmacovigilance") || r.accepts("medical")) && !r.accepts("answer");
            if escalation && route == "answer" {
                esc_answered += 1;
            }
            if r.accepts("pharmacovigilance") && !r.accepts("refused") && route == "refused" {
                reports_refused += 1;
            }
            if r.accepts("answer") && !r.accepts("pharmacovigilance") && !r.accepts("medical") {
                answer_only += 1;
                if route == "pharmacovigilance" || route == "medical" {
                    false_alarms += 1;
                }
            }
        }
        let mut why = Vec::new();
        let route_ok = case.expect.route.as_ref().is_none_or(|r| r.accepts(route));
        if route_ok {
            routed_ok += 1;
        } else {
            why.push(format!("route {route}, expected {}", case.expect.route.as_ref().map_or("no route".into(), Routes::describe)));
        }
        let expected: Vec<String> = case.expect.sections.iter().chain(&case.expect.sections_all).cloned().collect();
        let cited: Vec<String> = answer.citations.iter().map(|c| c.label()).collect();
        let expects_answer = case.expect.route.as_ref().is_some_and(|r| r.accepts("answer")) && !expected.is_empty();
        if expects_answer {
            ans_cases += 1;
            let hit_any = cited.iter().any(|c| expected.iter().any(|e| same_section(c, e)));
            let hit_all = case.expect.sections_all.iter().all(|e| cited.iter().any(|c| same_section(c, e)));
            if hit_any && hit_all {
                ans_hit += 1;
            } else if route == "answer" {
                why.push(format!("cited {}, expected {}", labels(&cited, "and"), labels(&expected, "or")));
            }
            for c in &cited {
                cites += 1;
                if expected.iter().any(|e| same_section(c, e)) {
                    cites_ok += 1;
                }
            }
        }
        if !case.expect.phrases.is_empty() {
            stmt_cases += 1;
            if answer.route == crate::copilot::Route::Answer {
                stmt_answered += 1;
                let missing: Vec<&String> = case.expect.phrases.iter().filter(|p| !contains_phrase(&answer.answer, p)).collect();
                if missing.is_empty() {
                    stmt_hit += 1;
                } else {
                    why.push(format!("answer lacks the key phrase {}", labels(&missing.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>(), "and")));
                }
            }
        }
        if answer.route == crate::copilot::Route::Answer {
            words.push(answer_words(&answer.answer) as f64);
            let (s, t) = supported_sentences_with(&answer, &listed);
            sup += s;
            sup_total += t;
            match answer.mode {
                crate::copilot::Mode::Generated => generated += 1,
                crate::copilot::Mode::Extractive => extractive += 1,
                crate::copilot::Mode::Composed => composed += 1,
            }
        }
        let pass = why.is_empty();
        if !pass {
            failures.push(Failure { id: case.id.clone(), why: why.join("; ") });
        }
        outcomes.push(Outcome {
            id: case.id.clone(),
            question: question.to_string(),
            route: route.to_string(),
            cited,
            expected,
            answer: answer.answer.clone(),
            pass,
            latency_ms: ms,
        });
    }
    progress(suite.cases.len());
    let ratio = |a: usize, b: usize| if b == 0 { None } else { Some(a as f64 / b as f64) };
    Metrics {
        suite: suite.path.display().to_string(),
        cases: evaluated,
        skipped,
        route_accuracy: ratio(routed_ok, evaluated).unwrap_or(0.0),
        citation_recall: ratio(ans_hit, ans_cases),
        citation_precision: ratio(cites_ok, cites),
        supported_sentence_rate: ratio(sup, sup_total),
        statement_answered: ratio(stmt_answered, stmt_cases),
        statement_recall: ratio(stmt_hit, stmt_cases),
        answer_words_p50: (!words.is_empty()).then(|| percentile(&words, 50.0)),
        answer_words_p90: (!words.is_empty()).then(|| percentile(&words, 90.0)),
        generated,
        extractive,
        composed,
        ae_precision: ratio(ae_tp, ae_tp + ae_fp),
        ae_recall: ratio(ae_tp, ae_tp + ae_fn),
        ae_f1: f1(ae_tp, ae_fp, ae_fn),
        mention_precision: ratio(m_tp, m_tp + m_fp),
        mention_recall: ratio(m_tp, m_tp + m_fn),
        mention_f1: f1(m_tp, m_fp, m_fn),
        classified,
        escalations_answered: esc_answered,
        reports_refused,
        false_alarm_rate: ratio(false_alarms, answer_only),
        latency_ms_p50: percentile(&latencies, 50.0),
        latency_ms_p95: percentile(&latencies, 95.0),
        failures,
        outcomes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A composed answer's sentence is supported when, a listed connective
    /// stripped, it is verbatim in its cited passage; an unlisted one is not.
    #[test]
    fn composed_sentences_are_verbatim_after_a_listed_connective() {
        let a: Answer = serde_json::from_value(serde_json::json!({
            "route": "answer", "mode": "composed", "flags": [], "case_id": null, "prompt_version": "answer@1", "model": null,
            "audit_id": null, "timings_ms": {"guard": 0.0, "retrieve": 0.0, "generate": 0.0},
            "answer": "Take it with food. [1] Also, Monitor liver tests. [1] Importantly, Monitor liver tests. [1]",
            "citations": [{"n": 1, "doc_id": "x-pi", "section": "2.1", "title": "Dosage", "mlr_number": "M", "quote": "Take it with food. Monitor liver tests."}]
        }))
        .expect("answer");
        assert_eq!(supported_sentences_with(&a, &["Also,".to_string()]), (2, 3));
        assert_eq!(supported_sentences(&a), (2, 3), "the compiled-in template lists `Also,`");
    }

    #[test]
    fn sections_compare_loosely() {
        assert!(same_section("humira-pi §5.1", "HUMIRA-PI § 5.1"));
        assert!(same_section("haloperidol-pi §Tardive Dyskinesia", "haloperidol-pi §tardive-dyskinesia"));
        assert!(!same_section("humira-pi §5.1", "humira-pi §5.11"));
    }

    #[test]
    fn strict_suites_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.jsonl");
        let good = r#"{"id": "a", "task": "ask", "question": "q", "expect": {"route": "answer"}}"#;
        for (bad, want) in [
            (r#"{"id": "b", "task": "ask", "question": "q", "expect": {"route": "answer", "sectons": ["x §1"]}}"#, "sectons"),
            (r#"{"id": "b", "task": "asks", "question": "q", "expect": {}}"#, "unknown task \"asks\""),
            (r#"{"id": "b", "task": "ask", "question": "q", "expect": {"route": ["answer", "pv"]}}"#, "unknown route \"pv\""),
            (r#"{"id": "b", "task": "ask", "questoin": "q", "expect": {}}"#, "questoin"),
        ] {
            std::fs::write(&f, format!("{good}\n\n{bad}\n")).unwrap();
            let e = Suite::read(&f).unwrap_err().to_string();
            assert!(e.contains("s.jsonl:3:") && e.contains(want), "{e}");
        }
        std::fs::write(&f, "// nothing here\n\n").unwrap();
        assert!(matches!(Suite::read(&f), Err(Error::Empty { .. })));
    }

    #[test]
    fn routes_and_labels_read_as_words() {
        assert_eq!(Routes::One("answer".into()).describe(), "answer");
        assert_eq!(Routes::Any(vec!["answer".into(), "medical".into(), "refused".into()]).describe(), "answer, medical or refused");
        assert_eq!(labels(&[], "and"), "nothing");
        assert_eq!(labels(&["a §1".into(), "b §2".into()], "or"), "a §1 or b §2");
    }

    #[test]
    fn phrases_match_across_line_breaks_and_case() {
        assert!(contains_phrase("Do not exceed 20 mg\n daily [1].", "do not exceed 20 mg daily"));
        assert!(!contains_phrase("Do not exceed 40 mg daily [1].", "do not exceed 20 mg daily"));
        assert!(!contains_phrase("anything", "  "));
    }

    #[test]
    fn answer_words_skip_markers() {
        assert_eq!(answer_words("Monitor liver tests every 4 weeks [1]. Also, stop if ALT > 5x ULN [2]."), 13);
        assert_eq!(answer_words("See [see 5.2] [12]"), 3);
    }

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&[5.0, 1.0, 3.0, 2.0, 4.0], 50.0), 3.0);
        assert_eq!(percentile(&[1.0; 20].iter().chain(&[9.0]).cloned().collect::<Vec<_>>(), 95.0), 1.0);
    }
}
