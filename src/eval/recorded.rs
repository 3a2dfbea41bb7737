//! [`execute`]: an eval run kept as evidence — what `onlabel eval` and the
//! server's `POST /api/v1/evals` run.
//!
//! Every run is appended to the audit log (action `eval_run`: suite and its
//! SHA-256, model file and SHA-256, the prompt and guard versions in play,
//! the metrics) — that record's seq is the run's id in the report. When a
//! compliance officer or admin runs it signed in, the run is also recorded
//! in the registry's `eval_runs` for every registered artefact version in
//! play — the prompt template whose content hash is a registered version's,
//! the guard rule files and lexicon by their hashes — exactly as `prompts
//! record-eval` records it, so an approval of that version can rest on it.
//! The eval always evaluates the files as they are on disk (a candidate
//! under review is evaluated before it is approved); only `ask` insists on
//! the live version.

use std::path::PathBuf;

use chrono::NaiveDate;
use serde_json::{json, Value};

use super::{Error, Metrics, Suite};
use crate::copilot::trace::{split_model, Actor};
use crate::audit::{Audit, Record};
use crate::copilot::Copilot;
use crate::prompts::{Kind, NewEvalRun, Registry, Thresholds, Version, VersionId};
use crate::users::User;

/// What one recorded run evaluates, and where its evidence goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The suite (JSONL).
    pub suite: PathBuf,
    /// Write report.html, report.md and report.json here.
    pub report: Option<PathBuf>,
    /// The user named without signing in (recorded as a claim).
    pub claimed_user: Option<String>,
    /// The repository root the registry's and the thresholds' paths are relative to.
    pub root: PathBuf,
    /// The eval thresholds a recorded run is judged against (relative to `root` unless absolute).
    pub thresholds: PathBuf,
    /// The role the suite is asked as.
    pub role: String,
    /// The index evaluated (recorded in the provenance).
    pub index: PathBuf,
    /// The day the questions are asked on.
    pub as_of: NaiveDate,
    /// Minimums the run must meet.
    pub minimums: Minimums,
    /// The registered version under evaluation (its stored content in play,
    /// see [`with_candidate`]): the run is recorded as evidence for it alone.
    pub candidate: Option<VersionId>,
    /// Questions answered before and after the candidate is put in play, for
    /// the reviewer's side-by-side view ([`answer_review`]).
    pub review: Vec<ReviewQuestion>,
}

/// One fixed question of the review page (`evals/review-questions.jsonl`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuestion {
    /// The question as a rep would type it.
    pub question: String,
    /// The product it is about.
    #[serde(default)]
    pub product: Option<String>,
}

/// Most review questions read from a file (the review page answers each one
/// twice, so the list stays short).
pub const MAX_REVIEW_QUESTIONS: usize = 5;

/// Reads a review-question file: one JSON object a line, blank lines and `//`
/// comments skipped, at most [`MAX_REVIEW_QUESTIONS`] (the rest ignored).
pub fn read_review_questions(path: &std::path::Path) -> crate::Result<Vec<ReviewQuestion>> {
    let bytes = crate::input::read_limited(path, super::MAX_SUITE_BYTES).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    let text = String::from_utf8_lossy(&bytes);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with("//") {
            continue;
        }
        let q: ReviewQuestion = serde_json::from_str(l)
            .map_err(|e| Error::BadCase { path: path.to_owned(), line: i + 1, message: e.to_string() })?;
        out.push(q);
        if out.len() == MAX_REVIEW_QUESTIONS {
            break;
        }
    }
    Ok(out)
}

/// Answers each review question with `copilot` (no trace: the run is
/// recorded as a whole): route, mode, answer text and citation labels.
pub fn answer_review(copilot: &Copilot, questions: &[ReviewQuestion], role: &str, as_of: NaiveDate) -> Vec<Value> {
    let prompt = copilot.grounded().map(|g| g.prompt.id());
    questions
        .iter()
        .map(|q| {
            let req = crate::copilot::Request {
                task: crate::copilot::Task::Ask { question: q.question.clone() },
                product: q.product.clone(),
                role: role.to_string(),
                as_of,
                requester: crate::copilot::Requester::default(),
                generate: true,
            };
            match copilot.run(&req, None, &mut |_| {}).map(crate::copilot::Outcome::into_answer) {
                Ok(Some(a)) => json!({
                    "question": q.question, "product": q.product, "route": a.route, "mode": a.mode, "answer": a.answer,
                    "citations": a.citations.iter().map(|c| c.label()).collect::<Vec<_>>(), "prompt": prompt,
                }),
                Ok(None) => json!({"question": q.question, "product": q.product, "error": "the copilot returned no answer"}),
                Err(e) => json!({"question": q.question, "product": q.product, "error": e.to_string()}),
            }
        })
        .collect()
}

/// Puts the stored content of `v` in play in `copilot`: a prompt becomes the
/// generator's template (only when a model is loaded — without one nothing
/// reads a prompt, and the returned note says so); a rule file or lexicon
/// becomes the guard's, with the other guard files read from `root` (the
/// version's content is written to `scratch` first).
pub fn with_candidate(mut copilot: Copilot, v: &Version, root: &std::path::Path, scratch: &std::path::Path, as_of: NaiveDate) -> crate::Result<(Copilot, Option<String>)> {
    match v.kind {
        Kind::Prompt => match copilot.grounded_mut() {
            Some(g) => {
                let version = u32::try_from(v.version).unwrap_or(u32::MAX);
                g.prompt = crate::prompts::PromptFile { name: v.name.clone(), version, source: v.content.clone() };
                Ok((copilot, None))
            }
            None => Ok((
                copilot,
                Some(format!(
                    "this server runs without a model: only the model reads a prompt, so this run did not exercise {} and is not evidence for it (the answers are the extractive ones both versions give)",
                    v.id()
                )),
            )),
        },
        Kind::Rules | Kind::Lexicon => {
            std::fs::create_dir_all(scratch).map_err(|source| Error::Io { path: scratch.to_owned(), source })?;
            let ext = if v.kind == Kind::Rules { "toml" } else { "txt" };
            let file = scratch.join(format!("{}.{ext}", v.name));
            std::fs::write(&file, &v.content).map_err(|source| Error::Io { path: file.clone(), source })?;
            let is_elements = v.kind == Kind::Rules && v.name == "report-elements";
            let rules = if v.kind == Kind::Rules && !is_elements { file.clone() } else { root.join(crate::guard::RULES_FILE) };
            let elements = if is_elements { file.clone() } else { root.join(crate::guard::ELEMENTS_FILE) };
            let lexicon = if v.kind == Kind::Lexicon { file.clone() } else { root.join("lexicon/ae_terms.txt") };
            let guard = crate::guard::Guard::from_files(&rules, &elements, &lexicon)?;
            Ok((copilot.with_guard(std::sync::Arc::new(guard), as_of)?, None))
        }
    }
}

/// Runs [`execute`] on a candidate version: answers the review questions with
/// `copilot` as built (the served prompt and guard), puts the candidate's
/// stored content in play ([`with_candidate`]), answers them again, runs the
/// suite and records the run as evidence for the candidate only. The JSON
/// document carries `review` (`{model, questions: [{question, served,
/// candidate}]}`) and `notes`.
pub fn execute_candidate(
    opts: &Options,
    copilot: Copilot,
    scratch: &std::path::Path,
    user: Option<User>,
    audit: &Audit,
    progress: &mut dyn FnMut(usize, usize),
) -> crate::Result<Evaluated> {
    let served = answer_review(&copilot, &opts.review, &opts.role, opts.as_of);
    let served_prompt = copilot.grounded().map(|g| g.prompt.id());
    let has_model = copilot.grounded().is_some();
    let (copilot, note) = match &opts.candidate {
        Some(id) => {
            let v = Registry::new(audit.store(), &opts.root).get(id)?;
            with_candidate(copilot, &v, &opts.root, scratch, opts.as_of)?
        }
        None => (copilot, None),
    };
    let candidate = answer_review(&copilot, &opts.review, &opts.role, opts.as_of);
    let mut e = execute(opts, &copilot, user, audit, progress)?;
    if let Some(n) = note {
        e.notes.insert(0, n);
    }
    let questions: Vec<Value> =
        served.into_iter().zip(candidate).map(|(s, c)| json!({"question": s["question"], "product": s["product"], "served": s, "candidate": c})).collect();
    if let Some(o) = e.json.as_object_mut() {
        o.insert("review".into(), json!({"model": has_model, "served_prompt": served_prompt, "questions": questions}));
        o.insert("notes".into(), Value::from(e.notes.clone()));
    }
    Ok(e)
}

/// Minimums a run must meet (each optional). A metric the suite cannot
/// measure (n/a) does not meet a minimum asked of it.
#[derive(Debug, Clone, Default)]
pub struct Minimums {
    /// Least acceptable route_accuracy (0–1).
    pub route_accuracy: Option<f64>,
    /// Least acceptable citation_recall (0–1).
    pub citation_recall: Option<f64>,
    /// Least acceptable citation_precision (0–1).
    pub citation_precision: Option<f64>,
    /// Least acceptable supported_sentence_rate (0–1).
    pub supported_sentence_rate: Option<f64>,
    /// Least acceptable ae_recall (0–1).
    pub ae_recall: Option<f64>,
    /// Least acceptable ae_precision (0–1).
    pub ae_precision: Option<f64>,
    /// Least acceptable ae_f1 (0–1).
    pub ae_f1: Option<f64>,
    /// Least acceptable mention_recall (0–1).
    pub mention_recall: Option<f64>,
}

impl Minimums {
    /// Each minimum given, with the metric's value: (metric, minimum, value).
    pub fn check(&self, m: &Metrics) -> Vec<(&'static str, f64, Option<f64>)> {
        [
            ("route_accuracy", self.route_accuracy, Some(m.route_accuracy)),
            ("citation_recall", self.citation_recall, m.citation_recall),
            ("citation_precision", self.citation_precision, m.citation_precision),
            ("supported_sentence_rate", self.supported_sentence_rate, m.supported_sentence_rate),
            ("ae_recall", self.ae_recall, m.ae_recall),
            ("ae_precision", self.ae_precision, m.ae_precision),
            ("ae_f1", self.ae_f1, m.ae_f1),
            ("mention_recall", self.mention_recall, m.mention_recall),
        ]
        .into_iter()
        .filter_map(|(k, min, v)| min.map(|min| (k, min, v)))
        .collect()
    }
}

/// What one recorded run produced: its JSON document (`eval --json`) and
/// what the text output shows.
#[derive(Debug)]
pub struct Evaluated {
    /// The metrics with audit id, eval runs, provenance and thresholds.
    pub json: Value,
    /// The metrics.
    pub metrics: Metrics,
    /// Eval-run evidence recorded in the registry.
    pub recorded: Vec<Value>,
    /// Minimums not met, as sentences.
    pub unmet: Vec<String>,
    /// Notes for the operator (evidence not recorded, and why).
    pub notes: Vec<String>,
    /// The audit record of the run.
    pub audit_id: i64,
    /// Number of minimums given.
    pub gates: usize,
}

impl Evaluated {
    /// Every minimum given was met.
    pub fn passed(&self) -> bool {
        self.unmet.is_empty()
    }
}

/// Runs the suite of `opts` through `copilot` as `user` (or unauthenticated),
/// records it in the audit log and, for a signed-in compliance user or admin,
/// as eval evidence in the registry; writes the HTML report when asked.
/// `progress` sees (cases done, cases in the suite).
///
/// `copilot` should open its cases in a throwaway store: escalations during
/// an eval never belong in the real queue.
pub fn execute(
    opts: &Options,
    copilot: &Copilot,
    user: Option<User>,
    audit: &Audit,
    progress: &mut dyn FnMut(usize, usize),
) -> crate::Result<Evaluated> {
    let actor = user.as_ref().map(Actor::signed_in).unwrap_or_else(|| Actor::unauthenticated(&opts.role, opts.claimed_user.as_deref()));

    // The suite's own reader first: its errors carry the stable code `suite_invalid`.
    let suite = Suite::read(&opts.suite)?;
    let suite_bytes = crate::input::read_limited(&opts.suite, super::MAX_SUITE_BYTES).map_err(|source| Error::Io { path: opts.suite.clone(), source })?;
    let total = suite.cases.len();
    let m = super::run_with(copilot, &suite, &opts.role, opts.as_of, &mut |i| progress(i, total));
    let gates = opts.minimums.check(&m);
    let unmet: Vec<String> = gates
        .iter()
        .filter(|(_, min, v)| v.is_none_or(|v| v < *min))
        .map(|(k, min, v)| match v {
            Some(v) => format!("{k} {v:.3} is below the minimum {min:.3}"),
            None => format!("{k} is n/a on this suite (no case measures it), so the minimum {min:.3} is not met"),
        })
        .collect();

    let suite_sha = crate::prompts::sha256_hex(&suite_bytes);
    let (model, model_sha) = match copilot.grounded() {
        Some(g) => {
            let (f, s) = split_model(&g.model.id());
            (Some(f), s)
        }
        None => (None, None),
    };
    let reg = Registry::new(audit.store(), &opts.root);
    let registered = reg.versions(None)?;
    // The prompt in play (only when the model runs) and the guard's files, by content hash.
    let prompt = copilot.grounded().map(|g| {
        let sha = crate::prompts::sha256_hex(g.prompt.source.as_bytes());
        let known = registered.iter().find(|v| v.kind == Kind::Prompt && v.name == g.prompt.name && v.sha256 == sha);
        let id = known.map(|v| v.id()).unwrap_or_else(|| g.prompt.id());
        (id, sha, known.map(|v| v.state.as_str()).unwrap_or("unregistered"))
    });
    let rules = copilot.guard().map(|g| g.rules_version().to_string());
    let hashes: Vec<&str> =
        rules.as_deref().map(|r| r.split_whitespace().filter_map(|t| t.strip_prefix("sha256:")).collect()).unwrap_or_default();
    let in_play: Vec<&Version> = registered
        .iter()
        // A candidate run is evidence for the candidate alone.
        .filter(|v| opts.candidate.as_ref().is_none_or(|c| c.name == v.name && c.version == v.version))
        .filter(|v| match v.kind {
            Kind::Prompt => prompt.as_ref().is_some_and(|(_, sha, _)| *sha == v.sha256 && copilot.grounded().is_some_and(|g| g.prompt.name == v.name)),
            Kind::Rules | Kind::Lexicon => hashes.iter().any(|h| h.len() >= 16 && v.sha256.starts_with(h)),
        })
        .collect();
    let mut metrics = serde_json::to_value(&m).map_err(Error::Metrics)?;
    if let Some(o) = metrics.as_object_mut() {
        o.remove("outcomes");
    }
    let versions = json!({
        "prompt": prompt.as_ref().map(|p| p.0.clone()).unwrap_or_else(|| "none (extractive)".into()),
        "prompt_sha256": prompt.as_ref().map(|p| p.1.clone()),
        "prompt_state": prompt.as_ref().map(|p| p.2),
        "rules": rules,
        "registered_in_play": in_play.iter().map(|v| format!("{} ({})", v.id(), v.state)).collect::<Vec<_>>(),
        "index": opts.index.display().to_string(),
        "role": opts.role,
        "as_of": opts.as_of.to_string(),
        "retrieval": format!("{:?}", copilot.retrieval()).to_lowercase(),
    });

    let mut rec = Record::new(&actor.id, &actor.role, "eval_run");
    rec.input = Some(opts.suite.display().to_string());
    rec.prompt_version = prompt.as_ref().map(|p| p.0.clone());
    rec.prompt_sha256 = prompt.as_ref().map(|p| p.1.clone());
    rec.model = model.clone();
    rec.model_sha256 = model_sha.clone();
    rec.detail = json!({
        "suite": opts.suite, "suite_sha256": suite_sha, "versions": versions, "metrics": metrics,
        "report": opts.report, "authenticated": actor.authenticated, "claimed_user": actor.claimed,
    });
    let audit_id = audit.append(&rec)?;

    // Evidence for the registry: one eval_runs row per registered version in play.
    let mut recorded = Vec::new();
    let mut notes = Vec::new();
    match (&user, in_play.is_empty()) {
        (_, true) => {}
        (None, false) => notes.push(format!(
            "not recorded as eval evidence for {}: sign in as compliance or admin (--as USER with ONLABEL_TOKEN)",
            in_play.iter().map(|v| v.id()).collect::<Vec<_>>().join(", ")
        )),
        (Some(u), false) => {
            let tpath = if opts.thresholds.is_absolute() { opts.thresholds.clone() } else { opts.root.join(&opts.thresholds) };
            match Thresholds::read(&tpath) {
                Err(e) => notes.push(format!("not recorded as eval evidence: {e}")),
                Ok(t) => {
                    for v in &in_play {
                        let id = VersionId { name: v.name.clone(), version: v.version };
                        let mut vs = versions.clone();
                        vs["evaluated"] = v.id().into();
                        vs["evaluated_sha256"] = v.sha256.clone().into();
                        vs["audit_id"] = audit_id.into();
                        let run = NewEvalRun {
                            suite_path: opts.suite.clone(),
                            suite_sha256: suite_sha.clone(),
                            model: model.clone(),
                            model_sha256: model_sha.clone(),
                            versions: vs,
                            metrics: metrics.clone(),
                        };
                        match reg.record_eval(&id, &run, u, &t) {
                            Ok(r) => recorded.push(json!({"eval_run": r.id, "version": v.id(), "passed": r.passed})),
                            Err(e) => notes.push(format!("not recorded as eval evidence for {}: {e}", v.id())),
                        }
                    }
                }
            }
        }
    }

    let provenance = json!({
        "audit_id": audit_id,
        "suite": {"path": opts.suite.display().to_string(), "sha256": suite_sha},
        "model": {"file": model, "sha256": model_sha},
        "versions": versions,
        "eval_runs": recorded,
        "run_by": {"actor": actor.id, "role": actor.role, "authenticated": actor.authenticated},
    });
    if let Some(dir) = &opts.report {
        let r = super::report::Report { metrics: &m, suite: Some(&suite), provenance: &provenance };
        super::report::write(&r, dir)?;
    }
    if let Some(o) = metrics.as_object_mut() {
        o.insert("audit_id".into(), audit_id.into());
        o.insert("eval_runs".into(), Value::from(recorded.clone()));
        o.insert("provenance".into(), provenance);
        if !gates.is_empty() {
            let t: Vec<Value> =
                gates.iter().map(|(k, min, v)| json!({"metric": k, "min": min, "value": v, "met": v.is_some_and(|v| v >= *min)})).collect();
            o.insert("thresholds".into(), t.into());
            o.insert("passed".into(), unmet.is_empty().into());
        }
    }
    Ok(Evaluated { json: metrics, metrics: m, recorded, unmet, notes, audit_id, gates: gates.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_minimums_given_are_checked_and_n_a_is_kept() {
        let m: Metrics = serde_json::from_value(json!({
            "suite": "s.jsonl", "cases": 5, "skipped": 0, "classified": 5, "route_accuracy": 0.8,
            "citation_recall": null, "citation_precision": 0.7, "supported_sentence_rate": null,
            "generated": 0, "extractive": 5, "ae_precision": null, "ae_recall": null, "ae_f1": null,
            "mention_precision": null, "mention_recall": null, "mention_f1": null,
            "latency_ms_p50": 2.0, "latency_ms_p95": 9.0, "failures": []
        }))
        .unwrap();
        let mins = Minimums { route_accuracy: Some(0.9), citation_recall: Some(0.5), ..Default::default() };
        let c = mins.check(&m);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], ("route_accuracy", 0.9, Some(0.8)));
        assert_eq!(c[1], ("citation_recall", 0.5, None));
    }
}
