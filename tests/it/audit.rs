//! The audit trail on the real binary: tamper with `onlabel.sqlite` directly
//! (edit, delete, swap, insert, truncate) and expect `audit verify` to fail
//! (exit 1) naming the right record; export for inspectors.

use std::path::Path;

use rusqlite::Connection;

use crate::harness::{add_user, onlabel};

/// A store whose log holds 6 records (the bootstrap admin, then 5 users); returns the admin token.
fn six_records(data: &Path) -> String {
    let admin = add_user(data, None, "root", "Ada Admin", "admin");
    for (id, role) in [("u2", "rep"), ("u3", "rep"), ("u4", "medical"), ("u5", "compliance"), ("u6", "mlr_reviewer")] {
        add_user(data, Some(("root", &admin)), id, &format!("User {id}"), role);
    }
    admin
}

/// Opens the file as an attacker with file access would: triggers dropped.
fn tamper(data: &Path, sql: &str) {
    let db = Connection::open(data.join("onlabel.sqlite")).unwrap();
    db.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;").unwrap();
    db.execute_batch(sql).unwrap();
}

fn verify(data: &Path) -> (i32, String) {
    let (code, out, err) = onlabel(data, None, &["audit", "verify"]);
    (code, format!("{out}{err}"))
}

#[test]
fn audit_verify_passes_on_an_untouched_chain_and_prints_its_head() {
    let dir = tempfile::tempdir().unwrap();
    six_records(dir.path());
    let (code, out) = verify(dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 6 records"), "{out}");
    let head = out.lines().find_map(|l| l.strip_prefix("head ")).unwrap().to_string();
    let (code, out, _) = onlabel(dir.path(), None, &["audit", "verify", "--head", &head]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = onlabel(dir.path(), None, &["--json", "audit", "verify"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["checked"], 6);
}

#[test]
fn audit_verify_names_an_edited_record() {
    let dir = tempfile::tempdir().unwrap();
    six_records(dir.path());
    tamper(dir.path(), "UPDATE audit_log SET detail_json = '{\"user\":\"u3\",\"role\":\"admin\"}' WHERE seq = 3");
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TAMPERED at record 3") && out.contains("edited"), "{out}");
    assert!(out.contains("2 records verified before it"), "{out}");
}

#[test]
fn audit_verify_names_an_edit_whose_hash_was_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    six_records(dir.path());
    // The forger rewrites record 3 and recomputes its own hash: record 4's link breaks.
    let db = Connection::open(dir.path().join("onlabel.sqlite")).unwrap();
    db.execute_batch("DROP TRIGGER audit_log_no_update;").unwrap();
    let mut e = read_entry(&db, 3);
    e.detail_json = "{\"user\":\"u3\",\"role\":\"admin\"}".into();
    e.hash = onlabel::audit::hash_of(&e);
    db.execute("UPDATE audit_log SET detail_json = ?1, hash = ?2 WHERE seq = 3", rusqlite::params![e.detail_json, e.hash]).unwrap();
    drop(db);
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TAMPERED at record 4") && out.contains("does not follow record 3"), "{out}");
}

#[test]
fn audit_verify_names_a_deleted_record() {
    let dir = tempfile::tempdir().unwrap();
    six_records(dir.path());
    tamper(dir.path(), "DELETE FROM audit_log WHERE seq = 4");
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TAMPERED at record 4: record 4 was deleted"), "{out}");
}

#[test]
fn audit_verify_names_swapped_records() {
    let dir = tempfile::tempdir().unwrap();
    six_records(dir.path());
    tamper(
        dir.path(),
        "UPDATE audit_log SET pos = -2 WHERE seq = 2;
         UPDATE audit_log SET pos = 2 WHERE seq = 5;
         UPDATE audit_log SET pos = 5 WHERE seq = 2;",
    );
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TAMPERED at record 2") && out.contains("reordered"), "{out}");
    assert!(out.contains("record 5 sits at row 2"), "{out}");
}

#[test]
fn audit_verify_names_an_inserted_record() {
    let dir = tempfile::tempdir().unwrap();
    six_records(dir.path());
    // A forged record with a valid hash of its own, chained after record 3 and
    // slipped in before the real record 4 (rows after it moved down by one).
    let db = Connection::open(dir.path().join("onlabel.sqlite")).unwrap();
    db.execute_batch("DROP TRIGGER audit_log_no_update;").unwrap();
    let third = read_entry(&db, 3);
    let mut forged = read_entry(&db, 4);
    forged.detail_json = "{\"user\":\"ghost\",\"role\":\"admin\"}".into();
    forged.prev_hash = third.hash.clone();
    forged.hash = onlabel::audit::hash_of(&forged);
    db.execute_batch("UPDATE audit_log SET pos = pos + 100 WHERE pos >= 4; UPDATE audit_log SET pos = pos - 99 WHERE pos >= 100;").unwrap();
    db.execute(
        "INSERT INTO audit_log (pos, seq, at, actor, role, action, input, prompt_version, prompt_sha256, model, model_sha256,
             passages_json, flags_json, output, route, case_id, timings_json, detail_json, prev_hash, hash)
         SELECT 4, seq, at, actor, role, action, input, prompt_version, prompt_sha256, model, model_sha256,
             passages_json, flags_json, output, route, case_id, timings_json, ?1, ?2, ?3 FROM audit_log WHERE pos = 5",
        rusqlite::params![forged.detail_json, forged.prev_hash, forged.hash],
    )
    .unwrap();
    drop(db);
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record 4 (row 4) was inserted"), "{out}");
}

#[test]
fn audit_verify_detects_truncation_against_a_noted_head() {
    let dir = tempfile::tempdir().unwrap();
    six_records(dir.path());
    let (_, out) = verify(dir.path());
    let head = out.lines().find_map(|l| l.strip_prefix("head ")).unwrap().to_string();
    tamper(dir.path(), "DELETE FROM audit_log WHERE seq >= 5");
    let (code, out, _) = onlabel(dir.path(), None, &["audit", "verify", "--head", &head]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record 6 (the recorded head) is missing"), "{out}");
}

#[test]
fn audit_export_jsonl_and_csv_for_compliance_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let admin = six_records(data);
    let comp = {
        let (code, out, err) = onlabel(data, Some(&admin), &["users", "rotate", "u5", "--as", "root"]);
        assert_eq!(code, 0, "{err}");
        out.trim().to_string()
    };
    let rep = {
        let (_, out, _) = onlabel(data, Some(&admin), &["users", "rotate", "u2", "--as", "root"]);
        out.trim().to_string()
    };
    let (code, _, err) = onlabel(data, Some(&rep), &["audit", "export", "--as", "u2"]);
    assert_eq!(code, 3, "a rep cannot export: {err}");
    let (code, out, err) = onlabel(data, Some(&comp), &["audit", "export", "--format", "jsonl", "--as", "u5"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 9, "6 adds, 2 rotations, 1 denial: {out}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as i64 + 1);
        for k in ["at", "actor", "role", "action", "input", "prompt_version", "prompt_sha256", "model", "model_sha256",
                  "passages_json", "flags_json", "output", "route", "case_id", "timings_json", "prev_hash", "hash"] {
            assert!(l.get(k).is_some(), "{k} missing in {l}");
        }
    }
    assert!(lines.iter().any(|l| l["action"] == "permission_denied" && l["actor"] == "u2"), "{out}");
    // CSV: header and one row per record (plus the export just recorded).
    let (code, out, _) = onlabel(data, Some(&comp), &["audit", "export", "--format", "csv", "--as", "u5"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("seq,at,actor,role,action,input,"), "{out}");
    assert_eq!(out.lines().count(), lines.len() + 2, "header + one more record (the first export)");
    // --from/--to select by time; a future window is empty, today holds everything.
    let (_, out, _) = onlabel(data, Some(&comp), &["audit", "export", "--from", "2999-01-01", "--as", "u5"]);
    assert_eq!(out.trim(), "");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let (_, out, _) = onlabel(data, Some(&comp), &["audit", "export", "--from", &today, "--to", &today, "--as", "u5"]);
    assert!(out.lines().count() >= lines.len(), "{out}");
    // Reading the log is itself on the log, and the chain still verifies.
    let (code, out) = verify(data);
    assert_eq!(code, 0, "{out}");
}

fn read_entry(db: &Connection, seq: i64) -> onlabel::audit::Entry {
    db.query_row(
        "SELECT seq, at, actor, role, action, input, prompt_version, prompt_sha256, model, model_sha256, passages_json,
                flags_json, output, route, case_id, timings_json, detail_json, prev_hash, hash
         FROM audit_log WHERE seq = ?1",
        [seq],
        |r| {
            Ok(onlabel::audit::Entry {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                role: r.get(3)?,
                action: r.get(4)?,
                input: r.get(5)?,
                prompt_version: r.get(6)?,
                prompt_sha256: r.get(7)?,
                model: r.get(8)?,
                model_sha256: r.get(9)?,
                passages_json: r.get(10)?,
                flags_json: r.get(11)?,
                output: r.get(12)?,
                route: r.get(13)?,
                case_id: r.get(14)?,
                timings_json: r.get(15)?,
                detail_json: r.get(16)?,
                prev_hash: r.get(17)?,
                hash: r.get(18)?,
            })
        },
    )
    .unwrap()
}
