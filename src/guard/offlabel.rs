//! The off-label judge: a question (or a generated sentence) checked against
//! the product's own label — its indications, pediatric and geriatric use,
//! weights, doses, frequencies and combinations (sections 1, 2 and 8, read by
//! [`LabelReference`]) — and the label rules of `rules/guard-rules.toml`.

use std::sync::OnceLock;

use regex::Regex;

use super::label_ref::{self, contains_words, LabelReference};
use super::quantity::{question_ages, question_doses, weights};
use super::{re, text, Acc, Context, Guard, Route, Seg, VocabKind};

static PEDS_SEC: OnceLock<Regex> = OnceLock::new();

impl Guard {
    /// Structural off-label checks against the label, and the label rules.
    pub(super) fn off_label(&self, seg: &Seg, ctx: &Context, label: &LabelReference, hits: &[(usize, usize, usize)], output: bool, acc: &mut Acc) {
        let t = &seg.norm.text;
        let r = &self.rules;
        let sents = text::sentences(t);
        let sent_of = |pos: usize| *sents.iter().find(|s| s.0 <= pos && pos < s.1.max(s.0 + 1)).unwrap_or(&(0, t.len()));
        let use_intent_any = if output { false } else { r.use_intent.re.is_match(t) };
        // A sentence that only asks what the label says (no intent to use).
        let label_only = |s: (usize, usize)| !output && r.label_question.is_match_in(t, s.0, s.1) && !r.use_intent.is_match_in(t, s.0, s.1);
        let claim = |s: (usize, usize)| output && r.claim.is_match_in(t, s.0, s.1);
        let flag_off = |acc: &mut Acc, key: &str, id: &str, span: (usize, usize)| {
            acc.push(seg.flag("off_label", id, span), Route::Medical, &self.reason(key));
        };
        let conditions: Vec<&(usize, usize, usize)> = hits.iter().filter(|h| self.vocab_items[h.2].0 == VocabKind::Condition).collect();
        let aliases = |h: &(usize, usize, usize)| &r.conditions[self.vocab_items[h.2].1];

        // Indication: a condition the label does not cover.
        for h in &conditions {
            if aliases(h).iter().any(|a| label.covers_term(a)) {
                continue;
            }
            let s = sent_of(h.0);
            let fire = if output { claim(s) } else { use_intent_any && !label_only(s) };
            if fire {
                flag_off(acc, "indication", "OFF-INDICATION", (h.0, h.1));
            }
        }

        // A use named in the question ("used for nausea in palliative care")
        // that the label's sections 1, 2 and 8 do not name, word by word.
        if !output {
            for c in r.use_for.captures_iter(t) {
                let Some(g) = c.get(1) else { continue };
                let s = sent_of(g.start());
                if label_only(s) {
                    continue;
                }
                let phrase = g.as_str().split(['?', '.', ',', ';', '!']).next().unwrap_or("");
                let words: Vec<&str> = phrase
                    .split_whitespace()
                    .take_while(|w| !r.use_for_stops.contains(*w))
                    .map(|w| w.trim_matches(|ch: char| !ch.is_alphanumeric()))
                    .filter(|w| !w.contains('\''))
                    .filter(|w| w.len() >= 4 && !r.use_for_generic.contains(*w) && !w.chars().all(|ch| ch.is_ascii_digit()))
                    .collect();
                if words.iter().any(|w| !label.covers_term(w) && !label.covers_term(w.trim_end_matches('s'))) {
                    flag_off(acc, "indication", "OFF-INDICATION-UNLISTED", (g.start(), g.start() + phrase.trim_end().len()));
                }
            }
        }

        // Population: pediatric ages and weights, geriatric.
        let ages = question_ages(&r.quantities, t);
        let peds_word = r.pediatric_words.re.find(t).map(|m| (m.start(), m.end()));
        let mut pediatric_age = false;
        for &(age, span) in &ages {
            let s = sent_of(span.0);
            if label_only(s) || (output && !claim(s)) {
                continue;
            }
            if age >= 18.0 {
                if age >= 65.0 && !label.geriatric && (use_intent_any || output) {
                    flag_off(acc, "geriatric", "OFF-GERIATRIC", span);
                }
                continue;
            }
            pediatric_age = true;
            let containing: Vec<&label_ref::AgeRange> = label.pediatric.iter().filter(|g| g.min <= age && age <= g.max).collect();
            let cond_ok = conditions.is_empty()
                || containing.iter().any(|g| conditions.iter().any(|h| aliases(h).iter().any(|a| contains_words(&g.context, a))));
            if containing.is_empty() || !cond_ok {
                flag_off(acc, "pediatric", "OFF-PEDIATRIC-AGE", span);
            }
        }
        if ages.is_empty() && label.pediatric.is_empty() {
            if let Some(span) = peds_word {
                let s = sent_of(span.0);
                if (use_intent_any && !label_only(s)) || claim(s) {
                    flag_off(acc, "pediatric", "OFF-PEDIATRIC", span);
                }
            }
        }
        if output {
            self.label_rules(seg, label, acc);
            return;
        }
        if pediatric_age {
            if let Some(min_kg) = label.pediatric_min_kg {
                for (w, span) in weights(&r.quantities, t) {
                    if w < min_kg {
                        flag_off(acc, "weight", "OFF-PEDIATRIC-WEIGHT", span);
                    }
                }
            }
        }

        // Dose and frequency, against the dosing subsections in question.
        let cond_aliases: Vec<&String> = conditions.iter().flat_map(|h| aliases(h).iter()).collect();
        let mut secs: Vec<&label_ref::DosingSection> =
            label.dosing.iter().filter(|d| cond_aliases.iter().any(|a| contains_words(&d.title, a))).collect();
        if pediatric_age || peds_word.is_some() {
            let peds: Vec<&label_ref::DosingSection> = (if secs.is_empty() { label.dosing.iter().collect() } else { secs.clone() })
                .into_iter()
                .filter(|d| re(&PEDS_SEC, r"pediatric|children|years of age").is_match(&format!("{} {}", d.title, d.text)))
                .collect();
            if !peds.is_empty() {
                secs = peds;
            }
        }
        if secs.is_empty() {
            secs = label.dosing.iter().collect();
        }
        let set_mg: Vec<f64> = secs.iter().flat_map(|d| d.doses_mg.iter().copied()).collect();
        let set_kg: Vec<f64> = secs.iter().flat_map(|d| d.doses_mg_kg.iter().copied()).collect();
        let known = |set: &[f64], v: f64| set.iter().any(|x| (x - v).abs() < 1e-6);
        let product_spans: Vec<(usize, usize)> = {
            let pg = self.product_group(ctx);
            hits.iter().filter(|h| self.vocab_items[h.2].0 == VocabKind::Drug && Some(self.vocab_items[h.2].1) == pg).map(|h| (h.0, h.1)).collect()
        };
        let competitor_spans: Vec<(usize, usize)> = self.competitors(ctx, hits, (0, t.len())).map(|h| (h.0, h.1)).collect();
        for (v, per_kg, span) in question_doses(&r.quantities, t, &product_spans) {
            let s = sent_of(span.0);
            if label_only(s) {
                continue;
            }
            // A dose that belongs to another drug named just before it.
            let other = competitor_spans.iter().any(|c| c.1 <= span.0 && span.0 - c.1 <= 25 && s.0 <= c.0);
            let set = if per_kg { &set_kg } else { &set_mg };
            if !other && !set.is_empty() && !known(set, v) {
                flag_off(acc, "dose", "OFF-DOSE", span);
            }
        }
        let dosing_text: String = secs.iter().map(|d| d.text.as_str()).collect::<Vec<_>>().join("\n");
        for f in &r.frequencies {
            if let Some(span) = f.pat.find_in(t, 0, t.len()) {
                if label_only(sent_of(span.0)) || dosing_text.is_empty() {
                    continue;
                }
                if !f.label.is_match(&dosing_text) {
                    acc.push(seg.flag("off_label", &f.id, span), Route::Medical, &self.reason("frequency"));
                }
            }
        }

        // Combination with a drug the label's sections 1, 2 and 8 do not name.
        for h in self.competitors(ctx, hits, (0, t.len())) {
            let s = sent_of(h.0);
            if !r.combination.is_match_in(t, s.0, s.1) {
                continue;
            }
            let names = &r.drugs[self.vocab_items[h.2].1];
            if names.iter().any(|n| label.covers_term(n)) {
                continue;
            }
            let addressed = names.iter().any(|n| label.mentions_anywhere(n));
            let yes_no = r.permissibility.is_match_in(t, s.0, s.1) && !t[s.0..s.1].contains("how ");
            if addressed && yes_no {
                continue;
            }
            flag_off(acc, "combination", "OFF-COMBINATION", (h.0, h.1));
        }

        self.label_rules(seg, label, acc);
    }

    /// The label rules: question patterns judged against the label's
    /// sections 1, 2 and 8.
    fn label_rules(&self, seg: &Seg, label: &LabelReference, acc: &mut Acc) {
        let t = &seg.norm.text;
        for lr in &self.rules.label_rules {
            let Some(m) = lr.pat.re.find(t) else { continue };
            let sent = text::sentences(t).into_iter().find(|s| s.0 <= m.start() && m.start() < s.1).unwrap_or((0, t.len()));
            if lr.unless.as_ref().is_some_and(|u| u.is_match_in(t, sent.0, sent.1)) {
                continue;
            }
            let st = label.sections_text();
            if lr.label_has.as_ref().is_some_and(|h| !h.is_match(st)) || lr.label_lacks.as_ref().is_some_and(|l| l.is_match(st)) {
                continue;
            }
            acc.push(seg.flag(&lr.kind, &lr.id, (m.start(), m.end())), Route::Medical, &lr.reason);
        }
    }

}
