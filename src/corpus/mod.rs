//! [`Corpus`]: MLR-approved documents, their metadata and their passages.
//!
//! A corpus folder holds a `manifest.toml` (one `[[document]]` per file, see
//! [`manifest`]) and the files it names. Each file goes through the loader for
//! its format ([`pdf`], [`markdown`], [`text`], [`spl`], [`sections_json`]),
//! which yields [`Section`]s; [`chunk`] then cuts each section into
//! [`Passage`]s that never cross a section boundary.

pub mod chunk;
pub mod manifest;
pub mod markdown;
pub mod pdf;
pub mod sections_json;
pub mod spl;
pub mod structure;
pub mod text;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use manifest::{Audience, DocMeta, Kind, Manifest, Status};

/// What can go wrong while loading a corpus. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest could not be read.
    #[error("cannot read manifest {path}: {source}")]
    ManifestIo {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not valid TOML or has unknown/missing fields.
    #[error("invalid manifest {path}: {message}\n  hint: each [[document]] needs id, file, product, kind, audience, mlr_number, approved_on, expires_on, status and nothing else")]
    ManifestParse {
        /// The manifest's path.
        path: PathBuf,
        /// The parser's message (names the field and line).
        message: String,
    },
    /// A date field is not an ISO date.
    #[error("{path}: document {id:?} has a bad {field} {value:?}: expected a date like 2027-01-15")]
    BadDate {
        /// The manifest's path.
        path: PathBuf,
        /// The document id.
        id: String,
        /// Which field (`approved_on` or `expires_on`).
        field: &'static str,
        /// The value as written.
        value: String,
    },
    /// A field has a value outside its allowed set or is otherwise invalid.
    #[error("{path}: document {id:?}: {message}")]
    BadField {
        /// The manifest's path.
        path: PathBuf,
        /// The document id.
        id: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Two documents share an id (ids are used in citations and must be unique).
    #[error("{path}: duplicate document id {id:?}: ids are used in citations and must be unique across all corpora")]
    DuplicateId {
        /// The manifest (or second corpus) where the duplicate was found.
        path: PathBuf,
        /// The duplicated id.
        id: String,
    },
    /// A file named by the manifest does not exist.
    #[error("document {id:?}: file {path} does not exist (check `file =` in the manifest)")]
    MissingFile {
        /// The document id.
        id: String,
        /// The missing path.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than the loader accepts.
    #[error("{path} is {size} bytes, over the {limit}-byte limit for one document; split it or raise --max-doc-bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The PDF is encrypted; text cannot be extracted.
    #[error("{path} is an encrypted PDF: remove the password/encryption (e.g. `qpdf --decrypt in.pdf out.pdf`) and ingest again")]
    Encrypted {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a valid document of its format.
    #[error("{path} is corrupt or not a {format} file: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The expected format.
        format: &'static str,
        /// What was wrong.
        message: String,
    },
    /// Text extraction failed (including a panic inside pdf-extract).
    #[error("cannot extract text from {path}: {message}")]
    Extract {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The file extension is not one of the supported formats.
    #[error("{path}: unsupported file type; supported: .pdf, .md, .txt, .xml (SPL), .json (sections JSON)")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// The document yielded no usable text.
    #[error("{path}: no text could be extracted (a scanned image PDF needs OCR first)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl Error {
    /// The stable code (see [`crate::error::CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            Error::ManifestIo { .. } | Error::ManifestParse { .. } | Error::BadDate { .. } | Error::BadField { .. } | Error::DuplicateId { .. } => {
                "manifest_invalid"
            }
            Error::MissingFile { .. }
            | Error::Io { .. }
            | Error::TooLarge { .. }
            | Error::Encrypted { .. }
            | Error::Corrupt { .. }
            | Error::Extract { .. }
            | Error::UnsupportedFormat { .. }
            | Error::Empty { .. } => "document_invalid",
        }
    }
}

/// Result with the corpus [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Limits applied while loading; explicit so that they can be tested and raised.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_doc_bytes: u64,
    /// Target passage size in words (a passage never crosses a section).
    pub passage_words: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_doc_bytes: 50 * 1024 * 1024, passage_words: 90 }
    }
}

/// One section of a document as detected by a loader: the unit a citation names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// The citation label: `5.2`, `BW`, `Q3`, or the heading as printed.
    pub label: String,
    /// The section title for display (`Hepatotoxicity`).
    pub title: String,
    /// The section's own text (not its subsections'), paragraphs separated by `\n`.
    pub text: String,
    /// The enclosing section's title (`WARNINGS AND PRECAUTIONS` for 5.2,
    /// `OVERDOSAGE` for an old label's "Treatment"), searched with the title
    /// so that a subsection keeps its context.
    #[serde(default)]
    pub parent: String,
}

/// A loaded document: metadata plus sections.
#[derive(Debug, Clone)]
pub struct Document {
    /// The manifest entry.
    pub meta: DocMeta,
    /// Sections in reading order.
    pub sections: Vec<Section>,
    /// Pages (PDF) or 0 when the format has none; for throughput reports.
    pub pages: usize,
    /// The text of each page (PDF only, furniture stripped): what
    /// [`chunk::passages`] maps each passage's page from ([`pdf::PageMap`]).
    pub page_text: Vec<String>,
    /// The file the document was loaded from (`ingest` keeps a copy of a
    /// PDF with the index, so the approved original can be shown).
    pub source: PathBuf,
}

/// The retrieval unit: a run of sentences inside one section, with everything a
/// citation and a filter need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// Document id (`examplinib-pi`).
    pub doc_id: String,
    /// Section label (`5.2`).
    pub section: String,
    /// Section title (`Hepatotoxicity`).
    pub title: String,
    /// Enclosing section's title, if any (searched, not shown).
    #[serde(default)]
    pub parent: String,
    /// Product the rep sells.
    pub product: String,
    /// Document kind.
    pub kind: Kind,
    /// Who may see it.
    pub audience: Audience,
    /// MLR approval code printed on the material.
    pub mlr_number: String,
    /// Last day the material may be used.
    pub expires_on: NaiveDate,
    /// The MLR approval date: before it the material may not be used either.
    pub approved_on: NaiveDate,
    /// Approval status.
    pub status: Status,
    /// Position of the passage within its document (for stable ordering;
    /// with the document id, the passage's id in a citation's `source_url`).
    pub ordinal: u32,
    /// The passage text, verbatim from the document (normalised whitespace).
    pub text: String,
    /// The 1-based PDF page the passage starts on (PDF documents only; `None`
    /// for other formats or when the start could not be found on a page).
    #[serde(default)]
    pub page: Option<u32>,
}

impl Passage {
    /// The citation label `DOC_ID §SECTION`.
    pub fn citation(&self) -> String {
        format!("{} §{}", self.doc_id, self.section)
    }
}

/// A corpus: documents loaded from one or more corpus folders.
#[derive(Debug, Default)]
pub struct Corpus {
    /// Documents that loaded.
    pub documents: Vec<Document>,
    /// Documents that failed (only with `keep_going`); each error names its file.
    pub failures: Vec<Error>,
}

impl Corpus {
    /// Loads every document of every corpus folder. Without `keep_going` the
    /// first bad document is an error; with it, failures are collected and the
    /// others load. Manifest-level errors (unparseable manifest, duplicate ids)
    /// always fail, because nothing in that corpus can be trusted.
    pub fn load(dirs: &[PathBuf], limits: Limits, keep_going: bool) -> Result<Corpus> {
        let mut corpus = Corpus::default();
        let mut seen = std::collections::HashSet::new();
        for dir in dirs {
            let manifest_path = dir.join("manifest.toml");
            let manifest = Manifest::read(&manifest_path)?;
            for entry in manifest.documents {
                if !seen.insert(entry.id.clone()) {
                    return Err(Error::DuplicateId { path: manifest_path.clone(), id: entry.id });
                }
                match load_document(dir, entry, limits) {
                    Ok(doc) => corpus.documents.push(doc),
                    Err(e) if keep_going => {
                        tracing::warn!(error = %e, "document skipped");
                        corpus.failures.push(e)
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(corpus)
    }

    /// All passages of all documents, in document order.
    pub fn passages(&self, limits: Limits) -> Vec<Passage> {
        self.documents.iter().flat_map(|d| chunk::passages(d, limits.passage_words)).collect()
    }
}

/// Loads one document given its manifest entry, choosing the loader by extension.
pub fn load_document(dir: &Path, meta: DocMeta, limits: Limits) -> Result<Document> {
    let path = dir.join(&meta.file);
    let md = std::fs::metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile { id: meta.id.clone(), path: path.clone() },
        _ => Error::Io { path: path.clone(), source: e },
    })?;
    if md.len() > limits.max_doc_bytes {
        return Err(Error::TooLarge { path, size: md.len(), limit: limits.max_doc_bytes });
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
    let faq = meta.kind == Kind::Faq;
    let mut page_text = Vec::new();
    let (sections, pages) = if name.ends_with(".pdf") {
        page_text = pdf::extract_pages(&path)?;
        (structure::detect(&page_text.join("\n\u{c}\n"), faq), page_text.len())
    } else if name.ends_with(".md") || name.ends_with(".markdown") {
        (markdown::load(&read_text(&path)?, faq), 0)
    } else if name.ends_with(".txt") {
        (text::load(&read_text(&path)?, faq), 0)
    } else if name.ends_with(".xml") {
        (spl::load(&path, &read_text(&path)?)?, 0)
    } else if name.ends_with(".json") {
        (sections_json::load(&path, &read_text(&path)?)?, 0)
    } else {
        return Err(Error::UnsupportedFormat { path });
    };
    // A heading that is itself the statement ("4.1 Active liver disease, which
    // may include unexplained persistent elevations…") is its own text.
    let sections: Vec<Section> = sections
        .into_iter()
        .map(|mut s| {
            if s.text.trim().is_empty() && s.title.split_whitespace().count() >= 3 && s.label != s.title {
                s.text = s.title.clone();
            }
            s
        })
        .filter(|s| !s.text.trim().is_empty())
        .collect();
    if sections.is_empty() {
        return Err(Error::Empty { path });
    }
    // Numbered subsections take their parent from the top-level section's title.
    let tops: std::collections::HashMap<String, String> =
        sections.iter().filter(|s| !s.label.contains('.')).map(|s| (s.label.clone(), s.title.clone())).collect();
    let sections: Vec<Section> = sections
        .into_iter()
        .map(|mut s| {
            if s.parent.is_empty() {
                if let Some((top, _)) = s.label.split_once('.') {
                    if let Some(t) = tops.get(top) {
                        s.parent = t.clone();
                    }
                }
            }
            s
        })
        .collect();
    tracing::debug!(doc = %meta.id, sections = sections.len(), "loaded");
    Ok(Document { meta, sections, pages, page_text, source: path })
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io { path: path.to_owned(), source: e })?;
    String::from_utf8(bytes).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        format: "UTF-8 text",
        message: format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
    })
}

/// Normalises extracted text: NFKC (fixes ligatures such as U+FB01), unifies
/// quotes, dashes and spaces, and collapses runs of spaces within a line.
pub fn normalize(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::with_capacity(text.len());
    for line in text.nfkc().collect::<String>().lines() {
        let mut prev_space = true;
        let mut buf = String::with_capacity(line.len());
        for c in line.chars() {
            let c = match c {
                '\u{2018}' | '\u{2019}' => '\'',
                '\u{201C}' | '\u{201D}' => '"',
                '\u{00A0}' | '\t' => ' ',
                c => c,
            };
            if c == ' ' {
                if !prev_space {
                    buf.push(' ');
                }
                prev_space = true;
            } else if !c.is_control() {
                buf.push(c);
                prev_space = false;
            }
        }
        out.push_str(buf.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_fixes_ligatures_and_spaces() {
        assert_eq!(normalize("signi\u{FB01}cant  risk\u{2019}s\t x"), "significant risk's x\n");
    }
}
