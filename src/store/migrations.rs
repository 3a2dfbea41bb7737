//! [`MIGRATIONS`]: the schema of `onlabel.sqlite`, as an append-only list.
//!
//! # Adding tables (prompts, audit, users, …)
//!
//! 1. write `src/store/migrations/NNNN_name.sql` (the next number, 4 digits);
//! 2. append one [`Migration`] to [`MIGRATIONS`] with `version` = NNNN;
//! 3. never edit or reorder a migration that has shipped — a deployed file
//!    has already run it; fix forward with a new one.
//!
//! The version applied last is kept in `PRAGMA user_version` (what SQLite
//! tools show and what [`super::Store::schema_version`] reads) and each
//! applied migration is recorded in `schema_migrations` with its time. All
//! pending migrations run in one `BEGIN IMMEDIATE` transaction: a crash or an
//! error leaves the file at its previous version, and of two processes opening
//! a fresh file at once, the second waits and then finds nothing to do.
//!
//! `rusqlite_migration` (which does the same with `user_version`) would be the
//! crate to use, but its latest release (2.6) depends on rusqlite 0.40, which
//! cannot coexist with our pinned rusqlite 0.41 (both link `sqlite3`).
//!
//! # PostgreSQL
//!
//! The PostgreSQL schema is its own list, [`PG_MIGRATIONS`], with its files in
//! `src/store/migrations/postgres/NNNN_name.sql` and the same rules (append
//! only, versions 1, 2, 3, …). Its numbers are not SQLite's: a store moves to
//! PostgreSQL table by table (issue 22), so each list grows on its own.
//! [`apply_pg`] records each applied migration in `onlabel_migrations` (not
//! `schema_migrations`, a name other frameworks use in shared databases) and
//! runs all pending ones in one transaction under an advisory lock
//! ([`PG_MIGRATION_LOCK`]): PostgreSQL's DDL is transactional, so a failure
//! leaves the database at its previous version, and of two processes opening a
//! fresh database at once the second waits and then finds nothing to do.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::{Error, Result};

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, 3, … with no gaps; becomes `PRAGMA user_version` once applied.
    pub version: i64,
    /// Short name, recorded in `schema_migrations` for people reading the file.
    pub name: &'static str,
    /// The statements (run with `execute_batch`, inside the migration transaction).
    pub sql: &'static str,
}

/// Every migration, oldest first. Append only.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "cases", sql: include_str!("migrations/0001_cases.sql") },
    Migration { version: 2, name: "users", sql: include_str!("migrations/0002_users.sql") },
    Migration { version: 3, name: "prompt_registry", sql: include_str!("migrations/0003_prompt_registry.sql") },
    Migration { version: 4, name: "audit_log", sql: include_str!("migrations/0004_audit_log.sql") },
    Migration { version: 5, name: "token_lookup", sql: include_str!("migrations/0005_token_lookup.sql") },
    Migration { version: 6, name: "sign_in_throttle", sql: include_str!("migrations/0006_sign_in_throttle.sql") },
    Migration { version: 7, name: "sign_in_failure_reason", sql: include_str!("migrations/0007_sign_in_failure_reason.sql") },
    Migration { version: 8, name: "conversations", sql: include_str!("migrations/0008_conversations.sql") },
    Migration { version: 9, name: "case_intake", sql: include_str!("migrations/0009_case_intake.sql") },
    Migration { version: 10, name: "eval_runs", sql: include_str!("migrations/0010_eval_runs.sql") },
    Migration { version: 11, name: "sessions", sql: include_str!("migrations/0011_sessions.sql") },
    Migration { version: 12, name: "oidc", sql: include_str!("migrations/0012_oidc.sql") },
];

/// Every PostgreSQL migration, oldest first. Append only.
pub const PG_MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "audit_log", sql: include_str!("migrations/postgres/0001_audit_log.sql") },
    Migration { version: 2, name: "state", sql: include_str!("migrations/postgres/0002_state.sql") },
];

/// The advisory lock key migrations take (`pg_advisory_xact_lock`): the
/// ASCII bytes `ONLBmigr`, so that it cannot be mistaken for another
/// application's key in a shared database.
pub const PG_MIGRATION_LOCK: i64 = 0x4F4E_4C42_6D69_6772;

/// The schema version of a PostgreSQL store (0 before the first migration).
pub(super) const PG_VERSION_QUERY: &str = "SELECT coalesce(max(version), 0)::BIGINT FROM onlabel_migrations";

/// The version a fully migrated PostgreSQL database has.
pub fn latest_pg() -> i64 {
    PG_MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the PostgreSQL database up to [`latest_pg`]; refuses one from the
/// future. `shown` is the URL (password hidden) for messages.
pub(super) fn apply_pg(client: &mut postgres::Client, shown: &str) -> Result<()> {
    let pg = |source| Error::Postgres { url: shown.to_string(), source };
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PG_MIGRATION_LOCK]).map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS onlabel_migrations (
             version    BIGINT PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL
         )",
    )
    .map_err(pg)?;
    let current: i64 = tx.query_one(PG_VERSION_QUERY, &[]).map_err(pg)?.get(0);
    if current > latest_pg() {
        return Err(Error::NewerPgSchema { url: shown.to_string(), found: current, supported: latest_pg() });
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for m in PG_MIGRATIONS.iter().filter(|m| m.version > current) {
        tracing::info!(version = m.version, name = m.name, url = shown, "applying PostgreSQL migration");
        tx.batch_execute(m.sql).map_err(pg)?;
        tx.execute("INSERT INTO onlabel_migrations (version, name, applied_at) VALUES ($1, $2, $3)", &[&m.version, &m.name, &now])
            .map_err(pg)?;
    }
    tx.commit().map_err(pg)
}

/// The version a fully migrated file has.
pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the file at `path` up to [`latest`]; refuses a file from the future.
pub(super) fn apply(conn: &mut Connection, path: &Path) -> Result<()> {
    let sql = |e| Error::sqlite(path, e);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
    if current > latest() {
        return Err(Error::NewerSchema { path: path.to_owned(), found: current, supported: latest() });
    }
    let app_id: i32 = tx.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(sql)?;
    if current == latest() && app_id == super::APPLICATION_ID {
        return Ok(()); // dropping `tx` ends the read transaction
    }
    if app_id != super::APPLICATION_ID {
        // Only reached for a fresh file or an older OnLabel store (`check_owner`).
        tx.pragma_update(None, "application_id", super::APPLICATION_ID).map_err(sql)?;
    }
    if current == latest() {
        return tx.commit().map_err(sql);
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL
         )",
    )
    .map_err(sql)?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tracing::info!(version = m.version, name = m.name, path = %path.display(), "applying migration");
        tx.execute_batch(m.sql).map_err(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, now],
        )
        .map_err(sql)?;
    }
    tx.pragma_update(None, "user_version", latest()).map_err(sql)?;
    tx.commit().map_err(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_contiguous_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "migration {} is out of sequence", m.name);
            assert!(!m.sql.trim().is_empty());
        }
    }

    #[test]
    fn postgres_versions_are_contiguous_from_one() {
        for (i, m) in PG_MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "PostgreSQL migration {} is out of sequence", m.name);
            assert!(!m.sql.trim().is_empty());
        }
    }

    #[test]
    fn each_migration_applies_on_top_of_the_previous_ones() {
        let mut fresh = Connection::open_in_memory().unwrap();
        apply(&mut fresh, Path::new(":memory:")).unwrap();
        let applied: i64 = fresh.query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(applied, MIGRATIONS.len() as i64);
        apply(&mut fresh, Path::new(":memory:")).unwrap(); // idempotent
        let v: i64 = fresh.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, latest());
    }

    #[test]
    fn migration_7_keeps_the_sign_in_counts_of_a_version_6_file() {
        // A file as onlabel at migration 6 left it, with one counter row.
        let mut c = Connection::open_in_memory().unwrap();
        for m in MIGRATIONS.iter().filter(|m| m.version <= 6) {
            c.execute_batch(m.sql).unwrap();
        }
        c.pragma_update(None, "user_version", 6).unwrap();
        c.pragma_update(None, "application_id", super::super::APPLICATION_ID).unwrap();
        c.execute(
            "INSERT INTO sign_in_failures VALUES ('cli:ops', 'r1', '2026-12-03T10:00:00.000Z', 4, '2026-12-03T10:01:00.000Z', '2026-12-03T10:02:00.000Z')",
            [],
        )
        .unwrap();
        apply(&mut c, Path::new(":memory:")).unwrap();
        let row: (String, i64) = c
            .query_row("SELECT reason, count FROM sign_in_failures WHERE addr = 'cli:ops' AND user_id = 'r1'", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(row, ("before migration 7".to_string(), 4));
        // The new key: the same address, user and window with another reason is another row.
        c.execute(
            "INSERT INTO sign_in_failures VALUES ('cli:ops', 'r1', '2026-12-03T10:00:00.000Z', 'disabled', 1, 'x', 'x')",
            [],
        )
        .unwrap();
        let indexes: i64 = c
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'sign_in_failures_%'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexes, 2);
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, latest());
    }
}
