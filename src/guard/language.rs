//! [`Reading`]: can the guard read this text with confidence?
//!
//! The guard's English rules read English; the report elements also read
//! Spanish, Portuguese, French, Italian and German. Anything else — another
//! language, another script, or a text in which a sentence is reliably in a
//! language other than the rest (mixed text) — must reach a person rather
//! than an answer or a refusal. Language identification is whatlang's
//! trigram model (`whatlang` crate); a detection counts only when whatlang
//! itself calls it reliable or its confidence is high ([`CONFIDENT`]),
//! because short English rep questions ("Can nursing moms take it?") often
//! come out as low-confidence Catalan or Javanese.


/// A detection whatlang does not call reliable still counts from this
/// confidence up: clear Spanish sentences of ten words come out at 0.80
/// unreliable, while no English rep question of our suites scored above 0.62
/// for another language.
const CONFIDENT: f64 = 0.75;

/// What the guard concluded about the text's language.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// English (or too short to tell, which in practice is English).
    English,
    /// Reliably a supported language other than English (ISO 639-3 code),
    /// possibly mixed with English.
    Supported(String),
    /// Not readable with confidence: another language, another script, or
    /// mixed text; the string says which, for the rep and the case.
    Unreadable(String),
}

/// Detects the language of the whole text and of each sentence with at
/// least `lang.min_sentence_words` words (see [`super::elements::LanguageDef`]).
pub fn read(text: &str, lang: &super::elements::LanguageDef) -> Reading {
    let supported = &lang.supported;
    let min_words = lang.min_sentence_words;
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    if letters == 0 {
        return Reading::English;
    }
    // A script other than Latin for a large share of the letters.
    // Latin letters: ASCII and the Latin-1 Supplement / Extended-A / Extended-B blocks.
    let latin = text.chars().filter(|c| c.is_ascii_alphabetic() || ('\u{00C0}'..='\u{024F}').contains(c)).count();
    if latin * 10 < letters * 7 {
        let script = whatlang::detect_script(text).map(|s| s.name().to_string()).unwrap_or_else(|| "unknown".into());
        return Reading::Unreadable(format!("text in {script} script"));
    }
    let mut found: Vec<String> = Vec::new();
    let english_words = |s: &str| {
        s.to_lowercase().split(|c: char| !c.is_alphanumeric() && c != '\'').filter(|w| lang.english_markers.iter().any(|m| m == w)).count()
    };
    let mut check = |s: &str| {
        let Some(info) = whatlang::detect(s) else { return };
        if info.lang() == whatlang::Lang::Eng {
            return;
        }
        let sure = info.is_reliable() || info.confidence() >= CONFIDENT;
        // Unsure, but preferred to English and without a single English function word.
        let unsure_but_foreign = || {
            s.split_whitespace().count() >= lang.unsure_min_words
                && english_words(s) == 0
                && whatlang::Detector::with_allowlist(vec![whatlang::Lang::Eng, info.lang()])
                    .detect(s)
                    .is_some_and(|p| p.lang() == info.lang() && p.confidence() >= lang.pair_confidence)
        };
        if sure || unsure_but_foreign() {
            found.push(info.lang().code().to_string());
        }
    };
    check(text);
    let norm = super::text::Norm::new(text);
    for (a, b) in super::text::sentences(&norm.text) {
        let (oa, ob) = norm.orig(a, b);
        let s = &text[oa..ob];
        if s.split_whitespace().count() >= min_words {
            check(s);
        }
    }
    found.sort();
    found.dedup();
    match found.as_slice() {
        [] => Reading::English,
        [one] if supported.iter().any(|s| s == one) => Reading::Supported(one.clone()),
        [one] => Reading::Unreadable(format!("text in a language the guard does not read ({one})")),
        several => {
            if let Some(s) = several.iter().find(|l| supported.iter().any(|s| s == *l)) {
                Reading::Supported(s.clone())
            } else {
                Reading::Unreadable(format!("mixed text ({})", several.join(", ")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sup() -> super::super::elements::LanguageDef {
        super::super::Guard::builtin().expect("builtin").elements().language.clone()
    }

    #[test]
    fn short_english_questions_stay_english() {
        for t in ["Can nursing moms take it?", "Does it mess with birth control pills?", "How does brentuximab vedotin work?", "peds dosing?"] {
            assert_eq!(read(t, &sup()), Reading::English, "{t}");
        }
    }

    #[test]
    fn supported_and_other_languages() {
        assert_eq!(read("Mi paciente tuvo fiebre alta y escalofríos después de la segunda dosis.", &sup()), Reading::Supported("spa".into()));
        assert_eq!(read("Meine Patientin hat seit der letzten Spritze starke Kopfschmerzen und Fieber.", &sup()), Reading::Supported("deu".into()));
        assert!(matches!(read("患者は昨日の点滴の後に発熱しました", &sup()), Reading::Unreadable(_)));
        assert_eq!(
            read("Bei meinem Patienten mit Hodgkin-Lymphom ist nach dem vierten Zyklus Adcetris eine schwere Pankreatitis aufgetreten.", &sup()),
            Reading::Supported("deu".into())
        );
        assert!(matches!(read("Mój pacjent po drugiej dawce dostał wysokiej gorączki i wysypki na całym ciele.", &sup()), Reading::Unreadable(_)));
    }
}
