//! Issue 20 browser tests (cases): real Chromium against `onlabel serve`, with the
//! shared helpers of [`crate::browser`]; screenshots at 1280×900 and 390×844
//! through [`crate::browser::shots`].
//!
//! - a rep's AE question opens a PV case; the rep finds it under "My
//!   reports", fills the AE intake (pre-filled, the minimum-criteria check
//!   live), and Medical sees the intake, the "valid case" check and the
//!   day-0 deadlines on the case, with links to the audit records;
//! - an owner that does not exist is refused by the server (400), the page
//!   offers only medical users, and a closed case is reopened with a reason.

use std::time::Duration;

use anyhow::ensure;
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

use crate::browser::{chromedriver, find, run, shots, sign_in, text_where, turn, usable, world};

/// An HTTP client that hands back 4xx answers instead of failing on them.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(120))).build().into()
}

/// `POST {base}{path}` as `token`: (status, JSON body).
fn post(base: &str, token: &str, path: &str, body: Value) -> (u16, Value) {
    let mut r = agent().post(&format!("{base}{path}")).header("Authorization", &format!("Bearer {token}")).send_json(body).unwrap();
    let status = r.status().as_u16();
    (status, r.body_mut().read_json().unwrap_or(Value::Null))
}

/// A PV case the way a rep opens one: an adverse event asked on the ask route.
fn ae_case(base: &str, rex: &str) -> String {
    let (status, a) = post(
        base,
        rex,
        "/api/v1/ask",
        json!({"question": "Dr. Lee's patient's ALT jumped to 6 times normal three weeks after starting ZENTRAVIA.", "product": "zentravia", "hcp": "Dr. Lee"}),
    );
    assert_eq!(status, 200, "{a}");
    let id = a["case_id"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("PV-"), "the AE question opened no PV case: {a}");
    id
}

async fn value(c: &Client, css: &str) -> anyhow::Result<String> {
    Ok(c.find(Locator::Css(css)).await?.prop("value").await?.unwrap_or_default())
}

async fn type_into(c: &Client, css: &str, text: &str) -> anyhow::Result<()> {
    let e = c.find(Locator::Css(css)).await?;
    e.clear().await?;
    e.send_keys(text).await?;
    Ok(())
}

#[tokio::test]
async fn browser_cases_ae_intake_is_filled_by_the_rep_and_shown_on_the_pv_case() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start_with("cases-intake", false);
    let (rex, mia, root) = (w.token("rex").to_string(), w.token("mia").to_string(), w.token("root").to_string());
    let case_id = ae_case(&base, &rex);
    let driver = chromedriver("cases-intake");
    let c = driver.client().await;
    run(c.clone(), "cases-intake", async {
        // The rep's "My reports": the case with its status.
        sign_in(&c, &base, &rex, "rep").await?;
        find(&c, "[data-testid=nav-reports]", Duration::from_secs(5)).await?.click().await?;
        let row = find(&c, &format!("tr[data-testid=report-row][data-case='{case_id}']"), Duration::from_secs(10)).await?;
        let text = row.text().await?;
        ensure!(text.contains("new") && text.contains("ALT jumped"), "report row: {text}");
        shots(&c, "reports-list").await?;
        usable(&c).await?;

        // The intake form, pre-filled from the rep's words.
        row.find(Locator::Css("[data-testid=open-report]")).await?.click().await?;
        text_where(&c, "[data-testid=intake-question]", Duration::from_secs(10), |t| t.contains("ALT jumped")).await?;
        ensure!(value(&c, "#intake-reporter-name").await? == "Dr. Lee", "reporter not pre-filled");
        ensure!(value(&c, "#intake-product").await?.eq_ignore_ascii_case("zentravia"), "suspect product not pre-filled");
        ensure!(c.find(Locator::Css("[data-testid=intake-prefilled]")).await.is_ok(), "no pre-filled notice");
        let clock = text_where(&c, "[data-testid=day0]", Duration::from_secs(5), |t| !t.is_empty()).await?;
        ensure!(clock.contains("24 hours") && clock.contains("15 calendar days"), "day-0 clock: {clock}");
        // The minimum-criteria check updates as the form is filled: the patient is missing until given.
        let check = text_where(&c, "[data-testid=valid-case]", Duration::from_secs(5), |t| !t.is_empty()).await?;
        ensure!(check.contains("Not yet a valid case") && check.contains("Identifiable patient — missing"), "check before: {check}");
        type_into(&c, "#intake-patient-identifier", "J.D.").await?;
        type_into(&c, "#intake-patient-age", "62").await?;
        c.find(Locator::Css("#intake-patient-sex")).await?.select_by_value("female").await?;
        type_into(&c, "#intake-reporter-contact", "lee@clinic.example").await?;
        type_into(&c, "#intake-event", "ALT 6x ULN three weeks after starting; jaundice").await?;
        c.find(Locator::Css("#intake-crit-hospitalisation")).await?.click().await?;
        c.find(Locator::Css("#intake-outcome")).await?.select_by_value("recovering").await?;
        let check = text_where(&c, "[data-testid=valid-case]", Duration::from_secs(5), |t| t.starts_with("Valid case")).await?;
        ensure!(!check.contains("missing"), "check after: {check}");
        // A bad onset date is refused by the server, naming the field.
        type_into(&c, "#intake-onset", "2026-02-30").await?;
        c.find(Locator::Css("[data-testid=intake-save]")).await?.click().await?;
        let err = text_where(&c, "[data-testid=intake-error]", Duration::from_secs(10), |t| !t.is_empty()).await?;
        ensure!(err.contains("event.onset_date") && err.contains("is not a date"), "error: {err}");
        type_into(&c, "#intake-onset", "2026-11-10").await?;
        shots(&c, "reports-intake").await?;
        usable(&c).await?;
        c.find(Locator::Css("[data-testid=intake-save]")).await?.click().await?;
        let saved = text_where(&c, "[data-testid=intake-saved]", Duration::from_secs(10), |t| !t.is_empty()).await?;
        ensure!(saved.contains("version 1") && saved.contains(&case_id), "saved: {saved}");

        // Medical sees the intake, the valid-case check and the day-0 deadlines.
        sign_in(&c, &base, &mia, "medical").await?;
        find(&c, "[data-testid=nav-cases]", Duration::from_secs(5)).await?.click().await?;
        let row = find(&c, &format!("tr[data-case='{case_id}']"), Duration::from_secs(10)).await?;
        let counts = text_where(&c, "[data-testid=case-counts]", Duration::from_secs(5), |t| t.contains("New")).await?;
        ensure!(counts.contains("All 1") && counts.contains("New 1"), "counts: {counts}");
        shots(&c, "cases-queue").await?;
        row.find(Locator::Css("[data-testid=open-case]")).await?.click().await?;
        let intake = text_where(&c, "[data-testid=case-intake]", Duration::from_secs(10), |t| t.contains("J.D.")).await?;
        ensure!(
            intake.contains("62 years") && intake.contains("Female") && intake.contains("lee@clinic.example") && intake.contains("Hospitalisation") && intake.contains("2026-11-10") && intake.contains("Recovering"),
            "intake on the case: {intake}"
        );
        let check = c.find(Locator::Css("[data-testid=valid-case]")).await?;
        ensure!(check.attr("data-valid").await?.as_deref() == Some("yes"), "the case is not shown as valid");
        ensure!(check.text().await?.starts_with("Valid case"), "check: {}", check.text().await?);
        let internal = c.find(Locator::Css("[data-testid=day0-internal]")).await?.text().await?;
        let regulatory = c.find(Locator::Css("[data-testid=day0-regulatory]")).await?.text().await?;
        ensure!(internal.contains("24 hours, serious") && internal.contains("in "), "internal: {internal}");
        ensure!(regulatory.contains("15 calendar days") && regulatory.contains("in 14 d"), "regulatory: {regulatory}");
        // Local time, UTC on hover.
        let opened = c.find(Locator::Css("[data-testid=case-opened]")).await?;
        ensure!(opened.attr("title").await?.unwrap_or_default().ends_with("Z (UTC)"), "no UTC title on the opening time");
        // The rep's ask and the case's audit records by number: Medical
        // quotes them (the records themselves are compliance's and admin's).
        let ask = c.find(Locator::Css("[data-testid=case-ask-link]")).await?;
        ensure!(ask.attr("href").await?.is_none(), "Medical is linked to an audit record it may not open");
        ensure!(ask.text().await?.starts_with("audit record #"), "ask reference text");
        let ask_seq = ask.attr("data-seq").await?.unwrap_or_default();
        ensure!(c.find(Locator::Css("[data-testid=case-audit-link]")).await.is_ok(), "no reference to the case_opened record");
        let history = c.find(Locator::Css("[data-testid=case-history]")).await?.text().await?;
        ensure!(history.contains("intake v1"), "history: {history}");
        shots(&c, "cases-detail").await?;
        usable(&c).await?;

        // An admin follows the links: the ask's record, then every record of the case.
        sign_in(&c, &base, &root, "admin").await?;
        c.goto(&format!("{base}/#/cases/{case_id}")).await?;
        let link = find(&c, "a[data-testid=case-ask-link]", Duration::from_secs(10)).await?;
        ensure!(link.attr("href").await?.unwrap_or_default() == format!("#/compliance/record/{ask_seq}"), "ask link");
        link.click().await?;
        let record = find(&c, "[data-testid=audit-record]", Duration::from_secs(10)).await?;
        ensure!(record.attr("data-seq").await?.unwrap_or_default() == ask_seq, "the ask link opened another record");
        text_where(&c, "[data-testid=audit-record]", Duration::from_secs(5), |t| t.contains("ALT jumped")).await?;
        c.back().await?;
        find(&c, "a[data-testid=case-audit-all]", Duration::from_secs(10)).await?.click().await?;
        let pager = text_where(&c, "[data-testid=audit-page]", Duration::from_secs(15), |t| t.starts_with("Records 1–")).await?;
        ensure!(value(&c, "#audit-case").await? == case_id, "the case filter is not filled in");
        let rows = c.find_all(Locator::Css("[data-testid=audit-row]")).await?;
        for r in &rows {
            let t = r.text().await?;
            ensure!(t.contains(&case_id), "a record of another case in the case's records: {t} ({pager})");
        }
        ensure!(rows.len() >= 3, "{} records for the case ({pager})", rows.len());
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn browser_cases_an_owner_that_does_not_exist_is_refused_and_a_case_is_reopened() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start_with("cases-owner", false);
    let (rex, mia) = (w.token("rex").to_string(), w.token("mia").to_string());
    let case_id = ae_case(&base, &rex);
    // The server refuses an owner who is not an enabled medical user.
    for (owner, why) in [("nobody", "there is no such user"), ("rex", "role is rep"), ("root", "role is admin")] {
        let (status, body) = post(&base, &mia, &format!("/api/v1/cases/{case_id}/assign"), json!({"owner": owner}));
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("case_owner_invalid")), "{owner}: {body}");
        assert!(body["error"]["message"].as_str().unwrap_or_default().contains(why), "{owner}: {body}");
    }
    let driver = chromedriver("cases-owner");
    let c = driver.client().await;
    run(c.clone(), "cases-owner", async {
        sign_in(&c, &base, &mia, "medical").await?;
        // A link to the case opens it (the address carries the case).
        c.goto(&format!("{base}/#/cases/{case_id}")).await?;
        let owner = find(&c, "[data-testid=assign-owner]", Duration::from_secs(10)).await?;
        let offered = c
            .execute("return [...document.querySelectorAll('[data-testid=assign-owner] option')].map(o => o.value).filter(v => v);", vec![])
            .await?;
        ensure!(offered == json!(["mia"]), "the owner choices are not exactly the medical users: {offered}");
        ensure!(owner.prop("tagName").await?.as_deref() == Some("SELECT"), "the owner is not a choice");
        owner.select_by_value("mia").await?;
        c.find(Locator::Css("[data-testid=assign]")).await?.click().await?;
        text_where(&c, "[data-testid=case-owner]", Duration::from_secs(10), |t| t == "mia").await?;
        // Work it to closed, then reopen it with a reason.
        for step in ["triage", "start"] {
            find(&c, &format!("[data-testid=case-{step}]"), Duration::from_secs(10)).await?.click().await?;
            text_where(&c, "[data-testid=case-ok]", Duration::from_secs(10), |t| t.contains(step)).await?;
        }
        find(&c, "[data-testid=resolution]", Duration::from_secs(10)).await?.send_keys("Entered in the safety database.").await?;
        c.find(Locator::Css("[data-testid=case-resolve]")).await?.click().await?;
        text_where(&c, "[data-testid=case-detail-state]", Duration::from_secs(10), |t| t == "closed").await?;
        find(&c, "[data-testid=reopen-reason]", Duration::from_secs(10)).await?.send_keys("Follow-up: discharge letter received.").await?;
        shots(&c, "cases-closed").await?;
        c.find(Locator::Css("[data-testid=case-reopen]")).await?.click().await?;
        text_where(&c, "[data-testid=case-detail-state]", Duration::from_secs(10), |t| t == "in progress").await?;
        let history = c.find(Locator::Css("[data-testid=case-history]")).await?.text().await?;
        ensure!(history.contains("reopened closed → in_progress — Follow-up: discharge letter received."), "history: {history}");
        // Search narrows the queue.
        let q = c.find(Locator::Css("#cases-q")).await?;
        q.send_keys("no such text").await?;
        c.find(Locator::Css("[data-testid=cases-refresh]")).await?.click().await?;
        find(&c, "[data-testid=no-cases]", Duration::from_secs(10)).await?;
        q.clear().await?;
        q.send_keys(&case_id).await?;
        c.find(Locator::Css("[data-testid=cases-refresh]")).await?.click().await?;
        find(&c, &format!("tr[data-case='{case_id}']"), Duration::from_secs(10)).await?;
        usable(&c).await?;
        Ok(())
    })
    .await;
}
