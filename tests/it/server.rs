//! `onlabel serve` on loopback, driven over real HTTP, one test per concern
//! the in-process router tests (`router.rs`, `shapes.rs`) cannot show: ask
//! as JSON and as a stream over TCP with the model, AE → case on the Medical
//! queue, the `serve` limit flags (413) and the bounded queue (503 +
//! Retry-After), the registry with e-signatures and a real eval run, JSON
//! logs, graceful shutdown, and the OpenAI-compatible face through the real
//! `openai` Python package. Roles, tokens, every limit at its edge, the
//! error bodies and the OpenAPI routing are in `router.rs`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{add_user, bin, onlabel, root, scratch_repo};

/// Tokens of the users every server test has.
#[derive(Clone)]
pub struct Users {
    pub alice: String,
    pub bob: String,
    pub carol: String,
    pub mia: String,
    pub rex: String,
}

/// A running `onlabel serve` over a scratch repository, data dir and demo index
/// (the browser tests use it too).
#[allow(dead_code)]
pub struct Server {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub repo: PathBuf,
    pub base: String,
    pub users: Users,
    child: Option<Child>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// What every server test starts from, made once per test binary: the demo
/// index (`onlabel ingest`, read-only afterwards, shared) and a data dir with
/// the users (argon2id is slow on purpose; each test gets a copy of it).
struct Template {
    data: PathBuf,
    index: PathBuf,
    users: Users,
}

fn template() -> &'static Template {
    static T: std::sync::OnceLock<Template> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        // A static is never dropped: the folder stays until the OS cleans the temp dir.
        let dir = tempfile::Builder::new().prefix("onlabel-server-").tempdir().unwrap().keep();
        let data = dir.join("data");
        let index = dir.join("idx");
        let demo = root().join("corpora/demo");
        let (code, _, err) = onlabel(&data, None, &["ingest", "--corpus", demo.to_str().unwrap(), "--index", index.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let admin = add_user(&data, None, "root", "Ada Admin", "admin");
        let a = Some(("root", admin.as_str()));
        let users = Users {
            alice: add_user(&data, a, "alice", "Alice Author", "mlr_reviewer"),
            bob: add_user(&data, a, "bob", "Bob Reviewer", "mlr_reviewer"),
            carol: add_user(&data, a, "carol", "Carol Compliance", "compliance"),
            mia: add_user(&data, a, "mia", "Mia Medical", "medical"),
            rex: add_user(&data, a, "rex", "Rex Rep", "rep"),
        };
        Template { data, index, users }
    })
}

/// Copies a folder (the template data dir: its SQLite file, closed by the
/// commands that wrote it, and anything beside it).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The scratch repository, a fresh copy of the template data dir, the shared
/// demo index and the users (no server yet).
pub fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf, Users) {
    let t = template();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&t.data, &data);
    let repo = scratch_repo(dir.path());
    (dir, data, repo, t.index.clone(), t.users.clone())
}

impl Server {
    /// Starts a server with the real model (extra `serve` options in `args`).
    pub fn start(args: &[&str]) -> Server {
        let (dir, data, repo, index, users) = fixture();
        Server::start_in(dir, data, repo, &index, users, args, &[])
    }

    /// Starts `serve` (cwd = the scratch repo) and waits for its address.
    pub fn start_in(dir: tempfile::TempDir, data: PathBuf, repo: PathBuf, index: &Path, users: Users, args: &[&str], env: &[(&str, &str)]) -> Server {
        let model = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let mut c = Command::new(bin());
        c.current_dir(&repo)
            .arg("--data")
            .arg(&data)
            .args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(&repo)
            .arg("--index")
            .arg(index)
            .arg("--model")
            .arg(&model)
            .args(["--as-of", "2026-11-23"])
            .args(args)
            .env_remove("ONLABEL_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line.split("http://").nth(1).and_then(|r| r.split('/').next()).unwrap_or_else(|| panic!("no address in {line:?}")).to_string();
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        Server { dir, data, repo, base: format!("http://{addr}"), users, child: Some(child), stderr: Some(stderr) }
    }

    /// An HTTP client that returns every status as a response.
    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(120))).build().into()
    }

    /// GET `path` with `token`: (status, JSON body or `{"text": …}`).
    pub fn get(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        let mut r = Server::agent().get(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = r.call().unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text })))
    }

    /// POST JSON `body` to `path` with `token`: (status, JSON body, Retry-After).
    pub fn post(&self, token: Option<&str>, path: &str, body: &Value) -> (u16, Value, Option<String>) {
        let mut r = Server::agent().post(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = r.send_json(body).unwrap();
        let status = resp.status().as_u16();
        let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = resp.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text })), retry)
    }

    /// Sends SIGTERM and waits: (exit code, stderr).
    pub fn stop(&mut self) -> (i32, String) {
        let Some(mut child) = self.child.take() else { return (0, String::new()) };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(120);
        let code = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break -1;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let err = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        (code, err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads an SSE response into (event, data) pairs.
fn sse(server: &Server, token: &str, path: &str, body: &Value) -> Vec<(String, Value)> {
    let mut resp = Server::agent()
        .post(format!("{}{path}", server.base))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Accept", "text/event-stream")
        .send_json(body)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("content-type").unwrap().to_str().unwrap().starts_with("text/event-stream"));
    let reader = BufReader::new(resp.body_mut().as_reader());
    let (mut events, mut event) = (Vec::new(), String::from("message"));
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            let v = serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_string()));
            events.push((std::mem::replace(&mut event, "message".into()), v));
        }
    }
    events
}

#[test]
fn ask_as_json_and_as_a_stream_and_an_ae_reaches_the_medical_queue() {
    let s = Server::start(&[]);
    let u = &s.users;
    let q = json!({"question": "Dr. Lee worries about liver toxicity", "product": "zentravia"});
    let (code, a, _) = s.post(Some(&u.rex), "/api/v1/ask", &q);
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["route"], "answer");
    assert!(a["answer"].as_str().unwrap().contains("[1]"), "{a}");
    assert!(!a["citations"].as_array().unwrap().is_empty());
    assert!(a["citations"][0]["mlr_number"].as_str().unwrap().starts_with("US-ZEN"));
    assert!(a["audit_id"].as_u64().is_some());
    // Streamed: verified sentences, then the answer, then the route; the
    // sentences joined are exactly the answer's text.
    let events = sse(&s, &u.rex, "/api/v1/ask", &q);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    assert_eq!(names[names.len() - 2], "answer");
    let sentences: Vec<&str> = events.iter().filter(|(e, _)| e == "sentence").map(|(_, d)| d["text"].as_str().unwrap()).collect();
    assert!(!sentences.is_empty(), "{events:?}");
    let answer = &events[names.len() - 2].1;
    assert_eq!(sentences.join(" "), answer["answer"].as_str().unwrap());
    // An adverse event: routed to PV with a case, streamed too.
    let ae = json!({"question": "My patient got a bad rash two weeks after starting zentravia", "product": "zentravia", "hcp": "Dr. Lee"});
    let events = sse(&s, &u.rex, "/api/v1/ask", &ae);
    let done = &events.last().unwrap().1;
    assert_eq!(done["route"], "pharmacovigilance", "{events:?}");
    let case_id = done["case_id"].as_str().unwrap().to_string();
    assert!(!events.iter().any(|(e, _)| e == "sentence"), "no promotional sentence for an AE");
    let (code, cases) = s.get(Some(&u.mia), "/api/v1/cases");
    assert_eq!(code, 200);
    let found = cases["cases"].as_array().unwrap().iter().find(|c| c["id"] == case_id.as_str()).expect("the case is on the queue");
    assert_eq!(found["reporter"], "rex");
    // Medical works it: assign, triage, start, resolve.
    let p = |a: &str| format!("/api/v1/cases/{case_id}/{a}");
    assert_eq!(s.post(Some(&u.mia), &p("assign"), &json!({"owner": "mia"})).0, 200);
    // An owner who is not an enabled medical user is refused, with a stable code (issue 17.11), as bad input (issue 20.5).
    let (code, e, _) = s.post(Some(&u.mia), &p("assign"), &json!({"owner": "rex"}));
    assert_eq!((code, e["error"]["code"].as_str()), (400, Some("case_owner_invalid")), "{e}");
    assert_eq!(s.post(Some(&u.mia), &p("triage"), &json!({"note": "non-serious"})).0, 200);
    assert_eq!(s.post(Some(&u.mia), &p("start"), &json!({})).0, 200);
    let (code, c, _) = s.post(Some(&u.mia), &p("resolve"), &json!({"resolution": "reported to safety database"}));
    assert_eq!((code, c["state"].as_str()), (200, Some("closed")), "{c}");
    let (code, e, _) = s.post(Some(&u.mia), &p("start"), &json!({}));
    assert_eq!(code, 409, "a closed case cannot be started: {e}");
    // Compliance finds the trace — the answer and every step of the case, with from/to (issue 17.2); the chain verifies.
    let (_, recs) = s.get(Some(&u.carol), &format!("/api/v1/audit?case_id={case_id}"));
    let steps: Vec<String> = recs["records"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|r| {
            let d: Value = serde_json::from_str(r["detail_json"].as_str().unwrap()).unwrap();
            format!("{} {} {}→{}", r["action"].as_str().unwrap(), r["actor"].as_str().unwrap(), d["from"].as_str().unwrap_or("-"), d["to"].as_str().unwrap_or("-"))
        })
        .collect();
    assert_eq!(
        steps,
        ["case_opened rex -→new", "ask rex -→-", "case_assigned mia new→new", "case_triaged mia new→triaged", "case_started mia triaged→in_progress", "case_resolved mia in_progress→closed"],
        "{recs}"
    );
    let (_, v) = s.get(Some(&u.carol), "/api/v1/audit/verify");
    assert_eq!(v["ok"], true, "{v}");
    // Email and summary over HTTP, with their edge cases.
    let (code, d, _) = s.post(Some(&u.rex), "/api/v1/email", &json!({"product": "zentravia", "hcp": "Dr. Lee", "topics": "liver monitoring"}));
    assert_eq!(code, 200, "{d}");
    assert!(d["audit_id"].as_u64().is_some());
    let notes = "Met Dr. Lee. Discussed liver monitoring. Her patient Mr. B developed jaundice last week on zentravia.";
    let (code, sm, _) = s.post(Some(&u.rex), "/api/v1/summarize", &json!({"product": "zentravia", "notes": notes}));
    assert_eq!(code, 200, "{sm}");
    assert_eq!(sm["route"], "pharmacovigilance", "{sm}");
}

#[test]
fn limits_answer_413_and_a_full_queue_503_with_retry_after() {
    let s = Server::start(&["--max-body", "4096", "--max-question", "300", "--max-in-flight", "1", "--max-queue", "1"]);
    let u = &s.users;
    let big = "liver ".repeat(1000);
    let (code, e, _) = s.post(Some(&u.rex), "/api/v1/ask", &json!({"question": big, "product": "zentravia"}));
    assert_eq!((code, e["error"]["code"].as_str()), (413, Some("too_large")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("limit"));
    let long = "liver ".repeat(60);
    let (code, e, _) = s.post(Some(&u.rex), "/api/v1/ask", &json!({"question": long, "product": "zentravia"}));
    assert_eq!(code, 413, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("300-character limit"), "{e}");
    // Eight generated asks at once against one worker and one queue place.
    let base = s.base.clone();
    let rex = u.rex.clone();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (base, rex) = (base.clone(), rex.clone());
            std::thread::spawn(move || {
                let mut r = Server::agent()
                    .post(format!("{base}/api/v1/ask"))
                    .header("Authorization", &format!("Bearer {rex}"))
                    .send_json(json!({"question": format!("What does the label say about liver monitoring? ({i})"), "product": "zentravia"}))
                    .unwrap();
                let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                let body: Value = r.body_mut().read_json().unwrap();
                (r.status().as_u16(), retry, body)
            })
        })
        .collect();
    let results: Vec<(u16, Option<String>, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert!(ok >= 1, "{results:?}");
    assert!(!busy.is_empty(), "with one worker and one queue place, eight at once must be turned away: {results:?}");
    for b in &busy {
        assert_eq!(b.1.as_deref(), Some("2"), "503 carries Retry-After");
        assert_eq!(b.2["error"]["code"], "overloaded");
    }
    assert_eq!(ok + busy.len(), 8, "no other status: {results:?}");
}

#[test]
fn registry_over_http_propose_eval_approve_with_e_signature_then_the_copilot_runs_it() {
    let s = Server::start(&[]);
    let u = &s.users;
    let (code, v, _) = s.post(Some(&u.alice), "/api/v1/prompts", &json!({"name": "objection", "template": "prompts/objection.j2"}));
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["state"], "draft");
    let (code, _, _) = s.post(Some(&u.rex), "/api/v1/prompts", &json!({"name": "objection", "content": "x"}));
    assert_eq!(code, 403, "a rep cannot propose");
    let (code, _, _) = s.post(Some(&u.alice), "/api/v1/prompts", &json!({"name": "objection", "template": "../etc/passwd"}));
    assert_eq!(code, 400, "paths stay under the root");
    assert_eq!(s.post(Some(&u.alice), "/api/v1/prompts/objection@1/submit", &json!({})).0, 200);
    // Issue 21.3: a signer re-enters their password (the token no longer signs over HTTP).
    for who in ["alice", "bob"] {
        crate::esign::set_password(&s.data, who, crate::esign::PASSWORD);
    }
    let pw = crate::esign::PASSWORD;
    // Without eval evidence the approval is refused (409, with the reason).
    let (code, e, _) = s.post(Some(&u.bob), "/api/v1/prompts/objection@1/approve", &json!({"reason": "reviewed", "password": pw}));
    assert_eq!(code, 409, "{e}");
    // Compliance runs the eval from the server; it is recorded as evidence.
    let (code, job, _) = s.post(Some(&u.carol), "/api/v1/evals", &json!({"suite": "mini"}));
    assert_eq!(code, 202, "{job}");
    let id = job["id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let done = loop {
        let (_, j) = s.get(Some(&u.carol), &format!("/api/v1/evals/{id}"));
        // Queued behind the gate, then running, then done (issue 20: jobs are stored).
        if j["state"] != "running" && j["state"] != "queued" {
            break j;
        }
        assert!(Instant::now() < deadline, "eval did not finish");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(done["state"], "done", "{done}");
    assert!(done["result"]["eval_runs"].as_array().is_some_and(|r| !r.is_empty()), "recorded as evidence: {done}");
    let (code, html) = s.get(Some(&u.carol), &format!("/api/v1/evals/{id}/report"));
    assert_eq!(code, 200);
    assert!(html["text"].as_str().unwrap().contains("<svg"));
    assert_eq!(s.post(Some(&u.carol), "/api/v1/evals", &json!({"suite": "sealed/heldout"})).0, 400, "the sealed suite is not run from the server");
    // The author cannot approve; a wrong password is not a signature (and the token no longer is one).
    let (code, e, _) = s.post(Some(&u.alice), "/api/v1/prompts/objection@1/approve", &json!({"reason": "mine", "password": pw}));
    assert_eq!(code, 403, "{e}");
    let (code, e, _) = s.post(Some(&u.bob), "/api/v1/prompts/objection@1/approve", &json!({"reason": "reviewed", "password": "Not-Bobs-Password-77"}));
    assert_eq!((code, e["error"]["code"].as_str()), (401, Some("bad_credential")), "{e}");
    let (code, e, _) = s.post(Some(&u.bob), "/api/v1/prompts/objection@1/approve", &json!({"reason": "reviewed", "secret": u.bob}));
    assert_eq!((code, e["error"]["code"].as_str()), (400, Some("bad_input")), "{e}");
    let (code, signed, _) = s.post(Some(&u.bob), "/api/v1/prompts/objection@1/approve", &json!({"reason": "reviewed against the PI", "password": pw}));
    assert_eq!(code, 200, "{signed}");
    assert_eq!(signed["version"]["state"], "approved");
    assert_eq!(signed["signature"]["signer_id"], "bob", "{signed}");
    assert_eq!(signed["signature"]["signer_name"], "Bob Reviewer");
    let (_, shown) = s.get(Some(&u.carol), "/api/v1/prompts/objection@1");
    assert_eq!(shown["signatures"].as_array().unwrap().len(), 1, "{shown}");
    assert!(!shown["eval_runs"].as_array().unwrap().is_empty());
    let (code, d) = s.get(Some(&u.mia), "/api/v1/prompts/objection@1/diff");
    assert_eq!(code, 200, "{d}");
    // A rep gets answers, never the instructions behind them (issue 17 row 4).
    for path in ["/api/v1/prompts", "/api/v1/prompts/objection@1", "/api/v1/prompts/objection@1/diff"] {
        assert_eq!(s.get(Some(&u.rex), path).0, 403, "{path}");
    }
    // The running copilot now answers with the registry's version.
    let (_, a, _) = s.post(Some(&u.rex), "/api/v1/ask", &json!({"question": "What are the LFT monitoring rules?", "product": "zentravia"}));
    assert_eq!(a["prompt_version"], "objection@1", "{a}");
}

#[test]
fn json_logs_carry_request_id_user_and_route_never_the_question_and_shutdown_finishes_in_flight_work() {
    let (dir, data, repo, index, users) = fixture();
    let mut s = Server::start_in(dir, data.clone(), repo, &index, users, &["--log-format", "json"], &[]);
    let (base, rex) = (s.base.clone(), s.users.rex.clone());
    // An AE question naming a patient, in flight when SIGTERM arrives.
    let inflight = std::thread::spawn(move || {
        let mut r = Server::agent()
            .post(format!("{base}/api/v1/ask"))
            .header("Authorization", &format!("Bearer {rex}"))
            .send_json(json!({"question": "Mrs Jane Quarrington, 71, was hospitalised with jaundice last week on zentravia", "product": "zentravia"}))
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_json::<Value>().unwrap())
    });
    let (b2, rex2) = (s.base.clone(), s.users.rex.clone());
    let answer = std::thread::spawn(move || {
        let mut r = Server::agent()
            .post(format!("{b2}/api/v1/ask"))
            .header("Authorization", &format!("Bearer {rex2}"))
            .send_json(json!({"question": "How should liver tests be monitored?", "product": "zentravia"}))
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_json::<Value>().unwrap())
    });
    std::thread::sleep(Duration::from_millis(150));
    let (code, stderr) = s.stop();
    let (c1, a1) = inflight.join().unwrap();
    let (c2, a2) = answer.join().unwrap();
    assert_eq!(code, 0, "clean exit after SIGTERM: {stderr}");
    assert_eq!(c1, 200, "the request in flight was finished: {a1}");
    assert_eq!(c2, 200, "{a2}");
    assert_eq!(a1["route"], "pharmacovigilance");
    let case_id = a1["case_id"].as_str().unwrap();
    // Nothing lost: the case and both audit records are in the store, and the chain verifies.
    let (code, out, err) = onlabel(&data, Some(&s.users.mia), &["cases", "show", case_id, "--json", "--as", "mia"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(case_id));
    let (code, out, err) = onlabel(&data, None, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    for id in [&a1["audit_id"], &a2["audit_id"]] {
        let (code, out, _) = onlabel(&data, Some(&s.users.carol), &["audit", "show", &id.to_string(), "--as", "carol", "--json"]);
        assert_eq!(code, 0, "audit record {id}: {out}");
    }
    // The logs: JSON lines with the request id, the user and the route; no patient detail.
    let lines: Vec<Value> = stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty(), "{stderr}");
    let answered: Vec<&Value> = lines.iter().filter(|l| l["fields"]["message"] == "answered").collect();
    assert_eq!(answered.len(), 2, "{stderr}");
    for l in &answered {
        assert!(l["fields"]["request_id"].as_str().is_some_and(|r| r != "-"), "{l}");
        assert_eq!(l["fields"]["user"], "rex");
    }
    assert!(answered.iter().any(|l| l["fields"]["route"] == "pharmacovigilance"));
    assert!(lines.iter().any(|l| l["span"]["request_id"].is_string() || l["spans"].is_array()), "request spans carry the id: {stderr}");
    for banned in ["Jane", "Quarrington", "jaundice"] {
        assert!(!stderr.contains(banned), "the log holds patient text {banned:?}: {stderr}");
    }
}

/// The real `openai` package (installed by scripts/test.sh into
/// `ONLABEL_PYTHON`'s environment) against the real server.
#[test]
fn the_openai_python_client_gets_a_grounded_answer_with_citations_and_route() {
    let s = Server::start(&[]);
    let python = std::env::var("ONLABEL_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import json, sys, openai
base, token = sys.argv[1], sys.argv[2]
c = openai.OpenAI(base_url=base + "/v1", api_key=token)
models = [m.id for m in c.models.list().data]
r = c.chat.completions.create(model="onlabel:zentravia", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "Dr. Lee worries about liver toxicity"}])
ext = r.model_extra["onlabel"]
chunks = list(c.chat.completions.create(model="onlabel:zentravia", stream=True, messages=[{"role": "user", "content": "Dr. Lee worries about liver toxicity"}]))
streamed = "".join((ch.choices[0].delta.content or "") for ch in chunks if ch.choices)
last = chunks[-1].model_extra.get("onlabel")
ae = c.chat.completions.create(model="onlabel:zentravia", messages=[{"role": "user", "content": "My patient got a bad rash two weeks after starting zentravia"}])
try:
    c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    bad = None
except openai.BadRequestError as e:
    bad = e.status_code
print(json.dumps({"models": models, "content": r.choices[0].message.content, "route": ext["route"], "citations": len(ext["citations"]),
    "streamed": streamed, "stream_route": last and last["route"], "ae_route": ae.model_extra["onlabel"]["route"],
    "ae_case": ae.model_extra["onlabel"]["case_id"], "bad": bad}))
"#;
    let out = Command::new(&python).args(["-c", script, &s.base, &s.users.rex]).output().expect("python3 runs");
    assert!(out.status.success(), "the openai client failed (scripts/test.sh installs it): {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["models"].as_array().unwrap().iter().any(|m| m == "onlabel:zentravia"), "{v}");
    assert_eq!(v["route"], "answer", "{v}");
    assert!(v["content"].as_str().unwrap().contains("[1]"), "{v}");
    assert!(v["citations"].as_u64().unwrap() >= 1);
    assert!(v["streamed"].as_str().unwrap().contains("[1]"), "the stream carries a verified, cited answer: {v}");
    assert_eq!(v["stream_route"], "answer");
    assert_eq!(v["ae_route"], "pharmacovigilance");
    assert!(v["ae_case"].as_str().is_some_and(|c| c.starts_with("PV-")));
    assert_eq!(v["bad"], 400);
}
