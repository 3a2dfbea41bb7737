//! `onlabel prompts …`: the registry workflow from a terminal —
//! `list|show|diff|verify` to read; `propose|submit|approve|reject|retire|
//! rollback|record-eval` to act (each with `--as USER` and a token).
//!
//! `record-eval` is the path that turns an eval into evidence: it runs the
//! suite against the *stored* content of `NAME@N` (written to a scratch
//! file), never against whatever is on disk, and records suite hash, model
//! hash, every artefact in play and the metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::signin::{report, sign_in, to_json, SignIn};
use super::{outln, QueryArgs, EXIT_CHECK_FAILED, EXIT_OK};
use crate::prompts::{EvalRun, Kind, NewEvalRun, Registry, Signature, State, Thresholds, Version, VersionId};
use crate::store::Store;

/// `onlabel prompts` with the options all its subcommands share.
#[derive(Debug, Args)]
pub struct PromptsArgs {
    /// The repository root: artefact paths (prompts/, rules/, lexicon/, evals/) are relative to it.
    #[arg(long, global = true, default_value = ".", env = "ONLABEL_ROOT")]
    root: PathBuf,
    /// The eval thresholds an approval must meet (relative to --root).
    #[arg(long, global = true, default_value = "evals/thresholds.toml", env = "ONLABEL_THRESHOLDS")]
    thresholds: PathBuf,
    #[command(subcommand)]
    cmd: PromptsCommand,
}

/// The `prompts` subcommands.
#[derive(Debug, Subcommand)]
enum PromptsCommand {
    /// List every version with its state, hash and signatures.
    List,
    /// Show one version (NAME@N, or NAME for its live/latest version) with its signatures and eval runs.
    Show {
        /// NAME@N or NAME.
        id: String,
        /// Print the stored content only.
        #[arg(long)]
        content: bool,
    },
    /// The change from the live version (or --against) to NAME@N, with the eval metrics side by side.
    Diff {
        /// The version to review.
        id: VersionId,
        /// Compare with this version instead of the live one.
        #[arg(long)]
        against: Option<VersionId>,
    },
    /// Check that each registered artefact's file on disk is its approved live version (exit 1 if not).
    Verify {
        /// Only these names (default: every registered name).
        names: Vec<String>,
    },
    /// Register a file's current content as a new draft NAME@N; prints NAME@N.
    Propose {
        /// The artefact name (objection, guard-rules, ae_terms, …).
        name: String,
        /// The file (relative to --root), e.g. prompts/objection.j2.
        #[arg(long)]
        template: PathBuf,
        /// prompt, rules or lexicon (default: from the extension .j2/.toml/.txt).
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Sampling temperature the version is approved with.
        #[arg(long)]
        temperature: Option<f64>,
        /// Most tokens generated.
        #[arg(long)]
        max_tokens: Option<u64>,
        /// The model id the version is approved with.
        #[arg(long)]
        model: Option<String>,
        /// Any other parameter, KEY=VALUE (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        #[command(flatten)]
        who: SignIn,
    },
    /// Submit a draft for MLR review (draft → in_review).
    Submit {
        /// NAME@N.
        id: VersionId,
        #[command(flatten)]
        who: SignIn,
    },
    /// E-sign NAME@N as approved for use (mlr_reviewer, not its author; needs passing eval evidence).
    Approve {
        /// NAME@N.
        id: VersionId,
        /// Why it is approved (recorded in the signature).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: SignIn,
    },
    /// E-sign NAME@N as rejected (mlr_reviewer).
    Reject {
        /// NAME@N.
        id: VersionId,
        /// Why it is rejected.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: SignIn,
    },
    /// Take the live NAME@N out of use (approved → retired).
    Retire {
        /// NAME@N.
        id: VersionId,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: SignIn,
    },
    /// Make a retired, once-approved NAME@N live again (e-signature) and restore its file.
    Rollback {
        /// NAME@N.
        id: VersionId,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: SignIn,
    },
    /// Run an eval suite against the stored content of NAME@N and record the run as evidence.
    RecordEval(RecordEvalArgs),
}

/// Options of `prompts record-eval`.
#[derive(Debug, Args)]
struct RecordEvalArgs {
    /// NAME@N.
    id: VersionId,
    /// The suite (JSONL), relative to --root; must be a suite of a gate in the thresholds file.
    #[arg(long)]
    suite: PathBuf,
    #[command(flatten)]
    q: QueryArgs,
    #[command(flatten)]
    who: SignIn,
}

impl PromptsArgs {
    /// The query options of `record-eval` (the one subcommand that runs the
    /// pipeline), for the config file to fill.
    pub(super) fn query_args_mut(&mut self) -> Option<&mut QueryArgs> {
        match &mut self.cmd {
            PromptsCommand::RecordEval(r) => Some(&mut r.q),
            _ => None,
        }
    }
}

/// Runs one `prompts` subcommand; returns the exit code.
pub fn run(a: &PromptsArgs, db: &crate::store::Database, json: bool) -> anyhow::Result<i32> {
    Ok(execute(a, db, json).unwrap_or_else(|e| report(&e, json, db)))
}

fn thresholds(a: &PromptsArgs) -> crate::Result<Thresholds> {
    let p = if a.thresholds.is_absolute() { a.thresholds.clone() } else { a.root.join(&a.thresholds) };
    Ok(Thresholds::read(&p)?)
}

fn execute(a: &PromptsArgs, db: &crate::store::Database, json: bool) -> crate::Result<i32> {
    let store = Store::connect(db)?;
    let reg = Registry::new(&store, &a.root);
    match &a.cmd {
        PromptsCommand::List => list(&reg, json)?,
        PromptsCommand::Show { id, content } => show(&reg, id, *content, json)?,
        PromptsCommand::Diff { id, against } => diff(&reg, id, against.as_ref(), json)?,
        PromptsCommand::Verify { names } => return verify(&reg, names, json),
        PromptsCommand::Propose { name, template, kind, temperature, max_tokens, model, params, who } => {
            let user = sign_in(&store, who, "prompts propose")?;
            let mut p = serde_json::Map::new();
            if let Some(t) = temperature {
                p.insert("temperature".into(), (*t).into());
            }
            if let Some(m) = max_tokens {
                p.insert("max_tokens".into(), (*m).into());
            }
            if let Some(m) = model {
                p.insert("model".into(), m.clone().into());
            }
            for (k, v) in params {
                p.insert(k.clone(), v.clone().into());
            }
            let v = reg.propose(name, template, *kind, serde_json::Value::Object(p), &user)?;
            changed(&v, json);
        }
        PromptsCommand::Submit { id, who } => {
            let user = sign_in(&store, who, "prompts submit")?;
            changed(&reg.submit(id, &user)?, json);
        }
        PromptsCommand::Approve { id, reason, who } => {
            let t = thresholds(a)?;
            let user = sign_in(&store, who, "prompts approve (e-signature)")?;
            let (v, s) = reg.approve(id, reason, &user, &t)?;
            signed(&v, &s, json);
        }
        PromptsCommand::Reject { id, reason, who } => {
            let user = sign_in(&store, who, "prompts reject (e-signature)")?;
            let (v, s) = reg.reject(id, reason, &user)?;
            signed(&v, &s, json);
        }
        PromptsCommand::Retire { id, reason, who } => {
            let user = sign_in(&store, who, "prompts retire")?;
            changed(&reg.retire(id, reason, &user)?, json);
        }
        PromptsCommand::Rollback { id, reason, who } => {
            let t = thresholds(a)?;
            let user = sign_in(&store, who, "prompts rollback (e-signature)")?;
            let (v, s) = reg.rollback(id, reason, &user, &t)?;
            signed(&v, &s, json);
            eprintln!("restored {} from {}", v.source_path, v.id());
        }
        PromptsCommand::RecordEval(r) => return record_eval(a, &reg, &store, r, json),
    }
    Ok(EXIT_OK)
}

fn changed(v: &Version, json: bool) {
    if json {
        outln!("{}", to_json(v));
    } else {
        outln!("{}", v.id());
        eprintln!("{} is {} (sha256 {})", v.id(), v.state, v.sha256);
    }
}

fn signed(v: &Version, s: &Signature, json: bool) {
    if json {
        outln!("{}", to_json(&serde_json::json!({"version": v, "signature": s})));
    } else {
        outln!("{} {}", v.id(), v.state);
        outln!("signed: {}", s.manifestation());
        outln!("bound to sha256 {} (binding {})", s.sha256, s.binding);
    }
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// `NAME@N`, or `NAME` → its live version, else its latest.
fn resolve(reg: &Registry<'_>, id: &str) -> crate::Result<Version> {
    if id.contains('@') {
        let vid: VersionId = id.parse().map_err(|reason| crate::prompts::Error::BadInput { field: "NAME@N", reason })?;
        return Ok(reg.get(&vid)?);
    }
    let all = reg.versions(Some(id))?;
    let v = all.iter().find(|v| v.state == State::Approved).or(all.last()).cloned();
    Ok(v.ok_or_else(|| crate::prompts::Error::NotFound { id: id.to_string() })?)
}

fn vid(v: &Version) -> VersionId {
    VersionId { name: v.name.clone(), version: v.version }
}

fn sig_line(s: &Signature, v: &Version) -> String {
    format!("{}{}", s.manifestation(), if s.is_bound_to(v) { "" } else { "  [NOT BOUND TO THIS VERSION: invalid]" })
}

fn list(reg: &Registry<'_>, json: bool) -> crate::Result<()> {
    let all = reg.versions(None)?;
    if json {
        let mut rows = Vec::new();
        for v in &all {
            let sigs = reg.signatures(&vid(v))?;
            rows.push(serde_json::json!({"version": v, "id": v.id(), "signatures": sigs}));
        }
        outln!("{}", to_json(&rows));
        return Ok(());
    }
    if all.is_empty() {
        outln!("no registered versions (onlabel prompts propose NAME --template FILE --as USER)");
        return Ok(());
    }
    outln!("{:<20} {:<8} {:<10} {:<12} {:<12} {:<17} SIGNATURE", "VERSION", "KIND", "STATE", "SHA256", "AUTHOR", "CREATED (UTC)");
    for v in &all {
        let sigs = reg.signatures(&vid(v))?;
        let last = sigs.last().map(|s| sig_line(s, v)).unwrap_or_else(|| "-".into());
        outln!(
            "{:<20} {:<8} {:<10} {:<12} {:<12} {:<17} {}",
            v.id(),
            v.kind.as_str(),
            v.state.as_str(),
            &v.sha256[..12],
            v.author,
            v.created_at.format("%Y-%m-%d %H:%M"),
            last
        );
    }
    Ok(())
}

fn show(reg: &Registry<'_>, id: &str, content: bool, json: bool) -> crate::Result<()> {
    let v = resolve(reg, id)?;
    if content {
        super::out!("{}", v.content);
        return Ok(());
    }
    let sigs = reg.signatures(&vid(&v))?;
    let runs = reg.eval_runs(&vid(&v))?;
    let disk = std::fs::read(reg.file_of(&v)).ok().map(|b| crate::prompts::sha256_hex(&b));
    let on_disk = match &disk {
        Some(h) if *h == v.sha256 => "matches this version",
        Some(_) => "differs from this version",
        None => "missing",
    };
    if json {
        let sigs_j: Vec<serde_json::Value> =
            sigs.iter().map(|s| serde_json::json!({"signature": s, "valid": s.is_bound_to(&v)})).collect();
        outln!(
            "{}",
            to_json(&serde_json::json!({"id": v.id(), "version": v, "file": on_disk, "signatures": sigs_j, "eval_runs": runs}))
        );
        return Ok(());
    }
    outln!("{}  {}  {}", v.id(), v.kind.as_str(), v.state);
    outln!("file:      {} ({on_disk})", v.source_path);
    outln!("sha256:    {}", v.sha256);
    outln!("author:    {}", v.author);
    outln!("created:   {}", v.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    outln!("params:    {}", v.params);
    outln!("signatures:");
    if sigs.is_empty() {
        outln!("  (none)");
    }
    for s in &sigs {
        outln!("  {}", sig_line(s, &v));
        if let Some(r) = s.eval_run_id {
            outln!("    on eval run {r}");
        }
    }
    outln!("eval runs:");
    if runs.is_empty() {
        outln!("  (none)");
    }
    for r in &runs {
        outln!("  {}", run_line(r));
    }
    Ok(())
}

/// The metrics shown for a run, in this order.
use crate::prompts::diff::SHOWN;

fn run_line(r: &EvalRun) -> String {
    let m: Vec<String> = SHOWN
        .iter()
        .filter_map(|k| r.metrics.get(*k).and_then(|v| v.as_f64()).map(|v| format!("{k} {v:.3}")))
        .collect();
    format!(
        "#{} {} {} on {} (suite sha256 {}…) by {} at {}: {}",
        r.id,
        if r.passed { "PASSED" } else { "BELOW THRESHOLDS" },
        r.model.as_deref().map(|m| format!("model {m}")).unwrap_or_else(|| "extractive".into()),
        r.suite_path,
        &r.suite_sha256[..12.min(r.suite_sha256.len())],
        r.recorded_by,
        r.recorded_at,
        m.join(", ")
    )
}

fn diff(reg: &Registry<'_>, id: &VersionId, against: Option<&VersionId>, json: bool) -> crate::Result<()> {
    let c = crate::prompts::diff::compare(reg, id, against)?;
    if json {
        outln!("{}", to_json(&c.to_json()));
        return Ok(());
    }
    let crate::prompts::diff::Comparison { new, old, text, new_runs, rows, .. } = c;
    let rows: Vec<(String, String, Option<f64>, Option<f64>, bool)> =
        rows.into_iter().map(|r| (r.suite, r.metric, r.against, r.new, r.passed)).collect();
    super::out!("{text}");
    outln!();
    if new_runs.is_empty() {
        outln!("eval: no recorded run of {} (onlabel prompts record-eval {} --suite FILE …)", new.id(), new.id());
        return Ok(());
    }
    let f = |v: &Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
    outln!("{:<20} {:<24} {:>10} {:>10} {:>9}", "SUITE", "METRIC", old.as_ref().map(|o| o.id()).unwrap_or_default(), new.id(), "DELTA");
    for (s, k, o, n, _) in &rows {
        let d = match (o, n) {
            (Some(o), Some(n)) => format!("{:+.3}", n - o),
            _ => "-".into(),
        };
        let suite = Path::new(s).file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_else(|| s.clone());
        outln!("{:<20} {:<24} {:>10} {:>10} {:>9}", suite, k, f(o), f(n), d);
    }
    for r in &new_runs {
        outln!("{}", run_line(r));
    }
    Ok(())
}

fn verify(reg: &Registry<'_>, names: &[String], json: bool) -> crate::Result<i32> {
    let mut names = names.to_vec();
    if names.is_empty() {
        names = reg.versions(None)?.into_iter().map(|v| v.name).collect();
        names.dedup();
    }
    let mut ok = true;
    let mut out = Vec::new();
    for n in &names {
        match reg.live(n) {
            Ok(t) => {
                if !json {
                    outln!("{} ok: {} is {} — {}", n, t.version.source_path, t.id(), t.approval.manifestation());
                }
                out.push(serde_json::json!({"name": n, "ok": true, "live": t.id(), "sha256": t.version.sha256,
                    "approval": t.approval}));
            }
            Err(e) => {
                ok = false;
                if !json {
                    outln!("{} NOT LIVE: {e}", n);
                }
                out.push(serde_json::json!({"name": n, "ok": false, "code": e.code(), "message": e.to_string()}));
            }
        }
    }
    if json {
        outln!("{}", to_json(&out));
    }
    Ok(if ok { EXIT_OK } else { EXIT_CHECK_FAILED })
}

fn record_eval(
    a: &PromptsArgs,
    reg: &Registry<'_>,
    store: &Store,
    r: &RecordEvalArgs,
    json: bool,
) -> crate::Result<i32> {
    let t = thresholds(a)?;
    let user = sign_in(store, &r.who, "prompts record-eval")?;
    user.require(&[crate::users::Role::Compliance, crate::users::Role::Admin], "prompts record-eval")?;
    let v = reg.get(&r.id)?;
    let bad = |reason: String| crate::Error::from(crate::prompts::Error::BadInput { field: "record-eval", reason });
    let io = |p: &Path, source| crate::Error::from(crate::prompts::Error::Io { path: p.to_owned(), source });
    let suite_path = if r.suite.is_absolute() { r.suite.clone() } else { a.root.join(&r.suite) };
    let suite_bytes = crate::input::read_limited(&suite_path, crate::eval::MAX_SUITE_BYTES).map_err(|e| io(&suite_path, e))?;

    // The version's stored content, in a scratch file named after it.
    let scratch = super::tempfile_dir().map_err(|e| bad(format!("{e:#}")))?;
    let ext = match v.kind {
        Kind::Prompt => "j2",
        Kind::Rules => "toml",
        Kind::Lexicon => "txt",
    };
    let file = scratch.join(format!("{}.{ext}", v.name));
    std::fs::write(&file, &v.content).map_err(|e| io(&file, e))?;

    let mut q = r.q.clone();
    let model = match v.kind {
        Kind::Prompt => {
            if q.gen.extractive {
                return Err(bad(format!("{} is a prompt: only the model reads it, so evaluate it without --extractive", v.id())));
            }
            let m = q.gen.model.clone().unwrap_or_else(|| PathBuf::from(super::DEFAULT_MODEL));
            if !m.exists() {
                return Err(bad(format!("no model at {} (run `bash models/fetch.sh` or pass --model)", m.display())));
            }
            q.gen.prompt = file.clone();
            q.gen.model = Some(m.clone());
            q.gen.generate = true;
            Some(m)
        }
        _ if q.gen.extractive || !q.gen.generate => None,
        _ => q.gen.model.clone().or_else(|| Some(PathBuf::from(super::DEFAULT_MODEL)).filter(|p| p.exists())),
    };
    // A rules artefact is the guard's rule file or its report-element file, by name.
    let is_elements = v.kind == Kind::Rules && v.name == "report-elements";
    let rules = if v.kind == Kind::Rules && !is_elements { file.clone() } else { a.root.join(crate::guard::RULES_FILE) };
    let elements = if is_elements { file.clone() } else { a.root.join(crate::guard::ELEMENTS_FILE) };
    let lexicon = if v.kind == Kind::Lexicon { file.clone() } else { a.root.join("lexicon/ae_terms.txt") };
    let as_of = q.as_of.unwrap_or_else(super::today);
    let cases_dir = scratch.join("cases");
    let cases_db = crate::store::Database::Sqlite(cases_dir.join(crate::store::FILE_NAME));
    let copilot = super::copilot(&q, Some(&cases_db)).map_err(|e| bad(format!("{e:#}")))?;
    let copilot = if v.kind == Kind::Prompt {
        copilot
    } else {
        let guard = crate::guard::Guard::from_files(&rules, &elements, &lexicon)?;
        copilot.with_guard(Arc::new(guard), as_of)?
    };
    let suite = crate::eval::Suite::read(&suite_path)?;
    let mut m = crate::eval::run(&copilot, &suite, &q.role, as_of);
    m.outcomes.clear();
    let metrics = serde_json::to_value(&m).map_err(|e| bad(e.to_string()))?;
    let file_sha = |p: &Path| std::fs::read(p).map(|b| crate::prompts::sha256_hex(&b)).map_err(|e| io(p, e));
    let model_sha = match &model {
        Some(p) => Some(file_sha(p)?),
        None => None,
    };
    // Every artefact in play: the evaluated version by name@N, the others as loaded.
    let guard = copilot.guard();
    let rules_in_play = match v.kind {
        Kind::Rules => v.id(),
        _ => guard.map(|g| g.rules_version().to_string()).unwrap_or_else(|| "none".into()),
    };
    let lexicon_in_play = match v.kind {
        Kind::Lexicon => v.id(),
        Kind::Rules => format!("{} sha256:{}", lexicon.display(), file_sha(&lexicon)?),
        Kind::Prompt => format!("built-in {} ({} entries)", "lexicon/ae_terms.txt", guard.map_or(0, |g| g.lexicon_len())),
    };
    let versions = serde_json::json!({
        "evaluated": v.id(),
        "evaluated_sha256": v.sha256,
        "prompt": if v.kind == Kind::Prompt { v.id() } else { q.gen.prompt.display().to_string() },
        "rules": rules_in_play,
        "lexicon": lexicon_in_play,
        "index": q.index.as_ref().map(|p| p.display().to_string()),
        "role": q.role,
        "as_of": as_of.to_string(),
    });
    let run = NewEvalRun {
        suite_path: r.suite.clone(),
        suite_sha256: crate::prompts::sha256_hex(&suite_bytes),
        model: model.as_ref().map(|p| p.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default()),
        model_sha256: model_sha,
        versions,
        metrics,
    };
    let rec = reg.record_eval(&r.id, &run, &user, &t)?;
    let _ = std::fs::remove_dir_all(&scratch);
    if json {
        outln!("{}", to_json(&rec));
    } else {
        outln!("recorded eval run {} of {}", rec.id, v.id());
        outln!("{}", run_line(&rec));
        if !rec.passed {
            let why = t
                .gates(v.kind)
                .find(|g| a.root.join(&g.suite).canonicalize().ok() == suite_path.canonicalize().ok())
                .map(|g| g.shortfalls(&rec.metrics).join(", "))
                .unwrap_or_else(|| format!("{} is not a gate's suite in {}", r.suite.display(), t.path.display()));
            outln!("below thresholds: {why}");
        }
    }
    Ok(if rec.passed { EXIT_OK } else { EXIT_CHECK_FAILED })
}
