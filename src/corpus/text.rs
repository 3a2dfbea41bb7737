//! Plain-text documents (the same section detection as extracted PDF text),
//! and [`sentence_spans`]: the one sentence splitter of OnLabel.
//!
//! Chunking ([`super::chunk`]), the extractive quoter, the citation verifier
//! and the guard's screening windows (`guard::text::sentences`) all cut
//! sentences here, with one list of [`ABBREVIATIONS`], so that they agree on
//! where a sentence ends — on exactly the sentences that matter ("e.g.",
//! "vs.", "Dr.", doses). What differs is only what the text allows:
//!
//! - [`Casing::Original`] text (labels, answers, notes as typed): a period
//!   followed by a word that starts in lower case is not a sentence end — it
//!   follows an abbreviation the list does not know ("q.d. dosing").
//! - [`Casing::Folded`] text (the guard's lower-cased, accent-folded form):
//!   that test is not available, so any unlisted word before ". " ends a sentence.
//!
//! The guard further cuts its sentences at semicolons (clauses it screens on
//! their own); chunking and quoting do not (a label sentence with a `;` is
//! quoted whole).

use super::{structure, Section};

/// Loads a plain-text label, FAQ (`faq`) or letter.
pub fn load(text: &str, faq: bool) -> Vec<Section> {
    structure::detect(text, faq)
}

/// Words after which a period does not end a sentence: lower case, without
/// their final period. A single letter ("J. Smith", "M. Dupont") never ends a
/// sentence either. The union of the lists the chunker and the guard had
/// before they shared one splitter; each entry has a test.
pub const ABBREVIATIONS: &[&str] = &[
    // Latin and reference shorthand.
    "e.g", "i.e", "etc", "vs", "approx", "ca", "al", // "et al." (the word before the period is "al")
    "fig", "no", "ref", "sec", "vol", "resp", "inc", "u.s",
    // Titles, English, Spanish and French ("pt." is also "patient" in notes).
    "dr", "mr", "mrs", "ms", "st", "dra", "sr", "sra", "mme", "pt",
    // Time and range units as written in labels and notes.
    "min", "max", "mos", "wk", "wks", "yr", "yrs",
];

/// What the splitter may rely on in the text it is given (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Casing {
    /// Text as written: a lower-case word after ". " continues the sentence.
    Original,
    /// Lower-cased text: case says nothing about where a sentence starts.
    Folded,
}

/// Sentences of `text`, verbatim (trimmed): see [`sentence_spans`].
pub fn sentences(text: &str) -> Vec<&str> {
    sentence_spans(text, Casing::Original).into_iter().map(|(a, b)| &text[a..b]).collect()
}

/// Byte spans `[a, b)` of the sentences of `text`, trimmed, in order, never
/// empty. A line break always ends a sentence. A run of `.`, `!` and `?`
/// ends one when a space or the end of the line follows, unless the run is
/// a single `.` after an [`ABBREVIATIONS`] word or a single letter, or —
/// in [`Casing::Original`] text — the next word does not start with a
/// capital, a digit, `(`, `[` or `•`. A decimal point ("0.5 mg") is
/// followed by a digit, not a space, so it never ends a sentence.
pub fn sentence_spans(text: &str, casing: Casing) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut line_start = 0;
    for line in text.split('\n') {
        split_line(text, line_start, line_start + line.len(), casing, &mut out);
        line_start += line.len() + 1;
    }
    out
}

/// Splits `text[from..to]` (one line) into `out`.
fn split_line(text: &str, from: usize, to: usize, casing: Casing, out: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    let mut start = from;
    let mut i = from;
    while i < to {
        if !matches!(bytes[i], b'.' | b'!' | b'?') {
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < to && matches!(bytes[j + 1], b'.' | b'!' | b'?') {
            j += 1;
        }
        let at_space = j + 1 >= to || bytes[j + 1] == b' ';
        let abbreviation = bytes[i] == b'.' && j == i && is_abbreviation(word_before(text, from, i));
        let next_starts = casing == Casing::Folded || j + 1 >= to || starts_sentence(&text[j + 1..to]);
        if at_space && !abbreviation && next_starts {
            push_trimmed(text, start, j + 1, out);
            start = j + 1;
        }
        i = j + 1;
    }
    push_trimmed(text, start, to, out);
}

/// The word that ends at `end`: the text since the last space, without
/// leading brackets, quotes or symbols ("(e.g" → "e.g", "“Dr" → "Dr"; "LDL-C"
/// stays whole, so it is not taken for an initial).
fn word_before(text: &str, from: usize, end: usize) -> &str {
    let line = &text[from..end];
    let start = line.char_indices().rev().find(|&(_, c)| c.is_whitespace()).map_or(0, |(p, c)| p + c.len_utf8());
    line[start..].trim_start_matches(|c: char| !c.is_alphanumeric())
}

/// True for an [`ABBREVIATIONS`] word (any case) or a single letter.
fn is_abbreviation(word: &str) -> bool {
    let mut chars = word.chars();
    let single_letter = matches!((chars.next(), chars.next()), (Some(c), None) if c.is_alphabetic());
    single_letter || ABBREVIATIONS.iter().any(|a| a.eq_ignore_ascii_case(word))
}

/// True when `rest` (what follows a period) starts like a sentence in text as written.
fn starts_sentence(rest: &str) -> bool {
    rest.trim_start().chars().next().is_some_and(|c| c.is_uppercase() || c.is_ascii_digit() || matches!(c, '(' | '[' | '•'))
}

/// Pushes `text[a..b]` trimmed, unless it is empty.
pub(crate) fn push_trimmed(text: &str, a: usize, b: usize, out: &mut Vec<(usize, usize)>) {
    let s = &text[a..b];
    let lead = s.len() - s.trim_start().len();
    let trail = s.len() - s.trim_end().len();
    if a + lead < b - trail {
        out.push((a + lead, b - trail));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn folded(t: &str) -> Vec<&str> {
        sentence_spans(t, Casing::Folded).into_iter().map(|(a, b)| &t[a..b]).collect()
    }

    #[test]
    fn splits_sentences_but_not_abbreviations() {
        let s = sentences("Use 0.5 mg daily, e.g. with food. Monitor ALT. See Dr. Lee [see 5.2]. Done");
        assert_eq!(s, ["Use 0.5 mg daily, e.g. with food.", "Monitor ALT.", "See Dr. Lee [see 5.2].", "Done"]);
    }

    /// Every abbreviation keeps its sentence whole, in both casings, before a
    /// capitalised word (where only the list can stop the split).
    #[test]
    fn each_abbreviation_does_not_end_a_sentence() {
        for a in ABBREVIATIONS {
            for word in [a.to_string(), a.to_uppercase(), capitalise(a)] {
                let t = format!("Compare it with {word}. Smith and others. Done.");
                assert_eq!(sentences(&t), [format!("Compare it with {word}. Smith and others."), "Done.".into()], "{word}");
                let f = t.to_lowercase();
                assert_eq!(folded(&f).len(), 2, "{word} (folded): {:?}", folded(&f));
            }
        }
    }

    fn capitalise(a: &str) -> String {
        let mut c = a.chars();
        c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
    }

    #[test]
    fn the_abbreviations_the_two_old_lists_disagreed_on() {
        // Formerly only the guard knew these...
        assert_eq!(sentences("Ask the Pt. About her rash."), ["Ask the Pt. About her rash."]);
        assert_eq!(sentences("Habló con la Dra. Ruiz. Luego nada."), ["Habló con la Dra. Ruiz.", "Luego nada."]);
        assert_eq!(sentences("El Sr. Gómez y la Sra. Díaz. Fin."), ["El Sr. Gómez y la Sra. Díaz.", "Fin."]);
        assert_eq!(sentences("Mme. Martin a appelé. Fin."), ["Mme. Martin a appelé.", "Fin."]);
        assert_eq!(sentences("M. Dupont a appelé. Fin."), ["M. Dupont a appelé.", "Fin."]);
        // ...and these only the chunker: doses over time, references, "et al."
        assert_eq!(folded("she took it for 3 wks. then stopped"), ["she took it for 3 wks. then stopped"]);
        assert_eq!(folded("after 2 yrs. of use. then a rash"), ["after 2 yrs. of use.", "then a rash"]);
        assert_eq!(folded("up to 40 mg max. per day. ok"), ["up to 40 mg max. per day.", "ok"]);
        assert_eq!(folded("infused over 30 min. then flushed. ok"), ["infused over 30 min. then flushed.", "ok"]);
        assert_eq!(folded("smith et al. reported it. ok"), ["smith et al. reported it.", "ok"]);
        assert_eq!(folded("approved in the u.s. in 2020. ok"), ["approved in the u.s. in 2020.", "ok"]);
        assert_eq!(folded("see ref. 4 and vol. 2, sec. 3. ok"), ["see ref. 4 and vol. 2, sec. 3.", "ok"]);
        assert_eq!(folded("rates were 2% resp. 3%. ok"), ["rates were 2% resp. 3%.", "ok"]);
        assert_eq!(folded("ca. 5 mg daily. ok"), ["ca. 5 mg daily.", "ok"]);
        assert_eq!(folded("for 6 mos. after. ok"), ["for 6 mos. after.", "ok"]);
        assert_eq!(folded("every wk. then monthly. ok"), ["every wk. then monthly.", "ok"]);
        assert_eq!(folded("a 3 yr. old. ok"), ["a 3 yr. old.", "ok"]);
    }

    #[test]
    fn casing_decides_only_the_unlisted_periods() {
        // "q.d" is not an abbreviation: text as written keeps "q.d. dosing" whole
        // because "dosing" is lower case; folded text cannot tell.
        assert_eq!(sentences("Take 5 mg q.d. dosing with food. Done"), ["Take 5 mg q.d. dosing with food.", "Done"]);
        assert_eq!(folded("take 5 mg q.d. dosing with food. done"), ["take 5 mg q.d.", "dosing with food.", "done"]);
        // Question and exclamation marks end sentences the same way.
        assert_eq!(sentences("Is it safe? Yes! Fine"), ["Is it safe?", "Yes!", "Fine"]);
        assert_eq!(folded("is it safe? yes! fine"), ["is it safe?", "yes!", "fine"]);
    }

    #[test]
    fn a_hyphenated_word_is_not_an_initial() {
        assert_eq!(sentences("Reduced LDL-C. Five patients."), ["Reduced LDL-C.", "Five patients."]);
        assert_eq!(folded("reduced ldl-c. five patients."), ["reduced ldl-c.", "five patients."]);
        assert_eq!(sentences("As noted (e.g. in 5.2) and by “Dr. Lee”. Done"), ["As noted (e.g. in 5.2) and by “Dr. Lee”.", "Done"]);
    }

    #[test]
    fn a_multibyte_character_before_a_period_is_not_split_inside() {
        assert_eq!(sentences("Keep it ≤5 mg. Then stop."), ["Keep it ≤5 mg.", "Then stop."]);
        assert_eq!(sentences("Dose ≤Dr. Then"), ["Dose ≤Dr. Then"]);
        assert_eq!(sentences("Dose\u{a0}Dr. Then"), ["Dose\u{a0}Dr. Then"]);
        assert_eq!(folded("↑auc. then ↑cmax. ok"), ["↑auc.", "then ↑cmax.", "ok"]);
        assert_eq!(folded("dose ≥ 2 ≥é. then"), ["dose ≥ 2 ≥é. then"]);
    }

    #[test]
    fn runs_decimals_line_breaks_and_semicolons() {
        assert_eq!(folded("what now?! ok... fine"), ["what now?!", "ok...", "fine"]);
        assert_eq!(folded("give 1.8 mg/kg. then stop"), ["give 1.8 mg/kg.", "then stop"]);
        assert_eq!(sentences("First line\nSecond. Third"), ["First line", "Second.", "Third"]);
        assert_eq!(sentences("Monitor ALT; stop if high. Done"), ["Monitor ALT; stop if high.", "Done"]);
        assert_eq!(sentences("  \n \n"), Vec::<&str>::new());
        assert_eq!(sentence_spans("ab. Cd", Casing::Original), [(0, 3), (4, 6)]);
    }

    proptest! {
        #[test]
        fn sentences_are_verbatim_substrings(text in "[A-Za-z0-9 .,?!;≤•é\n]{0,200}") {
            for casing in [Casing::Original, Casing::Folded] {
                let spans = sentence_spans(&text, casing);
                for w in spans.windows(2) {
                    prop_assert!(w[0].1 <= w[1].0);
                }
                for (a, b) in spans {
                    let s = &text[a..b];
                    prop_assert!(!s.is_empty() && s.trim() == s);
                }
            }
        }
    }
}
