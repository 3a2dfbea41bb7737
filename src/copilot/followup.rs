//! [`resolve`]: a follow-up question read in the context of the visit's
//! previous turn, before the guard and retrieval see it.
//!
//! A rep's second question is often not a question on its own: "what about
//! patients who already have it?", "and how often after that?", "in
//! pregnancy?". Answered alone it has no product and no topic, and (issue
//! 20) it went to Medical Information holding the bare "it". The mechanism is
//! structural, not a list of the sentences:
//!
//! 1. the question **leans on context** when it has an anaphor (a pronoun or
//!    demonstrative with nothing in the question to point at: *it, that,
//!    they, those, there, the same…*), opens elliptically (*what about, how
//!    about, and, also, what if, then, after that…*) or is very short;
//! 2. its **own topic** is its content words: what is left once function
//!    words, pronouns, question words and words that fit any topic
//!    (*patients, often, already, safe, use…*) are taken out;
//! 3. a question that leans on context **inherits the previous turn's
//!    product** (unless it names one) and, when it has no topic of its own,
//!    **the previous turn's topic**: the resolved question is the previous
//!    topic's terms and product, then the question as typed. A question with
//!    a topic of its own ("is it safe in pregnancy?") keeps its topic and
//!    only inherits the product.
//!
//! A question that leans on context, has no topic of its own and has nothing
//! before it to lean on is [`Resolution::NeedsContext`]: the copilot asks
//! "which product and topic?" and opens nothing ([`clarify`]).

use super::{Answer, Copilot, Mode, Route, Timings};

/// Most words a question may have and still count as "very short" (a
/// fragment such as "in pregnancy?" or "dose?").
pub const SHORT_WORDS: usize = 3;

/// Most topic terms carried from one turn to the next (the resolved
/// question stays readable, and an old topic does not swamp a new one).
pub const MAX_TOPIC_TERMS: usize = 6;

/// Pronouns and demonstratives that point outside the question.
const ANAPHORS: &[&str] = &[
    "it", "its", "it's", "itself", "that", "this", "they", "them", "their", "theirs", "those", "these", "there", "same", "one", "ones",
    "he", "she", "him", "her",
];

/// Openings that continue a previous question (matched on whole words at
/// the start).
const OPENERS: &[&str] = &[
    "what about", "how about", "and", "also", "but", "so", "then", "what if", "same for", "same with", "in that case", "after that",
    "besides that", "what else", "anything else", "or", "plus", "ok", "okay", "and what", "and how",
];

/// Words that carry no topic: function words, question words, pronouns,
/// and words that fit any question about any drug.
const GENERIC: &[&str] = &[
    // function words
    "a", "an", "the", "of", "to", "in", "on", "at", "by", "for", "from", "with", "without", "into", "about", "as", "than", "and", "or",
    "but", "so", "if", "then", "also", "too", "either", "neither", "nor", "not", "no", "yes", "any", "some", "all", "each", "every",
    "other", "another", "else", "more", "most", "less", "least", "much", "many", "few", "very", "just", "only", "still", "even",
    "again", "already", "yet", "instead", "anyway", "plus", "like", "such", "both", "own", "per", "via", "vs", "versus", "etc",
    "up", "down", "out", "off", "over", "under", "after", "before", "during", "while", "until", "since", "once", "twice", "now",
    "later", "soon", "ever", "never", "always", "sometimes", "usually", "really", "actually", "well", "ok", "okay", "please",
    "thanks", "hmm", "um", "oh",
    // verbs that fit any question
    "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "done", "doing", "have", "has", "had", "having",
    "can", "could", "should", "would", "will", "shall", "may", "might", "must", "need", "needs", "needed", "get", "gets", "got",
    "getting", "give", "gives", "given", "giving", "take", "takes", "taking", "took", "taken", "use", "uses", "used", "using", "go",
    "goes", "going", "make", "makes", "made", "tell", "told", "say", "says", "said", "know", "mean", "means", "ask", "asked",
    "asking", "want", "wants", "apply", "applies", "work", "works", "happen", "happens", "recommend", "recommended", "think",
    "consider", "check", "checked", "look", "see", "still", "let", "keep", "start", "started", "starting", "stop", "stopped",
    // question words
    "what", "whats", "what's", "how", "hows", "why", "when", "where", "which", "who", "whom", "whose", "is", "isn't",
    // pronouns
    "i", "me", "my", "we", "us", "our", "you", "your", "he", "him", "his", "she", "her", "hers", "it", "its", "it's", "itself",
    "they", "them", "their", "theirs", "this", "that", "these", "those", "there", "here", "one", "ones", "someone", "anyone",
    "everyone", "something", "anything", "same", "thing", "things", "stuff",
    // words that fit any topic of any drug
    "patient", "patients", "people", "person", "someone's", "adult", "adults", "doctor", "doctors", "dr", "hcp", "hcps",
    "physician", "nurse", "case", "cases", "often", "frequently", "frequency", "long", "time", "times", "way", "ways", "kind",
    "type", "safe", "ok", "fine", "okay", "good", "bad", "better", "worse", "right", "wrong", "true", "sure", "possible",
    "question", "questions", "answer", "info", "information", "details", "detail", "data", "label", "drug", "medicine",
    "medication", "product", "treatment", "therapy", "who've", "they're", "there's", "that's", "don't", "doesn't", "can't",
    "i'm", "we're", "you're",
];

/// How a question was read against the visit so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The question stands on its own (or leans on context but has nothing
    /// to inherit except, perhaps, the product).
    Standalone {
        /// The product inherited from the previous turn (None: as given or named).
        product: Option<String>,
        /// The question's own topic terms.
        topic: Vec<String>,
    },
    /// A follow-up: product and topic come from the previous turn.
    FollowUp {
        /// The question to screen and answer.
        resolved: String,
        /// The product inherited (None: the question names one or none was known).
        product: Option<String>,
        /// The topic carried forward.
        topic: Vec<String>,
    },
    /// Leans on context, has no topic, and there is no previous turn.
    NeedsContext,
}

/// The previous turn of the visit, as far as a follow-up needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Previous {
    /// The product the previous turn was answered for.
    pub product: Option<String>,
    /// Its topic terms (its own, or the ones it inherited).
    pub topic: Vec<String>,
}

/// Lower-case words of `text` (letters, digits, apostrophes and hyphens).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’' || c == '-'))
        .map(|w| w.trim_matches(|c| c == '\'' || c == '’' || c == '-').replace('’', "'").to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// The question's own topic terms, in order, without repeats: content words
/// that are not generic, not a product name and not a bare number.
pub fn topic_terms(question: &str, product_names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words(question) {
        let generic = GENERIC.contains(&w.as_str()) || w.len() < 3 || w.chars().all(|c| c.is_ascii_digit());
        let product = product_names.iter().any(|p| p.eq_ignore_ascii_case(&w));
        if !generic && !product && !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Whether the question leans on something said before: an anaphor, an
/// elliptical opening, or at most [`SHORT_WORDS`] words.
pub fn leans_on_context(question: &str) -> bool {
    let ws = words(question);
    if ws.is_empty() {
        return false;
    }
    let joined = ws.join(" ");
    let opens = OPENERS.iter().any(|o| joined == *o || joined.starts_with(&format!("{o} ")));
    let anaphor = ws.iter().any(|w| ANAPHORS.contains(&w.as_str()));
    opens || anaphor || ws.len() <= SHORT_WORDS
}

/// Whether the question, alone, cannot be answered: it leans on context and
/// has no topic of its own ("what about it?", "and those?", "is that ok?").
pub fn is_bare(question: &str, product_names: &[String]) -> bool {
    leans_on_context(question) && topic_terms(question, product_names).is_empty() && !names_any(question, product_names)
}

fn names_any(question: &str, product_names: &[String]) -> bool {
    let ws = words(question);
    product_names.iter().any(|p| ws.iter().any(|w| w.eq_ignore_ascii_case(p)))
}

/// Reads `question` against the previous turn. `named` is the product the
/// question names itself (if any); `product_names` every name of every
/// product (never a topic term).
pub fn resolve(question: &str, previous: Option<&Previous>, named: Option<&str>, product_names: &[String]) -> Resolution {
    let own = topic_terms(question, product_names);
    if !leans_on_context(question) {
        return Resolution::Standalone { product: None, topic: own };
    }
    let Some(prev) = previous else {
        if own.is_empty() && named.is_none() {
            return Resolution::NeedsContext;
        }
        return Resolution::Standalone { product: None, topic: own };
    };
    let product = if named.is_some() { None } else { prev.product.clone() };
    // "the same for older patients?": the previous topic, narrowed by its own.
    let same = words(question).iter().any(|w| w == "same");
    if (!own.is_empty() && !same) || prev.topic.is_empty() {
        // Its own topic (or nothing to inherit): only the product carries over.
        if own.is_empty() && named.is_none() && product.is_none() {
            return Resolution::NeedsContext;
        }
        return Resolution::Standalone { product, topic: own };
    }
    let mut topic: Vec<String> = prev.topic.clone();
    topic.extend(own.into_iter().filter(|t| !prev.topic.contains(t)));
    let topic: Vec<String> = topic.into_iter().take(MAX_TOPIC_TERMS).collect();
    let carried: Vec<&str> = prev.topic.iter().take(MAX_TOPIC_TERMS).map(String::as_str).collect();
    let about = match product.as_deref().or(named) {
        Some(p) => format!("{} ({p})", carried.join(" ")),
        None => carried.join(" "),
    };
    Resolution::FollowUp { resolved: format!("About {about}: {}", question.trim()), product, topic }
}

impl Copilot {
    /// Every name the index's products go by (brand, generic, vocabulary),
    /// lower-case: never a topic term of a follow-up.
    pub fn product_name_list(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.product_names() {
            out.push(p.product.clone());
            out.extend(p.names.iter().cloned());
        }
        out.sort();
        out.dedup();
        out
    }

    /// The single product `question` names, if exactly one.
    pub fn product_named_in(&self, question: &str) -> Option<String> {
        let q = question.to_lowercase();
        let named: Vec<&str> =
            self.product_names().iter().filter(|p| p.names.iter().chain(std::iter::once(&p.product)).any(|n| super::product::names_in(&q, n))).map(|p| p.product.as_str()).collect();
        match named.as_slice() {
            [one] => Some((*one).to_string()),
            _ => None,
        }
    }
}

/// The answer to a question that leans on context with nothing to lean on:
/// which product and topic? No case, no retrieval, no product content.
pub fn clarify(question: &str) -> Answer {
    Answer {
        route: Route::Refused,
        answer: format!(
            "Which product and topic do you mean? \"{}\" refers to something said before, and this visit has no earlier question to take it from. Ask it in full (for example: \"How often should liver tests be done with Zentravia?\"). Nothing was sent to Medical Information.",
            question.trim()
        ),
        mode: Mode::Extractive,
        citations: Vec::new(),
        flags: Vec::new(),
        case_id: None,
        prompt_version: None,
        model: None,
        audit_id: None,
        guard_rules: None,
        timings_ms: Timings::default(),
        prompt_sha256: None,
        generated_tokens: None,
        retrieved: Vec::new(),
        product: None,
        note: Some("The question refers to something said before; this visit has no earlier question to take it from.".into()),
        parts: Vec::new(),
        fallback: None,
        quote: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["zentravia".into(), "zentravinib".into(), "testra".into()]
    }

    fn liver() -> Previous {
        Previous { product: Some("zentravia".into()), topic: topic_terms("How often should liver tests be done?", &names()) }
    }

    #[test]
    fn the_topic_of_a_question_is_its_content_words() {
        assert_eq!(topic_terms("How often should liver tests be done?", &names()), ["liver", "tests"]);
        assert_eq!(topic_terms("What are the LFT monitoring rules for Zentravia?", &names()), ["lft", "monitoring", "rules"]);
        assert!(topic_terms("what about patients who already have it?", &names()).is_empty());
        assert!(topic_terms("and how often after that?", &names()).is_empty());
        assert_eq!(topic_terms("Is it safe in pregnancy?", &names()), ["pregnancy"]);
    }

    /// Varied wordings of a follow-up with no topic of its own inherit the
    /// previous turn's topic and product.
    #[test]
    fn follow_ups_without_a_topic_inherit_product_and_topic() {
        for q in [
            "what about patients who already have it?",
            "and how often after that?",
            "What about those?",
            "Does that apply to them too?",
            "and after that?",
            "how about for someone who is already on it?",
            "Is it ok?",
            "what if they stop?",
            "And?",
        ] {
            match resolve(q, Some(&liver()), None, &names()) {
                Resolution::FollowUp { resolved, product, topic } => {
                    assert_eq!(product.as_deref(), Some("zentravia"), "{q}");
                    assert_eq!(topic, ["liver", "tests"], "{q}");
                    assert_eq!(resolved, format!("About liver tests (zentravia): {q}"), "{q}");
                }
                other => panic!("{q}: {other:?}"),
            }
        }
    }

    /// A follow-up with a topic of its own keeps it and inherits only the
    /// product; a standalone question inherits nothing.
    #[test]
    fn a_follow_up_with_its_own_topic_keeps_it() {
        for (q, topic) in [("Is it safe in pregnancy?", vec!["pregnancy"]), ("what about kidney impairment?", vec!["kidney", "impairment"]), ("dose in elderly?", vec!["dose", "elderly"])] {
            assert_eq!(resolve(q, Some(&liver()), None, &names()), Resolution::Standalone { product: Some("zentravia".into()), topic: topic.iter().map(|s| s.to_string()).collect() }, "{q}");
        }
        assert_eq!(
            resolve("Same for older patients?", Some(&liver()), None, &names()),
            Resolution::FollowUp { resolved: "About liver tests (zentravia): Same for older patients?".into(), product: Some("zentravia".into()), topic: vec!["liver".into(), "tests".into(), "older".into()] }
        );
        let q = "What is the recommended starting dose of Zentravia for plaque psoriasis?";
        assert!(!leans_on_context(q));
        assert_eq!(resolve(q, Some(&liver()), Some("zentravia"), &names()), Resolution::Standalone { product: None, topic: topic_terms(q, &names()) });
        // Naming another product: its own, not the previous one.
        assert_eq!(resolve("and for testra?", Some(&liver()), Some("testra"), &names()), Resolution::FollowUp { resolved: "About liver tests (testra): and for testra?".into(), product: None, topic: vec!["liver".into(), "tests".into()] });
    }

    /// Nothing to lean on: a bare question needs context; one with a topic
    /// stands on its own.
    #[test]
    fn a_bare_question_with_no_previous_turn_needs_context() {
        for q in ["what about it?", "And those?", "is that ok?", "what about patients who already have it?", "and how often after that?"] {
            assert_eq!(resolve(q, None, None, &names()), Resolution::NeedsContext, "{q}");
            assert!(is_bare(q, &names()), "{q}");
        }
        assert_eq!(resolve("in pregnancy?", None, None, &names()), Resolution::Standalone { product: None, topic: vec!["pregnancy".into()] });
        assert!(!is_bare("My patient got a rash after starting it", &names()));
        assert!(!is_bare("Is zentravia ok?", &names()));
        // A previous turn with neither product nor topic gives nothing to inherit.
        assert_eq!(resolve("what about it?", Some(&Previous::default()), None, &names()), Resolution::NeedsContext);
    }

    #[test]
    fn topic_terms_are_carried_at_most_max_topic_terms() {
        let prev = Previous { product: None, topic: (0..10).map(|i| format!("term{i}")).collect() };
        let Resolution::FollowUp { topic, resolved, .. } = resolve("and that?", Some(&prev), None, &names()) else { panic!("a follow-up") };
        assert_eq!(topic.len(), MAX_TOPIC_TERMS);
        assert!(resolved.starts_with("About term0 term1 term2 term3 term4 term5: "), "{resolved}");
    }
}
