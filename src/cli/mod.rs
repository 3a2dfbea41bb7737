//! [`Cli`]: the `onlabel` command line (clap derive). `main.rs` only calls [`run`].

mod audit;
mod cases;
pub mod config;
mod dense;
mod eval;
pub mod error;
mod info;
mod products;
mod prompts;
mod serve;
mod signin;
mod users;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::audit::trace::{self, Actor};
use crate::audit::Audit;
use config::Source;

use crate::copilot::{Answer, Ask, Copilot, Route};
use crate::corpus::{Corpus, Limits};
use crate::index::Index;


/// `println!` that ignores a closed pipe (`onlabel … | head` must not panic).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
/// `print!` that ignores a closed pipe.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}
pub(crate) use {out, outln};

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: a check or verification failed.
pub const EXIT_CHECK_FAILED: i32 = 1;
/// Exit code: bad usage or bad input.
pub const EXIT_BAD_INPUT: i32 = 2;

/// OnLabel: cited answers from MLR-approved labels, for field teams.
#[derive(Debug, Parser)]
#[command(name = "onlabel", version, about)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
struct Global {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Log format on stderr: text or json.
    #[arg(long, global = true, default_value = "text", env = "ONLABEL_LOG_FORMAT")]
    log_format: String,
    /// Data directory holding onlabel.sqlite (cases, prompt registry, audit log, users).
    /// Default: the config file's `data`, else the per-user data directory (see `onlabel info`).
    #[arg(long = "data", value_name = "DIR", global = true, env = "ONLABEL_DATA")]
    data: Option<PathBuf>,
    /// Config file (TOML: data, index, model, embedder, rules).
    /// Default: config.toml in the per-user config directory, if it exists.
    #[arg(long = "config", value_name = "FILE", global = true, env = "ONLABEL_CONFIG")]
    config: Option<PathBuf>,
}

/// What every command runs with once flags, environment and config file are merged.
#[derive(Debug)]
pub struct Ctx {
    /// `--json` was given.
    json: bool,
    /// The data directory (holding onlabel.sqlite).
    data: PathBuf,
    /// Where [`Ctx::data`] came from.
    data_source: Source,
    /// The config file in use, if any.
    config: config::Loaded,
}

impl Ctx {
    /// The store file, absolute when the data directory exists: what every
    /// escalation message prints so that a case can always be found again.
    pub fn store_file(&self) -> PathBuf {
        let dir = std::fs::canonicalize(&self.data).unwrap_or_else(|_| self.data.clone());
        dir.join(crate::store::FILE_NAME)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load corpora (manifest.toml + files) and build the search index.
    Ingest(IngestArgs),
    /// Answer one question from approved material, with citations.
    Ask(AskArgs),
    /// Draft a follow-up email (never sent) with approved, cited statements and the safety information.
    Email(EmailArgs),
    /// Turn free-text visit notes into a structured call summary; uncited product claims are removed.
    Summarize(SummarizeArgs),
    /// Run an eval suite and report its metrics; exits 1 when a --min-… threshold is not met.
    Eval(eval::EvalArgs),
    /// List the products in an index with their documents, MLR numbers and expiry dates.
    Products(products::ProductsArgs),
    /// Serve the HTTP API and the web UI (reps, MLR, Medical/PV, compliance) on loopback.
    Serve(serve::ServeArgs),
    /// Show where OnLabel keeps its store, index, models and rules, and where each setting came from.
    Info,
    /// Work the Pharmacovigilance / Medical Information case queue.
    Cases {
        #[command(subcommand)]
        cmd: cases::CasesCommand,
    },
    /// The prompt registry: versions of prompts, guard rules and lexicons; MLR e-signatures; eval evidence.
    Prompts(prompts::PromptsArgs),
    /// Users, roles and tokens (local operator command).
    Users {
        #[command(subcommand)]
        cmd: users::UsersCommand,
    },
    /// The hash-chained audit log: verify, export, show.
    Audit {
        #[command(subcommand)]
        cmd: audit::AuditCommand,
    },
}

#[derive(Debug, Args)]
struct IngestArgs {
    /// A corpus folder holding manifest.toml (repeatable).
    #[arg(long = "corpus", required = true)]
    corpora: Vec<PathBuf>,
    /// Where to write the index (replaced atomically); default: the config file's `index`.
    #[arg(long, env = "ONLABEL_INDEX")]
    index: Option<PathBuf>,
    /// Skip documents that fail to load instead of stopping at the first.
    #[arg(long)]
    keep_going: bool,
    /// Build the index even when no document loaded (by default an empty or
    /// all-failing corpus never replaces an existing index).
    #[arg(long)]
    allow_empty: bool,
    /// Largest document accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_doc_bytes)]
    max_doc_bytes: u64,
    #[command(flatten)]
    dense: dense::IngestDense,
}

#[derive(Debug, Args, Clone)]
struct QueryArgs {
    /// The index built by `onlabel ingest`; default: the config file's `index`.
    #[arg(long, env = "ONLABEL_INDEX")]
    index: Option<PathBuf>,
    /// Role of the asker: rep sees promotional material only.
    #[arg(long, default_value = "rep", value_parser = ["rep", "mlr_reviewer", "compliance", "medical", "admin"])]
    role: String,
    /// Load the guard's rule files from DIR (DIR/rules/guard-rules.toml,
    /// DIR/rules/report-elements.toml, DIR/lexicon/ae_terms.txt) instead of the
    /// copies compiled into the binary: how MLR tries a rule change without a rebuild.
    #[arg(long = "rules", value_name = "DIR", env = "ONLABEL_RULES")]
    rules_dir: Option<PathBuf>,
    /// Date the question is asked on (YYYY-MM-DD); expiry is judged against it. Default: today.
    #[arg(long, value_parser = parse_date)]
    as_of: Option<NaiveDate>,
    #[command(flatten)]
    gen: GenArgs,
    #[command(flatten)]
    dense: dense::QueryDense,
}

impl QueryArgs {
    /// The index directory, from flag, environment or config file.
    fn index(&self) -> Result<&Path, error::Error> {
        self.index.as_deref().ok_or(error::Error::NoIndex)
    }

    /// Fills the settings neither a flag nor the environment gave from the config file.
    fn fill(&mut self, c: &config::Config) {
        fill(&mut self.index, &c.index);
        fill(&mut self.rules_dir, &c.rules);
        fill(&mut self.gen.model, &c.model);
        fill(&mut self.dense.embedder, &c.embedder);
    }
}

/// `slot` keeps a flag's or env's value; otherwise takes the config file's.
fn fill(slot: &mut Option<PathBuf>, from_file: &Option<PathBuf>) {
    if slot.is_none() {
        slot.clone_from(from_file);
    }
}

/// Options of the generated path.
#[derive(Debug, Args, Clone)]
struct GenArgs {
    /// A llama-family GGUF model (default: the embedded SmolLM2 fetched by models/fetch.sh).
    #[arg(long, env = "ONLABEL_MODEL")]
    model: Option<PathBuf>,
    /// Answer extractively only (no model).
    #[arg(long)]
    extractive: bool,
    /// The prompt template.
    #[arg(long, env = "ONLABEL_PROMPT", default_value = "prompts/objection.j2")]
    prompt: PathBuf,
    /// Let the model use any token (default: only tokens of the given passages, punctuation and markers).
    #[arg(long)]
    unconstrained: bool,
    /// Most tokens the model may generate.
    #[arg(long, default_value_t = 80)]
    max_tokens: usize,
}

/// Where the embedded default model lives.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Builds the copilot for a query command: index, guard, case store (when
/// `data` is given) and, unless disabled, the model with the prompt file
/// `--prompt` as it is on disk (eval and record-eval evaluate candidates).
fn copilot(q: &QueryArgs, data: Option<&std::path::Path>) -> anyhow::Result<Copilot> {
    copilot_with(q, data, |p| Ok(crate::prompts::PromptFile::read(p)?))
}

/// [`copilot`] with the prompt loaded by `load_prompt` (called only when a
/// model will run): `ask` passes [`live_prompt`], the registry's check.
fn copilot_with(
    q: &QueryArgs,
    data: Option<&std::path::Path>,
    load_prompt: impl FnOnce(&std::path::Path) -> anyhow::Result<crate::prompts::PromptFile>,
) -> anyhow::Result<Copilot> {
    let index = Index::open(q.index()?).map_err(error::index_error)?;
    let guard = match &q.rules_dir {
        Some(dir) => crate::guard::Guard::from_dir(dir).with_context(|| format!("loading the guard rules from {}", dir.display()))?,
        None => crate::guard::Guard::builtin()?,
    };
    let guard = std::sync::Arc::new(guard);
    let mut c = dense::attach(Copilot::new(index), &q.dense)?.with_guard(guard, q.as_of.unwrap_or_else(today))?;
    if let Some(dir) = data {
        c = c.with_cases(crate::cases::CaseStore::open(dir)?);
    }
    if q.gen.extractive {
        return Ok(c);
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

/// The prompt template `ask` may run, checked against the registry.
///
/// The template's name is its file stem (`prompts/objection.j2` →
/// `objection`). When the registry knows that name, only its live, approved
/// version may run: [`crate::prompts::Registry::live`] checks the registered
/// file and its signature, and the file given with `--prompt` must hash to
/// that version too; anything else is refused with the approval that is
/// missing. The version shown is then the registry's `name@N`. A name the
/// registry has never seen (a fresh clone, a demo) runs with the version in
/// the template's header, and its SHA-256 is recorded all the same.
pub fn live_prompt(path: &std::path::Path, store: &crate::store::Store, root: &std::path::Path) -> crate::Result<crate::prompts::PromptFile> {
    use crate::prompts::{Error as PE, Registry};
    let bytes = std::fs::read(path).map_err(|source| PE::Io { path: path.to_owned(), source })?;
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("prompt").to_string();
    let reg = Registry::new(store, root);
    if reg.versions(Some(&name))?.is_empty() {
        return Ok(crate::prompts::PromptFile::read(path)?);
    }
    let live = reg.live(&name)?;
    let sha = crate::prompts::sha256_hex(&bytes);
    if sha != live.version.sha256 {
        return Err(PE::Altered {
            path: path.to_owned(),
            approved: live.id(),
            approved_sha256: live.version.sha256.clone(),
            disk_sha256: sha,
            hint: format!(
                "--prompt is not the approved {} (registered at {}); run from the repository root (or set ONLABEL_ROOT) and use that file",
                live.id(),
                live.version.source_path
            ),
        }
        .into());
    }
    let version = u32::try_from(live.version.version).unwrap_or(u32::MAX);
    Ok(crate::prompts::PromptFile { name, version, source: live.content })
}

#[derive(Debug, Args)]
struct AskArgs {
    #[command(flatten)]
    q: QueryArgs,
    /// The product being detailed (recommended: answers only from its documents).
    #[arg(long)]
    product: Option<String>,
    /// Your user id: with ONLABEL_TOKEN set you sign in (actor and role of the
    /// audit record); without, it is recorded as a claim and as the reporter of
    /// any case the question opens.
    #[arg(long = "as", env = "ONLABEL_USER")]
    user: Option<String>,
    /// The repository root the prompt registry's paths are relative to.
    #[arg(long, default_value = ".", env = "ONLABEL_ROOT")]
    root: PathBuf,
    /// The HCP you are talking to (recorded on escalation cases).
    #[arg(long)]
    hcp: Option<String>,
    /// The HCP's question or objection.
    question: String,
}

#[derive(Debug, Args)]
struct EmailArgs {
    #[command(flatten)]
    q: QueryArgs,
    /// The product discussed.
    #[arg(long)]
    product: String,
    /// The HCP's name, for the greeting.
    #[arg(long)]
    hcp: String,
    /// Your user id (signs you in when ONLABEL_TOKEN is set; see `ask --help`).
    #[arg(long = "as", env = "ONLABEL_USER")]
    user: Option<String>,
    /// The topics discussed, as free text.
    topics: String,
}

#[derive(Debug, Args)]
struct SummarizeArgs {
    #[command(flatten)]
    q: QueryArgs,
    /// The product detailed.
    #[arg(long)]
    product: String,
    /// Your user id (signs you in when ONLABEL_TOKEN is set; see `ask --help`).
    #[arg(long = "as", env = "ONLABEL_USER")]
    user: Option<String>,
    /// The HCP visited (recorded on any case the notes open).
    #[arg(long)]
    hcp: Option<String>,
    /// A text file with the visit notes.
    notes_file: PathBuf,
}

/// Longest notes file accepted by `summarize`.
pub const MAX_NOTES_BYTES: u64 = 64 * 1024;

/// A fresh scratch directory under the system temp dir (removed at exit by the OS's tmp cleaning).
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("onlabel-eval-{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date like 2026-11-23"))
}

fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

/// Parses arguments, sets up logging, runs the command; returns the exit code.
pub fn run() -> i32 {
    let mut cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() && config::on_command_line("--json") => {
            let msg = e.render().to_string();
            let first = msg.lines().next().unwrap_or("").trim_start_matches("error: ").to_string();
            eprint!("{msg}");
            outln!("{}", serde_json::json!({"error": {"code": "usage", "message": first}}));
            return EXIT_BAD_INPUT;
        }
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_BAD_INPUT } else { EXIT_OK };
        }
    };
    init_tracing(&cli.global.log_format, matches!(cli.command, Command::Serve(_)));
    let json = cli.global.json;
    match context(&mut cli).and_then(|ctx| dispatch(&cli, &ctx)) {
        Ok(code) => code,
        Err(e) => error::report(&e, json),
    }
}

/// Reads the config file, resolves the data directory and fills every
/// setting that neither a flag nor the environment gave from the file.
fn context(cli: &mut Cli) -> anyhow::Result<Ctx> {
    let loaded = config::load(cli.global.config.as_deref())?;
    let c = &loaded.config;
    let (data, data_source) = match config::pick(cli.global.data.as_ref(), "--data", c.data.as_ref(), None) {
        Some(d) => d,
        None => (config::default_data_dir()?, Source::Default),
    };
    match &mut cli.command {
        Command::Ingest(a) => {
            fill(&mut a.index, &c.index);
            if a.dense.dense {
                fill(&mut a.dense.embedder, &c.embedder);
            }
        }
        Command::Ask(a) => a.q.fill(c),
        Command::Email(a) => a.q.fill(c),
        Command::Summarize(a) => a.q.fill(c),
        Command::Eval(a) => a.q.fill(c),
        Command::Serve(a) => a.q.fill(c),
        Command::Products(a) => fill(&mut a.index, &c.index),
        Command::Prompts(a) => {
            if let Some(q) = a.query_args_mut() {
                q.fill(c);
            }
        }
        Command::Cases { .. } | Command::Users { .. } | Command::Audit { .. } | Command::Info => {}
    }
    Ok(Ctx { json: cli.global.json, data, data_source, config: loaded })
}

/// Logs on stderr; a server logs each request (tower_http) and each answer by default.
fn init_tracing(format: &str, serving: bool) {
    let default = if serving { "onlabel=info,tower_http=info" } else { "onlabel=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

fn dispatch(cli: &Cli, ctx: &Ctx) -> anyhow::Result<i32> {
    let json = ctx.json;
    match &cli.command {
        Command::Ingest(a) => ingest(a, json),
        Command::Ask(a) => ask(a, ctx),
        Command::Eval(a) => eval::run(a, json, &ctx.data),
        Command::Serve(a) => serve::run(a, &ctx.data),
        Command::Email(a) => email(a, ctx),
        Command::Summarize(a) => summarize(a, ctx),
        Command::Products(a) => products::run(a, json),
        Command::Info => info::run(ctx),
        Command::Cases { cmd } => cases::run(cmd, &ctx.data, json),
        Command::Prompts(a) => prompts::run(a, &ctx.data, json),
        Command::Users { cmd } => users::run(cmd, &ctx.data, json),
        Command::Audit { cmd } => audit::run(cmd, &ctx.data, json),
    }
}

/// The warnings `ingest` prints for documents that load but can never be
/// cited: withdrawn, or already past their last valid day.
fn unusable_documents(corpus: &Corpus, today: NaiveDate) -> Vec<String> {
    let mut w = Vec::new();
    for d in &corpus.documents {
        let m = &d.meta;
        if m.status == crate::corpus::Status::Withdrawn {
            w.push(format!("document {} ({}) is withdrawn: it is indexed but will never be retrieved or cited", m.id, m.mlr_number));
        } else if m.expires_on < today {
            w.push(format!(
                "document {} ({}) expired on {}: it is indexed but will never be retrieved or cited; ingest its renewed version",
                m.id, m.mlr_number, m.expires_on
            ));
        }
    }
    w
}

fn ingest(a: &IngestArgs, json: bool) -> anyhow::Result<i32> {
    let t = Instant::now();
    let index_dir = a.index.clone().ok_or(error::Error::NoIndex)?;
    let limits = Limits { max_doc_bytes: a.max_doc_bytes, ..Limits::default() };
    let corpus = Corpus::load(&a.corpora, limits, a.keep_going)?;
    let passages = corpus.passages(limits);
    if passages.is_empty() && !a.allow_empty {
        let why = if !corpus.failures.is_empty() {
            let first = corpus.failures.first().map(|e| e.to_string()).unwrap_or_default();
            match corpus.failures.len() {
                1 => format!("its only document failed to load ({first})"),
                n => format!("all {n} documents failed to load (the first: {first})"),
            }
        } else if corpus.documents.is_empty() {
            let list: Vec<String> = a.corpora.iter().map(|c| c.join("manifest.toml").display().to_string()).collect();
            format!("{} lists no document", list.join(", "))
        } else {
            format!("the {} documents loaded hold no text", corpus.documents.len())
        };
        if !json {
            for f in &corpus.failures {
                eprintln!("skipped: {f}");
            }
        }
        return Err(error::Error::EmptyCorpus { why, index: index_dir }.into());
    }
    let warnings = unusable_documents(&corpus, today());
    if !json {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }
    let embedder = dense::ingest_embedder(&a.dense)?;
    let bar = if std::io::stderr().is_terminal() && !json {
        let b = indicatif::ProgressBar::new(passages.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} passages {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let mut shown = None;
    let built = Index::build_with(
        &index_dir,
        &passages,
        |stage, i| {
            if let Some(b) = &bar {
                if shown != Some(stage) {
                    shown = Some(stage);
                    b.set_message(if stage == crate::index::BuildStage::Embedding { "embedding" } else { "indexing" });
                }
                b.set_position(i as u64)
            }
        },
        embedder.as_ref(),
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    products::write_catalogue(&index_dir, &corpus, &passages)?;
    let sections: usize = corpus.documents.iter().map(|d| d.sections.len()).sum();
    let pages: usize = corpus.documents.iter().map(|d| d.pages).sum();
    let secs = t.elapsed().as_secs_f64();
    let failures: Vec<String> = corpus.failures.iter().map(|e| e.to_string()).collect();
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "documents": corpus.documents.len(), "sections": sections, "passages": passages.len(),
                "pages": pages, "seconds": secs, "index": index_dir, "failures": failures,
                "embed_seconds": built.embed_seconds, "warnings": warnings,
            })
        );
    } else {
        for f in &failures {
            eprintln!("skipped: {f}");
        }
        outln!(
            "indexed {} documents, {} sections, {} passages in {:.2} s → {}{}",
            corpus.documents.len(),
            sections,
            passages.len(),
            secs,
            index_dir.display(),
            if failures.is_empty() { String::new() } else { format!(" ({} skipped)", failures.len()) }
        );
        match built.embed_seconds {
            Some(s) => println!("embedded {} passages in {:.2} s ({:.0} passages/s)", passages.len(), s, passages.len() as f64 / s.max(1e-9)),
            None => println!("no passage vectors (BM25 only)"),
        }
    }
    Ok(EXIT_OK)
}

/// The JSON of an answer or draft, with `case_store` (the file its case is
/// in) added when it opened a case.
fn with_case_store<T: serde::Serialize>(v: &T, case_id: Option<&str>, ctx: &Ctx) -> anyhow::Result<String> {
    let mut j = serde_json::to_value(v)?;
    if let (Some(_), Some(o)) = (case_id, j.as_object_mut()) {
        o.insert("case_store".into(), ctx.store_file().display().to_string().into());
    }
    Ok(serde_json::to_string_pretty(&j)?)
}

/// The line after an escalation: where its case is, and how to see it.
fn case_stored_line(case_id: Option<&str>, ctx: &Ctx) -> String {
    match case_id {
        Some(id) => {
            let data = if ctx.data_source == Source::Default { String::new() } else { format!(" --data {}", ctx.data.display()) };
            format!("case {id} is stored in {} (`onlabel{data} cases show {id}`)\n", ctx.store_file().display())
        }
        None => String::new(),
    }
}

/// Opens the audit log in `data` and works out who is acting ([`signin::actor`]).
fn open_trace(data: &std::path::Path, claimed: Option<&str>, role: &str, what: &str) -> crate::Result<(Audit, Actor)> {
    let audit = Audit::open(data)?;
    let actor = signin::actor(audit.store(), claimed, role, what)?;
    if actor.authenticated && role != actor.role && role != "rep" {
        eprintln!("note: signed in as {} ({}); --role {role} is ignored", actor.id, actor.role);
    }
    Ok((audit, actor))
}

/// The reporter of record on a case: the signed-in user, else the `--as`
/// claim, else the actor (`os:NAME`).
fn reporter(actor: &Actor) -> String {
    actor.claimed.clone().filter(|_| !actor.authenticated).unwrap_or_else(|| actor.id.clone())
}

/// Builds the copilot; a library error (an unapproved or altered prompt, a
/// damaged store) becomes its exit code and message, anything else an error.
fn build_or_report(
    built: anyhow::Result<Copilot>,
    json: bool,
    data: &std::path::Path,
) -> anyhow::Result<Result<Copilot, i32>> {
    match built {
        Ok(c) => Ok(Ok(c)),
        Err(e) => match e.downcast::<crate::Error>() {
            Ok(ce) => Ok(Err(signin::report(&ce, json, data))),
            Err(e) => Err(e),
        },
    }
}

fn ask(a: &AskArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let (json, data) = (ctx.json, ctx.data.as_path());
    let (audit, actor) = match open_trace(data, a.user.as_deref(), &a.q.role, "ask") {
        Ok(x) => x,
        Err(e) => return Ok(signin::report(&e, json, data)),
    };
    let q = QueryArgs { role: actor.role.clone(), ..a.q.clone() };
    let built = copilot_with(&q, Some(data), |p| Ok(live_prompt(p, audit.store(), &a.root)?));
    let copilot = match build_or_report(built, json, data)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let who = crate::copilot::Requester { user: reporter(&actor), hcp: a.hcp.clone() };
    let req = Ask {
        question: a.question.clone(),
        product: a.product.clone(),
        role: q.role.clone(),
        as_of: q.as_of.unwrap_or_else(today),
    };
    let index_dir = q.index()?.to_path_buf();
    // Recorded with the answer: which product it was taken to be about.
    let resolved = copilot.resolve_product(&req);
    let context = |total_ms: f64| {
        serde_json::json!({
            "product": a.product, "resolved_product": resolved.product(), "hcp": a.hcp, "index": index_dir, "as_of": req.as_of.to_string(),
            "retrieval": format!("{:?}", copilot.retrieval()).to_lowercase(), "total_ms": total_ms,
        })
    };
    let t0 = Instant::now();
    if json || !std::io::stdout().is_terminal() {
        let mut answer = copilot.ask_as(&req, &who, &mut |_| {})?;
        // The record is appended before the answer is shown: nothing leaves untraced.
        let tctx = context(t0.elapsed().as_secs_f64() * 1e3);
        trace::record_answer(&audit, &actor, "ask", &a.question, &mut answer, tctx)?;
        if json {
            outln!("{}", with_case_store(&answer, answer.case_id.as_deref(), ctx)?);
        } else {
            out!("{}", render_text(&answer));
            outln!("(audit record {})", answer.audit_id.unwrap_or_default());
            out!("{}", case_stored_line(answer.case_id.as_deref(), ctx));
        }
        return Ok(EXIT_OK);
    }
    // On a terminal: each sentence as soon as it has passed the verifier and
    // the output guard (never the model's raw draft), then the citations. The
    // audit record is appended once the answer is complete; if that fails,
    // the command fails (exit 2) and says so.
    let mut streamed = false;
    let mut answer = copilot.ask_as(&req, &who, &mut |e| match e {
        crate::copilot::Event::Sentence(t) => {
            out!("{}{t}", if streamed { " " } else { "" });
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            streamed = true;
        }
    })?;
    let tctx = context(t0.elapsed().as_secs_f64() * 1e3);
    let recorded = trace::record_answer(&audit, &actor, "ask", &a.question, &mut answer, tctx);
    if streamed && answer.route == Route::Answer {
        outln!();
        out!("{}", render_citations(&answer));
    } else {
        out!("{}", render_text(&answer));
        out!("{}", case_stored_line(answer.case_id.as_deref(), ctx));
    }
    let seq = recorded.context("the answer above was shown but could NOT be recorded in the audit log; report it to compliance")?;
    outln!("(audit record {seq})");
    Ok(EXIT_OK)
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
            },
            a.model.as_deref().map(|m| format!("; model {}", m.split(" sha256:").next().unwrap_or(m))).unwrap_or_default()
        ));
    }
    if let (Some(n), true) = (&a.note, a.parts.is_empty()) {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

/// Refuses a product the index does not hold: a draft or summary for it
/// would look complete and cite nothing.
fn known_product(q: &QueryArgs, product: &str) -> anyhow::Result<()> {
    let names = products::names(q.index()?)?;
    let p = product.trim().to_lowercase();
    if names.contains(&p) {
        return Ok(());
    }
    Err(error::Error::BadInput {
        field: "--product",
        reason: format!(
            "no product {p:?} in the index at {} (it holds: {}); see `onlabel products`",
            q.index()?.display(),
            if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
        ),
    }
    .into())
}

fn email(a: &EmailArgs, ctx: &Ctx) -> anyhow::Result<i32> {
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
    let q = QueryArgs { role: actor.role.clone(), gen: GenArgs { extractive: true, ..a.q.gen.clone() }, ..a.q.clone() };
    let copilot = copilot(&q, Some(data))?;
    let req = Ask { question: a.topics.clone(), product: Some(a.product.clone()), role: q.role.clone(), as_of: q.as_of.unwrap_or_else(today) };
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

fn summarize(a: &SummarizeArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let (json, data) = (ctx.json, ctx.data.as_path());
    let bad = |reason: String| error::Error::BadFile { what: "notes file", path: a.notes_file.clone(), reason };
    let meta = std::fs::metadata(&a.notes_file).map_err(|e| bad(e.to_string()))?;
    if meta.len() > MAX_NOTES_BYTES {
        return Err(bad(format!("{} bytes, over the {MAX_NOTES_BYTES}-byte limit: summarize one visit at a time", meta.len())).into());
    }
    let notes = std::fs::read_to_string(&a.notes_file).map_err(|e| bad(format!("not UTF-8 text ({e})")))?;
    if notes.trim().is_empty() {
        return Err(bad("is empty".into()).into());
    }
    known_product(&a.q, &a.product)?;
    let (audit, actor) = match open_trace(data, a.user.as_deref(), &a.q.role, "summarize") {
        Ok(x) => x,
        Err(e) => return Ok(signin::report(&e, json, data)),
    };
    let q = QueryArgs { role: actor.role.clone(), gen: GenArgs { extractive: true, ..a.q.gen.clone() }, ..a.q.clone() };
    let copilot = copilot(&q, Some(data))?;
    let req = Ask { question: String::new(), product: Some(a.product.clone()), role: q.role.clone(), as_of: q.as_of.unwrap_or_else(today) };
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

