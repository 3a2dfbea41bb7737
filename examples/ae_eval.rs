//! Guard evaluation: `cargo run --release --example ae_eval [-- --show N]`.
//!
//! 1. AE *mention* detection on the labelled label sentences of
//!    `../shared/data/ae/` (dev: tuned on; test: reported, never tuned on):
//!    sentence-level confusion matrix, precision, recall, F1, and gold-span recall.
//! 2. The adversarial suite `evals/guard.jsonl`: route accuracy of
//!    `screen_input` (with a `LabelReference` per product built from the real
//!    labels), AE report and mention metrics of `classify`, and every miss by
//!    category.
//!
//! Options:
//! - `--show N` prints N false negatives and false positives of the dev split.
//! - `--show-spans` prints every gold span of the dev split that no mention
//!   overlaps.
//! - `--lexicon PATH` evaluates a candidate lexicon file instead of the
//!   compiled-in one.
//! - `--time` also prints the `screen_input` latency (p50/p99/max) over the
//!   suite's questions, to time a candidate lexicon without rebuilding.
//! - `--no-dev-gold` drops the lexicon's last section (the gold mentions of the
//!   dev split, from its `## ---- Label terms: gold adverse-reaction mentions of
//!   the DEV split` heading on) before evaluating, so that dev recall estimates
//!   recall on unseen drugs: the honest figure to tune on.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use onlabel::guard::{Context, Guard, LabelReference};

#[derive(serde::Deserialize)]
struct Row {
    text: String,
    label: String,
    drug: String,
    ae_spans: Vec<Span>,
}

#[derive(serde::Deserialize)]
struct Span {
    segments: Vec<(usize, usize)>,
}

#[derive(Default)]
struct Confusion {
    tp: usize,
    fp: usize,
    fn_: usize,
    tn: usize,
}

impl Confusion {
    fn add(&mut self, gold: bool, pred: bool) {
        match (gold, pred) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
    fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
    fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }
    fn print(&self, name: &str) {
        println!("{name}");
        println!("                 pred ae   pred none");
        println!("  gold ae      {:>9}   {:>9}", self.tp, self.fn_);
        println!("  gold none    {:>9}   {:>9}", self.fp, self.tn);
        println!("  precision {:.3}  recall {:.3}  F1 {:.3}  (n = {})", self.precision(), self.recall(), self.f1(), self.tp + self.fp + self.fn_ + self.tn);
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Byte offsets in the dataset are character offsets in Python; convert.
fn char_to_byte(text: &str, c: usize) -> usize {
    text.char_indices().nth(c).map(|(b, _)| b).unwrap_or(text.len())
}

fn mentions_split(guard: &Guard, path: &Path, show: usize, show_spans: bool, exclude_drug: Option<&str>) -> (Confusion, usize, usize) {
    let src = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut cm = Confusion::default();
    let (mut spans, mut spans_hit) = (0, 0);
    let (mut shown_fn, mut shown_fp) = (0, 0);
    for line in src.lines().filter(|l| !l.trim().is_empty()) {
        let row: Row = serde_json::from_str(line).expect("jsonl row");
        if exclude_drug.is_some_and(|d| d == row.drug) {
            continue;
        }
        let found = guard.mentions(&row.text);
        let gold = row.label == "ae";
        cm.add(gold, !found.is_empty());
        for s in &row.ae_spans {
            spans += 1;
            let hit = s.segments.iter().any(|&(a, b)| {
                let (a, b) = (char_to_byte(&row.text, a), char_to_byte(&row.text, b));
                found.iter().any(|((fa, fb), _)| *fa < b && a < *fb)
            });
            spans_hit += hit as usize;
            if !hit && show_spans {
                let seg: Vec<&str> = s.segments.iter().map(|&(a, b)| &row.text[char_to_byte(&row.text, a)..char_to_byte(&row.text, b)]).collect();
                println!("  missed span: {}", seg.join(" ... "));
            }
        }
        if gold && found.is_empty() && shown_fn < show {
            shown_fn += 1;
            println!("  FN: {}", row.text);
        }
        if !gold && !found.is_empty() && shown_fp < show {
            shown_fp += 1;
            println!("  FP: {}  <= {:?}", row.text, found.iter().map(|((a, b), p)| format!("{}→{p}", &row.text[*a..*b])).collect::<Vec<_>>());
        }
    }
    (cm, spans, spans_hit)
}

/// One LabelReference per product, from the shared labels and the demo corpus.
pub fn label_references() -> HashMap<String, LabelReference> {
    let limits = onlabel::corpus::Limits::default();
    let corpus = onlabel::corpus::Corpus::load(&[root().join("../shared/data/pi"), root().join("corpora/demo")], limits, false)
        .expect("labels load");
    let passages = corpus.passages(limits);
    let mut products: Vec<String> = passages.iter().map(|p| p.product.clone()).collect();
    products.sort();
    products.dedup();
    products.into_iter().map(|p| (p.clone(), LabelReference::from_passages(&p, &passages))).collect()
}

/// Latency of `screen_input` per question of the guard suite over 50 passes
/// (the figure `cargo bench --bench guard` budgets: under 1 ms p99), so that a
/// candidate lexicon can be timed against the built-in one without a rebuild.
fn time_screening(guard: &Guard, labels: &HashMap<String, LabelReference>, suite: &onlabel::eval::Suite) {
    let qs: Vec<(&str, Option<&str>)> =
        suite.cases.iter().filter_map(|c| c.question.as_deref().or(c.text.as_deref()).map(|q| (q, c.product.as_deref()))).collect();
    let mut times = Vec::with_capacity(qs.len() * 50);
    for _ in 0..50 {
        for &(q, p) in &qs {
            let ctx = Context { product: p, label: p.and_then(|p| labels.get(p)), embedding: None };
            let t = std::time::Instant::now();
            std::hint::black_box(guard.screen_input(q, &ctx));
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!("screen_input over {} screenings: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms\n", times.len(), at(0.5), at(0.99), at(1.0));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let show = args.iter().position(|a| a == "--show").and_then(|i| args.get(i + 1)).and_then(|n| n.parse().ok()).unwrap_or(0);
    let lexicon = args.iter().position(|a| a == "--lexicon").and_then(|i| args.get(i + 1)).map(PathBuf::from);
    let no_dev_gold = args.iter().any(|a| a == "--no-dev-gold");
    let show_spans = args.iter().any(|a| a == "--show-spans");
    let guard = match lexicon {
        None => Guard::builtin().expect("builtin guard"),
        Some(lex) => {
            let r = root();
            Guard::from_files(&r.join("rules/guard-rules.toml"), &r.join("rules/report-elements.toml"), &lex).expect("candidate lexicon")
        }
    };
    if no_dev_gold {
        println!("(--no-dev-gold is the default now: the lexicon has no dev-gold section)");
    }
    println!("guard {}  ({} lexicon entries)\n", guard.rules_version(), guard.lexicon_len());

    let ae = root().join("../shared/data/ae");
    for (split, excl) in [("dev", None), ("test", None), ("test", Some("brentuximab"))] {
        let (cm, spans, hit) = mentions_split(&guard, &ae.join(format!("fda_label_ade_sentences.{split}.jsonl")), if split == "dev" { show } else { 0 }, split == "dev" && show_spans, excl);
        let name = match excl {
            Some(d) => format!("AE mentions, {split} split without {d} (= Adcetris, a product whose label OnLabel ships with), sentence level"),
            None => format!("AE mentions, {split} split, sentence level"),
        };
        cm.print(&name);
        println!("  gold spans found: {hit}/{spans} = {:.3}\n", hit as f64 / spans.max(1) as f64);
    }

    let labels = label_references();
    let suite = onlabel::eval::Suite::read(&root().join("evals/guard.jsonl")).expect("evals/guard.jsonl");
    if args.iter().any(|a| a == "--time") {
        time_screening(&guard, &labels, &suite);
    }
    let (mut asks, mut right) = (0, 0);
    let mut report = Confusion::default();
    let mut mention = Confusion::default();
    let mut misses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut ae_to_answer, mut off_to_answer) = (0, 0);
    for case in &suite.cases {
        let category = case.id.rsplit_once('-').map(|(c, _)| c.to_string()).unwrap_or_default();
        if case.task == "ask" {
            let q = case.question.as_deref().unwrap_or_default();
            let label = case.product.as_deref().and_then(|p| labels.get(p));
            let v = guard.screen_input(q, &Context { product: case.product.as_deref(), label, embedding: None });
            let got = v.route.as_str();
            let Some(expect) = &case.expect.route else { continue };
            asks += 1;
            let ok = expect.accepts(got);
            right += ok as usize;
            let expect_pv = expect.accepts("pharmacovigilance");
            if expect_pv && !expect.accepts("answer") {
                report.add(true, got == "pharmacovigilance");
            } else if got == "pharmacovigilance" && !expect_pv {
                report.add(false, true);
            }
            if got == "answer" && expect_pv && !expect.accepts("answer") {
                ae_to_answer += 1;
            }
            if got == "answer" && expect.accepts("medical") && !expect.accepts("answer") && !expect_pv {
                off_to_answer += 1;
            }
            if !ok {
                let flags: Vec<String> = v.flags.iter().map(|f| format!("{}:{}[{}]", f.kind, f.rule_id, f.evidence)).collect();
                misses.entry(category).or_default().push(format!("{} got {got}, expected {expect:?}: {q}\n      flags: {flags:?}", case.id));
            }
        } else if case.task == "classify" {
            let t = case.text.as_deref().unwrap_or_default();
            let c = guard.classify(t);
            let mut ok = true;
            if let Some(e) = case.expect.adverse_event {
                report.add(e, c.adverse_event);
                ok &= e == c.adverse_event;
            }
            if let Some(e) = case.expect.ae_mention {
                mention.add(e, c.ae_mention);
                ok &= e == c.ae_mention;
            }
            if !ok {
                misses.entry(category).or_default().push(format!("{} got {c:?}, expected {:?}/{:?}: {t}", case.id, case.expect.adverse_event, case.expect.ae_mention));
            }
        }
    }
    println!("evals/guard.jsonl: route accuracy {right}/{asks} = {:.3}", right as f64 / asks.max(1) as f64);
    println!("  AE cases routed to answer: {ae_to_answer}; off-label cases routed to answer: {off_to_answer}");
    report.print("  AE reports (classify adverse_event + ask cases expecting pharmacovigilance)");
    mention.print("  AE mentions (classify ae_mention)");
    for (cat, ms) in &misses {
        println!("\n  misses in {cat} ({}):", ms.len());
        for m in ms {
            println!("    {m}");
        }
    }
}
