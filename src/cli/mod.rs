//! [`Cli`]: the `onlabel` command line (clap derive). `main.rs` only calls [`run`].
//!
//! This file holds the command tree ([`Cli`], its global options, the
//! [`Ctx`] every command runs with) and the dispatch; each command lives in
//! a file of its own and only parses, calls the library and renders:
//!
//! | file | command |
//! | --- | --- |
//! | `ingest.rs` | `ingest` |
//! | `index.rs` | `index publish`, `index status` (a versioned root replicas share) |
//! | `ask.rs` | `ask` (and the terminal rendering of an answer) |
//! | `email.rs` | `email` |
//! | `summarize.rs` | `summarize` |
//! | `eval.rs` | `eval` (the run itself is [`crate::eval::run`]) |
//! | `products.rs` | `products` (the catalogue is [`crate::index::catalogue`]) |
//! | `serve.rs` | `serve` |
//! | `info.rs` | `info` |
//! | `cases.rs`, `prompts.rs`, `users.rs`, `audit.rs` | their command groups |
//!
//! Shared pieces: `query.rs` (the options of the query commands and the
//! copilot built from them), `dense.rs` (dense-retrieval options),
//! `generator.rs` (the inference server's options, `--generator-url`),
//! `signin.rs` (who is acting), `config.rs` (the config file) and
//! `error.rs` (every error's message, stable code and exit status).

mod ask;
mod audit;
mod cases;
pub mod config;
mod dense;
mod email;
mod eval;
pub mod generator;
pub mod error;
mod index;
mod info;
mod ingest;
mod products;
mod prompts;
mod query;
mod serve;
mod signin;
mod summarize;
mod users;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use config::Source;
pub use ask::{render_citations, render_text};
pub use query::DEFAULT_MODEL;
use query::{copilot, fill, parse_date, tempfile_dir, today, GenArgs, QueryArgs};

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
/// Exit code: a check or verification failed (the table's, [`crate::error`]).
pub const EXIT_CHECK_FAILED: i32 = crate::error::EXIT_CHECK_FAILED;
/// Exit code: bad usage or bad input.
pub const EXIT_BAD_INPUT: i32 = crate::error::EXIT_BAD_INPUT;
/// Exit code: permission denied (bad credential, wrong role, self-approval).
pub const EXIT_DENIED: i32 = signin::EXIT_DENIED;

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
    /// Where the state lives: postgres://USER@HOST:PORT/DBNAME (PostgreSQL, shared by several
    /// replicas; so far it holds the audit log) or sqlite:PATH/onlabel.sqlite.
    /// Default: the config file's `database`, else onlabel.sqlite in the data directory.
    #[arg(long = "database", value_name = "URL", global = true, env = "ONLABEL_DATABASE")]
    database: Option<String>,
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
    /// Where the state lives: the SQLite file in [`Ctx::data`] unless
    /// `--database` (or the environment, or the config file) says otherwise.
    database: crate::store::Database,
    /// Where [`Ctx::database`] came from.
    database_source: Source,
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
    Ingest(ingest::IngestArgs),
    /// A versioned index root for several `serve` replicas: publish a new version, show the live one.
    Index {
        #[command(subcommand)]
        cmd: index::IndexCommand,
    },
    /// Answer one question from approved material, with citations.
    Ask(ask::AskArgs),
    /// Draft a follow-up email (never sent) with approved, cited statements and the safety information.
    Email(email::EmailArgs),
    /// Turn free-text visit notes into a structured call summary; uncited product claims are removed.
    Summarize(summarize::SummarizeArgs),
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

/// Parses arguments, sets up logging, runs the command; returns the exit code.
pub fn run() -> i32 {
    let mut cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() && config::on_command_line("--json") => {
            let msg = e.render().to_string();
            let first = msg.lines().next().unwrap_or("").trim_start_matches("error: ").to_string();
            eprint!("{msg}");
            outln!("{}", serde_json::json!({"error": {"code": "usage", "message": first}}));
            return crate::error::exit_status("usage");
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
    let (database, database_source, data, data_source) = database(cli, c, data, data_source)?;
    match &mut cli.command {
        Command::Ingest(a) => {
            fill(&mut a.index, &c.index);
            if a.dense.dense {
                fill(&mut a.dense.embedder, &c.embedder);
            }
        }
        Command::Index { cmd } => {
            if let index::IndexCommand::Publish(p) = cmd {
                if p.ingest.dense.dense {
                    fill(&mut p.ingest.dense.embedder, &c.embedder);
                }
            }
            fill(cmd.index_mut(), &c.index);
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
    Ok(Ctx { json: cli.global.json, data, data_source, database, database_source, config: loaded })
}

/// Resolves `--database` (flag, env, config file): a PostgreSQL URL, or an
/// SQLite file whose directory becomes the data directory. Returns the
/// database, where it came from, and the data directory (and its source).
fn database(
    cli: &Cli,
    c: &config::Config,
    data: PathBuf,
    data_source: Source,
) -> anyhow::Result<(crate::store::Database, Source, PathBuf, Source)> {
    use crate::store::{Database, Error, FILE_NAME};
    let given = match (&cli.global.database, &c.database) {
        (Some(v), _) => Some((v.as_str(), if config::on_command_line("--database") { Source::Flag } else { Source::Env })),
        (None, Some(v)) => Some((v.as_str(), Source::ConfigFile)),
        (None, None) => None,
    };
    let Some((value, source)) = given else {
        let file = data.join(FILE_NAME);
        return Ok((Database::Sqlite(file), Source::Default, data, data_source));
    };
    let db = Database::parse(value)?;
    match &db {
        Database::Postgres(_) => Ok((db, source, data, data_source)),
        Database::Sqlite(file) => {
            let bad = |reason: String| Error::BadDatabase { value: value.to_string(), reason };
            if file.file_name().is_none_or(|n| n != FILE_NAME) {
                return Err(bad(format!("the SQLite store file is named {FILE_NAME}; give its path, or its directory with --data DIR")).into());
            }
            let dir = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                _ => PathBuf::from("."),
            };
            if cli.global.data.is_some() && matches!(data_source, Source::Flag | Source::Env) {
                let same = |a: &std::path::Path, b: &std::path::Path| std::path::absolute(a).ok() == std::path::absolute(b).ok();
                if !same(&dir, &data) {
                    return Err(bad(format!("it names a store in {}, but --data (or ONLABEL_DATA) names {}; give one of them", dir.display(), data.display())).into());
                }
            }
            Ok((db, source, dir, source))
        }
    }
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
        Command::Ingest(a) => ingest::run(a, json),
        Command::Index { cmd } => index::run(cmd, json),
        Command::Ask(a) => ask::run(a, ctx),
        Command::Eval(a) => eval::run(a, json, &ctx.database),
        Command::Serve(a) => serve::run(a, &ctx.database, &ctx.data, ctx.config.config.oidc.as_ref()),
        Command::Email(a) => email::run(a, ctx),
        Command::Summarize(a) => summarize::run(a, ctx),
        Command::Products(a) => products::run(a, json),
        Command::Info => info::run(ctx),
        Command::Cases { cmd } => cases::run(cmd, &ctx.database, json),
        Command::Prompts(a) => prompts::run(a, &ctx.database, json),
        Command::Users { cmd } => users::run(cmd, &ctx.database, json),
        Command::Audit { cmd } => audit::run(cmd, &ctx.database, json),
    }
}
