//! [`PgAudit`]: the audit log in PostgreSQL (table `audit_log`, migration
//! `src/store/migrations/postgres/0001_audit_log.sql`), for several OnLabel
//! processes appending at once.
//!
//! # One ordered append
//!
//! An append is one transaction:
//!
//! 1. `SELECT pg_advisory_xact_lock(APPEND_LOCK)` — every writer, in every
//!    process, queues here; the lock is released by the commit;
//! 2. read the head (`seq`, `hash` of the last row by `pos`) — under READ
//!    COMMITTED each statement sees every transaction committed before it
//!    started, so the previous holder's row is there;
//! 3. insert `seq + 1` with `prev_hash` = the head's hash, its own hash over
//!    the canonical form, `pos` = the last `pos` + 1; commit.
//!
//! So the chain is one sequence with no gap (a failed append rolls back whole
//! and takes no number) and no fork (no two records link to the same
//! predecessor); the table's UNIQUE `seq` and `prev_hash` would turn a writer
//! that bypassed the lock into a failed insert rather than a fork. The cost
//! is that appends are serialised across the cluster — one short transaction
//! each (a lock, an index read, an insert, a commit); docs/scaling.md
//! compares that rate with transparency logs that batch.

use chrono::{DateTime, Utc};
use postgres::Transaction;

use super::{entry, hash_of, stamp, AuditLog, Chained, Entry, Record, Result, GENESIS};
use crate::store::pg::PgStore;
use crate::store::PgUrl;

/// The advisory lock key of the audit log's append (`pg_advisory_xact_lock`):
/// the ASCII bytes `ONLBaudt`, distinct from any other key OnLabel takes.
pub const APPEND_LOCK: i64 = 0x4F4E_4C42_6175_6474;

/// The table of the audit log.
const TABLE: &str = "audit_log";

/// The audit log over an open [`PgStore`].
#[derive(Debug)]
pub struct PgAudit {
    store: PgStore,
}

impl PgAudit {
    /// Connects to the database at `url` and migrates it.
    pub fn open(url: &PgUrl) -> Result<PgAudit> {
        Ok(PgAudit { store: PgStore::open(url)? })
    }

    /// Wraps an already open store.
    pub fn with_store(store: PgStore) -> PgAudit {
        PgAudit { store }
    }

    /// The store underneath.
    pub fn store(&self) -> &PgStore {
        &self.store
    }
}

impl AuditLog for PgAudit {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn append(&self, record: &Record) -> Result<i64> {
        let now = Utc::now();
        Ok(self.store.write(|tx| append_tx(tx, record, now).map_err(|e| self.store.error(e)))?)
    }

    fn range(&self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<Vec<Entry>> {
        let from = from.map(stamp).unwrap_or_default();
        let to = to.map(stamp).unwrap_or_else(|| "~".into()); // '~' sorts after every digit
        let sql = format!("SELECT {} FROM {TABLE} WHERE at >= $1 AND at < $2 ORDER BY pos", columns::<Entry>());
        Ok(self.store.with_client(|c| c.query(&sql, &[&from, &to])?.iter().map(|r| Entry::from_pg_row(r, 0)).collect())?)
    }

    fn get(&self, seq: i64) -> Result<Option<Entry>> {
        let sql = format!("SELECT {} FROM {TABLE} WHERE seq = $1 ORDER BY pos LIMIT 1", columns::<Entry>());
        Ok(self.store.with_client(|c| c.query_opt(&sql, &[&seq])?.map(|r| Entry::from_pg_row(&r, 0)).transpose())?)
    }

    fn rows(&self) -> Result<Vec<(i64, Entry)>> {
        let sql = format!("SELECT pos, {} FROM {TABLE} ORDER BY pos", columns::<Entry>());
        Ok(self.store.with_client(|c| c.query(&sql, &[])?.iter().map(|r| Ok((r.try_get(0)?, Entry::from_pg_row(r, 1)?))).collect())?)
    }
}

/// Appends `record` inside the caller's PostgreSQL transaction (so that a
/// state change and its audit record commit together, as [`super::append_tx`]
/// does in SQLite); takes the log's [`APPEND_LOCK`] until that transaction
/// ends. Returns the record's seq.
pub fn append_tx(tx: &mut Transaction<'_>, record: &Record, now: DateTime<Utc>) -> Result<i64, postgres::Error> {
    Ok(append_row(tx, TABLE, |seq, prev_hash| entry(record, now, seq, prev_hash))?.seq)
}

/// `R`'s stored columns as an SQL column list.
fn columns<R: Chained>() -> String {
    R::COLUMNS.join(", ")
}

/// The one ordered append (see the module doc) of the record that
/// `make(seq, prev_hash)` builds, to `table` (whose columns are `pos` and `R`'s).
fn append_row<R: Chained>(tx: &mut Transaction<'_>, table: &str, make: impl FnOnce(i64, String) -> R) -> Result<R, postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])?;
    let last = tx.query_opt(&format!("SELECT seq, hash FROM {table} ORDER BY pos DESC LIMIT 1"), &[])?;
    let (seq, prev_hash) = match last {
        Some(r) => (r.try_get::<_, i64>(0)? + 1, r.try_get::<_, String>(1)?),
        None => (1, GENESIS.to_string()),
    };
    let mut e = make(seq, prev_hash);
    e.set_hash(hash_of(&e));
    let placeholders: Vec<String> = (1..=R::COLUMNS.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {table} (pos, {}) VALUES ((SELECT coalesce(max(pos), 0) + 1 FROM {table}), {})",
        columns::<R>(),
        placeholders.join(", ")
    );
    tx.execute(&sql, e.pg_values().as_slice())?;
    Ok(e)
}

