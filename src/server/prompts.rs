//! The prompt registry for MLR: list, read and diff versions, propose,
//! submit, and the e-signed approve and reject (`/api/v1/prompts…`).

use std::path::{Component, Path, PathBuf};

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Auth, SignInAttempt, AUTHORS, PROMPT_READERS, SIGNERS};
use super::{json, ApiError, Body, Query, State, UrlPath};
use crate::prompts::{Kind, Registry, Thresholds, VersionId};
use crate::users::Users;

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/prompts", get(list_prompts).post(propose))
        .route("/api/v1/prompts/{id}", get(show_prompt))
        .route("/api/v1/prompts/{id}/diff", get(diff_prompt))
        .route("/api/v1/prompts/{id}/submit", post(submit))
        .route("/api/v1/prompts/{id}/approve", post(approve))
        .route("/api/v1/prompts/{id}/reject", post(reject))
}

fn version_id(s: &str) -> Result<VersionId, ApiError> {
    s.parse::<VersionId>().map_err(|e| ApiError::bad("bad_version_id", format!("{s:?} is not NAME@N: {e}")))
}

/// Every registered version (prompts, rule files, lexicons); every role but rep.
#[utoipa::path(get, path = "/api/v1/prompts", tag = "mlr", security(("bearer" = [])), responses((status = 200, description = "{versions}")))]
pub async fn list_prompts(AxState(st): AxState<State>, auth: Auth) -> Result<Response, ApiError> {
    auth.require(PROMPT_READERS, "listing prompt versions")?;
    let reg = Registry::new(&st.store, &st.root);
    Ok(json(json!({"versions": reg.versions(None)?})))
}

/// One version with its content, e-signatures and eval evidence; every role but rep.
#[utoipa::path(get, path = "/api/v1/prompts/{id}", tag = "mlr", security(("bearer" = [])),
    params(("id" = String, Path, description = "NAME@N")), responses((status = 200, description = "{version, content, signatures, eval_runs}"), (status = 404, body = super::ErrorBody)))]
pub async fn show_prompt(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    auth.require(PROMPT_READERS, "reading a prompt version")?;
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
    auth.require(PROMPT_READERS, "diffing prompt versions")?;
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
pub(crate) fn under_root(p: &str) -> Result<PathBuf, ApiError> {
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
            // Content-addressed under prompts/proposed, never through a link.
            Registry::new(&st.store, &st.root).store_proposal(&r.name, kind.unwrap_or(Kind::Prompt), c)?
        }
        _ => return Err(ApiError::bad("bad_request", "give exactly one of `template` (a file under the root) or `content`")),
    };
    // The registry confines the file: under prompts/, rules/ or lexicon/, no symlink, size-limited.
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

fn signer(st: &State, auth: &Auth, attempt: &crate::users::Attempt, r: &SignRequest, what: &str) -> Result<crate::users::User, ApiError> {
    let user = auth.require(SIGNERS, what)?;
    if r.reason.trim().is_empty() {
        return Err(ApiError::bad("empty", "reason is empty: an e-signature states why"));
    }
    match Users::with_policy(&st.store, st.limits.sign_in).authenticate_from(&user.id, r.secret.trim(), attempt) {
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
pub async fn approve(
    AxState(st): AxState<State>,
    auth: Auth,
    SignInAttempt(attempt): SignInAttempt,
    UrlPath(id): UrlPath<String>,
    Body(r): Body<SignRequest>,
) -> Result<Response, ApiError> {
    let user = signer(&st, &auth, &attempt, &r, "prompts approve (e-signature)")?;
    let id = version_id(&id)?;
    let t = Thresholds::read(&st.thresholds)?;
    let reg = Registry::new(&st.store, &st.root);
    let (v, s) = reg.approve(&id, &r.reason, &user, &t)?;
    reload_prompt(&st, &v);
    Ok(json(json!({"version": v, "signature": s})))
}

/// Swaps the approved prompt into the running copilot.
fn reload_prompt(st: &State, v: &crate::prompts::Version) {
    if v.kind != Kind::Prompt {
        return;
    }
    // The draft templates (`email`, `summary`) are read from the registry by name.
    if crate::copilot::DraftTemplates::builtin_source(&v.name).is_some() {
        match crate::prompts::live_template(&v.name, &st.store, &st.root) {
            Ok(Some(p)) => {
                if let Ok(mut c) = st.copilot.write() {
                    tracing::info!(prompt = %p.id(), "drafts now use the newly approved template");
                    c.drafts_mut().replace(p);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "the approved draft template could not be loaded; the previous one stays live"),
        }
        return;
    }
    let Some(load) = &st.reload_prompt else { return };
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
pub async fn reject(
    AxState(st): AxState<State>,
    auth: Auth,
    SignInAttempt(attempt): SignInAttempt,
    UrlPath(id): UrlPath<String>,
    Body(r): Body<SignRequest>,
) -> Result<Response, ApiError> {
    let user = signer(&st, &auth, &attempt, &r, "prompts reject (e-signature)")?;
    let reg = Registry::new(&st.store, &st.root);
    let (v, s) = reg.reject(&version_id(&id)?, &r.reason, &user)?;
    Ok(json(json!({"version": v, "signature": s})))
}

