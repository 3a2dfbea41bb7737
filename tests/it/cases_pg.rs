//! The case queue on PostgreSQL shared by two replicas (issue 22, point 2),
//! against the real cluster the harness starts ([`pg_database`]): each
//! replica is its own `Store::connect` of the same database, as two server
//! processes behind a load balancer would be. A case opened through one is
//! worked and closed through the other; both open and move cases at once
//! without sharing an id or both winning a step; the audit chain the two
//! wrote verifies as one.
//!
//! Written against the library API: the command line's `onlabel cases …
//! --database postgres://…` also needs users (the sign-in) on PostgreSQL,
//! which is another port; the people the cases module checks are therefore
//! rows of the users table, written here the way the users module stores
//! them (id, name, role; a token hash the cases module never reads).

use std::sync::Arc;

use onlabel::audit::Audit;
use onlabel::cases::{self, CaseFilter, CaseKind, CaseState, CaseStore, NewCase};
use onlabel::store::{Database, Store};

use crate::harness::pg_database;

/// One replica's view of the store: its own connection pool.
fn replica(url: &str) -> CaseStore {
    CaseStore::from_store(Arc::new(Store::connect(&Database::parse(url).unwrap()).unwrap()))
}

/// Adds `(id, role)` users (enabled) to the shared users table.
fn people(s: &CaseStore, list: &[(&str, &str)]) {
    s.store()
        .transaction(|tx| -> Result<(), onlabel::store::Error> {
            for (id, role) in list {
                tx.execute(
                    "INSERT INTO users (id, name, role, token_hash, created_at, created_by) VALUES (?1, ?2, ?3, 'unused', '2026-11-18T09:00:00.000Z', 'test')",
                    onlabel::vals![*id, format!("User {id}"), *role],
                )?;
            }
            Ok(())
        })
        .unwrap();
}

fn new_case(kind: CaseKind, reporter: &str, i: usize) -> NewCase {
    NewCase {
        kind,
        product: Some("zentravia".into()),
        question: format!("Case {i}: my patient got a bad rash two weeks after starting it."),
        reporter: reporter.into(),
        hcp: Some("Dr. Shah".into()),
        patient: Some("F, 54".into()),
        suspect_product: Some("zentravia".into()),
        event: Some("rash".into()),
        flags_json: r#"[{"kind":"adverse_event","evidence":"bad rash"}]"#.into(),
        now: chrono::Utc::now(),
    }
}

#[test]
fn a_case_opened_on_one_replica_is_worked_on_the_other_and_the_chain_verifies() {
    let url = pg_database("it_cases_two_replicas");
    let (a, b) = (replica(&url), replica(&url));
    people(&a, &[("rep-7", "rep"), ("pv-lead", "admin"), ("pv-anna", "medical")]);

    let opened = a.open_case(new_case(CaseKind::Pharmacovigilance, "rep-7", 1)).unwrap();
    let id = opened.id.clone();
    assert!(id.starts_with("PV-") && id.ends_with("-000001"), "{id}");
    assert_eq!(b.get(&id.to_lowercase()).unwrap().as_ref(), Some(&opened), "replica b reads what a committed");

    b.transition(&id, CaseState::Triaged, "pv-lead", Some("serious: hospitalisation")).unwrap();
    assert_eq!(a.assign(&id, "pv-anna", "pv-lead").unwrap().owner.as_deref(), Some("pv-anna"));
    let mut intake = cases::intake::prefill(&b.get(&id).unwrap().unwrap());
    intake.patient.age = Some(54);
    assert_eq!(a.save_intake(&id, "rep-7", &intake).unwrap().version, 1);
    b.transition(&id, CaseState::InProgress, "pv-anna", None).unwrap();
    let closed = b.resolve(&id, "pv-anna", "Entered in safety database as 2026-US-0042").unwrap();

    let seen = a.get(&id).unwrap().unwrap();
    assert_eq!(seen, closed, "replica a reads the close b committed");
    assert_eq!((seen.state, seen.resolution.as_deref()), (CaseState::Closed, Some("Entered in safety database as 2026-US-0042")));
    // A step decided on stale data is refused by the state the store holds now.
    let e = a.resolve(&id, "pv-anna", "again").unwrap_err();
    assert!(matches!(e, cases::Error::InvalidTransition { from: CaseState::Closed, .. }), "{e}");

    let steps: Vec<(String, String)> = a.history(&id).unwrap().into_iter().map(|h| (h.actor, h.action)).collect();
    let want = [("rep-7", "opened"), ("pv-lead", "transitioned"), ("pv-lead", "assigned"), ("rep-7", "intake"), ("pv-anna", "transitioned"), ("pv-anna", "transitioned")];
    assert_eq!(steps, want.map(|(x, y)| (x.to_string(), y.to_string())));
    assert_eq!(b.intake_versions(&id).unwrap().iter().map(|v| v.intake.patient.age).collect::<Vec<_>>(), [Some(54)]);

    let actions: Vec<String> = b.audit_refs(&id).unwrap().into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["case_opened", "case_triaged", "case_assigned", "case_intake", "case_started", "case_resolved"]);
    let audit = Audit::connect(&Database::parse(&url).unwrap()).unwrap();
    assert_eq!(audit.backend(), "postgres");
    let v = audit.verify(None).unwrap();
    assert!(v.ok, "{:?}", v.tamper.map(|t| t.words()));
}

#[test]
fn two_replicas_opening_and_moving_cases_at_once_never_share_an_id_or_both_win() {
    const PER_THREAD: usize = 10;
    const THREADS: usize = 3; // per replica
    let url = pg_database("it_cases_replica_race");
    let (a, b) = (replica(&url), replica(&url));
    people(&a, &[("rep-7", "rep"), ("med-a", "medical"), ("med-b", "medical")]);

    // Both replicas open cases of both kinds at once.
    let mut ids: Vec<String> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..2 * THREADS)
            .map(|t| {
                let s = if t % 2 == 0 { &a } else { &b };
                sc.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let kind = if i % 2 == 0 { CaseKind::Pharmacovigilance } else { CaseKind::MedicalInformation };
                            s.open_case(new_case(kind, "rep-7", t * PER_THREAD + i)).unwrap().id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    ids.sort();
    let total = 2 * THREADS * PER_THREAD;
    let year = chrono::Datelike::year(&chrono::Utc::now());
    let mut want: Vec<String> = (1..=total / 2).flat_map(|n| [format!("PV-{year}-{n:06}"), format!("MIR-{year}-{n:06}")]).collect();
    want.sort();
    assert_eq!(ids, want, "every number once per kind, none skipped");

    // Both replicas try the same step on the same case at once: exactly one wins.
    let contested: Vec<&String> = ids.iter().take(10).collect();
    for id in &contested {
        let (ra, rb) = std::thread::scope(|sc| {
            let ta = sc.spawn(|| a.transition(id, CaseState::Triaged, "med-a", None));
            let tb = sc.spawn(|| b.transition(id, CaseState::Triaged, "med-b", None));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{id}: {ra:?} / {rb:?}");
        let loser = if ra.is_err() { ra.unwrap_err() } else { rb.unwrap_err() };
        assert!(matches!(loser, cases::Error::InvalidTransition { from: CaseState::Triaged, to: CaseState::Triaged, .. }), "{id}: {loser}");
        assert_eq!(b.history(id).unwrap().len(), 2, "{id}: opened, one triage");
    }

    let counts = b.counts(&CaseFilter::default(), chrono::Utc::now()).unwrap();
    assert_eq!((counts.total, counts.new, counts.triaged), (total as u64, (total - contested.len()) as u64, contested.len() as u64));
    let audit = Audit::connect(&Database::parse(&url).unwrap()).unwrap();
    let v = audit.verify(None).unwrap();
    assert!(v.ok, "{:?}", v.tamper.map(|t| t.words()));
    let rows = audit.rows().unwrap();
    assert_eq!(rows.iter().filter(|(_, e)| e.action == "case_opened").count(), total);
    assert_eq!(rows.iter().filter(|(_, e)| e.action == "case_triaged").count(), contested.len());
}
