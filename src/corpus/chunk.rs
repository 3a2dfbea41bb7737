//! Chunking: sections into passages of whole sentences (cut by the one
//! splitter, [`super::text::sentences`]) that never cross a section.

use super::Passage;

/// The sentence splitter (text as written): [`super::text::sentences`],
/// the one splitter that chunking, quoting, the verifier and the guard share.
pub use super::text::sentences;

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
            page: None,
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
    // PDF passages carry the page they start on (see `pdf::PageMap`).
    if !doc.page_text.is_empty() {
        let mut pages = super::pdf::PageMap::new(&doc.page_text);
        for p in &mut out {
            p.page = pages.page_of(&p.text);
        }
    }
    out
}


#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
