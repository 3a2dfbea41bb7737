//! Issue 20 browser tests (convo): real Chromium against `onlabel serve`, with the
//! shared helpers of [`crate::browser`]; screenshots at 1280×900 and 390×844
//! through [`crate::browser::shots`].
//!
//! - a rep's follow-up ("what about patients who already have it?") is read
//!   against the question before it, shown as "Answered as: …", and answered
//!   with citations; the earlier turn stays in the visit's thread;
//! - an off-label question leaves a Medical request: the panel shows what
//!   will be sent, refuses to send without the HCP's consent, and on
//!   confirmation opens the MIR case whose history holds consent and
//!   contact (checked over the API); a report's banner links to its intake form.

use std::time::Duration;

use anyhow::{ensure, Context};
use fantoccini::{Client, Locator};

use crate::browser::{chromedriver, find, run, shots, sign_in, text_where, turn, usable, world, ANSWER_WAIT};

async fn ask(c: &Client, question: &str) -> anyhow::Result<()> {
    let q = find(c, "#ask-question", Duration::from_secs(10)).await?;
    q.clear().await?;
    q.send_keys(question).await?;
    c.find(Locator::Css("#ask-submit")).await?.click().await?;
    Ok(())
}

/// Waits until the answer region shows the answer to `question` (its route set).
async fn answered(c: &Client, question: &str) -> anyhow::Result<String> {
    let start = std::time::Instant::now();
    loop {
        if let Ok(region) = c.find(Locator::Css("#answer")).await {
            let asked = match region.find(Locator::Css("[data-testid=asked]")).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if asked == question && c.find(Locator::Css("#ask-submit")).await?.is_enabled().await? {
                if let Some(route) = region.attr("data-route").await? {
                    return Ok(route);
                }
            }
        }
        ensure!(start.elapsed() < ANSWER_WAIT, "no answer to {question:?} within {ANSWER_WAIT:?}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test]
async fn browser_convo_a_follow_up_is_answered_in_the_context_of_the_visit() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start_with("convo-followup", false);
    let driver = chromedriver("convo-followup");
    let c = driver.client().await;
    let rex = w.token("rex").to_string();
    run(c.clone(), "convo-followup", async {
        sign_in(&c, &base, &rex, "rep").await?;
        find(&c, "#ask-product", Duration::from_secs(10)).await?.select_by_value("zentravia").await?;
        // The document list is collapsed, and shows a rep only what answers may quote.
        let docs = c.find(Locator::Css("[data-testid=ask-product-docs-box]")).await?;
        ensure!(docs.attr("open").await?.is_none(), "the document list is open above the answer");
        docs.find(Locator::Css("summary")).await?.click().await?;
        let listed = text_where(&c, "#ask-product-docs", Duration::from_secs(5), |t| t.contains("US-ZEN-0001")).await?;
        ensure!(!listed.contains("not used"), "a rep is shown withdrawn or Medical-only documents: {listed}");
        docs.find(Locator::Css("summary")).await?.click().await?;

        ask(&c, "How often should liver tests be done?").await?;
        ensure!(answered(&c, "How often should liver tests be done?").await? == "answer", "the first question is answered");
        let meta = c.find(Locator::Css("[data-testid=answer-meta]")).await?.text().await?;
        ensure!(meta.contains("Quoted from the approved label") && !meta.contains("extractive"), "mode in plain words: {meta}");
        // Answer first: its text sits above the form, and its sources are collapsed.
        let (answer_y, form_y) = {
            let v = c.execute("return [document.getElementById('answer-text').getBoundingClientRect().top + scrollY, document.getElementById('ask-form').getBoundingClientRect().top + scrollY];", vec![]).await?;
            (v[0].as_f64().unwrap_or(0.0), v[1].as_f64().unwrap_or(0.0))
        };
        ensure!(answer_y < form_y, "the answer ({answer_y}) is below the form ({form_y})");
        ensure!(c.find(Locator::Css("[data-testid=sources-box]")).await?.attr("open").await?.is_none(), "sources are not collapsed");
        shots(&c, "convo-answer").await?;

        let follow = "What about patients who already have it?";
        ask(&c, follow).await?;
        ensure!(answered(&c, follow).await? == "answer", "the follow-up is answered, not escalated");
        let resolved = text_where(&c, "[data-testid=resolved-question]", Duration::from_secs(5), |t| !t.is_empty()).await?;
        ensure!(resolved.contains("Answered as: About liver tests (zentravia): What about patients who already have it?"), "resolved: {resolved}");
        let chips = c.find_all(Locator::Css("#answer-text [data-testid=citation-chip]")).await?;
        ensure!(!chips.is_empty(), "the follow-up's answer has no citation");
        ensure!(c.find(Locator::Css("[data-testid=route-banner]")).await.is_err(), "the follow-up opened an escalation");
        let turns = c.find_all(Locator::Css("[data-testid=thread] [data-testid=turn]")).await?;
        ensure!(turns.len() == 1, "the thread holds {} earlier turns", turns.len());
        let visit = c.find(Locator::Css("[data-testid=visit-info]")).await?.text().await?;
        ensure!(visit.contains("2 questions"), "visit: {visit}");
        // The sources open on demand.
        c.find(Locator::Css("#answer [data-testid=sources-toggle]")).await?.click().await?;
        text_where(&c, "#answer [data-testid=sources]", Duration::from_secs(5), |t| t.contains("zentravia")).await?;
        shots(&c, "convo-followup").await?;
        // The rep's last questions, one tap from the box.
        let recent = text_where(&c, "[data-testid=recent-questions]", Duration::from_secs(10), |t| t.contains(follow)).await?;
        ensure!(recent.contains("How often should liver tests be done?"), "recent: {recent}");
        usable(&c).await?;

        // A new visit forgets the context: the same bare follow-up is asked back.
        c.find(Locator::Css("[data-testid=new-visit]")).await?.click().await?;
        ask(&c, follow).await?;
        answered(&c, follow).await?;
        let banner = text_where(&c, "[data-testid=route-banner]", Duration::from_secs(5), |t| !t.is_empty()).await?;
        ensure!(banner.contains("Which product and topic"), "a bare follow-up in a new visit: {banner}");
        ensure!(c.find(Locator::Css("[data-testid=case-id]")).await.is_err() && c.find(Locator::Css("[data-testid=mr-panel]")).await.is_err(), "a bare pronoun opened something");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn browser_convo_a_medical_request_is_confirmed_with_consent() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start_with("convo-medical", false);
    let driver = chromedriver("convo-medical");
    let c = driver.client().await;
    let (rex, mia) = (w.token("rex").to_string(), w.token("mia").to_string());
    let question = "Can I tell Dr. Shah it works for psoriatic arthritis too?";
    let mut case_id = String::new();
    run(c.clone(), "convo-medical", async {
        sign_in(&c, &base, &rex, "rep").await?;
        find(&c, "#ask-product", Duration::from_secs(10)).await?.select_by_value("zentravia").await?;
        c.find(Locator::Css("#ask-hcp")).await?.send_keys("Dr. Shah").await?;
        ask(&c, question).await?;
        ensure!(answered(&c, question).await? == "medical", "the off-label ask goes to Medical");
        let panel = find(&c, "[data-testid=mr-panel]", Duration::from_secs(5)).await?;
        let summary = panel.find(Locator::Css("[data-testid=mr-summary]")).await?.text().await?;
        ensure!(summary.contains("psoriatic arthritis"), "what will be sent: {summary}");
        ensure!(c.find(Locator::Css("[data-testid=case-id]")).await.is_err(), "a case was opened before the rep confirmed");
        let text = panel.find(Locator::Css("[data-testid=mr-text]")).await?.prop("value").await?.unwrap_or_default();
        ensure!(text == question, "the request is pre-filled with the HCP's words: {text:?}");
        let hcp = panel.find(Locator::Css("[data-testid=mr-hcp]")).await?.prop("value").await?.unwrap_or_default();
        ensure!(hcp == "Dr. Shah", "hcp pre-filled: {hcp:?}");
        // Listed as waiting.
        text_where(&c, "[data-testid=pending-requests]", Duration::from_secs(10), |t| t.contains("psoriatic arthritis")).await?;
        shots(&c, "convo-medical-request").await?;
        usable(&c).await?;

        let text_el = panel.find(Locator::Css("[data-testid=mr-text]")).await?;
        text_el.clear().await?;
        text_el.send_keys("Does Zentravia work for psoriatic arthritis? Please send me the data.").await?;
        panel.find(Locator::Css("[data-testid=mr-channel]")).await?.select_by_value("email").await?;
        panel.find(Locator::Css("[data-testid=mr-address]")).await?.send_keys("dr.shah@clinic.example").await?;
        // Without consent nothing is sent, and the rep is told why.
        panel.find(Locator::Css("[data-testid=mr-confirm]")).await?.click().await?;
        let err = text_where(&c, "[data-testid=mr-error]", Duration::from_secs(10), |t| !t.is_empty()).await?;
        ensure!(err.contains("consent"), "no-consent error: {err}");
        panel.find(Locator::Css("[data-testid=mr-consent]")).await?.click().await?;
        panel.find(Locator::Css("[data-testid=mr-confirm]")).await?.click().await?;
        case_id = text_where(&c, "[data-testid=mr-case-id]", Duration::from_secs(10), |t| t.starts_with("MIR-")).await?;
        let banner = text_where(&c, "#answer [data-testid=route-banner]", Duration::from_secs(5), |t| t.contains("Sent to Medical Information")).await?;
        ensure!(banner.contains(&case_id), "the banner names the case: {banner}");
        shots(&c, "convo-medical-sent").await?;

        // A report does not wait: its case is opened at once, and the banner links to its intake form.
        let report = "My patient got a bad rash two weeks after starting zentravia";
        ask(&c, report).await?;
        ensure!(answered(&c, report).await? == "pharmacovigilance", "the report goes to PV");
        let pv = c.find(Locator::Css("#answer [data-testid=case-id]")).await?.text().await?;
        let link = c.find(Locator::Css("#answer [data-testid=intake-link]")).await?.attr("href").await?.unwrap_or_default();
        ensure!(pv.starts_with("PV-") && link == format!("#/reports/{pv}"), "intake link {link:?} for {pv}");
        shots(&c, "convo-pv-banner").await?;

        // A request decided from the waiting list keeps its outcome in view,
        // and Enter in the reason dismisses (never sends).
        let lupus = "Can I tell Dr. Shah it works for lupus too?";
        ask(&c, lupus).await?;
        ensure!(answered(&c, lupus).await? == "medical", "the second off-label ask goes to Medical");
        c.refresh().await?;
        let item = find(&c, "[data-testid=pending-requests] [data-testid=pending-request]", Duration::from_secs(10)).await?;
        ensure!(item.text().await?.contains("lupus"), "waiting: {}", item.text().await?);
        item.find(Locator::Css("button")).await?.click().await?;
        find(&c, "[data-testid=pending-requests] details.dismiss summary", Duration::from_secs(5)).await?.click().await?;
        let reason = c.find(Locator::Css("[data-testid=pending-requests] [data-testid=mr-reason]")).await?;
        reason.send_keys(&format!("The HCP withdrew the question.{}", fantoccini::key::Key::Enter)).await?;
        text_where(&c, "[data-testid=pending-requests] [data-testid=mr-dismissed]", Duration::from_secs(10), |t| t.starts_with("Dismissed")).await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let list = text_where(&c, "[data-testid=pending-requests]", Duration::from_secs(5), |t| !t.is_empty()).await?;
        ensure!(list.contains("Dismissed: nothing was sent") && list.contains("all decided"), "the decided request left the list: {list}");
        Ok(())
    })
    .await;
    // Over the API: the case holds the HCP's words, the HCP, consent and the channel.
    let case: serde_json::Value = ureq::get(&format!("{base}/api/v1/cases/{case_id}"))
        .header("Authorization", &format!("Bearer {mia}"))
        .call()
        .context("reading the case")
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(case["case"]["question"], "Does Zentravia work for psoriatic arthritis? Please send me the data.", "{case}");
    assert_eq!(case["case"]["hcp"], "Dr. Shah", "{case}");
    let note = case["history"][0]["note"].as_str().unwrap_or_default();
    assert!(note.contains("consent to be contacted given") && note.contains("email: dr.shah@clinic.example"), "{case}");
}
