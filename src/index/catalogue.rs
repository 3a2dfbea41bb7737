//! [`Catalogue`]: what an index holds, by document — every document `ingest`
//! indexed, withdrawn and expired ones included, with its product, MLR
//! number and validity, so that a listing shows what was indexed and what
//! can be cited today.
//!
//! `ingest` writes it beside the index ([`CATALOGUE`], see [`write`]);
//! `onlabel products`, the server's `GET /api/v1/products` and the product
//! check of `email`/`summarize` read it ([`Catalogue::read`]). An index
//! built before the catalogue existed is listed from its passages (approved
//! documents only, without approval dates): [`Catalogue::rebuilt`] says so.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Error, Filter, Index, Result};
use crate::corpus::{Audience, Corpus, Passage};

/// The catalogue file beside the index.
pub const CATALOGUE: &str = "onlabel-documents.json";

/// The folder beside the index holding a copy of each indexed PDF, so that
/// the approved original can be shown (`GET /api/v1/documents/{id}/file`)
/// by a server that has only the index: see [`pdf_copy`].
pub const DOCUMENTS: &str = "documents";

/// Where the copy of document `doc_id`'s PDF is kept in the index at `dir`:
/// `documents/HEX(id).pdf` (the id hex-encoded, so that no id can name a
/// path outside the folder).
pub fn pdf_copy(dir: &Path, doc_id: &str) -> std::path::PathBuf {
    dir.join(DOCUMENTS).join(format!("{}.pdf", hex::encode(doc_id.as_bytes())))
}

/// What to tell the reader of a [`Catalogue::rebuilt`] listing.
pub const REBUILT_NOTE: &str =
    "this index predates its document catalogue; withdrawn documents are not listed (re-run `onlabel ingest` to list them)";

/// One indexed document as the catalogue records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Document id (used in citations).
    pub id: String,
    /// Product, lower-case.
    pub product: String,
    /// pi, faq, isi or medical-response.
    pub kind: String,
    /// promotional or medical.
    pub audience: String,
    /// The MLR approval code.
    pub mlr_number: String,
    /// MLR approval date (unknown for indexes built before the catalogue).
    pub approved_on: Option<NaiveDate>,
    /// Last valid day.
    pub expires_on: NaiveDate,
    /// approved or withdrawn.
    pub status: String,
    /// Passages indexed.
    pub passages: usize,
}

impl Entry {
    /// Whether the document can be cited on `day`, and if not, why:
    /// `current`, `withdrawn` or `expired`.
    pub fn standing(&self, day: NaiveDate) -> &'static str {
        if self.status == "withdrawn" {
            "withdrawn"
        } else if self.expires_on < day {
            "expired"
        } else {
            "current"
        }
    }
}

/// Writes the catalogue of `corpus` into the (already swapped-in) index
/// directory `dir`, and copies every PDF document there ([`pdf_copy`]; their
/// size is already bounded by the corpus `Limits`).
pub fn write(dir: &Path, corpus: &Corpus, passages: &[Passage]) -> Result<()> {
    let docs = dir.join(DOCUMENTS);
    if docs.exists() {
        std::fs::remove_dir_all(&docs).map_err(|source| Error::Io { path: docs.clone(), source })?;
    }
    for d in corpus.documents.iter().filter(|d| !d.page_text.is_empty()) {
        std::fs::create_dir_all(&docs).map_err(|source| Error::Io { path: docs.clone(), source })?;
        let to = pdf_copy(dir, &d.meta.id);
        std::fs::copy(&d.source, &to).map_err(|source| Error::Io { path: to.clone(), source })?;
    }
    let entries: Vec<Entry> = corpus
        .documents
        .iter()
        .map(|d| {
            let m = &d.meta;
            Entry {
                id: m.id.clone(),
                product: m.product.clone(),
                kind: m.kind.as_str().into(),
                audience: m.audience.as_str().into(),
                mlr_number: m.mlr_number.clone(),
                approved_on: Some(m.approved_on),
                expires_on: m.expires_on,
                status: m.status.as_str().into(),
                passages: passages.iter().filter(|p| p.doc_id == m.id).count(),
            }
        })
        .collect();
    let path = dir.join(CATALOGUE);
    let json = serde_json::to_vec_pretty(&entries).map_err(|source| Error::Catalogue { path: dir.to_owned(), source })?;
    std::fs::write(&path, json).map_err(|source| Error::Io { path: path.clone(), source })?;
    Ok(())
}

/// The documents of one index.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// Every document, in the catalogue's order (by id when rebuilt).
    pub entries: Vec<Entry>,
    /// The index has no catalogue file: the entries were rebuilt from its
    /// passages, so withdrawn documents and approval dates are missing
    /// (show [`REBUILT_NOTE`]).
    pub rebuilt: bool,
}

impl Catalogue {
    /// Reads the catalogue of the index at `dir` (a flat index or a
    /// versioned root, see [`super::versions`]), or rebuilds what it can
    /// from the passages. The index itself must open ([`Error::Missing`] and
    /// the other index errors otherwise); a catalogue file that is not the
    /// JSON [`write`] writes is [`Error::Catalogue`].
    pub fn read(dir: &Path) -> Result<Catalogue> {
        Catalogue::of(&Index::open(dir)?)
    }

    /// The catalogue of an open index (of the version it was opened at, for
    /// a versioned root), as [`Catalogue::read`].
    pub fn of(index: &Index) -> Result<Catalogue> {
        let dir = index.dir();
        if let Ok(bytes) = std::fs::read(dir.join(CATALOGUE)) {
            let entries = serde_json::from_slice(&bytes).map_err(|source| Error::Catalogue { path: dir.to_owned(), source })?;
            return Ok(Catalogue { entries, rebuilt: false });
        }
        let all = Filter { product: None, audiences: vec![Audience::Promotional, Audience::Medical], as_of: super::ANY_DATE };
        let mut by_id: BTreeMap<String, Entry> = BTreeMap::new();
        for p in index.passages(&all)? {
            by_id
                .entry(p.doc_id.clone())
                .or_insert_with(|| Entry {
                    id: p.doc_id.clone(),
                    product: p.product.clone(),
                    kind: p.kind.as_str().into(),
                    audience: p.audience.as_str().into(),
                    mlr_number: p.mlr_number.clone(),
                    approved_on: None,
                    expires_on: p.expires_on,
                    status: p.status.as_str().into(),
                    passages: 0,
                })
                .passages += 1;
        }
        Ok(Catalogue { entries: by_id.into_values().collect(), rebuilt: true })
    }

    /// The products the index holds (lower-case, sorted, each once).
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.entries.iter().map(|e| e.product.clone()).collect();
        n.sort();
        n.dedup();
        n
    }

    /// The listing the server's `GET /api/v1/products` shows:
    /// `{"products": [{"name", "documents": [entry + "standing" + "doc_id"]}]}`,
    /// standing judged on `day`.
    pub fn listing(&self, day: NaiveDate) -> serde_json::Value {
        let mut by_product: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for e in &self.entries {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["standing"] = e.standing(day).into();
            v["doc_id"] = e.id.clone().into();
            by_product.entry(e.product.clone()).or_default().push(v);
        }
        let products: Vec<serde_json::Value> =
            by_product.into_iter().map(|(name, documents)| serde_json::json!({"name": name, "documents": documents})).collect();
        serde_json::json!({"products": products})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(product: &str, status: &str, expires_on: NaiveDate) -> Entry {
        Entry {
            id: format!("{product}-pi"),
            product: product.into(),
            kind: "pi".into(),
            audience: "promotional".into(),
            mlr_number: "MLR-1".into(),
            approved_on: None,
            expires_on,
            status: status.into(),
            passages: 3,
        }
    }

    #[test]
    fn standing_is_withdrawn_before_expired_before_current() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 10).unwrap_or_default();
        let before = NaiveDate::from_ymd_opt(2026, 1, 9).unwrap_or_default();
        assert_eq!(entry("a", "withdrawn", before).standing(day), "withdrawn");
        assert_eq!(entry("a", "approved", before).standing(day), "expired");
        assert_eq!(entry("a", "approved", day).standing(day), "current");
    }

    #[test]
    fn names_and_listing_group_by_product() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 10).unwrap_or_default();
        let c = Catalogue { entries: vec![entry("b", "approved", day), entry("a", "approved", day), entry("b", "withdrawn", day)], rebuilt: false };
        assert_eq!(c.names(), vec!["a".to_string(), "b".to_string()]);
        let l = c.listing(day);
        assert_eq!(l["products"][1]["name"], "b");
        assert_eq!(l["products"][1]["documents"][1]["standing"], "withdrawn");
        assert_eq!(l["products"][0]["documents"][0]["doc_id"], "a-pi");
    }
}
