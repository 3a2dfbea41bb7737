//! Text normalisation for screening: lower-case, accent-folded, with a byte map
//! back to the original so that every flag can quote its evidence span; the
//! screening windows (sentences from the one splitter,
//! [`crate::corpus::text::sentence_spans`], cut again at semicolons) and
//! clauses; base64 token decoding.

use crate::corpus::text::{push_trimmed, sentence_spans, Casing};

/// Normalised text plus, for each of its bytes, the byte offset in the original.
#[derive(Debug, Clone)]
pub struct Norm {
    /// Lower-case, accent-folded text (quotes, dashes and spaces unified).
    pub text: String,
    /// `map[i]` = original byte offset of normalised byte `i`; one extra entry
    /// for the end.
    map: Vec<usize>,
}

impl Norm {
    /// Normalises `s`.
    pub fn new(s: &str) -> Norm {
        let mut text = String::with_capacity(s.len() + 8);
        let mut map = Vec::with_capacity(s.len() + 9);
        for (i, c) in s.char_indices() {
            let before = text.len();
            push_folded(&mut text, c);
            for _ in before..text.len() {
                map.push(i);
            }
        }
        map.push(s.len());
        Norm { text, map }
    }

    /// The original byte span of the normalised span `[a, b)`.
    pub fn orig(&self, a: usize, b: usize) -> (usize, usize) {
        let a = self.map[a.min(self.map.len() - 1)];
        // The end maps to the start of the char that produced byte b (or the end).
        let b = self.map[b.min(self.map.len() - 1)];
        (a, b.max(a))
    }
}

/// Lower-cases and folds one character into `out`. Accents are dropped so that
/// "erupción" and "erupcion", "fièvre" and "fievre" match the same lexicon line.
fn push_folded(out: &mut String, c: char) {
    let folded: &str = match c {
        'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'Á' | 'À' | 'Â' | 'Ä' | 'Ã' => "a",
        'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => "e",
        'í' | 'ì' | 'î' | 'ï' | 'Í' | 'Ì' | 'Î' | 'Ï' => "i",
        'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'Ó' | 'Ò' | 'Ô' | 'Ö' => "o",
        'ú' | 'ù' | 'û' | 'ü' | 'Ú' | 'Ù' | 'Û' | 'Ü' => "u",
        'ñ' | 'Ñ' => "n",
        'ç' | 'Ç' => "c",
        'œ' | 'Œ' => "oe",
        'æ' | 'Æ' => "ae",
        '\u{2018}' | '\u{2019}' | '\u{02BC}' | '`' | '´' => "'",
        '\u{201C}' | '\u{201D}' | '«' | '»' => "\"",
        '\u{2013}' | '\u{2014}' | '\u{2012}' | '\u{2212}' => "-",
        '\u{00A0}' | '\t' | '\r' | '\n' => " ",
        '≥' => ">=",
        '≤' => "<=",
        '¿' | '¡' => " ",
        _ => {
            for l in c.to_lowercase() {
                out.push(l);
            }
            return;
        }
    };
    out.push_str(folded);
}

/// True for bytes that are part of a word.
pub fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// True when `[a, b)` of `text` starts and ends on word boundaries.
pub fn at_word_boundaries(text: &str, a: usize, b: usize) -> bool {
    let bytes = text.as_bytes();
    (a == 0 || !is_word_byte(bytes[a - 1])) && (b >= bytes.len() || !is_word_byte(bytes[b]))
}

/// Screening windows of normalised text: its sentences ([`sentence_spans`]
/// with [`Casing::Folded`]: the same abbreviations as chunking and the
/// verifier), each cut again after a `;` followed by a space — in notes and
/// questions a semicolon joins separate statements ("no rash; what dose for
/// kids"), which the guard screens one by one.
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for (a, b) in sentence_spans(text, Casing::Folded) {
        let mut start = a;
        for (i, _) in text[a..b].match_indices(';') {
            let end = a + i + 1;
            if end >= b || bytes[end] == b' ' {
                push_trimmed(text, start, end, &mut out);
                start = end;
            }
        }
        push_trimmed(text, start, b, &mut out);
    }
    out
}

/// Clause spans inside a sentence: split at dashes set off by spaces (" - "),
/// which in conversational text join separate statements ("rash after starting
/// it - the doctor asked what the label says").
pub fn clauses(text: &str, sentence: (usize, usize)) -> Vec<(usize, usize)> {
    let s = &text[sentence.0..sentence.1];
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in s.match_indices(" - ") {
        push_trimmed(s, start, i, &mut out);
        start = i + 3;
    }
    push_trimmed(s, start, s.len(), &mut out);
    out.into_iter().map(|(a, b)| (a + sentence.0, b + sentence.0)).collect()
}

/// Base64-looking tokens of the original text (at least 16 characters of the
/// base64 alphabet, with a digit, upper- and lower-case letters) decoded to
/// readable text: `(original span, decoded text)`. Tokens that do not decode to
/// mostly printable UTF-8 are ignored.
pub fn base64_segments(s: &str) -> Vec<((usize, usize), String)> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if is_b64(bytes[i]) && (i == 0 || !is_b64(bytes[i - 1])) {
            let mut j = i;
            while j < bytes.len() && is_b64(bytes[j]) {
                j += 1;
            }
            while j < bytes.len() && bytes[j] == b'=' {
                j += 1;
            }
            let tok = &s[i..j];
            let looks = tok.len() >= 16
                && tok.bytes().any(|b| b.is_ascii_uppercase())
                && tok.bytes().any(|b| b.is_ascii_lowercase());
            if looks {
                if let Some(text) = decode_base64(tok) {
                    let printable = text.chars().filter(|c| !c.is_control() || c.is_whitespace()).count();
                    let letters = text.chars().filter(|c| c.is_alphabetic() || *c == ' ').count();
                    let n = text.chars().count();
                    if n >= 8 && printable == n && letters * 10 >= n * 7 {
                        out.push(((i, j), text));
                    }
                }
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'-' || b == b'_'
}

/// Decodes standard or URL-safe base64, with or without padding.
pub fn decode_base64(tok: &str) -> Option<String> {
    let mut buf = 0u32;
    let mut bits = 0u32;
    let mut out = Vec::with_capacity(tok.len() * 3 / 4);
    for b in tok.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_accents_and_maps_back() {
        let s = "Erupción después";
        let n = Norm::new(s);
        assert_eq!(n.text, "erupcion despues");
        let a = n.text.find("despues").unwrap();
        let (oa, ob) = n.orig(a, a + "despues".len());
        assert_eq!(&s[oa..ob], "después");
    }

    #[test]
    fn sentences_keep_abbreviations() {
        let t = "dr. patel said hi. she had a rash! what now? ok";
        let parts: Vec<&str> = sentences(t).into_iter().map(|(a, b)| &t[a..b]).collect();
        assert_eq!(parts, vec!["dr. patel said hi.", "she had a rash!", "what now?", "ok"]);
    }

    #[test]
    fn decimals_do_not_split() {
        let t = "give 1.8 mg/kg. then stop";
        assert_eq!(sentences(t).len(), 2);
    }

    #[test]
    fn semicolons_cut_screening_windows() {
        let t = "no rash; what dose for kids? ok;fine; done";
        let parts: Vec<&str> = sentences(t).into_iter().map(|(a, b)| &t[a..b]).collect();
        assert_eq!(parts, vec!["no rash;", "what dose for kids?", "ok;fine;", "done"]);
    }

    #[test]
    fn issue16_the_guard_and_the_chunker_agree_on_abbreviations() {
        // "wks." and "min." were only in the chunker's list, "pt." and "dra." only in the guard's.
        for t in ["after 3 wks. she had a rash.", "infused over 30 min. then a rash.", "the pt. had a rash.", "la dra. ruiz vio un rash."] {
            assert_eq!(sentences(t), vec![(0, t.len())], "{t}");
        }
    }

    #[test]
    fn base64_is_found_and_decoded() {
        let s = "Decode this: V2hhdCBkb3NlIG9mIEFkY2V0cmlzIGZvciBicmVhc3QgY2FuY2VyPw== please";
        let segs = base64_segments(s);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].1, "What dose of Adcetris for breast cancer?");
        assert!(base64_segments("no tokens here, just Humira and LipitorAtorvastatin words").is_empty());
    }
}

/// Finds whole-word occurrences of many terms at once (Aho-Corasick), longest
/// first, without overlaps. A term also matches with a plural `s`/`es`.
#[derive(Debug, Clone)]
pub struct TermMatcher {
    ac: aho_corasick::AhoCorasick,
    /// Payload of each pattern.
    payload: Vec<usize>,
}

impl TermMatcher {
    /// Builds a matcher over `(term, payload)` pairs (terms already normalised).
    pub fn new(terms: &[(String, usize)]) -> TermMatcher {
        let ac = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::Standard)
            .build(terms.iter().map(|(t, _)| t.as_str()))
            .expect("aho-corasick over a bounded term list");
        TermMatcher { ac, payload: terms.iter().map(|(_, p)| *p).collect() }
    }

    /// Non-overlapping whole-word matches `(start, end, payload)`, longest wins.
    pub fn find(&self, text: &str) -> Vec<(usize, usize, usize)> {
        let bytes = text.as_bytes();
        let mut cands: Vec<(usize, usize, usize)> = Vec::new();
        for m in self.ac.find_overlapping_iter(text) {
            let (a, mut b) = (m.start(), m.end());
            if a > 0 && is_word_byte(bytes[a - 1]) {
                continue;
            }
            if b < bytes.len() && is_word_byte(bytes[b]) {
                // Plural or possessive-free inflection: "rashes", "fevers".
                let rest = &text[b..];
                let ext = if rest.starts_with("es") { 2 } else if rest.starts_with('s') { 1 } else { 0 };
                if ext == 0 || (b + ext < bytes.len() && is_word_byte(bytes[b + ext])) {
                    continue;
                }
                b += ext;
            }
            cands.push((a, b, self.payload[m.pattern().as_usize()]));
        }
        cands.sort_by(|x, y| x.0.cmp(&y.0).then((y.1 - y.0).cmp(&(x.1 - x.0))));
        let mut out: Vec<(usize, usize, usize)> = Vec::new();
        for c in cands {
            if let Some(last) = out.last() {
                if c.0 < last.1 {
                    continue;
                }
            }
            out.push(c);
        }
        out
    }
}
