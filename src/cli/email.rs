//! `onlabel email`: a follow-up email draft (never sent) with approved,
//! cited statements and the safety information.

use std::path::PathBuf;

use clap::Args;

use super::query::{answer_day, case_stored_line, draft_copilot, open_trace, reporter, with_case_store};
use super::{error, out, outln, signin, Ctx, QueryArgs, EXIT_OK};
use crate::copilot::{Outcome, Request, Route, Task, Trace};

/// Options of `onlabel email`.
#[derive(Debug, Args)]
pub(super) struct EmailArgs {
    #[command(flatten)]
    pub(super) q: QueryArgs,
    /// The product discussed.
    #[arg(long)]
    pub(super) product: String,
    /// The HCP's name, for the greeting.
    #[arg(long)]
    pub(super) hcp: String,
    /// Your user id (signs you in when ONLABEL_TOKEN is set; see `ask --help`).
    #[arg(long = "as", env = "ONLABEL_USER")]
    pub(super) user: Option<String>,
    /// The repository root the prompt registry's paths are relative to (the
    /// `email` template's approved version is read from there).
    #[arg(long, default_value = ".", env = "ONLABEL_ROOT")]
    pub(super) root: PathBuf,
    /// The topics discussed, as free text.
    pub(super) topics: String,
}

/// Runs `onlabel email`.
pub(super) fn run(a: &EmailArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let json = ctx.json;
    if a.hcp.trim().is_empty() {
        return Err(error::Error::BadInput { field: "--hcp", reason: "is empty: name the HCP the email is for".into() }.into());
    }
    if a.topics.trim().is_empty() {
        return Err(error::Error::BadInput { field: "TOPICS", reason: "are empty: say what was discussed".into() }.into());
    }
    let (audit, actor) = match open_trace(&ctx.database, a.user.as_deref(), &a.q.role, "email") {
        Ok(x) => x,
        Err(e) => return Ok(signin::report(&e, json, &ctx.database)),
    };
    let day = answer_day(&a.q, &actor)?;
    let (q, copilot) = match draft_copilot(&a.q, &actor, day, &audit, &a.root, json, &ctx.database)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let req = Request {
        task: Task::Email { topics: a.topics.clone(), hcp: a.hcp.clone(), greeting: None, closing: None },
        product: Some(a.product.clone()),
        role: q.role.clone(),
        as_of: day,
        requester: crate::copilot::Requester { user: reporter(&actor), hcp: Some(a.hcp.clone()), defer_medical: false },
        generate: false,
    };
    let trace = Trace { audit: &audit, actor, context: serde_json::json!({"product": a.product, "hcp": a.hcp, "index": q.index()?, "as_of": day.to_string()}) };
    let Outcome::Email(d) = copilot.run(&req, Some(&trace), &mut |_| {})? else {
        anyhow::bail!("the copilot returned no email draft (a bug)");
    };
    let seq = d.audit_id.unwrap_or_default();
    if json {
        outln!("{}", with_case_store(&d, d.case_id.as_deref(), ctx)?);
    } else if let (Route::Answer, false) = (d.route, d.body.is_empty()) {
        out!("{}", d.body);
        if let Some(m) = &d.message {
            eprintln!("note: {m}");
        }
        eprintln!("(audit record {seq})");
    } else {
        outln!("[{}] {}", d.route.as_str(), d.message.as_deref().unwrap_or(""));
        outln!("(audit record {seq})");
        out!("{}", case_stored_line(d.case_id.as_deref(), ctx));
    }
    Ok(EXIT_OK)
}
