//! Speed of OUR llama forward pass (`onlabel::llm::Llama`, candle kernels) and
//! of the copilot's generation path on the eval questions.
//!
//! Run it through `bash bench/speed.sh`, which runs llama.cpp's `llama-bench`
//! on the same GGUF file with the same thread count in the same run and prints
//! the side-by-side table. Alone: `cargo bench --bench llm`.
//!
//! Env:
//! - `ONLABEL_BENCH_THREADS` (default 2): candle's thread count (sets
//!   `RAYON_NUM_THREADS` before the first kernel runs);
//! - `ONLABEL_BENCH_RUNS` (default 3): repetitions; every row is a median;
//! - `ONLABEL_BENCH_QUESTIONS` (default 20): first N questions of
//!   `evals/labels.jsonl` (0 = skip the copilot rows);
//! - `ONLABEL_BENCH_MODEL` (default `models/SmolLM2-135M-Instruct.Q4_1.gguf`);
//! - `ONLABEL_BENCH_PI` (default `../shared/data/pi`): the labels to index;
//! - `ONLABEL_BENCH_JSON`: also write the results as JSON to this file;
//! - `ONLABEL_BENCH_ONLY` = `engine` or `copilot`: run one half;
//! - `ONLABEL_BENCH_PP` (`128,512,1024`), `ONLABEL_BENCH_TG` (128),
//!   `ONLABEL_BENCH_DEPTHS` (`0,512`): the engine rows (for quick probes).

use std::path::PathBuf;
use std::time::Instant;

use onlabel::copilot::{Ask, Copilot, Event, Mode};
use onlabel::corpus::{Corpus, Limits};
use onlabel::index::Index;
use onlabel::llm::{Llama, LocalModel};
use serde_json::json;

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    onlabel::eval::percentile(v, p)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Prompt tokens: real label text, tokenised, cycled to `n`.
fn text_tokens(m: &LocalModel, n: usize) -> Vec<u32> {
    let text = "Hepatotoxicity: monitor liver function tests (ALT, AST, bilirubin) before starting and periodically \
        during treatment. The recommended dosage is 200 mg orally once daily with or without food until disease \
        progression or unacceptable toxicity. Reduce the dose in patients with moderate renal impairment \
        (CrCl 30 to 59 mL/min). Embryo-fetal toxicity can cause fetal harm; advise females of reproductive \
        potential of the potential risk to a fetus and to use effective contraception. ";
    let ids = m.tokenizer.encode(text).expect("tokenize");
    ids.iter().copied().cycle().take(n).collect()
}

/// Greedy decode of `n` tokens from the model's current position; seconds.
fn decode(model: &mut Llama, first: u32, n: usize) -> f64 {
    let t = Instant::now();
    let mut next = first;
    for _ in 0..n {
        let l = model.forward(&[next]).expect("forward");
        next = Llama::argmax(&Llama::logits_vec(&l).expect("logits"));
    }
    t.elapsed().as_secs_f64()
}

struct Row {
    name: String,
    unit: &'static str,
    runs: Vec<f64>,
}

impl Row {
    fn json(&self) -> serde_json::Value {
        json!({"row": self.name, "unit": self.unit, "median": median(&self.runs), "runs": self.runs})
    }
}

fn engine(path: &std::path::Path, runs: usize) -> Vec<Row> {
    let lm = LocalModel::load(path).expect("model");
    let mut f = std::fs::File::open(path).expect("model");
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).expect("gguf");
    let mut model = Llama::load(&ct, &mut f, &candle_core::Device::Cpu).expect("load");
    let mut rows = Vec::new();
    // Warm-up: thread pool start, first-touch of the weights and KV cache.
    model.truncate(0);
    model.forward(&text_tokens(&lm, 64)).expect("warm-up");
    decode(&mut model, 1, 4);
    let sizes: Vec<usize> = std::env::var("ONLABEL_BENCH_PP")
        .unwrap_or_else(|_| "128,512,1024".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let tg = env_usize("ONLABEL_BENCH_TG", 128);
    let depths: Vec<usize> = std::env::var("ONLABEL_BENCH_DEPTHS")
        .unwrap_or_else(|_| "0,512".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for n in sizes {
        let ids = text_tokens(&lm, n);
        let mut r = Row { name: format!("pp{n}"), unit: "tok/s", runs: Vec::new() };
        for _ in 0..runs {
            model.truncate(0);
            let t = Instant::now();
            model.forward(&ids).expect("forward");
            r.runs.push(n as f64 / t.elapsed().as_secs_f64());
        }
        eprintln!("  ours {:<14} {:>8.1} tok/s  {:?}", r.name, median(&r.runs), r.runs);
        rows.push(r);
    }
    for depth in depths {
        let ctx = text_tokens(&lm, depth.max(1));
        let mut r = Row { name: if depth == 0 { format!("tg{tg}") } else { format!("tg{tg}@d{depth}") }, unit: "tok/s", runs: Vec::new() };
        for _ in 0..runs {
            model.truncate(0);
            if depth > 0 {
                model.forward(&ctx).expect("context");
            }
            let s = decode(&mut model, ctx[0], tg);
            r.runs.push(tg as f64 / s);
        }
        eprintln!("  ours {:<14} {:>8.1} tok/s  {:?}", r.name, median(&r.runs), r.runs);
        rows.push(r);
    }
    rows
}

struct QuestionRun {
    first_sentence: f64,
    /// The model's first verified sentence (none: no model ran, or none survived).
    first_generated: Option<f64>,
    /// The model was not run: the quoted answer held every sentence it would be shown.
    skipped: bool,
    first_token: Option<f64>,
    total: f64,
    prompt_tokens: usize,
    generated_tokens: usize,
    generated: bool,
}

fn copilot(path: &std::path::Path, runs: usize, n_questions: usize) -> serde_json::Value {
    let pi = std::env::var("ONLABEL_BENCH_PI").map(PathBuf::from).unwrap_or_else(|_| root().join("../shared/data/pi"));
    let limits = Limits::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let corpus = Corpus::load(&[pi.clone()], limits, false).expect("load labels");
    Index::build(&dir.path().join("idx"), &corpus.passages(limits), |_| {}).expect("index");
    eprintln!("  indexed {} in {:.1} s", pi.display(), t.elapsed().as_secs_f64());
    // As `onlabel ask` builds it (cli::copilot).
    let model = std::sync::Arc::new(LocalModel::load(path).expect("model"));
    let prompt = onlabel::prompts::PromptFile::read(&root().join("prompts/objection.j2")).expect("prompt");
    let g = onlabel::copilot::Grounded::new(model.clone(), prompt).expect("grounded");
    let copilot = Copilot::new(Index::open(&dir.path().join("idx")).expect("open")).with_model(g);
    let suite = onlabel::eval::Suite::read(&root().join("evals/labels.jsonl")).expect("evals/labels.jsonl");
    let qs: Vec<(String, String, Option<String>)> = suite
        .cases
        .into_iter()
        .filter_map(|c| c.question.map(|q| (c.id, q, c.product)))
        .take(n_questions)
        .collect();
    let as_of = chrono::Local::now().date_naive();
    // Rounds over all questions, so that consecutive calls share only the
    // prompt's fixed prefix in the KV cache, as in use.
    let mut per_q: Vec<Vec<QuestionRun>> = (0..qs.len()).map(|_| Vec::new()).collect();
    for round in 0..runs {
        for (i, (_, q, product)) in qs.iter().enumerate() {
            let ask = Ask { question: q.clone(), product: product.clone(), role: "rep".into(), as_of };
            let t = Instant::now();
            let a = copilot.ask_streaming(&ask, &mut |_: Event| {}).expect("ask");
            // Only verified sentences leave the copilot: count the answer's tokens when it was generated.
            let streamed = if a.mode == Mode::Generated { a.answer.clone() } else { String::new() };
            let total = t.elapsed().as_secs_f64() * 1e3;
            // Prompt size: the same selection and rendering the generator does.
            let g = copilot.grounded().expect("grounded");
            let search = copilot
                .index()
                .search(q, &onlabel::index::Filter::for_role("rep", product.as_deref(), as_of), copilot.top_k)
                .expect("search");
            let shown = g.select(&search, &search.hits, &onlabel::copilot::Extractive::default());
            let prompt_tokens = if shown.is_empty() {
                0
            } else {
                model.tokenizer.encode(&g.render(q, &shown).expect("render")).expect("tokenize").len()
            };
            let generated_tokens = if streamed.is_empty() { 0 } else { model.tokenizer.encode(&streamed).expect("tok").len() };
            let run = QuestionRun {
                first_sentence: a.timings_ms.first_sentence.unwrap_or(f64::NAN),
                first_generated: a.timings_ms.first_generated,
                skipped: a.route == onlabel::copilot::Route::Answer && a.model.is_none(),
                first_token: a.timings_ms.first_token,
                total,
                prompt_tokens,
                generated_tokens,
                generated: a.mode == Mode::Generated,
            };
            if round == 0 {
                eprintln!(
                    "  {:<16} first sentence {:>7.1} ms, first generated {:>7} ms, first token {:>7} ms, total {:>7.1} ms, prompt {:>4} tok, generated {:>3} tok, {}",
                    qs[i].0,
                    run.first_sentence,
                    run.first_generated.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into()),
                    run.first_token.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into()),
                    run.total,
                    run.prompt_tokens,
                    run.generated_tokens,
                    if run.generated { "generated" } else if run.skipped { "quoted, model skipped" } else { "quoted" }
                );
            }
            per_q[i].push(run);
        }
    }
    // Per question: median over rounds; then percentiles over questions.
    let col = |f: &dyn Fn(&QuestionRun) -> Option<f64>| -> Vec<f64> {
        per_q
            .iter()
            .filter_map(|rs| {
                let v: Vec<f64> = rs.iter().filter_map(f).filter(|x| x.is_finite()).collect();
                (!v.is_empty()).then(|| median(&v))
            })
            .collect()
    };
    let first_sentence = col(&|r| Some(r.first_sentence));
    let first_generated = col(&|r| r.first_generated);
    let first_token = col(&|r| r.first_token);
    let total = col(&|r| Some(r.total));
    let prompt = col(&|r| (r.prompt_tokens > 0).then_some(r.prompt_tokens as f64));
    let gen = col(&|r| (r.generated_tokens > 0).then_some(r.generated_tokens as f64));
    let n_generated = per_q.iter().filter(|rs| rs.first().is_some_and(|r| r.generated)).count();
    let n_skipped = per_q.iter().filter(|rs| rs.first().is_some_and(|r| r.skipped)).count();

    // The same prompts through the bare engine, cold (no prefix reuse): the
    // like-for-like comparison with llama.cpp on the same token counts.
    let mut cold_prefill = Vec::new();
    let mut cold_total = Vec::new();
    {
        let mut f = std::fs::File::open(path).expect("model");
        let ct = candle_core::quantized::gguf_file::Content::read(&mut f).expect("gguf");
        let mut m = Llama::load(&ct, &mut f, &candle_core::Device::Cpu).expect("load");
        let p = median(&prompt).round() as usize;
        let g = median(&gen).round().max(1.0) as usize;
        if p > 0 {
            let ids = text_tokens(&model, p);
            for _ in 0..runs {
                m.truncate(0);
                let t = Instant::now();
                let l = m.forward(&ids).expect("forward");
                let first = Llama::argmax(&Llama::logits_vec(&l).expect("logits"));
                cold_prefill.push(t.elapsed().as_secs_f64() * 1e3);
                decode(&mut m, first, g - 1);
                cold_total.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let s = |v: &[f64]| json!({"p50": pct(v, 50.0), "p95": pct(v, 95.0), "n": v.len()});
    json!({
        "questions": qs.len(),
        "generated": n_generated,
        "runs": runs,
        "model_skipped": n_skipped,
        "first_sentence_ms": s(&first_sentence),
        "first_generated_ms": s(&first_generated),
        "first_token_ms": s(&first_token),
        "total_ms": s(&total),
        "prompt_tokens": s(&prompt),
        "generated_tokens": s(&gen),
        "engine_cold": {
            "prompt_tokens": median(&prompt).round(),
            "generated_tokens": median(&gen).round().max(1.0),
            "ttft_ms": median(&cold_prefill),
            "total_ms": median(&cold_total),
            "ttft_runs": cold_prefill,
            "total_runs": cold_total,
        }
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let threads = env_usize("ONLABEL_BENCH_THREADS", 2);
    if std::env::var("RAYON_NUM_THREADS").is_err() {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let threads = env_usize("RAYON_NUM_THREADS", threads);
    let runs = env_usize("ONLABEL_BENCH_RUNS", 3).max(1);
    let n_questions = env_usize("ONLABEL_BENCH_QUESTIONS", 20);
    let only = std::env::var("ONLABEL_BENCH_ONLY").unwrap_or_default();
    let path = std::env::var("ONLABEL_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    eprintln!("onlabel llm bench: {} threads, {runs} runs, model {}", threads, path.display());
    let mut out = json!({"threads": threads, "runs": runs, "model": path.display().to_string()});
    if only != "copilot" {
        let rows = engine(&path, runs);
        out["engine"] = rows.iter().map(Row::json).collect();
        println!("\n{:<14} {:>12}", "row (ours)", "median tok/s");
        for r in &rows {
            println!("{:<14} {:>12.1}", r.name, median(&r.runs));
        }
    }
    if only != "engine" && n_questions > 0 {
        let c = copilot(&path, runs, n_questions);
        println!("\ncopilot on {} eval questions ({} answered by the model), median of {runs} runs per question:", c["questions"], c["generated"]);
        println!("  the model was skipped on {} (the quoted answer held every sentence it would be shown)", c["model_skipped"]);
        for k in ["first_sentence_ms", "first_generated_ms", "first_token_ms", "total_ms", "prompt_tokens", "generated_tokens"] {
            println!("  {:<18} p50 {:>8.1}  p95 {:>8.1}", k, c[k]["p50"].as_f64().unwrap_or(f64::NAN), c[k]["p95"].as_f64().unwrap_or(f64::NAN));
        }
        let e = &c["engine_cold"];
        println!(
            "  engine, cold, {} prompt + {} generated tokens: first token {:.1} ms, total {:.1} ms",
            e["prompt_tokens"], e["generated_tokens"], e["ttft_ms"].as_f64().unwrap_or(f64::NAN), e["total_ms"].as_f64().unwrap_or(f64::NAN)
        );
        out["copilot"] = c;
    }
    if let Ok(p) = std::env::var("ONLABEL_BENCH_JSON") {
        std::fs::write(&p, serde_json::to_string_pretty(&out).expect("json")).expect("write json");
    }
}
