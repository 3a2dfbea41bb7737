//! [`LabelReference`]: what a product's approved label covers, read from its
//! own sections 1 (indications), 2 (dosage and administration) and 8 (use in
//! specific populations). Old unnumbered labels are read by heading
//! ("INDICATIONS AND USAGE", "DOSAGE AND ADMINISTRATION", "Pediatric Use"…),
//! with subsections inheriting their capitalised parent.
//!
//! Sentences that limit use ("not recommended", "not been established",
//! "limitations of use") are kept apart: a condition named only there is not
//! covered.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::text::{self, Norm};
use crate::corpus::{Kind, Passage};

/// One dosing subsection (§2.x or an unnumbered heading under DOSAGE AND ADMINISTRATION).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DosingSection {
    /// Normalised title (`juvenile idiopathic arthritis`).
    pub title: String,
    /// Normalised text.
    pub text: String,
    /// Doses in mg named in it.
    pub doses_mg: Vec<f64>,
    /// Doses in mg/kg named in it.
    pub doses_mg_kg: Vec<f64>,
}

/// A pediatric age range the label covers, with the text it was found in (to
/// tell which indication it belongs to).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgeRange {
    /// Youngest age covered, in years.
    pub min: f64,
    /// Oldest age covered (inclusive), in years; 200 when open-ended.
    pub max: f64,
    /// Normalised title and text of the section it was found in.
    pub context: String,
}

/// What the approved label covers: indications, populations, routes, doses
/// and combinations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelReference {
    /// The product.
    pub product: String,
    /// Normalised sections 1, 2 and 8 without limiting sentences: what is covered.
    pub covered: String,
    /// Normalised sentences of sections 1, 2 and 8 that limit use.
    pub limitations: String,
    /// Dosing subsections.
    pub dosing: Vec<DosingSection>,
    /// Pediatric age ranges from sections 1 and 2.
    pub pediatric: Vec<AgeRange>,
    /// Lowest body weight (kg) named in pediatric dosing, if any.
    pub pediatric_min_kg: Option<f64>,
    /// Whether the label speaks to geriatric use.
    pub geriatric: bool,
    /// Every word of the whole label (to tell a drug the label addresses anywhere).
    pub words: HashSet<String>,
    /// `covered` and `limitations` together, for the label rules (kept so
    /// that screening does not rebuild it per question).
    pub sections: String,
    /// What the product treats, normalised, read from section 1 only (see
    /// [`indication_names`]): a note about the product names these as its
    /// indication, and the guard does not take them for adverse events.
    #[serde(default)]
    pub indications: Vec<String>,
    /// Short forms of the indications the label gives: its parentheticals
    /// ("hl", "salcl") and the initials of its indication headings ("ra" for
    /// "Rheumatoid Arthritis"), so that "his RA flared" is read as the
    /// indication getting worse.
    #[serde(default)]
    pub indication_abbreviations: Vec<String>,
}

fn re(cell: &'static OnceLock<Regex>, p: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(p).expect("static regex"))
}

/// Sentences that limit use.
pub fn limiting(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"not (?:been )?(?:recommended|studied|established|approved|indicated|evaluated|investigated|shown)|limitations? of use|should not|contraindicated|not for use|do not (?:use|administer|give)|is not known|have not been|has not been|uses other than")
        .is_match(s)
}

/// Numbers with a unit in normalised text: `(value, start)`.
fn numbers(text: &str, unit: &'static OnceLock<Regex>, pat: &str) -> Vec<f64> {
    re(unit, pat).captures_iter(text).filter_map(|c| c[1].parse().ok()).collect()
}

static MG: OnceLock<Regex> = OnceLock::new();
static MGKG: OnceLock<Regex> = OnceLock::new();
const MG_PAT: &str = r"(\d+(?:\.\d+)?) ?mg\b(?: ?/ ?(?:day|d|dose)\b)?(?: ?/ ?(?:kg|m2|ml)\b)?";
const MGKG_PAT: &str = r"(\d+(?:\.\d+)?) ?mg ?/ ?kg\b";

/// Doses in mg (not mg/kg, mg/mL or mg/m²) of normalised text.
pub fn mg_doses(text: &str) -> Vec<f64> {
    re(&MG, MG_PAT)
        .captures_iter(text)
        .filter(|c| {
            let m = c.get(0).map(|m| m.as_str()).unwrap_or("");
            !(m.contains("/kg") || m.contains("/ kg") || m.contains("/m2") || m.contains("/ml"))
        })
        .filter_map(|c| c[1].parse().ok())
        .collect()
}

/// Doses in mg/kg of normalised text.
pub fn mg_kg_doses(text: &str) -> Vec<f64> {
    numbers(text, &MGKG, MGKG_PAT)
}

/// Pediatric age ranges stated in normalised text.
pub fn age_ranges(text: &str) -> Vec<(f64, f64)> {
    static RANGE: OnceLock<Regex> = OnceLock::new();
    static OLDER: OnceLock<Regex> = OnceLock::new();
    let mut out = Vec::new();
    for c in re(&RANGE, r"(?:between the ages of |ages? |aged )?(\d+(?:\.\d+)?) (?:years? (?:of age )?)?(?:to|-|through|and) (?:less than |< ?|under )?(\d+(?:\.\d+)?) years").captures_iter(text) {
        if let (Ok(a), Ok(b)) = (c[1].parse::<f64>(), c[2].parse::<f64>()) {
            if a < 18.0 && b >= a {
                let less_than = c.get(0).is_some_and(|m| m.as_str().contains("less than") || m.as_str().contains('<') || m.as_str().contains("under"));
                out.push((a, if less_than { b - 0.01 } else { b + 0.99 }));
            }
        }
    }
    for c in re(&OLDER, r"(\d+(?:\.\d+)?) years (?:of age )?(?:and|or) (?:older|above|over)").captures_iter(text) {
        if let Ok(a) = c[1].parse::<f64>() {
            if a < 18.0 {
                out.push((a, 200.0));
            }
        }
    }
    out
}

/// Which of sections 1, 2 or 8 a section belongs to, by number or heading.
fn group_of(label: &str, title: &str, parent: Option<u8>) -> (Option<u8>, Option<u8>) {
    let first = label.split('.').next().unwrap_or("");
    if let Ok(n) = first.trim().parse::<u8>() {
        let g = matches!(n, 1 | 2 | 8).then_some(n);
        return (g, g);
    }
    if label.eq_ignore_ascii_case("BW") {
        return (None, None);
    }
    let t = title.to_lowercase();
    let keyword = if t.contains("indications") {
        Some(1)
    } else if t.contains("dosage") || t.contains("administration") {
        Some(2)
    } else if ["pediatric use", "geriatric use", "pregnancy", "nursing mothers", "lactation", "specific populations"].iter().any(|k| t.contains(k)) {
        Some(8)
    } else {
        None
    };
    let is_heading = title.chars().any(|c| c.is_alphabetic()) && title == title.to_uppercase();
    match (keyword, is_heading) {
        (Some(g), true) => (Some(g), Some(g)),
        (Some(g), false) => (Some(g), parent),
        (None, true) => (None, None),
        (None, false) => (parent.filter(|p| *p != 8), parent),
    }
}

impl LabelReference {
    /// Reads what the label covers from the product's passages (its PI if it
    /// has one; otherwise every passage of the product).
    pub fn from_passages(product: &str, passages: &[Passage]) -> LabelReference {
        let mut own: Vec<&Passage> = passages.iter().filter(|p| p.product.eq_ignore_ascii_case(product)).collect();
        if own.iter().any(|p| p.kind == Kind::Pi) {
            own.retain(|p| p.kind == Kind::Pi);
        }
        own.sort_by(|a, b| a.doc_id.cmp(&b.doc_id).then(a.ordinal.cmp(&b.ordinal)));
        let mut covered = String::new();
        let mut limitations = String::new();
        let mut words = HashSet::new();
        let mut dosing: Vec<DosingSection> = Vec::new();
        let mut pediatric = Vec::new();
        let mut kg: Vec<f64> = Vec::new();
        let mut geriatric = false;
        let mut parent: Option<u8> = None;
        let mut last_section: Option<(String, String)> = None;
        let mut indications: Vec<String> = Vec::new();
        let mut abbreviations: Vec<String> = Vec::new();
        // Section texts (passages of one section joined), in order.
        let mut sections: Vec<(Option<u8>, String, String)> = Vec::new();
        for p in &own {
            let key = (p.doc_id.clone(), p.section.clone());
            let norm = Norm::new(&p.text).text;
            for w in norm.split(|c: char| !c.is_alphanumeric() && c != '-') {
                if w.len() > 2 {
                    words.insert(w.to_string());
                }
            }
            if last_section.as_ref() == Some(&key) {
                if let Some(last) = sections.last_mut() {
                    last.2.push(' ');
                    last.2.push_str(&norm);
                }
                continue;
            }
            last_section = Some(key);
            let (g, new_parent) = group_of(&p.section, &p.title, parent);
            parent = new_parent;
            sections.push((g, Norm::new(&p.title).text, norm));
        }
        for (g, title, body) in &sections {
            let Some(g) = g else { continue };
            if title.contains("geriatric") || body.contains("geriatric") || body.contains("65 years") {
                geriatric = true;
            }
            let mut kept = String::new();
            for (a, b) in text::sentences(body) {
                let s = &body[a..b];
                if limiting(s) {
                    limitations.push_str(s);
                    limitations.push('\n');
                } else {
                    kept.push_str(s);
                    kept.push(' ');
                }
            }
            covered.push_str(title);
            covered.push_str(". ");
            covered.push_str(&kept);
            covered.push('\n');
            if *g == 1 {
                let (names, short) = indication_names(title, &kept);
                for n in names {
                    if !indications.contains(&n) {
                        indications.push(n);
                    }
                }
                for a in short {
                    if !abbreviations.contains(&a) {
                        abbreviations.push(a);
                    }
                }
            }
            if *g == 1 || *g == 2 {
                let ctx = format!("{title}. {body}");
                let ranges = age_ranges(&kept);
                for (min, max) in &ranges {
                    pediatric.push(AgeRange { min: *min, max: *max, context: ctx.clone() });
                }
                let pediatric_section = !ranges.is_empty() || title.contains("pediatric") || title.contains("children");
                if pediatric_section {
                    static KG: OnceLock<Regex> = OnceLock::new();
                    kg.extend(numbers(&kept, &KG, r"(\d+(?:\.\d+)?) ?kg\b"));
                }
            }
            if *g == 2 {
                dosing.push(DosingSection { title: title.clone(), text: body.clone(), doses_mg: mg_doses(body), doses_mg_kg: mg_kg_doses(body) });
            }
        }
        let pediatric_min_kg = kg.into_iter().filter(|k| *k > 0.0 && *k < 100.0).reduce(f64::min);
        let sections = format!("{covered}\n{limitations}");
        // The product's own names are never its indication.
        let product_norm = Norm::new(product).text;
        indications.retain(|n| *n != product_norm);
        LabelReference {
            product: product.to_string(),
            covered,
            limitations,
            dosing,
            pediatric,
            pediatric_min_kg,
            geriatric,
            words,
            sections,
            indications,
            indication_abbreviations: abbreviations,
        }
    }

    /// Whether a normalised term appears (as whole words) where the label covers use.
    pub fn covers_term(&self, term: &str) -> bool {
        contains_words(&self.covered, term)
    }

    /// Whether any word of a normalised name appears anywhere in the label.
    pub fn mentions_anywhere(&self, name: &str) -> bool {
        let ws: Vec<&str> = name.split_whitespace().collect();
        !ws.is_empty() && ws.iter().all(|w| self.words.contains(*w))
    }

    /// Sections 1, 2 and 8 with their limitations, for label rules.
    pub fn sections_text(&self) -> &str {
        &self.sections
    }
}

/// Longest indication name kept, in words: a phrase that runs on past this is
/// not a condition's name but the rest of a sentence.
pub const MAX_INDICATION_WORDS: usize = 8;

/// Words that end the condition after "patients with …" / "treatment of …":
/// what follows them is the population, the setting or the line of therapy.
const INDICATION_STOP: &[&str] = &[
    "who", "whom", "whose", "which", "that", "after", "before", "requiring", "in", "as", "if", "when", "where", "for", "by", "at", "on",
    "despite", "because", "than", "receiving", "undergoing", "such", "including", "candidates", "following", "whether", "is", "are", "was",
    "were", "can", "may", "should", "with", "without",
];

/// Heading words that do not name a condition.
const NOT_INDICATION_TITLE: &[&str] = &["indications", "indication", "usage", "limitations", "limitation", "important", "use", "general"];

/// The indications of one section-1 (sub)section: `(names, abbreviations)`,
/// normalised. Names come from the heading ("Rheumatoid Arthritis",
/// "Hyperlipidemia") and from the phrases after "patients with", "treatment
/// of", "management of" and "control of" in its sentences, cut at the first
/// word that starts the population or setting ("who", "after", "in"…) and
/// split at "and"/"or"; parentheticals ("(HL)") are names of their own.
/// Sentences and headings about reducing a risk or preventing something are
/// skipped: what a product prevents (a myocardial infarction on a statin) is
/// not what the patient has, and happening anyway is a report.
pub fn indication_names(title: &str, body: &str) -> (Vec<String>, Vec<String>) {
    static TRIGGER: OnceLock<Regex> = OnceLock::new();
    static RISK: OnceLock<Regex> = OnceLock::new();
    let risk = re(&RISK, r"\b(?:risks?|prevent\w*|prevention|prophyla\w*|reduc\w* the (?:incidence|likelihood|occurrence))\b");
    let mut names: Vec<String> = Vec::new();
    let mut short: Vec<String> = Vec::new();
    let heading = title.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ' ').trim();
    let heading_words: Vec<&str> = heading.split_whitespace().collect();
    if !heading_words.is_empty() && !heading_words.iter().any(|w| NOT_INDICATION_TITLE.contains(w)) && !risk.is_match(heading) {
        names.push(heading.to_string());
        if heading_words.len() >= 2 {
            let initials: String = heading_words.iter().filter_map(|w| w.chars().next()).filter(|c| c.is_ascii_alphabetic()).collect();
            if initials.len() == heading_words.len() && !INDICATION_STOP.contains(&initials.as_str()) {
                short.push(initials);
            }
        }
    }
    let trigger = re(&TRIGGER, r"\b(?:(?:patients|adults|children|individuals|people|persons) with|(?:treatment|management|control) of(?: (?:the )?(?:manifestations|signs and symptoms) of)?)(?: (?:adult |pediatric )?patients with)? ");
    for (a, b) in text::sentences(body) {
        let s = &body[a..b];
        if risk.is_match(s) {
            continue;
        }
        for m in trigger.find_iter(s) {
            let mut phrase: Vec<&str> = Vec::new();
            let mut words = s[m.end()..].split(' ').filter(|w| !w.is_empty());
            while let Some(w) = words.next() {
                if w.starts_with('(') {
                    // A parenthetical: its own name (an abbreviation when one word).
                    let mut inner = vec![w.trim_start_matches('(')];
                    let mut closed = w.contains(')');
                    while !closed {
                        match words.next() {
                            Some(x) => {
                                closed = x.contains(')');
                                inner.push(x);
                            }
                            None => break,
                        }
                    }
                    let inner = inner.join(" ");
                    let inner = inner.split(')').next().unwrap_or("").trim();
                    if !inner.is_empty() && !inner.contains(' ') && inner.len() <= 8 && !INDICATION_STOP.contains(&inner) {
                        short.push(inner.to_string());
                    } else if !inner.is_empty() && inner.split(' ').count() <= MAX_INDICATION_WORDS {
                        names.push(inner.to_string());
                    }
                    if w.ends_with(',') || w.ends_with(';') || w.ends_with('.') || w.ends_with(':') {
                        break;
                    }
                    continue;
                }
                let bare = w.trim_end_matches([',', ';', '.', ':']);
                if INDICATION_STOP.contains(&bare) || bare.is_empty() {
                    break;
                }
                phrase.push(bare);
                if bare.len() != w.len() {
                    break;
                }
            }
            let phrase = phrase.join(" ");
            for part in phrase.split(" and/or ").flat_map(|p| p.split(" and ")).flat_map(|p| p.split(" or ")) {
                let part = part.trim();
                let n = part.split(' ').count();
                if !part.is_empty() && n <= MAX_INDICATION_WORDS && part.chars().any(|c| c.is_alphabetic()) {
                    names.push(part.to_string());
                }
            }
        }
    }
    names.dedup();
    short.dedup();
    (names, short)
}

/// Whether `term` occurs in `hay` on word boundaries (a trailing `s` or `'s` allowed).
pub fn contains_words(hay: &str, term: &str) -> bool {
    let mut from = 0;
    while let Some(i) = hay[from..].find(term) {
        let a = from + i;
        let b = a + term.len();
        let start_ok = a == 0 || !text::is_word_byte(hay.as_bytes()[a - 1]);
        let rest = &hay[b..];
        let end_ok = b >= hay.len()
            || !text::is_word_byte(hay.as_bytes()[b])
            || (rest.starts_with('s') && rest.as_bytes().get(1).is_none_or(|c| !text::is_word_byte(*c)));
        if start_ok && end_ok {
            return true;
        }
        from = a + 1;
        while !hay.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_ranges_read_the_usual_phrasings() {
        assert_eq!(age_ranges("pediatric patients 4 years of age and older"), vec![(4.0, 200.0)]);
        assert_eq!(age_ranges("patients 10 to 17 years of age"), vec![(10.0, 17.99)]);
        assert_eq!(age_ranges("children between the ages of 3 and 12 years"), vec![(3.0, 12.99)]);
        assert!(age_ranges("patients 65 years and older").is_empty());
    }

    #[test]
    fn doses_keep_units_apart() {
        assert_eq!(mg_doses("40 mg every other week; 1.8 mg/kg; 5 mg/ml; 80 mg/day"), vec![40.0, 80.0]);
        assert_eq!(mg_kg_doses("1.8 mg/kg up to 180 mg"), vec![1.8]);
    }

    #[test]
    fn unnumbered_headings_are_grouped() {
        assert_eq!(group_of("INDICATIONS AND USAGE", "INDICATIONS AND USAGE", None), (Some(1), Some(1)));
        assert_eq!(group_of("DOSAGE AND ADMINISTRATION", "DOSAGE AND ADMINISTRATION", None), (Some(2), Some(2)));
        assert_eq!(group_of("Children", "Children", Some(2)), (Some(2), Some(2)));
        assert_eq!(group_of("Pediatric Use", "Pediatric Use", None), (Some(8), None));
        assert_eq!(group_of("5.2", "Hepatotoxicity", Some(2)), (None, None));
        assert_eq!(group_of("8.4", "Pediatric Use", None), (Some(8), Some(8)));
    }

    #[test]
    fn indications_come_from_headings_and_phrases_not_from_risks() {
        let (n, s) = indication_names(
            "rheumatoid arthritis",
            "humira is indicated for reducing signs and symptoms in adult patients with moderately to severely active rheumatoid arthritis. humira can be used alone.",
        );
        assert!(n.contains(&"rheumatoid arthritis".to_string()), "{n:?}");
        assert!(n.contains(&"moderately to severely active rheumatoid arthritis".to_string()), "{n:?}");
        assert_eq!(s, ["ra"]);
        let (n, s) = indication_names("hodgkin lymphoma", "adcetris is indicated for treatment of patients with hodgkin lymphoma (hl) after failure of autologous stem cell transplant (asct).");
        assert!(n.contains(&"hodgkin lymphoma".to_string()) && !n.iter().any(|x| x.contains("failure")), "{n:?}");
        assert!(s.contains(&"hl".to_string()), "{s:?}");
        // What a statin lowers the risk of is not what the patient has.
        let (n, _) = indication_names(
            "prevention of cardiovascular disease",
            "in patients with type 2 diabetes, lipitor is indicated to: reduce the risk of myocardial infarction. reduce the risk of stroke.",
        );
        assert!(n.is_empty(), "{n:?}");
        let (n, _) = indication_names("indications and usage", "haloperidol is indicated for use in the management of manifestations of psychotic disorders.");
        assert_eq!(n, ["psychotic disorders"]);
    }

    #[test]
    fn words_match_on_boundaries() {
        assert!(contains_words("crohn's disease", "crohn"));
        assert!(contains_words("in adults with rheumatoid arthritis.", "rheumatoid arthritis"));
        assert!(!contains_words("reactive arthritis", "ra"));
        assert!(contains_words("for jia patients", "jia"));
    }
}
