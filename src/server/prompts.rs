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

use super::auth::{Auth, SignInAttempt, AUTHORS, EVIDENCE, PROMPT_READERS, SIGNERS};
use super::{json, ApiError, AppState, Body, Query, State, UrlPath};
use crate::prompts::{Kind, Reauth, Registry, State as VersionState, Thresholds, VersionId};
use crate::users::{Method, Users};

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/prompts", get(list_prompts).post(propose))
        .route("/api/v1/prompts/{id}", get(show_prompt))
        .route("/api/v1/prompts/{id}/diff", get(diff_prompt))
        .route("/api/v1/prompts/{id}/submit", post(submit))
        .route("/api/v1/prompts/{id}/approve", post(approve))
        .route("/api/v1/prompts/{id}/reject", post(reject))
        .route("/api/v1/prompts/{id}/evidence", get(list_evidence).post(request_evidence))
        .route("/api/v1/prompts/{id}/review", get(review))
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
    let user = auth.require(PROMPT_READERS, "reading a prompt version")?.clone();
    let id = version_id(&id)?;
    let reg = Registry::new(&st.store, &st.root);
    let v = reg.get(&id)?;
    // Each run's metrics against the gate it was judged by, metric by metric.
    let runs: Vec<serde_json::Value> = reg
        .eval_runs(&id)?
        .into_iter()
        .map(|r| {
            let checks = super::evals::gate_checks(&r.thresholds, &r.metrics);
            let mut j = serde_json::to_value(&r).unwrap_or_default();
            j["checks"] = checks;
            j
        })
        .collect();
    // Whether this reader may sign it: an mlr_reviewer who did not author it (the server checks again).
    let may_sign = user.role == crate::users::Role::MlrReviewer && user.id != v.author;
    Ok(json(json!({"content": v.content, "signatures": reg.signatures(&id)?, "eval_runs": runs, "version": v, "may_sign": may_sign})))
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
    let mut out = crate::prompts::diff::compare(&reg, &id, against.as_ref())?.to_json();
    // The same change word by word, for reading prose: against the version
    // compared with, else (a first prompt version) the prompt served now or its file.
    let now = reg.get(&id)?;
    let against_version = out.get("against").and_then(|a| a.as_str()).and_then(|a| a.parse::<VersionId>().ok()).and_then(|a| reg.get(&a).ok());
    let before: Option<(String, String)> = match against_version {
        Some(b) => Some((b.id(), b.content)),
        None if now.kind == Kind::Prompt => {
            let served = st.copilot.read().ok().and_then(|c| c.grounded().filter(|g| g.prompt.name == now.name).map(|g| (format!("{} (served now)", g.prompt.id()), g.prompt.source.clone())));
            served.or_else(|| {
                let rel = format!("prompts/{}.j2", now.name);
                std::fs::read_to_string(st.root.join(&rel)).ok().map(|src| (format!("{rel} (the file)"), src))
            })
        }
        None => None,
    };
    out["words"] = serde_json::to_value(word_diff(before.as_ref().map_or("", |b| b.1.as_str()), &now.content)).unwrap_or_default();
    out["words_against"] = before.map(|b| b.0).into();
    Ok(json(out))
}

/// One run of a word-level diff: `equal`, `insert` or `delete`, and its text
/// (words with the spaces between them).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WordRun {
    /// equal, insert or delete.
    pub op: &'static str,
    /// The text.
    pub text: String,
}

/// Most runs a word diff returns; beyond, the rest is one `equal` run that
/// says it was cut (versions are size-limited, so this is a guard only).
pub const MAX_WORD_RUNS: usize = 5_000;

/// A word-level diff of `old` → `new` (the `similar` crate), consecutive
/// words of the same kind joined into one run.
pub fn word_diff(old: &str, new: &str) -> Vec<WordRun> {
    let diff = similar::TextDiff::from_words(old, new);
    let mut out: Vec<WordRun> = Vec::new();
    for change in diff.iter_all_changes() {
        let op = match change.tag() {
            similar::ChangeTag::Equal => "equal",
            similar::ChangeTag::Insert => "insert",
            similar::ChangeTag::Delete => "delete",
        };
        if let Some(last) = out.last_mut().filter(|l| l.op == op) {
            last.text.push_str(change.value());
        } else if out.len() >= MAX_WORD_RUNS {
            out.push(WordRun { op: "equal", text: " … (the diff is cut here: too many changes to show word by word)".into() });
            break;
        } else {
            out.push(WordRun { op, text: change.value().to_string() });
        }
    }
    out
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

/// How long a single sign-on step-up (`GET /auth/oidc/login?step_up=1`)
/// stays good for one e-signature: taken within this, and consumed by it.
pub const STEP_UP_WITHIN: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// An e-signature (21 CFR 11.50, 11.200): the reason — its meaning is the
/// route's (`approve`: Approved, `reject`: Rejected) — and the signer
/// re-authenticating, in the request's own session or with their own
/// token: their password, or (a single sign-on session) nothing, when the
/// session re-authenticated with the identity provider within
/// [`STEP_UP_WITHIN`] (consumed by this signature, whatever its outcome).
///
/// Who signs is always the request's own user. A request is refused (403
/// `signature_refused`) when it names another signer (`signer`), when its
/// session belongs to someone else, or when the user has no way to
/// re-authenticate here (no password, no fresh step-up). A wrong password
/// is a failed sign-in (401 `bad_credential`, counted by the throttle, a
/// locked user stays locked). The bearer token re-entered as `secret` no
/// longer signs over HTTP (400): it is something a machine stores, not
/// something the signer knows; the command line keeps signing with the
/// token (`ONLABEL_TOKEN` and `--as`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Why, in the signer's words (recorded and shown with the signature).
    pub reason: String,
    /// The signer's password, re-entered for this signature.
    #[serde(default)]
    pub password: Option<String>,
    /// The signer's user id as they state it (optional; `as` is the same):
    /// must be the request's own user.
    #[serde(default, alias = "as")]
    pub signer: Option<String>,
    /// Retired (issue 21): the bearer token re-entered. Refused with 400;
    /// send `password` (or take a single sign-on step-up) instead.
    #[serde(default)]
    pub secret: Option<String>,
}

fn refused(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "signature_refused", message)
}

/// The signer of a request and how they re-authenticated, or why not.
fn signer(st: &State, auth: &Auth, attempt: &crate::users::Attempt, r: &SignRequest, what: &str) -> Result<(crate::users::User, Reauth), ApiError> {
    let user = auth.require(SIGNERS, what)?.clone();
    if r.reason.trim().is_empty() {
        return Err(ApiError::bad("empty", "reason is empty: an e-signature states why"));
    }
    // The signature is the request's own user's, in their own session or with their own token.
    if let Some(named) = r.signer.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        if named != user.id {
            return Err(refused(format!(
                "this request is signed in as {}; {named:?} signs only in their own session, re-entering their own password",
                user.id
            )));
        }
    }
    let session = auth.session();
    if let Some(s) = session {
        if s.user_id != user.id {
            return Err(refused(format!("the session is not {}'s own: sign in as yourself to sign", user.id)));
        }
    }
    if r.secret.is_some() {
        return Err(ApiError::bad(
            "bad_input",
            "secret: the token no longer signs over HTTP; re-enter your password in `password` (or re-authenticate with single sign-on); the command line still signs with ONLABEL_TOKEN",
        ));
    }
    let users = Users::with_policy(&st.store, st.limits.sign_in);
    if let Some(pw) = r.password.as_deref().filter(|p| !p.is_empty()) {
        if !users.has_password(&user.id)? {
            return Err(refused(format!(
                "{} has no password to sign with: ask an admin to set one (`onlabel users set-password`){}, or sign on the command line",
                user.id,
                if session.is_some_and(|s| s.method == Method::Oidc) { ", re-authenticate with single sign-on" } else { "" }
            )));
        }
        return match users.verify_password(&user.id, pw, attempt) {
            Ok(u) if u.id == user.id => Ok((u, Reauth::Password)),
            Ok(_) => Err(refused(format!("the password did not verify {}", user.id))),
            Err(crate::users::Error::BadCredential { .. }) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_credential",
                format!("the password is not {}'s: nothing was signed (a wrong password counts as a failed sign-in)", user.id),
            )),
            Err(e) => Err(e.into()),
        };
    }
    if let Some(s) = session.filter(|s| s.method == Method::Oidc) {
        if super::auth::sessions(st).take_step_up(&s.id, STEP_UP_WITHIN)? {
            return Ok((user, Reauth::OidcStepUp));
        }
        return Err(refused(format!(
            "re-authenticate with single sign-on first (GET /auth/oidc/login?step_up=1), then sign within {} minutes; each re-authentication signs once",
            STEP_UP_WITHIN.as_secs() / 60
        )));
    }
    Err(ApiError::bad("empty", "password is empty: an e-signature re-enters the signer's password (21 CFR 11.200)"))
}

/// Approves a version in review (an mlr_reviewer who is not its author), an
/// e-signature whose meaning is Approved ([`SignRequest`]: the signer
/// re-enters their password or took a fresh single sign-on step-up); the
/// copilot runs it from the next question when it is a prompt. The answer's
/// `signature.manifestation` is what 11.50 asks to show.
#[utoipa::path(post, path = "/api/v1/prompts/{id}/approve", tag = "mlr", security(("bearer" = [])), request_body = SignRequest,
    params(("id" = String, Path, description = "NAME@N")),
    responses((status = 200, description = "{version, signature} (signature.manifestation: printed name, UTC time, meaning, reason, record SHA-256)"),
        (status = 400, description = "empty reason or password, or the retired `secret`", body = super::ErrorBody),
        (status = 401, description = "wrong password (a failed sign-in)", body = super::ErrorBody),
        (status = 403, description = "not a signer, the author, another user's session or name, no password and no fresh step-up", body = super::ErrorBody),
        (status = 409, description = "no eval evidence, or not in review", body = super::ErrorBody)))]
pub async fn approve(
    AxState(st): AxState<State>,
    auth: Auth,
    SignInAttempt(attempt): SignInAttempt,
    UrlPath(id): UrlPath<String>,
    Body(r): Body<SignRequest>,
) -> Result<Response, ApiError> {
    let (user, how) = signer(&st, &auth, &attempt, &r, "prompts approve (e-signature)")?;
    let id = version_id(&id)?;
    let t = Thresholds::read(&st.thresholds)?;
    let reg = Registry::new(&st.store, &st.root).reauthenticated_with(how);
    let (v, s) = reg.approve(&id, &r.reason, &user, &t)?;
    if v.kind == Kind::Prompt {
        if let Err(e) = reload_prompt(&st, &v.name) {
            tracing::warn!(error = %e, "the approved prompt could not be loaded; the previous one stays live");
        }
    }
    Ok(json(json!({"version": v, "signature": s})))
}

/// Swaps the registry's live version of prompt `name` into the running
/// copilot (a draft template by name, or the generator's prompt).
fn reload_prompt(st: &AppState, name: &str) -> crate::Result<()> {
    // The draft templates (`email`, `summary`, `answer`) are read from the registry by name.
    if crate::copilot::DraftTemplates::builtin_source(name).is_some() {
        if let Some(p) = crate::prompts::live_template(name, &st.store, &st.root)? {
            if let Ok(mut c) = st.copilot.write() {
                tracing::info!(prompt = %p.id(), "drafts now use the newly approved template");
                c.drafts_mut().replace(p);
            }
        }
        return Ok(());
    }
    let Some(load) = &st.reload_prompt else { return Ok(()) };
    let p = load(&st.store)?;
    if let Ok(mut c) = st.copilot.write() {
        if let Some(g) = c.grounded_mut() {
            if g.prompt.name == p.name {
                tracing::info!(prompt = %p.id(), "the copilot now runs the newly approved prompt");
                g.prompt = p;
            }
        }
    }
    Ok(())
}

/// The prompts this copilot runs, `name` → version: the generator's and
/// the draft templates.
fn running(st: &AppState) -> Vec<(String, i64)> {
    let Ok(c) = st.copilot.read() else { return Vec::new() };
    let d = c.drafts();
    let mut out: Vec<(String, i64)> = [&d.email, &d.summary, &d.answer].iter().map(|p| (p.name.clone(), i64::from(p.version))).collect();
    if let Some(g) = c.grounded() {
        out.push((g.prompt.name.clone(), i64::from(g.prompt.version)));
    }
    out
}

/// Makes the registry's live prompt versions the ones this copilot runs,
/// before each question: another replica sharing the database may have
/// approved (or rolled back to) a version since the last question. One
/// indexed query (the approved prompt versions) when nothing changed; a
/// version that cannot be loaded here is logged once and the previous one
/// stays live, as after a local approval.
pub(crate) fn follow_registry(st: &AppState) {
    let live = match Registry::new(&st.store, &st.root).live_ids(Kind::Prompt) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the registry's live prompt versions; the running ones stay live");
            return;
        }
    };
    let running = running(st);
    for id in live {
        let stale = running.iter().any(|(name, version)| *name == id.name && *version != id.version);
        if !stale {
            continue;
        }
        let key = id.to_string();
        if st.prompt_misses.lock().map(|m| m.contains(&key)).unwrap_or(true) {
            continue;
        }
        match reload_prompt(st, &id.name) {
            Ok(()) => tracing::info!(prompt = %key, "following the registry: a version approved elsewhere is live here"),
            Err(e) => {
                tracing::warn!(prompt = %key, error = %e, "the live prompt version could not be loaded here; the previous one stays live");
                if let Ok(mut m) = st.prompt_misses.lock() {
                    m.insert(key);
                }
            }
        }
    }
}

/// Rejects a version in review (an mlr_reviewer who is not its author), an
/// e-signature whose meaning is Rejected, re-authenticated as for approve.
#[utoipa::path(post, path = "/api/v1/prompts/{id}/reject", tag = "mlr", security(("bearer" = [])), request_body = SignRequest,
    params(("id" = String, Path, description = "NAME@N")),
    responses((status = 200, description = "{version, signature} (signature.manifestation as for approve)"),
        (status = 400, description = "empty reason or password, or the retired `secret`", body = super::ErrorBody),
        (status = 401, description = "wrong password (a failed sign-in)", body = super::ErrorBody),
        (status = 403, description = "as for approve", body = super::ErrorBody)))]
pub async fn reject(
    AxState(st): AxState<State>,
    auth: Auth,
    SignInAttempt(attempt): SignInAttempt,
    UrlPath(id): UrlPath<String>,
    Body(r): Body<SignRequest>,
) -> Result<Response, ApiError> {
    let (user, how) = signer(&st, &auth, &attempt, &r, "prompts reject (e-signature)")?;
    let reg = Registry::new(&st.store, &st.root).reauthenticated_with(how);
    let (v, s) = reg.reject(&version_id(&id)?, &r.reason, &user)?;
    Ok(json(json!({"version": v, "signature": s})))
}


/// Starts eval runs of a version's stored content (mlr_reviewer, compliance,
/// admin): one per gate of its kind in `evals/thresholds.toml`, each recorded
/// as evidence for that version when it is done (the metrics come from the
/// run). The first run also answers the review page's fixed questions with
/// the served prompt and with this version. `202` with the jobs to follow at
/// `GET /api/v1/evals/{id}`.
#[utoipa::path(post, path = "/api/v1/prompts/{id}/evidence", tag = "mlr", security(("bearer" = [])),
    params(("id" = String, Path, description = "NAME@N")),
    responses((status = 202, description = "{version, jobs}"), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, description = "rejected, or no gate for its kind", body = super::ErrorBody)))]
pub async fn request_evidence(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let user = auth.require(EVIDENCE, "requesting eval evidence")?.clone();
    let id = version_id(&id)?;
    let v = Registry::new(&st.store, &st.root).get(&id)?;
    if v.state == VersionState::Rejected {
        return Err(ApiError::coded("invalid_state", format!("{} was rejected: propose a new version instead", v.id())));
    }
    let gates = super::evals::gates_for(&st, v.kind)?;
    if gates.is_empty() {
        return Err(ApiError::coded(
            "no_eval_evidence",
            format!("{} has no gate for kind {}: add one before a version of this kind can be approved", st.thresholds.display(), v.kind.as_str()),
        ));
    }
    let review = if v.kind == Kind::Prompt { super::evals::review_questions(&st)? } else { Vec::new() };
    let mut jobs = Vec::new();
    for (i, g) in gates.iter().enumerate() {
        let suite = super::evals::suite_path(&st, &g.suite)?;
        let questions = if i == 0 { review.clone() } else { Vec::new() };
        jobs.push(super::evals::start_job(&st, user.clone(), suite, Some(id.clone()), questions)?);
    }
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"version": id.to_string(), "jobs": jobs}))).into_response())
}

/// The evidence runs started for a version, newest first, with their state,
/// progress and each metric against the thresholds.
#[utoipa::path(get, path = "/api/v1/prompts/{id}/evidence", tag = "mlr", security(("bearer" = [])),
    params(("id" = String, Path, description = "NAME@N")), responses((status = 200, description = "{version, jobs}"), (status = 403, body = super::ErrorBody)))]
pub async fn list_evidence(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    auth.require(EVIDENCE, "reading eval evidence")?;
    let id = version_id(&id)?;
    Registry::new(&st.store, &st.root).get(&id)?;
    Ok(json(json!({"version": id.to_string(), "jobs": super::evals::jobs_of(&st, &id.to_string())?})))
}

/// Longest passage text shown in the rendered sample prompt, characters.
pub const SAMPLE_PASSAGE_CHARS: usize = 400;

/// Passages in the rendered sample prompt.
pub const SAMPLE_PASSAGES: usize = 3;

/// The review page of a version: for a prompt, the template rendered with a
/// sample question and the passages retrieved for it (as the model is given
/// them), beside the approved (or served) version rendered the same way; the
/// fixed review questions, and the answers of both versions from the latest
/// evidence run that answered them (none yet: request evidence).
#[utoipa::path(get, path = "/api/v1/prompts/{id}/review", tag = "mlr", security(("bearer" = [])),
    params(("id" = String, Path, description = "NAME@N")),
    responses((status = 200, description = "{version, model, baseline, sample, rendered, questions, answers}"), (status = 403, body = super::ErrorBody)))]
pub async fn review(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    auth.require(PROMPT_READERS, "reviewing a prompt version")?;
    let id = version_id(&id)?;
    let reg = Registry::new(&st.store, &st.root);
    let v = reg.get(&id)?;
    let questions = super::evals::review_questions(&st)?;
    let (has_model, served) = {
        let c = st.copilot.read().map_err(|_| ApiError::internal("the copilot lock is poisoned"))?;
        (c.grounded().is_some(), c.grounded().filter(|g| g.prompt.name == v.name).map(|g| (g.prompt.id(), g.prompt.source.clone())))
    };
    // What this version is compared with: the approved version, else the prompt served now, else the file.
    let approved = reg.versions(Some(&v.name))?.into_iter().find(|o| o.state == VersionState::Approved && o.version != v.version);
    let baseline: Option<(String, String, &str)> = match (approved, served) {
        (Some(a), _) => Some((a.id(), a.content.clone(), "approved")),
        (None, Some((sid, src))) => Some((sid, src, "served")),
        (None, None) => {
            let p = st.root.join("prompts").join(format!("{}.j2", v.name));
            std::fs::read_to_string(&p).ok().map(|src| (format!("prompts/{}.j2", v.name), src, "file"))
        }
    };
    let mut rendered = serde_json::Value::Null;
    let mut sample = serde_json::Value::Null;
    if v.kind == Kind::Prompt {
        let q = questions.first().cloned().unwrap_or(crate::eval::recorded::ReviewQuestion {
            question: "What are the monitoring requirements?".into(),
            product: None,
        });
        let passages = sample_passages(&st, &q)?;
        let render = |src: &str| render_template(src, &q.question, &passages);
        rendered = json!({
            "candidate": render(&v.content),
            "baseline": baseline.as_ref().map(|(_, src, _)| render(src)),
        });
        sample = json!({"question": q.question, "product": q.product, "passages": passages});
    }
    let answers = super::evals::jobs_of(&st, &id.to_string())?
        .into_iter()
        .find(|j| j.state == "done" && j.result.as_ref().is_some_and(|r| r.get("review").is_some_and(|x| x["questions"].as_array().is_some_and(|a| !a.is_empty()))))
        .map(|j| json!({"job": j.id, "finished_at": j.finished_at, "review": j.result.as_ref().map(|r| r["review"].clone()), "notes": j.result.as_ref().map(|r| r["notes"].clone())}));
    Ok(json(json!({
        "version": v.id(),
        "kind": v.kind,
        "model": has_model,
        "baseline": baseline.as_ref().map(|(bid, _, from)| json!({"id": bid, "from": from})),
        "sample": sample,
        "rendered": rendered,
        "questions": questions,
        "answers": answers,
    })))
}

/// The passages the index retrieves for a sample question (as a rep would
/// ask it), numbered as the prompt numbers them, each cut to [`SAMPLE_PASSAGE_CHARS`].
fn sample_passages(st: &State, q: &crate::eval::recorded::ReviewQuestion) -> Result<Vec<serde_json::Value>, ApiError> {
    let c = st.copilot.read().map_err(|_| ApiError::internal("the copilot lock is poisoned"))?;
    let filter = crate::index::Filter::for_role("rep", q.product.as_deref(), super::today());
    let found = c.index().search(&q.question, &filter, SAMPLE_PASSAGES)?;
    Ok(found
        .hits
        .iter()
        .take(SAMPLE_PASSAGES)
        .enumerate()
        .map(|(i, h)| {
            let mut text: String = h.passage.text.chars().take(SAMPLE_PASSAGE_CHARS).collect();
            if h.passage.text.chars().count() > SAMPLE_PASSAGE_CHARS {
                text.push('…');
            }
            json!({"n": i + 1, "text": text, "label": format!("{} §{}", h.passage.doc_id, h.passage.section)})
        })
        .collect())
}

/// A prompt template rendered as the generator renders it (minijinja, the
/// `system` part and the `user` part), or why it does not render.
fn render_template(source: &str, question: &str, passages: &[serde_json::Value]) -> serde_json::Value {
    let part = |part: &str| -> Result<String, String> {
        let mut env = minijinja::Environment::new();
        env.add_template("p", source).map_err(|e| e.to_string())?;
        let t = env.get_template("p").map_err(|e| e.to_string())?;
        t.render(minijinja::context! { part => part, question => question, passages => passages }).map(|s| s.trim().to_string()).map_err(|e| e.to_string())
    };
    match (part("system"), part("user")) {
        (Ok(system), Ok(user)) => json!({"system": system, "user": user}),
        (Err(e), _) | (_, Err(e)) => json!({"error": format!("the template does not render: {e}")}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_diff_marks_only_the_words_that_changed() {
        let d = word_diff("Answer in one short sentence.", "Answer in two short sentences.");
        let ops: Vec<(&str, &str)> = d.iter().map(|r| (r.op, r.text.as_str())).collect();
        assert_eq!(ops[0], ("equal", "Answer in "));
        assert!(ops.contains(&("delete", "one")) && ops.contains(&("insert", "two")), "{ops:?}");
        assert!(ops.iter().any(|(op, t)| *op == "delete" && t.contains("sentence.")), "{ops:?}");
        let joined: String = d.iter().filter(|r| r.op != "delete").map(|r| r.text.as_str()).collect();
        assert_eq!(joined, "Answer in two short sentences.");
    }

    #[test]
    fn the_sample_prompt_renders_both_parts_or_says_why_not() {
        let p = vec![json!({"n": 1, "text": "Monitor ALT monthly.", "label": "x §1"})];
        let r = render_template("{% if part == 'system' %}Be brief.{% else %}[{{ passages[0].n }}] {{ passages[0].text }} Q: {{ question }}{% endif %}", "How often?", &p);
        assert_eq!(r["system"], "Be brief.");
        assert_eq!(r["user"], "[1] Monitor ALT monthly. Q: How often?");
        let bad = render_template("{% if part %}", "q", &p);
        assert!(bad["error"].as_str().is_some_and(|e| e.contains("does not render")), "{bad}");
    }
}
