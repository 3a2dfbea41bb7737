//! A bounded load generator for OnLabel's server and for llama.cpp's
//! `llama-server`, on loopback only (`bench/load.sh` runs it).
//!
//! N client threads share one request counter and stop at `--requests` or
//! `--duration-secs`, whichever comes first; each request has a timeout.
//! Every response is recorded (status, latency, tokens generated); the run
//! prints one JSON object on stdout with requests/s, latency p50/p99,
//! generated tokens/s across clients, status counts, and the server's
//! memory (largest `VmRSS` sampled during the run and `VmHWM` at its end,
//! from `/proc/PID/status`). It exits 1 when a response was a 5xx other
//! than the documented overload answer (503 with `Retry-After`), a 429/503
//! came without `Retry-After`, or a request failed at the transport level.
//!
//! Targets:
//! - `--target onlabel`: `POST /api/v1/ask` with `{"question", "product"}`
//!   (`--extractive` adds `"extractive": true`: the retrieval-only path), a
//!   bearer token; tokens are the answer's `generated_tokens`.
//! - `--target llama`: `POST /completion` with the very prompt OnLabel's
//!   model gets for the same question, rendered here through the library
//!   (open the index, retrieve as `ask` does, select the passages and render
//!   the approved prompt with `Grounded::render`), greedy, the same
//!   `n_predict` as our `max_tokens` and the same stop string; tokens are
//!   llama-server's `tokens_predicted`.
//!
//! Questions: the `question` of every case whose expected route is
//! `answer` in the given suites (`evals/demo.jsonl`, `evals/labels.jsonl`;
//! never the sealed ones), in order, cycled.
//!
//! ```text
//! cargo run --release --example loadgen -- --target onlabel --url http://127.0.0.1:8089 \
//!     --token "$TOKEN" --clients 4 --requests 40 --duration-secs 60 --pid "$SERVER_PID" \
//!     --suite evals/demo.jsonl
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

/// Command line.
#[derive(Debug, Parser)]
struct Args {
    /// `onlabel` or `llama`.
    #[arg(long)]
    target: String,
    /// Base URL of the server (loopback only).
    #[arg(long)]
    url: String,
    /// Bearer token (onlabel).
    #[arg(long, env = "ONLABEL_TOKEN", default_value = "")]
    token: String,
    /// Ask for the extractive answer only (the retrieval path; onlabel).
    #[arg(long)]
    extractive: bool,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Most requests in all.
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// Most seconds for the whole run (no request starts after it).
    #[arg(long, default_value_t = 120)]
    duration_secs: u64,
    /// Requests sent first and not measured (warm caches, first touches).
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Timeout of one request, seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// The server's process id, for its memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Eval suites to take questions from.
    #[arg(long = "suite", default_values_t = vec!["evals/demo.jsonl".to_string()])]
    suites: Vec<String>,
    /// Index to render prompts from (llama).
    #[arg(long, default_value = "data/demo-index")]
    index: PathBuf,
    /// Prompt template (llama).
    #[arg(long, default_value = "prompts/objection.j2")]
    prompt: PathBuf,
    /// GGUF model, for its tokenizer and chat template (llama).
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    model: PathBuf,
    /// Tokens to generate at most (llama; OnLabel's max_tokens is 80).
    #[arg(long, default_value_t = 80)]
    n_predict: usize,
    /// A label for the JSON output (e.g. `generated`).
    #[arg(long, default_value = "")]
    label: String,
}

/// One question of a suite.
#[derive(Debug, Clone)]
struct Question {
    question: String,
    product: Option<String>,
    /// The rendered prompt (llama only).
    prompt: Option<String>,
}

/// One response.
#[derive(Debug, Clone)]
struct Sample {
    status: u16,
    ms: f64,
    tokens: usize,
    retry_after: bool,
    generated: bool,
    error: Option<String>,
}

fn questions(suites: &[String]) -> anyhow::Result<Vec<Question>> {
    let mut out = Vec::new();
    for s in suites {
        anyhow::ensure!(!s.contains("sealed"), "{s}: sealed suites are not for load tests");
        let text = std::fs::read_to_string(s).map_err(|e| anyhow::anyhow!("{s}: {e}"))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)?;
            let route = &v["expect"]["route"];
            let answer = route == "answer" || route.as_array().is_some_and(|a| a.iter().any(|r| r == "answer"));
            if v["task"] != "ask" || !answer {
                continue;
            }
            if let Some(q) = v["question"].as_str() {
                out.push(Question { question: q.to_string(), product: v["product"].as_str().map(str::to_string), prompt: None });
            }
        }
    }
    anyhow::ensure!(!out.is_empty(), "no answer-route questions in {suites:?}");
    Ok(out)
}

/// The prompts OnLabel's model gets for these questions: questions the
/// copilot answers without the model (escalations, nothing retrieved) are
/// dropped, as OnLabel generates nothing for them either.
fn render(args: &Args, qs: Vec<Question>) -> anyhow::Result<Vec<Question>> {
    use onlabel::copilot::{Ask, Copilot, Extractive, Grounded};
    use onlabel::index::{Filter, Index};
    let model = Arc::new(onlabel::llm::LocalModel::load(&args.model)?);
    let prompt = onlabel::prompts::PromptFile::read(&args.prompt)?;
    let g = Grounded::new(model, prompt)?;
    let guard = Arc::new(onlabel::guard::Guard::builtin()?);
    let as_of = chrono::Local::now().date_naive();
    let copilot = Copilot::new(Index::open(&args.index)?).with_guard(guard, as_of)?;
    let mut out = Vec::new();
    for mut q in qs {
        let ask = Ask { question: q.question.clone(), product: q.product.clone(), role: "rep".into(), as_of };
        let a = copilot.ask(&ask)?;
        if a.route != onlabel::copilot::Route::Answer {
            continue;
        }
        let filter = Filter::for_role("rep", q.product.as_deref(), as_of);
        let search = copilot.retrieve(q.question.trim(), &filter)?;
        let shown = g.select(&search, &search.hits, &Extractive::default());
        if shown.is_empty() {
            continue;
        }
        q.prompt = Some(g.render(q.question.trim(), &shown)?);
        out.push(q);
    }
    anyhow::ensure!(!out.is_empty(), "no question reaches the model");
    Ok(out)
}

fn one(agent: &ureq::Agent, args: &Args, q: &Question) -> Sample {
    let t = Instant::now();
    let (url, body) = if args.target == "llama" {
        (
            format!("{}/completion", args.url),
            json!({
                "prompt": q.prompt.as_deref().unwrap_or(""),
                "n_predict": args.n_predict,
                "temperature": 0.0,
                "top_k": 1,
                "stop": ["\n\n"],
                "cache_prompt": true,
                "stream": false,
            }),
        )
    } else {
        let mut b = json!({"question": q.question, "product": q.product});
        if args.extractive {
            b["extractive"] = json!(true);
        }
        (format!("{}/api/v1/ask", args.url), b)
    };
    let mut req = agent.post(&url).header("Content-Type", "application/json");
    if !args.token.is_empty() {
        req = req.header("Authorization", &format!("Bearer {}", args.token));
    }
    match req.send_json(&body) {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp.headers().contains_key("retry-after");
            let v: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let (tokens, generated) = if args.target == "llama" {
                let n = v["tokens_predicted"].as_u64().unwrap_or(0) as usize;
                (n, n > 0)
            } else {
                let n = v["generated_tokens"].as_u64().unwrap_or(0) as usize;
                (n, v["mode"] == "generated")
            };
            Sample { status, ms, tokens, retry_after, generated, error: None }
        }
        Err(e) => Sample { status: 0, ms: t.elapsed().as_secs_f64() * 1e3, tokens: 0, retry_after: false, generated: false, error: Some(e.to_string()) },
    }
}

/// `(VmRSS, VmHWM)` of a process, KiB.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.target == "onlabel" || args.target == "llama", "--target is onlabel or llama");
    let host = args.url.trim_start_matches("http://").split(['/', ':']).next().unwrap_or("");
    anyhow::ensure!(
        host == "localhost" || host.starts_with("127.") || host == "[::1]",
        "load tests target loopback only, not {host}"
    );
    let mut qs = questions(&args.suites)?;
    if args.target == "llama" {
        qs = render(&args, qs)?;
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(args.timeout_secs)))
        .build()
        .into();
    for i in 0..args.warmup {
        let s = one(&agent, &args, &qs[i % qs.len()]);
        if let Some(e) = s.error {
            anyhow::bail!("warm-up request failed: {e}");
        }
    }
    let deadline = Duration::from_secs(args.duration_secs);
    let counter = AtomicUsize::new(0);
    let samples = Mutex::new(Vec::new());
    let done = std::sync::atomic::AtomicBool::new(false);
    let peak_rss = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        if let Some(pid) = args.pid {
            let (done, peak_rss) = (&done, &peak_rss);
            s.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if let Some((rss, _)) = memory(pid) {
                        peak_rss.fetch_max(rss as usize, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
        let clients: Vec<_> = (0..args.clients)
            .map(|_| {
                let (agent, args, qs, counter, samples) = (&agent, &args, &qs, &counter, &samples);
                s.spawn(move || loop {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    if i >= args.requests || t0.elapsed() >= deadline {
                        break;
                    }
                    let sample = one(agent, args, &qs[(args.warmup + i) % qs.len()]);
                    samples.lock().expect("samples").push(sample);
                })
            })
            .collect();
        for c in clients {
            let _ = c.join();
        }
        done.store(true, Ordering::Relaxed);
    });
    let wall = t0.elapsed().as_secs_f64();
    let samples = samples.into_inner().expect("samples");
    let mut lat: Vec<f64> = samples.iter().map(|s| s.ms).collect();
    lat.sort_by(f64::total_cmp);
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for s in &samples {
        *statuses.entry(if s.status == 0 { "error".into() } else { s.status.to_string() }).or_default() += 1;
    }
    let bad: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.error.is_some()
                || (s.status >= 500 && s.status != 503)
                || ((s.status == 503 || s.status == 429) && !s.retry_after)
        })
        .collect();
    let fivexx = samples.iter().filter(|s| s.status >= 500).count();
    let overload = samples.iter().filter(|s| (s.status == 503 || s.status == 429) && s.retry_after).count();
    let ok = samples.iter().filter(|s| s.status == 200).count();
    let tokens: usize = samples.iter().map(|s| s.tokens).sum();
    let mem = args.pid.and_then(memory);
    let out = json!({
        "label": args.label,
        "target": args.target,
        "path": if args.extractive { "retrieval" } else { "generated" },
        "clients": args.clients,
        "requests": samples.len(),
        "ok": ok,
        "wall_s": wall,
        "req_per_s": ok as f64 / wall,
        "p50_ms": percentile(&lat, 50.0),
        "p99_ms": percentile(&lat, 99.0),
        "generated_tokens": tokens,
        "tokens_per_s": tokens as f64 / wall,
        "generated_answers": samples.iter().filter(|s| s.generated).count(),
        "statuses": statuses,
        "fivexx": fivexx,
        "overload_answers": overload,
        "bad": bad.len(),
        "first_error": bad.first().map(|s| s.error.clone().unwrap_or_else(|| format!("status {}", s.status))),
        "peak_rss_kib": peak_rss.load(Ordering::Relaxed),
        "hwm_kib": mem.map(|m| m.1),
        "questions": qs.len(),
    });
    println!("{out}");
    eprintln!(
        "[loadgen] {} {} c={} n={} ok={} {:.2} req/s p50 {:.0} ms p99 {:.0} ms {:.1} tok/s bad={}",
        args.target,
        out["path"].as_str().unwrap_or(""),
        args.clients,
        samples.len(),
        ok,
        ok as f64 / wall,
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        tokens as f64 / wall,
        bad.len()
    );
    if !bad.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
