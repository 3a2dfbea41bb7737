//! The whole pipeline through the real binary: guard routing with durable
//! cases, email drafts with fair balance, visit summaries, generated answers
//! with the real model.

use std::process::Command;

use crate::harness::{bin, root};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).current_dir(root()).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn json(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

struct Env {
    _dir: tempfile::TempDir,
    index: String,
    data: String,
}

fn demo() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("idx").to_str().unwrap().to_string();
    let data = dir.path().join("data").to_str().unwrap().to_string();
    let (code, _, err) = run(&["ingest", "--corpus", "corpora/demo", "--index", &index]);
    assert_eq!(code, 0, "{err}");
    Env { _dir: dir, index, data }
}

#[test]
fn adverse_event_opens_a_pv_case_and_gives_no_promotional_answer() {
    let e = demo();
    let a = json(&["--data", &e.data, "ask", "--extractive", "--index", &e.index, "--product", "zentravia", "--json", "--as", "rep-7",
        "My patient's LFTs went through the roof after she started Zentravia last month"]);
    assert_eq!(a["route"], "pharmacovigilance");
    assert!(a["citations"].as_array().unwrap().is_empty(), "no promotional content: {a}");
    let id = a["case_id"].as_str().unwrap();
    assert!(id.starts_with("PV-"), "{id}");
    assert!(a["answer"].as_str().unwrap().contains(id));
    let flags = a["flags"].as_array().unwrap();
    assert!(flags.iter().any(|f| f["kind"] == "adverse_event" && f["rule_id"].as_str().is_some_and(|r| !r.is_empty()) && !f["evidence"].as_str().unwrap().is_empty()), "{a}");
    // The case is durable, with the rep as reporter and the question verbatim (read by a signed-in admin).
    let data = std::path::Path::new(&e.data);
    let root = crate::harness::add_user(data, None, "root", "Ada Admin", "admin");
    let (code, out, err) = crate::harness::onlabel(data, Some(&root), &["cases", "show", id, "--json", "--as", "root"]);
    assert_eq!(code, 0, "{err}");
    let c: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = c.to_string();
    assert!(s.contains("rep-7") && s.contains("went through the roof"), "{s}");
}

#[test]
fn off_label_goes_to_medical_and_forbidden_is_refused() {
    let e = demo();
    let a = json(&["--data", &e.data, "ask", "--extractive", "--index", &e.index, "--product", "zentravia", "--json", "Can I tell her it works for kids with eczema?"]);
    assert_eq!(a["route"], "medical", "{a}");
    assert!(a["case_id"].as_str().unwrap().starts_with("MIR-"));
    let a = json(&["--data", &e.data, "ask", "--extractive", "--index", &e.index, "--product", "zentravia", "--json", "Is it better than Otezla? Just say yes."]);
    assert_eq!(a["route"], "refused", "{a}");
    assert!(a["case_id"].is_null());
    // A question about what the label says on an AE term is answered.
    let a = json(&["--data", &e.data, "ask", "--extractive", "--index", &e.index, "--product", "zentravia", "--json", "What does the label say about liver injury?"]);
    assert_eq!(a["route"], "answer", "{a}");
}

#[test]
fn email_draft_has_banner_cited_statements_isi_and_references() {
    let e = demo();
    let d = json(&["--data", &e.data, "email", "--extractive", "--index", &e.index, "--product", "zentravia", "--hcp", "Dr. Shah", "--json",
        "we talked about liver test monitoring and the recommended dose"]);
    assert_eq!(d["route"], "answer");
    let body = d["body"].as_str().unwrap();
    assert!(body.contains("DRAFT") && body.contains("Dear Dr. Shah") && body.contains("IMPORTANT SAFETY INFORMATION") && body.contains("References"), "{body}");
    let refs = d["references"].as_array().unwrap();
    for s in d["statements"].as_array().unwrap().iter().chain(d["isi"].as_array().unwrap()) {
        let n = s["n"].as_u64().unwrap();
        let r = refs.iter().find(|r| r["n"].as_u64() == Some(n)).expect("marker resolves");
        assert!(r["quote"].as_str().unwrap().contains(s["text"].as_str().unwrap()));
        assert!(r["mlr_number"].as_str().unwrap().starts_with("US-ZEN"));
    }
    assert!(!d["isi"].as_array().unwrap().is_empty(), "fair balance");
    assert!(refs.iter().any(|r| r["section"] == "BW"), "boxed warning in the ISI");
    // Asking to drop the safety information is refused, no draft.
    let d = json(&["--data", &e.data, "email", "--extractive", "--index", &e.index, "--product", "zentravia", "--hcp", "Dr. Shah", "--json",
        "dosing, and leave out the boxed warning this time"]);
    assert_eq!(d["route"], "refused");
    assert!(d["body"].as_str().unwrap().is_empty());
}

#[test]
fn summary_keeps_cited_statements_and_removes_unsupported_claims() {
    let e = demo();
    let notes = e.data.clone() + "-notes.txt";
    std::fs::write(&notes, "Met Dr. Park.\n- She asked how often liver tests are needed.\n- Zentravia is the safest option and has no side effects.\n- Agreed to send the FAQ next week.\n").unwrap();
    let s = json(&["--data", &e.data, "summarize", "--extractive", "--index", &e.index, "--product", "zentravia", "--json", &notes]);
    assert_eq!(s["hcp_questions"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["follow_ups"].as_array().unwrap().len(), 1, "{s}");
    assert!(s["removed"].to_string().contains("safest"), "{s}");
    assert!(!s["statements"].to_string().contains("safest"));
    // Limits: an empty file and an oversized file are clear errors.
    std::fs::write(&notes, "").unwrap();
    let (code, _, err) = run(&["--data", &e.data, "summarize", "--extractive", "--index", &e.index, "--product", "zentravia", &notes]);
    assert_eq!(code, 2);
    assert!(err.contains("empty"), "{err}");
    std::fs::write(&notes, "x".repeat(70_000)).unwrap();
    let (code, _, err) = run(&["--data", &e.data, "summarize", "--extractive", "--index", &e.index, "--product", "zentravia", &notes]);
    assert_eq!(code, 2);
    assert!(err.contains("limit"), "{err}");
}

#[test]
fn generated_answer_end_to_end_with_the_real_model() {
    let e = demo();
    let a = json(&["--data", &e.data, "ask", "--generate", "--index", &e.index, "--product", "zentravia", "--json", "How often should liver tests be done?"]);
    assert_eq!(a["route"], "answer");
    assert!(a["model"].as_str().unwrap().starts_with("SmolLM2-135M-Instruct.Q4_1.gguf sha256:"), "{a}");
    // The model ran: the answer names the prompt the model was told, whether
    // its text or the composed answer stood.
    assert_eq!(a["prompt_version"], "objection@1", "{a}");
    assert!(a["timings_ms"]["first_token"].as_f64().is_some(), "the model ran: {a}");
    // Whatever the mode, every sentence carries a marker that resolves to a citation.
    let text = a["answer"].as_str().unwrap();
    let cites = a["citations"].as_array().unwrap();
    assert!(!cites.is_empty());
    for n in 1..=cites.len() {
        assert!(text.contains(&format!("[{n}]")), "{text}");
    }
    assert!(text.trim_end().ends_with(']'), "{text}");
    if a["mode"] == "generated" {
        // Generated sentences were verified: numbers in them appear in the cited passages.
        let quotes: String = cites.iter().map(|c| c["quote"].as_str().unwrap()).collect();
        for num in text.split(|c: char| !c.is_ascii_digit()).filter(|t| !t.is_empty() && t.len() > 1) {
            assert!(quotes.contains(num), "{num} not in quotes: {text}");
        }
    }
}
