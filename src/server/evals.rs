//! Eval runs: start one (compliance), follow its progress, read its result
//! and HTML report, list the suites (`/api/v1/evals…`). The run itself is
//! [`crate::eval::recorded`], handed in by `onlabel serve` as the
//! [`super::EvalRunner`]; an MLR reviewer's evidence request for one version
//! (`POST /api/v1/prompts/{id}/evidence`, in `prompts.rs`) starts the same
//! kind of job with the version's stored content in play.
//!
//! Jobs are rows of `eval_jobs` (migration 0010): a run id answers after a
//! restart, and a run the server was stopped in the middle of reads `failed`
//! with why ([`AppState::new`](super::AppState::new) marks them).

use std::path::{Path, PathBuf};

use axum::extract::State as AxState;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::{Auth, COMPLIANCE, EVIDENCE};
use super::prompts::under_root;
use super::{json, ApiError, Body, State, UrlPath};
use crate::eval::recorded::ReviewQuestion;
use crate::prompts::{Kind, Thresholds, VersionId};
use crate::store::Store;
use crate::users::User;

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/evals", post(start_eval))
        .route("/api/v1/evals/suites", get(list_suites))
        .route("/api/v1/evals/{id}", get(show_eval))
        .route("/api/v1/evals/{id}/report", get(eval_report))
}

/// What the server hands the [`super::EvalRunner`] for one run.
pub struct EvalTask {
    /// The suite, under the repository root (already checked: under `evals/`, not sealed).
    pub suite: PathBuf,
    /// Where report.html, report.md and report.json go.
    pub report: PathBuf,
    /// Who asked (recorded as the run's actor and the evidence's recorder).
    pub user: User,
    /// The registered version whose stored content the run evaluates (an
    /// evidence request), or none (compliance's run of the files as served).
    pub candidate: Option<VersionId>,
    /// The review page's fixed questions, answered before and after the
    /// candidate is put in play (empty: none).
    pub review: Vec<ReviewQuestion>,
    /// Told (cases done, cases in the suite) as the run goes.
    pub progress: Box<dyn FnMut(usize, usize) + Send>,
}

/// `POST /api/v1/evals`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalRequest {
    /// A suite under `evals/` by name (`demo`, `labels`) or path (`evals/demo.jsonl`).
    pub suite: String,
}

/// An eval run started from the server, as stored in `eval_jobs`.
#[derive(Debug, Clone, Serialize)]
pub struct EvalJob {
    /// Job id.
    pub id: i64,
    /// The suite, relative to the repository root.
    pub suite: String,
    /// The version evaluated (`NAME@N`), for an evidence request.
    pub version: Option<String>,
    /// queued, running, done or failed.
    pub state: String,
    /// Cases done so far.
    pub done: i64,
    /// Cases in the suite (0 until the run has read it).
    pub total: i64,
    /// Who started it.
    pub by: String,
    /// When it was started (UTC).
    pub started_at: String,
    /// When it ended.
    pub finished_at: Option<String>,
    /// The `eval --json` document once done (with `review` and `notes`).
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Each metric against `evals/thresholds.toml`, per gate on this suite
    /// (filled when read, from the thresholds as they are now).
    pub checks: Vec<Value>,
    #[serde(skip)]
    report: PathBuf,
}

/// Most review questions and most eval jobs listed per version.
const MAX_JOBS_LISTED: usize = 20;

const JOB_COLUMNS: &str = "id, suite, version, state, done, total, by_user, started_at, finished_at, result_json, error, report_dir";

/// How long a queued or running job may go without its runner's heartbeat
/// before any replica marks it failed: its runner stopped. Runners beat every
/// [`HEARTBEAT`].
pub(crate) const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

/// How often a server refreshes the heartbeat of its own unfinished jobs (and
/// fails the stale jobs of stopped runners).
pub(crate) const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);

fn job_row(r: &crate::store::Row) -> Result<EvalJob, crate::store::Error> {
    let result: Option<String> = r.get(9)?;
    let report: String = r.get(11)?;
    Ok(EvalJob {
        id: r.get(0)?,
        suite: r.get(1)?,
        version: r.get(2)?,
        state: r.get(3)?,
        done: r.get(4)?,
        total: r.get(5)?,
        by: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
        error: r.get(10)?,
        checks: Vec::new(),
        report: PathBuf::from(report),
    })
}

/// Marks failed the runs a stopped server left queued or running: those
/// whose runner has not beaten for [`STALE_AFTER`], those from before runners
/// were recorded, and — when the server starts (`starting`) — those of this
/// runner's previous life (`runner`, the server's host and port). A job a
/// live server runs, this one included, is left alone. Called when the
/// server starts and every [`HEARTBEAT`].
pub(crate) fn mark_interrupted(store: &Store, runner: &str, starting: bool, now: chrono::DateTime<chrono::Utc>) -> Result<u64, crate::store::Error> {
    let stale = crate::audit::stamp(now - chrono::Duration::from_std(STALE_AFTER).unwrap_or_default());
    store.transaction(|tx| {
        tx.execute(
            "UPDATE eval_jobs SET state = 'failed', error = 'the server stopped during this run; start it again', finished_at = ?1
             WHERE state IN ('queued', 'running')
               AND (runner IS NULL OR heartbeat_at IS NULL OR heartbeat_at < ?3 OR (?4 = 1 AND runner = ?2))",
            crate::vals![crate::audit::stamp(now), runner, stale, starting],
        )
    })
}

/// Refreshes the heartbeat of `runner`'s unfinished jobs.
pub(crate) fn heartbeat(store: &Store, runner: &str, now: chrono::DateTime<chrono::Utc>) -> Result<u64, crate::store::Error> {
    store.transaction(|tx| {
        tx.execute(
            "UPDATE eval_jobs SET heartbeat_at = ?1 WHERE runner = ?2 AND state IN ('queued', 'running')",
            crate::vals![crate::audit::stamp(now), runner],
        )
    })
}

/// Beats for this server's jobs and fails stopped runners' jobs, every
/// [`HEARTBEAT`], for as long as the server runs.
pub(crate) fn spawn_heartbeat(st: State) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.tick().await; // the first tick is immediate: the server just swept at start
        loop {
            tick.tick().await;
            let now = chrono::Utc::now();
            let store = st.store.clone();
            let runner = st.runner.clone();
            let r = tokio::task::spawn_blocking(move || {
                heartbeat(&store, &runner, now)?;
                mark_interrupted(&store, &runner, false, now)
            })
            .await;
            match r {
                Ok(Ok(n)) if n > 0 => tracing::warn!(jobs = n, "eval jobs of a stopped server marked failed"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "eval job heartbeat failed"),
                Err(e) => tracing::error!(error = %e, "eval job heartbeat task failed"),
            }
        }
    });
}

fn load_job(st: &State, id: i64) -> Result<Option<EvalJob>, ApiError> {
    let job = st.store.read(|c| c.query_opt(&format!("SELECT {JOB_COLUMNS} FROM eval_jobs WHERE id = ?1"), crate::vals![id])?.map(|r| job_row(&r)).transpose())?;
    Ok(job.map(|j| with_checks(st, j)))
}

/// The jobs of one version, newest first (at most [`MAX_JOBS_LISTED`]).
pub(crate) fn jobs_of(st: &State, version: &str) -> Result<Vec<EvalJob>, ApiError> {
    let jobs = st.store.read(|c| {
        c.query(&format!("SELECT {JOB_COLUMNS} FROM eval_jobs WHERE version = ?1 ORDER BY id DESC LIMIT ?2"), crate::vals![version, MAX_JOBS_LISTED])?
            .iter()
            .map(job_row)
            .collect::<Result<Vec<_>, crate::store::Error>>()
    })?;
    Ok(jobs.into_iter().map(|j| with_checks(st, j)).collect())
}

/// Fills `checks` from the thresholds file as it is now.
fn with_checks(st: &State, mut job: EvalJob) -> EvalJob {
    let Some(metrics) = job.result.as_ref() else { return job };
    let Ok(t) = Thresholds::read(&st.thresholds) else { return job };
    let kind = job.version.as_deref().and_then(|v| v.parse::<VersionId>().ok()).and_then(|id| {
        crate::prompts::Registry::new(&st.store, &st.root).get(&id).ok().map(|v| v.kind)
    });
    job.checks = t
        .gate
        .iter()
        .filter(|g| kind.is_none_or(|k| g.kind == k) && same_suite(&g.suite, &job.suite))
        .map(|g| {
            let mut c = gate_checks(&serde_json::to_value(g).unwrap_or_default(), metrics);
            c["kind"] = g.kind.as_str().into();
            c
        })
        .collect();
    job
}

fn same_suite(a: &str, b: &str) -> bool {
    a.trim_start_matches("./") == b.trim_start_matches("./")
}

/// Each minimum of a gate (`{suite, min: {metric: least}}`, as stored with
/// an eval run) against `metrics`: `{suite, passed, metrics: [{metric, min,
/// value, passed}]}`. A metric the run did not measure (`null`) fails.
pub(crate) fn gate_checks(gate: &Value, metrics: &Value) -> Value {
    let rows: Vec<Value> = gate
        .get("min")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, min)| {
                    let min = min.as_f64().unwrap_or(f64::INFINITY);
                    let value = metrics.get(k).and_then(Value::as_f64);
                    json!({"metric": k, "min": min, "value": value, "passed": value.is_some_and(|v| v >= min)})
                })
                .collect()
        })
        .unwrap_or_default();
    let passed = !rows.is_empty() && rows.iter().all(|r| r["passed"] == true);
    json!({"suite": gate.get("suite").cloned().unwrap_or(Value::Null), "passed": passed, "metrics": rows})
}

/// A suite name or path, checked: a `.jsonl` file under `evals/` (never
/// `evals/sealed/`) that exists. Returns the path relative to the root.
pub(crate) fn suite_path(st: &State, s: &str) -> Result<PathBuf, ApiError> {
    let rel = if s.contains('/') { PathBuf::from(s) } else { PathBuf::from(format!("evals/{s}.jsonl")) };
    let rel = under_root(&rel.to_string_lossy())?;
    if !rel.starts_with("evals") || rel.starts_with("evals/sealed") || rel == Path::new(REVIEW_QUESTIONS) || rel.extension().is_none_or(|e| e != "jsonl") {
        return Err(ApiError::bad("bad_suite", format!("{s:?}: name a suite under evals/ (e.g. `demo` or `evals/labels.jsonl`); the sealed suite is not run from here")));
    }
    let full = st.root.join(&rel);
    if !full.is_file() {
        return Err(ApiError::bad("bad_suite", format!("no suite {}", rel.display())));
    }
    Ok(rel)
}

/// Starts a run of `suite` (relative to the root) for `user`: a stored job,
/// queued behind the server's [`super::Gate`], then running with its
/// progress stored after each case. Returns the job as stored.
pub(crate) fn start_job(st: &State, user: User, suite: PathBuf, candidate: Option<VersionId>, review: Vec<ReviewQuestion>) -> Result<EvalJob, ApiError> {
    let ticket = st.gate.admit()?;
    let now = crate::audit::stamp(chrono::Utc::now());
    let base = st.data.join("eval-reports");
    let suite_s = suite.display().to_string();
    let version = candidate.as_ref().map(|c| c.to_string());
    let id = st.store.transaction(|tx| -> Result<i64, crate::store::Error> {
        let id: i64 = tx.one(
            "INSERT INTO eval_jobs (suite, version, state, by_user, started_at, report_dir, runner, heartbeat_at)
             VALUES (?1, ?2, 'queued', ?3, ?4, '', ?5, ?4) RETURNING id",
            crate::vals![&suite_s, version.clone(), &user.id, &now, &st.runner],
        )?;
        let dir = base.join(format!("{}-{id}", chrono::Utc::now().format("%Y%m%dT%H%M%S")));
        tx.execute("UPDATE eval_jobs SET report_dir = ?1 WHERE id = ?2", crate::vals![dir.display().to_string(), id])?;
        Ok(id)
    })?;
    let job = load_job(st, id)?.ok_or_else(|| ApiError::internal(format!("eval job {id} vanished")))?;
    let s = st.clone();
    let report = job.report.clone();
    tokio::spawn(async move {
        let s2 = s.clone();
        let full = s.root.join(&suite);
        let out = ticket
            .run(std::time::Duration::from_secs(3600), move || {
                set_state(&s2.store, id, "running", None, None);
                let store = s2.store.clone();
                let progress = Box::new(move |done: usize, total: usize| {
                    let now = crate::audit::stamp(chrono::Utc::now());
                    let _ = store.transaction(|c| {
                        c.execute("UPDATE eval_jobs SET done = ?1, total = ?2, heartbeat_at = ?3 WHERE id = ?4", crate::vals![done, total, now, id])
                    });
                });
                (s2.eval)(EvalTask { suite: full, report, user, candidate, review, progress })
            })
            .await;
        match out {
            Ok(Ok(v)) => set_state(&s.store, id, "done", Some(&v), None),
            Ok(Err(e)) => set_state(&s.store, id, "failed", None, Some(&e)),
            Err(e) => set_state(&s.store, id, "failed", None, Some(&e.message)),
        }
    });
    Ok(job)
}

fn set_state(store: &Store, id: i64, state: &str, result: Option<&Value>, error: Option<&str>) {
    let finished = matches!(state, "done" | "failed").then(|| crate::audit::stamp(chrono::Utc::now()));
    let r = store.transaction(|c| {
        c.execute(
            "UPDATE eval_jobs SET state = ?1, result_json = coalesce(?2, result_json), error = coalesce(?3, error),
                 finished_at = coalesce(?4, finished_at),
                 done = CASE WHEN ?1 = 'done' AND total > done THEN total ELSE done END
             WHERE id = ?5",
            crate::vals![state, result.map(Value::to_string), error, finished, id],
        )
    });
    if let Err(e) = r {
        tracing::error!(job = id, error = %e, "an eval job's state could not be stored");
    }
}

/// Starts an eval run (compliance, admin): recorded in the audit log and, for
/// the registered versions in play, as eval evidence. `202` with its id.
#[utoipa::path(post, path = "/api/v1/evals", tag = "compliance", security(("bearer" = [])), request_body = EvalRequest,
    responses((status = 202, description = "the job, queued"), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn start_eval(AxState(st): AxState<State>, auth: Auth, Body(r): Body<EvalRequest>) -> Result<Response, ApiError> {
    let user = auth.require(COMPLIANCE, "running an eval")?.clone();
    let suite = suite_path(&st, &r.suite)?;
    let job = start_job(&st, user, suite, None, Vec::new())?;
    Ok((StatusCode::ACCEPTED, axum::Json(job)).into_response())
}

/// The suites that may be run from the server: `evals/*.jsonl` (never the
/// sealed suites under `evals/sealed/`), with their number of cases.
#[utoipa::path(get, path = "/api/v1/evals/suites", tag = "compliance", security(("bearer" = [])),
    responses((status = 200, description = "{suites: [{name, path, cases}]}"), (status = 403, body = super::ErrorBody)))]
pub async fn list_suites(AxState(st): AxState<State>, auth: Auth) -> Result<Response, ApiError> {
    auth.require(COMPLIANCE, "listing eval suites")?;
    let dir = st.root.join("evals");
    let mut suites = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let p = e.path();
            // Plain files only: `sealed/` is a directory, and a link could lead anywhere.
            let is_file = e.file_type().is_ok_and(|t| t.is_file());
            if !is_file || p.extension().is_none_or(|x| x != "jsonl") {
                continue;
            }
            let Some(name) = p.file_stem().and_then(|s| s.to_str()) else { continue };
            // The review page's questions are not a suite.
            if Path::new(REVIEW_QUESTIONS).file_stem().and_then(|s| s.to_str()) == Some(name) {
                continue;
            }
            let cases = std::fs::read_to_string(&p)
                .map(|t| t.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//")).count())
                .unwrap_or(0);
            suites.push(json!({"name": name, "path": format!("evals/{name}.jsonl"), "cases": cases}));
        }
    }
    suites.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(json(json!({"suites": suites})))
}

fn eval_job(st: &State, id: i64) -> Result<EvalJob, ApiError> {
    load_job(st, id)?.ok_or_else(|| ApiError::not_found(format!("no eval run {id} (runs are also in the audit log)")))
}

/// An eval run: its state and progress and, once done, its metrics (each
/// against the thresholds), provenance and review answers. Compliance,
/// admin, and MLR reviewers (who follow their evidence requests).
#[utoipa::path(get, path = "/api/v1/evals/{id}", tag = "compliance", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, description = "the job"), (status = 404, body = super::ErrorBody)))]
pub async fn show_eval(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<i64>) -> Result<Response, ApiError> {
    auth.require(EVIDENCE, "reading an eval run")?;
    Ok(json(eval_job(&st, id)?))
}

/// The HTML report of a finished eval run (charts, failing cases), as a
/// download: it is a document of its own, with its own inline styles.
#[utoipa::path(get, path = "/api/v1/evals/{id}/report", tag = "compliance", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, description = "report.html"), (status = 404, body = super::ErrorBody)))]
pub async fn eval_report(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<i64>) -> Result<Response, ApiError> {
    auth.require(EVIDENCE, "reading an eval report")?;
    let job = eval_job(&st, id)?;
    let html = std::fs::read_to_string(job.report.join("report.html"))
        .map_err(|_| ApiError::not_found(format!("eval run {id} has no report yet (state {})", job.state)))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"eval-report-{id}.html\"")),
            // Its own policy: its inline styles apply, nothing runs or loads.
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; img-src data:".to_string()),
        ],
        html,
    )
        .into_response())
}

/// The gates of a kind in the thresholds file (for an evidence request).
pub(crate) fn gates_for(st: &State, kind: Kind) -> Result<Vec<crate::prompts::Gate>, ApiError> {
    let t = Thresholds::read(&st.thresholds)?;
    Ok(t.gates(kind).cloned().collect())
}

/// The fixed review questions (`evals/review-questions.jsonl` under the
/// root; none when the file is missing).
pub(crate) fn review_questions(st: &State) -> Result<Vec<ReviewQuestion>, ApiError> {
    let p = st.root.join(REVIEW_QUESTIONS);
    if !p.is_file() {
        return Ok(Vec::new());
    }
    Ok(crate::eval::recorded::read_review_questions(&p)?)
}

/// Where the review page's fixed questions live, relative to the root.
pub const REVIEW_QUESTIONS: &str = "evals/review-questions.jsonl";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_minimum_is_judged_and_an_unmeasured_metric_fails() {
        let gate = json!({"suite": "evals/mini.jsonl", "min": {"route_accuracy": 0.5, "citation_recall": 0.8, "ae_f1": 0.9}});
        let c = gate_checks(&gate, &json!({"route_accuracy": 0.5, "citation_recall": 0.7, "ae_f1": null}));
        let by = |m: &str| c["metrics"].as_array().unwrap().iter().find(|r| r["metric"] == m).unwrap().clone();
        assert_eq!(by("route_accuracy")["passed"], true, "a value equal to its minimum passes");
        assert_eq!(by("citation_recall")["passed"], false);
        assert_eq!(by("ae_f1")["passed"], false);
        assert_eq!(c["passed"], false);
        let c = gate_checks(&gate, &json!({"route_accuracy": 1.0, "citation_recall": 0.9, "ae_f1": 0.95}));
        assert_eq!(c["passed"], true);
        assert_eq!(gate_checks(&json!(null), &json!({}))["passed"], false, "no gate: nothing passes");
    }

    /// A replica fails only the eval jobs of stopped runners: its own while
    /// it runs them never, its own earlier ones when it starts again, another
    /// live replica's never, a silent runner's after [`STALE_AFTER`].
    #[test]
    fn issue22_3_eval_jobs_are_failed_only_when_their_runner_stopped() {
        for t in crate::store::testing::each_backend("eval_job_runners") {
            let who = t.name();
            let now = chrono::Utc::now();
            let fresh = crate::audit::stamp(now - chrono::Duration::seconds(10));
            let old = crate::audit::stamp(now - chrono::Duration::seconds(600));
            let add = |runner: Option<&str>, beat: &str| -> i64 {
                t.store
                    .transaction(|tx| {
                        tx.one::<i64>(
                            "INSERT INTO eval_jobs (suite, state, by_user, started_at, report_dir, runner, heartbeat_at)
                             VALUES ('evals/demo.jsonl', 'running', 'carol', ?2, '', ?1, ?2) RETURNING id",
                            crate::vals![runner, beat],
                        )
                    })
                    .unwrap()
            };
            let mine = add(Some("host-a:8080"), &fresh);
            let other = add(Some("host-b:8080"), &fresh);
            let silent = add(Some("host-c:8080"), &old);
            let legacy = add(None, &fresh);
            let state = |id: i64| -> String { t.store.read(|c| c.one::<String>("SELECT state FROM eval_jobs WHERE id = ?1", crate::vals![id])).unwrap() };
            // The periodic sweep of a running server (host-a).
            heartbeat(&t.store, "host-a:8080", now).unwrap();
            assert_eq!(mark_interrupted(&t.store, "host-a:8080", false, now).unwrap(), 2, "{who}");
            assert_eq!((state(mine).as_str(), state(other).as_str()), ("running", "running"), "{who}");
            assert_eq!((state(silent).as_str(), state(legacy).as_str()), ("failed", "failed"), "{who}");
            // host-a restarts: its own earlier job is failed, host-b's is not.
            assert_eq!(mark_interrupted(&t.store, "host-a:8080", true, now).unwrap(), 1, "{who}");
            assert_eq!((state(mine).as_str(), state(other).as_str()), ("failed", "running"), "{who}");
        }
    }
}
