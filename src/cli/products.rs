//! `onlabel products --index DIR`: what a rep can ask about — the products in
//! an index, each with its documents, MLR numbers and validity.
//!
//! `ingest` writes a catalogue of every document it indexed
//! (`onlabel-documents.json` in the index directory), withdrawn and expired
//! ones included, so that the listing shows what was indexed and what can be
//! cited today. An index built before the catalogue existed is listed from
//! its passages (approved documents only, without approval dates).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::{error, outln, EXIT_OK};
use crate::corpus::{Corpus, Passage};
use crate::index::{Filter, Index};

/// The catalogue file beside the index.
pub const CATALOGUE: &str = "onlabel-documents.json";

/// Options of `onlabel products`.
#[derive(Debug, Args)]
pub struct ProductsArgs {
    /// The index built by `onlabel ingest`; default: the config file's `index`.
    #[arg(long, env = "ONLABEL_INDEX")]
    pub index: Option<PathBuf>,
    /// Only this product.
    #[arg(long)]
    product: Option<String>,
    /// Judge expiry on this date (YYYY-MM-DD) instead of today.
    #[arg(long, value_parser = super::parse_date)]
    as_of: Option<NaiveDate>,
}

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

/// Writes the catalogue of `corpus` into the (already swapped-in) index directory.
pub fn write_catalogue(dir: &Path, corpus: &Corpus, passages: &[Passage]) -> anyhow::Result<()> {
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
    let json = serde_json::to_vec_pretty(&entries)?;
    std::fs::write(&path, json).map_err(|source| crate::index::Error::Io { path: path.clone(), source })?;
    Ok(())
}

/// Reads the catalogue, or rebuilds what it can from the passages.
fn entries(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let index = Index::open(dir).map_err(error::index_error)?;
    if let Ok(bytes) = std::fs::read(dir.join(CATALOGUE)) {
        return serde_json::from_slice(&bytes).map_err(|e| {
            error::Error::DamagedIndex { path: dir.to_owned(), detail: format!("{CATALOGUE}: {e}") }.into()
        });
    }
    let all = Filter {
        product: None,
        audiences: vec![crate::corpus::Audience::Promotional, crate::corpus::Audience::Medical],
        as_of: NaiveDate::MIN,
    };
    let mut by_id: BTreeMap<String, Entry> = BTreeMap::new();
    for p in index.passages(&all).map_err(error::index_error)? {
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
    eprintln!("note: this index predates its document catalogue; withdrawn documents are not listed (re-run `onlabel ingest` to list them)");
    Ok(by_id.into_values().collect())
}

/// The products an index holds (lower-case, sorted).
pub fn names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut n: Vec<String> = entries(dir)?.into_iter().map(|e| e.product).collect();
    n.sort();
    n.dedup();
    Ok(n)
}

/// Whether a document can be cited on `day`, and if not, why.
fn standing(e: &Entry, day: NaiveDate) -> &'static str {
    if e.status == "withdrawn" {
        "withdrawn"
    } else if e.expires_on < day {
        "expired"
    } else {
        "current"
    }
}

/// Runs `onlabel products`.
pub fn run(a: &ProductsArgs, json: bool) -> anyhow::Result<i32> {
    let dir = a.index.as_deref().ok_or(error::Error::NoIndex)?;
    let day = a.as_of.unwrap_or_else(super::today);
    let want = a.product.as_deref().map(|p| p.trim().to_lowercase());
    let mut products: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for e in entries(dir)? {
        if want.as_ref().is_none_or(|w| *w == e.product) {
            products.entry(e.product.clone()).or_default().push(e);
        }
    }
    if let (Some(w), true) = (&want, products.is_empty()) {
        return Err(error::Error::BadInput { field: "--product", reason: format!("no product {w:?} in the index at {}", dir.display()) }.into());
    }
    if json {
        let list: Vec<serde_json::Value> = products
            .iter()
            .map(|(p, docs)| {
                let docs: Vec<serde_json::Value> = docs
                    .iter()
                    .map(|d| {
                        let mut v = serde_json::to_value(d).unwrap_or_default();
                        if let Some(o) = v.as_object_mut() {
                            o.insert("standing".into(), standing(d, day).into());
                        }
                        v
                    })
                    .collect();
                serde_json::json!({"product": p, "documents": docs})
            })
            .collect();
        outln!("{}", super::signin::to_json(&serde_json::json!({"index": dir, "as_of": day, "products": list})));
        return Ok(EXIT_OK);
    }
    if products.is_empty() {
        outln!("no products in the index at {}", dir.display());
        return Ok(EXIT_OK);
    }
    for (p, docs) in &products {
        let current = docs.iter().filter(|d| standing(d, day) == "current").count();
        outln!("{p} ({} documents, {current} current on {day})", docs.len());
        outln!("  {:<28} {:<17} {:<12} {:<14} {:<11} {:<11} {}", "DOCUMENT", "KIND", "AUDIENCE", "MLR", "APPROVED", "EXPIRES", "STANDING");
        for d in docs {
            outln!(
                "  {:<28} {:<17} {:<12} {:<14} {:<11} {:<11} {}",
                d.id,
                d.kind,
                d.audience,
                d.mlr_number,
                d.approved_on.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
                d.expires_on.to_string(),
                standing(d, day)
            );
        }
    }
    Ok(EXIT_OK)
}

/// The listing the server's `GET /api/v1/products` shows:
/// `{"products": [{"name", "documents": [entry + "standing"]}]}`.
pub fn listing(dir: &Path, day: NaiveDate) -> anyhow::Result<serde_json::Value> {
    let mut by_product: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for e in entries(dir)? {
        let mut v = serde_json::to_value(&e)?;
        v["standing"] = standing(&e, day).into();
        v["doc_id"] = e.id.clone().into();
        by_product.entry(e.product.clone()).or_default().push(v);
    }
    let products: Vec<serde_json::Value> =
        by_product.into_iter().map(|(name, documents)| serde_json::json!({"name": name, "documents": documents})).collect();
    Ok(serde_json::json!({"products": products}))
}
