//! Issue 20 browser tests (source): real Chromium against `onlabel serve`, with the
//! shared helpers of [`crate::browser`]; screenshots at 1280×900 and 390×844
//! through [`crate::browser::shots`].
//!
//! Done when (issue 20, point 3): a citation opens the approved document at
//! the cited passage — a PDF's page drawn by pdf.js with the passage's words
//! highlighted, an SPL label's section with the passage highlighted — with
//! the MLR number, expiry and section heading. The corpus reads a real FDA
//! PDF and a real SPL XML from `../shared/data` (see `documents.rs`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use fantoccini::{Client, Locator};

use crate::browser::{chromedriver, find, free_port, run, screenshots, shots, sign_in, text_where, turn, usable, wait_for_port, world, ANSWER_WAIT};
use crate::documents::{ingest, source_corpus};
use crate::harness::bin;

/// `onlabel serve --extractive` over `index` (the shared `serve` always
/// serves the demo index); killed when dropped.
struct Served(Child, String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(name: &str, data: &Path, repo: &Path, index: &Path) -> Served {
    let port = free_port();
    let log = std::fs::File::create(screenshots().join(format!("{name}-server.log"))).unwrap();
    let mut child = Command::new(bin())
        .current_dir(repo)
        .env_remove("ONLABEL_TOKEN")
        .env("ONLABEL_ROOT", repo)
        .arg("--data")
        .arg(data)
        .args(["serve", "--extractive", "--index"])
        .arg(index)
        .args(["--addr", &format!("127.0.0.1:{port}"), "--timeout", &ANSWER_WAIT.as_secs().to_string()])
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
    Served(child, base)
}

/// Letters and digits, lower-case (as the page's highlighter compares).
fn comparable(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Asks about `product` as the signed-in rep, opens the first citation's
/// passage, then its approved document; returns the passage quoted in the dialog.
async fn ask_and_open_source(c: &Client, base: &str, product: &str, question: &str) -> anyhow::Result<String> {
    c.goto(&format!("{base}/#/ask")).await?;
    find(c, "#ask-product", Duration::from_secs(10)).await?.select_by_value(product).await?;
    c.find(Locator::Css("#ask-question")).await?.send_keys(question).await?;
    c.find(Locator::Css("#ask-submit")).await?.click().await?;
    text_where(c, "#answer-text", ANSWER_WAIT, |t| !t.trim().is_empty()).await?;
    let chip = find(c, "[data-testid=citation-chip]", Duration::from_secs(10)).await?;
    chip.click().await?;
    let quote = text_where(c, "#passage-quote", Duration::from_secs(5), |t| t.len() > 20).await?;
    let link = find(c, "[data-testid=passage-source]", Duration::from_secs(5)).await?;
    ensure!(link.is_displayed().await?, "no 'Open the approved document' link in the passage dialog");
    ensure!(link.text().await? == "Open the approved document");
    link.click().await?;
    text_where(c, "[data-testid=source-mlr]", Duration::from_secs(10), |t| t.starts_with("MLR-")).await?;
    ensure!(c.find(Locator::Css("#passage-dialog")).await?.attr("open").await?.is_none(), "the passage dialog stayed open over the source");
    Ok(quote)
}

/// The highlighted words, and whether the first highlight is in the window,
/// once both hold or after 10 s (the last seen). A PDF page is marked after
/// pdf.js's text layer comes back from its worker, and scrolled to in a
/// later task: neither is done when the page says it has been drawn.
async fn marks(c: &Client) -> anyhow::Result<(String, bool)> {
    let start = std::time::Instant::now();
    loop {
        let v = c
            .execute(
                "const m = [...document.querySelectorAll('[data-testid=source-mark]')]; \
                 if (!m.length) return ['', false]; \
                 const r = m[0].getBoundingClientRect(); \
                 return [m.map(e => e.textContent).join(' '), r.bottom > 0 && r.top < window.innerHeight];",
                vec![],
            )
            .await?;
        let (marked, visible) = (v[0].as_str().unwrap_or_default().to_string(), v[1].as_bool().unwrap_or(false));
        if (!marked.is_empty() && visible) || start.elapsed() > Duration::from_secs(10) {
            return Ok((marked, visible));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test]
async fn browser_source_a_citation_opens_the_pdf_page_and_the_spl_section_highlighted() {
    let _turn = turn().await;
    let w = world();
    let index = w._dir.path().join("source-index");
    ingest(&w.data, &source_corpus(&w._dir.path().join("corpus")), &index);
    let server = serve("source", &w.data, &w.repo, &index);
    let base = server.1.clone();
    let driver = chromedriver("source");
    let c = driver.client().await;
    let rex = w.token("rex").to_string();
    run(c.clone(), "source", async {
        sign_in(&c, &base, &rex, "rep").await?;

        // A PDF: the cited page drawn, its number shown, the passage highlighted.
        let quote = ask_and_open_source(&c, &base, "veklury", "What is VEKLURY indicated for?").await?;
        let page = find(&c, "[data-testid=source-pdf-page][data-rendered=yes]", Duration::from_secs(30))
            .await
            .context("the PDF page was never drawn (is scripts/ui-deps.sh's pdf.js embedded?)")?;
        let n: u32 = page.attr("data-page").await?.unwrap_or_default().parse()?;
        let shown = text_where(&c, "[data-testid=source-page]", Duration::from_secs(5), |t| t.contains(" of ")).await?;
        ensure!(shown == format!("Page {n} of 30"), "page label {shown:?} for page {n}");
        ensure!(c.current_url().await?.as_str().contains("#/source/veklury-pi?passage="), "address: {}", c.current_url().await?);
        let heading = c.find(Locator::Css("[data-testid=source-heading]")).await?.text().await?;
        let expires = c.find(Locator::Css("[data-testid=source-expires]")).await?.text().await?;
        let mlr = c.find(Locator::Css("[data-testid=source-mlr]")).await?.text().await?;
        ensure!(!heading.is_empty() && expires == "2099-12-31" && mlr == "MLR-veklury-pi", "facts: {heading:?} {expires:?} {mlr:?}");
        // The canvas holds a drawn page (dark pixels of text), not a blank box.
        let inked = c
            .execute(
                "const cv = document.querySelector('[data-testid=source-canvas]'); \
                 const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data; \
                 let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] < 128) n++; \
                 return [cv.width, cv.height, n];",
                vec![],
            )
            .await?;
        ensure!(inked[0].as_u64() > Some(300) && inked[2].as_u64() > Some(1000), "the canvas is blank: {inked}");
        let (marked, visible) = marks(&c).await?;
        let start: String = comparable(&quote).chars().take(24).collect();
        ensure!(comparable(&marked).contains(&start), "the highlight {marked:?} does not hold the passage's first words {start:?}");
        ensure!(visible, "the highlighted passage is not scrolled into view");
        shots(&c, "source-pdf").await?;
        usable(&c).await?;

        // An SPL label: its section as HTML, the passage highlighted.
        let quote = ask_and_open_source(&c, &base, "humira", "What are the warnings about serious infections?").await?;
        let section = find(&c, "[data-testid=source-section] mark", Duration::from_secs(10)).await?;
        let marked = section.text().await?;
        ensure!(comparable(&quote).starts_with(&comparable(&marked).chars().take(40).collect::<String>()), "mark {marked:?} vs quote {quote:?}");
        ensure!(c.find(Locator::Css("[data-testid=source-pdf-page]")).await.is_err(), "an SPL label has no PDF page");
        let heading = c.find(Locator::Css("[data-testid=source-heading]")).await?.text().await?;
        let h2 = c.find(Locator::Css("[data-testid=source-section-heading]")).await?.text().await?;
        ensure!(!heading.is_empty() && h2 == heading, "section heading {h2:?} vs {heading:?}");
        ensure!(c.find(Locator::Css("[data-testid=source-mlr]")).await?.text().await? == "MLR-humira-pi");
        let (_, visible) = marks(&c).await?;
        ensure!(visible, "the highlighted passage is not scrolled into view");
        shots(&c, "source-spl").await?;
        usable(&c).await?;
        Ok(())
    })
    .await;
    drop(server);
}
