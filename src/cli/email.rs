//! `onlabel email`: a follow-up email draft (never sent) with approved,
//! cited statements and the safety information.

use std::time::Instant;

use clap::Args;

use super::query::{answer_day, case_stored_line, copilot, known_product, open_trace, reporter};
use super::{error, out, outln, signin, Ctx, GenArgs, QueryArgs, EXIT_OK};
use crate::copilot::trace;
use crate::copilot::{Ask, Route};

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
    /// The topics discussed, as free text.
    pub(super) topics: String,
}

/// Runs `onlabel email`.
pub(super) fn run(a: &EmailArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let (json, data) = (ctx.json, ctx.data.as_path());
    if a.hcp.trim().is_empty() {
        return Err(error::Error::BadInput { field: "--hcp", reason: "is empty: name the HCP the email is for".into() }.into());
    }
    if a.topics.trim().is_empty() {
        return Err(error::Error::BadInput { field: "TOPICS", reason: "are empty: say what was discussed".into() }.into());
    }
    known_product(&a.q, &a.product)?;
    let (audit, actor) = match open_trace(data, a.user.as_deref(), &a.q.role, "email") {
        Ok(x) => x,
        Err(e) => return Ok(signin::report(&e, json, data)),
    };
    let day = answer_day(&a.q, &actor)?;
    let q = QueryArgs { role: actor.role.clone(), as_of: Some(day), gen: GenArgs { extractive: true, ..a.q.gen.clone() }, ..a.q.clone() };
    let copilot = copilot(&q, Some(data))?;
    let req = Ask { question: a.topics.clone(), product: Some(a.product.clone()), role: q.role.clone(), as_of: day };
    let who = crate::copilot::Requester { user: reporter(&actor), hcp: Some(a.hcp.clone()) };
    let t0 = Instant::now();
    let d = copilot.email(&req, &who, &a.hcp)?;
    let tctx = serde_json::json!({"product": a.product, "hcp": a.hcp, "index": q.index()?, "as_of": req.as_of.to_string(),
        "total_ms": t0.elapsed().as_secs_f64() * 1e3});
    let seq = trace::record_email(&audit, &actor, &a.topics, &d, copilot.guard().map(|g| g.rules_version()), tctx)?;
    if json {
        let mut v = serde_json::to_value(&d)?;
        v["audit_id"] = seq.into();
        if d.case_id.is_some() {
            v["case_store"] = ctx.store_file().display().to_string().into();
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
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
