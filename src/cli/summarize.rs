//! `onlabel summarize`: free-text visit notes turned into a structured call
//! summary; product claims without an approved passage are removed.

use std::path::PathBuf;

use clap::Args;

use super::query::{answer_day, case_stored_line, draft_copilot, open_trace, reporter, with_case_store};
use super::{error, out, outln, signin, Ctx, QueryArgs, EXIT_OK};
use crate::copilot::{Outcome, Request, Task, Trace, MAX_NOTES_BYTES};

/// Options of `onlabel summarize`.
#[derive(Debug, Args)]
pub(super) struct SummarizeArgs {
    #[command(flatten)]
    pub(super) q: QueryArgs,
    /// The product detailed.
    #[arg(long)]
    pub(super) product: String,
    /// Your user id (signs you in when ONLABEL_TOKEN is set; see `ask --help`).
    #[arg(long = "as", env = "ONLABEL_USER")]
    pub(super) user: Option<String>,
    /// The HCP visited (recorded on any case the notes open).
    #[arg(long)]
    pub(super) hcp: Option<String>,
    /// The repository root the prompt registry's paths are relative to (the
    /// `summary` template's approved version is read from there).
    #[arg(long, default_value = ".", env = "ONLABEL_ROOT")]
    pub(super) root: PathBuf,
    /// A text file with the visit notes.
    pub(super) notes_file: PathBuf,
}

/// Runs `onlabel summarize`.
pub(super) fn run(a: &SummarizeArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let json = ctx.json;
    let bad = |reason: String| error::Error::BadFile { what: "notes file", path: a.notes_file.clone(), reason };
    // Read with its limit: `/dev/zero` or a growing file stops at the limit.
    let notes = crate::input::read_text_limited(&a.notes_file, MAX_NOTES_BYTES).map_err(|e| match e.kind() {
        std::io::ErrorKind::FileTooLarge => bad(format!("{e}: summarize one visit at a time")),
        _ => bad(e.to_string()),
    })?;
    if notes.trim().is_empty() {
        return Err(bad("is empty".into()).into());
    }
    let (audit, actor) = match open_trace(&ctx.database, a.user.as_deref(), &a.q.role, "summarize") {
        Ok(x) => x,
        Err(e) => return Ok(signin::report(&e, json, &ctx.database)),
    };
    let day = answer_day(&a.q, &actor)?;
    let (q, copilot) = match draft_copilot(&a.q, &actor, day, &audit, &a.root, json, &ctx.database)? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let req = Request {
        task: Task::Summarize { notes },
        product: Some(a.product.clone()),
        role: q.role.clone(),
        as_of: day,
        requester: crate::copilot::Requester { user: reporter(&actor), hcp: a.hcp.clone(), defer_medical: false },
        generate: false,
    };
    let trace = Trace {
        audit: &audit,
        actor,
        context: serde_json::json!({"product": a.product, "hcp": a.hcp, "index": q.index()?, "notes_file": a.notes_file, "as_of": day.to_string()}),
    };
    let Outcome::Summary(s) = copilot.run(&req, Some(&trace), &mut |_| {})? else {
        anyhow::bail!("the copilot returned no summary (a bug)");
    };
    if json {
        outln!("{}", with_case_store(&s, s.case_id.as_deref(), ctx)?);
    } else {
        out!("{}", s.text);
        outln!("(audit record {})", s.audit_id.unwrap_or_default());
        out!("{}", case_stored_line(s.case_id.as_deref(), ctx));
    }
    Ok(EXIT_OK)
}
