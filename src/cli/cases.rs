//! `onlabel cases …`: work the PV / Medical Information queue from a terminal.
//!
//! Every subcommand signs in like the registry commands do (see
//! [`super::signin`]): `--as USER` plus the token from `ONLABEL_TOKEN` (or a
//! no-echo prompt on a terminal). A wrong token, a disabled or locked user,
//! or a role that may not do it is exit 3, and the refusal is audited; a
//! missing token is exit 3 (`no_credential`: denied; the fix is to set the token).
//! Every exit status comes from the error table ([`crate::error::CODES`]).
//! Changing a case (`assign`, `triage`, `start`, `resolve`) needs the medical
//! or admin role ([`cases::WORKERS`]); reading the queue (`list`, `show`,
//! which show the reporter's words and patient details) needs medical,
//! compliance or admin. The signed-in user is the actor in the case history
//! and on the change's audit record.

use std::io::Write;

#[allow(unused_imports)]
use super::{out, outln};

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::signin::{report, sign_in, SignIn};
use super::EXIT_OK;
use crate::cases::{self, Case, CaseFilter, CaseKind, CaseState, CaseStore, HistoryEntry, NewCase};
use crate::store;
use crate::users::Role;

/// The roles that may read the queue from the CLI (it shows patient text).
pub const READERS: &[Role] = &[Role::Medical, Role::Compliance, Role::Admin];

/// The `cases` subcommands.
#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// List cases (oldest first), optionally filtered.
    List(ListArgs),
    /// Show one case with its full history.
    Show {
        /// The case id, e.g. PV-2026-000001.
        id: String,
        #[command(flatten)]
        who: SignIn,
    },
    /// Assign (or reassign) a case to an owner.
    Assign {
        /// The case id.
        id: String,
        /// The new owner's user id.
        #[arg(long = "to", value_name = "OWNER")]
        to: String,
        #[command(flatten)]
        who: SignIn,
    },
    /// Mark a new case as triaged (new → triaged).
    Triage {
        /// The case id.
        id: String,
        /// Why / what was decided (seriousness, completeness…).
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        who: SignIn,
    },
    /// Start working a triaged case (triaged → in_progress; needs an owner).
    Start {
        /// The case id.
        id: String,
        /// An optional note for the history.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        who: SignIn,
    },
    /// Close a case in progress with its resolution (in_progress → closed).
    Resolve {
        /// The case id.
        id: String,
        /// How it was resolved (safety database reference, MI letter sent, …).
        #[arg(long)]
        resolution: String,
        #[command(flatten)]
        who: SignIn,
    },
    /// Test aid for the crash test: open cases in a loop, printing each id
    /// on stdout only after its commit returned.
    #[command(hide = true)]
    Stress {
        /// How many cases to open.
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        /// pv, mir, or both (alternating).
        #[arg(long, default_value = "both")]
        kind: String,
        #[command(flatten)]
        who: SignIn,
    },
}

/// Filters for `cases list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this kind: pv or mir.
    #[arg(long, value_parser = parse_kind)]
    kind: Option<CaseKind>,
    /// Only this state: new, triaged, in_progress, closed.
    #[arg(long, value_parser = parse_state)]
    state: Option<CaseState>,
    /// Only cases that are not closed.
    #[arg(long)]
    open: bool,
    /// Only cases owned by this user.
    #[arg(long)]
    owner: Option<String>,
    /// Only open cases past their due time.
    #[arg(long)]
    overdue: bool,
    /// At most this many.
    #[arg(long)]
    limit: Option<usize>,
    /// Judge "overdue" at this instant (RFC 3339) instead of now.
    #[arg(long, hide = true, value_parser = parse_instant)]
    now: Option<DateTime<Utc>>,
    #[command(flatten)]
    who: SignIn,
}

fn parse_kind(s: &str) -> Result<CaseKind, String> {
    s.parse()
}
fn parse_state(s: &str) -> Result<CaseState, String> {
    s.parse()
}
fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{s:?} is not an RFC 3339 time like 2026-11-23T10:00:00Z"))
}

/// A case as `list` prints it in JSON: the stored case plus whether it is overdue now.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    case: &'a Case,
    overdue: bool,
}

/// Runs one `cases` subcommand against the store `db` names (the SQLite
/// file, `DATA_DIR/onlabel.sqlite` by default, or PostgreSQL); returns the
/// exit code.
pub fn run(cmd: &CasesCommand, db: &store::Database, json: bool) -> anyhow::Result<i32> {
    match execute(cmd, db, json) {
        Ok(code) => Ok(code),
        Err(crate::Error::Cases(e)) => {
            eprintln!("error: {e}");
            if json {
                outln!("{}", serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}}));
            }
            Ok(exit_code(&e))
        }
        // Sign-in and role refusals: audited, as for the registry commands;
        // their exit status comes from the same table.
        Err(e) => Ok(report(&e, json, db)),
    }
}

/// The exit status of a case error: its code's row in [`crate::error::CODES`]
/// (a missing case or a wrong step is 2, a refused actor 3, a store that
/// failed its own checks 1), never decided here.
fn exit_code(e: &cases::Error) -> i32 {
    crate::error::exit_status(e.code())
}

/// The command's name (for the audit record of a refused sign-in) and the roles that may run it.
fn permission(cmd: &CasesCommand) -> (&'static str, &'static [Role], &SignIn) {
    match cmd {
        CasesCommand::List(a) => ("cases list", READERS, &a.who),
        CasesCommand::Show { who, .. } => ("cases show", READERS, who),
        CasesCommand::Assign { who, .. } => ("cases assign", cases::WORKERS, who),
        CasesCommand::Triage { who, .. } => ("cases triage", cases::WORKERS, who),
        CasesCommand::Start { who, .. } => ("cases start", cases::WORKERS, who),
        CasesCommand::Resolve { who, .. } => ("cases resolve", cases::WORKERS, who),
        CasesCommand::Stress { who, .. } => ("cases stress", cases::WORKERS, who),
    }
}

fn execute(cmd: &CasesCommand, db: &store::Database, json: bool) -> crate::Result<i32> {
    let missing = match db {
        store::Database::Sqlite(file) if !file.exists() => Some(file),
        _ => None, // a PostgreSQL database is created by the migrations when empty
    };
    if let (Some(file), false) = (missing, matches!(cmd, CasesCommand::Stress { .. })) {
        // Do not create an empty store just to say it is empty: a wrong --data is the likelier cause.
        if let CasesCommand::List(_) = cmd {
            eprintln!("no case store at {} yet (set --data DIR or ONLABEL_DATA if it lives elsewhere)", file.display());
            if json {
                outln!("[]");
            }
            return Ok(EXIT_OK);
        }
        return Err(cases::Error::BadInput {
            field: "--data",
            reason: format!("no case store at {} (set --data DIR or ONLABEL_DATA)", file.display()),
        }
        .into());
    }
    let store = CaseStore::connect(db)?;
    let (what, roles, who) = permission(cmd);
    let user = sign_in(store.store(), who, what)?;
    user.require(roles, what)?;
    let actor = user.id.as_str();
    match cmd {
        CasesCommand::List(a) => {
            let now = a.now.unwrap_or_else(Utc::now);
            let filter = CaseFilter {
                kind: a.kind,
                state: a.state,
                open_only: a.open,
                owner: a.owner.clone(),
                overdue_at: a.overdue.then_some(now),
                limit: a.limit,
                ..CaseFilter::default()
            };
            let list = store.list(&filter)?;
            if json {
                let rows: Vec<Listed<'_>> =
                    list.iter().map(|c| Listed { case: c, overdue: c.is_overdue(now) }).collect();
                outln!("{}", to_json(&rows));
            } else {
                out!("{}", render_list(&list, now));
            }
        }
        CasesCommand::Show { id, .. } => {
            let case = store.get(id)?.ok_or_else(|| cases::Error::NotFound { id: id.trim().to_ascii_uppercase() })?;
            let history = store.history(&case.id)?;
            if json {
                outln!(
                    "{}",
                    to_json(
                        &serde_json::json!({"case": case, "overdue": case.is_overdue(Utc::now()), "history": history})
                    )
                );
            } else {
                out!("{}", render_case(&case, &history));
            }
        }
        CasesCommand::Assign { id, to, .. } => print_changed(&store.assign(id, to, actor)?, json),
        CasesCommand::Triage { id, note, .. } => {
            print_changed(&store.transition(id, CaseState::Triaged, actor, note.as_deref())?, json)
        }
        CasesCommand::Start { id, note, .. } => {
            print_changed(&store.transition(id, CaseState::InProgress, actor, note.as_deref())?, json)
        }
        CasesCommand::Resolve { id, resolution, .. } => print_changed(&store.resolve(id, actor, resolution)?, json),
        CasesCommand::Stress { count, kind, .. } => stress(&store, *count, kind, actor)?,
    }
    Ok(EXIT_OK)
}

fn print_changed(c: &Case, json: bool) {
    if json {
        outln!("{}", to_json(c));
    } else {
        outln!("{} {} owner {}", c.id, c.state, c.owner.as_deref().unwrap_or("-"));
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Serializing our own plain structs cannot fail; fall back to an error object rather than panic.
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn stress(store: &CaseStore, count: u64, kind: &str, reporter: &str) -> cases::Result<()> {
    let kinds: Vec<CaseKind> = match kind {
        "both" => CaseKind::ALL.to_vec(),
        k => vec![k.parse().map_err(|reason| cases::Error::BadInput { field: "--kind", reason })?],
    };
    let mut out = std::io::stdout().lock();
    for i in 0..count {
        let k = kinds[(i % kinds.len() as u64) as usize];
        let case = store.open_case(NewCase {
            kind: k,
            product: Some("stressol".into()),
            question: format!("stress case {i}: patient reports dizziness after the second dose"),
            reporter: reporter.into(),
            hcp: None,
            patient: None,
            suspect_product: None,
            event: None,
            flags_json: "[]".into(),
            now: Utc::now(),
        })?;
        // Printed only now that open_case has returned, i.e. after COMMIT.
        if writeln!(out, "{}", case.id).and_then(|_| out.flush()).is_err() {
            break; // the reader went away
        }
    }
    Ok(())
}

fn render_list(list: &[Case], now: DateTime<Utc>) -> String {
    if list.is_empty() {
        return "no cases\n".into();
    }
    let mut s =
        format!("{:<16} {:<4} {:<12} {:<14} {:<17} {}\n", "ID", "KIND", "STATE", "OWNER", "DUE (UTC)", "PRODUCT");
    for c in list {
        s.push_str(&format!(
            "{:<16} {:<4} {:<12} {:<14} {:<17} {}{}\n",
            c.id,
            c.kind.prefix(),
            c.state.as_str(),
            c.owner.as_deref().unwrap_or("-"),
            c.due_at.format("%Y-%m-%d %H:%M"),
            c.product.as_deref().unwrap_or("-"),
            if c.is_overdue(now) { "  OVERDUE" } else { "" },
        ));
    }
    s
}

fn render_case(c: &Case, history: &[HistoryEntry]) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut s = format!(
        "{}  {}  {}{}\nowner:     {}\nreporter:  {}\nproduct:   {}\nhcp:       {}\npatient:   {}\nsuspect:   {}\nevent:     {}\nopened:    {}\ndue:       {}\n",
        c.id,
        c.kind,
        c.state,
        if c.is_overdue(Utc::now()) { "  OVERDUE" } else { "" },
        opt(&c.owner),
        c.reporter,
        opt(&c.product),
        opt(&c.hcp),
        opt(&c.patient),
        opt(&c.suspect_product),
        opt(&c.event),
        rfc(c.created_at),
        rfc(c.due_at),
    );
    if let Some(r) = &c.resolution {
        s.push_str(&format!("resolution: {r}\n"));
    }
    s.push_str(&format!("question (verbatim):\n  {}\nflags: {}\nhistory:\n", c.question, c.flags));
    for h in history {
        let from = h.from_state.map_or("-".to_string(), |f| f.to_string());
        s.push_str(&format!(
            "  {}  {:<12} {:<13} {} → {}{}\n",
            rfc(h.at),
            h.actor,
            h.action,
            from,
            h.to_state,
            h.note.as_ref().map(|n| format!("  ({n})")).unwrap_or_default()
        ));
    }
    s
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
