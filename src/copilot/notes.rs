//! A rep's visit notes, clause by clause: what the HCP asked, what the rep
//! agreed to do next, and what was simply discussed.
//!
//! Why it is built this way: a note line often carries two things at once
//! ("Discussed liver monitoring and agreed to send the PI"), and filing the
//! whole line under one heading put discussions under follow-ups (issue 20).
//! So a line is first cut into clauses where a new clause starts with its
//! own verb (after `;`, `, then`, `and` + a commitment), and each clause is
//! filed by its *leading* verb phrase: a past-tense account ("discussed",
//! "reviewed") is a discussion, a commitment ("will send", "agreed to",
//! "follow up", "next visit") a follow-up, an asked question a question. A
//! request the HCP made of the rep ("asked me to send", "asked for a copy")
//! is something the rep must do: a follow-up, not a question.

/// What one clause of visit notes records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// The HCP asked something ("Dr. Lee asked whether it can be crushed").
    Question,
    /// Something the rep (or the HCP) will do after the visit.
    FollowUp,
    /// An account of what was discussed.
    Discussion,
}

/// Words that open a commitment: the clause says what will happen next.
const COMMITMENT: &[&str] = &[
    "will", "i'll", "we'll", "she'll", "he'll", "they'll", "shall", "going to", "plan to", "plans to", "planning to", "need to", "needs to",
    "to send", "to share", "to provide", "to bring", "to email", "to call", "to schedule", "to follow", "to drop", "agreed to", "agreed that",
    "promised", "committed to", "follow up", "follow-up", "followup", "f/u", "send", "email", "schedule", "book", "drop off", "call back",
    "get back", "bring", "next visit", "next call", "next meeting", "next week", "next month", "to-do", "todo", "action:", "mir", "submit",
    "request", "order", "set up", "arrange",
];

/// Verbs of a past account: the clause reports what happened at the visit.
const ACCOUNT: &[&str] = &[
    "discussed", "reviewed", "talked", "covered", "went over", "walked through", "explained", "presented", "showed", "shared", "mentioned",
    "described", "detailed", "highlighted", "noted", "emphasized", "emphasised", "summarized", "summarised", "told", "said", "stated",
    "met", "visited", "saw", "left", "gave", "handed", "provided", "delivered", "answered", "addressed", "raised", "brought up",
];

/// Cues that a clause reports a question the HCP asked.
const QUESTION: &[&str] = &["asked", "wanted to know", "wants to know", "wondered", "wondering", "question", "questions", "curious", "inquired", "enquired", "queried", "unsure whether", "not sure whether"];

/// Subjects a clause may open with before its verb ("Dr. Lee", "I", "we").
fn strip_subject(clause: &str) -> &str {
    let t = clause.trim_start();
    let lower = t.to_lowercase();
    for s in ["i ", "we ", "she ", "he ", "they ", "rep ", "the hcp ", "hcp ", "the doctor ", "doctor ", "also ", "then ", "and ", "but "] {
        if lower.starts_with(s) {
            return strip_subject(&t[s.len()..]);
        }
    }
    // "Dr. Lee", "Dr Lee", "Nurse Kim": a title and one name.
    for title in ["dr. ", "dr ", "nurse ", "prof. ", "prof ", "mr. ", "mrs. ", "ms. "] {
        if lower.starts_with(title) {
            let rest = &t[title.len()..];
            return match rest.find(' ') {
                Some(i) => strip_subject(&rest[i + 1..]),
                None => "",
            };
        }
    }
    t
}

fn starts_with_any(text: &str, cues: &[&str]) -> bool {
    let lower = text.to_lowercase();
    // The cue, then the end of a word ("next visit:" and "next visit," count; "emailed" does not).
    cues.iter().any(|c| lower.starts_with(c) && lower[c.len()..].chars().next().is_none_or(|n| !n.is_alphanumeric() && n != '\'' && n != '-'))
}

fn contains_any(text: &str, cues: &[&str]) -> bool {
    let lower = format!(" {} ", text.to_lowercase());
    cues.iter().any(|c| lower.contains(&format!(" {c} ")) || lower.contains(&format!(" {c},")) || lower.contains(&format!(" {c}.")))
}

/// Files one clause by its leading verb phrase (see the module docs).
pub fn classify(clause: &str) -> NoteKind {
    let body = strip_subject(clause);
    let lower = body.to_lowercase();
    // A request made of the rep is the rep's to-do.
    if ["asked me to", "asked us to", "asked for", "asked me for", "asked us for", "requested", "wants me to", "wanted me to", "would like me to", "would like a copy", "would like the"]
        .iter()
        .any(|c| lower.starts_with(c))
    {
        return NoteKind::FollowUp;
    }
    if starts_with_any(body, ACCOUNT) {
        return NoteKind::Discussion;
    }
    if starts_with_any(body, COMMITMENT) {
        return NoteKind::FollowUp;
    }
    if clause.contains('?') || contains_any(body, QUESTION) {
        return NoteKind::Question;
    }
    // A commitment further in ("… so I will send the card").
    if contains_any(body, &["will", "i'll", "we'll", "agreed to", "follow up", "follow-up", "next visit", "next call", "to send", "to schedule"]) {
        return NoteKind::FollowUp;
    }
    NoteKind::Discussion
}

/// One note line cut into clauses: at `;`, and at `and`/`, then`/`, so`/`but`
/// where what follows opens a new clause with a commitment, an account or a
/// question ("Discussed X and agreed to send Y" → two clauses). A plain
/// "and" inside a noun phrase ("liver and kidney function") never cuts.
pub fn clauses(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in line.split(';') {
        let mut rest = part.trim();
        'cut: loop {
            let lower = rest.to_lowercase();
            for sep in [" and then ", ", then ", " then ", ", and ", " and ", ", so ", " so ", ", but ", " but ", ", "] {
                let mut from = 0;
                while let Some(i) = lower[from..].find(sep).map(|i| i + from) {
                    let after = &rest[i + sep.len()..];
                    let opens = {
                        let b = strip_subject(after);
                        starts_with_any(b, COMMITMENT) || starts_with_any(b, ACCOUNT) || starts_with_any(b, &["asked", "wanted to know", "wondered", "inquired", "requested"])
                    };
                    // The clause before must stand on its own (two words or more).
                    if opens && rest[..i].split_whitespace().count() >= 2 {
                        out.push(rest[..i].trim().trim_end_matches(',').to_string());
                        rest = after.trim();
                        continue 'cut;
                    }
                    from = i + sep.len();
                }
            }
            break;
        }
        if !rest.trim().is_empty() {
            out.push(rest.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discussion_and_a_commitment_in_one_line_are_two_clauses() {
        let c = clauses("Discussed liver monitoring and agreed to send the PI");
        assert_eq!(c, vec!["Discussed liver monitoring", "agreed to send the PI"]);
        assert_eq!(classify(&c[0]), NoteKind::Discussion);
        assert_eq!(classify(&c[1]), NoteKind::FollowUp);
    }

    #[test]
    fn noun_phrases_joined_by_and_are_not_cut() {
        assert_eq!(clauses("Reviewed liver and kidney function testing"), vec!["Reviewed liver and kidney function testing"]);
        assert_eq!(clauses("Went over dosing, titration and missed doses").len(), 1);
    }

    #[test]
    fn each_kind_on_varied_wording() {
        for (text, kind) in [
            ("Discussed the boxed warning", NoteKind::Discussion),
            ("Reviewed the hepatic monitoring schedule with her", NoteKind::Discussion),
            ("We went over the dosing card", NoteKind::Discussion),
            ("Dr. Lee asked whether it can be taken with food", NoteKind::Question),
            ("She wanted to know about use in pregnancy", NoteKind::Question),
            ("How long until patients respond?", NoteKind::Question),
            ("Will send the full Prescribing Information", NoteKind::FollowUp),
            ("I'll drop off the patient brochure next week", NoteKind::FollowUp),
            ("Follow up in two weeks", NoteKind::FollowUp),
            ("Dr. Shah asked me to send the dosing guide", NoteKind::FollowUp),
            ("She asked for a copy of the PI", NoteKind::FollowUp),
            ("Schedule a lunch with the nurses", NoteKind::FollowUp),
            ("Next visit: bring the renal data", NoteKind::FollowUp),
            ("Office was busy", NoteKind::Discussion),
        ] {
            assert_eq!(classify(text), kind, "{text}");
        }
    }

    #[test]
    fn semicolons_and_then_cut() {
        let c = clauses("Talked about LFTs; she asked how often to repeat them, then I will email the schedule");
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c.iter().map(|x| classify(x)).collect::<Vec<_>>(), vec![NoteKind::Discussion, NoteKind::Question, NoteKind::FollowUp]);
    }
}
