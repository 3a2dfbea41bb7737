//! [`RemoteModel`]: an OpenAI-compatible inference server (llama.cpp's
//! `llama-server`, vLLM, TGI) as the chat model that writes answers.
//!
//! One blocking client (ureq, rustls) per server:
//!
//! - `POST /v1/chat/completions` with `stream: true`; the server-sent
//!   `data:` lines are read as they arrive and each content piece is handed
//!   to the caller, who may stop the stream at any piece (the verifier
//!   rejected the first sentence, the time budget ran out): the connection
//!   is then dropped and the server stops generating;
//! - a connect timeout and a total timeout per call ([`RemoteConfig`]);
//! - `429` and `503` are retried, at most [`RemoteConfig::retries`] times,
//!   after the server's `Retry-After` (seconds; capped by
//!   [`RemoteConfig::max_retry_after`]) or else an exponential backoff, and
//!   never past the total timeout;
//! - a circuit [`Breaker`]: after [`BreakerConfig::failures`] failed calls
//!   in a row it opens, and calls fail at once (the copilot answers with
//!   quoted approved text and says why) until [`BreakerConfig::cool_down`]
//!   has passed; then one call probes the server (half-open) and closes the
//!   breaker again if it succeeds;
//! - the copy constraint as a grammar ([`crate::llm::gbnf`]) in the request
//!   when the server takes one ([`GrammarField`]);
//! - the model's identity for the audit record ([`Identity`]): its name and
//!   the sha256 of what the server reports about it.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::Digest;

use super::{Generation, Message, StopReason};

/// What can go wrong talking to the inference server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL given is not an http(s) URL.
    #[error("--generator-url {url:?} is not an http:// or https:// URL of an OpenAI-compatible server (e.g. http://127.0.0.1:8081)")]
    BadUrl {
        /// The URL as given.
        url: String,
    },
    /// The circuit breaker is open: recent calls failed, none is tried now.
    #[error("the inference server at {url} is unavailable (circuit open after {failures} failed calls; next try in {retry_in_ms} ms)")]
    CircuitOpen {
        /// The server.
        url: String,
        /// Failed calls in a row that opened it.
        failures: u32,
        /// Milliseconds until a call may probe the server again.
        retry_in_ms: u64,
    },
    /// The server could not be reached (refused, reset, name not found).
    #[error("cannot reach the inference server at {url}: {message}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The transport's message.
        message: String,
    },
    /// The connect or total timeout ran out.
    #[error("the inference server at {url} did not answer within {after_ms} ms ({which} timeout)")]
    Timeout {
        /// The endpoint.
        url: String,
        /// `connect` or `total`.
        which: &'static str,
        /// The timeout, ms.
        after_ms: u64,
    },
    /// The server kept answering 429 or 503 through every retry.
    #[error("the inference server at {url} is overloaded: HTTP {status} after {attempts} attempts")]
    Overloaded {
        /// The endpoint.
        url: String,
        /// The last status.
        status: u16,
        /// Calls made.
        attempts: u32,
    },
    /// The server answered with another error status.
    #[error("the inference server at {url} answered HTTP {status}: {body}")]
    Status {
        /// The endpoint.
        url: String,
        /// The status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// The stream broke off before the server said it was done.
    #[error("the stream from {url} broke off after {pieces} pieces: {message}")]
    Broken {
        /// The endpoint.
        url: String,
        /// Content pieces received before.
        pieces: usize,
        /// What happened.
        message: String,
    },
    /// The server's answer is not what the OpenAI API describes.
    #[error("unexpected answer from {url}: {message}")]
    Protocol {
        /// The endpoint.
        url: String,
        /// What was wrong.
        message: String,
    },
}

impl Error {
    /// The stable code (see [`crate::error::CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadUrl { .. } => "bad_generator_url",
            Error::CircuitOpen { .. }
            | Error::Unreachable { .. }
            | Error::Timeout { .. }
            | Error::Overloaded { .. }
            | Error::Broken { .. } => "generator_unavailable",
            Error::Status { .. } | Error::Protocol { .. } => "generator_error",
        }
    }

    /// Whether this failure counts against the server in the breaker: the
    /// server was unreachable, slow, overloaded, failing (5xx) or broke off.
    /// A 4xx other than 408/429 is our request's fault, not the server's.
    fn counts_against_server(&self) -> bool {
        match self {
            Error::BadUrl { .. } | Error::CircuitOpen { .. } => false,
            Error::Status { status, .. } => *status >= 500 || *status == 408,
            _ => true,
        }
    }
}

/// Result with the remote [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which request field carries the copy constraint's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrammarField {
    /// `grammar` (GBNF) when the server is llama.cpp's (it answers
    /// `GET /props`), none otherwise.
    Auto,
    /// llama.cpp's `grammar` (GBNF), in `/v1/chat/completions`.
    LlamaCpp,
    /// vLLM's `guided_grammar` (its grammar backends read the same GBNF).
    Vllm,
    /// No grammar: the verifier alone holds remote answers to the rule.
    Off,
}

impl std::str::FromStr for GrammarField {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(GrammarField::Auto),
            "llama-cpp" => Ok(GrammarField::LlamaCpp),
            "vllm" => Ok(GrammarField::Vllm),
            "off" => Ok(GrammarField::Off),
            other => Err(format!("{other:?} is not a grammar field: use auto, llama-cpp, vllm or off")),
        }
    }
}

/// When the breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failed calls in a row that open it.
    pub failures: u32,
    /// How long it stays open before one call may probe the server.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        // Three failures: one broken stream or timeout is not an outage; 30 s
        // keeps a dead cluster from costing every rep a timeout.
        BreakerConfig { failures: 3, cool_down: Duration::from_secs(30) }
    }
}

/// How to reach the server and how patient to be with it.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The server's base URL (`http://host:port`, with or without `/v1`).
    pub url: String,
    /// The model to ask for; default: the first one `GET /v1/models` lists.
    pub model: Option<String>,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest a whole call may take (retries and the streamed body included).
    pub timeout: Duration,
    /// Retries on 429/503.
    pub retries: u32,
    /// First backoff when the server gives no `Retry-After`; doubles each retry.
    pub backoff: Duration,
    /// Longest `Retry-After` honoured (a longer one ends the retries).
    pub max_retry_after: Duration,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
    /// Which field carries the grammar.
    pub grammar: GrammarField,
}

impl RemoteConfig {
    /// Defaults for `url`: 2 s to connect, 30 s per call, 2 retries from
    /// 250 ms, `Retry-After` up to 10 s, the default breaker, grammar `auto`.
    pub fn new(url: impl Into<String>) -> RemoteConfig {
        RemoteConfig {
            url: url.into(),
            model: None,
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            retries: 2,
            backoff: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(10),
            breaker: BreakerConfig::default(),
            grammar: GrammarField::Auto,
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Calls go through.
    Closed,
    /// Calls fail at once until the cool-down ends.
    Open,
    /// One call is probing the server.
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, failures: u32 },
    HalfOpen { probing: bool, failures: u32 },
}

/// A circuit breaker: closed → open after `failures` failed calls in a row →
/// half-open after the cool-down (one probe) → closed on its success, open
/// again on its failure.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
    opened: AtomicU64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker { config, state: Mutex::new(State::Closed { failures: 0 }), opened: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go to the server now; `Err((failures, ms to wait))` when not.
    fn admit(&self) -> std::result::Result<(), (u32, u64)> {
        let mut s = self.lock();
        match *s {
            State::Closed { .. } => Ok(()),
            State::Open { until, failures } => {
                let now = Instant::now();
                if now < until {
                    return Err((failures, (until - now).as_millis() as u64));
                }
                tracing::info!(target: "onlabel::generator", "circuit half-open: probing the inference server");
                *s = State::HalfOpen { probing: true, failures };
                Ok(())
            }
            State::HalfOpen { probing: true, failures } => Err((failures, 0)),
            State::HalfOpen { probing: false, failures } => {
                *s = State::HalfOpen { probing: true, failures };
                Ok(())
            }
        }
    }

    fn succeeded(&self) {
        let mut s = self.lock();
        if !matches!(*s, State::Closed { .. }) {
            tracing::info!(target: "onlabel::generator", "circuit closed: the inference server answers again");
        }
        *s = State::Closed { failures: 0 };
    }

    fn failed(&self) {
        let mut s = self.lock();
        let failures = match *s {
            State::Closed { failures } | State::Open { failures, .. } | State::HalfOpen { failures, .. } => failures + 1,
        };
        let open = match *s {
            State::Closed { .. } => failures >= self.config.failures.max(1),
            State::HalfOpen { .. } | State::Open { .. } => true,
        };
        *s = if open {
            if !matches!(*s, State::Open { .. }) {
                self.opened.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "onlabel::generator", failures, cool_down_ms = self.config.cool_down.as_millis() as u64, "circuit open: answers are quoted until the inference server answers again");
            }
            State::Open { until: Instant::now() + self.config.cool_down, failures }
        } else {
            State::Closed { failures }
        };
    }

    /// A call that ended without a verdict on the server (the caller's own
    /// error): a half-open probe slot is given back.
    fn released(&self) {
        let mut s = self.lock();
        if let State::HalfOpen { failures, .. } = *s {
            *s = State::HalfOpen { probing: false, failures };
        }
    }

    /// The state now (an open breaker past its cool-down reads half-open).
    pub fn phase(&self) -> Phase {
        match *self.lock() {
            State::Closed { .. } => Phase::Closed,
            State::Open { until, .. } if Instant::now() < until => Phase::Open,
            State::Open { .. } | State::HalfOpen { .. } => Phase::HalfOpen,
        }
    }

    /// How many times it has opened.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

/// What the server reports about the model, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The model's name (the id requests ask for).
    pub name: String,
    /// sha256 (hex) of the server's own description of the model: its
    /// `GET /v1/models` entry without the `created` time (which some
    /// servers set to the time of the request) and, from llama.cpp, the
    /// `model_path`, `chat_template` and `build_info` of `GET /props`; as
    /// compact JSON with sorted keys.
    pub sha256: String,
    /// Whether the server is llama.cpp's (it answered `GET /props`).
    pub llama_cpp: bool,
}

/// Counters of the client, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls that streamed to their end (or to the caller's stop).
    pub succeeded: u64,
    /// Calls that failed (server unreachable, slow, overloaded, failing, broken off).
    pub failed: u64,
    /// Calls refused at once by the open breaker.
    pub short_circuited: u64,
    /// 429/503 answers retried.
    pub retries: u64,
    /// Times the breaker opened.
    pub breaker_opened: u64,
}

/// One chat completion to ask for.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    /// Nucleus sampling threshold.
    pub top_p: Option<f64>,
    /// Sampling seed.
    pub seed: u64,
    /// Stop strings.
    pub stop: Vec<String>,
    /// A GBNF grammar the output must match (sent when the server takes one).
    pub grammar: Option<String>,
}

/// An OpenAI-compatible inference server.
pub struct RemoteModel {
    config: RemoteConfig,
    /// The base URL without a trailing `/` or `/v1`.
    base: String,
    agent: ureq::Agent,
    breaker: Breaker,
    identity: Mutex<Option<Identity>>,
    succeeded: AtomicU64,
    failed: AtomicU64,
    short_circuited: AtomicU64,
    retries: AtomicU64,
}

impl std::fmt::Debug for RemoteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteModel").field("url", &self.base).finish_non_exhaustive()
    }
}

/// Most bytes of an error body kept in an error message.
const ERROR_BODY_CHARS: usize = 300;
/// Largest `/v1/models` or `/props` answer read.
const MAX_INFO_BYTES: u64 = 1 << 20;

impl RemoteModel {
    /// A client for the server at `config.url`. Does not call the server:
    /// its identity is asked for on first use ([`RemoteModel::probe`] asks now).
    pub fn new(config: RemoteConfig) -> Result<RemoteModel> {
        let url = config.url.trim();
        let ok = (url.starts_with("http://") || url.starts_with("https://")) && url.len() > "https://".len() && !url.contains(char::is_whitespace);
        if !ok {
            return Err(Error::BadUrl { url: config.url.clone() });
        }
        let mut base = url.trim_end_matches('/').to_string();
        if let Some(b) = base.strip_suffix("/v1") {
            base = b.to_string();
        }
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.timeout))
            .user_agent(concat!("onlabel/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(RemoteModel {
            breaker: Breaker::new(config.breaker),
            config,
            base,
            agent,
            identity: Mutex::new(None),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            short_circuited: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        })
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The client's settings.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// The breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        Stats {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            short_circuited: self.short_circuited.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            breaker_opened: self.breaker.opened(),
        }
    }

    /// `NAME@URL sha256:HEX` (the model and the hash of what the server
    /// reports about it), recorded with every answer; `NAME@URL` while the
    /// server has not been reached yet.
    pub fn id(&self) -> String {
        match &*self.lock_identity() {
            Some(i) => format!("{}@{} sha256:{}", i.name, self.base, i.sha256),
            None => format!("{}@{}", self.config.model.as_deref().unwrap_or("unknown"), self.base),
        }
    }

    /// The identity, when known.
    pub fn identity(&self) -> Option<Identity> {
        self.lock_identity().clone()
    }

    fn lock_identity(&self) -> std::sync::MutexGuard<'_, Option<Identity>> {
        self.identity.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the server for the model's identity now (`GET /v1/models`, and
    /// `GET /props` where the server has it), through the breaker.
    pub fn probe(&self) -> Result<Identity> {
        self.guarded(|| self.fetch_identity())
    }

    /// Runs `call` through the breaker, counting its outcome.
    fn guarded<T>(&self, call: impl FnOnce() -> Result<T>) -> Result<T> {
        if let Err((failures, retry_in_ms)) = self.breaker.admit() {
            self.short_circuited.fetch_add(1, Ordering::Relaxed);
            return Err(Error::CircuitOpen { url: self.base.clone(), failures, retry_in_ms });
        }
        match call() {
            Ok(v) => {
                self.breaker.succeeded();
                self.succeeded.fetch_add(1, Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => {
                if e.counts_against_server() {
                    self.breaker.failed();
                    self.failed.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.breaker.released();
                }
                Err(e)
            }
        }
    }

    fn transport(&self, url: &str, e: ureq::Error) -> Error {
        match e {
            ureq::Error::Timeout(t) => {
                let connect = matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve);
                let after = if connect { self.config.connect_timeout } else { self.config.timeout };
                Error::Timeout { url: url.to_string(), which: if connect { "connect" } else { "total" }, after_ms: after.as_millis() as u64 }
            }
            other => Error::Unreachable { url: url.to_string(), message: other.to_string() },
        }
    }

    /// GETs `path`; `Ok(None)` on 404.
    fn get_json(&self, path: &str) -> Result<Option<Value>> {
        let url = format!("{}{path}", self.base);
        let resp = self.agent.get(&url).call().map_err(|e| self.transport(&url, e))?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        let body = resp
            .into_body()
            .with_config()
            .limit(MAX_INFO_BYTES)
            .read_to_string()
            .map_err(|e| Error::Broken { url: url.clone(), pieces: 0, message: e.to_string() })?;
        if status != 200 {
            return Err(Error::Status { url, status, body: excerpt(&body) });
        }
        serde_json::from_str(&body).map(Some).map_err(|e| Error::Protocol { url, message: format!("not JSON: {e}") })
    }

    fn fetch_identity(&self) -> Result<Identity> {
        let url = format!("{}/v1/models", self.base);
        let models = self.get_json("/v1/models")?.ok_or_else(|| Error::Protocol { url: url.clone(), message: "no /v1/models (is this an OpenAI-compatible server?)".into() })?;
        let list = models.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        let entry = match &self.config.model {
            Some(name) => list.iter().find(|m| m.get("id").and_then(Value::as_str) == Some(name)).cloned().ok_or_else(|| {
                let known: Vec<&str> = list.iter().filter_map(|m| m.get("id").and_then(Value::as_str)).collect();
                Error::Protocol { url: url.clone(), message: format!("the server does not serve model {name:?} (it lists: {})", known.join(", ")) }
            })?,
            None => list.first().cloned().ok_or_else(|| Error::Protocol { url: url.clone(), message: "the server lists no model".into() })?,
        };
        let name = entry.get("id").and_then(Value::as_str).unwrap_or("unknown").to_string();
        let mut described = entry;
        if let Some(o) = described.as_object_mut() {
            o.remove("created");
        }
        // llama.cpp's own description of what it serves; other servers 404.
        let props = self.get_json("/props").ok().flatten();
        let llama_cpp = props.is_some();
        let props: Value = props
            .map(|p| ["model_path", "chat_template", "build_info"].iter().filter_map(|k| p.get(*k).map(|v| ((*k).to_string(), v.clone()))).collect::<serde_json::Map<_, _>>().into())
            .unwrap_or(Value::Null);
        // serde_json's maps are sorted by key: the text is canonical.
        let canonical = json!({"model": described, "props": props}).to_string();
        let sha256 = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
        let id = Identity { name, sha256, llama_cpp };
        let mut slot = self.lock_identity();
        if slot.as_ref().is_some_and(|old| old != &id) {
            tracing::warn!(target: "onlabel::generator", model = %id.name, sha256 = %id.sha256, "the inference server now reports a different model");
        }
        *slot = Some(id.clone());
        Ok(id)
    }

    /// The grammar field to send, given what the server is.
    fn grammar_field(&self, identity: &Identity) -> Option<&'static str> {
        match self.config.grammar {
            GrammarField::Auto if identity.llama_cpp => Some("grammar"),
            GrammarField::LlamaCpp => Some("grammar"),
            GrammarField::Vllm => Some("guided_grammar"),
            GrammarField::Auto | GrammarField::Off => None,
        }
    }

    /// Whether a grammar given to [`RemoteModel::chat_stream`] is sent (the
    /// server's identity must be known for `auto`).
    pub fn sends_grammar(&self) -> bool {
        match self.config.grammar {
            GrammarField::Auto => self.identity().is_some_and(|i| i.llama_cpp),
            GrammarField::LlamaCpp | GrammarField::Vllm => true,
            GrammarField::Off => false,
        }
    }

    /// Streams one chat completion: `on_piece` gets each piece of content as
    /// it arrives and returns `false` to stop (the connection is dropped).
    /// Goes through the breaker; asks for the server's identity first when
    /// it is not known yet.
    pub fn chat_stream(&self, messages: &[Message], req: &ChatRequest, on_piece: &mut dyn FnMut(&str) -> bool) -> Result<Generation> {
        self.guarded(|| {
            let t0 = Instant::now();
            let identity = match self.identity() {
                Some(i) => i,
                None => self.fetch_identity()?,
            };
            let mut body = json!({
                "model": identity.name,
                "messages": messages,
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": req.max_tokens,
                "temperature": req.temperature,
                "seed": req.seed,
            });
            if let Some(p) = req.top_p {
                body["top_p"] = json!(p);
            }
            if !req.stop.is_empty() {
                body["stop"] = json!(req.stop);
            }
            if let (Some(g), Some(field)) = (&req.grammar, self.grammar_field(&identity)) {
                body[field] = json!(g);
            }
            let url = format!("{}/v1/chat/completions", self.base);
            let resp = self.post_with_retries(&url, &body.to_string(), t0)?;
            self.read_stream(&url, resp, t0, on_piece)
        })
    }

    /// POSTs, retrying 429/503 after `Retry-After` (or a backoff) while the
    /// total timeout allows.
    fn post_with_retries(&self, url: &str, body: &str, t0: Instant) -> Result<ureq::http::Response<ureq::Body>> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // One deadline for the whole call: each attempt (and the body
            // it streams) gets what is left of the total timeout.
            let left = self.config.timeout.saturating_sub(t0.elapsed());
            if left.is_zero() {
                return Err(Error::Timeout { url: url.to_string(), which: "total", after_ms: self.config.timeout.as_millis() as u64 });
            }
            let resp = self
                .agent
                .post(url)
                .config()
                .timeout_global(Some(left))
                .build()
                .header("content-type", "application/json")
                .header("accept", "text/event-stream")
                .send(body)
                .map_err(|e| self.transport(url, e))?;
            let status = resp.status().as_u16();
            if status == 200 {
                return Ok(resp);
            }
            let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
            let text = resp.into_body().with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
            if status != 429 && status != 503 {
                return Err(Error::Status { url: url.to_string(), status, body: excerpt(&text) });
            }
            let wait = retry_after.unwrap_or_else(|| self.config.backoff * 2u32.saturating_pow(attempt - 1));
            let too_long = retry_after.is_some_and(|r| r > self.config.max_retry_after);
            if attempt > self.config.retries || too_long || t0.elapsed() + wait >= self.config.timeout {
                return Err(Error::Overloaded { url: url.to_string(), status, attempts: attempt });
            }
            tracing::debug!(target: "onlabel::generator", status, wait_ms = wait.as_millis() as u64, attempt, "inference server busy; retrying");
            self.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(wait);
        }
    }

    fn read_stream(&self, url: &str, resp: ureq::http::Response<ureq::Body>, t0: Instant, on_piece: &mut dyn FnMut(&str) -> bool) -> Result<Generation> {
        let mut reader = std::io::BufReader::new(resp.into_body().into_reader());
        let mut text = String::new();
        let (mut pieces, mut first_token_ms) = (0usize, None);
        let (mut usage_prompt, mut usage_completion) = (None, None);
        let mut stop = None;
        let mut line = String::new();
        let broken = |pieces, message: String| Error::Broken { url: url.to_string(), pieces, message };
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => Error::Timeout { url: url.to_string(), which: "total", after_ms: self.config.timeout.as_millis() as u64 },
                _ => broken(pieces, e.to_string()),
            })?;
            if n == 0 {
                // A server that ends its stream without `[DONE]` but after a
                // finish reason has finished; otherwise it broke off.
                if stop.is_some() {
                    break;
                }
                return Err(broken(pieces, "the connection closed before the server said it was done".into()));
            }
            let Some(data) = line.trim_end().strip_prefix("data:") else { continue };
            let data = data.trim();
            if data == "[DONE]" {
                break;
            }
            let v: Value = serde_json::from_str(data).map_err(|e| Error::Protocol { url: url.to_string(), message: format!("a stream event is not JSON: {e}") })?;
            if let Some(err) = v.get("error") {
                return Err(broken(pieces, format!("the server reported an error mid-stream: {err}")));
            }
            if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                usage_prompt = u.get("prompt_tokens").and_then(Value::as_u64);
                usage_completion = u.get("completion_tokens").and_then(Value::as_u64);
            }
            let choice = v.get("choices").and_then(|c| c.get(0));
            if let Some(piece) = choice.and_then(|c| c.pointer("/delta/content")).and_then(Value::as_str).filter(|p| !p.is_empty()) {
                first_token_ms.get_or_insert(t0.elapsed().as_secs_f64() * 1e3);
                pieces += 1;
                text.push_str(piece);
                if !on_piece(piece) {
                    // The caller stopped: dropping the reader closes the connection.
                    stop = Some(StopReason::StopString);
                    break;
                }
            }
            match choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str) {
                Some("length") => stop = Some(StopReason::MaxTokens),
                Some(_) => stop = Some(StopReason::EndOfText),
                None => {}
            }
        }
        let total_ms = t0.elapsed().as_secs_f64() * 1e3;
        Ok(Generation {
            text,
            prompt_tokens: usage_prompt.unwrap_or(0) as usize,
            reused_tokens: 0,
            generated_tokens: usage_completion.map(|n| n as usize).unwrap_or(pieces),
            token_ids: Vec::new(),
            stop: stop.unwrap_or(StopReason::EndOfText),
            prefill_ms: first_token_ms.unwrap_or(total_ms),
            queue_ms: 0.0,
            prefill_compute_ms: 0.0,
            others_ms: 0.0,
            first_token_ms: first_token_ms.unwrap_or(total_ms),
            total_ms,
        })
    }
}

/// The start of a body, for an error message.
fn excerpt(body: &str) -> String {
    let t = body.trim();
    match t.char_indices().nth(ERROR_BODY_CHARS) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_n_failures_and_probes_after_the_cool_down() {
        let b = Breaker::new(BreakerConfig { failures: 2, cool_down: Duration::from_millis(50) });
        assert_eq!(b.phase(), Phase::Closed);
        assert!(b.admit().is_ok());
        b.failed();
        assert_eq!(b.phase(), Phase::Closed, "one failure is not an outage");
        b.failed();
        assert_eq!((b.phase(), b.opened()), (Phase::Open, 1));
        assert!(b.admit().is_err(), "open: calls fail at once");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit().is_ok(), "after the cool-down one call probes");
        assert!(b.admit().is_err(), "only one probe at a time");
        b.failed();
        assert_eq!((b.phase(), b.opened()), (Phase::Open, 2), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit().is_ok());
        b.succeeded();
        assert_eq!(b.phase(), Phase::Closed);
        assert!(b.admit().is_ok());
    }

    #[test]
    fn a_success_resets_the_count_of_failures_in_a_row() {
        let b = Breaker::new(BreakerConfig { failures: 2, cool_down: Duration::from_secs(60) });
        b.failed();
        b.succeeded();
        b.failed();
        assert_eq!(b.phase(), Phase::Closed);
    }

    #[test]
    fn urls_are_checked_and_normalised() {
        let e = RemoteModel::new(RemoteConfig::new("localhost:8081")).unwrap_err();
        assert_eq!(e.code(), "bad_generator_url");
        assert!(e.to_string().contains("localhost:8081") && e.to_string().contains("http://"), "{e}");
        assert_eq!(RemoteModel::new(RemoteConfig::new("http://127.0.0.1:8081/v1/")).unwrap().url(), "http://127.0.0.1:8081");
        assert_eq!(RemoteModel::new(RemoteConfig::new("https://gpu.example/")).unwrap().url(), "https://gpu.example");
        assert!(RemoteModel::new(RemoteConfig::new("ftp://x")).is_err());
    }

    #[test]
    fn only_server_side_failures_count_against_the_server() {
        let status = |s| Error::Status { url: String::new(), status: s, body: String::new() };
        assert!(status(500).counts_against_server() && status(408).counts_against_server());
        assert!(!status(400).counts_against_server(), "a request the server refuses is our fault");
        assert!(Error::Broken { url: String::new(), pieces: 3, message: String::new() }.counts_against_server());
    }
}
