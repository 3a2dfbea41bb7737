//! [`DraftTemplates`]: the MLR-approved wording around the approved
//! statements of a follow-up email (`prompts/email.j2`), of a visit
//! summary (`prompts/summary.j2`) and of a rep's composed answer
//! (`prompts/answer.j2`, with the connectives it may use; see
//! [`super::compose`]).
//!
//! Drafts are composed without the model: every product statement in them is
//! approved label text, chosen and cited by the copilot ([`super::email`]).
//! What surrounds the statements — greeting, lead-in, the safety heading,
//! the reference list, the summary's layout — is what a reviewer must
//! control, so it is a registered template like the `objection` prompt: the
//! registry's live, approved version when one is registered
//! ([`crate::prompts::live_template`]), otherwise the file in `prompts/` as
//! compiled into this build. The version and SHA-256 used go into every
//! draft and its audit record.

use serde_json::{json, Value};

use super::email::{EmailDraft, Statement, VisitSummary};
use super::{Citation, Error, Result};
use crate::prompts::PromptFile;

/// The email template as compiled into this build.
const EMAIL_J2: &str = include_str!("../../prompts/email.j2");
/// The summary template as compiled into this build.
const SUMMARY_J2: &str = include_str!("../../prompts/summary.j2");
/// The composed answer's template as compiled into this build.
const ANSWER_J2: &str = include_str!("../../prompts/answer.j2");

/// The templates the drafts are rendered with.
#[derive(Debug, Clone)]
pub struct DraftTemplates {
    /// `email`: part `subject` and part `body`.
    pub email: PromptFile,
    /// `summary`: the visit summary as text.
    pub summary: PromptFile,
    /// `answer`: the connectives around a composed answer's statements.
    pub answer: PromptFile,
}

impl DraftTemplates {
    /// The templates of `prompts/` as compiled into this build.
    pub fn builtin() -> DraftTemplates {
        DraftTemplates { email: builtin("email", EMAIL_J2), summary: builtin("summary", SUMMARY_J2), answer: builtin("answer", ANSWER_J2) }
    }

    /// The templates the copilot may run now: for each of `email`,
    /// `summary` and `answer`, the registry's live approved version when the name is
    /// registered (refused when altered or unapproved), else the file in
    /// `root/prompts/`, else the compiled-in one
    /// ([`crate::prompts::live_template`]).
    pub fn live(store: &crate::store::Store, root: &std::path::Path) -> crate::Result<DraftTemplates> {
        let mut t = DraftTemplates::builtin();
        if let Some(p) = crate::prompts::live_template("email", store, root)? {
            t.email = p;
        }
        if let Some(p) = crate::prompts::live_template("summary", store, root)? {
            t.summary = p;
        }
        if let Some(p) = crate::prompts::live_template("answer", store, root)? {
            t.answer = p;
        }
        Ok(t)
    }

    /// The compiled-in templates with the live `answer` only (what `ask`
    /// runs: a registered, unapproved `email` does not stop a question).
    pub fn live_answer(store: &crate::store::Store, root: &std::path::Path) -> crate::Result<DraftTemplates> {
        let mut t = DraftTemplates::builtin();
        if let Some(p) = crate::prompts::live_template("answer", store, root)? {
            t.answer = p;
        }
        Ok(t)
    }

    /// Puts a newly approved version of `email`, `summary` or `answer` in
    /// place; false for any other name.
    pub fn replace(&mut self, p: PromptFile) -> bool {
        match p.name.as_str() {
            "email" => self.email = p,
            "summary" => self.summary = p,
            "answer" => self.answer = p,
            _ => return false,
        }
        true
    }

    /// The compiled-in source of a draft template by name (`email`, `summary`, `answer`).
    pub fn builtin_source(name: &str) -> Option<&'static str> {
        match name {
            "email" => Some(EMAIL_J2),
            "summary" => Some(SUMMARY_J2),
            "answer" => Some(ANSWER_J2),
            _ => None,
        }
    }
}

fn builtin(name: &str, source: &str) -> PromptFile {
    let version = source
        .lines()
        .find_map(|l| l.trim().strip_prefix("version:").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0);
    PromptFile { name: name.into(), version, source: source.into() }
}

/// Renders one template with `ctx`; a template that does not render is an
/// error naming it (a registered version is checked when proposed, but the
/// file may still be wrong in ways only rendering shows).
fn render(t: &PromptFile, ctx: Value) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.add_template(&t.name, &t.source).map_err(|e| Error::Template { template: t.id(), reason: e.to_string() })?;
    let tpl = env.get_template(&t.name).map_err(|e| Error::Template { template: t.id(), reason: e.to_string() })?;
    tpl.render(ctx).map_err(|e| Error::Template { template: t.id(), reason: e.to_string() })
}

fn statements(v: &[Statement]) -> Value {
    v.iter().map(|s| json!({"text": s.text, "n": s.n, "items": s.items})).collect()
}

fn references(v: &[Citation]) -> Value {
    v.iter().map(|c| json!({"n": c.n, "label": c.label(), "title": c.title, "mlr_number": c.mlr_number})).collect()
}

/// The email's subject line.
pub fn email_subject(t: &PromptFile, product: &str) -> Result<String> {
    Ok(render(t, json!({"part": "subject", "product": product}))?.trim().to_string())
}

/// The whole email as text, from its statements, safety information and references.
pub fn email_body(t: &PromptFile, d: &EmailDraft, hcp: &str, product: &str) -> Result<String> {
    render(
        t,
        json!({"part": "body", "banner": d.banner, "subject": d.subject, "hcp": hcp, "product": product,
               "statements": statements(&d.statements), "isi": statements(&d.isi), "references": references(&d.references)}),
    )
}

/// The visit summary as text.
pub fn summary_text(t: &PromptFile, s: &VisitSummary) -> Result<String> {
    render(
        t,
        json!({"route": s.route.as_str(), "message": s.message, "topics": s.topics, "hcp_questions": s.hcp_questions,
               "follow_ups": s.follow_ups, "statements": statements(&s.statements), "removed": s.removed,
               "references": references(&s.references)}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copilot::Route;

    fn cit(n: usize) -> Citation {
        Citation {
            n,
            doc_id: "zen-pi".into(),
            section: format!("5.{n}"),
            title: "HEPATOTOXICITY".into(),
            mlr_number: "MLR-2024-0042".into(),
            quote: String::new(),
            page: None,
            source_url: String::new(),
        }
    }

    fn st(text: &str, n: usize, items: &[&str]) -> Statement {
        Statement { text: text.into(), n, items: items.iter().map(|s| s.to_string()).collect() }
    }

    /// The email as the copilot rendered it before the template existed
    /// (kept here as the reference the template must reproduce byte for byte).
    fn reference_email(d: &EmailDraft, hcp: &str, product: &str) -> String {
        let push = |b: &mut String, s: &Statement| {
            b.push_str(&format!("- {} [{}]\n", s.text, s.n));
            for i in &s.items {
                b.push_str(&format!("    - {i}\n"));
            }
        };
        let mut b = String::new();
        b.push_str(&format!("[{}]\n\nSubject: {}\n\nDear {hcp},\n\n", d.banner, d.subject));
        b.push_str(&format!("Thank you for your time today. As we discussed, the {product} Prescribing Information states:\n\n"));
        for s in &d.statements {
            push(&mut b, s);
        }
        b.push_str("\nIMPORTANT SAFETY INFORMATION\n\n");
        for s in &d.isi {
            push(&mut b, s);
        }
        b.push_str("\nPlease see the full Prescribing Information, including the Boxed Warning where present.\n\nReferences\n");
        for c in &d.references {
            b.push_str(&format!("[{}] {} — {} (MLR {})\n", c.n, c.label(), c.title, c.mlr_number));
        }
        b
    }

    /// The summary text as the copilot rendered it before the template existed.
    fn reference_summary(s: &VisitSummary) -> String {
        let mut o = String::new();
        if let Some(m) = &s.message {
            o.push_str(&format!("[{}] {m}\n\n", s.route.as_str()));
        }
        let list = |o: &mut String, h: &str, v: &[String]| {
            o.push_str(&format!("{h}:\n"));
            if v.is_empty() {
                o.push_str("  (none)\n");
            }
            for x in v {
                o.push_str(&format!("  - {x}\n"));
            }
        };
        list(&mut o, "Topics discussed", &s.topics);
        list(&mut o, "HCP questions", &s.hcp_questions);
        list(&mut o, "Agreed follow-ups", &s.follow_ups);
        o.push_str("Product statements (approved, cited):\n");
        if s.statements.is_empty() {
            o.push_str("  (none)\n");
        }
        for x in &s.statements {
            o.push_str(&format!("  - {} [{}]\n", x.text, x.n));
        }
        list(&mut o, "Removed (not supported by approved material)", &s.removed);
        for c in &s.references {
            o.push_str(&format!("[{}] {} — {} (MLR {})\n", c.n, c.label(), c.title, c.mlr_number));
        }
        o
    }

    fn draft(statements: Vec<Statement>, isi: Vec<Statement>, refs: Vec<Citation>) -> EmailDraft {
        EmailDraft {
            route: Route::Answer,
            banner: super::super::email::DRAFT_BANNER.into(),
            subject: "Follow-up on our discussion of Zentravia".into(),
            statements,
            isi,
            references: refs,
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
        }
    }

    #[test]
    fn the_email_template_reproduces_the_email_byte_for_byte() {
        let t = DraftTemplates::builtin().email;
        assert_eq!(t.id(), "email@1");
        assert_eq!(email_subject(&t, "Zentravia").unwrap(), "Follow-up on our discussion of Zentravia");
        let cases = [
            draft(
                vec![st("Monitor liver tests monthly.", 1, &[]), st("It is contraindicated in patients with:", 2, &["severe hepatic impairment;", "hepatitis B."])],
                vec![st("Serious infections have occurred.", 3, &[])],
                vec![cit(1), cit(2), cit(3)],
            ),
            draft(Vec::new(), vec![st("Boxed warning sentence.", 1, &["a", "b"])], vec![cit(1)]),
            draft(Vec::new(), Vec::new(), Vec::new()),
        ];
        for d in &cases {
            assert_eq!(email_body(&t, d, "Dr. Lee", "Zentravia").unwrap(), reference_email(d, "Dr. Lee", "Zentravia"));
        }
    }

    #[test]
    fn the_summary_template_reproduces_the_summary_byte_for_byte() {
        let t = DraftTemplates::builtin().summary;
        assert_eq!(t.id(), "summary@1");
        let full = VisitSummary {
            route: Route::Pharmacovigilance,
            topics: vec!["HEPATOTOXICITY".into(), "DOSAGE".into()],
            hcp_questions: vec!["She asked about liver tests.".into()],
            follow_ups: vec!["Will send the PI.".into()],
            statements: vec![st("Zentravia is taken once daily.", 1, &[])],
            removed: vec!["It cures everything.".into()],
            references: vec![cit(1)],
            flags: Vec::new(),
            case_id: Some("PV-1".into()),
            message: Some("A possible adverse event was reported.".into()),
            text: String::new(),
            prompt_version: None,
            prompt_sha256: None,
            audit_id: None,
        };
        let empty = VisitSummary {
            route: Route::Answer,
            topics: Vec::new(),
            hcp_questions: Vec::new(),
            follow_ups: Vec::new(),
            statements: Vec::new(),
            removed: Vec::new(),
            references: Vec::new(),
            message: None,
            case_id: None,
            ..full.clone()
        };
        for s in [&full, &empty] {
            assert_eq!(summary_text(&t, s).unwrap(), reference_summary(s));
        }
    }

    #[test]
    fn a_template_that_does_not_render_is_an_error_naming_it() {
        let t = PromptFile { name: "email".into(), version: 7, source: "{% for %}".into() };
        let e = email_subject(&t, "x").unwrap_err();
        assert!(e.to_string().contains("email@7"), "{e}");
        assert_eq!(e.code(), "template_invalid");
    }
}
