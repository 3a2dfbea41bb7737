//! [`Audit`]: the audit log in the store (table `audit_log`), on either
//! backend — the embedded SQLite file or PostgreSQL shared by several
//! replicas — through the one portable interface of [`crate::store::sql`].
//!
//! # One ordered append
//!
//! An append is one write transaction ([`Store::transaction`]), which
//! serialises every writer of the store in every process: SQLite's
//! `BEGIN IMMEDIATE` takes the file's write lock; on PostgreSQL the
//! transaction first takes the store's advisory lock
//! ([`crate::store::pg::WRITE_LOCK`]). Inside it:
//!
//! 1. read the head (`seq`, `hash` of the last row by `pos`) — under
//!    PostgreSQL's READ COMMITTED each statement sees every transaction
//!    committed before it started, so the previous holder's row is there;
//! 2. insert `seq + 1` with `prev_hash` = the head's hash, its own hash over
//!    the canonical form, `pos` = the last `pos` + 1; commit.
//!
//! So the chain is one sequence with no gap (a failed append rolls back whole
//! and takes no number) and no fork; on PostgreSQL the table's UNIQUE `seq`
//! and `prev_hash` would turn a writer that bypassed the lock into a failed
//! insert rather than a fork. Stores that change state and audit it together
//! (cases, users, the registry) call [`append_tx`] inside their own
//! transaction, so the state change and its record commit together. The cost
//! is that appends are serialised across the cluster — one short transaction
//! each; docs/scaling.md compares that rate with transparency logs that batch.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::{entry, hash_of, stamp, verify, Chained, Entry, Record, Result, Verification, GENESIS};
use crate::store::{self, Database, Sql, Store};

/// The audit log over an open [`Store`] (SQLite or PostgreSQL).
#[derive(Debug)]
pub struct Audit {
    store: Store,
}

impl Audit {
    /// Opens (creating and migrating if needed) `DATA_DIR/onlabel.sqlite`.
    pub fn open(data_dir: &Path) -> Result<Audit> {
        Ok(Audit { store: Store::open(data_dir)? })
    }

    /// Opens (creating and migrating if needed) the store `db` names.
    pub fn connect(db: &Database) -> Result<Audit> {
        Ok(Audit { store: Store::connect(db)? })
    }

    /// Wraps an already open store.
    pub fn with_store(store: Store) -> Audit {
        Audit { store }
    }

    /// The store underneath (for callers that append inside their own transaction).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.store.backend() {
            store::Backend::Sqlite => "sqlite",
            store::Backend::Postgres => "postgres",
        }
    }

    /// Appends one record, durably, after the current head; returns its `seq`
    /// (the `audit_id`). Appends from several threads or processes form one
    /// chain: each gets the next seq and links to the record before it.
    pub fn append(&self, record: &Record) -> Result<i64> {
        Ok(append(&self.store, record)?)
    }

    /// All records with `from <= at < to` (either bound open), in chain order.
    pub fn range(&self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<Vec<Entry>> {
        let from = from.map(stamp).unwrap_or_default();
        let to = to.map(stamp).unwrap_or_else(|| "~".into()); // '~' sorts after every digit
        let sql = format!("SELECT {} FROM {TABLE} WHERE at >= ?1 AND at < ?2 ORDER BY pos", columns::<Entry>());
        Ok(self.store.read(|c| c.query(&sql, crate::vals![from, to])?.iter().map(|r| Entry::from_sql(r, 0)).collect())?)
    }

    /// One record by its seq.
    pub fn get(&self, seq: i64) -> Result<Option<Entry>> {
        let sql = format!("SELECT {} FROM {TABLE} WHERE seq = ?1 ORDER BY pos LIMIT 1", columns::<Entry>());
        Ok(self.store.read(|c| c.query_opt(&sql, crate::vals![seq])?.map(|r| Entry::from_sql(&r, 0)).transpose())?)
    }

    /// Every record as `(pos, record)`, in physical order (what [`verify`] walks).
    pub fn rows(&self) -> Result<Vec<(i64, Entry)>> {
        Ok(self.store.read(|c| rows_of(c, TABLE))?)
    }

    /// Walks the whole chain; see [`verify`].
    pub fn verify(&self, head: Option<(i64, &str)>) -> Result<Verification> {
        Ok(verify(&self.rows()?, head))
    }
}

/// Appends one record to the log in `store`, in its own transaction; returns its seq.
pub fn append(store: &Store, record: &Record) -> Result<i64, store::Error> {
    let now = Utc::now();
    store.transaction(|tx| append_tx(tx, record, now))
}

/// Appends `record` inside the caller's write transaction (so that a state
/// change and its audit record commit together). Returns the record's seq.
pub fn append_tx(tx: &mut dyn Sql, record: &Record, now: DateTime<Utc>) -> Result<i64, store::Error> {
    Ok(append_row(tx, TABLE, |seq, prev_hash| entry(record, now, seq, prev_hash))?.seq)
}

/// The table of the audit log.
pub(super) const TABLE: &str = "audit_log";

/// `R`'s stored columns as an SQL column list.
fn columns<R: Chained>() -> String {
    R::COLUMNS.join(", ")
}

/// Appends the record that `make(seq, prev_hash)` builds to `table` (whose
/// columns are `pos` and `R`'s): reads the head, hashes, inserts — inside the
/// caller's write transaction. Returns the record as stored.
pub(super) fn append_row<R: Chained>(tx: &mut dyn Sql, table: &str, make: impl FnOnce(i64, String) -> R) -> Result<R, store::Error> {
    let last = tx.query_opt(&format!("SELECT seq, hash FROM {table} ORDER BY pos DESC LIMIT 1"), &[])?;
    let (seq, prev_hash) = match last {
        Some(r) => (r.get::<i64>(0)? + 1, r.get::<String>(1)?),
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
    tx.execute(&sql, &e.sql_values())?;
    Ok(e)
}

/// Every row of `table` as `(pos, record)`, in physical order.
pub(super) fn rows_of<R: Chained>(c: &mut dyn Sql, table: &str) -> Result<Vec<(i64, R)>, store::Error> {
    let rows = c.query(&format!("SELECT pos, {} FROM {table} ORDER BY pos", columns::<R>()), &[])?;
    rows.iter().map(|r| Ok((r.get::<i64>(0)?, R::from_sql(r, 1)?))).collect()
}

