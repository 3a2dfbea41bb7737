//! [`Grounded`]: answers written by the local model from the approved
//! passages, then verified sentence by sentence ([`super::verify`]).
//!
//! The prompt (`prompts/objection.j2`, rendered with minijinja) gives the
//! model only the passage sentences that matter, numbered as the citations
//! will be. Its fixed instructions are the chat's system message, evaluated
//! once and reused from the KV cache for every question. Optionally the
//! decoding is constrained: only tokens that occur in the given passages,
//! punctuation, function words and citation markers may be generated.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::index::{Analyzer, Hit, SearchResult};
use crate::llm::{GenerateOptions, Generation, LocalModel, Message};

use super::extractive::{score_sentences, Extractive};
use super::verify::{verify, Checked};
use super::{Draft, Mode, Sentence};

/// Words the model may always use under constrained decoding.
const FUNCTION_WORDS: &str = "the a an of to in on for with and or but is are was were be been it its this that these those \
    by as at from may can should not no if when while than then also all any each per who which what how do does did has have had \
    patients patient your you we they there their use used";

/// The prompt template file and its version.
#[derive(Debug, Clone)]
pub struct PromptFile {
    /// Name (`objection`).
    pub name: String,
    /// Version number from the template's header.
    pub version: u32,
    /// Template source.
    pub source: String,
}

impl PromptFile {
    /// Reads a template; its header comment must carry `version: N`.
    pub fn read(path: &Path) -> Result<PromptFile, crate::llm::Error> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| crate::llm::Error::Io { path: path.to_owned(), source: e })?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("prompt").to_string();
        let version = source
            .lines()
            .find_map(|l| l.trim().strip_prefix("version:").and_then(|v| v.trim().parse().ok()))
            .ok_or_else(|| crate::llm::Error::Template(format!("{} has no `version: N` line in its header", path.display())))?;
        Ok(PromptFile { name, version, source })
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

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
}

/// The model-backed generator.
pub struct Grounded {
    /// The model.
    pub model: Arc<LocalModel>,
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
}

impl Grounded {
    /// A grounded generator; evaluates the prompt's fixed instructions once.
    pub fn new(model: Arc<LocalModel>, prompt: PromptFile) -> Result<Grounded, crate::llm::Error> {
        let g = Grounded {
            model,
            prompt,
            opts: GenerateOptions { max_tokens: 80, stop: vec!["\n\n".into()], ..GenerateOptions::default() },
            constrained: true,
            context_sentences: 4,
            context_passages: 3,
        };
        let system = g.render_part("system", "", &[])?;
        let chat = g.model.render_chat(&[Message { role: "system".into(), content: system }])?;
        // The fixed part: everything up to the (variable) user turn.
        let prefix = chat.split("<|im_start|>assistant").next().unwrap_or(&chat).to_string();
        g.model.warm_prefix(&prefix)?;
        Ok(g)
    }

    fn render_part(&self, part: &str, question: &str, shown: &[Shown]) -> Result<String, crate::llm::Error> {
        let mut env = minijinja::Environment::new();
        env.add_template("p", &self.prompt.source).map_err(|e| crate::llm::Error::Template(e.to_string()))?;
        let t = env.get_template("p").map_err(|e| crate::llm::Error::Template(e.to_string()))?;
        t.render(minijinja::context! { part => part, question => question, passages => shown })
            .map(|s| s.trim().to_string())
            .map_err(|e| crate::llm::Error::Template(e.to_string()))
    }

    /// The full chat prompt for a question and the passages shown.
    pub fn render(&self, question: &str, shown: &[Shown]) -> Result<String, crate::llm::Error> {
        let system = self.render_part("system", question, shown)?;
        let user = self.render_part("user", question, shown)?;
        self.model.render_chat(&[
            Message { role: "system".into(), content: system },
            Message { role: "user".into(), content: user },
        ])
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

    /// Token ids allowed under constrained decoding for these passages.
    pub fn allowed_tokens(&self, shown: &[Shown]) -> HashSet<u32> {
        let tk = &self.model.tokenizer;
        let mut allowed = HashSet::new();
        let mut add = |s: &str| {
            if let Ok(ids) = tk.encode(s) {
                allowed.extend(ids);
            }
        };
        let mut words: HashSet<String> = HashSet::new();
        for s in shown {
            add(&s.text);
            add(&format!("[{}]", s.n));
            add(&format!(" [{}]", s.n));
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
        for w in &words {
            add(w);
            add(&format!(" {w}"));
        }
        for p in [".", ",", ";", ":", "(", ")", "-", "%", " (", "\n", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", " "] {
            add(p);
        }
        allowed
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
        let shown = self.select(search, hits, gate);
        if shown.is_empty() {
            return Ok(Outcome { draft: None, checked: Vec::new(), generation: None, shown, first_token_ms: None });
        }
        let prompt = self.render(question, &shown)?;
        let mut opts = self.opts.clone();
        if self.constrained {
            opts.allowed = Some(self.allowed_tokens(&shown));
        }
        let full: Vec<&str> = shown.iter().map(|s| hits[s.hit].passage.text.as_str()).collect();
        let mut stream = SentenceStream::default();
        let mut buf = String::new();
        let started = std::time::Instant::now();
        let mut first_token_ms = None;
        let generation = self.model.generate(&prompt, &opts, |t| {
            if first_token_ms.is_none() {
                first_token_ms = Some(started.elapsed().as_secs_f64() * 1e3);
            }
            buf.push_str(t);
            let checked = verify(&buf, &full, Analyzer::shared());
            // The last piece may still grow, and the one before it may still
            // receive its marker: judge only pieces with two after them begun.
            let settled = checked.len().saturating_sub(2);
            stream.offer(&checked[..settled], &shown, accept);
        })?;
        let checked = verify(&generation.text, &full, Analyzer::shared());
        stream.offer(&checked, &shown, accept);
        tracing::debug!(target: "onlabel::generation", checked = ?checked, "model draft verified");
        let sentences = stream.kept;
        let draft = (!sentences.is_empty()).then_some(Draft { sentences, mode: Mode::Generated });
        Ok(Outcome { draft, checked, generation: Some(generation), shown, first_token_ms })
    }
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

impl super::Generator for Grounded {
    fn draft(&self, question: &str, search: &SearchResult, hits: &[Hit]) -> Draft {
        match self.answer(question, search, hits, &Extractive::default(), &mut |_| true) {
            Ok(Outcome { draft: Some(d), .. }) => d,
            _ => Draft { sentences: Vec::new(), mode: Mode::Generated },
        }
    }
}
