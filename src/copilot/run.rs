//! [`Copilot::run`]: the one entry every input goes through — a question
//! (`ask`, `POST /api/v1/ask`), a chat conversation (the OpenAI-compatible
//! face), a follow-up email and a visit summary — and the audit record
//! appended before anything reaches the caller.
//!
//! The order is the same for every task: check the request (text and its
//! limit, a product the index holds) → guard → retrieve → compose → verify →
//! guard on the output (and open the case) → append the audit record →
//! only then hand out the verified sentences ([`Event`]) and the outcome.
//! One output leaves earlier, under the same rule: the quoted answer a model
//! is about to improve on ([`Event::Quote`]) is verified and screened before
//! the model runs, so it gets its own audit record (action `quote`) and is
//! handed out at once; the answer's record follows and names it.
//! The edges (CLI commands, HTTP routes) parse, call this, and render.

use std::time::Instant;

use chrono::NaiveDate;
use serde_json::Value;

use super::email::{EmailDraft, VisitSummary};
use super::trace::{self, Actor};
use super::{Answer, Ask, Copilot, Error, Event, Flag, Requester, Result, Route, MAX_NOTES_BYTES};
use crate::audit::Audit;

/// What the caller wants done.
#[derive(Debug, Clone)]
pub enum Task {
    /// Answer one question or objection.
    Ask {
        /// The question as typed.
        question: String,
    },
    /// Answer the last user turn of a chat; every system and user turn is
    /// screened first (a report told in an earlier turn is not lost), and
    /// the whole conversation is the audit record's input.
    Chat {
        /// Every system and user turn, `ROLE: text` a line.
        conversation: String,
        /// The last user turn: the question answered.
        question: String,
    },
    /// A rep's question in a visit (`POST /api/v1/ask`, [`super::followup`]):
    /// answered as a chat's last turn is — the visit's earlier turns that
    /// were answered are screened again with it (a report told across turns
    /// is a report) — with two differences: a Medical Information route
    /// opens no case until the rep confirms it (reports never wait), and a
    /// question that leans on context with nothing to lean on is asked back
    /// ([`super::followup::clarify`]), never escalated. The audit record's
    /// action is `ask`, its input the question as typed.
    Visit {
        /// The visit's earlier answered questions, one a line (empty on its first turn).
        earlier: String,
        /// The question as typed.
        typed: String,
        /// The question resolved against the previous turn: screened and answered.
        question: String,
    },
    /// Draft a follow-up email (never sent) on the topics discussed.
    Email {
        /// The topics discussed, free text.
        topics: String,
        /// The HCP the email is for (the greeting).
        hcp: String,
        /// The rep's own greeting, replacing the template's ("Hi Dr. Lee,"):
        /// at most [`super::MAX_GREETING_CHARS`], screened by the guard, and never
        /// about the product (the approved text says that).
        greeting: Option<String>,
        /// The rep's sign-off, placed after the approved text and before the
        /// references: at most [`super::MAX_CLOSING_CHARS`], screened the same way.
        closing: Option<String>,
    },
    /// Turn visit notes into a structured call summary.
    Summarize {
        /// The notes, free text (at most [`MAX_NOTES_BYTES`]).
        notes: String,
    },
}

impl Task {
    /// The audit record's action for this task.
    pub fn action(&self) -> &'static str {
        match self {
            Task::Ask { .. } | Task::Visit { .. } => "ask",
            Task::Chat { .. } => "chat_completion",
            Task::Email { .. } => "email",
            Task::Summarize { .. } => "summarize",
        }
    }

    /// The input as the audit record keeps it, verbatim.
    pub fn input(&self) -> &str {
        match self {
            Task::Ask { question } => question,
            Task::Chat { conversation, .. } => conversation,
            Task::Visit { typed, .. } => typed,
            Task::Email { topics, .. } => topics,
            Task::Summarize { notes } => notes,
        }
    }
}

/// One request to the copilot.
#[derive(Debug, Clone)]
pub struct Request {
    /// What to do.
    pub task: Task,
    /// The product being detailed (required for emails and summaries).
    pub product: Option<String>,
    /// Role of the asker (`rep`, `medical`, …): which passages may be used.
    pub role: String,
    /// The day the request is made on (expiry and approval are judged against it).
    pub as_of: NaiveDate,
    /// Who asks, for the cases the guard opens.
    pub requester: Requester,
    /// Whether the model may compose the answer (false: quote approved text
    /// only, the fastest path; never runs the model).
    pub generate: bool,
}

/// Where the audit record goes and what it says about the caller.
pub struct Trace<'a> {
    /// The hash-chained log.
    pub audit: &'a Audit,
    /// Who made the request.
    pub actor: Actor,
    /// The caller's facts worth keeping (product as given, index, via,
    /// request id, …); `total_ms` is added.
    pub context: Value,
}

/// What the copilot produced: the answer, the email draft or the summary,
/// with its audit record's `audit_id` set.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An answer (or the escalation/refusal that replaced it).
    Answer(Answer),
    /// An email draft (or why none was drafted).
    Email(EmailDraft),
    /// A visit summary.
    Summary(VisitSummary),
}

impl Outcome {
    /// Where it went.
    pub fn route(&self) -> Route {
        match self {
            Outcome::Answer(a) => a.route,
            Outcome::Email(d) => d.route,
            Outcome::Summary(s) => s.route,
        }
    }

    /// The case opened, if any.
    pub fn case_id(&self) -> Option<&str> {
        match self {
            Outcome::Answer(a) => a.case_id.as_deref(),
            Outcome::Email(d) => d.case_id.as_deref(),
            Outcome::Summary(s) => s.case_id.as_deref(),
        }
    }

    /// The flags raised.
    pub fn flags(&self) -> &[Flag] {
        match self {
            Outcome::Answer(a) => &a.flags,
            Outcome::Email(d) => &d.flags,
            Outcome::Summary(s) => &s.flags,
        }
    }

    /// The `seq` of its audit record (none when run without a trace).
    pub fn audit_id(&self) -> Option<u64> {
        match self {
            Outcome::Answer(a) => a.audit_id,
            Outcome::Email(d) => d.audit_id,
            Outcome::Summary(s) => s.audit_id,
        }
    }

    /// The outcome as the JSON object the CLI (`--json`) and the API return.
    pub fn to_json(&self) -> Value {
        let v = match self {
            Outcome::Answer(a) => serde_json::to_value(a),
            Outcome::Email(d) => serde_json::to_value(d),
            Outcome::Summary(s) => serde_json::to_value(s),
        };
        v.unwrap_or(Value::Null)
    }

    /// The answer, if this is one.
    pub fn into_answer(self) -> Option<Answer> {
        match self {
            Outcome::Answer(a) => Some(a),
            _ => None,
        }
    }
}

impl Copilot {
    /// Runs one request through the pipeline and appends its audit record to
    /// `trace` *before* anything reaches the caller: `on_event` sees the
    /// verified sentences of an answer only once the record exists (they are
    /// held and replayed), and if the record cannot be appended the caller
    /// gets [`Error::Audit`] and nothing else.
    ///
    /// `trace` is `None` only for evaluation runs ([`crate::eval`]), whose
    /// questions are synthetic and which are recorded as one eval record.
    pub fn run(&self, req: &Request, trace: Option<&Trace>, on_event: &mut dyn FnMut(Event)) -> Result<Outcome> {
        let t0 = Instant::now();
        self.check(req)?;
        let mut held: Vec<Event> = Vec::new();
        // The quoted answer a model is about to improve on leaves at once,
        // each after its own audit record (a `quote` record); every other
        // event is held until the outcome's record exists.
        let mut quote_seq: Option<u64> = None;
        let mut quote_failed: Option<crate::audit::Error> = None;
        let mut on_answer = |e: Event| match e {
            Event::Quote(mut q) => {
                if quote_failed.is_some() {
                    return;
                }
                if let Some(t) = trace {
                    match trace::record_quote(t.audit, &t.actor, req.task.action(), req.task.input(), &mut q, self.record_context(t, t0)) {
                        Ok(_) => quote_seq = q.audit_id,
                        Err(err) => {
                            // Not shown without its record; the request fails below.
                            quote_failed = Some(err);
                            return;
                        }
                    }
                }
                on_event(Event::Quote(q));
            }
            other => held.push(other),
        };
        let ask = |question: &str| Ask { question: question.to_string(), product: req.product.clone(), role: req.role.clone(), as_of: req.as_of };
        let who = &req.requester;
        let mut outcome = match &req.task {
            Task::Ask { question } => Outcome::Answer(self.ask_with(&ask(question), who, req.generate, &mut on_answer)?),
            Task::Chat { conversation, question } => {
                // Every character of every turn, in windows (as visit notes are).
                let escalated = self.ask_guard_only(&ask(conversation), who)?;
                Outcome::Answer(match escalated {
                    Some(a) => a,
                    None => self.ask_with(&ask(question), who, req.generate, &mut on_answer)?,
                })
            }
            Task::Visit { earlier, typed: _, question } => {
                let visit = Requester { defer_medical: true, ..who.clone() };
                let bare = super::followup::is_bare(question, &self.product_name_list());
                // The chat face's screen of every earlier turn (in windows); on a
                // first turn the question's own screen in `ask_with` is the one.
                let escalated = match (earlier.trim().is_empty(), bare) {
                    (false, _) => self.ask_guard_only(&ask(&format!("{}\n{question}", earlier.trim_end())), &visit)?,
                    (true, true) => self.ask_guard_only(&ask(question), &visit)?,
                    (true, false) => None,
                };
                Outcome::Answer(match escalated {
                    Some(a) => a,
                    None if bare => {
                        let mut a = super::followup::clarify(question);
                        a.guard_rules = self.guard().map(|g| g.rules_version().to_string());
                        a
                    }
                    None => self.ask_with(&ask(question), &visit, req.generate, &mut on_answer)?,
                })
            }
            Task::Email { topics, hcp, greeting, closing } => Outcome::Email(self.email_with(&ask(topics), who, hcp, greeting.as_deref(), closing.as_deref())?),
            Task::Summarize { notes } => Outcome::Summary(self.summarize(notes, &ask(""), who)?),
        };
        if let Some(err) = quote_failed {
            return Err(err.into());
        }
        // The final record names the quote's (what the rep saw first).
        if let (Outcome::Answer(a), Some(seq)) = (&mut outcome, quote_seq) {
            if let Some(q) = a.quote.as_mut() {
                q.audit_id = Some(seq);
            }
        }
        if let Some(t) = trace {
            self.record(req, t, &mut outcome, t0)?;
        }
        for e in held {
            on_event(e);
        }
        Ok(outcome)
    }

    /// The request's own checks, before anything is screened or stored.
    pub(super) fn check(&self, req: &Request) -> Result<()> {
        if let Task::Summarize { notes } = &req.task {
            if notes.trim().is_empty() {
                return Err(Error::BadQuestion("the notes are empty: paste the visit notes".into()));
            }
            if notes.len() as u64 > MAX_NOTES_BYTES {
                return Err(Error::BadQuestion(format!(
                    "the notes are {} bytes, over the {MAX_NOTES_BYTES}-byte limit: summarize one visit at a time",
                    notes.len()
                )));
            }
        }
        if let Task::Email { topics, greeting, closing, .. } = &req.task {
            if topics.trim().is_empty() {
                return Err(Error::BadQuestion("the topics are empty: say what was discussed".into()));
            }
            for (what, text, limit) in [("greeting", greeting, super::MAX_GREETING_CHARS), ("closing", closing, super::MAX_CLOSING_CHARS)] {
                let n = text.as_deref().map_or(0, |t| t.chars().count());
                if n > limit {
                    return Err(Error::BadQuestion(format!("the {what} is {n} characters, over the {limit}-character limit: keep it to a greeting or a sign-off")));
                }
            }
        }
        if matches!(req.task, Task::Email { .. } | Task::Summarize { .. }) && req.product.as_deref().is_none_or(|p| p.trim().is_empty()) {
            return Err(Error::BadQuestion("name the product the draft is about".into()));
        }
        if let Some(p) = req.product.as_deref().map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()) {
            let known = self.products();
            if !known.contains(&p) {
                return Err(Error::UnknownProduct { product: p, known: if known.is_empty() { "nothing".into() } else { known.join(", ") } });
            }
        }
        Ok(())
    }

    /// The caller's context for an audit record, with the time so far and the retrieval mode.
    fn record_context(&self, t: &Trace, t0: Instant) -> Value {
        let mut context = t.context.clone();
        if let Some(o) = context.as_object_mut() {
            o.insert("total_ms".into(), (t0.elapsed().as_secs_f64() * 1e3).into());
            o.insert("retrieval".into(), format!("{:?}", self.retrieval()).to_lowercase().into());
        }
        context
    }

    /// Appends the outcome's audit record and sets its `audit_id`.
    fn record(&self, req: &Request, t: &Trace, outcome: &mut Outcome, t0: Instant) -> Result<()> {
        let context = self.record_context(t, t0);
        let rules = self.guard().map(|g| g.rules_version().to_string());
        let input = req.task.input();
        match outcome {
            Outcome::Answer(a) => {
                trace::record_answer(t.audit, &t.actor, req.task.action(), input, a, context)?;
            }
            Outcome::Email(d) => {
                let seq = trace::record_email(t.audit, &t.actor, input, d, rules.as_deref(), context)?;
                d.audit_id = u64::try_from(seq).ok();
            }
            Outcome::Summary(s) => {
                let seq = trace::record_summary(t.audit, &t.actor, input, s, rules.as_deref(), context)?;
                s.audit_id = u64::try_from(seq).ok();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copilot::DraftTemplates;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).expect("valid date")
    }

    /// A copilot over the demo corpus (one adult-only product, zentravia)
    /// with the built-in guard and a case store in `data`.
    fn copilot(tmp: &Path) -> Copilot {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let limits = crate::corpus::Limits::default();
        let corpus = crate::corpus::Corpus::load(&[root.join("corpora/demo")], limits, false).expect("demo corpus loads");
        let idx = tmp.join("idx");
        crate::index::Index::build(&idx, &corpus.passages(limits), |_| {}).expect("index builds");
        let guard = Arc::new(crate::guard::Guard::builtin().expect("built-in rules"));
        Copilot::new(crate::index::Index::open(&idx).expect("index opens"))
            .with_guard(guard, day())
            .expect("guard attaches")
            .with_cases(crate::cases::CaseStore::open(&tmp.join("data")).expect("case store"))
    }

    fn request(task: Task) -> Request {
        Request {
            task,
            product: Some("zentravia".into()),
            role: "rep".into(),
            as_of: day(),
            requester: Requester { user: "rex".into(), hcp: Some("Dr. Lee".into()), defer_medical: false },
            generate: false,
        }
    }

    fn trace(audit: &Audit) -> Trace<'_> {
        Trace { audit, actor: Actor::unauthenticated("rep", Some("rex")), context: serde_json::json!({"via": "test"}) }
    }

    /// Issue 16: a visit summary's output screen sees the product's label.
    /// Notes asking for pediatric dosing of an adult-only product escalate
    /// as off-label (a Medical case); a rep's noted statement of pediatric
    /// use is removed with the off-label flag that says why (and, as it
    /// claims a use, goes to Medical too), while a statement without the
    /// population is kept with its citation.
    #[test]
    fn a_summary_gets_the_off_label_check_of_the_products_label() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let c = copilot(tmp.path());
        let audit = Audit::open(&tmp.path().join("data")).expect("audit");
        let asked = "Dr. Lee asked what dose of Zentravia to use in her 10-year-old patients with psoriasis.\n";
        let Outcome::Summary(s) = c.run(&request(Task::Summarize { notes: asked.into() }), Some(&trace(&audit)), &mut |_| {}).expect("runs") else {
            panic!("a summary task yields a summary")
        };
        assert_eq!(s.route, Route::Medical, "{s:?}");
        assert!(s.case_id.is_some(), "a Medical Information case is opened: {s:?}");
        assert!(s.flags.iter().any(|f| f.kind == "off_label"), "{:?}", s.flags);

        let stated = "Told Dr. Lee that Zentravia can be used in children with plaque psoriasis.\nZentravia is taken by mouth once daily.\n";
        let Outcome::Summary(s) = c.run(&request(Task::Summarize { notes: stated.into() }), Some(&trace(&audit)), &mut |_| {}).expect("runs") else {
            panic!("a summary task yields a summary")
        };
        assert_eq!(s.removed, ["Told Dr. Lee that Zentravia can be used in children with plaque psoriasis."], "{s:?}");
        assert!(s.flags.iter().any(|f| f.kind == "off_label"), "the removal says why: {:?}", s.flags);
        assert_eq!(s.statements.len(), 1, "{s:?}");
        assert_eq!(s.statements[0].text, "Zentravia is taken by mouth once daily.");
        // The summary names its template, and so does its audit record.
        assert_eq!(s.prompt_version.as_deref(), Some("summary@1"));
        let e = audit.get(i64::try_from(s.audit_id.expect("recorded")).expect("seq")).expect("read").expect("record exists");
        assert_eq!((e.action.as_str(), e.prompt_version.as_deref()), ("summarize", Some("summary@1")));
        assert!(s.text.contains("Removed (not supported by approved material):\n  - Told Dr. Lee"), "{}", s.text);
    }

    /// Issue 19: a rep's answer is composed with the `answer` template and
    /// streamed part by part; a template whose rendering adds a word is
    /// refused and the rank-quoted extractive answer stands (the same as
    /// with the composer off).
    #[test]
    fn a_reps_answer_is_composed_and_an_unfaithful_template_falls_back_to_quoting() {
        let ask = || request(Task::Ask { question: "How often should liver tests be done?".into() });
        let tmp = tempfile::tempdir().expect("temp dir");
        let c = copilot(tmp.path());
        let mut streamed = Vec::new();
        let a = c.run(&ask(), None, &mut |e| if let crate::copilot::Event::Sentence(s) = e { streamed.push(s) }).expect("runs").into_answer().expect("an answer");
        assert_eq!((a.route, a.mode), (Route::Answer, crate::copilot::Mode::Composed), "{a:?}");
        assert_eq!(a.prompt_version.as_deref(), Some("answer@1"));
        assert_eq!(a.prompt_sha256, Some(crate::prompts::sha256_hex(DraftTemplates::builtin().answer.source.as_bytes())));
        assert_eq!(streamed.join(" "), a.answer);
        assert!(a.answer.starts_with("During treatment, monitor liver tests every 4 weeks"), "{}", a.answer);

        let mut bad = DraftTemplates::builtin();
        bad.answer.source = bad.answer.source.replace("{{ s.text }} [{{ s.n }}]", "{{ s.text }} [{{ s.n }}] Clinically proven.");
        let tmp2 = tempfile::tempdir().expect("temp dir");
        let b = copilot(tmp2.path()).with_drafts(bad).run(&ask(), None, &mut |_| {}).expect("runs").into_answer().expect("an answer");
        assert_eq!(b.mode, crate::copilot::Mode::Extractive, "{b:?}");
        assert!(!b.answer.contains("Clinically proven") && b.prompt_version.is_none(), "{b:?}");
        let tmp3 = tempfile::tempdir().expect("temp dir");
        let off = copilot(tmp3.path()).with_composer(None).run(&ask(), None, &mut |_| {}).expect("runs").into_answer().expect("an answer");
        assert_eq!((off.mode, &off.answer), (crate::copilot::Mode::Extractive, &b.answer));
    }

    /// Issue 16: every sentence of an answer reaches the caller only after
    /// its audit record is in the log, through the one entry.
    #[test]
    fn verified_sentences_are_handed_out_only_after_the_record_exists() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let c = copilot(tmp.path());
        let audit = Audit::open(&tmp.path().join("data")).expect("audit");
        let count = |a: &Audit| a.range(None, None).expect("range").len();
        let mut seen = Vec::new();
        let out = c
            .run(&request(Task::Ask { question: "How often should liver tests be done?".into() }), Some(&trace(&audit)), &mut |_| seen.push(count(&audit)))
            .expect("runs");
        assert_eq!(out.route(), Route::Answer);
        assert!(!seen.is_empty() && seen.iter().all(|&n| n == 1), "each sentence saw the record: {seen:?}");
        assert_eq!(out.audit_id(), Some(1));
    }

    /// Issue 16 / 17 row 8: a product the index does not hold is the
    /// caller's error (`unknown_product`: 400, exit 2) before anything is
    /// screened, answered, opened or recorded — even for a question the
    /// guard would escalate.
    #[test]
    fn an_unknown_product_is_refused_before_anything_is_opened_or_recorded() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let c = copilot(tmp.path());
        let audit = Audit::open(&tmp.path().join("data")).expect("audit");
        let mut req = request(Task::Ask { question: "My patient was hospitalised with liver failure after starting it.".into() });
        req.product = Some("nosuch".into());
        let e = c.run(&req, Some(&trace(&audit)), &mut |_| {}).expect_err("refused");
        assert_eq!(e.code(), "unknown_product");
        assert!(e.to_string().contains("zentravia"), "the message lists what the index holds: {e}");
        assert_eq!(crate::error::exit_status(e.code()), crate::error::EXIT_BAD_INPUT);
        assert_eq!(crate::error::lookup(e.code()).map(|c| c.http), Some(400));
        assert!(audit.range(None, None).expect("range").is_empty(), "nothing recorded");
        let cases = crate::cases::CaseStore::open(&tmp.path().join("data")).expect("case store");
        assert!(cases.list(&Default::default()).expect("list").is_empty(), "no case opened");
        // Drafts name their product, too.
        let mut email = request(Task::Email { topics: "liver tests and dosing".into(), hcp: "Dr. Lee".into(), greeting: None, closing: None });
        email.product = None;
        assert_eq!(c.run(&email, None, &mut |_| {}).expect_err("refused").code(), "bad_question");
    }

    /// Issue 16: an email is framed by the `email` template and says which
    /// version; a name registered in the prompt registry runs only in its
    /// approved version — a proposed, unapproved `email` is refused.
    #[test]
    fn emails_name_their_template_and_an_unapproved_registered_one_never_runs() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let c = copilot(tmp.path());
        let audit = Audit::open(&tmp.path().join("data")).expect("audit");
        let Outcome::Email(d) =
            c.run(&request(Task::Email { topics: "liver test monitoring".into(), hcp: "Dr. Lee".into(), greeting: None, closing: None }), Some(&trace(&audit)), &mut |_| {}).expect("runs")
        else {
            panic!("an email task yields a draft")
        };
        assert_eq!(d.prompt_version.as_deref(), Some("email@1"));
        assert!(d.body.starts_with(&format!("[{}]\n\nSubject: Follow-up on our discussion of Zentravia\n\nDear Dr. Lee,", super::super::email::DRAFT_BANNER)), "{}", d.body);
        let e = audit.get(i64::try_from(d.audit_id.expect("recorded")).expect("seq")).expect("read").expect("record exists");
        assert_eq!((e.action.as_str(), e.prompt_version.as_deref()), ("email", Some("email@1")));
        assert_eq!(e.prompt_sha256, d.prompt_sha256);

        // The registry: an `email` version proposed (not approved) blocks every email template.
        let root = tmp.path().join("repo");
        std::fs::create_dir_all(root.join("prompts")).expect("mkdir");
        std::fs::write(root.join("prompts/email.j2"), DraftTemplates::builtin_source("email").expect("built in").replace("Thank you for your time today.", "Great chat!")).expect("write");
        let store = audit.store();
        assert!(DraftTemplates::live(store, &root).expect("unregistered: the file runs").email.source.contains("Great chat!"));
        let users = crate::users::Users::new(store);
        let admin = users.add("root", "Ada Admin", crate::users::Role::Admin, None).expect("admin").0;
        let mlr = users.add("mia", "Mia MLR", crate::users::Role::MlrReviewer, Some(&admin)).expect("mlr").0;
        crate::prompts::Registry::new(store, &root).propose("email", Path::new("prompts/email.j2"), None, serde_json::json!({}), &mlr).expect("proposed");
        let err = DraftTemplates::live(store, &root).expect_err("registered but not approved");
        assert_eq!(err.code(), "not_approved", "{err}");
        // A rep's question loads only `answer` (issue 19): an unapproved
        // `email` does not stop it, an unapproved `answer` does.
        assert_eq!(DraftTemplates::live_answer(store, &root).expect("email is not asked's").answer.id(), "answer@1");
        std::fs::write(root.join("prompts/answer.j2"), DraftTemplates::builtin_source("answer").expect("built in")).expect("write");
        crate::prompts::Registry::new(store, &root).propose("answer", Path::new("prompts/answer.j2"), None, serde_json::json!({}), &mlr).expect("proposed");
        let err = DraftTemplates::live_answer(store, &root).expect_err("registered but not approved");
        assert_eq!(err.code(), "not_approved", "{err}");
    }
}
