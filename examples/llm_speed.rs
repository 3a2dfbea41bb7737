//! Quick speed probe of our forward pass vs candle's stock quantized_llama:
//! `cargo run --release --example llm_speed -- [N_PROMPT]`.
//!
//! Env: `PREFILL_REPS` (prefills of the prompt to average, default 1),
//! `DECODE_STEPS` (default 32), `ONLY_OURS` (skip the reference). For the
//! side-by-side with llama.cpp use `bash bench/speed.sh`.

use std::time::Instant;

use candle_core::{Device, Tensor};

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let path = std::path::Path::new("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let m = onlabel::llm::LocalModel::load(path)?;
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
