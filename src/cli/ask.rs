//! `onlabel ask`: one question answered from approved material, with
//! citations; on a terminal each verified sentence as soon as it passes.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::query::{answer_day, build_or_report, case_stored_line, copilot_with, open_trace, reporter, with_case_store};
use super::{out, outln, signin, Ctx, QueryArgs, EXIT_OK};
use crate::copilot::{Answer, Ask, Request, Route, Task, Trace};

/// Options of `onlabel ask`.
#[derive(Debug, Args)]
pub(super) struct AskArgs {
    #[command(flatten)]
    pub(super) q: QueryArgs,
    /// The product being detailed (recommended: answers only from its documents).
    #[arg(long)]
    pub(super) product: Option<String>,
    /// Your user id: with ONLABEL_TOKEN set you sign in (actor and role of the
    /// audit record); without, it is recorded as a claim and as the reporter of
    /// any case the question opens.
    #[arg(long = "as", env = "ONLABEL_USER")]
    pub(super) user: Option<String>,
    /// The repository root the prompt registry's paths are relative to.
    #[arg(long, default_value = ".", env = "ONLABEL_ROOT")]
    pub(super) root: PathBuf,
    /// The HCP you are talking to (recorded on escalation cases).
    #[arg(long)]
    pub(super) hcp: Option<String>,
    /// The HCP's question or objection.
    pub(super) question: String,
}

/// Runs `onlabel ask`.
pub(super) fn run(a: &AskArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let json = ctx.json;
    let (audit, actor) = match open_trace(&ctx.database, a.user.as_deref(), &a.q.role, "ask") {
        Ok(x) => x,
        Err(e) => return Ok(signin::report(&e, json, &ctx.database)),
    };
    let day = answer_day(&a.q, &actor)?;
    let q = QueryArgs { role: actor.role.clone(), as_of: Some(day), ..a.q.clone() };
    // The registry's live `answer` template frames a composed answer.
    let built = copilot_with(&q, Some(&ctx.database), |p| Ok(crate::prompts::live_prompt(p, audit.store(), &a.root)?))
        .and_then(|c| Ok(c.with_drafts(crate::copilot::DraftTemplates::live_answer(audit.store(), &a.root)?)));
    let copilot = match build_or_report(built, json, &ctx.database)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let req = Request {
        task: Task::Ask { question: a.question.clone() },
        product: a.product.clone(),
        role: q.role.clone(),
        as_of: day,
        requester: crate::copilot::Requester { user: reporter(&actor), hcp: a.hcp.clone(), defer_medical: false },
        generate: !q.gen.extractive,
    };
    // Recorded with the answer: which product it was taken to be about.
    let resolved = copilot.resolve_product(&Ask { question: a.question.clone(), product: a.product.clone(), role: q.role.clone(), as_of: day });
    let trace = Trace {
        audit: &audit,
        actor,
        context: serde_json::json!({
            "product": a.product, "resolved_product": resolved.product(), "hcp": a.hcp, "index": q.index()?, "as_of": day.to_string(),
        }),
    };
    // The audit record is appended before anything is shown (the copilot
    // holds the verified sentences until it exists); on a terminal, the
    // quoted answer is printed the moment it is ready (after its own
    // record) while the model composes, then the sentences of the final
    // answer one by one (unless the quote stands), followed by the citations.
    let terminal = !json && std::io::stdout().is_terminal();
    let mut streamed = false;
    let mut quoted = false;
    let answer = copilot
        .run(&req, Some(&trace), &mut |e| match e {
            crate::copilot::Event::Quote(q) if terminal => {
                out!("{}", render_quote(&q));
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
                quoted = true;
            }
            // After a quote, the final answer is printed whole below.
            crate::copilot::Event::Sentence(t) if terminal && !quoted => {
                out!("{}{t}", if streamed { " " } else { "" });
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
                streamed = true;
            }
            crate::copilot::Event::Quote(_) | crate::copilot::Event::Sentence(_) => {}
        })?
        .into_answer()
        .context("the copilot returned no answer to a question (a bug)")?;
    if json {
        outln!("{}", with_case_store(&answer, answer.case_id.as_deref(), ctx)?);
        return Ok(EXIT_OK);
    }
    if quoted && answer.route == Route::Answer {
        if answer.mode == crate::copilot::Mode::Generated {
            outln!("\nThe model's answer:");
            out!("{}", render_text(&answer));
        } else {
            outln!("(the quoted answer stands: nothing the model wrote passed verification)");
        }
    } else if streamed && answer.route == Route::Answer {
        outln!();
        out!("{}", render_citations(&answer));
    } else {
        out!("{}", render_text(&answer));
        out!("{}", case_stored_line(answer.case_id.as_deref(), ctx));
    }
    outln!("(audit record {})", answer.audit_id.unwrap_or_default());
    Ok(EXIT_OK)
}

/// Renders the quoted answer shown while the model composes: its text,
/// its numbered citations, and a line saying the model is at work.
pub fn render_quote(q: &crate::copilot::Quote) -> String {
    let mut s = format!("{}\n", q.answer);
    for c in &q.citations {
        s.push_str(&format!("[{}] {} — {} (MLR {})\n", c.n, c.label(), c.title, c.mlr_number));
    }
    s.push_str("(quoted verbatim from approved material; the local model is composing an answer…)\n");
    s
}

/// Renders an answer for a terminal: the answer, then numbered citations.
pub fn render_text(a: &Answer) -> String {
    let mut s = String::new();
    if a.route != Route::Answer {
        s.push_str(&format!("[{}] ", a.route.as_str()));
    }
    if let Some(id) = &a.case_id {
        s.push_str(&format!("(case {id}) "));
    }
    if a.parts.is_empty() {
        s.push_str(&a.answer);
        s.push('\n');
    } else {
        // A per-product answer: the note first, then each label's block under its product.
        if let Some(n) = &a.note {
            s.push_str(&format!("note: {n}\n"));
        }
        for p in &a.parts {
            s.push_str(&format!("\n{}:\n{}\n", p.product.to_uppercase(), p.answer));
        }
    }
    s.push_str(&render_citations(a));
    s
}

/// The part of [`render_text`] after the answer text: numbered citations and
/// how the answer was produced.
pub fn render_citations(a: &Answer) -> String {
    let mut s = String::new();
    if !a.citations.is_empty() {
        s.push('\n');
        for c in &a.citations {
            s.push_str(&format!("[{}] {} — {} (MLR {})\n", c.n, c.label(), c.title, c.mlr_number));
        }
    }
    if a.route == Route::Answer {
        s.push_str(&format!(
            "\n({}{})\n",
            match a.mode {
                crate::copilot::Mode::Generated => "generated by the local model, every sentence verified against its citation",
                crate::copilot::Mode::Extractive => "quoted verbatim from approved material",
                crate::copilot::Mode::Composed => "approved statements chosen by the learned scorer, each quoted verbatim with its citation",
            },
            a.model.as_deref().map(|m| format!("; model {}", m.split(" sha256:").next().unwrap_or(m))).unwrap_or_default()
        ));
    }
    if let (Some(n), true) = (&a.note, a.parts.is_empty()) {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}
