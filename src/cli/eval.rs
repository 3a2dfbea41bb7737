//! `onlabel eval`: run a suite, keep the run as evidence, write the report.
//!
//! The run itself — the audit record `eval_run`, the registry's eval
//! evidence for a signed-in compliance user or admin, the report — is
//! [`crate::eval::recorded`]; this file parses the options, builds the
//! copilot the suite runs through (with a throwaway case store), draws the
//! progress bar and prints the result. `onlabel serve` runs evals the same
//! way ([`evaluate`]).

use std::path::PathBuf;

use clap::Args;

use super::signin::{self, report};
use super::{outln, QueryArgs, EXIT_CHECK_FAILED, EXIT_OK};
use crate::audit::Audit;
use crate::eval::recorded::{Evaluated, Minimums, Options};

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
    /// The library options of this run.
    fn options(&self) -> anyhow::Result<Options> {
        Ok(Options {
            suite: self.suite.clone(),
            report: self.report.clone(),
            claimed_user: self.user.clone(),
            root: self.root.clone(),
            thresholds: self.thresholds.clone(),
            role: self.q.role.clone(),
            index: self.q.index()?.to_path_buf(),
            as_of: self.q.as_of.unwrap_or_else(super::today),
            minimums: self.gates.minimums(),
            candidate: None,
            review: Vec::new(),
        })
    }
}

/// The options of an eval the server runs: the server's query options, the
/// task (suite, report directory, signed-in user, candidate version, review
/// questions), the registry root and thresholds.
pub(super) fn server_options(q: &QueryArgs, task: &crate::server::EvalTask, root: PathBuf, thresholds: PathBuf) -> anyhow::Result<Options> {
    let args = EvalArgs {
        q: q.clone(),
        suite: task.suite.clone(),
        report: Some(task.report.clone()),
        user: Some(task.user.id.clone()),
        root,
        thresholds,
        gates: Gates::default(),
    };
    let mut o = args.options()?;
    o.candidate = task.candidate.clone();
    o.review = task.review.clone();
    Ok(o)
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
    /// The minimums given, for the library's run.
    fn minimums(&self) -> Minimums {
        Minimums {
            route_accuracy: self.min_route_accuracy,
            citation_recall: self.min_citation_recall,
            citation_precision: self.min_citation_precision,
            supported_sentence_rate: self.min_supported_sentence_rate,
            ae_recall: self.min_ae_recall,
            ae_precision: self.min_ae_precision,
            ae_f1: self.min_ae_f1,
            mention_recall: self.min_mention_recall,
        }
    }
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?} is not a share between 0 and 1 (e.g. 0.9)")),
    }
}

/// Runs `onlabel eval`; returns the exit code.
pub fn run(a: &EvalArgs, json: bool, db: &crate::store::Database) -> anyhow::Result<i32> {
    let audit = match Audit::connect(db) {
        Ok(x) => x,
        Err(e) => return Ok(report(&e.into(), json, db)),
    };
    let user = match signin::optional_sign_in(audit.store(), a.user.as_deref(), "eval") {
        Ok(u) => u,
        Err(e) => return Ok(report(&e.into(), json, db)),
    };
    let e = evaluate(&a.q, &a.options()?, user, &audit, &mut |_, _| {})?;
    print(a, json, e)
}

/// Runs one recorded eval ([`crate::eval::recorded::execute`]) through the
/// copilot `q` builds, its escalations opening cases in a throwaway store
/// (never the real queue); a progress bar on a terminal, and `progress`
/// told (cases done, cases in the suite). `eval` and the server's `POST
/// /api/v1/evals` and evidence requests run this (a candidate version in
/// `opts` is put in play by [`crate::eval::recorded::execute_candidate`]).
pub(super) fn evaluate(
    q: &QueryArgs,
    opts: &Options,
    user: Option<crate::users::User>,
    audit: &Audit,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<Evaluated> {
    let scratch = super::tempfile_dir()?;
    let cases_db = crate::store::Database::Sqlite(scratch.join(crate::store::FILE_NAME));
    let copilot = super::copilot(q, Some(&cases_db))?;
    let mut bar: Option<indicatif::ProgressBar> = None;
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let candidate_dir = scratch.join("candidate");
    let e = crate::eval::recorded::execute_candidate(opts, copilot, &candidate_dir, user, audit, &mut |i, total| {
        progress(i, total);
        if !on_terminal {
            return;
        }
        let b = bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("eval {bar:40} {pos}/{len} cases {elapsed} (eta {eta})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        b.set_position(i as u64);
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(e?)
}

/// Prints an [`Evaluated`] run as `eval` does; returns its exit code.
fn print(a: &EvalArgs, json: bool, e: Evaluated) -> anyhow::Result<i32> {
    let code = if e.passed() { EXIT_OK } else { EXIT_CHECK_FAILED };
    let Evaluated { json: metrics, metrics: m, recorded, unmet, notes, audit_id, gates } = e;
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
