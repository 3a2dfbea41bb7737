//! [`Extractive`]: the generator that quotes approved sentences verbatim.
//!
//! It first decides whether anything retrieved answers the question at all:
//! the best passage must cover at least [`Extractive::min_coverage`] of the
//! question's concepts (IDF-weighted; synonyms count). Below that it answers
//! nothing and the copilot refuses, rather than quoting an unrelated passage.
//! Then it scores each sentence of the leading passages by the concepts it
//! contains and quotes the best one to three, from at most two passages.

use crate::corpus::chunk::sentences;
use crate::index::analysis::contains_phrase;
use crate::index::{Analyzer, Hit, SearchResult};

use crate::llm::{Draft, Generator, Mode, Sentence};

/// The extractive generator and its thresholds.
#[derive(Debug, Clone)]
pub struct Extractive {
    /// Minimum IDF-weighted share of the question's concepts that the best
    /// passage must cover before anything is quoted. 0.5: at least the
    /// weightier half of what was asked must be in one approved passage.
    pub min_coverage: f32,
    /// A passage matching only one of several concepts must cover this much.
    pub single_concept_coverage: f32,
    /// Most sentences quoted.
    pub max_sentences: usize,
    /// Most distinct passages cited.
    pub max_passages: usize,
    /// Passages considered for quoting.
    pub considered: usize,
    /// A further sentence must score at least this share of the best one.
    pub follow_ratio: f32,
    /// Most words in the whole answer (it is read out loud mid-call).
    pub max_words: usize,
}

impl Default for Extractive {
    fn default() -> Self {
        Extractive { min_coverage: 0.4, single_concept_coverage: 0.5, max_sentences: 3, max_passages: 2, considered: 5, follow_ratio: 0.8, max_words: 90 }
    }
}

impl Extractive {
    /// Whether a passage answers the question well enough to be quoted: it
    /// covers at least `min_coverage` of the question's weight and, when the
    /// question asks about several things, either two of them or most of the
    /// weight (one passing word in common is not an answer).
    pub fn answers(&self, h: &Hit, n_concepts: usize) -> bool {
        h.coverage >= self.min_coverage
            && (n_concepts <= 1 || h.matched.len() >= 2 || h.coverage >= self.single_concept_coverage)
    }
}

/// A candidate sentence for quoting.
#[derive(Debug, Clone)]
pub struct Scored<'a> {
    /// The sentence, verbatim.
    pub text: &'a str,
    /// Index of its hit.
    pub hit: usize,
    /// Position within the passage.
    pub pos: usize,
    /// Relevance score (share of concept weight, title matches at half).
    pub score: f32,
}

/// Whether a sentence is prose that can be read out loud (not a table row,
/// not a bare cross-reference, not a fragment).
pub fn quotable(s: &str) -> bool {
    let words = s.split_whitespace().count();
    // A whole short statement ("None.") is quotable on its own.
    if (1..5).contains(&words) && s.ends_with('.') && s.chars().next().is_some_and(char::is_uppercase) && !s.contains('[') {
        return true;
    }
    let letters = s.chars().filter(|c| c.is_alphabetic()).count();
    words >= 5
        && words <= 80
        && !s.contains(" | ")
        && letters * 2 > s.chars().filter(|c| !c.is_whitespace()).count()
        && s.chars().any(|c| c.is_lowercase())
}

/// Scores every quotable sentence of the leading hits against the question's concepts.
pub fn score_sentences<'a>(analyzer: &Analyzer, search: &SearchResult, hits: &'a [Hit], considered: usize) -> Vec<Scored<'a>> {
    let total: f32 = search.weights.iter().sum::<f32>().max(1e-6);
    let mut out = Vec::new();
    for (hi, hit) in hits.iter().take(considered).enumerate() {
        let mut title_toks = analyzer.tokens(&hit.passage.title);
        if hit.passage.section == "BW" {
            title_toks.extend(analyzer.tokens("boxed warning"));
        }
        // A section-kind concept ("§contraindications") is about where a
        // passage sits: its heading or its parent heading.
        let mut heading_toks = title_toks.clone();
        heading_toks.push(String::new());
        heading_toks.extend(analyzer.tokens(&hit.passage.parent));
        for (pos, s) in sentences(&hit.passage.text).into_iter().enumerate() {
            if !quotable(s) {
                continue;
            }
            let toks = analyzer.tokens(&crate::index::analysis::strip_cross_references(s));
            let mut score = 0.0;
            for (ci, c) in search.concepts.iter().enumerate() {
                // A longer phrasing matched ("recommended dosage" vs "dose") is more specific.
                let longest = c.alternatives.iter().filter(|a| contains_phrase(&toks, a)).map(Vec::len).max();
                if let Some(len) = longest {
                    score += search.weights[ci] * (1.0 + 0.25 * (len.min(3) - 1) as f32);
                } else if c.section_intent().is_some() {
                    if c.alternatives.iter().any(|a| contains_phrase(&heading_toks, a)) {
                        score += 0.5 * search.weights[ci];
                    }
                } else if c.alternatives.iter().any(|a| contains_phrase(&title_toks, a)) {
                    score += 0.5 * search.weights[ci];
                }
            }
            // Earlier hits (better BM25) win ties.
            let score = score / total - 0.02 * hi as f32;
            if score > 0.0 {
                out.push(Scored { text: s, hit: hi, pos, score });
            }
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.hit.cmp(&b.hit)).then(a.pos.cmp(&b.pos)));
    out
}

impl Generator for Extractive {
    fn draft(&self, _question: &str, search: &SearchResult, hits: &[Hit]) -> Draft {
        let empty = Draft { sentences: Vec::new(), mode: Mode::Extractive };
        let n_concepts = search.concepts.len();
        let answers = |h: &Hit| self.answers(h, n_concepts);
        if !hits.iter().take(self.considered).any(answers) {
            return empty;
        }
        // Only passages that themselves clear the bar are quoted.
        let eligible: Vec<Hit> = hits
            .iter()
            .take(self.considered)
            .map(|h| if answers(h) { h.clone() } else { Hit { coverage: 0.0, ..h.clone() } })
            .collect();
        let scored: Vec<Scored> = score_sentences(Analyzer::shared(), search, &eligible, self.considered)
            .into_iter()
            .filter(|s| eligible[s.hit].coverage > 0.0)
            .collect();
        let Some(first) = scored.first() else { return empty };
        let mut chosen: Vec<&Scored> = vec![first];
        let mut words = first.text.split_whitespace().count();
        for s in &scored[1..] {
            if chosen.len() >= self.max_sentences {
                break;
            }
            if s.score < self.follow_ratio * first.score {
                break;
            }
            let passages: std::collections::HashSet<usize> = chosen.iter().map(|c| c.hit).chain([s.hit]).collect();
            let w = s.text.split_whitespace().count();
            if passages.len() > self.max_passages || words + w > self.max_words || chosen.iter().any(|c| c.text == s.text) {
                continue;
            }
            words += w;
            chosen.push(s);
        }
        // Read in a natural order: the best passage first, sentences in label order.
        let order: Vec<usize> = chosen.iter().map(|c| c.hit).fold(Vec::new(), |mut v, h| {
            if !v.contains(&h) {
                v.push(h)
            }
            v
        });
        chosen.sort_by_key(|c| (order.iter().position(|h| *h == c.hit), c.pos));
        Draft {
            sentences: chosen.iter().map(|c| Sentence { text: c.text.to_string(), passage: c.hit }).collect(),
            mode: Mode::Extractive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_fragments_are_not_quotable() {
        assert!(!quotable("ALT | 3x | 4.1%"));
        assert!(!quotable("[see 5.2]."));
        assert!(!quotable("30 min"));
        assert!(quotable("None."));
        assert!(quotable("Monitor liver enzymes before starting and every 4 weeks."));
    }
}
