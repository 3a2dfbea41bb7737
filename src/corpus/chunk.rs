//! Chunking: sections into passages of whole sentences that never cross a
//! section, and the sentence splitter the copilot quotes from.

use super::Passage;

/// Abbreviations after which a period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "dr", "vs", "approx", "etc", "fig", "no", "mr", "mrs", "ms", "st", "inc", "u.s", "ca", "et al", "al",
    "min", "max", "mos", "wk", "wks", "yr", "yrs", "ref", "sec", "vol", "resp",
];

/// Splits text into sentences, verbatim (trimmed). Paragraph breaks (`\n`)
/// always end a sentence; `. ` ends one when the next word starts with a
/// capital, a digit or an opening bracket and the word before is not an
/// abbreviation or a single initial.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let bytes = para.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if matches!(c, b'.' | b'?' | b'!' | b';') && i + 1 < bytes.len() && bytes[i + 1] == b' ' {
                let next = para[i + 1..].trim_start().chars().next();
                let next_ok = next.is_some_and(|n| n.is_uppercase() || n.is_ascii_digit() || n == '(' || n == '[' || n == '•');
                let word_start = para[..i].rfind([' ', '(']).map(|p| p + 1).unwrap_or(0);
                let word = para[word_start..i].to_ascii_lowercase();
                let abbrev = c == b'.'
                    && (ABBREVIATIONS.contains(&word.as_str())
                        || (word.len() == 1 && word.chars().all(|w| w.is_alphabetic())));
                if c != b';' && next_ok && !abbrev {
                    let s = para[start..=i].trim();
                    if !s.is_empty() {
                        out.push(s);
                    }
                    start = i + 1;
                }
            }
            i += 1;
        }
        let s = para[start..].trim();
        if !s.is_empty() {
            out.push(s);
        }
    }
    out
}

/// Cuts one document into passages of about `target_words` words, sentence
/// by sentence, starting a new passage at every section boundary.
pub fn passages(doc: &super::Document, target_words: usize) -> Vec<Passage> {
    let m = &doc.meta;
    let mut out = Vec::new();
    let mut ordinal = 0u32;
    let mut emit = |section: &super::Section, text: String, out: &mut Vec<Passage>| {
        out.push(Passage {
            doc_id: m.id.clone(),
            section: section.label.clone(),
            title: section.title.clone(),
            parent: section.parent.clone(),
            product: m.product.clone(),
            kind: m.kind,
            audience: m.audience,
            mlr_number: m.mlr_number.clone(),
            expires_on: m.expires_on,
            approved_on: m.approved_on,
            status: m.status,
            ordinal,
            text,
        });
        ordinal += 1;
    };
    for section in &doc.sections {
        let mut buf = String::new();
        let mut words = 0;
        for para in section.text.split('\n') {
            for s in sentences(para) {
                let w = s.split_whitespace().count();
                if words > 0 && words + w > target_words {
                    emit(section, std::mem::take(&mut buf), &mut out);
                    words = 0;
                }
                if !buf.is_empty() {
                    buf.push(if buf.ends_with('\n') { ' ' } else { ' ' });
                }
                buf.push_str(s);
                words += w;
            }
            if !buf.is_empty() {
                buf.push('\n');
            }
        }
        let t = buf.trim().to_string();
        if !t.is_empty() {
            emit(section, t, &mut out);
        }
    }
    out
}


#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_sentences_but_not_abbreviations() {
        let s = sentences("Use 0.5 mg daily, e.g. with food. Monitor ALT. See Dr. Lee [see 5.2]. Done");
        assert_eq!(s, ["Use 0.5 mg daily, e.g. with food.", "Monitor ALT.", "See Dr. Lee [see 5.2].", "Done"]);
    }

    proptest! {
        #[test]
        fn sentences_are_verbatim_substrings(text in "[A-Za-z0-9 .,?!\n]{0,200}") {
            for s in sentences(&text) {
                prop_assert!(text.contains(s));
                prop_assert!(!s.is_empty());
            }
        }
    }
}
