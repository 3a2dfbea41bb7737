//! Retrieval-path benchmark over every label in `../shared/data/pi/`:
//! ingest throughput (pages, passages per second) and `ask` latency p50/p95
//! on the questions of `evals/labels.jsonl`.
//!
//! Run with `taskset -c 0 cargo bench --bench retrieval` for the one-core figure.
//! Criterion reports means with confidence intervals; the percentile table is
//! printed from a separate timed pass over every eval question.

use std::path::PathBuf;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use onlabel::copilot::{Ask, Copilot};
use onlabel::corpus::{Corpus, Limits};
use onlabel::index::Index;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared_pi() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pi")
}

fn questions() -> Vec<(String, Option<String>)> {
    let suite = onlabel::eval::Suite::read(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("evals/labels.jsonl"))
        .expect("evals/labels.jsonl");
    suite.cases.into_iter().filter_map(|c| c.question.map(|q| (q, c.product))).collect()
}

fn ingest(c: &mut Criterion) {
    let limits = Limits::default();
    let dir = tempfile::tempdir().expect("tempdir");
    // One measured pass for the throughput line.
    let t = Instant::now();
    let corpus = Corpus::load(&[shared_pi()], limits, false).expect("load");
    let passages = corpus.passages(limits);
    Index::build(&dir.path().join("idx"), &passages, |_| {}).expect("build");
    let secs = t.elapsed().as_secs_f64();
    let pages: usize = corpus.documents.iter().map(|d| d.pages).sum();
    println!(
        "ingest: {} documents, {} passages, {} PDF pages in {:.3} s → {:.0} passages/s",
        corpus.documents.len(),
        passages.len(),
        pages,
        secs,
        passages.len() as f64 / secs
    );
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.bench_function("load+chunk+index all labels", |b| {
        b.iter(|| {
            let corpus = Corpus::load(&[shared_pi()], limits, false).expect("load");
            let passages = corpus.passages(limits);
            Index::build(&dir.path().join("idx"), &passages, |_| {}).expect("build");
        })
    });
    g.bench_function("load+chunk (PDF and XML parsing only)", |b| {
        b.iter(|| Corpus::load(&[shared_pi()], limits, false).expect("load").passages(limits).len())
    });
    g.finish();
}

fn ask(c: &mut Criterion) {
    let limits = Limits::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = Corpus::load(&[shared_pi()], limits, false).expect("load");
    Index::build(&dir.path().join("idx"), &corpus.passages(limits), |_| {}).expect("build");
    let copilot = Copilot::new(Index::open(&dir.path().join("idx")).expect("open"));
    let qs = questions();
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
    let req = |(q, p): &(String, Option<String>)| Ask { question: q.clone(), product: p.clone(), role: "rep".into(), as_of };
    // Percentiles over every question, 20 rounds.
    let mut lat = Vec::new();
    for _ in 0..20 {
        for q in &qs {
            let t = Instant::now();
            let a = copilot.ask(&req(q)).expect("ask");
            std::hint::black_box(a);
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!(
        "ask (retrieval path, composed answer, no guard): {} questions × 20 → p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms",
        qs.len(),
        onlabel::eval::percentile(&lat, 50.0),
        onlabel::eval::percentile(&lat, 95.0),
        onlabel::eval::percentile(&lat, 99.0)
    );
    // The path a rep's question takes in `onlabel serve`: the guard first,
    // with the learned intent head reading the question's MiniLM embedding
    // (computed once, shared with retrieval), then retrieval and the
    // extractive answer. Skipped, with a note, without the model files.
    let minilm = root().join("models/minilm");
    let measure = |copilot: &Copilot, what: &str| {
        let mut lat = Vec::new();
        for _ in 0..10 {
            for q in &qs {
                let t = Instant::now();
                std::hint::black_box(copilot.ask(&req(q)).expect("ask"));
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        println!(
            "ask ({what}): {} questions × 10 → p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms",
            qs.len(),
            onlabel::eval::percentile(&lat, 50.0),
            onlabel::eval::percentile(&lat, 95.0),
            onlabel::eval::percentile(&lat, 99.0)
        );
    };
    let full = || -> Result<Copilot, String> {
        let e = onlabel::index::Embedder::load(&minilm).map_err(|e| e.to_string())?;
        let guard = std::sync::Arc::new(onlabel::guard::Guard::builtin().expect("guard"));
        Ok(Copilot::new(Index::open(&dir.path().join("idx")).expect("open"))
            .with_embedder(e, onlabel::index::RetrievalMode::Bm25)
            .with_guard(guard, as_of)
            .expect("guard"))
    };
    match full() {
        Ok(c) => {
            measure(&c, "guard + intent head with the MiniLM embedding + retrieval, composed answer, the sentence head picks the lead");
            // The same path with the cross-encoder rescoring the head's best
            // candidates: the answer reps get by default.
            let ce = onlabel::copilot::extractive::cross::CrossEncoder::load(&minilm).expect("the cross-encoder loads");
            measure(&full().expect("again").with_cross(ce), "the same, the cross-encoder picks the lead sentence");
        }
        Err(err) => println!("note: {err}; the full-path figures need `bash models/fetch.sh`"),
    }
    let mut i = 0;
    c.bench_function("ask one eval question (round robin)", |b| {
        b.iter(|| {
            i = (i + 1) % qs.len();
            copilot.ask(&req(&qs[i])).expect("ask")
        })
    });
}

criterion_group!(benches, ingest, ask);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
