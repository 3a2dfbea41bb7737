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

/// `objection@1` by alice, submitted, with passing eval evidence recorded
/// (the fixture: the evidence loop has its own browser test).
fn objection_in_review(w: &crate::browser::World) {
    use onlabel::prompts::{sha256_hex, NewEvalRun, Registry, Thresholds, VersionId};
    let store = onlabel::store::Store::open(&w.data).unwrap();
    let users = onlabel::users::Users::new(&store);
    let (alice, carol) = (users.get("alice").unwrap().unwrap(), users.get("carol").unwrap().unwrap());
    let reg = Registry::new(&store, &w.repo);
    reg.propose("objection", std::path::Path::new("prompts/objection.j2"), None, serde_json::json!({}), &alice).unwrap();
    let id = VersionId { name: "objection".into(), version: 1 };
    reg.submit(&id, &alice).unwrap();
    let suite = std::fs::read(w.repo.join("evals/mini.jsonl")).unwrap();
    let run = NewEvalRun {
        suite_path: "evals/mini.jsonl".into(),
        suite_sha256: sha256_hex(&suite),
        model: None,
        model_sha256: None,
        versions: serde_json::json!(["objection@1"]),
        metrics: serde_json::json!({"route_accuracy": 1.0}),
    };
    reg.record_eval(&id, &run, &carol, &Thresholds::read(&w.repo.join("evals/thresholds.toml")).unwrap()).unwrap();
}

#[tokio::test]
async fn browser_esign_a_reviewer_signed_in_with_a_password_approves_after_re_entering_it() {
    let _turn = turn().await;
    let mut w = world();
    crate::esign::set_password(&w.data, "bob", crate::esign::PASSWORD);
    objection_in_review(&w);
    let base = w.start_with("esign-sign", false);
    let driver = chromedriver("esign-sign");
    let c = driver.client().await;
    let carol = w.token("carol").to_string();
    let bob_token = w.token("bob").to_string();
    let data = w.data.clone();
    run(c.clone(), "esign-sign", async {
        sign_in(&c, &base, &bob_token, "mlr_reviewer").await?;
        // The address the single sign-on step-up returns to opens the version.
        go(&c, &base, "mlr/objection%401").await?;
        let form = text_where(&c, "#sign-form", Duration::from_secs(15), |t| t.contains("Signing as")).await?;
        ensure!(form.contains("Bob Reviewer (bob)"), "who signs: {form}");
        let meaning = c.find(Locator::Css("[data-testid=sign-meaning]")).await?.text().await?;
        ensure!(meaning.contains("meaning Approved") && meaning.contains("meaning Rejected"), "the meanings are stated: {meaning}");
        ensure!(c.find(Locator::Css("[data-testid=sign-secret]")).await.is_err(), "the token field is gone");
        c.find(Locator::Css("[data-testid=sign-reason]")).await?.send_keys("Matches MLR-2026-114").await?;
        c.find(Locator::Css("[data-testid=sign-ack]")).await?.click().await?;
        // A wrong password: refused, nothing signed, the dialog stays.
        c.find(Locator::Css("[data-testid=sign-password]")).await?.send_keys("Not-Bobs-Password-77").await?;
        c.find(Locator::Css("[data-testid=approve]")).await?.click().await?;
        let refused = text_where(&c, "[data-testid=sign-error]", Duration::from_secs(15), |t| !t.is_empty()).await?;
        ensure!(refused.contains("Signature refused") && refused.contains("nothing was signed"), "{refused}");
        ensure!(c.find(Locator::Css("[data-testid=sign-password]")).await?.prop("value").await?.as_deref() == Some(""), "the password is cleared");
        c.find(Locator::Css("#sign-form")).await?;
        crate::browser::shots(&c, "esign-sign-refused").await?;
        // The right one: signed, and the manifestation shows.
        c.find(Locator::Css("[data-testid=sign-password]")).await?.send_keys(crate::esign::PASSWORD).await?;
        c.find(Locator::Css("[data-testid=approve]")).await?.click().await?;
        let m = text_where(&c, "[data-testid=sign-manifestation]", Duration::from_secs(20), |t| !t.is_empty()).await?;
        for want in ["Approved", "Bob Reviewer (bob)", "UTC", "your time:", "Matches MLR-2026-114", "objection@1"] {
            ensure!(m.contains(want), "{want:?} in the manifestation: {m}");
        }
        let sha = c.find(Locator::Css("[data-testid=sign-manifestation] [data-testid=manifest-sha]")).await?.text().await?;
        ensure!(sha.len() == 64 && sha.chars().all(|ch| ch.is_ascii_hexdigit()), "the record's SHA-256: {sha}");
        ensure!(c.find(Locator::Css("#sign-form")).await.is_err(), "the dialog is closed after signing");
        shots(&c, "esign-signed").await?;
        usable(&c).await?;
        // The version's page lists the signature with its manifestation.
        c.refresh().await?;
        let sigs = text_where(&c, "[data-testid=signatures] [data-testid=manifestation]", Duration::from_secs(15), |t| t.contains("Approved")).await?;
        ensure!(sigs.contains("Bob Reviewer (bob)") && sigs.contains(&sha), "{sigs}");
        shots(&c, "esign-version-signatures").await?;

        // Compliance opens the signature's audit record: the same manifestation, and how bob re-authenticated.
        let seq: i64 = onlabel::store::Store::open(&data)?
            .with_conn(|c| c.query_row("SELECT seq FROM audit_log WHERE action = 'prompt_approved'", [], |r| r.get(0)))?;
        sign_in(&c, &base, &carol, "compliance").await?;
        go(&c, &base, &format!("compliance/record/{seq}")).await?;
        let rec = text_where(&c, "[data-testid=record-manifestation]", Duration::from_secs(15), |t| !t.is_empty()).await?;
        ensure!(rec.contains("Bob Reviewer (bob)") && rec.contains("Approved") && rec.contains("Matches MLR-2026-114") && rec.contains(&sha), "{rec}");
        let how = c.find(Locator::Css("[data-testid=record-reauth]")).await?.text().await?;
        ensure!(how.contains("password"), "{how}");
        shots(&c, "esign-audit-record").await?;
        Ok(())
    })
    .await;
}
