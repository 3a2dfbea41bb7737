//! [`Audit`]: the append-only, hash-chained audit trail, in the store —
//! `onlabel.sqlite` (the default) or PostgreSQL (several replicas appending
//! at once), the same code on both ([`log`]). [`open`] gives the log of a
//! [`Database`].
//!
//! Invariants
//!
//! - **Append-only.** The application only inserts ([`Audit::append`],
//!   [`Audit::append_tx`]); triggers refuse `UPDATE` and `DELETE` on
//!   `audit_log`. Nothing in OnLabel prunes the log (see the README's
//!   *Retention* section).
//! - **Chained.** Record `seq` n holds `prev_hash` = the `hash` of record n−1
//!   ([`GENESIS`] for record 1) and its own `hash` = SHA-256 over
//!   [`canonical`] — a fixed-order JSON array of every stored column except
//!   `pos` and `hash`, strings exactly as stored. Changing any field, the
//!   order, or the set of records breaks either a record's own hash or a link.
//! - **One writer at a time.** An append reads the head and inserts under the
//!   backend's write lock — SQLite's `BEGIN IMMEDIATE`, PostgreSQL's advisory
//!   lock of the log — so writers in several processes (CLI commands,
//!   replicas) form one chain with no gap and no fork.
//!
//! [`verify`] walks the rows in physical order (`pos`) and names the first bad
//! record and how it is bad: [`Tamper::Edited`], [`Tamper::Deleted`],
//! [`Tamper::Reordered`], [`Tamper::Inserted`] or [`Tamper::BrokenLink`].
//!
//! What a chain cannot show on its own: removal of the *newest* records, or a
//! forger who rewrites every hash after an edit. Against both, keep the head
//! that `onlabel audit verify` prints somewhere else (a ticket, the daily
//! export's checksum) and pass it back with `--head SEQ:HASH`.

pub mod export;
pub mod log;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{self, Database};

pub use log::{append, append_tx, Audit};

/// Opens (creating and migrating if needed) the audit log of `db`.
pub fn open(db: &Database) -> Result<Audit> {
    Audit::connect(db)
}

/// The stored form of `record`, appended at `now` as record `seq` after the
/// record whose hash is `prev_hash` (its own `hash` still empty): the one
/// place that turns a caller's record into columns, for every backend.
pub(crate) fn entry(record: &Record, now: DateTime<Utc>, seq: i64, prev_hash: String) -> Entry {
    let json = |v: &serde_json::Value, empty: &str| if v.is_null() { empty.to_string() } else { v.to_string() };
    Entry {
        seq,
        at: stamp(now),
        actor: record.actor.clone(),
        role: record.role.clone(),
        action: record.action.clone(),
        input: record.input.clone(),
        prompt_version: record.prompt_version.clone(),
        prompt_sha256: record.prompt_sha256.clone(),
        model: record.model.clone(),
        model_sha256: record.model_sha256.clone(),
        passages_json: serde_json::Value::from(record.passages.clone()).to_string(),
        flags_json: json(&record.flags, "[]"),
        output: record.output.clone(),
        route: record.route.clone(),
        case_id: record.case_id.clone(),
        timings_json: json(&record.timings, "{}"),
        detail_json: json(&record.detail, "{}"),
        prev_hash,
        hash: String::new(),
    }
}

/// `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What can go wrong with the audit log (tampering is a verification
/// *finding*, [`Tamper`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store file could not be opened, is damaged, or SQLite failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A field of a new record is unusable.
    #[error("audit record {field}: {reason}")]
    BadInput {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// A stable, machine-readable code for JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Store(e) => e.code(),
            Error::BadInput { .. } => "bad_input",
        }
    }
}

/// Result with the audit [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One thing that happened, as the caller describes it. Every field but
/// `actor`, `role` and `action` is optional: a login failure has no model, an
/// answer has no signature.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Record {
    /// Who acted (user id as given to `--as`, or `anonymous`).
    pub actor: String,
    /// Their role at that moment (`unknown` when the login failed).
    pub role: String,
    /// What happened: `ask`, `email`, `summarize`, `guard`, `case_opened`,
    /// `prompt_proposed`, `prompt_approved`, `login_failed`, …
    pub action: String,
    /// The user's text, verbatim (question, topics, notes).
    pub input: Option<String>,
    /// The prompt version used, `name@N`.
    pub prompt_version: Option<String>,
    /// SHA-256 of that prompt version's content.
    pub prompt_sha256: Option<String>,
    /// The model file.
    pub model: Option<String>,
    /// SHA-256 of the model file.
    pub model_sha256: Option<String>,
    /// Ids of the passages retrieved (and shown to the model).
    pub passages: Vec<String>,
    /// The guard's flags (as the guard serialises them).
    pub flags: serde_json::Value,
    /// What was shown to the user.
    pub output: Option<String>,
    /// The route (`answer`, `medical`, `pharmacovigilance`, `refused`).
    pub route: Option<String>,
    /// The case opened or changed.
    pub case_id: Option<String>,
    /// Stage timings, ms.
    pub timings: serde_json::Value,
    /// Anything else the action needs on record (signature, reason, versions).
    pub detail: serde_json::Value,
}

impl Record {
    /// A record with the three required fields and nothing else.
    pub fn new(actor: &str, role: &str, action: &str) -> Record {
        Record { actor: actor.into(), role: role.into(), action: action.into(), ..Record::default() }
    }

    /// Sets `detail`.
    pub fn detail(mut self, detail: serde_json::Value) -> Record {
        self.detail = detail;
        self
    }
}

/// Declares a hash-chained record type once: the struct (every hashed field
/// in canonical order, then `hash`) and its [`Chained`] implementation — the
/// canonical bytes, the column list of the SQL, reading a row, the values of
/// an INSERT and the cells of a CSV export are all generated from the one
/// field list, so a field cannot be stored or exported without being hashed.
///
/// The fields must include `seq: i64` and `prev_hash: String`; each field's
/// type implements [`Field`]; the canonical array's order is the declaration's
/// order. Adding a field to [`Entry`] needs a migration adding its column (a
/// test compares the declaration with the table) and changes the canonical
/// bytes of every record, old ones included: records already written must
/// then keep being hashed with the layout they were written under (store the
/// layout per row and bump [`CANONICAL_FORMAT`]), or stores written before
/// the change stop verifying.
macro_rules! chained_record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// This record's hash: SHA-256 over its canonical form ([`Chained::canonical`]).
            pub hash: String,
        }

        impl Chained for $name {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field),)* "hash"];

            fn seq(&self) -> i64 {
                self.seq
            }

            fn prev_hash(&self) -> &str {
                &self.prev_hash
            }

            fn hash(&self) -> &str {
                &self.hash
            }

            fn set_hash(&mut self, hash: String) {
                self.hash = hash;
            }

            fn canonical(&self) -> Vec<u8> {
                let fields = vec![serde_json::Value::from(CANONICAL_FORMAT), $(Field::json(&self.$field)),*];
                serde_json::Value::Array(fields).to_string().into_bytes()
            }

            fn from_sql(row: &$crate::store::Row, offset: usize) -> Result<Self, $crate::store::Error> {
                let mut column = offset;
                let mut next = || {
                    column += 1;
                    column - 1
                };
                Ok($name { $($field: row.get(next())?,)* hash: row.get(next())? })
            }

            fn sql_values(&self) -> Vec<$crate::store::Value> {
                vec![$($crate::store::Value::from(self.$field.clone()),)* $crate::store::Value::from(self.hash.clone())]
            }

            fn cells(&self) -> Vec<String> {
                vec![$(Field::cell(&self.$field),)* self.hash.clone()]
            }
        }
    };
}

/// The first element of every canonical array: the layout's version, so that
/// the layout can change later without ambiguity.
pub const CANONICAL_FORMAT: i64 = 1;

/// A record type whose rows form a hash chain; implemented by
/// `chained_record!` from one field list (see [`Entry`]).
pub trait Chained: Sized {
    /// The stored columns in canonical order: every hashed field, then `hash`
    /// (the SQL column list, the CSV header and the JSONL keys).
    const COLUMNS: &'static [&'static str];
    /// Position in the chain (1, 2, 3, …).
    fn seq(&self) -> i64;
    /// The previous record's hash ([`GENESIS`] for the first).
    fn prev_hash(&self) -> &str;
    /// This record's stored hash.
    fn hash(&self) -> &str;
    /// Sets the stored hash (when appending).
    fn set_hash(&mut self, hash: String);
    /// The bytes the hash is taken over: a JSON array of [`CANONICAL_FORMAT`]
    /// and every hashed field in declaration order, strings exactly as stored
    /// (JSON columns are hashed as their text, never re-serialised).
    fn canonical(&self) -> Vec<u8>;
    /// Reads a record from `row` (either backend), its first column at
    /// `offset`, in [`Chained::COLUMNS`] order.
    fn from_sql(row: &store::Row, offset: usize) -> Result<Self, store::Error>;
    /// The values of an INSERT, in [`Chained::COLUMNS`] order.
    fn sql_values(&self) -> Vec<store::Value>;
    /// The cells of a CSV row, in [`Chained::COLUMNS`] order (before quoting).
    fn cells(&self) -> Vec<String>;
}

/// A column type of a chained record: how it is hashed and how it is
/// exported; it is stored as is in SQLite and in PostgreSQL (`BIGINT`, `TEXT`).
pub trait Field: Clone + Into<store::Value> + store::FromValue {
    /// Its value in the canonical array (a missing optional value is `null`).
    fn json(&self) -> serde_json::Value;
    /// Its CSV cell (a missing optional value is empty).
    fn cell(&self) -> String;
}

impl Field for i64 {
    fn json(&self) -> serde_json::Value {
        (*self).into()
    }
    fn cell(&self) -> String {
        self.to_string()
    }
}

impl Field for String {
    fn json(&self) -> serde_json::Value {
        self.as_str().into()
    }
    fn cell(&self) -> String {
        self.clone()
    }
}

impl Field for Option<String> {
    fn json(&self) -> serde_json::Value {
        self.as_deref().map_or(serde_json::Value::Null, Into::into)
    }
    fn cell(&self) -> String {
        self.clone().unwrap_or_default()
    }
}

chained_record! {
    /// A record as stored: the caller's [`Record`] plus its place and hashes.
    /// The one declaration of the audit log's hashed fields, in canonical order.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct Entry {
        /// Position in the chain (1, 2, 3, …): the record's id (`audit_id`).
        seq: i64,
        /// When it was appended (UTC, microsecond).
        at: String,
        /// Who acted.
        actor: String,
        /// Their role.
        role: String,
        /// What happened.
        action: String,
        /// The user's text.
        input: Option<String>,
        /// Prompt `name@N`.
        prompt_version: Option<String>,
        /// Its SHA-256.
        prompt_sha256: Option<String>,
        /// Model file.
        model: Option<String>,
        /// Its SHA-256.
        model_sha256: Option<String>,
        /// Passage ids, as stored (JSON array text).
        passages_json: String,
        /// Guard flags, as stored (JSON text).
        flags_json: String,
        /// Output.
        output: Option<String>,
        /// Route.
        route: Option<String>,
        /// Case id.
        case_id: Option<String>,
        /// Timings, as stored (JSON text).
        timings_json: String,
        /// Detail, as stored (JSON text).
        detail_json: String,
        /// Hash of the previous record ([`GENESIS`] for the first).
        prev_hash: String,
    }
}

/// The bytes a record's hash is taken over ([`Chained::canonical`]): for an
/// [`Entry`], `[1, seq, at, actor, …, detail_json, prev_hash]`.
pub fn canonical<R: Chained>(e: &R) -> Vec<u8> {
    e.canonical()
}

/// SHA-256 of [`canonical`], lower-case hex.
pub fn hash_of<R: Chained>(e: &R) -> String {
    hex::encode(Sha256::digest(e.canonical()))
}

/// How a record is bad; the first finding stops verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Tamper {
    /// The record's content no longer matches its own hash.
    Edited {
        /// The record.
        seq: i64,
        /// Its physical position.
        pos: i64,
    },
    /// Records are missing from the chain: `first..=last` were removed.
    Deleted {
        /// The first missing record.
        first: i64,
        /// The last missing record.
        last: i64,
    },
    /// A genuine record is out of place: `found` sits where `expected` belongs.
    Reordered {
        /// The record that should be here.
        expected: i64,
        /// The record that is here.
        found: i64,
        /// The physical position.
        pos: i64,
    },
    /// A record that was never appended by OnLabel is in the chain.
    Inserted {
        /// The number it claims.
        seq: i64,
        /// Its physical position.
        pos: i64,
    },
    /// The record is intact but does not follow its predecessor: the
    /// predecessor was rewritten (hash recomputed) or this one replaced.
    BrokenLink {
        /// The record whose `prev_hash` does not match.
        seq: i64,
        /// Its physical position.
        pos: i64,
    },
    /// The head given with `--head SEQ:HASH` is not in the log: newer records
    /// were removed (truncation) or the chain was rewritten.
    HeadMismatch {
        /// The head's seq.
        seq: i64,
        /// What the log holds at that seq (`None`: nothing).
        found: Option<String>,
    },
}

impl Tamper {
    /// The first bad record (for the head: the head's seq).
    pub fn first_bad(&self) -> i64 {
        match *self {
            Tamper::Edited { seq, .. }
            | Tamper::Inserted { seq, .. }
            | Tamper::BrokenLink { seq, .. }
            | Tamper::HeadMismatch { seq, .. } => seq,
            Tamper::Deleted { first, .. } => first,
            Tamper::Reordered { expected, .. } => expected,
        }
    }
}

impl Tamper {
    /// The finding in plain words, for the compliance page: what happened to
    /// which record, and how it shows.
    pub fn words(&self) -> String {
        match self {
            Tamper::Edited { seq, .. } => format!("Record {seq} was edited after it was written: its hash no longer matches its content."),
            Tamper::Deleted { first, last } if first == last => format!(
                "Record {first} was deleted: the chain goes from record {} straight to record {}.",
                first - 1,
                last + 1
            ),
            Tamper::Deleted { first, last } => format!(
                "Records {first} to {last} were deleted: the chain goes from record {} straight to record {}.",
                first - 1,
                last + 1
            ),
            Tamper::Reordered { expected, found, pos } => format!(
                "Records were moved: record {found} sits in row {pos}, where record {expected} belongs."
            ),
            Tamper::Inserted { seq, pos } => format!(
                "Record {seq} (row {pos}) was inserted: OnLabel never appended it to this chain, though it claims a place in it."
            ),
            Tamper::BrokenLink { seq, .. } => format!(
                "Record {seq} no longer follows record {}: record {} was rewritten with a new hash, or record {seq} was replaced.",
                seq - 1,
                seq - 1
            ),
            Tamper::HeadMismatch { seq, found: None } => format!(
                "The newest records were removed: record {seq}, the head noted earlier, is no longer in the log."
            ),
            Tamper::HeadMismatch { seq, .. } => format!(
                "The chain was rewritten: record {seq}, the head noted earlier, now has a different hash."
            ),
        }
    }

    /// The record to open to see the finding: the edited, inserted, moved or
    /// unlinked record; for a deletion, the last record before the gap; none
    /// when the noted head is gone.
    pub fn record(&self) -> Option<i64> {
        match *self {
            Tamper::Edited { seq, .. } | Tamper::Inserted { seq, .. } | Tamper::BrokenLink { seq, .. } => Some(seq),
            Tamper::Reordered { found, .. } => Some(found),
            Tamper::Deleted { first, .. } => (first > 1).then_some(first - 1),
            Tamper::HeadMismatch { seq, ref found } => found.is_some().then_some(seq),
        }
    }
}

impl std::fmt::Display for Tamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tamper::Edited { seq, pos } => {
                write!(f, "record {seq} (row {pos}) was edited: its content does not match its hash")
            }
            Tamper::Deleted { first, last } if first == last => write!(f, "record {first} was deleted"),
            Tamper::Deleted { first, last } => write!(f, "records {first}..{last} were deleted"),
            Tamper::Reordered { expected, found, pos } => write!(
                f,
                "records were reordered: record {found} sits at row {pos}, where record {expected} belongs"
            ),
            Tamper::Inserted { seq, pos } => {
                write!(f, "record {seq} (row {pos}) was inserted: it was not appended to this chain")
            }
            Tamper::BrokenLink { seq, pos } => write!(
                f,
                "record {seq} (row {pos}) does not follow record {}: one of them was replaced",
                seq - 1
            ),
            Tamper::HeadMismatch { seq, found: None } => {
                write!(f, "record {seq} (the recorded head) is missing: the log was truncated")
            }
            Tamper::HeadMismatch { seq, found: Some(h) } => {
                write!(f, "record {seq} (the recorded head) now has hash {h}: the chain was rewritten")
            }
        }
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// True when no tampering was found.
    pub ok: bool,
    /// Records checked before the first finding (all of them when `ok`).
    pub checked: i64,
    /// The last good record's seq and hash: note it down to detect truncation later.
    pub head: Option<(i64, String)>,
    /// The first finding.
    pub tamper: Option<Tamper>,
}

/// Checks rows given as `(pos, entry)` in `pos` order; stops at the first finding.
///
/// For each row: its own hash must match ([`Tamper::Edited`]); its seq must
/// be the next one — a higher seq is a gap ([`Tamper::Deleted`]) unless the
/// missing record turns up later ([`Tamper::Reordered`]); a seq already seen
/// is a duplicate ([`Tamper::Inserted`]: of the two copies, the one the next
/// record does not link to), as is a record out of sequence whose `prev_hash`
/// is not its predecessor's hash, or one chained onto an older record; a
/// record in sequence whose `prev_hash` exists nowhere is a
/// [`Tamper::BrokenLink`] (its predecessor was rewritten, hash recomputed).
pub fn verify<R: Chained>(rows: &[(i64, R)], head: Option<(i64, &str)>) -> Verification {
    let mut prev = GENESIS.to_string();
    let mut expected = 1i64;
    let mut last: Option<(i64, String)> = None;
    let fail = |checked: i64, last: Option<(i64, String)>, t: Tamper| Verification {
        ok: false,
        checked,
        head: last,
        tamper: Some(t),
    };
    for (i, (pos, e)) in rows.iter().enumerate() {
        let pos = *pos;
        let checked = expected - 1;
        if hash_of(e) != e.hash() {
            return fail(checked, last, Tamper::Edited { seq: e.seq(), pos });
        }
        if e.seq() < expected {
            // A repeated number: the copy that the next record links to is genuine.
            let (first_pos, first) = rows[..i].iter().rev().find(|(_, r)| r.seq() == e.seq()).map_or((pos, e), |(p, r)| (*p, r));
            let linked = |h: &str| rows.iter().any(|(_, r)| r.seq() == e.seq() + 1 && r.prev_hash() == h);
            let pos = if linked(e.hash()) && !linked(first.hash()) { first_pos } else { pos };
            return fail(checked, last, Tamper::Inserted { seq: e.seq(), pos });
        }
        if e.seq() > expected {
            let later = rows[i + 1..].iter().any(|(_, r)| r.seq() == expected);
            let genuine = rows.iter().any(|(_, r)| r.seq() == e.seq() - 1 && r.hash() == e.prev_hash())
                || (e.seq() == 1 && e.prev_hash() == GENESIS);
            let t = if later && genuine {
                Tamper::Reordered { expected, found: e.seq(), pos }
            } else if later {
                Tamper::Inserted { seq: e.seq(), pos }
            } else {
                Tamper::Deleted { first: expected, last: e.seq() - 1 }
            };
            return fail(checked, last, t);
        }
        if e.prev_hash() != prev {
            // Chained onto some other, existing record: a forged record slipped in. Pointing at a
            // hash that exists nowhere: the predecessor was rewritten (hash recomputed).
            let onto_other = rows.iter().any(|(_, r)| r.hash() == e.prev_hash());
            let t = if onto_other { Tamper::Inserted { seq: e.seq(), pos } } else { Tamper::BrokenLink { seq: e.seq(), pos } };
            return fail(checked, last, t);
        }
        prev = e.hash().to_string();
        last = Some((e.seq(), e.hash().to_string()));
        expected += 1;
    }
    if let Some((seq, hash)) = head {
        let found = rows.iter().find(|(_, r)| r.seq() == seq).map(|(_, r)| r.hash().to_string());
        if found.as_deref() != Some(hash) {
            return fail(expected - 1, last, Tamper::HeadMismatch { seq, found });
        }
    }
    Verification { ok: true, checked: expected - 1, head: last, tamper: None }
}

/// Fixed-width RFC 3339 UTC with microseconds: sorts as text.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use rusqlite::ToSql;

    use super::log::{append_row, rows_of, TABLE};
    use super::*;

    fn log(n: usize) -> (tempfile::TempDir, Audit) {
        let dir = tempfile::tempdir().unwrap();
        let a = Audit::open(dir.path()).unwrap();
        for i in 0..n {
            let mut r = Record::new("alice", "rep", "ask");
            r.input = Some(format!("question {i}"));
            assert_eq!(a.append(&r).unwrap(), i as i64 + 1);
        }
        (dir, a)
    }

    fn rows(a: &Audit) -> Vec<(i64, Entry)> {
        a.store().read(|c| rows_of(c, TABLE)).unwrap()
    }

    /// Rows written by the binary of commit ee0a536 (before the record was
    /// declared once): bootstrap, user added, failed sign-in with quotes and
    /// control characters in the user id, an extractive answer.
    const LEGACY_ROWS: [[Option<&str>; 18]; 4] = [
        [Some("2026-12-03T09:59:41.230480Z"), Some("bootstrap"), Some("admin"), Some("user_added"), None, None, None, None, None, Some("[]"), Some("[]"), None, None, None, Some("{}"), Some("{\"name\":\"Ada \\\"Admin\\\" Lovelace-Ü\",\"role\":\"admin\",\"user\":\"root\"}"), Some("0000000000000000000000000000000000000000000000000000000000000000"), Some("e090cf5ff6e8ba894c6cad06258b2e2dd5e8982adce067f16de0a7e901d217fa")],
        [Some("2026-12-03T09:59:41.483954Z"), Some("root"), Some("admin"), Some("user_added"), None, None, None, None, None, Some("[]"), Some("[]"), None, None, None, Some("{}"), Some("{\"name\":\"Rex <Rep> 🚀\",\"role\":\"rep\",\"user\":\"rex\"}"), Some("e090cf5ff6e8ba894c6cad06258b2e2dd5e8982adce067f16de0a7e901d217fa"), Some("3465d949d8038b92b24b09949c26a2ae00da9845a3ce7fe72aa06af86856a77f")],
        [Some("2026-12-03T09:59:46.322536Z"), Some("évil\"\n\\id\t=1"), Some("unknown"), Some("login_failed"), None, None, None, None, None, Some("[]"), Some("[]"), None, None, None, Some("{}"), Some("{\"command\":\"users rotate\",\"reason\":\"unknown user\"}"), Some("3465d949d8038b92b24b09949c26a2ae00da9845a3ce7fe72aa06af86856a77f"), Some("e9217218fe685f1569be4012ee947fe142342e0cf7fca4efb2c980544c4ec44e")],
        [Some("2026-12-03T09:59:51.119473Z"), Some("os:root"), Some("rep"), Some("ask"), Some("Can nursing moms take it? \"quoted\" — dash"), None, None, None, None, Some("[\"zentravia-pi#35\",\"zentravia-pi#51\",\"zentravia-pi#33\",\"zentravia-faq#12\",\"zentravia-pi#34\",\"zentravia-pi#32\",\"zentravia-pi#36\",\"zentravia-pi#37\",\"zentravia-pi#38\",\"zentravia-pi#21\",\"zentravia-pi#22\",\"zentravia-pi#52\",\"zentravia-pi#7\"]"), Some("[]"), Some("Embryo-fetal toxicity and lactation: Advise females of reproductive potential to use effective contraception during treatment and for 4 weeks after the last dose, and to inform their healthcare provider of a known or suspected pregnancy. [1]"), Some("answer"), None, Some("{\"first_sentence\":163.293567,\"generate\":0.286435,\"guard\":11.244814,\"retrieve\":151.759312}"), Some("{\"as_of\":\"2026-12-03\",\"authenticated\":false,\"citations\":[{\"label\":\"zentravia-pi §17\",\"mlr_number\":\"US-ZEN-0001\",\"n\":1,\"title\":\"PATIENT COUNSELING INFORMATION\"}],\"claimed_user\":\"rex\",\"guard_rules\":\"guard-rules@6 sha256:1500b466dc78a5bd report-elements@1 sha256:0ae90392ea19fff9d99a0b8ad64d32169db8e0d3da58f1edaec2531d55fa860f ae-lexicon sha256:6fed57eb4442a861a6af088a7ce22f3fed6fa9881a0e94e7f9c7d1d189e02891\",\"hcp\":null,\"index\":\"/tmp/legacy-index\",\"mode\":\"extractive\",\"product\":\"zentravia\",\"resolved_product\":\"zentravia\",\"retrieval\":\"bm25\",\"total_ms\":163.30471799999998}"), Some("e9217218fe685f1569be4012ee947fe142342e0cf7fca4efb2c980544c4ec44e"), Some("550f7b640e2c18f0ca0cdd43da305a36daf509baea74cbf1f94b1f22a4b9ff08")],
    ];

    /// The canonical bytes of the third legacy row, as the old `canonical` wrote them.
    const LEGACY_CANONICAL_3: &str = "[1,3,\"2026-12-03T09:59:46.322536Z\",\"évil\\\"\\n\\\\id\\t=1\",\"unknown\",\"login_failed\",null,null,null,null,null,\"[]\",\"[]\",null,null,null,\"{}\",\"{\\\"command\\\":\\\"users rotate\\\",\\\"reason\\\":\\\"unknown user\\\"}\",\"3465d949d8038b92b24b09949c26a2ae00da9845a3ce7fe72aa06af86856a77f\"]";

    #[test]
    fn issue16_4_a_chain_written_before_the_declaration_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let a = Audit::open(dir.path()).unwrap();
        // Written as the old binary wrote them: its own column list, not the declaration's.
        a.store()
            .write(|tx| -> Result<(), store::Error> {
                for (i, row) in LEGACY_ROWS.iter().enumerate() {
                    let seq = i as i64 + 1;
                    let mut values: Vec<&dyn ToSql> = vec![&seq, &seq];
                    values.extend(row.iter().map(|v| v as &dyn ToSql));
                    tx.execute(
                        "INSERT INTO audit_log (pos, seq, at, actor, role, action, input, prompt_version, prompt_sha256, model,
                             model_sha256, passages_json, flags_json, output, route, case_id, timings_json, detail_json, prev_hash, hash)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                        values.as_slice(),
                    )
                    .map_err(|e| store::Error::sqlite(std::path::Path::new("test"), e))?;
                }
                Ok(())
            })
            .unwrap();
        let v = a.verify(None).unwrap();
        assert!(v.ok && v.checked == 4, "{v:?}");
        let third = a.get(3).unwrap().unwrap();
        assert_eq!(String::from_utf8(canonical(&third)).unwrap(), LEGACY_CANONICAL_3);
        for (i, row) in LEGACY_ROWS.iter().enumerate() {
            let e = a.get(i as i64 + 1).unwrap().unwrap();
            assert_eq!(Some(hash_of(&e).as_str()), row[17], "record {}", i + 1);
        }
        // New records chain on, and the whole log still verifies.
        a.append(&Record::new("alice", "rep", "ask")).unwrap();
        let v = a.verify(None).unwrap();
        assert!(v.ok && v.checked == 5, "{v:?}");
    }

    #[test]
    fn issue16_4_the_declaration_matches_the_table() {
        let (_d, a) = log(0);
        let stored: Vec<String> = a
            .store()
            .with_conn(|c| {
                let mut st = c.prepare("SELECT name FROM pragma_table_info('audit_log') ORDER BY cid")?;
                let rows = st.query_map([], |r| r.get(0))?;
                rows.collect()
            })
            .unwrap();
        let declared: Vec<&str> = std::iter::once("pos").chain(Entry::COLUMNS.iter().copied()).collect();
        assert_eq!(stored, declared, "a declared field needs its column (a migration), and a column its declaration");
    }

    chained_record! {
        /// The audit record with one more field, `ticket`: what adding a field
        /// to [`Entry`]'s declaration does.
        #[derive(Debug, Clone)]
        pub struct Widened {
            /// Position.
            seq: i64,
            /// Who.
            actor: String,
            /// The added field.
            ticket: Option<String>,
            /// Link.
            prev_hash: String,
        }
    }

    #[test]
    fn issue16_4_a_field_added_to_the_declaration_is_covered_by_verify() {
        let (_d, a) = log(0);
        assert_eq!(Widened::COLUMNS, ["seq", "actor", "ticket", "prev_hash", "hash"]);
        let cols: Vec<String> =
            Widened::COLUMNS.iter().map(|c| format!("{c} {}", if *c == "seq" { "INTEGER" } else { "TEXT" })).collect();
        a.store()
            .with_conn(|c| c.execute_batch(&format!("CREATE TABLE widened (pos INTEGER PRIMARY KEY, {})", cols.join(", "))))
            .unwrap();
        for (actor, ticket) in [("alice", Some("T-1")), ("bob", None), ("carol", Some("T-3"))] {
            a.store()
                .transaction(|tx| {
                    append_row(tx, "widened", |seq, prev_hash| Widened {
                        seq,
                        actor: actor.into(),
                        ticket: ticket.map(str::to_string),
                        prev_hash,
                        hash: String::new(),
                    })
                })
                .unwrap();
        }
        let rows = |a: &Audit| a.store().read(|c| rows_of::<Widened>(c, "widened")).unwrap();
        let good = rows(&a);
        assert_eq!(good[0].1.ticket.as_deref(), Some("T-1"));
        assert!(verify(&good, None).ok);
        // The canonical form carries the new field: changing only it changes the hash.
        let mut edited = good[1].1.clone();
        edited.ticket = Some("T-2".into());
        assert_ne!(hash_of(&edited), good[1].1.hash);
        // Tampering with the new column in the table is found by verify.
        a.store().with_conn(|c| c.execute("UPDATE widened SET ticket = 'T-99' WHERE seq = 2", [])).unwrap();
        assert_eq!(verify(&rows(&a), None).tamper, Some(Tamper::Edited { seq: 2, pos: 2 }));
    }

    #[test]
    fn a_fresh_chain_verifies_and_links() {
        let (_d, a) = log(4);
        let v = a.verify(None).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.checked, 4);
        let r = rows(&a);
        assert_eq!(r[0].1.prev_hash, GENESIS);
        assert_eq!(r[2].1.prev_hash, r[1].1.hash);
        let head = v.head.unwrap();
        assert!(a.verify(Some((head.0, &head.1))).unwrap().ok);
        assert!(!a.verify(Some((9, &head.1))).unwrap().ok);
    }

    #[test]
    fn the_application_cannot_update_or_delete() {
        let (_d, a) = log(2);
        let e = a.store().with_conn(|c| c.execute("UPDATE audit_log SET input = 'x' WHERE seq = 1", [])).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        let e = a.store().with_conn(|c| c.execute("DELETE FROM audit_log WHERE seq = 1", [])).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
    }

    #[test]
    fn each_kind_of_tampering_is_named_in_memory() {
        let (_d, a) = log(5);
        let good = rows(&a);

        let mut r = good.clone();
        r[2].1.input = Some("changed".into());
        assert_eq!(verify(&r, None).tamper, Some(Tamper::Edited { seq: 3, pos: 3 }));

        let mut r = good.clone();
        r.remove(1);
        assert_eq!(verify(&r, None).tamper, Some(Tamper::Deleted { first: 2, last: 2 }));

        let mut r = good.clone();
        let (second, fourth) = (r[1].1.clone(), r[3].1.clone());
        r[1].1 = fourth;
        r[3].1 = second;
        assert_eq!(verify(&r, None).tamper, Some(Tamper::Reordered { expected: 2, found: 4, pos: 2 }));

        // A forged record with a valid hash of its own, claiming an existing number.
        let mut r = good.clone();
        let mut forged = r[2].1.clone();
        forged.input = Some("forged".into());
        forged.hash = hash_of(&forged);
        r.insert(3, (99, forged));
        assert_eq!(verify(&r, None).tamper, Some(Tamper::Inserted { seq: 3, pos: 99 }));

        // An edit with the hash recomputed: the next record's link breaks.
        let mut r = good.clone();
        r[1].1.input = Some("rewritten".into());
        r[1].1.hash = hash_of(&r[1].1);
        assert_eq!(verify(&r, None).tamper, Some(Tamper::BrokenLink { seq: 3, pos: 3 }));

        // Truncation is only visible against a recorded head.
        let mut r = good.clone();
        let (seq, hash) = (r[4].1.seq, r[4].1.hash.clone());
        r.pop();
        assert!(verify(&r, None).ok);
        assert_eq!(verify(&r, Some((seq, &hash))).tamper, Some(Tamper::HeadMismatch { seq: 5, found: None }));
    }

    #[test]
    fn every_finding_has_its_words_and_a_record_to_open() {
        let cases = [
            (Tamper::Edited { seq: 10, pos: 10 }, "Record 10 was edited after it was written: its hash no longer matches", Some(10)),
            (Tamper::Deleted { first: 4, last: 4 }, "Record 4 was deleted: the chain goes from record 3 straight to record 5", Some(3)),
            (Tamper::Deleted { first: 4, last: 6 }, "Records 4 to 6 were deleted", Some(3)),
            (Tamper::Reordered { expected: 2, found: 4, pos: 2 }, "record 4 sits in row 2, where record 2 belongs", Some(4)),
            (Tamper::Inserted { seq: 3, pos: 99 }, "Record 3 (row 99) was inserted: OnLabel never appended it", Some(3)),
            (Tamper::BrokenLink { seq: 3, pos: 3 }, "Record 3 no longer follows record 2: record 2 was rewritten", Some(3)),
            (Tamper::HeadMismatch { seq: 5, found: None }, "record 5, the head noted earlier, is no longer in the log", None),
            (Tamper::HeadMismatch { seq: 5, found: Some("ab".into()) }, "The chain was rewritten: record 5", Some(5)),
        ];
        for (t, words, record) in cases {
            assert!(t.words().contains(words), "{t:?}: {}", t.words());
            assert!(!t.words().contains('{'), "no JSON in the words: {}", t.words());
            assert_eq!(t.record(), record, "{t:?}");
        }
        assert_eq!(Tamper::Deleted { first: 1, last: 2 }.record(), None, "nothing before the first record");
    }

    #[test]
    fn canonical_form_covers_every_field() {
        let (_d, a) = log(1);
        let e = rows(&a).remove(0).1;
        let base = hash_of(&e);
        let mut variants = Vec::new();
        let mut v = e.clone();
        v.at.push('x');
        variants.push(v);
        let mut v = e.clone();
        v.role = "admin".into();
        variants.push(v);
        let mut v = e.clone();
        v.output = Some(String::new());
        variants.push(v);
        let mut v = e.clone();
        v.detail_json = "{ }".into();
        variants.push(v);
        let mut v = e.clone();
        v.seq = 2;
        variants.push(v);
        for v in variants {
            assert_ne!(hash_of(&v), base, "{v:?}");
        }
    }
}
