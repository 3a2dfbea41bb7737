//! [`SqliteAudit`]: the audit log in the embedded SQLite store
//! (`onlabel.sqlite`, table `audit_log`), the default backend.
//!
//! One writer at a time: an append reads the head and inserts inside one
//! `BEGIN IMMEDIATE` transaction ([`Store::write`]), which holds SQLite's
//! write lock, so two processes sharing the file cannot fork the chain.
//! Stores that change state and audit it together (cases, users, the
//! registry) call [`append_tx`] inside their own transaction.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{entry, hash_of, stamp, verify, AuditLog, Chained, Entry, Record, Result, Verification, GENESIS};
use crate::store::{self, Store};

/// The audit log over an open SQLite [`Store`].
#[derive(Debug)]
pub struct SqliteAudit {
    store: Store,
}

impl SqliteAudit {
    /// Opens (creating and migrating if needed) `DATA_DIR/onlabel.sqlite`.
    pub fn open(data_dir: &Path) -> Result<SqliteAudit> {
        Ok(SqliteAudit { store: Store::open(data_dir)? })
    }

    /// Wraps an already open store.
    pub fn with_store(store: Store) -> SqliteAudit {
        SqliteAudit { store }
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
            let mut st = c.prepare(&format!("SELECT {} FROM {TABLE} WHERE at >= ?1 AND at < ?2 ORDER BY pos", columns::<Entry>()))?;
            let rows = st.query_map(params![from, to], |r| Entry::from_row(r, 0))?;
            rows.collect()
        })?)
    }

    /// One record by its seq.
    pub fn get(&self, seq: i64) -> Result<Option<Entry>> {
        Ok(self.store.with_conn(|c| {
            let sql = format!("SELECT {} FROM {TABLE} WHERE seq = ?1 ORDER BY pos LIMIT 1", columns::<Entry>());
            c.query_row(&sql, [seq], |r| Entry::from_row(r, 0)).optional()
        })?)
    }

    /// Every record as `(pos, record)`, in physical order.
    pub fn rows(&self) -> Result<Vec<(i64, Entry)>> {
        Ok(self.store.with_conn(|c| rows_of(c, TABLE))?)
    }

    /// Walks the whole chain; see [`verify`].
    pub fn verify(&self, head: Option<(i64, &str)>) -> Result<Verification> {
        Ok(verify(&self.rows()?, head))
    }
}

impl AuditLog for SqliteAudit {
    fn backend(&self) -> &'static str {
        "sqlite"
    }
    fn append(&self, record: &Record) -> Result<i64> {
        SqliteAudit::append(self, record)
    }
    fn range(&self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<Vec<Entry>> {
        SqliteAudit::range(self, from, to)
    }
    fn get(&self, seq: i64) -> Result<Option<Entry>> {
        SqliteAudit::get(self, seq)
    }
    fn rows(&self) -> Result<Vec<(i64, Entry)>> {
        SqliteAudit::rows(self)
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
    let e = append_row(tx, TABLE, |seq, prev_hash| entry(record, now, seq, prev_hash)).map_err(|e| store::Error::sqlite(&path, e))?;
    Ok(e.seq)
}

/// The table of the audit log.
pub(super) const TABLE: &str = "audit_log";

/// `R`'s stored columns as an SQL column list.
fn columns<R: Chained>() -> String {
    R::COLUMNS.join(", ")
}

/// Appends the record that `make(seq, prev_hash)` builds to `table` (whose
/// columns are `pos` and `R`'s): reads the head, hashes, inserts — inside the
/// caller's transaction. Returns the record as stored.
pub(super) fn append_row<R: Chained>(tx: &Transaction<'_>, table: &str, make: impl FnOnce(i64, String) -> R) -> rusqlite::Result<R> {
    let last: Option<(i64, String)> = tx
        .query_row(&format!("SELECT seq, hash FROM {table} ORDER BY pos DESC LIMIT 1"), [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let mut e = make(seq, prev_hash);
    e.set_hash(hash_of(&e));
    let placeholders: Vec<String> = (1..=R::COLUMNS.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT INTO {table} (pos, {}) VALUES ((SELECT coalesce(max(pos), 0) + 1 FROM {table}), {})",
        columns::<R>(),
        placeholders.join(", ")
    );
    tx.execute(&sql, e.values().as_slice())?;
    Ok(e)
}

/// Every row of `table` as `(pos, record)`, in physical order.
pub(super) fn rows_of<R: Chained>(c: &Connection, table: &str) -> rusqlite::Result<Vec<(i64, R)>> {
    let mut st = c.prepare(&format!("SELECT pos, {} FROM {table} ORDER BY pos", columns::<R>()))?;
    let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, R::from_row(r, 1)?)))?;
    rows.collect()
}
