//! [`IntentHead`]: the learned intent classifier of issue 18, read from
//! `training/heads/intent_head.json` (built by `training/build_heads.py` from
//! 2,951 asks by four writers who never read the rules or the evals).
//!
//! The head is one multinomial logistic regression over four feature blocks,
//! computed here exactly as the JSON's `feature_spec` and the Python
//! reference (`training/check_heads.py`, `training/intent_reference.py`) do:
//!
//! - `char_tfidf`: the text lower-cased (Unicode, full case mapping), split on
//!   whitespace (Python's `str.split()` set, which adds U+001C..U+001F to
//!   Unicode's), each word padded `" w "`, every character 2-, 3- and 4-gram;
//!   `tf = 1 + ln(count)`, `x = tf · idf` for the n-grams in the vocabulary,
//!   the block L2-normalised;
//! - `word_tfidf`: the lower-cased text's `\w+` runs as Python's `re` reads
//!   them (letters, numbers and `_`; combining marks split a word), unigrams
//!   and space-joined bigrams, weighted and normalised the same way;
//! - `minilm`: the ask's all-MiniLM-L6-v2 embedding (mean-pooled, unit
//!   length), the one [`crate::index::Embedder`] computes;
//! - `cheap`: `ln(1 + chars) / 6`, any decimal digit, a `?`, and
//!   `min(1, 10 · non-ASCII letters / chars)` (rounded to `f32`, as the
//!   reference stores them).
//!
//! `z = W · [char, word, minilm, cheap] + b`, then `z[pharmacovigilance] +=
//! threshold.pv_bias` (the bias set leave-one-writer-out for a PV recall of
//! 0.97); the probabilities are `softmax(z)`.
//!
//! Without an embedding the `minilm` block is all zeros: the head still
//! scores, less accurately (the measured cost is in `training/intent/README.md`).
//!
//! Loading is strict: a file of another kind or version, a vocabulary whose
//! indices do not fit its idf list, or a weight block of the wrong length is
//! an [`Error`] naming the file and the field, never a panic or a silently
//! wrong score.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::Route;

/// The `kind` a head file must declare.
pub const HEAD_KIND: &str = "onlabel-intent-head";
/// The only `version` of the head format this build reads.
pub const HEAD_VERSION: u64 = 1;
/// The classes, in the order of the logits (and of the JSON's `classes`).
pub const CLASSES: [Route; 4] = [Route::Answer, Route::Medical, Route::Pharmacovigilance, Route::Refused];
/// Length of the `minilm` block (all-MiniLM-L6-v2).
pub const EMBEDDING_DIM: usize = 384;
/// Length of the `cheap` block.
pub const CHEAP_DIM: usize = 4;
/// Largest head file read (the shipped one is about 1.5 MB); a bigger file is
/// refused before it is parsed.
pub const MAX_HEAD_BYTES: u64 = 64 * 1024 * 1024;
/// The shortest and longest character n-grams of the `char_tfidf` block.
pub const CHAR_NGRAMS: (usize, usize) = (2, 4);
/// The file the guard looks for, relative to the repository root.
pub const DEFAULT_HEAD: &str = "training/heads/intent_head.json";

/// What can go wrong while loading a head. Scoring itself cannot fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read the intent head {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_HEAD_BYTES`].
    #[error("the intent head {path} has {bytes} bytes, more than the {limit} this build reads")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// [`MAX_HEAD_BYTES`].
        limit: u64,
    },
    /// The file is not JSON.
    #[error("the intent head {path} is not JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        source: serde_json::Error,
    },
    /// A field is missing, of another kind or version, or of the wrong shape.
    #[error("the intent head {path}: field `{field}`: {message}")]
    Field {
        /// The file.
        path: PathBuf,
        /// The field, as a JSON path (`weights.refused.minilm`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    /// The stable code (see [`crate::error::CODES`]); a bad head is a bad
    /// rule set as far as a caller is concerned.
    pub fn code(&self) -> &'static str {
        "rules_invalid"
    }
}

/// The file as written (the parts this build reads; `feature_spec` and
/// `training` are documentation and are checked only for presence).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadFile {
    // `kind` and `version` are checked on the raw JSON before this is read.
    #[allow(dead_code)]
    kind: String,
    #[allow(dead_code)]
    version: u64,
    classes: Vec<String>,
    #[allow(dead_code)]
    feature_spec: serde_json::Value,
    char_vocab: HashMap<String, usize>,
    char_idf: Vec<f64>,
    word_vocab: HashMap<String, usize>,
    word_idf: Vec<f64>,
    weights: HashMap<String, BlockWeights>,
    bias: Vec<f64>,
    threshold: Threshold,
    #[allow(dead_code)]
    training: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockWeights {
    char: Vec<f64>,
    word: Vec<f64>,
    minilm: Vec<f64>,
    cheap: Vec<f64>,
}

#[derive(Debug, Deserialize)]
struct Threshold {
    pv_bias: f64,
}

/// One class's weights, laid out as the feature blocks.
#[derive(Debug)]
struct ClassWeights {
    char: Vec<f64>,
    word: Vec<f64>,
    minilm: Vec<f64>,
    cheap: [f64; CHEAP_DIM],
}

/// A TF-IDF block: the vocabulary (term → column) and each column's idf.
#[derive(Debug)]
struct Block {
    vocab: HashMap<String, usize>,
    idf: Vec<f64>,
}

impl Block {
    /// The L2-normalised sublinear TF-IDF vector of `grams`, sparse
    /// `(column, value)` in column order.
    fn vector<'a>(&self, grams: impl Iterator<Item = &'a str>) -> Vec<(usize, f64)> {
        let mut counts: HashMap<usize, u32> = HashMap::new();
        for g in grams {
            if let Some(&col) = self.vocab.get(g) {
                *counts.entry(col).or_default() += 1;
            }
        }
        let mut x: Vec<(usize, f64)> = counts.into_iter().map(|(col, n)| (col, (1.0 + f64::from(n).ln()) * self.idf[col])).collect();
        // Column order, so that the sums (and so the scores) do not depend on
        // the hash map's iteration order.
        x.sort_unstable_by_key(|&(col, _)| col);
        let norm = x.iter().map(|(_, v)| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            for (_, v) in &mut x {
                *v /= norm;
            }
        }
        x
    }
}

/// The learned intent head. `Send + Sync`; load once, share.
#[derive(Debug)]
pub struct IntentHead {
    /// The file it was loaded from (for the audit and for errors).
    path: PathBuf,
    chars: Block,
    words: Block,
    /// In [`CLASSES`] order.
    weights: Vec<ClassWeights>,
    /// In [`CLASSES`] order.
    bias: [f64; 4],
    /// Added to the pharmacovigilance logit (`threshold.pv_bias`).
    pv_bias: f64,
    /// `sha256:` of the file's bytes (for the audit's rules version).
    digest: String,
    /// The training asks as TF-IDF vectors, built on the first decision
    /// that needs them (the nearest asks explain a decision).
    neighbours: OnceLock<Vec<TrainingAsk>>,
}

/// One training ask, kept to explain a decision by its nearest neighbours.
#[derive(Debug)]
struct TrainingAsk {
    id: String,
    route: Route,
    text: String,
    chars: Vec<(usize, f64)>,
    words: Vec<(usize, f64)>,
}

/// A training ask close to the screened text, with its route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Neighbour {
    /// The ask's id (`wb-0123`: writer and number, in `training/intent/`).
    pub id: String,
    /// The route its writer gave it.
    pub route: Route,
    /// The ask as written.
    pub text: String,
    /// Cosine similarity of the TF-IDF blocks (mean of characters and words).
    pub similarity: f64,
}

/// The training asks the compiled-in head was built from (four writers who
/// never read the rules or the evals; `training/intent/README.md`).
const TRAINING_ASKS: [(&str, &str); 4] = [
    ("training/intent/wa.jsonl", include_str!("../../training/intent/wa.jsonl")),
    ("training/intent/wb.jsonl", include_str!("../../training/intent/wb.jsonl")),
    ("training/intent/wc.jsonl", include_str!("../../training/intent/wc.jsonl")),
    ("training/intent/wd.jsonl", include_str!("../../training/intent/wd.jsonl")),
];

/// The head compiled into the binary (`training/heads/intent_head.json`).
const BUILTIN_HEAD: &str = include_str!("../../training/heads/intent_head.json");

/// How far the head may move a route, only ever towards a person or a
/// refusal, never away from Pharmacovigilance. A route the rules decided is
/// changed when the head's probability of a stricter route reaches:
///
/// - `refused` over `answer`: [`REFUSE_OVER_ANSWER`]; over a Medical
///   request: [`REFUSE_OVER_MEDICAL`] (higher: a Medical request keeps a
///   person in the loop, a refusal does not), and never over an off-label
///   request the rules found ("Can I tell her it works for kids?" is a
///   Medical Information request by DESIGN's contract);
/// - `pharmacovigilance` over anything else: [`PV_OVER_OTHER`] (when in
///   doubt, a report wins);
/// - `medical` over `answer`: [`MEDICAL_OVER_ANSWER`].
///
/// A question that no approved passage answers (a Medical request only for
/// want of an answer) is judged as an `answer` would be. Chosen on the
/// writers' asks scored leave-one-writer-out and on the dev suites, never
/// on the sealed suites; the sweep is in `training/intent/README.md`.
pub const REFUSE_OVER_ANSWER: f64 = 0.5;
/// See [`REFUSE_OVER_ANSWER`].
pub const REFUSE_OVER_MEDICAL: f64 = 0.7;
/// See [`REFUSE_OVER_ANSWER`].
pub const PV_OVER_OTHER: f64 = 0.7;
/// See [`REFUSE_OVER_ANSWER`].
pub const MEDICAL_OVER_ANSWER: f64 = 0.9;

/// Inputs longer than this are not given to the head (it was trained on
/// asks of a few sentences; visit notes are screened by the rules alone).
pub const MAX_INTENT_CHARS: usize = 2_000;

/// The head's decision to make a route stricter.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The stricter route.
    pub route: Route,
    /// The head's probability of that route.
    pub p: f64,
    /// The probabilities of all routes.
    pub scores: Scores,
}


/// What the head says about one text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// The logits in [`CLASSES`] order, the PV bias included.
    pub logits: [f64; 4],
    /// `softmax(logits)`, in [`CLASSES`] order.
    pub probabilities: [f64; 4],
    /// Whether an embedding filled the `minilm` block (else it was zeros).
    pub embedded: bool,
}

impl Scores {
    /// The probability of `route`.
    pub fn p(&self, route: Route) -> f64 {
        CLASSES.iter().position(|&c| c == route).map_or(0.0, |i| self.probabilities[i])
    }

    /// The most probable route (the head's own decision).
    pub fn route(&self) -> Route {
        let mut best = 0;
        for i in 1..CLASSES.len() {
            if self.logits[i] > self.logits[best] {
                best = i;
            }
        }
        CLASSES[best]
    }
}

fn word_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // Python's `\w` on str: str.isalnum() (letters L*, numbers N*) or `_`.
    RE.get_or_init(|| Regex::new(r"[\p{L}\p{N}_]+").expect("static regex"))
}

fn digit_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // Python's `\d` on str: decimal digits (Nd).
    RE.get_or_init(|| Regex::new(r"\p{Nd}").expect("static regex"))
}

fn non_ascii_letter_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // `ord(c) > 127 and c.isalpha()`: a letter (L*) outside ASCII.
    RE.get_or_init(|| Regex::new(r"[\p{L}&&[^\x00-\x7F]]").expect("static regex"))
}

/// Python's `str.isspace()` (what `str.split()` splits on): Unicode
/// White_Space plus the information separators U+001C..U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The `char_tfidf` n-grams of `text` (lower-cased, words padded `" w "`).
pub fn char_ngrams(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    let mut padded: Vec<char> = Vec::new();
    for word in lower.split(py_space).filter(|w| !w.is_empty()) {
        padded.clear();
        padded.push(' ');
        padded.extend(word.chars());
        padded.push(' ');
        for n in CHAR_NGRAMS.0..=CHAR_NGRAMS.1 {
            for w in padded.windows(n) {
                out.push(w.iter().collect());
            }
        }
    }
    out
}

/// The `word_tfidf` terms of `text`: lower-cased `\w+` tokens, then the
/// space-joined bigrams of neighbours.
pub fn word_ngrams(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let tokens: Vec<&str> = word_re().find_iter(&lower).map(|m| m.as_str()).collect();
    let mut out: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    out.extend(tokens.windows(2).map(|w| format!("{} {}", w[0], w[1])));
    out
}

/// The `cheap` block of `text`, each value rounded to `f32` as the reference
/// builds it (`np.float32`).
pub fn cheap_features(text: &str) -> [f64; CHEAP_DIM] {
    let chars = text.chars().count();
    let n = chars.max(1) as f64;
    let non_ascii = non_ascii_letter_re().find_iter(text).count() as f64;
    let f = [
        (chars as f64).ln_1p() / 6.0,
        if digit_re().is_match(text) { 1.0 } else { 0.0 },
        if text.contains('?') { 1.0 } else { 0.0 },
        (10.0 * non_ascii / n).min(1.0),
    ];
    f.map(|v| f64::from(v as f32))
}

impl IntentHead {
    /// Loads and checks a head file (see the module docs for what is checked).
    pub fn load(path: &Path) -> Result<IntentHead, Error> {
        let io = |source| Error::Io { path: path.to_owned(), source };
        let bytes = std::fs::metadata(path).map_err(io)?.len();
        if bytes > MAX_HEAD_BYTES {
            return Err(Error::TooLarge { path: path.to_owned(), bytes, limit: MAX_HEAD_BYTES });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        IntentHead::parse(&text, path)
    }

    /// Parses and checks a head from its JSON text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<IntentHead, Error> {
        let field = |field: &str, message: String| Error::Field { path: path.to_owned(), field: field.to_string(), message };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|source| Error::Json { path: path.to_owned(), source })?;
        // Kind and version first: a file of another kind would otherwise fail
        // on some field it happens to lack, which says less.
        match value.get("kind").and_then(|k| k.as_str()) {
            Some(HEAD_KIND) => {}
            Some(other) => return Err(field("kind", format!("is {other:?}, expected {HEAD_KIND:?}"))),
            None => return Err(field("kind", format!("missing or not a string (expected {HEAD_KIND:?})"))),
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(HEAD_VERSION) => {}
            Some(other) => return Err(field("version", format!("is {other}, this build reads version {HEAD_VERSION}"))),
            None => return Err(field("version", format!("missing or not an integer (expected {HEAD_VERSION})"))),
        }
        let raw: HeadFile = serde_json::from_value(value).map_err(|e| field("(structure)", e.to_string()))?;
        let names: Vec<&str> = CLASSES.iter().map(|c| c.as_str()).collect();
        if raw.classes != names {
            return Err(field("classes", format!("is {:?}, expected {names:?} in that order", raw.classes)));
        }
        let chars = block(raw.char_vocab, raw.char_idf, "char_vocab", "char_idf", &field)?;
        let words = block(raw.word_vocab, raw.word_idf, "word_vocab", "word_idf", &field)?;
        let mut weights_in = raw.weights;
        if weights_in.len() != CLASSES.len() {
            let mut got: Vec<&String> = weights_in.keys().collect();
            got.sort();
            return Err(field("weights", format!("has classes {got:?}, expected {names:?}")));
        }
        let mut weights = Vec::with_capacity(CLASSES.len());
        for name in &names {
            let w = weights_in.remove(*name).ok_or_else(|| field(&format!("weights.{name}"), "missing".into()))?;
            let check = |blk: &str, v: &[f64], want: usize| -> Result<(), Error> {
                let at = format!("weights.{name}.{blk}");
                if v.len() != want {
                    return Err(field(&at, format!("has {} values, expected {want}", v.len())));
                }
                finite(v, &at, &field)
            };
            check("char", &w.char, chars.idf.len())?;
            check("word", &w.word, words.idf.len())?;
            check("minilm", &w.minilm, EMBEDDING_DIM)?;
            check("cheap", &w.cheap, CHEAP_DIM)?;
            let cheap = [w.cheap[0], w.cheap[1], w.cheap[2], w.cheap[3]];
            weights.push(ClassWeights { char: w.char, word: w.word, minilm: w.minilm, cheap });
        }
        if raw.bias.len() != CLASSES.len() {
            return Err(field("bias", format!("has {} values, expected {}", raw.bias.len(), CLASSES.len())));
        }
        finite(&raw.bias, "bias", &field)?;
        finite(&[raw.threshold.pv_bias], "threshold.pv_bias", &field)?;
        let bias = [raw.bias[0], raw.bias[1], raw.bias[2], raw.bias[3]];
        let digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(text.as_bytes()))
        };
        Ok(IntentHead { path: path.to_owned(), chars, words, weights, bias, pv_bias: raw.threshold.pv_bias, digest, neighbours: OnceLock::new() })
    }

    /// The head compiled into the binary, parsed once per process.
    pub fn builtin() -> Result<std::sync::Arc<IntentHead>, Error> {
        static HEAD: OnceLock<std::sync::Arc<IntentHead>> = OnceLock::new();
        if let Some(h) = HEAD.get() {
            return Ok(h.clone());
        }
        let h = std::sync::Arc::new(IntentHead::parse(BUILTIN_HEAD, Path::new(DEFAULT_HEAD))?);
        Ok(HEAD.get_or_init(|| h).clone())
    }

    /// `intent-head@1 sha256:…`: what decided, for the audit log.
    pub fn version(&self) -> String {
        format!("intent-head@{HEAD_VERSION} sha256:{}", self.digest)
    }

    /// Whether the head moves `current` (the rules' route) to a stricter
    /// one for `text` (see [`REFUSE_OVER_ANSWER`]). `None` without an
    /// embedding, for inputs over [`MAX_INTENT_CHARS`], and when the rules'
    /// route stands. Never moves a route away from Pharmacovigilance.
    /// `off_label`: the rules found an off-label request; DESIGN's contract
    /// sends it to Medical Information, so the head does not refuse it (it
    /// may still make it a report).
    pub fn stricter(&self, text: &str, embedding: Option<&[f32]>, current: Route, off_label: bool) -> Option<Decision> {
        let e = embedding.filter(|e| e.len() == EMBEDDING_DIM)?;
        if current == Route::Pharmacovigilance || text.chars().count() > MAX_INTENT_CHARS {
            return None;
        }
        let [ref_ans, ref_med, pv_any, med_ans] = [REFUSE_OVER_ANSWER, REFUSE_OVER_MEDICAL, PV_OVER_OTHER, MEDICAL_OVER_ANSWER];
        let scores = self.scores(text, Some(e));
        let decide = |route: Route, at: f64| (scores.p(route) >= at).then_some(Decision { route, p: scores.p(route), scores });
        decide(Route::Pharmacovigilance, pv_any).or_else(|| match current {
            Route::Answer => decide(Route::Refused, ref_ans).or_else(|| decide(Route::Medical, med_ans)),
            Route::Medical if !off_label => decide(Route::Refused, ref_med),
            _ => None,
        })
    }

    /// The `k` training asks nearest to `text` by the head's own TF-IDF
    /// blocks (the evidence shown with a decision).
    pub fn nearest(&self, text: &str, k: usize) -> Vec<Neighbour> {
        let asks = self.neighbours.get_or_init(|| self.training_asks());
        let xc = self.chars.vector(char_ngrams(text).iter().map(String::as_str));
        let xw = self.words.vector(word_ngrams(text).iter().map(String::as_str));
        let mut scored: Vec<(f64, &TrainingAsk)> = asks.iter().map(|a| ((dot(&xc, &a.chars) + dot(&xw, &a.words)) / 2.0, a)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        scored
            .into_iter()
            .take(k)
            .map(|(similarity, a)| Neighbour { id: a.id.clone(), route: a.route, text: a.text.clone(), similarity: (similarity * 1000.0).round() / 1000.0 })
            .collect()
    }

    fn training_asks(&self) -> Vec<TrainingAsk> {
        #[derive(Deserialize)]
        struct Row {
            id: String,
            text: String,
            route: String,
        }
        let mut out = Vec::new();
        for (file, src) in TRAINING_ASKS {
            for (n, line) in src.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let Ok(row) = serde_json::from_str::<Row>(line) else {
                    tracing::warn!(file, line = n + 1, "training ask not readable; left out of the neighbours");
                    continue;
                };
                let Some(route) = CLASSES.iter().copied().find(|c| c.as_str() == row.route) else { continue };
                let chars = self.chars.vector(char_ngrams(&row.text).iter().map(String::as_str));
                let words = self.words.vector(word_ngrams(&row.text).iter().map(String::as_str));
                out.push(TrainingAsk { id: row.id, route, text: row.text, chars, words });
            }
        }
        out
    }

    /// The file the head was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bias added to the pharmacovigilance logit.
    pub fn pv_bias(&self) -> f64 {
        self.pv_bias
    }

    /// Scores `text`. `embedding` is the text's MiniLM embedding
    /// ([`crate::index::Embedder::embed`]); without one, or with one that is
    /// not [`EMBEDDING_DIM`] long (logged), the `minilm` block is zeros.
    pub fn scores(&self, text: &str, embedding: Option<&[f32]>) -> Scores {
        let embedding = match embedding {
            Some(e) if e.len() == EMBEDDING_DIM => Some(e),
            Some(e) => {
                tracing::warn!(got = e.len(), want = EMBEDDING_DIM, "intent head: embedding of the wrong length ignored");
                None
            }
            None => None,
        };
        let xc = self.chars.vector(char_ngrams(text).iter().map(String::as_str));
        let xw = self.words.vector(word_ngrams(text).iter().map(String::as_str));
        let cheap = cheap_features(text);
        let mut logits = [0.0f64; 4];
        for (k, w) in self.weights.iter().enumerate() {
            let mut z = self.bias[k];
            z += xc.iter().map(|&(i, v)| w.char[i] * v).sum::<f64>();
            z += xw.iter().map(|&(i, v)| w.word[i] * v).sum::<f64>();
            if let Some(e) = embedding {
                z += w.minilm.iter().zip(e).map(|(a, &b)| a * f64::from(b)).sum::<f64>();
            }
            z += w.cheap.iter().zip(&cheap).map(|(a, b)| a * b).sum::<f64>();
            logits[k] = z;
        }
        logits[2] += self.pv_bias;
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp = logits.map(|z| (z - max).exp());
        let sum: f64 = exp.iter().sum();
        Scores { logits, probabilities: exp.map(|e| e / sum), embedded: embedding.is_some() }
    }
}

/// The dot product of two sparse vectors in column order.
fn dot(a: &[(usize, f64)], b: &[(usize, f64)]) -> f64 {
    let (mut i, mut j, mut s) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

/// Checks a vocabulary against its idf list: every index in range, each used once.
fn block(
    vocab: HashMap<String, usize>,
    idf: Vec<f64>,
    vocab_name: &str,
    idf_name: &str,
    field: &dyn Fn(&str, String) -> Error,
) -> Result<Block, Error> {
    if vocab.len() != idf.len() {
        return Err(field(vocab_name, format!("has {} terms but `{idf_name}` has {} values", vocab.len(), idf.len())));
    }
    let mut seen = vec![false; idf.len()];
    for (term, &i) in &vocab {
        match seen.get_mut(i) {
            Some(s) if !*s => *s = true,
            Some(_) => return Err(field(vocab_name, format!("index {i} is used twice (again by {term:?})"))),
            None => return Err(field(vocab_name, format!("term {term:?} has index {i}, past the {} columns", idf.len()))),
        }
    }
    finite(&idf, idf_name, field)?;
    Ok(Block { vocab, idf })
}

fn finite(v: &[f64], at: &str, field: &dyn Fn(&str, String) -> Error) -> Result<(), Error> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(field(at, format!("value {i} is not a finite number"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn head() -> IntentHead {
        IntentHead::load(&root().join(DEFAULT_HEAD)).expect("the shipped intent head loads")
    }

    /// One line of `training/heads/intent_reference.jsonl`.
    #[derive(Deserialize)]
    struct Reference {
        id: String,
        text: String,
        logits: Vec<f64>,
        logits_no_embedding: Vec<f64>,
    }

    fn references() -> Vec<Reference> {
        let p = root().join("training/heads/intent_reference.jsonl");
        let text = std::fs::read_to_string(&p).expect("reference logits (python training/intent_reference.py)");
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("reference line")).collect()
    }

    fn embedder() -> crate::index::Embedder {
        let dir = root().join(crate::index::dense::DEFAULT_DIR);
        crate::index::Embedder::load(&dir)
            .unwrap_or_else(|e| panic!("the MiniLM model is needed for the intent head's parity test: {e} (fix: `bash models/fetch.sh`)"))
    }

    fn assert_close(id: &str, got: &[f64; 4], want: &[f64], what: &str) {
        assert_eq!(want.len(), 4, "{id}: reference {what} has {} values", want.len());
        for k in 0..4 {
            assert!((got[k] - want[k]).abs() <= 1e-3, "{id}: {what}[{}] is {}, the Python reference says {}", CLASSES[k].as_str(), got[k], want[k]);
        }
    }

    #[test]
    fn logits_match_the_python_reference_without_an_embedding() {
        let h = head();
        let refs = references();
        assert!(refs.len() >= 50, "the reference has {} asks, expected 40 English + 10 others + edge cases", refs.len());
        for r in &refs {
            let s = h.scores(&r.text, None);
            assert!(!s.embedded);
            assert_close(&r.id, &s.logits, &r.logits_no_embedding, "logits_no_embedding");
        }
    }

    #[test]
    fn logits_match_the_python_reference_with_the_minilm_embedding() {
        let h = head();
        let e = embedder();
        let refs = references();
        let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
        let vecs = e.embed(&texts).expect("embedding the reference asks");
        for (r, v) in refs.iter().zip(&vecs) {
            let s = h.scores(&r.text, Some(v));
            assert!(s.embedded);
            assert_close(&r.id, &s.logits, &r.logits, "logits");
            let total: f64 = s.probabilities.iter().sum();
            assert!((total - 1.0).abs() < 1e-9, "{}: probabilities sum to {total}", r.id);
        }
    }

    #[test]
    fn tokenisers_read_text_as_python_does() {
        // Full case mapping (İ becomes i + U+0307, a combining mark that is
        // not `\w`), Python's whitespace (U+001C..U+001F split too).
        assert_eq!(word_ngrams("İSTANBUL a\u{1c}b"), vec!["i", "stanbul", "a", "b", "i stanbul", "stanbul a", "a b"]);
        assert_eq!(char_ngrams("a\u{1c}Bc"), vec![" a", "a ", " a ", " b", "bc", "c ", " bc", "bc ", " bc "]);
        // A combining mark is not `\w` in Python: it splits the word.
        assert_eq!(word_ngrams("e\u{301}te\u{301}"), vec!["e", "te", "e te"]);
        // Numbers that are not ASCII digits are word characters; `_` too.
        assert_eq!(word_ngrams("x² ٣_a"), vec!["x²", "٣_a", "x² ٣_a"]);
        assert_eq!(char_ngrams(""), Vec::<String>::new());
        let c = cheap_features("Dosis für Kinder?");
        // No digit, a '?', and 10 × 1 non-ASCII letter / 17 chars, as f32.
        assert_eq!(c[1..], [0.0, 1.0, f64::from((10.0f64 / 17.0) as f32)]);
        assert_eq!(cheap_features("")[0], 0.0);
        assert_eq!(cheap_features("٣")[1], 1.0);
    }

    #[test]
    fn an_embedding_of_the_wrong_length_counts_as_none() {
        let h = head();
        let short = vec![0.1f32; 10];
        assert_eq!(h.scores("what is the dose", Some(&short)), h.scores("what is the dose", None));
    }

    #[test]
    fn the_pv_bias_is_in_the_pharmacovigilance_logit() {
        let h = head();
        assert!(h.pv_bias() > 0.0);
        // The empty text: only the biases and the cheap block's zero-length features.
        let s = h.scores("", None);
        assert!((s.logits[2] - (h.bias[2] + h.pv_bias + h.weights[2].cheap[0] * 0.0)).abs() < 1e-9);
        assert_eq!(s.route(), Route::Answer);
    }

    /// The dev suites the head was never trained on (never `evals/sealed/`),
    /// as `training/check_heads.py` reads them.
    const DEV_SUITES: [&str; 7] = ["labels", "guard", "guard_probe", "dev_reports", "dev_offlabel", "demo", "sentences_dev"];

    /// The head alone on the dev suites reproduces the Python reference's
    /// figures (README: route accuracy 0.891-0.895 over 722 asks, PV recall
    /// 0.904 at the shipped bias). With `ONLABEL_INTENT_SCORES=FILE` it also
    /// writes every ask's probabilities, with and without the embedding
    /// (`training/intent_measure.py` combines them with an eval run).
    #[test]
    fn on_the_dev_suites_the_head_alone_scores_as_the_python_reference() {
        let h = head();
        let e = embedder();
        let (mut n, mut ok, mut ok0, mut pv_n, mut pv_hit, mut pv_hit0) = (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
        let mut out = String::new();
        let mut scoring = std::time::Duration::ZERO;
        for name in DEV_SUITES {
            let suite = crate::eval::Suite::read(&root().join("evals").join(format!("{name}.jsonl"))).expect("dev suite");
            let asks: Vec<(&crate::eval::Case, &str)> =
                suite.cases.iter().filter(|c| c.task == "ask").filter_map(|c| c.question.as_deref().map(|q| (c, q))).collect();
            let texts: Vec<&str> = asks.iter().map(|(_, q)| *q).collect();
            let vecs = e.embed(&texts).expect("embedding the dev asks");
            for ((case, q), v) in asks.iter().zip(&vecs) {
                let Some(expect) = &case.expect.route else { continue };
                let t = std::time::Instant::now();
                let s = h.scores(q, Some(v));
                scoring += t.elapsed();
                let s0 = h.scores(q, None);
                n += 1;
                ok += usize::from(expect.accepts(s.route().as_str()));
                ok0 += usize::from(expect.accepts(s0.route().as_str()));
                if expect.list() == ["pharmacovigilance"] {
                    pv_n += 1;
                    pv_hit += usize::from(s.route() == Route::Pharmacovigilance);
                    pv_hit0 += usize::from(s0.route() == Route::Pharmacovigilance);
                }
                let line = serde_json::json!({"suite": name, "id": case.id, "p": s.probabilities, "p_no_embedding": s0.probabilities});
                out.push_str(&line.to_string());
                out.push('\n');
            }
        }
        let (acc, acc0) = (ok as f64 / n as f64, ok0 as f64 / n as f64);
        let (rec, rec0) = (pv_hit as f64 / pv_n as f64, pv_hit0 as f64 / pv_n as f64);
        eprintln!(
            "intent head on {n} dev asks: route accuracy {acc:.3} (no embedding {acc0:.3}), PV recall {rec:.3} of {pv_n} (no embedding {rec0:.3}); scoring {:.0} µs an ask (embedding not included)",
            scoring.as_secs_f64() * 1e6 / n as f64
        );
        if let Ok(p) = std::env::var("ONLABEL_INTENT_SCORES") {
            std::fs::write(&p, out).expect("writing the scores");
        }
        assert_eq!(n, 722, "the dev suites' asks with a route");
        assert!((0.885..=0.90).contains(&acc), "route accuracy {acc:.3}, the Python reference measured 0.891-0.895");
        assert!((0.89..=0.92).contains(&rec), "PV recall {rec:.3}, the Python reference measured 0.904");
    }

    fn shipped_json() -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(root().join(DEFAULT_HEAD)).expect("head")).expect("json")
    }

    fn parse_err(v: &serde_json::Value) -> Error {
        IntentHead::parse(&v.to_string(), Path::new("bad.json")).expect_err("a damaged head must not load")
    }

    fn field_of(e: &Error) -> &str {
        match e {
            Error::Field { field, path, .. } => {
                assert_eq!(path, Path::new("bad.json"));
                field
            }
            other => panic!("expected a Field error, got {other:?}"),
        }
    }

    #[test]
    fn a_damaged_head_is_refused_naming_the_file_and_the_field() {
        let good = shipped_json();
        let mut v = good.clone();
        v["kind"] = "onlabel-rerank-head".into();
        assert_eq!(field_of(&parse_err(&v)), "kind");
        let mut v = good.clone();
        v["version"] = 2.into();
        assert_eq!(field_of(&parse_err(&v)), "version");
        let mut v = good.clone();
        v["classes"] = serde_json::json!(["answer", "refused", "medical", "pharmacovigilance"]);
        assert_eq!(field_of(&parse_err(&v)), "classes");
        let mut v = good.clone();
        v["weights"]["refused"]["minilm"].as_array_mut().expect("array").pop();
        let e = parse_err(&v);
        assert_eq!(field_of(&e), "weights.refused.minilm");
        assert!(e.to_string().contains("bad.json") && e.to_string().contains("383"), "{e}");
        let mut v = good.clone();
        v["weights"]["medical"]["char"].as_array_mut().expect("array").push(0.5.into());
        assert_eq!(field_of(&parse_err(&v)), "weights.medical.char");
        let mut v = good.clone();
        v["word_idf"].as_array_mut().expect("array").pop();
        assert_eq!(field_of(&parse_err(&v)), "word_vocab");
        let mut v = good.clone();
        v["char_vocab"]["zzzz"] = 999_999.into();
        v["char_idf"].as_array_mut().expect("array").push(1.0.into());
        assert_eq!(field_of(&parse_err(&v)), "char_vocab");
        let mut v = good.clone();
        v["char_vocab"]["zzzz"] = 0.into();
        v["char_idf"].as_array_mut().expect("array").push(1.0.into());
        assert_eq!(field_of(&parse_err(&v)), "char_vocab");
        let mut v = good.clone();
        v["bias"].as_array_mut().expect("array").pop();
        assert_eq!(field_of(&parse_err(&v)), "bias");
        let mut v = good.clone();
        v["weights"].as_object_mut().expect("object").remove("answer");
        assert_eq!(field_of(&parse_err(&v)), "weights");
        let mut v = good.clone();
        v.as_object_mut().expect("object").remove("threshold");
        assert_eq!(field_of(&parse_err(&v)), "(structure)");
        assert!(matches!(IntentHead::parse("{not json", Path::new("bad.json")), Err(Error::Json { .. })));
        // The good file still loads.
        IntentHead::parse(&good.to_string(), Path::new("good.json")).expect("the shipped head parses");
    }

    #[test]
    fn files_past_the_size_limit_or_missing_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big.json");
        let f = std::fs::File::create(&big).expect("create");
        f.set_len(MAX_HEAD_BYTES + 1).expect("sparse file");
        assert!(matches!(IntentHead::load(&big), Err(Error::TooLarge { bytes, .. }) if bytes == MAX_HEAD_BYTES + 1));
        let missing = dir.path().join("none.json");
        let e = IntentHead::load(&missing).expect_err("missing");
        assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("none.json"), "{e}");
    }
}
