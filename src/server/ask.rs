//! `POST /api/v1/ask`: one question answered from approved material, as JSON
//! or as a stream of verified sentences; the job and its audit record are
//! shared with the OpenAI-compatible face ([`super::openai`]).
//!
//! Each ask is a turn of a visit ([`super::conversations`]): without
//! `conversation_id` a new one starts, with it the question is read against
//! the previous turn ([`crate::copilot::followup`]) before the guard and
//! retrieval see it, and the visit's earlier answered turns are screened
//! again with it ([`Task::Visit`]). A Medical route opens no case here: it
//! leaves a pending Medical request for the rep to confirm.

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
use super::conversations::{self, Conversation};
use crate::copilot::followup::{self, Resolution};
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
    /// The visit this question continues (from an earlier answer's
    /// `conversation_id`); absent: a new visit starts.
    #[serde(default)]
    pub conversation_id: Option<String>,
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
    /// The visit turn this ask is (`POST /api/v1/ask` only): read against
    /// the previous turn, answered as [`Task::Visit`].
    pub visit: Option<Visit>,
}

/// A question read against its visit ([`crate::copilot::followup`]).
pub(crate) struct Visit {
    /// The visit continued (None: a new one).
    pub conversation_id: Option<String>,
    /// Its earlier answered questions, one a line.
    pub earlier: String,
    /// As typed.
    pub typed: String,
    /// As resolved (the question screened and answered).
    pub resolved: String,
    /// The topic terms carried forward.
    pub topic: Vec<String>,
    /// It leans on context with nothing to lean on.
    pub needs_context: bool,
}

/// Reads the job's question against the visit: the product and topic a
/// follow-up inherits, the question to screen and answer.
pub(crate) fn visit(st: &AppState, job: &mut Job, conversation: Option<&Conversation>) -> Result<(), ApiError> {
    let typed = job.ask.question.clone();
    let (names, named) = {
        let copilot = st.copilot.read().map_err(|_| ApiError::internal("the copilot lock is poisoned; restart the server"))?;
        (copilot.product_name_list(), copilot.product_named_in(&typed))
    };
    let previous = conversation.and_then(Conversation::previous);
    let (resolved, inherited, topic, needs_context) = match followup::resolve(&typed, previous.as_ref(), named.as_deref(), &names) {
        Resolution::Standalone { product, topic } => (typed.clone(), product, topic, false),
        Resolution::FollowUp { resolved, product, topic } => (resolved, product, topic, false),
        Resolution::NeedsContext => (typed.clone(), None, Vec::new(), true),
    };
    // A resolved question over the copilot's limit is asked as typed.
    let resolved = if resolved.chars().count() > crate::copilot::MAX_QUESTION_CHARS { typed.clone() } else { resolved };
    if job.ask.product.is_none() && named.is_none() {
        job.ask.product = inherited;
    }
    job.ask.question = resolved.clone();
    job.who.defer_medical = true;
    job.visit = Some(Visit {
        conversation_id: conversation.map(|c| c.id.clone()),
        earlier: conversation.map(Conversation::earlier).unwrap_or_default(),
        typed,
        resolved,
        topic,
        needs_context,
    });
    Ok(())
}

/// Runs a visit's job ([`run_job`]), then stores the turn (and the pending
/// Medical request a Medical route leaves); the answer as JSON with
/// `conversation_id`, `turn`, `resolved_question` and `medical_request`.
pub(crate) fn run_visit(st: &AppState, job: &Job, on_event: &mut dyn FnMut(Event)) -> Result<serde_json::Value, ApiError> {
    let answer = run_job(st, job, on_event)?;
    let Some(v) = &job.visit else {
        return Ok(serde_json::to_value(&answer).unwrap_or_default());
    };
    let product = answer.product.clone().or_else(|| job.ask.product.clone());
    let medical = (answer.route == crate::copilot::Route::Medical && answer.case_id.is_none() && !v.needs_context)
        .then(|| conversations::summary(&v.resolved, product.as_deref(), None));
    let stored = conversations::append_turn(
        &st.store,
        v.conversation_id.as_deref(),
        conversations::NewTurn {
            owner: &job.user.id,
            hcp: job.who.hcp.as_deref(),
            question: &v.typed,
            resolved_question: &v.resolved,
            product: product.as_deref(),
            topic: &v.topic,
            answer: &answer,
            medical,
        },
    )?;
    let mut out = serde_json::to_value(&answer).unwrap_or_default();
    if let Some(o) = out.as_object_mut() {
        o.insert("conversation_id".into(), stored.conversation_id.into());
        o.insert("turn".into(), stored.n.into());
        o.insert("question".into(), v.typed.clone().into());
        o.insert("resolved_question".into(), v.resolved.clone().into());
        o.insert("needs_context".into(), v.needs_context.into());
        o.insert("medical_request".into(), match stored.medical_request {
            Some((id, summary)) => json!({"id": id, "summary": summary}),
            None => serde_json::Value::Null,
        });
    }
    Ok(out)
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
        who: Requester { user: user.id.clone(), hcp: r.hcp.filter(|h| !h.trim().is_empty()), defer_medical: false },
        generate: !r.extractive,
        user: user.clone(),
        request_id,
        client_request_id: client_request_id(headers),
        conversation: None,
        visit: None,
    })
}

/// Runs the pipeline for `job` (on a worker thread) through
/// [`crate::copilot::Copilot::run`], which appends the audit record before
/// `on_event` sees any verified sentence; counts the answer.
pub(crate) fn run_job(st: &AppState, job: &Job, on_event: &mut dyn FnMut(Event)) -> Result<Answer, ApiError> {
    let task = match (&job.visit, &job.conversation) {
        (Some(v), _) => Task::Visit { earlier: v.earlier.clone(), typed: v.typed.clone(), question: v.resolved.clone() },
        (None, Some(c)) => Task::Chat { conversation: c.clone(), question: job.ask.question.clone() },
        (None, None) => Task::Ask { question: job.ask.question.clone() },
    };
    let req = Request {
        task,
        product: job.ask.product.clone(),
        role: job.ask.role.clone(),
        as_of: job.ask.as_of,
        requester: job.who.clone(),
        generate: job.generate,
    };
    // A prompt version approved through another replica runs from this question on.
    super::prompts::follow_registry(st);
    // The read lock is held for the whole run: the index version recorded is the one that answers.
    let copilot = st.copilot.read().map_err(|_| ApiError::internal("the copilot lock is poisoned; restart the server"))?;
    let mut context = json!({
        "product": job.ask.product, "hcp": job.who.hcp, "index": copilot.index().dir(), "index_version": copilot.index().version(),
        "as_of": job.ask.as_of.to_string(), "via": "http", "request_id": job.request_id, "client_request_id": job.client_request_id,
    });
    if let (Some(v), Some(o)) = (&job.visit, context.as_object_mut()) {
        // The question as typed is the record's input; the one answered sits beside it.
        o.insert("resolved_question".into(), v.resolved.clone().into());
        o.insert("conversation_id".into(), v.conversation_id.clone().into());
        o.insert("needs_context".into(), v.needs_context.into());
    }
    let trace = Trace { audit: &st.audit, actor: Actor::signed_in(&job.user), context };
    let outcome = copilot.run(&req, Some(&trace), on_event)?;
    drop(copilot);
    let Some(answer) = outcome.into_answer() else {
        return Err(ApiError::internal("the copilot returned no answer to a question"));
    };
    st.metrics.answered(&answer);
    // Identifiers only: never the question, which may name a patient.
    tracing::info!(request_id = %job.request_id, user = %job.user.id, route = answer.route.as_str(), case_id = answer.case_id.as_deref(),
        audit_id = answer.audit_id, mode = ?answer.mode, generated_tokens = answer.generated_tokens, "answered");
    Ok(answer)
}

/// Answers one question from approved material, with citations, as a turn
/// of a visit (`conversation_id`; `resolved_question` is the question as
/// read against the previous turn); AE reports open a case at once, a
/// Medical route leaves a `medical_request` for the rep to confirm
/// (`case_id: null`). With `Accept: text/event-stream` it
/// streams, when the model is to compose the answer, a `quote` event first
/// (the verified quoted answer with its citations and its own audit id,
/// before the model's first token), then `sentence` events (each sentence
/// of the final answer once verified against its passage and screened by
/// the output guard, never a raw draft), then `answer` (the whole answer:
/// the model's if any sentence of it survived, else the quote's text) and
/// `done` (route, case id, audit id).
#[utoipa::path(post, path = "/api/v1/ask", tag = "reps", security(("bearer" = [])), request_body = AskRequest,
    responses((status = 200, description = "the answer (as `ask --json`), or an event stream"),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody), (status = 413, body = super::ErrorBody),
        (status = 503, description = "the answer queue is full; see Retry-After", body = super::ErrorBody)))]
pub async fn ask(AxState(st): AxState<State>, auth: Auth, headers: HeaderMap, Body(r): Body<AskRequest>) -> Result<Response, ApiError> {
    auth.require(ANY, "asking")?;
    // Only its owner continues a visit: anyone else's id is a 404.
    let conversation = match r.conversation_id.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(id) => {
            let c = conversations::load(&st.store, id, &auth.0.id)?;
            conversations::check_room(&c)?;
            Some(c)
        }
        None => None,
    };
    let mut job = job(&st, &auth.0, &headers, r)?;
    visit(&st, &mut job, conversation.as_ref())?;
    let ticket = st.gate.admit()?;
    let streaming = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if !streaming {
        let s = st.clone();
        let answer = ticket.run(st.limits.request_timeout, move || run_visit(&s, &job, &mut |_| {})).await??;
        tracing::Span::current().record("route", answer["route"].as_str().unwrap_or(""));
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
                run_visit(&s, &job, &mut |e| match e {
                    // Before the model's first token, after its own record.
                    Event::Quote(q) => {
                        let _ = events.send(Ok(sse_json("quote", &q)));
                    }
                    Event::Sentence(text) => {
                        let _ = events.send(Ok(sse_json("sentence", &json!({"text": text}))));
                    }
                })
            })
            .await;
        match done.and_then(|r| r) {
            Ok(answer) => {
                let _ = tx.send(Ok(sse_json("answer", &answer)));
                let _ = tx.send(Ok(sse_json("done", &json!({"route": answer["route"], "case_id": answer["case_id"], "audit_id": answer["audit_id"],
                    "conversation_id": answer["conversation_id"], "medical_request": answer["medical_request"]}))));
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
            who: Requester { user: "rex".into(), hcp: None, defer_medical: false },
            generate: false,
            user,
            request_id: "t-1".into(),
            client_request_id: None,
            conversation: None,
            visit: None,
        };
        let asks = |st: &AppState| st.audit.range(None, None).unwrap().iter().filter(|e| e.action == "ask").count();
        let mut seen = Vec::new();
        let a = run_job(&st, &job, &mut |_| seen.push(asks(&st))).unwrap();
        assert_eq!(a.route, crate::copilot::Route::Answer, "{a:?}");
        assert!(!seen.is_empty(), "the answer was streamed sentence by sentence");
        assert!(seen.iter().all(|&n| n == 1), "every sentence left after its record: {seen:?}");
    }
}
