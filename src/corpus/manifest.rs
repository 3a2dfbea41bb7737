//! [`Manifest`]: the `manifest.toml` of a corpus folder, one `[[document]]` per file.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// What kind of material a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Prescribing Information (the label).
    Pi,
    /// An approved FAQ for reps.
    Faq,
    /// Important Safety Information.
    Isi,
    /// A Medical Information response letter.
    MedicalResponse,
}

impl Kind {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pi => "pi",
            Kind::Faq => "faq",
            Kind::Isi => "isi",
            Kind::MedicalResponse => "medical-response",
        }
    }
}

/// Who may use a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Audience {
    /// Reps may use it with HCPs.
    Promotional,
    /// Medical only; never shown to a rep.
    Medical,
}

impl Audience {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Promotional => "promotional",
            Audience::Medical => "medical",
        }
    }
}

/// MLR approval status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Approved for use (until `expires_on`).
    Approved,
    /// Withdrawn: never retrieved, even if still indexed.
    Withdrawn,
}

impl Status {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Approved => "approved",
            Status::Withdrawn => "withdrawn",
        }
    }
}

/// One `[[document]]` entry as written (dates still strings, so that a bad
/// date can be reported with the document id).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    file: String,
    product: String,
    kind: String,
    audience: String,
    mlr_number: String,
    approved_on: toml::Value,
    expires_on: toml::Value,
    status: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    document: Vec<RawEntry>,
}

/// A validated manifest entry: the MLR metadata of one document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocMeta {
    /// Stable id, used in citations.
    pub id: String,
    /// File path relative to the corpus folder.
    pub file: PathBuf,
    /// Product (brand) the rep sells; lower-cased.
    pub product: String,
    /// Kind of material.
    pub kind: Kind,
    /// Who may use it.
    pub audience: Audience,
    /// MLR approval code.
    pub mlr_number: String,
    /// Date of MLR approval.
    pub approved_on: NaiveDate,
    /// Last day of validity.
    pub expires_on: NaiveDate,
    /// Approval status.
    pub status: Status,
}

/// A parsed and validated `manifest.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its documents, in file order.
    pub documents: Vec<DocMeta>,
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::ManifestIo { path: path.to_owned(), source: e })?;
        Manifest::parse(path, &text)
    }

    /// Parses and validates manifest text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest> {
        let raw: RawManifest = toml::from_str(text)
            .map_err(|e| Error::ManifestParse { path: path.to_owned(), message: e.to_string() })?;
        let mut documents = Vec::with_capacity(raw.document.len());
        let mut seen = std::collections::HashSet::new();
        for e in raw.document {
            let bad = |message: String| Error::BadField { path: path.to_owned(), id: e.id.clone(), message };
            if e.id.trim().is_empty() || e.id.contains(char::is_whitespace) || e.id.contains('§') {
                return Err(bad("id must be non-empty, without spaces or '§'".into()));
            }
            if !seen.insert(e.id.clone()) {
                return Err(Error::DuplicateId { path: path.to_owned(), id: e.id });
            }
            let kind = match e.kind.as_str() {
                "pi" => Kind::Pi,
                "faq" => Kind::Faq,
                "isi" => Kind::Isi,
                "medical-response" => Kind::MedicalResponse,
                other => return Err(bad(format!("kind {other:?} is not one of pi, faq, isi, medical-response"))),
            };
            let audience = match e.audience.as_str() {
                "promotional" => Audience::Promotional,
                "medical" => Audience::Medical,
                other => return Err(bad(format!("audience {other:?} is not one of promotional, medical"))),
            };
            let status = match e.status.as_str() {
                "approved" => Status::Approved,
                "withdrawn" => Status::Withdrawn,
                other => return Err(bad(format!("status {other:?} is not one of approved, withdrawn"))),
            };
            if e.product.trim().is_empty() {
                return Err(bad("product must not be empty".into()));
            }
            if e.mlr_number.trim().is_empty() {
                return Err(bad("mlr_number must not be empty: every approved material carries its MLR code".into()));
            }
            let approved_on = parse_date(path, &e.id, "approved_on", &e.approved_on)?;
            let expires_on = parse_date(path, &e.id, "expires_on", &e.expires_on)?;
            if expires_on < approved_on {
                return Err(bad(format!("expires_on {expires_on} is before approved_on {approved_on}")));
            }
            documents.push(DocMeta {
                id: e.id,
                file: PathBuf::from(e.file),
                product: e.product.trim().to_lowercase(),
                kind,
                audience,
                mlr_number: e.mlr_number,
                approved_on,
                expires_on,
                status,
            });
        }
        Ok(Manifest { path: path.to_owned(), documents })
    }
}

fn parse_date(path: &Path, id: &str, field: &'static str, v: &toml::Value) -> Result<NaiveDate> {
    let bad = |value: String| Error::BadDate { path: path.to_owned(), id: id.to_owned(), field, value };
    match v {
        toml::Value::Datetime(dt) => match (dt.date, dt.time) {
            (Some(d), None) => NaiveDate::from_ymd_opt(d.year as i32, d.month as u32, d.day as u32)
                .ok_or_else(|| bad(dt.to_string())),
            _ => Err(bad(dt.to_string())),
        },
        toml::Value::String(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad(s.clone())),
        other => Err(bad(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[document]]
id = "x-pi"
file = "x.md"
product = "Xeno"
kind = "pi"
audience = "promotional"
mlr_number = "US-X-1"
approved_on = "2026-01-15"
expires_on = 2027-01-15
status = "approved"
"#;

    #[test]
    fn parses_good_manifest() {
        let m = Manifest::parse(Path::new("m.toml"), GOOD).unwrap();
        assert_eq!(m.documents[0].product, "xeno");
        assert_eq!(m.documents[0].expires_on, NaiveDate::from_ymd_opt(2027, 1, 15).unwrap());
    }

    #[test]
    fn unknown_field_is_named() {
        let text = GOOD.replace("status", "colour = \"red\"\nstatus");
        let e = Manifest::parse(Path::new("m.toml"), &text).unwrap_err().to_string();
        assert!(e.contains("m.toml") && e.contains("colour"), "{e}");
    }

    #[test]
    fn bad_date_is_named() {
        let text = GOOD.replace("\"2026-01-15\"", "\"2026-13-45\"");
        let e = Manifest::parse(Path::new("m.toml"), &text).unwrap_err();
        assert!(matches!(e, Error::BadDate { field: "approved_on", .. }), "{e}");
        assert!(e.to_string().contains("2026-13-45"));
    }

    #[test]
    fn duplicate_id_is_an_error() {
        let text = format!("{GOOD}\n{GOOD}");
        let e = Manifest::parse(Path::new("m.toml"), &text).unwrap_err();
        assert!(matches!(e, Error::DuplicateId { ref id, .. } if id == "x-pi"), "{e}");
    }

    #[test]
    fn bad_enum_value_lists_allowed() {
        let text = GOOD.replace("\"approved\"", "\"maybe\"");
        let e = Manifest::parse(Path::new("m.toml"), &text).unwrap_err().to_string();
        assert!(e.contains("approved, withdrawn"), "{e}");
    }
}
