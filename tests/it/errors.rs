//! Error answers (issue 16 point 3, issue 17 row 10): every error body is
//! `{"error": {"code", "message"}}` with its code's status from the one
//! table (`src/error.rs`), a client error is never a 500, and a 500 says
//! only "internal error" and the request id. Router-level, in-process
//! (`router(state).oneshot(req)`), plus the command line's exit codes.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use onlabel::server::{router, AppState, Config, Limits};
use onlabel::users::{Role, Users};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::harness::{bin, build_index, corpus, entry};

const PI: &[u8] = b"# Test PI\n\n## 1 INDICATIONS AND USAGE\n\nTESTRA is indicated for adults with plaque psoriasis.\n\n## 2 DOSAGE AND ADMINISTRATION\n\nThe recommended dosage is 20 mg orally once daily with or without food.\n\n## 5 WARNINGS AND PRECAUTIONS\n\n### 5.2 Hepatotoxicity\n\nTESTRA can cause serious liver injury. Monitor liver enzymes every 4 weeks.\n";

/// A small body limit, so that "over the limit" is cheap to send.
const MAX_BODY: usize = 4096;

/// A router over a one-product index and a fresh store, with one admin
/// (admin works cases and may ask); returns the data dir and the token.
struct App {
    dir: tempfile::TempDir,
    state: Arc<AppState>,
    token: String,
}

fn app(limits: Limits) -> App {
    let dir = tempfile::tempdir().unwrap();
    let c = corpus(&dir.path().join("c"), &entry("tp", "tp.md", "2099-01-01", "approved"), &[("tp.md", PI)]);
    let index = build_index(&[c], &dir.path().join("idx"));
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = onlabel::store::Store::open(&data).unwrap();
    let (_, token) = Users::new(&store).add("root", "Root Admin", Role::Admin, None).unwrap();
    drop(store);
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data: data.clone(),
        root: dir.path().to_path_buf(),
        index: dir.path().join("idx"),
        thresholds: dir.path().join("thresholds.toml"),
        products: json!({"products": [{"name": "testra", "documents": []}]}),
        limits,
        eval: Box::new(|_| Err("no evals in this test".into())),
        reload_prompt: None,
    };
    let state = Arc::new(AppState::new(onlabel::copilot::Copilot::new(index), config).unwrap());
    App { dir, state, token: token.0 }
}

fn small() -> Limits {
    Limits { max_body_bytes: MAX_BODY, ..Limits::default() }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    raw: String,
}

impl App {
    async fn send(&self, req: Request<Body>) -> Reply {
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let raw = String::from_utf8_lossy(&bytes).to_string();
        Reply { status: parts.status, headers: parts.headers, body: serde_json::from_str(&raw).unwrap_or(Value::Null), raw }
    }

    fn req(&self, method: &str, path: &str, token: bool) -> axum::http::request::Builder {
        let b = Request::builder().method(method).uri(path);
        if token {
            b.header(header::AUTHORIZATION, format!("Bearer {}", self.token))
        } else {
            b
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.req("GET", path, true).body(Body::empty()).unwrap()).await
    }

    async fn post_json(&self, path: &str, body: impl Into<Body>) -> Reply {
        self.send(self.req("POST", path, true).header(header::CONTENT_TYPE, "application/json").body(body.into()).unwrap()).await
    }
}

/// The error format: JSON, exactly `{"error": {"code", "message"}}`, the
/// code's status from the table.
fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.raw);
    let ct = r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}: {}", r.raw);
    let e = r.body["error"].as_object().unwrap_or_else(|| panic!("not an error body: {}", r.raw));
    let keys: Vec<&str> = e.keys().map(String::as_str).collect();
    assert_eq!(keys, ["code", "message"], "{}", r.raw);
    assert_eq!(r.body.as_object().unwrap().len(), 1, "{}", r.raw);
    assert_eq!(e["code"], code, "{}", r.raw);
    assert!(!e["message"].as_str().unwrap_or("").is_empty(), "{}", r.raw);
    assert_eq!(onlabel::error::http_status(code), status, "{code}: the table and the answer disagree");
}

#[tokio::test]
async fn probe_row10_unknown_route_is_a_json_404() {
    let a = app(small());
    for path in ["/api/v1/nothing-here", "/nope/deeper/still", "/favicon-nope.ico"] {
        let r = a.send(a.req("GET", path, false).body(Body::empty()).unwrap()).await;
        assert_error(&r, 404, "not_found");
    }
    let r = a.send(a.req("POST", "/api/v1/nothing-here", true).body(Body::from("{}")).unwrap()).await;
    assert_error(&r, 404, "not_found");
}

#[tokio::test]
async fn probe_row10_wrong_method_is_a_json_405_with_allow() {
    let a = app(small());
    for (method, path, allowed) in [("DELETE", "/api/v1/ask", "POST"), ("GET", "/api/v1/ask", "POST"), ("PUT", "/api/v1/cases", "GET")] {
        let r = a.send(a.req(method, path, true).body(Body::empty()).unwrap()).await;
        assert_error(&r, 405, "method_not_allowed");
        let allow = r.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow:?}");
    }
}

#[tokio::test]
async fn probe_row10_bad_query_string_is_a_json_400() {
    let a = app(small());
    for q in ["/api/v1/cases?open=maybe", "/api/v1/cases?limit=-3", "/api/v1/audit?limit=lots", "/api/v1/audit/verify?head_seq=abc"] {
        let r = a.get(q).await;
        assert_error(&r, 400, "bad_query");
        assert!(r.body["error"]["message"].as_str().unwrap().contains("query string"), "{q}: {}", r.raw);
    }
    // A URL segment that does not parse is JSON too.
    let r = a.get("/api/v1/evals/not-a-number").await;
    assert_error(&r, 400, "bad_url");
}

#[tokio::test]
async fn probe_row10_bad_json_and_oversize_bodies_are_json() {
    let a = app(small());
    let r = a.post_json("/api/v1/ask", "{\"question\": ").await;
    assert_error(&r, 400, "bad_json");
    let r = a.post_json("/api/v1/ask", r#"{"question": "dose?", "colour": "blue"}"#).await;
    assert_error(&r, 400, "bad_json");
    let r = a.send(a.req("POST", "/api/v1/ask", true).body(Body::from(r#"{"question": "dose?"}"#)).unwrap()).await;
    assert_error(&r, 415, "not_json");
    let big = json!({"question": "x".repeat(MAX_BODY * 2)}).to_string();
    let r = a.post_json("/api/v1/ask", big.clone()).await;
    assert_error(&r, 413, "too_large");
    let r = a.post_json("/api/v1/summarize", json!({"notes": "n".repeat(MAX_BODY * 2), "product": "testra"}).to_string()).await;
    assert_error(&r, 413, "too_large");
}

#[tokio::test]
async fn probe_row10_oversize_case_action_body_is_a_json_413() {
    let a = app(small());
    let body = json!({"note": "n".repeat(MAX_BODY * 2)}).to_string();
    let r = a.post_json("/api/v1/cases/PV-2026-000001/triage", body).await;
    assert_error(&r, 413, "too_large");
    // Bad JSON in a case action, and a case that does not exist, are JSON too.
    let r = a.post_json("/api/v1/cases/PV-2026-000001/triage", "{not json").await;
    assert_error(&r, 400, "bad_json");
    let r = a.post_json("/api/v1/cases/PV-2026-000001/triage", "").await;
    assert_error(&r, 404, "case_not_found");
}

#[tokio::test]
async fn probe_row10_401_carries_www_authenticate() {
    let a = app(small());
    for auth in [None, Some("Basic cm9vdDp4"), Some("Bearer olt_wrong")] {
        let mut b = a.req("GET", "/api/v1/me", false);
        if let Some(v) = auth {
            b = b.header(header::AUTHORIZATION, v);
        }
        let r = a.send(b.body(Body::empty()).unwrap()).await;
        assert_error(&r, 401, "unauthorized");
        assert_eq!(r.headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()), Some(r#"Bearer realm="onlabel""#), "{auth:?}");
    }
    // A 403 is not a challenge.
    let r = a.get("/api/v1/me").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(r.headers.get(header::WWW_AUTHENTICATE).is_none());
}

#[tokio::test]
async fn a_copilot_input_error_is_4xx_with_a_stable_code_over_http() {
    // --max-question above the copilot's own limit: a long question is still
    // 413 (before: the copilot refused it and the server answered 500).
    let a = app(Limits { max_question_chars: 5_000, ..Limits::default() });
    let q = "Is it hard on the liver? ".repeat(100);
    assert!(q.chars().count() > onlabel::copilot::MAX_QUESTION_CHARS && q.chars().count() < 5_000);
    let r = a.post_json("/api/v1/ask", json!({"question": q, "extractive": true}).to_string()).await;
    assert_error(&r, 413, "too_large");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("2000-character limit"), "{}", r.raw);
    let r = a.post_json("/v1/chat/completions", json!({"model": "onlabel:testra", "messages": [{"role": "user", "content": q}]}).to_string()).await;
    assert_error(&r, 413, "too_large");
    let r = a.post_json("/api/v1/ask", json!({"question": "Is it hard on the liver?", "product": "nosuch"}).to_string()).await;
    assert_error(&r, 400, "unknown_product");
    let r = a.post_json("/api/v1/ask", json!({"question": "   "}).to_string()).await;
    assert_error(&r, 400, "empty");
    // And a question the server lets through answers 200.
    let r = a.post_json("/api/v1/ask", json!({"question": "Is it hard on the liver?", "product": "testra", "extractive": true}).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

/// A `tracing` writer into a shared buffer, to read what the server logged.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;
    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

/// Breaks the store under a running server: the cases table is gone.
fn break_cases_table(data: &Path) {
    let c = rusqlite::Connection::open(data.join(onlabel::store::FILE_NAME)).unwrap();
    c.execute_batch("PRAGMA foreign_keys = OFF; DROP TABLE IF EXISTS case_history; DROP TABLE cases;").unwrap();
}

#[tokio::test]
async fn a_500_body_holds_only_the_generic_message_and_the_request_id() {
    let log = Log::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::fmt().with_writer(log.clone()).with_ansi(false).finish());
    let a = app(small());
    let ok = a.get("/api/v1/cases").await;
    assert_eq!(ok.status, 200, "{}", ok.raw);
    break_cases_table(&a.dir.path().join("data"));
    for path in ["/api/v1/cases", "/api/v1/cases/PV-2026-000001"] {
        let r = a.get(path).await;
        assert_eq!(r.status, 500, "{}", r.raw);
        let id = r.headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap().to_string();
        assert_eq!(
            r.body,
            json!({"error": {"code": "internal", "message": format!("internal error (request id {id})"), "request_id": id}}),
            "{}",
            r.raw
        );
        // The detail (SQLite's words, the store's path) is in the log, once, under the request id.
        let text = String::from_utf8_lossy(&log.0.lock().unwrap()).to_string();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&format!("request_id={id}")) && l.contains("internal error")).collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].contains("no such table"), "{}", lines[0]);
        assert!(!r.raw.contains("no such table") && !r.raw.contains("sqlite"), "{}", r.raw);
    }
}

fn run(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code().unwrap_or(-1), serde_json::from_str(&stdout).unwrap_or(Value::Null), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn a_copilot_input_error_is_exit_2_with_the_same_code_on_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let c = corpus(&dir.path().join("c"), &entry("tp", "tp.md", "2099-01-01", "approved"), &[("tp.md", PI)]);
    build_index(&[c], &dir.path().join("idx"));
    let idx = dir.path().join("idx");
    let idx = idx.to_str().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let long = "liver ".repeat(400);
    let (code, out, err) = run(&["--json", "--data", data, "ask", "--extractive", "--index", idx, &long]);
    assert_eq!((code, out["error"]["code"].as_str()), (2, Some("bad_question")), "{err}");
    let (code, out, err) = run(&["--json", "--data", data, "email", "--index", idx, "--product", "nosuch", "--hcp", "Dr. Lee", "liver"]);
    assert_eq!((code, out["error"]["code"].as_str()), (2, Some("unknown_product")), "{err}");
    assert!(err.contains("it holds: testra"), "{err}");
    // The exit statuses are the table's.
    assert_eq!(onlabel::error::exit_status("bad_question"), 2);
    assert_eq!(onlabel::error::exit_status("unknown_product"), 2);
}
