//! [`record_answer`], [`record_email`], [`record_summary`]: the one place
//! where an output of the copilot becomes an audit record.
//!
//! Called only by [`Copilot::run`](super::Copilot::run), after the output is
//! composed and screened and *before* any of it is handed over (the CLI
//! commands and the server's routes pass a [`Trace`](super::Trace) and never
//! append an output's record themselves). It lives in `copilot`
//! (it turns the copilot's outputs into records), so that `audit` stays a
//! log that knows nothing of answers and depends on nothing above `store`. One record per
//! output holds everything needed to show which approved prompt, model,
//! passages and guard rules produced it: actor and role, the input verbatim,
//! prompt `name@N` and SHA-256, model file and SHA-256, the passages
//! retrieved, the guard's flags (its decision), the output, the route, the
//! case opened (an escalation's case is opened by the pipeline; its id is on
//! this record), and the stage timings. `detail` adds the citations, the
//! guard's rule versions and hashes, and the caller's context (product,
//! index, retrieval mode, who signed in and how).

use serde::Serialize;
use serde_json::{json, Value};

use crate::audit::{Audit, Record, Result};
use super::email::{EmailDraft, VisitSummary};
use super::{Answer, Citation};

/// Who produced an output, as the audit log records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The signed-in user's id, or — when nobody signed in — `os:NAME` (the
    /// operating-system account that ran the command) or `unknown`.
    pub id: String,
    /// The signed-in user's role, or the role the command was given (`--role`).
    pub role: String,
    /// True when `id` was checked against a token (the user signed in).
    pub authenticated: bool,
    /// The user id given with `--as` without a token: a claim, not an identity.
    pub claimed: Option<String>,
}

impl Actor {
    /// Nobody signed in: the operating-system user (`$USER`, `$LOGNAME`,
    /// `$USERNAME`, else on Unix the process owner's name in `/etc/passwd`)
    /// as `os:NAME`, else `unknown`, with the role as given.
    pub fn unauthenticated(role: &str, claimed: Option<&str>) -> Actor {
        let os = ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .map(|v| v.trim().to_string())
            .find(|v| !v.is_empty())
            .or_else(process_owner);
        Actor {
            id: os.map(|u| format!("os:{u}")).unwrap_or_else(|| "unknown".into()),
            role: role.into(),
            authenticated: false,
            claimed: claimed.map(str::to_string),
        }
    }

    /// A user who signed in with id and token.
    pub fn signed_in(user: &crate::users::User) -> Actor {
        Actor { id: user.id.clone(), role: user.role.as_str().into(), authenticated: true, claimed: None }
    }

    fn record(&self, action: &str) -> Record {
        Record::new(&self.id, &self.role, action)
    }

    fn detail(&self) -> Value {
        json!({"authenticated": self.authenticated, "claimed_user": self.claimed})
    }
}

/// The name of the user owning this process, from `/etc/passwd` (containers
/// and services often run without `$USER`).
#[cfg(unix)]
fn process_owner() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2] == uid && !f[0].is_empty()).then(|| f[0].to_string())
    })
}

#[cfg(not(unix))]
fn process_owner() -> Option<String> {
    None
}

/// Splits the copilot's `FILE sha256:HEX` model id into file and hash.
pub fn split_model(id: &str) -> (String, Option<String>) {
    match id.split_once(" sha256:") {
        Some((file, sha)) => (file.to_string(), Some(sha.to_string())),
        None => (id.to_string(), None),
    }
}

fn citations(c: &[Citation]) -> Value {
    c.iter().map(|c| json!({"n": c.n, "label": c.label(), "title": c.title, "mlr_number": c.mlr_number})).collect()
}

/// Merges `extra` (an object) into `base` (an object); `extra` wins.
fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// Appends the record of one answer (`action` is `ask`) and sets the
/// answer's `audit_id` to its seq. `input` is the question verbatim;
/// `guard_rules` the versions of the guard that screened it; `context` any
/// caller facts worth keeping (product, index, retrieval mode, …).
pub fn record_answer(audit: &Audit, actor: &Actor, action: &str, input: &str, answer: &mut Answer, context: Value) -> Result<i64> {
    let mut r = actor.record(action);
    r.input = Some(input.to_string());
    r.prompt_version = answer.prompt_version.clone();
    r.prompt_sha256 = answer.prompt_sha256.clone();
    if let Some(m) = &answer.model {
        let (file, sha) = split_model(m);
        r.model = Some(file);
        r.model_sha256 = sha;
    }
    r.passages = answer.retrieved.clone();
    r.flags = serde_json::to_value(&answer.flags).unwrap_or(Value::Null);
    r.output = Some(answer.answer.clone());
    r.route = Some(answer.route.as_str().to_string());
    r.case_id = answer.case_id.clone();
    r.timings = serde_json::to_value(&answer.timings_ms).unwrap_or(Value::Null);
    r.detail = merge(
        merge(
            merge(
                json!({"mode": answer.mode, "citations": citations(&answer.citations), "guard_rules": answer.guard_rules}),
                // The quote shown first, when one was: its own record.
                match answer.quote.as_ref().and_then(|q| q.audit_id) {
                    Some(seq) => json!({"quote_audit_id": seq}),
                    None => json!({}),
                },
            ),
            actor.detail(),
        ),
        context,
    );
    if let (Some(f), Some(d)) = (&answer.fallback, r.detail.as_object_mut()) {
        // Why a quoted answer stands where the model was to write it.
        d.insert("fallback".into(), json!({"reason": f.reason, "message": f.message, "detail": f.detail}));
    }
    let seq = audit.append(&r)?;
    answer.audit_id = u64::try_from(seq).ok();
    Ok(seq)
}

/// Appends the record of a quoted answer handed out at once while the
/// model composes ([`super::Quote`], action `quote`) and sets its
/// `audit_id`: what the rep saw first, before the answer's own record
/// (`action`, whose detail names this one as `quote_audit_id`). `action` is
/// the request's (`ask`, `chat_completion`), kept in the detail as `of`.
pub fn record_quote(audit: &Audit, actor: &Actor, action: &str, input: &str, quote: &mut super::Quote, context: Value) -> Result<i64> {
    let mut r = actor.record("quote");
    r.input = Some(input.to_string());
    r.prompt_version = quote.prompt_version.clone();
    r.prompt_sha256 = quote.prompt_sha256.clone();
    r.passages = quote.retrieved.clone();
    r.flags = json!([]);
    r.output = Some(quote.answer.clone());
    r.route = Some(super::Route::Answer.as_str().to_string());
    r.timings = json!({"first_sentence": quote.ms});
    r.detail = merge(
        merge(
            json!({"of": action, "mode": quote.mode, "citations": citations(&quote.citations), "guard_rules": quote.guard_rules,
                   "shown": "at once, while the model composed; the answer's own record follows"}),
            actor.detail(),
        ),
        context,
    );
    let seq = audit.append(&r)?;
    quote.audit_id = u64::try_from(seq).ok();
    Ok(seq)
}

/// Appends the record of one email draft (`action` `email`); returns its seq.
/// `input` is the topics as typed; the output is the draft's body (or, when
/// no email was drafted, the message saying why).
pub fn record_email(audit: &Audit, actor: &Actor, input: &str, d: &EmailDraft, guard_rules: Option<&str>, context: Value) -> Result<i64> {
    let mut r = actor.record("email");
    r.input = Some(input.to_string());
    r.prompt_version = d.prompt_version.clone();
    r.prompt_sha256 = d.prompt_sha256.clone();
    r.passages = d.references.iter().map(Citation::label).collect();
    r.flags = serde_json::to_value(&d.flags).unwrap_or(Value::Null);
    r.output = Some(if d.body.is_empty() { d.message.clone().unwrap_or_default() } else { d.body.clone() });
    r.route = Some(d.route.as_str().to_string());
    r.case_id = d.case_id.clone();
    r.detail = merge(
        merge(
            json!({"mode": "extractive", "subject": d.subject, "citations": citations(&d.references),
                   "guard_rules": guard_rules, "message": d.message, "text": d.text}),
            actor.detail(),
        ),
        context,
    );
    audit.append(&r)
}

/// Appends the record of one visit summary (`action` `summarize`); returns
/// its seq. `input` is the notes verbatim; the output is the summary as JSON
/// (topics, questions, follow-ups, kept statements and removed claims).
pub fn record_summary(audit: &Audit, actor: &Actor, notes: &str, s: &VisitSummary, guard_rules: Option<&str>, context: Value) -> Result<i64> {
    let mut r = actor.record("summarize");
    r.input = Some(notes.to_string());
    r.prompt_version = s.prompt_version.clone();
    r.prompt_sha256 = s.prompt_sha256.clone();
    r.passages = s.references.iter().map(Citation::label).collect();
    r.flags = serde_json::to_value(&s.flags).unwrap_or(Value::Null);
    r.output = Some(serde_json::to_string(s).unwrap_or_default());
    r.route = Some(s.route.as_str().to_string());
    r.case_id = s.case_id.clone();
    r.detail = merge(
        merge(
            json!({"mode": "extractive", "citations": citations(&s.references), "guard_rules": guard_rules,
                   "removed": s.removed}),
            actor.detail(),
        ),
        context,
    );
    audit.append(&r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_record_carries_its_provenance_and_sets_audit_id() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(dir.path()).unwrap();
        let mut a = crate::copilot::cite(
            &crate::llm::Draft { sentences: Vec::new(), mode: crate::llm::Mode::Generated },
            &[],
            Default::default(),
        );
        a.answer = "Monitor LFTs [1]".into();
        a.prompt_version = Some("objection@2".into());
        a.prompt_sha256 = Some("ab".repeat(32));
        a.model = Some("m.gguf sha256:cd".into());
        a.retrieved = vec!["zen-pi#3".into()];
        a.guard_rules = Some("guard-rules@5 sha256:ef".into());
        let actor = Actor::unauthenticated("rep", Some("rex"));
        let seq = record_answer(&audit, &actor, "ask", "How often?", &mut a, json!({"product": "zentravia"})).unwrap();
        assert_eq!(a.audit_id, Some(seq as u64));
        let e = audit.get(seq).unwrap().unwrap();
        assert_eq!(e.action, "ask");
        assert_eq!(e.role, "rep");
        assert_eq!((e.model.as_deref(), e.model_sha256.as_deref()), (Some("m.gguf"), Some("cd")));
        assert_eq!(e.prompt_version.as_deref(), Some("objection@2"));
        assert_eq!(e.passages_json, r#"["zen-pi#3"]"#);
        assert!(e.detail_json.contains("\"claimed_user\":\"rex\"") && e.detail_json.contains("guard-rules@5"), "{}", e.detail_json);
        assert!(e.detail_json.contains("\"authenticated\":false") && e.detail_json.contains("zentravia"));
        assert!(audit.verify(None).unwrap().ok);
    }

    #[test]
    fn model_ids_split_into_file_and_hash() {
        assert_eq!(split_model("a.gguf sha256:00ff"), ("a.gguf".into(), Some("00ff".into())));
        assert_eq!(split_model("remote"), ("remote".into(), None));
    }
}
