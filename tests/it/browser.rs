//! The web UI end to end in a real headless browser: Debian's Chromium driven
//! over WebDriver (chromedriver, installed by `scripts/test.sh`) by
//! fantoccini, against the real `onlabel serve` on loopback with the demo
//! index and a fresh data directory per test.
//!
//! - a rep asks and sees a cited answer; a citation chip opens the approved
//!   passage with its section title and MLR number;
//! - an adverse-event question shows the Pharmacovigilance banner with the
//!   case id, and that case appears on the Medical page, where it is worked
//!   to closed;
//! - an MLR reviewer approves a prompt version with an e-signature;
//! - a rep cannot reach the MLR page (no nav link, "You do not have access",
//!   and the server answers the rep's approve call with 403);
//! - a rep drafts a follow-up email (draft banner, references, safety information);
//! - compliance verifies the audit chain and finds a rep's question in the audit log.
//!
//! Every test runs at tablet width (768 px) and keeps PNG screenshots in
//! `$CARGO_TARGET_DIR/e2e-screenshots/` (one per step, and `*-FAILED.png`
//! when an assertion fails), beside each test's server and chromedriver logs. The tests take turns (one Chromium at a time):
//! the machine is small and Chromium is not.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::harness::{add_user, bin, onlabel, root, scratch_home};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The width the UI must stay usable at (a portrait tablet).
pub(crate) const WIDTH: u32 = 768;
pub(crate) const HEIGHT: u32 = 1024;
/// How long a generated answer may take on a busy 2-core CI machine.
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(180);

/// One browser test at a time (each starts its own server and Chromium).
/// An async mutex: the turn is held across awaits (each test has its own runtime).
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) fn wait_for_port(port: u16, what: &str, child: &mut Child, timeout: Duration) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {status}");
        }
        assert!(start.elapsed() < timeout, "{what} did not listen on 127.0.0.1:{port} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed (and reaped) when the test ends, pass or fail.
pub(crate) struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free loopback port, and the throw-away Chromium profile.
pub(crate) struct Driver {
    _child: Guarded,
    port: u16,
    profile: tempfile::TempDir,
}

pub(crate) fn chromedriver(name: &str) -> Driver {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "{CHROMEDRIVER} or {CHROMIUM} is missing: run scripts/test.sh (it installs Debian's chromium and chromium-driver)"
    );
    let port = free_port();
    let log = screenshots().join(format!("{name}-chromedriver.log"));
    let mut child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    wait_for_port(port, "chromedriver", &mut child, Duration::from_secs(20));
    Driver { _child: Guarded(child), port, profile: tempfile::tempdir().unwrap() }
}

impl Driver {
    /// A fresh headless Chromium session (flags: the machine has no network).
    pub(crate) async fn client(&self) -> Client {
        self.client_with_downloads(None).await
    }

    /// [`Driver::client`] whose downloads are saved, without asking, to `downloads`.
    pub(crate) async fn client_with_downloads(&self, downloads: Option<&Path>) -> Client {
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", self.profile.path().display()),
            format!("--window-size={WIDTH},{HEIGHT}"),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        let mut chrome = serde_json::json!({"binary": CHROMIUM, "args": args});
        if let Some(dir) = downloads {
            chrome["prefs"] = serde_json::json!({"download.default_directory": dir.display().to_string(), "download.prompt_for_download": false});
        }
        caps.insert("goog:chromeOptions".into(), chrome);
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session with headless Chromium")
    }
}

/// Where screenshots are kept: `$CARGO_TARGET_DIR/e2e-screenshots/`.
pub(crate) fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("e2e-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The demo corpus ingested once for all browser tests.
pub(crate) fn demo_index() -> PathBuf {
    static INDEX: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| {
            let dir = scratch_home().join("browser-demo-index");
            let _ = std::fs::remove_dir_all(&dir);
            let out = Command::new(bin())
                .args(["ingest", "--corpus"])
                .arg(root().join("corpora/demo"))
                .arg("--index")
                .arg(&dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "ingest: {}", String::from_utf8_lossy(&out.stderr));
            dir
        })
        .clone()
}

/// The model; a test that needs it fails (never falls back to extractive
/// answers) when it is missing.
pub(crate) fn model() -> PathBuf {
    let m = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(m.exists(), "{} is missing: run `bash models/fetch.sh` (scripts/test.sh does it first)", m.display());
    m
}

/// `onlabel serve` on a free loopback port over `data`, with the registry's
/// repository root `repo`; waits for `/readyz`.
pub(crate) struct Server {
    _child: Guarded,
    base: String,
}

pub(crate) fn serve(name: &str, data: &Path, repo: &Path, generate: bool) -> Server {
    serve_with(name, data, repo, generate, &[])
}

/// [`serve`] with more `onlabel serve` flags (e.g. `--session-idle 2`).
pub(crate) fn serve_with(name: &str, data: &Path, repo: &Path, generate: bool, extra: &[&str]) -> Server {
    let port = free_port();
    let log = std::fs::File::create(screenshots().join(format!("{name}-server.log"))).unwrap();
    let mut cmd = Command::new(bin());
    cmd.current_dir(repo)
        .env_remove("ONLABEL_TOKEN")
        .env("ONLABEL_ROOT", repo)
        .arg("--data")
        .arg(data)
        .arg("serve")
        .arg("--index")
        .arg(demo_index())
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        // A busy 2-core CI machine generates slowly; the browser waits as long.
        .args(["--timeout", &ANSWER_WAIT.as_secs().to_string()])
        .args(extra);
    if generate {
        cmd.arg("--model").arg(model());
    } else {
        cmd.arg("--extractive");
    }
    let mut child = cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("starting onlabel serve");
    wait_for_port(port, "onlabel serve", &mut child, Duration::from_secs(120));
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while ureq::get(&format!("{base}/readyz")).call().is_err() {
        assert!(start.elapsed() < Duration::from_secs(120), "{base}/readyz never answered 200");
        std::thread::sleep(Duration::from_millis(200));
    }
    Server { _child: Guarded(child), base }
}

/// The harness's scratch repository, with a models folder.
pub(crate) fn scratch_repo(dir: &Path) -> PathBuf {
    let repo = crate::harness::scratch_repo(dir);
    std::fs::create_dir_all(repo.join("models")).unwrap();
    repo
}

/// Everything one test needs: users, a server, a browser.
pub(crate) struct World {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) data: PathBuf,
    pub(crate) repo: PathBuf,
    pub(crate) tokens: std::collections::HashMap<&'static str, String>,
    pub(crate) server: Option<Server>,
}

/// A fresh data dir with an admin, two MLR reviewers, a compliance user,
/// a medical user and a rep.
pub(crate) fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let repo = scratch_repo(dir.path());
    let admin = add_user(&data, None, "root", "Ada Admin", "admin");
    let a = Some(("root", admin.as_str()));
    let mut tokens = std::collections::HashMap::new();
    for (id, name, role) in [
        ("alice", "Alice Author", "mlr_reviewer"),
        ("bob", "Bob Reviewer", "mlr_reviewer"),
        ("carol", "Carol Compliance", "compliance"),
        ("mia", "Mia Medical", "medical"),
        ("rex", "Rex Rep", "rep"),
    ] {
        tokens.insert(id, add_user(&data, a, id, name, role));
    }
    tokens.insert("root", admin);
    World { _dir: dir, data, repo, tokens, server: None }
}

impl World {
    /// Starts the server with the real model (when fetched).
    pub(crate) fn start(&mut self, name: &str) -> String {
        self.start_with(name, true)
    }

    /// Starts the server; `generate: false` answers extractively and loads no
    /// prompt (a server with a model refuses to start while the registry's
    /// `objection` has no approved version, which the approval test needs).
    pub(crate) fn start_with(&mut self, name: &str, generate: bool) -> String {
        let s = serve(name, &self.data, &self.repo, generate);
        let base = s.base.clone();
        self.server = Some(s);
        base
    }

    /// Starts the server (extractive) with more `onlabel serve` flags.
    pub(crate) fn start_serving_with(&mut self, name: &str, extra: &[&str]) -> String {
        let s = serve_with(name, &self.data, &self.repo, false, extra);
        let base = s.base.clone();
        self.server = Some(s);
        base
    }

    pub(crate) fn token(&self, id: &str) -> &str {
        &self.tokens[id]
    }

    pub(crate) fn prompts(&self, as_user: &str, args: &[&str]) -> String {
        let mut full = vec!["prompts", "--root", self.repo.to_str().unwrap()];
        full.extend_from_slice(args);
        full.extend(["--as", as_user]);
        let (code, out, err) = onlabel(&self.data, Some(self.token(as_user)), &full);
        assert_eq!(code, 0, "prompts {args:?}: {out}{err}");
        out
    }
}

// ------------------------------------------------------------ page steps ----

pub(crate) async fn shot(c: &Client, name: &str) {
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(screenshots().join(format!("{name}.png")), png);
    }
}

/// The two sizes the issue-20 pages are shown at: a laptop and a phone.
pub(crate) const SIZES: [(&str, u32, u32); 2] = [("1280x900", 1280, 900), ("390x844", 390, 844)];

/// Screenshots of the current page at both [`SIZES`] (`NAME-1280x900.png`,
/// `NAME-390x844.png`), then back to the tests' tablet width. Each size is
/// also checked for horizontal scrolling (a phone must not scroll sideways).
pub(crate) async fn shots(c: &Client, name: &str) -> anyhow::Result<()> {
    for (tag, w, h) in SIZES {
        c.set_window_size(w, h).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        shot(c, &format!("{name}-{tag}")).await;
        let dims = c.execute("return [document.documentElement.scrollWidth, window.innerWidth];", vec![]).await?;
        let (scroll, inner) = (dims[0].as_f64().unwrap_or(0.0), dims[1].as_f64().unwrap_or(0.0));
        ensure!(scroll <= inner + 1.0, "{name} at {tag}: page is {scroll}px wide in a {inner}px window; {}", widest(c).await);
    }
    c.set_window_size(WIDTH, HEIGHT).await?;
    Ok(())
}

pub(crate) async fn find(c: &Client, css: &str, within: Duration) -> anyhow::Result<fantoccini::elements::Element> {
    c.wait().at_most(within).for_element(Locator::Css(css)).await.with_context(|| format!("no element {css} within {within:?}"))
}

/// Waits until `css` exists and its text satisfies `ok`; returns the text.
pub(crate) async fn text_where(c: &Client, css: &str, within: Duration, ok: impl Fn(&str) -> bool) -> anyhow::Result<String> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ok(&t) {
                    return Ok(t);
                }
                last = t;
            }
        }
        ensure!(start.elapsed() < within, "{css}: text never matched within {within:?}; last seen {last:?}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Waits until the tab's address satisfies `ok` and returns it: a redirect
/// chain (the provider's form, the callback, the page) ends after the click
/// that starts it returns, so an address read at once may still be the last hop.
pub(crate) async fn url_where(c: &Client, within: Duration, ok: impl Fn(&str) -> bool) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        let url = c.current_url().await?.to_string();
        if ok(&url) {
            return Ok(url);
        }
        ensure!(start.elapsed() < within, "the address never matched within {within:?}; last seen {url}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Waits until the page shows its sign-in card; with `sign_out`, signs out
/// whoever the page resumed first (without it, a signed-in page times out:
/// what a test of sign-out wants). The card's fields are in `index.html`
/// from the start but hidden (not interactable) until the page has decided
/// nobody is signed in: after its session fetch on load, or after
/// sign-out's `DELETE` returns.
pub(crate) async fn signin_card(c: &Client, within: Duration, sign_out: bool) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut signed_out = false;
    loop {
        if let Ok(card) = c.find(Locator::Css("#signin")).await {
            if card.is_displayed().await.unwrap_or(false) {
                return Ok(());
            }
        }
        if sign_out && !signed_out {
            if let Ok(b) = c.find(Locator::Css("#sign-out")).await {
                if b.is_displayed().await.unwrap_or(false) {
                    b.click().await?;
                    signed_out = true;
                }
            }
        }
        ensure!(start.elapsed() < within, "the sign-in card never showed within {within:?} (signed out first: {signed_out})");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

pub(crate) async fn sign_in(c: &Client, base: &str, token: &str, role: &str) -> anyhow::Result<()> {
    c.goto(&format!("{base}/#/ask")).await?;
    // Signed in already (another user in this tab): sign out first.
    signin_card(c, Duration::from_secs(15), true).await?;
    // The token form is the secondary option under the password form.
    find(c, "#token-option", Duration::from_secs(10)).await?;
    c.execute("document.getElementById('token-option').open = true;", vec![]).await?;
    let input = find(c, "#token", Duration::from_secs(10)).await?;
    input.send_keys(token).await?;
    c.find(Locator::Css("#signin-submit")).await?.click().await?;
    text_where(c, "[data-testid=who-role]", Duration::from_secs(10), |t| t == role).await?;
    Ok(())
}

/// Signs `user` in with their password (the default form) and waits for
/// their role in the header: the browser now holds the session cookie.
pub(crate) async fn sign_in_password(c: &Client, base: &str, user: &str, password: &str, role: &str) -> anyhow::Result<()> {
    c.goto(&format!("{base}/#/ask")).await?;
    signin_card(c, Duration::from_secs(15), true).await?;
    let id = find(c, "#user-id", Duration::from_secs(10)).await?;
    id.clear().await?;
    id.send_keys(user).await?;
    c.find(Locator::Css("#password")).await?.send_keys(password).await?;
    c.find(Locator::Css("#password-submit")).await?.click().await?;
    text_where(c, "[data-testid=who-role]", Duration::from_secs(15), |t| t == role).await?;
    Ok(())
}

pub(crate) async fn go(c: &Client, base: &str, page: &str) -> anyhow::Result<()> {
    c.goto(&format!("{base}/#/{page}")).await?;
    Ok(())
}

/// The page fits the tablet width: no horizontal scrolling.
pub(crate) async fn fits_tablet(c: &Client) -> anyhow::Result<()> {
    let w = c.execute("return [document.documentElement.scrollWidth, window.innerWidth];", vec![]).await?;
    let (scroll, inner) = (w[0].as_f64().unwrap_or(0.0), w[1].as_f64().unwrap_or(0.0));
    ensure!(inner <= WIDTH as f64 + 1.0 && scroll <= inner + 1.0, "page is {scroll}px wide in a {inner}px window; {}", widest(c).await);
    Ok(())
}

/// The elements that reach past the window's right edge (tag, class, right
/// edge, width), outermost first: what to fix when a page scrolls sideways.
pub(crate) async fn widest(c: &Client) -> String {
    let js = "const w = window.innerWidth;               return [...document.querySelectorAll('body *')]                 .map(e => [e, e.getBoundingClientRect()])                 .filter(([e, r]) => r.right > w + 1 && r.width > 0)                 .slice(0, 6)                 .map(([e, r]) => e.tagName.toLowerCase() + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') + ' right ' + Math.round(r.right) + ' width ' + Math.round(r.width)).join('; ');";
    match c.execute(js, vec![]).await {
        Ok(v) => format!("past the edge: {}", v.as_str().unwrap_or("?")),
        Err(e) => format!("(could not list the wide elements: {e})"),
    }
}

/// Every visible form control has a label (`<label for>` or aria-label) and
/// every visible button or link has a name: what a screen reader announces.
pub(crate) async fn labelled(c: &Client) -> anyhow::Result<()> {
    let bad = c
        .execute(
            "const seen = e => e.offsetParent !== null; \
             const controls = [...document.querySelectorAll('input, select, textarea')] \
               .filter(e => seen(e) && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')); \
             const named = [...document.querySelectorAll('button, a')] \
               .filter(e => seen(e) && !(e.textContent.trim() || e.getAttribute('aria-label'))); \
             return controls.concat(named).map(e => e.outerHTML.slice(0, 80));",
            vec![],
        )
        .await?;
    ensure!(bad.as_array().is_some_and(|a| a.is_empty()), "unlabelled controls: {bad}");
    Ok(())
}

/// Everything the page loaded came from the server itself (it works offline).
pub(crate) async fn same_origin_only(c: &Client) -> anyhow::Result<()> {
    let foreign = c
        .execute("return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin));", vec![])
        .await?;
    ensure!(foreign.as_array().is_some_and(|a| a.is_empty()), "the page loaded from elsewhere: {foreign}");
    Ok(())
}

/// The page is usable at tablet width, offline, and its controls are labelled.
pub(crate) async fn usable(c: &Client) -> anyhow::Result<()> {
    fits_tablet(c).await?;
    same_origin_only(c).await?;
    labelled(c).await
}

/// Runs one test's browser part; on failure keeps a `NAME-FAILED.png`.
pub(crate) async fn run(c: Client, name: &str, body: impl std::future::Future<Output = anyhow::Result<()>>) {
    let result = body.await;
    if result.is_err() {
        shot(&c, &format!("{name}-FAILED")).await;
    }
    let _ = c.close().await;
    if let Err(e) = result {
        panic!("{name}: {e:#} (screenshots in {})", screenshots().display());
    }
}

pub(crate) async fn turn() -> tokio::sync::MutexGuard<'static, ()> {
    TURN.lock().await
}

// ----------------------------------------------------------------- tests ----

#[tokio::test]
async fn browser_rep_asks_and_sees_a_cited_answer() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start("ask");
    let driver = chromedriver("ask");
    let c = driver.client().await;
    let rex = w.token("rex").to_string();
    run(c.clone(), "ask", async {
        sign_in(&c, &base, &rex, "rep").await?;
        // The rep's nav: ask and email, nothing else.
        let nav = text_where(&c, "#nav-list", Duration::from_secs(5), |t| !t.is_empty()).await?;
        ensure!(nav.contains("Ask") && !nav.contains("MLR") && !nav.contains("Compliance"), "rep nav: {nav:?}");

        let product = find(&c, "#ask-product", Duration::from_secs(10)).await?;
        product.select_by_value("zentravia").await?;
        // The approved documents are one tap away, collapsed under the form (issue 20, point 8).
        c.find(Locator::Css("[data-testid=ask-product-docs-box] summary")).await?.click().await?;
        text_where(&c, "#ask-product-docs", Duration::from_secs(5), |t| t.contains("US-ZEN-0001")).await?;
        c.find(Locator::Css("#ask-hcp")).await?.send_keys("Dr. Lee").await?;
        c.find(Locator::Css("#ask-question")).await?.send_keys("What are the LFT monitoring rules?").await?;
        shot(&c, "ask-1-question").await;
        usable(&c).await?;
        // Keyboard: Ctrl+Enter in the question asks (then the modifier is released).
        c.find(Locator::Css("#ask-question")).await?.send_keys("\u{e009}\u{e007}\u{e000}").await?;

        let text = text_where(&c, "#answer-text", ANSWER_WAIT, |t| !t.trim().is_empty()).await?;
        let region = c.find(Locator::Css("#answer")).await?;
        ensure!(region.attr("aria-live").await?.as_deref() == Some("polite"), "the answer region is not aria-live=polite");
        ensure!(region.attr("data-route").await?.as_deref() == Some("answer"), "route is not answer: {text}");
        ensure!(c.find(Locator::Css("[data-testid=route-banner]")).await.is_err(), "a plain answer shows no escalation banner");
        let chips = c.find_all(Locator::Css("#answer-text [data-testid=citation-chip]")).await?;
        ensure!(!chips.is_empty(), "no inline citation chip in {text:?}");
        // The answer comes first; its sources are collapsed under it.
        c.find(Locator::Css("[data-testid=sources-toggle]")).await?.click().await?;
        let sources = text_where(&c, "[data-testid=sources]", Duration::from_secs(2), |t| t.contains("zentravia")).await?;
        ensure!(!sources.contains("zentravia-pi-2024"), "the withdrawn label was cited: {sources}");
        shot(&c, "ask-2-answer").await;
        shots(&c, "ask-answer").await?;

        // A chip opens the approved passage: section, title, MLR number, quote.
        chips[0].click().await?;
        let label = text_where(&c, "#passage-label", Duration::from_secs(5), |t| t.contains('§')).await?;
        let title = c.find(Locator::Css("#passage-title")).await?.text().await?;
        let mlr = c.find(Locator::Css("#passage-mlr")).await?.text().await?;
        let quote = c.find(Locator::Css("#passage-quote")).await?.text().await?;
        ensure!(label.starts_with("[1] zentravia-"), "passage label {label:?}");
        ensure!(!title.trim().is_empty() && mlr.starts_with("US-ZEN-") && quote.len() > 20, "passage: {title:?} {mlr:?} {quote:?}");
        ensure!(c.find(Locator::Css("#passage-dialog")).await?.attr("open").await?.is_some(), "the passage dialog is not open");
        shot(&c, "ask-3-passage").await;
        // Keyboard: focus is on Close, and Escape closes the dialog.
        let focused = c.execute("return document.activeElement.id;", vec![]).await?;
        ensure!(focused == "passage-close", "focus in the open dialog is on {focused}");
        c.find(Locator::Css("#passage-close")).await?.send_keys("\u{e00c}").await?;
        let start = Instant::now();
        while c.find(Locator::Css("#passage-dialog")).await?.attr("open").await?.is_some() {
            ensure!(start.elapsed() < Duration::from_secs(5), "Escape did not close the passage dialog");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Copy to clipboard answers either way, and says so.
        c.find(Locator::Css("#copy-answer")).await?.click().await?;
        text_where(&c, "[data-testid=copy-status]", Duration::from_secs(5), |t| t.starts_with("Cop")).await?;
        usable(&c).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn browser_ae_question_shows_pv_banner_and_the_case_reaches_medical() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start("ae");
    let driver = chromedriver("ae");
    let c = driver.client().await;
    let (rex, mia) = (w.token("rex").to_string(), w.token("mia").to_string());
    run(c.clone(), "ae", async {
        sign_in(&c, &base, &rex, "rep").await?;
        find(&c, "#ask-product", Duration::from_secs(10)).await?.select_by_value("zentravia").await?;
        let q = c.find(Locator::Css("#ask-question")).await?;
        q.send_keys("Dr. Lee's patient's ALT jumped to 6 times normal three weeks after starting ZENTRAVIA.").await?;
        // Ctrl+Enter sends; an impatient second Ctrl+Enter must not send the
        // report again (one report, one case).
        let ctrl_enter_twice = format!("{}{}{}{}", Key::Control, Key::Enter, Key::Enter, Key::Null);
        q.send_keys(&ctrl_enter_twice).await?;

        let banner = text_where(&c, "[data-testid=route-banner]", ANSWER_WAIT, |t| !t.is_empty()).await?;
        let el = c.find(Locator::Css("[data-testid=route-banner]")).await?;
        ensure!(el.attr("role").await?.as_deref() == Some("alert"), "the banner is not role=alert");
        ensure!(el.attr("data-route").await?.as_deref() == Some("pharmacovigilance"), "banner: {banner}");
        ensure!(banner.contains("Pharmacovigilance"), "banner: {banner}");
        let case_id = c.find(Locator::Css("[data-testid=case-id]")).await?.text().await?;
        ensure!(case_id.starts_with("PV-"), "case id {case_id:?}");
        ensure!(c.find(Locator::Css("#answer-text")).await.is_err(), "a PV route shows no promotional answer");
        shot(&c, "ae-1-pv-banner").await;
        usable(&c).await?;

        // The rep has no Medical page.
        go(&c, &base, "cases").await?;
        text_where(&c, "[data-page=cases] [data-testid=access-denied]", Duration::from_secs(10), |t| t.contains("You do not have access")).await?;

        // Medical sees the case in the queue and works it to closed.
        sign_in(&c, &base, &mia, "medical").await?;
        find(&c, "[data-testid=nav-cases]", Duration::from_secs(5)).await?.click().await?;
        let row = find(&c, &format!("tr[data-case='{case_id}']"), Duration::from_secs(10)).await?;
        let row_text = row.text().await?;
        ensure!(row_text.contains("PV") && row_text.contains("new") && row_text.contains("rex"), "case row: {row_text}");
        shot(&c, "ae-2-case-queue").await;
        row.find(Locator::Css("[data-testid=open-case]")).await?.click().await?;
        let q = text_where(&c, "[data-testid=case-question]", Duration::from_secs(10), |t| !t.is_empty()).await?;
        ensure!(q.contains("ALT jumped"), "case question {q:?}");

        // The owner is chosen from the medical users (issue 20.5).
        find(&c, "[data-testid=assign-owner]", Duration::from_secs(5)).await?.select_by_value("mia").await?;
        c.find(Locator::Css("[data-testid=assign]")).await?.click().await?;
        text_where(&c, "[data-testid=case-owner]", Duration::from_secs(10), |t| t == "mia").await?;
        for step in ["triage", "start"] {
            find(&c, &format!("[data-testid=case-{step}]"), Duration::from_secs(10)).await?.click().await?;
            text_where(&c, "[data-testid=case-ok]", Duration::from_secs(10), |t| t.contains(step)).await?;
        }
        find(&c, "[data-testid=resolution]", Duration::from_secs(10)).await?.send_keys("Entered in the safety database; HCP contacted for follow-up.").await?;
        c.find(Locator::Css("[data-testid=case-resolve]")).await?.click().await?;
        text_where(&c, "[data-testid=case-detail-state]", Duration::from_secs(10), |t| t == "closed").await?;
        let history = c.find(Locator::Css("[data-testid=case-history]")).await?.text().await?;
        ensure!(history.contains("opened") && history.contains("mia") && history.contains("closed"), "history: {history}");
        shot(&c, "ae-3-case-closed").await;
        usable(&c).await?;
        Ok(())
    })
    .await;
    let cases: i64 = onlabel::store::Store::open(&w.data)
        .unwrap()
        .with_conn(|c| c.query_row("SELECT count(*) FROM cases WHERE kind = 'pharmacovigilance'", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(cases, 1, "two Ctrl+Enter on one report opened {cases} PV cases");
}

#[tokio::test]
async fn browser_reviewer_approves_a_prompt_version_with_an_e_signature() {
    let _turn = turn().await;
    let mut w = world();
    // alice proposes and submits objection@1; compliance records its eval
    // evidence (the command line: these are not the UI under test).
    let out = w.prompts("alice", &["propose", "objection", "--template", "prompts/objection.j2", "--temperature", "0", "--max-tokens", "80"]);
    assert_eq!(out.trim(), "objection@1");
    w.prompts("alice", &["submit", "objection@1"]);
    let idx = demo_index();
    let mut eval = vec!["record-eval", "objection@1", "--suite", "evals/mini.jsonl", "--index", idx.to_str().unwrap(), "--as-of", "2026-11-23"];
    let m = model();
    eval.extend(["--model", m.to_str().unwrap()]);
    w.prompts("carol", &eval);

    // Issue 21.3: bob signs by re-entering his password.
    crate::esign::set_password(&w.data, "bob", crate::esign::PASSWORD);
    let base = w.start_with("approve", false);
    let driver = chromedriver("approve");
    let c = driver.client().await;
    let (alice, bob) = (w.token("alice").to_string(), w.token("bob").to_string());
    run(c.clone(), "approve", async {
        // The author sees the version but is told another reviewer must sign.
        sign_in(&c, &base, &alice, "mlr_reviewer").await?;
        find(&c, "[data-testid=nav-mlr]", Duration::from_secs(5)).await?.click().await?;
        find(&c, "[data-testid=open-version][data-version='objection@1']", Duration::from_secs(10)).await?.click().await?;
        text_where(&c, "#sign-form", Duration::from_secs(10), |t| t.contains("another reviewer must sign")).await?;

        sign_in(&c, &base, &bob, "mlr_reviewer").await?;
        go(&c, &base, "mlr").await?;
        let row = find(&c, "tr[data-version='objection@1']", Duration::from_secs(10)).await?;
        ensure!(row.text().await?.contains("in review"), "row: {}", row.text().await?);
        row.find(Locator::Css("[data-testid=open-version]")).await?.click().await?;
        let evidence = text_where(&c, "[data-testid=eval-runs]", Duration::from_secs(10), |t| t.contains("#1")).await?;
        ensure!(evidence.contains("passed") && evidence.contains("evals/mini.jsonl"), "eval evidence: {evidence}");
        let content = c.find(Locator::Css("[data-testid=version-content]")).await?.text().await?;
        ensure!(!content.trim().is_empty(), "the version's content is not shown");
        shot(&c, "approve-1-version").await;

        c.find(Locator::Css("[data-testid=sign-reason]")).await?.send_keys("Matches MLR-2026-114").await?;
        c.find(Locator::Css("[data-testid=sign-password]")).await?.send_keys(crate::esign::PASSWORD).await?;
        c.find(Locator::Css("[data-testid=sign-ack]")).await?.click().await?;
        shot(&c, "approve-2-signing").await;
        c.find(Locator::Css("[data-testid=approve]")).await?.click().await?;
        let signed = text_where(&c, "[data-testid=sign-ok]", Duration::from_secs(20), |t| !t.is_empty()).await?;
        ensure!(signed.contains("objection@1 approved"), "{signed}");
        ensure!(signed.contains("Bob Reviewer (bob)") && signed.contains("approved for use") && signed.contains("Matches MLR-2026-114"), "{signed}");
        shot(&c, "approve-3-signed").await;

        // The list now shows it approved, with the signature on its page.
        c.refresh().await?;
        let row = find(&c, "tr[data-version='objection@1']", Duration::from_secs(10)).await?;
        ensure!(row.text().await?.contains("approved"), "row after approval: {}", row.text().await?);
        row.find(Locator::Css("[data-testid=open-version]")).await?.click().await?;
        let sigs = text_where(&c, "[data-testid=signatures]", Duration::from_secs(10), |t| !t.is_empty()).await?;
        ensure!(sigs.contains("Bob Reviewer (bob) — approved for use"), "{sigs}");
        usable(&c).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn browser_rep_cannot_reach_the_mlr_page() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start_with("rep-mlr", false);
    let driver = chromedriver("rep-mlr");
    let c = driver.client().await;
    let rex = w.token("rex").to_string();
    run(c.clone(), "rep-mlr", async {
        sign_in(&c, &base, &rex, "rep").await?;
        ensure!(c.find(Locator::Css("[data-testid=nav-mlr]")).await.is_err(), "a rep's nav links to the MLR page");
        go(&c, &base, "mlr").await?;
        let msg = text_where(&c, "[data-page=mlr] [data-testid=access-denied]", Duration::from_secs(10), |t| !t.is_empty()).await?;
        ensure!(msg.contains("You do not have access"), "{msg}");
        ensure!(c.find(Locator::Css("[data-testid=approve]")).await.is_err(), "a rep sees an approve button");
        shot(&c, "rep-mlr-denied").await;
        // The server is the real gate: the rep's own token cannot approve.
        let r = c
            .execute(
                "return fetch('/api/v1/prompts/objection@1/approve', {method: 'POST', headers: {'Content-Type': 'application/json', \
                 'Authorization': 'Bearer ' + sessionStorage.getItem('onlabel.token')}, body: JSON.stringify({reason: 'x', secret: 'x'})}) \
                 .then(async r => [r.status, await r.text()]);",
                vec![],
            )
            .await?;
        ensure!(r[0] == 403, "a rep's approve answered {r}");
        ensure!(r[1].as_str().unwrap_or("").contains("\"error\""), "error body: {r}");
        // Nor the case queue or compliance pages.
        for page in ["cases", "compliance"] {
            go(&c, &base, page).await?;
            // The page's own container: the previous page's denial stays in
            // the DOM until the hash change has been routed.
            let css = format!("[data-page={page}] [data-testid=access-denied]");
            text_where(&c, &css, Duration::from_secs(10), |t| t.contains("You do not have access")).await?;
        }
        usable(&c).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn browser_rep_drafts_a_follow_up_email_with_references_and_safety_information() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start_with("email", false);
    let driver = chromedriver("email");
    let c = driver.client().await;
    let rex = w.token("rex").to_string();
    run(c.clone(), "email", async {
        sign_in(&c, &base, &rex, "rep").await?;
        find(&c, "[data-testid=nav-email]", Duration::from_secs(5)).await?.click().await?;
        find(&c, "#email-product", Duration::from_secs(10)).await?.select_by_value("zentravia").await?;
        c.find(Locator::Css("#email-hcp")).await?.send_keys("Dr. Shah").await?;
        c.find(Locator::Css("#email-topics")).await?.send_keys("liver monitoring and dosing").await?;
        c.find(Locator::Css("#email-submit")).await?.click().await?;
        let banner = text_where(&c, "[data-testid=draft-banner]", ANSWER_WAIT, |t| !t.is_empty()).await?;
        ensure!(banner.starts_with("DRAFT"), "draft banner {banner:?}");
        let subject = c.find(Locator::Css("[data-testid=email-subject]")).await?.text().await?;
        ensure!(subject.contains("Zentravia") || subject.contains("ZENTRAVIA"), "subject {subject:?}");
        let isi = c.find(Locator::Css("[data-testid=email-isi]")).await?.text().await?;
        ensure!(isi.contains("hepatotoxicity"), "no fair balance in the draft: {isi}");
        let refs = c.find_all(Locator::Css("[data-testid=email-draft] [data-testid=sources] [data-testid=citation-chip]")).await?;
        ensure!(!refs.is_empty(), "the draft lists no references");
        let body = c.find(Locator::Css("[data-testid=email-body]")).await?.text().await?;
        ensure!(body.contains("Dear Dr. Shah") && body.contains("US-ZEN-0001"), "email body: {body}");
        shot(&c, "email-1-draft").await;
        usable(&c).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn browser_compliance_verifies_the_chain_and_finds_an_ask_in_the_audit() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start_with("compliance", false);
    // A rep's question over the API, to find in the audit log.
    let rex = w.token("rex").to_string();
    let answer: serde_json::Value = ureq::post(&format!("{base}/api/v1/ask"))
        .header("Authorization", &format!("Bearer {rex}"))
        .send_json(serde_json::json!({"question": "What are the LFT monitoring rules?", "product": "zentravia"}))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let seq = answer["audit_id"].as_i64().expect("an audit id");
    // And one with markup in it: the UI must show it as text, never as HTML.
    let _ = ureq::post(&format!("{base}/api/v1/ask"))
        .header("Authorization", &format!("Bearer {rex}"))
        .send_json(serde_json::json!({"question": "Is <b id=\"injected\">bold</b> dosing <img id=\"xss\" src=x> in the label?", "product": "zentravia"}))
        .unwrap();
    // Enough records for a second page at 25 a page.
    for _ in 0..24 {
        ureq::post(&format!("{base}/api/v1/ask"))
            .header("Authorization", &format!("Bearer {rex}"))
            .send_json(serde_json::json!({"question": "What are the LFT monitoring rules?", "product": "zentravia"}))
            .unwrap();
    }
    let driver = chromedriver("compliance");
    let c = driver.client().await;
    let (carol, rex2) = (w.token("carol").to_string(), rex.clone());
    run(c.clone(), "compliance", async {
        // A rep has no compliance page.
        sign_in(&c, &base, &rex2, "rep").await?;
        ensure!(c.find(Locator::Css("[data-testid=nav-compliance]")).await.is_err(), "a rep's nav links to compliance");

        sign_in(&c, &base, &carol, "compliance").await?;
        find(&c, "[data-testid=nav-compliance]", Duration::from_secs(5)).await?.click().await?;
        let ok = text_where(&c, "[data-testid=verify-ok]", Duration::from_secs(20), |t| !t.is_empty()).await?;
        ensure!(ok.starts_with("Chain intact"), "verification: {ok}");
        // The page's own first (unfiltered) search comes last in its render:
        // let it land before searching, or it may replace the filtered rows.
        let pager = text_where(&c, "[data-testid=audit-page]", Duration::from_secs(15), |t| !t.is_empty()).await?;
        ensure!(pager.starts_with("Records 1–") && pager.contains(" of "), "audit pager: {pager:?}");
        find(&c, "#audit-action", Duration::from_secs(5)).await?.send_keys("ask").await?;
        c.find(Locator::Css("#audit-actor")).await?.send_keys("rex").await?;
        c.find(Locator::Css("#audit-q")).await?.send_keys("LFT monitoring").await?;
        c.find(Locator::Css("[data-testid=audit-search]")).await?.click().await?;
        let row = find(&c, &format!("[data-testid=audit-row][data-seq='{seq}']"), Duration::from_secs(10)).await?;
        let text = row.text().await?;
        ensure!(text.contains("rex") && text.contains("ask") && text.contains("answer"), "audit row: {text}");

        // Server text is escaped: the markup question shows literally.
        let q = c.find(Locator::Css("#audit-q")).await?;
        q.clear().await?;
        q.send_keys("<b id=").await?;
        c.find(Locator::Css("[data-testid=audit-search]")).await?.click().await?;
        let shown = text_where(&c, "[data-testid=audit-table]", Duration::from_secs(10), |t| t.contains("<b id=")).await?;
        ensure!(c.find(Locator::Css("#injected")).await.is_err() && c.find(Locator::Css("#xss")).await.is_err(), "server text became HTML: {shown}");
        shot(&c, "compliance-1-audit").await;
        usable(&c).await?;

        // Every record is reachable: 25 a page, "Older" shows the rest.
        for id in ["#audit-action", "#audit-actor", "#audit-q"] {
            c.find(Locator::Css(id)).await?.clear().await?;
        }
        c.find(Locator::Css("#audit-limit")).await?.select_by_value("25").await?;
        c.find(Locator::Css("[data-testid=audit-search]")).await?.click().await?;
        let first = text_where(&c, "[data-testid=audit-page]", Duration::from_secs(10), |t| t.starts_with("Records 1–25 of ")).await?;
        let total: usize = first.trim_start_matches("Records 1–25 of ").split(' ').next().unwrap_or("").parse()?;
        ensure!(total > 25, "{first}");
        let rows = c.find_all(Locator::Css("[data-testid=audit-row]")).await?.len();
        ensure!(rows == 25, "{rows} rows on a page of 25");
        c.find(Locator::Css("[data-testid=audit-next]")).await?.click().await?;
        let want = format!("Records 26–{total} of {total}");
        text_where(&c, "[data-testid=audit-page]", Duration::from_secs(10), |t| t.starts_with(&want)).await?;
        let oldest = c.find_all(Locator::Css("[data-testid=audit-row][data-seq='1']")).await?.len();
        ensure!(oldest == 1, "the first record is not on the last page");
        ensure!(c.find(Locator::Css("[data-testid=audit-next]")).await?.attr("disabled").await?.is_some(), "'Older' past the last page");
        c.find(Locator::Css("[data-testid=audit-prev]")).await?.click().await?;
        text_where(&c, "[data-testid=audit-page]", Duration::from_secs(10), |t| t.starts_with("Records 1–25 of ")).await?;
        // A double click on Search shows one table, not two.
        c.execute("const b = document.querySelector('[data-testid=audit-search]'); b.click(); b.click();", vec![]).await?;
        find(&c, "[data-testid=audit-page]", Duration::from_secs(10)).await?;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let tables = c.find_all(Locator::Css("[data-testid=audit-table]")).await?.len();
        ensure!(tables == 1, "{tables} result tables after a double click on Search");
        Ok(())
    })
    .await;
}
