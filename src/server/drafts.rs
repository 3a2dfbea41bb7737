//! The drafts a rep takes away from a visit: `POST /api/v1/email` (a
//! follow-up email, never sent) and `POST /api/v1/summarize` (a structured
//! call summary from free-text notes).

use axum::extract::State as AxState;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::ask::check_text;
use super::auth::{Auth, ANY};
use super::me::known_product;
use super::{client_request_id, json, request_id, today, ApiError, Body, State};
use crate::copilot::trace::Actor;
use crate::copilot::{Request, Requester, Task, Trace};

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/email", post(email))
        .route("/api/v1/summarize", post(summarize))
}

/// `POST /api/v1/email`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    /// The product discussed.
    pub product: String,
    /// The HCP's name, for the greeting.
    pub hcp: String,
    /// The topics discussed, as free text.
    pub topics: String,
    /// The rep's own greeting in place of the template's (optional; at most
    /// 200 characters; may not speak about the product).
    #[serde(default)]
    pub greeting: Option<String>,
    /// The rep's sign-off, after the approved text (optional; at most 500
    /// characters; may not speak about the product).
    #[serde(default)]
    pub closing: Option<String>,
}

/// `POST /api/v1/summarize`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SummarizeRequest {
    /// The product detailed.
    pub product: String,
    /// The visit notes, free text.
    pub notes: String,
    /// The HCP visited.
    #[serde(default)]
    pub hcp: Option<String>,
}

/// Drafts a follow-up email (never sent) from approved, cited statements with
/// the safety information; the guard screens the topics first.
#[utoipa::path(post, path = "/api/v1/email", tag = "reps", security(("bearer" = [])), request_body = EmailRequest,
    responses((status = 200, description = "the draft, with audit_id"), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 413, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn email(AxState(st): AxState<State>, auth: Auth, headers: HeaderMap, Body(r): Body<EmailRequest>) -> Result<Response, ApiError> {
    auth.require(ANY, "drafting an email")?;
    if r.hcp.trim().is_empty() {
        return Err(ApiError::bad("empty", "hcp is empty: name the HCP the email is for"));
    }
    check_text(&st, "topics", &r.topics)?;
    let product = known_product(&st, &r.product)?;
    let user = auth.0.clone();
    let (rid, crid) = (request_id(&headers), client_request_id(&headers));
    let s = st.clone();
    let v = st
        .gate
        .run(st.limits.request_timeout, move || -> Result<Value, ApiError> {
            let req = Request {
                task: Task::Email { topics: r.topics.clone(), hcp: r.hcp.clone(), greeting: r.greeting.clone(), closing: r.closing.clone() },
                product: Some(product.clone()),
                role: user.role.as_str().into(),
                as_of: today(),
                requester: Requester { user: user.id.clone(), hcp: Some(r.hcp.clone()), defer_medical: false },
                generate: false,
            };
            super::prompts::follow_registry(&s);
            let copilot = s.copilot.read().map_err(|_| ApiError::internal("the copilot lock is poisoned"))?;
            let ctx = json!({"product": product, "hcp": r.hcp, "index": copilot.index().dir(), "index_version": copilot.index().version(),
                "as_of": req.as_of.to_string(), "via": "http", "request_id": rid, "client_request_id": crid});
            let trace = Trace { audit: &s.audit, actor: Actor::signed_in(&user), context: ctx };
            let out = copilot.run(&req, Some(&trace), &mut |_| {})?;
            s.metrics.routed(out.route(), out.flags());
            Ok(out.to_json())
        })
        .await??;
    Ok(json(v))
}

/// Turns visit notes into a structured call summary; product claims without
/// an approved passage are removed (and listed); an AE in the notes opens a case.
#[utoipa::path(post, path = "/api/v1/summarize", tag = "reps", security(("bearer" = [])), request_body = SummarizeRequest,
    responses((status = 200, description = "the summary, with audit_id"), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 413, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn summarize(
    AxState(st): AxState<State>,
    auth: Auth,
    headers: HeaderMap,
    Body(r): Body<SummarizeRequest>,
) -> Result<Response, ApiError> {
    auth.require(ANY, "summarizing a visit")?;
    if r.notes.trim().is_empty() {
        return Err(ApiError::bad("empty", "notes are empty: paste the visit notes"));
    }
    if r.notes.len() > st.limits.max_notes_bytes {
        return Err(ApiError::too_large(format!(
            "the notes are {} bytes, over the {}-byte limit: summarize one visit at a time",
            r.notes.len(),
            st.limits.max_notes_bytes
        )));
    }
    let product = known_product(&st, &r.product)?;
    let user = auth.0.clone();
    let (rid, crid) = (request_id(&headers), client_request_id(&headers));
    let s = st.clone();
    let v = st
        .gate
        .run(st.limits.request_timeout, move || -> Result<Value, ApiError> {
            let req = Request {
                task: Task::Summarize { notes: r.notes.clone() },
                product: Some(product.clone()),
                role: user.role.as_str().into(),
                as_of: today(),
                requester: Requester { user: user.id.clone(), hcp: r.hcp.clone(), defer_medical: false },
                generate: false,
            };
            super::prompts::follow_registry(&s);
            let copilot = s.copilot.read().map_err(|_| ApiError::internal("the copilot lock is poisoned"))?;
            let ctx = json!({"product": product, "hcp": r.hcp, "index": copilot.index().dir(), "index_version": copilot.index().version(),
                "as_of": req.as_of.to_string(), "via": "http", "request_id": rid, "client_request_id": crid});
            let trace = Trace { audit: &s.audit, actor: Actor::signed_in(&user), context: ctx };
            let out = copilot.run(&req, Some(&trace), &mut |_| {})?;
            s.metrics.routed(out.route(), out.flags());
            Ok(out.to_json())
        })
        .await??;
    Ok(json(v))
}
