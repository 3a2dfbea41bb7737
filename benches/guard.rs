//! Guard screening latency: `cargo bench --bench guard`.
//!
//! Criterion measures `screen_input` on every question of `evals/guard.jsonl`
//! (with each product's `LabelReference`) and `screen_output` on a sentence;
//! a separate timed pass prints p50/p99/max per question, the figure the
//! design budgets (under 1 ms p99 added per question).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use onlabel::guard::{Context, Guard, LabelReference};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn setup() -> (Guard, HashMap<String, LabelReference>, Vec<(String, Option<String>)>) {
    let guard = Guard::builtin().expect("builtin guard");
    let limits = onlabel::corpus::Limits::default();
    let corpus = onlabel::corpus::Corpus::load(&[root().join("../shared/data/pi"), root().join("corpora/demo")], limits, false).expect("labels");
    let passages = corpus.passages(limits);
    let mut labels = HashMap::new();
    for p in &passages {
        if !labels.contains_key(&p.product) {
            labels.insert(p.product.clone(), LabelReference::from_passages(&p.product, &passages));
        }
    }
    let suite = onlabel::eval::Suite::read(&root().join("evals/guard.jsonl")).expect("evals/guard.jsonl");
    let qs = suite.cases.into_iter().filter_map(|c| c.question.or(c.text).map(|q| (q, c.product))).collect();
    (guard, labels, qs)
}

fn screen(c: &mut Criterion) {
    let (guard, labels, qs) = setup();
    fn ctx<'a>(labels: &'a HashMap<String, LabelReference>, p: &'a Option<String>) -> Context<'a> {
        Context { product: p.as_deref(), label: p.as_deref().and_then(|p| labels.get(p)), embedding: None }
    }
    let humira = Some("humira".to_string());
    c.bench_function("screen_input/all guard.jsonl questions", |b| {
        b.iter(|| {
            for (q, p) in &qs {
                std::hint::black_box(guard.screen_input(q, &ctx(&labels, p)));
            }
        })
    });
    let long = &qs.iter().max_by_key(|(q, _)| q.len()).expect("questions").0;
    c.bench_function("screen_input/longest question", |b| b.iter(|| std::hint::black_box(guard.screen_input(long, &ctx(&labels, &humira)))));
    let sentence = "HUMIRA is indicated for reducing signs and symptoms in adult patients with active ankylosing spondylitis.";
    c.bench_function("screen_output/one sentence", |b| b.iter(|| std::hint::black_box(guard.screen_output(sentence, &ctx(&labels, &humira)))));
}

criterion_group!(benches, screen);

fn main() {
    let (guard, labels, qs) = setup();
    // Percentiles over many timed passes of every question.
    let mut times = Vec::new();
    for _ in 0..50 {
        for (q, p) in &qs {
            let ctx = Context { product: p.as_deref(), label: p.as_deref().and_then(|p| labels.get(p)), embedding: None };
            let t = Instant::now();
            std::hint::black_box(guard.screen_input(q, &ctx));
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "screen_input over {} screenings: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        times.len(),
        pct(0.50),
        pct(0.99),
        times[times.len() - 1]
    );
    benches();
    Criterion::default().configure_from_args().final_summary();
}
