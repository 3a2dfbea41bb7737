//! Issue 21, point 1: passwords and browser sessions, over the router
//! (`oneshot`, no socket) and the real binary (`users add --password-stdin`,
//! `users set-password`). Each test has a store of its own (the throttle and
//! the sessions must not couple tests); the demo index and scratch repository
//! are the authorization matrix's.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::{header, StatusCode};
use axum::Router;
use onlabel::server::Limits;
use onlabel::store::Store;
use onlabel::users::{Role, SessionPolicy, SignInPolicy, Users};

use crate::authz_matrix::{app, call, call_with, world, Resp};
use crate::harness::bin;

const PW: &str = "violet tram orbits quietly";
const ASK: &str = r#"{"question": "What are the LFT monitoring rules?", "product": "zentravia"}"#;

struct Fx {
    _dir: tempfile::TempDir,
    store: Store,
    app: Router,
    tokens: BTreeMap<&'static str, String>,
}

/// A store with `root` (admin) and `rita`, `ravi` (reps), all with password
/// [`PW`], and a router over it with `limits`.
fn fx(limits: Limits) -> Fx {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data).unwrap();
    let users = Users::new(&store);
    let (admin, t) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
    let mut tokens = BTreeMap::from([("root", t.0)]);
    tokens.insert("rita", users.add("rita", "Rita Rep", Role::Rep, Some(&admin)).unwrap().1 .0);
    tokens.insert("ravi", users.add("ravi", "Ravi Rep", Role::Rep, Some(&admin)).unwrap().1 .0);
    for id in ["root", "rita", "ravi"] {
        users.set_password(id, PW, &admin).unwrap();
    }
    let app = app(&data, &w.index, &w.repo, limits);
    Fx { _dir: dir, store, app, tokens }
}

fn addr() -> SocketAddr {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::SeqCst);
    SocketAddr::from(([192, 168, (n >> 8) as u8, n as u8], 41000))
}

/// A signed-in browser: its cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

impl Browser {
    fn cookie_header(&self) -> String {
        format!("onlabel_session={}", self.cookie)
    }

    /// `method path` with the cookie and, when `csrf`, the CSRF token.
    fn call(&self, app: &Router, method: &str, path: &str, body: Option<&str>, csrf: bool) -> Resp {
        let c = self.cookie_header();
        let mut h = vec![("cookie", c.as_str())];
        if csrf {
            h.push(("x-csrf-token", self.csrf.as_str()));
        }
        call_with(app, method, path, None, body, addr(), &h)
    }
}

fn sign_in_as(app: &Router, user: &str, password: &str) -> (Resp, Option<Browser>) {
    let body = serde_json::json!({"user": user, "password": password}).to_string();
    let r = call(app, "POST", "/api/v1/sessions", None, Some(&body), addr());
    let b = set_cookie(&r).filter(|c| !c.is_empty()).map(|cookie| Browser { cookie, csrf: r.body["csrf"].as_str().unwrap_or_default().to_string() });
    (r, b)
}

/// The `onlabel_session` value a response sets.
fn set_cookie(r: &Resp) -> Option<String> {
    let v = r.headers.get(header::SET_COOKIE)?.to_str().ok()?;
    v.split(';').next()?.strip_prefix("onlabel_session=").map(str::to_string)
}

fn audit_actions(store: &Store) -> Vec<String> {
    store
        .with_conn(|c| {
            let mut st = c.prepare("SELECT action FROM audit_log ORDER BY seq")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .unwrap()
}

#[test]
fn sign_in_sets_a_strict_http_only_cookie_that_works_on_get_and_needs_csrf_to_change_things() {
    let f = fx(Limits::default());
    let (r, b) = sign_in_as(&f.app, "rita", PW);
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let sc = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(sc.contains(attr), "{attr} in {sc}");
    }
    assert!(!sc.contains("Secure"), "plain http by default: {sc}");
    let b = b.unwrap();
    assert_eq!(b.cookie.len(), 43);
    assert_eq!(b.csrf.len(), 43);
    assert_eq!(r.body["user"]["id"], "rita");
    assert_eq!(r.body["method"], "password");
    assert_eq!(r.body["idle_timeout_secs"], 1800);
    assert!(!r.body.to_string().contains(&b.cookie), "the cookie is not in the body");
    // The cookie signs GETs in.
    let me = b.call(&f.app, "GET", "/api/v1/me", None, false);
    assert_eq!((me.status, me.body["id"].as_str()), (StatusCode::OK, Some("rita")));
    // A second tab: no sign-in, the current session gives it the CSRF token.
    let cur = b.call(&f.app, "GET", "/api/v1/sessions/current", None, false);
    assert_eq!(cur.status, StatusCode::OK);
    assert_eq!(cur.body["csrf"].as_str(), Some(b.csrf.as_str()));
    assert_eq!(cur.body["user"]["name"], "Rita Rep");
    // State-changing: refused without the CSRF token, or with a wrong one.
    let r = b.call(&f.app, "POST", "/api/v1/ask", Some(ASK), false);
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "csrf"), "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("X-CSRF-Token"), "{}", r.body);
    let c = b.cookie_header();
    let r = call_with(&f.app, "POST", "/api/v1/ask", None, Some(ASK), addr(), &[("cookie", &c), ("x-csrf-token", &"A".repeat(43))]);
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "csrf"));
    // With it: answered.
    let r = b.call(&f.app, "POST", "/api/v1/ask", Some(ASK), true);
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A bearer token needs no CSRF token, and wins over a cookie.
    let tok = f.tokens["ravi"].clone();
    let r = call_with(&f.app, "POST", "/api/v1/ask", Some(&tok), Some(ASK), addr(), &[("cookie", &c)]);
    assert_eq!(r.status, StatusCode::OK);
    let r = call_with(&f.app, "GET", "/api/v1/me", Some(&tok), None, addr(), &[("cookie", &c)]);
    assert_eq!(r.body["id"], "ravi");
    let r = call(&f.app, "GET", "/api/v1/sessions/current", Some(&tok), None, addr());
    assert_eq!((r.body["method"].as_str(), r.body["csrf"].is_null()), (Some("bearer"), true));
    // The store keeps the cookie's hash only.
    let ids: String = f.store.with_conn(|c| c.query_row("SELECT group_concat(id || csrf) FROM sessions", [], |r| r.get(0))).unwrap();
    assert!(!ids.contains(&b.cookie));
    assert!(audit_actions(&f.store).iter().any(|a| a == "session_started"));
}

#[test]
fn a_secure_cookie_when_the_server_is_told_clients_use_https() {
    let f = fx(Limits { secure_cookie: true, ..Limits::default() });
    let (r, _) = sign_in_as(&f.app, "rita", PW);
    let sc = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(sc.contains("; Secure"), "{sc}");
}

#[test]
fn a_wrong_password_is_401_and_counts_toward_the_throttle_and_the_lock() {
    let policy = SignInPolicy { window_secs: 3600, throttle_after: 3, lock_after: 5 };
    let f = fx(Limits { sign_in: policy, ..Limits::default() });
    let from = addr();
    let wrong = serde_json::json!({"user": "rita", "password": "not her password at all"}).to_string();
    for _ in 0..3 {
        let r = call(&f.app, "POST", "/api/v1/sessions", None, Some(&wrong), from);
        assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{}", r.body);
        assert!(set_cookie(&r).is_none());
        let m = r.body["error"]["message"].as_str().unwrap();
        assert!(m.contains("wrong password") && !m.contains("not her"), "{m}");
    }
    // Throttled now, even with the right password.
    let (r, b) = sign_in_as(&f.app, "rita", PW);
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_sign_in_failures"), "{}", r.body);
    assert!(r.headers.get(header::RETRY_AFTER).is_some() && b.is_none());
    // An unknown user and a user without a password fail alike (401, same words).
    let (r, _) = sign_in_as(&f.app, "nobody", PW);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The next counted attempt (the fifth) locks rita; a locked user stays locked.
    for _ in 0..2 {
        let (r, _) = sign_in_as(&f.app, "rita", PW);
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "user_locked"), "{}", r.body);
    }
    assert!(Users::new(&f.store).get("rita").unwrap().unwrap().locked_at.is_some());
    let acts = audit_actions(&f.store);
    for a in ["login_failed", "login_throttled", "user_locked"] {
        assert!(acts.iter().any(|x| x == a), "{a} in {acts:?}");
    }
    // Limits: an over-long password or user id is refused before any check.
    let long = serde_json::json!({"user": "ravi", "password": "x".repeat(513)}).to_string();
    let r = call(&f.app, "POST", "/api/v1/sessions", None, Some(&long), addr());
    assert_eq!((r.status, r.code()), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"), "{}", r.body);
    let long = serde_json::json!({"user": "u".repeat(65), "password": PW}).to_string();
    let r = call(&f.app, "POST", "/api/v1/sessions", None, Some(&long), addr());
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = call(&f.app, "POST", "/api/v1/sessions", None, Some(r#"{"user": "ravi"}"#), addr());
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "bad_json"));
}

#[test]
fn sign_out_ends_the_session_and_the_cookie_is_refused() {
    let f = fx(Limits::default());
    let (_, b) = sign_in_as(&f.app, "rita", PW);
    let b = b.unwrap();
    let r = b.call(&f.app, "DELETE", "/api/v1/sessions", None, false);
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "csrf"), "sign-out needs the CSRF token too");
    let r = b.call(&f.app, "DELETE", "/api/v1/sessions", None, true);
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let sc = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(sc.starts_with("onlabel_session=;") && sc.contains("Max-Age=0"), "{sc}");
    let r = b.call(&f.app, "GET", "/api/v1/me", None, false);
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert!(r.body["error"]["message"].as_str().unwrap().contains("signed out"), "{}", r.body);
    let acts = audit_actions(&f.store);
    assert!(acts.iter().any(|a| a == "session_ended"), "{acts:?}");
    // With a bearer token there is no session to end.
    let r = call(&f.app, "DELETE", "/api/v1/sessions", Some(&f.tokens["rita"]), None, addr());
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[test]
fn the_idle_timeout_ends_a_session_and_activity_keeps_it() {
    let f = fx(Limits { sessions: SessionPolicy { idle_secs: 2, absolute_secs: 60 }, ..Limits::default() });
    let (_, b) = sign_in_as(&f.app, "rita", PW);
    let b = b.unwrap();
    // Used every second for 3 s: still signed in.
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        assert_eq!(b.call(&f.app, "GET", "/api/v1/me", None, false).status, StatusCode::OK);
    }
    std::thread::sleep(std::time::Duration::from_millis(2300));
    let r = b.call(&f.app, "GET", "/api/v1/me", None, false);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("2 s without activity"), "{}", r.body);
}

#[test]
fn the_absolute_timeout_ends_a_busy_session() {
    let f = fx(Limits { sessions: SessionPolicy { idle_secs: 3, absolute_secs: 3 }, ..Limits::default() });
    let (r, b) = sign_in_as(&f.app, "rita", PW);
    assert!(r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().contains("Max-Age=3"));
    let b = b.unwrap();
    for _ in 0..2 {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        assert_eq!(b.call(&f.app, "GET", "/api/v1/me", None, false).status, StatusCode::OK);
    }
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let r = b.call(&f.app, "GET", "/api/v1/me", None, false);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("limit of 3 s"), "{}", r.body);
}

#[test]
fn sign_out_everywhere_ends_the_other_sessions_and_a_disabled_users_sessions_stop() {
    let f = fx(Limits::default());
    let (_, laptop) = sign_in_as(&f.app, "rita", PW);
    let (_, phone) = sign_in_as(&f.app, "rita", PW);
    let (_, ravi) = sign_in_as(&f.app, "ravi", PW);
    let (laptop, phone, ravi) = (laptop.unwrap(), phone.unwrap(), ravi.unwrap());
    let r = laptop.call(&f.app, "POST", "/api/v1/sessions/end-all", None, false);
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "csrf"));
    let r = laptop.call(&f.app, "POST", "/api/v1/sessions/end-all", None, true);
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["ended"], 2);
    for b in [&laptop, &phone] {
        let r = b.call(&f.app, "GET", "/api/v1/me", None, false);
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.body["error"]["message"].as_str().unwrap().contains("sign out everywhere"), "{}", r.body);
    }
    // Another user's session is untouched; disabling them ends it at once.
    assert_eq!(ravi.call(&f.app, "GET", "/api/v1/me", None, false).status, StatusCode::OK);
    let admin = Users::new(&f.store).get("root").unwrap().unwrap();
    Users::new(&f.store).disable("ravi", &admin).unwrap();
    let r = ravi.call(&f.app, "GET", "/api/v1/me", None, false);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("disabled"), "{}", r.body);
    let (r, _) = sign_in_as(&f.app, "ravi", PW);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a disabled user cannot sign in");
    let acts = audit_actions(&f.store);
    assert!(acts.iter().any(|a| a == "sessions_ended"), "{acts:?}");
    // A garbage or over-long cookie is just "no session".
    let r = call_with(&f.app, "GET", "/api/v1/me", None, None, addr(), &[("cookie", &format!("onlabel_session={}", "z".repeat(5000)))]);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

// ------------------------------------------------------- the command line --

/// Runs the binary with `stdin` piped in; (exit code, stdout, stderr).
fn onlabel_stdin(data: &Path, token: Option<&str>, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut c = std::process::Command::new(bin());
    c.arg("--data").arg(data).args(args).env_remove("ONLABEL_TOKEN");
    if let Some(t) = token {
        c.env("ONLABEL_TOKEN", t);
    }
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn cli_users_add_password_stdin_and_set_password_refuse_weak_passwords_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // A breached password: refused, and nobody is added.
    let (code, _, err) = onlabel_stdin(data, None, &["users", "add", "--id", "root", "--name", "Ada Admin", "--role", "admin", "--password-stdin"], "password1234\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("password refused") && err.contains("leaked") && err.contains("How to fix it"), "{err}");
    let store = Store::open(data).unwrap();
    assert!(Users::new(&store).is_empty().unwrap());
    // Too short: says the numbers.
    let (code, _, err) = onlabel_stdin(data, None, &["users", "add", "--id", "root", "--name", "Ada Admin", "--role", "admin", "--password-stdin"], "tram orbit\n");
    assert_eq!(code, 2);
    assert!(err.contains("10 characters") && err.contains("at least 12"), "{err}");
    // A good one: the token is still printed once, and the password works.
    let (code, out, err) = onlabel_stdin(data, None, &["users", "add", "--id", "root", "--name", "Ada Admin", "--role", "admin", "--password-stdin"], &format!("{PW}\n"));
    assert_eq!(code, 0, "{err}");
    let root_tok = out.trim().to_string();
    assert!(root_tok.starts_with("olt_") && !out.contains(PW) && !err.contains(PW), "{out} {err}");
    let at = onlabel::users::Attempt::cli("test");
    Users::new(&store).verify_password("root", PW, &at).unwrap();
    // An admin adds a rep with a password; the rep changes their own.
    let (code, out, err) = onlabel_stdin(data, Some(&root_tok), &["users", "add", "--id", "rita", "--name", "Rita Rep", "--role", "rep", "--as", "root", "--password-stdin"], "copper lantern drifts eastward\r\n");
    assert_eq!(code, 0, "{err}");
    let rita_tok = out.trim().to_string();
    Users::new(&store).verify_password("rita", "copper lantern drifts eastward", &at).unwrap();
    let (code, out, err) = onlabel_stdin(data, Some(&rita_tok), &["users", "set-password", "rita", "--as", "rita"], "saffron kettle hums at dusk\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("password set for rita"), "{out}");
    assert!(Users::new(&store).verify_password("rita", "copper lantern drifts eastward", &at).is_err());
    Users::new(&store).verify_password("rita", "saffron kettle hums at dusk", &at).unwrap();
    // A rep cannot set another user's; a weak one is refused with the reason.
    let (code, _, err) = onlabel_stdin(data, Some(&rita_tok), &["users", "set-password", "root", "--as", "rita"], "saffron kettle hums at dawn\n");
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = onlabel_stdin(data, Some(&root_tok), &["users", "set-password", "rita", "--as", "root"], "qwertyuiopasdfgh\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("too easy to guess"), "{err}");
    let (code, _, err) = onlabel_stdin(data, Some(&root_tok), &["users", "set-password", "rita", "--as", "root"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no password on standard input"), "{err}");
    // The audit log has the changes, never the passwords.
    let acts = audit_actions(&store);
    assert_eq!(acts.iter().filter(|a| *a == "password_set").count(), 3, "{acts:?}");
    let all: String = store.with_conn(|c| c.query_row("SELECT group_concat(detail_json) FROM audit_log", [], |r| r.get(0))).unwrap();
    assert!(!all.contains("saffron") && !all.contains("copper"));
}
