//! The HTTP surface driven in-process: `router(state).oneshot(request)` on
//! the real router, store, index and guard (no process, no socket, no
//! model: answers are extractive). Authorization (every role on every route
//! group, and each way a token is refused), every request limit on both
//! sides of its edge, and the error cases with their JSON body shape (the
//! bodies are insta snapshots). `server.rs` keeps one real-socket test per
//! concern the router cannot show (streaming over TCP, the queue, shutdown,
//! logs, the OpenAI client).
//!
//! The users are made once per test binary ([`world`]): argon2id is slow on
//! purpose, so each role's token is hashed once and checked once per state.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use onlabel::copilot::Copilot;
use onlabel::server::{router, AppState, Config, Limits};
use onlabel::users::{Role, Users};

use crate::harness::{build_index, root, scratch_repo};

/// The day the guard's label references are built for (fixed, as `serve
/// --as-of`). Asks over HTTP are answered as of today (as a rep's CLI asks):
/// the demo labels are valid from 2025-08-15 to 2028-06-30, so the answers
/// do not change between the two days until then.
const AS_OF: &str = "2026-11-23";

/// The roles, in the order of the matrix in [`every_role_on_every_route_group`].
pub const ROLES: [&str; 5] = ["rep", "mlr_reviewer", "compliance", "medical", "admin"];

/// What every in-process test shares: one demo index, one store with one
/// user per role (and a disabled one), and two routers over them.
pub struct World {
    /// The scratch folder (a static is never dropped: it stays until the OS
    /// cleans the temp dir; it holds a small index and one SQLite file).
    pub dir: PathBuf,
    /// The scratch repository (prompts/, evals/) the registry's paths are relative to.
    repo: PathBuf,
    /// Tokens by role name (`ROLES`), plus `disabled` (a rep who was disabled).
    tokens: Vec<(&'static str, String)>,
    /// The router with the default limits.
    pub app: Router,
    /// The router with small limits, to test each one at its edge.
    pub tight: Router,
}

/// Small limits for [`World::tight`].
pub fn tight_limits() -> Limits {
    Limits { max_body_bytes: 4096, max_question_chars: 300, max_notes_bytes: 1000, ..Limits::default() }
}

impl World {
    /// The token of a role (or `disabled`).
    pub fn token(&self, role: &str) -> &str {
        self.tokens.iter().find(|(r, _)| *r == role).map(|(_, t)| t.as_str()).unwrap_or_else(|| panic!("no user with role {role}"))
    }
}

/// The world of this test binary, made on first use.
pub fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("onlabel-router-").tempdir().unwrap().keep();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let index = dir.join("idx");
        build_index(&[root().join("corpora/demo")], &index);
        let repo = scratch_repo(&dir);
        let store = onlabel::store::Store::open(&data).unwrap();
        let users = Users::new(&store);
        let (admin, admin_token) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
        let mut tokens = vec![("admin", admin_token.0)];
        for (id, name, role) in [
            ("rex", "Rex Rep", Role::Rep),
            ("alice", "Alice Author", Role::MlrReviewer),
            ("carol", "Carol Compliance", Role::Compliance),
            ("mia", "Mia Medical", Role::Medical),
            ("dora", "Dora Departed", Role::Rep),
        ] {
            let (_, t) = users.add(id, name, role, Some(&admin)).unwrap();
            tokens.push((if id == "dora" { "disabled" } else { role.as_str() }, t.0));
        }
        users.disable("dora", &admin).unwrap();
        World { app: app(&data, &index, &repo, Limits::default()), tight: app(&data, &index, &repo, tight_limits()), dir, repo, tokens }
    })
}

/// The router as `onlabel serve --extractive` builds it: the demo index, the
/// built-in guard, the case store in `data`, no model.
fn app(data: &std::path::Path, index: &std::path::Path, repo: &std::path::Path, limits: Limits) -> Router {
    let as_of = AS_OF.parse().unwrap();
    let guard = Arc::new(onlabel::guard::Guard::builtin().unwrap());
    let copilot = Copilot::new(onlabel::index::Index::open(index).unwrap())
        .with_guard(guard, as_of)
        .unwrap()
        .with_cases(onlabel::cases::CaseStore::open(data).unwrap());
    let products = json!({"products": copilot.products().into_iter().map(|p| json!({"name": p})).collect::<Vec<_>>()});
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data: data.to_path_buf(),
        root: repo.to_path_buf(),
        index: index.to_path_buf(),
        thresholds: repo.join("evals/thresholds.toml"),
        products,
        limits,
        // No test here starts an eval (the route's checks come first); server.rs runs one for real.
        eval: Box::new(|_| Err("evals are not run by the in-process router tests".to_string())),
        reload_prompt: None,
    };
    router(Arc::new(AppState::new(copilot, config).unwrap()))
}

/// One response: status, headers, body (JSON, or `{"text": …}`).
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    /// The body as JSON (`{"text": …}` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| json!({ "text": self.text }))
    }
    /// The error body's `error.code`.
    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_string()
    }
}

/// A request: method, path, bearer token, JSON body.
pub fn request(method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// Sends `req` through `app` and reads the whole response (a stream to its end).
pub async fn send(app: &Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap();
    Resp { status: parts.status, headers: parts.headers, text: String::from_utf8_lossy(&bytes).into_owned() }
}

/// GET with a token.
pub async fn get(app: &Router, token: Option<&str>, path: &str) -> Resp {
    send(app, request(Method::GET, path, token, None)).await
}

/// POST JSON with a token.
pub async fn post(app: &Router, token: Option<&str>, path: &str, body: &Value) -> Resp {
    send(app, request(Method::POST, path, token, Some(body))).await
}

/// POST raw bytes as JSON with a token.
pub async fn post_raw(app: &Router, token: Option<&str>, path: &str, body: impl Into<Body>, content_type: Option<&str>) -> Resp {
    let mut b = Request::builder().method(Method::POST).uri(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    send(app, b.body(body.into()).unwrap()).await
}

/// Redacts what changes from run to run: ids, times, timings, hashes, and a
/// case id inside any text; then snapshots. Nulls stay null (a null
/// `case_id` says no case was opened).
#[macro_export]
macro_rules! snap {
    ($name:expr, $value:expr) => {{
        let v = $crate::router::scrub($value);
        $crate::router::redactions().bind(|| insta::assert_json_snapshot!($name, v));
    }};
}

/// The redactions every snapshot gets.
pub fn redactions() -> insta::Settings {
    use insta::internals::{Content, ContentPath};
    fn keep_null(label: &'static str) -> insta::internals::Redaction {
        insta::dynamic_redaction(move |v: Content, _: ContentPath<'_>| if v.is_nil() { v } else { Content::from(label) })
    }
    let mut s = insta::Settings::clone_current();
    for (sel, label) in [
        (".**.audit_id", "[audit_id]"),
        (".**.case_id", "[case_id]"),
        (".**.timings_ms", "[timings]"),
        (".**.prompt_sha256", "[sha256]"),
        (".**.created", "[created]"),
        (".**.created_at", "[time]"),
        (".**.request_id", "[request_id]"),
        (".**.case_store", "[path]"),
        (".**.conversation_id", "[conversation_id]"),
        (".**.medical_request", "[medical_request]"),
    ] {
        s.add_redaction(sel, keep_null(label));
    }
    s
}

/// Replaces what changes inside strings: case ids (`PV-2026-000001`,
/// `MIR-2026-000001`: the guard's messages name the case they opened),
/// content hashes (`sha256:1500b466…`, in `guard_rules` and `model`; the
/// versions beside them stay) and request ids (`chatcmpl-3f2a…-17`, and a
/// 500's `(request id 3f2a…-17)`).
pub fn scrub(v: Value) -> Value {
    static RE: OnceLock<[(regex::Regex, &str); 4]> = OnceLock::new();
    let res = RE.get_or_init(|| {
        [
            (regex::Regex::new(r"\b(PV|MIR)-\d{4}-\d{6}\b").unwrap(), "[case_id]"),
            (regex::Regex::new(r"sha256:[0-9a-f]{8,64}").unwrap(), "sha256:[hash]"),
            (regex::Regex::new(r"^chatcmpl-[0-9a-f]+-\d+$").unwrap(), "chatcmpl-[request_id]"),
            (regex::Regex::new(r"\(request id [0-9a-f]+-\d+\)").unwrap(), "(request id [request_id])"),
        ]
    });
    match v {
        Value::String(mut s) => {
            for (re, with) in res {
                s = re.replace_all(&s, *with).into_owned();
            }
            Value::String(s)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(scrub).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, scrub(v))).collect()),
        other => other,
    }
}

/// An answerable question on the demo label, quoted extractively.
pub fn lft_ask() -> Value {
    json!({"question": "What are the LFT monitoring rules?", "product": "zentravia", "extractive": true})
}

// ---------------------------------------------------------------- authorization

#[tokio::test]
async fn tokens_are_refused_without_bearer_when_empty_wrong_or_disabled() {
    // Three failed sign-ins (wrong, junk, disabled) from the one in-process
    // "address": under the default throttle (10 in 15 minutes) for the whole binary.
    let w = world();
    let no_token = get(&w.app, None, "/api/v1/me").await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    snap!("error_401_no_token", no_token.json());
    // Basic credentials, an empty bearer, a wrong token, a disabled user's token.
    let basic = send(&w.app, Request::builder().uri("/api/v1/me").header(header::AUTHORIZATION, "Basic cmV4OnNlY3JldA==").body(Body::empty()).unwrap()).await;
    assert_eq!((basic.status, basic.code().as_str()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{}", basic.text);
    assert!(basic.text.contains("Bearer TOKEN"), "{}", basic.text);
    for empty in ["Bearer ", "Bearer    ", "Bearer", ""] {
        let r = send(&w.app, Request::builder().uri("/api/v1/me").header(header::AUTHORIZATION, empty).body(Body::empty()).unwrap()).await;
        assert_eq!((r.status, r.code().as_str()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{empty:?}: {}", r.text);
    }
    let wrong = get(&w.app, Some("olt_0000000000000000000000000000000000000000000000000000000000000000"), "/api/v1/me").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    snap!("error_401_wrong_token", wrong.json());
    let junk = get(&w.app, Some("not-a-token"), "/api/v1/me").await;
    assert_eq!(junk.status, StatusCode::UNAUTHORIZED, "{}", junk.text);
    let disabled = get(&w.app, Some(w.token("disabled")), "/api/v1/me").await;
    assert_eq!((disabled.status, disabled.code().as_str()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{}", disabled.text);
    assert!(disabled.text.contains("disabled"), "the refusal says why: {}", disabled.text);
    // A token is not accepted in the query string, only in the header.
    let q = get(&w.app, None, &format!("/api/v1/me?token={}", w.token("rep"))).await;
    assert_eq!(q.status, StatusCode::UNAUTHORIZED);
    // The scheme is case-insensitive as RFC 7235 says (lower-case `bearer` works).
    let lower = send(&w.app, Request::builder().uri("/api/v1/me").header(header::AUTHORIZATION, format!("bearer {}", w.token("rep"))).body(Body::empty()).unwrap()).await;
    assert_eq!(lower.status, StatusCode::OK, "{}", lower.text);
    let me = get(&w.app, Some(w.token("rep")), "/api/v1/me").await;
    assert_eq!(me.json(), json!({"id": "rex", "name": "Rex Rep", "role": "rep"}));
}

/// One request of a route group, the roles it admits and the status an
/// admitted role gets (a role outside `allowed` gets 403 `forbidden`).
struct Probe {
    group: &'static str,
    method: Method,
    path: &'static str,
    body: Option<Value>,
    allowed: &'static [&'static str],
    ok: StatusCode,
    /// The error code an admitted role gets (when `ok` is an error: the
    /// request passes the role check and fails on what follows it).
    ok_code: Option<&'static str>,
}

const ANY: &[&str] = &ROLES;
const MEDICAL: &[&str] = &["medical", "admin"];
const COMPLIANCE: &[&str] = &["compliance", "admin"];
/// Every role but `rep`: a rep gets answers, never the instructions behind them (issue 17 row 4).
const PROMPT_READERS: &[&str] = &["mlr_reviewer", "compliance", "medical", "admin"];
const AUTHORS: &[&str] = &["mlr_reviewer", "admin"];
const SIGNERS: &[&str] = &["mlr_reviewer"];
const EVIDENCE: &[&str] = &["mlr_reviewer", "compliance", "admin"];

fn probes() -> Vec<Probe> {
    let p = |group, method, path, body: Option<Value>, allowed, ok, ok_code| Probe { group, method, path, body, allowed, ok, ok_code };
    use StatusCode as S;
    vec![
        p("me", Method::GET, "/api/v1/me", None, ANY, S::OK, None),
        p("products", Method::GET, "/api/v1/products", None, ANY, S::OK, None),
        p("ask", Method::POST, "/api/v1/ask", Some(lft_ask()), ANY, S::OK, None),
        p("email", Method::POST, "/api/v1/email", Some(json!({"product": "zentravia", "hcp": "Dr. Lee", "topics": "liver monitoring"})), ANY, S::OK, None),
        p("summarize", Method::POST, "/api/v1/summarize", Some(json!({"product": "zentravia", "notes": "Discussed liver monitoring with Dr. Lee."})), ANY, S::OK, None),
        p("prompts", Method::GET, "/api/v1/prompts", None, PROMPT_READERS, S::OK, None),
        p("prompts", Method::GET, "/api/v1/prompts/objection@1", None, PROMPT_READERS, S::NOT_FOUND, Some("prompt_not_found")),
        p("prompts", Method::GET, "/api/v1/prompts/objection@1/diff", None, PROMPT_READERS, S::NOT_FOUND, Some("prompt_not_found")),
        p("prompts", Method::POST, "/api/v1/prompts", Some(json!({"name": "objection"})), AUTHORS, S::BAD_REQUEST, Some("bad_request")),
        p("prompts", Method::POST, "/api/v1/prompts/objection@1/submit", Some(json!({})), AUTHORS, S::NOT_FOUND, Some("prompt_not_found")),
        p("prompts", Method::POST, "/api/v1/prompts/objection@1/approve", Some(json!({"reason": " ", "secret": "x"})), SIGNERS, S::BAD_REQUEST, Some("empty")),
        p("prompts", Method::POST, "/api/v1/prompts/objection@1/reject", Some(json!({"reason": " ", "secret": "x"})), SIGNERS, S::BAD_REQUEST, Some("empty")),
        p("cases", Method::GET, "/api/v1/cases", None, ANY, S::OK, None),
        // Issue 21.4: a case the caller may not see is the 404 of a missing one (Medical: case_not_found, others: not_found).
        p("cases", Method::GET, "/api/v1/cases/PV-2000-000001", None, ANY, S::NOT_FOUND, None),
        p("cases", Method::POST, "/api/v1/cases/PV-2000-000001/start", Some(json!({})), MEDICAL, S::NOT_FOUND, Some("case_not_found")),
        p("cases", Method::GET, "/api/v1/cases/PV-2000-000001/intake", None, ANY, S::NOT_FOUND, None),
        p("cases", Method::PUT, "/api/v1/cases/PV-2000-000001/intake", Some(json!({})), ANY, S::NOT_FOUND, None),
        p("cases", Method::GET, "/api/v1/case-owners", None, MEDICAL, S::OK, None),
        p("audit", Method::GET, "/api/v1/audit?limit=1", None, COMPLIANCE, S::OK, None),
        p("audit", Method::GET, "/api/v1/audit/verify", None, COMPLIANCE, S::OK, None),
        p("evals", Method::POST, "/api/v1/evals", Some(json!({"suite": "nosuch"})), COMPLIANCE, S::BAD_REQUEST, Some("bad_suite")),
        p("evals", Method::GET, "/api/v1/evals/424242", None, EVIDENCE, S::NOT_FOUND, Some("not_found")),
        p("evals", Method::GET, "/api/v1/evals/424242/report", None, EVIDENCE, S::NOT_FOUND, Some("not_found")),
        p("openai", Method::GET, "/v1/models", None, ANY, S::OK, None),
        p("openai", Method::POST, "/v1/chat/completions",
            Some(json!({"model": "onlabel:zentravia", "messages": [{"role": "user", "content": "What are the LFT monitoring rules?"}]})), ANY, S::OK, None),
    ]
}

#[tokio::test]
async fn every_role_on_every_route_group() {
    let w = world();
    let mut table = vec![format!("{:9} {:4} {:41} {}", "group", "", "path", ROLES.join(" "))];
    for probe in probes() {
        let mut row = format!("{:9} {:4} {:41}", probe.group, probe.method.as_str(), probe.path);
        // Without a token every one of these is 401.
        let r = send(&w.app, request(probe.method.clone(), probe.path, None, probe.body.as_ref())).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{} {} without a token: {}", probe.method, probe.path, r.text);
        for role in ROLES {
            let r = send(&w.app, request(probe.method.clone(), probe.path, Some(w.token(role)), probe.body.as_ref())).await;
            let what = format!("{} {} as {role}", probe.method, probe.path);
            if probe.allowed.contains(&role) {
                assert_eq!(r.status, probe.ok, "{what}: {}", r.text);
                if let Some(code) = probe.ok_code {
                    assert_eq!(r.code(), code, "{what}: {}", r.text);
                }
            } else {
                assert_eq!((r.status, r.code().as_str()), (StatusCode::FORBIDDEN, "forbidden"), "{what}: {}", r.text);
                assert!(r.json()["error"]["message"].as_str().unwrap().contains(&format!("signed in as {role}")), "{what}: {}", r.text);
            }
            row.push_str(&format!(" {:>w$}", r.status.as_u16(), w = role.len()));
        }
        table.push(row);
    }
    // The whole matrix as one snapshot: a change of who may do what shows in review.
    insta::assert_snapshot!("role_matrix", table.join("\n"));
    let forbidden = get(&w.app, Some(w.token("rep")), "/api/v1/case-owners").await;
    snap!("error_403_forbidden", forbidden.json());
    // The answers an admitted role gets are real: a rep's ask is answered and traced.
    let a = post(&w.app, Some(w.token("rep")), "/api/v1/ask", &lft_ask()).await.json();
    assert_eq!(a["route"], "answer", "{a}");
    assert!(a["audit_id"].as_u64().is_some(), "{a}");
}

#[tokio::test]
async fn health_readiness_metrics_openapi_and_the_ui_need_no_token() {
    let w = world();
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/"] {
        let r = get(&w.app, None, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        // A token does not change them (and a bad one is not checked there).
        assert_eq!(get(&w.app, Some("olt_wrong"), path).await.status, StatusCode::OK, "{path}");
    }
    let ready = get(&w.app, None, "/readyz").await.json();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["model"], Value::Null, "no model in these tests: {ready}");
    assert!(ready["passages"].as_u64().unwrap() > 0, "{ready}");
    // Metrics count requests by matched path (never the raw path with ids).
    get(&w.app, Some(w.token("medical")), "/api/v1/cases/PV-2000-000001").await;
    let m = get(&w.app, None, "/metrics").await;
    assert!(m.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert!(m.text.contains("onlabel_http_requests_total{method=\"GET\",path=\"/api/v1/cases/{id}\",status=\"404\"}"), "{}", m.text);
    assert!(!m.text.contains("PV-2000-000001"), "{}", m.text);
    // Every response carries a request id.
    let r = get(&w.app, None, "/healthz").await;
    assert!(r.headers.get("x-request-id").is_some_and(|v| !v.is_empty()), "{:?}", r.headers);
}

// ---------------------------------------------------------------- limits

#[tokio::test]
async fn body_limit_413_at_its_edge() {
    let w = world();
    let rep = Some(w.token("rep"));
    // A body padded with JSON whitespace to exactly the limit passes; one byte more is 413.
    let base = lft_ask().to_string();
    let at_limit = format!("{base}{}", " ".repeat(tight_limits().max_body_bytes - base.len()));
    assert_eq!(at_limit.len(), 4096);
    let r = post_raw(&w.tight, rep, "/api/v1/ask", at_limit.clone(), Some("application/json")).await;
    assert_eq!(r.status, StatusCode::OK, "a body at the limit: {}", r.text);
    let r = post_raw(&w.tight, rep, "/api/v1/ask", format!("{at_limit} "), Some("application/json")).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"), "{}", r.text);
    // The default limit (256 KiB), on every route that takes a body.
    let big = " ".repeat(Limits::default().max_body_bytes + 1);
    for path in ["/api/v1/ask", "/api/v1/email", "/api/v1/summarize", "/v1/chat/completions", "/api/v1/prompts", "/api/v1/evals"] {
        let who = if path.starts_with("/api/v1/prompts") { "admin" } else if path == "/api/v1/evals" { "compliance" } else { "rep" };
        let r = post_raw(&w.app, Some(w.token(who)), path, format!("{{}}{big}"), Some("application/json")).await;
        assert_eq!((r.status, r.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"), "{path}: {}", r.text);
        if path == "/api/v1/ask" {
            snap!("error_413_body", r.json());
        }
    }
}

#[tokio::test]
async fn question_topics_and_notes_limits_413_at_their_edge() {
    let w = world();
    let rep = Some(w.token("rep"));
    let limits = tight_limits();
    // Questions: characters, not bytes (300 × "é" is 600 bytes and passes).
    let q = |n: usize, c: &str| json!({"question": format!("liver {}", c.repeat(n - 6)), "product": "zentravia", "extractive": true});
    assert_eq!(post(&w.tight, rep, "/api/v1/ask", &q(limits.max_question_chars, "x")).await.status, StatusCode::OK);
    assert_eq!(post(&w.tight, rep, "/api/v1/ask", &q(limits.max_question_chars, "é")).await.status, StatusCode::OK);
    let over = post(&w.tight, rep, "/api/v1/ask", &q(limits.max_question_chars + 1, "x")).await;
    assert_eq!((over.status, over.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"), "{}", over.text);
    snap!("error_413_question", over.json());
    // The same limit through the OpenAI face (the last user message is the question).
    let chat = json!({"model": "onlabel:zentravia", "messages": [{"role": "user", "content": "x".repeat(limits.max_question_chars + 1)}]});
    assert_eq!(post(&w.tight, rep, "/v1/chat/completions", &chat).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    // The default question limit (2,000 characters).
    let over = post(&w.app, rep, "/api/v1/ask", &q(Limits::default().max_question_chars + 1, "x")).await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", over.text);
    assert!(over.text.contains("2000-character limit"), "{}", over.text);
    // Email topics share the question's limit.
    let email = |n: usize| json!({"product": "zentravia", "hcp": "Dr. Lee", "topics": format!("liver {}", "x".repeat(n - 6))});
    assert_eq!(post(&w.tight, rep, "/api/v1/email", &email(limits.max_question_chars)).await.status, StatusCode::OK);
    let over = post(&w.tight, rep, "/api/v1/email", &email(limits.max_question_chars + 1)).await;
    assert_eq!((over.status, over.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"), "{}", over.text);
    assert!(over.text.contains("topics is 301 characters"), "{}", over.text);
    // Notes: bytes.
    let notes = |n: usize| json!({"product": "zentravia", "notes": format!("Discussed liver monitoring.{}", " ok".repeat(n)).chars().take(n).collect::<String>()});
    let at = notes(limits.max_notes_bytes);
    assert_eq!(at["notes"].as_str().unwrap().len(), limits.max_notes_bytes);
    let r = post(&w.tight, rep, "/api/v1/summarize", &at).await;
    assert_eq!(r.status, StatusCode::OK, "notes at the limit: {}", r.text);
    let over = post(&w.tight, rep, "/api/v1/summarize", &notes(limits.max_notes_bytes + 1)).await;
    assert_eq!((over.status, over.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"), "{}", over.text);
    snap!("error_413_notes", over.json());
    // The default notes limit (64 KiB) is under the default body limit, so it is the one that answers.
    let over = post(&w.app, rep, "/api/v1/summarize", &notes(Limits::default().max_notes_bytes + 1)).await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", over.text);
    assert!(over.text.contains("65536-byte limit"), "{}", over.text);
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn unknown_products_models_cases_and_versions() {
    let w = world();
    let rep = Some(w.token("rep"));
    let r = post(&w.app, rep, "/api/v1/ask", &json!({"question": "What are the LFT monitoring rules?", "product": "nosuch"})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "unknown_product"), "{}", r.text);
    snap!("error_400_unknown_product", r.json());
    let r = post(&w.app, rep, "/api/v1/email", &json!({"product": "nosuch", "hcp": "Dr. Lee", "topics": "liver"})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "unknown_product"), "{}", r.text);
    let r = post(&w.app, rep, "/api/v1/summarize", &json!({"product": "nosuch", "notes": "Discussed liver."})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "unknown_product"), "{}", r.text);
    // A product is matched case- and space-insensitively.
    let r = post(&w.app, rep, "/api/v1/ask", &json!({"question": "What are the LFT monitoring rules?", "product": " ZENTRAVIA ", "extractive": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The OpenAI face: an unknown model, an unknown product, no user message.
    let chat = |model: &str, messages: Value| json!({"model": model, "messages": messages});
    let user = json!([{"role": "user", "content": "liver monitoring"}]);
    let r = post(&w.app, rep, "/v1/chat/completions", &chat("gpt-4o", user.clone())).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "unknown_model"), "{}", r.text);
    snap!("error_400_unknown_model", r.json());
    let r = post(&w.app, rep, "/v1/chat/completions", &chat("onlabel:nosuch", user)).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "unknown_product"), "{}", r.text);
    let r = post(&w.app, rep, "/v1/chat/completions", &chat("onlabel:zentravia", json!([{"role": "system", "content": "be brief"}]))).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "no_question"), "{}", r.text);
    // Cases and eval runs that do not exist; case actions that do not exist.
    let mia = Some(w.token("medical"));
    let r = get(&w.app, mia, "/api/v1/cases/PV-2000-000001").await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::NOT_FOUND, "case_not_found"), "{}", r.text);
    snap!("error_404_unknown_case", r.json());
    // The same code when the missing case is worked as when it is read.
    let r = post(&w.app, mia, "/api/v1/cases/PV-2000-000001/start", &json!({})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::NOT_FOUND, "case_not_found"), "{}", r.text);
    let r = post(&w.app, mia, "/api/v1/cases/PV-2000-000001/escalate", &json!({})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::NOT_FOUND, "not_found"), "no such action: {}", r.text);
    let r = post(&w.app, mia, "/api/v1/cases/PV-2000-000001/assign", &json!({})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "empty"), "an assignment names its owner: {}", r.text);
    let r = get(&w.app, Some(w.token("compliance")), "/api/v1/evals/424242").await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::NOT_FOUND, "not_found"), "{}", r.text);
    // Prompt versions (read by any role but rep): not NAME@N, unknown.
    let reader = Some(w.token("medical"));
    let r = get(&w.app, reader, "/api/v1/prompts/objection").await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "bad_version_id"), "{}", r.text);
    let r = get(&w.app, reader, "/api/v1/prompts/nosuch@1").await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::NOT_FOUND, "prompt_not_found"), "{}", r.text);
    snap!("error_404_prompt_not_found", r.json());
    // Paths stay under the repository root; suites under evals/ (never the sealed one).
    let r = post(&w.app, Some(w.token("mlr_reviewer")), "/api/v1/prompts", &json!({"name": "objection", "template": "../etc/passwd"})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "bad_path"), "{}", r.text);
    let r = post(&w.app, Some(w.token("compliance")), "/api/v1/evals", &json!({"suite": "sealed/heldout"})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "bad_suite"), "{}", r.text);
    // Audit filters with a bad time.
    let r = get(&w.app, Some(w.token("compliance")), "/api/v1/audit?from=yesterday").await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "bad_time"), "{}", r.text);
}

#[tokio::test]
async fn bad_bodies_are_400_with_the_field_and_415_without_json() {
    let w = world();
    let rep = Some(w.token("rep"));
    // Not JSON at all.
    let r = post_raw(&w.app, rep, "/api/v1/ask", "{\"question\": ", Some("application/json")).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "bad_json"), "{}", r.text);
    snap!("error_400_bad_json", r.json());
    // JSON of the wrong shape: axum calls these 422; the server answers 400 `bad_json` naming the field.
    for (body, needle) in [
        (json!({"question": 5, "product": "zentravia"}), "question"),
        (json!({"product": "zentravia"}), "question"),
        (json!({"question": "x", "product": "zentravia", "sectons": 1}), "sectons"),
        (json!("What are the LFT monitoring rules?"), "AskRequest"),
    ] {
        let r = post(&w.app, rep, "/api/v1/ask", &body).await;
        assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "bad_json"), "{body}: {}", r.text);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains(needle), "{body}: {}", r.text);
        if body.get("sectons").is_some() {
            snap!("error_400_unknown_field", r.json());
        }
    }
    // serde also reads a JSON array as the fields in order: accepted today (an
    // array is not what the API documents; pinned here so a change is seen).
    let r = post(&w.app, rep, "/api/v1/ask", &json!(["What are the LFT monitoring rules?", "zentravia"])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Without `Content-Type: application/json`.
    let r = post_raw(&w.app, rep, "/api/v1/ask", lft_ask().to_string(), None).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json"), "{}", r.text);
    snap!("error_415_not_json", r.json());
    let r = post_raw(&w.app, rep, "/api/v1/ask", lft_ask().to_string(), Some("text/plain")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    // Empty text fields.
    for (path, body) in [
        ("/api/v1/ask", json!({"question": "  ", "product": "zentravia"})),
        ("/api/v1/email", json!({"product": "zentravia", "hcp": " ", "topics": "liver"})),
        ("/api/v1/email", json!({"product": "zentravia", "hcp": "Dr. Lee", "topics": ""})),
        ("/api/v1/summarize", json!({"product": "zentravia", "notes": "\n"})),
    ] {
        let r = post(&w.app, rep, path, &body).await;
        assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "empty"), "{path} {body}: {}", r.text);
        if path == "/api/v1/ask" {
            snap!("error_400_empty_question", r.json());
        }
    }
    // A case action's body is optional but, when given, must be the route's JSON.
    let r = post_raw(&w.app, Some(w.token("medical")), "/api/v1/cases/PV-2000-000001/start", "{\"nope\": 1}", Some("application/json")).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "bad_json"), "{}", r.text);
    // An unknown API path is 404 and a known path with the wrong method 405, in the same JSON shape.
    let r = get(&w.app, rep, "/api/v1/nosuch").await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::NOT_FOUND, "not_found"), "{}", r.text);
    snap!("error_404_no_route", r.json());
    let r = get(&w.app, rep, "/api/v1/ask").await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"), "{}", r.text);
    assert_eq!(r.headers[header::ALLOW], "POST", "{:?}", r.headers);
    snap!("error_405_method_not_allowed", r.json());
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_every_documented_route_exists() {
    let w = world();
    let doc = get(&w.app, None, "/api/v1/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in [
        ("get", "/api/v1/me"), ("get", "/api/v1/products"),
        ("post", "/api/v1/ask"), ("post", "/api/v1/email"), ("post", "/api/v1/summarize"),
        ("get", "/api/v1/prompts"), ("post", "/api/v1/prompts"), ("get", "/api/v1/prompts/{id}"), ("get", "/api/v1/prompts/{id}/diff"),
        ("post", "/api/v1/prompts/{id}/submit"), ("post", "/api/v1/prompts/{id}/approve"), ("post", "/api/v1/prompts/{id}/reject"),
        ("get", "/api/v1/cases"), ("get", "/api/v1/cases/{id}"), ("post", "/api/v1/cases/{id}/{action}"),
        ("get", "/api/v1/cases/{id}/intake"), ("put", "/api/v1/cases/{id}/intake"), ("get", "/api/v1/case-owners"),
        ("get", "/api/v1/audit"), ("get", "/api/v1/audit/verify"), ("post", "/api/v1/evals"), ("get", "/api/v1/evals/{id}"),
        ("get", "/api/v1/evals/{id}/report"),
        ("post", "/v1/chat/completions"), ("get", "/v1/models"), ("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "openapi.json lacks {method} {path}");
    }
    // Every documented path and method is routed (whatever it answers to an empty request, never 404 or 405).
    for (path, item) in paths {
        let concrete = path.replace("{id}", "objection@1").replace("{action}", "triage");
        let concrete = if concrete.starts_with("/api/v1/evals/") { concrete.replace("objection@1", "424242") } else { concrete };
        for method in item.as_object().unwrap().keys() {
            let m: Method = method.to_uppercase().parse().unwrap();
            let body = (m == Method::POST).then(|| json!({}));
            let r = send(&w.app, request(m, &concrete, Some(w.token("admin")), body.as_ref())).await;
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is documented but not routed: {}", r.text);
            if r.status == StatusCode::NOT_FOUND && path.starts_with("/auth/") {
                // The single sign-on routes are a browser's: their errors are pages with the code.
                assert!(r.text.contains("data-code=\"oidc_"), "{method} {path}: a 404 of the router itself, not of the route: {}", r.text);
            } else if r.status == StatusCode::NOT_FOUND {
                assert!(r.json()["error"]["code"].is_string(), "{method} {path}: a 404 of the router itself, not of the route: {}", r.text);
            }
        }
    }
    // Metrics carry the request counter and the latency histogram.
    let m = get(&w.app, None, "/metrics").await.text;
    assert!(m.contains("onlabel_http_requests_total") && m.contains("onlabel_http_request_duration_seconds_bucket"), "{m}");
}


#[tokio::test]
async fn a_case_step_out_of_order_is_409_with_its_code() {
    let w = world();
    let a = post(&w.app, Some(w.token("rep")), "/api/v1/ask", &json!({"question": "My patient got a bad rash two weeks after starting zentravia", "product": "zentravia"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let case = a.json()["case_id"].as_str().unwrap_or_else(|| panic!("an AE opens a case: {}", a.text)).to_string();
    let r = post(&w.app, Some(w.token("medical")), &format!("/api/v1/cases/{case}/start"), &json!({})).await;
    // A new case is triaged before it is started.
    assert_eq!((r.status, r.code().as_str()), (StatusCode::CONFLICT, "invalid_transition"), "{}", r.text);
    snap!("error_409_invalid_transition", r.json());
}

/// A 500 says nothing but the generic message and the request id (the
/// detail goes to the log; `errors.rs` checks that side). Over a store of
/// its own whose cases table is dropped, so the shared world stays whole.
#[tokio::test]
async fn a_500_body_is_the_generic_message_and_the_request_id() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = onlabel::store::Store::open(&data).unwrap();
    let (_, token) = Users::new(&store).add("root", "Ada Admin", Role::Admin, None).unwrap();
    drop(store);
    let broken = app(&data, &w.dir.join("idx"), &w.repo, Limits::default());
    let c = rusqlite::Connection::open(data.join(onlabel::store::FILE_NAME)).unwrap();
    c.execute_batch("PRAGMA foreign_keys = OFF; DROP TABLE IF EXISTS case_history; DROP TABLE cases;").unwrap();
    let r = get(&broken, Some(&token.0), "/api/v1/cases").await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "internal"), "{}", r.text);
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(r.json()["error"]["request_id"], id, "{}", r.text);
    assert_eq!(r.json()["error"]["message"], format!("internal error (request id {id})"), "{}", r.text);
    assert!(!r.text.contains("no such table") && !r.text.contains(data.to_str().unwrap()), "{}", r.text);
    snap!("error_500_internal", r.json());
}

// ------------------------------------------------- drafts: the rep's words

/// Issue 20 point 7: a rep's own greeting and closing sit around the locked
/// approved text in the email to send (no DRAFT line, no subject line), each
/// within its limit, never about the product, and screened like the topics.
#[tokio::test]
async fn an_email_carries_the_reps_greeting_and_closing_around_the_locked_text() {
    let w = world();
    let rep = Some(w.token("rep"));
    let body = |greeting: &str, closing: &str| json!({"product": "zentravia", "hcp": "Dr. Lee", "topics": "liver monitoring", "greeting": greeting, "closing": closing});
    // "Best," is a valediction, not a superlative claim.
    let r = post(&w.app, rep, "/api/v1/email", &body("Hi Dr. Lee,", "Best,\nRex")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let d = r.json();
    let text = d["text"].as_str().unwrap();
    assert!(text.starts_with("Hi Dr. Lee,\n\n"), "{text}");
    assert!(!text.contains("DRAFT") && !text.contains("Subject:"), "the text to send carries the banner or the subject: {text}");
    let (closing, refs) = (text.find("Best,\nRex").expect("the closing"), text.find("\nReferences\n").expect("the references"));
    assert!(closing < refs && text[..closing].contains(d["locked"].as_str().unwrap()), "closing after the locked text, before the references: {text}");
    // Without words of their own, the template's greeting and no closing.
    let plain = post(&w.app, rep, "/api/v1/email", &json!({"product": "zentravia", "hcp": "Dr. Lee", "topics": "liver monitoring"})).await.json();
    assert!(plain["text"].as_str().unwrap().starts_with("Dear Dr. Lee,"), "{plain}");
    assert_eq!(plain["greeting"], "Dear Dr. Lee,");

    // Limits: 200 and 500 characters.
    let r = post(&w.app, rep, "/api/v1/email", &body(&"x".repeat(201), "")).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::BAD_REQUEST, "bad_question"), "{}", r.text);
    assert!(r.text.contains("greeting is 201 characters, over the 200-character limit"), "{}", r.text);
    assert_eq!(post(&w.app, rep, "/api/v1/email", &body(&"x".repeat(200), &"y".repeat(500))).await.status, StatusCode::OK);
    let r = post(&w.app, rep, "/api/v1/email", &body("", &"y".repeat(501))).await;
    assert!(r.status == StatusCode::BAD_REQUEST && r.text.contains("over the 500-character limit"), "{}", r.text);

    // Words about the product are refused with the reason; nothing is drafted.
    for (g, c) in [("Dear Dr. Lee,", "Zentravia is the best option for your patients."), ("Dr. Lee, this drug cures hepatitis in every patient!", "Best"), ("Hi,", "Best,\nRex\nIt is the safest choice there is.")] {
        let r = post(&w.app, rep, "/api/v1/email", &body(g, c)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{g} / {c}: {}", r.text);
        assert!(r.text.contains("speaks about the product") && r.text.contains("approved text"), "{}", r.text);
    }

    // A report in the sign-off is a report: the draft stops and a case opens.
    let r = post(&w.app, rep, "/api/v1/email", &body("Dear Dr. Lee,", "Best, Rex. PS: her patient was hospitalized with jaundice after starting it.")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let d = r.json();
    assert_eq!(d["route"], "pharmacovigilance", "{d}");
    assert!(d["case_id"].as_str().is_some_and(|c| c.starts_with("PV-")), "{d}");
}
