//! [`live_prompt`]: the prompt template the copilot may run, checked against
//! the registry (what `onlabel ask` and `onlabel serve` load).

use std::path::Path;

use super::{sha256_hex, Error, Registry};
use super::PromptFile;
use crate::store::Store;

/// The prompt template the copilot may run, checked against the registry.
///
/// The template's name is its file stem (`prompts/objection.j2` →
/// `objection`). When the registry knows that name, only its live, approved
/// version may run: [`Registry::live`] checks the registered file and its
/// signature, and the file at `path` (`--prompt`) must hash to that version
/// too; anything else is refused with the approval that is missing
/// ([`Error::Altered`] names both hashes). The version shown is then the
/// registry's `name@N`. A name the registry has never seen (a fresh clone, a
/// demo) runs with the version in the template's header, and its SHA-256 is
/// recorded all the same. `root` is the repository root the registry's paths
/// are relative to.
pub fn live_prompt(path: &Path, store: &Store, root: &Path) -> crate::Result<PromptFile> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("prompt").to_string();
    let reg = Registry::new(store, root);
    if reg.versions(Some(&name))?.is_empty() {
        return Ok(PromptFile::read(path)?);
    }
    let live = reg.live(&name)?;
    let sha = sha256_hex(&bytes);
    if sha != live.version.sha256 {
        return Err(Error::Altered {
            path: path.to_owned(),
            approved: live.id(),
            approved_sha256: live.version.sha256.clone(),
            disk_sha256: sha,
            hint: format!(
                "--prompt is not the approved {} (registered at {}); run from the repository root (or set ONLABEL_ROOT) and use that file",
                live.id(),
                live.version.source_path
            ),
        }
        .into());
    }
    let version = u32::try_from(live.version.version).unwrap_or(u32::MAX);
    Ok(PromptFile { name, version, source: live.content })
}

/// A template the copilot runs by name without a `--prompt` path (the draft
/// templates `email` and `summary`): when the registry knows the name, its
/// live, approved version ([`Registry::live`] checks the registered file and
/// its signature, so an altered or unapproved file is refused with the
/// approval that is missing); otherwise `prompts/NAME.j2` under `root` with
/// the version of its header; `None` when neither exists (the caller then
/// uses the template compiled into the build).
pub fn live_template(name: &str, store: &Store, root: &Path) -> crate::Result<Option<PromptFile>> {
    let reg = Registry::new(store, root);
    if !reg.versions(Some(name))?.is_empty() {
        let live = reg.live(name)?;
        let version = u32::try_from(live.version.version).unwrap_or(u32::MAX);
        return Ok(Some(PromptFile { name: name.to_string(), version, source: live.content }));
    }
    let path = root.join("prompts").join(format!("{name}.j2"));
    if !path.is_file() {
        return Ok(None);
    }
    Ok(Some(PromptFile::read(&path)?))
}
