//! Issue 20 browser tests (mlr): real Chromium against `onlabel serve`, with the
//! shared helpers of [`crate::browser`]; screenshots at 1280×900 and 390×844
//! through [`crate::browser::shots`].
//!
//! - (a) alice proposes a prompt version in the UI and submits it (she is
//!   offered no approve control on her own version); bob requests evidence
//!   for that version in the UI, follows its progress, sees pass/fail per
//!   metric against the thresholds and the answers of both versions side by
//!   side, then signs and approves it (a server with the model: a prompt is
//!   only evidence when the model reads it);
//! - (b) an audit row edited in the SQLite file shows on the compliance page
//!   as a finding in words, whose link opens the record;
//! - (c) compliance downloads the audit export (CSV and JSON Lines).

use std::time::Duration;

use anyhow::ensure;
use fantoccini::Locator;

use crate::browser::{chromedriver, find, go, run, shots, sign_in, text_where, turn, usable, world, ANSWER_WAIT};
use crate::harness::root;

/// [`shots`] with `css` scrolled into view at each size (the page reflows
/// when the window is resized, so one scroll before does not hold).
async fn shots_of(c: &fantoccini::Client, name: &str, css: &str) -> anyhow::Result<()> {
    for (tag, w, h) in crate::browser::SIZES {
        c.set_window_size(w, h).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.execute(&format!("document.querySelector({css:?}).scrollIntoView()"), vec![]).await?;
        crate::browser::shot(c, &format!("{name}-{tag}")).await;
        let dims = c.execute("return [document.documentElement.scrollWidth, window.innerWidth];", vec![]).await?;
        ensure!(dims[0].as_f64().unwrap_or(0.0) <= dims[1].as_f64().unwrap_or(0.0) + 1.0, "{name} at {tag} scrolls sideways: {dims}");
    }
    c.set_window_size(crate::browser::WIDTH, crate::browser::HEIGHT).await?;
    Ok(())
}

/// One review question keeps the model's work in this test short.
const REVIEW_QUESTIONS: &str = "{\"question\": \"What are the LFT monitoring rules?\", \"product\": \"zentravia\"}\n";

#[tokio::test]
async fn browser_mlr_reviewer_requests_evidence_for_a_ui_proposed_version_and_approves_it() {
    let _turn = turn().await;
    let mut w = world();
    std::fs::write(w.repo.join("evals/review-questions.jsonl"), REVIEW_QUESTIONS).unwrap();
    let content = std::fs::read_to_string(root().join("prompts/objection.j2")).unwrap().replace("one or two short sentences", "one short sentence");
    // Issue 21.3: bob signs by re-entering his password.
    crate::esign::set_password(&w.data, "bob", crate::esign::PASSWORD);
    let base = w.start("mlr-evidence");
    let driver = chromedriver("mlr-evidence");
    let c = driver.client().await;
    let (alice, bob) = (w.token("alice").to_string(), w.token("bob").to_string());
    run(c.clone(), "mlr-evidence", async {
        // alice proposes in the UI and submits.
        sign_in(&c, &base, &alice, "mlr_reviewer").await?;
        go(&c, &base, "mlr").await?;
        find(&c, "[data-testid=propose-name]", Duration::from_secs(10)).await?.send_keys("objection").await?;
        c.find(Locator::Css("[data-testid=propose-content]")).await?.send_keys(&content).await?;
        c.find(Locator::Css("[data-testid=propose-submit]")).await?.click().await?;
        find(&c, "[data-testid=open-version][data-version='objection@1']", Duration::from_secs(15)).await?.click().await?;
        find(&c, "[data-testid=submit-version]", Duration::from_secs(10)).await?.click().await?;
        text_where(&c, "[data-testid=sign-result]", Duration::from_secs(10), |t| t.contains("in review")).await?;
        // The page reloads the list a moment after a change: wait for the
        // row that says so (the old row says "draft"), so the click below
        // does not land on a button the reload is about to replace.
        text_where(&c, "tr[data-version='objection@1']", Duration::from_secs(15), |t| t.contains("in review")).await?;
        // Her own version in review: told another reviewer signs, and no approve control at all.
        find(&c, "[data-testid=open-version][data-version='objection@1']", Duration::from_secs(15)).await?.click().await?;
        text_where(&c, "[data-testid=own-version]", Duration::from_secs(10), |t| t.contains("another reviewer must sign")).await?;
        ensure!(c.find(Locator::Css("[data-testid=approve]")).await.is_err(), "the author is offered an approve control");
        ensure!(c.find(Locator::Css("[data-testid=reject]")).await.is_err(), "the author is offered a reject control");

        // bob requests evidence for exactly this version and follows it.
        sign_in(&c, &base, &bob, "mlr_reviewer").await?;
        go(&c, &base, "mlr").await?;
        find(&c, "[data-testid=open-version][data-version='objection@1']", Duration::from_secs(10)).await?.click().await?;
        text_where(&c, "[data-testid=no-evidence]", Duration::from_secs(10), |t| t.contains("request evidence")).await?;
        find(&c, "[data-testid=request-evidence]", Duration::from_secs(10)).await?.click().await?;
        text_where(&c, "[data-testid=evidence-status]", Duration::from_secs(20), |t| t.contains("queued") || t.contains("running")).await?;
        // When it is done the page reloads the version with the recorded run.
        let checks = text_where(&c, "[data-testid=metric-checks]", ANSWER_WAIT * 3, |t| t.contains("route_accuracy")).await?;
        ensure!(checks.contains("≥ 0.5") && checks.contains("pass"), "per-metric result: {checks}");
        let row = c.find(Locator::Css("[data-testid=metric-check][data-metric=route_accuracy]")).await?;
        ensure!(row.attr("data-passed").await?.as_deref() == Some("yes"), "route_accuracy did not pass: {}", row.text().await?);
        let run = c.find(Locator::Css("[data-testid=eval-run]")).await?.text().await?;
        ensure!(run.contains("passed") && run.contains("evals/mini.jsonl") && run.contains("bob"), "evidence: {run}");
        shots_of(&c, "mlr-evidence", "[data-testid=eval-runs]").await?;
        // The review: the prompt as the model sees it, both versions' answers side by side.
        let rendered = text_where(&c, "[data-testid=rendered-prompt]", Duration::from_secs(20), |t| t.contains("Question: What are the LFT")).await?;
        ensure!(rendered.contains("one short sentence") && rendered.contains("one or two short sentences"), "rendered prompts: {rendered}");
        let answers = text_where(&c, "[data-testid=review-answers]", Duration::from_secs(20), |t| t.contains("LFT")).await?;
        ensure!(!answers.contains("Not answered yet"), "both versions answered: {answers}");
        shots_of(&c, "mlr-review", "[data-testid=review]").await?;
        shots_of(&c, "mlr-review-answers", "[data-testid=review-answers]").await?;
        let words = text_where(&c, "[data-testid=word-diff]", Duration::from_secs(10), |t| !t.is_empty()).await?;
        ensure!(!words.is_empty(), "word diff");

        // bob signs and approves on that evidence.
        c.find(Locator::Css("[data-testid=sign-reason]")).await?.send_keys("Evidence run passed; wording reviewed").await?;
        c.find(Locator::Css("[data-testid=sign-password]")).await?.send_keys(crate::esign::PASSWORD).await?;
        c.find(Locator::Css("[data-testid=sign-ack]")).await?.click().await?;
        c.find(Locator::Css("[data-testid=approve]")).await?.click().await?;
        let signed = text_where(&c, "[data-testid=sign-ok]", Duration::from_secs(20), |t| !t.is_empty()).await?;
        ensure!(signed.contains("objection@1 approved") && signed.contains("on eval run #"), "{signed}");
        shots(&c, "mlr-approved").await?;
        usable(&c).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn browser_compliance_sees_a_tamper_finding_in_words_and_opens_the_record() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start_with("mlr-tamper", false);
    let driver = chromedriver("mlr-tamper");
    let c = driver.client().await;
    let carol = w.token("carol").to_string();
    let data = w.data.clone();
    run(c.clone(), "mlr-tamper", async {
        sign_in(&c, &base, &carol, "compliance").await?;
        go(&c, &base, "compliance").await?;
        text_where(&c, "[data-testid=verify-ok]", Duration::from_secs(20), |t| t.starts_with("Chain intact")).await?;
        find(&c, "[data-testid=audit-row]", Duration::from_secs(10)).await?;
        shots(&c, "compliance-audit-list").await?;
        // Someone edits record 3 in the SQLite file.
        crate::mlr20::tamper(&data, 3);
        c.find(Locator::Css("[data-testid=verify]")).await?.click().await?;
        let words = text_where(&c, "[data-testid=finding-words]", Duration::from_secs(20), |t| !t.is_empty()).await?;
        ensure!(words == "Record 3 was edited after it was written: its hash no longer matches its content.", "{words}");
        ensure!(!c.find(Locator::Css("[data-testid=verify-bad]")).await?.text().await?.contains('{'), "raw JSON in the finding");
        shots(&c, "compliance-tamper-finding").await?;
        c.find(Locator::Css("[data-testid=finding-link]")).await?.click().await?;
        let rec = find(&c, "[data-testid=audit-record]", Duration::from_secs(10)).await?;
        ensure!(rec.attr("data-seq").await?.as_deref() == Some("3"), "opened the wrong record");
        let text = rec.text().await?;
        ensure!(text.contains("mallory") && text.contains("Prompt SHA-256") && text.contains("Model SHA-256"), "record view: {text}");
        text_where(&c, "[data-testid=record-hash-bad]", Duration::from_secs(5), |t| t.contains("does not match its hash")).await?;
        shots(&c, "compliance-record").await?;
        usable(&c).await?;
        Ok(())
    })
    .await;
}

/// The file in `dir` whose name satisfies `name`, once the browser has saved
/// it (20 s at most). Chrome renames its `.crdownload` when the download is
/// complete; the extra 500 ms let the rename settle.
async fn downloaded(dir: &std::path::Path, name: impl Fn(&str) -> bool) -> anyhow::Result<std::path::PathBuf> {
    let start = std::time::Instant::now();
    loop {
        let found = std::fs::read_dir(dir)?.flatten().map(|e| e.path()).find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&name));
        if let Some(path) = found {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(path);
        }
        let seen: Vec<_> = std::fs::read_dir(dir)?.flatten().map(|e| e.file_name()).collect();
        ensure!(start.elapsed() < Duration::from_secs(20), "nothing downloaded as expected in {dir:?} (seen: {seen:?})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn browser_compliance_downloads_the_audit_export() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start_with("mlr-export", false);
    // A rep's question, to find in the export and open in full.
    let rex = w.token("rex").to_string();
    let answer: serde_json::Value = ureq::post(&format!("{base}/api/v1/ask"))
        .header("Authorization", &format!("Bearer {rex}"))
        .send_json(serde_json::json!({"question": "What are the LFT monitoring rules?", "product": "zentravia"}))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let seq = answer["audit_id"].as_i64().expect("an audit id");
    let downloads = tempfile::tempdir().unwrap();
    let driver = chromedriver("mlr-export");
    let c = driver.client_with_downloads(Some(downloads.path())).await;
    let carol = w.token("carol").to_string();
    let dir = downloads.path().to_path_buf();
    run(c.clone(), "mlr-export", async {
        sign_in(&c, &base, &carol, "compliance").await?;
        go(&c, &base, "compliance").await?;
        find(&c, &format!("[data-testid=audit-row][data-seq='{seq}']"), Duration::from_secs(15)).await?;
        c.find(Locator::Css("[data-testid=export-csv]")).await?.click().await?;
        text_where(&c, "[data-testid=export-done]", Duration::from_secs(15), |t| t.contains("onlabel-audit-all.csv")).await?;
        let csv = downloaded(&dir, |n| n == "onlabel-audit-all.csv").await?;
        let text = std::fs::read_to_string(&csv)?;
        ensure!(text.lines().next() == Some(onlabel::audit::export::CSV_HEADER.join(",").as_str()), "header: {:?}", text.lines().next());
        ensure!(text.contains("What are the LFT monitoring rules?") && text.contains("\"rex\""), "the rep's ask is in the export");
        c.find(Locator::Css("[data-testid=export-jsonl]")).await?.click().await?;
        let jsonl = downloaded(&dir, |n| n == "onlabel-audit-all.jsonl").await?;
        for line in std::fs::read_to_string(&jsonl)?.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            ensure!(v["hash"].as_str().is_some_and(|h| h.len() == 64), "{line}");
        }
        // The rep's ask opened in full: model, prompt, passages, citations, output.
        c.find(Locator::Css(&format!("[data-testid=audit-row][data-seq='{seq}'] [data-testid=record-link]"))).await?.click().await?;
        let rec = text_where(&c, "[data-testid=audit-record]", Duration::from_secs(10), |t| t.contains("Citations")).await?;
        ensure!(rec.contains("zentravia-pi") && rec.contains("US-ZEN-") && rec.contains("Passages retrieved"), "record: {rec}");
        text_where(&c, "[data-testid=record-hash-ok]", Duration::from_secs(5), |t| !t.is_empty()).await?;
        shots(&c, "compliance-record-ask").await?;
        c.find(Locator::Css("[data-testid=back-to-audit]")).await?.click().await?;
        // The eval suites are a list, never the sealed ones.
        let opts = text_where(&c, "[data-testid=eval-suite]", Duration::from_secs(10), |t| t.contains("mini")).await?;
        ensure!(!opts.contains("sealed") && !opts.contains("heldout"), "suites: {opts}");
        // A run of the two-case suite, its result laid out in the page (no iframe, no blocked styles).
        find(&c, "[data-testid=eval-suite]", Duration::from_secs(5)).await?.select_by_value("mini").await?;
        c.find(Locator::Css("[data-testid=eval-run]")).await?.click().await?;
        let summary = text_where(&c, "[data-testid=eval-summary]", Duration::from_secs(120), |t| t.contains("evals/mini.jsonl")).await?;
        ensure!(summary.contains("route_accuracy"), "{summary}");
        let checks = text_where(&c, "[data-testid=eval-report] [data-testid=metric-checks]", Duration::from_secs(5), |t| t.contains("route_accuracy")).await?;
        ensure!(checks.contains("≥ 0.5"), "thresholds in the page: {checks}");
        ensure!(c.find(Locator::Css("iframe")).await.is_err(), "the report is part of the page");
        shots_of(&c, "compliance-eval-run", "[data-testid=eval-report]").await?;
        usable(&c).await?;
        // The full report downloads as one HTML file with its charts.
        c.find(Locator::Css("[data-testid=eval-download]")).await?.click().await?;
        let report = downloaded(&dir, |n| n.starts_with("eval-report-") && n.ends_with(".html")).await?;
        let html = std::fs::read_to_string(&report)?;
        ensure!(html.contains("<svg") && html.contains("evals/mini.jsonl"), "the downloaded report: {} bytes", html.len());
        ensure!(c.find(Locator::Css("[data-testid=eval-download]")).await?.is_enabled().await?, "the download button stayed disabled");
        Ok(())
    })
    .await;
}
