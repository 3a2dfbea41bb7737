//! Issue 22 point 2, PostgreSQL for all state: two real `onlabel serve`
//! replicas on loopback share one PostgreSQL database (a throwaway cluster,
//! [`pg_database`]) — users, sessions, cases, the registry, eval jobs and the
//! audit log — and one versioned index root; each has its own data
//! directory (nothing is shared through the file system but the index).
//!
//! - a PV case reported through one replica is worked to closed through the
//!   other; a user disabled through one is refused by the other at once;
//! - a round-robin client sends 1,000 audited requests through both at once:
//!   `onlabel audit verify --database` passes, with no gap and no fork, and
//!   the chain holds every one of them.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{json, Value};

use crate::harness::{onlabel_db, onlabel_db_as as on_db, pg_database, root};
use crate::server::{Server, Users};

/// The test users, added through the CLI straight into PostgreSQL.
fn users_in(url: &str) -> (String, Users) {
    let add = |admin: Option<&str>, id: &str, role: &str| -> String {
        let mut args = vec!["users", "add", "--id", id, "--name", id, "--role", role];
        if admin.is_some() {
            args.extend(["--as", "root"]);
        }
        let (code, out, err) = on_db(url, admin, &args);
        assert_eq!(code, 0, "users add {id} on PostgreSQL: {out}{err}");
        out.trim().to_string()
    };
    let root_token = add(None, "root", "admin");
    let a = Some(root_token.as_str());
    let users = Users {
        alice: add(a, "alice", "mlr_reviewer"),
        bob: add(a, "bob", "mlr_reviewer"),
        carol: add(a, "carol", "compliance"),
        mia: add(a, "mia", "medical"),
        rex: add(a, "rex", "rep"),
    };
    (root_token, users)
}

/// Two replicas on `url`, each with a data directory of its own, serving
/// from the scratch repository `repo`.
fn replicas(url: &str, repo: &Path, index: &Path, users: &Users) -> [Server; 2] {
    let start = |_: usize| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Server::start_in(dir, data, repo.to_owned(), index, users.clone(), &["--extractive"], &[("ONLABEL_DATABASE", url)])
    };
    [start(0), start(1)]
}

fn publish(index: &Path) {
    let scratch = tempfile::tempdir().unwrap();
    let (code, out, err) = crate::harness::onlabel(
        scratch.path(),
        None,
        &["index", "publish", "--corpus", root().join("corpora/demo").to_str().unwrap(), "--index", index.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn issue22_2_two_replicas_on_postgres_share_cases_users_and_one_audit_chain_of_1000_concurrent_records() {
    let url = pg_database("replicas_pg");
    let (root_token, u) = users_in(&url);
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index-root");
    publish(&index);
    let repo = crate::browser::scratch_repo(dir.path());
    let [a, b] = replicas(&url, &repo, &index, &u);

    // (a) A report through A opens a PV case; Medical works it to closed through B.
    let (code, r, _) = a.post(
        Some(&u.rex),
        "/api/v1/ask",
        &json!({"question": "Dr. Lee's patient's ALT jumped to 6 times normal three weeks after starting ZENTRAVIA.", "product": "zentravia"}),
    );
    assert_eq!((code, r["route"].as_str()), (200, Some("pharmacovigilance")), "{r}");
    let id = r["case_id"].as_str().unwrap().to_string();
    for (action, body) in [("triage", json!({})), ("assign", json!({"owner": "mia"})), ("start", json!({"note": "calling Dr. Lee"})),
        ("resolve", json!({"resolution": "E2B sent to the safety database"}))] {
        let (code, c, _) = b.post(Some(&u.mia), &format!("/api/v1/cases/{id}/{action}"), &body);
        assert_eq!(code, 200, "{action} through B: {c}");
    }
    let (code, c) = a.get(Some(&u.mia), &format!("/api/v1/cases/{id}"));
    assert_eq!((code, c["case"]["state"].as_str(), c["case"]["owner"].as_str()), (200, Some("closed"), Some("mia")), "{c}");

    // (b) A user disabled through one replica's store is refused by both at once.
    let (code, out, err) = on_db(&url, Some(&root_token), &["users", "disable", "carol", "--as", "root"]);
    assert_eq!(code, 0, "{out}{err}");
    for s in [&a, &b] {
        let (code, v) = s.get(Some(&u.carol), "/api/v1/me");
        assert_eq!(code, 401, "a disabled user is refused by every replica: {v}");
    }

    // (c) 1,000 audited requests at once through both replicas, round-robin.
    let before = audit_count(&url);
    const N: usize = 1000;
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= N {
                    break;
                }
                let replica = if i % 2 == 0 { &a } else { &b };
                let q = ["What are the LFT monitoring rules?", "How is ZENTRAVIA dosed?", "What is the recommended starting dose?"][i % 3];
                let (code, v, _) = replica.post(Some(&u.rex), "/api/v1/ask", &json!({"question": q, "product": "zentravia"}));
                if code != 200 || v["audit_id"].as_i64().is_none() {
                    failed.fetch_add(1, Ordering::SeqCst);
                    eprintln!("request {i}: {code} {v}");
                }
            });
        }
    });
    let took = t0.elapsed();
    assert_eq!(failed.load(Ordering::SeqCst), 0, "every request answered and audited");
    let after = audit_count(&url);
    assert!(after - before >= N as i64, "{N} answers, {} records", after - before);
    eprintln!("{N} audited answers through 2 replicas on PostgreSQL in {:.1} s ({:.0}/s)", took.as_secs_f64(), N as f64 / took.as_secs_f64());
    let (code, out, err) = onlabel_db(&url, &["--json", "audit", "verify"]);
    assert_eq!(code, 0, "audit verify: {out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["ok"].as_bool(), v["checked"].as_i64()), (Some(true), Some(after)), "{v}");
    // One sequence, no gap and no fork: seq is 1..=n in physical order, each linking to the one before.
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows = c.query("SELECT pos, seq FROM audit_log ORDER BY pos", &[]).unwrap();
    for (i, r) in rows.iter().enumerate() {
        let (pos, seq): (i64, i64) = (r.get(0), r.get(1));
        assert_eq!((pos, seq), (i as i64 + 1, i as i64 + 1));
    }
    let forks: i64 = c.query_one("SELECT count(*) - count(DISTINCT prev_hash) FROM audit_log", &[]).unwrap().get(0);
    assert_eq!(forks, 0);
}

fn audit_count(url: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query_one("SELECT count(*) FROM audit_log", &[]).unwrap().get(0)
}
