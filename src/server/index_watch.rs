//! [`IndexWatch`]: a replica following a versioned index root
//! ([`crate::index::versions`]): every `--index-poll-secs` it reads the
//! root's `CURRENT` pointer and, when it names another version, opens that
//! version (read-only, every segment checksummed, a warm-up query), builds
//! what the copilot derives from it (the guard's label references, the
//! products listing) and swaps it in.
//!
//! Why it is safe for requests:
//!
//! - **Nothing fails.** All the slow work happens outside the copilot's
//!   lock; the write lock is held only to move the new index in. A request
//!   holds the read lock for its whole pipeline run, so a request in flight
//!   finishes on the version it started with, and a request that arrives
//!   during the swap waits for it (microseconds, plus the longest request
//!   then in flight), then runs on the new version.
//! - **Old files stay.** `index publish` keeps at least two versions, so the
//!   version a replica serves until its next poll is never removed under it.
//! - **A bad version is not served.** If the new version does not open (a
//!   damaged copy), the replica keeps serving the one it has, logs the error
//!   once, and tries again when `CURRENT` changes.
//!
//! The bound: a document withdrawn by a publish stops being cited by every
//! replica within one poll interval plus the swap time (open and check the
//! version, then wait for the requests in flight) after `CURRENT` flips.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use super::{AppState, State};
use crate::index::catalogue::Catalogue;
use crate::index::{versions, Index};

/// How a server follows a versioned index root.
#[derive(Debug)]
pub struct IndexWatch {
    /// The versioned root (`--index`).
    pub root: PathBuf,
    /// How often `CURRENT` is read (`--index-poll-secs`).
    pub every: Duration,
    /// The day the guard's label references and the products listing are
    /// judged on (`--as-of`; `None`: the day of the swap).
    pub as_of: Option<NaiveDate>,
    /// A version that failed to open, not retried until `CURRENT` changes.
    failed: Mutex<Option<String>>,
}

/// The default poll interval, seconds.
pub const DEFAULT_POLL_SECS: u64 = 2;

/// The longest poll interval accepted, seconds: beyond, a withdrawal would
/// wait too long to reach every replica.
pub const MAX_POLL_SECS: u64 = 300;

impl IndexWatch {
    /// Follows `root`, reading its pointer every `every`.
    pub fn new(root: PathBuf, every: Duration, as_of: Option<NaiveDate>) -> IndexWatch {
        IndexWatch { root, every, as_of, failed: Mutex::new(None) }
    }
}

/// Polls until the task is aborted (when the server stops).
pub(crate) async fn follow(st: State) {
    let Some(every) = st.index_watch.as_ref().map(|w| w.every) else { return };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = st.clone();
        match tokio::task::spawn_blocking(move || check(&s)).await {
            Ok(Ok(Some(id))) => tracing::info!(index_version = %id, "now serving the newly published index version"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the published index version could not be served; the previous one stays live"),
            Err(e) => tracing::error!(error = %e, "the index watcher failed"),
        }
    }
}

/// Why a swap did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// The new version could not be opened or read.
    #[error(transparent)]
    Index(#[from] crate::index::Error),
    /// Its label references could not be built.
    #[error(transparent)]
    Copilot(#[from] crate::copilot::Error),
    /// A lock was poisoned by a panic elsewhere.
    #[error("the copilot lock is poisoned; restart the server")]
    Poisoned,
}

/// Reads `CURRENT` once and swaps in the version it names if that is not
/// the one served: `Some(id)` when it swapped. Blocking (file reads, index
/// checks): run it off the async workers.
pub fn check(st: &AppState) -> Result<Option<String>, SwapError> {
    let Some(w) = &st.index_watch else { return Ok(None) };
    let Some(id) = versions::current(&w.root)? else { return Ok(None) };
    let served = st.copilot.read().map_err(|_| SwapError::Poisoned)?.index().version().map(str::to_string);
    if served.as_deref() == Some(id.as_str()) {
        return Ok(None);
    }
    if w.failed.lock().map_err(|_| SwapError::Poisoned)?.as_deref() == Some(id.as_str()) {
        return Ok(None);
    }
    let t = Instant::now();
    let prepared = (|| -> Result<_, SwapError> {
        // Opens what CURRENT names now (it may have moved on again since).
        let index = Index::open(&w.root)?;
        let day = w.as_of.unwrap_or_else(super::today);
        let products = Catalogue::of(&index)?.listing(day);
        let swap = st.copilot.read().map_err(|_| SwapError::Poisoned)?.prepare_index(index, day)?;
        Ok((swap, products))
    })();
    let (swap, products) = match prepared {
        Ok(p) => p,
        Err(e) => {
            *w.failed.lock().map_err(|_| SwapError::Poisoned)? = Some(id);
            return Err(e);
        }
    };
    let (old, now) = {
        let mut c = st.copilot.write().map_err(|_| SwapError::Poisoned)?;
        let mut listing = st.products.write().map_err(|_| SwapError::Poisoned)?;
        let old = c.install_index(swap);
        *listing = products;
        (old, c.index().version().unwrap_or_default().to_string())
    };
    // The old version's files are unmapped here, outside the lock.
    drop(old);
    st.metrics.index_swapped(&now, t.elapsed().as_secs_f64());
    Ok(Some(now))
}
