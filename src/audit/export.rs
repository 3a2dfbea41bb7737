//! Writing audit records for inspectors: JSON Lines or CSV, every stored
//! field including `prev_hash` and `hash`, in the order of the one
//! declaration of the record ([`Entry`], [`Chained::COLUMNS`]), then the
//! e-signature manifestation columns ([`MANIFESTATION_COLUMNS`]).
//!
//! JSON Lines is exact: each line holds the stored strings, so the chain can
//! be re-verified outside OnLabel (the README shows how). CSV is for reading:
//! a cell that a spreadsheet would run as a formula (leading `=`, `+`, `-`,
//! `@`, TAB or CR) gets a leading `'`, so a CSV cell is not always the stored
//! value — re-verify from JSON Lines.
//!
//! The manifestation columns (21 CFR 11.50: the signer's printed name, the
//! date and time of signing in UTC, the meaning in words and the reason)
//! are *derived* from a signature record's stored `detail_json` (its
//! `signature` object), so an inspector reads them without parsing JSON;
//! they are not hashed (the chain covers `detail_json` they come from) and
//! are empty (CSV) or `null` (JSON Lines) on records that are not
//! signatures. The signed record and its SHA-256 (11.70) are the stored
//! `prompt_version` and `prompt_sha256` columns of the same row.

use std::io::Write;

use super::{Chained, Entry};

/// The stored, hashed columns: the record's declaration.
const STORED: &[&str] = <Entry as Chained>::COLUMNS;

/// The 11.50 manifestation columns after the stored ones: derived from a
/// signature record's `detail_json`, never hashed (see the module doc).
pub const MANIFESTATION_COLUMNS: [&str; 4] = ["signature_printed_name", "signature_signed_at_utc", "signature_meaning", "signature_reason"];

const ALL: [&str; STORED.len() + MANIFESTATION_COLUMNS.len()] = header();

/// The columns of a CSV export, in order (also the JSONL keys): the
/// record's declaration, then [`MANIFESTATION_COLUMNS`].
pub const CSV_HEADER: &[&str] = &ALL;

const fn header<const N: usize>() -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < STORED.len() {
        out[i] = STORED[i];
        i += 1;
    }
    let mut j = 0;
    while j < MANIFESTATION_COLUMNS.len() {
        out[i + j] = MANIFESTATION_COLUMNS[j];
        j += 1;
    }
    out
}

/// The manifestation of a signature record, in [`MANIFESTATION_COLUMNS`]
/// order; `None` when `detail_json` holds no signature (the signer's name,
/// the time and the meaning are all needed).
pub fn manifestation(e: &Entry) -> Option<[String; 4]> {
    let detail: serde_json::Value = serde_json::from_str(&e.detail_json).ok()?;
    let sig = detail.get("signature")?;
    let text = |k: &str| sig.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Some([text("signer_name")?, text("signed_at")?, crate::prompts::meaning_words(&text("meaning")?), text("reason").unwrap_or_default()])
}

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
                // The stored fields exactly as serialised, then the derived
                // manifestation keys appended inside the same object.
                let stored = serde_json::to_string(e).map_err(std::io::Error::other)?;
                let body = stored.strip_suffix('}').ok_or_else(|| std::io::Error::other("an audit record did not serialise as an object"))?;
                let m = manifestation(e);
                let mut line = body.to_string();
                for (i, k) in MANIFESTATION_COLUMNS.iter().enumerate() {
                    let v = m.as_ref().map_or(serde_json::Value::Null, |m| serde_json::Value::from(m[i].as_str()));
                    line.push_str(&format!(",{}:{v}", serde_json::Value::from(*k)));
                }
                writeln!(out, "{line}}}")?;
            }
        }
        Format::Csv => {
            writeln!(out, "{}", CSV_HEADER.join(","))?;
            for e in entries {
                let mut row: Vec<String> = e.cells().iter().map(|f| quote(f)).collect();
                let m = manifestation(e).unwrap_or_default();
                row.extend(m.iter().map(|f| quote(f)));
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
    fn issue21_3_a_signature_record_exports_its_manifestation_and_others_leave_it_empty() {
        let mut signed = entry("ok");
        signed.action = "prompt_approved".into();
        signed.detail_json = r#"{"signature":{"signer_id":"bob","signer_name":"Bob Reviewer","meaning":"approved for use","reason":"=Matches MLR-1","signed_at":"2026-12-01T09:00:00Z","binding":"x"}}"#.into();
        let mut rejected = signed.clone();
        rejected.detail_json = rejected.detail_json.replace("approved for use", "rejected");
        let plain = entry("plain");
        let mut csv = Vec::new();
        write(&[signed.clone(), rejected.clone(), plain.clone()], Format::Csv, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].ends_with(",hash,signature_printed_name,signature_signed_at_utc,signature_meaning,signature_reason"), "{}", lines[0]);
        assert!(lines[1].ends_with(r#""Bob Reviewer","2026-12-01T09:00:00Z","Approved","'=Matches MLR-1""#), "{}", lines[1]);
        assert!(lines[2].ends_with(r#""Bob Reviewer","2026-12-01T09:00:00Z","Rejected","'=Matches MLR-1""#), "{}", lines[2]);
        assert!(lines[3].ends_with(r#","","","","""#), "{}", lines[3]);
        let mut jsonl = Vec::new();
        write(&[signed.clone(), plain.clone()], Format::Jsonl, &mut jsonl).unwrap();
        let jsonl = String::from_utf8(jsonl).unwrap();
        let v: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!((v[0]["signature_printed_name"].as_str(), v[0]["signature_meaning"].as_str()), (Some("Bob Reviewer"), Some("Approved")));
        assert_eq!((v[0]["signature_signed_at_utc"].as_str(), v[0]["signature_reason"].as_str()), (Some("2026-12-01T09:00:00Z"), Some("=Matches MLR-1")));
        assert!(v[1]["signature_printed_name"].is_null() && v[1]["signature_meaning"].is_null());
        // The stored fields are untouched: the record still verifies from the line.
        assert_eq!(v[0]["detail_json"].as_str(), Some(signed.detail_json.as_str()));
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
