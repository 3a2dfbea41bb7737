//! Traceability on the real binary (issue 11, points 5-7): every `ask`,
//! `email` and `summarize` appends an audit record whose seq is the output's
//! `audit_id`; `audit show` finds it and `audit verify` passes; `ask` runs
//! only the live, approved prompt version once the template is registered;
//! `eval` records its run (audit log, and registry evidence when compliance
//! signs in) and writes an HTML report with SVG charts and the failing cases.

use std::path::{Path, PathBuf};

use crate::harness::{add_user, onlabel, root};

const MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// A data dir with users (root admin, carol compliance, rex rep) and a demo index.
struct Env {
    dir: tempfile::TempDir,
    data: PathBuf,
    index: String,
    admin: String,
    carol: String,
    rex: String,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let index = dir.path().join("idx").to_str().unwrap().to_string();
    let demo = root().join("corpora/demo");
    let (code, _, err) = onlabel(&data, None, &["ingest", "--corpus", demo.to_str().unwrap(), "--index", &index]);
    assert_eq!(code, 0, "{err}");
    let admin = add_user(&data, None, "root", "Ada Admin", "admin");
    let a = Some(("root", admin.as_str()));
    let carol = add_user(&data, a, "carol", "Carol Compliance", "compliance");
    let rex = add_user(&data, a, "rex", "Rex Rep", "rep");
    Env { dir, data, index, admin, carol, rex }
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `audit show SEQ` as carol (compliance), parsed.
fn show(e: &Env, seq: &serde_json::Value) -> serde_json::Value {
    let seq = seq.as_u64().unwrap_or_else(|| panic!("audit_id is not a number: {seq}")).to_string();
    let (code, out, err) = onlabel(&e.data, Some(&e.carol), &["audit", "show", &seq, "--as", "carol"]);
    assert_eq!(code, 0, "{err}");
    json(&out)
}

fn verify_ok(data: &Path) -> String {
    let (code, out, err) = onlabel(data, None, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit log intact"), "{out}");
    out
}

#[test]
fn trace_ask_then_audit_show_and_verify_find_the_record() {
    let e = env();
    let q = "What are the LFT monitoring rules?";
    let (code, out, err) = onlabel(&e.data, Some(&e.rex), &["ask", "--extractive", "--index", &e.index, "--product", "zentravia",
        "--as", "rex", "--json", q]);
    assert_eq!(code, 0, "{err}");
    let a = json(&out);
    assert_eq!(a["route"], "answer");
    assert!(a["guard_rules"].as_str().unwrap().starts_with("guard-rules@"), "{a}");
    let r = show(&e, &a["audit_id"]);
    assert_eq!(r["seq"], a["audit_id"]);
    assert_eq!((r["action"].as_str(), r["actor"].as_str(), r["role"].as_str()), (Some("ask"), Some("rex"), Some("rep")));
    assert_eq!(r["input"], q);
    assert_eq!(r["output"], a["answer"]);
    assert_eq!(r["route"], "answer");
    let passages: Vec<String> = serde_json::from_str(r["passages_json"].as_str().unwrap()).unwrap();
    assert!(passages.iter().any(|p| p.starts_with("zentravia-pi#")), "{passages:?}");
    let detail = json(r["detail_json"].as_str().unwrap());
    assert_eq!(detail["authenticated"], true);
    assert_eq!(detail["guard_rules"], a["guard_rules"]);
    let cited: Vec<String> = a["citations"].as_array().unwrap().iter().map(|c| format!("{} §{}", c["doc_id"].as_str().unwrap(), c["section"].as_str().unwrap())).collect();
    for c in &cited {
        assert!(detail["citations"].to_string().contains(c.as_str()), "{c} not in {detail}");
    }
    let timings = json(r["timings_json"].as_str().unwrap());
    assert!(timings["retrieve"].as_f64().is_some(), "{timings}");

    // A guard decision and the case it opens are on the record; nobody signed in: the OS user, --role, the claim.
    let (code, out, err) = onlabel(&e.data, None, &["ask", "--extractive", "--index", &e.index, "--product", "zentravia",
        "--as", "rep-7", "--json", "My patient's LFTs went through the roof after she started Zentravia last month"]);
    assert_eq!(code, 0, "{err}");
    let a = json(&out);
    assert_eq!(a["route"], "pharmacovigilance");
    let r = show(&e, &a["audit_id"]);
    assert_eq!(r["case_id"], a["case_id"]);
    assert!(r["case_id"].as_str().unwrap().starts_with("PV-"), "{r}");
    assert_eq!(r["route"], "pharmacovigilance");
    assert!(r["flags_json"].as_str().unwrap().contains("adverse_event"), "{r}");
    let actor = r["actor"].as_str().unwrap();
    assert!(actor.starts_with("os:") || actor == "unknown", "{actor}");
    assert_eq!(r["role"], "rep");
    let detail = json(r["detail_json"].as_str().unwrap());
    assert_eq!((detail["authenticated"].as_bool(), detail["claimed_user"].as_str()), (Some(false), Some("rep-7")));

    // A bad token is refused (exit 3) and audited; nothing is answered.
    let (code, out, _) = onlabel(&e.data, Some(&e.carol), &["ask", "--extractive", "--index", &e.index, "--as", "rex", "--json", q]);
    assert_eq!(code, 3, "{out}");
    assert!(!out.contains("\"route\""), "{out}");

    // Emails and summaries too.
    let (code, out, err) = onlabel(&e.data, Some(&e.rex), &["email", "--index", &e.index, "--product", "zentravia", "--hcp", "Dr. Shah",
        "--as", "rex", "--json", "liver test monitoring and the dose"]);
    assert_eq!(code, 0, "{err}");
    let d = json(&out);
    let r = show(&e, &d["audit_id"]);
    assert_eq!((r["action"].as_str(), r["actor"].as_str()), (Some("email"), Some("rex")));
    assert_eq!(r["input"], "liver test monitoring and the dose");
    assert_eq!(r["output"], d["body"]);
    let notes = e.dir.path().join("notes.txt");
    std::fs::write(&notes, "Met Dr. Park.\n- She asked how often liver tests are needed.\n- Zentravia is the safest option.\n").unwrap();
    let (code, out, err) = onlabel(&e.data, Some(&e.rex), &["summarize", "--index", &e.index, "--product", "zentravia", "--as", "rex",
        "--json", notes.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let s = json(&out);
    let r = show(&e, &s["audit_id"]);
    assert_eq!(r["action"], "summarize");
    assert!(r["input"].as_str().unwrap().contains("safest option"), "{r}");

    let v = verify_ok(&e.data);
    // Records: 3 users, ask, ask, login_failed, email, summarize, and the audit_read of each show.
    let db = rusqlite::Connection::open(e.data.join("onlabel.sqlite")).unwrap();
    let actions: Vec<String> = {
        let mut st = db.prepare("SELECT action FROM audit_log WHERE action NOT IN ('user_added', 'audit_read') ORDER BY seq").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    // Opening a case is itself a chained record (issue 17 row 2), written
    // with the case, before the ask's own record.
    assert_eq!(actions, ["ask", "case_opened", "ask", "login_failed", "email", "case_opened", "summarize"], "{v}");
}

#[test]
fn trace_eval_report_has_svg_charts_and_failing_cases() {
    let e = env();
    let report = e.dir.path().join("report");
    let suite = root().join("evals/demo.jsonl");
    let (code, out, err) = onlabel(&e.data, Some(&e.carol), &["eval", "--extractive", "--index", &e.index, "--suite", suite.to_str().unwrap(),
        "--as-of", "2026-11-23", "--report", report.to_str().unwrap(), "--as", "carol", "--json"]);
    assert_eq!(code, 0, "{err}");
    let m = json(&out);
    assert!(m.get("outcomes").is_none());
    // The run is on the audit trail with its suite hash and metrics.
    let r = show(&e, &m["audit_id"]);
    assert_eq!((r["action"].as_str(), r["actor"].as_str()), (Some("eval_run"), Some("carol")));
    let detail = json(r["detail_json"].as_str().unwrap());
    let sha = onlabel::prompts::sha256_hex(&std::fs::read(&suite).unwrap());
    assert_eq!(detail["suite_sha256"], sha.as_str());
    assert_eq!(detail["metrics"]["route_accuracy"], m["route_accuracy"]);
    assert!(detail["versions"]["rules"].as_str().unwrap().starts_with("guard-rules@"));

    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 3, "per product, per section kind, latency");
    for t in ["Citation precision and recall per product", "Citation precision and recall per section kind", "Latency per case (ms)",
        "zentravia", "5 Warnings and precautions", sha.as_str()] {
        assert!(html.contains(t), "{t} not in the report");
    }
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="), "self-contained, no scripts");
    let failures = m["failures"].as_array().unwrap();
    assert!(!failures.is_empty(), "demo.jsonl has known failures extractively: {m}");
    assert!(html.contains(&format!("Failing cases ({})", failures.len())));
    let failing = &html[html.find("id=failures").unwrap()..];
    for f in failures {
        assert!(failing.contains(f["id"].as_str().unwrap()), "{f} not listed");
    }
    let j = json(&std::fs::read_to_string(report.join("report.json")).unwrap());
    assert!(j["by_product"][0]["key"] == "zentravia" && j["by_section_kind"].as_array().unwrap().len() > 2, "{j}");
    assert_eq!(j["provenance"]["audit_id"], m["audit_id"]);
    verify_ok(&e.data);
}

const SUITE: &str = r#"{"id": "zen-lft-1", "task": "ask", "product": "zentravia", "question": "What are the LFT monitoring rules?", "expect": {"route": "answer", "sections": ["zentravia-pi §BW", "zentravia-pi §5.1", "zentravia-pi §2.1", "zentravia-pi §17", "zentravia-faq §Q3"]}}
{"id": "zen-ae-1", "task": "ask", "product": "zentravia", "question": "Dr. Lee's patient's ALT jumped to 6 times normal three weeks after starting ZENTRAVIA.", "expect": {"route": "pharmacovigilance"}}
"#;

const THRESHOLDS: &str = "[[gate]]\nkind = \"prompt\"\nsuite = \"evals/mini.jsonl\"\nmin = { route_accuracy = 0.5 }\n";

#[test]
fn trace_eval_records_evidence_and_ask_runs_only_the_live_prompt() {
    let e = env();
    let a = Some(("root", e.admin.as_str()));
    let alice = add_user(&e.data, a, "alice", "Alice Author", "mlr_reviewer");
    let bob = add_user(&e.data, a, "bob", "Bob Reviewer", "mlr_reviewer");
    let repo = e.dir.path().join("repo");
    std::fs::create_dir_all(repo.join("prompts")).unwrap();
    std::fs::create_dir_all(repo.join("evals")).unwrap();
    let template = repo.join("prompts/objection.j2");
    std::fs::copy(root().join("prompts/objection.j2"), &template).unwrap();
    std::fs::write(repo.join("evals/mini.jsonl"), SUITE).unwrap();
    std::fs::write(repo.join("evals/thresholds.toml"), THRESHOLDS).unwrap();
    let (repo_s, tpl, model) = (repo.to_str().unwrap(), template.to_str().unwrap(), root().join(MODEL));
    let model = model.to_str().unwrap();
    let prompts = |token: &str, args: &[&str]| {
        let mut full = vec!["prompts", "--root", repo_s];
        full.extend_from_slice(args);
        onlabel(&e.data, Some(token), &full)
    };
    let ask = |extra: &[&str]| {
        let mut full = vec!["ask", "--index", &e.index, "--product", "zentravia", "--root", repo_s, "--prompt", tpl, "--model", model, "--json"];
        full.extend_from_slice(extra);
        full.push("How often should liver tests be done?");
        onlabel(&e.data, None, &full)
    };

    // objection@1 is the file as shipped; objection@2 an edit (the header still says version 1).
    assert_eq!(prompts(&alice, &["propose", "objection", "--template", "prompts/objection.j2", "--as", "alice"]).0, 0);
    std::fs::write(&template, std::fs::read_to_string(&template).unwrap() + "\n").unwrap();
    let (code, out, err) = prompts(&alice, &["propose", "objection", "--template", "prompts/objection.j2", "--as", "alice"]);
    assert_eq!((code, out.trim()), (0, "objection@2"), "{err}");
    assert_eq!(prompts(&alice, &["submit", "objection@2", "--as", "alice"]).0, 0);

    // Registered but not approved: ask refuses to run it and names the missing approval (exit 1).
    let (code, out, err) = ask(&[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("objection@2 is in review and needs an mlr_reviewer's approval"), "{err}");

    // eval, signed in as compliance, records the run as evidence for the version in play.
    let mini = repo.join("evals/mini.jsonl");
    let (code, out, err) = onlabel(&e.data, Some(&e.carol), &["eval", "--index", &e.index, "--suite", mini.to_str().unwrap(),
        "--root", repo_s, "--prompt", tpl, "--model", model, "--as-of", "2026-11-23", "--as", "carol", "--json"]);
    assert_eq!(code, 0, "{err}");
    let m = json(&out);
    assert_eq!(m["eval_runs"][0]["version"], "objection@2", "{m}");
    assert_eq!(m["eval_runs"][0]["passed"], true, "{m}");
    assert_eq!(m["provenance"]["versions"]["prompt"], "objection@2");
    let sha = onlabel::prompts::sha256_hex(&std::fs::read(&template).unwrap());
    assert_eq!(m["provenance"]["versions"]["prompt_sha256"], sha.as_str());
    assert!(m["provenance"]["model"]["sha256"].as_str().is_some_and(|s| s.len() == 64), "{m}");
    // Visible to the registry, and enough for the approval.
    let (code, out, _) = prompts(&e.carol, &["show", "objection@2"]);
    assert_eq!(code, 0);
    assert!(out.contains("eval runs:\n  #1 PASSED"), "{out}");
    let (code, out, err) = prompts(&bob, &["approve", "objection@2", "--reason", "Whitespace only; eval passed", "--as", "bob"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("on eval run") || out.contains("approved"), "{out}");

    // Now ask runs the live version: registry name@N and the template's hash, on the answer and its record.
    let (code, out, err) = ask(&[]);
    assert_eq!(code, 0, "{err}");
    let a = json(&out);
    assert_eq!(a["prompt_version"], "objection@2", "{a}");
    assert_eq!(a["prompt_sha256"], sha.as_str());
    assert!(a["guard_rules"].as_str().unwrap().contains("report-elements@"), "{a}");
    let r = show(&e, &a["audit_id"]);
    assert_eq!((r["prompt_version"].as_str(), r["prompt_sha256"].as_str()), (Some("objection@2"), Some(sha.as_str())));
    assert_eq!(r["model"], "SmolLM2-135M-Instruct.Q4_1.gguf");
    let model_sha = onlabel::prompts::sha256_hex(&std::fs::read(model).unwrap());
    assert_eq!(r["model_sha256"], model_sha.as_str());
    assert!(a["model"].as_str().unwrap().ends_with(&model_sha));

    // Someone edits the template: refused again, naming the approved version.
    std::fs::write(&template, std::fs::read_to_string(&template).unwrap().replace("Never add facts", "Be upbeat. Never add facts")).unwrap();
    let (code, _, err) = ask(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not the approved objection@2"), "{err}");
    verify_ok(&e.data);
}
