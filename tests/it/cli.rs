//! The command line end to end: ingest, ask --json (exact shape), eval, errors and exit codes.

use std::process::Command;

use crate::harness::{bin, root};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn ingest_ask_json_and_eval_on_the_demo_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    let idx = idx.to_str().unwrap();
    let demo = root().join("corpora/demo");
    let (code, out, err) = run(&["ingest", "--corpus", demo.to_str().unwrap(), "--index", idx, "--json"]);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["documents"], 4);
    assert!(summary["passages"].as_u64().unwrap() > 20);

    let (code, out, err) = run(&["ask", "--extractive", "--index", idx, "--product", "zentravia", "--json", "Dr. Lee worries about liver toxicity"]);
    assert_eq!(code, 0, "{err}");
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    for k in ["route", "answer", "mode", "citations", "flags", "case_id", "prompt_version", "model", "audit_id", "timings_ms"] {
        assert!(keys.contains(&k), "missing {k} in {out}");
    }
    assert_eq!(a["route"], "answer");
    assert_eq!(a["mode"], "composed");
    let cites = a["citations"].as_array().unwrap();
    assert!(!cites.is_empty());
    for c in cites {
        for k in ["n", "doc_id", "section", "title", "mlr_number", "quote"] {
            assert!(c.get(k).is_some(), "citation lacks {k}");
        }
        assert_eq!(c["doc_id"].as_str().unwrap().starts_with("zentravia-pi"), true);
        assert_ne!(c["doc_id"], "zentravia-pi-2024");
    }
    assert!(cites.iter().any(|c| c["section"] == "5.1" || c["section"] == "BW"), "{out}");
    // Every sentence carries a marker that points at a citation.
    let text = a["answer"].as_str().unwrap();
    assert!(text.trim_end().ends_with(']'), "{text}");
    for n in 1..=cites.len() {
        assert!(text.contains(&format!("[{n}]")), "{text}");
    }

    // Human output: answer, then numbered citations with titles and MLR numbers.
    let (code, out, _) = run(&["ask", "--extractive", "--index", idx, "--product", "zentravia", "What are the LFT monitoring rules?"]);
    assert_eq!(code, 0);
    assert!(out.contains("[1] zentravia-"), "{out}");
    assert!(out.contains("MLR US-ZEN-"), "{out}");

    // No approved answer: a Medical Information request, never a dead end.
    let (_, out, _) = run(&["ask", "--extractive", "--index", idx, "--product", "zentravia", "--json", "Does it come in a gummy flavor for kids' parties?"]);
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(a["route"], "medical", "{a}");
    assert!(a["citations"].as_array().unwrap().is_empty());

    // Eval with a report.
    let report = dir.path().join("report");
    let (code, out, err) = run(&["eval", "--extractive", "--index", idx, "--suite", root().join("evals/demo.jsonl").to_str().unwrap(), "--as-of", "2026-11-23", "--json", "--report", report.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in ["cases", "route_accuracy", "citation_recall", "citation_precision", "latency_ms_p50", "latency_ms_p95", "failures"] {
        assert!(m.get(k).is_some(), "missing {k}");
    }
    assert!(m["citation_recall"].as_f64().unwrap() >= 0.7, "{out}");
    assert!(report.join("report.md").exists() && report.join("report.html").exists());
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&["ask", "--index", dir.path().join("none").to_str().unwrap(), "hello"]);
    assert_eq!(code, 2);
    assert!(err.contains("onlabel ingest"), "{err}");
    let (code, _, err) = run(&["ingest", "--corpus", dir.path().to_str().unwrap(), "--index", dir.path().join("i").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("manifest.toml"), "{err}");
    let (code, _, err) = run(&["ask", "--index", "x", "--as-of", "2026-13-01", "q"]);
    assert_eq!(code, 2);
    assert!(err.contains("2026-13-01"), "{err}");
}

#[test]
fn question_length_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    let demo = root().join("corpora/demo");
    run(&["ingest", "--corpus", demo.to_str().unwrap(), "--index", idx.to_str().unwrap()]);
    let long = "liver ".repeat(400);
    let (code, _, err) = run(&["ask", "--extractive", "--index", idx.to_str().unwrap(), &long]);
    assert_eq!(code, 2);
    assert!(err.contains("2000-character limit"), "{err}");
}
