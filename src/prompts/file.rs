//! [`PromptFile`]: a prompt template as read from disk (or from the
//! registry's live version), with the name and version it declares.

use std::path::Path;

/// The prompt template file and its version.
#[derive(Debug, Clone)]
pub struct PromptFile {
    /// Name (`objection`).
    pub name: String,
    /// Version number from the template's header.
    pub version: u32,
    /// Template source.
    pub source: String,
}

impl PromptFile {
    /// Reads a template; its header comment must carry `version: N`.
    pub fn read(path: &Path) -> Result<PromptFile, crate::llm::Error> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| crate::llm::Error::Io { path: path.to_owned(), source: e })?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("prompt").to_string();
        let version = source
            .lines()
            .find_map(|l| l.trim().strip_prefix("version:").and_then(|v| v.trim().parse().ok()))
            .ok_or_else(|| crate::llm::Error::Template(format!("{} has no `version: N` line in its header", path.display())))?;
        Ok(PromptFile { name, version, source })
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}
