//! The authorization matrix (issue 17, "What to build" 2): every cell of
//! `tests/authz-matrix.toml` checked — HTTP cells in-process with
//! `router(state).oneshot(…)` (no socket, no model: the copilot is
//! extractive over the demo index), CLI cells by running the binary. Each
//! user is created once per test binary (argon2 is slow); cells that change
//! state get their own fresh draft, version in review or victim user, so no
//! cell depends on another's order.
//!
//! Also here, on the same in-process fixture: the HTTP regression tests of
//! the issue's rows 4, 5, 7 and 11.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use onlabel::copilot::Copilot;
use onlabel::prompts::{Registry, VersionId};
use onlabel::server::{router, AppState, Config, Limits};
use onlabel::store::Store;
use onlabel::users::{Attempt, Method as SignInMethod, Role, SessionPolicy, Sessions, SignInPolicy, User, Users};
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::harness::{bin, build_index, root, scratch_repo};

/// The columns of every row, in the file's order.
const ROLES: [&str; 5] = ["rep", "mlr_reviewer", "compliance", "medical", "admin"];

/// One row's expected outcome per column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Outcomes {
    none: i32,
    wrong: i32,
    disabled: i32,
    locked: i32,
    rep: i32,
    mlr_reviewer: i32,
    compliance: i32,
    medical: i32,
    admin: i32,
    /// Each role's outcome with a valid session cookie (and its CSRF token)
    /// instead of the token, when it differs from the token's (default: the
    /// role's column).
    #[serde(default)]
    session: Option<i32>,
    /// A valid session cookie without `X-CSRF-Token` on a route that is not
    /// GET (default: 403 `csrf`; a route that takes no credential differs).
    #[serde(default)]
    no_csrf: Option<i32>,
    /// A session cookie that has ended — signed out, signed out everywhere,
    /// idle, past its absolute limit, its user disabled (default: the `none`
    /// column: an ended session is no credential).
    #[serde(default)]
    ended: Option<i32>,
}

impl Outcomes {
    fn role(&self, role: &str) -> i32 {
        match role {
            "rep" => self.rep,
            "mlr_reviewer" => self.mlr_reviewer,
            "compliance" => self.compliance,
            "medical" => self.medical,
            _ => self.admin,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpRow {
    /// `METHOD TEMPLATE`, as the router and the OpenAPI document name it.
    route: String,
    /// The concrete path (default: the template).
    path: Option<String>,
    /// A JSON body (with placeholders).
    body: Option<String>,
    #[serde(flatten)]
    expect: Outcomes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CliRow {
    command: String,
    args: Vec<String>,
    #[serde(flatten)]
    expect: Outcomes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Matrix {
    http: Vec<HttpRow>,
    cli: Vec<CliRow>,
}

fn matrix() -> Matrix {
    let text = std::fs::read_to_string(root().join("tests/authz-matrix.toml")).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("tests/authz-matrix.toml: {e}"))
}

/// The shared fixture: a store with one user per role, one disabled and one
/// locked user per role, an author of drafts; the demo index; the router.
pub struct World {
    _dir: tempfile::TempDir,
    pub data: PathBuf,
    pub repo: PathBuf,
    pub index: PathBuf,
    pub store: Store,
    /// User id → token.
    pub tokens: BTreeMap<String, String>,
    pub app: Router,
    next: AtomicU32,
}

/// Every fixture user's password (set before they are disabled or locked).
pub const PASSWORD: &str = "matrix violet tram orbits";

/// The sign-in policy of the fixture's server (the defaults).
pub fn policy() -> SignInPolicy {
    SignInPolicy::default()
}

pub fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let repo = scratch_repo(dir.path());
        let index = dir.path().join("idx");
        drop(build_index(&[root().join("corpora/demo")], &index));
        let store = Store::open(&data).unwrap();
        let mut tokens = BTreeMap::new();
        {
            let users = Users::new(&store);
            let (admin, t) = users.add("m-admin", "Matrix Admin", Role::Admin, None).unwrap();
            tokens.insert("m-admin".to_string(), t.0);
            let mut add = |id: &str, role: Role| {
                let (_, t) = users.add(id, id, role, Some(&admin)).unwrap();
                tokens.insert(id.to_string(), t.0);
            };
            for role in Role::ALL {
                if role != Role::Admin {
                    add(&format!("m-{role}"), role);
                }
                add(&format!("m-{role}-disabled"), role);
                add(&format!("m-{role}-locked"), role);
            }
            add("m-author", Role::MlrReviewer);
            add("m-target", Role::Rep);
            for id in tokens.keys() {
                users.set_password(id, PASSWORD, &admin).unwrap();
            }
            for role in Role::ALL {
                users.disable(&format!("m-{role}-disabled"), &admin).unwrap();
                lock(&store, &format!("m-{role}-locked"));
            }
            // Issue 21.3: the signers re-enter their password (`{password}` in a
            // row's body is the PASSWORD every matrix user has).
        }
        let app = app(&data, &index, &repo, Limits::default());
        World { _dir: dir, data, repo, index, store, tokens, app, next: AtomicU32::new(1) }
    })
}

/// Locks `id` the way the throttle does: failed sign-ins past `lock_after`
/// (each from an address of its own, which no address throttle has seen).
fn lock(store: &Store, id: &str) {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let users = Users::with_policy(store, SignInPolicy { window_secs: 3600, throttle_after: 1, lock_after: 1 });
    let ip = std::net::IpAddr::from([172, 16, (n >> 8) as u8, n as u8]);
    let at = Attempt::http(Some(ip), "POST", Some("/fixture"), "/fixture");
    assert!(users.authenticate_from(id, "olt_wrong", &at).is_err());
    assert!(users.get(id).unwrap().unwrap().locked_at.is_some(), "{id} locked");
}

/// The router as `onlabel serve --extractive` builds it over `index`.
pub fn app(data: &Path, index: &Path, repo: &Path, limits: Limits) -> Router {
    let as_of = chrono::Local::now().date_naive();
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
        // The matrix checks who may start an eval, not the eval itself.
        eval: Box::new(|_| Err("evals are not run by the matrix".to_string())),
        reload_prompt: None,
    };
    router(Arc::new(AppState::new(copilot, config).unwrap()))
}

impl World {
    fn n(&self) -> u32 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    /// A client address of its own (so the address throttle never couples cells).
    pub fn addr(&self) -> SocketAddr {
        let n = self.n();
        SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 40000))
    }

    fn user(&self, id: &str) -> User {
        Users::new(&self.store).get(id).unwrap().unwrap()
    }

    /// A fresh version `NAME@1` by `m-author`, submitted for review when asked.
    pub fn version(&self, in_review: bool) -> String {
        let name = format!("m-v{}", self.n());
        let reg = Registry::new(&self.store, &self.repo);
        let author = self.user("m-author");
        let v = reg.propose(&name, Path::new("prompts/objection.j2"), None, json!({}), &author).unwrap();
        let id = VersionId { name: v.name.clone(), version: v.version };
        if in_review {
            reg.submit(&id, &author).unwrap();
        }
        id.to_string()
    }

    /// A fresh rep (locked when asked); returns their id.
    fn victim(&self, locked: bool) -> String {
        let id = format!("m-victim-{}", self.n());
        Users::new(&self.store).add(&id, "Victim", Role::Rep, Some(&self.user("m-admin"))).unwrap();
        if locked {
            lock(&self.store, &id);
        }
        id
    }

    /// `s` with the cell's placeholders filled.
    fn fill(&self, s: &str, user: &str, secret: &str) -> String {
        self.fill_pw(s, user, secret, PASSWORD)
    }

    /// [`World::fill`] with the `{password}` the cell sends.
    fn fill_pw(&self, s: &str, user: &str, secret: &str, password: &str) -> String {
        let mut out = s
            .replace("{user}", user)
            .replace("{secret}", secret)
            .replace("{password}", password)
            .replace("{index}", self.index.to_str().unwrap());
        for (key, make) in [
            ("{draft}", &(|w: &World| w.version(false)) as &dyn Fn(&World) -> String),
            ("{review}", &|w: &World| w.version(true)),
            ("{victim}", &|w: &World| w.victim(false)),
            ("{locked_victim}", &|w: &World| w.victim(true)),
            ("{name}", &|w: &World| format!("m-n{}", w.n())),
            ("{fresh}", &|w: &World| format!("m-fresh-{}", w.n())),
        ] {
            if out.contains(key) {
                out = out.replace(key, &make(self));
            }
        }
        out
    }
}

/// One response: status and body (JSON, or `{"text": …}`).
pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// Sends one request to `app` from `addr`.
pub fn call(app: &Router, method: &str, path: &str, token: Option<&str>, body: Option<&str>, addr: SocketAddr) -> Resp {
    call_with(app, method, path, token, body, addr, &[])
}

/// [`call`] with extra headers.
pub fn call_with(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> Resp {
    let mut b = Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = match body {
        Some(j) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(j.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    req.extensions_mut().insert(ConnectInfo(addr));
    let rt = runtime();
    rt.block_on(async {
        let r = app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        let bytes = axum::body::to_bytes(r.into_body(), 16 * 1024 * 1024).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text }));
        Resp { status, headers, body }
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// The credentials of a column: (label, acting user id, token).
fn column(w: &World, col: &str) -> Vec<(String, String, Option<String>)> {
    let tok = |id: &str| Some(w.tokens[id].clone());
    match col {
        "none" => vec![("none".into(), "m-target".into(), None)],
        "wrong" => vec![("wrong".into(), "m-target".into(), Some(format!("olt_{}", "0".repeat(64))))],
        "disabled" | "locked" => ROLES
            .iter()
            .map(|r| {
                let id = format!("m-{r}-{col}");
                // Each row starts the disabled user afresh: their refused
                // sign-ins would otherwise add up across the matrix's rows
                // and lock them (403 user_locked), which is another cell.
                if col == "disabled" {
                    w.store.with_conn(|c| c.execute("DELETE FROM sign_in_failures WHERE user_id = ?1", [&id])).unwrap();
                }
                (format!("{col} {r}"), id.clone(), tok(&id))
            })
            .collect(),
        role => {
            let id = if role == "admin" { "m-admin".to_string() } else { format!("m-{role}") };
            vec![(role.to_string(), id.clone(), tok(&id))]
        }
    }
}

fn expected(o: &Outcomes, col: &str) -> i32 {
    match col {
        "none" => o.none,
        "wrong" => o.wrong,
        "disabled" => o.disabled,
        "locked" => o.locked,
        role => o.role(role),
    }
}

const COLUMNS: [&str; 9] = ["none", "wrong", "disabled", "locked", "rep", "mlr_reviewer", "compliance", "medical", "admin"];

/// Routes the router serves that the OpenAPI document does not describe
/// (the document itself and the web UI's static files).
const UNDOCUMENTED: [&str; 4] = ["GET /api/v1/openapi.json", "GET /", "GET /{file}", "GET /ui/{*path}"];

#[test]
fn authz_matrix_lists_every_documented_route_once() {
    let w = world();
    let m = matrix();
    let listed: Vec<&str> = m.http.iter().map(|r| r.route.as_str()).collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a route is listed twice in tests/authz-matrix.toml");
    let doc = call(&w.app, "GET", "/api/v1/openapi.json", None, None, w.addr()).body;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let missing: Vec<&String> = documented.iter().filter(|r| !unique.contains(r.as_str())).collect();
    assert!(missing.is_empty(), "routes in the OpenAPI document without a row in tests/authz-matrix.toml: {missing:?}");
    let extra: Vec<&&str> = unique.iter().filter(|r| !documented.contains(**r) && !UNDOCUMENTED.contains(r)).collect();
    assert!(extra.is_empty(), "rows for routes the server does not document: {extra:?}");
}

#[test]
fn authz_matrix_http_every_cell() {
    let w = world();
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in matrix().http {
        let (method, template) = row.route.split_once(' ').unwrap();
        for col in COLUMNS {
            let want = expected(&row.expect, col);
            for (label, user, token) in column(w, col) {
                let secret = token.clone().unwrap_or_else(|| "olt_none".into());
                let password = match col {
                    "none" => "",
                    "wrong" => "wrong horse battery staple",
                    _ => PASSWORD,
                };
                let path = w.fill_pw(row.path.as_deref().unwrap_or(template), &user, &secret, password);
                let body = row.body.as_deref().map(|b| w.fill_pw(b, &user, &secret, password));
                let r = call(&w.app, method, &path, token.as_deref(), body.as_deref(), w.addr());
                cells += 1;
                let got = r.status.as_u16() as i32;
                let code_ok = match (got, col) {
                    (401, _) => r.code() == "unauthorized",
                    (403, "locked") => r.code() == "user_locked",
                    (403, c) if ROLES.contains(&c) => r.code() == "forbidden",
                    _ => true,
                };
                if got != want || !code_ok {
                    failures.push(format!("{} as {label}: expected {want}, got {got} {}", row.route, r.body));
                }
            }
        }
        cells += session_cells(w, &row, method, template, &mut failures);
    }
    assert!(failures.is_empty(), "{} of {cells} HTTP cells differ:\n{}", failures.len(), failures.join("\n"));
    assert!(cells > 700, "{cells}");
}

/// A fresh session of `user` in the fixture's store: (cookie, csrf).
fn session_of(w: &World, user: &str) -> (String, String) {
    let s = Sessions::new(&w.store, SessionPolicy::default()).start(&w.user(user), SignInMethod::Password).unwrap();
    (s.cookie, s.csrf)
}

/// The kinds of ended session every row is tried with.
const ENDED: [&str; 5] = ["signed out", "signed out everywhere", "idle", "past its absolute limit", "of a disabled user"];

/// A session cookie of `m-rep` (or of a fresh rep, for a disabled user)
/// that has ended the `kind` way: (user, cookie, csrf).
fn ended_session(w: &World, kind: &str) -> (String, String, String) {
    let policy = SessionPolicy::default();
    let user = if kind == "of a disabled user" { w.victim(false) } else { "m-rep".to_string() };
    let s = Sessions::new(&w.store, policy).start(&w.user(&user), SignInMethod::Password).unwrap();
    let back = |col: &str, secs: u64| {
        let t = (chrono::Utc::now() - chrono::Duration::seconds(secs as i64 + 1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        w.store.with_conn(|c| c.execute(&format!("UPDATE sessions SET {col} = ?2 WHERE id = ?1"), [&s.session.id, &t])).unwrap();
    };
    match kind {
        "signed out" => assert!(Sessions::new(&w.store, policy).end(&s.cookie).unwrap().is_some()),
        "signed out everywhere" => {
            // Not m-rep's other cells' sessions: end just this one the way end_all does.
            w.store
                .with_conn(|c| c.execute("UPDATE sessions SET ended_at = created_at, ended_reason = 'signed_out_everywhere' WHERE id = ?1", [&s.session.id]))
                .unwrap();
        }
        "idle" => back("last_seen_at", policy.idle_secs),
        "past its absolute limit" => back("created_at", policy.absolute_secs),
        _ => {
            Users::new(&w.store).disable(&user, &w.user("m-admin")).unwrap();
        }
    }
    (user, s.cookie, s.csrf)
}

/// The session columns of one row: each role's fresh session with and
/// (off GET) without its CSRF token, and every kind of ended session.
/// Returns the number of cells.
fn session_cells(w: &World, row: &HttpRow, method: &str, template: &str, failures: &mut Vec<String>) -> usize {
    let mut cells = 0;
    let safe = matches!(method, "GET" | "HEAD");
    let mut one = |label: String, user: &str, cookie: &str, csrf: Option<&str>, want: i32| {
        let secret = w.tokens.get(user).cloned().unwrap_or_else(|| "olt_none".into());
        let path = w.fill(row.path.as_deref().unwrap_or(template), user, &secret);
        let body = row.body.as_deref().map(|b| w.fill(b, user, &secret));
        let cookie_header = format!("{}={cookie}", onlabel::server::auth::COOKIE);
        let mut headers = vec![("cookie", cookie_header.as_str())];
        if let Some(t) = csrf {
            headers.push(("x-csrf-token", t));
        }
        let r = call_with(&w.app, method, &path, None, body.as_deref(), w.addr(), &headers);
        cells += 1;
        let got = r.status.as_u16() as i32;
        let code_ok = match got {
            401 => r.code() == "unauthorized",
            403 if label.contains("without") => r.code() == "csrf",
            _ => true,
        };
        if got != want || !code_ok {
            failures.push(format!("{} with {label}: expected {want}, got {got} {}", row.route, r.body));
        }
    };
    for role in ROLES {
        let user = if role == "admin" { "m-admin".to_string() } else { format!("m-{role}") };
        let want = row.expect.session.unwrap_or(row.expect.role(role));
        let (cookie, csrf) = session_of(w, &user);
        one(format!("a {role} session cookie and its CSRF token"), &user, &cookie, Some(&csrf), want);
        if !safe {
            let (cookie, _) = session_of(w, &user);
            one(format!("a {role} session cookie without X-CSRF-Token"), &user, &cookie, None, row.expect.no_csrf.unwrap_or(403));
            let (cookie, _) = session_of(w, &user);
            let (_, other) = session_of(w, &user);
            one(format!("a {role} session cookie with another session's CSRF token (without its own)"), &user, &cookie, Some(&other), row.expect.no_csrf.unwrap_or(403));
        }
    }
    for kind in ENDED {
        let (user, cookie, csrf) = ended_session(w, kind);
        // A disabled user's session is refused like their token.
        let want = if kind == "of a disabled user" { row.expect.disabled } else { row.expect.ended.unwrap_or(row.expect.none) };
        one(format!("a session cookie {kind}"), &user, &cookie, Some(&csrf), want);
    }
    cells
}

/// Runs one CLI cell; (exit code, stderr).
fn run_cli(w: &World, args: &[String], token: Option<&str>) -> (i32, String) {
    let mut full: Vec<String> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        full.push(a.clone());
        if i == 0 && a == "prompts" {
            full.extend(["--root".to_string(), w.repo.display().to_string()]);
        }
    }
    let mut c = std::process::Command::new(bin());
    c.arg("--data").arg(&w.data).args(&full).current_dir(&w.repo);
    for v in ["ONLABEL_TOKEN", "ONLABEL_ROOT", "ONLABEL_THRESHOLDS", "ONLABEL_USER", "ONLABEL_MODEL"] {
        c.env_remove(v);
    }
    // The throttle is checked on its own; here it must not couple cells.
    c.env("ONLABEL_SIGN_IN_THROTTLE_AFTER", "1000000").env("ONLABEL_SIGN_IN_LOCK_AFTER", "1000000");
    if let Some(t) = token {
        c.env("ONLABEL_TOKEN", t);
    }
    let out = c.stdin(std::process::Stdio::null()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn authz_matrix_cli_every_cell() {
    let w = world();
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in matrix().cli {
        for col in COLUMNS {
            let want = expected(&row.expect, col);
            for (label, user, token) in column(w, col) {
                let secret = token.clone().unwrap_or_default();
                let args: Vec<String> = row.args.iter().map(|a| w.fill(a, &user, &secret)).collect();
                let (got, err) = run_cli(w, &args, token.as_deref());
                cells += 1;
                if got != want || err.contains("panicked") {
                    failures.push(format!("{} as {label}: expected exit {want}, got {got}: {}", row.command, err.trim()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cells} CLI cells differ:\n{}", failures.len(), failures.join("\n"));
}

// ------------------------------------------------ issue 17 rows over HTTP --

fn store_bytes(data: &Path) -> u64 {
    ["onlabel.sqlite", "onlabel.sqlite-wal"].iter().filter_map(|f| std::fs::metadata(data.join(f)).ok()).map(|m| m.len()).sum()
}

fn count(store: &Store, sql: &str) -> i64 {
    store.with_conn(|c| c.query_row(sql, [], |r| r.get(0))).unwrap()
}

/// A store of its own with an admin, a rep and `id` (a rep), and a router
/// over it: tests that drive the throttle must not throttle the matrix.
fn own_server(w: &World, dir: &Path) -> (PathBuf, Store, BTreeMap<&'static str, String>, Router) {
    let data = dir.join("data");
    let store = Store::open(&data).unwrap();
    let users = Users::new(&store);
    let (admin, t) = users.add("root", "Root", Role::Admin, None).unwrap();
    let mut tokens = BTreeMap::from([("root", t.0)]);
    tokens.insert("rita", users.add("rita", "Rita Rep", Role::Rep, Some(&admin)).unwrap().1 .0);
    tokens.insert("vic", users.add("vic", "Vic Victim", Role::Rep, Some(&admin)).unwrap().1 .0);
    let app = app(&data, &w.index, &w.repo, Limits::default());
    (data, store, tokens, app)
}

#[test]
fn probe_row5_200_bad_tokens_get_429_with_retry_after_and_the_store_grows_bounded() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let (data, store, tokens, app) = own_server(w, dir.path());
    let attacker: SocketAddr = "203.0.113.9:5555".parse().unwrap();
    // A long path on a route that checks the token (the probe's 65 KB path).
    let long = format!("/api/v1/prompts/{}", "a".repeat(60_000));
    let audit_before = count(&store, "SELECT count(*) FROM audit_log");
    let mut statuses = BTreeMap::new();
    let mut retry_after = None;
    let mut bytes_throttled = 0;
    for i in 0..200 {
        if i == 20 {
            bytes_throttled = store_bytes(&data);
        }
        let r = call(&app, "GET", &long, Some(&format!("olt_bad{i}")), None, attacker);
        *statuses.entry(r.status.as_u16()).or_insert(0) += 1;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.code(), "too_many_sign_in_failures");
            retry_after = r.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        }
    }
    let n = policy().throttle_after as usize;
    assert_eq!(statuses.get(&401), Some(&n), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&(200 - n)), "{statuses:?}");
    assert!(retry_after.is_some_and(|s| (1..=policy().window_secs).contains(&s)), "{retry_after:?}");
    // One login_failed and one login_throttled record, one counter row: bounded.
    let added = count(&store, "SELECT count(*) FROM audit_log") - audit_before;
    assert_eq!(added, 2, "audit records added by 200 bad tokens");
    assert_eq!(count(&store, "SELECT count(*) FROM sign_in_failures"), 1);
    // Once the address is throttled nothing more is written: the last 180 requests grew nothing.
    assert_eq!(store_bytes(&data), bytes_throttled, "the store grew while the address was throttled");
    let longest = count(&store, "SELECT max(length(detail_json)) FROM audit_log WHERE action LIKE 'login_%'");
    assert!(longest < 1000, "a failure's record stays small: {longest}");
    let stored = count(&store, "SELECT count(*) FROM audit_log WHERE detail_json LIKE '%aaaaaaaaaa%'");
    assert_eq!(stored, 0, "the client's path is never stored, only its hash");
    // The flooding address is refused even with a good token; another address is not.
    let good = &tokens["rita"];
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(good), None, attacker).status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(good), None, "198.51.100.4:1".parse().unwrap()).status, StatusCode::OK);
}

#[test]
fn probe_row5_a_locked_user_is_refused_until_an_admin_unlocks_over_the_cli() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let (data, store, tokens, app) = own_server(w, dir.path());
    let run = |tok: &str, args: &[&str], throttle: &str, lock: &str| {
        let out = std::process::Command::new(bin())
            .arg("--json")
            .arg("--data")
            .arg(&data)
            .args(args)
            .env("ONLABEL_TOKEN", tok)
            .env_remove("ONLABEL_USER")
            .env("ONLABEL_SIGN_IN_THROTTLE_AFTER", throttle)
            .env("ONLABEL_SIGN_IN_LOCK_AFTER", lock)
            .env("ONLABEL_SIGN_IN_WINDOW_SECS", "3600")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    // Throttle after 2, lock after 3: two wrong tokens, then even the right one is refused and locks vic.
    let rotate = ["users", "rotate", "vic", "--as", "vic"];
    assert_eq!(run("olt_wrong1", &rotate, "2", "3").0, 3);
    assert_eq!(run("olt_wrong2", &rotate, "2", "3").0, 3);
    let (code, out, err) = run(&tokens["vic"], &rotate, "2", "3");
    assert_eq!(code, 3, "{err}");
    assert!(out.contains("user_locked"), "{out}{err}");
    assert!(Users::new(&store).get("vic").unwrap().unwrap().locked_at.is_some(), "locked");
    // Over HTTP, from any address, the locked user's own token is refused too.
    let r = call(&app, "GET", "/api/v1/me", Some(&tokens["vic"]), None, "192.0.2.77:1".parse().unwrap());
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "user_locked"));
    // Only an admin unlocks (audited); then vic works again.
    let (code, _, err) = run(&tokens["rita"], &["users", "unlock", "vic", "--as", "rita"], "1000", "1000");
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = run(&tokens["root"], &["users", "unlock", "vic", "--as", "root"], "1000", "1000");
    assert_eq!(code, 0, "{err}");
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&tokens["vic"]), None, "192.0.2.78:1".parse().unwrap()).status, StatusCode::OK);
    assert_eq!(count(&store, "SELECT count(*) FROM audit_log WHERE action = 'user_unlocked'"), 1);
    assert_eq!(count(&store, "SELECT count(*) FROM audit_log WHERE action = 'user_locked'"), 1);
    // The policy is explicit configuration: an inconsistent one is bad input (exit 2), not a silent default.
    let (code, _, err) = run(&tokens["vic"], &rotate, "5", "2");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("lock_after"), "{err}");
}

#[test]
fn probe_row4_template_symlink_outside_root_is_refused_over_http_and_reps_cannot_read_prompts() {
    let w = world();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "olt_the_secret").unwrap();
    let link = w.repo.join("prompts/link-row4.j2");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), &link).unwrap();
    let mlr = &w.tokens["m-mlr_reviewer"];
    for template in ["prompts/link-row4.j2", "../secret.txt", "evals/mini.jsonl", "data/onlabel.sqlite"] {
        let body = json!({"name": "row4", "template": template}).to_string();
        let r = call(&w.app, "POST", "/api/v1/prompts", Some(mlr), Some(&body), w.addr());
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "bad_path"), "{template}: {}", r.body);
        assert!(!r.body.to_string().contains("olt_the_secret"));
    }
    let id = w.version(false);
    for path in ["/api/v1/prompts".to_string(), format!("/api/v1/prompts/{id}"), format!("/api/v1/prompts/{id}/diff")] {
        let r = call(&w.app, "GET", &path, Some(&w.tokens["m-rep"]), None, w.addr());
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"), "{path}");
        assert_eq!(call(&w.app, "GET", &path, Some(&w.tokens["m-compliance"]), None, w.addr()).status, StatusCode::OK, "{path}");
    }
}

#[test]
fn probe_row7_the_author_can_neither_approve_nor_reject_over_http() {
    let w = world();
    let id = w.version(true);
    let author = &w.tokens["m-author"];
    for (action, code) in [("approve", "self_approval"), ("reject", "self_rejection")] {
        let body = json!({"reason": "mine", "password": PASSWORD}).to_string();
        let r = call(&w.app, "POST", &format!("/api/v1/prompts/{id}/{action}"), Some(author), Some(&body), w.addr());
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, code), "{action}: {}", r.body);
    }
    let v: VersionId = id.parse().unwrap();
    let reg = Registry::new(&w.store, &w.repo);
    assert_eq!(reg.get(&v).unwrap().state, onlabel::prompts::State::InReview);
    assert!(reg.signatures(&v).unwrap().is_empty(), "no signature was made");
}

#[test]
fn probe_row11_request_ids_are_the_servers_and_a_client_id_is_kept_bounded() {
    let w = world();
    let rep = &w.tokens["m-rep"];
    let client = format!("client-{} \t-tail", "x".repeat(200));
    let body = json!({"question": "What are the LFT monitoring rules?", "product": "zentravia"}).to_string();
    let r = call_with(&w.app, "POST", "/api/v1/ask", Some(rep), Some(&body), w.addr(), &[("x-request-id", &client)]);
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = r.headers.get("x-request-id").unwrap().to_str().unwrap().to_string();
    assert!(!id.starts_with("client-") && id.len() < 40, "the server made its own id: {id}");
    let audit_id = r.body["audit_id"].as_i64().unwrap();
    let detail: String = w
        .store
        .with_conn(|c| c.query_row("SELECT detail_json FROM audit_log WHERE seq = ?1", [audit_id], |r| r.get(0)))
        .unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    let kept = detail.to_string();
    assert!(kept.contains(&id), "the server's id is on the record: {kept}");
    let crid = detail.pointer("/context/client_request_id").or_else(|| detail.get("client_request_id")).cloned();
    let crid = crid.or_else(|| find_key(&detail, "client_request_id")).unwrap_or_default();
    let crid = crid.as_str().unwrap_or_default().to_string();
    assert_eq!(crid.len(), 64, "{crid}");
    assert!(crid.starts_with("client-xxx") && crid.chars().all(|c| c.is_ascii_graphic()), "{crid}");
}

fn find_key(v: &Value, key: &str) -> Option<Value> {
    match v {
        Value::Object(m) => m.get(key).cloned().or_else(|| m.values().find_map(|x| find_key(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

// ------------------------------- issue 21.4: rep A reading rep B's case --

/// Issue 21.4, "each person sees their own": rep B (`m-target`) reports a
/// case; every other role's user reads it on every case route. Rep A, an
/// MLR reviewer and compliance get exactly what a case that does not exist
/// gets (404 `not_found`); working it is Medical's (403 by role); Medical
/// and admin read it; rep B reads their own.
#[test]
fn authz_matrix_rep_a_reading_rep_b_case() {
    let w = world();
    let case = onlabel::cases::CaseStore::open(&w.data)
        .unwrap()
        .open_case(onlabel::cases::NewCase {
            kind: onlabel::cases::CaseKind::Pharmacovigilance,
            product: Some("zentravia".into()),
            question: "Rep B's patient got a rash.".into(),
            reporter: "m-target".into(),
            hcp: Some("Dr. Lee".into()),
            patient: None,
            suspect_product: Some("zentravia".into()),
            event: Some("rash".into()),
            flags_json: "[]".into(),
            now: chrono::Utc::now(),
        })
        .unwrap()
        .id;
    let intake = r#"{"patient": {"sex": "female"}}"#;
    // (route, body, [rep A, mlr_reviewer, compliance, medical, admin, rep B (the reporter)])
    let rows: [(&str, String, Option<&str>, [u16; 6]); 4] = [
        ("GET", format!("/api/v1/cases/{case}"), None, [404, 404, 404, 200, 200, 200]),
        ("GET", format!("/api/v1/cases/{case}/intake"), None, [404, 404, 404, 200, 200, 200]),
        ("PUT", format!("/api/v1/cases/{case}/intake"), Some(intake), [404, 404, 404, 200, 200, 200]),
        ("POST", format!("/api/v1/cases/{case}/triage"), Some("{}"), [403, 403, 403, 200, 409, 403]),
    ];
    let who = ["m-rep", "m-mlr_reviewer", "m-compliance", "m-medical", "m-admin", "m-target"];
    let mut failures = Vec::new();
    for (method, path, body, want) in &rows {
        let missing = path.replace(&case, "PV-2026-999999");
        for (user, want) in who.iter().zip(want) {
            let r = call(&w.app, method, path, Some(&w.tokens[*user]), *body, w.addr());
            if r.status.as_u16() != *want {
                failures.push(format!("{method} {path} as {user}: expected {want}, got {} {}", r.status, r.body));
            }
            if *want == 404 {
                // Indistinguishable from a case that does not exist, but for the id.
                let m = call(&w.app, method, &missing, Some(&w.tokens[*user]), *body, w.addr());
                let words = |r: &Resp, id: &str| (r.status, r.code().to_string(), r.body["error"]["message"].as_str().unwrap_or_default().replace(id, "ID"));
                if r.code() != "not_found" || words(&r, &case) != words(&m, "PV-2026-999999") {
                    failures.push(format!("{method} {path} as {user}: {} differs from a missing case's {}", r.body, m.body));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Rep A's list never holds rep B's case; Medical's queue does.
    let listed = |user: &str| call(&w.app, "GET", "/api/v1/cases?mine=false&limit=1000", Some(&w.tokens[user]), None, w.addr()).body.to_string();
    assert!(!listed("m-rep").contains(&case) && !listed("m-compliance").contains(&case), "another rep's case is listed");
    assert!(listed("m-medical").contains(&case) && listed("m-target").contains(&case));
}
