//! Quick speed probes of our engine.
//!
//! `cargo run --release --example llm_speed -- [N_PROMPT]`: our forward pass
//! vs candle's stock quantized_llama (prefill of N_PROMPT tokens, decode).
//! Env: `PREFILL_REPS` (prefills of the prompt to average, default 1),
//! `DECODE_STEPS` (default 32), `ONLY_OURS` (skip the reference). For the
//! side-by-side with llama.cpp use `bash bench/speed.sh`.
//!
//! `cargo run --release --example llm_speed -- concurrent [1,4,16]`: C
//! threads call `LocalModel::generate` at once, each on its own copilot-like
//! prompt (the approved prompt's fixed instructions, warmed once with
//! `warm_prefix`, then a label passage and an eval question), greedy, up to
//! `MAX_TOKENS` (80, the copilot's budget) tokens; every client runs
//! `ROUNDS` (2) prompts back to back. Prints one line per level: aggregate
//! generated tokens/s (all clients' tokens over the wall time), request
//! latency p50/p99, and a checksum of the generated texts (the same before
//! and after an engine change that leaves greedy outputs unchanged). The same
//! binary built before and after such a change, run in one script, gives the
//! before/after ratio (`bench/engine_concurrency.sh`).

use std::time::Instant;

use candle_core::{Device, Tensor};
use onlabel::llm::{GenerateOptions, LocalModel, Message};

fn main() -> anyhow::Result<()> {
    let path = std::path::Path::new("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("concurrent") {
        let levels: Vec<usize> =
            args.get(1).map(String::as_str).unwrap_or("1,4,16").split(',').filter_map(|s| s.trim().parse().ok()).collect();
        return concurrent(path, &levels);
    }
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(256);
    let m = LocalModel::load(path)?;
    let text = "The recommended dosage of the drug is 20 mg orally once daily with or without food. ".repeat(n / 16 + 1);
    let ids: Vec<u32> = m.tokenizer.encode(&text)?.into_iter().take(n).collect();
    let mut f = std::fs::File::open(path)?;
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f)?;
    let mut ours = onlabel::llm::Llama::load(&ct, &mut f, &Device::Cpu)?;
    let reps: usize = std::env::var("PREFILL_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let t = Instant::now();
    for _ in 0..reps {
        ours.truncate(0);
        ours.forward(&ids)?;
    }
    let pp = t.elapsed().as_secs_f64() / reps as f64;
    let steps: u32 = std::env::var("DECODE_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(32);
    let t = Instant::now();
    for i in 0..steps {
        ours.forward_logits(&[100 + i % 1000])?;
    }
    let tg = t.elapsed().as_secs_f64();
    println!("ours:      prefill {n} tok {:.1} tok/s, decode {:.1} tok/s", n as f64 / pp, steps as f64 / tg);
    if std::env::var_os("ONLY_OURS").is_some() {
        return Ok(());
    }
    let mut f = std::fs::File::open(path)?;
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f)?;
    let mut r = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(ct, &mut f, &Device::Cpu)?;
    let t = Instant::now();
    r.forward(&Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?, 0)?;
    let pp = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..32u32 {
        r.forward(&Tensor::new(&[100 + i], &Device::Cpu)?.unsqueeze(0)?, n + i as usize)?;
    }
    let tg = t.elapsed().as_secs_f64();
    println!("reference: prefill {n} tok {:.1} tok/s, decode {:.1} tok/s", n as f64 / pp, 32.0 / tg);
    Ok(())
}

/// The copilot's fixed instructions (`prompts/objection.j2`, system part).
const SYSTEM: &str = "You help a pharmaceutical sales rep answer a doctor. Use ONLY the numbered label passages. Answer in one \
    or two short sentences that copy the passage wording. End every sentence with the number of the passage it comes \
    from, like [1]. Never add facts that are not in the passages.";

/// Copilot-like prompts: the fixed system message, one label passage and one
/// eval question each (`evals/labels.jsonl`, answer cases).
fn prompts(m: &LocalModel, n: usize) -> anyhow::Result<(String, Vec<String>)> {
    let label = std::fs::read_to_string("../shared/data/pi/text/lipitor_atorvastatin_2014-01.txt")
        .or_else(|_| std::fs::read_to_string("/work/shared/data/pi/text/lipitor_atorvastatin_2014-01.txt"))?;
    let words: Vec<&str> = label.split_whitespace().collect();
    let questions: Vec<String> = std::fs::read_to_string("evals/labels.jsonl")?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("question").and_then(|q| q.as_str()).map(str::to_string))
        .collect();
    anyhow::ensure!(!questions.is_empty(), "no questions in evals/labels.jsonl");
    let system = Message { role: "system".into(), content: SYSTEM.into() };
    let chat = m.render_chat(&[system.clone()])?;
    let prefix = chat.split("<|im_start|>assistant").next().unwrap_or(&chat).to_string();
    let out = (0..n)
        .map(|i| {
            let start = (i * 211) % (words.len().saturating_sub(80)).max(1);
            let passage = words[start..(start + 70).min(words.len())].join(" ");
            let q = &questions[i % questions.len()];
            let user = Message { role: "user".into(), content: format!("Passages:\n[1] {passage}\n\nQuestion: {q}") };
            m.render_chat(&[system.clone(), user])
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((prefix, out))
}

fn concurrent(path: &std::path::Path, levels: &[usize]) -> anyhow::Result<()> {
    let max_tokens: usize = std::env::var("MAX_TOKENS").ok().and_then(|s| s.parse().ok()).unwrap_or(80);
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let m = LocalModel::load(path)?;
    let most = levels.iter().copied().max().unwrap_or(1);
    let (prefix, all) = prompts(&m, most * rounds)?;
    m.warm_prefix(&prefix)?;
    let opts = GenerateOptions { max_tokens, time_budget: std::time::Duration::from_secs(3600), ..Default::default() };
    // Warm-up: thread pool, first touch of the weights.
    m.generate(&all[0], &GenerateOptions { max_tokens: 4, ..opts.clone() }, |_| {})?;
    println!("| clients | requests | generated tok | wall s | aggregate tok/s | p50 ms | p99 ms | checksum |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for &c in levels {
        let barrier = std::sync::Barrier::new(c);
        let t0 = Instant::now();
        let results: Vec<(usize, String, f64)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..c)
                .map(|client| {
                    let (m, all, opts, barrier) = (&m, &all, &opts, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        let mut out = Vec::new();
                        for r in 0..rounds {
                            let p = &all[(client * rounds + r) % all.len()];
                            let t = Instant::now();
                            let g = m.generate(p, opts, |_| {}).expect("generate");
                            out.push((g.generated_tokens, g.text, t.elapsed().as_secs_f64() * 1e3));
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("client")).collect()
        });
        let wall = t0.elapsed().as_secs_f64();
        let tokens: usize = results.iter().map(|r| r.0).sum();
        let mut lat: Vec<f64> = results.iter().map(|r| r.2).collect();
        lat.sort_by(f64::total_cmp);
        let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
        // Order-independent checksum of (prompt index, text): the same set of outputs at every level.
        let mut texts: Vec<&str> = results.iter().map(|r| r.1.as_str()).collect();
        texts.sort();
        let sum = texts.iter().fold(0u64, |h, t| t.bytes().fold(h, |h, b| h.wrapping_mul(1_099_511_628_211).wrapping_add(b as u64)));
        println!(
            "| {c} | {} | {tokens} | {wall:.2} | {:.1} | {:.0} | {:.0} | {:016x} |",
            results.len(),
            tokens as f64 / wall,
            p(0.5),
            p(0.99),
            sum
        );
    }
    Ok(())
}
