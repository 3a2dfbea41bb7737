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

use super::label_ref::LabelReference;
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
    /// Found by a `re:` pattern of the lexicon, whose preferred term may be a
    /// category ("morphology") rather than the term itself.
    pub pattern: bool,
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
            .map(|(a, b, p)| Mention { start: a, end: b, preferred: self.preferred[p].clone(), pattern: false })
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
                out.push(Mention { start, end: m.end(), preferred, pattern: true });
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
                            out.push(Mention { start: i, end: j, preferred: self.preferred[p].clone(), pattern: false });
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
    detect_events(lex, rules, text, None)
}

/// [`detect`] for a product whose indications are known: mentions that name
/// the indication are not events ([`Indications::events`]), and the
/// indication getting worse in a specific person is a lack-of-efficacy
/// report ([`Indications::worsened`]). The mentions returned are the events.
pub fn detect_events(lex: &Lexicon, rules: &Rules, text: &str, indications: Option<&Indications>) -> (Vec<Mention>, Vec<Report>) {
    let mut mentions = lex.mentions(text);
    let mut reports = Vec::new();
    if let Some(ind) = indications {
        reports.extend(ind.worsened(rules, text, &mentions));
        mentions = ind.events(text, mentions);
    }
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
pub fn patient_mention(lex: &Lexicon, rules: &Rules, text: &str, indications: Option<&Indications>) -> Option<(usize, usize, String)> {
    let mentions = match indications {
        Some(ind) => ind.events(text, lex.mentions(text)),
        None => lex.mentions(text),
    };
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

// ---------------------------------------------------------------------------
// The product's own indications (issue 18, point 4): a visit note about
// dosing a product for rheumatoid arthritis names rheumatoid arthritis on
// every line, and none of those lines is an adverse event.

/// Words that may stand right before an indication term without making it
/// another condition ("her arthritis", "for psoriasis"; but "septic
/// arthritis", "new psoriasis" and "worsening psoriasis" are not the
/// indication as treated): determiners, pronouns, prepositions, auxiliaries
/// and the words a note uses for the treated disease.
const FUNCTION_WORDS: &[&str] = &[
    "the", "a", "an", "her", "his", "their", "my", "your", "our", "its", "this", "that", "these", "those", "of", "for", "with", "in", "on",
    "and", "or", "to", "from", "by", "at", "as", "is", "was", "are", "were", "has", "had", "have", "been", "be", "any", "about", "whose",
    "which", "who", "treat", "treats", "treating", "treated", "treatment", "manage", "managing", "management", "control", "controlling",
    "controlled", "diagnosed", "known", "established", "longstanding", "long-standing", "history", "hx", "patient", "patients", "pt",
    "pts", "stable", "well-controlled", "indication", "indicated", "approved", "label", "labeled", "labelled", "said", "says", "re",
];

/// Nouns an indication term can qualify ("arthritis center", "psoriasis
/// clinic", "RA patients", "rheumatoid arthritis studies"): the indication as
/// a topic or a place, never something that happened.
const TOPIC_HEADS: &[&str] = &[
    "clinic", "clinics", "center", "centre", "centers", "foundation", "associates", "institute", "society", "unit", "service", "program",
    "programme", "registry", "practice", "patient", "patients", "population", "cohort", "cohorts", "dose", "doses", "dosing", "regimen",
    "indication", "indications", "trial", "trials", "study", "studies", "data", "label", "labeling", "nurse", "nurses", "fellows",
    "specialist", "specialists", "team", "visit", "visits", "guidelines", "criteria", "scores", "score", "activity",
];

/// Onset of the indication ("developed psoriasis", "new-onset colitis"):
/// its mentions stay events (a paradoxical reaction is an adverse event).
const ONSET_PAT: &str = r"\b(?:developed|developing|new(?:-| )onset|de novo|paradoxical\w*) (?:[\w'-]+ ){0,3}$";

/// The indication getting worse or not responding: its mentions stay
/// events, and with a specific person it is a lack-of-efficacy report. A
/// bare "not responding" needs its auxiliary ("is not responding"), as in
/// the rules' own lack-of-efficacy patterns: "RA pt not responding, doc wants
/// 80 mg every week" is a dosing question (evals/dev_reports.jsonl d-med-011).
/// "Flares" counts even where it may be a count ("fewer flares"): "Dr. Wu's
/// psoriasis patient flares before day 14" is the product wearing off
/// (evals/guard.jsonl g-off-08), and when in doubt, a report wins.
const WORSE_PAT: &str = r"\b(?:worse|worsen\w*|flared|flaring|flares?|flare-?ups?|exacerbat\w*|relaps\w*|recurr\w*|progressed|progressing|deteriorat\w*|aggravat\w*|uncontrolled|out of control|breakthrough|came back|coming back|back again|no better|(?:isn't|is not|wasn't|was not|hasn't|has not|haven't|didn't|did not|doesn't|does not|no longer) (?:\w+ )?(?:help|work|improv|respond|control)\w*)\b";

/// Possessives before the indication that name whose disease it is
/// ("her psoriasis", "his RA", "the patient's arthritis").
const POSSESSIVE_PAT: &str = r"(?:\b(?:her|his|their|my)|'s|s') (?:[\w-]+ ){0,3}$";

/// Rule id of the lack-of-efficacy report found from the label's indications.
pub const INDICATION_WORSE_ID: &str = "SS-INDICATION-WORSE";

fn static_re(cell: &'static std::sync::OnceLock<Regex>, p: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(p).expect("static regex"))
}

/// A product's indications as the screen reads them: the lexicon's terms in
/// the names its label's section 1 gives ([`LabelReference::indications`]),
/// the words of those names, and the names and short forms themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Indications {
    /// Keys ([`mention_key`]) of the lexicon terms that name an indication.
    keys: HashSet<String>,
    /// Every word of the indication names and of the product's name: words
    /// that may qualify an indication term without making it another condition.
    words: HashSet<String>,
    /// Indication names and short forms ("rheumatoid arthritis", "ra"), for
    /// the indication written without a lexicon term.
    names: Vec<String>,
}

/// What identifies a mention's term: its preferred term, or for a pattern
/// (whose preferred term may be a category) the words as written.
pub fn mention_key(m: &Mention, text: &str) -> String {
    if m.pattern {
        text.get(m.start..m.end).unwrap_or("").to_string()
    } else {
        m.preferred.clone()
    }
}

impl Indications {
    /// The indications of `label` (read with `lex`), and of the product named
    /// `product` (whose own words may stand before them).
    pub fn of(lex: &Lexicon, label: &LabelReference, product: Option<&str>) -> Indications {
        let mut ind = Indications::default();
        let split = |s: &str| s.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\'')).filter(|w| !w.is_empty()).map(str::to_string).collect::<Vec<_>>();
        for name in &label.indications {
            for m in lex.mentions(name) {
                ind.keys.insert(mention_key(&m, name));
            }
            ind.words.extend(split(name));
            ind.names.push(name.clone());
        }
        for a in &label.indication_abbreviations {
            if a.len() >= 2 {
                ind.names.push(a.clone());
            }
        }
        for p in [Some(label.product.as_str()), product].into_iter().flatten() {
            ind.words.extend(split(&text::Norm::new(p).text));
        }
        ind
    }

    /// Whether the label gave no indication that the lexicon reads as a term
    /// and no name to look for.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.names.is_empty()
    }

    /// Whether the word before `start` (over the indication's own words)
    /// qualifies the term as some other condition: "septic arthritis", "new
    /// psoriasis", "worsening colitis". Punctuation or the start of the text
    /// before it, or a function word, does not.
    fn qualified_by_other(&self, text: &str, start: usize) -> bool {
        let mut end = start;
        loop {
            let before = &text[..end];
            if !before.ends_with(' ') {
                return false;
            }
            let trimmed = before.trim_end_matches(' ');
            let from = trimmed
                .char_indices()
                .rev()
                .find(|&(_, c)| !(c.is_alphanumeric() || c == '-' || c == '\''))
                .map(|(i, c)| i + c.len_utf8())
                .unwrap_or(0);
            let word = &trimmed[from..];
            if word.is_empty() {
                return false;
            }
            let bare = word.trim_end_matches("'s").trim_end_matches('\'');
            if bare.is_empty() || bare.chars().all(|c| c.is_ascii_digit()) || FUNCTION_WORDS.contains(&bare) || word.ends_with("'s") || word.ends_with('\'') {
                return false;
            }
            if !self.words.contains(bare) {
                return true;
            }
            end = from;
        }
    }

    /// Whether a mention names the indication as treated: its term is one of
    /// the indication's and nothing foreign qualifies it.
    fn names_indication(&self, text: &str, m: &Mention) -> bool {
        self.keys.contains(&mention_key(m, text)) && (self.qualifies_a_topic(text, m.end) || !self.qualified_by_other(text, m.start))
    }

    /// Whether the words after `end` (over the indication's own) are a noun
    /// the indication qualifies ("arthritis center", "psoriasis patients").
    fn qualifies_a_topic(&self, text: &str, end: usize) -> bool {
        let mut rest = &text[end..];
        loop {
            let Some(r) = rest.strip_prefix(' ') else { return false };
            let w: &str = r.split(|c: char| !(c.is_alphanumeric() || c == '-')).next().unwrap_or("");
            if TOPIC_HEADS.contains(&w) {
                return true;
            }
            if w.is_empty() || !self.words.contains(w) {
                return false;
            }
            rest = &r[w.len()..];
        }
    }

    /// The mentions that may be events: `mentions` without those naming the
    /// indication, except in a sentence that tells of its onset or of it
    /// getting worse (those stay events: when in doubt, a report wins).
    pub fn events(&self, text: &str, mentions: Vec<Mention>) -> Vec<Mention> {
        static ONSET: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
        static WORSE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
        if self.keys.is_empty() {
            return mentions;
        }
        let sents = text::sentences(text);
        let (onset, worse) = (static_re(&ONSET, ONSET_PAT), static_re(&WORSE, WORSE_PAT));
        mentions
            .into_iter()
            .filter(|m| {
                if !self.names_indication(text, m) {
                    return true;
                }
                let (a, b) = sents.iter().copied().find(|s| s.0 <= m.start && m.start < s.1).unwrap_or((0, text.len()));
                // Onset governs the words right after it ("developed plaque
                // psoriasis"); getting worse is kept anywhere in the sentence.
                onset.is_match(&text[a..m.start]) || worse.is_match(&text[a..b])
            })
            .collect()
    }

    /// Where the indication is named in sentence `(a, b)` of `text`: its
    /// lexicon terms among `mentions`, then its names and short forms on word
    /// boundaries. Spans in `text`.
    fn occurrences(&self, text: &str, (a, b): (usize, usize), mentions: &[Mention]) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = mentions.iter().filter(|m| m.start >= a && m.end <= b && self.names_indication(text, m)).map(|m| (m.start, m.end)).collect();
        let s = &text[a..b];
        for n in &self.names {
            let mut from = 0;
            while let Some(i) = s[from..].find(n.as_str()) {
                let (x, y) = (a + from + i, a + from + i + n.len());
                if text::at_word_boundaries(text, x, y) && !self.qualified_by_other(text, x) {
                    out.push((x, y));
                }
                from += i + 1;
                while !s.is_char_boundary(from) {
                    from += 1;
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The indication getting worse or not responding in a specific person
    /// ("his RA flared despite 3 months on it", "her psoriasis got worse"):
    /// a lack-of-efficacy report (special situation) per sentence that names
    /// the indication, says it got worse, and names whose it is (an
    /// experiencer cue, or a possessive before it), outside negated and
    /// hypothetical clauses.
    pub fn worsened(&self, rules: &Rules, text: &str, mentions: &[Mention]) -> Vec<Report> {
        static WORSE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
        static POSSESSIVE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
        let (worse, possessive) = (static_re(&WORSE, WORSE_PAT), static_re(&POSSESSIVE, POSSESSIVE_PAT));
        let mut out = Vec::new();
        if self.is_empty() {
            return out;
        }
        for sent in text::sentences(text) {
            let (sa, sb) = sent;
            let Some(w) = worse.find(&text[sa..sb]) else { continue };
            let (wa, wb) = (sa + w.start(), sa + w.end());
            let occ = self.occurrences(text, sent, mentions);
            if occ.is_empty() {
                continue;
            }
            let cues = sentence_cues(rules, text, sent);
            let clauses = super::elements::scope_clauses(text, sent);
            let clause = |pos: usize| clauses.iter().copied().find(|c| c.0 <= pos && pos < c.1).unwrap_or(sent);
            let blocked = |pos: usize| {
                let c = clause(pos);
                cues.iter().any(|q| matches!(q.0, CueClass::Negation | CueClass::Hypothetical) && q.2 < c.1 && c.0 < q.3)
            };
            if blocked(wa) {
                continue;
            }
            let experiencer = cues.iter().any(|c| c.0 == CueClass::Experiencer);
            let Some(&(oa, ob)) = occ.iter().find(|&&(oa, _)| !blocked(oa) && (experiencer || possessive.is_match(&text[sa..oa]))) else { continue };
            out.push(Report {
                kind: "special_situation",
                rule_id: INDICATION_WORSE_ID.to_string(),
                span: (oa.min(wa), ob.max(wb)),
                event: None,
                event_text: Some((oa, ob)),
                situation: Some("lack_of_efficacy".to_string()),
            });
        }
        out
    }
}

/// A Pharmacovigilance verdict's flags with each reported term once: the
/// first flag of each event (by its lexicon term, or its words when it has
/// none) and of each special situation (by rule), other flags untouched, in
/// order. Several windows of a long note, or several sentences, telling of
/// the same fever are one piece of evidence for the case.
pub fn distinct_reports(lex: &Lexicon, flags: Vec<super::Flag>) -> Vec<super::Flag> {
    let mut seen: HashSet<String> = HashSet::new();
    flags
        .into_iter()
        .filter(|f| {
            // The intent head's flag quotes the whole text: it is its own evidence.
            if f.rule_id.starts_with("INTENT-") {
                return true;
            }
            let key = match f.kind.as_str() {
                "adverse_event" => {
                    let n = text::Norm::new(&f.evidence).text;
                    let first = lex.mentions(&n).into_iter().next();
                    format!("ae:{}", first.map(|m| mention_key(&m, &n)).unwrap_or(n))
                }
                "special_situation" => format!("ss:{}", f.rule_id),
                _ => return true,
            };
            seen.insert(key)
        })
        .collect()
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

    /// Humira's section 1 as its label writes it (headings and the first
    /// sentence of three subsections).
    fn humira_label() -> LabelReference {
        use crate::corpus::{Audience, Kind, Passage, Status};
        let day = chrono::NaiveDate::from_ymd_opt(2030, 12, 31).unwrap();
        let p = |ordinal: u32, section: &str, title: &str, text: &str| Passage {
            doc_id: "humira-pi".into(),
            section: section.into(),
            title: title.into(),
            parent: String::new(),
            product: "humira".into(),
            kind: Kind::Pi,
            audience: Audience::Promotional,
            mlr_number: "T-1".into(),
            expires_on: day,
            approved_on: chrono::NaiveDate::from_ymd_opt(2013, 9, 30).unwrap(),
            status: Status::Approved,
            ordinal,
            text: text.into(),
            page: None,
        };
        let passages = vec![
            p(0, "1", "INDICATIONS AND USAGE", ""),
            p(1, "1.1", "Rheumatoid Arthritis", "HUMIRA is indicated for reducing signs and symptoms, inducing major clinical response, inhibiting the progression of structural damage, and improving physical function in adult patients with moderately to severely active rheumatoid arthritis."),
            p(2, "1.3", "Psoriatic Arthritis", "HUMIRA is indicated for reducing signs and symptoms, inhibiting the progression of structural damage, and improving physical function in adult patients with active psoriatic arthritis."),
            p(3, "1.7", "Plaque Psoriasis", "HUMIRA is indicated for the treatment of adult patients with moderate to severe chronic plaque psoriasis who are candidates for systemic therapy or phototherapy."),
            p(4, "5.1", "Serious Infections", "Patients treated with HUMIRA are at increased risk for developing serious infections."),
        ];
        LabelReference::from_passages("humira", &passages)
    }

    fn screen(text: &str, label: Option<&LabelReference>) -> crate::guard::Verdict {
        let g = crate::guard::Guard::builtin().expect("builtin rules compile");
        g.screen_input(text, &crate::guard::Context { product: Some("humira"), label, ..Default::default() })
    }

    fn pv_evidence(v: &crate::guard::Verdict) -> Vec<String> {
        v.flags.iter().filter(|f| f.kind == "adverse_event" || f.kind == "special_situation").map(|f| f.evidence.to_lowercase()).collect()
    }

    #[test]
    fn the_label_gives_the_indications_not_a_list() {
        let l = humira_label();
        for n in ["rheumatoid arthritis", "psoriatic arthritis", "plaque psoriasis"] {
            assert!(l.indications.iter().any(|x| x == n), "{n} in {:?}", l.indications);
        }
        assert!(l.indication_abbreviations.contains(&"ra".to_string()), "{:?}", l.indication_abbreviations);
        // Section 5 is not section 1: serious infections are not an indication.
        assert!(!l.indications.iter().any(|x| x.contains("infection")), "{:?}", l.indications);
    }

    #[test]
    fn the_indication_named_in_a_dosing_note_raises_no_flag() {
        let l = humira_label();
        let note = "Her rheumatoid arthritis improved a lot after the third Humira dose.";
        // Without the label the guard does as before: "arthritis" after a dose is a report.
        let before = screen(note, None);
        assert_eq!(before.route, crate::guard::Route::Pharmacovigilance, "{before:?}");
        let v = screen(note, Some(&l));
        assert_eq!(v.route, crate::guard::Route::Answer, "{v:?}");
        assert!(v.flags.iter().all(|f| f.kind != "adverse_event"), "{v:?}");
        let v = screen("Dr. Lee's patient with psoriatic arthritis started Humira after methotrexate, and her arthritis settled within weeks.", Some(&l));
        assert!(pv_evidence(&v).is_empty(), "{v:?}");
    }

    #[test]
    fn the_indication_getting_worse_in_a_patient_is_still_a_report() {
        let l = humira_label();
        for q in [
            "RA flare despite treatment in my patient.",
            "His RA flared despite 3 months on it.",
            "Her psoriasis is worse than before.",
            "My patient's psoriasis got worse after starting Humira.",
            "My patient's rheumatoid arthritis flared despite three months on Humira.",
        ] {
            let v = screen(q, Some(&l));
            assert_eq!(v.route, crate::guard::Route::Pharmacovigilance, "{q}: {v:?}");
        }
        let v = screen("His RA flared despite 3 months on it.", Some(&l));
        assert!(v.flags.iter().any(|f| f.rule_id == INDICATION_WORSE_ID && f.kind == "special_situation"), "{v:?}");
        assert_eq!(v.report.and_then(|r| r.special_situation).as_deref(), Some("lack_of_efficacy"));
    }

    #[test]
    fn onset_or_another_condition_stays_an_event() {
        let l = humira_label();
        for q in ["Mrs. Kaplan developed psoriasis after her fourth Humira injection.", "My patient got septic arthritis two weeks after starting Humira."] {
            let v = screen(q, Some(&l));
            assert_eq!(v.route, crate::guard::Route::Pharmacovigilance, "{q}: {v:?}");
        }
        // Hypothetical or general: no person, no report.
        for q in ["What if her RA flares on Humira?", "Can RA patients flare when they switch biologics?"] {
            let v = screen(q, Some(&l));
            assert!(v.flags.iter().all(|f| f.rule_id != INDICATION_WORSE_ID), "{q}: {v:?}");
        }
    }

    #[test]
    fn one_flag_per_reported_term() {
        let v = screen("My patient got a fever after the Humira shot. The fever came back the next day after the second shot, and then pneumonia.", None);
        assert_eq!(v.route, crate::guard::Route::Pharmacovigilance);
        let fevers = pv_evidence(&v).iter().filter(|e| e.contains("fever")).count();
        assert_eq!(fevers, 1, "{v:?}");
    }

    #[test]
    fn transposition_is_one_edit() {
        assert!(edit_distance_le1("humira", "humria"));
        assert!(edit_distance_le1("diarrhea", "diarrea"));
        assert!(!edit_distance_le1("neuropathy", "neurology"));
    }
}
