//! [`ReadOnly`]: the tantivy directory an [`Index`](super::Index) is opened
//! through, which never writes a byte into the index directory.
//!
//! Why: several `onlabel serve` replicas share one index root, often on a
//! read-only mount (a Kubernetes `ReadOnlyMany` volume, an NFS export), and
//! DESIGN.md's replicas must not write into it. tantivy's own
//! `MmapDirectory` creates `.tantivy-meta.lock` (opened for writing) every
//! time a reader opens its segments, and watches `meta.json` with a thread.
//! OnLabel never runs an `IndexWriter` on an index it serves — `ingest` and
//! `index publish` build into a fresh directory and rename it into place —
//! so the lock that keeps a writer's garbage collection away from the
//! segments a reader is opening protects against nothing here: this
//! directory grants it without touching the disk, refuses every write, and
//! has no watcher (readers are opened with `ReloadPolicy::Manual`).

use std::path::Path;
use std::sync::Arc;

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, WatchCallback, WatchHandle, WritePtr};

/// An `MmapDirectory` that reads only (see the module docs).
#[derive(Debug, Clone)]
pub struct ReadOnly {
    /// The directory files are read (mapped) from.
    inner: MmapDirectory,
}

impl ReadOnly {
    /// Opens `dir` for reading.
    pub fn open(dir: &Path) -> tantivy::Result<ReadOnly> {
        Ok(ReadOnly { inner: MmapDirectory::open(dir)? })
    }
}

/// The error of every refused write.
fn refused(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("{} not written: OnLabel opens a served index read-only (build a new one with `onlabel ingest` or `onlabel index publish`)", path.display()),
    )
}

impl Directory for ReadOnly {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.inner.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        Err(DeleteError::IoError { io_error: Arc::new(refused(path)), filepath: path.to_owned() })
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        Err(OpenWriteError::wrap_io_error(refused(path), path.to_owned()))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, _data: &[u8]) -> std::io::Result<()> {
        Err(refused(path))
    }

    fn sync_directory(&self) -> std::io::Result<()> {
        Ok(())
    }

    /// Granted at once, without a lock file: nothing ever writes (or
    /// garbage-collects) a served index, so there is nothing to exclude.
    fn acquire_lock(&self, _lock: &Lock) -> Result<DirectoryLock, LockError> {
        Ok(DirectoryLock::from(Box::new(())))
    }

    /// No watcher: a served index never changes (a new one is a new directory).
    fn watch(&self, _callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        Ok(WatchHandle::empty())
    }
}
