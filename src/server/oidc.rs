//! Single sign-on over HTTP: `GET /auth/oidc/config`, `GET /auth/oidc/login`
//! and `GET /auth/oidc/callback` (the protocol, the flows and the users are
//! [`crate::users::oidc`]).
//!
//! - `login` starts the authorization-code flow: it records the flow, sets
//!   the `onlabel_oidc` cookie that ties the callback to this browser
//!   (`SameSite=Lax`: the provider's redirect back is a cross-site
//!   navigation) and redirects to the provider. `?step_up=1` (with the
//!   session cookie of a signed-in person) asks the provider for
//!   `prompt=login&max_age=0`: the re-authentication an e-signature takes.
//! - `callback` finishes it. A sign-in starts a session (method `oidc`),
//!   sets the session cookie and sends the browser to the UI; a step-up
//!   marks the session it was started from (the session cookie is
//!   `SameSite=Strict` and does not come with the provider's redirect, so
//!   the flow remembers the session). Every refusal is a page that says why
//!   and links back to the sign-in page, with the status and code of
//!   `docs/errors.md`, and goes through the sign-in throttle.
//! - `config` tells the sign-in page whether to offer single sign-on.
//!
//! These routes are pages, not JSON: they are where a browser navigates.

use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{ApiError, AppState, State};
use crate::users::oidc::{self, Callback, Error, Sso, StepUp};
use super::auth::sessions;
use crate::users::sessions::Method;
use crate::users::{Attempt, Users};

/// The cookie that ties a callback to the browser that started the flow.
pub const FLOW_COOKIE: &str = "onlabel_oidc";

impl AppState {
    /// Turns on single sign-on with `sso` (`onlabel serve` with an `[oidc]`
    /// table in its config file).
    pub fn with_oidc(mut self, sso: Sso) -> AppState {
        self.oidc = Some(Arc::new(sso));
        self
    }
}

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/auth/oidc/config", get(config))
        .route("/auth/oidc/login", get(login))
        .route("/auth/oidc/callback", get(callback))
}

/// Whether this server offers single sign-on (the sign-in page asks).
#[utoipa::path(get, path = "/auth/oidc/config", tag = "sessions",
    responses((status = 200, description = "`{\"enabled\": bool, \"login\": \"/auth/oidc/login\"}`; no credential needed")))]
pub async fn config(AxState(st): AxState<State>) -> Response {
    let enabled = st.oidc.is_some();
    super::json(serde_json::json!({"enabled": enabled, "login": enabled.then_some("/auth/oidc/login")}))
}

/// The query of `GET /auth/oidc/login`.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// `1` for the step-up of an e-signature (`prompt=login&max_age=0`);
    /// needs the session cookie of the signed-in person.
    #[serde(default)]
    step_up: Option<String>,
    /// Where the UI goes afterwards: a local path (`/#/mlr/…`), else `/`.
    #[serde(default, rename = "return")]
    return_to: Option<String>,
}

/// Starts single sign-on: redirects to the identity provider.
#[utoipa::path(get, path = "/auth/oidc/login", tag = "sessions",
    params(("step_up" = Option<String>, Query, description = "`1` for the re-authentication of an e-signature (prompt=login, max_age=0); needs the session cookie"),
        ("return" = Option<String>, Query, description = "where the UI goes afterwards: a local path such as `/#/mlr/NAME@N`, else `/`")),
    responses(
        (status = 303, description = "to the identity provider, with state, nonce and a PKCE challenge; sets the onlabel_oidc cookie"),
        (status = 401, description = "a step-up without a signed-in session (a page)"),
        (status = 404, description = "single sign-on is not set up on this server (a page)"),
        (status = 502, description = "the identity provider's discovery failed (a page)"),
    ))]
pub async fn login(AxState(st): AxState<State>, Query(q): Query<LoginQuery>, headers: HeaderMap) -> Response {
    let Some(sso) = st.oidc.clone() else {
        return not_configured();
    };
    let step_up = matches!(q.step_up.as_deref(), Some("1" | "true"));
    let return_to = q.return_to.unwrap_or_else(|| "/".into());
    let cookie = super::auth::session_cookie(&headers);
    let st2 = st.clone();
    let started = tokio::task::spawn_blocking(move || -> Result<oidc::Started, Page> {
        let step = if step_up {
            let Some(cookie) = cookie else {
                return Err(Page::new(StatusCode::UNAUTHORIZED, "unauthorized", "Sign in first", "A re-authentication for a signature needs you to be signed in in this browser."));
            };
            let (user, session) = sessions(&st2)
                .check(&cookie, chrono::Utc::now())
                .map_err(|e| Page::new(StatusCode::UNAUTHORIZED, "unauthorized", "Sign in first", &e.to_string()))?;
            match oidc::identity_of(&st2.store, &user.id).map_err(Page::internal)? {
                Some((issuer, _)) if issuer == sso.settings().issuer.as_str() => {}
                _ => {
                    return Err(Page::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "Not a single sign-on account",
                        &format!("{} does not sign in through the identity provider: sign with your password instead.", user.id),
                    ))
                }
            }
            Some(StepUp { user: user.id, session: session.id })
        } else {
            None
        };
        sso.begin(&st2.store, &return_to, step).map_err(Page::from)
    })
    .await;
    match started {
        Ok(Ok(s)) => {
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, s.url), (header::CACHE_CONTROL, "no-store".into())]).into_response();
            let secure = if st.limits.secure_cookie || st.oidc.as_ref().is_some_and(|o| o.settings().secure_cookies()) { "; Secure" } else { "" };
            let ttl = st.oidc.as_ref().map_or(600, |o| o.settings().flow_ttl.num_seconds());
            let c = format!("{FLOW_COOKIE}={}; Path=/auth/oidc; Max-Age={ttl}; HttpOnly; SameSite=Lax{secure}", s.browser);
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Ok(Err(page)) => page.into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Finishes single sign-on: the identity provider redirects here.
#[utoipa::path(get, path = "/auth/oidc/callback", tag = "sessions",
    params(("state" = Option<String>, Query, description = "the state sent to the provider"),
        ("code" = Option<String>, Query, description = "the authorization code"),
        ("error" = Option<String>, Query, description = "the provider's error instead of a code")),
    responses(
        (status = 303, description = "signed in (sets the session cookie) or stepped up; on to the UI"),
        (status = 400, description = "unknown, expired, used or other-browser state (a page)"),
        (status = 401, description = "the code or ID token was refused, or the provider refused (a page)"),
        (status = 403, description = "no group maps to a role, a disabled or locked user, or a refused step-up (a page)"),
        (status = 404, description = "single sign-on is not set up on this server (a page)"),
        (status = 429, description = "too many failed sign-ins from this address (a page, Retry-After)"),
        (status = 502, description = "the identity provider failed (a page)"),
    ))]
pub async fn callback(AxState(st): AxState<State>, Query(q): Query<Callback>, parts: Parts) -> Response {
    let Some(sso) = st.oidc.clone() else {
        return not_configured();
    };
    let attempt = super::auth::attempt(&parts);
    let browser = cookie(&parts.headers, FLOW_COOKIE);
    let st2 = st.clone();
    let done = tokio::task::spawn_blocking(move || finish(&st2, &sso, &q, browser.as_deref(), &attempt)).await;
    let mut r = match done {
        Ok(Ok(Done { location, session_cookie })) => {
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, location), (header::CACHE_CONTROL, "no-store".into())]).into_response();
            if let Some(c) = session_cookie {
                r.headers_mut().append(header::SET_COOKIE, c);
            }
            r
        }
        Ok(Err(page)) => page.into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    };
    // The flow cookie is spent either way.
    r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_static("onlabel_oidc=; Path=/auth/oidc; Max-Age=0; HttpOnly; SameSite=Lax"));
    r
}

/// Where the callback sends the browser, and the session cookie it sets.
struct Done {
    location: String,
    session_cookie: Option<HeaderValue>,
}

/// The callback's work (blocking): verify, map, create or update the user,
/// then start a session or mark the step-up. Failures are recorded through
/// the sign-in throttle and become pages.
fn finish(st: &State, sso: &Sso, q: &Callback, browser: Option<&str>, attempt: &Attempt) -> Result<Done, Page> {
    let policy = st.limits.sign_in;
    Users::with_policy(&st.store, policy).gate(attempt).map_err(|e| Page::from(Error::Users(e)))?;
    let fail = |err: Error, user: Option<&str>, tried: &str| -> Page {
        if matches!(
            err,
            Error::Flow { .. } | Error::Denied { .. } | Error::Token { .. } | Error::NoRole { .. } | Error::Disabled { .. } | Error::StepUp { .. } | Error::Users(_)
        ) {
            if let Err(e) = oidc::record_failure(&st.store, &policy, attempt, user, tried, &err) {
                tracing::error!(error = %e, "recording a failed single sign-on");
            }
        }
        tracing::info!(code = err.code(), "single sign-on refused");
        Page::from(err)
    };
    let verified = sso.finish(&st.store, q, browser).map_err(|e| fail(e, None, "unknown"))?;
    let id = &verified.identity;
    let signed = oidc::sign_in(&st.store, sso.settings(), id).map_err(|e| {
        let user = match &e {
            Error::Disabled { user } => Some(user.clone()),
            _ => None,
        };
        fail(e, user.as_deref(), &id.subject)
    })?;
    if let Some(step) = &verified.step_up {
        oidc::check_step_up(sso.settings(), &signed, id, step, chrono::Utc::now())
            .map_err(|e| fail(e, Some(&step.user), &id.subject))?;
        sessions(st).mark_step_up(&step.session).map_err(|e| {
            fail(Error::StepUp { reason: format!("the session to sign in has ended ({e}); sign in again") }, Some(&step.user), &id.subject)
        })?;
        oidc::audit_step_up(&st.store, &signed.user, id, &step.session).map_err(Page::internal)?;
        return Ok(Done { location: verified.return_to, session_cookie: None });
    }
    let new = sessions(st).start(&signed.user, Method::Oidc).map_err(|e| Page::from(Error::Users(e)))?;
    oidc::audit_sign_in(&st.store, &signed, id, new.session.short_id()).map_err(Page::internal)?;
    let set = super::sessions::set_cookie(st, &new).map_err(|e| Page::internal(format!("{:?}", e.code())))?;
    Ok(Done { location: verified.return_to, session_cookie: Some(set) })
}



/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    super::auth::cookie(headers, name).filter(|v| !v.is_empty())
}

fn not_configured() -> Response {
    Page::from(Error::NotConfigured).into_response()
}

/// A refusal as a page a person can read: its title, what happened and what
/// to do, the stable code (also in the `x-error-code` header) and a link
/// back to the sign-in page.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    code: &'static str,
    title: String,
    message: String,
    retry_after: Option<u64>,
}

impl Page {
    fn new(status: StatusCode, code: &'static str, title: &str, message: &str) -> Page {
        Page { status, code, title: title.into(), message: message.into(), retry_after: None }
    }

    /// A failure on the server's side: logged, said generically.
    fn internal(e: impl std::fmt::Display) -> Page {
        tracing::error!(error = %e, "single sign-on failed on the server's side");
        Page::new(StatusCode::BAD_GATEWAY, "oidc_provider_failed", "Single sign-on failed", "Something failed on OnLabel's side; try again, and tell your administrator if it persists.")
    }
}

impl From<Error> for Page {
    fn from(e: Error) -> Page {
        let code = e.code();
        let status = StatusCode::from_u16(crate::error::http_status(code)).unwrap_or(StatusCode::BAD_GATEWAY);
        let title = match &e {
            Error::NotConfigured => "Single sign-on is not set up",
            Error::NoRole { .. } => "No OnLabel role for your account",
            Error::Flow { .. } => "This sign-in link cannot be used",
            Error::StepUp { .. } => "Re-authentication not accepted",
            Error::Disabled { .. } | Error::Users(_) => "Sign-in refused",
            Error::Denied { .. } => "The identity provider refused the sign-in",
            _ => "Single sign-on failed",
        };
        let retry_after = match &e {
            Error::Users(crate::users::Error::Throttled { retry_after_secs }) => Some(*retry_after_secs),
            _ => None,
        };
        if status.is_server_error() {
            // Provider or store failures: the detail to the log, a plain message to the page.
            tracing::error!(code, error = %e, "single sign-on failed");
            let message = match &e {
                Error::Provider { .. } => "The identity provider did not answer as expected. Try again in a minute; tell your administrator if it persists.".to_string(),
                Error::TooManyFlows { .. } => e.to_string(),
                _ => "Something failed on OnLabel's side; try again, and tell your administrator if it persists.".to_string(),
            };
            return Page { status: if status == StatusCode::INTERNAL_SERVER_ERROR { StatusCode::BAD_GATEWAY } else { status }, code, title: title.into(), message, retry_after };
        }
        Page { status, code, title: title.into(), message: e.to_string(), retry_after }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let esc = |s: &str| html_escape::encode_text(s).to_string();
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>OnLabel: {title}</title><link rel=\"stylesheet\" href=\"/app.css\"></head>\
             <body><main class=\"sso-page\"><h1>{title}</h1><p id=\"sso-error\" data-code=\"{code}\">{message}</p>\
             <p class=\"muted\">Code <code>{code}</code> (docs/errors.md).</p><p><a id=\"sso-back\" href=\"/\">Back to sign-in</a></p></main></body></html>\n",
            title = esc(&self.title),
            message = esc(&self.message),
            code = self.code,
        );
        let mut r = (self.status, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body).into_response();
        r.headers_mut().insert("x-error-code", HeaderValue::from_static(self.code));
        if let Some(s) = self.retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            r.headers_mut().insert(header::RETRY_AFTER, s);
        }
        r
    }
}
