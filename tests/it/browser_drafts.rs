//! Issue 20 browser tests (drafts, point 7): a rep's follow-up email keeps a
//! lead-in's list items, copies as clean text (no DRAFT line, the subject
//! once) with the rep's own greeting and closing around the locked approved
//! text (and refuses a closing that speaks about the product); the visit
//! summary files a discussion, a question and a follow-up each under its own
//! heading, cites its statements and exports as text and as JSON for a CRM.
//! Real Chromium against `onlabel serve`, with the shared helpers of
//! [`crate::browser`]; screenshots at 1280×900 and 390×844.

use std::time::Duration;

use anyhow::ensure;
use fantoccini::{Client, Locator};

use crate::browser::{chromedriver, find, run, shots, sign_in, text_where, turn, usable, world, ANSWER_WAIT};

/// Makes the page keep every Blob it turns into a download URL, so a test
/// can read an exported file without a download directory.
async fn keep_blobs(c: &Client) -> anyhow::Result<()> {
    c.execute(
        "window.__blobs = []; const make = URL.createObjectURL.bind(URL); \
         URL.createObjectURL = (b) => { window.__blobs.push(b); return make(b); };",
        vec![],
    )
    .await?;
    Ok(())
}

/// The text of the last exported Blob.
async fn last_blob(c: &Client) -> anyhow::Result<String> {
    let v = c
        .execute_async("const done = arguments[arguments.length - 1]; const b = window.__blobs[window.__blobs.length - 1]; b ? b.text().then(done) : done(null);", vec![])
        .await?;
    v.as_str().map(str::to_string).ok_or_else(|| anyhow::anyhow!("nothing was exported"))
}

#[tokio::test]
async fn browser_drafts_email_keeps_lists_and_copies_clean_text_with_the_reps_own_words() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start_with("drafts-email", false);
    let driver = chromedriver("drafts-email");
    let c = driver.client().await;
    let rex = w.token("rex").to_string();
    run(c.clone(), "drafts-email", async {
        sign_in(&c, &base, &rex, "rep").await?;
        find(&c, "[data-testid=nav-email]", Duration::from_secs(5)).await?.click().await?;
        find(&c, "#email-product", Duration::from_secs(10)).await?.select_by_value("zentravia").await?;
        c.find(Locator::Css("#email-hcp")).await?.send_keys("Dr. Shah").await?;
        c.find(Locator::Css("#email-topics")).await?.send_keys("who should not take it; liver monitoring").await?;
        c.find(Locator::Css("#email-submit")).await?.click().await?;
        text_where(&c, "[data-testid=draft-banner]", ANSWER_WAIT, |t| t.starts_with("DRAFT")).await?;

        // The contraindication lead-in keeps its items, in the list shown.
        let items = c.find_all(Locator::Css("[data-testid=email-locked] [data-testid=statement-items] li")).await?;
        ensure!(items.len() >= 2, "a lead-in's list lost its items ({} shown)", items.len());
        let locked = c.find(Locator::Css("[data-testid=email-locked]")).await?.text().await?;
        ensure!(locked.contains("severe hepatic impairment"), "the contraindication items are not shown: {locked}");

        // The text to send: no DRAFT line, the subject once, the greeting,
        // the signed-in rep's sign-off, the items indented under their lead-in.
        let body = c.find(Locator::Css("[data-testid=email-body]")).await?.text().await?;
        ensure!(!body.contains("DRAFT"), "the text to send carries the draft banner: {body}");
        ensure!(body.matches("Subject:").count() == 1, "the subject is not there exactly once: {body}");
        ensure!(body.contains("Dear Dr. Shah,") && body.contains("Kind regards,") && body.contains("Rex Rep"), "greeting or sign-off missing: {body}");
        ensure!(body.contains("    - severe hepatic impairment"), "the list items are not in the text to send: {body}");
        let sign_off = body.find("Kind regards,").unwrap_or(0);
        ensure!(body.find("References").is_some_and(|r| r > sign_off), "the sign-off is not before the references: {body}");
        shots(&c, "drafts-email").await?;
        usable(&c).await?;

        // The rep's own greeting and closing, screened by the server.
        let greeting = c.find(Locator::Css("[data-testid=email-greeting]")).await?;
        greeting.clear().await?;
        greeting.send_keys("Hi Dr. Shah,").await?;
        let closing = c.find(Locator::Css("[data-testid=email-closing]")).await?;
        closing.clear().await?;
        closing.send_keys("Thanks again for your time,\nRex").await?;
        c.find(Locator::Css("[data-testid=email-update]")).await?.click().await?;
        let body = text_where(&c, "[data-testid=email-body]", ANSWER_WAIT, |t| t.contains("Hi Dr. Shah,")).await?;
        ensure!(body.contains("Thanks again for your time,") && !body.contains("Dear Dr. Shah"), "the rep's words did not replace the defaults: {body}");

        // A closing that speaks about the product is refused, with the reason.
        let closing = c.find(Locator::Css("[data-testid=email-closing]")).await?;
        closing.clear().await?;
        closing.send_keys("Zentravia is the best choice for your patients").await?;
        c.find(Locator::Css("[data-testid=email-update]")).await?.click().await?;
        let err = text_where(&c, "[data-testid=email-wording-error]", ANSWER_WAIT, |t| !t.is_empty()).await?;
        ensure!(err.contains("closing") && err.contains("approved text"), "refusal reason: {err}");
        shots(&c, "drafts-email-refused").await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn browser_drafts_visit_summary_files_each_clause_cites_and_exports() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start_with("drafts-summary", false);
    let driver = chromedriver("drafts-summary");
    let c = driver.client().await;
    let rex = w.token("rex").to_string();
    run(c.clone(), "drafts-summary", async {
        sign_in(&c, &base, &rex, "rep").await?;
        find(&c, "[data-testid=nav-email]", Duration::from_secs(5)).await?.click().await?;
        find(&c, "#summary-product", Duration::from_secs(10)).await?.select_by_value("zentravia").await?;
        c.find(Locator::Css("#summary-hcp")).await?.send_keys("Dr. Shah").await?;
        let notes = "Discussed liver monitoring and agreed to send the PI.\n\
                     Dr. Shah asked how often liver tests should be repeated.\n\
                     Zentravia is contraindicated in patients with severe hepatic impairment.\n\
                     Will drop off the dosing card next week.";
        c.find(Locator::Css("#summary-notes")).await?.send_keys(notes).await?;
        c.find(Locator::Css("#summary-submit")).await?.click().await?;
        let fu = text_where(&c, "[data-testid=summary-followups]", ANSWER_WAIT, |t| !t.is_empty()).await?;
        ensure!(fu.contains("agreed to send the PI") && fu.contains("Will drop off the dosing card"), "follow-ups: {fu}");
        ensure!(!fu.contains("Discussed"), "a discussion was filed under follow-ups: {fu}");
        let q = c.find(Locator::Css("[data-testid=summary-questions]")).await?.text().await?;
        ensure!(q.contains("asked how often liver tests"), "questions: {q}");
        ensure!(!q.contains("Will drop off") && !q.contains("Discussed"), "questions: {q}");
        let topics = c.find(Locator::Css("[data-testid=summary-topics]")).await?.text().await?;
        ensure!(!topics.trim().is_empty() && topics != "None noted.", "no topics: {topics}");
        // The kept statement cites its approved source.
        let chips = c.find_all(Locator::Css("[data-testid=summary-statements] [data-testid=citation-chip]")).await?;
        ensure!(!chips.is_empty(), "the summary's statement carries no citation");
        shots(&c, "drafts-summary").await?;
        usable(&c).await?;

        // Exports: the text, and a JSON record a CRM imports.
        keep_blobs(&c).await?;
        c.find(Locator::Css("[data-testid=export-summary-text]")).await?.click().await?;
        let text = last_blob(&c).await?;
        ensure!(text.contains("Agreed follow-ups") && text.contains("agreed to send the PI"), "text export: {text}");
        c.find(Locator::Css("[data-testid=export-summary-json]")).await?.click().await?;
        let json: serde_json::Value = serde_json::from_str(&last_blob(&c).await?)?;
        ensure!(json["type"] == "call_summary" && json["hcp"] == "Dr. Shah" && json["product"] == "zentravia", "CRM export: {json}");
        let st = &json["statements"][0];
        ensure!(st["citation"]["mlr_number"].as_str().is_some_and(|m| m.starts_with("US-ZEN-")), "the exported statement has no citation: {json}");
        ensure!(json["audit_id"].as_u64().is_some(), "the export does not name its audit record: {json}");
        Ok(())
    })
    .await;
}
