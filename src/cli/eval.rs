//! `onlabel eval`: run a suite, keep the run as evidence, write the report.
//!
//! Every run is appended to the audit log (action `eval_run`: suite and its
//! SHA-256, model file and SHA-256, the prompt and guard versions in play,
//! the metrics) — that record's seq is the run's id in the report. When a
//! compliance officer or admin signs in (`--as USER` with `ONLABEL_TOKEN`),
//! the run is also recorded in the registry's `eval_runs` for every
//! registered artefact version in play — the prompt template whose content
//! hash is a registered version's, the guard rule files and lexicon by their
//! hashes — exactly as `prompts record-eval` records it, so an approval of
//! that version can rest on it. The eval always evaluates the files as they
//! are on disk (a candidate under review is evaluated before it is
//! approved); only `ask` insists on the live version.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use super::signin::{self, report};
use super::{outln, QueryArgs, EXIT_CHECK_FAILED, EXIT_OK};
use crate::audit::trace::{split_model, Actor};
use crate::audit::{Audit, Record};
use crate::prompts::{Kind, NewEvalRun, Registry, Thresholds, Version, VersionId};

/// Options of `onlabel eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub(super) q: QueryArgs,
    /// The suite (JSONL).
    #[arg(long)]
    suite: PathBuf,
    /// Write report.html (charts, failing cases), report.md and report.json here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Your user id: with ONLABEL_TOKEN set (compliance or admin) the run is
    /// also recorded as eval evidence for the registered versions in play.
    #[arg(long = "as", env = "ONLABEL_USER")]
    user: Option<String>,
    /// The repository root the registry's and the thresholds' paths are relative to.
    #[arg(long, default_value = ".", env = "ONLABEL_ROOT")]
    root: PathBuf,
    /// The eval thresholds a recorded run is judged against (relative to --root).
    #[arg(long, default_value = "evals/thresholds.toml", env = "ONLABEL_THRESHOLDS")]
    thresholds: PathBuf,
    #[command(flatten)]
    gates: Gates,
}

impl EvalArgs {
    /// The options of an eval the server runs: the server's query options,
    /// the suite, the report directory, and the signed-in user.
    pub fn for_server(q: QueryArgs, suite: PathBuf, report: PathBuf, root: PathBuf, thresholds: PathBuf, user: &str) -> EvalArgs {
        EvalArgs { q, suite, report: Some(report), user: Some(user.to_string()), root, thresholds, gates: Gates::default() }
    }
}

/// Minimums an eval must meet (each optional); `eval` exits 1 when one is not
/// met, so CI can gate on it. A metric that the suite cannot measure (n/a)
/// does not meet a minimum asked of it.
#[derive(Debug, Args, Clone, Default)]
pub struct Gates {
    /// Least acceptable route_accuracy (0–1).
    #[arg(long, value_name = "X", value_parser = share)]
    min_route_accuracy: Option<f64>,
    /// Least acceptable citation_recall (0–1).
    #[arg(long, value_name = "X", value_parser = share)]
    min_citation_recall: Option<f64>,
    /// Least acceptable citation_precision (0–1).
    #[arg(long, value_name = "X", value_parser = share)]
    min_citation_precision: Option<f64>,
    /// Least acceptable supported_sentence_rate (0–1).
    #[arg(long, value_name = "X", value_parser = share)]
    min_supported_sentence_rate: Option<f64>,
    /// Least acceptable ae_recall (0–1): share of reports routed to Pharmacovigilance.
    #[arg(long, value_name = "X", value_parser = share)]
    min_ae_recall: Option<f64>,
    /// Least acceptable ae_precision (0–1).
    #[arg(long, value_name = "X", value_parser = share)]
    min_ae_precision: Option<f64>,
    /// Least acceptable ae_f1 (0–1).
    #[arg(long, value_name = "X", value_parser = share)]
    min_ae_f1: Option<f64>,
    /// Least acceptable mention_recall (0–1).
    #[arg(long, value_name = "X", value_parser = share)]
    min_mention_recall: Option<f64>,
}

impl Gates {
    /// Each minimum given, with the metric's value: (metric, minimum, value).
    fn check(&self, m: &crate::eval::Metrics) -> Vec<(&'static str, f64, Option<f64>)> {
        [
            ("route_accuracy", self.min_route_accuracy, Some(m.route_accuracy)),
            ("citation_recall", self.min_citation_recall, m.citation_recall),
            ("citation_precision", self.min_citation_precision, m.citation_precision),
            ("supported_sentence_rate", self.min_supported_sentence_rate, m.supported_sentence_rate),
            ("ae_recall", self.min_ae_recall, m.ae_recall),
            ("ae_precision", self.min_ae_precision, m.ae_precision),
            ("ae_f1", self.min_ae_f1, m.ae_f1),
            ("mention_recall", self.min_mention_recall, m.mention_recall),
        ]
        .into_iter()
        .filter_map(|(k, min, v)| min.map(|min| (k, min, v)))
        .collect()
    }
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?} is not a share between 0 and 1 (e.g. 0.9)")),
    }
}

/// Runs `onlabel eval`; returns the exit code.
pub fn run(a: &EvalArgs, json: bool, data: &Path) -> anyhow::Result<i32> {
    let audit = match Audit::open(data) {
        Ok(x) => x,
        Err(e) => return Ok(report(&e.into(), json, data)),
    };
    let user = match signin::optional_sign_in(audit.store(), a.user.as_deref(), "eval") {
        Ok(u) => u,
        Err(e) => return Ok(report(&e.into(), json, data)),
    };
    let e = execute(a, user, &audit)?;
    print(a, json, e)
}

/// What one eval run produced: its JSON document (`eval --json`) and what the
/// text output shows.
pub struct Evaluated {
    /// The metrics with audit id, eval runs, provenance and thresholds.
    pub json: Value,
    /// The metrics.
    pub metrics: crate::eval::Metrics,
    /// Eval-run evidence recorded in the registry.
    pub recorded: Vec<Value>,
    /// `--min-…` gates not met, as sentences.
    pub unmet: Vec<String>,
    /// Notes for the operator (evidence not recorded, and why).
    pub notes: Vec<String>,
    /// The audit record of the run.
    pub audit_id: i64,
    /// Number of gates given.
    pub gates: usize,
    /// The exit code.
    pub code: i32,
}

/// Runs the suite of `a` as `user` (or unauthenticated), records it in the
/// audit log and, for a signed-in compliance user or admin, as eval evidence
/// in the registry; writes the HTML report when asked. The server's
/// `POST /api/v1/evals` runs this too.
pub fn execute(a: &EvalArgs, user: Option<crate::users::User>, audit: &Audit) -> anyhow::Result<Evaluated> {
    let actor = user.as_ref().map(Actor::signed_in).unwrap_or_else(|| Actor::unauthenticated(&a.q.role, a.user.as_deref()));

    // Escalations during an eval open cases in a throwaway store, never in the real queue.
    let scratch = super::tempfile_dir()?;
    let copilot = super::copilot(&a.q, Some(scratch.as_path()))?;

    // The suite's own reader first: its errors carry the stable code `suite_invalid`.
    let suite = crate::eval::Suite::read(&a.suite)?;
    let suite_bytes = std::fs::read(&a.suite).with_context(|| format!("cannot read suite {}", a.suite.display()))?;
    let as_of = a.q.as_of.unwrap_or_else(super::today);
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let b = indicatif::ProgressBar::new(suite.cases.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("eval {bar:40} {pos}/{len} cases {elapsed} (eta {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let m = crate::eval::run_with(&copilot, &suite, &a.q.role, as_of, &mut |i| {
        if let Some(b) = &bar {
            b.set_position(i as u64);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let gates = a.gates.check(&m);
    let unmet: Vec<String> = gates
        .iter()
        .filter(|(_, min, v)| v.is_none_or(|v| v < *min))
        .map(|(k, min, v)| match v {
            Some(v) => format!("{k} {v:.3} is below the minimum {min:.3}"),
            None => format!("{k} is n/a on this suite (no case measures it), so the minimum {min:.3} is not met"),
        })
        .collect();
    let code = if unmet.is_empty() { EXIT_OK } else { EXIT_CHECK_FAILED };

    let suite_sha = crate::prompts::sha256_hex(&suite_bytes);
    let (model, model_sha) = match copilot.grounded() {
        Some(g) => {
            let (f, s) = split_model(g.model.id());
            (Some(f), s)
        }
        None => (None, None),
    };
    let reg = Registry::new(audit.store(), &a.root);
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
        .filter(|v| match v.kind {
            Kind::Prompt => prompt.as_ref().is_some_and(|(_, sha, _)| *sha == v.sha256 && copilot.grounded().is_some_and(|g| g.prompt.name == v.name)),
            Kind::Rules | Kind::Lexicon => hashes.iter().any(|h| h.len() >= 16 && v.sha256.starts_with(h)),
        })
        .collect();
    let mut metrics = serde_json::to_value(&m)?;
    if let Some(o) = metrics.as_object_mut() {
        o.remove("outcomes");
    }
    let versions = json!({
        "prompt": prompt.as_ref().map(|p| p.0.clone()).unwrap_or_else(|| "none (extractive)".into()),
        "prompt_sha256": prompt.as_ref().map(|p| p.1.clone()),
        "prompt_state": prompt.as_ref().map(|p| p.2),
        "rules": rules,
        "registered_in_play": in_play.iter().map(|v| format!("{} ({})", v.id(), v.state)).collect::<Vec<_>>(),
        "index": a.q.index()?.display().to_string(),
        "role": a.q.role,
        "as_of": as_of.to_string(),
        "retrieval": format!("{:?}", copilot.retrieval()).to_lowercase(),
    });

    let mut rec = Record::new(&actor.id, &actor.role, "eval_run");
    rec.input = Some(a.suite.display().to_string());
    rec.prompt_version = prompt.as_ref().map(|p| p.0.clone());
    rec.prompt_sha256 = prompt.as_ref().map(|p| p.1.clone());
    rec.model = model.clone();
    rec.model_sha256 = model_sha.clone();
    rec.detail = json!({
        "suite": a.suite, "suite_sha256": suite_sha, "versions": versions, "metrics": metrics,
        "report": a.report, "authenticated": actor.authenticated, "claimed_user": actor.claimed,
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
            let tpath = if a.thresholds.is_absolute() { a.thresholds.clone() } else { a.root.join(&a.thresholds) };
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
                            suite_path: a.suite.clone(),
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
        "suite": {"path": a.suite.display().to_string(), "sha256": suite_sha},
        "model": {"file": model, "sha256": model_sha},
        "versions": versions,
        "eval_runs": recorded,
        "run_by": {"actor": actor.id, "role": actor.role, "authenticated": actor.authenticated},
    });
    if let Some(dir) = &a.report {
        let r = crate::eval::report::Report { metrics: &m, suite: Some(&suite), provenance: &provenance };
        crate::eval::report::write(&r, dir).with_context(|| format!("writing report to {}", dir.display()))?;
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
    Ok(Evaluated { json: metrics, metrics: m, recorded, unmet, notes, audit_id, gates: gates.len(), code })
}

/// Prints an [`Evaluated`] run as `eval` does; returns its exit code.
fn print(a: &EvalArgs, json: bool, e: Evaluated) -> anyhow::Result<i32> {
    let Evaluated { json: metrics, metrics: m, recorded, unmet, notes, audit_id, gates, code } = e;
    for n in &notes {
        eprintln!("note: {n}");
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&metrics)?);
        for u in &unmet {
            eprintln!("threshold not met: {u}");
        }
        return Ok(code);
    }
    let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into());
    outln!(
        "{}: {} cases, route_accuracy {:.3}, ae_recall {}, escalations answered {}, reports refused {}, false alarms {}, citation_recall {}, citation_precision {}, supported {}, p50 {:.2} ms, p95 {:.2} ms, {} failures",
        m.suite,
        m.cases,
        m.route_accuracy,
        f(m.ae_recall),
        m.escalations_answered,
        m.reports_refused,
        f(m.false_alarm_rate),
        f(m.citation_recall),
        f(m.citation_precision),
        f(m.supported_sentence_rate),
        m.latency_ms_p50,
        m.latency_ms_p95,
        m.failures.len()
    );
    for fl in &m.failures {
        outln!("  {}: {}", fl.id, fl.why);
    }
    outln!("recorded as audit record {audit_id}");
    for r in &recorded {
        outln!(
            "recorded eval run {} of {} ({})",
            r["eval_run"],
            r["version"].as_str().unwrap_or(""),
            if r["passed"] == true { "PASSED" } else { "BELOW THRESHOLDS" }
        );
    }
    if let Some(dir) = &a.report {
        outln!("report: {}", dir.join("report.html").display());
    }
    for u in &unmet {
        outln!("threshold not met: {u}");
    }
    if gates > 0 && unmet.is_empty() {
        outln!("all {gates} thresholds met");
    }
    Ok(code)
}
