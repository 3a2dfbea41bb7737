//! [`Composer`]: the rep's one-glance answer (issue 19, point 2) — the
//! statement that answers the question first, then at most two qualifiers
//! a fair answer needs, each an approved sentence quoted verbatim with its
//! own citation, joined only by the connectives the approved `answer`
//! template lists.
//!
//! # Steps
//!
//! 1. **Select** ([`Composer::pick`]). Over the extractive candidate set
//!    ([`select::candidates`]) the learned sentence scorer
//!    ([`select::RerankHead`]) ranks every sentence; its best leads (or,
//!    when the extractive gate carries the cross-encoder, the cross-encoder's
//!    rescoring of the head's best, as in the extractive answer). A
//!    qualifier is a candidate from a boxed warning, a contraindication or a
//!    warning ([`select::section_kind`]), or a monitoring instruction
//!    ([`is_monitoring`]) outside an overdose, pharmacology or study section,
//!    that is about the lead's topic — it holds the heaviest topic concept
//!    the lead holds ([`topics`]; a lead with none: it comes from the lead's
//!    passage and holds some question concept) — and that the scorer ranks within
//!    [`Composer::qualifier_margin`] of the lead. The best such qualifiers
//!    are added while the answer stays within [`Composer::max_words`] (a
//!    long lead alone is fine) and [`Composer::max_statements`].
//! 2. **Render** with the registry's live `answer` template
//!    (`prompts/answer.j2`, [`super::DraftTemplates::answer`]) over the
//!    statements (text, marker `n`, role).
//! 3. **Check** ([`check`]): the rendering must be exactly the statements in
//!    order, each `[connective ]text [n]` with a connective from the
//!    template's `connectives:` header line ([`connectives`]), one space
//!    apart. Anything else is refused ([`Error::Mismatch`]).
//! 4. **Verify** each statement, its connective stripped, with the
//!    caller's check (the citation verifier and the output guard, see
//!    `Copilot::answer_for`): a failing qualifier is dropped and the rest
//!    rendered again; a failing lead refuses the composition.
//!
//! Any refusal is logged and the copilot answers with the rank-quoted
//! extractive answer instead ([`super::Extractive`], `mode: extractive`).
//! No clause is trimmed: statements are whole approved sentences.

use serde::Serialize;
use serde_json::json;

use crate::index::analysis::{contains_phrase, strip_cross_references};
use crate::index::{Analyzer, SearchResult};
use crate::llm::Sentence;
use crate::prompts::PromptFile;

use super::cite::Numbering;
use super::email::same_statement;
use super::extractive::{select, Extractive};

/// Most statements in a composed answer: the lead and two qualifiers.
pub const MAX_STATEMENTS: usize = 3;
/// Most connectives a template may list.
pub const MAX_CONNECTIVES: usize = 16;
/// Longest connective, in characters: a connective joins, it does not state.
pub const MAX_CONNECTIVE_CHARS: usize = 40;
/// Most concepts of a question [`topics`] tracks (one bit each).
pub const MAX_TOPIC_CONCEPTS: usize = 64;

/// Why a composition was refused (the copilot then answers extractively).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// The template's header has no valid `connectives:` list.
    #[error("the answer template {template} has no valid `connectives:` line in its header: {reason}")]
    Connectives {
        /// `answer@N`.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The template does not render.
    #[error("the answer template {template} does not render: {reason}")]
    Render {
        /// `answer@N`.
        template: String,
        /// minijinja's message.
        reason: String,
    },
    /// The rendering is not the statements, their markers and listed connectives.
    #[error("the answer template {template} rendered something other than its statements, markers and listed connectives (at byte {at} of the rendering)")]
    Mismatch {
        /// `answer@N`.
        template: String,
        /// Where the rendering stops matching.
        at: usize,
    },
    /// The answering statement did not pass the verifier or the output guard.
    #[error("the answering statement did not pass the verifier or the output guard")]
    Unverified,
    /// Nothing to compose from (no candidate, or no scorer).
    #[error("no candidate sentence to compose from")]
    Nothing,
}

/// What a statement does in the answer (given to the template as `role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The statement that answers the question.
    Lead,
    /// A qualifier from the boxed warning.
    Boxed,
    /// A qualifier from the contraindications.
    Contraindication,
    /// A qualifier from the warnings and precautions.
    Warning,
    /// A monitoring instruction.
    Monitoring,
}

impl Role {
    /// The name the template sees.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Lead => "lead",
            Role::Boxed => "boxed",
            Role::Contraindication => "contraindication",
            Role::Warning => "warning",
            Role::Monitoring => "monitoring",
        }
    }
}

/// Whether a sentence tells the prescriber to monitor, test or check
/// something (a qualifier from any section).
pub fn is_monitoring(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"(?i)\b(?:monitor(?:ing)?|measure|obtain|check|assess|evaluate|screen(?:ing)?\s+(?:for|patients))\b").expect("static regex")
    })
    .is_match(s)
}

/// Section kinds whose monitoring sentences are not a qualifier of a
/// treatment answer: an overdose's care, a study's or a pharmacology
/// section's measurements, trial results, storage.
const NOT_MONITORING: [&str; 7] = ["overdosage", "pharmacology", "toxicology", "studies", "description", "adverse", "supplied"];

/// The qualifier role of a candidate, `None` when it cannot qualify: a
/// boxed-warning, contraindication or warning sentence, or a monitoring
/// instruction (not from a section of [`NOT_MONITORING`]); never a list
/// lead-in (its items are not quoted with it).
pub fn qualifier_role(c: &select::Candidate) -> Option<Role> {
    if c.text.trim_end().ends_with(':') {
        return None;
    }
    match select::section_kind(c.doc_id, c.section, c.title, c.parent) {
        "boxed" => Some(Role::Boxed),
        "contraindications" => Some(Role::Contraindication),
        "warnings" => Some(Role::Warning),
        k if !NOT_MONITORING.contains(&k) && is_monitoring(c.text) => Some(Role::Monitoring),
        _ => None,
    }
}

/// A statement chosen for the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Picked<'a> {
    /// The sentence, verbatim.
    pub text: &'a str,
    /// Index of its passage among the hits.
    pub hit: usize,
    /// What it does in the answer.
    pub role: Role,
}

/// One statement of a composed answer, as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The listed connective before it, if the template put one.
    pub connective: Option<String>,
    /// The statement and its passage.
    pub sentence: Sentence,
    /// What it does in the answer.
    pub role: Role,
    /// Its citation marker.
    pub n: usize,
}

impl Part {
    /// `[connective ]text [n]`, as in the answer.
    pub fn marked(&self) -> String {
        match &self.connective {
            Some(c) => format!("{c} {} [{}]", self.sentence.text, self.n),
            None => format!("{} [{}]", self.sentence.text, self.n),
        }
    }
}

/// A composed answer that passed the check and the verifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    /// The statements in order (one to [`MAX_STATEMENTS`]).
    pub parts: Vec<Part>,
    /// The answer text: the template's rendering (outer whitespace
    /// trimmed), which [`check`] found to be the parts joined by a space.
    pub text: String,
    /// The template used, `answer@N`.
    pub prompt_version: String,
    /// SHA-256 of the template's content.
    pub prompt_sha256: String,
}

/// The composer and its limits.
#[derive(Debug, Clone)]
pub struct Composer {
    /// Most statements (clamped to 1..=[`MAX_STATEMENTS`]).
    pub max_statements: usize,
    /// Most words in the whole answer once a qualifier is added; the lead
    /// alone is never cut. 60: the issue's p90 budget for an answer read
    /// out mid-call.
    pub max_words: usize,
    /// A qualifier's logit must be at least the lead's minus this: a
    /// warning the scorer finds far less related to the question is not
    /// this answer's qualifier.
    pub qualifier_margin: f64,
    /// A question concept is a *topic* (qualifiers must share one with the
    /// lead) when its weight is at least this share of the heaviest
    /// concept's: the product's own name, in every passage of its label,
    /// weighs little and makes nothing the same topic.
    pub topic_weight: f32,
}

impl Default for Composer {
    fn default() -> Self {
        Composer { max_statements: MAX_STATEMENTS, max_words: 60, qualifier_margin: 3.0, topic_weight: 0.3 }
    }
}

/// The topic concepts each candidate holds, one bit per *topic* concept —
/// a question concept that names no section kind and weighs at least
/// `topic_weight` of the heaviest — bit 0 for the heaviest, then by
/// decreasing weight (the first [`MAX_TOPIC_CONCEPTS`]).
pub fn topics(analyzer: &Analyzer, search: &SearchResult, cands: &[select::Candidate], topic_weight: f32) -> Vec<u64> {
    let max = search.weights.iter().copied().fold(0.0f32, f32::max);
    let mut topical: Vec<usize> = (0..search.concepts.len())
        .filter(|&i| search.concepts[i].section_intent().is_none() && search.weights.get(i).is_some_and(|w| *w > 0.0 && *w >= topic_weight * max))
        .collect();
    topical.sort_by(|&a, &b| search.weights[b].total_cmp(&search.weights[a]).then(a.cmp(&b)));
    topical.truncate(MAX_TOPIC_CONCEPTS);
    cands
        .iter()
        .map(|c| {
            let toks = analyzer.tokens(&strip_cross_references(c.text));
            topical
                .iter()
                .enumerate()
                .filter(|(_, &i)| search.concepts[i].alternatives.iter().any(|a| contains_phrase(&toks, a)))
                .fold(0u64, |m, (bit, _)| m | (1 << bit))
        })
        .collect()
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

impl Composer {
    /// The statements of the answer: the best-scored candidate, then the
    /// qualifiers (see the module docs), the lead first and the qualifiers
    /// by role (boxed warning first), then score. `logits` and `topics` are
    /// per candidate; empty when there is no candidate or the lengths differ.
    pub fn pick<'a>(&self, cands: &[select::Candidate<'a>], logits: &[f64], topics: &[u64]) -> Vec<Picked<'a>> {
        if cands.is_empty() || logits.len() != cands.len() || topics.len() != cands.len() {
            return Vec::new();
        }
        // The first best on a tie, as `RerankHead::best`; a NaN never leads.
        let Some(lead) = (0..cands.len()).filter(|&i| !logits[i].is_nan()).fold(None, |b: Option<usize>, i| match b {
            Some(b) if logits[b] >= logits[i] => Some(b),
            _ => Some(i),
        }) else {
            return Vec::new();
        };
        self.pick_led(cands, logits, topics, lead)
    }

    /// [`Composer::pick`] with the lead given (the cross-encoder's pick,
    /// when one rescored the head's best); empty when `lead` or the
    /// lengths do not fit the candidates.
    pub fn pick_led<'a>(&self, cands: &[select::Candidate<'a>], logits: &[f64], topics: &[u64], lead: usize) -> Vec<Picked<'a>> {
        if lead >= cands.len() || logits.len() != cands.len() || topics.len() != cands.len() || logits[lead].is_nan() {
            return Vec::new();
        }
        let l = &cands[lead];
        let mut chosen = vec![Picked { text: l.text, hit: l.hit, role: Role::Lead }];
        let mut total = words(l.text);
        // The lead's main topic: the heaviest topic concept it holds (the
        // lowest bit, see [`topics`]); 0 when it holds none.
        let key = topics[lead] & topics[lead].wrapping_neg();
        let mut order: Vec<usize> = (0..cands.len()).filter(|&i| i != lead && logits[i] >= logits[lead] - self.qualifier_margin).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        let mut qualifiers = Vec::new();
        for i in order {
            if 1 + qualifiers.len() >= self.max_statements.clamp(1, MAX_STATEMENTS) {
                break;
            }
            let c = &cands[i];
            let Some(role) = qualifier_role(c) else { continue };
            // The lead's topic: its main topic concept, or, when it holds
            // no topic concept, its passage and some question concept.
            let same_topic = match key {
                0 => c.hit == l.hit && c.concept > 0.0,
                _ => topics[i] & key != 0,
            };
            let w = words(c.text);
            let repeats = chosen.iter().chain(&qualifiers).any(|p: &Picked| p.text == c.text || same_statement(p.text, c.text));
            if !same_topic || repeats || total + w > self.max_words {
                continue;
            }
            total += w;
            qualifiers.push(Picked { text: c.text, hit: c.hit, role });
        }
        // Stable: equal roles keep the scorer's order.
        qualifiers.sort_by_key(|p| p.role);
        chosen.extend(qualifiers);
        chosen
    }

    /// The composed answer to `question` over the retrieval `search`: the
    /// candidates of `gate` (the extractive generator's relevance bar),
    /// scored by the shipped head, picked, rendered with `template`,
    /// checked and verified (`verify(text, hit)`: whether a statement, its
    /// connective stripped, passes against passage `hit`).
    pub fn compose(
        &self,
        question: &str,
        search: &SearchResult,
        gate: &Extractive,
        template: &PromptFile,
        lead: Option<&Sentence>,
        verify: &mut dyn FnMut(&str, usize) -> bool,
    ) -> Result<Composed, Error> {
        let chosen = self.select(question, search, gate, lead)?;
        let picked: Vec<Picked> = chosen.iter().map(|(s, role)| Picked { text: &s.text, hit: s.passage, role: *role }).collect();
        finish(template, &picked, verify)
    }

    /// The statements [`Composer::compose`] would render, unrendered: the
    /// lead and its qualifiers over the candidates of `gate`, scored by the
    /// shipped head (emails take one topic's selection from here). `lead`:
    /// the extractive answer's learned lead, already picked (the
    /// cross-encoder is not run twice for one question); `None`: picked here.
    pub fn select(&self, question: &str, search: &SearchResult, gate: &Extractive, lead: Option<&Sentence>) -> Result<Vec<(Sentence, Role)>, Error> {
        let eligible = gate.eligible(search, &search.hits).ok_or(Error::Nothing)?;
        let cands = select::candidates(Analyzer::shared(), search, &eligible);
        let head = select::shipped().ok_or(Error::Nothing)?;
        let logits = head.scores(question, &cands);
        let topics = topics(Analyzer::shared(), search, &cands, self.topic_weight);
        // The same lead as the extractive answer's: the cross-encoder's
        // rescoring of the head's best when the gate has one.
        let given = lead.and_then(|l| cands.iter().position(|c| c.hit == l.passage && c.text == l.text));
        let cross = given.or_else(|| gate.cross.as_ref().and_then(|ce| gate.cross_best(ce, question, &cands, &logits)));
        let picked = match cross {
            Some(lead) => self.pick_led(&cands, &logits, &topics, lead),
            None => self.pick(&cands, &logits, &topics),
        };
        if picked.is_empty() {
            return Err(Error::Nothing);
        }
        Ok(picked.iter().map(|p| (Sentence { text: p.text.to_string(), passage: p.hit }, p.role)).collect())
    }
}

/// The connectives the template's header lists: the line
/// `connectives: ["Also,", …]` (a JSON list of strings) before the header
/// comment closes. Each is non-empty, has no surrounding spaces, no line
/// break and no bracket (it must not pass for a marker), and is at most
/// [`MAX_CONNECTIVE_CHARS`] long; at most [`MAX_CONNECTIVES`] of them. An
/// empty list is valid (statements only).
pub fn connectives(t: &PromptFile) -> Result<Vec<String>, Error> {
    let bad = |reason: String| Error::Connectives { template: t.id(), reason };
    let header = t.source.split("#}").next().unwrap_or("");
    let line = header
        .lines()
        .find_map(|l| l.trim().strip_prefix("connectives:"))
        .ok_or_else(|| bad("missing (e.g. `connectives: [\"Also,\"]`)".into()))?;
    // The header may close on the same line (`… -#}`): its `-` is Jinja's.
    let list: Vec<String> = serde_json::from_str(line.trim().trim_end_matches('-').trim()).map_err(|e| bad(format!("not a JSON list of strings: {e}")))?;
    if list.len() > MAX_CONNECTIVES {
        return Err(bad(format!("{} connectives, more than {MAX_CONNECTIVES}", list.len())));
    }
    for c in &list {
        if c.is_empty() || c.trim() != c || c.chars().count() > MAX_CONNECTIVE_CHARS || c.contains(['[', ']', '\n', '\r']) {
            return Err(bad(format!("{c:?} is not a connective (1–{MAX_CONNECTIVE_CHARS} characters, no surrounding space, bracket or line break)")));
        }
    }
    Ok(list)
}

/// Renders the template over the statements (`text`, marker `n`, `role`, `first`).
fn render(t: &PromptFile, statements: &[(&Picked, usize)]) -> Result<String, Error> {
    let err = |e: minijinja::Error| Error::Render { template: t.id(), reason: e.to_string() };
    let mut env = minijinja::Environment::new();
    env.add_template(&t.name, &t.source).map_err(err)?;
    let ctx: Vec<serde_json::Value> = statements
        .iter()
        .enumerate()
        .map(|(i, (p, n))| json!({"text": p.text, "n": n, "role": p.role.as_str(), "first": i == 0}))
        .collect();
    env.get_template(&t.name).map_err(err)?.render(json!({ "statements": ctx })).map_err(err)
}

/// Splits `rendered` (outer whitespace aside) into the statements in order,
/// each `[connective ]text [n]` with a listed connective, one space apart,
/// and nothing else; the connective each carries. `Err(at)`: the byte of
/// `rendered` where it stops matching.
pub fn check(rendered: &str, statements: &[(&str, usize)], connectives: &[String]) -> Result<Vec<Option<usize>>, usize> {
    let lead_ws = rendered.len() - rendered.trim_start().len();
    let s = rendered.trim();
    let mut at = 0;
    let mut out = Vec::with_capacity(statements.len());
    for (i, (text, n)) in statements.iter().enumerate() {
        if i > 0 {
            at = s[at..].strip_prefix(' ').map(|_| at + 1).ok_or(lead_ws + at)?;
        }
        let marker = format!("{text} [{n}]");
        let rest = &s[at..];
        // The bare statement first, then each listed connective and a space.
        let found = if rest.starts_with(&marker) {
            Some((None, marker.len()))
        } else {
            connectives.iter().enumerate().find_map(|(ci, c)| {
                rest.strip_prefix(c.as_str()).and_then(|r| r.strip_prefix(' ')).filter(|r| r.starts_with(&marker)).map(|_| (Some(ci), c.len() + 1 + marker.len()))
            })
        };
        let (ci, len) = found.ok_or(lead_ws + at)?;
        out.push(ci);
        at += len;
    }
    if at != s.len() {
        return Err(lead_ws + at);
    }
    Ok(out)
}

/// Renders, checks and verifies the picked statements (see the module
/// docs): a qualifier that fails `verify` is dropped and the rest rendered
/// again, markers renumbered; the lead failing refuses the composition.
pub fn finish(template: &PromptFile, picked: &[Picked], verify: &mut dyn FnMut(&str, usize) -> bool) -> Result<Composed, Error> {
    let listed = connectives(template)?;
    let mut kept: Vec<&Picked> = picked.iter().take(MAX_STATEMENTS).collect();
    loop {
        if kept.is_empty() {
            return Err(Error::Nothing);
        }
        let mut marks = Numbering::default();
        let numbered: Vec<(&Picked, usize)> = kept.iter().map(|p| (*p, marks.number(p.hit).0)).collect();
        let rendered = render(template, &numbered)?;
        let plain: Vec<(&str, usize)> = numbered.iter().map(|(p, n)| (p.text, *n)).collect();
        let conn = check(&rendered, &plain, &listed).map_err(|at| Error::Mismatch { template: template.id(), at })?;
        // Each statement, its connective stripped, is what is verified.
        match numbered.iter().position(|(p, _)| !verify(p.text, p.hit)) {
            Some(0) => return Err(Error::Unverified),
            Some(i) => {
                kept.remove(i);
                continue;
            }
            None => {}
        }
        let parts: Vec<Part> = numbered
            .iter()
            .zip(conn)
            .map(|((p, n), ci)| Part {
                connective: ci.map(|i| listed[i].clone()),
                sentence: Sentence { text: p.text.to_string(), passage: p.hit },
                role: p.role,
                n: *n,
            })
            .collect();
        // The rendering itself, which `check` found to be exactly the parts.
        return Ok(Composed {
            parts,
            text: rendered.trim().to_string(),
            prompt_version: template.id(),
            prompt_sha256: crate::prompts::sha256_hex(template.source.as_bytes()),
        });
    }
}

/// The answer of a composition: its text, `mode: composed`, the citations
/// of its markers, and the `answer` template it was rendered with.
pub fn answer(c: &Composed, hits: &[crate::index::Hit], timings: super::Timings) -> super::Answer {
    let mut citations: Vec<super::Citation> = Vec::new();
    for p in &c.parts {
        if !citations.iter().any(|x| x.n == p.n) {
            citations.push(super::cite::citation(p.n, &hits[p.sentence.passage].passage));
        }
    }
    let draft = crate::llm::Draft { sentences: Vec::new(), mode: crate::llm::Mode::Composed };
    super::Answer {
        answer: c.text.clone(),
        citations,
        prompt_version: Some(c.prompt_version.clone()),
        prompt_sha256: Some(c.prompt_sha256.clone()),
        ..super::cite(&draft, hits, timings)
    }
}

impl super::Copilot {
    /// The composed answer to `q`, each statement passing the citation
    /// verifier against its passage and the output guard; `None` (logged)
    /// when composing is off or refused: the caller quotes extractively.
    /// `lead`: the extractive answer's lead (the learned pick), reused.
    pub(super) fn composed(&self, q: &str, search: &SearchResult, ctx: &crate::guard::Context, lead: Option<&Sentence>) -> Option<Composed> {
        let composer = self.composer.as_ref()?;
        let mut verify = |text: &str, hit: usize| {
            let Some(h) = search.hits.get(hit) else { return false };
            if let Some(r) = crate::guard::verify::judge(text, &h.passage.text, Analyzer::shared()) {
                tracing::debug!(rejection = ?r, "a composed statement failed the verifier");
                return false;
            }
            self.guard.as_ref().is_none_or(|g| g.screen_output(text, ctx).is_empty())
        };
        match composer.compose(q, search, &self.extractive, &self.drafts.answer, lead, &mut verify) {
            Ok(c) => Some(c),
            Err(e @ (Error::Connectives { .. } | Error::Render { .. } | Error::Mismatch { .. })) => {
                tracing::warn!(error = %e, "the answer template failed its check; answering with the rank-quoted extractive answer");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "no composed answer; answering with the rank-quoted extractive answer");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn builtin() -> PromptFile {
        super::super::DraftTemplates::builtin().answer
    }

    fn tpl(source: &str) -> PromptFile {
        PromptFile { name: "answer".into(), version: 9, source: source.into() }
    }

    fn cand<'a>(text: &'a str, hit: usize, section: &'a str, title: &'a str) -> select::Candidate<'a> {
        select::Candidate {
            text,
            hit,
            pos: 0,
            n_sentences: 1,
            concept: 0.5,
            hit_coverage: 0.5,
            hit_title: 0.0,
            doc_id: "testra-pi",
            section,
            title,
            parent: "",
        }
    }

    #[test]
    fn the_builtin_template_lists_also_and_renders_lead_then_qualifiers() {
        let t = builtin();
        assert_eq!(t.id(), "answer@1");
        assert_eq!(connectives(&t).unwrap(), ["Also,"]);
        let picked = [
            Picked { text: "Take TESTRA with food.", hit: 0, role: Role::Lead },
            Picked { text: "TESTRA can cause serious liver injury.", hit: 2, role: Role::Warning },
            Picked { text: "Monitor liver enzymes every 4 weeks.", hit: 2, role: Role::Monitoring },
        ];
        let c = finish(&t, &picked, &mut |_, _| true).unwrap();
        assert_eq!(c.text, "Take TESTRA with food. [1] Also, TESTRA can cause serious liver injury. [2] Also, Monitor liver enzymes every 4 weeks. [2]");
        assert_eq!(c.parts.iter().map(|p| p.connective.as_deref()).collect::<Vec<_>>(), [None, Some("Also,"), Some("Also,")]);
        assert_eq!(c.prompt_version, "answer@1");
    }

    #[test]
    fn connectives_are_read_from_the_header_and_checked() {
        let ok = tpl("{#- prompt: answer\n    version: 9\n    connectives: [\"Also,\", \"Note:\"]\n-#}{{ x }}");
        assert_eq!(connectives(&ok).unwrap(), ["Also,", "Note:"]);
        let empty = tpl("{#- version: 9\n connectives: [] -#}");
        assert!(connectives(&empty).unwrap().is_empty());
        for (src, why) in [
            ("{#- version: 9 -#}\nconnectives: [\"Also,\"]", "missing"),
            ("{#- version: 9\n connectives: Also, Note: -#}", "JSON"),
            ("{#- version: 9\n connectives: [\"See [2]\"] -#}", "bracket"),
            ("{#- version: 9\n connectives: [\" Also,\"] -#}", "space"),
            ("{#- version: 9\n connectives: [\"\"] -#}", "connective"),
        ] {
            let e = connectives(&tpl(src)).expect_err(why);
            assert!(matches!(e, Error::Connectives { .. }) && e.to_string().contains("answer@9"), "{why}: {e}");
        }
        let long = format!("{{#- version: 9\n connectives: [\"{}\"] -#}}", "a".repeat(MAX_CONNECTIVE_CHARS + 1));
        assert!(connectives(&tpl(&long)).is_err());
        let many = format!("{{#- version: 9\n connectives: {:?} -#}}", (0..=MAX_CONNECTIVES).map(|i| format!("c{i}")).collect::<Vec<_>>());
        assert!(connectives(&tpl(&many)).is_err());
    }

    #[test]
    fn the_check_accepts_only_statements_markers_and_listed_connectives() {
        let st = [("Take it with food.", 1), ("It can harm the liver.", 2)];
        let also = ["Also,".to_string()];
        assert_eq!(check("Take it with food. [1] Also, It can harm the liver. [2]", &st, &also), Ok(vec![None, Some(0)]));
        assert_eq!(check("\n Take it with food. [1] It can harm the liver. [2]\n", &st, &also), Ok(vec![None, None]));
        for bad in [
            "Take it with food. [1] Also, It can harm the liver. [2] Great results!", // added claim
            "Take it with food. [1] Importantly, It can harm the liver. [2]",        // unlisted connective
            "It can harm the liver. [2] Take it with food. [1]",                     // reordered
            "Take it with food. [1]",                                                // dropped
            "Take it with food. [2] Also, It can harm the liver. [2]",               // wrong marker
            "Take it with food. [1]  Also, It can harm the liver. [2]",              // two spaces
            "Take it with food [1] Also, It can harm the liver. [2]",                // altered clause
            "Take it with food. [1] Also,It can harm the liver. [2]",                // no space after the connective
            "Take it with food. [1]\nAlso, It can harm the liver. [2]",              // another separator
        ] {
            assert!(check(bad, &st, &also).is_err(), "accepted {bad:?}");
        }
        assert!(check("Take it with food. [1] Also, It can harm the liver. [2]", &st, &[]).is_err(), "no connective listed");
    }

    /// A statement with a number, a unit, a negation and a qualifier
    /// ("unless", "only", "if", "except") is shown whole: the composer never
    /// trims a clause, and the verifier accepts it.
    #[test]
    fn statements_keep_negations_qualifiers_numbers_and_units() {
        let passage = "Do not exceed 200 mg of TESTRA per day unless the eGFR is above 60 mL/min, and only if ALT is normal, except in children.";
        let picked = [Picked { text: passage, hit: 0, role: Role::Lead }];
        let c = finish(&builtin(), &picked, &mut |text, _| crate::guard::verify::judge(text, passage, Analyzer::shared()).is_none()).unwrap();
        assert_eq!(c.parts[0].sentence.text, passage);
        for kept in ["not", "200 mg", "unless", "60 mL/min", "only if", "except"] {
            assert!(c.text.contains(kept), "{kept} was dropped: {}", c.text);
        }
    }

    #[test]
    fn a_failing_qualifier_is_dropped_and_a_failing_lead_refuses() {
        let picked = [
            Picked { text: "Lead statement here.", hit: 3, role: Role::Lead },
            Picked { text: "Bad qualifier here.", hit: 1, role: Role::Warning },
            Picked { text: "Good qualifier here.", hit: 2, role: Role::Monitoring },
        ];
        let c = finish(&builtin(), &picked, &mut |t, _| !t.starts_with("Bad")).unwrap();
        assert_eq!(c.text, "Lead statement here. [1] Also, Good qualifier here. [2]", "markers renumbered");
        assert_eq!(finish(&builtin(), &picked, &mut |t, _| !t.starts_with("Lead")), Err(Error::Unverified));
        let injected = tpl("{#- version: 2\n connectives: [\"Also,\"] -#}{% for s in statements %}{{ s.text }} [{{ s.n }}] Proven safe. {% endfor %}");
        assert!(matches!(finish(&injected, &picked, &mut |_, _| true), Err(Error::Mismatch { .. })));
        assert!(matches!(finish(&tpl("{#- version: 2\n connectives: [] -#}{% for %}"), &picked, &mut |_, _| true), Err(Error::Render { .. })));
    }

    #[test]
    fn qualifiers_are_safety_sentences_of_the_leads_topic_within_the_margin_and_budget() {
        let cands = [
            cand("The recommended dosage of TESTRA is 100 mg once daily.", 0, "2.1", "Recommended Dosage"),
            cand("TESTRA can cause serious liver injury in some patients.", 1, "5.2", "Hepatotoxicity"),
            cand("Monitor liver enzymes before starting TESTRA and every 4 weeks.", 2, "2.4", "Monitoring"),
            cand("Headache was the most common adverse reaction in trials.", 3, "6.1", "Clinical Trials Experience"),
            cand("TESTRA is contraindicated in patients with severe hepatic impairment.", 4, "4", "CONTRAINDICATIONS"),
            cand("The following are contraindications to TESTRA:", 4, "4", "CONTRAINDICATIONS"),
            cand("In case of overdose, monitor the patient and obtain liver tests.", 5, "10", "OVERDOSAGE"),
        ];
        let logits = [5.0, 4.0, 3.0, 4.5, 1.0, 4.8, 4.9];
        let c = Composer::default();
        // Topic bit 0 (the heaviest concept) held by all.
        let picked = c.pick(&cands, &logits, &[1; 7]);
        let got: Vec<(Role, usize)> = picked.iter().map(|p| (p.role, p.hit)).collect();
        assert_eq!(got, [(Role::Lead, 0), (Role::Warning, 1), (Role::Monitoring, 2)], "adverse-reaction, overdose and lead-in sentences never qualify; the contraindication is outside the margin");
        // Another topic and another passage: no qualifier.
        assert_eq!(c.pick(&cands, &logits, &[1, 2, 2, 2, 2, 2, 2]).len(), 1);
        // Only a lighter topic of the lead's in common (bit 1 of 0b11): no qualifier.
        assert_eq!(c.pick(&cands, &logits, &[3, 2, 2, 2, 2, 2, 2]).len(), 1);
        // A lead with no topic concept: its passage and some question concept.
        let mut own = cands.clone();
        own[1].hit = 0;
        own[1].concept = 0.0;
        assert_eq!(c.pick(&own, &logits, &[0, 2, 2, 2, 2, 2, 2]).len(), 1);
        own[1].concept = 0.2;
        assert_eq!(c.pick(&own, &logits, &[0, 2, 2, 2, 2, 2, 2])[1].text, cands[1].text);
        // The word budget: a long lead alone is fine, with no qualifier.
        let tight = Composer { max_words: 12, ..Composer::default() };
        assert_eq!(tight.pick(&cands, &logits, &[1; 7]).len(), 1);
        let wider = Composer { qualifier_margin: 10.0, max_statements: 2, ..Composer::default() };
        let picked = wider.pick(&cands, &logits, &[1; 7]);
        assert_eq!(picked.len(), 2);
        assert_eq!(picked[1].role, Role::Warning);
        // Mismatched lengths or nothing at all: nothing picked.
        assert!(c.pick(&cands, &logits[..2], &[1; 7]).is_empty());
        assert!(c.pick(&[], &[], &[]).is_empty());
    }

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

    /// Over a real index and the shipped head: the composed answer leads with
    /// the head's pick, holds one to three verbatim statements of the
    /// eligible passages, each cited, and its text is the parts joined.
    #[test]
    fn a_composed_answer_leads_with_the_heads_pick_and_quotes_verbatim() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let ps = [
            passage(0, "2.1", "Recommended Dosage", "Take TESTRA with food. The recommended dosage of TESTRA is 100 mg orally once daily. Do not exceed 200 mg of TESTRA per day."),
            passage(1, "5.2", "Hepatotoxicity", "TESTRA can cause serious liver injury. Monitor liver enzymes before starting TESTRA and every 4 weeks. Stop TESTRA if ALT rises above 5 times the upper limit."),
            passage(2, "4", "CONTRAINDICATIONS", "TESTRA is contraindicated in patients with severe hepatic impairment."),
        ];
        crate::index::Index::build(tmp.path(), &ps, |_| {}).expect("index builds");
        let index = crate::index::Index::open(tmp.path()).expect("index opens");
        let filter = crate::index::Filter::for_role("rep", Some("testra"), chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("date"));
        let gate = Extractive::default();
        let head = select::shipped().expect("head");
        for q in ["max daily dose of testra?", "testra liver enzymes how often", "stop testra if ALT high?", "can testra cause liver injury?"] {
            let search = index.search(q, &filter, 20).expect("search");
            let c = Composer::default().compose(q, &search, &gate, &builtin(), None, &mut |_, _| true).expect(q);
            let d = crate::llm::Generator::draft(&gate, q, &search, &search.hits);
            let hinted = Composer::default().compose(q, &search, &gate, &builtin(), d.sentences.first(), &mut |_, _| true).expect(q);
            assert_eq!(hinted.parts[0].sentence, d.sentences[0], "{q}: the extractive answer's lead is the composed lead");
            let eligible = gate.eligible(&search, &search.hits).expect("answerable");
            let cands = select::candidates(Analyzer::shared(), &search, &eligible);
            assert_eq!(c.parts[0].sentence.text, cands[head.best(q, &cands).expect("best")].text, "{q}");
            assert!((1..=MAX_STATEMENTS).contains(&c.parts.len()), "{q}");
            for p in &c.parts {
                assert!(search.hits[p.sentence.passage].passage.text.contains(&p.sentence.text), "{q}");
            }
            assert_eq!(c.text, c.parts.iter().map(Part::marked).collect::<Vec<_>>().join(" "));
        }
    }

    /// Templates for the property test: faithful ones, and ones that add
    /// words, drop, reorder or repeat statements, or use unlisted connectives.
    const TEMPLATES: [&str; 9] = [
        "{% for s in statements %}{% if not loop.first %} Also, {% endif %}{{ s.text }} [{{ s.n }}]{% endfor %}",
        "{% for s in statements %}{% if not loop.first %} {% endif %}{{ s.text }} [{{ s.n }}]{% endfor %}",
        "{% for s in statements %}{% if not loop.first %} Note: {% endif %}{{ s.text }} [{{ s.n }}]{% endfor %}",
        "{% for s in statements %}{% if not loop.first %} Importantly, {% endif %}{{ s.text }} [{{ s.n }}]{% endfor %}",
        "{% for s in statements %}{{ s.text }} [{{ s.n }}] It works! {% endfor %}",
        "{% for s in statements %}{% if loop.first %}{{ s.text }} [{{ s.n }}]{% endif %}{% endfor %}",
        "{% for s in statements|reverse %}{% if not loop.first %} {% endif %}{{ s.text }} [{{ s.n }}]{% endfor %}",
        "{% for s in statements %}{% if not loop.first %} Also, {% endif %}{{ s.text }} [{{ s.n + 1 }}]{% endfor %}",
        "{% for s in statements %}{% if not loop.first %} {% endif %}{{ s.role }}: {{ s.text }} [{{ s.n }}]{% endfor %}",
    ];

    /// Sentences made of a small vocabulary, so that clauses, connectives
    /// and markers collide often.
    fn sentence() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop::sample::select(vec!["Also,", "Note:", "take", "TESTRA", "[1]", "not", "20", "mg", "liver", "monitor", "It", "works!"]), 1..7)
            .prop_map(|w| format!("{}.", w.join(" ")))
    }

    proptest! {
        /// Whatever the candidates, their scores and topics, the sections and
        /// the template: a composition is only approved clauses (substrings
        /// of the passages, each cited to a passage that holds it), their
        /// markers and the connectives the template lists; anything else is
        /// refused (and the copilot quotes extractively).
        #[test]
        fn composition_emits_only_approved_clauses_markers_and_listed_connectives(
            passages in proptest::collection::vec(proptest::collection::vec(sentence(), 1..4), 1..4),
            logits in proptest::collection::vec(-10.0f64..10.0, 12),
            topics in proptest::collection::vec(0u64..4, 12),
            sections in proptest::collection::vec(prop::sample::select(vec!["BW", "4", "5.1", "2.1", "6.1", "12.3"]), 12),
            ti in 0..TEMPLATES.len(),
            listed in prop::sample::subsequence(vec!["Also,", "Note:", "In addition,"], 0..=3),
        ) {
            let texts: Vec<String> = passages.iter().map(|p| p.join(" ")).collect();
            let mut cands = Vec::new();
            for (hit, p) in passages.iter().enumerate() {
                for s in p {
                    let k = cands.len();
                    if k < 12 {
                        cands.push(cand(s, hit, sections[k], "Title"));
                    }
                }
            }
            let n = cands.len();
            let picked = Composer::default().pick(&cands, &logits[..n], &topics[..n]);
            prop_assert!(!picked.is_empty() && picked.len() <= MAX_STATEMENTS);
            let source = format!("{{#- version: 1\n connectives: {} -#}}{}", serde_json::to_string(&listed).unwrap(), TEMPLATES[ti]);
            let t = tpl(&source);
            let mut verified = Vec::new();
            match finish(&t, &picked, &mut |text, hit| { verified.push((text.to_string(), hit)); true }) {
                Ok(c) => {
                    // Rebuild the text from its parts and check each part.
                    let mut rebuilt = Vec::new();
                    for p in &c.parts {
                        prop_assert!(texts[p.sentence.passage].contains(&p.sentence.text), "clause not in its cited passage: {:?}", p.sentence.text);
                        if let Some(conn) = &p.connective {
                            prop_assert!(listed.contains(&conn.as_str()), "unlisted connective {conn:?}");
                        }
                        prop_assert!(verified.contains(&(p.sentence.text.clone(), p.sentence.passage)), "shown without being verified");
                        rebuilt.push(p.marked());
                    }
                    prop_assert_eq!(c.text, rebuilt.join(" "));
                    // Markers number the cited passages in order of first use.
                    let mut marks = Numbering::default();
                    for p in &c.parts {
                        prop_assert_eq!(p.n, marks.number(p.sentence.passage).0);
                    }
                }
                Err(e) => prop_assert!(matches!(e, Error::Mismatch { .. } | Error::Render { .. }), "{e}"),
            }
        }
    }
}
