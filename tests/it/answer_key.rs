//! No answer key in the rules (issue 9, point 8): a rule pattern or lexicon
//! entry of three or more words that appears verbatim in one or two cases of
//! a suite under `evals/` exists to make those cases pass, unless it is
//! general medical language (it occurs in the real FDA labels or the NLM
//! adverse-reaction sentences of `../shared/data`). A phrase that many cases
//! share ("what does the label say") is a general pattern, not a key.
//!
//! Failures name the entry and the case ids only, never the case text, so the
//! sealed suite stays sealed.

use std::collections::BTreeMap;

use onlabel::guard::text::Norm;

use crate::harness;

/// General language that the rules need and that happens to occur verbatim
/// in one or two cases: common idioms (lay terms for findings, policy and
/// injection idioms) that were not written from a case. Each was reviewed;
/// keep this list short and add nothing that reads like one case's wording.
const GENERAL_PHRASES: &[&str] = &[
    "through the roof",        // idiom for a lab value far above normal
    "cutaneous t-cell lymphoma", // a disease name (off-label rule, older than the suite heldout2 that also names it)
    "came down with",          // idiom for falling ill
    "off the record",          // idiom of prompt injection / compliance evasion
    "for a friend",            // "asking for a friend": evasion idiom
    "you are now",             // classic prompt-injection opener
    "no need to",              // "no need to log this": evasion
    "no side effects",         // absolute claim (output rule) / negation cue
    "how much is",             // pricing question opener
    "twice a week",            // a dosing frequency
    "has been on",             // "has been on it since": exposure
    "positive pregnancy test", // the way a pregnancy is confirmed
    "a handful of",            // quantity idiom of an overdose
    "hep b reactivation",      // common shorthand of hepatitis B virus reactivation
    "hair falling out",        // lay term for alopecia
    "can't sit still",         // lay term for akathisia
    "falta de ar",             // Portuguese for shortness of breath
    "low blood counts",        // lay term for cytopenias
    "how it works",            // lay phrasing of mechanism of action
    "does the label",          // question opener
    "data on file",            // the industry's term for unpublished data (unsolicited-request rule, older than the suite heldout3 that also uses it)
];

/// Every eval case's text (question, text or topics), normalised, by id.
fn eval_texts() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    for dir in [harness::root().join("evals"), harness::root().join("evals/sealed")] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "jsonl") {
                    files.push(e.path());
                }
            }
        }
    }
    assert!(files.len() >= 5, "eval suites found: {files:?}");
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//")) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = v["id"].as_str().unwrap_or("?").to_string();
            for k in ["question", "text", "topics", "notes"] {
                if let Some(t) = v[k].as_str() {
                    out.push((id.clone(), format!(" {} ", words(&Norm::new(t).text))));
                }
            }
        }
    }
    out
}

/// The general medical language of the shared data: label texts and AE sentences.
fn medical_text() -> String {
    let d = harness::shared_data();
    let mut s = String::new();
    for dir in [d.join("pi/text"), d.join("pi/text_partial_nlm"), d.join("ae")] {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                s.push_str(&words(&Norm::new(&t).text));
                s.push(' ');
            }
        }
    }
    format!(" {s} ")
}

/// Words (letters, digits, apostrophes, hyphens) separated by single spaces.
fn words(t: &str) -> String {
    t.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-')).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The literal word runs of a regex: stretches of plain words between regex
/// syntax, with `\x27` read as an apostrophe; a run is cut at any
/// metacharacter, so only text that every match of that stretch contains is kept.
fn literal_runs(re: &str) -> Vec<String> {
    let re = re.replace("\\x27", "'").replace("\\b", " ").replace("\\s", " ").replace("\\.", ".");
    let mut runs = Vec::new();
    let mut cur = String::new();
    let mut chars = re.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
                runs.push(std::mem::take(&mut cur));
            }
            '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' | '.' | '<' | '>' | '=' | ':' | '/' | '&' | '#' | '%' | ',' | '"' | ';' => {
                runs.push(std::mem::take(&mut cur));
            }
            '?' | '*' | '+' => {
                // The char before a quantifier is optional or repeated: drop it from the run.
                cur.pop();
                runs.push(std::mem::take(&mut cur));
            }
            _ => cur.push(c),
        }
    }
    runs.push(cur);
    runs.into_iter().map(|r| words(&r)).filter(|r| r.split(' ').count() >= 3).collect()
}

/// `(source, entry)` for every pattern of the rules files and every lexicon line.
fn entries() -> Vec<(String, String)> {
    let root = harness::root();
    let mut out = Vec::new();
    for f in ["rules/guard-rules.toml", "rules/report-elements.toml"] {
        let v: toml::Value = toml::from_str(&std::fs::read_to_string(root.join(f)).unwrap()).unwrap();
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                toml::Value::String(s) => {
                    for r in literal_runs(&s) {
                        out.push((f.to_string(), r));
                    }
                }
                toml::Value::Array(a) => stack.extend(a),
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        if !matches!(k.as_str(), "reason" | "id" | "name" | "situation" | "kind" | "applies" | "route" | "element") {
                            stack.push(v);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for f in ["lexicon/ae_terms.txt", "lexicon/synonyms.txt", "lexicon/stopwords.txt"] {
        for line in std::fs::read_to_string(root.join(f)).unwrap().lines() {
            let line = line.split(" #").next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(re) = line.strip_prefix("re:") {
                let pat = re.rsplit_once("=>").map_or(re, |(p, _)| p);
                for r in literal_runs(pat) {
                    out.push((f.to_string(), r));
                }
                continue;
            }
            for part in line.split(['|', ',', '=']).map(|p| p.trim_start_matches('>')) {
                let w = words(&Norm::new(part).text);
                if w.split(' ').count() >= 3 {
                    out.push((f.to_string(), w));
                }
            }
        }
    }
    out
}

#[test]
fn no_rule_or_lexicon_entry_is_copied_from_one_eval_case() {
    let cases = eval_texts();
    let medical = medical_text();
    let mut keys: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (src, e) in entries() {
        let needle = format!(" {e} ");
        if medical.contains(&needle) || GENERAL_PHRASES.contains(&e.as_str()) {
            continue;
        }
        let hits: Vec<String> = cases.iter().filter(|(_, t)| t.contains(&needle)).map(|(id, _)| id.clone()).collect();
        if (1..=2).contains(&hits.len()) {
            keys.insert((src, e), hits);
        }
    }
    let report: Vec<String> = keys.iter().map(|((src, e), ids)| format!("{src}: {e:?} matches {}", ids.join(", "))).collect();
    assert!(report.is_empty(), "{} entries read like answer keys:\n{}", report.len(), report.join("\n"));
}

#[test]
fn literal_runs_read_regexes() {
    assert_eq!(literal_runs(r"\bmake it (?:sound )?(?:reassuring|less scary)\b"), Vec::<String>::new());
    assert_eq!(literal_runs(r"\bone soft sentence\b"), vec!["one soft sentence"]);
    assert_eq!(literal_runs(r"\bno podia cerrar la boca\b"), vec!["no podia cerrar la boca"]);
    assert_eq!(literal_runs(r"\bdoesn\x27t work at all\b"), vec!["doesn't work at all"]);
}
