//! [`RerankHead`]: the learned sentence scorer of issues 18 and 19 (point 1),
//! read from `training/heads/rerank_head.json` (built by
//! `training/build_heads.py` from the answer asks of four writers who never
//! read the evals), which picks the sentence that leads an extractive answer.
//!
//! # Why these features
//!
//! The answer must stay within 150 ms p95 on two cores, and embedding every
//! candidate sentence at question time costs about 5 ms each, so the head
//! uses only what is cheap over the sentences of the passages already
//! retrieved (the *candidate set*: every [`super::quotable`] sentence of the
//! leading passages that clear [`super::Extractive::answers`]):
//!
//! - `concept`, `concept_rel`: the share of the question's concept weight the
//!   sentence holds ([`super::concept_scores`], synonyms and section intents
//!   included) and that share minus the best in the set;
//! - `bm25_rel`, `bm25_head_rel`: BM25 of the sentence (and of its headings
//!   plus the sentence) against the question *within the candidate set*,
//!   divided by the set's best (+1e-9);
//! - `cover`, `cover_head`: the idf-weighted share of the question's distinct
//!   tokens the sentence (headings plus sentence) holds, idf from the set;
//! - `hit_rank` (passage rank / 5), `hit_coverage`, `hit_title`: how the
//!   retrieval ranked the passage;
//! - `first`, `pos_rel`: whether the sentence opens its passage, and its
//!   position / the passage's sentence count;
//! - `log_len` (`ln(1 + chars) / 6`), `num_both` (question and sentence both
//!   hold an ASCII digit), `num_shared` (a question token with a digit is a
//!   sentence token);
//! - `kind_*`: the section kind, one-hot ([`section_kind`]).
//!
//! Tokens for BM25 and coverage: the text lower-cased, the runs of
//! `[a-z0-9]+(?:[.,][0-9]+)?`, minus [`STOPWORDS`], alphabetic tokens cut to
//! five characters. BM25: k1 = 1.2, b = 0.75, idf = ln(1 + (N − df + 0.5) /
//! (df + 0.5)) over the N candidates, average length at least 1.
//!
//! `s = w · f + bias`; the candidate with the highest `s` (the first on a tie,
//! candidates in passage rank then label order) leads the answer. The Python
//! reference (`training/rerank_reference.py`) computes the same features
//! from the same candidates, and `tests::logits_match_the_python_reference`
//! holds these logits within 1e-3 of it.
//!
//! Loading is strict: a file of another kind or version, a feature list that
//! is not [`FEATURES`] in order, or a weight list of another length is an
//! [`Error`] naming the file and the field. The head shipped with the build
//! is compiled in ([`shipped`]); if it ever failed to parse, the extractive
//! answer falls back to the concept selection with a logged error.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;

use crate::index::{Analyzer, Hit, SearchResult};

/// The `kind` a head file must declare.
pub const HEAD_KIND: &str = "onlabel-sentence-rerank-head";
/// The only `version` of the head format this build reads (version 1 was the
/// MiniLM-per-sentence head, too slow to run at question time).
pub const HEAD_VERSION: u64 = 2;
/// Largest head file read (the shipped one is a few kB).
pub const MAX_HEAD_BYTES: u64 = 1024 * 1024;
/// The file the shipped head is compiled from, relative to the repository root.
pub const DEFAULT_HEAD: &str = "training/heads/rerank_head.json";
/// The passage rank is divided by this for `hit_rank` (the extractive
/// generator's default `considered`).
pub const RANK_SCALE: f64 = 5.0;

/// Section kinds, in the order of the `kind_*` features.
pub const SECTION_KINDS: [&str; 19] = [
    "boxed", "indications", "dosage", "forms", "contraindications", "warnings", "adverse", "interactions", "populations", "abuse",
    "overdosage", "description", "pharmacology", "toxicology", "studies", "supplied", "counseling", "faq", "other",
];

/// Number of non-kind features.
const BASE_FEATURES: usize = 14;
/// Number of features.
pub const N_FEATURES: usize = BASE_FEATURES + SECTION_KINDS.len();

/// The feature names, in the order of the head's weights.
pub const FEATURES: [&str; N_FEATURES] = [
    "concept", "concept_rel", "bm25_rel", "bm25_head_rel", "cover", "cover_head", "hit_rank", "hit_coverage", "hit_title", "first", "pos_rel",
    "log_len", "num_both", "num_shared", "kind_boxed", "kind_indications", "kind_dosage", "kind_forms", "kind_contraindications",
    "kind_warnings", "kind_adverse", "kind_interactions", "kind_populations", "kind_abuse", "kind_overdosage", "kind_description",
    "kind_pharmacology", "kind_toxicology", "kind_studies", "kind_supplied", "kind_counseling", "kind_faq", "kind_other",
];

/// Words left out of BM25 and coverage (the Python reference's `STOP`).
pub const STOPWORDS: &[&str] = &[
    "a", "an", "the", "of", "to", "in", "on", "for", "and", "or", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these",
    "those", "with", "by", "at", "as", "from", "do", "does", "did", "can", "could", "should", "would", "may", "might", "will", "shall", "not",
    "no", "what", "which", "who", "whom", "how", "when", "where", "why", "if", "than", "then", "there", "their", "they", "them", "he", "she",
    "his", "her", "we", "you", "your", "i", "me", "my", "our", "us", "pt", "pts", "patient", "patients", "dr", "doc", "label", "pi", "says",
    "say", "about", "any", "some", "also", "just", "still", "get", "got", "ok", "okay", "hi", "pls", "please", "tell", "know", "want",
    "wants", "asked", "asking", "question", "drug",
];

/// PLR section number → kind.
const NUM_KIND: [(&str, &str); 17] = [
    ("1", "indications"), ("2", "dosage"), ("3", "forms"), ("4", "contraindications"), ("5", "warnings"), ("6", "adverse"),
    ("7", "interactions"), ("8", "populations"), ("9", "abuse"), ("10", "overdosage"), ("11", "description"), ("12", "pharmacology"),
    ("13", "toxicology"), ("14", "studies"), ("15", "other"), ("16", "supplied"), ("17", "counseling"),
];

/// Heading words → kind, tried in this order.
const KIND_WORDS: [(&str, &[&str]); 17] = [
    ("dosage", &["dosage", "dose and admin"]),
    ("forms", &["dosage forms"]),
    ("contraindications", &["contraindications"]),
    ("warnings", &["warnings and precautions", "warnings", "precautions"]),
    ("adverse", &["adverse"]),
    ("interactions", &["interactions"]),
    ("populations", &["specific populations", "use in specific", "pregnancy", "nursing", "pediatric", "geriatric"]),
    ("abuse", &["abuse", "dependence"]),
    ("overdosage", &["overdos"]),
    ("description", &["description"]),
    ("pharmacology", &["pharmacology", "pharmacokinetics", "mechanism"]),
    ("toxicology", &["toxicology", "carcinogenesis"]),
    ("studies", &["clinical studies"]),
    ("supplied", &["how supplied", "storage", "handling"]),
    ("counseling", &["counseling", "patient information", "medication guide"]),
    ("boxed", &["warning:", "boxed"]),
    ("indications", &["indications"]),
];

/// What can go wrong while loading a head. Scoring itself cannot fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read the sentence rerank head {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_HEAD_BYTES`].
    #[error("the sentence rerank head {path} has {bytes} bytes, more than the {limit} this build reads")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// [`MAX_HEAD_BYTES`].
        limit: u64,
    },
    /// The file is not JSON.
    #[error("the sentence rerank head {path} is not JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        source: serde_json::Error,
    },
    /// A field is missing, of another kind or version, or of the wrong shape.
    #[error("the sentence rerank head {path}: field `{field}`: {message}")]
    Field {
        /// The file.
        path: PathBuf,
        /// The field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The file as written (`feature_spec` and `training` are documentation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadFile {
    // `kind` and `version` are checked on the raw JSON before this is read.
    #[allow(dead_code)]
    kind: String,
    #[allow(dead_code)]
    version: u64,
    features: Vec<String>,
    weights: Vec<f64>,
    bias: f64,
    #[allow(dead_code)]
    feature_spec: serde_json::Value,
    #[allow(dead_code)]
    training: serde_json::Value,
}

/// The learned sentence scorer. `Send + Sync`; load once, share.
#[derive(Debug, Clone)]
pub struct RerankHead {
    /// In [`FEATURES`] order.
    weights: [f64; N_FEATURES],
    bias: f64,
}

/// One candidate sentence and what the retrieval knows about its passage:
/// everything [`features`] needs (the Python reference stores the same).
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The sentence, verbatim.
    pub text: &'a str,
    /// Rank of its passage among the hits (0 = best).
    pub hit: usize,
    /// Position of the sentence among all the passage's sentences.
    pub pos: usize,
    /// How many sentences the passage has.
    pub n_sentences: usize,
    /// Its concept share ([`super::concept_scores`]).
    pub concept: f64,
    /// The passage's [`Hit::coverage`].
    pub hit_coverage: f64,
    /// The passage's [`Hit::title_score`].
    pub hit_title: f64,
    /// The passage's document id (`zentravia-faq`).
    pub doc_id: &'a str,
    /// The passage's section label (`5.2`, `BW`).
    pub section: &'a str,
    /// The passage's section title.
    pub title: &'a str,
    /// The enclosing section's title.
    pub parent: &'a str,
}

/// The candidate set of an extractive answer: every quotable sentence of the
/// `eligible` hits (those [`super::Extractive::eligible`] kept with a
/// coverage above 0), in passage rank then label order.
pub fn candidates<'a>(analyzer: &Analyzer, search: &SearchResult, eligible: &'a [Hit]) -> Vec<Candidate<'a>> {
    let mut out = Vec::new();
    for (hi, hit) in eligible.iter().enumerate() {
        if hit.coverage <= 0.0 {
            continue;
        }
        let n_sentences = crate::corpus::chunk::sentences(&hit.passage.text).len();
        for (pos, text, share) in super::concept_scores(analyzer, search, hit) {
            out.push(Candidate {
                text,
                hit: hi,
                pos,
                n_sentences,
                concept: f64::from(share),
                hit_coverage: f64::from(hit.coverage),
                hit_title: f64::from(hit.title_score),
                doc_id: &hit.passage.doc_id,
                section: &hit.passage.section,
                title: &hit.passage.title,
                parent: &hit.passage.parent,
            });
        }
    }
    out
}

fn token_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"[a-z0-9]+(?:[.,][0-9]+)?").expect("static regex"))
}

fn stopwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| STOPWORDS.iter().copied().collect())
}

/// The BM25 / coverage tokens of `text` (see the module docs).
pub fn tokens(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    token_re()
        .find_iter(&lower)
        .map(|m| m.as_str())
        .filter(|t| !stopwords().contains(t))
        .map(|t| if t.bytes().all(|b| b.is_ascii_alphabetic()) { t.chars().take(5).collect() } else { t.to_string() })
        .collect()
}

/// The section kind of a passage: `faq` for an FAQ document, `boxed` for
/// the boxed warning, the PLR kind of a numbered section, else the first
/// kind whose heading words appear in `parent > title` (lower-cased), else
/// `other`.
pub fn section_kind(doc_id: &str, section: &str, title: &str, parent: &str) -> &'static str {
    if doc_id.ends_with("-faq") {
        return "faq";
    }
    if section == "BW" {
        return "boxed";
    }
    let major: String = section.chars().take_while(char::is_ascii_digit).collect();
    let rest = &section[major.len()..];
    if (1..=2).contains(&major.len()) && (rest.is_empty() || rest.starts_with('.')) {
        if let Some((_, k)) = NUM_KIND.iter().find(|(n, _)| *n == major) {
            return k;
        }
    }
    let h = format!("{parent} > {title}").to_lowercase();
    for (k, words) in KIND_WORDS {
        if words.iter().any(|w| h.contains(w)) {
            return if k == "dosage" && h.contains("forms") { "forms" } else { k };
        }
    }
    "other"
}

/// BM25 scores and coverages of `docs` for the question tokens `q`.
fn bm25(q: &HashSet<String>, docs: &[Vec<String>]) -> (Vec<f64>, Vec<f64>) {
    let counts: Vec<HashMap<&str, f64>> = docs
        .iter()
        .map(|d| {
            let mut m = HashMap::new();
            for t in d {
                *m.entry(t.as_str()).or_insert(0.0) += 1.0;
            }
            m
        })
        .collect();
    let n = docs.len() as f64;
    let avg = (docs.iter().map(|d| d.len() as f64).sum::<f64>() / n.max(1.0)).max(1.0);
    // Sorted question tokens: the sums do not depend on a hash order.
    let mut qt: Vec<&String> = q.iter().collect();
    qt.sort();
    let idf: Vec<f64> = qt
        .iter()
        .map(|t| {
            let df = counts.iter().filter(|c| c.contains_key(t.as_str())).count() as f64;
            if df == 0.0 { 0.0 } else { (1.0 + (n - df + 0.5) / (df + 0.5)).ln() }
        })
        .collect();
    let total = idf.iter().sum::<f64>();
    let total = if total > 0.0 { total } else { 1.0 };
    let (k1, b) = (1.2, 0.75);
    let mut scores = Vec::with_capacity(docs.len());
    let mut cover = Vec::with_capacity(docs.len());
    for (c, d) in counts.iter().zip(docs) {
        let len = d.len() as f64;
        let mut s = 0.0;
        let mut cv = 0.0;
        for (t, w) in qt.iter().zip(&idf) {
            if let Some(f) = c.get(t.as_str()) {
                s += w * f * (k1 + 1.0) / (f + k1 * (1.0 - b + b * len / avg));
                cv += w;
            }
        }
        scores.push(s);
        cover.push(cv / total);
    }
    (scores, cover)
}

fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

/// The feature vectors of the candidates for `question` (see the module docs).
pub fn features(question: &str, cands: &[Candidate]) -> Vec<[f64; N_FEATURES]> {
    if cands.is_empty() {
        return Vec::new();
    }
    let q_toks = tokens(question);
    let q: HashSet<String> = q_toks.iter().cloned().collect();
    let q_num: HashSet<&String> = q_toks.iter().filter(|t| has_digit(t)).collect();
    let docs: Vec<Vec<String>> = cands.iter().map(|c| tokens(c.text)).collect();
    let head_docs: Vec<Vec<String>> = cands.iter().map(|c| tokens(&format!("{} {} {}", c.parent, c.title, c.text))).collect();
    let (bm, cover) = bm25(&q, &docs);
    let (bmh, cover_h) = bm25(&q, &head_docs);
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (bm_max, bmh_max) = (max(&bm), max(&bmh));
    let concept_max = cands.iter().map(|c| c.concept).fold(f64::NEG_INFINITY, f64::max);
    let q_digit = has_digit(question);
    cands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut f = [0.0; N_FEATURES];
            f[0] = c.concept;
            f[1] = c.concept - concept_max;
            f[2] = bm[i] / (bm_max + 1e-9);
            f[3] = bmh[i] / (bmh_max + 1e-9);
            f[4] = cover[i];
            f[5] = cover_h[i];
            f[6] = c.hit as f64 / RANK_SCALE;
            f[7] = c.hit_coverage;
            f[8] = c.hit_title;
            f[9] = if c.pos == 0 { 1.0 } else { 0.0 };
            f[10] = c.pos as f64 / c.n_sentences.max(1) as f64;
            f[11] = (c.text.chars().count() as f64).ln_1p() / 6.0;
            f[12] = if q_digit && has_digit(c.text) { 1.0 } else { 0.0 };
            f[13] = if docs[i].iter().any(|t| q_num.contains(t)) { 1.0 } else { 0.0 };
            let kind = section_kind(c.doc_id, c.section, c.title, c.parent);
            if let Some(k) = SECTION_KINDS.iter().position(|s| *s == kind) {
                f[BASE_FEATURES + k] = 1.0;
            }
            f
        })
        .collect()
}

impl RerankHead {
    /// Loads and checks a head file (see the module docs for what is checked).
    pub fn load(path: &Path) -> Result<RerankHead, Error> {
        let io = |source| Error::Io { path: path.to_owned(), source };
        let bytes = std::fs::metadata(path).map_err(io)?.len();
        if bytes > MAX_HEAD_BYTES {
            return Err(Error::TooLarge { path: path.to_owned(), bytes, limit: MAX_HEAD_BYTES });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        RerankHead::parse(&text, path)
    }

    /// Parses and checks a head from its JSON text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<RerankHead, Error> {
        let field = |field: &str, message: String| Error::Field { path: path.to_owned(), field: field.to_string(), message };
        if text.len() as u64 > MAX_HEAD_BYTES {
            return Err(Error::TooLarge { path: path.to_owned(), bytes: text.len() as u64, limit: MAX_HEAD_BYTES });
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(|source| Error::Json { path: path.to_owned(), source })?;
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
        // The typed fields first, so that a wrong one is named (serde's
        // message for a type error does not say which field).
        let typed: [(&str, fn(&serde_json::Value) -> bool, &str); 3] = [
            ("features", |v| v.as_array().is_some_and(|a| a.iter().all(|x| x.is_string())), "a list of feature names"),
            ("weights", |v| v.as_array().is_some_and(|a| a.iter().all(|x| x.is_number())), "a list of numbers"),
            ("bias", |v| v.is_number(), "a number"),
        ];
        for (name, ok, what) in typed {
            if !value.get(name).is_some_and(ok) {
                return Err(field(name, format!("missing or not {what}")));
            }
        }
        let raw: HeadFile = serde_json::from_value(value).map_err(|e| field("(structure)", e.to_string()))?;
        if raw.features != FEATURES {
            let at = raw.features.iter().zip(FEATURES).position(|(a, b)| a != b).unwrap_or(raw.features.len().min(N_FEATURES));
            return Err(field(
                "features",
                format!("has {} names, differing from this build's {N_FEATURES} at index {at} (rebuild the head or this build)", raw.features.len()),
            ));
        }
        let weights: [f64; N_FEATURES] = raw
            .weights
            .as_slice()
            .try_into()
            .map_err(|_| field("weights", format!("has {} values, expected {N_FEATURES} (one per feature)", raw.weights.len())))?;
        if let Some(i) = weights.iter().position(|w| !w.is_finite()) {
            return Err(field(&format!("weights[{i}]"), "is not a finite number".into()));
        }
        if !raw.bias.is_finite() {
            return Err(field("bias", "is not a finite number".into()));
        }
        Ok(RerankHead { weights, bias: raw.bias })
    }

    /// The logit of each candidate, in order.
    pub fn scores(&self, question: &str, cands: &[Candidate]) -> Vec<f64> {
        features(question, cands).iter().map(|f| self.bias + f.iter().zip(&self.weights).map(|(x, w)| x * w).sum::<f64>()).collect()
    }

    /// The index of the best candidate (the first on a tie), `None` without candidates.
    pub fn best(&self, question: &str, cands: &[Candidate]) -> Option<usize> {
        let s = self.scores(question, cands);
        (0..s.len()).fold(None, |best: Option<usize>, i| match best {
            Some(b) if s[b] >= s[i] => Some(b),
            _ => Some(i),
        })
    }
}

/// The head shipped with this build (compiled in from [`DEFAULT_HEAD`]),
/// parsed once; `None` (logged once) if it does not parse, and the
/// extractive answer then keeps the concept selection.
pub fn shipped() -> Option<&'static RerankHead> {
    static HEAD: OnceLock<Option<RerankHead>> = OnceLock::new();
    HEAD.get_or_init(|| match RerankHead::parse(include_str!("../../../training/heads/rerank_head.json"), Path::new(DEFAULT_HEAD)) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "the shipped sentence rerank head does not load; extractive answers lead with the concept score");
            None
        }
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    /// A candidate as the Python reference and the training dump store it.
    #[derive(Debug, Deserialize)]
    struct RawCandidate {
        text: String,
        hit: usize,
        pos: usize,
        n_sentences: usize,
        concept: f64,
        hit_coverage: f64,
        hit_title: f64,
        doc_id: String,
        section: String,
        title: String,
        parent: String,
    }

    impl RawCandidate {
        fn borrow(&self) -> Candidate<'_> {
            Candidate {
                text: &self.text,
                hit: self.hit,
                pos: self.pos,
                n_sentences: self.n_sentences,
                concept: self.concept,
                hit_coverage: self.hit_coverage,
                hit_title: self.hit_title,
                doc_id: &self.doc_id,
                section: &self.section,
                title: &self.title,
                parent: &self.parent,
            }
        }
    }

    #[derive(Debug, Deserialize)]
    struct Reference {
        id: String,
        question: String,
        cands: Vec<RawCandidate>,
        features: Vec<Vec<f64>>,
        logits: Vec<f64>,
    }

    #[test]
    fn the_shipped_head_loads_and_matches_the_file() {
        let from_file = RerankHead::load(&repo(DEFAULT_HEAD)).expect("the shipped head loads");
        let compiled = shipped().expect("the compiled-in head parses");
        assert_eq!(from_file.weights, compiled.weights);
        assert_eq!(from_file.bias, compiled.bias);
    }

    #[test]
    fn logits_match_the_python_reference() {
        let head = RerankHead::load(&repo(DEFAULT_HEAD)).expect("head");
        let text = std::fs::read_to_string(repo("training/heads/rerank_reference.jsonl")).expect("reference");
        let mut groups = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let r: Reference = serde_json::from_str(line).expect("reference line");
            let cands: Vec<Candidate> = r.cands.iter().map(RawCandidate::borrow).collect();
            let f = features(&r.question, &cands);
            for (i, (fr, fp)) in f.iter().zip(&r.features).enumerate() {
                for (j, (a, b)) in fr.iter().zip(fp).enumerate() {
                    assert!((a - b).abs() < 1e-6, "{}: candidate {i} feature {}: rust {a} python {b}", r.id, FEATURES[j]);
                }
            }
            let s = head.scores(&r.question, &cands);
            assert_eq!(s.len(), r.logits.len(), "{}", r.id);
            for (i, (a, b)) in s.iter().zip(&r.logits).enumerate() {
                assert!((a - b).abs() < 1e-3, "{}: candidate {i}: rust {a} python {b}", r.id);
            }
            groups += 1;
        }
        assert!(groups >= 40, "only {groups} reference groups");
    }

    #[test]
    fn tokens_drop_stopwords_and_cut_words_to_five_letters() {
        assert_eq!(tokens("What is the MAX dose of 2.5 mg, eGFR<30?"), ["max", "dose", "2.5", "mg", "egfr", "30"]);
        assert_eq!(tokens("Hepatotoxicity in patients"), ["hepat"]);
        assert_eq!(tokens("1,000 units"), ["1,000", "units"]);
    }

    #[test]
    fn section_kinds_follow_plr_numbers_then_heading_words() {
        assert_eq!(section_kind("x-pi", "5.2", "Hepatotoxicity", "WARNINGS AND PRECAUTIONS"), "warnings");
        assert_eq!(section_kind("x-pi", "BW", "WARNING: X", ""), "boxed");
        assert_eq!(section_kind("x-faq", "Q3", "Can I?", ""), "faq");
        assert_eq!(section_kind("haloperidol-pi", "Adults", "Adults", "DOSAGE AND ADMINISTRATION"), "dosage");
        assert_eq!(section_kind("x-pi", "99", "Misc", ""), "other");
    }

    #[test]
    fn empty_candidates_have_no_best() {
        let head = shipped().expect("head");
        assert_eq!(head.best("anything", &[]), None);
        assert!(features("anything", &[]).is_empty());
    }

    #[test]
    fn bad_heads_are_refused_naming_the_field() {
        let p = Path::new("h.json");
        let ok = std::fs::read_to_string(repo(DEFAULT_HEAD)).expect("head");
        let mut v: serde_json::Value = serde_json::from_str(&ok).expect("json");
        let err = |v: &serde_json::Value| RerankHead::parse(&v.to_string(), p).expect_err("refused").to_string();
        let mut w = v.clone();
        w["kind"] = "onlabel-intent-head".into();
        assert!(err(&w).contains("field `kind`"), "{}", err(&w));
        let mut w = v.clone();
        w["version"] = 1.into();
        assert!(err(&w).contains("field `version`"), "{}", err(&w));
        let mut w = v.clone();
        w["features"][0] = "cos".into();
        assert!(err(&w).contains("field `features`") && err(&w).contains("index 0"), "{}", err(&w));
        let mut w = v.clone();
        w["weights"].as_array_mut().expect("weights").pop();
        assert!(err(&w).contains("field `weights`"), "{}", err(&w));
        let mut w = v.clone();
        w["surprise"] = 1.into();
        assert!(err(&w).contains("surprise"), "{}", err(&w));
        v["bias"] = "x".into();
        assert!(err(&v).contains("field `bias`"), "{}", err(&v));
        assert!(matches!(RerankHead::parse("{", p), Err(Error::Json { .. })));
        let big = " ".repeat(MAX_HEAD_BYTES as usize + 1);
        assert!(matches!(RerankHead::parse(&big, p), Err(Error::TooLarge { .. })));
        assert!(matches!(RerankHead::load(Path::new("/nonexistent/h.json")), Err(Error::Io { .. })));
    }

    /// Writes the candidate sets of the writers' answer asks, as the
    /// extractive generator sees them, for `training/build_heads.py`:
    /// `ONLABEL_RERANK_INDEX=DIR ONLABEL_RERANK_DUMP=FILE cargo test --release
    /// --locked --lib copilot::extractive::select::tests::dump -- --ignored`
    /// (DIR: an index of ../shared/data/pi and corpora/demo, BM25 as the
    /// Writes, for every writer ask about one product that should be
    /// answered or sent to Medical, the candidates of the leading passages
    /// WITHOUT the coverage gate, with whether the gate passed: the data the
    /// cross-encoder's answer/no-answer calibration is measured on
    /// (training/train_cross.py --gate). Ignored: needs an index of both
    /// corpora in ONLABEL_RERANK_INDEX and writes ONLABEL_GATE_DUMP.
    #[test]
    #[ignore]
    fn dump_gate_candidates() {
        use std::io::Write;
        let index = crate::index::Index::open(Path::new(&std::env::var("ONLABEL_RERANK_INDEX").expect("ONLABEL_RERANK_INDEX"))).expect("index");
        let mut out = std::io::BufWriter::new(std::fs::File::create(std::env::var("ONLABEL_GATE_DUMP").expect("ONLABEL_GATE_DUMP")).expect("dump"));
        let as_of = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).expect("date");
        let ex = super::super::Extractive::default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo("training/intent")).expect("training/intent").map(|e| e.expect("entry").path()).collect();
        files.sort();
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "jsonl")) {
            for line in std::fs::read_to_string(f).expect("asks").lines().filter(|l| !l.trim().is_empty()) {
                let r: serde_json::Value = serde_json::from_str(line).expect("ask");
                let (Some(route @ ("answer" | "medical")), Some(product)) = (r["route"].as_str(), r["product"].as_str()) else { continue };
                let q = r["text"].as_str().expect("text").trim();
                let filter = crate::index::Filter::for_role("rep", Some(&product.to_lowercase()), as_of);
                let search = index.search(q, &filter, 20).expect("search");
                let eligible = ex.eligible(&search, &search.hits).is_some();
                let ungated: Vec<Hit> = search.hits.iter().take(ex.considered).map(|h| Hit { coverage: h.coverage.max(1e-6), ..h.clone() }).collect();
                let cands: Vec<serde_json::Value> = candidates(Analyzer::shared(), &search, &ungated)
                    .iter()
                    .map(|c| {
                        serde_json::json!({"text": c.text, "hit": c.hit, "pos": c.pos, "n_sentences": c.n_sentences, "concept": c.concept,
                            "hit_coverage": c.hit_coverage, "hit_title": c.hit_title, "doc_id": c.doc_id, "section": c.section,
                            "title": c.title, "parent": c.parent})
                    })
                    .collect();
                let row = serde_json::json!({"id": r["id"], "writer": r["writer"], "product": product, "route": route, "category": r["category"],
                    "lang": r["lang"], "question": q, "quote": r["quote"], "eligible": eligible, "n_concepts": search.concepts.len(), "cands": cands});
                writeln!(out, "{row}").expect("write");
            }
        }
    }

    /// evals run it).
    #[test]
    #[ignore = "writes training data; needs ONLABEL_RERANK_INDEX and ONLABEL_RERANK_DUMP"]
    fn dump_training_candidates() {
        use std::io::Write;
        let index = crate::index::Index::open(Path::new(&std::env::var("ONLABEL_RERANK_INDEX").expect("ONLABEL_RERANK_INDEX"))).expect("index");
        let mut out = std::io::BufWriter::new(std::fs::File::create(std::env::var("ONLABEL_RERANK_DUMP").expect("ONLABEL_RERANK_DUMP")).expect("dump"));
        let as_of = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).expect("date");
        let ex = super::super::Extractive::default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo("training/intent")).expect("training/intent").map(|e| e.expect("entry").path()).collect();
        files.sort();
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "jsonl")) {
            for line in std::fs::read_to_string(f).expect("asks").lines().filter(|l| !l.trim().is_empty()) {
                let r: serde_json::Value = serde_json::from_str(line).expect("ask");
                let (Some("answer"), Some(product), Some(quote)) = (r["route"].as_str(), r["product"].as_str(), r["quote"].as_str()) else { continue };
                let q = r["text"].as_str().expect("text").trim();
                let filter = crate::index::Filter::for_role("rep", Some(&product.to_lowercase()), as_of);
                let search = index.search(q, &filter, 20).expect("search");
                let mut row = serde_json::json!({"id": r["id"], "writer": r["writer"], "product": product, "question": q, "quote": quote});
                if let Some(eligible) = ex.eligible(&search, &search.hits) {
                    let today: Vec<String> = super::super::reading_order(ex.by_concepts(&search, &eligible), false).iter().map(|s| s.text.to_string()).collect();
                    let cands: Vec<serde_json::Value> = candidates(Analyzer::shared(), &search, &eligible)
                        .iter()
                        .map(|c| {
                            serde_json::json!({"text": c.text, "hit": c.hit, "pos": c.pos, "n_sentences": c.n_sentences, "concept": c.concept,
                                "hit_coverage": c.hit_coverage, "hit_title": c.hit_title, "doc_id": c.doc_id, "section": c.section,
                                "title": c.title, "parent": c.parent})
                        })
                        .collect();
                    row["today"] = today.into();
                    row["cands"] = cands.into();
                }
                writeln!(out, "{row}").expect("write");
            }
        }
    }
}
