//! Issue 23, point 4, in the browser: with the model on, the rep sees the
//! verified quoted answer (with its citation chips) and a "composing…"
//! line before the final answer exists; when the model finishes the final
//! answer takes its place and the quote is either kept (collapsed, when the
//! model's answer replaced it) or said to stand. A MutationObserver set
//! before asking records what the page showed and when, so that a fast
//! model cannot make the check pass or fail by timing.

use std::time::Duration;

use anyhow::{ensure, Context};
use fantoccini::Locator;

use crate::browser::{chromedriver, find, run, shot, sign_in, text_where, turn, usable, world, ANSWER_WAIT};

#[tokio::test]
async fn browser_rep_reads_the_quote_while_the_model_composes() {
    let _turn = turn().await;
    let mut w = world();
    let base = w.start("quote");
    let driver = chromedriver("quote");
    let c = driver.client().await;
    let rex = w.token("rex").to_string();
    run(c.clone(), "quote", async {
        sign_in(&c, &base, &rex, "rep").await?;
        find(&c, "#ask-product", Duration::from_secs(10)).await?.select_by_value("zentravia").await?;
        c.find(Locator::Css("#ask-question")).await?.send_keys("Dr. Lee worries about liver toxicity").await?;
        c.execute(
            r##"window.__quote = null;
            new MutationObserver(() => {
              const q = document.querySelector("[data-testid=answer-quote]");
              if (q && !window.__quote) {
                const composing = q.querySelector("[data-testid=composing]");
                window.__quote = {
                  text: q.querySelector("[data-testid=quote-text]").textContent,
                  chips: q.querySelectorAll("[data-testid=citation-chip]").length,
                  composing: composing ? composing.textContent : "",
                  final_shown: !!document.querySelector("#answer-text"),
                };
              }
            }).observe(document.getElementById("answer"), { childList: true, subtree: true });"##,
            vec![],
        )
        .await?;
        c.find(Locator::Css("#ask-submit")).await?.click().await?;
        // The quote, caught by the observer (a screenshot too, when the model is slow enough to see it).
        let start = std::time::Instant::now();
        while c.execute("return window.__quote;", vec![]).await?.is_null() {
            ensure!(start.elapsed() < ANSWER_WAIT, "no quote was ever shown");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shot(&c, "quote-1-composing").await;
        let seen = c.execute("return window.__quote;", vec![]).await?;
        ensure!(seen["chips"].as_u64().unwrap_or(0) >= 1, "the quote has no citation chip: {seen}");
        ensure!(seen["composing"].as_str().is_some_and(|t| t.contains("composing")), "no composing state: {seen}");
        ensure!(seen["final_shown"] == false, "the final answer was already there: {seen}");
        ensure!(seen["text"].as_str().is_some_and(|t| t.len() > 20), "{seen}");

        // The final answer replaces it; the quote is kept collapsed, or said to stand.
        let text = text_where(&c, "#answer-text", ANSWER_WAIT, |t| !t.trim().is_empty()).await?;
        ensure!(c.find(Locator::Css("[data-testid=composing]")).await.is_err(), "still composing after the answer: {text}");
        let kept = c.find(Locator::Css("[data-testid=quote-kept]")).await.is_ok();
        let stands = c.find(Locator::Css("[data-testid=quote-stands]")).await.is_ok();
        ensure!(kept != stands, "the quote is either kept or stands (kept {kept}, stands {stands})");
        let meta = c.find(Locator::Css("[data-testid=answer-meta]")).await?.text().await.context("answer meta")?;
        ensure!(kept == meta.contains("checked sentence by sentence"), "kept {kept} but the answer is: {meta}");
        shot(&c, "quote-2-final").await;
        usable(&c).await?;
        Ok(())
    })
    .await;
}
