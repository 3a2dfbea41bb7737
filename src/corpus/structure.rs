//! Section detection in plain label text (from PDFs and `.txt` files).
//!
//! Prescribing Information in the PLR format numbers its sections (`5 WARNINGS
//! AND PRECAUTIONS`, `5.2 Hepatotoxicity`) and may open with a boxed warning
//! (`WARNING: …`). Extracted text also holds lines that *look* like headings
//! but are not: the Highlights' contents list, table cells (`5 Days`), carton
//! text (`90 Tablets`). A numbered line is accepted as a heading only when it
//! continues the expected sequence and, when the label carries its own
//! contents list (`FULL PRESCRIBING INFORMATION: CONTENTS`), when the list
//! names it; a top-level heading must otherwise be in capitals or match the
//! standard PLR name for its number. Labels without any numbers (old non-PLR
//! labels, letters) fall back to headings on their own lines; FAQs pair each
//! question with its answer.

use std::collections::BTreeMap;

use regex::Regex;

use super::{normalize, Section};

/// Standard PLR section names by number (21 CFR 201.57(c)).
pub const PLR_SECTIONS: &[(u32, &str)] = &[
    (1, "INDICATIONS AND USAGE"),
    (2, "DOSAGE AND ADMINISTRATION"),
    (3, "DOSAGE FORMS AND STRENGTHS"),
    (4, "CONTRAINDICATIONS"),
    (5, "WARNINGS AND PRECAUTIONS"),
    (6, "ADVERSE REACTIONS"),
    (7, "DRUG INTERACTIONS"),
    (8, "USE IN SPECIFIC POPULATIONS"),
    (9, "DRUG ABUSE AND DEPENDENCE"),
    (10, "OVERDOSAGE"),
    (11, "DESCRIPTION"),
    (12, "CLINICAL PHARMACOLOGY"),
    (13, "NONCLINICAL TOXICOLOGY"),
    (14, "CLINICAL STUDIES"),
    (15, "REFERENCES"),
    (16, "HOW SUPPLIED/STORAGE AND HANDLING"),
    (17, "PATIENT COUNSELING INFORMATION"),
];

/// Headings after which the prescribing information for HCPs has ended
/// (patient leaflets and carton text are not cited to HCPs).
const END_MARKERS: &[&str] = &[
    "PATIENT INFORMATION",
    "MEDICATION GUIDE",
    "INSTRUCTIONS FOR USE",
    "PRINCIPAL DISPLAY PANEL",
    "PACKAGE LABEL",
];

fn heading_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(\d{1,2})(?:\.(\d{1,2}))?\.?\s+([A-Za-z(].{0,160})$").expect("static regex")
    })
}

/// Detects sections in label text. `faq` switches to question/answer pairs.
pub fn detect(text: &str, faq: bool) -> Vec<Section> {
    let text = normalize(text);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    if faq {
        let s = detect_faq(&lines);
        if !s.is_empty() {
            return s;
        }
    }
    let numbered = detect_numbered(&lines);
    if numbered.iter().any(|s| s.label.chars().next().is_some_and(|c| c.is_ascii_digit())) {
        return numbered;
    }
    detect_unnumbered(&lines)
}

/// Parses the Highlights' contents list into number → title.
fn parse_toc(lines: &[&str]) -> (BTreeMap<String, String>, Option<usize>) {
    let mut toc = BTreeMap::new();
    let Some(start) = lines.iter().position(|l| l.to_uppercase().starts_with("FULL PRESCRIBING INFORMATION: CONTENTS"))
    else {
        return (toc, None);
    };
    let mut last: Option<String> = None;
    let mut end = start;
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        end = i;
        if line.starts_with('*') {
            break;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(c) = heading_re().captures(line) {
            let num = match c.get(2) {
                Some(sub) => format!("{}.{}", &c[1], sub.as_str()),
                None => c[1].to_string(),
            };
            toc.insert(num.clone(), c[3].trim().to_string());
            last = Some(num);
        } else if let Some(num) = &last {
            // A wrapped title continues on the next line.
            if line.len() < 80 && !line.starts_with("WARNING") {
                if let Some(t) = toc.get_mut(num) {
                    t.push(' ');
                    t.push_str(line);
                }
            }
        }
    }
    (toc, Some(end))
}

fn comparable(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

fn is_upper_title(t: &str) -> bool {
    let letters: Vec<char> = t.chars().filter(|c| c.is_alphabetic()).collect();
    letters.len() >= 4 && letters.iter().all(|c| c.is_uppercase())
}

/// `WARNING: SERIOUS INFECTIONS…`, `WARNING`, `BOXED WARNING` — but not `WARNINGS`.
fn is_boxed_warning_heading(line: &str) -> bool {
    is_upper_title(line)
        && (line.starts_with("WARNING:") || line == "WARNING" || line.starts_with("BOXED WARNING") || line.starts_with("WARNING -"))
}

fn plr_name(n: u32) -> Option<&'static str> {
    PLR_SECTIONS.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
}

struct Builder {
    sections: Vec<Section>,
    current: Option<Section>,
}

impl Builder {
    fn open(&mut self, label: String, title: String) {
        self.close();
        self.current = Some(Section { label, title, text: String::new(), parent: String::new() });
    }
    fn push_line(&mut self, line: &str) {
        let Some(cur) = self.current.as_mut() else { return };
        push_text_line(&mut cur.text, line);
    }
    fn close(&mut self) {
        if let Some(s) = self.current.take() {
            self.sections.push(Section { text: s.text.trim().to_string(), ..s });
        }
    }
}

/// Appends a source line to section text: a blank line, a bullet or a table
/// row starts a new paragraph; other lines continue the current one.
pub(crate) fn push_text_line(text: &mut String, line: &str) {
    let line = line.trim();
    if line.is_empty() {
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        return;
    }
    let starts_block = line.starts_with(['•', '-', '*', '▪', '●']) || line.contains(" | ");
    let prev_table = text.rsplit('\n').next().is_some_and(|l| l.contains(" | "));
    if !text.is_empty() && !text.ends_with('\n') {
        if starts_block || prev_table {
            text.push('\n');
        } else if text.ends_with('-') {
            // keep the hyphen (`GS-441524`), join without a space
        } else {
            text.push(' ');
        }
    }
    text.push_str(line);
}

fn detect_numbered(lines: &[&str]) -> Vec<Section> {
    let (toc, toc_end) = parse_toc(lines);
    // The full prescribing information starts at its own banner line.
    let search_from = toc_end.unwrap_or(0);
    let body_start = lines
        .iter()
        .enumerate()
        .skip(search_from)
        .find(|(_, l)| l.eq_ignore_ascii_case("FULL PRESCRIBING INFORMATION"))
        .map(|(i, _)| i + 1)
        .unwrap_or(if toc_end.is_some() { search_from + 1 } else { 0 });

    let mut b = Builder { sections: Vec::new(), current: None };
    let (mut cur_top, mut cur_sub) = (0u32, 0u32);
    let mut i = body_start;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line == "\u{c}" {
            continue;
        }
        // Boxed warning: before section 1.
        if cur_top == 0 && is_boxed_warning_heading(line) && b.current.as_ref().is_none_or(|c| c.label != "BW") {
            b.open("BW".into(), line.trim_end_matches(':').to_string());
            continue;
        }
        if cur_top > 0 && END_MARKERS.iter().any(|m| line.to_uppercase().starts_with(m)) && is_upper_title(line) {
            b.close();
            break;
        }
        if let Some(c) = heading_re().captures(line) {
            let top: u32 = c[1].parse().unwrap_or(0);
            let sub: Option<u32> = c.get(2).and_then(|m| m.as_str().parse().ok());
            let mut title = c[3].trim().to_string();
            let num = match sub {
                Some(s) => format!("{top}.{s}"),
                None => top.to_string(),
            };
            let accepted = match sub {
                None => {
                    top > cur_top
                        && top <= cur_top.max(1) + 6
                        && match toc.get(&num) {
                            Some(t) => comparable(t).starts_with(&comparable(&title)[..comparable(&title).len().min(12)]),
                            None => {
                                toc.is_empty()
                                    && (is_upper_title(&title)
                                        || plr_name(top).is_some_and(|n| comparable(n) == comparable(&title)))
                            }
                        }
                }
                Some(s) => {
                    top == cur_top
                        && s > cur_sub
                        && s <= cur_sub + 4
                        && title.chars().next().is_some_and(|c| c.is_uppercase() || c == '(')
                        && match toc.get(&num) {
                            Some(t) => comparable(t).starts_with(&comparable(&title)[..comparable(&title).len().min(12)]),
                            None => toc.is_empty() && title.len() <= 120,
                        }
                }
            };
            if accepted {
                // Titles that wrap onto the next line(s): complete from the contents list.
                let full = toc.get(&num).cloned().or_else(|| plr_name(top).filter(|_| sub.is_none()).map(str::to_string));
                if let Some(full) = full {
                    while i < lines.len() {
                        let cand = format!("{title} {}", lines[i]);
                        if !lines[i].is_empty()
                            && comparable(&full).starts_with(&comparable(&cand))
                            && comparable(&cand).len() > comparable(&title).len()
                        {
                            title = cand;
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
                match sub {
                    None => {
                        cur_top = top;
                        cur_sub = 0;
                    }
                    Some(s) => cur_sub = s,
                }
                b.open(num, title);
                continue;
            }
        }
        b.push_line(line);
    }
    b.close();
    b.sections
}

/// A line that stands alone as a heading in an unnumbered document.
fn looks_like_heading(line: &str, prev_blank: bool, next: Option<&str>) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.is_empty() || words.len() > 12 || line.len() > 90 {
        return false;
    }
    if line.ends_with(['.', ',', ';', ':']) && !line.ends_with("):") {
        return false;
    }
    if next.is_none_or(str::is_empty) && !prev_blank {
        return false;
    }
    if is_upper_title(line) {
        return true;
    }
    let small = ["and", "or", "of", "in", "with", "for", "the", "a", "an", "to", "on", "by", "at"];
    let capitalised = words
        .iter()
        .filter(|w| w.chars().next().is_some_and(|c| c.is_uppercase() || c == '(') || small.contains(w))
        .count();
    prev_blank && capitalised == words.len() && words[0].chars().next().is_some_and(char::is_uppercase)
}

fn detect_unnumbered(lines: &[&str]) -> Vec<Section> {
    let mut b = Builder { sections: Vec::new(), current: None };
    let mut prev_blank = true;
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() || *line == "\u{c}" {
            b.push_line("");
            prev_blank = true;
            continue;
        }
        let next = lines[i + 1..].iter().find(|l| **l != "\u{c}").copied();
        if is_boxed_warning_heading(line) && b.sections.iter().all(|s| s.label != "BW") {
            b.open("BW".into(), line.trim_end_matches(':').to_string());
        } else if looks_like_heading(line, prev_blank, next) {
            if b.current.as_ref().is_some_and(|c| c.text.is_empty()) && b.current.as_ref().is_some_and(|c| c.label != "BW") {
                // A heading directly under a heading: the deeper one wins.
                b.current = None;
            }
            b.open(line.to_string(), line.to_string());
        } else if b.current.is_none() {
            // Text before any heading: keep it under the document's first line.
            b.open(line.to_string(), line.to_string());
        } else {
            b.push_line(line);
        }
        prev_blank = false;
    }
    b.close();
    b.sections
}

/// Question/answer pairs: a question is a line starting with `Q:` (or
/// `Question:`) or a short line ending in `?`; the answer runs to the next one.
fn detect_faq(lines: &[&str]) -> Vec<Section> {
    let mut b = Builder { sections: Vec::new(), current: None };
    let mut n = 0;
    for line in lines {
        let stripped = line
            .strip_prefix("Q:")
            .or_else(|| line.strip_prefix("Q."))
            .or_else(|| line.strip_prefix("Question:"))
            .map(str::trim);
        let is_q = stripped.is_some() || (line.ends_with('?') && line.split_whitespace().count() <= 30);
        if is_q {
            n += 1;
            let q = stripped.unwrap_or(line).to_string();
            b.open(format!("Q{n}"), q);
        } else {
            let a = line.strip_prefix("A:").or_else(|| line.strip_prefix("Answer:")).unwrap_or(line);
            b.push_line(a);
        }
    }
    b.close();
    b.sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_sections_and_boxed_warning() {
        let text = "HUMIRA title\n\nWARNING: SERIOUS INFECTIONS\nPatients are at risk.\n\n1 INDICATIONS AND USAGE\n\n1.1 Rheumatoid Arthritis\nHUMIRA is indicated.\n5 Days\n2 DOSAGE AND\nADMINISTRATION\nInject it.\n2.1 Adults\n40 mg.\n90 Tablets\n";
        let s = detect(text, false);
        let labels: Vec<_> = s.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["BW", "1", "1.1", "2", "2.1"]);
        assert_eq!(s[3].title, "DOSAGE AND ADMINISTRATION");
        assert!(s[2].text.contains("5 Days"));
    }

    #[test]
    fn faq_pairs() {
        let s = detect("# FAQ\n\nQ: Is it safe for the liver?\nA: Monitor LFTs.\n\nHow is it stored?\nAt room temperature.\n", true);
        assert_eq!(s.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), ["Q1", "Q2"]);
        assert_eq!(s[1].text, "At room temperature.");
    }

    #[test]
    fn unnumbered_headings() {
        let s = detect("WARNINGS\n\nTardive Dyskinesia\nA syndrome may develop.\n\nNeuroleptic Malignant Syndrome (NMS)\nNMS has been reported.\n", false);
        let labels: Vec<_> = s.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["Tardive Dyskinesia", "Neuroleptic Malignant Syndrome (NMS)"]);
    }
}
