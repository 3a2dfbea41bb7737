//! Escalation: a flagged or unanswerable question opens a Pharmacovigilance
//! or Medical Information case, and the rep is told what happens next; a
//! forbidden request is refused with the reason.

use super::{Answer, Ask, Copilot, Error, Mode, Requester, Result, Route, Timings};

impl Copilot {
    /// Routes a flagged question: opens a Pharmacovigilance or Medical
    /// Information case (when a case store is attached) and tells the rep what
    /// happens next; a forbidden request is refused with the reason. The
    /// answer carries no promotional content. With
    /// [`Requester::defer_medical`], a Medical route opens no case: the rep
    /// is told to confirm the request with the HCP's consent first.
    pub(super) fn escalate(&self, ask: &Ask, who: &Requester, v: &crate::guard::Verdict, timings: Timings) -> Result<Answer> {
        use crate::cases::{CaseKind, NewCase};
        let deferred = who.defer_medical && v.route == Route::Medical;
        let kind = match v.route {
            Route::Pharmacovigilance => Some(CaseKind::Pharmacovigilance),
            Route::Medical if deferred => None,
            Route::Medical => Some(CaseKind::MedicalInformation),
            _ => None,
        };
        let mut case_id = None;
        if let (Some(kind), Some(store)) = (kind, &self.cases) {
            let r = v.report.clone().unwrap_or_default();
            let event = r.event.clone().or_else(|| r.special_situation.clone()).or_else(|| v.reason.clone());
            let case = store
                .open_case(NewCase {
                    kind,
                    product: ask.product.clone(),
                    question: ask.question.clone(),
                    reporter: who.user.clone(),
                    hcp: who.hcp.clone().or(r.reporter.clone()),
                    patient: r.patient.clone(),
                    suspect_product: r.product.clone().or(ask.product.clone()),
                    event,
                    flags_json: serde_json::to_string(&v.flags).unwrap_or_else(|_| "[]".into()),
                    now: chrono::Utc::now(),
                })
                .map_err(Error::Cases)?;
            case_id = Some(case.id);
        }
        let case_text = |who: &str, sla: &str| match &case_id {
            Some(id) => format!("It has been sent to {who} as case {id}; {sla}"),
            None if deferred => "Nothing has been sent yet: check the request below with the HCP (their words, their consent to be contacted and how) and confirm it to send it to Medical Information, or dismiss it with the reason.".to_string(),
            None => format!("Send it to {who} now (no case store is configured here); {sla}"),
        };
        let answer = match v.route {
            Route::Pharmacovigilance => format!(
                "This sounds like an adverse event or a special situation (pregnancy, overdose, medication error or lack of effect) that must be reported. {} Pharmacovigilance will follow up within one business day. Do not give product information on this now; note the patient details, who reported it and when.",
                case_text("Pharmacovigilance", "they have the rep's words verbatim.")
            ),
            Route::Medical if v.flags.iter().all(|f| f.rule_id == "MIR-NO-APPROVED-ANSWER") => format!(
                "No approved, current passage for {} answers this, so it is a Medical Information request. {} Medical Information will answer the HCP directly within two business days; don't improvise an answer.",
                ask.product.as_deref().unwrap_or("the products you detail"),
                case_text("Medical Information", "the HCP's question is recorded verbatim.")
            ),
            Route::Medical => format!(
                "This question goes beyond the approved labeling{}. {} Medical Information will answer the HCP directly; do not answer it yourself.",
                v.reason.as_deref().map(|r| format!(" ({})", r.trim_end_matches('.'))).unwrap_or_default(),
                case_text("Medical Information", "the HCP's question is recorded verbatim.")
            ),
            _ => format!(
                "I can't help with that request: {}.",
                v.reason.as_deref().unwrap_or("it is not something a rep may discuss or provide").trim_end_matches('.')
            ),
        };
        Ok(Answer {
            route: v.route,
            answer,
            mode: Mode::Extractive,
            citations: Vec::new(),
            flags: v.flags.clone(),
            case_id,
            prompt_version: None,
            model: None,
            audit_id: None,
            guard_rules: None,
            timings_ms: timings,
            prompt_sha256: None,
            generated_tokens: None,
            retrieved: Vec::new(),
            product: None,
            note: None,
            parts: Vec::new(),
            fallback: None,
            quote: None,
        })
    }
}
