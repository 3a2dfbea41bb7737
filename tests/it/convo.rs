//! Issue 20, point 1 over the router (`oneshot`, no process, no model): a
//! rep's visit as a conversation — follow-ups resolved against the previous
//! turn and recorded beside the typed question, only the owner continuing a
//! visit — and Medical requests that wait for the rep's confirmation (with
//! the HCP's words, consent and contact channel) while reports never wait.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::router::{get, post, world, Resp};

async fn ask(token: &str, body: Value) -> Value {
    let w = world();
    let r = post(&w.app, Some(token), "/api/v1/ask", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.text);
    r.json()
}

/// The audit record `seq`, read from the store the world's server writes.
fn record(seq: u64) -> onlabel::audit::Entry {
    let audit = onlabel::audit::Audit::open(&world().dir.join("data")).unwrap();
    audit.get(i64::try_from(seq).unwrap()).unwrap().expect("the record exists")
}

fn off_label() -> Value {
    json!({"question": "Can I tell Dr. Shah it works for psoriatic arthritis too?", "product": "zentravia", "hcp": "Dr. Shah", "extractive": true})
}

/// Issue 20: "what about patients who already have it?" opened a Medical
/// case holding the bare "it". In a visit, a follow-up is read against the
/// previous turn: it inherits the product and the topic, is answered with
/// citations, and the audit record keeps what was typed and what was answered.
#[tokio::test]
async fn a_follow_up_inherits_product_and_topic_and_the_record_keeps_both_questions() {
    let w = world();
    let rep = w.token("rep");
    let first = ask(rep, json!({"question": "How often should liver tests be done?", "product": "zentravia", "extractive": true})).await;
    assert_eq!(first["route"], "answer", "{first}");
    let conv = first["conversation_id"].as_str().expect("a new visit has an id").to_string();
    assert_eq!(first["resolved_question"], first["question"], "a first question stands as typed: {first}");
    assert_eq!(first["turn"], 1);

    // No product given: the follow-up takes the previous turn's.
    for (n, typed) in [(2, "and how often after that?"), (3, "What about patients who already have it?")] {
        let a = ask(rep, json!({"question": typed, "conversation_id": conv, "extractive": true})).await;
        let resolved = a["resolved_question"].as_str().unwrap().to_string();
        assert_eq!(resolved, format!("About liver tests (zentravia): {typed}"), "{a}");
        assert_eq!((a["route"].as_str(), a["turn"].as_i64(), a["conversation_id"].as_str()), (Some("answer"), Some(n), Some(conv.as_str())), "{a}");
        assert!(a["case_id"].is_null() && a["medical_request"].is_null(), "a follow-up opens nothing: {a}");
        assert!(!a["citations"].as_array().unwrap().is_empty(), "answered with citations: {a}");
        assert_eq!(a["product"], "zentravia", "{a}");
        let e = record(a["audit_id"].as_u64().unwrap());
        assert_eq!((e.action.as_str(), e.input.as_deref()), ("ask", Some(typed)), "the record's input is what was typed");
        let detail: Value = serde_json::from_str(&e.detail_json).unwrap();
        assert_eq!(detail["resolved_question"], resolved.as_str(), "{detail}");
        assert_eq!(detail["conversation_id"], conv.as_str(), "{detail}");
    }
    // The visit, as its owner reads it.
    let v = get(&w.app, Some(rep), &format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.text);
    let turns = v.json()["turns"].as_array().unwrap().clone();
    assert_eq!(turns.len(), 3, "{turns:?}");
    assert_eq!(turns[1]["question"], "and how often after that?");
    let mine = get(&w.app, Some(rep), "/api/v1/conversations").await.json();
    assert!(mine["conversations"].as_array().unwrap().iter().any(|c| c["id"] == conv.as_str()), "{mine}");
}

/// A visit is its rep's: anyone else continuing or reading it gets the 404
/// of a visit that does not exist, and nothing is answered or recorded.
#[tokio::test]
async fn only_the_owner_continues_or_reads_a_visit() {
    let w = world();
    let first = ask(w.token("rep"), json!({"question": "How often should liver tests be done?", "product": "zentravia", "extractive": true})).await;
    let conv = first["conversation_id"].as_str().unwrap();
    for other in ["medical", "admin"] {
        let r = post(&w.app, Some(w.token(other)), "/api/v1/ask", &json!({"question": "and after that?", "conversation_id": conv, "extractive": true})).await;
        assert_eq!((r.status, r.code().as_str()), (StatusCode::NOT_FOUND, "not_found"), "{other}: {}", r.text);
        let r = get(&w.app, Some(w.token(other)), &format!("/api/v1/conversations/{conv}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{other}: {}", r.text);
        let listed = get(&w.app, Some(w.token(other)), "/api/v1/conversations").await.json();
        assert!(!listed["conversations"].as_array().unwrap().iter().any(|c| c["id"] == conv), "{other} sees rex's visit: {listed}");
    }
    let r = post(&w.app, Some(w.token("rep")), "/api/v1/ask", &json!({"question": "and after that?", "conversation_id": "cv-000000000000000000000000"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("start a new visit"), "{}", r.text);
    // The owner still can.
    let again = ask(w.token("rep"), json!({"question": "and after that?", "conversation_id": conv, "extractive": true})).await;
    assert_eq!(again["turn"], 2, "{again}");
}

fn confirm_body() -> Value {
    json!({"hcp": "Dr. Shah", "request_text": "Does Zentravia work for psoriatic arthritis? Please send me the data.", "consent": true,
        "contact": {"channel": "email", "address": "dr.shah@clinic.example"}})
}

/// An off-label ask opens no case by itself: it leaves a Medical request,
/// listed for the rep; confirming it checks every field (consent must be
/// true, the contact must fit its channel), opens the MIR case with the
/// HCP's words, consent and channel, and audits the decision; it cannot be
/// decided twice, nor by anyone else.
#[tokio::test]
async fn a_medical_request_waits_for_the_reps_confirmation_with_consent() {
    let w = world();
    let rep = w.token("rep");
    let a = ask(rep, off_label()).await;
    assert_eq!(a["route"], "medical", "{a}");
    assert!(a["case_id"].is_null(), "no case before the rep confirms: {a}");
    let id = a["medical_request"]["id"].as_str().expect("a Medical request").to_string();
    let summary = a["medical_request"]["summary"].as_str().unwrap();
    assert!(summary.contains("psoriatic arthritis") && summary.contains("zentravia"), "{summary}");
    assert!(a["answer"].as_str().unwrap().contains("Nothing has been sent yet"), "{a}");
    let e = record(a["audit_id"].as_u64().unwrap());
    assert_eq!((e.route.as_deref(), e.case_id.as_deref()), (Some("medical"), None));

    let pending = get(&w.app, Some(rep), "/api/v1/medical-requests").await.json();
    assert!(pending["requests"].as_array().unwrap().iter().any(|r| r["id"] == id.as_str() && r["state"] == "pending"), "{pending}");
    let others = get(&w.app, Some(w.token("medical")), "/api/v1/medical-requests").await.json();
    assert!(!others["requests"].as_array().unwrap().iter().any(|r| r["id"] == id.as_str()), "{others}");

    let path = format!("/api/v1/medical-requests/{id}/confirm");
    let bad = |patch: Value| {
        let mut b = confirm_body();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (body, code, says) in [
        (bad(json!({"hcp": "  "})), "empty", "hcp"),
        (bad(json!({"request_text": ""})), "empty", "request_text"),
        (bad(json!({"consent": false})), "bad_input", "consent must be true"),
        (bad(json!({"consent": null})), "bad_input", "consent must be true"),
        (bad(json!({"contact": null})), "empty", "contact"),
        (bad(json!({"contact": {"channel": "pigeon", "address": "loft 3"}})), "bad_input", "not one of email, phone, fax, mail"),
        (bad(json!({"contact": {"channel": "email", "address": "dr.shah"}})), "bad_input", "not a usable email address"),
        (bad(json!({"contact": {"channel": "phone", "address": "555-12"}})), "bad_input", "7 to 15 digits"),
        (bad(json!({"contact": {"channel": "email"}})), "empty", "contact.address"),
    ] {
        let r = post(&w.app, Some(rep), &path, &body).await;
        assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, code), "{body}: {}", r.text);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains(says), "{body}: {}", r.text);
    }
    let r = post(&w.app, Some(w.token("medical")), &path, &confirm_body()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "another user's request: {}", r.text);
    let r = post(&w.app, Some(rep), "/api/v1/medical-requests/mr-nosuch/confirm", &confirm_body()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    let ok = post(&w.app, Some(rep), &path, &confirm_body()).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let case_id = ok.json()["case_id"].as_str().expect("the case").to_string();
    assert!(case_id.starts_with("MIR-"), "{case_id}");
    // The case, as Medical reads it: the HCP's words, the HCP, consent and channel.
    let c = get(&w.app, Some(w.token("medical")), &format!("/api/v1/cases/{case_id}")).await.json();
    assert_eq!(c["case"]["question"], confirm_body()["request_text"], "{c}");
    assert_eq!((c["case"]["hcp"].as_str(), c["case"]["reporter"].as_str(), c["case"]["kind"].as_str()), (Some("Dr. Shah"), Some("rex"), Some("medical_information")), "{c}");
    let opened = c["history"][0]["note"].as_str().unwrap_or_default();
    assert!(opened.contains("consent to be contacted given") && opened.contains("email: dr.shah@clinic.example"), "{c}");
    // Decided once: no longer pending, and a second decision is a conflict.
    let pending = get(&w.app, Some(rep), "/api/v1/medical-requests").await.json();
    assert!(!pending["requests"].as_array().unwrap().iter().any(|r| r["id"] == id.as_str()), "{pending}");
    let again = post(&w.app, Some(rep), &path, &confirm_body()).await;
    assert_eq!((again.status, again.code().as_str()), (StatusCode::CONFLICT, "invalid_state"), "{}", again.text);
    assert!(again.json()["error"]["message"].as_str().unwrap().contains(&case_id), "{}", again.text);
    let dismissed = post(&w.app, Some(rep), &format!("/api/v1/medical-requests/{id}/dismiss"), &json!({"reason": "changed my mind"})).await;
    assert_eq!(dismissed.status, StatusCode::CONFLICT, "{}", dismissed.text);
    // The confirmation is on the audit log, with the case.
    let log = onlabel::audit::Audit::open(&w.dir.join("data")).unwrap().range(None, None).unwrap();
    let rec = log.iter().find(|e| e.action == "medical_request_confirmed" && e.case_id.as_deref() == Some(case_id.as_str())).expect("audited");
    assert!(rec.detail_json.contains("\"consent\":true") && rec.detail_json.contains(&id), "{}", rec.detail_json);
}

/// A request the rep does not send is dismissed with a reason (required),
/// audited, and opens nothing.
#[tokio::test]
async fn a_dismissed_medical_request_is_audited_and_opens_no_case() {
    let w = world();
    let rep = w.token("rep");
    let a = ask(rep, off_label()).await;
    let id = a["medical_request"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/medical-requests/{id}/dismiss");
    let r: Resp = post(&w.app, Some(rep), &path, &json!({"reason": " "})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "empty"), "{}", r.text);
    let r = post(&w.app, Some(rep), &path, &json!({"reason": "The HCP withdrew the question."})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!((v["request"]["state"].as_str(), v["request"]["case_id"].as_str()), (Some("dismissed"), None), "{v}");
    let log = onlabel::audit::Audit::open(&w.dir.join("data")).unwrap().range(None, None).unwrap();
    let rec = log.iter().find(|e| e.action == "medical_request_dismissed" && e.detail_json.contains(&id)).expect("audited");
    assert_eq!((rec.actor.as_str(), rec.input.as_deref(), rec.case_id.as_deref()), ("rex", Some("The HCP withdrew the question."), None));
    let r = post(&w.app, Some(rep), &format!("/api/v1/medical-requests/{id}/confirm"), &confirm_body()).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "a dismissed request cannot be sent: {}", r.text);
}

/// Nothing opens a case on a bare pronoun: a question that only leans on a
/// previous turn, with none before it, is asked back — no case, no request.
#[tokio::test]
async fn a_bare_pronoun_with_nothing_before_it_opens_nothing() {
    let w = world();
    for q in ["what about it?", "What about patients who already have it?", "and those?"] {
        let a = ask(w.token("rep"), json!({"question": q, "product": "zentravia", "extractive": true})).await;
        assert!(a["case_id"].is_null() && a["medical_request"].is_null(), "{q}: {a}");
        assert_eq!(a["needs_context"], true, "{q}: {a}");
        assert!(a["answer"].as_str().unwrap().starts_with("Which product and topic do you mean?"), "{q}: {a}");
        assert!(a["citations"].as_array().unwrap().is_empty(), "{a}");
        let e = record(a["audit_id"].as_u64().unwrap());
        assert_eq!((e.input.as_deref(), e.case_id.as_deref()), (Some(q), None));
    }
}

/// Reports never wait: an adverse event opens its Pharmacovigilance case at
/// once, on a first question and in a follow-up (where "it" is the product
/// of the visit), and a turn already reported is not reported again.
#[tokio::test]
async fn a_report_opens_its_case_at_once_in_a_visit() {
    let w = world();
    let rep = w.token("rep");
    let pv = ask(rep, json!({"question": "My patient got a bad rash two weeks after starting zentravia", "product": "zentravia", "extractive": true})).await;
    assert_eq!(pv["route"], "pharmacovigilance", "{pv}");
    assert!(pv["case_id"].as_str().is_some_and(|c| c.starts_with("PV-")) && pv["medical_request"].is_null(), "{pv}");
    let conv = pv["conversation_id"].as_str().unwrap();
    // The next question is answered: the reported turn is not screened again.
    let next = ask(rep, json!({"question": "How often should liver tests be done?", "conversation_id": conv, "extractive": true})).await;
    assert_eq!((next["route"].as_str(), next["case_id"].as_str()), (Some("answer"), None), "{next}");
    let follow = ask(rep, json!({"question": "Her liver enzymes went up after she started it, what should I do?", "conversation_id": conv, "extractive": true})).await;
    assert_eq!(follow["route"], "pharmacovigilance", "{follow}");
    assert!(follow["case_id"].as_str().is_some_and(|c| c.starts_with("PV-")), "{follow}");
}
