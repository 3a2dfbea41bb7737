//! The machine's read-bandwidth ceiling, and the weight bytes a decode step
//! must read: the two numbers that turn decode tokens/s into "share of the
//! ceiling" (issue 23, points 2 and 5; `bash bench/all.sh` prints the share).
//!
//! ```text
//! cargo run --release --example bandwidth -- [MODEL.gguf]
//! ```
//!
//! 1. **Ceiling.** A streaming-read loop sums a buffer much larger than the
//!    caches (`ONLABEL_BW_MIB`, default 512 MiB; the L3 of a laptop or a
//!    server core complex is 8–64 MiB), split in equal contiguous slices over
//!    1 thread and over `ONLABEL_BENCH_THREADS` (default 2, the engines'
//!    count) threads, each reading its slice with four independent
//!    accumulators (so the adds are not the bottleneck and the compiler
//!    vectorises them). The buffer is written once first (no page faults or
//!    zero-page tricks in the timed loop). Each figure is the median of
//!    `ONLABEL_BENCH_RUNS` (default 3) passes, in GB/s (10^9 bytes).
//! 2. **Bytes per token.** The GGUF's tensors as stored: every weight matrix
//!    is read once per decode step, except the token embedding table, of
//!    which one row is read — unless the model has no `output.weight`
//!    (tied embeddings, as SmolLM2), when the output head reads all of it.
//!    The KV cache read is left out (at tg128 from an empty context it is a
//!    few MB per token for this model, a few percent).
//!
//! Prints one JSON object on stdout (`threads`, `gbps_1`, `gbps_n`,
//! `buffer_mib`, `weight_bytes_per_token`, `model`); a human line on stderr.

use std::path::PathBuf;
use std::time::Instant;

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Sums a slice with four independent accumulators.
fn sum(words: &[u64]) -> u64 {
    let mut acc = [0u64; 4];
    let chunks = words.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        acc[0] = acc[0].wrapping_add(c[0]);
        acc[1] = acc[1].wrapping_add(c[1]);
        acc[2] = acc[2].wrapping_add(c[2]);
        acc[3] = acc[3].wrapping_add(c[3]);
    }
    rest.iter().fold(acc[0] ^ acc[1] ^ acc[2] ^ acc[3], |a, &w| a.wrapping_add(w))
}

/// One pass over `buf` with `threads` threads; GB/s.
fn pass(buf: &[u64], threads: usize) -> f64 {
    let per = buf.len().div_ceil(threads);
    let t = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = buf.chunks(per).map(|slice| s.spawn(move || sum(std::hint::black_box(slice)))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).fold(0u64, u64::wrapping_add)
    });
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(total);
    (buf.len() * 8) as f64 / secs / 1e9
}

/// Bytes of weights a decode step reads (see the module doc).
fn weight_bytes(path: &std::path::Path) -> Result<u64, Box<dyn std::error::Error>> {
    let mut f = std::fs::File::open(path)?;
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f)?;
    let size = |t: &candle_core::quantized::gguf_file::TensorInfo| (t.shape.elem_count() / t.ggml_dtype.block_size() * t.ggml_dtype.type_size()) as u64;
    let tied = !ct.tensor_infos.contains_key("output.weight");
    let mut total = 0u64;
    for (name, t) in &ct.tensor_infos {
        if name == "token_embd.weight" && !tied {
            let rows = t.shape.dims().first().copied().unwrap_or(1).max(1) as u64;
            total += size(t) / rows;
        } else {
            total += size(t);
        }
    }
    Ok(total)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads = env_usize("ONLABEL_BENCH_THREADS", 2).max(1);
    let runs = env_usize("ONLABEL_BENCH_RUNS", 3).max(1);
    let mib = env_usize("ONLABEL_BW_MIB", 512).max(64);
    let model = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    let per_token = weight_bytes(&model).map_err(|e| format!("{}: {e} (run `bash models/fetch.sh`, or pass a GGUF path)", model.display()))?;

    let words = mib * 1024 * 1024 / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    // Warm: one untimed pass each way.
    pass(&buf, 1);
    pass(&buf, threads);
    let mut one = Vec::new();
    let mut n = Vec::new();
    for _ in 0..runs {
        one.push(pass(&buf, 1));
        n.push(pass(&buf, threads));
    }
    let (g1, gn) = (median(one), median(n));
    eprintln!(
        "read bandwidth over {mib} MiB: {g1:.1} GB/s on 1 thread, {gn:.1} GB/s on {threads}; decode reads {:.1} MB of weights per token ({})",
        per_token as f64 / 1e6,
        model.display()
    );
    println!(
        "{}",
        serde_json::json!({"threads": threads, "gbps_1": g1, "gbps_n": gn, "buffer_mib": mib, "weight_bytes_per_token": per_token,
            "model": model.display().to_string()})
    );
    Ok(())
}
