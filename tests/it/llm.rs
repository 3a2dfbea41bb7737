//! The real model: GGUF loading, tokenizer parity with llama.cpp, chat template, generation.

use std::path::PathBuf;
use std::sync::OnceLock;

use onlabel::llm::{GenerateOptions, LocalModel, Message};

pub fn model_path() -> PathBuf {
    crate::harness::root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// One model per test binary (loading takes a fraction of a second, but the tests share it).
pub fn model() -> &'static LocalModel {
    static M: OnceLock<LocalModel> = OnceLock::new();
    M.get_or_init(|| LocalModel::load(&model_path()).expect("run `bash models/fetch.sh` first"))
}

#[test]
fn tokenizer_matches_llama_cpp() {
    let m = model();
    // llama.cpp with SmolLM2's GGUF (the issue's reference ids).
    assert_eq!(m.tokenizer.encode("Hello, what is the recommended dose?").unwrap(), [19556, 28, 732, 314, 260, 4947, 8771, 47]);
    // Digits are split one by one (the smollm pre-tokenizer).
    let ids = m.tokenizer.encode("40 mg").unwrap();
    assert_eq!(m.tokenizer.decode(&ids).unwrap(), "40 mg");
    assert_eq!(ids.len(), 3, "{ids:?}"); // "4", "0", " mg"
    // Special tokens of the chat template are single tokens.
    assert_eq!(m.tokenizer.encode("<|im_start|>user\nHi<|im_end|>").unwrap()[0], 1);
    assert_eq!(*m.tokenizer.encode("<|im_start|>user\nHi<|im_end|>").unwrap().last().unwrap(), 2);
}

#[test]
fn chat_template_comes_from_the_gguf() {
    let m = model();
    let p = m.render_chat(&[Message { role: "system".into(), content: "Be brief.".into() }, Message { role: "user".into(), content: "Hi".into() }]).unwrap();
    assert_eq!(p, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    assert!(m.id().starts_with("SmolLM2-135M-Instruct.Q4_1.gguf sha256:b179c952"), "{}", m.id());
}

#[test]
fn greedy_generation_is_deterministic_and_streams() {
    // Its own instance: the shared one's KV cache is used by other tests in parallel.
    let m = &LocalModel::load(&model_path()).unwrap();
    let p = m.render_chat(&[Message { role: "user".into(), content: "What is the capital of France?".into() }]).unwrap();
    // A generous wall clock: determinism is about tokens, not about a loaded CI machine.
    let opts = GenerateOptions { max_tokens: 12, time_budget: std::time::Duration::from_secs(600), ..Default::default() };
    let mut streamed = String::new();
    let a = m.generate(&p, &opts, |t| streamed.push_str(t)).unwrap();
    let b = m.generate(&p, &opts, |_| {}).unwrap();
    assert_eq!(a.text, b.text);
    assert_eq!(streamed, a.text);
    assert!(!a.text.trim().is_empty(), "{:?}", a.text);
    // The second call reuses the whole prompt but its last token.
    assert_eq!(b.reused_tokens, b.prompt_tokens - 1);
}

#[test]
fn budgets_stop_generation() {
    let m = model();
    let p = m.render_chat(&[Message { role: "user".into(), content: "Count from one to one hundred.".into() }]).unwrap();
    let g = m.generate(&p, &GenerateOptions { max_tokens: 5, time_budget: std::time::Duration::from_secs(600), ..Default::default() }, |_| {}).unwrap();
    assert_eq!(g.generated_tokens, 5);
    assert_eq!(g.stop, onlabel::llm::StopReason::MaxTokens);
    let g = m.generate(&p, &GenerateOptions { max_tokens: 500, time_budget: std::time::Duration::from_millis(1), ..Default::default() }, |_| {}).unwrap();
    assert_eq!(g.stop, onlabel::llm::StopReason::TimeBudget);
}

#[test]
fn bad_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"this is not a gguf file").unwrap();
    let e = LocalModel::load(&junk).unwrap_err().to_string();
    assert!(e.contains("junk.gguf") && e.contains("not a valid GGUF"), "{e}");
    let bytes = std::fs::read(model_path()).unwrap();
    let cut = dir.path().join("truncated.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = LocalModel::load(&cut).unwrap_err().to_string();
    assert!(e.contains("truncated.gguf"), "{e}");
    let e = LocalModel::load(&dir.path().join("missing.gguf")).unwrap_err().to_string();
    assert!(e.contains("missing.gguf"), "{e}");
}

/// Greedy tokens from candle's stock `quantized_llama` (the reference path),
/// with the logits of the prompt's last position and of the first decode step.
pub fn reference_greedy(prompt_ids: &[u32], n: usize) -> (Vec<u32>, Vec<f32>, Vec<f32>) {
    use candle_core::{Device, Tensor};
    use candle_transformers::models::quantized_llama::ModelWeights;
    let mut f = std::fs::File::open(model_path()).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let mut m = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    let x = Tensor::new(prompt_ids, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let logits = m.forward(&x, 0).unwrap().squeeze(0).unwrap();
    let first: Vec<f32> = logits.to_vec1().unwrap();
    let mut out = Vec::new();
    let mut next = onlabel::llm::Llama::argmax(&first);
    let mut step1 = Vec::new();
    for i in 0..n {
        out.push(next);
        let x = Tensor::new(&[next], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let l: Vec<f32> = m.forward(&x, prompt_ids.len() + i).unwrap().squeeze(0).unwrap().to_vec1().unwrap();
        next = onlabel::llm::Llama::argmax(&l);
        if i == 0 {
            step1 = l;
        }
    }
    (out, first, step1)
}

#[test]
fn our_forward_pass_matches_the_reference() {
    let m = model();
    let p = m.render_chat(&[Message { role: "user".into(), content: "What is the capital of France?".into() }]).unwrap();
    let ids = m.tokenizer.encode(&p).unwrap();
    let (ref_ids, _, _) = reference_greedy(&ids, 12);
    let ours = m.generate(&p, &GenerateOptions { max_tokens: 12, time_budget: std::time::Duration::from_secs(600), ..Default::default() }, |_| {}).unwrap();
    let ours_ids = m.tokenizer.encode(&ours.text).unwrap();
    assert_eq!(m.tokenizer.decode(&ref_ids).unwrap(), ours.text, "reference vs ours ({ours_ids:?} vs {ref_ids:?})");
}

/// Issue 5's correctness check: on 10 prompts of 200+ tokens built from a real
/// label, our optimised forward pass agrees with candle's stock
/// `quantized_llama` (the reference): last-position logits within a stated
/// tolerance, and greedy outputs equal on the first 32 tokens for at least 9
/// of the 10 prompts. Both our prefill (candle ops with our Q4_1 kernel) and
/// our decode path (plain slices, our kernels) reproduce the reference's
/// floating-point order, so the same tolerance holds for the logits of the
/// first decoded token. (A decode path with merely "close" arithmetic drifts
/// fast: activations are re-quantized to Q8_1 at every matrix, so a last-bit
/// difference becomes a rounding flip; such a path agreed on 32 tokens for
/// 1 prompt in 10.)
#[test]
fn optimised_path_agrees_with_the_reference_on_long_prompts() {
    /// Largest absolute difference accepted between last-position logits (they span about ±30).
    const TOLERANCE: f32 = 0.05;
    let m = model();
    let text = std::fs::read_to_string(crate::harness::shared_data().join("pi/text/lipitor_atorvastatin_2014-01.txt")).unwrap();
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut agree = 0;
    for i in 0..10 {
        let chunk = words[i * 400..i * 400 + 190].join(" ");
        let p = m.render_chat(&[Message { role: "user".into(), content: format!("Summarize: {chunk}") }]).unwrap();
        let ids = m.tokenizer.encode(&p).unwrap();
        assert!(ids.len() >= 200, "prompt {i} has {} tokens", ids.len());
        let (ref_ids, ref_logits, ref_step1) = reference_greedy(&ids, 32);
        let mut f = std::fs::File::open(model_path()).unwrap();
        let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
        let mut ours = onlabel::llm::Llama::load(&ct, &mut f, &candle_core::Device::Cpu).unwrap();
        let logits = onlabel::llm::Llama::logits_vec(&ours.forward(&ids).unwrap()).unwrap();
        let max_diff = logits.iter().zip(&ref_logits).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max_diff <= TOLERANCE, "prompt {i}: last-position logits differ by {max_diff}");
        let mut out = Vec::new();
        let mut next = onlabel::llm::Llama::argmax(&logits);
        let mut step_diff = f32::NAN;
        for step in 0..32 {
            out.push(next);
            let l = ours.forward_logits(&[next]).unwrap();
            if step == 0 && next == ref_ids[0] {
                step_diff = l.iter().zip(&ref_step1).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(step_diff <= TOLERANCE, "prompt {i}: first decode step logits differ by {step_diff}");
            }
            next = onlabel::llm::Llama::argmax(l);
        }
        let first_diff = out.iter().zip(&ref_ids).position(|(a, b)| a != b);
        eprintln!(
            "prompt {i}: {} tokens, max logit diff prefill {max_diff:.4} decode {step_diff:.4}, first differing token {first_diff:?}",
            ids.len()
        );
        if out == ref_ids {
            agree += 1;
        }
    }
    assert!(agree >= 9, "greedy outputs agreed on 32 tokens for only {agree}/10 prompts");
}

/// Issue 23, point 3: the causal prefill attention gives the very logits
/// (every bit) of the candle operations it replaces, on a prompt of over
/// 1,024 tokens (several of `gemm`'s depth blocks, the softmax sum's tail
/// beyond the last 32-lane step), read in one forward pass and in chunks of
/// 64 after a prefix — and the greedy continuation is the same.
#[test]
fn issue23_3_causal_prefill_has_the_bits_of_the_candle_ops_past_1024_tokens() {
    let long = label_prompts(model(), 1, 1100).remove(0);
    let ids = model().tokenizer.encode(&long).unwrap();
    assert!(ids.len() > 1100, "{} prompt tokens", ids.len());
    let ids = &ids[..1100];
    let mut f = std::fs::File::open(model_path()).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let mut llama = onlabel::llm::Llama::load(&ct, &mut f, &candle_core::Device::Cpu).unwrap();
    let run = |llama: &mut onlabel::llm::Llama, causal: bool, chunk: usize| -> (Vec<f32>, Vec<u32>) {
        llama.set_causal_prefill(causal);
        let mut cache = llama.new_cache(ids.len() + 8);
        let mut logits = Vec::new();
        for part in ids.chunks(chunk) {
            logits = llama.forward_in(&mut cache, part).unwrap().to_vec();
        }
        let mut next = onlabel::llm::Llama::argmax(&logits);
        let mut out = vec![next];
        for _ in 0..6 {
            next = onlabel::llm::Llama::argmax(llama.forward_in(&mut cache, &[next]).unwrap());
            out.push(next);
        }
        (logits, out)
    };
    for chunk in [ids.len(), 64] {
        let (reference, ref_tokens) = run(&mut llama, false, chunk);
        let (causal, tokens) = run(&mut llama, true, chunk);
        let differ = reference.iter().zip(&causal).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "chunks of {chunk}: {differ} logits differ from the candle ops");
        assert_eq!(tokens, ref_tokens, "chunks of {chunk}");
    }
}

/// Prompts of different lengths built from a real label, as chat prompts.
fn label_prompts(m: &LocalModel, n: usize, words_each: usize) -> Vec<String> {
    let text = std::fs::read_to_string(crate::harness::shared_data().join("pi/text/lipitor_atorvastatin_2014-01.txt")).unwrap();
    let words: Vec<&str> = text.split_whitespace().collect();
    (0..n)
        .map(|i| {
            let chunk = words[i * 300..i * 300 + words_each + 7 * i].join(" ");
            m.render_chat(&[
                Message { role: "system".into(), content: "Answer from the passage only.".into() },
                Message { role: "user".into(), content: format!("Passage: {chunk}\nQuestion: what should a doctor know?") },
            ])
            .unwrap()
        })
        .collect()
}

/// The batched decode step is exact: three sequences at different depths
/// decoded together give, row by row, the same logits (every bit) as each
/// decoded alone with its own cache, step after step.
#[test]
fn batched_decode_logits_are_bit_identical_to_single_sequence_steps() {
    let m = model();
    let mut f = std::fs::File::open(model_path()).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let mut llama = onlabel::llm::Llama::load(&ct, &mut f, &candle_core::Device::Cpu).unwrap();
    let vocab = llama.vocab_size();
    let prompts: Vec<Vec<u32>> = label_prompts(m, 3, 20).iter().map(|p| m.tokenizer.encode(p).unwrap()).collect();
    let mut alone: Vec<onlabel::llm::KvCache> = Vec::new();
    let mut batched: Vec<onlabel::llm::KvCache> = Vec::new();
    let mut next = Vec::new();
    for ids in &prompts {
        let (mut a, mut b) = (llama.new_cache(512), llama.new_cache(512));
        let la = llama.forward_in(&mut a, ids).unwrap().to_vec();
        let lb = llama.forward_in(&mut b, ids).unwrap().to_vec();
        assert_eq!(la, lb);
        next.push(onlabel::llm::Llama::argmax(&la));
        alone.push(a);
        batched.push(b);
    }
    assert!(prompts.iter().map(Vec::len).collect::<std::collections::HashSet<_>>().len() == 3, "depths differ");
    for step in 0..12 {
        let single: Vec<Vec<f32>> =
            alone.iter_mut().zip(&next).map(|(c, &t)| llama.decode_batch(&mut [c], &[t]).unwrap().to_vec()).collect();
        let mut refs: Vec<&mut onlabel::llm::KvCache> = batched.iter_mut().collect();
        let rows = llama.decode_batch(&mut refs, &next).unwrap().to_vec();
        for (s, one) in single.iter().enumerate() {
            let row = &rows[s * vocab..(s + 1) * vocab];
            let same = one.iter().zip(row).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "step {step}, sequence {s}: batched logits differ from the single-sequence step");
        }
        next = single.iter().map(|l| onlabel::llm::Llama::argmax(l)).collect();
    }
}

/// Issue 12's requirement for the batching engine: a greedy generation's
/// token ids are the same whether it ran alone or beside others sharing the
/// model's decode steps (prompts of different lengths, one constrained to a
/// token set, all after the same warmed prefix, as the copilot runs them).
#[test]
fn concurrent_greedy_generations_have_the_token_ids_of_each_alone() {
    let opts = GenerateOptions { max_tokens: 24, time_budget: std::time::Duration::from_secs(600), ..Default::default() };
    let alone = LocalModel::load(&model_path()).unwrap();
    let prompts = label_prompts(&alone, 5, 30);
    let prefix = "<|im_start|>system\nAnswer from the passage only.<|im_end|>\n";
    assert!(prompts.iter().all(|p| p.starts_with(prefix)));
    let allowed: std::collections::HashSet<u32> = alone.tokenizer.encode(&prompts[1]).unwrap().into_iter().collect();
    let opts_for = |i: usize| if i == 1 { GenerateOptions { allowed: Some(allowed.clone()), ..opts.clone() } } else { opts.clone() };
    let want: Vec<Vec<u32>> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // A fresh model per prompt: the same state as each concurrent call starts from.
            let m = LocalModel::load(&model_path()).unwrap();
            m.warm_prefix(prefix).unwrap();
            m.generate(p, &opts_for(i), |_| {}).unwrap().token_ids
        })
        .collect();
    let shared = LocalModel::load(&model_path()).unwrap();
    shared.warm_prefix(prefix).unwrap();
    let got: Vec<(Vec<u32>, usize)> = std::thread::scope(|s| {
        let hs: Vec<_> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (shared, o) = (&shared, opts_for(i));
                s.spawn(move || {
                    let g = shared.generate(p, &o, |_| {}).unwrap();
                    (g.token_ids, g.reused_tokens)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (w, (g, reused))) in want.iter().zip(&got).enumerate() {
        assert!(!w.is_empty());
        assert!(*reused >= alone.tokenizer.encode(prefix).unwrap().len(), "prompt {i} did not reuse the warmed prefix");
        assert_eq!(w, g, "prompt {i}: tokens differ between alone and batched");
    }
}

/// The engine's queue is bounded: with one slot and a queue of one, a third
/// concurrent generation is refused at once with `Overloaded`, and the others
/// complete.
#[test]
fn a_full_generation_queue_is_refused_not_waited_for() {
    let cfg = onlabel::llm::EngineConfig { slots: 1, queue: 1, ..Default::default() };
    let m = LocalModel::load_with(&model_path(), cfg).unwrap();
    let p = m.render_chat(&[Message { role: "user".into(), content: "Count from one to one hundred.".into() }]).unwrap();
    // The first generation is long (counting to a hundred), the others short.
    let long = GenerateOptions { max_tokens: 200, time_budget: std::time::Duration::from_secs(600), ..Default::default() };
    let opts = GenerateOptions { max_tokens: 4, ..long.clone() };
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            let tx = started_tx;
            m.generate(&p, &long, move |_| {
                let _ = tx.send(());
            })
        });
        // The first holds the slot once it streams; the second then waits in the queue.
        started_rx.recv().unwrap();
        let second = s.spawn(|| m.generate(&p, &opts, |_| {}));
        // Give the second time to be queued.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let third = m.generate(&p, &opts, |_| {});
        assert!(matches!(third, Err(onlabel::llm::Error::Overloaded { queue: 1 })), "{third:?}");
        assert!(first.join().unwrap().is_ok());
        assert!(second.join().unwrap().is_ok());
    });
}

/// Issue 23, point 1: a prompt whose slot was given to another prompt is
/// not read again when it comes back — its keys and values were copied out
/// into the pool of recent prompts first — and it gets the same tokens; with
/// the pool off (`prompt_cache: 0`) it is read again. One slot, so every
/// request takes the slot from the one before (as under load).
#[test]
fn issue23_1_a_repeated_prompt_is_reused_after_its_slot_was_taken() {
    let prompts = label_prompts(model(), 2, 120);
    let opts = GenerateOptions { max_tokens: 12, time_budget: std::time::Duration::from_secs(600), ..Default::default() };
    for pool in [4096, 0] {
        let cfg = onlabel::llm::EngineConfig { slots: 1, prompt_cache: pool, ..Default::default() };
        let m = LocalModel::load_with(&model_path(), cfg).unwrap();
        let a = m.generate(&prompts[0], &opts, |_| {}).unwrap();
        let b = m.generate(&prompts[1], &opts, |_| {}).unwrap();
        let again = m.generate(&prompts[0], &opts, |_| {}).unwrap();
        assert!(a.prompt_tokens > 150 && b.reused_tokens < 40, "{} prompt tokens, {} reused by the second", a.prompt_tokens, b.reused_tokens);
        assert_eq!(again.token_ids, a.token_ids, "pool {pool}: the repeat wrote other tokens");
        if pool > 0 {
            assert_eq!(again.reused_tokens, a.prompt_tokens - 1, "the repeat read its prompt again");
        } else {
            assert!(again.reused_tokens < 40, "pool off, yet {} positions reused", again.reused_tokens);
        }
    }
}

/// Issue 23, point 1: a newcomer's long prompt is prefilled in chunks
/// between the decode steps of the answer already running — that answer
/// keeps streaming while the prompt is read (it received nothing during a
/// whole prefill before). A prompt read in chunks ends on the same greedy
/// token as one read in a single forward pass, its logits within the drift
/// any split of a prompt has (not every bit: candle's softmax sums and
/// `gemm`'s depth blocks depend on the attended length, and Q8_1
/// re-quantization at every matrix amplifies a last-bit change; measured on
/// this 660-token prompt: 0.45 for two halves — the split a warmed prefix
/// has always made — 0.50 to 0.83 for chunks of 32 to 256; a wrong position
/// or mask moves them by whole units). It gets the same tokens whatever
/// else runs beside it: chunks are cut at offsets of its own.
#[test]
fn issue23_1_a_long_prompt_is_prefilled_in_chunks_between_decode_steps() {
    const SPLIT_DRIFT: f32 = 1.5;
    let long = label_prompts(model(), 1, 600).remove(0);
    let ids = model().tokenizer.encode(&long).unwrap();
    assert!(ids.len() > 600, "{} prompt tokens", ids.len());
    let mut f = std::fs::File::open(model_path()).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let mut llama = onlabel::llm::Llama::load(&ct, &mut f, &candle_core::Device::Cpu).unwrap();
    let mut cache = llama.new_cache(ids.len());
    let whole = llama.forward_in(&mut cache, &ids).unwrap().to_vec();
    let mut cache = llama.new_cache(ids.len());
    let mut chunked = Vec::new();
    for c in ids.chunks(32) {
        chunked = llama.forward_in(&mut cache, c).unwrap().to_vec();
    }
    let diff = whole.iter().zip(&chunked).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff <= SPLIT_DRIFT, "last-position logits of chunks of 32 differ from one forward by {diff}");
    assert_eq!(onlabel::llm::Llama::argmax(&whole), onlabel::llm::Llama::argmax(&chunked), "chunks of 32 change the greedy token");

    let opts = GenerateOptions { max_tokens: 16, time_budget: std::time::Duration::from_secs(600), ..Default::default() };
    let cfg = onlabel::llm::EngineConfig { prefill_chunk: 32, ..Default::default() };
    let alone = LocalModel::load_with(&model_path(), cfg).unwrap().generate(&long, &opts, |_| {}).unwrap();
    let m = LocalModel::load_with(&model_path(), cfg).unwrap();
    let count = m.render_chat(&[Message { role: "user".into(), content: "Count from one to one hundred.".into() }]).unwrap();
    let running_opts = GenerateOptions { max_tokens: 400, time_budget: std::time::Duration::from_secs(600), ..Default::default() };
    let events = std::sync::Mutex::new(Vec::<&'static str>::new());
    let (streaming_tx, streaming_rx) = std::sync::mpsc::channel();
    let got = std::thread::scope(|s| {
        let running = s.spawn(|| {
            let tx = streaming_tx;
            m.generate(&count, &running_opts, |_| {
                events.lock().unwrap().push("running");
                let _ = tx.send(());
            })
        });
        // Once the running answer streams, the long prompt arrives.
        streaming_rx.recv().unwrap();
        events.lock().unwrap().push("submitted");
        let got = m
            .generate(&long, &opts, |_| {
                events.lock().unwrap().push("newcomer");
            })
            .unwrap();
        let running = running.join().unwrap().unwrap();
        // The newcomer's prompt chunks are not charged to the running answer's budget.
        assert!(got.prefill_compute_ms > 0.0 && running.others_ms >= got.prefill_compute_ms, "{running:?}\n{got:?}");
        got
    });
    assert_eq!(got.token_ids, alone.token_ids, "the chunked prompt's tokens depend on what ran beside it");
    let ev = events.into_inner().unwrap();
    let from = ev.iter().position(|e| *e == "submitted").unwrap();
    let to = ev.iter().position(|e| *e == "newcomer").unwrap();
    let during = ev[from..to].iter().filter(|e| **e == "running").count();
    // About one token of the running answer per chunk of 32 prompt tokens.
    assert!(during >= 8, "the running answer got {during} tokens while a {}-token prompt was prefilled", got.prompt_tokens);
}

/// Issue 23, point 1: the time budget counts a request's own work from its
/// admission to a slot; the wait in the queue behind a long answer is not
/// charged to it (it used to be: the queued request stopped at its first
/// token).
#[test]
fn issue23_1_the_time_budget_counts_from_admission_not_from_the_queue() {
    let cfg = onlabel::llm::EngineConfig { slots: 1, queue: 2, ..Default::default() };
    let m = LocalModel::load_with(&model_path(), cfg).unwrap();
    let count = m.render_chat(&[Message { role: "user".into(), content: "Count from one to one hundred.".into() }]).unwrap();
    let short = m.render_chat(&[Message { role: "user".into(), content: "What is the capital of France?".into() }]).unwrap();
    let long = GenerateOptions { max_tokens: 300, time_budget: std::time::Duration::from_secs(600), ..Default::default() };
    let budget = std::time::Duration::from_secs(1);
    let opts = GenerateOptions { max_tokens: 6, time_budget: budget, ..Default::default() };
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            let tx = started_tx;
            m.generate(&count, &long, move |_| {
                let _ = tx.send(());
            })
        });
        started_rx.recv().unwrap();
        let queued = m.generate(&short, &opts, |_| {}).unwrap();
        let first = first.join().unwrap().unwrap();
        // The scenario happened: the queued call waited longer than its budget.
        assert!(
            queued.prefill_ms > budget.as_secs_f64() * 1e3,
            "the queued call waited only {:.0} ms (the first ran {} tokens in {:.0} ms)",
            queued.prefill_ms,
            first.generated_tokens,
            first.total_ms
        );
        assert!(queued.queue_ms > budget.as_secs_f64() * 1e3, "{queued:?}");
        assert!(queued.generated_tokens >= 2 && queued.stop != onlabel::llm::StopReason::TimeBudget, "{queued:?}");
    });
}
