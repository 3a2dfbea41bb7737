//! Writing audit records for inspectors: JSON Lines or CSV, every stored
//! field including `prev_hash` and `hash`, so the export can be re-verified
//! outside OnLabel (the README shows how).

use std::io::Write;

use super::Entry;

/// The columns of a CSV export, in order (also the JSONL keys).
pub const CSV_HEADER: &[&str] = &[
    "seq", "at", "actor", "role", "action", "input", "prompt_version", "prompt_sha256", "model", "model_sha256",
    "passages_json", "flags_json", "output", "route", "case_id", "timings_json", "detail_json", "prev_hash", "hash",
];

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row; every field quoted.
    Csv,
}

/// Writes `entries` to `out` in `format`.
pub fn write(entries: &[Entry], format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        Format::Jsonl => {
            for e in entries {
                let line = serde_json::to_string(e).map_err(std::io::Error::other)?;
                writeln!(out, "{line}")?;
            }
        }
        Format::Csv => {
            writeln!(out, "{}", CSV_HEADER.join(","))?;
            for e in entries {
                let fields: Vec<String> = vec![
                    e.seq.to_string(),
                    e.at.clone(),
                    e.actor.clone(),
                    e.role.clone(),
                    e.action.clone(),
                    e.input.clone().unwrap_or_default(),
                    e.prompt_version.clone().unwrap_or_default(),
                    e.prompt_sha256.clone().unwrap_or_default(),
                    e.model.clone().unwrap_or_default(),
                    e.model_sha256.clone().unwrap_or_default(),
                    e.passages_json.clone(),
                    e.flags_json.clone(),
                    e.output.clone().unwrap_or_default(),
                    e.route.clone().unwrap_or_default(),
                    e.case_id.clone().unwrap_or_default(),
                    e.timings_json.clone(),
                    e.detail_json.clone(),
                    e.prev_hash.clone(),
                    e.hash.clone(),
                ];
                let row: Vec<String> = fields.iter().map(|f| quote(f)).collect();
                writeln!(out, "{}", row.join(","))?;
            }
        }
    }
    Ok(())
}

/// RFC 4180 quoting. A leading `=`, `+`, `-` or `@` is prefixed with `'` so
/// that a spreadsheet opening the export does not run user text as a formula.
fn quote(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(quote("a \"b\", c"), "\"a \"\"b\"\", c\"");
        assert_eq!(quote("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
    }
}
