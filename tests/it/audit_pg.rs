//! The audit log on PostgreSQL (issue 22, point 2), against a real cluster
//! started by the harness ([`pg_cluster`]): two writer *processes* append
//! 1,000 records at once and the chain stays one (no gap, no fork);
//! `onlabel audit verify --database postgres://…` names the same tampering
//! as on SQLite (tests/it/audit.rs); the library-level behaviour of the log
//! is one test run against both backends.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use onlabel::audit::{self, Audit, Entry, Record};
use onlabel::store::Database;

use crate::harness::{onlabel_db, pg_database};

/// The environment of a writer process (see [`writer_process`]).
const WRITER_URL: &str = "ONLABEL_TEST_AUDIT_WRITER_URL";
const WRITER_NAME: &str = "ONLABEL_TEST_AUDIT_WRITER_NAME";
const WRITER_COUNT: &str = "ONLABEL_TEST_AUDIT_WRITER_COUNT";
const WRITER_GO: &str = "ONLABEL_TEST_AUDIT_WRITER_GO";

/// Threads per writer process: appends race inside a process too.
const WRITER_THREADS: usize = 4;

fn open(url: &str) -> Audit {
    audit::open(&Database::parse(url).unwrap()).unwrap()
}

/// Not a test on its own: the body of one writer process, which the race
/// test starts twice by running this test binary again with `--ignored
/// --exact audit_pg::writer_process` and the `ONLABEL_TEST_AUDIT_WRITER_*`
/// variables. It opens the store (both processes migrate a fresh database
/// at once), says it is ready (`GO.NAME.ready`), waits for the go file, then appends COUNT records from
/// [`WRITER_THREADS`] threads.
#[test]
#[ignore = "run by audit_pg::two_writer_processes_append_1000_records_as_one_chain in a child process"]
fn writer_process() {
    let (Ok(url), Ok(name), Ok(count), Ok(go)) =
        (std::env::var(WRITER_URL), std::env::var(WRITER_NAME), std::env::var(WRITER_COUNT), std::env::var(WRITER_GO))
    else {
        return; // `cargo test -- --ignored` on its own: nothing to write to
    };
    let count: usize = count.parse().unwrap();
    let log = open(&url);
    std::fs::write(format!("{go}.{name}.ready"), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Path::new(&go).exists() {
        assert!(Instant::now() < deadline, "no go file");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::scope(|s| {
        for t in 0..WRITER_THREADS {
            let (log, name) = (&log, &name);
            s.spawn(move || {
                let mut last = 0;
                for i in (t..count).step_by(WRITER_THREADS) {
                    let mut r = Record::new(name, "rep", "ask");
                    r.input = Some(format!("{name} thread {t} record {i}"));
                    let seq = log.append(&r).unwrap();
                    assert!(seq > last, "{name}/{t}: seq {seq} after {last}");
                    last = seq;
                }
            });
        }
    });
}

#[test]
fn two_writer_processes_append_1000_records_as_one_chain() {
    let url = pg_database("audit_race");
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let exe = std::env::current_exe().unwrap();
    let mut writers: Vec<_> = ["replica-a", "replica-b"]
        .iter()
        .map(|name| {
            let child = std::process::Command::new(&exe)
                .args(["--ignored", "--exact", "audit_pg::writer_process", "--test-threads=1", "--nocapture"])
                .env(WRITER_URL, &url)
                .env(WRITER_NAME, name)
                .env(WRITER_COUNT, "500")
                .env(WRITER_GO, &go)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (name, child)
        })
        .collect();
    // Both processes are up (they connect and migrate the fresh database at
    // once, under the migration lock); then both start appending together.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !["replica-a", "replica-b"].iter().all(|n| Path::new(&format!("{}.{n}.ready", go.display())).exists()) {
        assert!(Instant::now() < deadline, "the writer processes did not open the store within a minute");
        for (name, child) in writers.iter_mut() {
            if let Some(status) = child.try_wait().unwrap() {
                let mut text = String::new();
                for pipe in [child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read>), child.stderr.take().map(|p| Box::new(p) as _)].into_iter().flatten() {
                    let mut p = pipe;
                    let _ = p.read_to_string(&mut text);
                }
                panic!("writer {name} exited before it was ready ({status}):\n{text}");
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&go, b"go").unwrap();
    let started = Instant::now();
    for (name, child) in writers {
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "writer {name} failed:\n{text}");
        assert!(text.contains("1 passed"), "writer {name} did not run:\n{text}");
    }
    let took = started.elapsed();

    // `audit verify` on the real binary: intact, 1,000 records.
    let (code, out, err) = onlabel_db(&url, &["--json", "audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["ok"].as_bool(), v["checked"].as_i64()), (Some(true), Some(1000)), "{v}");

    // No gap, no fork, straight from the table.
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let r = c
        .query_one(
            "SELECT count(*), count(DISTINCT seq), min(seq), max(seq), count(DISTINCT prev_hash), count(DISTINCT hash),
                    count(*) FILTER (WHERE pos <> seq)
             FROM audit_log",
            &[],
        )
        .unwrap();
    let n = |i: usize| r.get::<_, i64>(i);
    assert_eq!((n(0), n(1), n(2), n(3)), (1000, 1000, 1, 1000), "one record per seq 1..=1000: no gap, no repeat");
    assert_eq!(n(4), 1000, "each prev_hash used once: no fork");
    assert_eq!(n(5), 1000);
    assert_eq!(n(6), 0, "rows are stored in chain order");
    let links: i64 = c
        .query_one("SELECT count(*) FROM audit_log a JOIN audit_log b ON b.seq = a.seq + 1 WHERE b.prev_hash = a.hash", &[])
        .unwrap()
        .get(0);
    assert_eq!(links, 999, "every record links to the one before it");
    // The two processes really wrote at the same time: their records interleave.
    let actors: Vec<String> = c.query("SELECT actor FROM audit_log ORDER BY seq", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let per = |a: &str| actors.iter().filter(|x| *x == a).count();
    assert_eq!((per("replica-a"), per("replica-b")), (500, 500));
    let switches = actors.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches >= 10, "the writers took turns only {switches} times: they did not overlap");
    eprintln!("1000 appends from 2 processes x {WRITER_THREADS} threads in {took:?}; writers switched {switches} times");
}

/// A log with six records, appended through the library (the users store,
/// which writes them on SQLite, is not on PostgreSQL yet).
fn six_records(url: &str) -> Vec<Entry> {
    let log = open(url);
    for (i, id) in ["root", "u2", "u3", "u4", "u5", "u6"].iter().enumerate() {
        let r = Record::new(if i == 0 { "bootstrap" } else { "root" }, "admin", "user_added")
            .detail(serde_json::json!({"user": id, "role": "rep"}));
        assert_eq!(log.append(&r).unwrap(), i as i64 + 1);
    }
    log.rows().unwrap().into_iter().map(|(_, e)| e).collect()
}

/// Connects as an attacker with database access would: the append-only
/// triggers and the uniqueness constraints switched off.
fn tamper(url: &str, sql: &str) {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute(
        "ALTER TABLE audit_log DISABLE TRIGGER USER;
         ALTER TABLE audit_log DROP CONSTRAINT audit_log_seq_key, DROP CONSTRAINT audit_log_prev_hash_key;",
    )
    .unwrap();
    c.batch_execute(sql).unwrap();
}

fn verify(url: &str) -> (i32, String) {
    let (code, out, err) = onlabel_db(url, &["audit", "verify"]);
    (code, format!("{out}{err}"))
}

#[test]
fn pg_audit_verify_passes_on_an_untouched_chain_and_prints_its_head() {
    let url = pg_database("audit_untouched");
    six_records(&url);
    let (code, out) = verify(&url);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 6 records"), "{out}");
    let head = out.lines().find_map(|l| l.strip_prefix("head ")).unwrap().to_string();
    let (code, out, _) = onlabel_db(&url, &["audit", "verify", "--head", &head]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn pg_audit_verify_names_each_kind_of_tampering() {
    let hash = |e: &Entry| audit::hash_of(e);
    // (what, the tampering SQL given the six records, what verify must say)
    type Case = (&'static str, fn(&[Entry], &dyn Fn(&Entry) -> String) -> String, &'static str);
    let cases: [Case; 5] = [
        (
            "edited",
            |_, _| "UPDATE audit_log SET detail_json = '{\"user\":\"u3\",\"role\":\"admin\"}' WHERE seq = 3".into(),
            "TAMPERED at record 3",
        ),
        (
            "edit_rehashed",
            |rows, hash| {
                let mut e = rows[2].clone();
                e.detail_json = "{\"user\":\"u3\",\"role\":\"admin\"}".into();
                format!("UPDATE audit_log SET detail_json = '{}', hash = '{}' WHERE seq = 3", e.detail_json.replace('\'', "''"), hash(&e))
            },
            "TAMPERED at record 4",
        ),
        ("deleted", |_, _| "DELETE FROM audit_log WHERE seq = 4".into(), "TAMPERED at record 4: record 4 was deleted"),
        (
            "swapped",
            |_, _| {
                "UPDATE audit_log SET pos = -2 WHERE seq = 2; UPDATE audit_log SET pos = 2 WHERE seq = 5; UPDATE audit_log SET pos = 5 WHERE seq = 2;"
                    .into()
            },
            "record 5 sits at row 2",
        ),
        (
            "inserted",
            |rows, hash| {
                let mut forged = rows[3].clone();
                forged.detail_json = "{\"user\":\"ghost\",\"role\":\"admin\"}".into();
                forged.prev_hash = rows[2].hash.clone();
                forged.hash = hash(&forged);
                format!(
                    "UPDATE audit_log SET pos = pos + 100 WHERE pos >= 4; UPDATE audit_log SET pos = pos - 99 WHERE pos >= 100;
                     INSERT INTO audit_log (pos, seq, at, actor, role, action, input, prompt_version, prompt_sha256, model, model_sha256,
                         passages_json, flags_json, output, route, case_id, timings_json, detail_json, prev_hash, hash)
                     SELECT 4, seq, at, actor, role, action, input, prompt_version, prompt_sha256, model, model_sha256,
                         passages_json, flags_json, output, route, case_id, timings_json, '{}', '{}', '{}' FROM audit_log WHERE pos = 5",
                    forged.detail_json, forged.prev_hash, forged.hash
                )
            },
            "record 4 (row 4) was inserted",
        ),
    ];
    for (what, sql, says) in cases {
        let url = pg_database(&format!("audit_tamper_{what}"));
        let rows = six_records(&url);
        tamper(&url, &sql(&rows, &hash));
        let (code, out) = verify(&url);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(out.contains(says), "{what}: {out}");
    }
}

#[test]
fn pg_audit_verify_detects_truncation_against_a_noted_head() {
    let url = pg_database("audit_truncated");
    six_records(&url);
    let (_, out) = verify(&url);
    let head = out.lines().find_map(|l| l.strip_prefix("head ")).unwrap().to_string();
    tamper(&url, "DELETE FROM audit_log WHERE seq >= 5");
    let (code, out, _) = onlabel_db(&url, &["audit", "verify", "--head", &head]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record 6 (the recorded head) is missing"), "{out}");
}

#[test]
fn pg_the_application_cannot_update_delete_or_truncate() {
    let url = pg_database("audit_append_only");
    six_records(&url);
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for sql in ["UPDATE audit_log SET input = 'x' WHERE seq = 1", "DELETE FROM audit_log WHERE seq = 1", "TRUNCATE audit_log"] {
        let e = c.batch_execute(sql).unwrap_err();
        let msg = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
        assert!(msg.contains("append-only"), "{sql}: {e}");
    }
    // A writer that skipped the append lock cannot fork the chain: the
    // duplicate seq or prev_hash is refused.
    let e = c
        .batch_execute(
            "INSERT INTO audit_log SELECT 99, seq, at, actor, role, action, input, prompt_version, prompt_sha256, model, model_sha256,
                 passages_json, flags_json, output, route, case_id, timings_json, detail_json, prev_hash, hash FROM audit_log WHERE seq = 6",
        )
        .unwrap_err();
    assert!(e.to_string().contains("unique") || e.as_db_error().is_some_and(|d| d.code().code() == "23505"), "{e}");
}

/// The log's behaviour, whatever the backend.
fn behaves_as_an_audit_log(log: &Audit) {
    let t0 = chrono::Utc::now();
    for i in 1..=5 {
        let mut r = Record::new("alice", "rep", "ask");
        r.input = Some(format!("question {i} with 'quotes' and ünïcode"));
        r.passages = vec![format!("doc#{i}")];
        r.flags = serde_json::json!([{"kind": "adverse_event"}]);
        assert_eq!(log.append(&r).unwrap(), i);
    }
    let v = log.verify(None).unwrap();
    assert!(v.ok && v.checked == 5, "{}: {v:?}", log.backend());
    let (seq, hash) = v.head.clone().unwrap();
    assert_eq!(seq, 5);
    assert!(log.verify(Some((seq, &hash))).unwrap().ok);
    assert!(!log.verify(Some((9, &hash))).unwrap().ok);
    let third = log.get(3).unwrap().unwrap();
    assert_eq!(third.input.as_deref(), Some("question 3 with 'quotes' and ünïcode"));
    assert_eq!(third.passages_json, "[\"doc#3\"]");
    assert_eq!(third.prev_hash, log.get(2).unwrap().unwrap().hash);
    assert_eq!(log.get(1).unwrap().unwrap().prev_hash, audit::GENESIS);
    assert!(log.get(6).unwrap().is_none());
    assert_eq!(log.range(Some(t0 - chrono::Duration::seconds(1)), None).unwrap().len(), 5);
    assert!(log.range(None, Some(t0 - chrono::Duration::seconds(1))).unwrap().is_empty());
    let rows = log.rows().unwrap();
    assert_eq!(rows.iter().map(|(pos, e)| (*pos, e.seq)).collect::<Vec<_>>(), (1..=5).map(|i| (i, i)).collect::<Vec<_>>());
}

#[test]
fn the_audit_log_behaves_the_same_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = audit::open(&Database::Sqlite(dir.path().join("onlabel.sqlite"))).unwrap();
    assert_eq!(sqlite.backend(), "sqlite");
    behaves_as_an_audit_log(&sqlite);
    let pg = open(&pg_database("audit_behaviour"));
    assert_eq!(pg.backend(), "postgres");
    behaves_as_an_audit_log(&pg);
    // The same record hashes the same on both: the canonical form is the backend's.
    let (a, b) = (sqlite.get(1).unwrap().unwrap(), pg.get(1).unwrap().unwrap());
    assert_eq!(audit::hash_of(&a), a.hash);
    assert_eq!(audit::hash_of(&Entry { at: a.at.clone(), ..b.clone() }), audit::hash_of(&a));
}

#[test]
fn a_second_open_finds_the_schema_migrated_and_a_newer_schema_is_refused() {
    let url = pg_database("audit_schema");
    drop(open(&url));
    drop(open(&url)); // nothing to do the second time
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let v: i64 = c.query_one("SELECT max(version) FROM onlabel_migrations", &[]).unwrap().get(0);
    assert_eq!(v, onlabel::store::migrations::latest_pg());
    c.execute("INSERT INTO onlabel_migrations VALUES (999, 'future', 'x')", &[]).unwrap();
    let (code, out, err) = onlabel_db(&url, &["--json", "audit", "verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("store_newer_schema") && err.contains("schema version 999"), "{out}{err}");
}

#[test]
fn bad_database_values_are_clear_errors_and_every_command_runs_on_postgres() {
    // Not a database OnLabel knows: exit 2, store_bad_database, the password hidden.
    let (code, out, err) = onlabel_db("mysql://u:hunter2@h/db", &["--json", "audit", "verify"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("store_bad_database") && err.contains("mysql:// is not a database OnLabel supports"), "{err}");
    assert!(!err.contains("hunter2") && !out.contains("hunter2"), "{err}");
    // Every store is on PostgreSQL: the commands that were refused before run there.
    let url = pg_database("audit_every_command");
    let (code, token, err) = onlabel_db(&url, &["users", "add", "--id", "root", "--name", "Root", "--role", "admin"]);
    assert_eq!(code, 0, "{token}{err}");
    for args in [&["cases", "list", "--as", "root"][..], &["users", "list"], &["audit", "show", "1", "--as", "root"], &["prompts", "list"]] {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let (code, o, e) = crate::harness::onlabel_db_as(&url, Some(token.trim()), &a);
        assert_eq!(code, 0, "{args:?} on PostgreSQL: {o}{e}");
        assert!(!o.contains("store_unsupported"), "{args:?}: {o}");
    }
    // A server that is not there: the URL (no password) and PostgreSQL's own words.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, out, err) = onlabel_db(&format!("postgres://onlabel:pw@127.0.0.1:{port}/x"), &["--json", "audit", "verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("store_postgres") && err.contains(&format!("127.0.0.1:{port}")) && !err.contains(":pw@"), "{err}");
    assert!(err.contains("error connecting to server: Connection refused"), "{err}");
}
