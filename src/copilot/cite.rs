//! Citation numbering: markers `[n]` numbered in order of first use, one
//! implementation ([`Numbering`]) for the final answer ([`cite`]), the
//! streamed sentences, the parts of a per-product answer and the references
//! of email drafts and visit summaries.

use crate::corpus::Passage;
use crate::index::Hit;
use crate::llm::{Draft, Sentence};

use super::{Answer, Citation, Route, Timings};

/// Markers numbered in order of first use of their key: a passage index
/// (answers and streamed sentences, so that a streamed sentence carries the
/// marker the final answer has), a product and passage (per-product parts),
/// or a document section (email references).
#[derive(Debug)]
pub(crate) struct Numbering<K = usize> {
    /// Keys in order of first use: key `used[i]` has marker `i + 1`.
    used: Vec<K>,
}

impl<K> Default for Numbering<K> {
    fn default() -> Self {
        Numbering { used: Vec::new() }
    }
}

impl<K: PartialEq> Numbering<K> {
    /// The marker of `key`, and whether this is its first use.
    pub(crate) fn number(&mut self, key: K) -> (usize, bool) {
        match self.used.iter().position(|u| *u == key) {
            Some(i) => (i + 1, false),
            None => {
                self.used.push(key);
                (self.used.len(), true)
            }
        }
    }

    /// The keys in marker order.
    pub(crate) fn keys(&self) -> &[K] {
        &self.used
    }
}

impl Numbering<usize> {
    /// `text [n]`, `n` numbered by the sentence's passage.
    pub(crate) fn mark(&mut self, s: &Sentence) -> String {
        let (n, _) = self.number(s.passage);
        format!("{} [{n}]", s.text)
    }
}

/// Numbers the passages in order of first use and writes `text [n]` sentences.
pub fn cite(draft: &Draft, hits: &[Hit], timings: Timings) -> Answer {
    let mut marks = Numbering::default();
    let parts: Vec<String> = draft.sentences.iter().map(|s| marks.mark(s)).collect();
    let citations = marks
        .keys()
        .iter()
        .enumerate()
        .map(|(i, &pi)| citation(i + 1, &hits[pi].passage))
        .collect();
    Answer {
        route: Route::Answer,
        answer: parts.join(" "),
        mode: draft.mode,
        citations,
        flags: Vec::new(),
        case_id: None,
        prompt_version: None,
        model: None,
        audit_id: None,
        guard_rules: None,
        timings_ms: timings,
        prompt_sha256: None,
        generated_tokens: None,
        retrieved: Vec::new(),
        product: None,
        note: None,
        parts: Vec::new(),
        fallback: None,
        quote: None,
    }
}

/// The citation `[n]` of a passage.
pub(crate) fn citation(n: usize, p: &Passage) -> Citation {
    Citation {
        n,
        doc_id: p.doc_id.clone(),
        section: p.section.clone(),
        title: p.title.clone(),
        mlr_number: p.mlr_number.clone(),
        quote: p.text.clone(),
        page: p.page,
        source_url: super::source_url(&p.doc_id, p.ordinal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_follow_first_use_and_repeat_for_the_same_key() {
        let mut m = Numbering::default();
        assert_eq!(m.number(7), (1, true));
        assert_eq!(m.number(3), (2, true));
        assert_eq!(m.number(7), (1, false));
        assert_eq!(m.keys(), [7, 3]);
        assert_eq!(m.mark(&Sentence { text: "Take it.".into(), passage: 3 }), "Take it. [2]");
    }

    #[test]
    fn source_urls_encode_the_document_id() {
        assert_eq!(super::super::source_url("veklury-pi", 12), "/#/source/veklury-pi?passage=12");
        assert_eq!(super::super::source_url("a b/é?x", 0), "/#/source/a%20b%2F%C3%A9%3Fx?passage=0");
    }
}
