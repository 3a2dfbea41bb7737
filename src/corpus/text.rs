//! Plain-text documents: the same section detection as extracted PDF text.

use super::{structure, Section};

/// Loads a plain-text label, FAQ (`faq`) or letter.
pub fn load(text: &str, faq: bool) -> Vec<Section> {
    structure::detect(text, faq)
}
