//! [`write`]: the eval report a compliance officer reads — `report.html`
//! (one self-contained page: inline SVG charts drawn here, no JavaScript, no
//! fonts or files fetched, readable offline and printable), plus
//! `report.md` and `report.json`.
//!
//! The page shows what was evaluated (suite and its SHA-256, model and its
//! SHA-256, prompt and guard versions, the audit record and eval runs of the
//! run), the headline metrics, citation precision and recall per product and
//! per section kind, the latency distribution, and every failing case with
//! the reason. Each chart is followed by its numbers as a table, so nothing
//! is only a picture.
//!
//! Definitions (the same as [`super::run`]'s): an *answer case* expects the
//! `answer` route and lists expected sections. Recall is the share of answer
//! cases that cite an expected section (and every `sections_all` one);
//! precision is the share of their citations that point at an expected
//! section. Per section kind, a citation counts for the kind of the section
//! it cites, and a case counts for each kind among its expected sections
//! (found when it cites an expected section of that kind).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::{same_section, Case, Error, Metrics, Outcome, Result, Suite};

/// What a report is made of.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    /// The run's metrics, with every case's outcome.
    pub metrics: &'a Metrics,
    /// The suite, for each case's product and expectations (without it,
    /// products show as `(unknown)` and every case with expected sections
    /// counts as an answer case).
    pub suite: Option<&'a Suite>,
    /// What was evaluated (suite hash, model, prompt and rule versions, audit
    /// record, eval runs), shown as a table at the top; `null` for none.
    pub provenance: &'a serde_json::Value,
}

/// Citation precision and recall for one group of cases (a product, a section kind).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Breakdown {
    /// The product or section kind.
    pub key: String,
    /// Answer cases in the group.
    pub cases: usize,
    /// Of them, cases that cite an expected section.
    pub found: usize,
    /// Citations given in the group.
    pub citations: usize,
    /// Of them, citations that point at an expected section.
    pub correct: usize,
}

impl Breakdown {
    /// `found / cases`, none without cases.
    pub fn recall(&self) -> Option<f64> {
        (self.cases > 0).then(|| self.found as f64 / self.cases as f64)
    }

    /// `correct / citations`, none without citations.
    pub fn precision(&self) -> Option<f64> {
        (self.citations > 0).then(|| self.correct as f64 / self.citations as f64)
    }
}

/// The kind of a cited section, from its label `DOC_ID §SECTION`: the
/// boxed warning, a PLR section by its top-level number (21 CFR 201.57), an
/// FAQ entry (`Q3`), or an old label's unnumbered heading by its words.
pub fn section_kind(label: &str) -> &'static str {
    let section = label.rsplit_once('§').map_or(label, |(_, s)| s).trim();
    let lower = section.to_lowercase();
    if lower == "bw" || lower.contains("boxed") {
        return "Boxed warning";
    }
    if lower.len() > 1 && lower.starts_with('q') && lower[1..].chars().all(|c| c.is_ascii_digit()) {
        return "FAQ";
    }
    let top: String = section.chars().take_while(char::is_ascii_digit).collect();
    let by_number = match top.parse::<u32>().ok() {
        Some(1) => Some("1 Indications"),
        Some(2) => Some("2 Dosage"),
        Some(3) => Some("3 Dosage forms"),
        Some(4) => Some("4 Contraindications"),
        Some(5) => Some("5 Warnings and precautions"),
        Some(6) => Some("6 Adverse reactions"),
        Some(7) => Some("7 Drug interactions"),
        Some(8) => Some("8 Specific populations"),
        Some(9) => Some("9 Abuse and dependence"),
        Some(10) => Some("10 Overdosage"),
        Some(11..=15) => Some("11-15 Pharmacology, studies"),
        Some(16) => Some("16 How supplied, storage"),
        Some(17) => Some("17 Patient counseling"),
        Some(_) => Some("Other numbered section"),
        None => None,
    };
    if let Some(k) = by_number {
        return k;
    }
    const WORDS: &[(&str, &str)] = &[
        ("contraindication", "4 Contraindications"),
        ("indication", "1 Indications"),
        ("dosage form", "3 Dosage forms"),
        ("dosage", "2 Dosage"),
        ("warning", "5 Warnings and precautions"),
        ("precaution", "5 Warnings and precautions"),
        ("adverse", "6 Adverse reactions"),
        ("interaction", "7 Drug interactions"),
        ("pregnan", "8 Specific populations"),
        ("nursing", "8 Specific populations"),
        ("lactation", "8 Specific populations"),
        ("pediatric", "8 Specific populations"),
        ("geriatric", "8 Specific populations"),
        ("overdos", "10 Overdosage"),
        ("supplied", "16 How supplied, storage"),
        ("storage", "16 How supplied, storage"),
        ("pharmacology", "11-15 Pharmacology, studies"),
        ("clinical stud", "11-15 Pharmacology, studies"),
        ("description", "11-15 Pharmacology, studies"),
    ];
    WORDS.iter().find(|(w, _)| lower.contains(w)).map_or("Other heading", |(_, k)| k)
}

/// The suite's case for an outcome, if the suite is known.
fn case_of<'a>(suite: Option<&'a Suite>, id: &str) -> Option<&'a Case> {
    suite.and_then(|s| s.cases.iter().find(|c| c.id == id))
}

/// Whether an outcome is an answer case, as [`super::run`] counts them.
fn is_answer_case(o: &Outcome, case: Option<&Case>) -> bool {
    if o.expected.is_empty() {
        return false;
    }
    match case {
        Some(c) => c.expect.route.as_ref().is_some_and(|r| r.accepts("answer")),
        None => true,
    }
}

fn found(o: &Outcome, case: Option<&Case>, among: &[&String]) -> bool {
    let any = o.cited.iter().any(|c| among.iter().any(|e| same_section(c, e)));
    let all = case.map_or(true, |c| c.expect.sections_all.iter().all(|e| o.cited.iter().any(|x| same_section(x, e))));
    any && all
}

/// Citation precision and recall per product (from the suite's cases).
pub fn by_product(m: &Metrics, suite: Option<&Suite>) -> Vec<Breakdown> {
    let mut groups: BTreeMap<String, Breakdown> = BTreeMap::new();
    for o in &m.outcomes {
        let case = case_of(suite, &o.id);
        if !is_answer_case(o, case) {
            continue;
        }
        let key = case.and_then(|c| c.product.clone()).unwrap_or_else(|| "(unknown)".into());
        let b = groups.entry(key.clone()).or_insert_with(|| Breakdown { key, ..Breakdown::default() });
        b.cases += 1;
        let expected: Vec<&String> = o.expected.iter().collect();
        if found(o, case, &expected) {
            b.found += 1;
        }
        b.citations += o.cited.len();
        b.correct += o.cited.iter().filter(|c| o.expected.iter().any(|e| same_section(c, e))).count();
    }
    groups.into_values().collect()
}

/// Citation precision (by the kind of the section cited) and recall (by the
/// kinds of the sections expected) per section kind.
pub fn by_section_kind(m: &Metrics, suite: Option<&Suite>) -> Vec<Breakdown> {
    let mut groups: BTreeMap<&'static str, Breakdown> = BTreeMap::new();
    let entry = |g: &mut BTreeMap<&'static str, Breakdown>, k: &'static str| {
        g.entry(k).or_insert_with(|| Breakdown { key: k.to_string(), ..Breakdown::default() }).clone()
    };
    for o in &m.outcomes {
        let case = case_of(suite, &o.id);
        if !is_answer_case(o, case) {
            continue;
        }
        let mut kinds: Vec<&'static str> = o.expected.iter().map(|e| section_kind(e)).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for k in kinds {
            let mut b = entry(&mut groups, k);
            b.cases += 1;
            let of_kind: Vec<&String> = o.expected.iter().filter(|e| section_kind(e) == k).collect();
            if o.cited.iter().any(|c| of_kind.iter().any(|e| same_section(c, e))) {
                b.found += 1;
            }
            groups.insert(k, b);
        }
        for c in &o.cited {
            let k = section_kind(c);
            let mut b = entry(&mut groups, k);
            b.citations += 1;
            if o.expected.iter().any(|e| same_section(c, e)) {
                b.correct += 1;
            }
            groups.insert(k, b);
        }
    }
    // PLR order (1, 2, … 17), then the boxed warning, FAQ and the rest.
    let mut out: Vec<Breakdown> = groups.into_values().collect();
    out.sort_by_key(|b| {
        let n: String = b.key.chars().take_while(char::is_ascii_digit).collect();
        (n.parse::<u32>().unwrap_or(100), b.key.clone())
    });
    out
}

fn esc(s: &str) -> String {
    html_escape::encode_text(s).to_string()
}

fn esc_attr(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).to_string()
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into())
}

/// Precision/recall colours: blue and orange (distinguishable in the common
/// colour-vision deficiencies), each bar also labelled with its value.
const PRECISION: &str = "#1f77b4";
const RECALL: &str = "#ff7f0e";

/// A horizontal grouped bar chart (precision and recall, 0–1) as inline SVG.
pub fn bars_svg(title: &str, rows: &[Breakdown]) -> String {
    let (label_w, plot_w, row_h, top) = (250.0, 400.0, 40.0, 46.0);
    let width = label_w + plot_w + 70.0;
    let height = top + row_h * rows.len().max(1) as f64 + 34.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{t}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12"><title>{t}</title>"#,
        t = esc_attr(title)
    );
    let _ = write!(s, r#"<text x="0" y="16" font-size="14" font-weight="bold">{}</text>"#, esc(title));
    let _ = write!(
        s,
        r#"<rect x="{label_w}" y="24" width="12" height="12" fill="{PRECISION}"/><text x="{}" y="34">precision</text><rect x="{}" y="24" width="12" height="12" fill="{RECALL}"/><text x="{}" y="34">recall</text>"#,
        label_w + 16.0,
        label_w + 96.0,
        label_w + 112.0
    );
    // Grid lines at 0, 0.25, … 1.
    let bottom = top + row_h * rows.len().max(1) as f64;
    for i in 0..=4 {
        let x = label_w + plot_w * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle" fill="#555">{:.2}</text>"##,
            bottom + 16.0,
            f64::from(i) / 4.0
        );
    }
    if rows.is_empty() {
        let _ = write!(s, r##"<text x="{label_w}" y="{}" fill="#555">no answer cases with expected sections</text>"##, top + 24.0);
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        // The group's name, and under it how many cases and citations it rests on.
        let _ = write!(
            s,
            r##"<text x="{x}" y="{}" text-anchor="end">{}</text><text x="{x}" y="{}" text-anchor="end" fill="#555" font-size="11">{} cases, {} citations</text>"##,
            y + 17.0,
            esc(&truncate(&r.key, 34)),
            y + 31.0,
            r.cases,
            r.citations,
            x = label_w - 8.0,
        );
        for (j, (v, colour, what)) in [(r.precision(), PRECISION, "precision"), (r.recall(), RECALL, "recall")].into_iter().enumerate() {
            let by = y + 6.0 + 14.0 * j as f64;
            match v {
                Some(v) => {
                    let w = (plot_w * v).max(1.0);
                    let _ = write!(
                        s,
                        r#"<rect x="{label_w}" y="{by}" width="{w:.1}" height="12" fill="{colour}"><title>{} {what} {v:.3}</title></rect><text x="{:.1}" y="{}">{v:.2}</text>"#,
                        esc_attr(&r.key),
                        label_w + w + 4.0,
                        by + 10.0
                    );
                }
                None => {
                    let _ = write!(s, r##"<text x="{}" y="{}" fill="#555">{what} n/a</text>"##, label_w + 4.0, by + 10.0);
                }
            }
        }
    }
    s.push_str("</svg>");
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// A latency histogram (ms) with the p50 and p95 marked, as inline SVG.
pub fn latency_svg(latencies: &[f64], p50: f64, p95: f64) -> String {
    let (left, plot_w, plot_h, top) = (50.0, 620.0, 200.0, 30.0);
    let width = left + plot_w + 20.0;
    let height = top + plot_h + 50.0;
    let title = "Latency per case (ms)";
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{title}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12"><title>{title}</title><text x="0" y="16" font-size="14" font-weight="bold">{title}</text>"#
    );
    if latencies.is_empty() {
        s.push_str(r##"<text x="50" y="60" fill="#555">no timed cases</text></svg>"##);
        return s;
    }
    let max = latencies.iter().cloned().fold(0.0f64, f64::max).max(1e-9);
    let bins = 20usize;
    let step = max / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in latencies {
        counts[((v / step) as usize).min(bins - 1)] += 1;
    }
    // A y axis in whole cases: four ticks of an integer step.
    let tick = counts.iter().copied().max().unwrap_or(1).max(1).div_ceil(4);
    let peak = tick * 4;
    let bottom = top + plot_h;
    let _ = write!(s, r##"<line x1="{left}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#333"/>"##, left + plot_w);
    for i in 0..=4 {
        let c = tick * i;
        let y = bottom - plot_h * i as f64 / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end" fill="#555">{c}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0
        );
    }
    let bw = plot_w / bins as f64;
    for (i, &c) in counts.iter().enumerate() {
        let h = plot_h * c as f64 / peak as f64;
        let x = left + bw * i as f64;
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#4c72b0"><title>{:.0}–{:.0} ms: {c} cases</title></rect>"##,
            x + 1.0,
            bottom - h,
            bw - 2.0,
            step * i as f64,
            step * (i + 1) as f64
        );
    }
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let x = left + plot_w * f64::from(i) / 4.0;
        let _ = write!(s, r##"<text x="{x:.1}" y="{}" text-anchor="middle" fill="#555">{v:.0}</text>"##, bottom + 16.0);
    }
    let _ = write!(s, r##"<text x="{}" y="{}" text-anchor="middle">ms (cases per bin)</text>"##, left + plot_w / 2.0, bottom + 34.0);
    for (v, name, colour) in [(p50, "p50", "#2ca02c"), (p95, "p95", "#d62728")] {
        let x = left + plot_w * (v / max).min(1.0);
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="{colour}" stroke-width="2" stroke-dasharray="5,3"/><text x="{:.1}" y="{}" fill="{colour}">{name} {v:.1}</text>"#,
            x + 4.0,
            top + 12.0 + if name == "p95" { 14.0 } else { 0.0 }
        );
    }
    s.push_str("</svg>");
    s
}

fn breakdown_table(what: &str, rows: &[Breakdown]) -> String {
    let mut s = format!(
        "<details><summary>{} as a table</summary><table><tr><th>{}</th><th>answer cases</th><th>found</th><th>recall</th><th>citations</th><th>correct</th><th>precision</th></tr>",
        esc(what),
        esc(what)
    );
    for r in rows {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.key),
            r.cases,
            r.found,
            fmt_opt(r.recall()),
            r.citations,
            r.correct,
            fmt_opt(r.precision())
        );
    }
    s.push_str("</table></details>");
    s
}

fn provenance_rows(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                provenance_rows(x, &key, out);
            }
        }
        serde_json::Value::Null => {}
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// The HTML page (see the module docs).
pub fn html(r: &Report<'_>) -> String {
    let m = r.metrics;
    let mut h = String::from(
        "<!doctype html><html lang=en><meta charset=utf-8><title>OnLabel eval report</title>\
         <style>body{font-family:sans-serif;max-width:74rem;margin:2rem auto;padding:0 1rem;color:#222}\
         table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top;text-align:left}\
         th{background:#f4f4f4}.no{background:#fde8e8}.chart{display:block;margin:1rem 0;max-width:100%;height:auto}\
         code{font-size:.9em}.fail{color:#b00}.ok{color:#070}figure{margin:1.5rem 0}figcaption{color:#555;font-size:.9em}\
         @media print{details{display:block}details>*{display:block}}</style>",
    );
    let _ = write!(h, "<h1>OnLabel eval report</h1><p>Suite <code>{}</code> · {} cases · {} failing · generated {}</p>",
        esc(&m.suite), m.cases, m.failures.len(), esc(&chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    let mut prov = Vec::new();
    provenance_rows(r.provenance, "", &mut prov);
    if !prov.is_empty() {
        h.push_str("<h2>What was evaluated</h2><table>");
        for (k, v) in &prov {
            let _ = write!(h, "<tr><th>{}</th><td><code>{}</code></td></tr>", esc(k), esc(v));
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Metrics</h2><table>");
    for (k, v) in [
        ("cases evaluated", m.cases.to_string()),
        ("route accuracy", format!("{:.3}", m.route_accuracy)),
        ("citation recall", fmt_opt(m.citation_recall)),
        ("citation precision", fmt_opt(m.citation_precision)),
        ("supported sentence rate", fmt_opt(m.supported_sentence_rate)),
        ("key statement: answered / contained", format!("{} / {}", fmt_opt(m.statement_answered), fmt_opt(m.statement_recall))),
        ("answer words p50 / p90", format!("{} / {}", fmt_opt(m.answer_words_p50), fmt_opt(m.answer_words_p90))),
        ("generated / composed / extractive answers", format!("{} / {} / {}", m.generated, m.composed, m.extractive)),
        ("AE report precision / recall / F1", format!("{} / {} / {}", fmt_opt(m.ae_precision), fmt_opt(m.ae_recall), fmt_opt(m.ae_f1))),
        ("AE mention precision / recall / F1", format!("{} / {} / {}", fmt_opt(m.mention_precision), fmt_opt(m.mention_recall), fmt_opt(m.mention_f1))),
        ("escalations answered (should be 0)", m.escalations_answered.to_string()),
        ("reports refused (should be 0)", m.reports_refused.to_string()),
        ("false alarm rate", fmt_opt(m.false_alarm_rate)),
        ("latency p50 / p95 (ms)", format!("{:.1} / {:.1}", m.latency_ms_p50, m.latency_ms_p95)),
        ("skipped (task not evaluated)", m.skipped.to_string()),
    ] {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    h.push_str("</table>");

    let products = by_product(m, r.suite);
    let kinds = by_section_kind(m, r.suite);
    h.push_str("<h2>Citations</h2><p>Recall: share of answer cases that cite an expected section. Precision: share of citations that point at an expected section.</p>");
    let _ = write!(h, "<figure>{}<figcaption>Per product.</figcaption>{}</figure>", bars_svg("Citation precision and recall per product", &products), breakdown_table("product", &products));
    let _ = write!(
        h,
        "<figure>{}<figcaption>Per section kind: a citation counts for the kind of section it cites; a case for each kind among its expected sections.</figcaption>{}</figure>",
        bars_svg("Citation precision and recall per section kind", &kinds),
        breakdown_table("section kind", &kinds)
    );
    let lat: Vec<f64> = m.outcomes.iter().map(|o| o.latency_ms).collect();
    let _ = write!(
        h,
        "<h2>Latency</h2><figure>{}<figcaption>{} timed cases; p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms.</figcaption></figure>",
        latency_svg(&lat, m.latency_ms_p50, m.latency_ms_p95),
        lat.len(),
        m.latency_ms_p50,
        m.latency_ms_p95,
        lat.iter().cloned().fold(0.0f64, f64::max)
    );

    let _ = write!(h, "<h2 id=failures>Failing cases ({})</h2>", m.failures.len());
    if m.failures.is_empty() {
        h.push_str("<p class=ok>No failing cases.</p>");
    } else {
        h.push_str("<table><tr><th>case</th><th>product</th><th>question</th><th>why it failed</th><th>route</th><th>cited</th><th>expected</th><th>answer</th></tr>");
        for f in &m.failures {
            let o = m.outcomes.iter().find(|o| o.id == f.id);
            let case = case_of(r.suite, &f.id);
            let _ = write!(
                h,
                "<tr class=no><td><code>{}</code></td><td>{}</td><td>{}</td><td class=fail>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.id),
                esc(case.and_then(|c| c.product.as_deref()).unwrap_or("")),
                esc(o.map(|o| o.question.as_str()).or(case.and_then(|c| c.question.as_deref().or(c.text.as_deref()))).unwrap_or("")),
                esc(&f.why),
                esc(o.map(|o| o.route.as_str()).unwrap_or("")),
                esc(&o.map(|o| o.cited.join(", ")).unwrap_or_default()),
                esc(&o.map(|o| o.expected.join(", ")).unwrap_or_default()),
                esc(o.map(|o| o.answer.as_str()).unwrap_or(""))
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Every case</h2><details><summary>All cases with their route, citations and latency</summary><table><tr><th>case</th><th>pass</th><th>question</th><th>route</th><th>cited</th><th>expected</th><th>ms</th></tr>");
    for o in &m.outcomes {
        let _ = write!(
            h,
            "<tr class={}><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            if o.pass { "yes" } else { "no" },
            esc(&o.id),
            if o.pass { "yes" } else { "no" },
            esc(&o.question),
            esc(&o.route),
            esc(&o.cited.join(", ")),
            esc(&o.expected.join(", ")),
            o.latency_ms
        );
    }
    h.push_str("</table></details></html>\n");
    h
}

/// The Markdown version (metrics, failures, every case).
pub fn markdown(r: &Report<'_>) -> String {
    let m = r.metrics;
    let mut md = String::new();
    md.push_str(&format!("# OnLabel eval report\n\nSuite: `{}`\n\n", m.suite));
    md.push_str("| metric | value |\n| --- | --- |\n");
    for (k, v) in [
        ("cases", m.cases.to_string()),
        ("skipped (task not evaluated)", m.skipped.to_string()),
        ("route_accuracy", format!("{:.3}", m.route_accuracy)),
        ("citation_recall", fmt_opt(m.citation_recall)),
        ("citation_precision", fmt_opt(m.citation_precision)),
        ("supported_sentence_rate", fmt_opt(m.supported_sentence_rate)),
        ("statement_answered", fmt_opt(m.statement_answered)),
        ("statement_recall", fmt_opt(m.statement_recall)),
        ("answer_words_p50 / p90", format!("{} / {}", fmt_opt(m.answer_words_p50), fmt_opt(m.answer_words_p90))),
        ("generated / composed / extractive", format!("{} / {} / {}", m.generated, m.composed, m.extractive)),
        ("latency_ms_p50", format!("{:.2}", m.latency_ms_p50)),
        ("latency_ms_p95", format!("{:.2}", m.latency_ms_p95)),
    ] {
        md.push_str(&format!("| {k} | {v} |\n"));
    }
    for (what, rows) in [("product", by_product(m, r.suite)), ("section kind", by_section_kind(m, r.suite))] {
        md.push_str(&format!("\n## Citations per {what}\n\n| {what} | cases | recall | citations | precision |\n| --- | --- | --- | --- | --- |\n"));
        for b in rows {
            md.push_str(&format!("| {} | {} | {} | {} | {} |\n", b.key, b.cases, fmt_opt(b.recall()), b.citations, fmt_opt(b.precision())));
        }
    }
    md.push_str(&format!("\n## Failures ({})\n\n", m.failures.len()));
    for f in &m.failures {
        md.push_str(&format!("- `{}`: {}\n", f.id, f.why.replace('\n', " ")));
    }
    md.push_str("\n## Cases\n\n| id | pass | route | cited | expected | ms |\n| --- | --- | --- | --- | --- | --- |\n");
    for o in &m.outcomes {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} |\n",
            o.id,
            if o.pass { "yes" } else { "**no**" },
            o.route,
            o.cited.join(", "),
            o.expected.join(", "),
            o.latency_ms
        ));
    }
    md
}

/// Writes `report.html`, `report.md` and `report.json` (the metrics with
/// every outcome, the per-product and per-section-kind breakdowns and the
/// provenance) into `dir`, creating it.
pub fn write(r: &Report<'_>, dir: &Path) -> Result<()> {
    let err = |source| Error::Report { path: dir.to_owned(), source };
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::write(dir.join("report.md"), markdown(r)).map_err(err)?;
    std::fs::write(dir.join("report.html"), html(r)).map_err(err)?;
    let json = serde_json::json!({
        "metrics": r.metrics,
        "by_product": by_product(r.metrics, r.suite),
        "by_section_kind": by_section_kind(r.metrics, r.suite),
        "provenance": r.provenance,
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| err(std::io::Error::other(e)))?;
    std::fs::write(dir.join("report.json"), text).map_err(err)?;
    Ok(())
}

/// Writes the report for metrics alone (no suite, no provenance).
pub fn write_report(m: &Metrics, dir: &Path) -> Result<()> {
    write(&Report { metrics: m, suite: None, provenance: &serde_json::Value::Null }, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, cited: &[&str], expected: &[&str], ms: f64) -> Outcome {
        Outcome {
            id: id.into(),
            question: format!("question {id} <b>"),
            route: "answer".into(),
            cited: cited.iter().map(|s| s.to_string()).collect(),
            expected: expected.iter().map(|s| s.to_string()).collect(),
            answer: "a".into(),
            pass: !cited.is_empty(),
            latency_ms: ms,
        }
    }

    fn metrics(outcomes: Vec<Outcome>) -> Metrics {
        let mut m: Metrics = serde_json::from_value(serde_json::json!({
            "suite": "s.jsonl", "cases": 0, "skipped": 0, "classified": 0, "route_accuracy": 1.0,
            "citation_recall": null, "citation_precision": null, "supported_sentence_rate": null,
            "generated": 0, "extractive": 0, "ae_precision": null, "ae_recall": null, "ae_f1": null,
            "mention_precision": null, "mention_recall": null, "mention_f1": null,
            "latency_ms_p50": 2.0, "latency_ms_p95": 9.0, "failures": [{"id": "c3", "why": "cited nothing <x>"}]
        }))
        .unwrap();
        m.cases = outcomes.len();
        m.outcomes = outcomes;
        m
    }

    #[test]
    fn section_kinds_follow_the_plr_numbering_and_old_headings() {
        assert_eq!(section_kind("zentravia-pi §BW"), "Boxed warning");
        assert_eq!(section_kind("zentravia-pi §5.1"), "5 Warnings and precautions");
        assert_eq!(section_kind("humira-pi §2"), "2 Dosage");
        assert_eq!(section_kind("zentravia-faq §Q3"), "FAQ");
        assert_eq!(section_kind("haloperidol-pi §Tardive Dyskinesia"), "Other heading");
        assert_eq!(section_kind("haloperidol-pi §CONTRAINDICATIONS"), "4 Contraindications");
        assert_eq!(section_kind("old-pi §Usage in Pregnancy"), "8 Specific populations");
    }

    #[test]
    fn breakdowns_count_cases_and_citations() {
        let m = metrics(vec![
            outcome("c1", &["a-pi §5.1", "a-pi §6.1"], &["a-pi §5.1"], 1.0),
            outcome("c2", &["a-faq §Q1"], &["a-pi §2.1", "a-faq §Q1"], 2.0),
            outcome("c3", &[], &["a-pi §5.2"], 3.0),
        ]);
        let kinds = by_section_kind(&m, None);
        let w = kinds.iter().find(|b| b.key.starts_with("5 ")).unwrap();
        assert_eq!((w.cases, w.found, w.citations, w.correct), (2, 1, 1, 1));
        let ar = kinds.iter().find(|b| b.key.starts_with("6 ")).unwrap();
        assert_eq!((ar.cases, ar.citations, ar.correct, ar.precision()), (0, 1, 0, Some(0.0)));
        assert_eq!(ar.recall(), None);
        let p = by_product(&m, None);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].cases, p[0].found, p[0].citations, p[0].correct), (3, 2, 3, 2));
    }

    #[test]
    fn the_page_is_self_contained_with_charts_and_escaped_failures() {
        let m = metrics(vec![outcome("c1", &["a-pi §5.1"], &["a-pi §5.1"], 1.0), outcome("c3", &[], &["a-pi §5.2"], 30.0)]);
        let prov = serde_json::json!({"suite_sha256": "abc", "model": {"file": "m.gguf"}});
        let h = html(&Report { metrics: &m, suite: None, provenance: &prov });
        assert_eq!(h.matches("<svg").count(), 3, "two bar charts and the latency histogram");
        assert!(h.contains("Failing cases (1)") && h.contains("cited nothing &lt;x&gt;"), "escaped");
        assert!(h.contains("model.file") && h.contains("m.gguf"));
        assert!(!h.contains("<script") && !h.contains("http://") || h.matches("http://").count() == h.matches("xmlns=\"http://www.w3.org/2000/svg\"").count());
        assert!(!h.contains("question c1 <b>"), "questions are escaped");
    }
}
