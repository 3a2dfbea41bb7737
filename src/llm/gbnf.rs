//! [`Vocabulary`]: the copy constraint (what a constrained answer may be
//! made of) as data, and its GBNF grammar for servers that decode under one
//! (llama.cpp's `grammar`, vLLM's `guided_grammar`).
//!
//! The local model applies the same vocabulary as a mask over token ids
//! (`copilot::Grounded::allowed_tokens`); a remote server gets it as this
//! grammar, one word at a time:
//!
//! ```text
//! root   ::= punct* unit (gap unit)* punct* space?
//! unit   ::= word | number | marker
//! gap    ::= punct* space+ punct* | punct+
//! word   ::= "Monitor" | "monitor" | "ALT" | …      (sorted, deduplicated)
//! number ::= [0-9]+
//! marker ::= "[1]" | "[2]" | …                      (the passages shown)
//! punct  ::= [.,;:()%/-]
//! space  ::= " " | "\n"
//! ```
//!
//! Two words never run together: a space or a punctuation mark stands
//! between any two units (without it, a model that prefers pieces without
//! a leading space writes "Monitorevery").
//!
//! The grammar is at word level, so it is a little stricter than the token
//! mask (which also lets the model join word pieces); the verifier still
//! checks every sentence either way.

use std::collections::BTreeSet;

/// The words and citation markers a constrained answer may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vocabulary {
    /// Words (as written, plus lower-case and capitalised forms).
    pub words: BTreeSet<String>,
    /// Citation marker numbers (`[n]`).
    pub markers: BTreeSet<usize>,
}

/// Punctuation a constrained answer may use besides words (a GBNF character class body).
const PUNCT_CLASS: &str = r".,;:()%/\-";

impl Vocabulary {
    /// The GBNF grammar of text made only of these words, markers, digits,
    /// punctuation, spaces and newlines.
    pub fn gbnf(&self) -> String {
        let mut alternatives: Vec<String> = self.words.iter().filter(|w| !w.is_empty()).map(|w| literal(w)).collect();
        if alternatives.is_empty() {
            // A rule needs an alternative; a lone digit keeps the grammar valid.
            alternatives.push("[0-9]".into());
        }
        let mut g = String::new();
        g.push_str("root ::= punct* unit (gap unit)* punct* space?\n");
        g.push_str("unit ::= word | number | marker\n");
        g.push_str("gap ::= punct* space+ punct* | punct+\n");
        g.push_str(&format!("word ::= {}\n", alternatives.join(" | ")));
        g.push_str("number ::= [0-9]+\n");
        let markers: Vec<String> = self.markers.iter().map(|n| literal(&format!("[{n}]"))).collect();
        if markers.is_empty() {
            g.push_str("marker ::= \"[\" [0-9] \"]\"\n");
        } else {
            g.push_str(&format!("marker ::= {}\n", markers.join(" | ")));
        }
        g.push_str(&format!("punct ::= [{PUNCT_CLASS}]\n"));
        g.push_str("space ::= \" \" | \"\\n\"\n");
        g
    }
}

/// A GBNF string literal: `"` and `\` escaped, control characters as `\xNN`.
fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_lists_every_word_and_marker_once() {
        let v = Vocabulary { words: ["ALT", "Monitor", "monitor", "weeks"].map(String::from).into_iter().collect(), markers: [1, 2].into_iter().collect() };
        let g = v.gbnf();
        assert!(g.starts_with("root ::= punct* unit (gap unit)* punct* space?\n"), "{g}");
        assert!(g.contains("word ::= \"ALT\" | \"Monitor\" | \"monitor\" | \"weeks\"\n"), "{g}");
        assert!(g.contains("marker ::= \"[1]\" | \"[2]\"\n"), "{g}");
        assert!(g.contains("space ::= \" \" | \"\\n\"\n"), "{g}");
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(literal("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(literal("\u{1}"), "\"\\x01\"");
    }

    #[test]
    fn an_empty_vocabulary_still_gives_a_valid_grammar() {
        let g = Vocabulary::default().gbnf();
        assert!(g.contains("word ::= [0-9]\n") && g.contains("marker ::= \"[\" [0-9] \"]\"\n"), "{g}");
    }
}
