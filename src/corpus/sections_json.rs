//! Sections JSON: a label already split into sections (as in
//! `shared/data/pi/json/*.sections.json`), one object per SPL section with
//! `number`, `title`, `loinc`, `depth` and `text`. Labelled with the same
//! rules as SPL XML.

use std::path::Path;

use serde::Deserialize;

use super::spl::{classify, Heading};
use super::{normalize, Error, Result, Section};

#[derive(Deserialize)]
struct File {
    sections: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    title: String,
    #[serde(default)]
    loinc: Option<String>,
    depth: u32,
    #[serde(default)]
    text: String,
}

/// Loads a sections JSON file.
pub fn load(path: &Path, json: &str) -> Result<Vec<Section>> {
    let file: File = serde_json::from_str(json).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        format: "sections JSON",
        message: format!("{e} (expected {{\"sections\": [{{\"title\", \"loinc\", \"depth\", \"text\"}}]}})"),
    })?;
    let mut out: Vec<Section> = Vec::new();
    // Stack of (depth, index in out or None when skipped).
    let mut stack: Vec<(u32, Option<usize>)> = Vec::new();
    for e in file.sections {
        while stack.last().is_some_and(|(d, _)| *d >= e.depth) {
            stack.pop();
        }
        let parent = stack.last().map(|(_, i)| *i);
        if parent == Some(None) {
            // Inside a skipped section.
            stack.push((e.depth, None));
            continue;
        }
        let top = e.depth <= 1;
        let text = normalize(&e.text).lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n");
        let me = match classify(&e.title, e.loinc.as_deref(), top) {
            Heading::Skip => None,
            Heading::MergeIntoParent => {
                let p = parent.flatten();
                if let Some(p) = p {
                    out[p].text.push('\n');
                    out[p].text.push_str(&text);
                }
                p
            }
            Heading::Own(label, title) => {
                let parent = parent.flatten().map(|p: usize| out[p].title.clone()).unwrap_or_default();
                out.push(Section { label, title, text, parent });
                Some(out.len() - 1)
            }
        };
        stack.push((e.depth, me));
    }
    Ok(out)
}
