//! Follow-up email drafts and visit summaries, under the same rules as
//! answers: every product statement is approved text with its citation, the
//! guard screens the rep's input first, and nothing is ever sent by OnLabel.

use serde::Serialize;

use crate::corpus::text::sentences;
use crate::index::{Filter, Hit};

use super::cite::{citation, Numbering};
use super::compose::Role;
use super::extractive::{quotable, Extractive};
use crate::llm::Sentence;
use crate::guard::verify::judge;
use super::notes::NoteKind;
use super::{Ask, Citation, Copilot, Flag, Requester, Result, Route};
use crate::llm::Generator;

/// The banner every draft carries.
pub const DRAFT_BANNER: &str = "DRAFT — review before sending. OnLabel never sends email; you send it from your approved email tool after review.";

/// A statement in a draft, with its citation number.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Statement {
    /// Approved text, verbatim.
    pub text: String,
    /// Citation marker number.
    pub n: usize,
    /// The list a lead-in sentence introduces ("contraindicated in patients
    /// with:"), item by item, verbatim from the same passage: a lead-in is
    /// never quoted without its items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
}

/// Most topics one email drafts statements for; further topics are named in
/// the notes to the rep, never dropped silently.
pub const MAX_TOPICS: usize = 6;

/// A lead-in sentence ends with a colon and needs the list after it.
fn is_lead_in(s: &str) -> bool {
    s.trim_end().ends_with(':')
}

/// The list items that follow the lead-in `sentence` in `passage`: the
/// lines after it, verbatim (bullet marks removed), up to a line that is not
/// an item. Empty when the passage holds no list after it.
pub fn list_items(passage: &str, sentence: &str) -> Vec<String> {
    let Some(at) = passage.find(sentence.trim()) else { return Vec::new() };
    let after = &passage[at + sentence.trim().len()..];
    let mut items = Vec::new();
    // The rest of the lead-in's own line is not an item.
    let mut lines = after.split('\n');
    if lines.next().is_some_and(|rest| !rest.trim().is_empty()) {
        return Vec::new();
    }
    for line in lines {
        let t = line.trim();
        if t.is_empty() {
            if items.is_empty() {
                continue;
            }
            break;
        }
        let bullet = t.strip_prefix(['-', '•', '*', '–', '▪']).map(str::trim_start);
        let numbered = t.find(['.', ')']).filter(|&i| i > 0 && i <= 3 && t[..i].chars().all(|c| c.is_ascii_alphanumeric()));
        let item = match (bullet, numbered) {
            (Some(b), _) => b,
            (None, Some(i)) => t[i + 1..].trim_start(),
            // An item line of a list the loader stripped of its bullets:
            // lower-case start, or the ';' that separates items.
            (None, None) if t.chars().next().is_some_and(char::is_lowercase) || t.ends_with(';') => t,
            _ => break,
        };
        if !item.is_empty() {
            items.push(item.to_string());
        }
    }
    items
}

/// Content words of a statement, for telling near-identical statements apart.
fn words(s: &str) -> std::collections::HashSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2 || w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_lowercase)
        .collect()
}

/// The numbers a statement states (`4.1%` → `4.1`), in order.
fn figures(s: &str) -> Vec<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"\d+(?:\.\d+)?").expect("static regex"));
    let s = crate::index::analysis::strip_cross_references(s);
    let mut v: Vec<String> = re.find_iter(&s).map(|m| m.as_str().to_string()).collect();
    v.sort();
    v.dedup();
    v
}

/// Whether two statements say the same: the same words (one the other's
/// subset, or 85% in common), whatever the case, punctuation or markers; or
/// the same figures (two or more, cross-references aside) in mostly the same words (the boxed
/// warning and its §5 section often restate one result).
pub fn same_statement(a: &str, b: &str) -> bool {
    let (wa, wb) = (words(a), words(b));
    if wa.is_empty() || wb.is_empty() {
        return a.trim() == b.trim();
    }
    let common = wa.intersection(&wb).count();
    let (small, large) = if wa.len() <= wb.len() { (wa.len(), wb.len()) } else { (wb.len(), wa.len()) };
    let (fa, fb) = (figures(a), figures(b));
    let (fs, fl) = if fa.len() <= fb.len() { (&fa, &fb) } else { (&fb, &fa) };
    let same_figures = fs.len() >= 2 && fs.iter().all(|f| fl.contains(f)) && common * 10 >= small * 6;
    same_figures || common == small && small * 10 >= large * 6 || common * 100 >= large * 85
}

/// A follow-up email draft.
#[derive(Debug, Clone, Serialize)]
pub struct EmailDraft {
    /// `answer` when drafted; otherwise the escalation route and no draft.
    pub route: Route,
    /// The draft banner.
    pub banner: String,
    /// Subject line.
    pub subject: String,
    /// Statements on the topics discussed.
    pub statements: Vec<Statement>,
    /// Important Safety Information (fair balance): boxed warning and key warnings.
    pub isi: Vec<Statement>,
    /// References: document ids, sections, titles and MLR numbers.
    pub references: Vec<Citation>,
    /// The whole email as text.
    pub body: String,
    /// The email as the rep sends it: `body` without the draft banner and
    /// the subject line (the subject goes in the email tool's own field):
    /// `greeting`, `locked`, `references`, a blank line apart.
    pub text: String,
    /// The body's greeting line ("Dear Dr. Lee,"): the rep may edit it.
    pub greeting: String,
    /// The approved wording and statements after the greeting, up to the
    /// references: locked (MLR approved every word of it).
    pub locked: String,
    /// The references block ("References" and one line per citation), locked.
    pub references_text: String,
    /// Flags (guard on input; fair balance on output).
    pub flags: Vec<Flag>,
    /// Case opened when the topics had to be escalated.
    pub case_id: Option<String>,
    /// Notes to the rep (never part of the email): why no draft was made,
    /// or which topics it could not cover.
    pub message: Option<String>,
    /// Topics the approved material cannot support (nothing approved and
    /// current answers them), and topics over [`MAX_TOPICS`]: not in the
    /// draft, and named in `message`.
    pub unsupported_topics: Vec<String>,
    /// The email template that framed the statements (`email@N`; the
    /// registry's live version when registered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<String>,
    /// SHA-256 of that template's content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_sha256: Option<String>,
    /// The `seq` of the audit record of this draft (set once it is appended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<u64>,
}

/// The references of a draft: one citation per document section, numbered
/// in order of first use ([`Numbering`]).
#[derive(Default)]
struct Refs {
    marks: Numbering<(String, String)>,
    list: Vec<Citation>,
}

impl Refs {
    /// The marker of a passage's section; a section cited from several of its
    /// passages quotes all of them.
    fn number(&mut self, p: &crate::corpus::Passage) -> usize {
        let (n, first_use) = self.marks.number((p.doc_id.clone(), p.section.clone()));
        if first_use {
            self.list.push(citation(n, p));
        } else if let Some(c) = self.list.get_mut(n - 1) {
            if !c.quote.contains(&p.text) {
                c.quote.push('\n');
                c.quote.push_str(&p.text);
            }
        }
        n
    }
}

/// Splits a rep's free-text topics into separate topics.
pub fn split_topics(topics: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in topics.split(['\n', ';', '.']) {
        for piece in part.split(" and also ").flat_map(|p| p.split(", and ")).flat_map(|p| p.split(" as well as ")) {
            // "X and Y" splits only when both sides are substantial.
            let halves: Vec<&str> = piece.split(" and ").collect();
            if halves.len() > 1 && halves.iter().all(|h| h.split_whitespace().count() >= 3) {
                out.extend(halves.iter().map(|h| h.trim().to_string()));
            } else if !piece.trim().is_empty() {
                out.push(piece.trim().to_string());
            }
        }
    }
    out.retain(|t| t.split_whitespace().count() >= 2);
    out
}

impl Copilot {
    /// Drafts a follow-up email for the rep to review.
    pub fn email(&self, ask: &Ask, who: &Requester, hcp: &str) -> Result<EmailDraft> {
        self.email_with(ask, who, hcp, None, None)
    }

    /// Drafts a follow-up email with the rep's own `greeting` and `closing`
    /// around the locked approved text. The guard screens them with the
    /// topics (a report in a sign-off is a report), and they may not speak
    /// about the product: a greeting or closing that names it or that the
    /// output screen flags is refused with the reason (the approved text is
    /// the only thing the email says about the product).
    pub fn email_with(&self, ask: &Ask, who: &Requester, hcp: &str, greeting: Option<&str>, closing: Option<&str>) -> Result<EmailDraft> {
        let own: Vec<(&str, &str)> = [("greeting", greeting), ("closing", closing)]
            .into_iter()
            .filter_map(|(w, t)| t.map(str::trim).filter(|t| !t.is_empty()).map(|t| (w, t)))
            .collect();
        // The guard reads the topics and the rep's own words together, first:
        // a report in a sign-off is a report, whatever else the words say.
        let screened = Ask { question: std::iter::once(ask.question.as_str()).chain(own.iter().map(|x| x.1)).collect::<Vec<_>>().join("\n"), ..ask.clone() };
        let escalated = self.ask_guard_only(&screened, who)?;
        if escalated.is_none() && !own.is_empty() {
            let product = ask.product.as_deref().unwrap_or("").trim().to_lowercase();
            let ctx = self.guard_context(Some(product.as_str()));
            for (what, text) in &own {
                let low = text.to_lowercase();
                let names_product = (!product.is_empty() && low.contains(&product)) || claim_words(&low).is_some();
                // A valediction ("Best,", "All the best,") or a bare name is
                // a sign-off, not a claim: the claim screen reads the rest.
                let claims: Vec<&str> = text.lines().map(str::trim).filter(|l| !is_sign_off_line(l)).collect();
                let flags = self.guard().map(|g| g.screen_output(&claims.join("\n"), &ctx)).unwrap_or_default();
                if names_product || !flags.is_empty() {
                    let why = match (flags.first(), claim_words(&low)) {
                        (Some(f), _) => format!(" ({})", f.rule_id),
                        (None, Some(w)) => format!(" (\"{w}\")"),
                        (None, None) => String::new(),
                    };
                    return Err(super::Error::BadQuestion(format!(
                        "the {what} speaks about the product{why}: keep it to a greeting or a sign-off; what the email says about the product is the approved text"
                    )));
                }
            }
        }
        let mut draft = self.email_inner(ask, escalated, hcp)?;
        if draft.route == Route::Answer {
            if let Some((_, g)) = own.iter().find(|x| x.0 == "greeting") {
                draft.greeting = g.to_string();
            }
            let closing = own.iter().find(|x| x.0 == "closing").map(|x| x.1).unwrap_or("");
            draft.text = [draft.greeting.as_str(), draft.locked.as_str(), closing, draft.references_text.as_str()]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("\n\n");
        }
        Ok(draft)
    }

    /// The draft on `ask`'s topics, or no draft when the guard escalated
    /// (`escalated`: its answer, the case opened).
    fn email_inner(&self, ask: &Ask, escalated: Option<super::Answer>, hcp: &str) -> Result<EmailDraft> {
        let product = ask.product.clone().unwrap_or_default();
        let mut draft = EmailDraft {
            route: Route::Answer,
            banner: DRAFT_BANNER.into(),
            subject: String::new(),
            statements: Vec::new(),
            isi: Vec::new(),
            references: Vec::new(),
            body: String::new(),
            text: String::new(),
            greeting: String::new(),
            locked: String::new(),
            references_text: String::new(),
            flags: Vec::new(),
            case_id: None,
            message: None,
            unsupported_topics: Vec::new(),
            prompt_version: None,
            prompt_sha256: None,
            audit_id: None,
        };
        if let Some(e) = escalated {
            draft.route = e.route;
            draft.flags = e.flags;
            draft.case_id = e.case_id;
            draft.message = Some(format!("No email drafted. {}", e.answer));
            return Ok(draft);
        }
        let filter = Filter::for_role(&ask.role, ask.product.as_deref(), ask.as_of);
        let mut refs = Refs::default();
        let passages = self.index().passages(&filter)?;
        // A lead-in's list may begin in the next passage of its section.
        let items_of = |p: &crate::corpus::Passage, s: &str| -> Vec<String> {
            let items = list_items(&p.text, s);
            if !items.is_empty() || !p.text.trim_end().ends_with(s.trim()) {
                return items;
            }
            passages
                .iter()
                .find(|q| q.doc_id == p.doc_id && q.section == p.section && q.ordinal == p.ordinal + 1)
                .map(|q| list_items(&format!("{s}\n{}", q.text), s))
                .unwrap_or_default()
        };
        // Fair balance first: the boxed warning, then the first sentence of
        // each key warning. Discussed statements then skip what it already says.
        let label: Vec<&crate::corpus::Passage> = passages.iter().filter(|p| p.kind == crate::corpus::Kind::Pi).collect();
        let mut seen_sections = std::collections::HashSet::new();
        // The passage each ISI line quotes; markers are numbered once the
        // discussed statements are known, in the order the email reads.
        let mut isi_from: Vec<&crate::corpus::Passage> = Vec::new();
        for p in label.iter().filter(|p| p.section == "BW") {
            for s in sentences(&p.text).into_iter().filter(|s| quotable(s)).take(2) {
                if draft.isi.len() < 3 && !draft.isi.iter().any(|x| same_statement(&x.text, s)) {
                    let items = if is_lead_in(s) { items_of(p, s) } else { Vec::new() };
                    if is_lead_in(s) && items.is_empty() {
                        continue;
                    }
                    draft.isi.push(Statement { text: s.to_string(), n: 0, items });
                    isi_from.push(*p);
                }
            }
        }
        for p in label.iter().filter(|p| is_key_warning(&p.section, &p.title)) {
            if draft.isi.len() >= 7 || seen_sections.contains(&(p.doc_id.clone(), p.section.clone())) {
                continue;
            }
            let pick = sentences(&p.text).into_iter().find_map(|s| {
                if !quotable(s) || s.split_whitespace().count() < 5 || draft.isi.iter().any(|x| same_statement(&x.text, s)) {
                    return None;
                }
                let items = if is_lead_in(s) { items_of(p, s) } else { Vec::new() };
                (!is_lead_in(s) || !items.is_empty()).then(|| (s, items))
            });
            if let Some((s, items)) = pick {
                seen_sections.insert((p.doc_id.clone(), p.section.clone()));
                draft.isi.push(Statement { text: s.to_string(), n: 0, items });
                isi_from.push(*p);
            }
        }
        // Per topic discussed, the same selection as a rep's composed answer
        // (issue 19, point 3): the learned scorer's answering statement,
        // then the qualifiers of its topic that the draft (ISI included)
        // does not already carry; when the draft carries the answering
        // statement, the concept selection's next best. A topic nothing
        // approved answers is named in the notes to the rep. With the
        // composer off (`--compose off`), the concept selection alone, as
        // before. Fair balance stays the ISI above, framed by the template.
        let pick = Extractive { max_sentences: 3, learned_first: false, ..Extractive::default() };
        let topics = split_topics(&ask.question);
        for (i, topic) in topics.iter().enumerate() {
            if i >= MAX_TOPICS {
                draft.unsupported_topics.push(topic.clone());
                continue;
            }
            let search = self.retrieve(topic, &filter)?;
            let d = pick.draft(topic, &search, &search.hits);
            if d.sentences.is_empty() {
                draft.unsupported_topics.push(topic.clone());
                continue;
            }
            let composed: Vec<(Sentence, Role)> = self.composer().and_then(|c| c.select(topic, &search, &self.extractive, None).ok()).unwrap_or_default();
            let (lead, qualifiers): (Vec<Sentence>, Vec<Sentence>) = {
                let (l, q): (Vec<_>, Vec<_>) = composed.into_iter().partition(|(_, r)| *r == Role::Lead);
                (l.into_iter().map(|x| x.0).collect(), q.into_iter().map(|x| x.0).collect())
            };
            let already = |draft: &EmailDraft, t: &str| draft.statements.iter().chain(&draft.isi).any(|x| same_statement(&x.text, t));
            let quotable_with_items = |s: &Sentence| {
                let p = &search.hits[s.passage].passage;
                let items = if is_lead_in(&s.text) { items_of(p, &s.text) } else { Vec::new() };
                (!is_lead_in(&s.text) || !items.is_empty()).then_some(items)
            };
            let best = lead.iter().chain(&d.sentences).filter(|s| !already(&draft, &s.text)).find_map(|s| quotable_with_items(s).map(|items| (s, items)));
            // Every candidate already in the draft: the topic is covered.
            if let Some((s, items)) = best {
                let n = refs.number(&search.hits[s.passage].passage);
                draft.statements.push(Statement { text: s.text.clone(), n, items });
            }
            for q in &qualifiers {
                if already(&draft, &q.text) {
                    continue;
                }
                if let Some(items) = quotable_with_items(q) {
                    let n = refs.number(&search.hits[q.passage].passage);
                    draft.statements.push(Statement { text: q.text.clone(), n, items });
                }
            }
        }
        for (st, p) in draft.isi.iter_mut().zip(&isi_from) {
            st.n = refs.number(p);
        }
        draft.references = refs.list;
        let t = &self.drafts().email;
        draft.subject = super::templates::email_subject(t, &title_case(&product))?;
        draft.body = super::templates::email_body(t, &draft, hcp, &title_case(&product))?;
        let parts = send_parts(&draft.body, &draft.banner, &draft.subject);
        (draft.greeting, draft.locked, draft.references_text) = (parts.greeting, parts.locked, parts.references);
        draft.text = [draft.greeting.as_str(), draft.locked.as_str(), draft.references_text.as_str()]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n\n");
        draft.prompt_version = Some(t.id());
        draft.prompt_sha256 = Some(crate::prompts::sha256_hex(t.source.as_bytes()));
        if let Some(g) = self.guard() {
            draft.flags.extend(g.check_fair_balance(&draft.body, !draft.isi.is_empty()));
        }
        let unsupported = quoted_list(&draft.unsupported_topics[..draft.unsupported_topics.len().min(MAX_TOPICS)]);
        let over = topics.len().saturating_sub(MAX_TOPICS);
        let over_note = if over > 0 { format!(" Only the first {MAX_TOPICS} topics are drafted; draft a second email for the other {over}.") } else { String::new() };
        draft.message = if draft.statements.is_empty() {
            Some(format!(
                "No approved statement covers {}; the draft carries only the safety information. Consider a Medical Information request.{over_note}",
                if unsupported.is_empty() { "these topics".to_string() } else { unsupported }
            ))
        } else if !draft.unsupported_topics.is_empty() {
            let unsupported_only = &draft.unsupported_topics[..draft.unsupported_topics.len() - over];
            let why = if unsupported_only.is_empty() {
                String::new()
            } else {
                format!(
                    "Not in this draft: no approved, current passage supports {}. Don't add it yourself; if the HCP needs an answer, it is a Medical Information request.",
                    quoted_list(unsupported_only)
                )
            };
            Some(format!("{why}{over_note}").trim().to_string())
        } else {
            None
        };
        Ok(draft)
    }
}

/// The parts of a rendered email body a rep sends ([`send_parts`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendParts {
    /// The greeting line (empty when the template opens otherwise).
    pub greeting: String,
    /// Everything after the greeting up to the references.
    pub locked: String,
    /// The references block, from its `References` heading.
    pub references: String,
}

/// Cuts a rendered email body into what the rep sends: the draft banner
/// line (`[banner]`) and the `Subject: …` line are dropped (the banner is
/// for the rep only, the subject has its own field: copying the body must
/// not paste either); the first remaining line is the greeting when it
/// opens with "Dear " or ends with a comma; the references start at a line
/// that reads `References`.
pub fn send_parts(body: &str, banner: &str, subject: &str) -> SendParts {
    let banner_line = format!("[{banner}]");
    let subject_line = format!("Subject: {subject}");
    let kept: Vec<&str> = body.lines().filter(|l| l.trim() != banner_line && l.trim() != subject_line).collect();
    let text = kept.join("\n");
    let text = text.trim();
    let (head, rest) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("Dear ") || (first.trim_end().ends_with(',') && first.split_whitespace().count() <= 6) => (first.trim().to_string(), rest),
        _ => (String::new(), text),
    };
    let (locked, references) = match rest.find("\nReferences\n").or_else(|| rest.starts_with("References\n").then_some(0)) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    SendParts { greeting: head, locked: locked.trim().to_string(), references: references.trim().to_string() }
}

/// A line of a greeting or closing that is a salutation or valediction (at
/// most four words ending with a comma: "Best,", "Kind regards,", "Hi Dr.
/// Lee,") or a bare name (at most three capitalised words, no other
/// punctuation than a full stop): it states nothing about anything.
fn is_sign_off_line(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.is_empty() {
        return true;
    }
    let valediction = line.ends_with(',') && words.len() <= 4;
    let name = words.len() <= 3 && words.iter().all(|w| w.chars().next().is_some_and(char::is_uppercase) && w.chars().all(|c| c.is_alphabetic() || c == '.' || c == '-' || c == '\''));
    valediction || name
}

/// The first word of a rep's greeting or closing (lower-cased) that talks
/// about a medicine: claim words, a drug or its effects, or "it"/"this" as
/// the subject of a claim ("it is", "it works"). A greeting and a closing are
/// courtesy; the stricter screen errs towards refusing (the rep rewords),
/// because the output screen alone let "It is the safest choice there is."
/// through.
fn claim_words(low: &str) -> Option<&'static str> {
    const WORDS: &[&str] = &[
        "safe", "safer", "safest", "safety", "effective", "efficacy", "efficacious", "works", "work well", "cure", "cures", "cured", "proven",
        "guarantee", "guaranteed", "superior", "better than", "best option", "best choice", "best treatment", "best drug", "first-line",
        "side effect", "side effects", "tolerated", "tolerability", "dose", "doses", "dosing", "mg", "indicated", "indication", "approved for",
        "drug", "medication", "medicine", "treatment", "therapy", "product", "prescribe", "prescribing", "prescription", "trial", "study",
        "results", "outcomes", "symptoms", "disease", "off-label", "it is", "it's", "it can", "it has", "it will", "it was", "it works", "this one",
    ];
    let padded = format!(" {} ", low.replace(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-', " "));
    WORDS.iter().copied().find(|w| padded.contains(&format!(" {w} ")))
}

/// `"a"`, `"a" and "b"`, `"a", "b" and "c"`.
fn quoted_list(v: &[String]) -> String {
    let q: Vec<String> = v.iter().map(|t| format!("\"{t}\"")).collect();
    match q.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

fn is_key_warning(section: &str, title: &str) -> bool {
    let t = title.to_uppercase();
    (section.starts_with("5.") && !t.contains("LABORATORY"))
        || (!section.chars().next().is_some_and(|c| c.is_ascii_digit()) && (t == "WARNINGS" || t.contains("CONTRAINDICATIONS")))
        || section == "4"
}

fn title_case(p: &str) -> String {
    let mut c = p.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// A structured call summary.
#[derive(Debug, Clone, Serialize)]
pub struct VisitSummary {
    /// `answer` normally; `pharmacovigilance`/`medical` when the notes had to be escalated (a case is opened).
    pub route: Route,
    /// Topics discussed (label sections the notes touch).
    pub topics: Vec<String>,
    /// Questions the HCP asked, as noted.
    pub hcp_questions: Vec<String>,
    /// Agreed follow-ups.
    pub follow_ups: Vec<String>,
    /// Product statements from the notes that approved text supports, with citations.
    pub statements: Vec<Statement>,
    /// Product statements removed because no approved passage supports them.
    pub removed: Vec<String>,
    /// Citations.
    pub references: Vec<Citation>,
    /// Flags from the guard.
    pub flags: Vec<Flag>,
    /// Case opened from the notes, if any.
    pub case_id: Option<String>,
    /// Message to the rep.
    pub message: Option<String>,
    /// The whole summary as text (rendered with the summary template), for
    /// the call record.
    pub text: String,
    /// The summary template used (`summary@N`; the registry's live version when registered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<String>,
    /// SHA-256 of that template's content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_sha256: Option<String>,
    /// The `seq` of the audit record of this summary (set once it is appended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<u64>,
}

impl Copilot {
    /// Turns a rep's free-text visit notes into a structured call summary.
    /// Every product statement is kept only with a citation to approved text
    /// that supports it; the rest are removed (and listed).
    pub fn summarize(&self, notes: &str, ask: &Ask, who: &Requester) -> Result<VisitSummary> {
        let mut sum = VisitSummary {
            route: Route::Answer,
            topics: Vec::new(),
            hcp_questions: Vec::new(),
            follow_ups: Vec::new(),
            statements: Vec::new(),
            removed: Vec::new(),
            references: Vec::new(),
            flags: Vec::new(),
            case_id: None,
            message: None,
            text: String::new(),
            prompt_version: None,
            prompt_sha256: None,
            audit_id: None,
        };
        // Every character of the notes is screened (overlapping windows), not only the first page.
        let screened = Ask { question: notes.to_string(), ..ask.clone() };
        if let Some(e) = self.ask_guard_only(&screened, who)? {
            if e.route == Route::Refused {
                sum.route = Route::Refused;
                sum.flags = e.flags;
                sum.message = Some(e.answer);
                return self.summary_rendered(sum);
            }
            // An AE or off-label question in the notes is escalated; the summary is still kept for the call record.
            sum.route = e.route;
            sum.flags = e.flags;
            sum.case_id = e.case_id;
            sum.message = Some(e.answer);
        }
        let filter = Filter::for_role(&ask.role, ask.product.as_deref(), ask.as_of);
        let mut refs = Refs::default();
        let product = ask.product.as_deref().unwrap_or("").to_lowercase();
        let analyzer = crate::index::Analyzer::shared();
        // The output screen sees the product's label (indications, dosing,
        // populations): a kept statement claiming an unapproved use, dose or
        // population is removed like an unsupported one.
        let ctx = self.guard_context(Some(product.as_str()));
        for line in notes.lines().flat_map(|l| sentences(l.trim_start_matches(['-', '*', '•', ' ']))) {
            let low = line.to_lowercase();
            // Clause by clause, each filed once by its leading verb phrase
            // ("Discussed X and agreed to send Y": a discussion, then a follow-up).
            let mut asked = false;
            for clause in super::notes::clauses(line) {
                match super::notes::classify(&clause) {
                    NoteKind::Question => {
                        asked = true;
                        sum.hcp_questions.push(clause);
                    }
                    NoteKind::FollowUp => sum.follow_ups.push(clause),
                    NoteKind::Discussion => {}
                }
            }
            let search = self.retrieve(line, &filter)?;
            let best: Option<&Hit> = search.hits.first().filter(|h| h.coverage >= 0.5);
            if let Some(h) = best {
                let t = h.passage.title.clone();
                if !sum.topics.contains(&t) {
                    sum.topics.push(t);
                }
            }
            // A product statement: names the product (or "it") and asserts something checkable.
            let names_product = (!product.is_empty() && low.contains(&product)) || low.starts_with("it ") || low.contains(" it ");
            let factual = line.chars().any(|c| c.is_ascii_digit())
                || ["is ", "are ", "can ", "causes", "reduces", "works", "safe", "approved", "indicated", "effective", "no "]
                    .iter()
                    .any(|w| low.contains(w));
            // A claim noted twice is kept (or removed) once.
            let repeated = sum.statements.iter().map(|s| s.text.as_str()).chain(sum.removed.iter().map(String::as_str)).any(|t| same_statement(t, line));
            if names_product && factual && !repeated && !line.contains('?') && !asked {
                // The output screen first: a statement of an unapproved use,
                // dose or population is removed however well a passage matches
                // its words, and its flags say why.
                let screened = self.guard().map(|g| g.screen_output(line, &ctx)).unwrap_or_default();
                let supported = match screened.is_empty() {
                    true => search.hits.iter().take(3).find(|h| judge(line, &h.passage.text, analyzer).is_none()),
                    false => None,
                };
                for f in screened {
                    if !sum.flags.iter().any(|g| (&g.kind, &g.rule_id, &g.evidence) == (&f.kind, &f.rule_id, &f.evidence)) {
                        sum.flags.push(f);
                    }
                }
                match supported {
                    Some(h) => {
                        let n = refs.number(&h.passage);
                        sum.statements.push(Statement { text: line.to_string(), n, items: Vec::new() });
                    }
                    None => sum.removed.push(line.to_string()),
                }
            }
        }
        sum.references = refs.list;
        self.summary_rendered(sum)
    }

    /// Renders the summary's text with the summary template and names it.
    fn summary_rendered(&self, mut sum: VisitSummary) -> Result<VisitSummary> {
        let t = &self.drafts().summary;
        sum.text = super::templates::summary_text(t, &sum)?;
        sum.prompt_version = Some(t.id());
        sum.prompt_sha256 = Some(crate::prompts::sha256_hex(t.source.as_bytes()));
        Ok(sum)
    }
}

/// Renders a summary for a terminal: its text, as the summary template rendered it.
pub fn render_summary(s: &VisitSummary) -> String {
    s.text.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lead_in_takes_the_list_after_it() {
        let p = "ZENTRAVIA is contraindicated in patients with:\n • severe hepatic impairment;\n • active hepatitis B.\nOther text.";
        assert_eq!(list_items(p, "ZENTRAVIA is contraindicated in patients with:"), ["severe hepatic impairment;", "active hepatitis B."]);
        assert!(list_items("Use caution: see 5.1 for details.", "Use caution:").is_empty(), "the rest of its own line is no list");
    }

    #[test]
    fn near_identical_statements_are_the_same() {
        assert!(same_statement("Interrupt ZENTRAVIA if ALT is greater than 3 times ULN.", "interrupt zentravia if ALT is greater than 3 times ULN"));
        assert!(same_statement(
            "In placebo-controlled clinical trials, ALT elevations greater than 3 times the upper limit of normal (ULN) occurred in 4.1% of patients treated with ZENTRAVIA 20 mg compared with 1.0% of patients who received placebo [see Warnings and Precautions (5.1)].",
            "In the 16-week placebo-controlled period of the pivotal trials, ALT elevations greater than 3 times ULN occurred in 4.1% of patients treated with ZENTRAVIA 20 mg and in 1.0% of patients who received placebo."
        ));
        assert!(!same_statement("The recommended dosage is 20 mg once daily.", "Serious infections have occurred in patients treated with ZENTRAVIA."));
    }

    #[test]
    fn the_sendable_text_has_no_banner_and_no_subject_line() {
        let body = "[DRAFT — review]\n\nSubject: Follow-up on Zentravia\n\nDear Dr. Lee,\n\nThank you.\n- A [1]\n    - item\n\nReferences\n[1] zentravia-pi §5.1 — Hepatotoxicity (MLR US-ZEN-0001)\n";
        let p = send_parts(body, "DRAFT — review", "Follow-up on Zentravia");
        assert_eq!(p.greeting, "Dear Dr. Lee,");
        assert_eq!(p.locked, "Thank you.\n- A [1]\n    - item", "list items keep their indentation");
        assert!(p.references.starts_with("References\n[1] zentravia-pi"), "{p:?}");
        // A body without greeting or references keeps everything locked.
        let q = send_parts("[B]\nSubject: S\nHello there team\nLine", "B", "S");
        assert_eq!((q.greeting.as_str(), q.locked.as_str(), q.references.as_str()), ("", "Hello there team\nLine", ""));
    }

    #[test]
    fn sign_off_lines_are_not_claims() {
        for l in ["Best,", "All the best,", "Kind regards,", "Hi Dr. Lee,", "Rex", "Rex Rep", "Dr. Mary-Ann O'Neil"] {
            assert!(is_sign_off_line(l), "{l}");
        }
        for l in ["Best drug ever.", "It is the best option,", "Zentravia works for every patient", "It is the safest choice,"] {
            assert!(!is_sign_off_line(l), "{l}");
        }
    }

    #[test]
    fn courtesy_passes_and_claims_do_not() {
        for ok in ["thank you for your time today.", "let me know if you have any questions.", "i look forward to seeing you next week.", "best,\nrex"] {
            assert_eq!(claim_words(ok), None, "{ok}");
        }
        for bad in ["it is the safest choice there is.", "it's well tolerated", "the 20 mg dose is easy", "works for nearly everyone", "great results in the trial"] {
            assert!(claim_words(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn topics_split() {
        let t = split_topics("we discussed TB screening before starting and the dosing for Crohn's disease; also storage");
        assert_eq!(t, ["we discussed TB screening before starting", "the dosing for Crohn's disease", "also storage"]);
    }
}
