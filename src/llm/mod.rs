//! [`LocalModel`]: a llama-family GGUF model run in-process with candle.
//!
//! - [`model`]: our own forward pass (preallocated KV caches, prefix reuse,
//!   several sequences decoded in one pass);
//! - [`engine`]: the thread that owns the model and serves concurrent
//!   [`LocalModel::generate`] calls in shared decode steps (bounded slots and
//!   queue);
//! - [`tokenizer`]: the tokenizer rebuilt from the GGUF's own metadata;
//! - the model's chat template (GGUF `tokenizer.chat_template`) rendered with
//!   minijinja;
//! - greedy decoding by default (deterministic, for evals), or temperature /
//!   top-p with a seed; stop tokens, a max-token budget and a wall-clock
//!   budget; tokens streamed through a callback (or a channel, see
//!   [`LocalModel::stream`]); an optional logits mask for constrained decoding.
//!
//! [`Generator`] ([`generator`]) is the interface the copilot drafts answers
//! through, whatever runs the model; [`ChatModel`] is the model that writes
//! them: this in-process one, or an OpenAI-compatible inference server
//! ([`remote`], `--generator-url`), whose copy constraint is sent as a
//! grammar ([`gbnf`]).
//!
//! Every output records the model file's name and sha256 ([`LocalModel::id`]).

pub mod model;
pub mod engine;
pub mod generator;
pub mod gbnf;
pub mod remote;
mod causal;
mod cpu;
mod q4_1;
mod q8_0;
pub mod tokenizer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::Device;
use sha2::Digest;

pub use engine::EngineConfig;
pub use generator::{Draft, Generator, Mode, Sentence};
pub use model::{KvCache, Llama};
pub use remote::RemoteModel;
pub use tokenizer::GgufTokenizer;

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file cannot be read.
    #[error("cannot read model {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a GGUF file or is truncated.
    #[error("{path} is not a valid GGUF model ({message}); run `bash models/fetch.sh` or point --model at a llama-family .gguf file")]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The model uses something we do not support.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// Tokenisation failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed to render.
    #[error("chat template: {0}")]
    Template(String),
    /// The prompt does not fit the context.
    #[error("the prompt needs {needed} tokens but the context holds {capacity}")]
    ContextFull {
        /// Tokens needed.
        needed: usize,
        /// Capacity.
        capacity: usize,
    },
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// Generation failed otherwise.
    #[error("generation: {0}")]
    Generation(String),
    /// Every slot is busy and the queue of waiting generations is full.
    #[error("the model is overloaded: {queue} generations are already waiting")]
    Overloaded {
        /// The queue's bound.
        queue: usize,
    },
    /// The OpenAI-compatible inference server failed (or its circuit is open).
    #[error(transparent)]
    Remote(#[from] remote::Error),
    /// A step that needs the in-process model was asked of a remote one.
    #[error("{0} needs the in-process model; the inference server at --generator-url does this itself")]
    LocalOnly(&'static str),
}

impl Error {
    /// The stable code (see [`crate::error::CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Overloaded { .. } => "overloaded",
            Error::Remote(e) => e.code(),
            Error::Io { .. }
            | Error::NotGguf { .. }
            | Error::Unsupported(_)
            | Error::Tokenizer(_)
            | Error::Template(_)
            | Error::ContextFull { .. }
            | Error::Candle(_)
            | Error::LocalOnly(_)
            | Error::Generation(_) => "model_error",
        }
    }
}

/// Result with the llm [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Decoding options.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Most new tokens.
    pub max_tokens: usize,
    /// Time budget of the call's own work: from its admission to one of
    /// the engine's slots, less time the engine spends prefilling other calls.
    pub time_budget: Duration,
    /// 0 = greedy (deterministic).
    pub temperature: f64,
    /// Nucleus sampling threshold (with temperature > 0).
    pub top_p: Option<f64>,
    /// Sampling seed.
    pub seed: u64,
    /// Extra stop strings (generation stops once the text contains one).
    pub stop: Vec<String>,
    /// Constrained decoding: only these token ids may be generated (plus stop tokens).
    pub allowed: Option<HashSet<u32>>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 96,
            time_budget: Duration::from_secs(4),
            temperature: 0.0,
            top_p: None,
            seed: 299_792_458,
            stop: Vec::new(),
            allowed: None,
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model emitted an end/control token.
    EndOfText,
    /// A stop string appeared.
    StopString,
    /// The max-token budget was reached.
    MaxTokens,
    /// The wall-clock budget ran out.
    TimeBudget,
    /// The caller stopped it ([`LocalModel::generate_while`]).
    Cancelled,
}

/// The result of one generation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generation {
    /// The generated text.
    pub text: String,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens served from the reused KV prefix.
    pub reused_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Their ids, in order (for exactness checks; not serialized).
    #[serde(skip)]
    pub token_ids: Vec<u32>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Time from the call's start to the end of its prompt's prefill, ms
    /// (wall clock: the queue and other requests' work included).
    pub prefill_ms: f64,
    /// Time waiting in the queue for a slot, ms.
    pub queue_ms: f64,
    /// Engine time of this call's own prompt chunks, ms.
    pub prefill_compute_ms: f64,
    /// Engine time spent on other requests' prefill while this call held
    /// its slot, ms (neither this nor the queue counts in its time budget).
    pub others_ms: f64,
    /// Time to the first generated token, ms.
    pub first_token_ms: f64,
    /// Total time, ms.
    pub total_ms: f64,
}

/// A chat message for the template.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// The model that writes answers: in-process, or an OpenAI-compatible
/// inference server. Whichever it is, the copilot builds the same prompt,
/// applies the same copy constraint and verifies every sentence the same way.
#[derive(Debug, Clone)]
pub enum ChatModel {
    /// A GGUF model run in this process.
    Local(Arc<LocalModel>),
    /// A server at `--generator-url`.
    Remote(Arc<RemoteModel>),
}

impl ChatModel {
    /// What the audit record names: `FILE sha256:HEX` for the local model,
    /// `NAME@URL sha256:HEX` for a server (the hash of what it reports
    /// about the model, [`remote::Identity`]).
    pub fn id(&self) -> String {
        match self {
            ChatModel::Local(m) => m.id().to_string(),
            ChatModel::Remote(r) => r.id(),
        }
    }

    /// The in-process model, if that is what this is.
    pub fn local(&self) -> Option<&Arc<LocalModel>> {
        match self {
            ChatModel::Local(m) => Some(m),
            ChatModel::Remote(_) => None,
        }
    }

    /// The inference server, if that is what this is.
    pub fn remote(&self) -> Option<&Arc<RemoteModel>> {
        match self {
            ChatModel::Remote(r) => Some(r),
            ChatModel::Local(_) => None,
        }
    }
}

/// A GGUF model loaded in-process, shared by concurrent callers: the weights
/// live on the [`engine`] thread, which decodes every running generation in
/// one forward pass per token.
pub struct LocalModel {
    engine: engine::Engine,
    /// The tokenizer.
    pub tokenizer: GgufTokenizer,
    template: Option<String>,
    id: String,
    path: PathBuf,
    /// End/control token ids (generation stops on them).
    stops: HashSet<u32>,
    /// Logits per position (constrained-decoding masks cover them all).
    vocab: usize,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel").field("id", &self.id).finish()
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_owned(), source: e })?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).map_err(|e| Error::Io { path: path.to_owned(), source: e })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

impl LocalModel {
    /// Loads a GGUF model file (weights, tokenizer, chat template), with the
    /// engine sized by [`EngineConfig::from_env`].
    pub fn load(path: &Path) -> Result<LocalModel> {
        Self::load_with(path, EngineConfig::from_env())
    }

    /// [`LocalModel::load`] with explicit engine sizes.
    pub fn load_with(path: &Path, config: EngineConfig) -> Result<LocalModel> {
        let mut file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_owned(), source: e })?;
        let ct = gguf_file::Content::read(&mut file)
            .map_err(|e| Error::NotGguf { path: path.to_owned(), message: e.to_string() })?;
        let device = Device::Cpu;
        let tokenizer = GgufTokenizer::from_gguf(&ct)?;
        let model = Llama::load(&ct, &mut file, &device).map_err(|e| match e {
            Error::Candle(c) => Error::NotGguf { path: path.to_owned(), message: format!("cannot read tensors: {c}") },
            other => other,
        })?;
        let template = ct.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("model.gguf");
        let id = format!("{name} sha256:{}", sha256_file(path)?);
        let stops: HashSet<u32> = tokenizer.control.iter().copied().chain(tokenizer.eos).collect();
        let vocab = model.vocab_size();
        let stop_ids: Vec<u32> = stops.iter().copied().collect();
        let engine = engine::Engine::start(model, &stop_ids, config)?;
        tracing::info!(model = %id, slots = engine.config().slots, queue = engine.config().queue, "model loaded");
        Ok(LocalModel { engine, tokenizer, template, id, path: path.to_owned(), stops, vocab })
    }

    /// The engine's sizes (slots, queue, positions per slot).
    pub fn engine_config(&self) -> EngineConfig {
        self.engine.config()
    }

    /// `FILE sha256:HEX`, recorded in every output.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renders messages with the model's own chat template (ChatML if the
    /// GGUF carries none), with the generation prompt appended.
    pub fn render_chat(&self, messages: &[Message]) -> Result<String> {
        let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        let src = self.template.as_deref().unwrap_or(chatml);
        let mut env = minijinja::Environment::new();
        env.add_template("chat", src).map_err(|e| Error::Template(e.to_string()))?;
        let t = env.get_template("chat").map_err(|e| Error::Template(e.to_string()))?;
        t.render(minijinja::context! { messages => messages, add_generation_prompt => true, bos_token => "", eos_token => "" })
            .map_err(|e| Error::Template(e.to_string()))
    }

    /// Evaluates `prefix` into a KV cache now and keeps it, so that prompts
    /// starting with it only pay for the rest (the approved prompt's fixed
    /// part): each generation's slot starts from a copy of it.
    pub fn warm_prefix(&self, prefix: &str) -> Result<usize> {
        let ids = self.tokenizer.encode(prefix)?;
        let n = ids.len();
        self.engine.warm(ids)?;
        Ok(n)
    }

    /// Generates a continuation of `prompt` (already templated), calling
    /// `on_token` with each piece of text as it is decoded.
    ///
    /// Concurrent calls share the model's decode steps ([`engine`]): each
    /// call's tokens are those it would get alone. The caller's thread
    /// tokenizes, decodes text, runs `on_token` and checks stop strings.
    /// `opts.time_budget` counts this call's own work from its admission to
    /// a slot, less the time the engine spends prefilling other calls. With every slot busy and
    /// the queue full it returns [`Error::Overloaded`] at once.
    pub fn generate(&self, prompt: &str, opts: &GenerateOptions, mut on_token: impl FnMut(&str)) -> Result<Generation> {
        self.generate_while(prompt, opts, |t| {
            on_token(t);
            true
        })
    }

    /// [`LocalModel::generate`], where `on_token` says whether to go on:
    /// when it returns `false` the generation ends there
    /// ([`StopReason::Cancelled`]) and the engine stops decoding it at its
    /// next step (the copilot stops a draft whose first sentence the
    /// verifier rejected for good).
    pub fn generate_while(&self, prompt: &str, opts: &GenerateOptions, mut on_token: impl FnMut(&str) -> bool) -> Result<Generation> {
        let t0 = Instant::now();
        let ids = self.tokenizer.encode(prompt)?;
        if ids.is_empty() {
            return Err(Error::Generation("forward called with no tokens".into()));
        }
        let capacity = self.engine.config().slot_context;
        let needed = ids.len() + opts.max_tokens;
        if needed > capacity {
            return Err(Error::ContextFull { needed, capacity });
        }
        let mask = opts.allowed.as_ref().map(|allowed| {
            let mut m = vec![false; self.vocab];
            for &id in allowed.iter().chain(&self.stops) {
                if let Some(v) = m.get_mut(id as usize) {
                    *v = true;
                }
            }
            m
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let prompt_tokens = ids.len();
        self.engine.submit(engine::Job {
            ids,
            max_tokens: opts.max_tokens,
            t0,
            time_budget: opts.time_budget,
            temperature: opts.temperature,
            top_p: opts.top_p,
            seed: opts.seed,
            mask,
            cancel: Arc::clone(&cancel),
            events: tx,
        })?;
        // However this call ends (a stop string, a panic in `on_token`), the
        // engine stops decoding for it at its next step.
        struct CancelOnDrop(Arc<AtomicBool>);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _cancel = CancelOnDrop(cancel);
        let (mut reused, mut prefill_ms, mut queue_ms, mut prefill_compute_ms) = (0, 0.0, 0.0, 0.0);
        // Every way out of the loop below reads it from the engine first.
        let mut others_ms: f64;
        let mut out_ids: Vec<u32> = Vec::new();
        let mut text = String::new();
        let mut first_token_ms = None;
        let stop = loop {
            let event = rx.recv().map_err(|_| engine::stopped())?;
            let (id, engine_stop) = match event {
                engine::Event::Started { reused: r, prefill_ms: p, queue_ms: q, prefill_compute_ms: c } => {
                    reused = r;
                    prefill_ms = p;
                    queue_ms = q;
                    prefill_compute_ms = c;
                    continue;
                }
                engine::Event::Failed(e) => return Err(e),
                engine::Event::End(reason, others) => {
                    others_ms = others;
                    first_token_ms.get_or_insert(t0.elapsed().as_secs_f64() * 1e3);
                    break reason;
                }
                engine::Event::Token { id, stop, others_ms: others } => {
                    others_ms = others;
                    (id, stop)
                }
            };
            first_token_ms.get_or_insert(t0.elapsed().as_secs_f64() * 1e3);
            out_ids.push(id);
            // Decode incrementally: emit whatever new text the ids now spell.
            let full = self.tokenizer.decode(&out_ids)?;
            let go_on = if full.len() > text.len() && full.is_char_boundary(text.len()) { on_token(&full[text.len()..]) } else { true };
            text = full;
            if !go_on {
                break StopReason::Cancelled;
            }
            if opts.stop.iter().any(|s| text.contains(s.as_str())) {
                break StopReason::StopString;
            }
            if let Some(reason) = engine_stop {
                break reason;
            }
        };
        Ok(Generation {
            text,
            prompt_tokens,
            reused_tokens: reused,
            generated_tokens: out_ids.len(),
            token_ids: out_ids,
            stop,
            prefill_ms,
            queue_ms,
            prefill_compute_ms,
            others_ms,
            first_token_ms: first_token_ms.unwrap_or(0.0),
            total_ms: t0.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Like [`LocalModel::generate`], streaming text pieces through a channel
    /// from a worker thread; the join handle yields the [`Generation`].
    pub fn stream(
        self: &std::sync::Arc<Self>,
        prompt: String,
        opts: GenerateOptions,
    ) -> (std::sync::mpsc::Receiver<String>, std::thread::JoinHandle<Result<Generation>>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let me = std::sync::Arc::clone(self);
        let h = std::thread::spawn(move || {
            me.generate(&prompt, &opts, |piece| {
                let _ = tx.send(piece.to_string());
            })
        });
        (rx, h)
    }
}

