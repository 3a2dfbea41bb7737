//! Issue 21, points 3 and 4 at the router (`router(state).oneshot`):
//!
//! - 4, each person sees their own: a rep lists and reads only the cases
//!   they reported; another rep's case answers as one that does not exist
//!   (404 `not_found`, the same message), on every case route; Medical sees
//!   the queue; compliance reads the audit log; visits and Medical requests
//!   keep to the same rule.
//! - 3, Part 11 e-signatures: approve/reject re-authenticate the signer
//!   (password, or a fresh single sign-on step-up taken once), refused when
//!   the request's credential is not the signer's own; the 11.50
//!   manifestation in the version's JSON, the audit record and the exports.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use axum::Router;
use chrono::Utc;
use onlabel::cases::{CaseKind, CaseStore, NewCase};
use onlabel::server::Limits;
use onlabel::store::Store;
use onlabel::users::{Role, Users};
use serde_json::{json, Value};

use crate::authz_matrix::{app, call, Resp};
use crate::harness::{build_index, root, scratch_repo};

/// The demo index, built once for these tests.
fn index() -> &'static PathBuf {
    static IDX: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &IDX.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("idx");
        drop(build_index(&[root().join("corpora/demo")], &idx));
        (dir, idx)
    })
    .1
}

/// A fresh store and router: `root` (admin), `rex` and `rita` (reps), `mia`
/// (medical), `carol` (compliance), `alice` and `bob` (mlr_reviewer).
struct World {
    _dir: tempfile::TempDir,
    data: PathBuf,
    repo: PathBuf,
    app: Router,
    tokens: HashMap<&'static str, String>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let repo = scratch_repo(dir.path());
        let store = Store::open(&data).unwrap();
        let users = Users::new(&store);
        let mut tokens = HashMap::new();
        let (admin, t) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
        tokens.insert("root", t.0);
        for (id, name, role) in [
            ("rex", "Rex Rep", Role::Rep),
            ("rita", "Rita Rep", Role::Rep),
            ("mia", "Mia Medical", Role::Medical),
            ("carol", "Carol Compliance", Role::Compliance),
            ("alice", "Alice Author", Role::MlrReviewer),
            ("bob", "Bob Reviewer", Role::MlrReviewer),
        ] {
            tokens.insert(id, users.add(id, name, role, Some(&admin)).unwrap().1 .0);
        }
        drop(store);
        let app = app(&data, index(), &repo, Limits::default());
        World { _dir: dir, data, repo, app, tokens }
    }

    fn call(&self, who: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
        let body = body.map(|b| b.to_string());
        call(&self.app, method, path, Some(&self.tokens[who]), body.as_deref(), "10.21.0.1:40000".parse().unwrap())
    }

    /// Opens a case reported by `reporter` directly in the store.
    fn open(&self, kind: CaseKind, reporter: &str, question: &str) -> String {
        CaseStore::open(&self.data)
            .unwrap()
            .open_case(NewCase {
                kind,
                product: Some("zentravia".into()),
                question: question.into(),
                reporter: reporter.into(),
                hcp: Some("Dr. Lee".into()),
                patient: Some("a 62-year-old woman".into()),
                suspect_product: Some("zentravia".into()),
                event: Some("rash".into()),
                flags_json: "[]".into(),
                now: Utc::now(),
            })
            .unwrap()
            .id
    }
}

fn status(r: &Resp) -> (u16, String) {
    (r.status.as_u16(), r.code().to_string())
}

fn ids(r: &Resp) -> Vec<String> {
    r.body["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn issue21_4_a_rep_lists_and_reads_only_their_own_cases_and_anothers_is_a_404() {
    let w = World::new();
    let rex_pv = w.open(CaseKind::Pharmacovigilance, "rex", "My patient got a rash on zentravia.");
    let rex_mi = w.open(CaseKind::MedicalInformation, "rex", "Pediatric dosing?");
    let rita_pv = w.open(CaseKind::Pharmacovigilance, "rita", "Her patient fainted.");

    // Lists: each rep their own, whatever they ask for; Medical the whole queue.
    for q in ["", "?mine=false", "?mine=true", "?owner=mia", "?q=fainted"] {
        let mine = ids(&w.call("rex", "GET", &format!("/api/v1/cases{q}"), None));
        assert!(!mine.contains(&rita_pv), "rex sees rita's case with {q:?}: {mine:?}");
    }
    let mut rex = ids(&w.call("rex", "GET", "/api/v1/cases", None));
    rex.sort();
    let mut want = vec![rex_pv.clone(), rex_mi.clone()];
    want.sort();
    assert_eq!(rex, want);
    assert_eq!(ids(&w.call("rita", "GET", "/api/v1/cases", None)), [rita_pv.clone()]);
    assert_eq!(w.call("rita", "GET", "/api/v1/cases", None).body["mine"], true);
    let queue = ids(&w.call("mia", "GET", "/api/v1/cases", None));
    assert!([&rex_pv, &rex_mi, &rita_pv].iter().all(|c| queue.contains(c)), "Medical sees the queue: {queue:?}");

    // Reads: their own case yes (without the audit references), another's is the 404 of a missing case.
    let own = w.call("rex", "GET", &format!("/api/v1/cases/{rex_pv}"), None);
    assert_eq!(own.status.as_u16(), 200, "{}", own.body);
    assert_eq!((own.body["case"]["id"].as_str(), own.body["audit"].clone()), (Some(rex_pv.as_str()), Value::Null));
    assert!(own.body["intake"].is_object(), "the reporter sees the intake of their case: {}", own.body);
    let medical = w.call("mia", "GET", &format!("/api/v1/cases/{rex_pv}"), None);
    assert!(medical.body["audit"].as_array().is_some_and(|a| !a.is_empty()), "Medical sees the audit references: {}", medical.body);

    let missing = "PV-2026-999999";
    for (method, suffix, body) in [("GET", "", None), ("GET", "/intake", None), ("PUT", "/intake", Some(json!({"patient": {"sex": "female"}})))] {
        let theirs = w.call("rex", method, &format!("/api/v1/cases/{rita_pv}{suffix}"), body.clone());
        let nothing = w.call("rex", method, &format!("/api/v1/cases/{missing}{suffix}"), body.clone());
        assert_eq!(status(&theirs), (404, "not_found".into()), "{method} {suffix} of rita's case: {}", theirs.body);
        assert_eq!(status(&nothing), (404, "not_found".into()), "{method} {suffix} of a missing case");
        // The same answer but for the id: a rep cannot tell another's case from no case.
        let msg = |r: &Resp, id: &str| r.body["error"]["message"].as_str().unwrap().replace(id, "ID");
        assert_eq!(msg(&theirs, &rita_pv), msg(&nothing, missing), "{method} {suffix}");
        assert!(!theirs.body.to_string().contains("fainted") && !theirs.body.to_string().contains("rita"), "nothing of the case leaks: {}", theirs.body);
        // compliance and an MLR reviewer are treated as anyone else: their own reports only.
        for who in ["carol", "bob"] {
            assert_eq!(status(&w.call(who, method, &format!("/api/v1/cases/{rita_pv}{suffix}"), body.clone())), (404, "not_found".into()), "{who} {method} {suffix}");
        }
    }
    // Nothing was written by the refused PUT.
    assert!(CaseStore::open(&w.data).unwrap().intake_versions(&rita_pv).unwrap().is_empty());
    // Working a case is Medical's (403 by role, before the id is looked at); so is the owner list.
    assert_eq!(status(&w.call("rex", "POST", &format!("/api/v1/cases/{rex_pv}/triage"), Some(json!({})))), (403, "forbidden".into()));
    assert_eq!(status(&w.call("rex", "GET", "/api/v1/case-owners", None)), (403, "forbidden".into()));
    // The reporter may still edit their own intake; Medical edits anyone's.
    let put = w.call("rex", "PUT", &format!("/api/v1/cases/{rex_pv}/intake"), Some(json!({"patient": {"sex": "female"}})));
    assert_eq!(put.status.as_u16(), 200, "{}", put.body);
    assert_eq!(w.call("mia", "GET", &format!("/api/v1/cases/{rita_pv}/intake"), None).status.as_u16(), 200);
    // A Medical user asking for a missing case gets the cases module's own code.
    assert_eq!(status(&w.call("mia", "GET", &format!("/api/v1/cases/{missing}"), None)), (404, "case_not_found".into()));
}

#[test]
fn issue21_4_compliance_reads_the_audit_log_and_reps_medical_and_reviewers_do_not() {
    let w = World::new();
    let case = w.open(CaseKind::Pharmacovigilance, "rex", "Rash.");
    let q = format!("/api/v1/audit?case_id={case}");
    let r = w.call("carol", "GET", &q, None);
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert!(r.body["total"].as_u64().is_some_and(|n| n >= 1), "the case's opening is on record: {}", r.body);
    for who in ["rex", "mia", "bob"] {
        for path in [q.as_str(), "/api/v1/audit/1", "/api/v1/audit/export", "/api/v1/audit/verify"] {
            assert_eq!(status(&w.call(who, "GET", path, None)), (403, "forbidden".into()), "{who} {path}");
        }
    }
    assert_eq!(w.call("root", "GET", &q, None).status.as_u16(), 200, "admin reads it too");
}

#[test]
fn issue21_4_visits_and_medical_requests_are_their_owners_only() {
    let w = World::new();
    let ask = json!({"question": "What are the LFT monitoring rules?", "product": "zentravia", "hcp": "Dr. Lee"});
    let r = w.call("rex", "POST", "/api/v1/ask", Some(ask));
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let conv = r.body["conversation_id"].as_str().expect("a visit was started").to_string();
    assert_eq!(w.call("rex", "GET", &format!("/api/v1/conversations/{conv}"), None).status.as_u16(), 200);
    let theirs = w.call("rita", "GET", &format!("/api/v1/conversations/{conv}"), None);
    let nothing = w.call("rita", "GET", "/api/v1/conversations/conv-000000000000000000000000", None);
    assert_eq!((status(&theirs), status(&nothing)), ((404, "not_found".into()), (404, "not_found".into())));
    for who in ["rita", "mia", "carol"] {
        let listed = w.call(who, "GET", "/api/v1/conversations", None);
        assert!(!listed.body.to_string().contains(&conv), "{who} lists rex's visit: {}", listed.body);
        let r = w.call(who, "POST", "/api/v1/ask", Some(json!({"question": "And in children?", "product": "zentravia", "conversation_id": conv})));
        assert_eq!(status(&r), (404, "not_found".into()), "{who} continues rex's visit: {}", r.body);
    }
    // rex's pending Medical request: not listed for anyone else, and
    // deciding it as anyone else is the 404 of one that does not exist.
    let off = json!({"question": "Can I tell Dr. Shah it works for psoriatic arthritis too?", "product": "zentravia", "hcp": "Dr. Shah", "extractive": true});
    let r = w.call("rex", "POST", "/api/v1/ask", Some(off));
    let mr = r.body["medical_request"]["id"].as_str().unwrap_or_else(|| panic!("a Medical request: {}", r.body)).to_string();
    let confirm = json!({"hcp": "Dr. Shah", "request_text": "Does it work for psoriatic arthritis?", "consent": true, "contact": {"channel": "email", "address": "dr.shah@clinic.example"}});
    for who in ["rita", "mia"] {
        assert!(!w.call(who, "GET", "/api/v1/medical-requests", None).body.to_string().contains(&mr), "{who} lists rex's request");
        let c = w.call(who, "POST", &format!("/api/v1/medical-requests/{mr}/confirm"), Some(confirm.clone()));
        let d = w.call(who, "POST", &format!("/api/v1/medical-requests/{mr}/dismiss"), Some(json!({"reason": "not mine"})));
        assert_eq!((status(&c), status(&d)), ((404, "not_found".into()), (404, "not_found".into())), "{who}: {} {}", c.body, d.body);
    }
    assert!(w.call("rex", "GET", "/api/v1/medical-requests", None).body.to_string().contains(&mr), "still pending for rex");
}
