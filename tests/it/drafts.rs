//! Issue 10, point 7: email drafts and visit summaries on their edge cases,
//! on the real binary over the demo corpus and the real FDA labels.
//! (Unknown product, empty `--hcp`, empty topics: `first_hour::issue10_7_…`.)

use crate::harness::{bin, root, shared_data};

struct Env {
    _tmp: tempfile::TempDir,
    data: String,
    demo: String,
    labels: String,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data").to_str().unwrap().to_string();
    let demo = tmp.path().join("demo").to_str().unwrap().to_string();
    let labels = tmp.path().join("labels").to_str().unwrap().to_string();
    for (corpus, idx) in [(root().join("corpora/demo"), &demo), (shared_data().join("pi"), &labels)] {
        let out = std::process::Command::new(bin()).args(["ingest", "--corpus", corpus.to_str().unwrap(), "--index", idx]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    Env { _tmp: tmp, data, demo, labels }
}

fn run(e: &Env, args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = std::process::Command::new(bin()).args(["--json", "--data", &e.data]).args(args).stdin(std::process::Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v = serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("not JSON ({err}): {stdout}"));
    (out.status.code().unwrap_or(-1), v, String::from_utf8_lossy(&out.stderr).into())
}

fn email(e: &Env, index: &str, product: &str, topics: &str) -> serde_json::Value {
    let (code, d, err) = run(e, &["email", "--index", index, "--product", product, "--hcp", "Dr. Shah", topics]);
    assert_eq!(code, 0, "{err}");
    d
}

/// Every statement and ISI line of a draft.
fn lines(d: &serde_json::Value) -> Vec<serde_json::Value> {
    d["statements"].as_array().unwrap().iter().chain(d["isi"].as_array().unwrap()).cloned().collect()
}

/// Before: "ZENTRAVIA is contraindicated in patients with:" was quoted alone,
/// its three contraindications left out. Now a lead-in carries its items,
/// verbatim from the cited passage, in the JSON and in the body.
#[test]
fn issue10_7_a_list_lead_in_is_quoted_with_its_items() {
    let e = env();
    let d = email(&e, &e.demo, "zentravia", "we went over who should not take it (contraindications) and the recommended dose");
    let lead = lines(&d).into_iter().find(|s| s["text"] == "ZENTRAVIA is contraindicated in patients with:").unwrap_or_else(|| panic!("{d}"));
    let items: Vec<&str> = lead["items"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    assert_eq!(items.len(), 3, "{lead}");
    assert!(items[0].starts_with("severe hepatic impairment (Child-Pugh C)"), "{items:?}");
    let refs = d["references"].as_array().unwrap();
    let quote = refs.iter().find(|r| r["n"] == lead["n"]).unwrap()["quote"].as_str().unwrap().to_string();
    let body = d["body"].as_str().unwrap();
    for i in &items {
        assert!(quote.contains(i), "an item is verbatim from the cited passage: {i}");
        assert!(body.contains(&format!("    - {i}\n")), "the body lists the item under its lead-in: {body}");
    }
    // No lead-in anywhere, on the real labels either, goes out without its items.
    for (product, topics) in [("zentravia", "contraindications; hepatotoxicity"), ("lipitor", "contraindications and liver enzymes; pregnancy"), ("humira", "TB screening before starting; live vaccines"), ("adcetris", "contraindications; peripheral neuropathy"), ("veklury", "dosing; renal impairment")] {
        let index = if product == "zentravia" { &e.demo } else { &e.labels };
        let d = email(&e, index, product, topics);
        for s in lines(&d) {
            if s["text"].as_str().unwrap().trim_end().ends_with(':') {
                assert!(!s["items"].as_array().map_or(true, Vec::is_empty), "{product}: a lead-in without its list: {s}");
            }
        }
    }
}

/// Before: a topic raised twice, or one the safety information already
/// covers, was quoted twice. Now each statement appears once in the draft.
#[test]
fn issue10_7_the_same_statement_is_not_quoted_twice() {
    let e = env();
    for (index, product, topics) in [
        (&e.demo, "zentravia", "liver test monitoring; LFT monitoring schedule; the boxed warning on liver injury; hepatotoxicity"),
        (&e.labels, "humira", "serious infections; the risk of serious infections; TB screening; testing for latent TB before starting"),
    ] {
        let d = email(&e, index, product, topics);
        let texts: Vec<String> = lines(&d).iter().map(|s| s["text"].as_str().unwrap().to_string()).collect();
        for (i, a) in texts.iter().enumerate() {
            for b in &texts[i + 1..] {
                assert!(!onlabel::copilot::email::same_statement(a, b), "{product}: quoted twice:\n  {a}\n  {b}");
            }
        }
        let body = d["body"].as_str().unwrap();
        if product == "zentravia" {
            // The boxed warning and §5.1 state the same ALT figures in other words: once.
            assert_eq!(body.matches("4.1%").count(), 1, "{body}");
        }
        for t in &texts {
            assert_eq!(body.matches(t.as_str()).count(), 1, "{product}: {t} appears more than once in the body");
        }
    }
    // The same claim noted twice in visit notes is summarised once.
    let notes = format!("{}/notes.txt", e.data);
    std::fs::create_dir_all(&e.data).unwrap();
    std::fs::write(&notes, "- Zentravia is taken at 20 mg once daily.\n- zentravia is taken at 20 mg once daily\n- Agreed to send the FAQ.\n").unwrap();
    let (code, s, err) = run(&e, &["summarize", "--index", &e.demo, "--product", "zentravia", &notes]);
    assert_eq!(code, 0, "{err}");
    let kept = s["statements"].as_array().unwrap().len() + s["removed"].as_array().unwrap().len();
    assert_eq!(kept, 1, "{s}");
}

/// Before: a topic nothing approved supports vanished from the draft without
/// a word. Now it is listed in `unsupported_topics` and named in the notes to
/// the rep (`message`, printed on stderr in text mode), never in the email.
#[test]
fn issue10_7_an_unsupported_topic_is_named_in_the_notes_to_the_rep() {
    let e = env();
    let odd = "her favourite football team";
    let d = email(&e, &e.demo, "zentravia", &format!("the recommended dose; {odd}"));
    assert_eq!(d["route"], "answer", "{d}");
    assert_eq!(d["unsupported_topics"], serde_json::json!([odd]), "{d}");
    let m = d["message"].as_str().unwrap();
    assert!(m.contains(odd) && m.contains("Medical Information"), "{m}");
    assert!(!d["body"].as_str().unwrap().contains("football"), "the notes are to the rep, not in the email");
    assert!(!d["statements"].as_array().unwrap().is_empty(), "the supported topic is drafted: {d}");
    // Text mode: the draft on stdout, the note on stderr.
    let out = std::process::Command::new(bin())
        .args(["--data", &e.data, "email", "--index", &e.demo, "--product", "zentravia", "--hcp", "Dr. Shah"])
        .arg(format!("the recommended dose; {odd}"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains(odd));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(odd));
    // Topics over the limit are named too, never dropped silently.
    let many: Vec<String> = (1..=onlabel::copilot::email::MAX_TOPICS + 2).map(|i| format!("topic number {i} of the call")).collect();
    let d = email(&e, &e.demo, "zentravia", &many.join("; "));
    assert_eq!(d["unsupported_topics"].as_array().unwrap().len(), many.len(), "{d}");
    assert!(d["message"].as_str().unwrap().contains("second email"), "{d}");
    // Empty notes are an error, not an empty summary.
    let notes = format!("{}/empty.txt", e.data);
    std::fs::create_dir_all(&e.data).unwrap();
    std::fs::write(&notes, "  \n\n").unwrap();
    let (code, v, _) = run(&e, &["summarize", "--index", &e.demo, "--product", "zentravia", &notes]);
    assert_eq!(code, 2);
    assert_eq!(v["error"]["code"], "bad_file", "{v}");
}
