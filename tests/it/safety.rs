//! Issue 9 end to end: nothing unverified reaches a terminal, every character
//! of long notes is screened, reports in the field forces' languages reach a
//! person, and the guard does not depend on the copilot.

use std::process::Command;

use crate::harness::{bin, root};

fn ingest_demo(dir: &std::path::Path) -> String {
    let idx = dir.join("idx");
    let out = Command::new(bin())
        .args(["ingest", "--corpus", root().join("corpora/demo").to_str().unwrap(), "--index", idx.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    idx.to_str().unwrap().to_string()
}

/// A shell-quoted argument for `script -c`.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `ask` on a pseudo-terminal (util-linux `script`), with the real model:
/// what the rep sees is exactly the verified answer of `ask --json` (same
/// greedy decoding) followed by the citations — no draft, no second copy.
#[test]
fn ask_on_a_terminal_shows_only_verified_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let idx = ingest_demo(dir.path());
    let data = dir.path().join("data");
    let question = "Can nursing moms take it?";
    let common = ["--data", data.to_str().unwrap(), "ask", "--index", &idx, "--product", "zentravia"];
    let json = Command::new(bin()).args(common).args(["--json", question]).current_dir(root()).output().unwrap();
    assert!(json.status.success(), "{}", String::from_utf8_lossy(&json.stderr));
    let a: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(a["route"], "answer", "{a}");
    let answer = a["answer"].as_str().unwrap();

    let cmd = std::iter::once(bin().to_str().unwrap().to_string()).chain(common.iter().map(|s| s.to_string())).chain([question.to_string()]);
    let cmd: Vec<String> = cmd.map(|s| q(&s)).collect();
    let out = Command::new("script")
        .args(["-qec", &cmd.join(" "), "/dev/null"])
        .current_dir(root())
        .env("TERM", "dumb")
        .output()
        .expect("util-linux script runs the command on a pseudo-terminal");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let screen = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(!screen.contains("unverified"), "{screen}");
    // The screen starts with the verified answer, once, then the citations.
    let first = screen.split("\n\n").next().unwrap_or("").trim();
    assert_eq!(first, answer.trim(), "the screen shows exactly the verified answer: {screen}");
    assert_eq!(screen.matches(answer.trim()).count(), 1, "one copy: {screen}");
    assert!(screen.contains("[1] zentravia-"), "{screen}");
}

/// A 20 KB visit note whose last paragraph tells of an adverse event opens a
/// Pharmacovigilance case: the notes are screened to the last character.
#[test]
fn summarize_screens_the_last_paragraph_of_long_notes() {
    let dir = tempfile::tempdir().unwrap();
    let idx = ingest_demo(dir.path());
    let data = dir.path().join("data");
    let mut notes = String::new();
    let mut i = 0;
    while notes.len() < 20_000 {
        i += 1;
        notes.push_str(&format!(
            "Visit {i}: discussed the recommended dose and liver test monitoring with the office staff; the HCP asked for the dosing card and the patient brochure. Follow up next month.\n"
        ));
    }
    notes.push_str("\nOn the way out the nurse mentioned that one of their patients broke out in hives and had trouble breathing the evening after her second dose.\n");
    assert!(notes.len() > 20_000);
    let f = dir.path().join("notes.txt");
    std::fs::write(&f, &notes).unwrap();
    let out = Command::new(bin())
        .args(["--data", data.to_str().unwrap(), "summarize", "--index", &idx, "--product", "zentravia", "--json", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["route"], "pharmacovigilance", "{s}");
    assert!(s["case_id"].as_str().unwrap().starts_with("PV-"), "{s}");
    let flags = s["flags"].as_array().unwrap();
    assert!(flags.iter().any(|f| f["span"][0].as_u64().unwrap() > 19_000), "the flag points into the last paragraph: {flags:?}");
}

/// Reports in Spanish and German reach Pharmacovigilance with a case; text
/// in a language the guard does not read reaches a person, never an answer
/// or a refusal.
#[test]
fn reports_in_other_languages_reach_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let idx = ingest_demo(dir.path());
    let data = dir.path().join("data");
    let ask = |q: &str| -> serde_json::Value {
        let out = Command::new(bin())
            .args(["--data", data.to_str().unwrap(), "ask", "--extractive", "--index", &idx, "--product", "zentravia", "--json", q])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    for q in [
        "A la señora que atiendo se le pusieron los ojos amarillos y orina muy oscura desde que empezó con la pastilla hace dos semanas.",
        "Bei einer Patientin sind nach der zweiten Tablette die Lippen angeschwollen und sie musste in die Notaufnahme.",
    ] {
        let a = ask(q);
        assert_eq!(a["route"], "pharmacovigilance", "{q}: {a}");
        assert!(a["case_id"].as_str().unwrap().starts_with("PV-"), "{a}");
    }
    for q in ["患者さんが昨日からひどい発疹が出ています。", "Pacjentka po drugiej tabletce ma wysypkę na całym ciele i gorączkę."] {
        let a = ask(q);
        let route = a["route"].as_str().unwrap();
        assert!(route == "medical" || route == "pharmacovigilance", "{q}: {a}");
        assert!(a["case_id"].as_str().is_some(), "a case for a person to read: {a}");
    }
}

/// The guard is below the copilot: nothing in `src/guard` imports `copilot`.
#[test]
fn guard_imports_nothing_from_copilot() {
    for e in walk(&root().join("src/guard")) {
        let src = std::fs::read_to_string(&e).unwrap();
        assert!(!src.contains("crate::copilot"), "{} uses the copilot", e.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// `--rules DIR` loads the guard's rule files at run time: a rule change is
/// in effect without a rebuild, and a broken file is named with its line.
#[test]
fn rules_load_from_a_directory_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let idx = ingest_demo(dir.path());
    let rules = dir.path().join("candidate");
    std::fs::create_dir_all(rules.join("rules")).unwrap();
    std::fs::create_dir_all(rules.join("lexicon")).unwrap();
    for f in ["rules/guard-rules.toml", "rules/report-elements.toml", "lexicon/ae_terms.txt"] {
        std::fs::copy(root().join(f), rules.join(f)).unwrap();
    }
    let src = std::fs::read_to_string(rules.join("rules/guard-rules.toml")).unwrap();
    std::fs::write(rules.join("rules/guard-rules.toml"), src.replacen("'\\bcoupons?\\b'", "'\\bcoupons?\\b', '\\bzorblax\\b'", 1)).unwrap();
    let ask = |extra: &[&str]| -> (bool, serde_json::Value, String) {
        let out = Command::new(bin())
            .args(["--data", dir.path().join("data").to_str().unwrap(), "ask", "--extractive", "--index", &idx, "--product", "zentravia", "--json"])
            .args(extra)
            // A neutral question: "does the office want a zorblax?" reads
            // as offering something of value, and the intent head refuses it.
            .arg("What is a zorblax?")
            .output()
            .unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.success(), v, String::from_utf8_lossy(&out.stderr).into())
    };
    let (ok, builtin, _) = ask(&[]);
    assert!(ok);
    assert_ne!(builtin["route"], "refused", "{builtin}");
    let (ok, candidate, err) = ask(&["--rules", rules.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(candidate["route"], "refused", "{candidate}");
    assert!(candidate["flags"][0]["rule_id"] == "REF-PRICING", "{candidate}");
    assert_ne!(candidate["guard_rules"], builtin["guard_rules"], "the answer records which rule file decided");
    // A broken candidate is refused with its file and line.
    std::fs::write(rules.join("rules/report-elements.toml"), "name = \"report-elements\"\nversion = 2\nbogus = 1\n").unwrap();
    let (ok, _, err) = ask(&["--rules", rules.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("report-elements.toml:"), "{err}");
}
