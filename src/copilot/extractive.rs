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

pub mod cross;
pub mod select;

use std::sync::Arc;

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
    /// Whether the learned sentence scorer ([`select`]) picks the sentence
    /// that leads the answer (the concept selection follows it).
    pub learned_first: bool,
    /// The cross-encoder that rescores the learned scorer's best candidates
    /// ([`cross`]); without it the cheap head alone picks.
    pub cross: Option<Arc<cross::CrossEncoder>>,
}

impl Default for Extractive {
    fn default() -> Self {
        Extractive { min_coverage: 0.4, single_concept_coverage: 0.5, max_sentences: 3, max_passages: 2, considered: 5, follow_ratio: 0.8, max_words: 90, learned_first: true, cross: None }
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

/// The concept score of every quotable sentence of `hit`: the share of the
/// question's concept weight the sentence holds (a longer phrasing counts
/// more; a concept only in the section title, or a section-kind concept in
/// the heading, at half), as `(position in the passage, sentence, share)`.
/// The share is not clipped: a sentence matching nothing scores 0.
pub fn concept_scores<'a>(analyzer: &Analyzer, search: &SearchResult, hit: &'a Hit) -> Vec<(usize, &'a str, f32)> {
    let total: f32 = search.weights.iter().sum::<f32>().max(1e-6);
    let mut title_toks = analyzer.tokens(&hit.passage.title);
    if hit.passage.section == "BW" {
        title_toks.extend(analyzer.tokens("boxed warning"));
    }
    // A section-kind concept ("§contraindications") is about where a
    // passage sits: its heading or its parent heading.
    let mut heading_toks = title_toks.clone();
    heading_toks.push(String::new());
    heading_toks.extend(analyzer.tokens(&hit.passage.parent));
    let mut out = Vec::new();
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
        out.push((pos, s, score / total));
    }
    out
}

/// Scores every quotable sentence of the leading hits against the question's concepts.
pub fn score_sentences<'a>(analyzer: &Analyzer, search: &SearchResult, hits: &'a [Hit], considered: usize) -> Vec<Scored<'a>> {
    let mut out = Vec::new();
    for (hi, hit) in hits.iter().take(considered).enumerate() {
        for (pos, s, share) in concept_scores(analyzer, search, hit) {
            // Earlier hits (better BM25) win ties.
            let score = share - 0.02 * hi as f32;
            if score > 0.0 {
                out.push(Scored { text: s, hit: hi, pos, score });
            }
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.hit.cmp(&b.hit)).then(a.pos.cmp(&b.pos)));
    out
}

impl Extractive {
    /// The leading `considered` hits with those that do not clear the bar
    /// zeroed (coverage 0), or `None` when none clears it (nothing is quoted).
    pub fn eligible(&self, search: &SearchResult, hits: &[Hit]) -> Option<Vec<Hit>> {
        let n_concepts = search.concepts.len();
        let answers = |h: &Hit| self.answers(h, n_concepts);
        if !hits.iter().take(self.considered).any(answers) {
            return None;
        }
        // Only passages that themselves clear the bar are quoted.
        Some(hits.iter().take(self.considered).map(|h| if answers(h) { h.clone() } else { Hit { coverage: 0.0, ..h.clone() } }).collect())
    }

    /// The concept-score selection (before the learned scorer): the best
    /// sentence, then up to `max_sentences` within `follow_ratio` of it, from
    /// at most `max_passages` passages and `max_words` words, best first.
    pub fn by_concepts<'a>(&self, search: &SearchResult, eligible: &'a [Hit]) -> Vec<Scored<'a>> {
        self.pick(&by_score(&select::candidates(Analyzer::shared(), search, eligible)))
    }

    /// [`Extractive::by_concepts`] over the sentences already scored.
    fn pick<'a>(&self, scored: &[Scored<'a>]) -> Vec<Scored<'a>> {
        let Some(first) = scored.first() else { return Vec::new() };
        let mut chosen: Vec<Scored> = vec![first.clone()];
        let mut words = first.text.split_whitespace().count();
        let floor = self.follow_ratio * first.score;
        self.fill(&mut chosen, &mut words, scored[1..].iter().take_while(|s| s.score >= floor));
        chosen
    }

    /// Appends `more` (best first) to `chosen` while the answer stays within
    /// `max_sentences`, `max_passages` and `max_words`, skipping repeats.
    fn fill<'a, 'b>(&self, chosen: &mut Vec<Scored<'a>>, words: &mut usize, more: impl Iterator<Item = &'b Scored<'a>>)
    where
        'a: 'b,
    {
        for s in more {
            if chosen.len() >= self.max_sentences {
                break;
            }
            let passages: std::collections::HashSet<usize> = chosen.iter().map(|c| c.hit).chain([s.hit]).collect();
            let w = s.text.split_whitespace().count();
            if passages.len() > self.max_passages || *words + w > self.max_words || chosen.iter().any(|c| c.text == s.text) {
                continue;
            }
            *words += w;
            chosen.push(s.clone());
        }
    }

    /// The learned scorer's pick among the candidates, then the concept
    /// selection's sentences (best first) as long as they fit the same
    /// limits. `None` when the scorer has no candidate.
    fn with_learned_first<'a>(&self, question: &str, cands: &[select::Candidate<'a>], by_concepts: &[Scored<'a>]) -> Option<Vec<Scored<'a>>> {
        let head = select::shipped()?;
        let best = match &self.cross {
            Some(ce) => self.cross_best(ce, question, cands, &head.scores(question, cands)).or_else(|| head.best(question, cands))?,
            None => head.best(question, cands)?,
        };
        let c = &cands[best];
        let first = Scored { text: c.text, hit: c.hit, pos: c.pos, score: f32::INFINITY };
        let mut words = first.text.split_whitespace().count();
        let mut chosen = vec![first];
        self.fill(&mut chosen, &mut words, by_concepts.iter());
        Some(chosen)
    }
}

impl Extractive {
    /// The cross-encoder's pick: the cheap head's best `top_k` candidates
    /// (stable order) rescored as `cheap + lambda · cross`, the first on a
    /// tie; the cheap pick when it leads the runner-up by the head's margin.
    /// `None` (logged) if scoring fails, and the cheap head's pick stands.
    pub(crate) fn cross_best(&self, ce: &cross::CrossEncoder, question: &str, cands: &[select::Candidate], cheap: &[f64]) -> Option<usize> {
        let mut order: Vec<usize> = (0..cheap.len().min(cands.len())).collect();
        order.sort_by(|&a, &b| cheap[b].total_cmp(&cheap[a]).then(a.cmp(&b)));
        order.truncate(ce.head().top_k);
        if order.len() < 2 || cheap[order[0]] - cheap[order[1]] >= ce.head().margin {
            return order.first().copied();
        }
        let texts: Vec<String> = order.iter().map(|&i| cross::CrossEncoder::pair_text(cands[i].title, cands[i].text)).collect();
        let z = match ce.scores(question, &texts) {
            Ok(z) => z,
            Err(e) => {
                tracing::warn!(error = %e, "cross-encoder scoring failed; the cheap head's pick leads");
                return None;
            }
        };
        let lambda = ce.head().lambda;
        order.iter().zip(&z).map(|(&i, &z)| (i, cheap[i] + lambda * f64::from(z))).fold(None, |best: Option<(usize, f64)>, (i, v)| match best {
            Some((b, bv)) if bv >= v => Some((b, bv)),
            _ => Some((i, v)),
        }).map(|(i, _)| i)
    }
}

/// The candidates with a positive concept score, best first, as
/// [`score_sentences`] ranks them (earlier passages win ties).
fn by_score<'a>(cands: &[select::Candidate<'a>]) -> Vec<Scored<'a>> {
    let mut out: Vec<Scored> = cands
        .iter()
        .map(|c| Scored { text: c.text, hit: c.hit, pos: c.pos, score: c.concept as f32 - 0.02 * c.hit as f32 })
        .filter(|s| s.score > 0.0)
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.hit.cmp(&b.hit)).then(a.pos.cmp(&b.pos)));
    out
}

/// Puts the chosen sentences in reading order: the best passage first,
/// sentences in label order; with `keep_first`, the first stays first (the
/// learned scorer's pick leads the answer).
fn reading_order(mut chosen: Vec<Scored<'_>>, keep_first: bool) -> Vec<Scored<'_>> {
    let lead = if keep_first && !chosen.is_empty() { Some(chosen.remove(0)) } else { None };
    let order: Vec<usize> = lead.iter().chain(chosen.iter()).map(|c| c.hit).fold(Vec::new(), |mut v, h| {
        if !v.contains(&h) {
            v.push(h)
        }
        v
    });
    chosen.sort_by_key(|c| (order.iter().position(|h| *h == c.hit), c.pos));
    lead.into_iter().chain(chosen).collect()
}

impl Generator for Extractive {
    fn draft(&self, question: &str, search: &SearchResult, hits: &[Hit]) -> Draft {
        let empty = Draft { sentences: Vec::new(), mode: Mode::Extractive };
        let Some(eligible) = self.eligible(search, hits) else { return empty };
        // One pass of the analyser over the sentences serves both selections.
        let cands = select::candidates(Analyzer::shared(), search, &eligible);
        let by_concepts = self.pick(&by_score(&cands));
        // No sentence holds any of the question's concepts: nothing is
        // quoted, whatever the learned scorer would pick (it ranks, it does
        // not decide whether to answer).
        if by_concepts.is_empty() {
            return empty;
        }
        let learned = if self.learned_first { self.with_learned_first(question, &cands, &by_concepts) } else { None };
        let chosen = match learned {
            Some(chosen) => reading_order(chosen, true),
            None => reading_order(by_concepts, false),
        };
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

    /// A passage of the test product `testra`.
    fn passage(ordinal: u32, section: &str, title: &str, text: &str) -> crate::corpus::Passage {
        use crate::corpus::{Audience, Kind, Passage, Status};
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        Passage {
            doc_id: "testra-pi".into(),
            section: section.into(),
            title: title.into(),
            parent: String::new(),
            product: "testra".into(),
            kind: Kind::Pi,
            audience: Audience::Promotional,
            mlr_number: "T-1".into(),
            approved_on: d("2020-01-01"),
            expires_on: d("2099-01-01"),
            status: Status::Approved,
            ordinal,
            text: text.into(),
            page: None,
        }
    }

    fn index(dir: &std::path::Path) -> crate::index::Index {
        let ps = [
            passage(0, "2.1", "Recommended Dosage", "Take TESTRA with food. The recommended dosage of TESTRA is 100 mg orally once daily. Do not exceed 200 mg of TESTRA per day. Swallow TESTRA tablets whole."),
            passage(1, "2.3", "Dosage in Renal Impairment", "Reduce the TESTRA dosage to 50 mg once daily in patients with eGFR below 30 mL/min. No TESTRA dosage change is needed for mild renal impairment."),
            passage(2, "5.2", "Hepatotoxicity", "TESTRA can cause serious liver injury. Monitor liver enzymes before starting TESTRA and every 4 weeks. Stop TESTRA if ALT rises above 5 times the upper limit."),
        ];
        crate::index::Index::build(dir, &ps, |_| {}).expect("index builds");
        crate::index::Index::open(dir).expect("index opens")
    }

    /// The learned scorer's pick leads the answer and the concept selection
    /// follows it; without the scorer the answer is the concept selection;
    /// either way only verbatim sentences of the eligible passages are quoted,
    /// within the sentence, passage and word limits, and a question nothing
    /// answers still gets nothing.
    #[test]
    fn the_learned_pick_leads_and_the_concept_selection_follows() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let index = index(tmp.path());
        let as_of = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
        let filter = crate::index::Filter::for_role("rep", Some("testra"), as_of);
        let head = select::shipped().expect("the shipped head loads");
        let learned = Extractive::default();
        let concepts_only = Extractive { learned_first: false, ..Extractive::default() };
        for q in ["max daily dose of testra?", "testra dose 30 egfr", "testra liver enzymes how often", "stop testra if ALT high?", "take testra with food?"] {
            let search = index.search(q, &filter, 20).expect("search");
            let eligible = learned.eligible(&search, &search.hits).expect("answerable");
            let cands = select::candidates(Analyzer::shared(), &search, &eligible);
            let pick = cands[head.best(q, &cands).expect("a candidate")].text;
            let with = learned.draft(q, &search, &search.hits);
            let without = concepts_only.draft(q, &search, &search.hits);
            assert_eq!(with.sentences[0].text, pick, "{q}");
            let expected: Vec<&str> = reading_order(learned.by_concepts(&search, &eligible), false).iter().map(|s| s.text).collect();
            let got: Vec<&str> = without.sentences.iter().map(|s| s.text.as_str()).collect();
            assert_eq!(got, expected, "{q}");
            for d in [&with, &without] {
                assert!(!d.sentences.is_empty() && d.sentences.len() <= learned.max_sentences, "{q}");
                assert!(d.sentences.iter().map(|s| s.text.split_whitespace().count()).sum::<usize>() <= learned.max_words, "{q}");
                let passages: std::collections::HashSet<usize> = d.sentences.iter().map(|s| s.passage).collect();
                assert!(passages.len() <= learned.max_passages, "{q}");
                for s in &d.sentences {
                    assert!(search.hits[s.passage].passage.text.contains(&s.text), "{q}: {} is not verbatim", s.text);
                }
            }
        }
        let search = index.search("what colour is the sky", &filter, 20).expect("search");
        assert!(learned.draft("what colour is the sky", &search, &search.hits).sentences.is_empty());
    }

    /// With the cross-encoder attached, the answer leads with one of the
    /// sentence head's best `top_k` candidates — its own pick when the head
    /// is confident (margin), else the best `cheap + lambda · cross` — and
    /// the limits and verbatim quoting hold as without it. Needs models/minilm.
    #[test]
    fn the_cross_encoder_picks_among_the_heads_best() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/minilm");
        if !dir.join("model.safetensors").is_file() {
            eprintln!("skipped: no models/minilm");
            return;
        }
        let ce = std::sync::Arc::new(cross::CrossEncoder::load(&dir).expect("the cross-encoder loads"));
        let tmp = tempfile::tempdir().expect("temp dir");
        let index = index(tmp.path());
        let as_of = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
        let filter = crate::index::Filter::for_role("rep", Some("testra"), as_of);
        let head = select::shipped().expect("the shipped head loads");
        let with = Extractive { cross: Some(ce.clone()), ..Extractive::default() };
        for q in ["max daily dose of testra?", "testra dose 30 egfr", "testra liver enzymes how often", "stop testra if ALT high?", "take testra with food?"] {
            let search = index.search(q, &filter, 20).expect("search");
            let eligible = with.eligible(&search, &search.hits).expect("answerable");
            let cands = select::candidates(Analyzer::shared(), &search, &eligible);
            let cheap = head.scores(q, &cands);
            let mut order: Vec<usize> = (0..cands.len()).collect();
            order.sort_by(|&a, &b| cheap[b].total_cmp(&cheap[a]).then(a.cmp(&b)));
            let top: Vec<&str> = order.iter().take(ce.head().top_k).map(|&i| cands[i].text).collect();
            let d = with.draft(q, &search, &search.hits);
            assert!(top.contains(&d.sentences[0].text.as_str()), "{q}: {} is not among {top:?}", d.sentences[0].text);
            let expected = with.cross_best(&ce, q, &cands, &cheap).expect("a pick");
            assert_eq!(d.sentences[0].text, cands[expected].text, "{q}");
            if order.len() > 1 && cheap[order[0]] - cheap[order[1]] >= ce.head().margin {
                assert_eq!(expected, order[0], "{q}: a confident head's pick stands");
            }
            for s in &d.sentences {
                assert!(search.hits[s.passage].passage.text.contains(&s.text), "{q}");
            }
            assert!(d.sentences.len() <= with.max_sentences);
        }
    }
}
