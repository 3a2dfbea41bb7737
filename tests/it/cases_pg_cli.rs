//! `onlabel cases …` on PostgreSQL (issue 22, point 2): the real binary with
//! `--database postgres://…` (a throwaway cluster, [`pg_database`]) and no
//! data directory — users added, a case opened by `cases stress`, listed,
//! shown, assigned, triaged, started and resolved by separate processes (as
//! from two replicas' hosts), each change on the audit chain that `audit
//! verify --database` checks; a wrong step and a missing case keep their
//! exit codes from the error table.

use crate::harness::{onlabel_db_as as on_db, pg_database};

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn cases_commands_work_a_case_on_postgres_and_the_chain_verifies() {
    let url = pg_database("it_cases_cli_pg");
    let add = |admin: Option<&str>, id: &str, role: &str| -> String {
        let mut args = vec!["users", "add", "--id", id, "--name", id, "--role", role];
        if admin.is_some() {
            args.extend(["--as", "root"]);
        }
        let (code, out, err) = on_db(&url, admin, &args);
        assert_eq!(code, 0, "users add {id}: {out}{err}");
        out.trim().to_string()
    };
    let root = add(None, "root", "admin");
    let lead = add(Some(&root), "pv-lead", "medical");
    let anna = add(Some(&root), "pv-anna", "medical");
    let carol = add(Some(&root), "carol", "compliance");

    let (code, out, err) = on_db(&url, Some(&root), &["cases", "stress", "--count", "2", "--kind", "pv", "--as", "root"]);
    assert_eq!(code, 0, "{err}");
    let ids: Vec<&str> = out.lines().collect();
    assert_eq!(ids.len(), 2, "{out}");
    assert!(ids[0].starts_with("PV-") && ids[0].ends_with("-000001") && ids[1].ends_with("-000002"), "{out}");
    let id = ids[0];

    let (code, out, err) = on_db(&url, Some(&carol), &["--json", "cases", "list", "--as", "carol"]);
    assert_eq!(code, 0, "{err}");
    let listed = json(&out);
    assert_eq!(listed.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect::<Vec<_>>(), ids);

    let step = |token: &str, who: &str, args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--json", "cases"];
        all.extend(args);
        all.extend(["--as", who]);
        let (code, out, err) = on_db(&url, Some(token), &all);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        json(&out)
    };
    assert_eq!(step(&lead, "pv-lead", &["triage", id, "--note", "serious"])["state"], "triaged");
    assert_eq!(step(&lead, "pv-lead", &["assign", id, "--to", "pv-anna"])["owner"], "pv-anna");
    assert_eq!(step(&anna, "pv-anna", &["start", id])["state"], "in_progress");
    let closed = step(&anna, "pv-anna", &["resolve", id, "--resolution", "Entered as 2026-US-0042"]);
    assert_eq!((closed["state"].as_str(), closed["resolution"].as_str()), (Some("closed"), Some("Entered as 2026-US-0042")));

    let shown = step(&carol, "carol", &["show", &id.to_lowercase()]);
    let actions: Vec<&str> = shown["history"].as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["opened", "transitioned", "assigned", "transitioned", "transitioned"]);

    // A wrong step and a missing case: the same exit codes and error codes as on SQLite.
    let (code, out, _) = on_db(&url, Some(&anna), &["--json", "cases", "resolve", id, "--resolution", "again", "--as", "pv-anna"]);
    assert_eq!((code, json(&out)["error"]["code"].as_str()), (2, Some("invalid_transition")), "{out}");
    let (code, out, _) = on_db(&url, Some(&anna), &["--json", "cases", "start", "PV-2026-999999", "--as", "pv-anna"]);
    assert_eq!((code, json(&out)["error"]["code"].as_str()), (2, Some("case_not_found")), "{out}");

    let (code, out, err) = on_db(&url, None, &["audit", "verify"]);
    assert_eq!(code, 0, "audit verify on PostgreSQL: {out}{err}");
}
