//! `onlabel audit verify|export|show`: check the hash chain; hand records to
//! inspectors. Reading records (`export`, `show`) needs `--as` a compliance
//! officer or an admin and is itself audited; `verify` reads only hashes.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;

use super::signin::{report, sign_in, to_json, SignIn};
use super::{outln, EXIT_CHECK_FAILED, EXIT_OK};
use crate::audit::{export::Format, Audit, Record};
use crate::store::Database;
use crate::users::Role;

/// The `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the whole chain; name the first edited, deleted, reordered or inserted record (exit 1).
    Verify {
        /// The head noted earlier (`SEQ:HASH`, as printed by verify): also detects removal of the newest records.
        #[arg(long, value_name = "SEQ:HASH", value_parser = parse_head)]
        head: Option<(i64, String)>,
    },
    /// Export records for inspectors (every field, including the hashes).
    Export {
        /// From this time (RFC 3339) or date (YYYY-MM-DD, UTC), inclusive.
        #[arg(long, value_parser = parse_from)]
        from: Option<DateTime<Utc>>,
        /// Up to this time (exclusive) or date (inclusive: the whole day).
        #[arg(long, value_parser = parse_to)]
        to: Option<DateTime<Utc>>,
        /// jsonl (re-verifiable) or csv (for spreadsheets; formula-like text is defused with a leading ').
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        who: SignIn,
    },
    /// Show one record.
    Show {
        /// The record's seq (an answer's audit_id).
        seq: i64,
        #[command(flatten)]
        who: SignIn,
    },
}

/// Runs one `audit` subcommand on the log of `db` (SQLite or PostgreSQL);
/// returns the exit code.
pub fn run(cmd: &AuditCommand, db: &Database, json: bool) -> anyhow::Result<i32> {
    Ok(execute(cmd, db, json).unwrap_or_else(|e| report(&e, json, db)))
}

fn execute(cmd: &AuditCommand, db: &Database, json: bool) -> crate::Result<i32> {
    if let Database::Sqlite(file) = db {
        if !file.exists() {
            return Err(crate::audit::Error::BadInput {
                field: "--data",
                reason: format!("no store at {} (set --data DIR or ONLABEL_DATA)", file.display()),
            }
            .into());
        }
    }
    match cmd {
        AuditCommand::Verify { head } => {
            let log = crate::audit::open(db)?;
            let v = log.verify(head.as_ref().map(|(s, h)| (*s, h.as_str())))?;
            if json {
                outln!("{}", to_json(&v));
            } else if let Some(t) = &v.tamper {
                outln!("audit log TAMPERED at record {}: {t}", t.first_bad());
                outln!("{} records verified before it", v.checked);
            } else {
                outln!("audit log intact: {} records, chain verified", v.checked);
                if let Some((s, h)) = &v.head {
                    outln!("head {s}:{h}");
                }
            }
            return Ok(if v.ok { EXIT_OK } else { EXIT_CHECK_FAILED });
        }
        AuditCommand::Export { from, to, format, out, who } => {
            let audit = Audit::connect(db)?;
            let user = sign_in(audit.store(), who, "audit export")?;
            user.require(&[Role::Compliance, Role::Admin], "audit export")?;
            let entries = audit.range(*from, *to)?;
            let mut rec = Record::new(&user.id, user.role.as_str(), "audit_exported");
            rec.detail = serde_json::json!({
                "from": from.map(crate::audit::stamp), "to": to.map(crate::audit::stamp),
                "format": format!("{format:?}").to_lowercase(), "records": entries.len(),
            });
            audit.append(&rec)?;
            let io = |p: &Path, source| crate::store::Error::Io { path: p.to_owned(), source };
            match out {
                Some(p) => {
                    let mut f = std::fs::File::create(p).map_err(|e| io(p, e))?;
                    crate::audit::export::write(&entries, *format, &mut f).map_err(|e| io(p, e))?;
                    f.flush().map_err(|e| io(p, e))?;
                    eprintln!("exported {} records to {}", entries.len(), p.display());
                }
                None => {
                    let mut so = std::io::stdout().lock();
                    // A closed pipe (`| head`) is not an error worth a non-zero exit.
                    let _ = crate::audit::export::write(&entries, *format, &mut so);
                }
            }
        }
        AuditCommand::Show { seq, who } => {
            let audit = Audit::connect(db)?;
            let user = sign_in(audit.store(), who, "audit show")?;
            user.require(&[Role::Compliance, Role::Admin], "audit show")?;
            let e = audit.get(*seq)?.ok_or_else(|| crate::audit::Error::BadInput {
                field: "SEQ",
                reason: format!("no audit record {seq}"),
            })?;
            audit.append(&Record::new(&user.id, user.role.as_str(), "audit_read").detail(serde_json::json!({"seq": seq})))?;
            outln!("{}", to_json(&e));
        }
    }
    Ok(EXIT_OK)
}

fn parse_head(s: &str) -> Result<(i64, String), String> {
    let (seq, hash) = s.split_once(':').ok_or("expected SEQ:HASH")?;
    let seq = seq.parse().map_err(|_| format!("{seq:?} is not a record number"))?;
    if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("HASH must be 64 hex digits".into());
    }
    Ok((seq, hash.to_ascii_lowercase()))
}

fn parse_time(s: &str, end_of_day: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?}: expected YYYY-MM-DD or RFC 3339"))?;
    let d = if end_of_day { d.succ_opt().ok_or("date out of range")? } else { d };
    Ok(d.and_hms_opt(0, 0, 0).ok_or("bad date")?.and_utc())
}

fn parse_from(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s, false)
}

fn parse_to(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s, true)
}
