//! Issue 21, point 1, in a real browser (Debian's Chromium over WebDriver,
//! the helpers of [`crate::browser`]) against `onlabel serve`:
//!
//! - (1) a rep signs in with a password and stays signed in in a second tab
//!   (same browser, same cookie jar: the tab asks `GET
//!   /api/v1/sessions/current` and needs no sign-in); the cookie is
//!   HttpOnly (the page's scripts cannot read it); "Sign out everywhere"
//!   signs both tabs out;
//! - (2) the session cookie is refused after sign-out and after the idle
//!   timeout (a server with `--session-idle 2`), both in the page and when
//!   the old cookie value is replayed from outside;
//! - (3) a state-changing request made from the page with the cookie and
//!   no `X-CSRF-Token` is refused (403 `csrf`); with the page's token it
//!   is answered.
//!
//! Screenshots: the sign-in page and the signed-in home at 1280×900 and
//! 390×844 (`sessions-signin-*`, `sessions-home-*`).

use std::time::Duration;

use anyhow::{ensure, Context};
use fantoccini::{Client, Locator};

use crate::browser::{chromedriver, find, run, shots, sign_in_password, signin_card, text_where, turn, usable, world, World};

const PW: &str = "violet tram orbits quietly";

/// Gives `ids` the password [`PW`] (before the server starts).
fn passwords(w: &World, ids: &[&str]) {
    let store = onlabel::store::Store::open(&w.data).unwrap();
    let users = onlabel::users::Users::new(&store);
    let admin = users.get("root").unwrap().unwrap();
    for id in ids {
        users.set_password(id, PW, &admin).unwrap();
    }
}

/// `fetch(path)` from the page (with the browser's cookies, and the given
/// headers); returns `[status, body text]`.
async fn page_fetch(c: &Client, method: &str, path: &str, headers: serde_json::Value, body: Option<&str>) -> anyhow::Result<(u64, String)> {
    let r = c
        .execute_async(
            "const [method, path, headers, body, done] = arguments; \
             fetch(path, {method, headers, body: body === null ? undefined : body}) \
               .then(async r => done([r.status, await r.text()])) \
               .catch(e => done([0, String(e)]));",
            vec![method.into(), path.into(), headers, body.map_or(serde_json::Value::Null, Into::into)],
        )
        .await?;
    Ok((r[0].as_u64().unwrap_or(0), r[1].as_str().unwrap_or_default().to_string()))
}

/// The `onlabel_session` cookie the browser holds (WebDriver sees HttpOnly ones).
async fn session_cookie(c: &Client) -> anyhow::Result<Option<String>> {
    Ok(c.get_all_cookies().await?.into_iter().find(|k| k.name() == "onlabel_session").map(|k| k.value().to_string()))
}

/// `GET base/api/v1/me` from outside the browser with `cookie`: (status, body).
fn replay(base: &str, cookie: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(&format!("{base}/api/v1/me")).header("Cookie", &format!("onlabel_session={cookie}")).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default())
}

#[tokio::test]
async fn browser_sessions_password_sign_in_holds_across_tabs_and_sign_out_everywhere_ends_it() {
    let _turn = turn().await;
    let mut w = world();
    passwords(&w, &["rex"]);
    let base = w.start_with("sessions-tabs", false);
    let driver = chromedriver("sessions-tabs");
    let c = driver.client().await;
    run(c.clone(), "sessions-tabs", async {
        c.goto(&format!("{base}/#/ask")).await?;
        signin_card(&c, Duration::from_secs(10), false).await?;
        ensure!(c.find(Locator::Css("#user-id")).await?.is_displayed().await?, "the password form is the default");
        ensure!(!c.find(Locator::Css("#token")).await?.is_displayed().await?, "the token form is the secondary option, folded");
        usable(&c).await?;
        shots(&c, "sessions-signin").await?;
        // A wrong password: a clear message, no session.
        c.find(Locator::Css("#user-id")).await?.send_keys("rex").await?;
        c.find(Locator::Css("#password")).await?.send_keys("not the password at all").await?;
        c.find(Locator::Css("#password-submit")).await?.click().await?;
        text_where(&c, "[data-testid=signin-error]", Duration::from_secs(10), |t| t.contains("wrong")).await?;
        ensure!(session_cookie(&c).await?.is_none(), "a failed sign-in sets no cookie");

        sign_in_password(&c, &base, "rex", PW, "rep").await?;
        let cookie = session_cookie(&c).await?.context("no session cookie after sign-in")?;
        let all = c.get_all_cookies().await?;
        let k = all.iter().find(|k| k.name() == "onlabel_session").unwrap();
        ensure!(k.http_only() == Some(true), "the cookie is not HttpOnly: {k:?}");
        let seen = c.execute("return document.cookie;", vec![]).await?;
        ensure!(!seen.as_str().unwrap_or_default().contains(&cookie), "page scripts can read the session cookie");
        ensure!(c.find(Locator::Css("[data-testid=sign-out-everywhere]")).await?.is_displayed().await?, "no 'Sign out everywhere'");
        usable(&c).await?;
        shots(&c, "sessions-home").await?;
        let first = c.window().await?;

        // A second tab: signed in without a form.
        let tab = c.new_window(true).await?;
        c.switch_to_window(tab.handle.clone()).await?;
        c.goto(&format!("{base}/#/email")).await?;
        text_where(&c, "[data-testid=who-role]", Duration::from_secs(10), |t| t == "rep").await?;
        ensure!(!c.find(Locator::Css("#signin")).await?.is_displayed().await?, "the second tab asked to sign in");
        let name = text_where(&c, "[data-testid=who-name]", Duration::from_secs(5), |t| !t.is_empty()).await?;
        ensure!(name.contains("Rex Rep"), "{name}");

        // Sign out everywhere from the second tab: both tabs are signed out.
        c.find(Locator::Css("[data-testid=sign-out-everywhere]")).await?.click().await?;
        text_where(&c, "[data-testid=signin-error]", Duration::from_secs(10), |t| t.contains("Signed out everywhere")).await?;
        c.switch_to_window(first).await?;
        c.refresh().await?;
        find(&c, "#password-form", Duration::from_secs(10)).await?;
        text_where(&c, "#signin", Duration::from_secs(10), |t| t.contains("Sign in")).await?;
        let (status, body) = replay(&base, &cookie);
        ensure!(status == 401 && body.contains("sign out everywhere"), "replayed cookie after sign-out everywhere: {status} {body}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn browser_sessions_the_cookie_is_refused_after_sign_out_and_after_the_idle_timeout() {
    let _turn = turn().await;
    let mut w = world();
    passwords(&w, &["mia"]);
    let base = w.start_serving_with("sessions-timeout", &["--session-idle", "2", "--session-absolute", "600"]);
    let driver = chromedriver("sessions-timeout");
    let c = driver.client().await;
    run(c.clone(), "sessions-timeout", async {
        // Sign out: the server ends the session; the old cookie is refused.
        sign_in_password(&c, &base, "mia", PW, "medical").await?;
        let cookie = session_cookie(&c).await?.context("no session cookie")?;
        ensure!(replay(&base, &cookie).0 == 200, "the cookie works before sign-out");
        c.find(Locator::Css("#sign-out")).await?.click().await?;
        // The card shows once sign-out's DELETE has returned.
        signin_card(&c, Duration::from_secs(10), false).await?;
        let (status, _) = page_fetch(&c, "GET", "/api/v1/me", serde_json::json!({}), None).await?;
        ensure!(status == 401, "the page is still signed in after sign-out: {status}");
        let (status, body) = replay(&base, &cookie);
        ensure!(status == 401 && body.contains("signed out"), "the old cookie after sign-out: {status} {body}");

        // Idle: 2 s without a request ends the session.
        sign_in_password(&c, &base, "mia", PW, "medical").await?;
        let cookie = session_cookie(&c).await?.context("no session cookie")?;
        // The ask page goes on fetching (products, medical requests, recent
        // conversations) after the role shows, and each request is activity:
        // let it settle, then stay idle for twice the 2 s timeout.
        find(&c, "#ask-product", Duration::from_secs(10)).await?;
        tokio::time::sleep(Duration::from_millis(4000)).await;
        let (status, body) = replay(&base, &cookie);
        ensure!(status == 401 && body.contains("without activity"), "the cookie after the idle timeout: {status} {body}");
        c.refresh().await?;
        signin_card(&c, Duration::from_secs(10), false).await?;
        ensure!(c.find(Locator::Css("#user-id")).await?.is_displayed().await?, "the page did not ask to sign in again");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn browser_sessions_a_state_changing_request_without_the_csrf_token_is_refused() {
    let _turn = turn().await;
    let mut w = world();
    passwords(&w, &["rex"]);
    let base = w.start_with("sessions-csrf", false);
    let driver = chromedriver("sessions-csrf");
    let c = driver.client().await;
    run(c.clone(), "sessions-csrf", async {
        sign_in_password(&c, &base, "rex", PW, "rep").await?;
        let ask = r#"{"question": "What are the LFT monitoring rules?", "product": "zentravia"}"#;
        // The cookie alone (what a forged request would carry): refused.
        let (status, body) = page_fetch(&c, "POST", "/api/v1/ask", serde_json::json!({"Content-Type": "application/json"}), Some(ask)).await?;
        ensure!(status == 403 && body.contains("\"csrf\""), "POST with the cookie and no X-CSRF-Token: {status} {body}");
        let (status, _) = page_fetch(&c, "POST", "/api/v1/sessions/end-all", serde_json::json!({}), None).await?;
        ensure!(status == 403, "sign out everywhere without the token: {status}");
        // A GET needs no token.
        let (status, cur) = page_fetch(&c, "GET", "/api/v1/sessions/current", serde_json::json!({}), None).await?;
        ensure!(status == 200, "{status} {cur}");
        let csrf = serde_json::from_str::<serde_json::Value>(&cur)?["csrf"].as_str().unwrap_or_default().to_string();
        // With the session's token: answered.
        let (status, body) =
            page_fetch(&c, "POST", "/api/v1/ask", serde_json::json!({"Content-Type": "application/json", "X-CSRF-Token": csrf}), Some(ask)).await?;
        ensure!(status == 200, "POST with the token: {status} {body}");
        // The UI itself sends the token: asking from the page works.
        let product = find(&c, "#ask-product", Duration::from_secs(10)).await?;
        product.select_by_value("zentravia").await?;
        c.find(Locator::Css("#ask-question")).await?.send_keys("What are the LFT monitoring rules?").await?;
        c.find(Locator::Css("#ask-submit")).await?.click().await?;
        let text = text_where(&c, "#answer-text", Duration::from_secs(60), |t| !t.trim().is_empty()).await?;
        ensure!(!text.contains("csrf"), "{text}");
        Ok(())
    })
    .await;
}
