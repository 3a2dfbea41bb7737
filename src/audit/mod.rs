//! [`Audit`]: the append-only, hash-chained audit trail in `onlabel.sqlite`.
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
//! - **One writer at a time.** An append reads the head and inserts inside one
//!   `BEGIN IMMEDIATE` transaction, so two processes cannot fork the chain.
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

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, OptionalExtension, Row, Transaction};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{self, Store};

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

/// A record as stored: the caller's [`Record`] plus its place and hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Position in the chain (1, 2, 3, …): the record's id (`audit_id`).
    pub seq: i64,
    /// When it was appended (UTC, microsecond).
    pub at: String,
    /// Who acted.
    pub actor: String,
    /// Their role.
    pub role: String,
    /// What happened.
    pub action: String,
    /// The user's text.
    pub input: Option<String>,
    /// Prompt `name@N`.
    pub prompt_version: Option<String>,
    /// Its SHA-256.
    pub prompt_sha256: Option<String>,
    /// Model file.
    pub model: Option<String>,
    /// Its SHA-256.
    pub model_sha256: Option<String>,
    /// Passage ids, as stored (JSON array text).
    pub passages_json: String,
    /// Guard flags, as stored (JSON text).
    pub flags_json: String,
    /// Output.
    pub output: Option<String>,
    /// Route.
    pub route: Option<String>,
    /// Case id.
    pub case_id: Option<String>,
    /// Timings, as stored (JSON text).
    pub timings_json: String,
    /// Detail, as stored (JSON text).
    pub detail_json: String,
    /// Hash of the previous record ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// This record's hash over [`canonical`].
    pub hash: String,
}

/// The bytes a record's hash is taken over: a JSON array of every hashed
/// field in a fixed order, strings exactly as stored (JSON columns are hashed
/// as their text, never re-serialised). Format `1` is the first element so the
/// layout can change later without ambiguity.
pub fn canonical(e: &Entry) -> Vec<u8> {
    let v = serde_json::json!([
        1,
        e.seq,
        e.at,
        e.actor,
        e.role,
        e.action,
        e.input,
        e.prompt_version,
        e.prompt_sha256,
        e.model,
        e.model_sha256,
        e.passages_json,
        e.flags_json,
        e.output,
        e.route,
        e.case_id,
        e.timings_json,
        e.detail_json,
        e.prev_hash,
    ]);
    v.to_string().into_bytes()
}

/// SHA-256 of [`canonical`], lower-case hex.
pub fn hash_of(e: &Entry) -> String {
    hex::encode(Sha256::digest(canonical(e)))
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

/// The audit log over an open [`Store`].
#[derive(Debug)]
pub struct Audit {
    store: Store,
}

impl Audit {
    /// Opens (creating and migrating if needed) `DATA_DIR/onlabel.sqlite`.
    pub fn open(data_dir: &Path) -> Result<Audit> {
        Ok(Audit { store: Store::open(data_dir)? })
    }

    /// Wraps an already open store.
    pub fn with_store(store: Store) -> Audit {
        Audit { store }
    }

    /// The store underneath (for callers that append inside their own transaction).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Appends one record, durably; returns its `seq` (the `audit_id`).
    pub fn append(&self, record: &Record) -> Result<i64> {
        Ok(append(&self.store, record)?)
    }

    /// All records with `from <= at < to` (either bound open), in chain order.
    pub fn range(&self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<Vec<Entry>> {
        let from = from.map(stamp).unwrap_or_default();
        let to = to.map(stamp).unwrap_or_else(|| "~".into()); // '~' sorts after every digit
        Ok(self.store.with_conn(|c| {
            let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM audit_log WHERE at >= ?1 AND at < ?2 ORDER BY pos"))?;
            let rows = st.query_map(params![from, to], entry)?;
            rows.collect()
        })?)
    }

    /// One record by its seq.
    pub fn get(&self, seq: i64) -> Result<Option<Entry>> {
        Ok(self.store.with_conn(|c| {
            c.query_row(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq = ?1 ORDER BY pos LIMIT 1"), [seq], entry)
                .optional()
        })?)
    }

    /// Walks the whole chain; see [`verify`].
    pub fn verify(&self, head: Option<(i64, &str)>) -> Result<Verification> {
        let rows: Vec<(i64, Entry)> = self.store.with_conn(|c| {
            let mut st = c.prepare(&format!("SELECT pos, {COLUMNS} FROM audit_log ORDER BY pos"))?;
            let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, entry_at(r, 1)?)))?;
            rows.collect()
        })?;
        Ok(verify(&rows, head))
    }
}

/// Appends one record to the log in `store`, in its own transaction; returns its seq.
pub fn append(store: &Store, record: &Record) -> Result<i64, store::Error> {
    let now = Utc::now();
    store.write(|tx| append_tx(tx, record, now))
}

/// Appends `record` inside the caller's transaction (so that a state change
/// and its audit record commit together). Returns the record's seq.
pub fn append_tx(tx: &Transaction<'_>, record: &Record, now: DateTime<Utc>) -> Result<i64, store::Error> {
    let path = PathBuf::from(tx.path().unwrap_or("onlabel.sqlite"));
    let sql = |e| store::Error::sqlite(&path, e);
    let last: Option<(i64, String)> = tx
        .query_row("SELECT seq, hash FROM audit_log ORDER BY pos DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(sql)?;
    let (seq, prev_hash) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let json = |v: &serde_json::Value, empty: &str| if v.is_null() { empty.to_string() } else { v.to_string() };
    let mut e = Entry {
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
    };
    e.hash = hash_of(&e);
    tx.execute(
        "INSERT INTO audit_log (pos, seq, at, actor, role, action, input, prompt_version, prompt_sha256, model,
             model_sha256, passages_json, flags_json, output, route, case_id, timings_json, detail_json, prev_hash, hash)
         VALUES ((SELECT coalesce(max(pos), 0) + 1 FROM audit_log), ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
             ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        params![
            e.seq,
            e.at,
            e.actor,
            e.role,
            e.action,
            e.input,
            e.prompt_version,
            e.prompt_sha256,
            e.model,
            e.model_sha256,
            e.passages_json,
            e.flags_json,
            e.output,
            e.route,
            e.case_id,
            e.timings_json,
            e.detail_json,
            e.prev_hash,
            e.hash
        ],
    )
    .map_err(sql)?;
    Ok(seq)
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
pub fn verify(rows: &[(i64, Entry)], head: Option<(i64, &str)>) -> Verification {
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
        if hash_of(e) != e.hash {
            return fail(checked, last, Tamper::Edited { seq: e.seq, pos });
        }
        if e.seq < expected {
            // A repeated number: the copy that the next record links to is genuine.
            let (first_pos, first) = rows[..i].iter().rev().find(|(_, r)| r.seq == e.seq).map_or((pos, e), |(p, r)| (*p, r));
            let linked = |h: &str| rows.iter().any(|(_, r)| r.seq == e.seq + 1 && r.prev_hash == h);
            let pos = if linked(&e.hash) && !linked(&first.hash) { first_pos } else { pos };
            return fail(checked, last, Tamper::Inserted { seq: e.seq, pos });
        }
        if e.seq > expected {
            let later = rows[i + 1..].iter().any(|(_, r)| r.seq == expected);
            let genuine = rows.iter().any(|(_, r)| r.seq == e.seq - 1 && r.hash == e.prev_hash)
                || (e.seq == 1 && e.prev_hash == GENESIS);
            let t = if later && genuine {
                Tamper::Reordered { expected, found: e.seq, pos }
            } else if later {
                Tamper::Inserted { seq: e.seq, pos }
            } else {
                Tamper::Deleted { first: expected, last: e.seq - 1 }
            };
            return fail(checked, last, t);
        }
        if e.prev_hash != prev {
            // Chained onto some other, existing record: a forged record slipped in. Pointing at a
            // hash that exists nowhere: the predecessor was rewritten (hash recomputed).
            let onto_other = rows.iter().any(|(_, r)| r.hash == e.prev_hash);
            let t = if onto_other { Tamper::Inserted { seq: e.seq, pos } } else { Tamper::BrokenLink { seq: e.seq, pos } };
            return fail(checked, last, t);
        }
        prev = e.hash.clone();
        last = Some((e.seq, e.hash.clone()));
        expected += 1;
    }
    if let Some((seq, hash)) = head {
        let found = rows.iter().find(|(_, r)| r.seq == seq).map(|(_, r)| r.hash.clone());
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

const COLUMNS: &str = "seq, at, actor, role, action, input, prompt_version, prompt_sha256, model, model_sha256, \
     passages_json, flags_json, output, route, case_id, timings_json, detail_json, prev_hash, hash";

fn entry(r: &Row<'_>) -> rusqlite::Result<Entry> {
    entry_at(r, 0)
}

fn entry_at(r: &Row<'_>, o: usize) -> rusqlite::Result<Entry> {
    Ok(Entry {
        seq: r.get(o)?,
        at: r.get(o + 1)?,
        actor: r.get(o + 2)?,
        role: r.get(o + 3)?,
        action: r.get(o + 4)?,
        input: r.get(o + 5)?,
        prompt_version: r.get(o + 6)?,
        prompt_sha256: r.get(o + 7)?,
        model: r.get(o + 8)?,
        model_sha256: r.get(o + 9)?,
        passages_json: r.get(o + 10)?,
        flags_json: r.get(o + 11)?,
        output: r.get(o + 12)?,
        route: r.get(o + 13)?,
        case_id: r.get(o + 14)?,
        timings_json: r.get(o + 15)?,
        detail_json: r.get(o + 16)?,
        prev_hash: r.get(o + 17)?,
        hash: r.get(o + 18)?,
    })
}

#[cfg(test)]
mod tests {
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
        a.store
            .with_conn(|c| {
                let mut st = c.prepare(&format!("SELECT pos, {COLUMNS} FROM audit_log ORDER BY pos"))?;
                let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, entry_at(r, 1)?)))?;
                rows.collect()
            })
            .unwrap()
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
        let e = a.store.with_conn(|c| c.execute("UPDATE audit_log SET input = 'x' WHERE seq = 1", [])).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        let e = a.store.with_conn(|c| c.execute("DELETE FROM audit_log WHERE seq = 1", [])).unwrap_err();
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
