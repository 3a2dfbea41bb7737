//! [`Store`]: the one SQLite file, `onlabel.sqlite`, that holds every piece of
//! state that must survive a restart: cases, users and their sign-in
//! counters, the prompt registry and the audit log — or, for several
//! replicas, the PostgreSQL database of [`pg::PgStore`]; which one is a
//! [`Database`] (`--database`, env `ONLABEL_DATABASE`; default the SQLite
//! file).
//!
//! Every store — cases, visits and Medical requests, users with their
//! sessions, sign-in counters and single sign-on flows, the prompt registry
//! with its eval runs and jobs, the audit log — is one implementation over
//! the portable SQL of [`sql`] ([`Store::read`], [`Store::transaction`]):
//! the same code runs on both backends, and the state tests run on both
//! ([`testing::each_backend`] in unit tests, a throwaway cluster from
//! [`pgtest`]).
//!
//! Opening a store
//!
//! 1. creates the data directory if needed;
//! 2. refuses, without writing a byte, a file that is not SQLite (a stray
//!    file, a half-copied backup) — [`Error::NotADatabase`] tells the user
//!    what to do; an existing store is never replaced;
//! 3. refuses, again without writing, an SQLite file that belongs to another
//!    application: OnLabel stamps its files with `PRAGMA application_id =`
//!    [`APPLICATION_ID`]; a file with another id, or with tables but no id that
//!    are not an older OnLabel store's, is [`Error::ForeignDatabase`];
//! 4. switches to WAL with `synchronous=FULL` (a commit is on disk, WAL
//!    included, before `COMMIT` returns — so an acknowledged write survives a
//!    crash *and* a power cut), a busy timeout so that the CLI and the server
//!    can share the file, and foreign keys;
//! 5. applies the pending [`migrations`] in one `BEGIN IMMEDIATE` transaction
//!    (two processes opening a fresh file at once do not both migrate) and
//!    stamps the file with [`APPLICATION_ID`].
//!
//! Modules own their tables but not the connection setup: they take a
//! [`Store`] (or open one) and run their statements through
//! [`Store::with_conn`] / [`Store::write`].

pub mod database;
pub mod migrations;
pub mod pg;
#[doc(hidden)]
pub mod pgtest;
pub mod sql;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

pub use database::{Database, PgUrl};
pub use migrations::{Migration, MIGRATIONS, PG_MIGRATIONS};
pub use sql::{Backend, FromValue, Row, Sql, Ty, Value};

/// The file name inside the data directory (DESIGN.md: one SQLite file).
pub const FILE_NAME: &str = "onlabel.sqlite";

/// How long a writer waits for another process's write lock before giving up.
/// Writes are single-row transactions of a few milliseconds; five seconds is
/// far above any legitimate wait and still short enough for a CLI user.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `PRAGMA application_id` of every OnLabel store: the ASCII bytes `ONLB`.
/// SQLite keeps it at offset 68 of the header, where `file(1)` and other
/// tools read it; it is how OnLabel tells its own file from another
/// application's SQLite database before writing anything.
pub const APPLICATION_ID: i32 = 0x4F4E_4C42;

/// The 16 bytes every SQLite 3 database file starts with.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// What can go wrong with the store file itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory or the file could not be created or read.
    #[error("{path}: {source}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file exists but is not an SQLite database. Nothing was written to it.
    #[error(
        "{path} is not an OnLabel database (not an SQLite file); it was left untouched. \
         If it is a store damaged in a copy, restore it from your backup; otherwise move it aside \
         (or point --data / ONLABEL_DATA at the right directory) and run the command again"
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file is an SQLite database of another application. Nothing was written to it.
    #[error(
        "{path} is an SQLite database of another application ({what}), not an OnLabel store; \
         it was left untouched. Point --data / ONLABEL_DATA (or `data =` in the config file) at \
         a directory of its own for OnLabel"
    )]
    ForeignDatabase {
        /// The file.
        path: PathBuf,
        /// What gave it away: its application id, or the tables it holds.
        what: String,
    },
    /// SQLite reports the database as corrupt (a damaged page, a bad index).
    #[error(
        "{path} is damaged ({detail}); stop all OnLabel processes, keep a copy of the file and of \
         {path}-wal, and restore from your backup (`sqlite3 {path} .recover` may salvage rows)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The file was migrated by a newer OnLabel; this one does not know its tables.
    #[error(
        "{path} has schema version {found}, newer than this onlabel supports ({supported}); \
         upgrade onlabel — the file was not changed"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// `PRAGMA user_version` in the file.
        found: i64,
        /// The highest version in [`MIGRATIONS`].
        supported: i64,
    },
    /// WAL could not be switched on (e.g. the directory is on a network share).
    #[error("{path}: could not enable WAL (journal_mode stayed {mode}); put the data directory on a local disk")]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// `--database` (or `ONLABEL_DATABASE`) is neither a PostgreSQL URL nor an SQLite file.
    #[error("--database {value}: {reason}")]
    BadDatabase {
        /// The value given (password hidden).
        value: String,
        /// What is wrong and the accepted forms.
        reason: String,
    },
    /// Code that uses SQLite's own API ([`Store::with_conn`],
    /// [`Store::write`]: file-level checks and tests) was given a PostgreSQL store.
    #[error("{url}: {what} works on the SQLite store file only, not on PostgreSQL")]
    SqliteOnly {
        /// The PostgreSQL URL (password hidden).
        url: String,
        /// What was asked.
        what: String,
    },
    /// The PostgreSQL database was migrated by a newer OnLabel.
    #[error("{url} has schema version {found}, newer than this onlabel supports ({supported}); upgrade onlabel — the database was not changed")]
    NewerPgSchema {
        /// The URL (password hidden).
        url: String,
        /// The highest version in `onlabel_migrations`.
        found: i64,
        /// The highest version in [`PG_MIGRATIONS`].
        supported: i64,
    },
    /// PostgreSQL could not be reached, refused the sign-in, or failed a statement.
    #[error("{url}: {}", causes(.source))]
    Postgres {
        /// The URL (password hidden).
        url: String,
        /// The client's error.
        source: ::postgres::Error,
    },
    /// Every pooled connection stayed in use for the whole wait.
    #[error("{url}: all {size} connections of this process stayed busy for {waited:?}; the database is overloaded or a transaction hangs")]
    PoolExhausted {
        /// The URL (password hidden).
        url: String,
        /// [`pg::POOL_SIZE`].
        size: usize,
        /// [`pg::POOL_WAIT`].
        waited: Duration,
    },
    /// The PostgreSQL store was called from a single-threaded async runtime,
    /// whose one thread cannot block on the database.
    #[error("{url}: the PostgreSQL store was called from a single-threaded async runtime; run it on a multi-threaded runtime (as `onlabel serve` does) or from a blocking thread")]
    Runtime {
        /// The URL (password hidden).
        url: String,
    },
    /// A column did not hold what the code reading it expected (a schema
    /// changed under a running OnLabel, or a value written by hand).
    #[error("column {column} of a stored row: {reason}")]
    Decode {
        /// The column (from 0).
        column: usize,
        /// What it held instead.
        reason: String,
    },
    /// A query that must return a row returned none.
    #[error("the store returned no row for `{sql}`")]
    NoRow {
        /// The start of the statement.
        sql: String,
    },
    /// Another SQLite error (including a lock held longer than [`BUSY_TIMEOUT`]).
    #[error("{path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
}

impl Error {
    /// Wraps an SQLite error for `path`, recognising corruption.
    pub fn sqlite(path: &Path, e: rusqlite::Error) -> Error {
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Error::NotADatabase { path: path.to_owned() },
            Some(ErrorCode::DatabaseCorrupt) => Error::Corrupt { path: path.to_owned(), detail: e.to_string() },
            _ => Error::Sqlite { path: path.to_owned(), source: e },
        }
    }

    /// The stable code (see [`crate::error::CODES`]): the one meaning of each
    /// store failure, whichever module met it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "store_io",
            Error::NotADatabase { .. } => "store_not_a_database",
            Error::ForeignDatabase { .. } => "store_not_onlabel",
            Error::Corrupt { .. } => "store_corrupt",
            Error::NewerSchema { .. } | Error::NewerPgSchema { .. } => "store_newer_schema",
            Error::BadDatabase { .. } => "store_bad_database",
            Error::SqliteOnly { .. } => "store_unsupported",
            Error::Postgres { .. } | Error::PoolExhausted { .. } | Error::Runtime { .. } => "store_postgres",
            Error::NoWal { .. } => "store_no_wal",
            Error::Sqlite { .. } | Error::Decode { .. } | Error::NoRow { .. } => "store_error",
        }
    }
}

/// A client error with its causes (`error connecting to server: Connection
/// refused`): the `postgres` crate's own message names only the outermost one.
fn causes(e: &::postgres::Error) -> String {
    let mut out = e.to_string();
    let mut next = std::error::Error::source(e);
    while let Some(c) = next {
        let c_text = c.to_string();
        if !out.contains(&c_text) {
            out.push_str(": ");
            out.push_str(&c_text);
        }
        next = c.source();
    }
    out
}

/// Result with the store [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An open store: the SQLite file `onlabel.sqlite` (one connection, shared
/// behind a mutex so that a `Store` can sit in server state;
/// `rusqlite::Connection` is `Send`, not `Sync`) or a PostgreSQL database
/// (a pool of connections, [`pg::PgStore`]).
///
/// Store code runs its statements through [`Store::read`] and
/// [`Store::transaction`], in the portable dialect of [`sql`]: the same code
/// for both backends.
#[derive(Debug)]
pub struct Store {
    /// The file (SQLite) or the URL with its password hidden (PostgreSQL), for error messages.
    path: PathBuf,
    /// The backend.
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// The connection; every write takes it for the length of one transaction.
    Sqlite(Mutex<Connection>),
    /// The pool.
    Postgres(pg::PgStore),
}

impl Store {
    /// Opens (creating if needed) `DATA_DIR/onlabel.sqlite` and migrates it.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::Io { path: data_dir.to_owned(), source })?;
        Store::open_file(&data_dir.join(FILE_NAME))
    }

    /// Opens the store a [`Database`] names: the SQLite file (creating it if
    /// needed) or the PostgreSQL database; migrates it.
    pub fn connect(db: &Database) -> Result<Store> {
        match db {
            Database::Sqlite(file) => {
                if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_owned(), source })?;
                }
                Store::open_file(file)
            }
            Database::Postgres(url) => Ok(Store::from_pg(pg::blocking(url, || pg::PgStore::open(url))?)),
        }
    }

    /// Wraps an open PostgreSQL store.
    pub fn from_pg(pg: pg::PgStore) -> Store {
        Store { path: PathBuf::from(pg.url().shown()), inner: Inner::Postgres(pg) }
    }

    /// Opens (creating if needed) the store at `path` and migrates it.
    pub fn open_file(path: &Path) -> Result<Store> {
        check_header(path)?;
        check_owner(path)?;
        let sql = |e| Error::sqlite(path, e);
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        // The first statement reads the header: a damaged file fails here, before any write.
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::NoWal { path: path.to_owned(), mode });
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", true).map_err(sql)?;
        let mut conn = conn;
        migrations::apply(&mut conn, path)?;
        Ok(Store { path: path.to_owned(), inner: Inner::Sqlite(Mutex::new(conn)) })
    }

    /// The file this store lives in (for PostgreSQL: its URL, password
    /// hidden, as a path — for messages only).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// For messages: the file, or the URL without its password.
    pub fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// Which engine holds the state.
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL pool, when the store is on PostgreSQL.
    pub fn pg(&self) -> Option<&pg::PgStore> {
        match &self.inner {
            Inner::Postgres(p) => Some(p),
            Inner::Sqlite(_) => None,
        }
    }

    /// Runs `f` with a connection, outside any write transaction (reads; on
    /// PostgreSQL a read-only-by-convention transaction, one snapshot per
    /// statement as READ COMMITTED gives). Errors of `f` pass through.
    pub fn read<T, E>(&self, f: impl FnOnce(&mut dyn Sql) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        match &self.inner {
            Inner::Sqlite(m) => {
                let conn = lock(m);
                f(&mut sql::SqliteSql::new(&conn, &self.path))
            }
            Inner::Postgres(p) => pg_run(p, false, f),
        }
    }

    /// Runs `f` inside a write transaction and commits; returns only after
    /// the commit is durable. `f` returning an error rolls back.
    ///
    /// Writes are serialised across every process sharing the store: SQLite's
    /// `BEGIN IMMEDIATE` takes the file's write lock up front (a busy lock is
    /// retried for [`BUSY_TIMEOUT`]); on PostgreSQL the transaction first
    /// takes the store's advisory lock [`pg::WRITE_LOCK`]. So read-then-write
    /// logic in `f` (allocate the next id, check the current state, append to
    /// the audit chain) cannot race another replica.
    pub fn transaction<T, E>(&self, f: impl FnOnce(&mut dyn Sql) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        match &self.inner {
            Inner::Sqlite(m) => {
                let mut conn = lock(m);
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| Error::sqlite(&self.path, e))?;
                let out = f(&mut sql::SqliteSql::new(&tx, &self.path))?;
                tx.commit().map_err(|e| Error::sqlite(&self.path, e))?;
                Ok(out)
            }
            Inner::Postgres(p) => pg_run(p, true, f),
        }
    }

    /// Runs `f` with the SQLite connection (reads, or writes that manage
    /// their own transaction). SQLite errors returned by `f` get the file's
    /// path. On PostgreSQL: [`Error::SqliteOnly`] (store code uses
    /// [`Store::read`]; this is for file-level checks and tests).
    pub fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        match &self.inner {
            Inner::Sqlite(m) => f(&mut lock(m)).map_err(|e| Error::sqlite(&self.path, e)),
            Inner::Postgres(_) => Err(self.sqlite_only()),
        }
    }

    /// [`Store::transaction`] with the SQLite transaction itself, for code
    /// that needs SQLite's own API. On PostgreSQL: [`Error::SqliteOnly`].
    pub fn write<T, E>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        let Inner::Sqlite(m) = &self.inner else {
            return Err(self.sqlite_only().into());
        };
        let mut conn = lock(m);
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| Error::sqlite(&self.path, e))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| Error::sqlite(&self.path, e))?;
        Ok(out)
    }

    fn sqlite_only(&self) -> Error {
        Error::SqliteOnly { url: self.shown(), what: "SQLite's own API (with_conn, write)".into() }
    }

    /// `PRAGMA integrity_check` on SQLite: `["ok"]` for a sound file,
    /// otherwise SQLite's findings. PostgreSQL checks its own pages: `["ok"]`
    /// once a query runs.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        match &self.inner {
            Inner::Sqlite(_) => self.with_conn(|c| {
                let mut st = c.prepare("PRAGMA integrity_check")?;
                let rows = st.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect()
            }),
            Inner::Postgres(_) => self.read(|c| c.query("SELECT 1", &[]).map(|_| vec!["ok".to_string()])),
        }
    }

    /// The schema version: `PRAGMA user_version` of the SQLite file, the
    /// highest migration applied on PostgreSQL.
    pub fn schema_version(&self) -> Result<i64> {
        match &self.inner {
            Inner::Sqlite(_) => self.with_conn(|c| c.pragma_query_value(None, "user_version", |r| r.get(0))),
            Inner::Postgres(p) => p.schema_version(),
        }
    }
}

/// One PostgreSQL transaction around `f` (a write one takes
/// [`pg::WRITE_LOCK`] first), run where the blocking client may block
/// ([`pg::blocking`]). `f`'s own error passes through unchanged.
fn pg_run<T, E: From<Error>>(p: &pg::PgStore, write: bool, f: impl FnOnce(&mut dyn Sql) -> Result<T, E>) -> Result<T, E> {
    pg::blocking(p.url(), || {
        let mut c = p.conn()?;
        let mut tx = c.transaction().map_err(|e| p.error(e))?;
        if write {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&pg::WRITE_LOCK]).map_err(|e| p.error(e))?;
        }
        let out = f(&mut sql::PgSql::new(&mut tx, p.url().shown()));
        if out.is_ok() {
            tx.commit().map_err(|e| p.error(e))?;
        } // else the transaction rolls back when dropped
        Ok(out)
    })?
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave a half-done write behind:
    // the transaction rolls back when dropped. The connection is reusable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Refuses a non-empty file that does not start with the SQLite header, before
/// SQLite gets a chance to touch it (e.g. by creating a WAL beside it).
fn check_header(path: &Path) -> Result<()> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::Io { path: path.to_owned(), source }),
    };
    let mut head = Vec::with_capacity(16);
    (&mut f).take(16).read_to_end(&mut head).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    if head.is_empty() || head == SQLITE_HEADER {
        Ok(())
    } else {
        Err(Error::NotADatabase { path: path.to_owned() })
    }
}

/// Refuses an existing SQLite file that is not OnLabel's, reading it through
/// a read-only connection (so not even a WAL or journal file is created).
///
/// A file is OnLabel's when its `application_id` is [`APPLICATION_ID`], when
/// it is empty (no tables, `user_version` 0: a fresh file), or when it has no
/// application id but is an older OnLabel store (its `schema_migrations`
/// table names OnLabel's first migration) — those are stamped on open.
fn check_owner(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > 0 => {}
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::Io { path: path.to_owned(), source }),
    }
    let sql = |e| Error::sqlite(path, e);
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
    let app_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(sql)?;
    if app_id == APPLICATION_ID {
        return Ok(());
    }
    if app_id != 0 {
        let bytes = app_id.to_be_bytes();
        let text = if bytes.iter().all(|b| b.is_ascii_graphic()) {
            format!(" {:?}", String::from_utf8_lossy(&bytes))
        } else {
            String::new()
        };
        return Err(Error::ForeignDatabase { path: path.to_owned(), what: format!("application_id {app_id:#010x}{text}") });
    }
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect())
        .map_err(sql)?;
    if tables.is_empty() {
        return Ok(());
    }
    // An OnLabel store from before the application id: its migrations table
    // records OnLabel's own first migration.
    let ours = tables.iter().any(|t| t == "schema_migrations")
        && conn
            .query_row("SELECT name FROM schema_migrations WHERE version = 1", [], |r| r.get::<_, String>(0))
            .is_ok_and(|n| n == MIGRATIONS[0].name);
    if ours {
        return Ok(());
    }
    let mut shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
    if tables.len() > shown.len() {
        shown.push("…");
    }
    Err(Error::ForeignDatabase { path: path.to_owned(), what: format!("tables {}", shown.join(", ")) })
}

/// Stores for state tests: the same test body runs against each backend.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Backend, Database, Store};

    /// A store of one backend, with the temp dir an SQLite store lives in.
    pub(crate) struct TestStore {
        /// The store.
        pub store: Store,
        /// The data directory (SQLite: the store's; PostgreSQL: for files a
        /// module keeps beside the database, such as prompt proposals).
        pub dir: tempfile::TempDir,
        /// Where it lives, to open a second connection (another replica).
        pub db: Database,
    }

    impl TestStore {
        /// `sqlite` or `postgres`, for assertion messages.
        pub fn name(&self) -> &'static str {
            match self.store.backend() {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            }
        }
    }

    /// An SQLite store in a fresh temp dir, then a PostgreSQL store in a
    /// fresh database `name` (unique per test) of the test run's cluster
    /// ([`super::pgtest::cluster`]): a state test loops over both.
    pub(crate) fn each_backend(name: &str) -> Vec<TestStore> {
        let sqlite = tempfile::tempdir().expect("temp dir");
        let s = Store::open(sqlite.path()).expect("sqlite store");
        let s_db = Database::Sqlite(s.path().to_owned());
        let p_db = Database::parse(&super::pgtest::database(name)).expect("url");
        let p = Store::connect(&p_db).expect("postgres store");
        vec![TestStore { store: s, dir: sqlite, db: s_db }, TestStore { store: p, dir: tempfile::tempdir().expect("temp dir"), db: p_db }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_can_sit_in_server_state() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Store>();
        shareable::<crate::cases::CaseStore>();
    }

    #[test]
    fn opens_wal_full_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("nested/data")).unwrap();
        assert!(s.path().ends_with("nested/data/onlabel.sqlite"));
        let (mode, sync, fk): (String, i64, i64) = s
            .with_conn(|c| {
                Ok((
                    c.pragma_query_value(None, "journal_mode", |r| r.get(0))?,
                    c.pragma_query_value(None, "synchronous", |r| r.get(0))?,
                    c.pragma_query_value(None, "foreign_keys", |r| r.get(0))?,
                ))
            })
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(fk, 1);
        assert_eq!(s.schema_version().unwrap(), migrations::latest());
        assert_eq!(s.integrity_check().unwrap(), vec!["ok".to_string()]);
        drop(s);
        // Reopening is a no-op migration.
        let s = Store::open(&dir.path().join("nested/data")).unwrap();
        assert_eq!(s.schema_version().unwrap(), migrations::latest());
    }

    #[test]
    fn garbage_file_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        std::fs::write(&file, &garbage).unwrap();
        let e = Store::open(dir.path()).unwrap_err();
        assert!(matches!(e, Error::NotADatabase { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("onlabel.sqlite") && msg.contains("left untouched"), "{msg}");
        assert_eq!(std::fs::read(&file).unwrap(), garbage);
        assert!(!dir.path().join("onlabel.sqlite-wal").exists());
    }

    #[test]
    fn another_applications_database_is_refused_and_left_untouched() {
        for setup in ["PRAGMA application_id = 1234; CREATE TABLE t(x);", "CREATE TABLE contacts(name TEXT); INSERT INTO contacts VALUES ('a');"] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join(FILE_NAME);
            Connection::open(&file).unwrap().execute_batch(setup).unwrap();
            let before = std::fs::read(&file).unwrap();
            let e = Store::open(dir.path()).unwrap_err();
            assert!(matches!(e, Error::ForeignDatabase { .. }), "{e}");
            assert!(e.to_string().contains("another application"), "{e}");
            assert_eq!(std::fs::read(&file).unwrap(), before, "{setup}");
            assert!(!dir.path().join("onlabel.sqlite-wal").exists());
        }
    }

    #[test]
    fn stores_are_stamped_and_old_unstamped_stores_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let id: i32 = s.with_conn(|c| c.pragma_query_value(None, "application_id", |r| r.get(0))).unwrap();
        assert_eq!(id, APPLICATION_ID);
        // An OnLabel store written before the application id existed.
        s.with_conn(|c| c.pragma_update(None, "application_id", 0)).unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        let id: i32 = s.with_conn(|c| c.pragma_query_value(None, "application_id", |r| r.get(0))).unwrap();
        assert_eq!(id, APPLICATION_ID);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.with_conn(|c| c.pragma_update(None, "user_version", 999)).unwrap();
        drop(s);
        let e = Store::open(dir.path()).unwrap_err();
        assert!(matches!(e, Error::NewerSchema { found: 999, .. }), "{e}");
    }
}
