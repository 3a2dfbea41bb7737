//! Issue 17's probe rows on the real binary: `--as-of` for compliance only
//! (row 6), a damaged index (row 9), file inputs read with their limit
//! (row 11); and the chat face's row 3, on the matrix's in-process router.
//! The other HTTP rows are in `authz_matrix`, on the same fixture.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::authz_matrix::{call, world};
use crate::harness::{bin, build_index, corpus, root};

fn run(data: &Path, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(bin());
    c.arg("--data").arg(data).args(args);
    for v in ["ONLABEL_TOKEN", "ONLABEL_USER", "ONLABEL_ROOT", "RUST_BACKTRACE"] {
        c.env_remove(v);
    }
    // The matrix shares this store and fails many sign-ins from this OS user
    // on purpose; the throttle is tested on stores of its own.
    c.env("ONLABEL_SIGN_IN_THROTTLE_AFTER", "1000000").env("ONLABEL_SIGN_IN_LOCK_AFTER", "1000000");
    if let Some(t) = token {
        c.env("ONLABEL_TOKEN", t);
    }
    let out = c.stdin(Stdio::null()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn code_of(out: &str) -> String {
    serde_json::from_str::<serde_json::Value>(out).ok().and_then(|v| v["error"]["code"].as_str().map(str::to_string)).unwrap_or_default()
}

const PI: &[u8] = b"# Testra PI\n\n## 5 WARNINGS AND PRECAUTIONS\n\n### 5.2 Hepatotoxicity\n\nTESTRA can cause serious liver injury. Monitor liver enzymes every 4 weeks.\n";
const NEXT: &[u8] = b"# Testra PI 2027\n\n## 5 WARNINGS AND PRECAUTIONS\n\n### 5.3 Liver monitoring\n\nTESTRA liver enzymes must be checked every week from 2027 onward.\n";

fn manifest(id: &str, file: &str, approved_on: &str, expires_on: &str) -> String {
    format!(
        "[[document]]\nid = \"{id}\"\nfile = \"{file}\"\nproduct = \"testra\"\nkind = \"pi\"\naudience = \"promotional\"\nmlr_number = \"T-{id}\"\napproved_on = \"{approved_on}\"\nexpires_on = \"{expires_on}\"\nstatus = \"approved\"\n\n"
    )
}

#[test]
fn probe_row6_as_of_is_for_compliance_only_and_a_future_approval_is_never_cited() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    // One document that expired in 2021, one approved in 2027 (not yet approved today).
    let m = manifest("old", "old.md", "2019-01-01", "2021-01-01") + &manifest("next", "next.md", "2027-06-01", "2030-01-01");
    let c = corpus(&dir.path().join("c"), &m, &[("old.md", PI), ("next.md", NEXT)]);
    let idx = dir.path().join("idx");
    drop(build_index(&[c], &idx));
    let idx = idx.to_str().unwrap();
    let q = "How often should liver enzymes be checked?";
    let ask = |token: Option<&str>, extra: &[&str]| {
        let mut args = vec!["--json", "ask", "--extractive", "--index", idx, "--product", "testra"];
        args.extend_from_slice(extra);
        args.push(q);
        run(&w.data, token, &args)
    };
    // The probe: a rep asks "as of" a day the expired document was valid.
    for (who, token) in [(None, None), (Some("m-rep"), Some(w.tokens["m-rep"].as_str()))] {
        let mut extra = vec!["--as-of", "2020-06-01"];
        if let Some(id) = who {
            extra.extend(["--as", id]);
        }
        let (code, out, err) = ask(token, &extra);
        assert_eq!(code, 2, "{who:?}: {out}{err}");
        assert_eq!(code_of(&out), "bad_input", "{out}");
        assert!(err.contains("--as-of") && err.contains("as of today"), "{err}");
    }
    // A rep is answered as of today: neither the expired nor the not-yet-approved document is cited.
    let (code, out, err) = ask(Some(&w.tokens["m-rep"]), &["--as", "m-rep"]);
    assert_eq!(code, 0, "{err}");
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(a["citations"].as_array().unwrap().is_empty(), "{a}");
    assert_ne!(a["route"], "answer", "{a}");
    // Compliance may look at another day, and sees what a rep would have seen then.
    let (code, out, err) = ask(Some(&w.tokens["m-compliance"]), &["--as", "m-compliance", "--as-of", "2020-06-01"]);
    assert_eq!(code, 0, "{err}");
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cited: Vec<&str> = a["citations"].as_array().unwrap().iter().filter_map(|c| c["doc_id"].as_str()).collect();
    assert!(cited.iter().all(|d| *d == "old"), "{a}");
    // Even as of a day past its approval date, the 2027 document is not cited before 2027-06-01.
    let (code, out, err) = ask(Some(&w.tokens["m-compliance"]), &["--as", "m-compliance", "--as-of", "2027-05-31"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("\"next\""), "{out}");
    let (_, out, _) = ask(Some(&w.tokens["m-compliance"]), &["--as", "m-compliance", "--as-of", "2027-06-01"]);
    assert!(out.contains("\"next\""), "cited from its approval day: {out}");
    // email and summarize refuse a rep's --as-of as well.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "Discussed liver monitoring with Dr. Shah.").unwrap();
    let notes = notes.to_str().unwrap();
    for args in [
        vec!["email", "--index", idx, "--product", "testra", "--hcp", "Dr. Shah", "--as-of", "2020-06-01", "liver monitoring"],
        vec!["summarize", "--index", idx, "--product", "testra", "--as-of", "2020-06-01", notes],
    ] {
        let (code, _, err) = run(&w.data, None, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("--as-of"), "{err}");
    }
}

/// Flips 16 bytes in the middle of the largest segment file of an index.
fn damage(idx: &Path) {
    let seg = std::fs::read_dir(idx)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| ["store", "idx", "term", "pos", "fast", "fieldnorm"].contains(&e.to_str().unwrap())))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0x5A;
    }
    std::fs::write(&seg, bytes).unwrap();
}

#[test]
fn probe_row9_a_damaged_index_is_exit_2_index_damaged_from_ask_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    drop(build_index(&[root().join("corpora/demo")], &idx));
    damage(&idx);
    let data = dir.path().join("data");
    let idx = idx.to_str().unwrap();
    let (code, out, err) = run(&data, None, &["--json", "ask", "--extractive", "--index", idx, "--product", "zentravia", "What are the LFT monitoring rules?"]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(code_of(&out), "index_damaged", "{out}");
    assert!(!err.contains("panicked") && !err.contains("backtrace") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert!(err.contains("onlabel ingest"), "says how to fix it: {err}");
    // serve refuses to start on it (and so never dies later, mid-request).
    let (code, out, err) = run(&data, None, &["--json", "serve", "--extractive", "--index", idx, "--addr", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(code_of(&out), "index_damaged", "{out}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
}

#[test]
fn probe_row11_summarize_dev_zero_fails_fast_at_the_notes_limit() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    drop(build_index(&[root().join("corpora/demo")], &idx));
    let t = std::time::Instant::now();
    let (code, out, err) = run(&dir.path().join("data"), None, &["--json", "summarize", "--index", idx.to_str().unwrap(), "--product", "zentravia", "/dev/zero"]);
    assert!(t.elapsed() < std::time::Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(code_of(&out), "bad_file", "{out}");
    assert!(err.contains("/dev/zero") && err.contains("65536-byte limit"), "{err}");
    // An eval suite is read with its limit too.
    let (code, _, err) = run(&dir.path().join("data"), None, &["eval", "--extractive", "--index", idx.to_str().unwrap(), "--suite", "/dev/zero"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("byte limit"), "{err}");
}

/// An adverse event as a rep hears it (routes to pharmacovigilance on its own).
const AE: &str = "My patient got a bad rash two weeks after starting zentravia";
/// A plain on-label question (answered on its own).
const DOSE: &str = "What is the recommended dose of zentravia?";

/// Posts `messages` to the chat face as `m-rep`; returns the `onlabel`
/// extension (route, case id, audit id) of the completion.
fn chat(messages: serde_json::Value) -> serde_json::Value {
    let w = world();
    let body = serde_json::json!({"model": "onlabel:zentravia", "messages": messages}).to_string();
    let r = call(&w.app, "POST", "/v1/chat/completions", Some(&w.tokens["m-rep"]), Some(&body), w.addr());
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    r.body["onlabel"].clone()
}

/// The audit record `ext` names: its `input`, its `case_id`.
fn audited(ext: &serde_json::Value) -> (String, Option<String>) {
    let seq = ext["audit_id"].as_i64().unwrap_or_else(|| panic!("no audit id: {ext}"));
    world()
        .store
        .with_conn(|c| c.query_row("SELECT input, case_id FROM audit_log WHERE seq = ?1", [seq], |r| Ok((r.get(0)?, r.get(1)?))))
        .unwrap()
}

/// Checks that `ext` routed to PV with a case holding the report, and that
/// its audit record's input is the whole conversation.
fn assert_reported(ext: &serde_json::Value, turns: &[&str]) {
    assert_eq!(ext["route"], "pharmacovigilance", "{ext}");
    let case_id = ext["case_id"].as_str().unwrap_or_else(|| panic!("no case opened: {ext}"));
    let case = onlabel::cases::CaseStore::open(&world().data).unwrap().get(case_id).unwrap().expect("the case is stored");
    assert!(case.question.contains(AE), "the case keeps the reporter's words: {:?}", case.question);
    let (input, audited_case) = audited(ext);
    assert_eq!(audited_case.as_deref(), Some(case_id));
    for t in turns {
        assert!(input.contains(t), "the audit input holds {t:?}: {input:?}");
    }
}

#[test]
fn probe_row3_chat_screens_every_turn() {
    // The control: the last turn alone is a plain question, answered.
    let alone = chat(serde_json::json!([{"role": "user", "content": DOSE}]));
    assert_eq!(alone["route"], "answer", "{alone}");
    assert!(alone["case_id"].is_null(), "{alone}");
    // The probe: the report in the first user turn, the dose question last.
    let ext = chat(serde_json::json!([
        {"role": "user", "content": AE},
        {"role": "assistant", "content": "I can only answer from approved material."},
        {"role": "user", "content": DOSE},
    ]));
    assert_reported(&ext, &[AE, DOSE]);
    // The same report told in the system turn.
    let ext = chat(serde_json::json!([
        {"role": "system", "content": format!("Notes from the visit: {AE}.")},
        {"role": "user", "content": DOSE},
    ]));
    assert_reported(&ext, &[AE, DOSE]);
}

/// Row 8: a product typo on the CLI is the caller's error (exit 2,
/// `unknown_product`, naming the products the index holds) before the
/// question is screened: no case is opened and no answer is recorded, even
/// for a question that reports an adverse event. HTTP says 400 with the
/// same code (the matrix and `errors::` check that side).
#[test]
fn probe_row8_a_product_typo_on_the_cli_opens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let idx = dir.path().join("idx");
    drop(build_index(&[root().join("corpora/demo")], &idx));
    let idx = idx.to_str().unwrap();
    let q = "My patient was hospitalised with liver failure after starting it.";
    let (code, out, err) = run(&data, None, &["--json", "ask", "--extractive", "--index", idx, "--product", "nosuch", q]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(code_of(&out), "unknown_product", "{out}{err}");
    assert!(out.contains("zentravia"), "the error lists the products the index holds: {out}");
    let (code, out, err) = run(&data, None, &["--json", "ask", "--extractive", "--index", idx, "--product", "nosuch", "--role", "rep", "How often are liver tests needed?"]);
    assert_eq!((code, code_of(&out).as_str()), (2, "unknown_product"), "{out}{err}");
    // Nothing was opened or recorded: the case queue and the log are empty.
    let store = onlabel::store::Store::open(&data).unwrap();
    let cases = onlabel::cases::CaseStore::open(&data).unwrap();
    assert!(cases.list(&Default::default()).unwrap().is_empty(), "no case opened");
    let audit = onlabel::audit::Audit::open(&data).unwrap();
    assert!(audit.range(None, None).unwrap().iter().all(|e| e.action != "ask"), "no answer recorded");
    drop(store);
    // The right product answers (and is recorded).
    let (code, out, err) = run(&data, None, &["--json", "ask", "--extractive", "--index", idx, "--product", "zentravia", "How often are liver tests needed?"]);
    assert_eq!(code, 0, "{out}{err}");
}
