//! Adverse events in two layers (see DESIGN.md, "Eval suites").
//!
//! *Mentions* are adverse-reaction terms in free text, found with the lexicon
//! (`lexicon/ae_terms.txt`): exact terms and lay terms in one Aho-Corasick pass,
//! morphological and lay-phrase patterns in one `RegexSet` pass, and misspellings
//! by a one-edit lookup of the remaining long words (a SymSpell-style deletion
//! index, so no word is compared with every term).
//!
//! *Reports* are a mention plus a cue from the rules file that someone
//! experienced it (temporal, causal or experience cues), not blocked in its
//! clause by a hypothetical, a negation, a label question or label prose; or a
//! special situation (pregnancy or breastfeeding exposure, overdose,
//! medication error, lack of efficacy, occupational exposure). A specific
//! patient ("my patient", "Mr. D") overrides the label-question and
//! label-prose blockers: when unsure, a report wins.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use regex::{Regex, RegexSet, RegexSetBuilder};

use super::rules::{CueClass, Rules};
use super::text::{self, TermMatcher};
use super::{Error, Result};

/// One adverse-reaction mention.
#[derive(Debug, Clone, PartialEq)]
pub struct Mention {
    /// Start in the normalised text.
    pub start: usize,
    /// End in the normalised text.
    pub end: usize,
    /// The preferred term it maps to ("urticaria" for "hives").
    pub preferred: String,
}

/// The compiled AE lexicon.
#[derive(Debug)]
pub struct Lexicon {
    terms: TermMatcher,
    preferred: Vec<String>,
    patterns: Vec<(Regex, Option<String>)>,
    pattern_set: RegexSet,
    /// Deletion index for one-edit misspellings: variant → words.
    fuzzy: HashMap<String, Vec<usize>>,
    /// Single words eligible for fuzzy matching, with their preferred term.
    fuzzy_words: Vec<(String, usize)>,
    /// Ordinary words that are one edit from a term and must not match it.
    not_fuzzy: HashSet<String>,
    /// Number of entries, for reports.
    pub len: usize,
}

/// Lazy-DFA cache of the lexicon's pattern set (the regex default is 2 MiB).
const PATTERN_DFA_BYTES: usize = 32 << 20;

/// Words within one edit of a lexicon term that are not misspellings of it.
const NOT_FUZZY: &[&str] = &[
    "starting", "started", "station", "stating", "thanks", "patient", "patients", "dosing", "dosage", "stable", "sample", "simple",
    "things", "thinks", "taking", "making", "faking", "rating", "dating", "weekly", "weeks", "infusion", "injection", "inject",
    "option", "options", "action", "motion", "notion", "mentions", "mention", "section", "lotion", "potion", "nation", "relation",
    "relapse", "release", "relapsed", "reaction", "reactions", "reactive", "present", "prevent", "percent", "parent", "patent",
    "affect", "effect", "effects", "defect", "infect", "infected", "content", "context", "contest", "dialysis", "analysis",
    "paralysis", "cancers", "answer", "answers", "anyone", "someone", "mentioned", "labeled", "labelled", "trials", "trial",
    "weight", "height", "heights", "weights", "pressure", "treated", "treats", "treat", "created", "related", "rated", "dosed",
    "posted", "hosted", "listed", "tested", "rested", "nested", "worried", "married", "carried", "varied", "tried", "dried",
    "though", "through", "thought", "enough", "cough", "couch", "touch", "coach", "growth", "growing", "showing", "slowing",
    "flowing", "blowing", "glowing", "knowing", "fellow", "follow", "hollow", "pillow", "yellow", "elbow", "below", "bellow",
    "office", "offices", "notice", "police", "policy", "advice", "advise", "device", "devices", "service", "practice",
    "insurance", "assurance", "recipe", "receive", "deceive", "believe", "relieve", "relief", "belief", "brief", "chief",
    "detail", "details", "retail", "regimen", "regiment", "specimen", "women", "woman", "human", "humans", "season", "reason",
    "reasons", "person", "persons", "prison", "poison", "bison", "raising", "rising", "arising", "praising", "raises", "praise",
    "addition", "additions", "imputation",
];

impl Lexicon {
    /// Parses a lexicon: one entry a line; `term`, `lay term => preferred term`,
    /// or `re: REGEX => preferred term`; `#` starts a comment. Errors name the line.
    pub fn parse(src: &str, path: &Path) -> Result<Lexicon> {
        let mut preferred: Vec<String> = Vec::new();
        let mut pref_index: HashMap<String, usize> = HashMap::new();
        let mut terms: Vec<(String, usize)> = Vec::new();
        let mut patterns = Vec::new();
        let mut pattern_src = Vec::new();
        let mut seen = HashSet::new();
        for (i, raw) in src.lines().enumerate() {
            let line = raw.split(" #").next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| Error::Parse { path: path.to_owned(), line: i + 1, message };
            if let Some(rest) = line.strip_prefix("re:") {
                let (pat, pref) = match rest.rsplit_once("=>") {
                    Some((p, t)) => (p.trim(), Some(t.trim().to_string())),
                    None => (rest.trim(), None),
                };
                let re = Regex::new(pat).map_err(|e| err(format!("bad regex {pat:?}: {e}")))?;
                pattern_src.push(pat.to_string());
                patterns.push((re, pref));
                continue;
            }
            let (term, pref) = match line.split_once("=>") {
                Some((t, p)) => (t.trim(), p.trim()),
                None => (line, line),
            };
            let term = text::Norm::new(term).text;
            if term.is_empty() {
                return Err(err("empty term before =>".into()));
            }
            if term.len() < 3 && !term.chars().all(|c| c.is_alphanumeric()) {
                return Err(err(format!("term {term:?} is too short to match safely")));
            }
            if !seen.insert(term.clone()) {
                continue;
            }
            let pref = pref.to_lowercase();
            let idx = *pref_index.entry(pref.clone()).or_insert_with(|| {
                preferred.push(pref.clone());
                preferred.len() - 1
            });
            terms.push((term, idx));
        }
        if terms.is_empty() {
            return Err(Error::Parse { path: path.to_owned(), line: 1, message: "the lexicon has no terms".into() });
        }
        // A larger lazy-DFA cache than the default: with all the lexicon's
        // patterns in one set the default cache thrashes and screening falls
        // back to slower engines (p50 per question 0.11 ms -> 0.28 ms).
        let pattern_set = RegexSetBuilder::new(&pattern_src)
            .dfa_size_limit(PATTERN_DFA_BYTES)
            .build()
            .map_err(|e| Error::Parse { path: path.to_owned(), line: 1, message: e.to_string() })?;
        let mut fuzzy: HashMap<String, Vec<usize>> = HashMap::new();
        let mut fuzzy_words = Vec::new();
        for (t, p) in &terms {
            if t.len() >= 6 && t.bytes().all(|b| b.is_ascii_lowercase()) {
                let wi = fuzzy_words.len();
                fuzzy_words.push((t.clone(), *p));
                for v in deletions(t) {
                    fuzzy.entry(v).or_default().push(wi);
                }
                fuzzy.entry(t.clone()).or_default().push(wi);
            }
        }
        let len = terms.len() + patterns.len();
        Ok(Lexicon {
            terms: TermMatcher::new(&terms),
            preferred,
            patterns,
            pattern_set,
            fuzzy,
            fuzzy_words,
            not_fuzzy: NOT_FUZZY.iter().map(|s| s.to_string()).collect(),
            len,
        })
    }

    /// All mentions in normalised text, in order, without overlaps.
    pub fn mentions(&self, text: &str) -> Vec<Mention> {
        let mut out: Vec<Mention> = self
            .terms
            .find(text)
            .into_iter()
            .map(|(a, b, p)| Mention { start: a, end: b, preferred: self.preferred[p].clone() })
            .collect();
        for i in self.pattern_set.matches(text).iter() {
            let (re, pref) = &self.patterns[i];
            for m in re.find_iter(text) {
                if m.start() == m.end() || !text::at_word_boundaries(text, m.start(), m.end()) {
                    continue;
                }
                if out.iter().any(|o| o.start < m.end() && m.start() < o.end) {
                    continue;
                }
                let mut start = m.start();
                if pref.as_deref() == Some(PHRASE) {
                    // "<modifier> failure|pain|infection…": the modifier must be
                    // medical, not "treatment failure" or "the following infections".
                    let words: Vec<&str> = m.as_str().split(' ').collect();
                    let skip = words.iter().take_while(|w| PHRASE_STOP.contains(w)).count();
                    if skip + 1 >= words.len() {
                        continue;
                    }
                    start += words[..skip].iter().map(|w| w.len() + 1).sum::<usize>();
                }
                if pref.as_deref() == Some(CHANGE) && m.as_str().rsplit(' ').next().is_some_and(|w| CHANGE_STOP.contains(&w)) {
                    continue;
                }
                let preferred = pref.clone().unwrap_or_else(|| m.as_str().to_string());
                out.push(Mention { start, end: m.end(), preferred });
            }
        }
        // One-edit misspellings of long words not already covered.
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_lowercase() && (i == 0 || !text::is_word_byte(bytes[i - 1])) {
                let mut j = i;
                while j < bytes.len() && bytes[j].is_ascii_lowercase() {
                    j += 1;
                }
                if j - i >= 6 && (j >= bytes.len() || !text::is_word_byte(bytes[j])) {
                    let w = &text[i..j];
                    if !out.iter().any(|o| o.start < j && i < o.end) {
                        if let Some(p) = self.fuzzy_lookup(w) {
                            out.push(Mention { start: i, end: j, preferred: self.preferred[p].clone() });
                        }
                    }
                }
                i = j;
            } else {
                i += 1;
            }
        }
        out.sort_by_key(|m| m.start);
        out
    }

    fn fuzzy_lookup(&self, w: &str) -> Option<usize> {
        if self.not_fuzzy.contains(w) {
            return None;
        }
        let mut keys = deletions(w);
        keys.push(w.to_string());
        for k in keys {
            if let Some(ws) = self.fuzzy.get(&k) {
                for &wi in ws {
                    let (t, p) = &self.fuzzy_words[wi];
                    if t != w && edit_distance_le1(t, w) {
                        return Some(*p);
                    }
                }
            }
        }
        None
    }
}

fn deletions(w: &str) -> Vec<String> {
    (0..w.len()).map(|i| format!("{}{}", &w[..i], &w[i + 1..])).collect()
}

/// Levenshtein distance ≤ 1, or one adjacent transposition (ASCII words).
fn edit_distance_le1(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let s = a[p..].iter().rev().zip(b[p..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (a.len() - p - s.min(a.len() - p), b.len() - p - s.min(b.len() - p));
    (ra <= 1 && rb <= 1) || (ra == 2 && rb == 2 && a[p] == b[p + 1] && a[p + 1] == b[p])
}

/// Preferred term of the lexicon's "modifier + generic head" pattern, whose
/// leading non-medical words are dropped (and which needs one medical word).
const PHRASE: &str = "morphology-phrase";

/// Preferred term of the lexicon's "increase in X" / "X decreased" patterns,
/// which do not count when X is not a measurement of the patient.
const CHANGE: &str = "investigation abnormal";

/// What an "increase in …" is not about.
const CHANGE_STOP: &[&str] = &[
    "risk", "dose", "doses", "dosage", "exposure", "exposures", "incidence", "frequency", "rate", "rates", "auc", "cmax", "use", "number",
    "proportion", "percentage", "duration", "time", "the", "a", "an", "this", "these", "efficacy", "response", "activity", "absorption",
    "clearance", "bioavailability", "half-life", "concentration", "concentrations", "interval", "intervals", "age", "size", "severity",
];

/// Words that do not make a generic head ("failure", "pain") medical.
const PHRASE_STOP: &[&str] = &[
    "the", "a", "an", "these", "this", "that", "those", "such", "following", "suspected", "adverse", "common", "serious", "additional", "any",
    "all", "other", "and", "or", "of", "to", "in", "with", "no", "shows", "because", "table", "treatment", "therapy", "therapeutic", "asct",
    "transplant", "regimen", "efficacy", "virologic", "response", "study", "trial", "device", "product", "dose", "dosing", "for", "on", "as",
    "new", "worsening", "reported", "possible", "potential", "their", "his", "her", "its", "your", "our", "drug", "medication", "patient",
    "patients", "related", "associated", "local", "systemic", "general", "site", "injection", "infusion", "grade", "was", "were", "is", "are",
];

/// A report found in one sentence.
#[derive(Debug, Clone)]
pub struct Report {
    /// `adverse_event` or `special_situation`.
    pub kind: &'static str,
    /// The cue or special-situation rule that fired.
    pub rule_id: String,
    /// Evidence span in the normalised text.
    pub span: (usize, usize),
    /// The event's preferred term, for an adverse event.
    pub event: Option<String>,
    /// The event as written.
    pub event_text: Option<(usize, usize)>,
    /// The situation, for a special situation.
    pub situation: Option<String>,
}

/// The cue spans of one sentence `(start, end)` of `text`: `(class, rule id, start, end)`.
fn sentence_cues<'r>(rules: &'r Rules, text: &str, (sa, sb): (usize, usize)) -> Vec<(CueClass, &'r str, usize, usize)> {
    let s = &text[sa..sb];
    let mut cues = Vec::new();
    for i in rules.cue_set.matches(s).iter() {
        let c = &rules.cues[i];
        for m in c.pat.re.find_iter(s) {
            cues.push((c.class, c.id.as_str(), sa + m.start(), sa + m.end()));
        }
    }
    cues
}

/// The clause holding byte `pos`, or the whole sentence.
fn clause_at(clauses: &[(usize, usize)], sent: (usize, usize), pos: usize) -> (usize, usize) {
    *clauses.iter().find(|c| c.0 <= pos && pos < c.1.max(c.0 + 1)).unwrap_or(&sent)
}

/// Mentions and reports of normalised text.
pub fn detect(lex: &Lexicon, rules: &Rules, text: &str) -> (Vec<Mention>, Vec<Report>) {
    let mentions = lex.mentions(text);
    let mut reports = Vec::new();
    for sent in text::sentences(text) {
        let (sa, sb) = sent;
        let cues = sentence_cues(rules, text, sent);
        let has = |class: CueClass, (ca, cb): (usize, usize)| cues.iter().any(|c| c.0 == class && c.2 < cb && ca < c.3);
        let experiencer = cues.iter().any(|c| c.0 == CueClass::Experiencer);
        let clause_list = text::clauses(text, sent);
        let clause_of = |pos: usize| clause_at(&clause_list, sent, pos);
        let blocked = |clause: (usize, usize)| {
            has(CueClass::Negation, clause)
                || has(CueClass::Hypothetical, clause)
                || (!experiencer && (has(CueClass::LabelQuestion, clause) || has(CueClass::GeneralStatement, clause)))
        };
        let trigger = cues.iter().find(|c| matches!(c.0, CueClass::Temporal | CueClass::Causal | CueClass::Experience));
        if let Some(&(_, id, ca, cb)) = trigger {
            for m in mentions.iter().filter(|m| m.start >= sa && m.end <= sb) {
                if blocked(clause_of(m.start)) {
                    continue;
                }
                reports.push(Report {
                    kind: "adverse_event",
                    rule_id: id.to_string(),
                    span: (m.start.min(ca), m.end.max(cb)),
                    event: Some(m.preferred.clone()),
                    event_text: Some((m.start, m.end)),
                    situation: None,
                });
                break;
            }
        }
        for sp in &rules.specials {
            if let Some((a, b)) = sp.pat.find_in(text, sa, sb) {
                if blocked(clause_of(a)) {
                    continue;
                }
                reports.push(Report {
                    kind: "special_situation",
                    rule_id: sp.id.clone(),
                    span: (a, b),
                    event: None,
                    event_text: None,
                    situation: Some(sp.situation.clone()),
                });
            }
        }
    }
    (mentions, reports)
}

/// A blocker for the report elements from the rules file's cues: whether the
/// clause (as [`super::elements::scope_clauses`] cuts it) holding a span has a
/// negation or hypothetical cue ("none of her patients", "what if").
pub fn cue_blocker(rules: &Rules, text: &str) -> impl Fn((usize, usize)) -> bool {
    let mut blocked: Vec<(usize, usize)> = Vec::new();
    for sent in text::sentences(text) {
        let cues = sentence_cues(rules, text, sent);
        for c in super::elements::scope_clauses(text, sent) {
            if cues.iter().any(|q| matches!(q.0, CueClass::Negation | CueClass::Hypothetical) && q.2 < c.1 && c.0 < q.3) {
                blocked.push(c);
            }
        }
    }
    move |(a, _b): (usize, usize)| blocked.iter().any(|c| c.0 <= a && a < c.1)
}

/// The safety net's test: the first adverse-reaction mention in a sentence
/// that names a specific patient (an experiencer cue), outside negated and
/// hypothetical clauses, even with no temporal, causal or experience cue:
/// `(start, end, preferred term)` in `text`.
pub fn patient_mention(lex: &Lexicon, rules: &Rules, text: &str) -> Option<(usize, usize, String)> {
    let mentions = lex.mentions(text);
    if mentions.is_empty() {
        return None;
    }
    for sent in text::sentences(text) {
        let (sa, sb) = sent;
        let cues = sentence_cues(rules, text, sent);
        if !cues.iter().any(|c| c.0 == CueClass::Experiencer) {
            continue;
        }
        let clause_list = text::clauses(text, sent);
        for m in mentions.iter().filter(|m| m.start >= sa && m.end <= sb) {
            let clause = clause_at(&clause_list, sent, m.start);
            let blocked = cues
                .iter()
                .any(|c| matches!(c.0, CueClass::Negation | CueClass::Hypothetical) && c.2 < clause.1 && clause.0 < c.3);
            if !blocked {
                return Some((m.start, m.end, m.preferred.clone()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(src: &str) -> Lexicon {
        Lexicon::parse(src, Path::new("test.txt")).unwrap()
    }

    #[test]
    fn lay_terms_map_to_preferred() {
        let l = lex("urticaria\nhives => urticaria\nre: lfts? through the roof => hepatic enzyme increased\n");
        let m = l.mentions("she got hives; lfts through the roof");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].preferred, "urticaria");
        assert_eq!(m[1].preferred, "hepatic enzyme increased");
    }

    #[test]
    fn misspellings_within_one_edit() {
        let l = lex("diarrhea\nneuropathy\n");
        assert_eq!(l.mentions("diarrea every day")[0].preferred, "diarrhea");
        assert_eq!(l.mentions("bad nuropathy")[0].preferred, "neuropathy");
        assert!(l.mentions("a bad neurology visit").is_empty());
    }

    #[test]
    fn bad_regex_names_the_line() {
        let e = Lexicon::parse("rash\nre: (unclosed\n", Path::new("lex.txt")).unwrap_err();
        assert!(e.to_string().starts_with("lex.txt:2:"), "{e}");
    }

    #[test]
    fn ordinary_words_next_to_new_terms_do_not_fuzzy_match() {
        let l = lex("addiction\namputation\n");
        assert!(l.mentions("in addition, patients should move about").is_empty());
        assert!(l.mentions("multiple imputation was used").is_empty());
        assert_eq!(l.mentions("opioid addicton")[0].preferred, "addiction");
    }

    #[test]
    fn transposition_is_one_edit() {
        assert!(edit_distance_le1("humira", "humria"));
        assert!(edit_distance_le1("diarrhea", "diarrea"));
        assert!(!edit_distance_le1("neuropathy", "neurology"));
    }
}
