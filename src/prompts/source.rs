//! Where a registered artefact may live: a regular file under `prompts/`,
//! `rules/` or `lexicon/` of the registry's root, reached without a symlink,
//! and read with a size limit.
//!
//! A proposal copies the file's content into the store, and any role that
//! may read versions can read it back; so a path that led outside those
//! folders (`../../etc/passwd`, an absolute path, `prompts/link.j2` → a
//! secret elsewhere, the demo's tokens file) would turn "propose" into "read
//! any file the server can". [`confine`] resolves the path itself, component
//! by component, refusing `..`, absolute paths outside the root and every
//! symlink, then checks that the file opened is the file checked.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::{Error, Result};

/// The folders of the root a registered artefact may live in.
pub const ARTEFACT_DIRS: [&str; 3] = ["prompts", "rules", "lexicon"];

/// Largest artefact accepted, bytes (the biggest shipped, the AE lexicon, is
/// about 60 KB).
pub const MAX_ARTEFACT_BYTES: u64 = 1024 * 1024;

fn refuse(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::BadPath { path: path.to_owned(), reason: why.to_string() }
}

/// `template` (relative to `root`, or absolute inside it) checked to be a
/// regular file under one of [`ARTEFACT_DIRS`], reached without `..` and
/// without a symlink in any component below the root. Returns the full
/// path and the path relative to the root (what the registry stores).
pub fn confine(root: &Path, template: &Path) -> Result<(PathBuf, PathBuf)> {
    let root_c = root.canonicalize().map_err(|source| Error::Io { path: root.to_owned(), source })?;
    let rel = if template.is_absolute() {
        // An absolute path is accepted only when it names a place under the root.
        let abs = template
            .strip_prefix(&root_c)
            .or_else(|_| template.strip_prefix(root))
            .map_err(|_| refuse(template, format!("must be under {}/{{{}}}", root.display(), ARTEFACT_DIRS.join(","))))?;
        abs.to_path_buf()
    } else {
        template.to_path_buf()
    };
    let mut clean = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => clean.push(p),
            Component::CurDir => {}
            _ => return Err(refuse(template, "must be a path under the root without `..`")),
        }
    }
    let first = clean.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or("");
    if !ARTEFACT_DIRS.contains(&first) || clean.components().count() < 2 {
        return Err(refuse(template, format!("must be a file under {} of the root", ARTEFACT_DIRS.map(|d| format!("{d}/")).join(", "))));
    }
    // Every component below the root, checked without following it.
    let mut at = root_c.clone();
    for c in clean.components() {
        at.push(c);
        let meta = std::fs::symlink_metadata(&at).map_err(|source| Error::Io { path: at.clone(), source })?;
        if meta.file_type().is_symlink() {
            return Err(refuse(template, format!("{} is a symbolic link; a registered file must be a regular file under the root", at.display())));
        }
    }
    let meta = std::fs::symlink_metadata(&at).map_err(|source| Error::Io { path: at.clone(), source })?;
    if !meta.is_file() {
        return Err(refuse(template, "is not a regular file"));
    }
    Ok((at, clean))
}

/// Reads a confined file ([`confine`]) as UTF-8, at most
/// [`MAX_ARTEFACT_BYTES`], and checks that the file read is the one checked
/// (same device and inode: a component swapped for a symlink in between is
/// refused).
pub fn read_confined(root: &Path, template: &Path) -> Result<(String, PathBuf, PathBuf)> {
    let (full, rel) = confine(root, template)?;
    let checked = std::fs::symlink_metadata(&full).map_err(|source| Error::Io { path: full.clone(), source })?;
    let file = std::fs::File::open(&full).map_err(|source| Error::Io { path: full.clone(), source })?;
    let opened = file.metadata().map_err(|source| Error::Io { path: full.clone(), source })?;
    if !same_file(&checked, &opened) {
        return Err(refuse(template, "changed while it was being read"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_ARTEFACT_BYTES + 1).read_to_end(&mut bytes).map_err(|source| Error::Io { path: full.clone(), source })?;
    if bytes.len() as u64 > MAX_ARTEFACT_BYTES {
        return Err(refuse(template, format!("is over the {MAX_ARTEFACT_BYTES}-byte limit of a registered file")));
    }
    let text = String::from_utf8(bytes).map_err(|_| refuse(template, "is not UTF-8 text"))?;
    Ok((text, full, rel))
}

/// Writes `content` to a new file `rel` under the root (a proposal sent as
/// content, or a rollback restoring a version): the folder is created, then
/// confined like a read, and the file is replaced without following a symlink.
pub fn write_confined(root: &Path, rel: &Path, content: &str) -> Result<PathBuf> {
    if content.len() as u64 > MAX_ARTEFACT_BYTES {
        return Err(refuse(rel, format!("is over the {MAX_ARTEFACT_BYTES}-byte limit of a registered file")));
    }
    let parent = rel.parent().filter(|p| !p.as_os_str().is_empty()).ok_or_else(|| refuse(rel, "names no folder"))?;
    // Check the folders before creating anything, so nothing is made through a link.
    let root_c = root.canonicalize().map_err(|source| Error::Io { path: root.to_owned(), source })?;
    let mut at = root_c.clone();
    for c in parent.components() {
        let Component::Normal(p) = c else { return Err(refuse(rel, "must be a path under the root without `..`")) };
        at.push(p);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(refuse(rel, format!("{} is a symbolic link", at.display()))),
            Ok(m) if !m.is_dir() => return Err(refuse(rel, format!("{} is not a folder", at.display()))),
            Ok(_) => {}
            Err(_) => std::fs::create_dir(&at).map_err(|source| Error::Io { path: at.clone(), source })?,
        }
    }
    let name = rel.file_name().ok_or_else(|| refuse(rel, "names no file"))?;
    let full = at.join(name);
    if let Ok(m) = std::fs::symlink_metadata(&full) {
        if !m.is_file() {
            return Err(refuse(rel, "exists and is not a regular file"));
        }
    }
    // Written beside and renamed over: never through a link, never half-written.
    let tmp = at.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    std::fs::write(&tmp, content).map_err(|source| Error::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, &full).map_err(|source| Error::Io { path: full.clone(), source })?;
    confine(root, rel)?;
    Ok(full)
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for dir in ARTEFACT_DIRS {
            std::fs::create_dir_all(d.path().join(dir)).unwrap();
        }
        std::fs::write(d.path().join("prompts/ok.j2"), "hello").unwrap();
        d
    }

    #[test]
    fn a_file_under_an_artefact_folder_is_read() {
        let d = root();
        let (text, _, rel) = read_confined(d.path(), Path::new("prompts/ok.j2")).unwrap();
        assert_eq!((text.as_str(), rel.as_path()), ("hello", Path::new("prompts/ok.j2")));
        let (_, _, rel) = read_confined(d.path(), &d.path().join("prompts/./ok.j2")).unwrap();
        assert_eq!(rel, Path::new("prompts/ok.j2"), "an absolute path inside the root is stored relative");
    }

    #[test]
    fn probe_row4_paths_outside_the_artefact_folders_are_refused() {
        let d = root();
        std::fs::write(d.path().join("secret.txt"), "s").unwrap();
        std::fs::create_dir_all(d.path().join("data")).unwrap();
        std::fs::write(d.path().join("data/demo-tokens.txt"), "olt_x").unwrap();
        for bad in ["secret.txt", "data/demo-tokens.txt", "prompts/../secret.txt", "../secret.txt", "/etc/passwd", "prompts", "prompts/"] {
            let e = read_confined(d.path(), Path::new(bad)).unwrap_err();
            assert!(matches!(e, Error::BadPath { .. } | Error::Io { .. }), "{bad}: {e}");
            assert!(!e.to_string().contains("olt_x"));
        }
    }

    #[cfg(unix)]
    #[test]
    fn probe_row4_template_symlink_outside_root_is_refused() {
        let d = root();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), d.path().join("prompts/link.j2")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("rules/out")).unwrap();
        // Even a link that stays inside the root is refused: links are not followed at all.
        std::os::unix::fs::symlink(d.path().join("prompts/ok.j2"), d.path().join("lexicon/inside.txt")).unwrap();
        for bad in ["prompts/link.j2", "rules/out/secret.txt", "lexicon/inside.txt"] {
            let e = read_confined(d.path(), Path::new(bad)).unwrap_err();
            assert!(matches!(e, Error::BadPath { .. }), "{bad}: {e}");
            assert_eq!(e.code(), "bad_path");
        }
        // Writing through a linked folder is refused too, and nothing is written outside.
        let e = write_confined(d.path(), Path::new("rules/out/new.toml"), "x").unwrap_err();
        assert!(matches!(e, Error::BadPath { .. }), "{e}");
        assert!(!outside.path().join("new.toml").exists());
        // A symlink where the file goes is refused, never followed.
        assert!(matches!(write_confined(d.path(), Path::new("prompts/link.j2"), "new"), Err(Error::BadPath { .. })));
        assert_eq!(std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(), "top secret");
    }

    #[test]
    fn probe_row11_a_registered_file_is_read_with_its_limit() {
        let d = root();
        let big = vec![b'a'; MAX_ARTEFACT_BYTES as usize + 1];
        std::fs::write(d.path().join("lexicon/big.txt"), big).unwrap();
        let e = read_confined(d.path(), Path::new("lexicon/big.txt")).unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        std::fs::write(d.path().join("prompts/bin.j2"), [0xff, 0xfe]).unwrap();
        assert!(read_confined(d.path(), Path::new("prompts/bin.j2")).unwrap_err().to_string().contains("UTF-8"));
    }
}
