//! Markdown documents (the project's own PI and FAQ format): headings are
//! explicit, so sections come from them rather than from line heuristics.
//!
//! A heading `N Title` or `N.M Title` is a numbered section, `WARNING: …` the
//! boxed warning; in an FAQ a heading ending in `?` is a question (`Q1`, `Q2`,
//! … in file order); any other heading is its own section, labelled as
//! printed. Level-1 headings are document titles: the text under them is
//! preamble and is not cited, unless the file has no deeper headings.

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};

use super::{normalize, Section};

/// Loads Markdown text into sections.
pub fn load(text: &str, faq: bool) -> Vec<Section> {
    let text = normalize(text);
    let has_deeper = Parser::new_ext(&text, pulldown_cmark::Options::ENABLE_TABLES)
        .any(|e| matches!(e, Event::Start(Tag::Heading { level, .. }) if level != HeadingLevel::H1));
    let mut sections: Vec<Section> = Vec::new();
    let mut in_heading: Option<HeadingLevel> = None;
    let mut heading = String::new();
    let mut buf = String::new();
    let mut preamble = true;
    let mut questions = 0;
    let mut cell = 0;
    for event in Parser::new_ext(&text, pulldown_cmark::Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                flush(&mut sections, &mut buf, preamble);
                in_heading = Some(level);
                heading.clear();
            }
            Event::End(TagEnd::Heading(level)) => {
                in_heading = None;
                let h = heading.trim().to_string();
                if level == HeadingLevel::H1 && has_deeper {
                    preamble = true;
                    continue;
                }
                preamble = false;
                let (label, title) = if faq && h.ends_with('?') {
                    questions += 1;
                    (format!("Q{questions}"), h.clone())
                } else if h.to_uppercase().starts_with("WARNING") {
                    ("BW".to_string(), h.clone())
                } else if let Some((num, rest)) = split_number(&h) {
                    (num, rest)
                } else {
                    (h.clone(), h.clone())
                };
                sections.push(Section { label, title, text: String::new(), parent: String::new() });
            }
            Event::Text(t) | Event::Code(t) => {
                if in_heading.is_some() {
                    heading.push_str(&t);
                } else {
                    buf.push_str(&t);
                }
            }
            Event::SoftBreak => buf.push(' '),
            Event::HardBreak => buf.push('\n'),
            Event::Start(Tag::Item) => buf.push_str("• "),
            Event::End(TagEnd::Paragraph | TagEnd::Item | TagEnd::TableHead | TagEnd::TableRow) => {
                buf.push('\n');
                cell = 0;
            }
            Event::Start(Tag::TableCell) => {
                if cell > 0 {
                    buf.push_str(" | ");
                }
                cell += 1;
            }
            _ => {}
        }
    }
    flush(&mut sections, &mut buf, preamble);
    sections
}

fn flush(sections: &mut [Section], buf: &mut String, preamble: bool) {
    if !preamble {
        if let Some(last) = sections.last_mut() {
            let t = buf.trim();
            if !t.is_empty() {
                if !last.text.is_empty() {
                    last.text.push('\n');
                }
                last.text.push_str(t);
            }
        }
    }
    buf.clear();
}

/// Splits `5.2 Hepatotoxicity` (or `2. DOSAGE`) into (`5.2`, `Hepatotoxicity`).
pub fn split_number(h: &str) -> Option<(String, String)> {
    let (num, rest) = h.split_once(char::is_whitespace)?;
    let num = num.trim_end_matches('.');
    let ok = !num.is_empty()
        && num.split('.').all(|p| !p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_digit()));
    ok.then(|| (num.to_string(), rest.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_from_headings() {
        let md = "# ZENTRAVIA PI\n\nFictional.\n\n## WARNING: HEPATOTOXICITY\n\nLiver failure.\n\n## 5 WARNINGS AND PRECAUTIONS\n\n### 5.1 Hepatotoxicity\n\nMonitor ALT.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let s = load(md, false);
        let labels: Vec<_> = s.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["BW", "5", "5.1"]);
        assert_eq!(s[2].title, "Hepatotoxicity");
        assert!(s[2].text.contains("a | b"), "{:?}", s[2].text);
    }

    #[test]
    fn faq_questions_are_numbered() {
        let s = load("# FAQ\n\nIntro.\n\n## Is it safe?\n\nSee 5.1.\n\n## How stored?\n\nCool.\n", true);
        assert_eq!(s.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), ["Q1", "Q2"]);
        assert_eq!(s[0].title, "Is it safe?");
    }
}
