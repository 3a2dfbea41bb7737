//! [`Generator`]: what turns a question and its retrieved passages into
//! sentences, each tied to the passage it quotes or is supported by. The
//! extractive generator and the local model (`copilot::Extractive`,
//! `copilot::Grounded`) implement it; an HTTP backend plugs in here too.

use serde::{Deserialize, Serialize};

use crate::index::{Hit, SearchResult};

/// How the answer text was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Written by the model and verified sentence by sentence.
    Generated,
    /// Approved sentences quoted verbatim, chosen by rank (the fallback).
    Extractive,
    /// Approved statements chosen by the learned sentence scorer (the
    /// answering statement, then the qualifiers a fair answer needs), each
    /// verbatim with its citation, joined only by connectives the approved
    /// `answer` template lists (`copilot::compose`).
    Composed,
}

/// One sentence of an answer with the passage it is quoted from or supported by.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    /// The text, without marker.
    pub text: String,
    /// Index into the passages given to the generator.
    pub passage: usize,
}

/// What a generator produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Sentences, each tied to one passage.
    pub sentences: Vec<Sentence>,
    /// How they were produced.
    pub mode: Mode,
}

/// Turns a question and its retrieved passages into cited sentences. The
/// extractive generator is the first implementation; a local model and an
/// HTTP backend come later and fall back to it.
pub trait Generator: Send + Sync {
    /// Produces sentences, each tied to one of `hits`. An empty draft means
    /// nothing in the hits answers the question.
    fn draft(&self, question: &str, search: &SearchResult, hits: &[Hit]) -> Draft;
}
