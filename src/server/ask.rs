//! `POST /api/v1/ask`: one question answered from approved material, as JSON
//! or as a stream of verified sentences; the job and its audit record are
//! shared with the OpenAI-compatible face ([`super::openai`]).

use std::convert::Infallible;

use axum::extract::State as AxState;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Auth, ANY};
use super::me::known_product;
use super::{client_request_id, json, request_id, today, ApiError, AppState, Body, State};
use crate::copilot::trace::Actor;
use crate::copilot::{Answer, Ask, Event, Request, Requester, Task, Trace};
use crate::users::User;

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/ask", post(ask))
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

/// Refuses an empty text or one over the question limit (413). A question
/// is also held to the copilot's own limit ([`crate::copilot::MAX_QUESTION_CHARS`]),
/// whatever `--max-question` says: the client hears 413 with the limit that
/// applies, not a failure from deeper down.
pub(crate) fn check_text(st: &AppState, field: &str, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad("empty", format!("{field} is empty: type what the HCP asked or said")));
    }
    let n = text.chars().count();
    let limit = match field {
        "question" => st.limits.max_question_chars.min(crate::copilot::MAX_QUESTION_CHARS),
        _ => st.limits.max_question_chars,
    };
    if n > limit {
        return Err(ApiError::too_large(format!(
            "{field} is {n} characters, over the {limit}-character limit: ask one question at a time (use /api/v1/summarize for visit notes)"
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
    /// The client's own `x-request-id`, bounded (kept for correlation only).
    pub client_request_id: Option<String>,
    /// The whole conversation of a chat completion (every system and user
    /// turn, `ROLE: text` a line): screened by the guard before the question
    /// is answered, and the audit record's input. `None` for a plain ask.
    pub conversation: Option<String>,
}

pub(crate) fn job(st: &AppState, user: &User, headers: &HeaderMap, r: AskRequest) -> Result<Job, ApiError> {
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
        client_request_id: client_request_id(headers),
        conversation: None,
    })
}

/// Runs the pipeline for `job` (on a worker thread) through
/// [`crate::copilot::Copilot::run`], which appends the audit record before
/// `on_event` sees any verified sentence; counts the answer.
pub(crate) fn run_job(st: &AppState, job: &Job, on_event: &mut dyn FnMut(Event)) -> Result<Answer, ApiError> {
    let task = match &job.conversation {
        Some(c) => Task::Chat { conversation: c.clone(), question: job.ask.question.clone() },
        None => Task::Ask { question: job.ask.question.clone() },
    };
    let req = Request {
        task,
        product: job.ask.product.clone(),
        role: job.ask.role.clone(),
        as_of: job.ask.as_of,
        requester: job.who.clone(),
        generate: job.generate,
    };
    let trace = Trace {
        audit: &st.audit,
        actor: Actor::signed_in(&job.user),
        context: json!({
            "product": job.ask.product, "hcp": job.who.hcp, "index": st.index, "as_of": job.ask.as_of.to_string(),
            "via": "http", "request_id": job.request_id, "client_request_id": job.client_request_id,
        }),
    };
    let outcome = {
        let copilot = st.copilot.read().map_err(|_| ApiError::internal("the copilot lock is poisoned; restart the server"))?;
        copilot.run(&req, Some(&trace), on_event)?
    };
    let Some(answer) = outcome.into_answer() else {
        return Err(ApiError::internal("the copilot returned no answer to a question"));
    };
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
    let job = job(&st, &auth.0, &headers, r)?;
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
    let rid = job.request_id.clone();
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
                let _ = tx.send(Ok(sse_json("error", &e.to_body(&rid))));
            }
        }
    });
    let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

fn sse_json<T: serde::Serialize>(event: &str, v: &T) -> SseEvent {
    SseEvent::default().event(event).data(serde_json::to_string(v).unwrap_or_else(|_| "{}".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    /// Issue 16: a streamed answer's verified sentences reach the client
    /// only once its audit record is in the log. `run_job` is what both the
    /// SSE route and the chat face stream through; each sentence event here
    /// counts the `ask` records already appended — all must see one.
    #[test]
    fn the_audit_record_of_a_streamed_answer_exists_before_the_first_sentence() {
        let tmp = tempfile::tempdir().unwrap();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let limits = crate::corpus::Limits::default();
        let corpus = crate::corpus::Corpus::load(&[root.join("corpora/demo")], limits, false).unwrap();
        let idx = tmp.path().join("idx");
        crate::index::Index::build(&idx, &corpus.passages(limits), |_| {}).unwrap();
        let guard = Arc::new(crate::guard::Guard::builtin().unwrap());
        let copilot = crate::copilot::Copilot::new(crate::index::Index::open(&idx).unwrap()).with_guard(guard, today()).unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = super::super::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            data,
            root: root.clone(),
            index: idx,
            thresholds: root.join("evals/thresholds.toml"),
            products: json!([]),
            limits: Default::default(),
            eval: Box::new(|_| Err("no evals in this test".into())),
            reload_prompt: None,
        };
        let st = AppState::new(copilot, config).unwrap();
        let users = crate::users::Users::new(&st.store);
        let root = users.add("root", "Ada Admin", crate::users::Role::Admin, None).unwrap().0;
        let user = users.add("rex", "Rex Rep", crate::users::Role::Rep, Some(&root)).unwrap().0;
        let job = Job {
            ask: Ask { question: "How often should liver tests be done?".into(), product: Some("zentravia".into()), role: "rep".into(), as_of: today() },
            who: Requester { user: "rex".into(), hcp: None },
            generate: false,
            user,
            request_id: "t-1".into(),
            client_request_id: None,
            conversation: None,
        };
        let asks = |st: &AppState| st.audit.range(None, None).unwrap().iter().filter(|e| e.action == "ask").count();
        let mut seen = Vec::new();
        let a = run_job(&st, &job, &mut |_| seen.push(asks(&st))).unwrap();
        assert_eq!(a.route, crate::copilot::Route::Answer, "{a:?}");
        assert!(!seen.is_empty(), "the answer was streamed sentence by sentence");
        assert!(seen.iter().all(|&n| n == 1), "every sentence left after its record: {seen:?}");
    }
}
