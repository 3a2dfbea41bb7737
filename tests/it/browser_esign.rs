//! Issue 21 browser tests (esign): real Chromium against `onlabel serve`,
//! with the shared helpers of [`crate::browser`]; screenshots at 1280×900
//! and 390×844 through [`crate::browser::shots`].
//!
//! - (4) a rep cannot see another rep's case: it is not in their "My
//!   reports", and the address of its report page (`#/reports/ID`) says
//!   plainly that there is no such report among theirs;
//! - (3) an MLR reviewer signed in with a password approves a prompt
//!   version after re-entering the password, and the 21 CFR 11.50
//!   manifestation (printed name, date and time in UTC and local time,
//!   meaning, reason, the record's SHA-256) appears on the page and on the
//!   signature's audit record.

use std::time::Duration;

use anyhow::ensure;
use chrono::Utc;
use fantoccini::Locator;
use onlabel::cases::{CaseKind, CaseStore, NewCase};

use crate::browser::{chromedriver, find, go, run, shots, sign_in, text_where, turn, usable, world};
use crate::harness::add_user;

fn open_case(data: &std::path::Path, reporter: &str, question: &str) -> String {
    CaseStore::open(data)
        .unwrap()
        .open_case(NewCase {
            kind: CaseKind::Pharmacovigilance,
            product: Some("zentravia".into()),
            question: question.into(),
            reporter: reporter.into(),
            hcp: Some("Dr. Lee".into()),
            patient: Some("a 62-year-old woman".into()),
            suspect_product: Some("zentravia".into()),
            event: Some("rash".into()),
            flags_json: "[]".into(),
            now: Utc::now(),
        })
        .unwrap()
        .id
}

#[tokio::test]
async fn browser_esign_a_rep_cannot_see_another_reps_case() {
    let _turn = turn().await;
    let mut w = world();
    let root_token = w.token("root").to_string();
    add_user(&w.data, Some(("root", &root_token)), "rae", "Rae Rep", "rep");
    let own = open_case(&w.data, "rex", "My patient got a rash two weeks after starting Zentravia.");
    let other = open_case(&w.data, "rae", "Her patient fainted after the second dose.");
    let base = w.start_with("esign-own", false);
    let driver = chromedriver("esign-own");
    let c = driver.client().await;
    let rex = w.token("rex").to_string();
    run(c.clone(), "esign-own", async {
        sign_in(&c, &base, &rex, "rep").await?;
        go(&c, &base, "reports").await?;
        find(&c, &format!("[data-testid=report-row][data-case='{own}']"), Duration::from_secs(10)).await?;
        let rows = c.find_all(Locator::Css("[data-testid=report-row]")).await?;
        ensure!(rows.len() == 1, "rex sees {} reports", rows.len());
        let list = c.find(Locator::Css("[data-testid=reports]")).await?.text().await?;
        ensure!(!list.contains(&other) && !list.contains("fainted"), "rae's case is in rex's reports: {list}");
        shots(&c, "esign-my-reports").await?;

        // The address of rae's report: a plain "not found", nothing of her case.
        go(&c, &base, &format!("reports/{other}")).await?;
        let msg = text_where(&c, "[data-testid=report-not-found]", Duration::from_secs(10), |t| !t.is_empty()).await?;
        ensure!(msg.contains("Report not found") && msg.contains(&format!("no report {other} among the reports you made")), "{msg}");
        let page = c.find(Locator::Css("#view")).await?.text().await?;
        ensure!(!page.contains("fainted") && !page.contains("rae"), "the page shows rae's case: {page}");
        ensure!(c.find(Locator::Css("[data-testid=intake-form]")).await.is_err(), "an intake form for another rep's case");
        shots(&c, "esign-report-not-found").await?;
        usable(&c).await?;

        // A case id that does not exist reads the same.
        go(&c, &base, "reports/PV-2026-999999").await?;
        c.refresh().await?;
        let missing = text_where(&c, "[data-testid=report-not-found]", Duration::from_secs(10), |t| !t.is_empty()).await?;
        ensure!(missing.replace("PV-2026-999999", "ID") == msg.replace(&other, "ID"), "{missing} / {msg}");

        // His own report opens.
        go(&c, &base, &format!("reports/{own}")).await?;
        c.refresh().await?;
        text_where(&c, "[data-testid=intake-question]", Duration::from_secs(10), |t| t.contains("rash")).await?;
        Ok(())
    })
    .await;
}
