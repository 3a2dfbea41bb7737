//! `onlabel summarize`: free-text visit notes turned into a structured call
//! summary; product claims without an approved passage are removed.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::query::{answer_day, case_stored_line, copilot, known_product, open_trace, reporter};
use super::{error, out, outln, signin, Ctx, GenArgs, QueryArgs, EXIT_OK};
use crate::copilot::trace;
use crate::copilot::{Ask, MAX_NOTES_BYTES};

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
    /// A text file with the visit notes.
    pub(super) notes_file: PathBuf,
}

/// Runs `onlabel summarize`.
pub(super) fn run(a: &SummarizeArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let (json, data) = (ctx.json, ctx.data.as_path());
    let bad = |reason: String| error::Error::BadFile { what: "notes file", path: a.notes_file.clone(), reason };
    // Read with its limit: `/dev/zero` or a growing file stops at the limit.
    let notes = crate::input::read_text_limited(&a.notes_file, MAX_NOTES_BYTES).map_err(|e| match e.kind() {
        std::io::ErrorKind::FileTooLarge => bad(format!("{e}: summarize one visit at a time")),
        _ => bad(e.to_string()),
    })?;
    if notes.trim().is_empty() {
        return Err(bad("is empty".into()).into());
    }
    known_product(&a.q, &a.product)?;
    let (audit, actor) = match open_trace(data, a.user.as_deref(), &a.q.role, "summarize") {
        Ok(x) => x,
        Err(e) => return Ok(signin::report(&e, json, data)),
    };
    let day = answer_day(&a.q, &actor)?;
    let q = QueryArgs { role: actor.role.clone(), as_of: Some(day), gen: GenArgs { extractive: true, ..a.q.gen.clone() }, ..a.q.clone() };
    let copilot = copilot(&q, Some(data))?;
    let req = Ask { question: String::new(), product: Some(a.product.clone()), role: q.role.clone(), as_of: day };
    let who = crate::copilot::Requester { user: reporter(&actor), hcp: a.hcp.clone() };
    let t0 = Instant::now();
    let s = copilot.summarize(&notes, &req, &who)?;
    let tctx = serde_json::json!({"product": a.product, "hcp": a.hcp, "index": q.index()?, "notes_file": a.notes_file,
        "as_of": req.as_of.to_string(), "total_ms": t0.elapsed().as_secs_f64() * 1e3});
    let seq = trace::record_summary(&audit, &actor, &notes, &s, copilot.guard().map(|g| g.rules_version()), tctx)?;
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["audit_id"] = seq.into();
        if s.case_id.is_some() {
            v["case_store"] = ctx.store_file().display().to_string().into();
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        out!("{}", crate::copilot::email::render_summary(&s));
        outln!("(audit record {seq})");
        out!("{}", case_stored_line(s.case_id.as_deref(), ctx));
    }
    Ok(EXIT_OK)
}
