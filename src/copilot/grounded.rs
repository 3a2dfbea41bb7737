//! [`Grounded`]: answers written by a model from the approved passages,
//! then verified sentence by sentence ([`crate::guard::verify`]).
//!
//! The prompt (`prompts/objection.j2`, rendered with minijinja) gives the
//! model only the passage sentences that matter, numbered as the citations
//! will be. Its fixed instructions are the chat's system message, evaluated
//! once and reused from the KV cache for every question. Optionally the
//! decoding is constrained: only tokens that occur in the given passages,
//! punctuation, function words and citation markers may be generated.
//!
//! The model is a [`ChatModel`]: the in-process one, or an OpenAI-compatible
//! server (`--generator-url`). A server gets the same chat messages, the
//! same copy constraint as a grammar ([`crate::llm::gbnf`], where it takes
//! one) and its streamed text goes through the same verifier and the same
//! `accept` (the output guard); when it fails, or its circuit is open, the
//! error reaches the copilot, which answers with quoted approved text.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::guard::verify::{verify, Checked};
use crate::index::{Analyzer, Hit, SearchResult};
use crate::llm::gbnf::Vocabulary;
use crate::llm::remote::ChatRequest;
use crate::llm::{ChatModel, Draft, GenerateOptions, Generation, LocalModel, Message, Mode, RemoteModel, Sentence};
use crate::prompts::PromptFile;

use super::extractive::{score_sentences, Extractive};

/// Words the model may always use under constrained decoding.
const FUNCTION_WORDS: &str = "the a an of to in on for with and or but is are was were be been it its this that these those \
    by as at from may can should not no if when while than then also all any each per who which what how do does did has have had \
    patients patient your you we they there their use used";

/// One passage as shown to the model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shown {
    /// Marker number in the prompt.
    pub n: usize,
    /// The sentences shown.
    pub text: String,
    /// Index of the hit it comes from.
    #[serde(skip)]
    pub hit: usize,
}

/// What a grounded generation produced, for the answer and the audit trail.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Verified sentences as a draft, if any survived.
    pub draft: Option<Draft>,
    /// Every generated sentence with its verdict.
    pub checked: Vec<Checked>,
    /// The raw generation.
    pub generation: Option<Generation>,
    /// The passages shown.
    pub shown: Vec<Shown>,
    /// Milliseconds from the start of generation to the model's first token.
    pub first_token_ms: Option<f64>,
    /// Why the model was not run, or not run to the end, when it could not
    /// help: the extractive answer stands, at once.
    pub cut: Option<Cut>,
}

/// Why a generation was skipped or stopped early ([`Grounded::answer`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Cut {
    /// At the speed the model ran at on the previous question (within
    /// [`SPEED_MEMORY`]), it could not write [`MIN_ANSWER_TOKENS`] within the
    /// time budget: it was not run.
    TooSlow {
        /// Predicted time to the end of the shortest useful answer, ms.
        predicted_ms: f64,
    },
    /// The first sentence was rejected for good ([`first_sentence_rejected`]):
    /// the rest was not waited for.
    FirstSentenceRejected {
        /// Tokens written when it stopped.
        tokens: usize,
    },
}

/// How fast the model ran on its last question, to predict the next.
#[derive(Debug, Clone, Copy)]
struct Speed {
    /// Milliseconds to the first token per prompt token not served from the KV prefix.
    ttft_ms_per_token: f64,
    /// Prompt tokens served from the KV prefix (the approved prompt's fixed part).
    reused: usize,
    /// Milliseconds per generated token after the first.
    decode_ms_per_token: f64,
    /// When it was measured.
    at: std::time::Instant,
}

/// A shortest useful answer: one label sentence of a dozen words and its marker.
pub const MIN_ANSWER_TOKENS: usize = 16;

/// How long a speed measurement is trusted; after that the model runs again
/// (and is measured again), so a machine that was busy is not skipped for good.
/// Two minutes: a wrong skip costs a paraphrase (the cited extractive answer
/// is shown instead), a wrong run costs the rep the whole time budget.
pub const SPEED_MEMORY: std::time::Duration = std::time::Duration::from_secs(120);

/// The model-backed generator.
pub struct Grounded {
    /// The model: in-process, or an inference server.
    pub model: ChatModel,
    /// The prompt.
    pub prompt: PromptFile,
    /// Decoding options.
    pub opts: GenerateOptions,
    /// Constrained decoding on/off.
    pub constrained: bool,
    /// Most sentences shown to the model.
    pub context_sentences: usize,
    /// Most passages shown.
    pub context_passages: usize,
    /// The speed of the last generation, to skip the model when it cannot
    /// finish a sentence within the time budget (a busy CPU).
    speed: std::sync::Mutex<Option<Speed>>,
    /// How many answers this generator was asked for (each call of
    /// [`Grounded::answer`]): lets a test prove that a quote-only question
    /// never reached the model.
    calls: std::sync::atomic::AtomicUsize,
}

impl Grounded {
    /// A grounded generator; evaluates the prompt's fixed instructions once.
    pub fn new(model: Arc<LocalModel>, prompt: PromptFile) -> Result<Grounded, crate::llm::Error> {
        let g = Self::with(ChatModel::Local(Arc::clone(&model)), prompt);
        let system = g.render_part("system", "", &[])?;
        let chat = model.render_chat(&[Message { role: "system".into(), content: system }])?;
        // The fixed part: everything up to the (variable) user turn.
        let prefix = chat.split("<|im_start|>assistant").next().unwrap_or(&chat).to_string();
        model.warm_prefix(&prefix)?;
        Ok(g)
    }

    /// A grounded generator whose answers an OpenAI-compatible inference
    /// server writes (the server keeps its own prompt cache).
    pub fn remote(model: Arc<RemoteModel>, prompt: PromptFile) -> Grounded {
        Self::with(ChatModel::Remote(model), prompt)
    }

    fn with(model: ChatModel, prompt: PromptFile) -> Grounded {
        Grounded {
            model,
            prompt,
            opts: GenerateOptions { max_tokens: 80, stop: vec!["\n\n".into()], ..GenerateOptions::default() },
            constrained: true,
            context_sentences: 4,
            context_passages: 3,
            speed: std::sync::Mutex::new(None),
            calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn render_part(&self, part: &str, question: &str, shown: &[Shown]) -> Result<String, crate::llm::Error> {
        let mut env = minijinja::Environment::new();
        env.add_template("p", &self.prompt.source).map_err(|e| crate::llm::Error::Template(e.to_string()))?;
        let t = env.get_template("p").map_err(|e| crate::llm::Error::Template(e.to_string()))?;
        t.render(minijinja::context! { part => part, question => question, passages => shown })
            .map(|s| s.trim().to_string())
            .map_err(|e| crate::llm::Error::Template(e.to_string()))
    }

    /// The chat messages for a question and the passages shown: the
    /// approved prompt's system and user parts.
    pub fn messages(&self, question: &str, shown: &[Shown]) -> Result<Vec<Message>, crate::llm::Error> {
        let system = self.render_part("system", question, shown)?;
        let user = self.render_part("user", question, shown)?;
        Ok(vec![Message { role: "system".into(), content: system }, Message { role: "user".into(), content: user }])
    }

    /// The full chat prompt for a question and the passages shown, in the
    /// local model's chat template (a server applies its own).
    pub fn render(&self, question: &str, shown: &[Shown]) -> Result<String, crate::llm::Error> {
        let local = self.model.local().ok_or(crate::llm::Error::LocalOnly("rendering the chat template"))?;
        local.render_chat(&self.messages(question, shown)?)
    }

    /// Chooses the sentences that matter: the best-scoring sentences of the
    /// passages that answer the question, grouped by passage in label order.
    pub fn select(&self, search: &SearchResult, hits: &[Hit], gate: &Extractive) -> Vec<Shown> {
        let n_concepts = search.concepts.len();
        let eligible: Vec<Hit> = hits
            .iter()
            .take(gate.considered)
            .map(|h| if gate.answers(h, n_concepts) { h.clone() } else { Hit { coverage: 0.0, ..h.clone() } })
            .collect();
        let scored: Vec<_> = score_sentences(Analyzer::shared(), search, &eligible, gate.considered)
            .into_iter()
            .filter(|s| eligible[s.hit].coverage > 0.0)
            .collect();
        let mut by_hit: BTreeMap<usize, Vec<(usize, String)>> = BTreeMap::new();
        let mut order: Vec<usize> = Vec::new();
        let mut count = 0;
        for s in &scored {
            if count >= self.context_sentences {
                break;
            }
            if !by_hit.contains_key(&s.hit) {
                if order.len() >= self.context_passages {
                    continue;
                }
                order.push(s.hit);
            }
            by_hit.entry(s.hit).or_default().push((s.pos, s.text.to_string()));
            count += 1;
        }
        order
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut v = by_hit.remove(h).unwrap_or_default();
                v.sort();
                Shown { n: i + 1, text: v.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(" "), hit: *h }
            })
            .collect()
    }

    /// The copy constraint for these passages: the words of the passages
    /// (as written, lower-case and capitalised), the function words and the
    /// passages' citation markers. The local model decodes under it as a
    /// token mask ([`Grounded::allowed_tokens`]), a server as a grammar
    /// ([`Vocabulary::gbnf`]).
    pub fn vocabulary(&self, shown: &[Shown]) -> Vocabulary {
        let mut words = std::collections::BTreeSet::new();
        for s in shown {
            for w in s.text.split_whitespace() {
                let w = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '%');
                if !w.is_empty() {
                    words.insert(w.to_string());
                    words.insert(w.to_lowercase());
                    let mut cap = w.to_lowercase();
                    if let Some(f) = cap.get_mut(0..1) {
                        f.make_ascii_uppercase();
                    }
                    words.insert(cap);
                }
            }
        }
        for w in FUNCTION_WORDS.split_whitespace() {
            words.insert(w.to_string());
            let mut cap = w.to_string();
            if let Some(f) = cap.get_mut(0..1) {
                f.make_ascii_uppercase();
            }
            words.insert(cap);
        }
        Vocabulary { words, markers: shown.iter().map(|s| s.n).collect() }
    }

    /// Token ids allowed under constrained decoding for these passages (the
    /// local model's form of [`Grounded::vocabulary`]; empty for a server).
    pub fn allowed_tokens(&self, shown: &[Shown]) -> HashSet<u32> {
        let Some(local) = self.model.local() else { return HashSet::new() };
        let tk = &local.tokenizer;
        let mut allowed = HashSet::new();
        let mut add = |s: &str| {
            if let Ok(ids) = tk.encode(s) {
                allowed.extend(ids);
            }
        };
        for s in shown {
            add(&s.text);
            add(&format!("[{}]", s.n));
            add(&format!(" [{}]", s.n));
        }
        for w in &self.vocabulary(shown).words {
            add(w);
            add(&format!(" {w}"));
        }
        for p in [".", ",", ";", ":", "(", ")", "-", "%", " (", "\n", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", " "] {
            add(p);
        }
        allowed
    }

    /// How many answers this generator has been asked for since it was made.
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Generates, verifies, and keeps the supported sentences.
    ///
    /// Verification runs while the model writes: a sentence is judged as
    /// soon as the next one has begun (so that a marker written after the
    /// full stop still counts), and each supported sentence is offered to
    /// `accept` (the copilot's output guard) right then. Only accepted
    /// sentences enter the draft, in the order they were accepted, so what a
    /// front end streamed from `accept` is exactly the answer. No raw model
    /// text is passed out.
    pub fn answer(
        &self,
        question: &str,
        search: &SearchResult,
        hits: &[Hit],
        gate: &Extractive,
        accept: &mut dyn FnMut(&Sentence) -> bool,
    ) -> Result<Outcome, crate::llm::Error> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shown = self.select(search, hits, gate);
        if shown.is_empty() {
            return Ok(Outcome { draft: None, checked: Vec::new(), generation: None, shown, first_token_ms: None, cut: None });
        }
        let full: Vec<&str> = shown.iter().map(|s| hits[s.hit].passage.text.as_str()).collect();
        let mut stream = SentenceStream::default();
        let written = match &self.model {
            ChatModel::Local(model) => {
                let prompt = self.render(question, &shown)?;
                let mut opts = self.opts.clone();
                if self.constrained {
                    opts.allowed = Some(self.allowed_tokens(&shown));
                }
                if let Some(predicted_ms) = self.too_slow(model, &prompt, &opts) {
                    tracing::debug!(target: "onlabel::generation", predicted_ms, "model skipped: it could not write an answer within the time budget");
                    return Ok(Outcome { draft: None, checked: Vec::new(), generation: None, shown, first_token_ms: None, cut: Some(Cut::TooSlow { predicted_ms }) });
                }
                let w = self.write_local(model, &prompt, &opts, &full, &shown, &mut stream, accept)?;
                self.measured(&w.generation);
                w
            }
            ChatModel::Remote(server) => self.write_remote(server, question, &full, &shown, &mut stream, accept)?,
        };
        let Written { generation, first_token_ms, cut } = written;
        if cut.is_some() {
            tracing::debug!(target: "onlabel::generation", tokens = generation.generated_tokens, "first sentence rejected; generation abandoned");
            let checked = verify(&generation.text, &full, Analyzer::shared());
            return Ok(Outcome { draft: None, checked, generation: Some(generation), shown, first_token_ms, cut });
        }
        let checked = verify(&generation.text, &full, Analyzer::shared());
        stream.offer(&checked, &shown, accept);
        tracing::debug!(target: "onlabel::generation", checked = ?checked, "model draft verified");
        let sentences = stream.kept;
        let draft = (!sentences.is_empty()).then_some(Draft { sentences, mode: Mode::Generated });
        Ok(Outcome { draft, checked, generation: Some(generation), shown, first_token_ms, cut })
    }

    /// The local model writes the answer in one generation, verified as it
    /// is written: a sentence is judged once two more have begun, and every
    /// [`CHECK_EVERY`] tokens the verdicts are read — once the first
    /// sentence is rejected for good, the model cannot help this question,
    /// the engine stops decoding it and the extractive answer stands (the
    /// rep is not kept waiting for the rest). One generation is one job of
    /// the batching engine ([`crate::llm::engine`]): concurrent answers are
    /// decoded together in shared steps, none waits for another's turn.
    #[allow(clippy::too_many_arguments)]
    fn write_local(
        &self,
        model: &LocalModel,
        prompt: &str,
        opts: &GenerateOptions,
        full: &[&str],
        shown: &[Shown],
        stream: &mut SentenceStream,
        accept: &mut dyn FnMut(&Sentence) -> bool,
    ) -> Result<Written, crate::llm::Error> {
        let mut buf = String::new();
        let started = std::time::Instant::now();
        let mut first_token_ms = None;
        let mut pieces = 0usize;
        let mut stopped_at_string = false;
        let mut cut = None;
        let mut generation = model.generate_while(prompt, opts, |t| {
            if first_token_ms.is_none() {
                first_token_ms = Some(started.elapsed().as_secs_f64() * 1e3);
            }
            pieces += 1;
            buf.push_str(t);
            if let Some(i) = opts.stop.iter().filter_map(|s| buf.find(s.as_str())).min() {
                buf.truncate(i);
                stopped_at_string = true;
            }
            let checked = verify(&buf, full, Analyzer::shared());
            // The last piece may still grow, and the one before it may still
            // receive its marker: judge only pieces with two after them begun.
            let settled = checked.len().saturating_sub(2);
            stream.offer(&checked[..settled], shown, accept);
            if stopped_at_string {
                return false;
            }
            if pieces % CHECK_EVERY == 0 && stream.kept.is_empty() && first_sentence_rejected(&checked) {
                cut = Some(Cut::FirstSentenceRejected { tokens: pieces });
                return false;
            }
            true
        })?;
        if stopped_at_string {
            generation.stop = crate::llm::StopReason::StopString;
        }
        generation.text = buf;
        generation.total_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(Written { generation, first_token_ms, cut })
    }

    /// A server writes the whole answer in one streamed call; each piece is
    /// verified as it arrives (sentences settle as with the local model),
    /// and the stream is dropped — the server stops — once the first
    /// sentence is rejected for good or the time budget runs out. Under
    /// constrained decoding the copy constraint goes with the request as a
    /// grammar. A failure (unreachable, timed out, overloaded, broken off,
    /// circuit open) is an error when no sentence has been accepted yet:
    /// the copilot then answers with quoted text and says why. After a
    /// sentence was accepted (and so may already be on the rep's screen)
    /// the answer keeps what was verified, and the failure is logged (the
    /// breaker has counted it).
    fn write_remote(
        &self,
        server: &RemoteModel,
        question: &str,
        full: &[&str],
        shown: &[Shown],
        stream: &mut SentenceStream,
        accept: &mut dyn FnMut(&Sentence) -> bool,
    ) -> Result<Written, crate::llm::Error> {
        let messages = self.messages(question, shown)?;
        let opts = &self.opts;
        let grammar = self.constrained.then(|| self.vocabulary(shown).gbnf());
        let req = ChatRequest {
            max_tokens: opts.max_tokens,
            temperature: opts.temperature,
            top_p: opts.top_p,
            seed: opts.seed,
            stop: opts.stop.clone(),
            grammar,
        };
        let started = std::time::Instant::now();
        let mut buf = String::new();
        let mut first_token_ms = None;
        let mut cut = None;
        let mut out_of_time = false;
        let mut pieces = 0;
        let result = server.chat_stream(&messages, &req, &mut |piece| {
            first_token_ms.get_or_insert(started.elapsed().as_secs_f64() * 1e3);
            pieces += 1;
            buf.push_str(piece);
            let checked = verify(&buf, full, Analyzer::shared());
            let settled = checked.len().saturating_sub(2);
            stream.offer(&checked[..settled], shown, accept);
            if stream.kept.is_empty() && first_sentence_rejected(&checked) {
                // A streamed piece is one token on llama.cpp and vLLM.
                cut = Some(Cut::FirstSentenceRejected { tokens: pieces });
                return false;
            }
            if started.elapsed() >= opts.time_budget {
                out_of_time = true;
                return false;
            }
            true
        });
        let mut generation = match result {
            Ok(g) => g,
            Err(e) if stream.kept.is_empty() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(target: "onlabel::generation", error = %e, kept = stream.kept.len(), "the inference server failed mid-answer; keeping the sentences verified so far");
                Generation {
                    text: buf.clone(),
                    prompt_tokens: 0,
                    reused_tokens: 0,
                    generated_tokens: 0,
                    token_ids: Vec::new(),
                    stop: crate::llm::StopReason::EndOfText,
                    prefill_ms: 0.0,
                    queue_ms: 0.0,
                    prefill_compute_ms: 0.0,
                    others_ms: 0.0,
                    first_token_ms: first_token_ms.unwrap_or(0.0),
                    total_ms: started.elapsed().as_secs_f64() * 1e3,
                }
            }
        };
        // The verified text is what was read, up to a stop string the server
        // may have left in (it stops at them, but some servers echo them).
        if let Some(i) = opts.stop.iter().filter_map(|s| buf.find(s.as_str())).min() {
            buf.truncate(i);
        }
        generation.text = buf;
        if out_of_time {
            generation.stop = crate::llm::StopReason::TimeBudget;
        }
        Ok(Written { generation, first_token_ms, cut })
    }

    /// `Some(predicted ms)` when, at the speed of the last generation (if
    /// measured within [`SPEED_MEMORY`]), the model could not write
    /// [`MIN_ANSWER_TOKENS`] within the time budget: then it cannot help, and
    /// running it would only keep the rep waiting for the budget to run out.
    fn too_slow(&self, model: &LocalModel, prompt: &str, opts: &GenerateOptions) -> Option<f64> {
        let speed = (*self.speed.lock().ok()?)?;
        if speed.at.elapsed() > SPEED_MEMORY {
            return None;
        }
        let tokens = model.tokenizer.encode(prompt).ok()?.len();
        let predicted = tokens.saturating_sub(speed.reused) as f64 * speed.ttft_ms_per_token
            + (MIN_ANSWER_TOKENS - 1) as f64 * speed.decode_ms_per_token;
        (predicted > opts.time_budget.as_secs_f64() * 1e3).then_some(predicted)
    }

    /// Remembers how fast a generation ran (prefill per new prompt token,
    /// decode per token).
    ///
    /// Both are the generation's own work, as its time budget counts it:
    /// the prompt's chunks as the engine timed them, and the decode time
    /// less the queue and other requests' prefill — so that a busy engine
    /// (concurrent answers being read in) does not make every later
    /// question skip the model.
    fn measured(&self, g: &Generation) {
        let fresh = g.prompt_tokens.saturating_sub(g.reused_tokens).max(1);
        tracing::debug!(
            target: "onlabel::generation",
            prompt = g.prompt_tokens,
            reused = g.reused_tokens,
            generated = g.generated_tokens,
            queue_ms = g.queue_ms,
            prefill_ms = g.prefill_compute_ms,
            others_ms = g.others_ms,
            total_ms = g.total_ms,
            "local generation"
        );
        if g.generated_tokens == 0 {
            return;
        }
        let own_prefill = if g.prefill_compute_ms > 0.0 { g.prefill_compute_ms } else { g.first_token_ms };
        let own_total = (g.total_ms - g.queue_ms - g.others_ms).max(own_prefill);
        let decode = if g.generated_tokens > 1 { (own_total - own_prefill) / (g.generated_tokens - 1) as f64 } else { 0.0 };
        if let Ok(mut s) = self.speed.lock() {
            *s = Some(Speed { ttft_ms_per_token: own_prefill / fresh as f64, reused: g.reused_tokens, decode_ms_per_token: decode, at: std::time::Instant::now() });
        }
    }
}

/// Pieces of text (about one token each) the local model writes between two
/// reads of the verifier's verdict on the first sentence (see
/// [`Grounded::answer`]): the model is stopped within a few words of a
/// first sentence rejected for good.
pub const CHECK_EVERY: usize = 8;

/// Whether the first sentence of a generation is rejected for good: it is
/// rejected, and nothing written later can change that — a reason other
/// than a missing marker once the next sentence has begun (the text of a
/// sentence no longer grows then, and its marker is already attached), or
/// a missing marker once two more have begun.
pub fn first_sentence_rejected(checked: &[Checked]) -> bool {
    match checked.first().and_then(|c| c.rejection.as_ref()) {
        None => false,
        Some(crate::guard::verify::Rejection::NoMarker) => checked.len() >= 3,
        Some(_) => checked.len() >= 2,
    }
}

/// What a model wrote for one answer (before the final verification).
struct Written {
    /// The generation, its text cut at the first stop string.
    generation: Generation,
    /// Milliseconds from the start of writing to the first piece.
    first_token_ms: Option<f64>,
    /// Why writing stopped early, if it did.
    cut: Option<Cut>,
}

/// The sentences of a generation judged so far, in order.
#[derive(Default)]
struct SentenceStream {
    /// How many checked pieces have been judged.
    judged: usize,
    /// The supported, accepted sentences.
    kept: Vec<Sentence>,
}

impl SentenceStream {
    /// Judges the pieces of `checked` beyond those already judged.
    fn offer(&mut self, checked: &[Checked], shown: &[Shown], accept: &mut dyn FnMut(&Sentence) -> bool) {
        while self.judged < checked.len() {
            let c = &checked[self.judged];
            self.judged += 1;
            if let (None, Some(pi)) = (&c.rejection, c.passage) {
                let s = Sentence { text: c.text.trim().to_string(), passage: shown[pi].hit };
                if !self.kept.iter().any(|k| k.text == s.text) && accept(&s) {
                    self.kept.push(s);
                }
            }
        }
    }
}

impl crate::llm::Generator for Grounded {
    fn draft(&self, question: &str, search: &SearchResult, hits: &[Hit]) -> Draft {
        match self.answer(question, search, hits, &Extractive::default(), &mut |_| true) {
            Ok(Outcome { draft: Some(d), .. }) => d,
            _ => Draft { sentences: Vec::new(), mode: Mode::Generated },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "Monitor ALT and AST every 4 weeks for the first 12 weeks.";

    fn rejected(text: &str) -> bool {
        first_sentence_rejected(&verify(text, &[P], Analyzer::shared()))
    }

    #[test]
    fn a_first_sentence_is_rejected_for_good_only_when_nothing_later_can_save_it() {
        // Still being written, or supported: not rejected.
        assert!(!rejected("Monitor ALT and AST every"));
        assert!(!rejected("Monitor ALT and AST every 4 weeks [1]. Then"));
        // Unsupported, and the next sentence has begun: its text and marker are final.
        assert!(rejected("ZENTRAVIA cures psoriasis in every patient [1]. Then"));
        // No marker yet: the next piece may still bring it ("… weeks. [1] Next").
        assert!(!rejected("Monitor ALT and AST every 4 weeks. ["));
        assert!(!rejected("Monitor ALT and AST every 4 weeks. Then"));
        // Two more begun without it: the marker is not coming.
        assert!(rejected("Monitor ALT and AST every 4 weeks. Then more. And"));
    }
}
