//! Writing audit records for inspectors: JSON Lines or CSV, every stored
//! field including `prev_hash` and `hash`, in the order of the one
//! declaration of the record ([`Entry`], [`Chained::COLUMNS`]).
//!
//! JSON Lines is exact: each line holds the stored strings, so the chain can
//! be re-verified outside OnLabel (the README shows how). CSV is for reading:
//! a cell that a spreadsheet would run as a formula (leading `=`, `+`, `-`,
//! `@`, TAB or CR) gets a leading `'`, so a CSV cell is not always the stored
//! value — re-verify from JSON Lines.

use std::io::Write;

use super::{Chained, Entry};

/// The columns of a CSV export, in order (also the JSONL keys): the record's declaration.
pub const CSV_HEADER: &[&str] = <Entry as Chained>::COLUMNS;

/// The leading characters that make a spreadsheet read a cell as a formula
/// (OWASP's CSV-injection list).
pub const FORMULA_LEADS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

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
                let row: Vec<String> = e.cells().iter().map(|f| quote(f)).collect();
                writeln!(out, "{}", row.join(","))?;
            }
        }
    }
    Ok(())
}

/// RFC 4180 quoting. A cell starting with one of [`FORMULA_LEADS`] is
/// prefixed with `'` so that a spreadsheet opening the export does not run
/// user text as a formula.
fn quote(s: &str) -> String {
    let guarded = if s.starts_with(FORMULA_LEADS) { format!("'{s}") } else { s.to_string() };
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

    #[test]
    fn issue17_11_csv_defuses_tab_and_cr_led_formulas() {
        for lead in FORMULA_LEADS {
            let cell = format!("{lead}cmd|' /C calc'!A0");
            assert_eq!(quote(&cell), format!("\"'{cell}\""), "{lead:?}");
        }
        // Inside a cell, or after a space, these characters are plain text.
        assert_eq!(quote("a=b"), "\"a=b\"");
        assert_eq!(quote(" =1"), "\" =1\"");
        assert_eq!(quote("x\tTAB"), "\"x\tTAB\"");
    }

    fn entry(input: &str) -> Entry {
        Entry {
            seq: 7,
            at: "2026-12-01T09:00:00.000000Z".into(),
            actor: "rex".into(),
            role: "rep".into(),
            action: "ask".into(),
            input: Some(input.into()),
            prompt_version: None,
            prompt_sha256: None,
            model: None,
            model_sha256: None,
            passages_json: "[]".into(),
            flags_json: "[]".into(),
            output: Some("-5 mg".into()),
            route: Some("answer".into()),
            case_id: None,
            timings_json: "{}".into(),
            detail_json: "{}".into(),
            prev_hash: super::super::GENESIS.into(),
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn issue17_11_csv_export_defuses_every_formula_lead_and_jsonl_stays_exact() {
        let entries: Vec<Entry> = ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "plain"].iter().map(|i| entry(i)).collect();
        let mut csv = Vec::new();
        write(&entries, Format::Csv, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.starts_with(&CSV_HEADER.join(",")), "{csv}");
        for cell in ["\"'=1+1\"", "\"'+1\"", "\"'-1\"", "\"'@SUM(A1)\"", "\"'\t=1\"", "\"'\r=1\"", "\"plain\"", "\"'-5 mg\""] {
            assert!(csv.contains(cell), "{cell:?} in {csv}");
        }
        // JSON Lines carries the stored strings exactly: the hash re-verifies from it.
        let mut jsonl = Vec::new();
        write(&entries, Format::Jsonl, &mut jsonl).unwrap();
        for (line, e) in String::from_utf8(jsonl).unwrap().lines().zip(&entries) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["input"].as_str(), e.input.as_deref());
            let at: Vec<usize> = CSV_HEADER.iter().map(|k| line.find(&format!("\"{k}\":")).unwrap()).collect();
            assert!(at.windows(2).all(|w| w[0] < w[1]), "JSONL keys follow the declaration: {line}");
            assert_eq!(v.as_object().unwrap().len(), CSV_HEADER.len());
        }
    }
}
