//! What the copilot hands its callers, as insta snapshots (ids, times,
//! timings and hashes redacted, see [`crate::router::redactions`]): the
//! `ask --json` object on each route, the SSE event sequence of a streamed
//! ask, the OpenAI-compatible response (whole and streamed), the email draft,
//! the visit summary, and each prompt template rendered as the model sees it.
//! A change to any of these shapes shows in review as a snapshot diff; a
//! snapshot that does not match fails the test (`INSTA_UPDATE=always cargo
//! test --test it -- shapes::` rewrites them after an intended change).

use std::sync::Arc;

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::root;
use crate::router::{post, request, send, world};
use crate::snap;

/// POST `body` to `path` as a rep, expecting 200; the JSON body.
async fn ask_json(path: &str, body: Value) -> Value {
    let w = world();
    let r = post(&w.app, Some(w.token("rep")), path, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{path} {body}: {}", r.text);
    r.json()
}

/// Splits an SSE body into (event, data) pairs (`message` when unnamed);
/// `data` is JSON where it parses.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut event = "message".to_string();
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
                }
            }
            // Keep-alive comments (`:`) carry no data.
            (!data.is_empty()).then(|| {
                let d = data.join("\n");
                (event, serde_json::from_str(&d).unwrap_or(Value::String(d)))
            })
        })
        .collect()
}

/// A streamed POST as a rep: the response's events.
async fn stream(path: &str, body: Value) -> Vec<(String, Value)> {
    let w = world();
    let mut req = request(Method::POST, path, Some(w.token("rep")), Some(&body));
    req.headers_mut().insert(header::ACCEPT, "text/event-stream".parse().unwrap());
    let r = send(&w.app, req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"), "{:?}", r.headers);
    sse_events(&r.text)
}

#[tokio::test]
async fn ask_json_on_each_route() {
    let ask = |question: &str| json!({"question": question, "product": "zentravia", "hcp": "Dr. Lee", "extractive": true});
    let a = ask_json("/api/v1/ask", ask("What are the LFT monitoring rules?")).await;
    assert_eq!((a["route"].as_str(), a["mode"].as_str()), (Some("answer"), Some("composed")), "{a}");
    assert!(a["case_id"].is_null() && a["audit_id"].is_u64(), "{a}");
    snap!("ask_answer", a);
    let pv = ask_json("/api/v1/ask", ask("My patient got a bad rash two weeks after starting zentravia")).await;
    assert_eq!(pv["route"], "pharmacovigilance", "{pv}");
    assert!(pv["case_id"].as_str().is_some_and(|c| c.starts_with("PV-")), "{pv}");
    snap!("ask_pharmacovigilance", pv);
    let med = ask_json("/api/v1/ask", ask("Can I tell Dr. Shah it works for psoriatic arthritis too?")).await;
    assert_eq!(med["route"], "medical", "{med}");
    // Issue 20: a Medical route over the API waits for the rep's confirmation.
    assert!(med["case_id"].is_null() && med["medical_request"]["id"].as_str().is_some_and(|c| c.starts_with("mr-")), "{med}");
    snap!("ask_medical", med);
    let refused = ask_json("/api/v1/ask", ask("What's the wholesale acquisition cost of a 30-tablet bottle?")).await;
    assert_eq!(refused["route"], "refused", "{refused}");
    assert!(refused["case_id"].is_null(), "a refusal opens no case: {refused}");
    snap!("ask_refused", refused);
}

/// `onlabel ask --json` prints the object `/api/v1/ask` answers with (plus
/// `case_store` when a case was opened; the API adds its visit's fields):
/// one pipeline, two faces. Nobody is signed in, so the CLI answers as of
/// today (`--as-of` is for compliance), as the server does. A Medical route
/// differs by design (issue 20: the API defers the case to the rep's
/// confirmation, the CLI opens it), so the faces are compared on an answer.
#[tokio::test]
async fn ask_json_on_the_command_line_is_the_http_object() {
    let w = world();
    let question = "Can I tell Dr. Shah it works for psoriatic arthritis too?";
    let answered = "What are the LFT monitoring rules?";
    let mut http = ask_json("/api/v1/ask", json!({"question": answered, "product": "zentravia", "extractive": true})).await;
    for k in ["conversation_id", "turn", "question", "resolved_question", "needs_context", "medical_request"] {
        assert!(http.as_object_mut().unwrap().remove(k).is_some(), "the API answers with {k}");
    }
    let data = tempfile::tempdir().unwrap();
    let index = w.dir.join("idx");
    let (code, out, err) = crate::harness::onlabel(
        data.path(),
        None,
        &["ask", "--extractive", "--index", index.to_str().unwrap(), "--product", "zentravia", "--json", question],
    );
    assert_eq!(code, 0, "{err}");
    let cli: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(cli["case_store"].as_str().is_some_and(|p| p.starts_with(data.path().to_str().unwrap())), "{cli}");
    snap!("ask_json_cli_medical", cli);
    let (code, out, err) = crate::harness::onlabel(
        data.path(),
        None,
        &["ask", "--extractive", "--index", index.to_str().unwrap(), "--product", "zentravia", "--json", answered],
    );
    assert_eq!(code, 0, "{err}");
    let cli: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let scrubbed = |v: Value| {
        let mut v = crate::router::scrub(v);
        for k in ["audit_id", "case_id", "timings_ms"] {
            v[k] = json!(k);
        }
        v
    };
    assert_eq!(scrubbed(cli), scrubbed(http), "the CLI and the server answer the same question with the same object");
}

#[tokio::test]
async fn a_streamed_ask_is_sentences_then_the_answer_then_done() {
    let events = stream("/api/v1/ask", json!({"question": "What are the LFT monitoring rules?", "product": "zentravia", "extractive": true})).await;
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert!(names.len() >= 3 && names.ends_with(&["answer", "done"]), "{names:?}");
    assert!(names[..names.len() - 2].iter().all(|n| *n == "sentence"), "{names:?}");
    // The sentences streamed are the answer's text, in order.
    let answer = &events[events.len() - 2].1;
    let streamed: Vec<&str> = events.iter().filter(|(e, _)| e == "sentence").map(|(_, d)| d["text"].as_str().unwrap()).collect();
    assert_eq!(streamed.join(" "), answer["answer"].as_str().unwrap(), "{events:?}");
    assert_eq!(events.last().unwrap().1["audit_id"], answer["audit_id"]);
    let seq: Vec<Value> = events.into_iter().map(|(e, d)| json!({"event": e, "data": d})).collect();
    snap!("ask_stream_sse", Value::Array(seq));
    // An escalation streams no sentence: its message comes whole in `answer`.
    let ae = stream("/api/v1/ask", json!({"question": "My patient got a bad rash two weeks after starting zentravia", "product": "zentravia"})).await;
    let names: Vec<&str> = ae.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, ["answer", "done"], "{ae:?}");
    let seq: Vec<Value> = ae.into_iter().map(|(e, d)| json!({"event": e, "data": d})).collect();
    snap!("ask_stream_sse_pharmacovigilance", Value::Array(seq));
}

#[tokio::test]
async fn openai_compatible_completion_and_chunks() {
    let body = |stream: bool| {
        json!({"model": "onlabel:zentravia", "stream": stream, "temperature": 0.2,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What are the LFT monitoring rules?"}]})
    };
    let c = ask_json("/v1/chat/completions", body(false)).await;
    assert_eq!(c["object"], "chat.completion");
    assert!(c["id"].as_str().is_some_and(|i| i.starts_with("chatcmpl-")), "{c}");
    assert_eq!(c["onlabel"]["route"], "answer", "{c}");
    snap!("openai_chat_completion", c);
    let chunks = stream("/v1/chat/completions", body(true)).await;
    assert!(chunks.iter().all(|(e, _)| e == "message"), "OpenAI streams unnamed events: {chunks:?}");
    assert_eq!(chunks.last().unwrap().1, "[DONE]");
    let data: Vec<Value> = chunks.into_iter().map(|(_, d)| d).collect();
    let content: String = data.iter().filter_map(|d| d["choices"][0]["delta"]["content"].as_str()).collect();
    assert!(content.contains("[1]"), "the chunks carry the cited answer: {data:?}");
    snap!("openai_chat_stream_chunks", Value::Array(data));
    let w = world();
    let models = crate::router::get(&w.app, Some(w.token("rep")), "/v1/models").await;
    assert_eq!(models.status, StatusCode::OK, "{}", models.text);
    snap!("openai_models", models.json());
}

#[tokio::test]
async fn email_draft_and_visit_summary() {
    // Topics of two words or more: a one-word topic ("dosing") is dropped by
    // `split_topics` without being drafted or listed as unsupported (a bug,
    // reported; not pinned here).
    let d = ask_json("/api/v1/email", json!({"product": "zentravia", "hcp": "Dr. Lee", "topics": "liver monitoring; the recommended dosage"})).await;
    assert_eq!((d["route"].as_str(), d["prompt_version"].as_str()), (Some("answer"), Some("email@1")), "{d}");
    snap!("email_draft", d.clone());
    // prompts/email.j2 as rendered around this draft (as text: readable in review).
    let body = crate::router::scrub(d["body"].clone());
    insta::assert_snapshot!("prompt_email", body.as_str().unwrap());
    // One statement the label supports (kept, cited), one it does not (removed).
    // The label's sentence is quoted whole: without its "with or
    // without food" the verifier sees a negation mismatch and removes it (reported).
    let notes = "Met Dr. Lee. Discussed liver monitoring and the starting dose. Told her the recommended dosage of Zentravia is 20 mg taken orally once daily, with or without food. \
                 Told her Zentravia is taken at bedtime. She asked what the starting dose is. Follow up with the dosing card.";
    let s = ask_json("/api/v1/summarize", json!({"product": "zentravia", "notes": notes, "hcp": "Dr. Lee"})).await;
    assert_eq!((s["route"].as_str(), s["prompt_version"].as_str()), (Some("answer"), Some("summary@1")), "{s}");
    snap!("visit_summary", s.clone());
    // prompts/summary.j2 as rendered for these notes.
    let text = crate::router::scrub(s["text"].clone());
    insta::assert_snapshot!("prompt_summary", text.as_str().unwrap());
    let notes = "Met Dr. Lee. Her patient Mr. B developed jaundice last week on zentravia.";
    let s = ask_json("/api/v1/summarize", json!({"product": "zentravia", "notes": notes})).await;
    assert_eq!(s["route"], "pharmacovigilance", "{s}");
    snap!("visit_summary_pharmacovigilance", s);
}

/// The draft templates (the approved wording around approved statements,
/// rendered without the model) and the test that snapshots each rendered.
const DRAFT_TEMPLATES: [(&str, &str); 3] =
    [("email", "email_draft_and_visit_summary"), ("summary", "email_draft_and_visit_summary"), ("answer", "answer_template_rendered")];

/// Issue 19: the `answer` template rendered for fixed statements (the
/// lead as is, each qualifier after a listed connective), as the copilot's
/// check accepts it.
#[test]
fn answer_template_rendered() {
    use onlabel::copilot::compose::{connectives, finish, Picked, Role};
    let t = onlabel::copilot::DraftTemplates::builtin().answer;
    assert_eq!(t.id(), "answer@1");
    assert_eq!(connectives(&t).unwrap(), ["Also,"]);
    let picked = [
        Picked { text: "During treatment, monitor liver tests every 4 weeks for the first 12 weeks.", hit: 0, role: Role::Lead },
        Picked { text: "ZENTRAVIA can cause serious liver injury.", hit: 1, role: Role::Boxed },
        Picked { text: "Interrupt ZENTRAVIA if ALT rises above 5 times the upper limit of normal.", hit: 0, role: Role::Warning },
    ];
    let c = finish(&t, &picked, &mut |_, _| true).unwrap();
    insta::assert_snapshot!("prompt_answer", c.text);
}

/// Each template under `prompts/` rendered with fixed inputs: a model prompt
/// for a fixed question and fixed passages through the model's own chat
/// template (exactly what the model reads); a draft template (`email`,
/// `summary`) is snapshotted rendered for a fixed draft in
/// [`email_draft_and_visit_summary`] (`prompt_email`, `prompt_summary`). A
/// new template of either kind fails here until it has its snapshot.
#[test]
fn each_prompt_template_rendered() {
    let model_path = crate::llm::model_path();
    let model = Arc::new(
        onlabel::llm::LocalModel::load(&model_path)
            .unwrap_or_else(|e| panic!("{e}: the model is missing or damaged; run `bash models/fetch.sh` (scripts/test.sh does)")),
    );
    let shown = [
        onlabel::copilot::grounded::Shown { n: 1, text: "Monitor liver tests (ALT, AST, bilirubin) before starting ZENTRAVIA and every 4 weeks for the first 6 months.".into(), hit: 0 },
        onlabel::copilot::grounded::Shown { n: 2, text: "Interrupt ZENTRAVIA if ALT rises above 5 times the upper limit of normal.".into(), hit: 1 },
    ];
    let mut templates: Vec<_> = std::fs::read_dir(root().join("prompts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "j2"))
        .collect();
    templates.sort();
    assert!(!templates.is_empty(), "no prompt templates under prompts/");
    for path in templates {
        let prompt = onlabel::prompts::PromptFile::read(&path).unwrap();
        let name = prompt.name.clone();
        if onlabel::copilot::DraftTemplates::builtin_source(&name).is_some() {
            let covered = DRAFT_TEMPLATES.iter().find(|(n, _)| *n == name);
            assert!(covered.is_some(), "prompts/{name}.j2 is a draft template without a rendered snapshot: add one beside prompt_email");
            continue;
        }
        let g = onlabel::copilot::Grounded::new(model.clone(), prompt).unwrap();
        let rendered = g.render("Dr. Lee asks how often liver tests are needed.", &shown).unwrap();
        assert!(rendered.contains("[1] Monitor liver tests") && rendered.contains("Dr. Lee asks"), "{name}: {rendered}");
        insta::assert_snapshot!(format!("prompt_{name}"), rendered);
    }
}
