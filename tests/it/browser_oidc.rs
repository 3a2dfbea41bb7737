//! Single sign-on in a real browser (issue 21, point 2 and the OIDC step-up
//! of point 3): headless Chromium signs in through the loopback OpenID
//! provider (tests/oidc/provider.mjs, the `oidc-provider` package) as a
//! person whose group maps to `mlr_reviewer`, lands in OnLabel signed in,
//! then re-authenticates at the provider (`prompt=login`, `max_age=0`) and
//! signs a prompt version's approval with that step-up.
//!
//! `onlabel serve` runs as a process with a config file whose `[oidc]`
//! table points at the provider (the client secret from
//! `ONLABEL_OIDC_CLIENT_SECRET`, as an operator would keep it).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use fantoccini::Locator;

use crate::browser::{chromedriver, demo_index, find, free_port, model, run, screenshots, shots, text_where, turn, url_where, usable, wait_for_port, world};
use crate::harness::bin;
use crate::oidc::{account, Provider, CLIENT_ID, CLIENT_SECRET};

/// A server process, killed when the test ends.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `onlabel --config FILE serve` on `port` with single sign-on at `provider`.
fn serve_with_sso(name: &str, data: &Path, repo: &Path, port: u16, provider: &Provider) -> (Guarded, String) {
    let config = data.parent().unwrap().join("onlabel-sso.toml");
    std::fs::write(
        &config,
        format!(
            "[oidc]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nredirect_url = \"http://127.0.0.1:{port}/auth/oidc/callback\"\n\n\
             [[oidc.roles]]\ngroup = \"onlabel-mlr\"\nrole = \"mlr_reviewer\"\n\n[[oidc.roles]]\ngroup = \"onlabel-reps\"\nrole = \"rep\"\n",
            provider.issuer
        ),
    )
    .unwrap();
    let log = std::fs::File::create(screenshots().join(format!("{name}-server.log"))).unwrap();
    let mut child = Command::new(bin())
        .current_dir(repo)
        .env_remove("ONLABEL_TOKEN")
        .env("ONLABEL_ROOT", repo)
        .env("ONLABEL_OIDC_CLIENT_SECRET", CLIENT_SECRET)
        .arg("--data")
        .arg(data)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .arg("--index")
        .arg(demo_index())
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--extractive")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting onlabel serve");
    wait_for_port(port, "onlabel serve", &mut child, Duration::from_secs(120));
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while ureq::get(&format!("{base}/readyz")).call().is_err() {
        assert!(start.elapsed() < Duration::from_secs(120), "{base}/readyz never answered 200");
        std::thread::sleep(Duration::from_millis(200));
    }
    (Guarded(child), base)
}

/// The provider's login form: fills it and submits.
async fn idp_login(c: &fantoccini::Client, user: &str, password: &str) -> anyhow::Result<()> {
    find(c, "#login", Duration::from_secs(15)).await?.clear().await?;
    c.find(Locator::Css("#login")).await?.send_keys(user).await?;
    c.find(Locator::Css("#password")).await?.send_keys(password).await?;
    c.find(Locator::Css("#sign-in")).await?.click().await?;
    Ok(())
}

#[tokio::test]
async fn browser_oidc_sign_in_then_step_up_to_approve() {
    let _turn = turn().await;
    let w = world();
    // alice proposes and submits objection@1; compliance records its eval
    // evidence (the command line: these are not the UI under test).
    let out = w.prompts("alice", &["propose", "objection", "--template", "prompts/objection.j2", "--temperature", "0", "--max-tokens", "80"]);
    assert_eq!(out.trim(), "objection@1");
    w.prompts("alice", &["submit", "objection@1"]);
    let idx = demo_index();
    let m = model();
    w.prompts("carol", &["record-eval", "objection@1", "--suite", "evals/mini.jsonl", "--index", idx.to_str().unwrap(), "--as-of", "2026-11-23", "--model", m.to_str().unwrap()]);

    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/auth/oidc/callback");
    let provider = Provider::start(w.data.parent().unwrap(), &redirect, &[account("amy", "Amy Reviewer", &["staff", "onlabel-mlr"])]);
    let (_server, base) = serve_with_sso("oidc", &w.data, &w.repo, port, &provider);
    let driver = chromedriver("oidc");
    let c = driver.client().await;
    let data = w.data.clone();
    run(c.clone(), "oidc", async {
        // The sign-in page offers single sign-on first.
        c.goto(&format!("{base}/#/ask")).await?;
        let sso = find(&c, "[data-testid=sso-signin]", Duration::from_secs(10)).await?;
        ensure!(sso.text().await? == "Sign in with single sign-on");
        shots(&c, "oidc-1-signin").await?;
        usable(&c).await?;
        sso.click().await?;

        // The identity provider's own form (the password is checked there).
        find(&c, "#login", Duration::from_secs(15)).await?;
        ensure!(c.current_url().await?.as_str().starts_with(&provider.issuer), "at the provider");
        shots(&c, "oidc-2-idp-login").await?;
        idp_login(&c, "amy", "wrong password").await?;
        text_where(&c, "#error", Duration::from_secs(10), |t| t.contains("Wrong user or password")).await?;
        idp_login(&c, "amy", "correct horse battery staple").await?;

        // Back in OnLabel, signed in as a new mlr_reviewer.
        text_where(&c, "[data-testid=who-role]", Duration::from_secs(20), |t| t == "mlr_reviewer").await?;
        let who = c.find(Locator::Css("#who-name")).await?.text().await?;
        ensure!(who.contains("Amy Reviewer (amy)"), "{who}");
        url_where(&c, Duration::from_secs(10), |u| u.starts_with(&base)).await.context("back on OnLabel")?;
        shots(&c, "oidc-3-signed-in").await?;

        // The MLR page lists alice's version in review; amy opens it.
        c.goto(&format!("{base}/#/mlr")).await?;
        let row = find(&c, "tr[data-version='objection@1']", Duration::from_secs(10)).await?;
        ensure!(row.text().await?.contains("in review"), "row: {}", row.text().await?);
        row.find(Locator::Css("[data-testid=open-version]")).await?.click().await?;

        // A single sign-on session signs after a fresh re-authentication: the
        // dialog's step-up goes to the provider with prompt=login&max_age=0,
        // which asks for the password again although amy is signed in there.
        let step_up = find(&c, "[data-testid=sign-step-up]", Duration::from_secs(10)).await?;
        ensure!(step_up.attr("href").await?.unwrap_or_default().starts_with("/auth/oidc/login?step_up=1"));
        step_up.click().await?;
        let reauth = text_where(&c, "#reauth", Duration::from_secs(15), |t| !t.is_empty()).await?;
        ensure!(reauth.contains("enter your password again"), "{reauth}");
        let url = c.current_url().await?.to_string();
        ensure!(url.starts_with(&provider.issuer), "{url}");
        shots(&c, "oidc-4-step-up").await?;
        idp_login(&c, "amy", "correct horse battery staple").await?;

        // Back on the version; she signs with a reason and no password.
        url_where(&c, Duration::from_secs(20), |u| u.starts_with(&base) && u.contains("/#/mlr/objection"))
            .await
            .context("back on the version after the step-up")?;
        find(&c, "[data-testid=sign-reason]", Duration::from_secs(15)).await?.send_keys("Matches MLR-2026-114").await?;
        c.find(Locator::Css("[data-testid=sign-ack]")).await?.click().await?;
        shots(&c, "oidc-5-signing").await?;
        c.find(Locator::Css("[data-testid=approve]")).await?.click().await?;
        let signed = text_where(&c, "[data-testid=sign-ok]", Duration::from_secs(20), |t| !t.is_empty()).await?;
        ensure!(signed.contains("objection@1 approved") && signed.contains("Amy Reviewer"), "{signed}");
        shots(&c, "oidc-6-signed").await?;

        Ok(())
    })
    .await;
    // On record: amy's first sign-in created her, her step-up, her signature.
    let store = onlabel::store::Store::open(&data).unwrap();
    let actions: Vec<(String, String)> = store
        .with_conn(|c| {
            let mut st = c.prepare("SELECT actor, action FROM audit_log ORDER BY seq")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .unwrap();
    for want in ["user_added", "login", "session_started", "step_up"] {
        assert!(actions.iter().any(|(who, a)| who == "amy" && a == want), "amy's {want} in {actions:?}");
    }
    // The step-up was consumed by the one signature.
    let left: i64 = store
        .with_conn(|c| c.query_row("SELECT count(*) FROM sessions WHERE user_id = 'amy' AND step_up_at IS NOT NULL", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(left, 0, "the step-up signs once");
    let signer: String = store
        .with_conn(|c| c.query_row("SELECT signer_id FROM prompt_signatures ORDER BY id DESC LIMIT 1", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(signer, "amy");
}
