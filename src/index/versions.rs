//! [`publish`]: the versioned index root that several `onlabel serve`
//! replicas share, read-only, and switch between atomically.
//!
//! ```text
//! INDEX_ROOT/
//!   CURRENT                      the live version's id, one line (replaced by rename)
//!   versions/
//!     000001-3f2a9c01b7e4/       a whole index (as `ingest` writes one) + onlabel-version.json
//!     000002-81d0e6a4c2f9/       immutable once published
//!   .publish.lock                held by the one `onlabel index publish` running
//! ```
//!
//! A version's id is its sequence number and the first 12 hex digits of
//! the SHA-256 of its content (every passage with its MLR metadata, every
//! document's manifest entry, the PDF copies, whether vectors were built):
//! publishing a corpus identical to the live version is a no-op that says so.
//! [`publish`] builds the new version beside the live one, writes its
//! [`VersionInfo`], then flips `CURRENT` (a temp file renamed over it, so a
//! reader sees the old id or the new one, never half of one) and prunes all
//! but the [`DEFAULT_KEEP`] (`--keep`) most recent versions, never fewer than
//! [`MIN_KEEP`]: a replica that has not yet polled the pointer, or has
//! requests in flight on the previous version, still finds its files.
//!
//! [`Index::open`](super::Index::open) resolves a root to its live version
//! ([`resolve`]); a flat index directory (what `ingest --index DIR` writes)
//! opens as before. Readers never write here (see [`super::readonly`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BuildReport, BuildStage, Embedder, Error, Index, Result};
use crate::corpus::{Corpus, Passage, Status};

/// The pointer file: the live version's id.
pub const CURRENT: &str = "CURRENT";

/// The folder holding one directory per published version.
pub const VERSIONS: &str = "versions";

/// The description of a version, inside its directory.
pub const VERSION_FILE: &str = "onlabel-version.json";

/// The lock file one publisher holds (an advisory lock; the file stays).
pub const LOCK: &str = ".publish.lock";

/// Versions kept by default: the live one and the two before it.
pub const DEFAULT_KEEP: usize = 3;

/// The fewest versions kept: the live one and the one replicas may still be
/// serving until their next poll.
pub const MIN_KEEP: usize = 2;

/// Hex digits of the content hash in a version id.
const HASH_DIGITS: usize = 12;

/// What `versions/ID/onlabel-version.json` records about one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// `SEQUENCE-HASH`, e.g. `000002-81d0e6a4c2f9`: the directory's name.
    pub id: String,
    /// 1 for the first version of a root, then one more per publish.
    pub sequence: u64,
    /// SHA-256 of the version's content (see the module docs), hex.
    pub content_sha256: String,
    /// When it was built (UTC, RFC 3339).
    pub published_at: String,
    /// Documents in it (withdrawn and expired ones included).
    pub documents: usize,
    /// Passages indexed.
    pub passages: usize,
    /// The documents it holds as withdrawn (never retrieved or cited).
    pub withdrawn: Vec<String>,
}

/// What [`publish`] did.
#[derive(Debug, Clone)]
pub struct Published {
    /// The live version now.
    pub version: VersionInfo,
    /// The content was the live version's: nothing was built or switched.
    pub unchanged: bool,
    /// The version that was live before (none for a root's first publish).
    pub previous: Option<String>,
    /// Versions removed by pruning.
    pub pruned: Vec<String>,
    /// The build (none when unchanged).
    pub report: Option<BuildReport>,
}

fn version_error(path: &Path, detail: impl Into<String>) -> Error {
    Error::Version { path: path.to_owned(), detail: detail.into() }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_owned(), source }
}

/// Whether `id` has the form `SEQUENCE-HASH` (digits, a dash, 12 lower-case
/// hex digits): nothing else is ever joined to a path.
pub fn valid_id(id: &str) -> bool {
    match id.split_once('-') {
        Some((seq, hash)) => {
            !seq.is_empty()
                && seq.bytes().all(|b| b.is_ascii_digit())
                && hash.len() == HASH_DIGITS
                && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => false,
    }
}

/// Whether `path` is a versioned index root (it has a `CURRENT` pointer or
/// a `versions/` folder).
pub fn is_root(path: &Path) -> bool {
    path.join(CURRENT).is_file() || path.join(VERSIONS).is_dir()
}

/// The id `CURRENT` names under `root`, or `None` when `root` has no pointer.
pub fn current(root: &Path) -> Result<Option<String>> {
    let pointer = root.join(CURRENT);
    let text = match std::fs::read_to_string(&pointer) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path: pointer, source }),
    };
    let id = text.trim();
    if !valid_id(id) {
        return Err(version_error(
            root,
            format!("{} holds {id:?}, not a version id like 000002-81d0e6a4c2f9; re-run `onlabel index publish`", pointer.display()),
        ));
    }
    Ok(Some(id.to_string()))
}

/// Where the index at `path` really is: for a versioned root, the live
/// version's directory and its id; for anything else, `path` itself.
pub fn resolve(path: &Path) -> Result<(PathBuf, Option<String>)> {
    match current(path)? {
        Some(id) => {
            let dir = path.join(VERSIONS).join(&id);
            if !dir.is_dir() {
                return Err(version_error(
                    path,
                    format!("{CURRENT} names version {id}, which is not in {}; re-run `onlabel index publish`", path.join(VERSIONS).display()),
                ));
            }
            Ok((dir, Some(id)))
        }
        None if path.join(VERSIONS).is_dir() => Err(version_error(
            path,
            format!("it has {VERSIONS}/ but no {CURRENT} pointer (a first publish that did not finish?); re-run `onlabel index publish`"),
        )),
        None => Ok((path.to_owned(), None)),
    }
}

/// Every published version under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<VersionInfo>> {
    let dir = root.join(VERSIONS);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Io { path: dir, source }),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(io_error(&dir))?;
        let name = e.file_name().to_string_lossy().to_string();
        if !valid_id(&name) {
            continue; // a build in progress (`.ID.building-PID`) or a stray file
        }
        let file = e.path().join(VERSION_FILE);
        let bytes = std::fs::read(&file).map_err(io_error(&file))?;
        let info: VersionInfo = serde_json::from_slice(&bytes)
            .map_err(|err| version_error(&e.path(), format!("{VERSION_FILE} is unreadable ({err}); remove the directory")))?;
        out.push(info);
    }
    out.sort_by_key(|v| v.sequence);
    Ok(out)
}

/// The SHA-256 of what a version would hold: every passage (text and MLR
/// metadata), every document's manifest entry, each PDF copy's bytes, and
/// whether passage vectors are built.
pub fn content_sha256(corpus: &Corpus, passages: &[Passage], vectors: bool) -> Result<String> {
    let mut h = Sha256::new();
    // Plain data always serialises; an empty slice would only weaken the hash.
    h.update(serde_json::to_vec(passages).unwrap_or_default());
    for d in &corpus.documents {
        h.update(serde_json::to_vec(&d.meta).unwrap_or_default());
        if !d.page_text.is_empty() {
            let bytes = std::fs::read(&d.source).map_err(io_error(&d.source))?;
            h.update(Sha256::digest(&bytes));
        }
    }
    h.update([vectors as u8]);
    Ok(hex::encode(h.finalize()))
}

/// Holds the root's publish lock until dropped.
struct PublishLock(#[allow(dead_code)] std::fs::File);

fn lock(root: &Path) -> Result<PublishLock> {
    let path = root.join(LOCK);
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_error(&path))?;
    match f.try_lock() {
        Ok(()) => Ok(PublishLock(f)),
        Err(std::fs::TryLockError::WouldBlock) => Err(version_error(
            root,
            "another `onlabel index publish` is running on it; wait for it to finish and publish again",
        )),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io { path, source }),
    }
}

/// Checks that `root` may hold versions: absent, empty, or already a
/// versioned root — never a flat index or another folder.
fn check_root(root: &Path) -> Result<()> {
    if root.join("onlabel-index.json").exists() {
        return Err(version_error(
            root,
            format!(
                "it is a single index built by `onlabel ingest`, not a versioned root; it keeps working as it is. \
                 To publish versions, publish into a new directory (e.g. `onlabel index publish --index {}-versions …`) \
                 and point every `onlabel serve --index` at that",
                root.display()
            ),
        ));
    }
    if root.is_dir() && !is_root(root) {
        let other = std::fs::read_dir(root).map_err(io_error(root))?.flatten().any(|e| e.file_name() != LOCK);
        if other {
            return Err(version_error(root, "it is not empty and is not an OnLabel index root; refusing to publish into it (pick an empty or new directory)"));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temp file renamed over it, synced, so
/// that a reader sees the old content or the new, never part of either.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

/// Builds a new version of the index root `root` from a loaded corpus and
/// its passages (with vectors when `embedder` is given), makes it live, and
/// keeps the `keep` most recent versions (at least [`MIN_KEEP`]).
/// `progress` is called as in [`Index::build_with`].
pub fn publish(
    root: &Path,
    corpus: &Corpus,
    passages: &[Passage],
    embedder: Option<&Embedder>,
    keep: usize,
    progress: impl FnMut(BuildStage, usize),
) -> Result<Published> {
    if keep < MIN_KEEP {
        return Err(version_error(
            root,
            format!("--keep {keep} is too few: keep at least {MIN_KEEP} versions (the live one and the one replicas may still be serving)"),
        ));
    }
    check_root(root)?;
    let versions = root.join(VERSIONS);
    std::fs::create_dir_all(&versions).map_err(io_error(&versions))?;
    let _lock = lock(root)?;
    // Holding the lock, any build folder left here is from a publish that died.
    for e in std::fs::read_dir(&versions).map_err(io_error(&versions))?.flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let previous = current(root)?;
    let existing = list(root)?;
    let sha = content_sha256(corpus, passages, embedder.is_some())?;
    if let Some(live) = previous.as_ref().and_then(|id| existing.iter().find(|v| &v.id == id)) {
        if live.content_sha256 == sha {
            return Ok(Published { version: live.clone(), unchanged: true, previous: previous.clone(), pruned: Vec::new(), report: None });
        }
    }
    let sequence = existing.iter().map(|v| v.sequence).max().unwrap_or(0) + 1;
    let id = format!("{sequence:06}-{}", &sha[..HASH_DIGITS]);
    let dir = versions.join(&id);
    let report = Index::build_with(&dir, passages, progress, embedder)?;
    // The build's own lock files mean nothing in an immutable version: none is left behind.
    for lock in [".tantivy-writer.lock", ".tantivy-meta.lock"] {
        let _ = std::fs::remove_file(dir.join(lock));
    }
    super::catalogue::write(&dir, corpus, passages)?;
    let info = VersionInfo {
        id: id.clone(),
        sequence,
        content_sha256: sha,
        published_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        documents: corpus.documents.len(),
        passages: passages.len(),
        withdrawn: corpus.documents.iter().filter(|d| d.meta.status == Status::Withdrawn).map(|d| d.meta.id.clone()).collect(),
    };
    let json = serde_json::to_vec_pretty(&info).map_err(|e| Error::Io { path: dir.clone(), source: std::io::Error::other(e) })?;
    let file = dir.join(VERSION_FILE);
    replace_file(&file, &json).map_err(io_error(&file))?;
    // The new version opens and passes its checks before anyone is pointed at it.
    drop(Index::open(&dir)?);
    let pointer = root.join(CURRENT);
    replace_file(&pointer, format!("{id}\n").as_bytes()).map_err(io_error(&pointer))?;
    let pruned = prune(root, keep, &id)?;
    Ok(Published { version: info, unchanged: false, previous, pruned, report: Some(report) })
}

/// Removes all but the `keep` most recent versions (never `live`).
fn prune(root: &Path, keep: usize, live: &str) -> Result<Vec<String>> {
    let all = list(root)?;
    let cut = all.len().saturating_sub(keep);
    let mut pruned = Vec::new();
    for v in all.into_iter().take(cut).filter(|v| v.id != live) {
        let dir = root.join(VERSIONS).join(&v.id);
        std::fs::remove_dir_all(&dir).map_err(io_error(&dir))?;
        pruned.push(v.id);
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::Limits;

    fn corpus(dir: &Path, status: &str) -> (Corpus, Vec<Passage>) {
        let c = dir.join(format!("corpus-{status}"));
        std::fs::create_dir_all(&c).unwrap();
        let pi = |title: &str, text: &str| format!("# Test PI\n\n## 5 WARNINGS AND PRECAUTIONS\n\n### {title}\n\n{text}\n");
        std::fs::write(c.join("a.md"), pi("5.2 Hepatotoxicity", "TESTRA can cause serious liver injury. Monitor liver enzymes every 4 weeks.")).unwrap();
        std::fs::write(c.join("b.md"), pi("5.3 Rash", "TESTRA can cause a rash. Stop TESTRA if a severe rash appears.")).unwrap();
        let entry = |id: &str, file: &str, st: &str| {
            format!("[[document]]\nid = \"{id}\"\nfile = \"{file}\"\nproduct = \"testra\"\nkind = \"pi\"\naudience = \"promotional\"\nmlr_number = \"T-{id}\"\napproved_on = \"2020-01-01\"\nexpires_on = \"2099-01-01\"\nstatus = \"{st}\"\n\n")
        };
        std::fs::write(c.join("manifest.toml"), entry("testra-a", "a.md", "approved") + &entry("testra-b", "b.md", status)).unwrap();
        let corpus = Corpus::load(&[c], Limits::default(), false).unwrap();
        let passages = corpus.passages(Limits::default());
        (corpus, passages)
    }

    #[test]
    fn publishing_makes_a_new_live_version_and_the_same_content_twice_is_a_no_op() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("idx");
        let (c1, p1) = corpus(tmp.path(), "approved");
        let first = publish(&root, &c1, &p1, None, DEFAULT_KEEP, |_, _| {}).unwrap();
        assert!(!first.unchanged && first.previous.is_none());
        assert!(first.version.id.starts_with("000001-") && valid_id(&first.version.id), "{}", first.version.id);
        assert_eq!(current(&root).unwrap().as_deref(), Some(first.version.id.as_str()));
        let index = Index::open(&root).unwrap();
        assert_eq!(index.version(), Some(first.version.id.as_str()));
        assert_eq!(index.dir(), root.join(VERSIONS).join(&first.version.id));
        // The same corpus again: nothing built, nothing switched.
        let again = publish(&root, &c1, &p1, None, DEFAULT_KEEP, |_, _| {}).unwrap();
        assert!(again.unchanged && again.version == first.version);
        // A withdrawal is new content: version 2, and the old one is kept.
        let (c2, p2) = corpus(tmp.path(), "withdrawn");
        let second = publish(&root, &c2, &p2, None, DEFAULT_KEEP, |_, _| {}).unwrap();
        assert!(second.version.id.starts_with("000002-"), "{}", second.version.id);
        assert_eq!(second.version.withdrawn, ["testra-b"]);
        assert_eq!(second.previous.as_deref(), Some(first.version.id.as_str()));
        assert!(root.join(VERSIONS).join(&first.version.id).join("onlabel-index.json").exists(), "kept for replicas still on it");
        assert_eq!(Index::open(&root).unwrap().version(), Some(second.version.id.as_str()));
    }

    #[test]
    fn pruning_keeps_the_most_recent_versions_and_keep_has_a_floor() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("idx");
        let (a, pa) = corpus(tmp.path(), "approved");
        let (w, pw) = corpus(tmp.path(), "withdrawn");
        let mut ids = Vec::new();
        for (c, p) in [(&a, &pa), (&w, &pw), (&a, &pa), (&w, &pw)] {
            ids.push(publish(&root, c, p, None, MIN_KEEP, |_, _| {}).unwrap().version.id);
        }
        let left: Vec<String> = list(&root).unwrap().into_iter().map(|v| v.id).collect();
        assert_eq!(left, ids[2..].to_vec(), "the two most recent");
        let e = publish(&root, &a, &pa, None, 1, |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("keep at least 2"), "{e}");
        assert_eq!(e.code(), "index_version");
    }

    #[test]
    fn a_flat_index_is_read_as_before_and_never_published_into() {
        let tmp = tempfile::tempdir().unwrap();
        let flat = tmp.path().join("flat");
        let (c, p) = corpus(tmp.path(), "approved");
        Index::build(&flat, &p, |_| {}).unwrap();
        let index = Index::open(&flat).unwrap();
        assert_eq!((index.version(), index.dir()), (None, flat.as_path()));
        let e = publish(&flat, &c, &p, None, DEFAULT_KEEP, |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("single index built by `onlabel ingest`"), "{e}");
        // A pointer naming no version, or holding something else, is a clear error.
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join(VERSIONS)).unwrap();
        assert!(Index::open(&root).unwrap_err().to_string().contains("no CURRENT pointer"));
        std::fs::write(root.join(CURRENT), "../../etc\n").unwrap();
        assert!(Index::open(&root).unwrap_err().to_string().contains("not a version id"));
        std::fs::write(root.join(CURRENT), "000009-0123456789ab\n").unwrap();
        assert!(Index::open(&root).unwrap_err().to_string().contains("which is not in"));
    }

    #[test]
    fn opening_a_published_version_writes_nothing_into_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("idx");
        let (c, p) = corpus(tmp.path(), "approved");
        let v = publish(&root, &c, &p, None, DEFAULT_KEEP, |_, _| {}).unwrap().version;
        let dir = root.join(VERSIONS).join(&v.id);
        let listing = |d: &Path| {
            let mut l: Vec<(String, u64, std::time::SystemTime)> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let m = e.metadata().unwrap();
                    (e.file_name().to_string_lossy().to_string(), m.len(), m.modified().unwrap())
                })
                .collect();
            l.sort();
            l
        };
        let before = listing(&dir);
        let index = Index::open(&root).unwrap();
        let f = super::super::Filter::for_role("rep", Some("testra"), chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        assert!(!index.search("liver enzymes", &f, 5).unwrap().hits.is_empty());
        drop(index);
        assert_eq!(listing(&dir), before, "no lock file, no meta change");
    }
}
