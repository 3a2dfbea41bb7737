//! Single sign-on against a real OpenID provider on loopback: the certified
//! `oidc-provider` package under node (tests/oidc/provider.mjs, installed by
//! scripts/oidc-provider.sh), which checks the password on its own login
//! form, requires PKCE, and honours `prompt=login` / `max_age=0`.
//!
//! OnLabel runs in-process (`router(state).oneshot`); the provider runs as a
//! process; a small cookie-keeping client plays the browser between them.
//! What is shown: the login redirect carries PKCE, state and nonce; a forged,
//! replayed or other-browser state is refused; an unmapped group is refused
//! with a page (no user, no default role); a first sign-in creates the user
//! with the mapped role and a session; a changed group changes the role,
//! audited; a step-up marks the signed-in person's own session only.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use onlabel::copilot::Copilot;
use onlabel::server::{router, AppState, Config, Limits};
use onlabel::store::Store;
use onlabel::users::oidc::{OidcConfig, RoleMapping, Settings, Sso};
use onlabel::users::{Role, Users};

use crate::harness::{build_index, root};

/// OnLabel's client at the test provider.
pub(crate) const CLIENT_ID: &str = "onlabel-test";
pub(crate) const CLIENT_SECRET: &str = "test-client-secret-0123456789";

/// One account of the provider's accounts file.
#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub id: &'static str,
    pub password: &'static str,
    pub name: &'static str,
    pub groups: Vec<&'static str>,
}

pub(crate) fn account(id: &'static str, name: &'static str, groups: &[&'static str]) -> Account {
    Account { id, password: "correct horse battery staple", name, groups: groups.to_vec() }
}

/// The loopback provider: a node process, killed when dropped.
pub(crate) struct Provider {
    child: Child,
    /// Its issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
    /// The accounts file (rewrite it with [`Provider::set_accounts`]).
    pub file: PathBuf,
    redirect_uri: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts tests/oidc/provider.mjs on a free port with `accounts`; the
    /// client's redirect URI is `redirect_uri`. Waits for its "listening" line.
    pub(crate) fn start(dir: &Path, redirect_uri: &str, accounts: &[Account]) -> Provider {
        let script = root().join("tests/oidc/provider.mjs");
        assert!(
            root().join("tests/oidc/node_modules/oidc-provider/package.json").exists(),
            "the test OpenID provider is not installed: run `bash scripts/oidc-provider.sh` (scripts/test.sh does)"
        );
        let file = dir.join("oidc-accounts.json");
        write_accounts(&file, redirect_uri, accounts);
        let mut child = Command::new("node")
            .arg(&script)
            .arg("0")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting node (Debian's nodejs; scripts/oidc-provider.sh installs it)");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("oidc-provider listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let issuer = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(i) => i,
            Err(_) => {
                let _ = child.kill();
                panic!("the test OpenID provider did not start within 30 s");
            }
        };
        Provider { child, issuer, file, redirect_uri: redirect_uri.into() }
    }

    /// Rewrites the accounts file (the provider reads it at every sign-in).
    pub(crate) fn set_accounts(&self, accounts: &[Account]) {
        write_accounts(&self.file, &self.redirect_uri, accounts);
    }

    /// The `[oidc]` table for this provider, with the test mapping.
    pub(crate) fn config(&self) -> OidcConfig {
        OidcConfig {
            issuer: self.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            redirect_url: self.redirect_uri.clone(),
            groups_claim: None,
            scopes: None,
            roles: vec![
                RoleMapping { group: "onlabel-mlr".into(), role: "mlr_reviewer".into() },
                RoleMapping { group: "onlabel-reps".into(), role: "rep".into() },
            ],
        }
    }
}

fn write_accounts(file: &Path, redirect_uri: &str, accounts: &[Account]) {
    let accounts: Vec<Value> = accounts
        .iter()
        .map(|a| json!({"id": a.id, "password": a.password, "name": a.name, "email": format!("{}@example.test", a.id), "groups": a.groups}))
        .collect();
    let doc = json!({"client": {"id": CLIENT_ID, "secret": CLIENT_SECRET, "redirect_uri": redirect_uri}, "accounts": accounts});
    std::fs::write(file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

/// A browser at the provider: keeps the provider's cookies (by name; paths
/// are ignored, which the provider does not mind), follows its redirects,
/// and fills its login form.
pub(crate) struct IdpBrowser {
    agent: ureq::Agent,
    jar: BTreeMap<String, String>,
}

impl IdpBrowser {
    pub(crate) fn new() -> IdpBrowser {
        let agent = ureq::Agent::config_builder().max_redirects(0).http_status_as_error(false).build().new_agent();
        IdpBrowser { agent, jar: BTreeMap::new() }
    }

    fn keep(&mut self, headers: &axum::http::HeaderMap) {
        for v in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            if let Some((k, rest)) = v.split_once('=') {
                let val = rest.split(';').next().unwrap_or("").to_string();
                if val.is_empty() || v.to_ascii_lowercase().contains("max-age=0") || v.contains("1970") {
                    self.jar.remove(k);
                } else {
                    self.jar.insert(k.to_string(), val);
                }
            }
        }
    }

    fn cookie(&self) -> String {
        self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// GETs `url` and follows the provider's redirects until a page (its
    /// body) or a redirect off the provider (its Location).
    fn follow(&mut self, mut url: String, issuer: &str) -> Result<String, String> {
        for _ in 0..10 {
            let mut r = self.agent.get(&url).header("Cookie", self.cookie()).call().map_err(|e| e.to_string())?;
            self.keep(r.headers());
            if r.status().is_redirection() {
                let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let next = if loc.starts_with('/') { format!("{issuer}{loc}") } else { loc };
                if !next.starts_with(issuer) {
                    return Err(next);
                }
                url = next;
                continue;
            }
            return Ok(r.body_mut().read_to_string().unwrap_or_default());
        }
        panic!("too many redirects at the provider");
    }

    /// Signs in at the provider from OnLabel's redirect `auth_url` with
    /// `user`/`password`; returns the URL the provider sends the browser
    /// back to (OnLabel's callback) and whether the form said "Confirm it
    /// is you" (a forced re-authentication). When the provider already
    /// knows this browser and asks nothing, the callback comes at once.
    pub(crate) fn sign_in(&mut self, auth_url: &str, issuer: &str, user: &str, password: &str) -> (String, bool) {
        let page = match self.follow(auth_url.to_string(), issuer) {
            Ok(page) => page,
            // Already signed in at the provider, no login asked: single sign-on.
            Err(callback) => return (callback, false),
        };
        let reauth = page.contains("id=\"reauth\"");
        let action = page.split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("a login form").to_string();
        let mut r = self
            .agent
            .post(&format!("{issuer}{action}"))
            .header("Cookie", self.cookie())
            .send_form([("login", user), ("password", password)])
            .unwrap();
        self.keep(r.headers());
        assert!(r.status().is_redirection(), "login form answered {}: {}", r.status(), r.body_mut().read_to_string().unwrap_or_default());
        let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap().to_string();
        let next = if loc.starts_with('/') { format!("{issuer}{loc}") } else { loc };
        match self.follow(next, issuer) {
            Err(callback) => (callback, reauth),
            Ok(page) => panic!("the provider did not send the browser back: {page}"),
        }
    }
}

/// The demo index, built once for this file.
fn index() -> PathBuf {
    static I: OnceLock<PathBuf> = OnceLock::new();
    I.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("onlabel-oidc-idx-").tempdir().unwrap().keep();
        build_index(&[root().join("corpora/demo")], &dir);
        dir
    })
    .clone()
}

/// OnLabel in-process over `data`, with single sign-on at `provider` (or none).
pub(crate) fn app(data: &Path, provider: Option<&Provider>) -> Router {
    let repo = crate::harness::scratch_repo(data.parent().unwrap());
    let copilot = Copilot::new(onlabel::index::Index::open(&index()).unwrap());
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data: data.to_path_buf(),
        root: repo.clone(),
        index: index(),
        thresholds: repo.join("evals/thresholds.toml"),
        products: json!({"products": []}),
        limits: Limits::default(),
        eval: Box::new(|_| Err("no evals here".to_string())),
        reload_prompt: None,
    };
    let mut state = AppState::new(copilot, config).unwrap();
    if let Some(p) = provider {
        state = state.with_oidc(Sso::new(Settings::from_config(&p.config(), None).unwrap()));
    }
    router(Arc::new(state))
}

/// One in-process answer.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Answer {
    pub(crate) fn location(&self) -> String {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    }
    /// The value of cookie `name` this answer sets.
    pub(crate) fn set_cookie(&self, name: &str) -> Option<(String, String)> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(|v| (v[name.len() + 1..].split(';').next().unwrap_or("").to_string(), v.to_string()))
    }
}

pub(crate) async fn get(app: &Router, uri: &str, cookie: Option<&str>) -> Answer {
    let mut b = Request::builder().uri(uri);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    let r = app.clone().oneshot(b.body(Body::empty()).unwrap()).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    Answer { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
}

/// The query parameters of `url`.
fn query(url: &str) -> BTreeMap<String, String> {
    let u = onlabel_url(url);
    u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn onlabel_url(url: &str) -> openidconnect::url::Url {
    openidconnect::url::Url::parse(url).unwrap_or_else(|_| openidconnect::url::Url::parse(&format!("http://x{url}")).unwrap())
}

/// The path and query of an absolute URL (what OnLabel's router is asked).
fn path_of(url: &str) -> String {
    let u = onlabel_url(url);
    format!("{}?{}", u.path(), u.query().unwrap_or(""))
}

/// A whole sign-in: OnLabel's login → the provider's form → OnLabel's
/// callback. Returns the callback's answer.
pub(crate) async fn sign_in(app: &Router, p: &Provider, idp: &mut IdpBrowser, user: &str, login: &str) -> Answer {
    let start = get(app, login, None).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text);
    let (flow, _) = start.set_cookie("onlabel_oidc").expect("the flow cookie");
    let (cb, _) = idp.sign_in(&start.location(), &p.issuer, user, "correct horse battery staple");
    get(app, &path_of(&cb), Some(&format!("onlabel_oidc={flow}"))).await
}

fn actions(data: &Path) -> Vec<(String, String, Value)> {
    let store = Store::open(data).unwrap();
    store
        .with_conn(|c| {
            let mut st = c.prepare("SELECT actor, action, detail_json FROM audit_log ORDER BY seq")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or(Value::Null))))?;
            rows.collect()
        })
        .unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    provider: Provider,
    app: Router,
}

fn fixture(accounts: &[Account]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let provider = Provider::start(dir.path(), "http://127.0.0.1:9/auth/oidc/callback", accounts);
    let app = app(&data, Some(&provider));
    Fixture { _dir: dir, data, provider, app }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_redirect_has_pkce_state_and_nonce_and_the_page_is_told_sso_is_on() {
    let f = fixture(&[account("amy", "Amy Reviewer", &["onlabel-mlr"])]);
    let conf = get(&f.app, "/auth/oidc/config", None).await;
    assert_eq!(conf.status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(&conf.text).unwrap(), json!({"enabled": true, "login": "/auth/oidc/login"}));
    let r = get(&f.app, "/auth/oidc/login?return=/%23/mlr", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let loc = r.location();
    assert!(loc.starts_with(&format!("{}/auth?", f.provider.issuer)), "{loc}");
    let q = query(&loc);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], "http://127.0.0.1:9/auth/oidc/callback");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43, "a SHA-256 challenge, base64url");
    assert!(q["state"].len() >= 16 && q["nonce"].len() >= 16, "{q:?}");
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    for s in ["openid", "profile", "email", "groups"] {
        assert!(scopes.contains(&s), "{scopes:?}");
    }
    assert!(!q.contains_key("prompt") && !q.contains_key("max_age"), "an ordinary sign-in does not force a login");
    let (_, cookie) = r.set_cookie("onlabel_oidc").unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/auth/oidc", "Max-Age=600"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    // Two logins: two different states, nonces and challenges.
    let q2 = query(&get(&f.app, "/auth/oidc/login", None).await.location());
    assert_ne!(q2["state"], q["state"]);
    assert_ne!(q2["nonce"], q["nonce"]);
    assert_ne!(q2["code_challenge"], q["code_challenge"]);
    // A step-up needs a signed-in session.
    let r = get(&f.app, "/auth/oidc/login?step_up=1", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A server without [oidc]: the page is told, the routes say so.
    let dir = tempfile::tempdir().unwrap();
    let plain = app(&dir.path().join("data"), None);
    let conf = get(&plain, "/auth/oidc/config", None).await;
    assert_eq!(serde_json::from_str::<Value>(&conf.text).unwrap()["enabled"], false);
    let r = get(&plain, "/auth/oidc/login", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("Single sign-on is not set up"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_replayed_or_other_browser_state_is_refused_and_audited() {
    let f = fixture(&[account("amy", "Amy Reviewer", &["onlabel-mlr"])]);
    // Forged: a state OnLabel never issued.
    let r = get(&f.app, "/auth/oidc/callback?state=forged-state&code=whatever", Some("onlabel_oidc=abc")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.headers["x-error-code"], "oidc_flow_refused");
    assert!(r.text.contains("This sign-in link cannot be used") && r.text.contains("href=\"/\""), "{}", r.text);
    // Another browser: a real flow, the callback without its cookie.
    let mut idp = IdpBrowser::new();
    let start = get(&f.app, "/auth/oidc/login", None).await;
    let (cb, _) = idp.sign_in(&start.location(), &f.provider.issuer, "amy", "correct horse battery staple");
    let r = get(&f.app, &path_of(&cb), Some("onlabel_oidc=someone-elses")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("another browser"), "{}", r.text);
    // Replayed: a callback that worked once does not work twice.
    let start = get(&f.app, "/auth/oidc/login", None).await;
    let (flow, _) = start.set_cookie("onlabel_oidc").unwrap();
    let (cb, _) = idp.sign_in(&start.location(), &f.provider.issuer, "amy", "correct horse battery staple");
    let cookie = format!("onlabel_oidc={flow}");
    let ok = get(&f.app, &path_of(&cb), Some(&cookie)).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    let again = get(&f.app, &path_of(&cb), Some(&cookie)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.text.contains("already used"), "{}", again.text);
    // A state with a tampered code: the flow is right, the provider refuses the code.
    let start = get(&f.app, "/auth/oidc/login", None).await;
    let (flow, _) = start.set_cookie("onlabel_oidc").unwrap();
    let (cb, _) = idp.sign_in(&start.location(), &f.provider.issuer, "amy", "correct horse battery staple");
    let q = query(&cb);
    let bad = get(&f.app, &format!("/auth/oidc/callback?state={}&code=forged-code", q["state"]), Some(&format!("onlabel_oidc={flow}"))).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED, "{}", bad.text);
    assert_eq!(bad.headers["x-error-code"], "oidc_token_refused");
    let failures: Vec<String> = actions(&f.data)
        .into_iter()
        .filter(|(_, a, _)| a == "login_failed")
        .map(|(_, _, d)| d["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(failures.contains(&"oidc: bad state".to_string()), "{failures:?}");
    assert!(failures.contains(&"oidc: token refused".to_string()), "{failures:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unmapped_group_is_refused_with_a_page_and_no_user_is_made() {
    let f = fixture(&[account("sam", "Sam Staff", &["staff", "everyone"])]);
    let mut idp = IdpBrowser::new();
    let r = sign_in(&f.app, &f.provider, &mut idp, "sam", "/auth/oidc/login").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.headers["x-error-code"], "oidc_no_role");
    assert!(r.set_cookie("onlabel_session").is_none(), "no session");
    assert!(r.text.contains("No OnLabel role for your account") && r.text.contains("staff") && r.text.contains("onlabel-mlr"), "{}", r.text);
    let store = Store::open(&f.data).unwrap();
    assert!(Users::new(&store).list().unwrap().is_empty(), "no user, no default role");
    let a = actions(&f.data);
    assert!(a.iter().any(|(_, act, d)| act == "login_failed" && d["reason"] == "oidc: no mapped group"), "{a:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_sign_in_creates_the_user_with_the_mapped_role_and_a_session() {
    let f = fixture(&[account("amy", "Amy Reviewer", &["staff", "onlabel-mlr"])]);
    let mut idp = IdpBrowser::new();
    let r = sign_in(&f.app, &f.provider, &mut idp, "amy", "/auth/oidc/login?return=/%23/mlr").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.location(), "/#/mlr");
    let (session, attrs) = r.set_cookie("onlabel_session").expect("a session cookie");
    assert!(attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict"), "{attrs}");
    let store = Store::open(&f.data).unwrap();
    let amy = Users::new(&store).get("amy").unwrap().expect("amy was created");
    assert_eq!(amy.role, Role::MlrReviewer);
    assert_eq!(amy.name, "Amy Reviewer");
    assert_eq!(amy.created_by, "oidc");
    // The cookie works: the API knows her.
    let me = get(&f.app, "/api/v1/sessions/current", Some(&format!("onlabel_session={session}"))).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let me: Value = serde_json::from_str(&me.text).unwrap();
    assert_eq!(me["user"]["id"], "amy");
    assert_eq!(me["method"], "oidc");
    let a = actions(&f.data);
    let names: Vec<&str> = a.iter().map(|(_, act, _)| act.as_str()).collect();
    for want in ["user_added", "session_started", "login"] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let added = a.iter().find(|(_, act, _)| act == "user_added").unwrap();
    assert_eq!(added.2["source"], "oidc");
    assert_eq!(added.2["role"], "mlr_reviewer");
    assert_eq!(added.2["group"], "onlabel-mlr");
    assert!(onlabel::audit::Audit::open(&f.data).unwrap().verify(None).unwrap().ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_group_changes_the_role_and_is_audited() {
    let f = fixture(&[account("amy", "Amy Reviewer", &["onlabel-mlr"])]);
    let mut idp = IdpBrowser::new();
    let r = sign_in(&f.app, &f.provider, &mut idp, "amy", "/auth/oidc/login").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    // At the provider, Amy moves from the MLR group to the reps.
    f.provider.set_accounts(&[account("amy", "Amy Reviewer", &["onlabel-reps"])]);
    let mut fresh = IdpBrowser::new();
    let r = sign_in(&f.app, &f.provider, &mut fresh, "amy", "/auth/oidc/login").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let store = Store::open(&f.data).unwrap();
    let users = Users::new(&store).list().unwrap();
    assert_eq!(users.len(), 1, "the same user, updated: {users:?}");
    assert_eq!(users[0].role, Role::Rep);
    let changed: Vec<Value> = actions(&f.data).into_iter().filter(|(_, a, _)| a == "user_role_changed").map(|(_, _, d)| d).collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["from"], "mlr_reviewer");
    assert_eq!(changed[0]["to"], "rep");
    assert_eq!(changed[0]["source"], "oidc");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_up_marks_the_signers_own_session_with_a_forced_login() {
    let f = fixture(&[account("amy", "Amy Reviewer", &["onlabel-mlr"]), account("bob", "Bob Reviewer", &["onlabel-mlr"])]);
    let mut idp = IdpBrowser::new();
    let r = sign_in(&f.app, &f.provider, &mut idp, "amy", "/auth/oidc/login").await;
    let (session, _) = r.set_cookie("onlabel_session").unwrap();
    let sid = onlabel::users::sessions::session_id(&session);
    let sessions = || {
        let store = Store::open(&f.data).unwrap();
        onlabel::users::sessions::Sessions::new(&store, Default::default()).take_step_up(&sid, Duration::from_secs(300)).unwrap()
    };
    assert!(!sessions(), "no step-up before one is done");
    // The step-up redirect forces a login.
    let cookie = format!("onlabel_session={session}");
    let start = get(&f.app, "/auth/oidc/login?step_up=1&return=/%23/mlr/x", Some(&cookie)).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text);
    let q = query(&start.location());
    assert_eq!(q["prompt"], "login");
    assert_eq!(q["max_age"], "0");
    let (flow, _) = start.set_cookie("onlabel_oidc").unwrap();
    // The provider knows Amy already, yet asks for her password again.
    let t0 = Instant::now();
    let (cb, reauth) = idp.sign_in(&start.location(), &f.provider.issuer, "amy", "correct horse battery staple");
    assert!(reauth, "the provider asked again (prompt=login)");
    // The callback comes without the Strict session cookie (a cross-site navigation).
    let done = get(&f.app, &path_of(&cb), Some(&format!("onlabel_oidc={flow}"))).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    assert_eq!(done.location(), "/#/mlr/x");
    assert!(done.set_cookie("onlabel_session").is_none(), "a step-up starts no new session");
    assert!(t0.elapsed() < Duration::from_secs(120));
    assert!(sessions(), "the session is stepped up");
    assert!(!sessions(), "consumed by one signature");
    // Bob signs in at the provider during Amy's step-up: refused.
    let start = get(&f.app, "/auth/oidc/login?step_up=1", Some(&cookie)).await;
    let (flow, _) = start.set_cookie("onlabel_oidc").unwrap();
    // (Bob at another browser of the provider: the flow's cookie still proves Amy's browser.)
    let mut bobs = IdpBrowser::new();
    let (cb, _) = bobs.sign_in(&start.location(), &f.provider.issuer, "bob", "correct horse battery staple");
    let refused = get(&f.app, &path_of(&cb), Some(&format!("onlabel_oidc={flow}"))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.headers["x-error-code"], "oidc_step_up_refused");
    assert!(!sessions(), "Amy's session was not stepped up by Bob");
    let a = actions(&f.data);
    assert_eq!(a.iter().filter(|(actor, act, _)| act == "step_up" && actor == "amy").count(), 1);
}
