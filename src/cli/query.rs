//! What the query commands (`ask`, `email`, `summarize`, `eval`, `serve`,
//! `prompts record-eval`) share: their options ([`QueryArgs`]), the copilot
//! they build from them ([`copilot`], [`copilot_with`]), and the sign-in and
//! case-store lines around an answer.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;

use super::{config, dense, error, generator, signin, Ctx};
use crate::copilot::trace::Actor;
use crate::audit::Audit;
use crate::copilot::Copilot;
use crate::index::Index;
use config::Source;

/// Options every query command takes.
#[derive(Debug, Args, Clone)]
pub(super) struct QueryArgs {
    /// The index built by `onlabel ingest`; default: the config file's `index`.
    #[arg(long, env = "ONLABEL_INDEX")]
    pub(super) index: Option<PathBuf>,
    /// Role of the asker: rep sees promotional material only.
    #[arg(long, default_value = "rep", value_parser = ["rep", "mlr_reviewer", "compliance", "medical", "admin"])]
    pub(super) role: String,
    /// Load the guard's rule files from DIR (DIR/rules/guard-rules.toml,
    /// DIR/rules/report-elements.toml, DIR/lexicon/ae_terms.txt) instead of the
    /// copies compiled into the binary: how MLR tries a rule change without a rebuild.
    #[arg(long = "rules", value_name = "DIR", env = "ONLABEL_RULES")]
    pub(super) rules_dir: Option<PathBuf>,
    /// Date the question is asked on (YYYY-MM-DD); expiry and approval dates are
    /// judged against it. Default: today. For `ask`, `email` and `summarize`
    /// only a signed-in compliance user or admin may give it (a rep is always
    /// answered as of today); `eval` and `record-eval` pin their suite's day with it.
    #[arg(long, value_parser = parse_date)]
    pub(super) as_of: Option<NaiveDate>,
    #[command(flatten)]
    pub(super) gen: GenArgs,
    #[command(flatten)]
    pub(super) dense: dense::QueryDense,
    #[command(flatten)]
    pub(super) remote: generator::GeneratorArgs,
}

impl QueryArgs {
    /// The index directory, from flag, environment or config file.
    pub(super) fn index(&self) -> Result<&Path, error::Error> {
        self.index.as_deref().ok_or(error::Error::NoIndex)
    }

    /// Fills the settings neither a flag nor the environment gave from the config file.
    pub(super) fn fill(&mut self, c: &config::Config) {
        // A model named on the command line (or in ONLABEL_MODEL) is a
        // request to run it; one named only in the config file is not.
        if self.gen.model.is_some() && !self.gen.extractive {
            self.gen.generate = true;
        }
        // So is a server named anywhere (flag, environment or config file):
        // configuring an inference cluster is asking for it to be used.
        self.remote.fill(c.generator.as_ref());
        if self.remote.generator_url.is_some() && !self.gen.extractive {
            self.gen.generate = true;
        }
        fill(&mut self.index, &c.index);
        fill(&mut self.rules_dir, &c.rules);
        fill(&mut self.gen.model, &c.model);
        fill(&mut self.dense.embedder, &c.embedder);
    }
}

/// `slot` keeps a flag's or env's value; otherwise takes the config file's.
pub(super) fn fill(slot: &mut Option<PathBuf>, from_file: &Option<PathBuf>) {
    if slot.is_none() {
        slot.clone_from(from_file);
    }
}

/// Options of the generated path.
#[derive(Debug, Args, Clone)]
pub(super) struct GenArgs {
    /// A llama-family GGUF model (default: the embedded SmolLM2 fetched by models/fetch.sh).
    #[arg(long, env = "ONLABEL_MODEL")]
    pub(super) model: Option<PathBuf>,
    /// Answer from approved text only, never running the model (the default;
    /// kept for scripts).
    #[arg(long)]
    pub(super) extractive: bool,
    /// Compose the rep's answers (`on`: the learned scorer's answering
    /// statement first, then the qualifiers a fair answer needs, with the
    /// approved `answer` template's connectives) or quote by rank (`off`:
    /// the extractive answer, to compare the two).
    #[arg(long, env = "ONLABEL_COMPOSE", default_value = "on", value_parser = ["on", "off"])]
    pub(super) compose: String,
    /// Also let the in-process model try to write the answer (each sentence
    /// verified; the quoted answer stands when it fails). Off by default:
    /// measured on held-out questions, the 135M model wrote 0 of 240 answers
    /// that passed the verifier while reps waited 0.7-1.2 s for it.
    /// Implied by `--model`.
    #[arg(long, conflicts_with = "extractive")]
    pub(super) generate: bool,
    /// The prompt template.
    #[arg(long, env = "ONLABEL_PROMPT", default_value = "prompts/objection.j2")]
    pub(super) prompt: PathBuf,
    /// Let the model use any token (default: only tokens of the given passages, punctuation and markers).
    #[arg(long)]
    pub(super) unconstrained: bool,
    /// Most tokens the model may generate.
    #[arg(long, default_value_t = 80)]
    pub(super) max_tokens: usize,
}

/// Where the embedded default model lives.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Builds the copilot for a query command: index, guard, case store (when
/// `data` is given) and, unless disabled, the model with the prompt file
/// `--prompt` as it is on disk (eval and record-eval evaluate candidates).
pub(super) fn copilot(q: &QueryArgs, db: Option<&crate::store::Database>) -> anyhow::Result<Copilot> {
    copilot_with(q, db, |p| Ok(crate::prompts::PromptFile::read(p)?))
}

/// [`copilot`] with the prompt loaded by `load_prompt` (called only when a
/// model will run): `ask` passes [`crate::prompts::live_prompt`], the registry's check.
pub(super) fn copilot_with(
    q: &QueryArgs,
    db: Option<&crate::store::Database>,
    load_prompt: impl FnOnce(&std::path::Path) -> anyhow::Result<crate::prompts::PromptFile>,
) -> anyhow::Result<Copilot> {
    let index = Index::open(q.index()?).map_err(error::index_error)?;
    let guard = match &q.rules_dir {
        Some(dir) => crate::guard::Guard::from_dir(dir).with_context(|| format!("loading the guard rules from {}", dir.display()))?,
        None => crate::guard::Guard::builtin()?,
    };
    let guard = std::sync::Arc::new(guard);
    let mut c = dense::attach(Copilot::new(index), &q.dense)?.with_guard(guard, q.as_of.unwrap_or_else(today))?;
    if let Some(db) = db {
        c = c.with_cases(crate::cases::CaseStore::from_store(std::sync::Arc::new(crate::store::Store::connect(db)?)));
    }
    if q.gen.compose == "off" {
        c = c.with_composer(None);
    }
    if q.gen.extractive || !q.gen.generate {
        return Ok(c);
    }
    if let Some(server) = q.remote.remote()? {
        let prompt = load_prompt(&q.gen.prompt)?;
        tracing::info!(url = server.url(), "answers are written by the inference server at --generator-url");
        let mut g = crate::copilot::Grounded::remote(std::sync::Arc::new(server), prompt);
        g.constrained = !q.gen.unconstrained;
        g.opts.max_tokens = q.gen.max_tokens;
        return Ok(c.with_model(g));
    }
    let path = match &q.gen.model {
        Some(p) => p.clone(),
        None => {
            let p = PathBuf::from(DEFAULT_MODEL);
            if !p.exists() {
                tracing::warn!("no model at {DEFAULT_MODEL}; answering extractively (run `bash models/fetch.sh`)");
                eprintln!("note: no model at {DEFAULT_MODEL}; answering extractively (run `bash models/fetch.sh`)");
                return Ok(c);
            }
            p
        }
    };
    let prompt = load_prompt(&q.gen.prompt)?;
    let model = std::sync::Arc::new(crate::llm::LocalModel::load(&path)?);
    let mut g = crate::copilot::Grounded::new(model, prompt)?;
    g.constrained = !q.gen.unconstrained;
    g.opts.max_tokens = q.gen.max_tokens;
    Ok(c.with_model(g))
}

/// A fresh scratch directory under the system temp dir (removed at exit by the OS's tmp cleaning).
pub(super) fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("onlabel-eval-{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

pub(super) fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date like 2026-11-23"))
}

pub(super) fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

/// The JSON of an answer or draft, with `case_store` (the file its case is
/// in) added when it opened a case.
pub(super) fn with_case_store<T: serde::Serialize>(v: &T, case_id: Option<&str>, ctx: &Ctx) -> anyhow::Result<String> {
    let mut j = serde_json::to_value(v)?;
    if let (Some(_), Some(o)) = (case_id, j.as_object_mut()) {
        o.insert("case_store".into(), ctx.store_file().display().to_string().into());
    }
    Ok(serde_json::to_string_pretty(&j)?)
}

/// The line after an escalation: where its case is, and how to see it.
pub(super) fn case_stored_line(case_id: Option<&str>, ctx: &Ctx) -> String {
    match case_id {
        Some(id) => {
            let data = if ctx.data_source == Source::Default { String::new() } else { format!(" --data {}", ctx.data.display()) };
            format!("case {id} is stored in {} (`onlabel{data} cases show {id}`)\n", ctx.store_file().display())
        }
        None => String::new(),
    }
}

/// Opens the audit log of `db` and works out who is acting ([`signin::actor`]).
pub(super) fn open_trace(db: &crate::store::Database, claimed: Option<&str>, role: &str, what: &str) -> crate::Result<(Audit, Actor)> {
    let audit = Audit::connect(db)?;
    let actor = signin::actor(audit.store(), claimed, role, what)?;
    if actor.authenticated && role != actor.role && role != "rep" {
        eprintln!("note: signed in as {} ({}); --role {role} is ignored", actor.id, actor.role);
    }
    Ok((audit, actor))
}

/// The day `ask`, `email` and `summarize` answer as of: today, unless a
/// signed-in compliance user or admin gave `--as-of` (to see what a rep was,
/// or will be, shown on another day). A rep — or anyone not signed in — is
/// always answered as of today: `--as-of` from them is refused (exit 2), so
/// that an expired document cannot be cited by asking "as of" a day it was
/// still valid. `eval` keeps its own `--as-of` (suites pin their day).
pub(super) fn answer_day(q: &QueryArgs, actor: &Actor) -> Result<NaiveDate, super::error::Error> {
    let Some(day) = q.as_of else { return Ok(today()) };
    if actor.authenticated && (actor.role == "compliance" || actor.role == "admin") {
        return Ok(day);
    }
    let who = if actor.authenticated { format!("{} is signed in as {}", actor.id, actor.role) } else { "nobody is signed in".to_string() };
    Err(super::error::Error::BadInput {
        field: "--as-of",
        reason: format!(
            "is for compliance and eval only ({who}): a rep's answers are always as of today; \
             drop --as-of, or sign in as a compliance user (--as USER with ONLABEL_TOKEN)"
        ),
    })
}

/// The reporter of record on a case: the signed-in user, else the `--as`
/// claim, else the actor (`os:NAME`).
pub(super) fn reporter(actor: &Actor) -> String {
    actor.claimed.clone().filter(|_| !actor.authenticated).unwrap_or_else(|| actor.id.clone())
}

/// The copilot a draft command (`email`, `summarize`) runs, with the query
/// options it was built from: extractive (drafts are composed without the
/// model), as the signed-in user's role on `day`, with the registry's live
/// `email` and `summary` templates under `root`. `Err(code)`: a library
/// error already reported (an unapproved or altered template, a damaged store).
pub(super) fn draft_copilot(
    q: &QueryArgs,
    actor: &Actor,
    day: NaiveDate,
    audit: &Audit,
    root: &std::path::Path,
    json: bool,
    db: &crate::store::Database,
) -> anyhow::Result<Result<(QueryArgs, Copilot), i32>> {
    let q = QueryArgs { role: actor.role.clone(), as_of: Some(day), gen: super::GenArgs { extractive: true, ..q.gen.clone() }, ..q.clone() };
    let built = copilot(&q, Some(db)).and_then(|c| Ok(c.with_drafts(crate::copilot::DraftTemplates::live(audit.store(), root)?)));
    Ok(build_or_report(built, json, db)?.map(|c| (q, c)))
}

/// Builds the copilot; a library error (an unapproved or altered prompt, a
/// damaged store) becomes its exit code and message, anything else an error.
pub(super) fn build_or_report(
    built: anyhow::Result<Copilot>,
    json: bool,
    db: &crate::store::Database,
) -> anyhow::Result<Result<Copilot, i32>> {
    match built {
        Ok(c) => Ok(Ok(c)),
        Err(e) => match e.downcast::<crate::Error>() {
            Ok(ce) => Ok(Err(signin::report(&ce, json, db))),
            Err(e) => Err(e),
        },
    }
}
