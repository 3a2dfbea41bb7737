//! The OpenAI-compatible face: `POST /v1/chat/completions` (and streaming)
//! and `GET /v1/models`, so clients pharma IT already has can use OnLabel as
//! a grounded model. `model` = `onlabel:PRODUCT` picks the product; the last
//! user message is the question, and every system and user turn is screened
//! by the guard first and recorded whole in the audit log; the reply's content is the verified answer
//! with its `[n]` markers, and the extension field `onlabel` carries the
//! citations, route, case id and audit id. A stream carries the verified
//! quoted answer first, when the model is to compose one, in a chunk with an
//! empty delta and `onlabel.quote` (content deltas stay the final answer). The guard, cases and audit run
//! exactly as on `/api/v1/ask` (the same [`super::ask::run_job`]).

use std::convert::Infallible;

use axum::extract::State as AxState;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::ask::{job, run_job, AskRequest};
use super::me::product_names;
use super::request_id;
use super::auth::{Auth, ANY};
use super::{json, ApiError, Body, State};
use crate::copilot::{Answer, Event};

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new().route("/v1/chat/completions", post(chat)).route("/v1/models", get(models))
}

/// One chat message.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Message {
    /// system, user or assistant.
    pub role: String,
    /// The text (a string, or OpenAI's list of `{type: "text", text}` parts).
    pub content: Value,
}

/// `POST /v1/chat/completions` (the fields OnLabel reads; others are accepted and ignored,
/// as OpenAI clients send many).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatRequest {
    /// `onlabel:PRODUCT` (or `onlabel` with no product).
    pub model: String,
    /// The conversation; the last user message is the question.
    pub messages: Vec<Message>,
    /// Stream chunks as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Passed through as the HCP on any case opened.
    #[serde(default)]
    pub user: Option<String>,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// The models: one per product.
#[utoipa::path(get, path = "/v1/models", tag = "openai", security(("bearer" = [])), responses((status = 200, description = "OpenAI model list")))]
pub async fn models(AxState(st): AxState<State>, auth: Auth) -> Result<Response, ApiError> {
    auth.require(ANY, "listing models")?;
    let data: Vec<Value> = product_names(&st)
        .into_iter()
        .map(|p| json!({"id": format!("onlabel:{p}"), "object": "model", "created": 0, "owned_by": "onlabel"}))
        .collect();
    Ok(json(json!({"object": "list", "data": data})))
}

fn extension(a: &Answer) -> Value {
    let mut e = json!({"route": a.route, "citations": a.citations, "flags": a.flags, "case_id": a.case_id, "audit_id": a.audit_id,
        "mode": a.mode, "prompt_version": a.prompt_version, "guard_rules": a.guard_rules});
    // The quoted answer handed out while the model composed (its own record), when there was one.
    if let Some(q) = &a.quote {
        e["quote"] = json!(q);
    }
    e
}

fn usage(a: &Answer, question: &str) -> Value {
    let completion = a.generated_tokens.unwrap_or(0);
    let prompt = question.split_whitespace().count();
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// A grounded chat completion: the copilot's verified answer, with its
/// citations and route in the `onlabel` extension field.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", security(("bearer" = [])), request_body = ChatRequest,
    responses((status = 200, description = "an OpenAI chat.completion (or chunks when stream)"), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn chat(AxState(st): AxState<State>, auth: Auth, headers: HeaderMap, Body(r): Body<ChatRequest>) -> Result<Response, ApiError> {
    auth.require(ANY, "asking")?;
    let product = match r.model.split_once(':') {
        Some(("onlabel", p)) if !p.trim().is_empty() => Some(p.trim().to_string()),
        None if r.model == "onlabel" => None,
        _ => {
            return Err(ApiError::bad(
                "unknown_model",
                format!("model {:?}: use onlabel:PRODUCT (GET /v1/models lists them)", r.model),
            ))
        }
    };
    let question = r
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| text_of(&m.content))
        .ok_or_else(|| ApiError::bad("no_question", "messages holds no user message: the last user message is the question"))?;
    // Every system and user turn is screened and recorded, not only the question.
    let conversation: Vec<String> = r
        .messages
        .iter()
        .filter(|m| m.role == "user" || m.role == "system")
        .map(|m| format!("{}: {}", m.role, text_of(&m.content)))
        .collect();
    let conversation = conversation.join("\n");
    if conversation.len() > st.limits.max_notes_bytes {
        return Err(ApiError::too_large(format!(
            "the conversation is {} bytes, over the {}-byte limit: start a new chat",
            conversation.len(),
            st.limits.max_notes_bytes
        )));
    }
    let mut j = job(&st, &auth.0, &headers, AskRequest { question: question.clone(), product, hcp: r.user.clone(), extractive: false, conversation_id: None })?;
    j.conversation = Some(conversation);
    let ticket = st.gate.admit()?;
    let id = format!("chatcmpl-{}", request_id(&headers));
    let created = chrono::Utc::now().timestamp();
    let model = r.model.clone();
    let s = st.clone();
    if !r.stream {
        let a = ticket.run(st.limits.request_timeout, move || run_job(&s, &j, &mut |_| {})).await??;
        return Ok(json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": a.answer}, "finish_reason": "stop"}],
            "usage": usage(&a, &question),
            "onlabel": extension(&a),
        })));
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<SseEvent, Infallible>>();
    let timeout = st.limits.request_timeout;
    let rid = j.request_id.clone();
    tokio::spawn(async move {
        let chunk = move |delta: Value, finish: Option<&str>, ext: Option<Value>| {
            let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            if let Some(e) = ext {
                c["onlabel"] = e;
            }
            SseEvent::default().data(c.to_string())
        };
        let _ = tx.send(Ok(chunk(json!({"role": "assistant", "content": ""}), None, None)));
        let events = tx.clone();
        let chunk2 = chunk.clone();
        let mut first = true;
        let done = ticket
            .run(timeout, move || {
                run_job(&s, &j, &mut |e| match e {
                    // The quote rides in the extension field of a chunk
                    // with an empty delta: an OpenAI client's content is
                    // the final answer alone, as without a quote.
                    Event::Quote(q) => {
                        let _ = events.send(Ok(chunk2(json!({}), None, Some(json!({"quote": q})))));
                    }
                    Event::Sentence(t) => {
                        let text = if first { t } else { format!(" {t}") };
                        first = false;
                        let _ = events.send(Ok(chunk2(json!({"content": text}), None, None)));
                    }
                })
            })
            .await;
        match done.and_then(|r| r) {
            Ok(a) => {
                // Sentences streamed only when the answer is an answer; an
                // escalation's message arrives whole in the last chunk.
                let content = if a.route == crate::copilot::Route::Answer { json!({}) } else { json!({"content": a.answer}) };
                let _ = tx.send(Ok(chunk(content, Some("stop"), Some(extension(&a)))));
            }
            Err(e) => {
                let _ = tx.send(Ok(SseEvent::default().data(e.to_body(&rid).to_string())));
            }
        }
        let _ = tx.send(Ok(SseEvent::default().data("[DONE]")));
    });
    Ok(Sse::new(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)).into_response())
}
