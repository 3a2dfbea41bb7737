//! [`CaseStore`]: the durable queue of escalations to Pharmacovigilance (PV)
//! and Medical Information (MIR), with states, owners, an SLA clock and the
//! history of every change.
//!
//! - **Either backend, one implementation.** The queue lives in the store
//!   ([`crate::store::Store`]): the SQLite file or a PostgreSQL database
//!   shared by several replicas ([`CaseStore::connect`]); every statement is
//!   written once in the portable dialect of [`crate::store::sql`], every
//!   change is one [`Store::transaction`] (which takes the store's write
//!   lock on both), and the state tests run on both backends.
//! - **Durable acknowledgment.** [`CaseStore::open_case`] returns only after
//!   `COMMIT`; SQLite runs WAL with `synchronous=FULL` (see [`crate::store`]),
//!   so a case id that was handed back survives a crash or a power cut.
//! - **Ids** are `PV-2026-000001` / `MIR-2026-000001`: per kind, per UTC year of
//!   opening, allocated in the same transaction as the insert, never reused
//!   (cases are never deleted — a trigger refuses it).
//! - **States** `new → triaged → in_progress → closed`, one step at a time
//!   ([`CaseState`]); anything else is [`Error::InvalidTransition`]. Work
//!   (`in_progress`) needs an owner; closing needs a resolution.
//! - **Due time** ([`due`]): PV one business day, MIR two.
//! - **Reopening**: a closed case goes back to `in_progress` with a reason
//!   ([`CaseStore::reopen`]); its resolution moves into the history.
//! - **AE intake** ([`intake`]): a PV case carries the ICH E2D elements the
//!   rep's words did not give, saved by the reporting rep or Medical
//!   ([`CaseStore::save_intake`]) as append-only versions, with the
//!   minimum-criteria check and the day-0 clock.
//! - **History**: every change (open, assign, transition) appends a
//!   [`HistoryEntry`] — who, when, from-state, to-state, note — in the same
//!   transaction as the change.
//! - **Audited**: every change also appends a record to the hash-chained
//!   audit log ([`crate::audit::append_tx`]) in that same transaction —
//!   `case_opened`, `case_assigned`, `case_triaged`, `case_started`,
//!   `case_resolved`, with the actor, their role, the case id, and in
//!   `detail` the state before and after (and the owner); the note or
//!   resolution as typed is the record's `input`. `audit verify` covers them;
//!   `case_history` is the queue's own, unchained view.
//! - **People**: whoever changes a case (the actor) must be an enabled user
//!   with the medical or admin role ([`WORKERS`]), and an owner an enabled
//!   medical user ([`OWNERS`]); both are read from the users table inside the
//!   change's transaction, so the role on the audit record is the one the
//!   store held at that moment. Callers authenticate the actor first (the
//!   server's bearer token, the CLI's `--as` with `ONLABEL_TOKEN`); this
//!   module checks standing, not credentials. The reporter of a new case is
//!   recorded as the pipeline gives it (a rep who may not have signed in on
//!   the CLI; whether they did is on the output's own audit record, which
//!   carries the same case id).

pub mod due;
pub mod intake;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

pub use state::{CaseKind, CaseState};

use crate::audit::Record;
use crate::store::{self, Row, Sql, Store};
use crate::users::Role;

/// The roles that may change a case (triage, assign, start, resolve).
pub const WORKERS: &[Role] = &[Role::Medical, Role::Admin];

/// The roles a case owner may have.
pub const OWNERS: &[Role] = &[Role::Medical];

/// What can go wrong with cases.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store file could not be opened, is not a database, is damaged, or SQLite failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// No case has this id.
    #[error("no case {id}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The state machine does not allow this step.
    #[error("case {id} cannot go from {from} to {to}: {}", allowed_hint(*.from))]
    InvalidTransition {
        /// The case.
        id: String,
        /// Its current state.
        from: CaseState,
        /// The state asked for.
        to: CaseState,
    },
    /// Only an owned case can be worked.
    #[error("case {id} has no owner; assign it first (onlabel cases assign {id} --to OWNER --as USER)")]
    NoOwner {
        /// The case.
        id: String,
    },
    /// A closed case cannot be reassigned or changed.
    #[error("case {id} is closed")]
    Closed {
        /// The case.
        id: String,
    },
    /// The acting user may not change cases: unknown, disabled, or without
    /// a [`WORKERS`] role.
    #[error("permission denied: {actor} may not change case {id}: {reason}")]
    ActorNotAllowed {
        /// The case.
        id: String,
        /// Who tried.
        actor: String,
        /// Why not (no such user, disabled, or their role).
        reason: String,
    },
    /// The new owner is not an enabled medical user.
    #[error("cannot assign case {id} to {owner}: {reason}")]
    BadOwner {
        /// The case.
        id: String,
        /// The owner asked for.
        owner: String,
        /// Why not (no such user, disabled, or their role).
        reason: String,
    },
    /// A required field is empty, or a field is malformed.
    #[error("{field}: {reason}")]
    BadInput {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The AE intake belongs to Pharmacovigilance cases only.
    #[error("case {id} is a Medical Information case; an adverse-event intake belongs to a Pharmacovigilance (PV-…) case")]
    NotPharmacovigilance {
        /// The case.
        id: String,
    },
    /// The intake does not validate ([`intake::Intake::validate`]).
    #[error("the intake of case {id} is not valid: {invalid}")]
    BadIntake {
        /// The case.
        id: String,
        /// The field and what is wrong with it.
        invalid: intake::Invalid,
    },
    /// A stored row does not parse (written by something other than this module).
    #[error("{path}: case {id}: stored {field} {value:?} is not valid")]
    BadRow {
        /// The store file.
        path: PathBuf,
        /// The case.
        id: String,
        /// The column.
        field: &'static str,
        /// What was stored.
        value: String,
    },
}

fn allowed_hint(from: CaseState) -> String {
    match from.next() {
        Some(n) => format!("the next step from {from} is {n}"),
        None => "a closed case stays closed".into(),
    }
}

impl Error {
    /// A stable, machine-readable code for the CLI's and the API's JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Store(e) => e.code(),
            Error::NotFound { .. } => "case_not_found",
            Error::InvalidTransition { .. } => "invalid_transition",
            Error::NoOwner { .. } => "case_has_no_owner",
            Error::Closed { .. } => "case_closed",
            Error::ActorNotAllowed { .. } => "permission_denied",
            Error::BadOwner { .. } => "case_owner_invalid",
            Error::BadInput { .. } => "bad_input",
            Error::NotPharmacovigilance { .. } => "case_not_pv",
            Error::BadIntake { .. } => "bad_intake",
            Error::BadRow { .. } => "store_bad_row",
        }
    }

    /// True when the caller asked for something wrong (as opposed to the store failing).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. }
                | Error::InvalidTransition { .. }
                | Error::NoOwner { .. }
                | Error::Closed { .. }
                | Error::ActorNotAllowed { .. }
                | Error::BadOwner { .. }
                | Error::BadInput { .. }
                | Error::NotPharmacovigilance { .. }
                | Error::BadIntake { .. }
        )
    }

    /// True when the acting user may not do this (HTTP 403, exit 3); a
    /// subset of [`Error::is_user_error`].
    pub fn is_denied(&self) -> bool {
        matches!(self, Error::ActorNotAllowed { .. })
    }
}

/// Result with the cases [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the pipeline knows when it opens a case.
#[derive(Debug, Clone)]
pub struct NewCase {
    /// PV or MIR.
    pub kind: CaseKind,
    /// The product the rep was detailing, if any.
    pub product: Option<String>,
    /// The question or note, verbatim: PV needs the reporter's own words.
    pub question: String,
    /// The rep's user id (the reporter of record).
    pub reporter: String,
    /// The HCP the rep was talking to, if known.
    pub hcp: Option<String>,
    /// Patient identifiers as given (initials, age, sex) — one of the four minimum AE criteria.
    pub patient: Option<String>,
    /// The suspect product, when it differs from `product` or is named explicitly.
    pub suspect_product: Option<String>,
    /// The adverse event or the off-label topic, as detected.
    pub event: Option<String>,
    /// The guard's flags, as JSON (kept as evidence of why the case was opened).
    pub flags_json: String,
    /// When the case is opened (starts the SLA clock; picks the id's year).
    pub now: DateTime<Utc>,
}

/// A case as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    /// `PV-2026-000001` / `MIR-2026-000001`.
    pub id: String,
    /// PV or MIR.
    pub kind: CaseKind,
    /// Where it is in its life.
    pub state: CaseState,
    /// Who works it (PV / Medical user id); `None` until assigned.
    pub owner: Option<String>,
    /// The product being detailed.
    pub product: Option<String>,
    /// The question, verbatim.
    pub question: String,
    /// The rep who raised it.
    pub reporter: String,
    /// The HCP.
    pub hcp: Option<String>,
    /// Patient identifiers as given.
    pub patient: Option<String>,
    /// The suspect product.
    pub suspect_product: Option<String>,
    /// The event or topic.
    pub event: Option<String>,
    /// The guard's flags.
    pub flags: serde_json::Value,
    /// How it was closed.
    pub resolution: Option<String>,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The SLA deadline ([`due`]).
    pub due_at: DateTime<Utc>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
}

impl Case {
    /// Open and past its due time at `now`.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.state != CaseState::Closed && self.due_at < now
    }
}

/// One change to a case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// Who made the change (user id).
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
    /// `opened`, `assigned` or `transitioned`.
    pub action: String,
    /// The state before (`None` for `opened`).
    pub from_state: Option<CaseState>,
    /// The state after (equal to `from_state` for an assignment).
    pub to_state: CaseState,
    /// What was done or why (the owner for an assignment, the resolution for a close).
    pub note: Option<String>,
}

/// Which cases [`CaseStore::list`] returns (all fields optional; all given must match).
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only this kind.
    pub kind: Option<CaseKind>,
    /// Only this state.
    pub state: Option<CaseState>,
    /// Only cases not closed.
    pub open_only: bool,
    /// Only cases owned by this user.
    pub owner: Option<String>,
    /// Only open cases whose due time is before this instant.
    pub overdue_at: Option<DateTime<Utc>>,
    /// Only cases this user reported ("My reports").
    pub reporter: Option<String>,
    /// Only cases whose id, question, product or HCP contains this text (any case).
    pub q: Option<String>,
    /// The order (default: in order of opening).
    pub sort: CaseSort,
    /// Reverse the order.
    pub descending: bool,
    /// At most this many (the first in `sort` order).
    pub limit: Option<usize>,
}

/// The order [`CaseStore::list`] returns cases in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaseSort {
    /// In order of opening.
    #[default]
    Created,
    /// Soonest due first.
    Due,
    /// Least recently changed first.
    Updated,
}

impl std::str::FromStr for CaseSort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "created" | "opened" => Ok(CaseSort::Created),
            "due" => Ok(CaseSort::Due),
            "updated" => Ok(CaseSort::Updated),
            _ => Err(format!("{s:?} is not a case order: created, due or updated (prefix - to reverse)")),
        }
    }
}

/// Longest search text of [`CaseFilter::q`], characters.
pub const MAX_SEARCH_CHARS: usize = 200;

/// How many cases a filter matches, by state (the state filter and the limit ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// In state `new`.
    pub new: u64,
    /// In state `triaged`.
    pub triaged: u64,
    /// In state `in_progress`.
    pub in_progress: u64,
    /// In state `closed`.
    pub closed: u64,
    /// Open and past their due time.
    pub overdue: u64,
    /// All of them.
    pub total: u64,
}

/// One saved version of a case's AE intake.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredIntake {
    /// 1, 2, 3… per case.
    pub version: i64,
    /// When it was saved.
    pub at: DateTime<Utc>,
    /// Who saved it.
    pub actor: String,
    /// The values.
    pub intake: intake::Intake,
}

/// An audit record about a case (the case page links to it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRef {
    /// The record's number in the chain.
    pub seq: i64,
    /// When.
    pub at: String,
    /// Who.
    pub actor: String,
    /// `ask`, `case_opened`, `case_assigned`, …
    pub action: String,
}

/// A user a case may be assigned to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Owner {
    /// User id.
    pub id: String,
    /// Full name.
    pub name: String,
}

/// The case queue in the store (`DATA_DIR/onlabel.sqlite` or PostgreSQL).
#[derive(Debug)]
pub struct CaseStore {
    /// Shared so the server can hand the same connection to other modules.
    store: Arc<Store>,
}

const CASE_COLUMNS: &str = "id, kind, state, owner, product, question, reporter, hcp, patient, suspect_product, \
                            event, flags_json, resolution, created_at, updated_at, due_at, closed_at";

impl CaseStore {
    /// Opens (creating the directory and the file if needed) the store in
    /// `data_dir`: WAL, `synchronous=FULL`, busy timeout, migrations.
    pub fn open(data_dir: &Path) -> Result<CaseStore> {
        Ok(CaseStore { store: Arc::new(Store::open(data_dir)?) })
    }

    /// Opens (creating and migrating if needed) the store `db` names: the
    /// SQLite file or a PostgreSQL database shared by several replicas.
    pub fn connect(db: &store::Database) -> Result<CaseStore> {
        Ok(CaseStore { store: Arc::new(Store::connect(db)?) })
    }

    /// Uses an already open store (the server shares one with other modules).
    pub fn from_store(store: Arc<Store>) -> CaseStore {
        CaseStore { store }
    }

    /// The underlying store (integrity check, path, sharing).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Opens a case: allocates its id, computes its due time, records the
    /// `opened` history entry and the `case_opened` audit record (actor: the
    /// reporter; role: theirs in the users table, `unknown` when the reporter
    /// is not a user). Returns only after the commit is durable.
    pub fn open_case(&self, new: NewCase) -> Result<Case> {
        self.open_case_noted(new, None)
    }

    /// [`CaseStore::open_case`] with a note on its `opened` history entry
    /// (a Medical request confirmed by the rep: the HCP's consent to be
    /// contacted and the channel, `server::conversations`).
    pub fn open_case_noted(&self, new: NewCase, note: Option<&str>) -> Result<Case> {
        non_empty("question", &new.question)?;
        non_empty("reporter", &new.reporter)?;
        let flags: serde_json::Value = serde_json::from_str(&new.flags_json)
            .map_err(|e| Error::BadInput { field: "flags_json", reason: format!("not JSON: {e}") })?;
        let now = ts(new.now);
        let year = chrono::Datelike::year(&new.now);
        let due = due::due_at(new.kind, new.now);
        let id = self.store.transaction(|tx| -> Result<String> {
            // The write transaction holds the store's write lock (SQLite's
            // BEGIN IMMEDIATE, PostgreSQL's advisory lock): no other writer
            // of any replica takes the same number.
            let seq: i64 = tx.one(
                "INSERT INTO case_sequences (kind, year, last) VALUES (?1, ?2, 1)
                 ON CONFLICT (kind, year) DO UPDATE SET last = case_sequences.last + 1
                 RETURNING last",
                crate::vals![new.kind.as_str(), year],
            )?;
            let id = new.kind.case_id(year, seq);
            tx.execute(
                "INSERT INTO cases (id, kind, year, seq, state, owner, product, question, reporter, hcp, patient,
                                    suspect_product, event, flags_json, resolution, created_at, updated_at, due_at, closed_at)
                 VALUES (?1, ?2, ?3, ?4, 'new', NULL, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL, ?13, ?13, ?14, NULL)",
                crate::vals![
                    &id,
                    new.kind.as_str(),
                    year,
                    seq,
                    new.product.clone(),
                    &new.question,
                    &new.reporter,
                    new.hcp.clone(),
                    new.patient.clone(),
                    new.suspect_product.clone(),
                    new.event.clone(),
                    &new.flags_json,
                    &now,
                    ts(due),
                ],
            )?;
            record(tx, &id, &now, &new.reporter, "opened", None, CaseState::New, note)?;
            let reporter = standing(tx, new.reporter.trim())?;
            let role = reporter.as_ref().map_or("unknown", |s| s.role.as_str());
            let mut rec = Record::new(new.reporter.trim(), role, "case_opened");
            rec.case_id = Some(id.clone());
            rec.input = Some(new.question.clone());
            rec.detail = serde_json::json!({
                "kind": new.kind.as_str(), "to": CaseState::New.as_str(), "product": new.product,
                "due_at": ts(due), "reporter_is_user": reporter.is_some(),
            });
            crate::audit::append_tx(tx, &rec, Utc::now())?;
            Ok(id)
        })?;
        tracing::info!(case_id = %id, kind = new.kind.as_str(), "case opened");
        Ok(Case {
            id,
            kind: new.kind,
            state: CaseState::New,
            owner: None,
            product: new.product,
            question: new.question,
            reporter: new.reporter,
            hcp: new.hcp,
            patient: new.patient,
            suspect_product: new.suspect_product,
            event: new.event,
            flags,
            resolution: None,
            created_at: parse_ts(&now).unwrap_or(new.now),
            updated_at: parse_ts(&now).unwrap_or(new.now),
            // As stored (milliseconds), so the case returned is the one `get` reads back.
            due_at: parse_ts(&ts(due)).unwrap_or(due),
            closed_at: None,
        })
    }

    /// The case with this id (`pv-2026-000001` is accepted for `PV-2026-000001`).
    pub fn get(&self, id: &str) -> Result<Option<Case>> {
        let id = normalize_id(id);
        let raw = self.store.read(|c| case_row(c, &id))?;
        raw.map(|r| r.into_case(self.store.path())).transpose()
    }

    /// Cases matching `filter`, oldest first.
    pub fn list(&self, filter: &CaseFilter) -> Result<Vec<Case>> {
        let (conds, args) = conditions(filter, true)?;
        let mut sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE 1 = 1{conds}");
        let dir = if filter.descending { " DESC" } else { "" };
        // Cases with the same time come in the order they were opened: that
        // of their `opened` history entries, whose ids increase in commit
        // order (opening holds the store's write lock) on both backends —
        // SQLite's rowid, which this once used, has no PostgreSQL
        // counterpart. The index case_history_by_case answers it per row.
        let tie = format!("(SELECT min(h.id) FROM case_history h WHERE h.case_id = cases.id){dir}, id{dir}");
        sql.push_str(&match filter.sort {
            CaseSort::Created => format!(" ORDER BY created_at{dir}, {tie}"),
            CaseSort::Due => format!(" ORDER BY due_at{dir}, created_at{dir}, {tie}"),
            CaseSort::Updated => format!(" ORDER BY updated_at{dir}, {tie}"),
        });
        if let Some(n) = filter.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let rows = self.store.read(|c| c.query(&sql, &args))?;
        rows.iter().map(|r| RawCase::from_row(r)?.into_case(self.store.path())).collect()
    }

    /// How many cases `filter` matches in each state (its `state` and
    /// `limit` ignored, so a page can show every state's count), and how many
    /// of the open ones are past due at `now`.
    pub fn counts(&self, filter: &CaseFilter, now: DateTime<Utc>) -> Result<Counts> {
        let (conds, mut args) = conditions(filter, false)?;
        args.push(ts(now).into());
        let sql = format!(
            "SELECT state, count(*), CAST(coalesce(sum(CASE WHEN state <> 'closed' AND due_at < ?{} THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM cases WHERE 1 = 1{conds} GROUP BY state",
            args.len()
        );
        let rows = self.store.read(|c| c.query(&sql, &args))?;
        let mut out = Counts::default();
        for r in rows {
            let (state, n, late) = (r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?);
            let n = n.max(0) as u64;
            match state.as_str() {
                "new" => out.new = n,
                "triaged" => out.triaged = n,
                "in_progress" => out.in_progress = n,
                _ => out.closed = n,
            }
            out.total += n;
            out.overdue += late.max(0) as u64;
        }
        Ok(out)
    }

    /// Sets (or changes) the owner. Allowed in any state but `closed`; the
    /// owner must be an enabled user with an [`OWNERS`] role
    /// ([`Error::BadOwner`]), the actor an enabled [`WORKERS`] user.
    pub fn assign(&self, id: &str, owner: &str, actor: &str) -> Result<Case> {
        non_empty("owner", owner)?;
        non_empty("actor", actor)?;
        let owner = owner.trim();
        self.change(id, actor, |tx, case| {
            if case.state == CaseState::Closed {
                return Err(Error::Closed { id: case.id.clone() });
            }
            if let Some(reason) = refusal(standing(tx, owner)?.as_ref(), OWNERS) {
                return Err(Error::BadOwner { id: case.id.clone(), owner: owner.to_owned(), reason });
            }
            let note = match &case.owner {
                Some(prev) if prev == owner => format!("assigned to {owner} (unchanged)"),
                Some(prev) => format!("reassigned from {prev} to {owner}"),
                None => format!("assigned to {owner}"),
            };
            Ok(Change {
                action: "assigned",
                audit_action: "case_assigned",
                to: case.state,
                owner: Some(owner.to_owned()),
                resolution: None,
                note: Some(note),
                typed: None,
                reopen: false,
            })
        })
    }

    /// Moves the case one step along the state machine. Going to `in_progress`
    /// needs an owner; going to `closed` needs a note, which becomes the
    /// resolution. The actor must be an enabled [`WORKERS`] user.
    pub fn transition(&self, id: &str, to: CaseState, actor: &str, note: Option<&str>) -> Result<Case> {
        non_empty("actor", actor)?;
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        self.change(id, actor, |_, case| {
            if !case.state.can_go_to(to) {
                return Err(Error::InvalidTransition { id: case.id.clone(), from: case.state, to });
            }
            if to == CaseState::InProgress && case.owner.is_none() {
                return Err(Error::NoOwner { id: case.id.clone() });
            }
            let resolution = if to == CaseState::Closed {
                Some(
                    note.ok_or(Error::BadInput {
                        field: "resolution",
                        reason: "closing a case needs a resolution".into(),
                    })?
                    .to_owned(),
                )
            } else {
                None
            };
            Ok(Change {
                action: "transitioned",
                audit_action: match to {
                    CaseState::New => "case_reopened", // not reachable: nothing goes back to new
                    CaseState::Triaged => "case_triaged",
                    CaseState::InProgress => "case_started",
                    CaseState::Closed => "case_resolved",
                },
                to,
                owner: case.owner.clone(),
                resolution,
                note: note.map(str::to_owned),
                typed: note.map(str::to_owned),
                reopen: false,
            })
        })
    }

    /// Closes the case with a resolution (from `in_progress`).
    pub fn resolve(&self, id: &str, actor: &str, resolution: &str) -> Result<Case> {
        non_empty("resolution", resolution)?;
        self.transition(id, CaseState::Closed, actor, Some(resolution))
    }

    /// Reopens a closed case: back to `in_progress` with its owner, a reason
    /// required (the history entry's note and the `case_reopened` audit
    /// record's input). The actor must be an enabled [`WORKERS`] user.
    pub fn reopen(&self, id: &str, actor: &str, reason: &str) -> Result<Case> {
        non_empty("actor", actor)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::BadInput { field: "reason", reason: "reopening a case needs a reason (what changed since it was closed)".into() });
        }
        self.change(id, actor, |_, case| {
            let to = case.state.reopened().ok_or(Error::InvalidTransition { id: case.id.clone(), from: case.state, to: CaseState::InProgress })?;
            Ok(Change {
                action: "reopened",
                audit_action: "case_reopened",
                to,
                owner: case.owner.clone(),
                resolution: None,
                note: Some(match &case.resolution {
                    Some(r) => format!("{reason} (was closed: {r})"),
                    None => reason.to_owned(),
                }),
                typed: Some(reason.to_owned()),
                reopen: true,
            })
        })
    }

    /// Saves a new version of a PV case's AE intake (already validated, see
    /// [`intake::Intake::validate`]). The actor must be an enabled user who is
    /// the case's reporter, or an enabled [`WORKERS`] user; the case must be
    /// PV and not closed. The version row, an `intake` history entry naming
    /// the fields that changed, and a `case_intake` audit record (the values
    /// as the record's input) commit together; earlier versions stay.
    pub fn save_intake(&self, id: &str, actor: &str, new: &intake::Intake) -> Result<StoredIntake> {
        non_empty("actor", actor)?;
        let id = normalize_id(id);
        let actor = actor.trim();
        let path = self.store.path().to_owned();
        let at = Utc::now();
        let now = ts(at);
        let json = serde_json::to_string(new).map_err(|e| Error::BadInput { field: "intake", reason: e.to_string() })?;
        let version = self.store.transaction(|tx| -> Result<i64> {
            let case = case_row(tx, &id)?.ok_or_else(|| Error::NotFound { id: id.clone() })?.into_case(&path)?;
            let who = standing(tx, actor)?;
            let is_reporter = case.reporter.trim() == actor && who.as_ref().is_some_and(|w| !w.disabled);
            if !is_reporter {
                if let Some(reason) = refusal(who.as_ref(), WORKERS) {
                    return Err(Error::ActorNotAllowed {
                        id: id.clone(),
                        actor: actor.to_owned(),
                        reason: format!("{reason}; the intake is edited by the reporting rep ({}) or Medical", case.reporter),
                    });
                }
            }
            if case.kind != CaseKind::Pharmacovigilance {
                return Err(Error::NotPharmacovigilance { id: id.clone() });
            }
            if case.state == CaseState::Closed {
                return Err(Error::Closed { id: id.clone() });
            }
            let prev = tx.query_opt("SELECT version, intake_json FROM case_intake WHERE case_id = ?1 ORDER BY version DESC LIMIT 1", crate::vals![&id])?;
            let (version, before) = match prev {
                Some(r) => (r.get::<i64>(0)? + 1, parse_intake(&path, &id, &r.get::<String>(1)?)?),
                None => (1, intake::prefill(&case)),
            };
            let changed = new.changed_from(&before);
            tx.execute(
                "INSERT INTO case_intake (case_id, version, at, actor, intake_json) VALUES (?1, ?2, ?3, ?4, ?5)",
                crate::vals![&id, version, &now, actor, &json],
            )?;
            tx.execute("UPDATE cases SET updated_at = ?2 WHERE id = ?1", crate::vals![&id, &now])?;
            let note = format!(
                "intake v{version}{}",
                if changed.is_empty() { " (no change)".to_string() } else { format!(": {}", changed.join(", ")) }
            );
            record(tx, &id, &now, actor, "intake", Some(case.state), case.state, Some(note.as_str()))?;
            let role = who.map(|w| w.role).unwrap_or_else(|| "unknown".into());
            let mut rec = Record::new(actor, &role, "case_intake");
            rec.case_id = Some(id.clone());
            rec.input = Some(json.clone());
            rec.detail = serde_json::json!({
                "kind": case.kind.as_str(), "from": case.state.as_str(), "to": case.state.as_str(),
                "version": version, "changed": changed, "valid_case": intake::valid_case(new).valid,
            });
            crate::audit::append_tx(tx, &rec, at)?;
            Ok(version)
        })?;
        tracing::info!(case_id = %id, version, "case intake saved");
        Ok(StoredIntake { version, at: parse_ts(&now).unwrap_or(at), actor: actor.to_owned(), intake: new.clone() })
    }

    /// Every saved version of the case's intake, oldest first (empty: none saved yet).
    pub fn intake_versions(&self, id: &str) -> Result<Vec<StoredIntake>> {
        let id = normalize_id(id);
        let path = self.store.path().to_owned();
        let rows = self
            .store
            .read(|c| c.query("SELECT version, at, actor, intake_json FROM case_intake WHERE case_id = ?1 ORDER BY version", crate::vals![&id]))?;
        rows.iter()
            .map(|r| {
                let at: String = r.get(1)?;
                Ok(StoredIntake {
                    version: r.get(0)?,
                    at: parse_ts(&at).ok_or_else(|| Error::BadRow { path: path.clone(), id: id.clone(), field: "case_intake.at", value: at.clone() })?,
                    actor: r.get(2)?,
                    intake: parse_intake(&path, &id, &r.get::<String>(3)?)?,
                })
            })
            .collect()
    }

    /// The audit records that carry this case's id (the rep's ask, the
    /// opening, every change), in chain order.
    pub fn audit_refs(&self, id: &str) -> Result<Vec<AuditRef>> {
        let id = normalize_id(id);
        let rows = self.store.read(|c| c.query("SELECT seq, at, actor, action FROM audit_log WHERE case_id = ?1 ORDER BY pos", crate::vals![&id]))?;
        Ok(rows
            .iter()
            .map(|r| Ok(AuditRef { seq: r.get(0)?, at: r.get(1)?, actor: r.get(2)?, action: r.get(3)? }))
            .collect::<store::Result<Vec<_>>>()?)
    }

    /// The users a case may be assigned to: enabled users with an
    /// [`OWNERS`] role, by id.
    pub fn owners(&self) -> Result<Vec<Owner>> {
        let roles: Vec<store::Value> = OWNERS.iter().map(|r| r.as_str().into()).collect();
        let sql = format!(
            "SELECT id, name FROM users WHERE disabled_at IS NULL AND role IN ({}) ORDER BY id",
            (1..=roles.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
        );
        let rows = self.store.read(|c| c.query(&sql, &roles))?;
        Ok(rows.iter().map(|r| Ok(Owner { id: r.get(0)?, name: r.get(1)? })).collect::<store::Result<Vec<_>>>()?)
    }

    /// Every change to the case, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        let id = normalize_id(id);
        let path = self.store.path().to_owned();
        let rows = self.store.read(|c| -> store::Result<Option<Vec<Row>>> {
            if c.opt::<String>("SELECT id FROM cases WHERE id = ?1", crate::vals![&id])?.is_none() {
                return Ok(None);
            }
            c.query("SELECT actor, at, action, from_state, to_state, note FROM case_history WHERE case_id = ?1 ORDER BY id", crate::vals![&id])
                .map(Some)
        })?;
        let rows = rows.ok_or_else(|| Error::NotFound { id: id.clone() })?;
        let bad = |field: &'static str, value: &str| Error::BadRow {
            path: path.clone(),
            id: id.clone(),
            field,
            value: value.into(),
        };
        rows.iter()
            .map(|r| {
                let (at, from, to): (String, Option<String>, String) = (r.get(1)?, r.get(3)?, r.get(4)?);
                Ok(HistoryEntry {
                    actor: r.get(0)?,
                    at: parse_ts(&at).ok_or_else(|| bad("case_history.at", &at))?,
                    action: r.get(2)?,
                    from_state: from.map(|f| f.parse().map_err(|_| bad("case_history.from_state", &f))).transpose()?,
                    to_state: to.parse().map_err(|_| bad("case_history.to_state", &to))?,
                    note: r.get(5)?,
                })
            })
            .collect()
    }

    /// Checks that the actor may change cases, reads the case, lets `decide`
    /// validate and describe the change, writes the change, its history entry
    /// and its audit record — all in one write transaction (holding the
    /// store's write lock on either backend), so two people acting on the
    /// same case at once, through one replica or two, cannot both win, and
    /// no change exists without its audit record.
    fn change(&self, id: &str, actor: &str, decide: impl FnOnce(&mut dyn Sql, &Case) -> Result<Change>) -> Result<Case> {
        let id = normalize_id(id);
        let actor = actor.trim();
        let path = self.store.path().to_owned();
        let at = Utc::now();
        let now = ts(at);
        self.store.transaction(|tx| -> Result<()> {
            let case = case_row(tx, &id)?.ok_or_else(|| Error::NotFound { id: id.clone() })?.into_case(&path)?;
            let who = standing(tx, actor)?;
            if let Some(reason) = refusal(who.as_ref(), WORKERS) {
                return Err(Error::ActorNotAllowed { id: id.clone(), actor: actor.to_owned(), reason });
            }
            let role = who.map(|w| w.role).unwrap_or_default();
            let ch = decide(tx, &case)?;
            let closed_at = (ch.to == CaseState::Closed).then(|| now.clone());
            tx.execute(
                "UPDATE cases SET state = ?2, owner = ?3,
                                  resolution = CASE WHEN ?7 = 1 THEN NULL ELSE COALESCE(?4, resolution) END,
                                  closed_at = CASE WHEN ?7 = 1 THEN NULL ELSE COALESCE(?5, closed_at) END, updated_at = ?6
                 WHERE id = ?1",
                crate::vals![&id, ch.to.as_str(), ch.owner.clone(), ch.resolution.clone(), closed_at, &now, ch.reopen],
            )?;
            record(tx, &id, &now, actor, ch.action, Some(case.state), ch.to, ch.note.as_deref())?;
            let mut rec = Record::new(actor, &role, ch.audit_action);
            rec.case_id = Some(id.clone());
            rec.input = ch.typed.clone();
            rec.detail = serde_json::json!({
                "from": case.state.as_str(), "to": ch.to.as_str(), "owner": ch.owner,
                "previous_owner": case.owner, "kind": case.kind.as_str(),
            });
            crate::audit::append_tx(tx, &rec, at)?;
            Ok(())
        })?;
        tracing::info!(case_id = %id, actor, "case changed");
        self.get(&id)?.ok_or(Error::NotFound { id })
    }
}

/// What a change does (decided under the write lock).
struct Change {
    /// The history entry's action: `assigned` or `transitioned`.
    action: &'static str,
    /// The audit record's action: `case_assigned`, `case_triaged`, …
    audit_action: &'static str,
    to: CaseState,
    owner: Option<String>,
    resolution: Option<String>,
    /// The history entry's note.
    note: Option<String>,
    /// What the actor typed (note or resolution): the audit record's `input`.
    typed: Option<String>,
    /// A reopening: the resolution and the closing time are cleared (the
    /// resolution stays in the history entry of the close).
    reopen: bool,
}

/// A user as the users table holds them, read inside a case transaction.
struct Standing {
    /// The stored role name.
    role: String,
    /// Disabled users may neither act on nor own a case.
    disabled: bool,
}

/// The stored row of case `id` (already normalised), if any.
fn case_row(c: &mut dyn Sql, id: &str) -> Result<Option<RawCase>> {
    Ok(c.query_opt(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ?1"), crate::vals![id])?.map(|r| RawCase::from_row(&r)).transpose()?)
}

/// The standing of `user` (`None`: no such user), read in `tx` so that it is
/// the one in force when the change commits.
fn standing(tx: &mut dyn Sql, user: &str) -> Result<Option<Standing>> {
    let row = tx.query_opt("SELECT role, CASE WHEN disabled_at IS NULL THEN 0 ELSE 1 END FROM users WHERE id = ?1", crate::vals![user])?;
    Ok(row.map(|r| Ok::<_, store::Error>(Standing { role: r.get(0)?, disabled: r.get(1)? })).transpose()?)
}

/// Why a user with this standing may not take a part that needs one of
/// `roles`; `None` when they may.
fn refusal(found: Option<&Standing>, roles: &[Role]) -> Option<String> {
    let needs = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or ");
    match found {
        None => Some("there is no such user".into()),
        Some(s) if s.disabled => Some("the user is disabled".into()),
        Some(s) if !roles.iter().any(|r| r.as_str() == s.role) => {
            Some(format!("the user's role is {}; this needs role {needs}", s.role))
        }
        Some(_) => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    tx: &mut dyn Sql,
    id: &str,
    at: &str,
    actor: &str,
    action: &str,
    from: Option<CaseState>,
    to: CaseState,
    note: Option<&str>,
) -> store::Result<()> {
    tx.execute(
        "INSERT INTO case_history (case_id, at, actor, action, from_state, to_state, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        crate::vals![id, at, actor, action, from.map(CaseState::as_str), to.as_str(), note],
    )
    .map(|_| ())
}

fn non_empty(field: &'static str, v: &str) -> Result<()> {
    if v.trim().is_empty() {
        Err(Error::BadInput { field, reason: "must not be empty".into() })
    } else {
        Ok(())
    }
}

fn parse_intake(path: &Path, id: &str, json: &str) -> Result<intake::Intake> {
    serde_json::from_str(json).map_err(|_| Error::BadRow { path: path.to_owned(), id: id.to_owned(), field: "case_intake.intake_json", value: json.to_owned() })
}

fn normalize_id(id: &str) -> String {
    id.trim().to_ascii_uppercase()
}

/// The SQL conditions (` AND …`, numbered `?1…`) and arguments of `filter`;
/// its `state` only when `with_state`.
fn conditions(filter: &CaseFilter, with_state: bool) -> Result<(String, Vec<store::Value>)> {
    let mut sql = String::new();
    let mut args: Vec<store::Value> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, v: String| {
        args.push(v.into());
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(k) = filter.kind {
        arg(&mut sql, " AND kind = ?", k.as_str().into());
    }
    if let (Some(s), true) = (filter.state, with_state) {
        arg(&mut sql, " AND state = ?", s.as_str().into());
    }
    if filter.open_only {
        sql.push_str(" AND state <> 'closed'");
    }
    if let Some(o) = &filter.owner {
        arg(&mut sql, " AND owner = ?", o.clone());
    }
    if let Some(t) = filter.overdue_at {
        arg(&mut sql, " AND state <> 'closed' AND due_at < ?", ts(t));
    }
    if let Some(r) = &filter.reporter {
        arg(&mut sql, " AND reporter = ?", r.clone());
    }
    if let Some(q) = search_pattern(filter.q.as_deref())? {
        // Case-insensitive on both backends (SQLite's LIKE folds ASCII case,
        // PostgreSQL's does not): both sides lowered.
        arg(&mut sql, " AND (lower(id) LIKE lower(?) ESCAPE '\\'", q.clone());
        for col in ["question", "product", "hcp"] {
            arg(&mut sql, &format!(" OR lower({col}) LIKE lower(?) ESCAPE '\\'"), q.clone());
        }
        sql.push(')');
    }
    Ok((sql, args))
}

/// `q` as a LIKE pattern (`%q%`, with `%`, `_` and `\\` escaped); `None`
/// for no or blank text; refused beyond [`MAX_SEARCH_CHARS`].
fn search_pattern(q: Option<&str>) -> Result<Option<String>> {
    let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else { return Ok(None) };
    let n = q.chars().count();
    if n > MAX_SEARCH_CHARS {
        return Err(Error::BadInput { field: "q", reason: format!("{n} characters; a search is at most {MAX_SEARCH_CHARS}") });
    }
    let mut p = String::from("%");
    for ch in q.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    Ok(Some(p))
}

/// Fixed-width RFC 3339 UTC with milliseconds, so stored times sort as text.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// A row as the store returns it, before parsing enums and times.
struct RawCase {
    id: String,
    kind: String,
    state: String,
    owner: Option<String>,
    product: Option<String>,
    question: String,
    reporter: String,
    hcp: Option<String>,
    patient: Option<String>,
    suspect_product: Option<String>,
    event: Option<String>,
    flags_json: String,
    resolution: Option<String>,
    created_at: String,
    updated_at: String,
    due_at: String,
    closed_at: Option<String>,
}

impl RawCase {
    /// The columns of [`CASE_COLUMNS`], in order.
    fn from_row(r: &Row) -> store::Result<RawCase> {
        Ok(RawCase {
            id: r.get(0)?,
            kind: r.get(1)?,
            state: r.get(2)?,
            owner: r.get(3)?,
            product: r.get(4)?,
            question: r.get(5)?,
            reporter: r.get(6)?,
            hcp: r.get(7)?,
            patient: r.get(8)?,
            suspect_product: r.get(9)?,
            event: r.get(10)?,
            flags_json: r.get(11)?,
            resolution: r.get(12)?,
            created_at: r.get(13)?,
            updated_at: r.get(14)?,
            due_at: r.get(15)?,
            closed_at: r.get(16)?,
        })
    }

    fn into_case(self, path: &Path) -> Result<Case> {
        let id = self.id.clone();
        let bad = |field: &'static str, value: &str| Error::BadRow {
            path: path.to_owned(),
            id: id.clone(),
            field,
            value: value.into(),
        };
        let time = |field: &'static str, v: &str| parse_ts(v).ok_or_else(|| bad(field, v));
        Ok(Case {
            kind: self.kind.parse().map_err(|_| bad("kind", &self.kind))?,
            state: self.state.parse().map_err(|_| bad("state", &self.state))?,
            flags: serde_json::from_str(&self.flags_json).map_err(|_| bad("flags_json", &self.flags_json))?,
            created_at: time("created_at", &self.created_at)?,
            updated_at: time("updated_at", &self.updated_at)?,
            due_at: time("due_at", &self.due_at)?,
            closed_at: self.closed_at.as_deref().map(|v| time("closed_at", v)).transpose()?,
            id: self.id,
            owner: self.owner,
            product: self.product,
            question: self.question,
            reporter: self.reporter,
            hcp: self.hcp,
            patient: self.patient,
            suspect_product: self.suspect_product,
            event: self.event,
            resolution: self.resolution,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{each_backend, TestStore};
    use crate::store::{Backend, Database};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A case store on one backend, with what keeps it alive.
    struct Under {
        /// The store under test.
        s: CaseStore,
        /// `sqlite` or `postgres`, for assertion messages.
        who: &'static str,
        /// The SQLite store's directory (removed when dropped).
        _dir: tempfile::TempDir,
    }

    /// A case store on SQLite, then one on PostgreSQL (a fresh database
    /// `name`, unique per test): every state test runs its body on both.
    fn each(name: &str) -> Vec<Under> {
        each_backend(name)
            .into_iter()
            .map(|t| {
                let who = t.name();
                let TestStore { store, dir, .. } = t;
                Under { s: CaseStore::from_store(Arc::new(store)), who, _dir: dir }
            })
            .collect()
    }

    /// A second, separate connection to the same store (another process or
    /// replica would have its own).
    fn reopen(s: &Store) -> Store {
        match s.pg() {
            Some(p) => Store::connect(&Database::Postgres(p.url().clone())).unwrap(),
            None => Store::open(s.path().parent().unwrap()).unwrap(),
        }
    }

    /// Adds the people the tests act as: `root` (admin), then each `(id,
    /// role)` — rows of the users table, which is all this module reads.
    fn staff(s: &CaseStore, people: &[(&str, Role)]) {
        s.store()
            .transaction(|tx| -> store::Result<()> {
                for (id, role) in std::iter::once(&("root", Role::Admin)).chain(people) {
                    tx.execute(
                        "INSERT INTO users (id, name, role, token_hash, created_at, created_by) VALUES (?1, ?2, ?3, 'unused', ?4, 'test')",
                        crate::vals![*id, format!("User {id}"), role.as_str(), ts(Utc::now())],
                    )?;
                }
                Ok(())
            })
            .unwrap();
    }

    /// Disables `id` as the users module would.
    fn disable(s: &CaseStore, id: &str) {
        s.store()
            .transaction(|tx| tx.execute("UPDATE users SET disabled_at = ?2, disabled_by = 'root' WHERE id = ?1", crate::vals![id, ts(Utc::now())]))
            .unwrap();
    }

    /// Runs one statement in its own transaction; its error as text.
    fn raw(s: &CaseStore, sql: &str) -> Result<u64, String> {
        s.store().transaction(|tx| tx.execute(sql, &[])).map_err(|e| e.to_string())
    }

    /// The audit records of `case`, oldest first (read through a connection of their own).
    fn audited(s: &CaseStore, case: &str) -> Vec<crate::audit::Entry> {
        let audit = crate::audit::Audit::with_store(reopen(s.store()));
        audit.range(None, None).unwrap().into_iter().filter(|e| e.case_id.as_deref() == Some(case)).collect()
    }

    fn verifies(s: &CaseStore) -> bool {
        crate::audit::Audit::with_store(reopen(s.store())).verify(None).unwrap().ok
    }

    fn new_case(kind: CaseKind, now: &str) -> NewCase {
        NewCase {
            kind,
            product: Some("zentravia".into()),
            question: "My patient got a bad rash two weeks after starting it.  ".into(),
            reporter: "rep-7".into(),
            hcp: Some("Dr. Shah".into()),
            patient: Some("F, 54".into()),
            suspect_product: Some("zentravia".into()),
            event: Some("rash".into()),
            flags_json: r#"[{"kind":"adverse_event","evidence":"bad rash"}]"#.into(),
            now: at(now),
        }
    }

    #[test]
    fn ids_are_per_kind_and_per_year() {
        for Under { s, who, .. } in each("cases_ids") {
            let ids: Vec<String> = [
                (CaseKind::Pharmacovigilance, "2026-03-02T10:00:00Z"),
                (CaseKind::Pharmacovigilance, "2026-03-02T11:00:00Z"),
                (CaseKind::MedicalInformation, "2026-03-02T12:00:00Z"),
                (CaseKind::Pharmacovigilance, "2026-12-31T23:59:59Z"),
                (CaseKind::Pharmacovigilance, "2027-01-01T00:00:00Z"),
                (CaseKind::MedicalInformation, "2027-01-04T09:00:00Z"),
                (CaseKind::MedicalInformation, "2027-01-04T09:01:00Z"),
            ]
            .into_iter()
            .map(|(k, t)| s.open_case(new_case(k, t)).unwrap_or_else(|e| panic!("{who}: {e}")).id)
            .collect();
            assert_eq!(
                ids,
                [
                    "PV-2026-000001",
                    "PV-2026-000002",
                    "MIR-2026-000001",
                    "PV-2026-000003",
                    "PV-2027-000001",
                    "MIR-2027-000001",
                    "MIR-2027-000002"
                ],
                "{who}"
            );
        }
    }

    /// Ids are allocated under the store's write lock: writers on separate
    /// connections (threads of two processes or replicas) never get the same
    /// number, and none is skipped.
    #[test]
    fn ids_stay_unique_and_gapless_across_connections() {
        for Under { s, who, .. } in each("cases_ids_concurrent") {
            let other = CaseStore::from_store(Arc::new(reopen(s.store())));
            let mut ids: Vec<String> = std::thread::scope(|sc| {
                let handles: Vec<_> = (0..4)
                    .map(|i| {
                        let s = if i % 2 == 0 { &s } else { &other };
                        sc.spawn(move || (0..8).map(|_| s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T10:00:00Z")).unwrap().id).collect::<Vec<_>>())
                    })
                    .collect();
                handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
            });
            ids.sort();
            let want: Vec<String> = (1..=32).map(|n| format!("PV-2026-{n:06}")).collect();
            assert_eq!(ids, want, "{who}");
            assert!(verifies(&s), "{who}: one audit chain");
        }
    }

    #[test]
    fn open_case_stores_everything_verbatim_and_computes_due() {
        for Under { s, who, .. } in each("cases_open") {
            let c = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-20T10:00:00Z")).unwrap(); // Friday
            assert_eq!(c.due_at, at("2026-11-23T10:00:00Z"), "{who}");
            assert_eq!(c.state, CaseState::New, "{who}");
            let got = s.get(&c.id).unwrap().unwrap();
            assert_eq!(got, c, "{who}");
            assert_eq!(got.question, "My patient got a bad rash two weeks after starting it.  ", "{who}");
            assert_eq!(got.flags[0]["kind"], "adverse_event", "{who}");
            assert_eq!(s.get("pv-2026-000001").unwrap().unwrap().id, "PV-2026-000001", "{who}");
            assert!(s.get("PV-2026-999999").unwrap().is_none(), "{who}");
        }
    }

    #[test]
    fn bad_input_is_refused_before_writing() {
        for Under { s, who, .. } in each("cases_bad_input") {
            let mut n = new_case(CaseKind::Pharmacovigilance, "2026-11-20T10:00:00Z");
            n.flags_json = "{not json".into();
            assert!(matches!(s.open_case(n).unwrap_err(), Error::BadInput { field: "flags_json", .. }), "{who}");
            let mut n = new_case(CaseKind::Pharmacovigilance, "2026-11-20T10:00:00Z");
            n.question = "   ".into();
            assert!(matches!(s.open_case(n).unwrap_err(), Error::BadInput { field: "question", .. }), "{who}");
            // No id was burnt by the refused cases.
            let c = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-20T10:00:00Z")).unwrap();
            assert_eq!(c.id, "PV-2026-000001", "{who}");
        }
    }

    #[test]
    fn state_machine_valid_and_invalid_steps() {
        for Under { s, who, .. } in each("cases_state_machine") {
            staff(&s, &[("med-1", Role::Medical), ("med-2", Role::Medical), ("med-3", Role::Medical)]);
            let id = s.open_case(new_case(CaseKind::MedicalInformation, "2026-11-18T10:00:00Z")).unwrap().id;

            let e = s.resolve(&id, "med-1", "answered").unwrap_err();
            assert!(matches!(e, Error::InvalidTransition { from: CaseState::New, to: CaseState::Closed, .. }), "{who}: {e}");
            assert_eq!(e.to_string(), format!("case {id} cannot go from new to closed: the next step from new is triaged"), "{who}");
            assert!(matches!(s.transition(&id, CaseState::InProgress, "med-1", None).unwrap_err(), Error::InvalidTransition { .. }), "{who}");
            assert!(matches!(s.transition(&id, CaseState::New, "med-1", None).unwrap_err(), Error::InvalidTransition { .. }), "{who}");

            assert_eq!(s.transition(&id, CaseState::Triaged, "med-1", Some("off-label dosing question")).unwrap().state, CaseState::Triaged, "{who}");
            let e = s.transition(&id, CaseState::InProgress, "med-1", None).unwrap_err();
            assert!(matches!(e, Error::NoOwner { .. }), "{who}: {e}");
            assert_eq!(s.assign(&id, "med-2", "med-1").unwrap().owner.as_deref(), Some("med-2"), "{who}");
            assert_eq!(s.transition(&id, CaseState::InProgress, "med-2", None).unwrap().state, CaseState::InProgress, "{who}");
            assert!(
                matches!(s.transition(&id, CaseState::Closed, "med-2", None).unwrap_err(), Error::BadInput { field: "resolution", .. }),
                "{who}"
            );
            let closed = s.resolve(&id, "med-2", "Sent MI response letter ML-123").unwrap();
            assert_eq!(closed.state, CaseState::Closed, "{who}");
            assert_eq!(closed.resolution.as_deref(), Some("Sent MI response letter ML-123"), "{who}");
            assert!(closed.closed_at.is_some(), "{who}");
            assert!(!closed.is_overdue(at("2030-01-01T00:00:00Z")), "{who}");

            let e = s.resolve(&id, "med-2", "again").unwrap_err();
            assert_eq!(e.to_string(), format!("case {id} cannot go from closed to closed: a closed case stays closed"), "{who}");
            assert!(matches!(s.assign(&id, "med-3", "med-1").unwrap_err(), Error::Closed { .. }), "{who}");
            assert!(matches!(s.assign("MIR-2026-000099", "x", "y").unwrap_err(), Error::NotFound { .. }), "{who}");
        }
    }

    #[test]
    fn every_change_is_in_the_history() {
        for Under { s, who, .. } in each("cases_history") {
            staff(&s, &[("pv-lead", Role::Medical), ("pv-anna", Role::Medical), ("pv-ben", Role::Medical)]);
            let id = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T10:00:00Z")).unwrap().id;
            s.transition(&id, CaseState::Triaged, "pv-lead", Some("serious: hospitalisation")).unwrap();
            s.assign(&id, "pv-anna", "pv-lead").unwrap();
            s.assign(&id, "pv-ben", "pv-lead").unwrap();
            let _ = s.resolve(&id, "pv-ben", "too early").unwrap_err(); // refused: not recorded
            s.transition(&id, CaseState::InProgress, "pv-ben", None).unwrap();
            s.resolve(&id, "pv-ben", "Entered in safety database as 2026-US-0042").unwrap();

            let h = s.history(&id).unwrap();
            type Step<'a> = (&'a str, &'a str, Option<CaseState>, CaseState, Option<&'a str>);
            let got: Vec<Step<'_>> = h.iter().map(|e| (e.actor.as_str(), e.action.as_str(), e.from_state, e.to_state, e.note.as_deref())).collect();
            use CaseState::*;
            assert_eq!(
                got,
                vec![
                    ("rep-7", "opened", None, New, None),
                    ("pv-lead", "transitioned", Some(New), Triaged, Some("serious: hospitalisation")),
                    ("pv-lead", "assigned", Some(Triaged), Triaged, Some("assigned to pv-anna")),
                    ("pv-lead", "assigned", Some(Triaged), Triaged, Some("reassigned from pv-anna to pv-ben")),
                    ("pv-ben", "transitioned", Some(Triaged), InProgress, None),
                    ("pv-ben", "transitioned", Some(InProgress), Closed, Some("Entered in safety database as 2026-US-0042")),
                ],
                "{who}"
            );
            assert!(h.windows(2).all(|w| w[0].at <= w[1].at), "{who}");
            assert!(matches!(s.history("PV-2026-000404").unwrap_err(), Error::NotFound { .. }), "{who}");
            // History is append-only, cases are never deleted, even through raw SQL.
            let e = raw(&s, "DELETE FROM case_history").unwrap_err();
            assert!(e.contains("append-only"), "{who}: {e}");
            let e = raw(&s, "DELETE FROM cases").unwrap_err();
            assert!(e.contains("never deleted"), "{who}: {e}");
            assert_eq!(s.history(&id).unwrap().len(), 6, "{who}");
        }
    }

    #[test]
    fn list_filters() {
        for Under { s, who, .. } in each("cases_list_filters") {
            staff(&s, &[("pv-lead", Role::Medical), ("pv-anna", Role::Medical)]);
            let pv1 = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-16T10:00:00Z")).unwrap().id; // due Tue 17
            let mir = s.open_case(new_case(CaseKind::MedicalInformation, "2026-11-16T11:00:00Z")).unwrap().id; // due Wed 18 11:00
            let pv2 = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T10:00:00Z")).unwrap().id; // due Thu 19
            s.transition(&pv2, CaseState::Triaged, "pv-lead", None).unwrap();
            s.assign(&pv2, "pv-anna", "pv-lead").unwrap();
            let ids = |f: CaseFilter| s.list(&f).unwrap().into_iter().map(|c| c.id).collect::<Vec<_>>();
            assert_eq!(ids(CaseFilter::default()), [pv1.as_str(), mir.as_str(), pv2.as_str()], "{who}");
            assert_eq!(ids(CaseFilter { kind: Some(CaseKind::Pharmacovigilance), ..Default::default() }), [pv1.as_str(), pv2.as_str()], "{who}");
            assert_eq!(ids(CaseFilter { state: Some(CaseState::Triaged), ..Default::default() }), [pv2.as_str()], "{who}");
            assert_eq!(ids(CaseFilter { owner: Some("pv-anna".into()), ..Default::default() }), [pv2.as_str()], "{who}");
            assert_eq!(ids(CaseFilter { open_only: true, ..Default::default() }).len(), 3, "{who}");
            assert_eq!(ids(CaseFilter { overdue_at: Some(at("2026-11-18T11:30:00Z")), ..Default::default() }), [pv1.as_str(), mir.as_str()], "{who}");
            assert_eq!(ids(CaseFilter { overdue_at: Some(at("2026-11-17T10:30:00Z")), ..Default::default() }), [pv1.as_str()], "{who}");
            assert_eq!(ids(CaseFilter { limit: Some(1), ..Default::default() }), [pv1.as_str()], "{who}");
            assert_eq!(
                ids(CaseFilter { kind: Some(CaseKind::MedicalInformation), state: Some(CaseState::Closed), ..Default::default() }),
                Vec::<String>::new(),
                "{who}"
            );
        }
    }

    /// Cases with the same time are listed in the order they were opened
    /// (as SQLite's rowid gave), on both backends, either direction.
    #[test]
    fn cases_of_the_same_instant_list_in_the_order_opened() {
        for Under { s, who, .. } in each("cases_same_instant") {
            let t = "2026-11-18T10:00:00Z";
            let pv1 = s.open_case(new_case(CaseKind::Pharmacovigilance, t)).unwrap().id;
            let mir1 = s.open_case(new_case(CaseKind::MedicalInformation, t)).unwrap().id;
            let pv2 = s.open_case(new_case(CaseKind::Pharmacovigilance, t)).unwrap().id;
            let ids = |f: CaseFilter| s.list(&f).unwrap().into_iter().map(|c| c.id).collect::<Vec<_>>();
            let want = [pv1.clone(), mir1.clone(), pv2.clone()];
            for sort in [CaseSort::Created, CaseSort::Updated] {
                assert_eq!(ids(CaseFilter { sort, ..Default::default() }), want, "{who}: {sort:?}");
                let mut back = want.clone();
                back.reverse();
                assert_eq!(ids(CaseFilter { sort, descending: true, ..Default::default() }), back, "{who}: {sort:?} reversed");
            }
        }
    }

    #[test]
    fn issue17_2_every_case_change_is_an_audit_record_in_the_chain() {
        for Under { s, who, .. } in each("cases_audited") {
            staff(&s, &[("pv-lead", Role::Admin), ("pv-anna", Role::Medical), ("rep-7", Role::Rep)]);
            let id = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T10:00:00Z")).unwrap().id;
            s.transition(&id, CaseState::Triaged, "pv-lead", Some("serious: hospitalisation")).unwrap();
            s.assign(&id, "pv-anna", "pv-lead").unwrap();
            s.transition(&id, CaseState::InProgress, "pv-anna", None).unwrap();
            s.resolve(&id, "pv-anna", "Entered in safety database as 2026-US-0042").unwrap();
            let _ = s.resolve(&id, "pv-anna", "again").unwrap_err(); // refused: nothing recorded

            let got: Vec<(String, String, String, String, String, Option<String>)> = audited(&s, &id)
                .into_iter()
                .map(|e| {
                    let d: serde_json::Value = serde_json::from_str(&e.detail_json).unwrap();
                    let from = d["from"].as_str().unwrap_or("-").to_string();
                    (e.actor, e.role, e.action, from, d["to"].as_str().unwrap().to_string(), e.input)
                })
                .collect();
            let row = |a: &str, r: &str, act: &str, f: &str, t: &str, i: Option<&str>| {
                (a.to_string(), r.to_string(), act.to_string(), f.to_string(), t.to_string(), i.map(str::to_string))
            };
            assert_eq!(
                got,
                vec![
                    row("rep-7", "rep", "case_opened", "-", "new", Some("My patient got a bad rash two weeks after starting it.  ")),
                    row("pv-lead", "admin", "case_triaged", "new", "triaged", Some("serious: hospitalisation")),
                    row("pv-lead", "admin", "case_assigned", "triaged", "triaged", None),
                    row("pv-anna", "medical", "case_started", "triaged", "in_progress", None),
                    row("pv-anna", "medical", "case_resolved", "in_progress", "closed", Some("Entered in safety database as 2026-US-0042")),
                ],
                "{who}"
            );
            let assigned = &audited(&s, &id)[2];
            assert!(assigned.detail_json.contains("\"owner\":\"pv-anna\"") && assigned.detail_json.contains("\"previous_owner\":null"), "{who}");
            assert!(verifies(&s), "{who}");
            assert_eq!(s.audit_refs(&id).unwrap().iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), got.iter().map(|g| g.2.as_str()).collect::<Vec<_>>(), "{who}");
            // A reporter who is not a user is recorded as such.
            let mut n = new_case(CaseKind::MedicalInformation, "2026-11-18T11:00:00Z");
            n.reporter = "os:someone".into();
            let other = s.open_case(n).unwrap().id;
            let opened = &audited(&s, &other)[0];
            assert_eq!((opened.actor.as_str(), opened.role.as_str()), ("os:someone", "unknown"), "{who}");
            assert!(opened.detail_json.contains("\"reporter_is_user\":false"), "{who}: {}", opened.detail_json);
        }
    }

    #[test]
    fn issue17_2_tampering_with_a_case_record_fails_verify() {
        for Under { s, who, .. } in each("cases_tamper") {
            staff(&s, &[("pv-anna", Role::Medical)]);
            let id = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T10:00:00Z")).unwrap().id;
            s.transition(&id, CaseState::Triaged, "pv-anna", Some("non-serious")).unwrap();
            let seq = audited(&s, &id).last().unwrap().seq;
            let drop = match s.store().backend() {
                Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
                Backend::Postgres => "DROP TRIGGER audit_log_no_update ON audit_log",
            };
            s.store()
                .transaction(|c| -> store::Result<u64> {
                    c.batch(drop)?;
                    c.execute("UPDATE audit_log SET detail_json = replace(detail_json, 'triaged', 'closed') WHERE seq = ?1", crate::vals![seq])
                })
                .unwrap();
            let v = crate::audit::Audit::with_store(reopen(s.store())).verify(None).unwrap();
            assert_eq!(v.tamper.map(|t| t.first_bad()), Some(seq), "{who}: {:?}", v.head);
        }
    }

    #[test]
    fn issue17_2_a_change_and_its_audit_record_commit_together() {
        for Under { s, who, .. } in each("cases_commit_together") {
            staff(&s, &[("pv-anna", Role::Medical)]);
            let id = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T10:00:00Z")).unwrap().id;
            // The audit log refuses the append (as a full disk or a broken trigger would): the change is rolled back.
            let refuse = match s.store().backend() {
                Backend::Sqlite => "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'no audit today'); END;",
                Backend::Postgres => "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION onlabel_refuse('no audit today')",
            };
            s.store().transaction(|c| c.batch(refuse)).unwrap();
            let e = s.transition(&id, CaseState::Triaged, "pv-anna", None).unwrap_err();
            assert!(e.to_string().contains("no audit today"), "{who}: {e}");
            assert_eq!(s.get(&id).unwrap().unwrap().state, CaseState::New, "{who}");
            assert_eq!(s.history(&id).unwrap().len(), 1, "{who}: only `opened`");
            // Nor is a case opened without its record: no case, no history, no number used.
            let e = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T11:00:00Z")).unwrap_err();
            assert!(e.to_string().contains("no audit today"), "{who}: {e}");
            assert_eq!(s.list(&CaseFilter::default()).unwrap().len(), 1, "{who}");
            let allow = match s.store().backend() {
                Backend::Sqlite => "DROP TRIGGER refuse_audit",
                Backend::Postgres => "DROP TRIGGER refuse_audit ON audit_log",
            };
            s.store().transaction(|c| c.batch(allow)).unwrap();
            assert_eq!(s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T12:00:00Z")).unwrap().id, "PV-2026-000002", "{who}");
        }
    }

    #[test]
    fn issue17_1_only_enabled_medical_or_admin_users_change_cases() {
        for Under { s, who, .. } in each("cases_actors") {
            staff(&s, &[("med", Role::Medical), ("gone", Role::Medical), ("rex", Role::Rep), ("carol", Role::Compliance)]);
            disable(&s, "gone");
            let id = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T10:00:00Z")).unwrap().id;
            for (actor, why) in [
                ("nobody", "there is no such user"),
                ("gone", "the user is disabled"),
                ("rex", "the user's role is rep; this needs role medical or admin"),
                ("carol", "the user's role is compliance"),
            ] {
                let e = s.transition(&id, CaseState::Triaged, actor, None).unwrap_err();
                assert!(matches!(e, Error::ActorNotAllowed { .. }) && e.is_denied() && e.is_user_error(), "{who}: {actor}: {e}");
                assert_eq!(e.code(), "permission_denied", "{who}");
                assert!(e.to_string().contains(why), "{who}: {actor}: {e}");
            }
            assert_eq!(s.get(&id).unwrap().unwrap().state, CaseState::New, "{who}: nothing changed");
            assert_eq!(audited(&s, &id).len(), 1, "{who}: only case_opened");
            s.transition(&id, CaseState::Triaged, "root", None).unwrap(); // an admin may
            s.transition(&id, CaseState::Triaged, "med", None).unwrap_err(); // (already triaged)
        }
    }

    #[test]
    fn issue17_11_case_owners_must_be_enabled_medical_users() {
        for Under { s, who, .. } in each("cases_owners") {
            staff(&s, &[("med", Role::Medical), ("gone", Role::Medical), ("rex", Role::Rep)]);
            disable(&s, "gone");
            let id = s.open_case(new_case(CaseKind::MedicalInformation, "2026-11-18T10:00:00Z")).unwrap().id;
            for (owner, why) in [
                ("nobody", "there is no such user"),
                ("gone", "the user is disabled"),
                ("rex", "the user's role is rep; this needs role medical"),
                ("root", "the user's role is admin; this needs role medical"),
            ] {
                let e = s.assign(&id, owner, "med").unwrap_err();
                assert!(matches!(e, Error::BadOwner { .. }) && e.is_user_error() && !e.is_denied(), "{who}: {owner}: {e}");
                assert_eq!(e.code(), "case_owner_invalid", "{who}");
                assert_eq!(e.to_string(), format!("cannot assign case {id} to {owner}: {why}"), "{who}");
            }
            assert_eq!(s.get(&id).unwrap().unwrap().owner, None, "{who}");
            assert_eq!(s.assign(&id, " med ", "med").unwrap().owner.as_deref(), Some("med"), "{who}");
        }
    }

    #[test]
    fn issue20_5_a_closed_case_is_reopened_with_a_reason() {
        for Under { s, who, .. } in each("cases_reopen") {
            staff(&s, &[("mia", Role::Medical), ("rex", Role::Rep)]);
            let id = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T10:00:00Z")).unwrap().id;
            let e = s.reopen(&id, "mia", "follow-up").unwrap_err();
            assert!(matches!(e, Error::InvalidTransition { from: CaseState::New, to: CaseState::InProgress, .. }), "{who}: {e}");
            s.transition(&id, CaseState::Triaged, "mia", None).unwrap();
            s.assign(&id, "mia", "mia").unwrap();
            s.transition(&id, CaseState::InProgress, "mia", None).unwrap();
            s.resolve(&id, "mia", "E2B sent").unwrap();
            assert!(matches!(s.reopen(&id, "mia", "  ").unwrap_err(), Error::BadInput { field: "reason", .. }), "{who}");
            assert!(matches!(s.reopen(&id, "rex", "why not").unwrap_err(), Error::ActorNotAllowed { .. }), "{who}");
            let c = s.reopen(&id, "mia", "HCP sent the discharge letter").unwrap();
            assert_eq!((c.state, c.resolution.as_deref(), c.closed_at), (CaseState::InProgress, None, None), "{who}");
            let last = s.history(&id).unwrap().pop().unwrap();
            assert_eq!((last.action.as_str(), last.from_state, last.to_state), ("reopened", Some(CaseState::Closed), CaseState::InProgress), "{who}");
            assert_eq!(last.note.as_deref(), Some("HCP sent the discharge letter (was closed: E2B sent)"), "{who}");
            let rec = audited(&s, &id).pop().unwrap();
            assert_eq!((rec.action.as_str(), rec.input.as_deref()), ("case_reopened", Some("HCP sent the discharge letter")), "{who}");
            // It can be closed again.
            assert_eq!(s.resolve(&id, "mia", "E2B follow-up sent").unwrap().state, CaseState::Closed, "{who}");
        }
    }

    #[test]
    fn issue20_2_intake_versions_keep_every_earlier_value() {
        for Under { s, who, .. } in each("cases_intake") {
            staff(&s, &[("mia", Role::Medical), ("rep-7", Role::Rep), ("rita", Role::Rep), ("carol", Role::Compliance)]);
            let id = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T10:00:00Z")).unwrap().id;
            let mir = s.open_case(new_case(CaseKind::MedicalInformation, "2026-11-18T10:00:00Z")).unwrap().id;
            let mut i = intake::prefill(&s.get(&id).unwrap().unwrap());
            assert_eq!(i.reporter.name.as_deref(), Some("Dr. Shah"), "{who}");
            assert_eq!((i.suspect_product.as_deref(), i.event.description.as_deref()), (Some("zentravia"), Some("rash")), "{who}");
            assert!(s.intake_versions(&id).unwrap().is_empty(), "{who}");
            i.patient.identifier = Some("J.D.".into());
            let v1 = s.save_intake(&id, "rep-7", &i).unwrap();
            assert_eq!(v1.version, 1, "{who}");
            i.patient.age = Some(54);
            let v2 = s.save_intake(&id, "mia", &i).unwrap();
            assert_eq!(v2.version, 2, "{who}");
            for actor in ["rita", "carol", "nobody"] {
                let e = s.save_intake(&id, actor, &i).unwrap_err();
                assert!(matches!(e, Error::ActorNotAllowed { .. }), "{who}: {actor}: {e}");
            }
            assert!(matches!(s.save_intake(&mir, "mia", &i).unwrap_err(), Error::NotPharmacovigilance { .. }), "{who}");
            assert!(matches!(s.save_intake("PV-2026-000404", "mia", &i).unwrap_err(), Error::NotFound { .. }), "{who}");
            let versions = s.intake_versions(&id).unwrap();
            assert_eq!(
                versions.iter().map(|v| (v.version, v.actor.as_str(), v.intake.patient.age)).collect::<Vec<_>>(),
                [(1, "rep-7", None), (2, "mia", Some(54))],
                "{who}"
            );
            let notes: Vec<_> = s.history(&id).unwrap().into_iter().filter(|h| h.action == "intake").map(|h| h.note.unwrap()).collect();
            assert_eq!(notes, ["intake v1: patient.identifier", "intake v2: patient.age"], "{who}");
            let recs: Vec<_> = audited(&s, &id).into_iter().filter(|r| r.action == "case_intake").collect();
            assert_eq!(recs.len(), 2, "{who}");
            assert!(recs[1].input.as_deref().unwrap().contains("\"age\":54"), "{who}");
            let e = raw(&s, "UPDATE case_intake SET actor = 'x'").unwrap_err();
            assert!(e.contains("append-only"), "{who}: {e}");
            let e = raw(&s, "DELETE FROM case_history").unwrap_err();
            assert!(e.contains("append-only"), "{who}: {e}");
            assert!(verifies(&s), "{who}");
        }
    }

    #[test]
    fn issue20_5_search_sort_counts_and_owners() {
        for Under { s, who, .. } in each("cases_search") {
            staff(&s, &[("mia", Role::Medical), ("max", Role::Medical), ("gone", Role::Medical), ("rex", Role::Rep)]);
            disable(&s, "gone");
            let mut a = new_case(CaseKind::MedicalInformation, "2026-11-16T10:00:00Z"); // due Wed 18 10:00
            a.question = "Off-label use in 50%_of kids?".into();
            a.hcp = Some("Dr. Okafor".into());
            let a = s.open_case(a).unwrap().id;
            let mut b = new_case(CaseKind::Pharmacovigilance, "2026-11-17T09:00:00Z"); // due Wed 18 09:00
            b.reporter = "rex".into();
            b.product = Some("Testra".into());
            let b = s.open_case(b).unwrap().id;
            let c = s.open_case(new_case(CaseKind::Pharmacovigilance, "2026-11-18T08:00:00Z")).unwrap().id; // due Thu 19
            s.transition(&c, CaseState::Triaged, "mia", None).unwrap();
            let ids = |f: CaseFilter| s.list(&f).unwrap().into_iter().map(|c| c.id).collect::<Vec<_>>();
            assert_eq!(ids(CaseFilter { sort: CaseSort::Due, ..Default::default() }), [b.clone(), a.clone(), c.clone()], "{who}");
            assert_eq!(ids(CaseFilter { sort: CaseSort::Due, descending: true, ..Default::default() }), [c.clone(), a.clone(), b.clone()], "{who}");
            assert_eq!(ids(CaseFilter { sort: CaseSort::Updated, descending: true, limit: Some(1), ..Default::default() }), [c.clone()], "{who}");
            let q = |t: &str| ids(CaseFilter { q: Some(t.into()), ..Default::default() });
            assert_eq!(q("okafor"), [a.clone()], "{who}: case-insensitive");
            assert_eq!(q("OFF-LABEL"), [a.clone()], "{who}: case-insensitive");
            assert_eq!(q("TESTRA"), [b.clone()], "{who}");
            assert_eq!(q(&b.to_lowercase()), [b.clone()], "{who}");
            assert_eq!(q("50%_"), [a.clone()], "{who}: % and _ are literal");
            assert!(q("5%k").is_empty() && q("r_sh").is_empty(), "{who}: no wildcard search");
            assert!(q("\\").is_empty(), "{who}: a backslash is literal too");
            assert_eq!(q("   ").len(), 3, "{who}: a blank search is no search");
            assert!(matches!(s.list(&CaseFilter { q: Some("x".repeat(201)), ..Default::default() }).unwrap_err(), Error::BadInput { field: "q", .. }), "{who}");
            assert_eq!(ids(CaseFilter { reporter: Some("rex".into()), ..Default::default() }), [b.clone()], "{who}");
            let counts = s.counts(&CaseFilter { state: Some(CaseState::Closed), ..Default::default() }, at("2026-11-18T09:30:00Z")).unwrap();
            assert_eq!(counts, Counts { new: 2, triaged: 1, in_progress: 0, closed: 0, overdue: 1, total: 3 }, "{who}: the state filter is ignored; b is late");
            let counts = s.counts(&CaseFilter { kind: Some(CaseKind::Pharmacovigilance), ..Default::default() }, at("2026-12-01T00:00:00Z")).unwrap();
            assert_eq!((counts.total, counts.overdue), (2, 2), "{who}");
            let counts = s.counts(&CaseFilter { q: Some("nothing like this".into()), ..Default::default() }, at("2026-12-01T00:00:00Z")).unwrap();
            assert_eq!(counts, Counts::default(), "{who}: no case, all zero");
            assert_eq!(s.owners().unwrap().into_iter().map(|o| o.id).collect::<Vec<_>>(), ["max", "mia"], "{who}: enabled medical users only");
        }
    }

    #[test]
    fn issue20_migration_9_keeps_the_case_history_of_an_older_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = rusqlite::Connection::open(dir.path().join("old.sqlite")).unwrap();
        for m in crate::store::migrations::MIGRATIONS.iter().filter(|m| m.version <= 7) {
            c.execute_batch(m.sql).unwrap();
        }
        c.execute_batch(
            "INSERT INTO cases VALUES ('PV-2026-000001','pharmacovigilance',2026,1,'triaged',NULL,NULL,'q','rex',NULL,NULL,NULL,NULL,'[]',NULL,'2026-11-18T10:00:00.000Z','2026-11-18T10:00:00.000Z','2026-11-19T10:00:00.000Z',NULL);
             INSERT INTO case_history (case_id, at, actor, action, from_state, to_state, note) VALUES
               ('PV-2026-000001','2026-11-18T10:00:00.000Z','rex','opened',NULL,'new',NULL),
               ('PV-2026-000001','2026-11-18T11:00:00.000Z','mia','transitioned','new','triaged','serious');",
        )
        .unwrap();
        let m9 = crate::store::migrations::MIGRATIONS.iter().find(|m| m.version == 9).unwrap();
        c.execute_batch(m9.sql).unwrap();
        let rows: Vec<(i64, String, Option<String>)> = c
            .prepare("SELECT id, action, note FROM case_history ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, [(1, "opened".to_string(), None), (2, "transitioned".to_string(), Some("serious".to_string()))]);
        c.execute("INSERT INTO case_history (case_id, at, actor, action, to_state) VALUES ('PV-2026-000001','x','mia','reopened','in_progress')", []).unwrap();
        assert!(c.execute("INSERT INTO case_history (case_id, at, actor, action, to_state) VALUES ('PV-2026-000001','x','mia','deleted','new')", []).is_err());
        assert!(c.execute("DELETE FROM case_history", []).unwrap_err().to_string().contains("append-only"));
    }
}
