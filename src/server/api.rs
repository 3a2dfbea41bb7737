//! What reps use: who am I, the products, ask (JSON or a stream of verified
//! sentences), email drafts and visit summaries.

use std::convert::Infallible;
use std::time::Instant;

use axum::extract::State as AxState;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::{Auth, ANY};
use super::{json, ApiError, AppState, Body, State};
use crate::audit::trace::{self, Actor};
use crate::copilot::{Answer, Ask, Event, Requester};
use crate::users::User;

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/products", get(products))
        .route("/api/v1/ask", post(ask))
        .route("/api/v1/email", post(email))
        .route("/api/v1/summarize", post(summarize))
}

/// `POST /api/v1/ask`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The HCP's question or objection, as typed.
    pub question: String,
    /// The product being detailed (recommended).
    #[serde(default)]
    pub product: Option<String>,
    /// The HCP the rep is talking to (recorded on any case opened).
    #[serde(default)]
    pub hcp: Option<String>,
    /// Quote approved passages verbatim without running the model (fastest).
    #[serde(default)]
    pub extractive: bool,
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

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "reps", security(("bearer" = [])),
    responses((status = 200, description = "id, name and role"), (status = 401, body = super::ErrorBody)))]
pub async fn me(auth: Auth) -> Response {
    json(json!({"id": auth.0.id, "name": auth.0.name, "role": auth.0.role.as_str()}))
}

/// The products in the index, with their documents, MLR numbers and expiry dates.
#[utoipa::path(get, path = "/api/v1/products", tag = "reps", security(("bearer" = [])),
    responses((status = 200, description = "products and their documents"), (status = 401, body = super::ErrorBody)))]
pub async fn products(AxState(st): AxState<State>, auth: Auth) -> Result<Response, ApiError> {
    auth.require(ANY, "listing products")?;
    Ok(json(&st.products))
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

/// The product names in the listing.
pub(crate) fn product_names(st: &AppState) -> Vec<String> {
    st.products["products"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Refuses a product the index does not hold (an answer would cite nothing).
fn known_product(st: &AppState, product: &str) -> Result<String, ApiError> {
    let p = product.trim().to_lowercase();
    let names = product_names(st);
    if names.contains(&p) {
        return Ok(p);
    }
    Err(ApiError::bad(
        "unknown_product",
        format!("no product {p:?} in the index (it holds: {}); see GET /api/v1/products", names.join(", ")),
    ))
}

fn check_text(st: &AppState, field: &str, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad("empty", format!("{field} is empty: type what the HCP asked or said")));
    }
    let n = text.chars().count();
    if n > st.limits.max_question_chars {
        return Err(ApiError::too_large(format!(
            "{field} is {n} characters, over the {}-character limit: ask one question at a time (use /api/v1/summarize for visit notes)",
            st.limits.max_question_chars
        )));
    }
    Ok(())
}

/// A validated ask, ready to run on a worker.
pub(crate) struct Job {
    pub ask: Ask,
    pub who: Requester,
    pub generate: bool,
    pub user: User,
    pub request_id: String,
    /// `ask` or `chat_completion` (the audit record's action).
    pub action: &'static str,
}

/// The request id the request-id layer set (`-` if none).
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers.get(super::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string()
}

pub(crate) fn job(st: &AppState, user: &User, headers: &HeaderMap, r: AskRequest, action: &'static str) -> Result<Job, ApiError> {
    check_text(st, "question", &r.question)?;
    let product = match r.product.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Some(known_product(st, p)?),
        None => None,
    };
    let request_id = request_id(headers);
    Ok(Job {
        ask: Ask { question: r.question, product, role: user.role.as_str().to_string(), as_of: today() },
        who: Requester { user: user.id.clone(), hcp: r.hcp.filter(|h| !h.trim().is_empty()) },
        generate: !r.extractive,
        user: user.clone(),
        request_id,
        action,
    })
}

/// Runs the pipeline for `job` (on a worker thread), appends its audit record
/// and counts it; `on_event` sees each verified sentence.
pub(crate) fn run_job(st: &AppState, job: &Job, on_event: &mut dyn FnMut(Event)) -> Result<Answer, ApiError> {
    let t0 = Instant::now();
    let (mut answer, retrieval) = {
        let copilot = st.copilot.read().map_err(|_| ApiError::internal("the copilot lock is poisoned; restart the server"))?;
        (copilot.ask_with(&job.ask, &job.who, job.generate, on_event)?, format!("{:?}", copilot.retrieval()).to_lowercase())
    };
    let ctx = json!({
        "product": job.ask.product, "hcp": job.who.hcp, "index": st.index, "as_of": job.ask.as_of.to_string(),
        "retrieval": retrieval, "total_ms": t0.elapsed().as_secs_f64() * 1e3, "via": "http", "request_id": job.request_id,
    });
    // The record is appended before the answer is sent: nothing leaves untraced.
    trace::record_answer(&st.audit, &Actor::signed_in(&job.user), job.action, &job.ask.question, &mut answer, ctx)?;
    st.metrics.answered(&answer);
    // Identifiers only: never the question, which may name a patient.
    tracing::info!(request_id = %job.request_id, user = %job.user.id, route = answer.route.as_str(), case_id = answer.case_id.as_deref(),
        audit_id = answer.audit_id, mode = ?answer.mode, generated_tokens = answer.generated_tokens, "answered");
    Ok(answer)
}

/// Answers one question from approved material, with citations; AE reports
/// and off-label asks open a case. With `Accept: text/event-stream` it
/// streams `sentence` events (each sentence once verified against its
/// passage and screened by the output guard, never a raw draft), then
/// `answer` (the whole answer) and `done` (route, case id, audit id).
#[utoipa::path(post, path = "/api/v1/ask", tag = "reps", security(("bearer" = [])), request_body = AskRequest,
    responses((status = 200, description = "the answer (as `ask --json`), or an event stream"),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody), (status = 413, body = super::ErrorBody),
        (status = 503, description = "the answer queue is full; see Retry-After", body = super::ErrorBody)))]
pub async fn ask(AxState(st): AxState<State>, auth: Auth, headers: HeaderMap, Body(r): Body<AskRequest>) -> Result<Response, ApiError> {
    auth.require(ANY, "asking")?;
    let job = job(&st, &auth.0, &headers, r, "ask")?;
    let ticket = st.gate.admit()?;
    let streaming = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if !streaming {
        let s = st.clone();
        let answer = ticket.run(st.limits.request_timeout, move || run_job(&s, &job, &mut |_| {})).await??;
        tracing::Span::current().record("route", answer.route.as_str());
        return Ok(json(answer));
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<SseEvent, Infallible>>();
    let s = st.clone();
    let timeout = st.limits.request_timeout;
    tokio::spawn(async move {
        let events = tx.clone();
        let done = ticket
            .run(timeout, move || {
                run_job(&s, &job, &mut |e| match e {
                    Event::Sentence(text) => {
                        let _ = events.send(Ok(sse_json("sentence", &json!({"text": text}))));
                    }
                })
            })
            .await;
        match done.and_then(|r| r) {
            Ok(answer) => {
                let _ = tx.send(Ok(sse_json("answer", &answer)));
                let _ = tx.send(Ok(sse_json("done", &json!({"route": answer.route, "case_id": answer.case_id, "audit_id": answer.audit_id}))));
            }
            Err(e) => {
                let _ = tx.send(Ok(sse_json("error", &json!({"error": {"code": e.code, "message": e.message}}))));
            }
        }
    });
    let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

fn sse_json<T: serde::Serialize>(event: &str, v: &T) -> SseEvent {
    SseEvent::default().event(event).data(serde_json::to_string(v).unwrap_or_else(|_| "{}".into()))
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
    let rid = request_id(&headers);
    let s = st.clone();
    let v = st
        .gate
        .run(st.limits.request_timeout, move || -> Result<Value, ApiError> {
            let t0 = Instant::now();
            let ask = Ask { question: r.topics.clone(), product: Some(product.clone()), role: user.role.as_str().into(), as_of: today() };
            let who = Requester { user: user.id.clone(), hcp: Some(r.hcp.clone()) };
            let copilot = s.copilot.read().map_err(|_| ApiError::internal("the copilot lock is poisoned"))?;
            let d = copilot.email(&ask, &who, &r.hcp)?;
            let ctx = json!({"product": product, "hcp": r.hcp, "index": s.index, "as_of": ask.as_of.to_string(),
                "total_ms": t0.elapsed().as_secs_f64() * 1e3, "via": "http", "request_id": rid});
            let seq = trace::record_email(&s.audit, &Actor::signed_in(&user), &r.topics, &d, copilot.guard().map(|g| g.rules_version()), ctx)?;
            s.metrics.routed(d.route, &d.flags);
            let mut v = serde_json::to_value(&d).map_err(ApiError::internal)?;
            v["audit_id"] = seq.into();
            Ok(v)
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
    let rid = request_id(&headers);
    let s = st.clone();
    let v = st
        .gate
        .run(st.limits.request_timeout, move || -> Result<Value, ApiError> {
            let t0 = Instant::now();
            let ask = Ask { question: String::new(), product: Some(product.clone()), role: user.role.as_str().into(), as_of: today() };
            let who = Requester { user: user.id.clone(), hcp: r.hcp.clone() };
            let copilot = s.copilot.read().map_err(|_| ApiError::internal("the copilot lock is poisoned"))?;
            let sum = copilot.summarize(&r.notes, &ask, &who)?;
            let ctx = json!({"product": product, "hcp": r.hcp, "index": s.index, "as_of": ask.as_of.to_string(),
                "total_ms": t0.elapsed().as_secs_f64() * 1e3, "via": "http", "request_id": rid});
            let seq =
                trace::record_summary(&s.audit, &Actor::signed_in(&user), &r.notes, &sum, copilot.guard().map(|g| g.rules_version()), ctx)?;
            s.metrics.routed(sum.route, &sum.flags);
            let mut v = serde_json::to_value(&sum).map_err(ApiError::internal)?;
            v["audit_id"] = seq.into();
            Ok(v)
        })
        .await??;
    Ok(json(v))
}
