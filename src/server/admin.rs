//! What MLR, Medical/PV and compliance use: the prompt registry with
//! e-signatures, the case queue, the audit log, evals; and health checks.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;

use axum::extract::{Path as UrlPath, Query, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::{Auth, ANY, AUTHORS, COMPLIANCE, MEDICAL, SIGNERS};
use super::{json, ApiError, Body, State};
use crate::cases::{CaseFilter, CaseState};
use crate::prompts::{Kind, Registry, Thresholds, VersionId};
use crate::users::Users;

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/prompts", get(list_prompts).post(propose))
        .route("/api/v1/prompts/{id}", get(show_prompt))
        .route("/api/v1/prompts/{id}/diff", get(diff_prompt))
        .route("/api/v1/prompts/{id}/submit", post(submit))
        .route("/api/v1/prompts/{id}/approve", post(approve))
        .route("/api/v1/prompts/{id}/reject", post(reject))
        .route("/api/v1/cases", get(list_cases))
        .route("/api/v1/cases/{id}", get(show_case))
        .route("/api/v1/cases/{id}/{action}", post(case_action))
        .route("/api/v1/audit", get(audit_search))
        .route("/api/v1/audit/verify", get(audit_verify))
        .route("/api/v1/evals", post(start_eval))
        .route("/api/v1/evals/{id}", get(show_eval))
        .route("/api/v1/evals/{id}/report", get(eval_report))
}

/// Alive (the process answers).
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "ok")))]
pub async fn healthz() -> Response {
    json(json!({"status": "ok"}))
}

/// Ready: index and (when configured) model loaded, store open, not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready (starting or shutting down)")))]
pub async fn readyz(AxState(st): AxState<State>) -> Response {
    let (model, passages) = match st.copilot.read() {
        Ok(c) => (c.grounded().map(|g| g.model.id().to_string()), c.index().len()),
        Err(_) => (None, 0),
    };
    let store = crate::store::Store::open(&st.data).is_ok();
    let ready = st.ready.load(Ordering::SeqCst) && store && passages > 0;
    let body = json!({"ready": ready, "model": model, "passages": passages, "store": store,
        "queue": {"working": st.gate.working(), "waiting": st.gate.waiting()}});
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

fn version_id(s: &str) -> Result<VersionId, ApiError> {
    s.parse::<VersionId>().map_err(|e| ApiError::bad("bad_version_id", format!("{s:?} is not NAME@N: {e}")))
}

/// Every registered version (prompts, rule files, lexicons).
#[utoipa::path(get, path = "/api/v1/prompts", tag = "mlr", security(("bearer" = [])), responses((status = 200, description = "{versions}")))]
pub async fn list_prompts(AxState(st): AxState<State>, auth: Auth) -> Result<Response, ApiError> {
    auth.require(ANY, "listing prompt versions")?;
    let reg = Registry::new(&st.store, &st.root);
    Ok(json(json!({"versions": reg.versions(None)?})))
}

/// One version with its content, e-signatures and eval evidence.
#[utoipa::path(get, path = "/api/v1/prompts/{id}", tag = "mlr", security(("bearer" = [])),
    params(("id" = String, Path, description = "NAME@N")), responses((status = 200, description = "{version, content, signatures, eval_runs}"), (status = 404, body = super::ErrorBody)))]
pub async fn show_prompt(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    auth.require(ANY, "reading a prompt version")?;
    let id = version_id(&id)?;
    let reg = Registry::new(&st.store, &st.root);
    let v = reg.get(&id)?;
    Ok(json(json!({"content": v.content, "signatures": reg.signatures(&id)?, "eval_runs": reg.eval_runs(&id)?, "version": v})))
}

/// `?against=NAME@M` for [`diff_prompt`].
#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    against: Option<String>,
}

/// The version against another (default: the approved one): text diff and metric deltas.
#[utoipa::path(get, path = "/api/v1/prompts/{id}/diff", tag = "mlr", security(("bearer" = [])),
    params(("id" = String, Path, description = "NAME@N"), ("against" = Option<String>, Query, description = "NAME@M")),
    responses((status = 200, description = "{id, against, diff, metrics, eval_runs}")))]
pub async fn diff_prompt(
    AxState(st): AxState<State>,
    auth: Auth,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Response, ApiError> {
    auth.require(ANY, "diffing prompt versions")?;
    let id = version_id(&id)?;
    let against = q.against.as_deref().map(version_id).transpose()?;
    let reg = Registry::new(&st.store, &st.root);
    Ok(json(crate::prompts::diff::compare(&reg, &id, against.as_ref())?.to_json()))
}

/// `POST /api/v1/prompts`: a file under the root, or the content itself.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeRequest {
    /// The artefact's name (`objection`, `guard-rules`, …).
    pub name: String,
    /// A file relative to the repository root (as `prompts propose --template`).
    #[serde(default)]
    pub template: Option<String>,
    /// Or the content itself: stored as `prompts/proposed/NAME-SHA12.EXT` under the root.
    #[serde(default)]
    pub content: Option<String>,
    /// prompt, rules or lexicon (default: from the file's extension; `prompt` for content).
    #[serde(default)]
    pub kind: Option<String>,
}

/// A relative path that stays under the root.
fn under_root(p: &str) -> Result<PathBuf, ApiError> {
    let path = Path::new(p);
    if path.is_absolute() || path.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(ApiError::bad("bad_path", format!("{p:?} must be a path relative to the repository root, without `..`")));
    }
    Ok(path.to_path_buf())
}

/// Proposes a new draft version (mlr_reviewer, admin).
#[utoipa::path(post, path = "/api/v1/prompts", tag = "mlr", security(("bearer" = [])), request_body = ProposeRequest,
    responses((status = 201, description = "the new draft version"), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn propose(AxState(st): AxState<State>, auth: Auth, Body(r): Body<ProposeRequest>) -> Result<Response, ApiError> {
    let user = auth.require(AUTHORS, "proposing a prompt version")?.clone();
    let kind = r.kind.as_deref().map(|k| k.parse::<Kind>().map_err(|e| ApiError::bad("bad_kind", e))).transpose()?;
    let template = match (&r.template, &r.content) {
        (Some(t), None) => under_root(t)?,
        (None, Some(c)) => {
            if c.trim().is_empty() {
                return Err(ApiError::bad("empty", "content is empty"));
            }
            let kind = kind.unwrap_or(Kind::Prompt);
            let ext = match kind {
                Kind::Prompt => "j2",
                _ => "toml",
            };
            let sha = crate::prompts::sha256_hex(c.as_bytes());
            crate::prompts::check_name(&r.name)?;
            let rel = PathBuf::from("prompts/proposed").join(format!("{}-{}.{ext}", r.name, &sha[..12]));
            let full = st.root.join(&rel);
            if let Some(dir) = full.parent() {
                std::fs::create_dir_all(dir).map_err(ApiError::internal)?;
            }
            // Content-addressed: an existing file with this name holds these bytes.
            if !full.exists() {
                std::fs::write(&full, c).map_err(ApiError::internal)?;
            }
            rel
        }
        _ => return Err(ApiError::bad("bad_request", "give exactly one of `template` (a file under the root) or `content`")),
    };
    let reg = Registry::new(&st.store, &st.root);
    let v = reg.propose(&r.name, &template, kind, json!({}), &user)?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

/// Submits a draft for MLR review.
#[utoipa::path(post, path = "/api/v1/prompts/{id}/submit", tag = "mlr", security(("bearer" = [])),
    params(("id" = String, Path, description = "NAME@N")), responses((status = 200, description = "the version, in_review")))]
pub async fn submit(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let user = auth.require(AUTHORS, "submitting a prompt version")?.clone();
    let reg = Registry::new(&st.store, &st.root);
    Ok(json(reg.submit(&version_id(&id)?, &user)?))
}

/// An e-signature: the reason (its meaning is the route's) and the signer's
/// own token again (21 CFR 11.200: a signature re-enters the credential).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Why.
    pub reason: String,
    /// The signer's token.
    pub secret: String,
}

fn signer(st: &State, auth: &Auth, r: &SignRequest, what: &str) -> Result<crate::users::User, ApiError> {
    let user = auth.require(SIGNERS, what)?;
    if r.reason.trim().is_empty() {
        return Err(ApiError::bad("empty", "reason is empty: an e-signature states why"));
    }
    match Users::new(&st.store).authenticate(&user.id, r.secret.trim(), what) {
        Ok(u) => Ok(u),
        Err(crate::users::Error::BadCredential { .. }) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "signature_refused",
            format!("the e-signature was refused: `secret` must be {}'s own token", user.id),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Approves a version in review (an mlr_reviewer who is not its author); the
/// copilot runs it from the next question when it is a prompt.
#[utoipa::path(post, path = "/api/v1/prompts/{id}/approve", tag = "mlr", security(("bearer" = [])), request_body = SignRequest,
    params(("id" = String, Path, description = "NAME@N")),
    responses((status = 200, description = "{version, signature}"), (status = 403, body = super::ErrorBody), (status = 409, description = "no eval evidence, or not in review", body = super::ErrorBody)))]
pub async fn approve(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>, Body(r): Body<SignRequest>) -> Result<Response, ApiError> {
    let user = signer(&st, &auth, &r, "prompts approve (e-signature)")?;
    let id = version_id(&id)?;
    let t = Thresholds::read(&st.thresholds)?;
    let reg = Registry::new(&st.store, &st.root);
    let (v, s) = reg.approve(&id, &r.reason, &user, &t)?;
    reload_prompt(&st, &v);
    Ok(json(json!({"version": v, "signature": s})))
}

/// Swaps the approved prompt into the running copilot.
fn reload_prompt(st: &State, v: &crate::prompts::Version) {
    let Some(load) = &st.reload_prompt else { return };
    if v.kind != Kind::Prompt {
        return;
    }
    match load(&st.store) {
        Ok(p) => {
            if let Ok(mut c) = st.copilot.write() {
                if let Some(g) = c.grounded_mut() {
                    if g.prompt.name == p.name {
                        tracing::info!(prompt = %p.id(), "the copilot now runs the newly approved prompt");
                        g.prompt = p;
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "the approved prompt could not be loaded; the previous one stays live"),
    }
}

/// Rejects a version in review (an mlr_reviewer who is not its author).
#[utoipa::path(post, path = "/api/v1/prompts/{id}/reject", tag = "mlr", security(("bearer" = [])), request_body = SignRequest,
    params(("id" = String, Path, description = "NAME@N")), responses((status = 200, description = "{version, signature}"), (status = 403, body = super::ErrorBody)))]
pub async fn reject(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>, Body(r): Body<SignRequest>) -> Result<Response, ApiError> {
    let user = signer(&st, &auth, &r, "prompts reject (e-signature)")?;
    let reg = Registry::new(&st.store, &st.root);
    let (v, s) = reg.reject(&version_id(&id)?, &r.reason, &user)?;
    Ok(json(json!({"version": v, "signature": s})))
}

/// Filters of [`list_cases`].
#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    state: Option<String>,
    kind: Option<String>,
    owner: Option<String>,
    open: Option<bool>,
    limit: Option<usize>,
}

/// The case queue (medical, admin).
#[utoipa::path(get, path = "/api/v1/cases", tag = "medical", security(("bearer" = [])),
    params(("state" = Option<String>, Query), ("kind" = Option<String>, Query), ("owner" = Option<String>, Query), ("open" = Option<bool>, Query)),
    responses((status = 200, description = "{cases}"), (status = 403, body = super::ErrorBody)))]
pub async fn list_cases(AxState(st): AxState<State>, auth: Auth, Query(q): Query<CaseQuery>) -> Result<Response, ApiError> {
    auth.require(MEDICAL, "the case queue")?;
    let filter = CaseFilter {
        state: q.state.as_deref().map(|s| s.parse().map_err(|e: String| ApiError::bad("bad_state", e))).transpose()?,
        kind: q.kind.as_deref().map(|s| s.parse().map_err(|e: String| ApiError::bad("bad_kind", e))).transpose()?,
        owner: q.owner,
        open_only: q.open.unwrap_or(false),
        overdue_at: None,
        limit: Some(q.limit.unwrap_or(200).min(1000)),
    };
    let now = chrono::Utc::now();
    let cases: Vec<Value> = st
        .cases
        .list(&filter)?
        .into_iter()
        .map(|c| {
            let overdue = c.is_overdue(now);
            let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
            v["overdue"] = overdue.into();
            v
        })
        .collect();
    Ok(json(json!({"cases": cases})))
}

/// One case with its history.
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "medical", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, description = "{case, history}"), (status = 404, body = super::ErrorBody)))]
pub async fn show_case(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    auth.require(MEDICAL, "reading a case")?;
    let c = st.cases.get(&id)?.ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
    Ok(json(json!({"case": c, "history": st.cases.history(&id)?})))
}

/// The body of a case action.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseActionRequest {
    /// assign: the new owner's user id.
    #[serde(default)]
    pub owner: Option<String>,
    /// triage / start: a note.
    #[serde(default)]
    pub note: Option<String>,
    /// resolve: the resolution.
    #[serde(default)]
    pub resolution: Option<String>,
}

/// assign, triage, start or resolve a case (medical, admin).
#[utoipa::path(post, path = "/api/v1/cases/{id}/{action}", tag = "medical", security(("bearer" = [])), request_body = CaseActionRequest,
    params(("id" = String, Path), ("action" = String, Path, description = "assign | triage | start | resolve")),
    responses((status = 200, description = "the case"), (status = 403, body = super::ErrorBody), (status = 409, description = "not allowed in its state", body = super::ErrorBody)))]
pub async fn case_action(
    AxState(st): AxState<State>,
    auth: Auth,
    UrlPath((id, action)): UrlPath<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let user = auth.require(MEDICAL, "working a case")?;
    let r: CaseActionRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CaseActionRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad("bad_json", format!("the body is not the JSON this route takes: {e}")))?
    };
    let c = match action.as_str() {
        "assign" => {
            let owner = r.owner.filter(|o| !o.trim().is_empty()).ok_or_else(|| ApiError::bad("empty", "owner is missing: the user id to assign the case to"))?;
            st.cases.assign(&id, owner.trim(), &user.id)?
        }
        "triage" => st.cases.transition(&id, CaseState::Triaged, &user.id, r.note.as_deref())?,
        "start" => st.cases.transition(&id, CaseState::InProgress, &user.id, r.note.as_deref())?,
        "resolve" => {
            let res = r.resolution.filter(|o| !o.trim().is_empty()).ok_or_else(|| ApiError::bad("empty", "resolution is missing: say how the case was closed"))?;
            st.cases.resolve(&id, &user.id, &res)?
        }
        other => return Err(ApiError::not_found(format!("no case action {other:?}: use assign, triage, start or resolve"))),
    };
    Ok(json(c))
}

/// Filters of [`audit_search`].
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    route: Option<String>,
    case_id: Option<String>,
    /// Text anywhere in the input or output.
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

fn parse_time(field: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| ApiError::bad("bad_time", format!("{field} {s:?} is not RFC 3339 or YYYY-MM-DD")))
}

/// Searches the audit log (compliance, admin); newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "compliance", security(("bearer" = [])),
    params(("action" = Option<String>, Query), ("actor" = Option<String>, Query), ("route" = Option<String>, Query), ("case_id" = Option<String>, Query),
        ("q" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, description = "{records}"), (status = 403, body = super::ErrorBody)))]
pub async fn audit_search(AxState(st): AxState<State>, auth: Auth, Query(q): Query<AuditQuery>) -> Result<Response, ApiError> {
    auth.require(COMPLIANCE, "reading the audit log")?;
    let from = q.from.as_deref().map(|s| parse_time("from", s)).transpose()?;
    let to = q.to.as_deref().map(|s| parse_time("to", s)).transpose()?;
    let needle = q.q.as_deref().map(str::to_lowercase);
    let limit = q.limit.unwrap_or(100).min(1000);
    let st2 = st.clone();
    let records = tokio::task::spawn_blocking(move || -> Result<Vec<crate::audit::Entry>, ApiError> {
        let all = st2.audit.range(from, to)?;
        Ok(all
            .into_iter()
            .rev()
            .filter(|e| q.action.as_ref().is_none_or(|a| &e.action == a))
            .filter(|e| q.actor.as_ref().is_none_or(|a| &e.actor == a))
            .filter(|e| q.route.as_ref().is_none_or(|r| e.route.as_ref() == Some(r)))
            .filter(|e| q.case_id.as_ref().is_none_or(|c| e.case_id.as_ref() == Some(c)))
            .filter(|e| {
                needle.as_ref().is_none_or(|n| {
                    e.input.as_deref().is_some_and(|s| s.to_lowercase().contains(n)) || e.output.as_deref().is_some_and(|s| s.to_lowercase().contains(n))
                })
            })
            .take(limit)
            .collect())
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(json(json!({"records": records})))
}

/// `?head_seq=&head_hash=` for [`audit_verify`]: a head noted earlier detects truncation.
#[derive(Debug, Deserialize)]
pub struct VerifyQuery {
    head_seq: Option<i64>,
    head_hash: Option<String>,
}

/// Verifies the hash chain (compliance, admin): the first tampered record, if any.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "compliance", security(("bearer" = [])),
    params(("head_seq" = Option<i64>, Query), ("head_hash" = Option<String>, Query)),
    responses((status = 200, description = "the verification; `ok` false names the first finding")))]
pub async fn audit_verify(AxState(st): AxState<State>, auth: Auth, Query(q): Query<VerifyQuery>) -> Result<Response, ApiError> {
    auth.require(COMPLIANCE, "verifying the audit log")?;
    let st2 = st.clone();
    let v = tokio::task::spawn_blocking(move || {
        let head = match (q.head_seq, q.head_hash.as_deref()) {
            (Some(s), Some(h)) => Some((s, h)),
            _ => None,
        };
        st2.audit.verify(head)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(json(v))
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
                        job.error = Some(format!("{e:#}"));
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
