//! [`Elements`]: individual case safety reports recognised by their ICH E2D
//! minimum elements rather than by a list of adverse-reaction terms.
//!
//! A report tells of an identifiable **person** to whom an **event** happened
//! (**realis**: it happened, it is not a hypothetical, a plan or a question
//! about what the label says); the reporter and the product come from the call
//! itself. Each element is a class of patterns in `rules/report-elements.toml`
//! (person references, lay and clinical event words in six languages, time
//! anchors and narrative verbs, irrealis blockers); the AE lexicon's mentions
//! count as events too, so the lexicon is one signal among several.
//!
//! The test, per sentence `i` (with sentence `i - 1` as context, so that
//! "62F on it three weeks. Now her eyes are yellow." is one report):
//!
//! * an event in sentence `i`, outside a blocked clause;
//! * a person in sentence `i - 1` or `i`;
//! * a realis marker in sentence `i - 1` or `i`, outside a blocked clause.
//!
//! The looser test of [`Elements::unanswered`] decides where a question no
//! approved passage answers goes: a person and an event or a realis marker →
//! Pharmacovigilance; anything else → Medical Information.
//!
//! Every finding carries the rule id of the element that decided it and the
//! evidence span, so each decision is explainable.

use std::path::Path;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;

use super::{Error, Result};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ElementsFile {
    name: String,
    version: u32,
    language: LanguageDef,
    element: Vec<ElementDef>,
}

/// Which languages the guard reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageDef {
    /// ISO 639-3 codes (as whatlang names them) whose reports are read.
    pub supported: Vec<String>,
    /// Sentences with fewer words are not language-checked on their own.
    pub min_sentence_words: usize,
    /// An unsure detection counts when whatlang prefers the language to English by this much.
    pub pair_confidence: f64,
    /// … and the text has at least this many words …
    pub unsure_min_words: usize,
    /// … none of which is one of these English function words.
    pub english_markers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ElementDef {
    id: String,
    element: String,
    #[serde(default)]
    situation: Option<String>,
    patterns: Vec<String>,
}

/// The four element classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A specific, identifiable person.
    Person,
    /// Something clinical happened to them.
    Event,
    /// It happened: a time anchor or a narrative verb.
    Realis,
    /// Not a report: a hypothetical, a general or label question, a plan.
    Blocker,
    /// A subject talked about ("knows about", "asked about"): a blocker
    /// unless a person follows it.
    Topic,
    /// Someone asking or saying something ("pt asked"): not on its own a
    /// sign that something happened to them.
    Speech,
}

#[derive(Debug)]
struct Element {
    id: String,
    class: Class,
    /// For events: `adverse_event` or the special situation it is.
    situation: Option<String>,
    re: Regex,
}

/// A span found in normalised text, with the element that found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Rule id of the element.
    pub id: String,
    /// Class.
    pub class: Class,
    /// For events: `adverse_event` or a special situation.
    pub situation: Option<String>,
    /// Byte span in the normalised text.
    pub span: (usize, usize),
}

/// The rule id the unanswered test gives an event read from a narrative
/// alone (no event word of its own).
pub const NARRATIVE_EVENT: &str = "E2D-EVENT-NARRATIVE";

/// A report recognised by its elements.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementReport {
    /// The event (its rule id and situation decide the flag).
    pub event: Found,
    /// The person it happened to.
    pub person: Found,
    /// What says it happened; none in the unanswered test when the event alone decided.
    pub realis: Option<Found>,
}

/// The compiled report-element rules.
#[derive(Debug)]
pub struct Elements {
    /// `report-elements@N sha256:…`.
    pub version: String,
    /// Language settings.
    pub language: LanguageDef,
    elements: Vec<Element>,
    set: RegexSet,
}

/// Lazy-DFA cache of the element set (the alternations are large).
const SET_DFA_BYTES: usize = 32 << 20;

/// Compiled-program limit: the event classes are long alternations of word
/// stems in six languages, over the regex crate's 10 MiB default.
const REGEX_BYTES: usize = 64 << 20;

impl Elements {
    /// Parses and compiles `rules/report-elements.toml`; errors name the file and line.
    pub fn parse(src: &str, path: &Path) -> Result<Elements> {
        let err_at = |line: usize, message: String| Error::Parse { path: path.to_owned(), line, message };
        let file: ElementsFile = toml::from_str(src).map_err(|e| {
            let line = e.span().map(|s| src[..s.start.min(src.len())].lines().count().max(1)).unwrap_or(1);
            err_at(line, e.message().to_string())
        })?;
        let line_of = |needle: &str| src.find(needle).map(|p| src[..p].lines().count() + 1).unwrap_or(1);
        let mut elements = Vec::new();
        for d in file.element {
            let line = line_of(&format!("id = \"{}\"", d.id));
            let class = match d.element.as_str() {
                "person" => Class::Person,
                "event" => Class::Event,
                "realis" => Class::Realis,
                "blocker" => Class::Blocker,
                "topic" => Class::Topic,
                "speech" => Class::Speech,
                other => return Err(err_at(line, format!("element {other:?} of {} is not person, event, realis, blocker, topic or speech", d.id))),
            };
            if class == Class::Event && d.situation.is_none() {
                return Err(err_at(line, format!("event element {} needs a situation (adverse_event, overdose, …)", d.id)));
            }
            if d.patterns.is_empty() {
                return Err(err_at(line, format!("element {} has no patterns", d.id)));
            }
            for p in &d.patterns {
                Regex::new(p).map_err(|e| err_at(line_of(p), format!("bad regex in {}: {e}", d.id)))?;
            }
            let alt = d.patterns.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|");
            let re = RegexBuilder::new(&alt)
                .size_limit(REGEX_BYTES)
                .dfa_size_limit(SET_DFA_BYTES)
                .build()
                .map_err(|e| err_at(line, format!("{}: {e}", d.id)))?;
            elements.push(Element { id: d.id, class, situation: d.situation, re });
        }
        for class in [Class::Person, Class::Event, Class::Realis] {
            if !elements.iter().any(|e| e.class == class) {
                return Err(err_at(1, format!("the file has no {class:?} element: every report element needs at least one")));
            }
        }
        let set = RegexSetBuilder::new(elements.iter().map(|e| e.re.as_str()))
            .size_limit(REGEX_BYTES)
            .dfa_size_limit(SET_DFA_BYTES)
            .build()
            .map_err(|e| err_at(1, e.to_string()))?;
        let digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(src.as_bytes()))
        };
        Ok(Elements { version: format!("{}@{} sha256:{digest}", file.name, file.version), language: file.language, elements, set })
    }

    /// Every element span in `text[a..b]` (normalised text), as absolute offsets.
    pub fn find(&self, text: &str, (a, b): (usize, usize)) -> Vec<Found> {
        let s = &text[a..b];
        let mut out = Vec::new();
        for i in self.set.matches(s).iter() {
            let e = &self.elements[i];
            for m in e.re.find_iter(s) {
                if m.start() == m.end() {
                    continue;
                }
                out.push(Found { id: e.id.clone(), class: e.class, situation: e.situation.clone(), span: (a + m.start(), a + m.end()) });
            }
        }
        out.sort_by_key(|f| f.span.0);
        // A topic blocks like a blocker, unless a person follows it closely.
        let persons: Vec<(usize, usize)> = out.iter().filter(|f| f.class == Class::Person).map(|f| f.span).collect();
        for f in out.iter_mut().filter(|f| f.class == Class::Topic) {
            let followed = persons.iter().any(|p| p.0 >= f.span.1 && p.0 <= f.span.1 + 30);
            if !followed {
                f.class = Class::Blocker;
            }
        }
        out.retain(|f| f.class != Class::Topic);
        // A blocker inside a person reference ("one of the clinic pts on it")
        // is part of naming that person, not a generalisation.
        let persons: Vec<(usize, usize)> = out.iter().filter(|f| f.class == Class::Person).map(|f| f.span).collect();
        out.retain(|f| f.class != Class::Blocker || !persons.iter().any(|p| p.0 <= f.span.0 && f.span.0 < p.1));
        out
    }

    /// The E2D test on normalised text. `mentions` are the AE lexicon's
    /// mention spans (events too); `blocked` tells whether a span's clause is
    /// blocked by the guard-rules cues (hypothetical, negation, label question).
    pub fn report(&self, text: &str, mentions: &[(usize, usize, String)], blocked: &dyn Fn((usize, usize)) -> bool) -> Option<ElementReport> {
        let sents = super::text::sentences(text);
        let per: Vec<Vec<Found>> = sents.iter().map(|&s| self.find(text, s)).collect();
        for (i, &sent) in sents.iter().enumerate() {
            let clauses = scope_clauses(text, sent);
            let is_blocked = |span: (usize, usize)| {
                let c = clause_of(&clauses, sent, span.0);
                blocked(span) || per[i].iter().any(|f| f.class == Class::Blocker && f.span.0 < c.1 && c.0 < f.span.1)
            };
            let mut events: Vec<Found> = per[i].iter().filter(|f| f.class == Class::Event).cloned().collect();
            events.extend(term_events(mentions).filter(|f| f.span.0 >= sent.0 && f.span.1 <= sent.1));
            events.sort_by_key(|f| f.span.0);
            let Some(event) = events.into_iter().find(|e| !is_blocked(e.span)) else { continue };
            let window: Vec<&Found> = per[i.saturating_sub(1)..=i].iter().flatten().collect();
            // What says it happened must be more than the event's own words
            // ("can't swallow" alone is a state, not a narrative; "she's been
            // pumping" and "pt snapped" add a subject).
            let realis = window
                .iter()
                .filter(|f| f.class == Class::Realis && !(event.span.0 <= f.span.0 && f.span.1 <= event.span.1))
                .find(|f| f.span.0 < sent.0 || !is_blocked(f.span))
                .map(|f| (*f).clone());
            let person = window.iter().find(|f| f.class == Class::Person).map(|f| (*f).clone());
            // A medication, storage or handling error, an overdose or an
            // accidental exposure is reportable before anyone is named.
            let impersonal = matches!(event.situation.as_deref(), Some("medication_error" | "overdose" | "accidental_exposure"));
            let person = person.or_else(|| impersonal.then(|| event.clone()));
            if let (Some(person), Some(realis)) = (person, realis) {
                return Some(ElementReport { event, person, realis: Some(realis) });
            }
        }
        None
    }

    /// Whether the clause holding `pos` in normalised text has a report
    /// blocker of this file (a hypothetical, a general or label question, a
    /// message for an HCP, a drafting request).
    pub fn blocked_at(&self, text: &str, pos: usize) -> bool {
        let Some(sent) = super::text::sentences(text).into_iter().find(|s| s.0 <= pos && pos < s.1.max(s.0 + 1)) else { return false };
        let c = clause_of(&scope_clauses(text, sent), sent, pos);
        self.find(text, sent).iter().any(|b| b.class == Class::Blocker && b.span.0 < c.1 && c.0 < b.span.1)
    }

    /// Where a question that no approved passage answers goes: `Some` (a
    /// report: a person and an unblocked event or realis marker anywhere)
    /// means Pharmacovigilance, `None` Medical Information.
    pub fn unanswered(&self, text: &str, mentions: &[(usize, usize, String)], blocked: &dyn Fn((usize, usize)) -> bool) -> Option<ElementReport> {
        if let Some(r) = self.report(text, mentions, blocked) {
            return Some(r);
        }
        let all = self.find(text, (0, text.len()));
        let sents = super::text::sentences(text);
        let unblocked = |f: &Found| !blocked(f.span) && !clause_blocked(text, &sents, &all, f.span.0);
        let person = all.iter().find(|f| f.class == Class::Person)?.clone();
        // Someone named by more than a pronoun ("he" may be the HCP).
        let named = all.iter().find(|f| f.class == Class::Person && f.id != "E2D-PERSON-PRONOUN").cloned();
        if let Some(event) = all.iter().filter(|f| f.class == Class::Event).cloned().chain(term_events(mentions)).find(|f| unblocked(f)) {
            return Some(ElementReport { event, person, realis: None });
        }
        // No event word we know: the realis span stands as the event's evidence.
        let speech: Vec<(usize, usize)> = all.iter().filter(|f| f.class == Class::Speech).map(|f| f.span).collect();
        let spoken = |f: &Found| speech.iter().any(|s| s.0 < f.span.1 && f.span.0 < s.1);
        // A narrative about a person named by more than a pronoun, or an
        // ongoing state of a pronoun's person ("she keeps falling asleep",
        // "she can't feel the floor"): a report told in words nobody listed.
        let narrative = |ongoing_only: bool| {
            all.iter().find(|f| f.class == Class::Realis && unblocked(f) && !spoken(f) && (!ongoing_only || f.id == "E2D-REALIS-ONGOING")).cloned()
        };
        let found = match named {
            Some(p) => narrative(false).map(|r| (p, r)),
            None => narrative(true).map(|r| (person.clone(), r)),
        };
        if let Some((person, r)) = found {
            let event = Found { id: NARRATIVE_EVENT.into(), class: Class::Event, situation: Some("adverse_event".into()), span: r.span };
            return Some(ElementReport { event, person, realis: Some(r) });
        }
        None
    }

    /// The first event element or AE-lexicon term anywhere in `text`,
    /// blocked or not (a report told beside a question names its event
    /// inside the question: [`crate::guard::Guard`]'s told-beside test).
    pub fn any_event_in(&self, text: &str, mentions: &[(usize, usize, String)]) -> Option<Found> {
        let mut events: Vec<Found> = self.find(text, (0, text.len())).into_iter().filter(|f| f.class == Class::Event).chain(term_events(mentions)).collect();
        events.sort_by_key(|f| f.span.0);
        events.into_iter().next()
    }

    /// For text in a supported language other than English, which the AE
    /// lexicon and the English cues do not read: any unblocked person,
    /// event or realis element is enough for Pharmacovigilance (the text
    /// reaches a person either way; when in doubt, a report wins).
    pub fn foreign_report(&self, text: &str) -> Option<Found> {
        let all = self.find(text, (0, text.len()));
        let sents = super::text::sentences(text);
        let pick = |class: Class| all.iter().find(|f| f.class == class && !clause_blocked(text, &sents, &all, f.span.0)).cloned();
        pick(Class::Event).or_else(|| pick(Class::Realis)).or_else(|| pick(Class::Person))
    }

    /// The event elements of text in any language (for text the guard cannot
    /// read with the English rules), outside blocked clauses.
    pub fn any_event(&self, text: &str) -> Option<Found> {
        let all = self.find(text, (0, text.len()));
        let sents = super::text::sentences(text);
        all.iter().find(|f| f.class == Class::Event && !clause_blocked(text, &sents, &all, f.span.0)).cloned()
    }
}

/// The AE lexicon's mentions `(start, end, preferred)` as event elements.
fn term_events(mentions: &[(usize, usize, String)]) -> impl Iterator<Item = Found> + '_ {
    mentions.iter().map(|m| Found { id: "E2D-EVENT-TERM".into(), class: Class::Event, situation: Some("adverse_event".into()), span: (m.0, m.1) })
}

/// Whether the clause holding `pos` (in its sentence of `sents`) has one of
/// the blockers among `found`.
fn clause_blocked(text: &str, sents: &[(usize, usize)], found: &[Found], pos: usize) -> bool {
    let sent = *sents.iter().find(|s| s.0 <= pos && pos < s.1.max(s.0 + 1)).unwrap_or(&(0, text.len()));
    let c = clause_of(&scope_clauses(text, sent), sent, pos);
    found.iter().any(|b| b.class == Class::Blocker && b.span.0 < c.1 && c.0 < b.span.1)
}

/// Clauses for blocker scope: a sentence split at commas, colons, dashes set
/// off by spaces, and the conjunctions that start a new statement ("but",
/// "and then", "so", "because"), in the six languages.
pub fn scope_clauses(text: &str, (a, b): (usize, usize)) -> Vec<(usize, usize)> {
    let s = &text[a..b];
    let mut seps: Vec<(usize, usize)> = Vec::new();
    for sep in [", ", ": ", " - ", " but ", " and then ", " so ", " because ", " though ", " pero ", " mais ", " ma ", " mas ", " aber "] {
        seps.extend(s.match_indices(sep).map(|(i, m)| (i, i + m.len())));
    }
    seps.sort_unstable();
    // Overlapping separators (", but ") are one cut.
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (x, y) in seps {
        match merged.last_mut() {
            Some(last) if x <= last.1 => last.1 = last.1.max(y),
            _ => merged.push((x, y)),
        }
    }
    let mut out = Vec::new();
    let mut start = 0;
    for (x, y) in merged.into_iter().chain(std::iter::once((s.len(), s.len()))) {
        if s[start..x].chars().any(char::is_alphanumeric) {
            out.push((a + start, a + x));
        }
        start = y;
    }
    out
}

fn clause_of(clauses: &[(usize, usize)], sent: (usize, usize), pos: usize) -> (usize, usize) {
    *clauses.iter().find(|c| c.0 <= pos && pos < c.1).unwrap_or(&sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements() -> Elements {
        Elements::parse(include_str!("../../rules/report-elements.toml"), Path::new("rules/report-elements.toml")).expect("compiles")
    }

    fn report(t: &str) -> bool {
        let n = super::super::text::Norm::new(t);
        elements().report(&n.text, &[], &|_| false).is_some()
    }

    #[test]
    fn lay_stories_without_terms_are_reports() {
        for t in [
            "his skin is coming away in patches since the second cycle",
            "the little one swallowed a strip of them on Sunday",
            "it did nothing for her after two weeks",
            "she used one that had been sitting in a hot car all day, on Monday",
        ] {
            assert!(report(t), "{t}");
        }
    }

    #[test]
    fn label_questions_and_hypotheticals_are_not() {
        for t in [
            "Any warning for patients with heart failure?",
            "What should nurses do if the pressure drops during the infusion?",
            "What if a patient gets pregnant on it?",
            "Does the label list seizures?",
        ] {
            assert!(!report(t), "{t}");
        }
    }

    #[test]
    fn a_bad_element_names_the_line() {
        let src = include_str!("../../rules/report-elements.toml").replacen("element = \"realis\"", "element = \"reali\"", 1);
        let e = Elements::parse(&src, Path::new("x.toml")).unwrap_err().to_string();
        assert!(e.starts_with("x.toml:") && e.contains("reali"), "{e}");
    }

    #[test]
    fn scope_clauses_split_at_commas_and_but() {
        let t = "if it happens, what then, but she fainted";
        let c = scope_clauses(t, (0, t.len()));
        let pieces: Vec<&str> = c.iter().map(|&(a, b)| &t[a..b]).collect();
        assert_eq!(pieces, ["if it happens", "what then", "she fainted"]);
    }
}
