//! The citation verifier: a generated sentence is shown only if it carries a
//! marker pointing at a given passage, every number and unit in it appears in
//! that passage, and its content is supported by the passage.
//!
//! Support is lexical and strict, on purpose (a 135M model paraphrases
//! loosely): at least [`MIN_SUPPORT`] of the sentence's content words
//! (analysed: lower-cased, stemmed, stop words removed) must occur in the
//! cited passage, the sentence must have at least [`MIN_CONTENT_WORDS`]
//! content words, and a negation in the sentence must be matched by one in
//! the passage sentence it draws on most (so "is not recommended" cannot
//! become "is recommended" or the reverse).

use std::collections::HashSet;

use regex::Regex;

use crate::corpus::text::sentences;
use crate::index::Analyzer;

/// Share of a sentence's content words that must occur in the cited passage.
/// Chosen on `evals/labels.jsonl`: 0.85 keeps paraphrases that only reorder or
/// inflect label wording and rejects sentences that add a new content word in
/// every seven.
pub const MIN_SUPPORT: f32 = 0.85;

/// A sentence needs this many content words to say anything checkable.
pub const MIN_CONTENT_WORDS: usize = 3;

/// Why a sentence was rejected (for the audit trail and the eval report).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Rejection {
    /// No `[n]` marker.
    NoMarker,
    /// A marker points at no given passage.
    BadMarker {
        /// The marker number.
        n: usize,
    },
    /// A number or unit is not in the cited passage.
    Number {
        /// The offending token.
        token: String,
    },
    /// Too few content words to check.
    TooShort,
    /// Content not supported by the passage.
    Unsupported {
        /// Share of content words found.
        support: f32,
    },
    /// A negation does not match the passage.
    Negation,
}

/// A checked sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The sentence without markers.
    pub text: String,
    /// Cited passage (index into the passages given), when valid.
    pub passage: Option<usize>,
    /// `None` when supported.
    pub rejection: Option<Rejection>,
}

fn marker_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\s*\[(\d+)(?:\s*,\s*\d+)*\]").expect("static regex"))
}

fn number_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\d+(?:[.,]\d+)*").expect("static regex"))
}

const UNITS: &[&str] = &[
    "mg", "mcg", "µg", "g", "kg", "ml", "l", "%", "percent", "mg/kg", "mg/m2", "iu", "units", "mmol", "hours", "hour",
    "days", "day", "weeks", "week", "months", "month", "years", "year", "minutes", "min", "uln",
];

const NEGATIONS: &[&str] = &["not", "no", "never", "without", "none", "neither", "nor", "cannot", "avoid", "contraindicated"];

fn has_negation(s: &str) -> bool {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .any(|w| NEGATIONS.contains(&w) || w.ends_with("n't"))
}

/// Checks every sentence of a generated text against the passages (numbered
/// from 1 in the prompt; `passages[n-1]` is marker `[n]`).
pub fn verify(text: &str, passages: &[&str], analyzer: &Analyzer) -> Vec<Checked> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    // Split after markers too: "…dose [1]. Next…" and "…dose. [1] Next…".
    let normalised = marker_re().replace_all(&flat, |c: &regex::Captures| format!(" [{}]", &c[1])).to_string();
    let mut pieces: Vec<String> = Vec::new();
    for s in sentences(&normalised) {
        // A marker that begins a sentence belongs to the previous one.
        let s = s.trim();
        if let Some(m) = marker_re().find(s).filter(|m| m.start() == 0) {
            if let Some(last) = pieces.last_mut() {
                last.push_str(m.as_str());
            }
            let rest = s[m.end()..].trim();
            if !rest.is_empty() {
                pieces.push(rest.to_string());
            }
        } else {
            pieces.push(s.to_string());
        }
    }
    for piece in pieces {
        let markers: Vec<usize> = marker_re().captures_iter(&piece).filter_map(|c| c[1].parse().ok()).collect();
        let claim = marker_re().replace_all(&piece, "").trim().to_string();
        let claim = claim.trim_end_matches(|c: char| c == ' ').to_string();
        if claim.is_empty() {
            continue;
        }
        let check = |rej: Option<Rejection>, passage: Option<usize>| Checked { text: claim.clone(), passage, rejection: rej };
        let Some(&n) = markers.first() else {
            out.push(check(Some(Rejection::NoMarker), None));
            continue;
        };
        if n == 0 || n > passages.len() {
            out.push(check(Some(Rejection::BadMarker { n }), None));
            continue;
        }
        let pi = n - 1;
        let passage = passages[pi];
        out.push(check(judge(&claim, passage, analyzer), Some(pi)));
    }
    out
}

/// Judges one claim against one passage; `None` means supported.
pub fn judge(claim: &str, passage: &str, analyzer: &Analyzer) -> Option<Rejection> {
    let pnums: HashSet<String> = number_re().find_iter(passage).map(|m| m.as_str().replace(',', "")).collect();
    for m in number_re().find_iter(claim) {
        let t = m.as_str().replace(',', "");
        if !pnums.contains(&t) {
            return Some(Rejection::Number { token: m.as_str().to_string() });
        }
    }
    let plow = passage.to_lowercase();
    let pwords: HashSet<&str> = plow.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',').collect();
    for w in claim.to_lowercase().split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',') {
        let w = w.trim_end_matches(['.', ';', ':']);
        if UNITS.contains(&w) && !pwords.contains(w) && !plow.contains(&format!(" {w}")) && !plow.contains(w) {
            return Some(Rejection::Number { token: w.to_string() });
        }
    }
    let content: Vec<String> = analyzer.tokens(claim).into_iter().filter(|t| !analyzer.is_stop(t)).collect();
    if content.len() < MIN_CONTENT_WORDS {
        return Some(Rejection::TooShort);
    }
    let ptoks: HashSet<String> = analyzer.tokens(passage).into_iter().collect();
    let found = content.iter().filter(|t| ptoks.contains(*t)).count();
    let support = found as f32 / content.len() as f32;
    if support < MIN_SUPPORT {
        return Some(Rejection::Unsupported { support });
    }
    // The passage sentence the claim draws on most must agree on negation.
    let cset: HashSet<&String> = content.iter().collect();
    let best = sentences(passage)
        .into_iter()
        .max_by_key(|s| analyzer.tokens(s).iter().filter(|t| cset.contains(t)).count())
        .unwrap_or(passage);
    if has_negation(claim) != has_negation(best) {
        return Some(Rejection::Negation);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const P1: &str = "The recommended dosage is 20 mg orally once daily. ZENTRAVIA is not recommended in severe hepatic impairment.";
    const P2: &str = "Monitor ALT and AST every 4 weeks for the first 12 weeks.";

    fn v(text: &str) -> Vec<Checked> {
        verify(text, &[P1, P2], Analyzer::shared())
    }

    #[test]
    fn supported_sentences_pass() {
        let c = v("The recommended dosage is 20 mg orally once daily [1]. Monitor ALT and AST every 4 weeks [2].");
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c.iter().all(|c| c.rejection.is_none()), "{c:?}");
        assert_eq!(c[1].passage, Some(1));
    }

    #[test]
    fn wrong_number_unmarked_and_bad_marker_fail() {
        assert!(matches!(v("The recommended dosage is 40 mg once daily [1].")[0].rejection, Some(Rejection::Number { .. })));
        assert_eq!(v("The recommended dosage is 20 mg orally once daily.")[0].rejection, Some(Rejection::NoMarker));
        assert_eq!(v("Monitor ALT and AST every 4 weeks [3].")[0].rejection, Some(Rejection::BadMarker { n: 3 }));
    }

    #[test]
    fn invented_content_and_flipped_negation_fail() {
        assert!(matches!(v("ZENTRAVIA cures psoriasis permanently in every patient [1].")[0].rejection, Some(Rejection::Unsupported { .. })));
        assert_eq!(v("ZENTRAVIA is recommended in severe hepatic impairment [1].")[0].rejection, Some(Rejection::Negation));
        assert_eq!(v("ZENTRAVIA is not recommended in severe hepatic impairment [1].")[0].rejection, None);
    }

    #[test]
    fn marker_after_the_period_belongs_to_the_sentence() {
        let c = v("Monitor ALT and AST every 4 weeks. [2] The recommended dosage is 20 mg orally once daily. [1]");
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c.iter().all(|c| c.rejection.is_none()), "{c:?}");
    }
}
