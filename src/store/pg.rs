//! [`PgStore`]: the state in a PostgreSQL database, shared by several
//! OnLabel processes (replicas, CLI commands) at once.
//!
//! Opening a store
//!
//! 1. parses the URL ([`super::Database`]) and connects (a connect timeout of
//!    [`CONNECT_TIMEOUT`] unless the URL sets `connect_timeout`);
//! 2. applies the pending PostgreSQL migrations ([`super::migrations::PG_MIGRATIONS`])
//!    in one transaction under an advisory lock, so two processes opening a
//!    fresh database at once do not both migrate; refuses a database migrated
//!    by a newer OnLabel.
//!
//! Connections come from a small pool ([`POOL_SIZE`] at most): the store code
//! is synchronous (the `postgres` crate, a blocking client), so each caller
//! holds one connection for the length of one transaction. A connection that
//! the server closed is dropped when it is handed back, and the next caller
//! gets a fresh one.
//!
//! The `postgres` client runs its own small tokio runtime: call a `PgStore`
//! from a blocking thread (`tokio::task::spawn_blocking`), never directly
//! from async code.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use postgres::{Client, NoTls, Transaction};

use super::database::PgUrl;
use super::{migrations, Error, Result};

/// The advisory lock key every write transaction takes
/// (`pg_advisory_xact_lock`, [`super::Store::transaction`]): the ASCII bytes
/// `ONLBwrit`, so that it cannot be mistaken for another application's key
/// in a shared database. One key for the whole store, as SQLite has one write
/// lock per file: read-then-write rules and the audit chain's append are
/// serialised across every replica.
pub const WRITE_LOCK: i64 = 0x4F4E_4C42_7772_6974;

/// How many connections one process opens at most.
pub const POOL_SIZE: usize = 8;

/// How long connecting may take when the URL does not say (`connect_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a caller waits for a free connection when all [`POOL_SIZE`] are
/// in use; far above any transaction OnLabel runs (a few milliseconds).
pub const POOL_WAIT: Duration = Duration::from_secs(30);

/// An open PostgreSQL store: a pool of connections to one database.
pub struct PgStore {
    /// The URL, for connecting and (password hidden) for messages.
    url: PgUrl,
    /// The client configuration parsed from the URL.
    config: postgres::Config,
    /// Connections not in use.
    idle: Mutex<Vec<Client>>,
    /// Connections handed out; a caller waits on `freed` while it is [`POOL_SIZE`].
    busy: Mutex<usize>,
    /// Signalled whenever a connection is handed back.
    freed: Condvar,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` and migrates it.
    pub fn open(url: &PgUrl) -> Result<PgStore> {
        let mut config = url.config()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("onlabel");
        }
        let store = PgStore { url: url.clone(), config, idle: Mutex::new(Vec::new()), busy: Mutex::new(0), freed: Condvar::new() };
        {
            let mut c = store.conn()?;
            migrations::apply_pg(&mut c, url.shown())?;
        }
        Ok(store)
    }

    /// The URL (password hidden when displayed).
    pub fn url(&self) -> &PgUrl {
        &self.url
    }

    /// Wraps a client error with the URL.
    pub fn error(&self, source: postgres::Error) -> Error {
        Error::Postgres { url: self.url.shown().to_string(), source }
    }

    /// Runs `f` with a connection (reads, or writes that manage their own transaction).
    pub fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T> {
        let mut c = self.conn()?;
        f(&mut c).map_err(|e| self.error(e))
    }

    /// Runs `f` inside a transaction (READ COMMITTED) and commits; returns
    /// only after the commit. `f` returning an error rolls back.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| self.error(e))?;
        let out = f(&mut tx)?;
        tx.commit().map_err(|e| self.error(e))?;
        Ok(out)
    }

    /// The schema version: the highest migration applied.
    pub fn schema_version(&self) -> Result<i64> {
        self.with_client(|c| Ok(c.query_one(migrations::PG_VERSION_QUERY, &[])?.get(0)))
    }

    /// A connection from the pool (a new one when none is idle), handed back on drop.
    pub fn conn(&self) -> Result<PgConn<'_>> {
        {
            let busy = lock(&self.busy);
            let (mut busy, waited) = self.freed.wait_timeout_while(busy, POOL_WAIT, |b| *b >= POOL_SIZE).unwrap_or_else(|p| p.into_inner());
            if waited.timed_out() && *busy >= POOL_SIZE {
                return Err(Error::PoolExhausted { url: self.url.shown().to_string(), size: POOL_SIZE, waited: POOL_WAIT });
            }
            *busy += 1;
        }
        let idle = lock(&self.idle).pop();
        let client = match idle {
            Some(c) => Ok(c),
            None => self.config.connect(NoTls).map_err(|e| self.error(e)),
        };
        match client {
            Ok(c) => Ok(PgConn { store: self, client: Some(c) }),
            Err(e) => {
                self.release(None);
                Err(e)
            }
        }
    }

    fn release(&self, client: Option<Client>) {
        if let Some(c) = client.filter(|c| !c.is_closed()) {
            lock(&self.idle).push(c);
        }
        *lock(&self.busy) -= 1;
        self.freed.notify_one();
    }
}

/// A pooled connection: derefs to the client; goes back to the pool on drop.
pub struct PgConn<'a> {
    store: &'a PgStore,
    client: Option<Client>,
}

impl std::ops::Deref for PgConn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a pooled connection is present until dropped")
    }
}

impl std::ops::DerefMut for PgConn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a pooled connection is present until dropped")
    }
}

impl Drop for PgConn<'_> {
    fn drop(&mut self) {
        self.store.release(self.client.take());
    }
}

/// Runs `f`, which uses the blocking `postgres` client, from wherever the
/// caller is: directly on a plain thread (the CLI), through
/// `tokio::task::block_in_place` on a worker of a multi-threaded runtime (the
/// server's handlers: the client's own `block_on` would otherwise panic with
/// "Cannot start a runtime from within a runtime"). A single-threaded runtime
/// cannot lend its only thread: that is [`Error::Runtime`], not a panic.
pub fn blocking<T>(url: &PgUrl, f: impl FnOnce() -> Result<T>) -> Result<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => Err(Error::Runtime { url: url.shown().to_string() }),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing held under these locks can be left half-done by a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
