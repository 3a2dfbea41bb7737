//! Issue 20, points 4 and 6 at the router (`router(state).oneshot`): an
//! evidence run of a version's stored content, each metric against the
//! thresholds, the suite list, eval runs kept across a restart, the audit
//! export as a download, and a tamper finding in words. The eval runner is
//! the library's own ([`onlabel::eval::recorded::execute_candidate`]) over an
//! extractive copilot of the demo index, on a two-case suite.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::Router;
use onlabel::copilot::Copilot;
use onlabel::eval::recorded::{execute_candidate, Options};
use onlabel::server::{router, AppState, Config, EvalRunner, EvalTask, Limits};
use onlabel::store::Store;
use onlabel::users::{Role, Users};
use serde_json::{json, Value};

use crate::harness::{build_index, root, scratch_repo};
use crate::router::{get, post, Resp};

const AS_OF: &str = "2026-11-23";

/// A prompt gate that cannot be met (citation_precision above 1) beside one
/// that can, and a lexicon gate that can.
const THRESHOLDS: &str = r#"
[[gate]]
kind = "prompt"
suite = "evals/mini.jsonl"
min = { route_accuracy = 0.5, citation_precision = 1.01 }

[[gate]]
kind = "lexicon"
suite = "evals/mini.jsonl"
min = { route_accuracy = 0.5 }
"#;

struct World {
    _dir: tempfile::TempDir,
    data: PathBuf,
    repo: PathBuf,
    index: PathBuf,
    tokens: std::collections::HashMap<&'static str, String>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let repo = scratch_repo(dir.path());
    std::fs::write(repo.join("evals/thresholds.toml"), THRESHOLDS).unwrap();
    std::fs::write(repo.join("evals/review-questions.jsonl"), "{\"question\": \"What are the LFT monitoring rules?\", \"product\": \"zentravia\"}\n").unwrap();
    std::fs::create_dir_all(repo.join("evals/sealed")).unwrap();
    std::fs::write(repo.join("evals/sealed/heldout.jsonl"), "{}\n").unwrap();
    for d in ["rules", "lexicon"] {
        std::fs::create_dir_all(repo.join(d)).unwrap();
    }
    for f in [onlabel::guard::RULES_FILE, onlabel::guard::ELEMENTS_FILE, "lexicon/ae_terms.txt"] {
        std::fs::copy(root().join(f), repo.join(f)).unwrap();
    }
    let index = dir.path().join("idx");
    drop(build_index(&[root().join("corpora/demo")], &index));
    let store = Store::open(&data).unwrap();
    let users = Users::new(&store);
    let (admin, _) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
    let mut tokens = std::collections::HashMap::new();
    for (id, name, role) in [
        ("alice", "Alice Author", Role::MlrReviewer),
        ("bob", "Bob Reviewer", Role::MlrReviewer),
        ("carol", "Carol Compliance", Role::Compliance),
        ("rex", "Rex Rep", Role::Rep),
    ] {
        let (_, t) = users.add(id, name, role, Some(&admin)).unwrap();
        tokens.insert(id, t.0);
    }
    World { _dir: dir, data, repo, index, tokens }
}

/// The runner `onlabel serve --extractive` hands in, built from the library:
/// a fresh extractive copilot with a throwaway case store per run.
fn runner(index: PathBuf, data: PathBuf, repo: PathBuf) -> Box<EvalRunner> {
    Box::new(move |mut task: EvalTask| {
        let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
        let as_of = AS_OF.parse().unwrap();
        let guard = Arc::new(onlabel::guard::Guard::builtin().map_err(|e| e.to_string())?);
        let copilot = Copilot::new(onlabel::index::Index::open(&index).map_err(|e| e.to_string())?)
            .with_guard(guard, as_of)
            .map_err(|e| e.to_string())?
            .with_cases(onlabel::cases::CaseStore::open(&scratch.path().join("cases")).map_err(|e| e.to_string())?);
        let audit = onlabel::audit::Audit::open(&data).map_err(|e| e.to_string())?;
        let opts = Options {
            suite: task.suite.clone(),
            report: Some(task.report.clone()),
            claimed_user: None,
            root: repo.clone(),
            thresholds: repo.join("evals/thresholds.toml"),
            role: "rep".into(),
            index: index.clone(),
            as_of,
            minimums: Default::default(),
            candidate: task.candidate.clone(),
            review: task.review.clone(),
        };
        execute_candidate(&opts, copilot, &scratch.path().join("candidate"), Some(task.user.clone()), &audit, &mut *task.progress)
            .map(|e| e.json)
            .map_err(|e| e.to_string())
    })
}

/// The router over the world's data dir (a new `AppState` each call: a restart).
fn app(w: &World) -> Router {
    let as_of = AS_OF.parse().unwrap();
    let guard = Arc::new(onlabel::guard::Guard::builtin().unwrap());
    let copilot = Copilot::new(onlabel::index::Index::open(&w.index).unwrap())
        .with_guard(guard, as_of)
        .unwrap()
        .with_cases(onlabel::cases::CaseStore::open(&w.data).unwrap());
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data: w.data.clone(),
        root: w.repo.clone(),
        index: w.index.clone(),
        thresholds: w.repo.join("evals/thresholds.toml"),
        products: json!({"products": []}),
        limits: Limits::default(),
        eval: runner(w.index.clone(), w.data.clone(), w.repo.clone()),
        reload_prompt: None,
    };
    router(Arc::new(AppState::new(copilot, config).unwrap()))
}

/// Polls an eval job until it is done or failed.
async fn finished(app: &Router, token: &str, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let r = get(app, Some(token), &format!("/api/v1/evals/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let j = r.json();
        if j["state"] == "done" || j["state"] == "failed" {
            return j;
        }
        assert!(Instant::now() < deadline, "eval job {id} never finished: {j}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn propose(app: &Router, w: &World, name: &str, kind: &str, content: &str) -> String {
    let r = post(app, Some(&w.tokens["alice"]), "/api/v1/prompts", &json!({"name": name, "kind": kind, "content": content})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = format!("{}@{}", r.json()["name"].as_str().unwrap(), r.json()["version"]);
    let r = post(app, Some(&w.tokens["alice"]), &format!("/api/v1/prompts/{id}/submit"), &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    id
}

fn check<'a>(checks: &'a Value, metric: &str) -> &'a Value {
    checks["metrics"].as_array().and_then(|m| m.iter().find(|c| c["metric"] == metric)).unwrap_or_else(|| panic!("no check of {metric}: {checks}"))
}

#[tokio::test]
async fn issue20_4_an_mlr_reviewer_gets_evidence_for_a_stored_version_and_approves_on_it() {
    let w = world();
    let app = app(&w);
    let lexicon = std::fs::read_to_string(root().join("lexicon/ae_terms.txt")).unwrap() + "\n# proposed in the UI\n";
    let id = propose(&app, &w, "ae-lexicon", "lexicon", &lexicon).await;
    let bob = w.tokens["bob"].as_str();
    // Issue 21.3: a signer re-enters their password (the token no longer signs over HTTP).
    for who in ["alice", "bob"] {
        crate::esign::set_password(&w.data, who, crate::esign::PASSWORD);
    }
    let pw = crate::esign::PASSWORD;
    // Without evidence the refusal says how to get it from the page, not a compliance-only command.
    let r = post(&app, Some(bob), &format!("/api/v1/prompts/{id}/approve"), &json!({"reason": "reviewed", "password": pw})).await;
    assert_eq!((r.status, r.code().as_str()), (StatusCode::CONFLICT, "no_eval_evidence"), "{}", r.text);
    assert!(r.text.contains("request evidence on the version's review page"), "{}", r.text);
    // A rep may not request evidence.
    assert_eq!(post(&app, Some(&w.tokens["rex"]), &format!("/api/v1/prompts/{id}/evidence"), &json!({})).await.status, StatusCode::FORBIDDEN);

    let r = post(&app, Some(bob), &format!("/api/v1/prompts/{id}/evidence"), &json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let jobs = r.json()["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 1, "one gate of kind lexicon: {jobs:?}");
    assert_eq!((jobs[0]["version"].as_str(), jobs[0]["suite"].as_str()), (Some(id.as_str()), Some("evals/mini.jsonl")));
    let job = finished(&app, bob, jobs[0]["id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!((job["done"].as_i64(), job["total"].as_i64()), (Some(2), Some(2)), "progress reached the end: {job}");
    let recorded = job["result"]["eval_runs"].as_array().unwrap();
    assert_eq!(recorded.len(), 1, "evidence for the candidate alone: {recorded:?}");
    assert_eq!(recorded[0]["version"], id.as_str());
    assert_eq!(check(&job["checks"][0], "route_accuracy")["passed"], true, "{job}");

    // The version's page shows the run with each metric against its minimum.
    let v = get(&app, Some(bob), &format!("/api/v1/prompts/{id}")).await.json();
    let run = &v["eval_runs"][0];
    assert_eq!((run["recorded_by"].as_str(), run["passed"].as_bool()), (Some("bob"), Some(true)), "{run}");
    assert_eq!(check(&run["checks"], "route_accuracy")["min"], 0.5);
    assert_eq!(v["may_sign"], true);
    // The author may not sign (the page offers her no control; the server refuses).
    let alice = w.tokens["alice"].as_str();
    assert_eq!(get(&app, Some(alice), &format!("/api/v1/prompts/{id}")).await.json()["may_sign"], false);
    let r = post(&app, Some(alice), &format!("/api/v1/prompts/{id}/approve"), &json!({"reason": "mine", "password": pw})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = post(&app, Some(bob), &format!("/api/v1/prompts/{id}/approve"), &json!({"reason": "Evidence run passed", "password": pw})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["signature"]["eval_run_id"], recorded[0]["eval_run"]);
}

#[tokio::test]
async fn issue20_4_a_prompt_run_without_a_model_is_judged_per_metric_but_is_not_evidence() {
    let w = world();
    let app = app(&w);
    let content = std::fs::read_to_string(root().join("prompts/objection.j2")).unwrap().replace("one or two short sentences", "one short sentence");
    let id = propose(&app, &w, "objection", "prompt", &content).await;
    let bob = w.tokens["bob"].as_str();
    let r = post(&app, Some(bob), &format!("/api/v1/prompts/{id}/evidence"), &json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let job = finished(&app, bob, r.json()["jobs"][0]["id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "done", "{job}");
    // Thresholds: one minimum met, one not; the gate as a whole not met.
    let c = &job["checks"][0];
    assert_eq!((check(c, "route_accuracy")["passed"].as_bool(), check(c, "citation_precision")["passed"].as_bool()), (Some(true), Some(false)), "{c}");
    assert_eq!(c["passed"], false);
    // No model: nothing read the prompt, so nothing was recorded, and the run says why.
    assert!(job["result"]["eval_runs"].as_array().unwrap().is_empty(), "{job}");
    let notes = job["result"]["notes"].to_string();
    assert!(notes.contains("without a model") && notes.contains(&id), "{notes}");
    assert!(get(&app, Some(bob), &format!("/api/v1/prompts/{id}")).await.json()["eval_runs"].as_array().unwrap().is_empty());

    // The review page: the template rendered with a sample question and passages, and the answers.
    let r = get(&app, Some(bob), &format!("/api/v1/prompts/{id}/review")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rv = r.json();
    assert_eq!(rv["model"], false);
    let user = rv["rendered"]["candidate"]["user"].as_str().unwrap();
    assert!(user.contains("Question: What are the LFT monitoring rules?") && user.contains("[1] "), "{user}");
    assert!(rv["rendered"]["candidate"]["system"].as_str().unwrap().contains("one short sentence"));
    assert!(rv["rendered"]["baseline"]["system"].as_str().unwrap().contains("one or two short sentences"), "{rv}");
    let q = &rv["answers"]["review"]["questions"][0];
    assert_ne!(q["served"]["mode"], "generated", "no model: quoted text only: {q}");
    assert_eq!(q["served"]["answer"], q["candidate"]["answer"], "without a model both versions give the same extractive answer");
    assert!(!q["served"]["answer"].as_str().unwrap().is_empty());
    // The word diff marks the words that changed.
    let d = get(&app, Some(bob), &format!("/api/v1/prompts/{id}/diff")).await.json();
    let words = d["words"].as_array().unwrap();
    assert!(words.iter().any(|r| r["op"] == "delete" && r["text"].as_str().unwrap().contains("two")), "{words:?}");
    assert!(words.iter().any(|r| r["op"] == "insert" && r["text"] == "sentence"), "{words:?}");
}

#[tokio::test]
async fn issue20_6_suites_come_from_a_list_without_the_sealed_ones_and_runs_survive_a_restart() {
    let w = world();
    let app = app(&w);
    let carol = w.tokens["carol"].as_str();
    let r = get(&app, Some(carol), "/api/v1/evals/suites").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let names: Vec<String> = r.json()["suites"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
    assert!(names.contains(&"mini".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("heldout") || n.contains("sealed")), "{names:?}");
    assert!(!names.contains(&"review-questions".to_string()), "the review page's questions are not a suite: {names:?}");
    assert_eq!(get(&app, Some(&w.tokens["rex"]), "/api/v1/evals/suites").await.status, StatusCode::FORBIDDEN);

    let r = post(&app, Some(carol), "/api/v1/evals", &json!({"suite": "mini"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.json()["id"].as_i64().unwrap();
    let done = finished(&app, carol, id).await;
    assert_eq!(done["state"], "done", "{done}");
    // A job a stopped server left running.
    let store = Store::open(&w.data).unwrap();
    store
        .with_conn(|c| c.execute("INSERT INTO eval_jobs (suite, state, by_user, started_at, report_dir) VALUES ('evals/mini.jsonl', 'running', 'carol', '2026-12-01T00:00:00Z', '')", []))
        .unwrap();
    let stale: i64 = store.with_conn(|c| c.query_row("SELECT max(id) FROM eval_jobs", [], |r| r.get(0))).unwrap();
    drop(app);

    // A new server over the same store: the run id still answers, with its result.
    let app = self::app(&w);
    let again = get(&app, Some(carol), &format!("/api/v1/evals/{id}")).await.json();
    assert_eq!((again["state"].as_str(), again["suite"].as_str()), (Some("done"), Some("evals/mini.jsonl")), "{again}");
    assert_eq!(again["result"]["route_accuracy"], done["result"]["route_accuracy"]);
    let r = get(&app, Some(carol), &format!("/api/v1/evals/{id}/report")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment"));
    let s = get(&app, Some(carol), &format!("/api/v1/evals/{stale}")).await.json();
    assert_eq!(s["state"], "failed", "{s}");
    assert!(s["error"].as_str().unwrap().contains("server stopped"), "{s}");
}

#[tokio::test]
async fn issue20_6_the_audit_export_is_a_download_of_the_range() {
    let w = world();
    let app = app(&w);
    let carol = w.tokens["carol"].as_str();
    let today = chrono::Utc::now().date_naive().to_string();
    let r = get(&app, Some(carol), &format!("/api/v1/audit/export?format=csv&from={today}&to={today}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(r.headers[header::CONTENT_DISPOSITION].to_str().unwrap(), format!("attachment; filename=\"onlabel-audit-{today}-to-{today}.csv\""));
    let mut lines = r.text.lines();
    assert_eq!(lines.next(), Some(onlabel::audit::export::CSV_HEADER.join(",").as_str()));
    let n: usize = r.headers["x-record-count"].to_str().unwrap().parse().unwrap();
    assert!(n >= 5, "the users added today are in it: {n}");
    assert_eq!(lines.count(), n);

    let r = get(&app, Some(carol), "/api/v1/audit/export?format=jsonl").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_DISPOSITION].to_str().unwrap(), "attachment; filename=\"onlabel-audit-all.jsonl\"");
    for line in r.text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["hash"].as_str().is_some_and(|h| h.len() == 64));
    }
    // A range in the past holds nothing but the header; a bad format is refused.
    let r = get(&app, Some(carol), "/api/v1/audit/export?format=csv&from=2000-01-01&to=2000-01-02").await;
    assert_eq!(r.text.lines().count(), 1);
    assert_eq!(get(&app, Some(carol), "/api/v1/audit/export?format=xlsx").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(get(&app, Some(&w.tokens["bob"]), "/api/v1/audit/export").await.status, StatusCode::FORBIDDEN);
    // Each export is itself on record; the search pages through the log.
    let r = get(&app, Some(carol), "/api/v1/audit?action=audit_exported&limit=2&offset=1").await.json();
    assert_eq!((r["total"].as_u64(), r["records"].as_array().map(Vec::len)), (Some(3), Some(2)), "{r}");
}

/// Edits one audit row in the SQLite file as an intruder would (the
/// append-only triggers dropped first).
pub(crate) fn tamper(data: &Path, seq: i64) {
    let c = rusqlite::Connection::open(data.join("onlabel.sqlite")).unwrap();
    c.execute_batch("DROP TRIGGER IF EXISTS audit_log_no_update").unwrap();
    let n = c.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = ?1", [seq]).unwrap();
    assert_eq!(n, 1, "record {seq} exists");
}

#[tokio::test]
async fn issue20_6_a_tamper_finding_is_told_in_words_with_the_record_to_open() {
    let w = world();
    let app = app(&w);
    let carol = w.tokens["carol"].as_str();
    assert_eq!(get(&app, Some(carol), "/api/v1/audit/verify").await.json()["ok"], true);
    tamper(&w.data, 3);
    let v = get(&app, Some(carol), "/api/v1/audit/verify").await.json();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["finding"]["words"], "Record 3 was edited after it was written: its hash no longer matches its content.");
    assert_eq!(v["finding"]["record"], 3);
    let r: Resp = get(&app, Some(carol), "/api/v1/audit/3").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rec = r.json();
    assert_eq!((rec["hash_ok"].as_bool(), rec["record"]["actor"].as_str()), (Some(false), Some("mallory")), "{rec}");
    assert_eq!(get(&app, Some(carol), "/api/v1/audit/2").await.json()["hash_ok"], true);
    assert_eq!(get(&app, Some(carol), "/api/v1/audit/99999").await.status, StatusCode::NOT_FOUND);
}
