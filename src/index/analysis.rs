//! [`Analyzer`]: medical-aware text analysis shared by indexing and querying.
//!
//! Tokens are lower-cased, ASCII-folded and Porter-stemmed (tantivy's
//! pipeline, registered as [`TOKENIZER`]). On top, the query side knows the
//! shorthand reps use: a synonym list kept in the repository
//! (`lexicon/synonyms.txt`, e.g. "LFTs" ≈ "liver enzymes" ≈ "transaminases")
//! and a stop list of words with no content in a question
//! (`lexicon/stopwords.txt`). A question becomes a list of [`Concept`]s: each
//! synonym group it mentions is one concept with all its phrasings, each other
//! content word is a concept of its own.

use std::collections::HashSet;

use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};

/// The name the medical analyzer is registered under in the index.
pub const TOKENIZER: &str = "medical";

/// The synonym list compiled into the binary (reviewable in the repository).
pub const SYNONYMS: &str = include_str!("../../lexicon/synonyms.txt");
/// The stop list compiled into the binary.
pub const STOPWORDS: &str = include_str!("../../lexicon/stopwords.txt");

/// Builds the tantivy analyzer used for every text field.
pub fn text_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// One thing a question asks about, with every phrasing that expresses it
/// (each phrasing a sequence of analysed tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct Concept {
    /// The words as they appeared in the question (for explanations).
    pub surface: String,
    /// Alternative phrasings, analysed; a single-token phrasing is a term.
    pub alternatives: Vec<Vec<String>>,
}

/// Tokenises with the index's analyzer and applies synonyms and stop words.
pub struct Analyzer {
    analyzer: TextAnalyzer,
    groups: Vec<Vec<Vec<String>>>,
    stop: HashSet<String>,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer::new(SYNONYMS, STOPWORDS)
    }
}

impl Analyzer {
    /// The process-wide analyzer built from the compiled-in lexicon.
    pub fn shared() -> &'static Analyzer {
        static SHARED: std::sync::OnceLock<Analyzer> = std::sync::OnceLock::new();
        SHARED.get_or_init(Analyzer::default)
    }

    /// Builds an analyzer from synonym and stop-word text (see the lexicon files).
    pub fn new(synonyms: &str, stopwords: &str) -> Analyzer {
        let mut a = Analyzer { analyzer: text_analyzer(), groups: Vec::new(), stop: HashSet::new() };
        for line in stopwords.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            // Stop words are compared after stemming.
            for t in a.tokens(line) {
                a.stop.insert(t);
            }
        }
        for line in synonyms.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let group: Vec<Vec<String>> =
                line.split('|').map(|p| a.tokens(p)).filter(|t: &Vec<String>| !t.is_empty()).collect();
            if group.len() > 1 {
                a.groups.push(group);
            }
        }
        a
    }

    /// Analysed tokens of a text.
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    /// Whether an analysed token is a stop word.
    pub fn is_stop(&self, token: &str) -> bool {
        self.stop.contains(token)
    }

    /// The concepts of a question: synonym groups it mentions (longest match
    /// first), then its remaining content words. `ignore` lists tokens that
    /// carry no information here (e.g. the product's own name).
    pub fn concepts(&self, question: &str, ignore: &[String]) -> Vec<Concept> {
        // Names after a title ("Dr. Lee", "Mrs. Patel") carry no content.
        static NAMES: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let names = NAMES.get_or_init(|| {
            regex::Regex::new(r"\b(?:Dr|Doctor|Mr|Mrs|Ms|Prof|Nurse)\.?\s+[A-Z][\w'’-]*").expect("static regex")
        });
        let question = names.replace_all(question, " ");
        let toks = self.tokens(&question);
        let mut used = vec![false; toks.len()];
        let mut out: Vec<Concept> = Vec::new();
        // Find every group phrasing present in the question, longest first.
        let mut matches: Vec<(usize, usize, usize)> = Vec::new(); // (start, len, group)
        for (g, group) in self.groups.iter().enumerate() {
            for phr in group {
                for start in 0..toks.len() {
                    if toks[start..].starts_with(phr) {
                        matches.push((start, phr.len(), g));
                    }
                }
            }
        }
        matches.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut seen_groups = HashSet::new();
        for (start, len, g) in matches {
            if used[start..start + len].iter().any(|u| *u) && len == 1 {
                continue;
            }
            let all_stop = toks[start..start + len].iter().all(|t| self.is_stop(t));
            if all_stop {
                continue;
            }
            used[start..start + len].iter_mut().for_each(|u| *u = true);
            if seen_groups.insert(g) {
                out.push(Concept { surface: toks[start..start + len].join(" "), alternatives: self.groups[g].clone() });
            }
        }
        for (i, t) in toks.iter().enumerate() {
            if used[i] || self.is_stop(t) || ignore.contains(t) || t.chars().all(|c| c.is_ascii_digit()) && t.len() < 2 {
                continue;
            }
            if out.iter().any(|c| c.alternatives.iter().any(|a| a.len() == 1 && a[0] == *t)) {
                continue;
            }
            out.push(Concept { surface: t.clone(), alternatives: vec![vec![t.clone()]] });
        }
        out
    }
}

/// Removes cross-references such as `[see Warnings and Precautions (5.1)]`
/// and `(see Boxed Warning)`: they name other sections' topics and would make
/// a passage look relevant to them.
pub fn strip_cross_references(text: &str) -> std::borrow::Cow<'_, str> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"(?i)\[\s*see\b[^\]]*\]|\(\s*see\b[^()]*(?:\([^()]*\)[^()]*)*\)").expect("static regex")
    });
    re.replace_all(text, " ")
}

/// Whether `phrase` occurs as a contiguous run in `tokens`.
pub fn contains_phrase(tokens: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && tokens.windows(phrase.len()).any(|w| w == phrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_references_are_stripped() {
        let t = "Serious infections occurred [see Warnings and Precautions (5.1)]. Avoid (see Boxed Warning).";
        assert_eq!(strip_cross_references(t), "Serious infections occurred  . Avoid  .");
    }

    #[test]
    fn stems_and_lowercases() {
        let a = Analyzer::default();
        assert_eq!(a.tokens("Infections INFECTION"), ["infect", "infect"]);
    }

    #[test]
    fn lfts_expand_to_liver_enzymes() {
        let a = Analyzer::default();
        let c = a.concepts("What does the label say about LFTs?", &[]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].alternatives.contains(&a.tokens("transaminases")));
        assert!(c[0].alternatives.contains(&a.tokens("liver enzymes")));
    }

    #[test]
    fn bbw_and_peds() {
        let a = Analyzer::default();
        let c = a.concepts("BBW for peds?", &[]);
        assert!(c.iter().any(|c| c.alternatives.contains(&a.tokens("boxed warning"))));
        assert!(c.iter().any(|c| c.alternatives.contains(&a.tokens("pediatric"))));
    }

    #[test]
    fn stop_words_and_ignored_tokens_are_dropped() {
        let a = Analyzer::default();
        let c = a.concepts("Dr. Lee worries about Humira and alopecia", &["humira".to_string()]);
        let s: Vec<_> = c.iter().map(|c| c.surface.as_str()).collect();
        assert_eq!(s, ["alopecia"]);
    }
}
