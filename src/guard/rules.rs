//! The rules file (`rules/guard-rules.toml`): versioned, reviewed by MLR like a
//! prompt, compiled once into regexes. Nothing about *what* is forbidden or
//! off-label lives in Rust; the code only knows how to apply each table.
//!
//! All patterns are regexes over normalised text (lower-case, accents folded,
//! curly quotes and dashes made ASCII; see `text::Norm`).

use std::collections::HashMap;
use std::path::Path;

use regex::{Regex, RegexSet, RegexSetBuilder};
use serde::Deserialize;

use super::{Error, Result};
use super::Route;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// Name of the rule set (`guard-rules`).
    pub name: String,
    /// Version number, bumped on every MLR-approved change.
    pub version: u32,
    /// Vocabularies the structural checks use.
    pub vocab: Vocab,
    /// AE report cues and blockers.
    #[serde(default)]
    pub cue: Vec<CueDef>,
    /// Special situations that go to Pharmacovigilance without an adverse event.
    #[serde(default)]
    pub special: Vec<SpecialDef>,
    /// Red-flag rules on input and output.
    #[serde(default)]
    pub rule: Vec<RuleDef>,
    /// Question patterns judged against the product's label (sections 1, 2, 8).
    #[serde(default)]
    pub label_rule: Vec<LabelRuleDef>,
    /// Dosing frequencies, judged against the dosing subsection in question.
    #[serde(default)]
    pub frequency: Vec<FrequencyDef>,
    /// Settings of the structural off-label checks.
    pub offlabel: OffLabelDef,
    /// Fair balance of emails.
    pub fair_balance: FairBalanceDef,
}

/// Vocabularies: one group of equivalent names a line, separated by `|`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vocab {
    /// Drug names (brand | generic | common misspellings); the products too.
    pub drugs: Vec<String>,
    /// Diseases and conditions a product may be asked about.
    pub conditions: Vec<String>,
}

/// An AE cue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CueDef {
    /// Rule id (reason code).
    pub id: String,
    /// `temporal`, `causal`, `experience`, `experiencer`, `hypothetical`,
    /// `negation`, `label_question`, `general_statement`.
    pub class: String,
    /// Regexes.
    pub patterns: Vec<String>,
}

/// A special situation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialDef {
    /// Rule id.
    pub id: String,
    /// `pregnancy_exposure`, `breastfeeding_exposure`, `overdose`, `medication_error`, …
    pub situation: String,
    /// Regexes.
    pub patterns: Vec<String>,
}

/// A red-flag rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// Rule id.
    pub id: String,
    /// Flag kind.
    pub kind: String,
    /// Route on input (`refused` or `medical`).
    pub route: Option<String>,
    /// `input`, `output` or `both`.
    pub applies: String,
    /// Why, shown to the rep.
    pub reason: String,
    /// Regexes; any one fires the rule.
    pub patterns: Vec<String>,
    /// Regexes that, in the same sentence, cancel it.
    #[serde(default)]
    pub unless: Vec<String>,
    /// Where `unless` looks: `sentence` (the default) or `text` (anywhere in
    /// the input: "X better than Y? Any head-to-head trials?").
    #[serde(default)]
    pub unless_scope: Option<String>,
    /// `competitor`: fires only when a drug other than the product is named in the same sentence.
    #[serde(default)]
    pub needs: Option<String>,
}

/// A question pattern judged against the label.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRuleDef {
    /// Rule id.
    pub id: String,
    /// Flag kind (`off_label`).
    pub kind: String,
    /// Why.
    pub reason: String,
    /// Question regexes.
    pub patterns: Vec<String>,
    /// Fires only if sections 1/2/8 match this regex.
    #[serde(default)]
    pub label_has: Option<String>,
    /// Fires only if sections 1/2/8 do not match this regex.
    #[serde(default)]
    pub label_lacks: Option<String>,
    /// Regexes that, in the same sentence, cancel it.
    #[serde(default)]
    pub unless: Vec<String>,
}

/// A dosing frequency.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyDef {
    /// Rule id.
    pub id: String,
    /// Question regexes.
    pub patterns: Vec<String>,
    /// How the label writes it (regex over the dosing subsection).
    pub label: String,
}

/// Settings of the structural off-label checks (conditions, ages, weights, doses, combinations).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffLabelDef {
    /// A question about what the label says (cancels condition checks without use intent).
    pub label_question: Vec<String>,
    /// Intent to use, dose, promote or treat.
    pub use_intent: Vec<String>,
    /// Words that ask for a combination with another drug.
    pub combination: Vec<String>,
    /// A yes/no permissibility question ("can it be given with").
    pub permissibility: Vec<String>,
    /// In generated text: a claim of use or efficacy ("is indicated for", "works for").
    pub claim: Vec<String>,
    /// Words naming a pediatric population ("kids", "peds", "toddler"), in the field forces' languages.
    pub pediatric_words: Vec<String>,
    /// How numbers in a question are read (ages, weights, doses).
    pub quantities: QuantitiesDef,
    /// "Used for X": group 1 is the use X, checked word by word against the label.
    pub use_for: String,
    /// Words of X that say nothing about the use ("patients", "moderate").
    pub use_for_generic: Vec<String>,
    /// Words that end X (a new clause starts: "if", "because").
    pub use_for_stops: Vec<String>,
    /// Reasons by check: indication, pediatric, weight, dose, frequency,
    /// combination, geriatric, encoded.
    pub reasons: HashMap<String, String>,
}

/// How the structural checks read numbers in a question. Each pattern's
/// first capture group (or the first that matched) is the value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantitiesDef {
    /// An age in years ("7 year old", "12yo", "aged 9").
    pub age_years: String,
    /// An age in months ("18 month old").
    pub age_months: String,
    /// "Under N" / "younger than N": counted as N - 0.5.
    pub age_under: String,
    /// "N and older".
    pub age_older: String,
    /// A body weight in kg (not mg/kg).
    pub weight_kg: String,
    /// A dose in mg; a second group marks mg/kg.
    pub dose_mg: String,
    /// A bare number right after the product's name ("lipitor 80"); a second group (a unit) cancels it.
    pub dose_after_product: String,
    /// "Bump her to N"; a second group (a unit) cancels it.
    pub dose_target: String,
}

/// The compiled quantity patterns.
#[derive(Debug)]
pub struct Quantities {
    /// See [`QuantitiesDef`].
    pub age_years: Regex,
    /// See [`QuantitiesDef`].
    pub age_months: Regex,
    /// See [`QuantitiesDef`].
    pub age_under: Regex,
    /// See [`QuantitiesDef`].
    pub age_older: Regex,
    /// See [`QuantitiesDef`].
    pub weight_kg: Regex,
    /// See [`QuantitiesDef`].
    pub dose_mg: Regex,
    /// See [`QuantitiesDef`].
    pub dose_after_product: Regex,
    /// See [`QuantitiesDef`].
    pub dose_target: Regex,
}

/// Fair balance of emails.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairBalanceDef {
    /// Rule id.
    pub id: String,
    /// Benefit or efficacy statements.
    pub benefit: Vec<String>,
    /// Risk information.
    pub risk: Vec<String>,
    /// Why.
    pub reason: String,
}

/// A compiled pattern list: one regex (alternation) for finding spans.
#[derive(Debug, Clone)]
pub struct Pat {
    /// The alternation of all patterns.
    pub re: Regex,
}

impl Pat {
    /// First match in `text[a..b]`, as absolute offsets.
    pub fn find_in(&self, text: &str, a: usize, b: usize) -> Option<(usize, usize)> {
        self.re.find(&text[a..b]).map(|m| (a + m.start(), a + m.end()))
    }
    /// Whether it matches `text[a..b]`.
    pub fn is_match_in(&self, text: &str, a: usize, b: usize) -> bool {
        self.re.is_match(&text[a..b])
    }
}

/// A compiled cue.
#[derive(Debug)]
pub struct Cue {
    /// Rule id.
    pub id: String,
    /// Class.
    pub class: CueClass,
    /// Patterns.
    pub pat: Pat,
}

/// Lazy-DFA cache of the cue and rule sets (bytes).
const SET_DFA_BYTES: usize = 32 << 20;

/// What a cue tells about an adverse-event mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CueClass {
    /// When it happened relative to the drug ("after starting", "since").
    Temporal,
    /// Attribution ("-induced", "caused by").
    Causal,
    /// Someone went through it ("developed", "broke out", "was hospitalized").
    Experience,
    /// A specific patient is the subject ("my patient", "Mr. D"); overrides
    /// label-question and general-statement blockers.
    Experiencer,
    /// "what if", "might get".
    Hypothetical,
    /// "none of her patients had", "no side effects".
    Negation,
    /// "what does the label say".
    LabelQuestion,
    /// Label or trial prose ("were reported", "in clinical trials").
    GeneralStatement,
}

/// A compiled special situation.
#[derive(Debug)]
pub struct Special {
    /// Rule id.
    pub id: String,
    /// Situation name.
    pub situation: String,
    /// Patterns.
    pub pat: Pat,
}

/// A compiled red-flag rule.
#[derive(Debug)]
pub struct Rule {
    /// Rule id.
    pub id: String,
    /// Flag kind.
    pub kind: String,
    /// Route on input.
    pub route: Route,
    /// Screens questions.
    pub input: bool,
    /// Screens generated text.
    pub output: bool,
    /// Why.
    pub reason: String,
    /// Patterns.
    pub pat: Pat,
    /// Exceptions in the same sentence.
    pub unless: Option<Pat>,
    /// The exceptions look at the whole input, not only the sentence.
    pub unless_in_text: bool,
    /// Needs a named competitor in the sentence.
    pub needs_competitor: bool,
}

/// A compiled label rule.
#[derive(Debug)]
pub struct LabelRule {
    /// Rule id.
    pub id: String,
    /// Flag kind.
    pub kind: String,
    /// Why.
    pub reason: String,
    /// Question patterns.
    pub pat: Pat,
    /// Label must match.
    pub label_has: Option<Regex>,
    /// Label must not match.
    pub label_lacks: Option<Regex>,
    /// Exceptions in the same sentence.
    pub unless: Option<Pat>,
}

/// A compiled frequency.
#[derive(Debug)]
pub struct Frequency {
    /// Rule id.
    pub id: String,
    /// Question patterns.
    pub pat: Pat,
    /// Label pattern.
    pub label: Regex,
}

/// The compiled rule set.
#[derive(Debug)]
pub struct Rules {
    /// `guard-rules@N sha256:…`.
    pub version: String,
    /// Drug groups: names, first is the display name.
    pub drugs: Vec<Vec<String>>,
    /// Condition groups.
    pub conditions: Vec<Vec<String>>,
    /// AE cues.
    pub cues: Vec<Cue>,
    /// One set over all cue patterns, to skip sentences with nothing to look at.
    pub cue_set: RegexSet,
    /// Special situations.
    pub specials: Vec<Special>,
    /// Red-flag rules.
    pub rules: Vec<Rule>,
    /// One set over all rules (index = rule index) for the quick pass.
    pub rule_set: RegexSet,
    /// Label rules.
    pub label_rules: Vec<LabelRule>,
    /// Frequencies.
    pub frequencies: Vec<Frequency>,
    /// Label-question patterns.
    pub label_question: Pat,
    /// Use-intent patterns.
    pub use_intent: Pat,
    /// Combination words.
    pub combination: Pat,
    /// Permissibility questions.
    pub permissibility: Pat,
    /// Claims of use in generated text.
    pub claim: Pat,
    /// Pediatric population words.
    pub pediatric_words: Pat,
    /// Number readers of the structural checks.
    pub quantities: Quantities,
    /// "Used for X".
    pub use_for: Regex,
    /// Generic words of X.
    pub use_for_generic: std::collections::HashSet<String>,
    /// Words that end X.
    pub use_for_stops: std::collections::HashSet<String>,
    /// Reasons of the structural checks.
    pub reasons: HashMap<String, String>,
    /// Fair balance.
    pub fair_balance_id: String,
    /// Benefit statements.
    pub benefit: Pat,
    /// Risk information.
    pub risk: Pat,
    /// Why fair balance is missing.
    pub fair_balance_reason: String,
}

impl Rules {
    /// Parses and compiles the rules file; errors name the file and the line.
    pub fn parse(src: &str, path: &Path) -> Result<Rules> {
        let file: RulesFile = toml::from_str(src).map_err(|e| {
            let line = e.span().map(|s| line_of(src, s.start)).unwrap_or(0);
            Error::Parse { path: path.to_owned(), line, message: e.message().to_string() }
        })?;
        let hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(src.as_bytes()))
        };
        let version = format!("{}@{} sha256:{}", file.name, file.version, &hash[..16]);
        let ctx = Ctx { src, path };
        let group = |s: &String| -> Vec<String> {
            s.split('|').map(|x| crate::guard::text::Norm::new(x.trim()).text).filter(|x| !x.is_empty()).collect()
        };
        let drugs = file.vocab.drugs.iter().map(group).collect();
        let conditions = file.vocab.conditions.iter().map(group).collect();

        let mut cues = Vec::new();
        let mut all_cue_patterns = Vec::new();
        for c in &file.cue {
            let class = match c.class.as_str() {
                "temporal" => CueClass::Temporal,
                "causal" => CueClass::Causal,
                "experience" => CueClass::Experience,
                "experiencer" => CueClass::Experiencer,
                "hypothetical" => CueClass::Hypothetical,
                "negation" => CueClass::Negation,
                "label_question" => CueClass::LabelQuestion,
                "general_statement" => CueClass::GeneralStatement,
                other => return Err(ctx.err(&c.id, format!("cue {}: unknown class {other:?}", c.id))),
            };
            all_cue_patterns.push(ctx.alternation(&c.id, &c.patterns)?);
            cues.push(Cue { id: c.id.clone(), class, pat: ctx.pat(&c.id, &c.patterns)? });
        }
        // A larger lazy-DFA cache than the default 2 MiB: the cue set is big
        // (four languages) and a thrashing cache doubles screening time.
        let cue_set = RegexSetBuilder::new(&all_cue_patterns)
            .dfa_size_limit(SET_DFA_BYTES)
            .build()
            .map_err(|e| ctx.err("cue", e.to_string()))?;
        let specials = file
            .special
            .iter()
            .map(|s| Ok(Special { id: s.id.clone(), situation: s.situation.clone(), pat: ctx.pat(&s.id, &s.patterns)? }))
            .collect::<Result<Vec<_>>>()?;

        let mut rules = Vec::new();
        let mut rule_patterns = Vec::new();
        for r in &file.rule {
            let route = match r.route.as_deref() {
                None | Some("refused") => Route::Refused,
                Some("medical") => Route::Medical,
                Some("pharmacovigilance") => Route::Pharmacovigilance,
                Some(other) => return Err(ctx.err(&r.id, format!("rule {}: unknown route {other:?}", r.id))),
            };
            let (input, output) = match r.applies.as_str() {
                "input" => (true, false),
                "output" => (false, true),
                "both" => (true, true),
                other => return Err(ctx.err(&r.id, format!("rule {}: applies must be input, output or both, not {other:?}", r.id))),
            };
            let needs_competitor = match r.needs.as_deref() {
                None => false,
                Some("competitor") => true,
                Some(other) => return Err(ctx.err(&r.id, format!("rule {}: unknown needs {other:?}", r.id))),
            };
            let unless_in_text = match r.unless_scope.as_deref() {
                None | Some("sentence") => false,
                Some("text") => true,
                Some(other) => return Err(ctx.err(&r.id, format!("rule {}: unless_scope must be sentence or text, not {other:?}", r.id))),
            };
            rule_patterns.push(ctx.alternation(&r.id, &r.patterns)?);
            rules.push(Rule {
                unless_in_text,
                id: r.id.clone(),
                kind: r.kind.clone(),
                route,
                input,
                output,
                reason: r.reason.clone(),
                pat: ctx.pat(&r.id, &r.patterns)?,
                unless: ctx.opt_pat(&r.id, &r.unless)?,
                needs_competitor,
            });
        }
        let rule_set = RegexSetBuilder::new(&rule_patterns)
            .dfa_size_limit(SET_DFA_BYTES)
            .build()
            .map_err(|e| ctx.err("rule", e.to_string()))?;
        let label_rules = file
            .label_rule
            .iter()
            .map(|r| {
                Ok(LabelRule {
                    id: r.id.clone(),
                    kind: r.kind.clone(),
                    reason: r.reason.clone(),
                    pat: ctx.pat(&r.id, &r.patterns)?,
                    label_has: r.label_has.as_ref().map(|p| ctx.regex(&r.id, p)).transpose()?,
                    label_lacks: r.label_lacks.as_ref().map(|p| ctx.regex(&r.id, p)).transpose()?,
                    unless: ctx.opt_pat(&r.id, &r.unless)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let frequencies = file
            .frequency
            .iter()
            .map(|f| Ok(Frequency { id: f.id.clone(), pat: ctx.pat(&f.id, &f.patterns)?, label: ctx.regex(&f.id, &f.label)? }))
            .collect::<Result<Vec<_>>>()?;
        let o = &file.offlabel;
        for key in ["indication", "pediatric", "weight", "dose", "frequency", "combination", "geriatric", "encoded"] {
            if !o.reasons.contains_key(key) {
                return Err(ctx.err("[offlabel.reasons]", format!("[offlabel.reasons] needs a reason for {key:?}")));
            }
        }
        let fb = &file.fair_balance;
        Ok(Rules {
            version,
            drugs,
            conditions,
            cues,
            cue_set,
            specials,
            rules,
            rule_set,
            label_rules,
            frequencies,
            label_question: ctx.pat("offlabel.label_question", &o.label_question)?,
            use_intent: ctx.pat("offlabel.use_intent", &o.use_intent)?,
            combination: ctx.pat("offlabel.combination", &o.combination)?,
            permissibility: ctx.pat("offlabel.permissibility", &o.permissibility)?,
            claim: ctx.pat("offlabel.claim", &o.claim)?,
            pediatric_words: ctx.pat("offlabel.pediatric_words", &o.pediatric_words)?,
            use_for: Regex::new(&o.use_for).map_err(|e| ctx.err(&o.use_for, format!("offlabel.use_for: {e}")))?,
            use_for_generic: o.use_for_generic.iter().cloned().collect(),
            use_for_stops: o.use_for_stops.iter().cloned().collect(),
            quantities: {
                let qd = &o.quantities;
                let one = |name: &str, p: &String| -> Result<Regex> {
                    Regex::new(p).map_err(|e| ctx.err(p, format!("offlabel.quantities.{name}: {e}")))
                };
                Quantities {
                    age_years: one("age_years", &qd.age_years)?,
                    age_months: one("age_months", &qd.age_months)?,
                    age_under: one("age_under", &qd.age_under)?,
                    age_older: one("age_older", &qd.age_older)?,
                    weight_kg: one("weight_kg", &qd.weight_kg)?,
                    dose_mg: one("dose_mg", &qd.dose_mg)?,
                    dose_after_product: one("dose_after_product", &qd.dose_after_product)?,
                    dose_target: one("dose_target", &qd.dose_target)?,
                }
            },
            reasons: o.reasons.clone(),
            fair_balance_id: fb.id.clone(),
            benefit: ctx.pat(&fb.id, &fb.benefit)?,
            risk: ctx.pat(&fb.id, &fb.risk)?,
            fair_balance_reason: fb.reason.clone(),
        })
    }
}

/// Line (1-based) of a byte offset.
pub fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

struct Ctx<'a> {
    src: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    /// An error located at the line that names `id` (or the first line).
    fn err(&self, id: &str, message: String) -> Error {
        let needle = format!("\"{id}\"");
        let line = self.src.find(&needle).or_else(|| self.src.find(id)).map(|o| line_of(self.src, o)).unwrap_or(1);
        Error::Parse { path: self.path.to_owned(), line, message }
    }

    fn regex(&self, id: &str, p: &str) -> Result<Regex> {
        Regex::new(p).map_err(|e| {
            let line = self.src.find(p).map(|o| line_of(self.src, o));
            let line = line.unwrap_or_else(|| match self.err(id, String::new()) {
                Error::Parse { line, .. } => line,
                _ => 1,
            });
            Error::Parse { path: self.path.to_owned(), line, message: format!("{id}: bad regex {p:?}: {e}") }
        })
    }

    fn alternation(&self, id: &str, ps: &[String]) -> Result<String> {
        if ps.is_empty() {
            return Err(self.err(id, format!("{id}: no patterns")));
        }
        for p in ps {
            self.regex(id, p)?;
        }
        Ok(ps.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|"))
    }

    fn pat(&self, id: &str, ps: &[String]) -> Result<Pat> {
        let alt = self.alternation(id, ps)?;
        Ok(Pat { re: self.regex(id, &alt)? })
    }

    fn opt_pat(&self, id: &str, ps: &[String]) -> Result<Option<Pat>> {
        if ps.is_empty() {
            Ok(None)
        } else {
            self.pat(id, ps).map(Some)
        }
    }
}
