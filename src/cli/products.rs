//! `onlabel products --index DIR`: what a rep can ask about — the products in
//! an index, each with its documents, MLR numbers and validity, from the
//! index's document catalogue ([`crate::index::catalogue`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::Args;

use super::{error, outln, EXIT_OK};
use crate::index::catalogue::{Catalogue, Entry, REBUILT_NOTE};

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

/// Reads the catalogue of the index at `dir` ([`Catalogue::read`]), printing
/// [`REBUILT_NOTE`] on stderr when it had to be rebuilt from the passages; a
/// damaged index or catalogue names the directory and says to re-run `ingest`.
pub fn read(dir: &Path) -> anyhow::Result<Catalogue> {
    let c = Catalogue::read(dir).map_err(error::index_error)?;
    if c.rebuilt {
        eprintln!("note: {REBUILT_NOTE}");
    }
    Ok(c)
}

/// Runs `onlabel products`.
pub fn run(a: &ProductsArgs, json: bool) -> anyhow::Result<i32> {
    let dir = a.index.as_deref().ok_or(error::Error::NoIndex)?;
    let day = a.as_of.unwrap_or_else(super::today);
    let want = a.product.as_deref().map(|p| p.trim().to_lowercase());
    let mut products: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for e in read(dir)?.entries {
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
                            o.insert("standing".into(), d.standing(day).into());
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
        let current = docs.iter().filter(|d| d.standing(day) == "current").count();
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
                d.standing(day)
            );
        }
    }
    Ok(EXIT_OK)
}
