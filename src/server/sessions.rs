//! Password sign-in and browser sessions: `POST /api/v1/sessions` (sign in),
//! `GET /api/v1/sessions/current` (who is signed in, and the CSRF token a new
//! tab needs), `DELETE /api/v1/sessions` (sign out),
//! `POST /api/v1/sessions/end-all` (sign out everywhere).
//!
//! The session itself lives in the store ([`crate::users::Sessions`]); the
//! browser holds only the cookie [`COOKIE`]: `HttpOnly` (page scripts never
//! see it), `SameSite=Strict` (other sites' requests do not carry it),
//! `Path=/`, `Max-Age` = the absolute timeout, and `Secure` when the server
//! is told clients reach it over https ([`super::Limits::secure_cookie`]).
//! The CSRF token comes in the JSON body instead, for the page to send back
//! in `X-CSRF-Token` (see [`super::auth`]).
//!
//! Every sign-in and sign-out is audited by [`crate::users`]: a failed one as
//! `login_failed` (throttled and coalesced like a wrong token), a good one as
//! `session_started`, a sign-out as `session_ended` / `sessions_ended`.

use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::auth::{self, session_cookie, Auth, SignInAttempt, ANY, COOKIE};
use super::{ApiError, Body, State};
use crate::users::{password, Method, NewSession, Session, User, Users};

/// Longest user id accepted in a sign-in body, characters (ids are at most
/// 64; longer is refused before any lookup).
pub const MAX_USER_CHARS: usize = 64;

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/sessions", post(sign_in).delete(sign_out))
        .route("/api/v1/sessions/current", get(current))
        .route("/api/v1/sessions/end-all", post(end_all))
}

/// A password sign-in.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// The user id (`onlabel users list`).
    pub user: String,
    /// The user's password (set with `onlabel users add --password-stdin` or `onlabel users set-password`).
    pub password: String,
}

/// The user part of a session answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionUser {
    /// User id.
    pub id: String,
    /// Full name.
    pub name: String,
    /// Role.
    pub role: String,
}

/// A session, as the page sees it (never the cookie).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionBody {
    /// Who is signed in.
    pub user: SessionUser,
    /// `password` or `oidc` for a session; `bearer` when the request used a token (no session).
    pub method: String,
    /// The value to send in `X-CSRF-Token` on every request that changes something (null without a session).
    pub csrf: Option<String>,
    /// The session's short id (the first 12 hex characters of its hash, as in the audit log).
    pub session: Option<String>,
    /// When the session started.
    pub created_at: Option<String>,
    /// When the person last proved who they are (sign-in or step-up).
    pub auth_time: Option<String>,
    /// When it ends if no request comes before.
    pub idle_expires_at: Option<String>,
    /// When it ends however active (sign in again then).
    pub expires_at: Option<String>,
    /// The idle timeout, seconds.
    pub idle_timeout_secs: u64,
    /// The absolute timeout, seconds.
    pub absolute_timeout_secs: u64,
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn body(st: &State, user: &User, session: Option<&Session>) -> SessionBody {
    let p = st.limits.sessions;
    SessionBody {
        user: SessionUser { id: user.id.clone(), name: user.name.clone(), role: user.role.as_str().to_string() },
        method: session.map_or("bearer", |s| s.method.as_str()).to_string(),
        csrf: session.map(|s| s.csrf.clone()),
        session: session.map(|s| s.short_id().to_string()),
        created_at: session.map(|s| stamp(s.created_at)),
        auth_time: session.map(|s| stamp(s.auth_time)),
        idle_expires_at: session.map(|s| stamp(s.idle_expires_at)),
        expires_at: session.map(|s| stamp(s.expires_at)),
        idle_timeout_secs: p.idle_secs,
        absolute_timeout_secs: p.absolute_secs,
    }
}

/// The `Set-Cookie` value that gives the browser `new`'s cookie: what
/// another sign-in route (single sign-on) answers with too.
pub(crate) fn set_cookie(st: &State, new: &NewSession) -> Result<HeaderValue, ApiError> {
    let secure = if st.limits.secure_cookie { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        new.cookie, st.limits.sessions.absolute_secs
    ))
    .map_err(ApiError::internal)
}

/// The `Set-Cookie` value that makes the browser forget the cookie.
pub(crate) fn clear_cookie(st: &State) -> HeaderValue {
    let secure = if st.limits.secure_cookie { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static("onlabel_session=; Path=/; Max-Age=0"))
}

/// An answer that starts `new` in the browser: `201` with the cookie and the
/// session's body (CSRF token included).
pub(crate) fn signed_in(st: &State, user: &User, new: &NewSession) -> Result<Response, ApiError> {
    let mut r = (StatusCode::CREATED, axum::Json(body(st, user, Some(&new.session)))).into_response();
    r.headers_mut().insert(header::SET_COOKIE, set_cookie(st, new)?);
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Signs in with a user id and password: sets the session cookie and answers
/// the session (with its CSRF token). A wrong password, an unknown or
/// disabled user, or a user without a password is `401` and counts as a
/// failed sign-in (the sign-in throttle: `429` with `Retry-After`, then the
/// user is locked, `403 user_locked`).
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = SignInRequest,
    responses((status = 201, description = "signed in: the `onlabel_session` cookie is set (HttpOnly, SameSite=Strict); the body has the CSRF token", body = SessionBody),
        (status = 401, description = "unknown user, wrong password, disabled, or no password set", body = super::ErrorBody),
        (status = 403, description = "the user is locked (`user_locked`)", body = super::ErrorBody),
        (status = 413, description = "a user id or password over its limit", body = super::ErrorBody),
        (status = 429, description = "too many failed sign-ins (Retry-After)", body = super::ErrorBody)))]
pub async fn sign_in(AxState(st): AxState<State>, SignInAttempt(attempt): SignInAttempt, Body(r): Body<SignInRequest>) -> Result<Response, ApiError> {
    let chars = r.password.chars().count();
    if chars > password::MAX_CHARS * 4 {
        // Far over any password that can have been set: not even hashed.
        return Err(ApiError::too_large(format!(
            "the password has {chars} characters; a password has at most {} (see `onlabel users set-password --help`)",
            password::MAX_CHARS
        )));
    }
    if r.user.chars().count() > MAX_USER_CHARS {
        return Err(ApiError::too_large(format!("a user id has at most {MAX_USER_CHARS} characters")));
    }
    let st2 = st.clone();
    let (user, new) = tokio::task::spawn_blocking(move || -> Result<_, crate::users::Error> {
        let user = Users::with_policy(&st2.store, st2.limits.sign_in).verify_password(r.user.trim(), &r.password, &attempt)?;
        let new = auth::sessions(&st2).start(&user, Method::Password)?;
        Ok((user, new))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match e {
        crate::users::Error::BadCredential { .. } => ApiError::coded(
            "unauthorized",
            "sign-in failed: unknown user, wrong password, or a disabled user (a user without a password gets one with `onlabel users set-password`)",
        ),
        e => e.into(),
    })?;
    tracing::Span::current().record("user", user.id.as_str());
    signed_in(&st, &user, &new)
}

/// Who is signed in: with the session cookie, the session and its CSRF token
/// (so a second tab needs no new sign-in); with a bearer token, the user and
/// `method: "bearer"`.
#[utoipa::path(get, path = "/api/v1/sessions/current", tag = "sessions", security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "the user and the session", body = SessionBody),
        (status = 401, description = "no session (or it ended: signed out, idle, absolute limit, user disabled)", body = super::ErrorBody)))]
pub async fn current(AxState(st): AxState<State>, auth: Auth) -> Result<Response, ApiError> {
    auth.require(ANY, "reading the current session")?;
    let mut r = axum::Json(body(&st, &auth.0, auth.session())).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Signs out of this browser session: the session ends on the server and the
/// cookie is cleared. Needs `X-CSRF-Token`. A request with a bearer token
/// has no session to end (`400`; a token is revoked with `onlabel users rotate`).
#[utoipa::path(delete, path = "/api/v1/sessions", tag = "sessions", security(("session" = [])),
    responses((status = 204, description = "signed out; the cookie is cleared"),
        (status = 400, description = "the request used a bearer token, not a session", body = super::ErrorBody),
        (status = 401, description = "no session (or it had already ended)", body = super::ErrorBody),
        (status = 403, description = "no or wrong X-CSRF-Token (`csrf`)", body = super::ErrorBody)))]
pub async fn sign_out(AxState(st): AxState<State>, auth: Auth, headers: HeaderMap) -> Result<Response, ApiError> {
    auth.require(ANY, "signing out")?;
    if auth.session().is_none() {
        return Err(ApiError::coded(
            "bad_request",
            "this request is signed in with a bearer token, which has no session to end; a token is revoked with `onlabel users rotate`",
        ));
    }
    let cookie = session_cookie(&headers).unwrap_or_default();
    let st2 = st.clone();
    tokio::task::spawn_blocking(move || auth::sessions(&st2).end(&cookie)).await.map_err(ApiError::internal)??;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::SET_COOKIE, clear_cookie(&st));
    Ok(r)
}

/// How many sessions "sign out everywhere" ended.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndAllBody {
    /// The user signed out.
    pub user: String,
    /// Sessions ended (this one included, when the request used one).
    pub ended: usize,
}

/// Signs the user out everywhere: every open session of theirs ends (other
/// browsers, other devices, this one). With the session cookie it needs
/// `X-CSRF-Token`; with a bearer token it ends the token owner's sessions.
#[utoipa::path(post, path = "/api/v1/sessions/end-all", tag = "sessions", security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "the sessions ended; the cookie is cleared", body = EndAllBody),
        (status = 401, body = super::ErrorBody),
        (status = 403, description = "no or wrong X-CSRF-Token (`csrf`)", body = super::ErrorBody)))]
pub async fn end_all(AxState(st): AxState<State>, auth: Auth) -> Result<Response, ApiError> {
    let user = auth.require(ANY, "signing out everywhere")?.clone();
    let st2 = st.clone();
    let id = user.id.clone();
    let ended = tokio::task::spawn_blocking(move || auth::sessions(&st2).end_all(&id, &user)).await.map_err(ApiError::internal)??;
    let mut r = axum::Json(EndAllBody { user: auth.0.id.clone(), ended }).into_response();
    if auth.session().is_some() {
        r.headers_mut().insert(header::SET_COOKIE, clear_cookie(&st));
    }
    Ok(r)
}
