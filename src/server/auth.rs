//! Bearer tokens and session cookies → registry users, and the role each
//! route admits.
//!
//! A request is signed in by one of two credentials:
//!
//! - `Authorization: Bearer TOKEN` (service accounts, the API, the command
//!   line): checked as below. When both are present the bearer token wins.
//! - the session cookie [`COOKIE`] a browser got from `POST /api/v1/sessions`
//!   ([`crate::users::Sessions`]): the session must be open (not signed out,
//!   not past its idle or absolute timeout, its user enabled). A cookie is
//!   sent by the browser on its own, so every request that is not `GET`,
//!   `HEAD` or `OPTIONS` must also carry the session's CSRF token in
//!   [`CSRF_HEADER`] (403 `csrf` otherwise): another site can make the
//!   browser send the cookie, but cannot read the token. `SameSite=Strict`
//!   on the cookie is the second line of defence.
//!
//! A token is checked against its user's argon2id hash once; the check is
//! then cached by the token's SHA-256 together with the hash it was checked
//! against. Every request still re-reads the user row (one indexed SELECT):
//! a disabled user or a rotated token stops working at once, because the
//! cached hash no longer matches the stored one.
//!
//! Failed sign-ins are throttled per client address (the TCP peer, an IPv6
//! client by its /64; `X-Forwarded-For` is not trusted) by the store's
//! [`crate::users::SignInPolicy`] ([`Limits::sign_in`](super::Limits)):
//! while an address is throttled every request from it that carries a
//! credential is answered `429` with `Retry-After`, before any token check.
//! A locked user is answered `403 user_locked`.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::{ApiError, State};
use crate::users::{Attempt, Role, Session, Sessions, User, Users};

/// The session cookie's name.
pub const COOKIE: &str = "onlabel_session";
/// The header that carries the session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Cached bearer checks: token lookup key → (user id, argon2id hash checked).
#[derive(Default)]
pub struct TokenCache {
    checked: Mutex<HashMap<String, (String, String)>>,
}

/// Most cached checks kept (oldest forgotten first is not needed: the cache is
/// cleared when full; the cost is one argon2 check per active token).
const CACHE_MAX: usize = 10_000;

/// The signed-in user of a request, and their session when the request was
/// signed in with the session cookie (`None` for a bearer token).
#[derive(Debug, Clone)]
pub struct Auth(pub User, pub Option<Session>);

impl Auth {
    /// The browser session this request came with (`None`: a bearer token).
    /// Its `method` says how the person signed in, `step_up_at` whether they
    /// re-authenticated lately, `user_id` whose it is.
    pub fn session(&self) -> Option<&Session> {
        self.1.as_ref()
    }

    /// 403 unless the user's role is one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<&User, ApiError> {
        if roles.contains(&self.0.role) {
            return Ok(&self.0);
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} is signed in as {}; {what} needs the role {}",
                self.0.id,
                self.0.role.as_str(),
                roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or ")
            ),
        ))
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl FromRequestParts<State> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Auth, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            if let Some(cookie) = session_cookie(&parts.headers) {
                return from_cookie(parts, state, cookie).await;
            }
            return Err(unauthorized(
                "no token: send `Authorization: Bearer TOKEN` (the token `onlabel users add` printed), or sign in with your user id and password (POST /api/v1/sessions, the web UI's sign-in) for a session cookie",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer TOKEN`"))?
            .to_string();
        let attempt = attempt(parts);
        let st = state.clone();
        let user = tokio::task::spawn_blocking(move || check(&st, &token, &attempt))
            .await
            .map_err(ApiError::internal)??;
        tracing::Span::current().record("user", user.id.as_str());
        Ok(Auth(user, None))
    }
}

/// The value of the [`COOKIE`] cookie among the request's `Cookie` headers.
pub(crate) fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub(crate) fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// True for methods that change nothing (no CSRF token needed).
fn is_safe(m: &axum::http::Method) -> bool {
    matches!(*m, axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS)
}

/// The sessions of the server's store, ending by its policy.
pub(crate) fn sessions(state: &State) -> Sessions<'_> {
    Sessions::new(&state.store, state.limits.sessions)
}

/// Signs a request in with its session cookie (see the module doc).
async fn from_cookie(parts: &Parts, state: &State, cookie: String) -> Result<Auth, ApiError> {
    let attempt = attempt(parts);
    let st = state.clone();
    let (user, session) = tokio::task::spawn_blocking(move || {
        Users::with_policy(&st.store, st.limits.sign_in).gate(&attempt)?;
        sessions(&st).check(&cookie, chrono::Utc::now())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match e {
        crate::users::Error::SessionRefused { .. } => unauthorized(&format!(
            "{e} (POST /api/v1/sessions with your user id and password, or the web UI's sign-in)"
        )),
        e => e.into(),
    })?;
    if !is_safe(&parts.method) {
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !crate::users::sessions::same_secret(sent.trim(), &session.csrf) {
            let why = if sent.is_empty() { "without the X-CSRF-Token header" } else { "with an X-CSRF-Token that is not this session's" };
            return Err(ApiError::coded(
                "csrf",
                format!(
                    "{} {} was sent with the session cookie {why}: a request that changes something must carry the session's `csrf` value \
                     (from POST /api/v1/sessions or GET /api/v1/sessions/current) in X-CSRF-Token; the web UI does this itself — reload the page",
                    parts.method,
                    parts.uri.path()
                ),
            ));
        }
    }
    tracing::Span::current().record("user", user.id.as_str());
    Ok(Auth(user, Some(session)))
}

/// What a failed sign-in of this request records: the peer address, the
/// method, the matched route template, and (hashed) the path.
pub(crate) fn attempt(parts: &Parts) -> Attempt {
    let peer = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let route = parts.extensions.get::<MatchedPath>().map(|m| m.as_str());
    Attempt::http(peer, parts.method.as_str(), route, parts.uri.path())
}

/// The [`Attempt`] of a request, for handlers that check a credential
/// themselves (an e-signature re-enters the signer's token).
pub struct SignInAttempt(pub Attempt);

impl FromRequestParts<State> for SignInAttempt {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &State) -> Result<SignInAttempt, ApiError> {
        Ok(SignInAttempt(attempt(parts)))
    }
}

/// The user of `token`, from the cache when its check still holds.
fn check(state: &State, token: &str, attempt: &Attempt) -> Result<User, ApiError> {
    let key = crate::users::lookup_key(token);
    let users = Users::with_policy(&state.store, state.limits.sign_in);
    users.gate(attempt)?;
    let cached = state.tokens.checked.lock().ok().and_then(|c| c.get(&key).cloned());
    if let Some((id, hash)) = cached {
        if let Some((u, current)) = users.current_hash(&id)? {
            if current == hash && u.disabled_at.is_none() && u.locked_at.is_none() {
                return Ok(u);
            }
        }
        if let Ok(mut c) = state.tokens.checked.lock() {
            c.remove(&key);
        }
    }
    match users.authenticate_bearer(token, attempt) {
        Ok((u, hash)) => {
            if let Ok(mut c) = state.tokens.checked.lock() {
                if c.len() >= CACHE_MAX {
                    c.clear();
                }
                c.insert(key, (u.id.clone(), hash));
            }
            Ok(u)
        }
        Err(crate::users::Error::BadCredential { reason, .. }) => {
            Err(unauthorized(&format!("the token was not accepted ({reason}); ask an admin for a new one (`onlabel users rotate`)")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Every role (routes any signed-in user may use).
pub const ANY: &[Role] = &[Role::Rep, Role::MlrReviewer, Role::Compliance, Role::Medical, Role::Admin];
/// Who works cases.
pub const MEDICAL: &[Role] = &[Role::Medical, Role::Admin];
/// Who reads the audit log and runs evals.
pub const COMPLIANCE: &[Role] = &[Role::Compliance, Role::Admin];
/// Who reads prompt versions, their content, diffs and evidence: every role
/// but `rep` (a rep gets answers, never the instructions behind them).
pub const PROMPT_READERS: &[Role] = &[Role::MlrReviewer, Role::Compliance, Role::Medical, Role::Admin];
/// Who proposes and submits prompt versions.
pub const AUTHORS: &[Role] = &[Role::MlrReviewer, Role::Admin];
/// Who signs approvals and rejections.
pub const SIGNERS: &[Role] = &[Role::MlrReviewer];
/// Who may request (and follow) eval evidence for a version: the reviewers
/// who need it to sign, and compliance.
pub const EVIDENCE: &[Role] = &[Role::MlrReviewer, Role::Compliance, Role::Admin];
