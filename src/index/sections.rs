//! [`SectionIntents`]: what a question asks for, as standard PI sections.
//!
//! A rep asks "who shouldn't get this at all?"; the answer is section 4,
//! CONTRAINDICATIONS, though none of the question's words is in it. The
//! intents in `lexicon/sections.toml` map the ways a question asks for a kind
//! of section (contraindications, dosage, warnings, adverse reactions, the
//! specific populations, overdosage, storage…) to that kind's standard
//! headings (21 CFR 201.57, the same in old non-PLR labels, whose SPL
//! sections carry the LOINC codes listed beside each kind). Retrieval adds
//! each matched kind's headings as one more concept of the question, so that
//! passages under those headings are found (headings and parent headings are
//! in the indexed title field) and count as covering what was asked.

use regex::Regex;
use serde::Deserialize;

use super::analysis::{Analyzer, Concept};

/// The built-in intents (the lexicon file compiled in).
pub const SECTIONS: &str = include_str!("../../lexicon/sections.toml");

/// Prefix of an intent concept's surface: it is not the question's own word.
pub const INTENT_PREFIX: char = '§';

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[allow(dead_code)]
    name: String,
    #[allow(dead_code)]
    version: u32,
    kind: Vec<KindDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindDef {
    id: String,
    /// LOINC section code (documentation: what the headings correspond to in SPL).
    #[allow(dead_code)]
    loinc: String,
    headings: Vec<String>,
    asks: Vec<String>,
}

/// One kind of section and how questions ask for it.
#[derive(Debug)]
struct Kind {
    id: String,
    headings: Vec<String>,
    asks: Regex,
}

/// The compiled intents.
#[derive(Debug)]
pub struct SectionIntents {
    kinds: Vec<Kind>,
}

/// What is wrong with a sections file.
#[derive(Debug, thiserror::Error)]
#[error("lexicon/sections.toml: {0}")]
pub struct Error(String);

impl SectionIntents {
    /// Parses a sections file.
    pub fn parse(src: &str) -> Result<SectionIntents, Error> {
        let f: File = toml::from_str(src).map_err(|e| Error(e.to_string()))?;
        let mut kinds = Vec::new();
        for k in f.kind {
            if k.headings.is_empty() || k.asks.is_empty() {
                return Err(Error(format!("kind {} needs headings and asks", k.id)));
            }
            let alt = k.asks.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|");
            let asks = Regex::new(&alt).map_err(|e| Error(format!("kind {}: {e}", k.id)))?;
            kinds.push(Kind { id: k.id, headings: k.headings, asks });
        }
        Ok(SectionIntents { kinds })
    }

    /// The built-in intents, compiled once.
    pub fn shared() -> &'static SectionIntents {
        static S: std::sync::OnceLock<SectionIntents> = std::sync::OnceLock::new();
        S.get_or_init(|| SectionIntents::parse(SECTIONS).unwrap_or_else(|e| {
            // The file is compiled in and tested; a broken edit must not take retrieval down.
            tracing::error!(error = %e, "section intents disabled");
            SectionIntents { kinds: Vec::new() }
        }))
    }

    /// The kinds a question asks for (ids, in file order).
    pub fn kinds(&self, question: &str) -> Vec<&str> {
        let q = fold(question);
        self.kinds.iter().filter(|k| k.asks.is_match(&q)).map(|k| k.id.as_str()).collect()
    }

    /// One concept per kind the question asks for: its headings as the
    /// alternatives, its surface `§kind`.
    pub fn concepts(&self, question: &str, analyzer: &Analyzer) -> Vec<Concept> {
        let q = fold(question);
        self.kinds
            .iter()
            .filter(|k| k.asks.is_match(&q))
            .map(|k| Concept {
                surface: format!("{INTENT_PREFIX}{}", k.id),
                alternatives: k.headings.iter().map(|h| analyzer.tokens(h)).filter(|t| !t.is_empty()).collect(),
            })
            .collect()
    }
}

impl Concept {
    /// The section kind this concept asks for (`contraindications`), if it is
    /// a section intent added by [`SectionIntents::concepts`] rather than the
    /// question's own words: such a concept is about where a passage sits
    /// (its heading or parent heading), not about words in its text. The
    /// `§` prefix that marks it is internal to the index.
    pub fn section_intent(&self) -> Option<&str> {
        self.surface.strip_prefix(INTENT_PREFIX)
    }
}

/// Lower-case with the common accents folded and typographic apostrophes made ASCII.
fn fold(s: &str) -> String {
    s.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_map_to_sections() {
        let s = SectionIntents::parse(SECTIONS).expect("compiles");
        assert!(s.kinds("Who shouldn't get this at all?").contains(&"contraindications"));
        assert!(s.kinds("what infusion reactions should nurses watch for?").contains(&"warnings"));
        assert!(s.kinds("how many cycles does the label call for?").contains(&"dosage"));
        assert!(s.kinds("can it go in the fridge after opening").contains(&"storage"));
        assert!(s.kinds("ok for nursing moms?").contains(&"lactation"));
        assert!(s.kinds("Thanks for the coffee").is_empty());
    }

    #[test]
    fn intent_concepts_say_which_section_they_ask_for() {
        let s = SectionIntents::parse(SECTIONS).expect("compiles");
        let a = Analyzer::default();
        let c = s.concepts("Who shouldn't get this at all?", &a);
        assert!(c.iter().any(|c| c.section_intent() == Some("contraindications")));
        let own = Concept { surface: "contraindications".into(), alternatives: Vec::new() };
        assert_eq!(own.section_intent(), None);
    }
}
