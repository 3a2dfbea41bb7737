//! [`Copilot::ask_across`]: a question that names no product, in an index of
//! several, answered from each product's own label.

use std::time::Instant;

use crate::index::{Filter, SearchResult};
use crate::llm::{Draft, Generator};

use super::cite::{citation, Numbering};
use super::{Answer, Ask, Citation, Copilot, Event, Mode, Part, Requester, Result, Route, Timings, MAX_PARTS};

impl Copilot {
    /// Answers a question that names no product, in an index of several:
    /// each product's own label is searched (with its own concept weights).
    /// None answers: the usual Medical Information request (or
    /// Pharmacovigilance safety net). One answers: that product's answer, the
    /// whole pipeline again with its label (guard context included), and a
    /// note saying so. Several answer: each label's extractive answer, as a
    /// separate part and block (at most [`MAX_PARTS`]; the others named in
    /// the note) — quoted, not generated, so that the rep does not wait for
    /// one generation per product. A per-product answer is not streamed
    /// sentence by sentence (its blocks need their headings): it comes whole.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ask_across(
        &self,
        ask: &Ask,
        who: &Requester,
        products: &[String],
        embedding: Option<&[f32]>,
        generate: bool,
        mut timings: Timings,
        t0: Instant,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Answer> {
        let q = ask.question.trim();
        let tr = Instant::now();
        let mut retrieved = Vec::new();
        let mut found: Vec<(String, SearchResult, Draft)> = Vec::new();
        for p in products {
            let filter = Filter::for_role(&ask.role, Some(p), ask.as_of);
            let search = self.retrieve_embedded(q, embedding, &filter)?;
            retrieved.extend(search.hits.iter().map(|h| format!("{}#{}", h.passage.doc_id, h.passage.ordinal)));
            let draft = self.extractive.draft(q, &search, &search.hits);
            let top = search.hits.first().map(|h| (h.coverage, h.score)).unwrap_or_default();
            tracing::debug!(product = %p, coverage = top.0, score = top.1, answered = !draft.sentences.is_empty(), "per-product retrieval");
            if !draft.sentences.is_empty() {
                found.push((p.clone(), search, draft));
            }
        }
        timings.retrieve = tr.elapsed().as_secs_f64() * 1e3;
        let listed = products.join(", ");
        match found.len() {
            0 => {
                let mut ctx = self.guard_context(None);
                ctx.embedding = embedding;
                let v = match self.guard.as_ref() {
                    Some(g) => g.screen_unanswered(q, &ctx),
                    None => crate::guard::Verdict {
                        route: Route::Medical,
                        flags: Vec::new(),
                        reason: Some("no approved, current passage answers this question".into()),
                        report: None,
                    },
                };
                let mut a = self.escalate(ask, who, &v, timings)?;
                a.guard_rules = self.guard.as_ref().map(|g| g.rules_version().to_string());
                a.retrieved = retrieved;
                Ok(a)
            }
            1 => {
                let p = found[0].0.clone();
                let one = Ask { product: Some(p.clone()), ..ask.clone() };
                // The quote-only choice (`generate = false`) holds for the
                // one label that answers, as for a named product.
                let mut a = self.ask_with(&one, who, generate, on_event)?;
                if a.route == Route::Answer {
                    a.note = Some(format!(
                        "The question names no product; of the products in this index ({listed}) only the {p} label answers it, so this is the {p} answer. Name the product to be sure."
                    ));
                }
                Ok(a)
            }
            _ => {
                // The best-covered label first.
                let best = |r: &SearchResult| r.hits.first().map(|h| (h.coverage, h.score)).unwrap_or_default();
                found.sort_by(|a, b| best(&b.1).partial_cmp(&best(&a.1)).unwrap_or(std::cmp::Ordering::Equal));
                let others: Vec<String> = found.iter().skip(MAX_PARTS).map(|f| f.0.clone()).collect();
                found.truncate(MAX_PARTS);
                let t1 = Instant::now();
                let mut citations: Vec<Citation> = Vec::new();
                let mut marks: Numbering<(usize, usize)> = Numbering::default();
                let mut parts = Vec::new();
                for (pi, (product, search, draft)) in found.iter().enumerate() {
                    let mut sentences = Vec::new();
                    let mut nums = Vec::new();
                    for s in &draft.sentences {
                        let (n, first_use) = marks.number((pi, s.passage));
                        if first_use {
                            citations.push(citation(n, &search.hits[s.passage].passage));
                        }
                        if !nums.contains(&n) {
                            nums.push(n);
                        }
                        sentences.push(format!("{} [{n}]", s.text));
                    }
                    parts.push(Part { product: product.clone(), answer: sentences.join(" "), citations: nums });
                }
                timings.generate = t1.elapsed().as_secs_f64() * 1e3;
                timings.first_sentence = Some(t0.elapsed().as_secs_f64() * 1e3);
                let names: Vec<&str> = parts.iter().map(|p| p.product.as_str()).collect();
                let mut note = format!(
                    "The question names no product, and this index holds several ({listed}): here is what each label says, separately ({}). Name the product for one label's answer.",
                    names.join(", ")
                );
                if !others.is_empty() {
                    note.push_str(&format!(" The {} label{} also answer{} it.", others.join(", "), if others.len() > 1 { "s" } else { "" }, if others.len() > 1 { "" } else { "s" }));
                }
                Ok(Answer {
                    route: Route::Answer,
                    answer: parts.iter().map(|p| p.answer.as_str()).collect::<Vec<_>>().join("\n\n"),
                    mode: Mode::Extractive,
                    citations,
                    flags: Vec::new(),
                    case_id: None,
                    prompt_version: None,
                    prompt_sha256: None,
                    model: None,
                    audit_id: None,
                    guard_rules: self.guard.as_ref().map(|g| g.rules_version().to_string()),
                    timings_ms: timings,
                    generated_tokens: None,
                    retrieved,
                    product: None,
                    note: Some(note),
                    parts,
                    fallback: None,
                    quote: None,
                })
            }
        }
    }

}
