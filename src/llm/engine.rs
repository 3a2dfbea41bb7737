//! [`Engine`]: one thread that owns the model and serves every concurrent
//! generation in shared decode steps (continuous batching).
//!
//! # Why
//!
//! Decoding one token of a 135M-parameter model is dominated by reading the
//! weights (about 90 MB) from memory, not by arithmetic. With one model behind
//! a mutex, 16 concurrent questions each pay that read for each of their
//! tokens, one after another. Decoding the newest token of all 16 in one
//! forward pass reads the weights once for all of them ([`Llama::decode_batch`]:
//! every tile of a weight matrix is used for all rows while it is in cache),
//! so the step costs little more than a single one and aggregate tokens/s
//! grows with the number of clients. That is what llama.cpp's `llama-server
//! -np N` does, and what we are measured against.
//!
//! # Design
//!
//! - The engine thread owns the [`Llama`] weights and a bounded number of
//!   *slots* ([`EngineConfig::slots`]); each slot has its own [`KvCache`]
//!   (allocated the first time the slot is used: with 16 slots of 2048
//!   positions, at most 16 × 90 MB) and remembers the tokens it holds.
//! - [`super::LocalModel::generate`] tokenizes in the caller's thread and
//!   submits a [`Job`] on a bounded queue ([`EngineConfig::queue`]); a full
//!   queue is [`super::Error::Overloaded`] at once, never an unbounded wait.
//!   The job carries its decoding options (max tokens, time budget,
//!   temperature/top-p/seed, the constrained-decoding mask) and a channel on
//!   which the engine sends each sampled token. The caller decodes the text,
//!   runs its `on_token` callback and checks stop strings in its own thread,
//!   exactly as before, and raises the job's cancel flag when a stop string
//!   ends it (or when it goes away).
//! - Each iteration of the engine: admit queued jobs into free slots (each
//!   starts from the longest prefix already in the chosen slot, or in a
//!   warmed prefix: [`super::LocalModel::warm_prefix`]; among equals the
//!   least recently used slot is taken, so a finished answer's tokens stay
//!   for a repeat); then one chunk of prefill ([`EngineConfig::prefill_chunk`]
//!   prompt tokens, first come first served; a sequence whose prompt is
//!   complete samples its first token); then one [`Llama::decode_batch`]
//!   over the newest token of every decoding sequence; sample each row
//!   (mask, greedy or seeded sampler per sequence) and send it; free the
//!   slots of finished sequences. A slot keeps its tokens after its sequence
//!   ends, so a prompt repeated later (or sharing a longer prefix) reuses them.
//! - Chunked prefill (as vLLM's chunked prefill and llama.cpp's server's
//!   batches of `n_batch` tokens): a newcomer's long prompt no longer stops
//!   every running answer for its whole prefill; they get a decode step
//!   after each chunk. A chunk is already a matrix-matrix product, so
//!   cutting a prompt costs little.
//! - The time budget of a request counts its own work: from its admission
//!   (not its wait in the queue), less the time spent prefilling others.
//!
//! # Exactness
//!
//! A batched step computes every row with the same floating-point operations
//! in the same order as a batch of one (rows never mix: see the kernels'
//! docs and the bit-identity tests in [`super::model`]), prefix reuse is
//! a copy of the same floats, and a prompt is cut into chunks at offsets
//! that depend only on its own reused prefix. So a greedy sequence's tokens are the same
//! whether it was decoded alone or beside fifteen others (the token-identity
//! test in this module).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::model::{KvCache, Llama, MAX_CONTEXT};
use super::{Error, Result, StopReason};

/// Warmed prefixes kept (one per approved prompt in use).
const MAX_PREFIXES: usize = 4;

/// Sizes of the engine: all bounded.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Sequences decoded together at most (each has its own KV cache).
    pub slots: usize,
    /// Generations waiting for a slot at most; one more is refused with
    /// [`Error::Overloaded`].
    pub queue: usize,
    /// Positions of each slot's KV cache (prompt plus generated tokens).
    pub slot_context: usize,
    /// Prompt tokens prefilled per engine step at most (one chunk): a long
    /// prompt is evaluated a chunk at a time between the decode steps of the
    /// sequences already running, so they keep streaming while it is read.
    pub prefill_chunk: usize,
    /// Positions of finished prompts kept beyond the slots (0: none): when a
    /// free slot is given to a new prompt, the keys and values it held are
    /// copied out first, into a least-recently-used pool of right-sized
    /// caches, so that a repeated question (or one sharing a longer prefix:
    /// same instructions and passages) is not read again after its slot was
    /// taken — under load every slot turns over between repeats. About 45 KB
    /// per position with SmolLM2-135M (4,096 positions: ~190 MB).
    pub prompt_cache: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { slots: 16, queue: 64, slot_context: MAX_CONTEXT, prefill_chunk: 64, prompt_cache: 4096 }
    }
}

impl EngineConfig {
    /// The defaults, overridden by `ONLABEL_LLM_SLOTS`, `ONLABEL_LLM_QUEUE`,
    /// `ONLABEL_LLM_SLOT_CONTEXT`, `ONLABEL_LLM_PREFILL_CHUNK` and
    /// `ONLABEL_LLM_PROMPT_CACHE` (positions; 0 turns the pool off) when set
    /// (for benches and operators sizing memory: a slot of 2048 positions
    /// holds about 90 MB with SmolLM2-135M).
    pub fn from_env() -> EngineConfig {
        let get = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok()).filter(|v| *v > 0).unwrap_or(d);
        let d = EngineConfig::default();
        EngineConfig {
            slots: get("ONLABEL_LLM_SLOTS", d.slots),
            queue: get("ONLABEL_LLM_QUEUE", d.queue),
            slot_context: get("ONLABEL_LLM_SLOT_CONTEXT", d.slot_context),
            prefill_chunk: get("ONLABEL_LLM_PREFILL_CHUNK", d.prefill_chunk),
            prompt_cache: std::env::var("ONLABEL_LLM_PROMPT_CACHE").ok().and_then(|v| v.parse().ok()).unwrap_or(d.prompt_cache),
        }
    }
}

/// What the engine tells a caller about its generation, in order:
/// `Started`, then `Token`s, ending with a token that carries a stop reason,
/// an `End`, or a `Failed`.
pub(crate) enum Event {
    /// The prompt is in the cache.
    Started {
        /// Prompt tokens served from a reused prefix.
        reused: usize,
        /// Milliseconds from the call's start to the end of prefill.
        prefill_ms: f64,
        /// Milliseconds the call waited in the queue for a slot.
        queue_ms: f64,
        /// Milliseconds of engine time its own prompt chunks took.
        prefill_compute_ms: f64,
    },
    /// A sampled token; `stop` is set when the engine ends the sequence
    /// after it (max tokens, time budget).
    Token {
        /// The token id.
        id: u32,
        /// Why the engine stops after this token, if it does.
        stop: Option<StopReason>,
        /// Milliseconds the engine has spent prefilling other requests
        /// since this one's admission (not charged to its budget).
        others_ms: f64,
    },
    /// The sequence ended without a new token (an end/control token was
    /// sampled, or the time budget ran out); with the milliseconds spent
    /// on other requests' prefill since admission.
    End(StopReason, f64),
    /// The forward pass failed.
    Failed(Error),
}

/// One generation submitted to the engine.
pub(crate) struct Job {
    /// Prompt token ids (at least one).
    pub ids: Vec<u32>,
    /// Most new tokens.
    pub max_tokens: usize,
    /// When the call started (reported times count from here).
    pub t0: Instant,
    /// Budget of this request's own work: it counts from the request's
    /// admission to a slot (not the wait in the queue), less the time the
    /// engine spent prefilling other requests meanwhile; decode steps,
    /// shared by every running sequence, count in full.
    pub time_budget: Duration,
    /// 0 = greedy.
    pub temperature: f64,
    /// Nucleus threshold.
    pub top_p: Option<f64>,
    /// Sampler seed.
    pub seed: u64,
    /// Constrained decoding: `mask[id]` is true for the ids that may be
    /// generated (allowed ones and stop tokens), over the whole vocabulary.
    pub mask: Option<Vec<bool>>,
    /// Set by the caller when it needs no more tokens.
    pub cancel: Arc<AtomicBool>,
    /// Where tokens go.
    pub events: mpsc::Sender<Event>,
}

enum Request {
    Generate(Job),
    Warm { ids: Vec<u32>, reply: mpsc::Sender<Result<()>> },
}

/// The handle callers hold: the queue's sending side and the thread.
pub struct Engine {
    tx: Option<mpsc::SyncSender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
    config: EngineConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("config", &self.config).finish()
    }
}

impl Engine {
    /// Starts the engine thread, which takes ownership of the weights.
    /// `stops` are the end/control token ids.
    pub fn start(model: Llama, stops: &[u32], config: EngineConfig) -> Result<Engine> {
        let config = EngineConfig {
            slots: config.slots.max(1),
            queue: config.queue.max(1),
            slot_context: config.slot_context.clamp(1, model.max_context()),
            prefill_chunk: config.prefill_chunk.max(1),
            prompt_cache: config.prompt_cache,
        };
        let mut stop = vec![false; model.vocab_size()];
        for &s in stops {
            if let Some(v) = stop.get_mut(s as usize) {
                *v = true;
            }
        }
        let (tx, rx) = mpsc::sync_channel(config.queue);
        let thread = std::thread::Builder::new()
            .name("onlabel-llm".into())
            .spawn(move || Worker::new(model, stop, config).run(rx))
            .map_err(|e| Error::Generation(format!("cannot start the model thread: {e}")))?;
        Ok(Engine { tx: Some(tx), thread: Some(thread), config })
    }

    /// The sizes in force.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// Queues a generation; [`Error::Overloaded`] when the queue is full.
    pub(crate) fn submit(&self, job: Job) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        match tx.try_send(Request::Generate(job)) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(_)) => Err(Error::Overloaded { queue: self.config.queue }),
            Err(mpsc::TrySendError::Disconnected(_)) => Err(stopped()),
        }
    }

    /// Evaluates `ids` once and keeps their KV cache as a reusable prefix.
    pub(crate) fn warm(&self, ids: Vec<u32>) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        let (reply, rx) = mpsc::channel();
        tx.send(Request::Warm { ids, reply }).map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing the queue ends the thread once its sequences are done.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn stopped() -> Error {
    Error::Generation("the model thread has stopped".into())
}

/// A sequence in a slot: its prompt being prefilled chunk by chunk, then
/// decoded.
struct Seq {
    job: Job,
    sampler: candle_transformers::generation::LogitsProcessor,
    generated: usize,
    /// The sampled token not yet run through the model.
    pending: u32,
    /// Prompt tokens in the slot's cache; the sequence decodes once it is
    /// `job.ids.len()`.
    prefilled: usize,
    /// Prompt tokens served from a reused prefix.
    reused: usize,
    /// Admission order (prefill is first come, first served).
    order: u64,
    /// When it took its slot: its time budget counts from here.
    admitted: Instant,
    /// Engine time spent prefilling other sequences since then (not
    /// charged to this one's budget).
    others: Duration,
    /// Engine time its own prompt chunks took.
    prefill_compute: Duration,
}

impl Seq {
    fn decoding(&self) -> bool {
        self.prefilled >= self.job.ids.len()
    }

    /// Time charged to this request: since admission, less other requests' prefill.
    fn charged(&self) -> Duration {
        self.admitted.elapsed().saturating_sub(self.others)
    }
}

#[derive(Default)]
struct Slot {
    cache: Option<KvCache>,
    /// Tokens whose keys and values are in `cache`, in order.
    cached: Vec<u32>,
    seq: Option<Seq>,
    /// When the slot last took a sequence (admission order): among slots
    /// holding equally useful prefixes, the least recently used is reused.
    last_used: u64,
}

struct Worker {
    model: Llama,
    stop: Vec<bool>,
    config: EngineConfig,
    slots: Vec<Slot>,
    /// Warmed prefixes: their tokens and a cache of exactly their length.
    prefixes: VecDeque<(Vec<u32>, KvCache)>,
    /// Finished prompts copied out of slots given to other prompts, least
    /// recently used first; at most [`EngineConfig::prompt_cache`] positions.
    recent: VecDeque<(Vec<u32>, KvCache)>,
    /// Scratch row for masking and sampling.
    row: Vec<f32>,
    /// Sequences admitted so far.
    admitted: u64,
}

impl Worker {
    fn new(model: Llama, stop: Vec<bool>, config: EngineConfig) -> Worker {
        let slots = (0..config.slots).map(|_| Slot::default()).collect();
        Worker { model, stop, config, slots, prefixes: VecDeque::new(), recent: VecDeque::new(), row: Vec::new(), admitted: 0 }
    }

    fn run(mut self, rx: mpsc::Receiver<Request>) {
        let mut open = true;
        loop {
            let active = self.slots.iter().filter(|s| s.seq.is_some()).count();
            if active == 0 {
                if !open {
                    return;
                }
                match rx.recv() {
                    Ok(r) => self.handle(r),
                    Err(_) => return,
                }
            }
            // Admit whatever is queued while there are free slots.
            while open && self.slots.iter().any(|s| s.seq.is_none()) {
                match rx.try_recv() {
                    Ok(r) => self.handle(r),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => open = false,
                }
            }
            self.step();
        }
    }

    fn handle(&mut self, r: Request) {
        match r {
            Request::Generate(job) => self.admit(job),
            Request::Warm { ids, reply } => {
                let _ = reply.send(self.warm(ids));
            }
        }
    }

    fn warm(&mut self, ids: Vec<u32>) -> Result<()> {
        if ids.is_empty() || self.prefixes.iter().any(|(p, _)| *p == ids) {
            return Ok(());
        }
        let mut cache = self.model.new_cache(ids.len());
        self.model.forward_in(&mut cache, &ids)?;
        if self.prefixes.len() >= MAX_PREFIXES {
            self.prefixes.pop_front();
        }
        self.prefixes.push_back((ids, cache));
        Ok(())
    }

    /// Puts a job into the free slot that already holds the longest prefix
    /// of its prompt (a warmed prefix is copied in when longer); its prompt
    /// is then prefilled chunk by chunk by [`Worker::step`].
    fn admit(&mut self, job: Job) {
        let ids = &job.ids;
        let Some(si) = (0..self.slots.len()).filter(|&i| self.slots[i].seq.is_none()).max_by_key(|&i| {
            let s = &self.slots[i];
            // Longest shared prefix first, then a slot whose cache exists,
            // then the least recently used, then the lowest index.
            (common_prefix(&s.cached, ids), s.cache.is_some(), std::cmp::Reverse(s.last_used), std::cmp::Reverse(i))
        }) else {
            let _ = job.events.send(Event::Failed(Error::Generation("no free slot".into())));
            return;
        };
        self.admitted += 1;
        let slot = &mut self.slots[si];
        slot.last_used = self.admitted;
        let mut reuse = common_prefix(&slot.cached, ids);
        // What the slot holds beyond this prompt would be overwritten: keep it.
        if let Some(cache) = slot.cache.as_ref() {
            keep_recent(&mut self.recent, &self.prefixes, &slot.cached, reuse, cache, self.config.prompt_cache);
        }
        let cache = slot.cache.get_or_insert_with(|| self.model.new_cache(self.config.slot_context));
        let best = self
            .prefixes
            .iter()
            .enumerate()
            .map(|(i, (p, _))| (common_prefix(p, ids), false, i))
            .chain(self.recent.iter().enumerate().map(|(i, (p, _))| (common_prefix(p, ids), true, i)))
            .max_by_key(|&(l, recent, _)| (l, !recent));
        if let Some((l, recent, i)) = best.filter(|&(l, _, _)| l > reuse) {
            let (p, pc) = if recent { &self.recent[i] } else { &self.prefixes[i] };
            cache.copy_prefix_from(pc, l);
            slot.cached.clear();
            slot.cached.extend_from_slice(&p[..l]);
            reuse = l;
            if recent {
                // Most recently used last.
                if let Some(e) = self.recent.remove(i) {
                    self.recent.push_back(e);
                }
            }
        }
        // Always run at least one token, for the logits.
        let reuse = reuse.min(ids.len().saturating_sub(1));
        cache.truncate(reuse);
        slot.cached.truncate(reuse);
        let sampler = candle_transformers::generation::LogitsProcessor::new(
            job.seed,
            (job.temperature > 0.0).then_some(job.temperature),
            job.top_p,
        );
        slot.seq = Some(Seq {
            job,
            sampler,
            generated: 0,
            pending: 0,
            prefilled: reuse,
            reused: reuse,
            order: self.admitted,
            admitted: Instant::now(),
            others: Duration::ZERO,
            prefill_compute: Duration::ZERO,
        });
    }

    /// Prefills up to [`EngineConfig::prefill_chunk`] prompt tokens, first
    /// come first served: each sequence's prompt is cut into chunks at fixed
    /// offsets from its reused prefix (so its floats do not depend on what
    /// else runs), and a sequence whose prompt is complete samples its first
    /// token and joins the decode steps.
    fn prefill(&mut self) {
        let mut done = 0;
        while done < self.config.prefill_chunk {
            let Some(si) = (0..self.slots.len())
                .filter(|&i| self.slots[i].seq.as_ref().is_some_and(|s| !s.decoding()))
                .min_by_key(|&i| self.slots[i].seq.as_ref().map_or(u64::MAX, |s| s.order))
            else {
                return;
            };
            let started = Instant::now();
            let slot = &mut self.slots[si];
            let (Some(seq), Some(cache)) = (slot.seq.as_mut(), slot.cache.as_mut()) else { return };
            let from = seq.prefilled;
            let to = (from + self.config.prefill_chunk).min(seq.job.ids.len());
            let logits = match self.model.forward_in(cache, &seq.job.ids[from..to]) {
                Ok(l) => l,
                Err(e) => {
                    cache.truncate(0);
                    slot.cached.clear();
                    if let Some(seq) = slot.seq.take() {
                        let _ = seq.job.events.send(Event::Failed(e));
                    }
                    continue;
                }
            };
            slot.cached.extend_from_slice(&seq.job.ids[from..to]);
            seq.prefilled = to;
            seq.prefill_compute += started.elapsed();
            done += to - from;
            if seq.decoding() {
                let _ = seq.job.events.send(Event::Started {
                    reused: seq.reused,
                    prefill_ms: seq.job.t0.elapsed().as_secs_f64() * 1e3,
                    queue_ms: seq.admitted.duration_since(seq.job.t0).as_secs_f64() * 1e3,
                    prefill_compute_ms: seq.prefill_compute.as_secs_f64() * 1e3,
                });
                self.row.clear();
                self.row.extend_from_slice(logits);
                if !sample(seq, &mut self.row, &self.stop) {
                    slot.seq = None;
                }
            }
            // Other requests' budgets do not pay for this one's prompt.
            let spent = started.elapsed();
            for (i, other) in self.slots.iter_mut().enumerate() {
                if let Some(o) = other.seq.as_mut().filter(|_| i != si) {
                    o.others += spent;
                }
            }
        }
    }

    /// One engine step: a chunk of prefill (see [`Worker::prefill`]), then
    /// one decode step over every sequence whose prompt is in its cache.
    fn step(&mut self) {
        // Sequences whose caller has gone or stopped them leave first.
        for slot in &mut self.slots {
            if slot.seq.as_ref().is_some_and(|s| s.job.cancel.load(Ordering::Relaxed)) {
                slot.seq = None;
                // A prompt cut off mid-prefill leaves a valid cache of what was run.
            }
        }
        self.prefill();
        let batch: Vec<usize> = (0..self.slots.len()).filter(|&i| self.slots[i].seq.as_ref().is_some_and(Seq::decoding)).collect();
        if batch.is_empty() {
            return;
        }
        let tokens: Vec<u32> = batch.iter().map(|&i| self.slots[i].seq.as_ref().map_or(0, |s| s.pending)).collect();
        let vocab = self.model.vocab_size();
        let result = {
            let mut caches: Vec<&mut KvCache> = self
                .slots
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| batch.contains(i))
                .filter_map(|(_, s)| s.cache.as_mut())
                .collect();
            self.model.decode_batch(&mut caches, &tokens).map(|_| ())
        };
        if let Err(e) = result {
            // A failed step poisons every row of it: end them all, clearly.
            for &i in &batch {
                let slot = &mut self.slots[i];
                if let Some(seq) = slot.seq.take() {
                    let _ = seq.job.events.send(Event::Failed(Error::Generation(format!("decode step: {e}"))));
                }
                slot.cached.clear();
                if let Some(c) = slot.cache.as_mut() {
                    c.truncate(0);
                }
            }
            return;
        }
        for (row, &i) in batch.iter().enumerate() {
            let slot = &mut self.slots[i];
            slot.cached.push(tokens[row]);
            self.row.clear();
            self.row.extend_from_slice(&self.model.last_logits()[row * vocab..(row + 1) * vocab]);
            let keep = match slot.seq.as_mut() {
                Some(seq) => sample(seq, &mut self.row, &self.stop),
                None => false,
            };
            if !keep {
                slot.seq = None;
            }
        }
    }
}

/// Samples the next token of `seq` from its logits row (masked in place),
/// sends it, and says whether the sequence goes on.
fn sample(seq: &mut Seq, row: &mut [f32], stop: &[bool]) -> bool {
    let job = &seq.job;
    if let Some(mask) = &job.mask {
        for (l, &ok) in row.iter_mut().zip(mask) {
            if !ok {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    let next = if job.temperature <= 0.0 {
        Llama::argmax(row)
    } else {
        match candle_core::Tensor::new(&*row, &candle_core::Device::Cpu).and_then(|t| seq.sampler.sample(&t)) {
            Ok(t) => t,
            Err(e) => {
                let _ = job.events.send(Event::Failed(e.into()));
                return false;
            }
        }
    };
    if stop.get(next as usize).copied().unwrap_or(false) {
        let _ = job.events.send(Event::End(StopReason::EndOfText, seq.others.as_secs_f64() * 1e3));
        return false;
    }
    seq.generated += 1;
    let reason = if seq.generated >= job.max_tokens {
        Some(StopReason::MaxTokens)
    } else if seq.charged() >= job.time_budget {
        Some(StopReason::TimeBudget)
    } else {
        None
    };
    if job.events.send(Event::Token { id: next, stop: reason, others_ms: seq.others.as_secs_f64() * 1e3 }).is_err() {
        return false;
    }
    seq.pending = next;
    reason.is_none() && !job.cancel.load(Ordering::Relaxed)
}

/// Copies the positions a slot holds into the pool of recent prompts before
/// the slot is given to a prompt that shares only `shared` of them — unless
/// they are too few to be worth a copy (under 32 beyond what is shared), a
/// warmed prefix or a pool entry already holds them, or the pool is off.
/// Entries this one extends are dropped; the least recently used go first
/// when the pool is over `capacity` positions.
fn keep_recent(
    recent: &mut VecDeque<(Vec<u32>, KvCache)>,
    prefixes: &VecDeque<(Vec<u32>, KvCache)>,
    held: &[u32],
    shared: usize,
    cache: &KvCache,
    capacity: usize,
) {
    let len = held.len().min(cache.len());
    if capacity == 0 || len < shared + 32 || len > capacity {
        return;
    }
    let held = &held[..len];
    let covered = |p: &Vec<u32>| p.len() >= len && p[..len] == *held;
    if prefixes.iter().any(|(p, _)| covered(p)) || recent.iter().any(|(p, _)| covered(p)) {
        return;
    }
    recent.retain(|(p, _)| !(p.len() <= len && held[..p.len()] == p[..]));
    let mut total: usize = recent.iter().map(|(p, _)| p.len()).sum();
    while total + len > capacity {
        match recent.pop_front() {
            Some((p, _)) => total -= p.len(),
            None => break,
        }
    }
    recent.push_back((held.to_vec(), cache.prefix_copy(len)));
}

pub(crate) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
