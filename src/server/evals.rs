//! Eval runs for compliance: start one, follow it, read its HTML report
//! (`/api/v1/evals…`). The run itself is [`crate::eval::recorded`], handed in by
//! `onlabel serve` as the [`super::EvalRunner`].

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use axum::extract::State as AxState;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::{Auth, COMPLIANCE};
use super::prompts::under_root;
use super::{json, ApiError, Body, State, UrlPath};

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/evals", post(start_eval))
        .route("/api/v1/evals/{id}", get(show_eval))
        .route("/api/v1/evals/{id}/report", get(eval_report))
}

/// `POST /api/v1/evals`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalRequest {
    /// A suite under `evals/` by name (`demo`, `labels`) or path (`evals/demo.jsonl`).
    pub suite: String,
}

/// An eval run started from the server.
#[derive(Debug, Clone, Serialize)]
pub struct EvalJob {
    /// Job id.
    pub id: u64,
    /// The suite.
    pub suite: String,
    /// running, done or failed.
    pub state: &'static str,
    /// Who started it.
    pub by: String,
    /// The `eval --json` document once done.
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    #[serde(skip)]
    report: PathBuf,
}

fn suite_path(st: &State, s: &str) -> Result<PathBuf, ApiError> {
    let rel = if s.contains('/') { PathBuf::from(s) } else { PathBuf::from(format!("evals/{s}.jsonl")) };
    let rel = under_root(&rel.to_string_lossy())?;
    if !rel.starts_with("evals") || rel.starts_with("evals/sealed") || rel.extension().is_none_or(|e| e != "jsonl") {
        return Err(ApiError::bad("bad_suite", format!("{s:?}: name a suite under evals/ (e.g. `demo` or `evals/labels.jsonl`); the sealed suite is not run from here")));
    }
    let full = st.root.join(&rel);
    if !full.is_file() {
        return Err(ApiError::bad("bad_suite", format!("no suite {}", rel.display())));
    }
    Ok(rel)
}

/// Starts an eval run (compliance, admin): recorded in the audit log and, for
/// the registered versions in play, as eval evidence. `202` with its id.
#[utoipa::path(post, path = "/api/v1/evals", tag = "compliance", security(("bearer" = [])), request_body = EvalRequest,
    responses((status = 202, description = "the job, running"), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn start_eval(AxState(st): AxState<State>, auth: Auth, Body(r): Body<EvalRequest>) -> Result<Response, ApiError> {
    let user = auth.require(COMPLIANCE, "running an eval")?.clone();
    let suite = suite_path(&st, &r.suite)?;
    let id = st.next_eval.fetch_add(1, Ordering::SeqCst);
    let report = st.data.join("eval-reports").join(format!("{}-{id}", chrono::Utc::now().format("%Y%m%dT%H%M%S")));
    let job = EvalJob { id, suite: suite.display().to_string(), state: "running", by: user.id.clone(), result: None, error: None, report: report.clone() };
    if let Ok(mut j) = st.evals.lock() {
        j.insert(id, job.clone());
    }
    let ticket = st.gate.admit()?;
    let s = st.clone();
    tokio::spawn(async move {
        let s2 = s.clone();
        let full = s.root.join(&suite);
        let out = ticket.run(std::time::Duration::from_secs(3600), move || (s2.eval)(full, report, user)).await;
        if let Ok(mut j) = s.evals.lock() {
            if let Some(job) = j.get_mut(&id) {
                match out {
                    Ok(Ok(v)) => {
                        job.state = "done";
                        job.result = Some(v);
                    }
                    Ok(Err(e)) => {
                        job.state = "failed";
                        job.error = Some(e);
                    }
                    Err(e) => {
                        job.state = "failed";
                        job.error = Some(e.message);
                    }
                }
            }
        }
    });
    Ok((StatusCode::ACCEPTED, axum::Json(job)).into_response())
}

fn eval_job(st: &State, id: u64) -> Result<EvalJob, ApiError> {
    st.evals.lock().ok().and_then(|j| j.get(&id).cloned()).ok_or_else(|| ApiError::not_found(format!("no eval run {id} on this server (runs are also in the audit log)")))
}

/// An eval run: its state and, once done, its metrics and provenance.
#[utoipa::path(get, path = "/api/v1/evals/{id}", tag = "compliance", security(("bearer" = [])),
    params(("id" = u64, Path)), responses((status = 200, description = "the job"), (status = 404, body = super::ErrorBody)))]
pub async fn show_eval(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<u64>) -> Result<Response, ApiError> {
    auth.require(COMPLIANCE, "reading an eval run")?;
    Ok(json(eval_job(&st, id)?))
}

/// The HTML report of a finished eval run (charts, failing cases).
#[utoipa::path(get, path = "/api/v1/evals/{id}/report", tag = "compliance", security(("bearer" = [])),
    params(("id" = u64, Path)), responses((status = 200, description = "report.html"), (status = 404, body = super::ErrorBody)))]
pub async fn eval_report(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<u64>) -> Result<Response, ApiError> {
    auth.require(COMPLIANCE, "reading an eval report")?;
    let job = eval_job(&st, id)?;
    let html = std::fs::read_to_string(job.report.join("report.html"))
        .map_err(|_| ApiError::not_found(format!("eval run {id} has no report yet (state {})", job.state)))?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}
