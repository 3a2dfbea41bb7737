//! Bearer tokens → registry users, and the role each route admits.
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
use crate::users::{Attempt, Role, User, Users};

/// Cached bearer checks: token lookup key → (user id, argon2id hash checked).
#[derive(Default)]
pub struct TokenCache {
    checked: Mutex<HashMap<String, (String, String)>>,
}

/// Most cached checks kept (oldest forgotten first is not needed: the cache is
/// cleared when full; the cost is one argon2 check per active token).
const CACHE_MAX: usize = 10_000;

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Auth(pub User);

impl Auth {
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
            return Err(unauthorized("no token: send `Authorization: Bearer TOKEN` (the token `onlabel users add` printed)"));
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
        Ok(Auth(user))
    }
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
