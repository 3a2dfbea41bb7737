//! [`Thresholds`]: the eval results a version must reach before it may be
//! approved, kept in the repository (`evals/thresholds.toml`) so that a change
//! to them is itself reviewed.
//!
//! ```toml
//! [[gate]]
//! kind = "prompt"                 # prompt | rules | lexicon
//! suite = "evals/demo.jsonl"      # relative to the repository root
//! min = { route_accuracy = 0.9, citation_recall = 0.8 }
//! ```
//!
//! A version of kind K needs, for every gate of kind K, a recorded run of
//! that exact version on the gate's suite *as the suite is now* (the run's
//! suite SHA-256 must equal the file's) whose metrics reach every minimum. A
//! metric the run did not measure (`null`) does not reach its minimum.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Error, Kind, Result};

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// One gate per (kind, suite).
    #[serde(default)]
    pub gate: Vec<Gate>,
    /// The file it came from.
    #[serde(skip)]
    pub path: PathBuf,
    /// Its SHA-256 (recorded with every eval run).
    #[serde(skip)]
    pub sha256: String,
}

/// The minimums for one kind of artefact on one suite.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// The kind of artefact this gate applies to.
    pub kind: Kind,
    /// The suite, relative to the repository root.
    pub suite: String,
    /// Metric name (as in `onlabel eval --json`) → the least acceptable value.
    pub min: BTreeMap<String, f64>,
}

impl Thresholds {
    /// Reads and checks the file.
    pub fn read(path: &Path) -> Result<Thresholds> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        let mut t: Thresholds = toml::from_str(&text)
            .map_err(|e| Error::BadThresholds { path: path.to_owned(), reason: e.to_string() })?;
        if t.gate.is_empty() {
            return Err(Error::BadThresholds { path: path.to_owned(), reason: "no [[gate]]".into() });
        }
        t.path = path.to_owned();
        t.sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        Ok(t)
    }

    /// The gates for `kind`.
    pub fn gates(&self, kind: Kind) -> impl Iterator<Item = &Gate> {
        self.gate.iter().filter(move |g| g.kind == kind)
    }
}

impl Gate {
    /// The metrics of `metrics` (the JSON of `eval --json`) below their minimum, with why.
    pub fn shortfalls(&self, metrics: &serde_json::Value) -> Vec<String> {
        self.min
            .iter()
            .filter_map(|(k, min)| match metrics.get(k).and_then(|v| v.as_f64()) {
                Some(v) if v >= *min => None,
                Some(v) => Some(format!("{k} {v:.3} < {min:.3}")),
                None => Some(format!("{k} not measured (needs {min:.3})")),
            })
            .collect()
    }
}
