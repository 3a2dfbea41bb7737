//! Issue 22 point 3, stateless replicas: two real `onlabel serve` processes
//! on loopback share one data directory (one SQLite file, WAL) and one
//! versioned index root (`onlabel index publish`), driven by a round-robin
//! client:
//!
//! - a PV case opened through one replica is worked to closed through the
//!   other, and a prompt version approved through one is live on both from
//!   the next question (with the real model: only the model reads a prompt);
//! - a publish that withdraws a document while the client keeps asking:
//!   no request fails, both replicas serve the new version within the stated
//!   bound (`--index-poll-secs` plus the swap), no answer asked after it
//!   cites the withdrawn document, each answer's audit record names the
//!   version that answered, and serving wrote nothing into the index root.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::harness::{onlabel, root};
use crate::server::{fixture, Server};

/// The poll interval the replicas run with here.
const POLL_SECS: u64 = 1;

/// What the swap may add to the poll interval on this (shared, 2-core)
/// machine: open and checksum the new version, build its label references,
/// wait for the requests then in flight. The bound the docs state is
/// `--index-poll-secs` + this swap time.
const SWAP_ALLOWANCE: Duration = Duration::from_secs(3);

/// Publishes the corpus folder `corpus` into the versioned root `index`; the new version's id.
fn publish(data: &Path, corpus: &Path, index: &Path) -> String {
    let (code, out, err) = onlabel(data, None, &["index", "publish", "--corpus", corpus.to_str().unwrap(), "--index", index.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["unchanged"], false, "{v}");
    v["version"]["id"].as_str().unwrap().to_string()
}

/// A copy of the demo corpus (its manifest is edited to withdraw a document).
fn demo_copy(dir: &Path) -> PathBuf {
    let to = dir.join("corpus");
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(root().join("corpora/demo")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to
}

/// Sets the `status` of document `id` in the corpus manifest.
fn set_status(corpus: &Path, id: &str, status: &str) {
    let path = corpus.join("manifest.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find(&format!("id = \"{id}\"")).unwrap_or_else(|| panic!("{id} not in the manifest"));
    let at = start + text[start..].find("status = \"").unwrap();
    let end = at + text[at..].find('\n').unwrap();
    std::fs::write(&path, format!("{}status = \"{status}\"{}", &text[..at], &text[end..])).unwrap();
}

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(snapshot(&e.path()));
        } else {
            out.push((e.path(), m.len(), m.modified().unwrap()));
        }
    }
    out.sort();
    out
}

/// The two replicas over one data dir and one index root.
fn replicas(data: &Path, repo: &Path, index: &Path, users: &crate::server::Users, dir: tempfile::TempDir, args: &[&str]) -> [Server; 2] {
    let a = Server::start_in(dir, data.to_owned(), repo.to_owned(), index, users.clone(), args, &[]);
    let b = Server::start_in(tempfile::tempdir().unwrap(), data.to_owned(), repo.to_owned(), index, users.clone(), args, &[]);
    [a, b]
}

fn ask(s: &Server, token: &str, question: &str) -> (u16, Value) {
    let (code, v, _) = s.post(Some(token), "/api/v1/ask", &json!({"question": question, "product": "zentravia"}));
    (code, v)
}

fn cites(answer: &Value, doc: &str) -> bool {
    answer["citations"].as_array().is_some_and(|c| c.iter().any(|c| c["doc_id"] == doc))
}

#[test]
fn issue22_3_a_case_opened_on_one_replica_is_closed_on_the_other_and_an_approval_is_live_on_both() {
    let (dir, data, repo, _, users) = fixture();
    let index = dir.path().join("index-root");
    publish(&data, &root().join("corpora/demo"), &index);
    let [a, b] = replicas(&data, &repo, &index, &users, dir, &[]);
    let u = &users;

    // (a) A report through A opens a PV case at once; Medical works it to closed through B.
    let (code, r) = ask(&a, &u.rex, "Dr. Lee's patient's ALT jumped to 6 times normal three weeks after starting ZENTRAVIA.");
    assert_eq!((code, r["route"].as_str()), (200, Some("pharmacovigilance")), "{r}");
    let id = r["case_id"].as_str().unwrap().to_string();
    let (code, c) = b.get(Some(&u.mia), &format!("/api/v1/cases/{id}"));
    assert_eq!((code, c["case"]["state"].as_str()), (200, Some("new")), "{c}");
    for (action, body) in [("triage", json!({})), ("assign", json!({"owner": "mia"})), ("start", json!({"note": "calling Dr. Lee"})),
        ("resolve", json!({"resolution": "E2B sent to the safety database"}))] {
        let (code, c, _) = b.post(Some(&u.mia), &format!("/api/v1/cases/{id}/{action}"), &body);
        assert_eq!(code, 200, "{action} through B: {c}");
        assert_eq!(c["id"], id.as_str(), "{c}");
    }
    // Closed for both replicas, and the reporter sees it through A.
    let (_, c) = a.get(Some(&u.mia), &format!("/api/v1/cases/{id}"));
    assert_eq!((c["case"]["state"].as_str(), c["case"]["owner"].as_str()), (Some("closed"), Some("mia")), "{c}");
    let actions: Vec<&str> = c["history"].as_array().unwrap().iter().filter_map(|h| h["action"].as_str()).collect();
    assert_eq!(actions.len(), 5, "opened, then four steps through B: {actions:?}");
    let (code, mine) = a.get(Some(&u.rex), &format!("/api/v1/cases/{id}"));
    assert_eq!((code, mine["case"]["state"].as_str()), (200, Some("closed")), "{mine}");

    // (b) objection@1 is the shipped file (a draft), objection@2 an edit, proposed and submitted through A.
    for who in ["alice", "bob"] {
        crate::esign::set_password(&data, who, crate::esign::PASSWORD);
    }
    let q = "What are the LFT monitoring rules?";
    for s in [&a, &b] {
        assert_eq!(ask(s, &u.rex, q).1["prompt_version"], "objection@1", "the header's version before anything is approved");
    }
    let (code, v, _) = a.post(Some(&u.alice), "/api/v1/prompts", &json!({"name": "objection", "template": "prompts/objection.j2"}));
    assert_eq!(code, 201, "{v}");
    let template = repo.join("prompts/objection.j2");
    std::fs::write(&template, std::fs::read_to_string(&template).unwrap() + "\n").unwrap();
    let (code, v, _) = a.post(Some(&u.alice), "/api/v1/prompts", &json!({"name": "objection", "template": "prompts/objection.j2"}));
    assert_eq!((code, v["version"].as_i64()), (201, Some(2)), "{v}");
    assert_eq!(a.post(Some(&u.alice), "/api/v1/prompts/objection@2/submit", &json!({})).0, 200);
    // Evidence requested through B (its eval runs there), watched through A (the job is in the shared store).
    let (code, ev, _) = b.post(Some(&u.bob), "/api/v1/prompts/objection@2/evidence", &json!({}));
    assert_eq!(code, 202, "{ev}");
    let job = ev["jobs"][0]["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let done = loop {
        let (_, j) = a.get(Some(&u.bob), &format!("/api/v1/evals/{job}"));
        if j["state"] == "done" || j["state"] == "failed" {
            break j;
        }
        assert!(Instant::now() < deadline, "the evidence run never finished: {j}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(done["state"], "done", "{done}");
    // Approved through A, with bob's e-signature; live on both replicas from the next question.
    let (code, signed, _) = a.post(Some(&u.bob), "/api/v1/prompts/objection@2/approve", &json!({"reason": "whitespace only; eval passed", "password": crate::esign::PASSWORD}));
    assert_eq!((code, signed["version"]["state"].as_str()), (200, Some("approved")), "{signed}");
    for (name, s) in [("B", &b), ("A", &a)] {
        let (code, r) = ask(s, &u.rex, q);
        assert_eq!((code, r["prompt_version"].as_str()), (200, Some("objection@2")), "replica {name}: {r}");
    }
    let (code, out, err) = onlabel(&data, None, &["audit", "verify"]);
    assert_eq!(code, 0, "one chain from two writers: {out}{err}");
}

#[test]
fn issue22_3_a_published_withdrawal_reaches_both_replicas_within_the_bound_and_no_request_fails() {
    let (dir, data, repo, _, users) = fixture();
    let corpus = demo_copy(dir.path());
    let index = dir.path().join("index-root");
    let v1 = publish(&data, &corpus, &index);
    let before = snapshot(&index);
    let poll = POLL_SECS.to_string();
    let servers = Arc::new(replicas(&data, &repo, &index, &users, dir, &["--extractive", "--index-poll-secs", &poll]));
    for s in servers.iter() {
        let (code, r) = s.get(None, "/readyz");
        assert_eq!((code, r["index_version"].as_str()), (200, Some(v1.as_str())), "{r}");
    }

    // The round-robin client: two threads, each alternating between the replicas.
    #[derive(Debug)]
    struct Asked {
        replica: usize,
        started: Instant,
        status: u16,
        answer: Value,
    }
    let log: Arc<Mutex<Vec<Asked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Answered from the FAQ while it is approved, from the PI once it is withdrawn.
    let questions = ["What should be done if ALT or AST rises during treatment?", "Who should not take ZENTRAVIA?", "Is a dose adjustment needed for hepatic or renal impairment?"];
    let clients: Vec<_> = (0..2)
        .map(|t| {
            let (servers, log, stop, rex) = (servers.clone(), log.clone(), stop.clone(), users.rex.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::SeqCst) {
                    let replica = i % 2;
                    let started = Instant::now();
                    let (status, answer) = ask(&servers[replica], &rex, questions[i % questions.len()]);
                    log.lock().unwrap().push(Asked { replica, started, status, answer });
                    i += 1;
                }
            })
        })
        .collect();
    let count = |f: &dyn Fn(&Asked) -> bool| log.lock().unwrap().iter().filter(|a| f(a)).count();
    let wait_for = |n: usize, f: &dyn Fn(&Asked) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while count(f) < n {
            assert!(Instant::now() < deadline, "the client got fewer than {n} answers");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(6, &|_| true);
    // Serving wrote nothing into the shared index root.
    assert_eq!(snapshot(&index), before, "a replica wrote into the index root");

    // MLR withdraws the FAQ: one command publishes version 2 while the client keeps asking.
    set_status(&corpus, "zentravia-faq", "withdrawn");
    let publishing = Instant::now();
    let v2 = publish(&data, &corpus, &index);
    let published = Instant::now();
    let bound = Duration::from_secs(POLL_SECS) + SWAP_ALLOWANCE;
    // Both replicas report the new version within the bound.
    let mut switched = [None, None];
    while switched.iter().any(Option::is_none) && published.elapsed() < bound + Duration::from_secs(30) {
        for (i, s) in servers.iter().enumerate() {
            if switched[i].is_none() && s.get(None, "/readyz").1["index_version"] == v2.as_str() {
                switched[i] = Some(published.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for (i, t) in switched.iter().enumerate() {
        let t = t.unwrap_or_else(|| panic!("replica {i} never served {v2}"));
        assert!(t <= bound, "replica {i} switched after {t:?}, over the bound {bound:?}");
    }
    // Keep asking past the bound: at least three answers from each replica asked after it.
    let after = published + bound;
    wait_for(6, &|a| a.started >= after);
    for r in 0..2 {
        wait_for(3, &|a| a.started >= after && a.replica == r);
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }

    let log = log.lock().unwrap();
    let failed: Vec<&Asked> = log.iter().filter(|a| a.status != 200).collect();
    assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}", failed.len(), log.len());
    let before_publish: Vec<&Asked> = log.iter().filter(|a| a.started < publishing).collect();
    assert!(before_publish.iter().any(|a| cites(&a.answer, "zentravia-faq")), "the FAQ was cited before its withdrawal (else this test shows nothing): {before_publish:?}");
    let late: Vec<&Asked> = log.iter().filter(|a| a.started >= after).collect();
    assert!(late.iter().all(|a| !cites(&a.answer, "zentravia-faq")), "the withdrawn FAQ was cited after the bound: {late:?}");
    assert!(late.iter().all(|a| a.answer["route"] == "answer"), "still answered from the PI: {late:?}");

    // Each answer's audit record names the version that answered it.
    let carol = &users.carol;
    for a in log.iter().filter(|a| cites(&a.answer, "zentravia-faq")).take(3).chain(late.iter().copied().take(4)) {
        let seq = a.answer["audit_id"].as_u64().unwrap();
        let (code, rec) = servers[1 - a.replica].get(Some(carol), &format!("/api/v1/audit/{seq}"));
        assert_eq!(code, 200, "{rec}");
        let want = if cites(&a.answer, "zentravia-faq") { &v1 } else { &v2 };
        assert_eq!(rec["detail"]["index_version"], want.as_str(), "{rec}");
    }
    eprintln!(
        "replicas: {} requests, none failed; publish returned, then replica A served {v2} after {:?}, B after {:?} (poll {POLL_SECS} s)",
        log.len(),
        switched[0],
        switched[1]
    );
    for s in servers.iter() {
        let (_, m) = s.get(None, "/metrics");
        let text = m["text"].as_str().unwrap();
        let swap = text.lines().find(|l| l.starts_with("onlabel_index_swap_duration_seconds_sum")).unwrap_or("");
        eprintln!("replicas: {} {swap}", s.base);
        assert!(text.contains(&format!("onlabel_index_version{{version=\"{v2}\"}} 1")), "{text}");
        assert!(text.contains("onlabel_index_swaps_total 1"), "{text}");
    }
    // The old version is kept for replicas still on it; the root holds both.
    assert!(index.join("versions").join(&v1).join("onlabel-index.json").exists());
    let (code, out, err) = onlabel(&data, None, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
}
