//! Product resolution: which product a question is about — the one given,
//! the one it names (brand, generic name, or a name in the guard's drug
//! vocabulary), or the index's only product ([`Resolved`]).

use chrono::NaiveDate;

use crate::corpus::Passage;
use crate::index::Filter;

use super::{Ask, Copilot};

/// How the product of a question was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// `--product` (or the request's `product`) gave it.
    Given(String),
    /// The question names it (brand or generic name), and no other product of the index.
    Named(String),
    /// The index holds only this product.
    Only(String),
    /// No product given or named, and the index holds several: these (the
    /// ones the question names, if it names more than one; else all).
    Several(Vec<String>),
}

impl Resolved {
    /// The single product, if there is one.
    pub fn product(&self) -> Option<&str> {
        match self {
            Resolved::Given(p) | Resolved::Named(p) | Resolved::Only(p) => Some(p),
            Resolved::Several(_) => None,
        }
    }
}

/// A product of the index and the names a question may call it by.
#[derive(Debug, Clone)]
pub(super) struct ProductNames {
    /// The product id (lower-case, as in the manifest).
    pub(super) product: String,
    /// Lower-case names: the product id, its brand as printed, generic names
    /// the label gives in parentheses after the brand ("HUMIRA (adalimumab)").
    pub(super) names: Vec<String>,
}

/// Generic names a label gives after its brand: `BRAND (generic …)`.
fn generic_names(product: &str, texts: &[&str]) -> Vec<String> {
    let pat = format!(r"(?i)\b{}\s*(?:®|\(r\))?\s*\(([a-z][a-z -]{{2,40}}?)\)", regex::escape(product));
    let Ok(re) = regex::Regex::new(&pat) else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for t in texts {
        for c in re.captures_iter(t) {
            let g = c[1].trim().to_lowercase();
            let first = g.split_whitespace().next().unwrap_or("").to_string();
            for n in [g, first] {
                if n.len() >= 4 && n != product && !out.contains(&n) && !["see", "with", "and", "for", "the"].contains(&n.as_str()) {
                    out.push(n);
                }
            }
        }
        if out.len() >= 4 {
            break;
        }
    }
    out
}

/// Whether `name` occurs in lower-case `text` as whole words.
pub(super) fn names_in(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric()) && after.is_none_or(|c| !c.is_alphanumeric())
    })
}

impl Copilot {
    /// The index's products with the names a question may use for them
    /// (every indexed document counts, withdrawn and expired ones too: the
    /// rep still means that product).
    pub(super) fn product_names(&self) -> &[ProductNames] {
        self.products.get_or_init(|| {
            let all = Filter {
                product: None,
                audiences: vec![crate::corpus::Audience::Promotional, crate::corpus::Audience::Medical],
                as_of: NaiveDate::MIN,
            };
            let passages = match self.index.passages(&all) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "listing the index's products failed; questions without a product are answered across products");
                    return Vec::new();
                }
            };
            // The guard's drug vocabulary (brand | generic | common
            // misspellings, from the rules it was loaded with); none without a guard.
            let vocab: &[Vec<String>] = self.guard.as_deref().map(crate::guard::Guard::drug_vocabulary).unwrap_or_default();
            let mut by_product: std::collections::BTreeMap<String, Vec<&Passage>> = Default::default();
            for p in &passages {
                by_product.entry(p.product.to_lowercase()).or_default().push(p);
            }
            by_product
                .into_iter()
                .map(|(product, ps)| {
                    // The brand is printed at the head of the label: its first passages.
                    let mut head: Vec<&Passage> = ps.clone();
                    head.sort_by_key(|p| p.ordinal);
                    let texts: Vec<&str> = head.iter().map(|p| p.text.as_str()).collect();
                    let mut names = vec![product.clone()];
                    names.extend(generic_names(&product, &texts));
                    for g in vocab.iter().filter(|g| g.contains(&product)) {
                        names.extend(g.iter().filter(|n| n.len() >= 4).cloned());
                    }
                    names.sort();
                    names.dedup();
                    ProductNames { product, names }
                })
                .collect()
        })
    }

    /// The products the index holds (lower-case, sorted).
    pub fn products(&self) -> Vec<String> {
        self.product_names().iter().map(|p| p.product.clone()).collect()
    }

    /// Decides which product a question is about: the one given; else, in an
    /// index of several products, the one the question names (brand or
    /// generic name) — several named, or none, is [`Resolved::Several`] —
    /// and in an index of one product, that product.
    pub fn resolve_product(&self, ask: &Ask) -> Resolved {
        if let Some(p) = ask.product.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            return Resolved::Given(p.to_string());
        }
        let all = self.product_names();
        if let [only] = all {
            return Resolved::Only(only.product.clone());
        }
        let q = ask.question.to_lowercase();
        let named: Vec<String> = all.iter().filter(|p| p.names.iter().any(|n| names_in(&q, n))).map(|p| p.product.clone()).collect();
        match named.as_slice() {
            [one] => Resolved::Named(one.clone()),
            [] => Resolved::Several(all.iter().map(|p| p.product.clone()).collect()),
            _ => Resolved::Several(named),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_names_are_whole_words() {
        assert!(names_in("can humira be given with live vaccines?", "humira"));
        assert!(names_in("is atorvastatin ok?", "atorvastatin"));
        assert!(!names_in("is the humiran shortage over?", "humira"));
    }

    /// A passage of `product` for a test index.
    fn passage(product: &str, ordinal: u32, text: &str) -> Passage {
        use crate::corpus::{Audience, Kind, Status};
        Passage {
            doc_id: format!("{product}-pi"),
            section: "1".into(),
            title: "INDICATIONS AND USAGE".into(),
            parent: String::new(),
            product: product.into(),
            kind: Kind::Pi,
            audience: Audience::Promotional,
            mlr_number: "MLR-1".into(),
            approved_on: NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date"),
            expires_on: NaiveDate::from_ymd_opt(2099, 1, 1).expect("valid date"),
            status: Status::Approved,
            ordinal,
            text: text.into(),
            page: None,
        }
    }

    /// Product names come from the guard the copilot was given, so a rules
    /// folder given with `--rules` (here: one whose drug vocabulary calls
    /// Lipitor "zorvalin") changes which product a question names; without
    /// a guard there is no vocabulary, only the product id and the generic
    /// names the label prints.
    #[test]
    fn product_names_follow_the_guard_rules_loaded() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let index_dir = tmp.path().join("index");
        let passages = [
            passage("lipitor", 0, "LIPITOR (atorvastatin calcium) tablets are indicated to reduce the risk of myocardial infarction."),
            passage("humira", 0, "HUMIRA (adalimumab) is indicated for rheumatoid arthritis."),
        ];
        crate::index::Index::build(&index_dir, &passages, |_| {}).expect("index builds");
        let open = || crate::index::Index::open(&index_dir).expect("index opens");
        let as_of = NaiveDate::from_ymd_opt(2025, 1, 1).expect("valid date");
        let question = |q: &str| Ask { question: q.into(), product: None, role: "rep".into(), as_of };

        // The rules folder under review: the built-in files, with one more
        // name for Lipitor in the drug vocabulary.
        let root = tmp.path().join("rules-root");
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for f in [crate::guard::RULES_FILE, crate::guard::ELEMENTS_FILE, crate::guard::LEXICON_FILE] {
            std::fs::create_dir_all(root.join(f).parent().expect("has a parent")).expect("mkdir");
            let mut src = std::fs::read_to_string(repo.join(f)).expect("read rules file");
            if f == crate::guard::RULES_FILE {
                let from = "\"lipitor | atorvastatin |";
                assert!(src.contains(from), "the built-in vocabulary names lipitor");
                src = src.replacen(from, "\"lipitor | zorvalin | atorvastatin |", 1);
            }
            std::fs::write(root.join(f), src).expect("write rules file");
        }
        let custom = std::sync::Arc::new(crate::guard::Guard::from_dir(&root).expect("custom rules load"));
        assert!(custom.drug_vocabulary().iter().any(|g| g.contains(&"zorvalin".to_string())));
        let builtin = std::sync::Arc::new(crate::guard::Guard::builtin().expect("built-in rules load"));
        assert!(!builtin.drug_vocabulary().iter().any(|g| g.contains(&"zorvalin".to_string())));

        let c = Copilot::new(open()).with_guard(custom, as_of).expect("guard attaches");
        assert_eq!(c.resolve_product(&question("Is zorvalin safe with grapefruit juice?")), Resolved::Named("lipitor".into()));
        // A misspelling only the vocabulary knows.
        assert_eq!(c.resolve_product(&question("Is lipator safe with grapefruit juice?")), Resolved::Named("lipitor".into()));

        let c = Copilot::new(open()).with_guard(builtin, as_of).expect("guard attaches");
        assert_eq!(c.resolve_product(&question("Is lipator safe with grapefruit juice?")), Resolved::Named("lipitor".into()));
        assert!(matches!(c.resolve_product(&question("Is zorvalin safe with grapefruit juice?")), Resolved::Several(_)));

        let c = Copilot::new(open());
        assert!(matches!(c.resolve_product(&question("Is lipator safe with grapefruit juice?")), Resolved::Several(_)));
        // The label's own generic name still counts without a guard.
        assert_eq!(c.resolve_product(&question("Is atorvastatin safe with grapefruit juice?")), Resolved::Named("lipitor".into()));
    }

    #[test]
    fn generic_names_come_from_brand_parentheses() {
        let g = generic_names("lipitor", &["LIPITOR® (atorvastatin calcium) Tablets for oral use", "LIPITOR (see 5.1)"]);
        assert_eq!(g, ["atorvastatin calcium", "atorvastatin"]);
    }
}
