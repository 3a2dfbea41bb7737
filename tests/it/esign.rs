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

/// The password the e-signature tests give their signers (long and not a
/// common one: it passes the password policy).
pub(crate) const PASSWORD: &str = "Plum-Otter-Gravel-Lantern-93";

/// Sets `id`'s password in the store under `data` (as `id` themselves).
pub(crate) fn set_password(data: &std::path::Path, id: &str, password: &str) {
    let store = Store::open(data).unwrap();
    let users = Users::new(&store);
    let me = users.get(id).unwrap().unwrap_or_else(|| panic!("no user {id}"));
    users.set_password(id, password, &me).unwrap();
}

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

// ------------------------------------------------ 3: Part 11 e-signatures --

/// A version `NAME@1` of the real prompt by alice, submitted, with passing
/// eval evidence recorded on the scratch repo's gate (as compliance would).
fn version_in_review(w: &World, name: &str) -> onlabel::prompts::VersionId {
    use onlabel::prompts::{sha256_hex, NewEvalRun, Registry, Thresholds};
    let store = Store::open(&w.data).unwrap();
    let users = Users::new(&store);
    let (alice, carol) = (users.get("alice").unwrap().unwrap(), users.get("carol").unwrap().unwrap());
    let reg = Registry::new(&store, &w.repo);
    let v = reg.propose(name, std::path::Path::new("prompts/objection.j2"), None, json!({}), &alice).unwrap();
    let id = onlabel::prompts::VersionId { name: v.name.clone(), version: v.version };
    reg.submit(&id, &alice).unwrap();
    let suite = std::fs::read(w.repo.join("evals/mini.jsonl")).unwrap();
    let run = NewEvalRun {
        suite_path: "evals/mini.jsonl".into(),
        suite_sha256: sha256_hex(&suite),
        model: None,
        model_sha256: None,
        versions: json!([id.to_string()]),
        metrics: json!({"route_accuracy": 1.0}),
    };
    reg.record_eval(&id, &run, &carol, &Thresholds::read(&w.repo.join("evals/thresholds.toml")).unwrap()).unwrap();
    id
}

/// A browser session of `id` started as `method` signs in: (cookie, csrf, session id).
fn session(w: &World, id: &str, method: onlabel::users::Method) -> (String, String, String) {
    let store = Store::open(&w.data).unwrap();
    let user = Users::new(&store).get(id).unwrap().unwrap();
    let s = onlabel::users::Sessions::new(&store, onlabel::users::SessionPolicy::default()).start(&user, method).unwrap();
    (s.cookie, s.csrf, s.session.id)
}

impl World {
    /// A request with a session cookie and its CSRF token (no bearer token).
    fn with_session(&self, (cookie, csrf, _): &(String, String, String), method: &str, path: &str, body: Value) -> Resp {
        let cookie = format!("onlabel_session={cookie}");
        let body = body.to_string();
        crate::authz_matrix::call_with(&self.app, method, path, None, Some(&body), "10.21.0.2:40000".parse().unwrap(), &[("cookie", &cookie), ("x-csrf-token", csrf)])
    }

    fn count(&self, sql: &str) -> i64 {
        Store::open(&self.data).unwrap().with_conn(|c| c.query_row(sql, [], |r| r.get(0))).unwrap()
    }

    /// The detail of the newest audit record of `action`.
    fn last_detail(&self, action: &str) -> Value {
        let s: String = Store::open(&self.data)
            .unwrap()
            .with_conn(|c| c.query_row("SELECT detail_json FROM audit_log WHERE action = ?1 ORDER BY seq DESC LIMIT 1", [action], |r| r.get(0)))
            .unwrap();
        serde_json::from_str(&s).unwrap()
    }
}

#[test]
fn issue21_3_approve_re_enters_the_password_and_the_manifestation_is_in_the_json_and_the_exports() {
    let w = World::new();
    for who in ["alice", "bob"] {
        set_password(&w.data, who, PASSWORD);
    }
    let id = version_in_review(&w, "esign-a");
    let path = format!("/api/v1/prompts/{id}/approve");
    let bob = session(&w, "bob", onlabel::users::Method::Password);
    let failures = || w.count("SELECT coalesce(sum(count), 0) FROM sign_in_failures WHERE user_id = 'bob'");

    // Missing password: nothing is signed, nothing counted.
    let r = w.with_session(&bob, "POST", &path, json!({"reason": "Evidence passed"}));
    assert_eq!(status(&r), (400, "empty".into()), "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("password"), "{}", r.body);
    assert_eq!(failures(), 0);
    // A wrong password is a failed sign-in: 401, counted.
    let r = w.with_session(&bob, "POST", &path, json!({"reason": "Evidence passed", "password": "Not-Bobs-Password-77"}));
    assert_eq!(status(&r), (401, "bad_credential".into()), "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("nothing was signed"), "{}", r.body);
    assert_eq!(failures(), 1, "the wrong password counts toward the throttle");
    // Another person's password is a wrong password too.
    let r = w.with_session(&bob, "POST", &path, json!({"reason": "x", "password": PASSWORD.replace("93", "94")}));
    assert_eq!(r.status.as_u16(), 401);
    // The token re-entered no longer signs over HTTP; naming another signer is refused.
    let r = w.with_session(&bob, "POST", &path, json!({"reason": "x", "secret": w.tokens["bob"]}));
    assert_eq!(status(&r), (400, "bad_input".into()), "{}", r.body);
    let r = w.with_session(&bob, "POST", &path, json!({"reason": "x", "password": PASSWORD, "signer": "alice"}));
    assert_eq!(status(&r), (403, "signature_refused".into()), "{}", r.body);
    let r = w.with_session(&bob, "POST", &path, json!({"reason": "x", "password": PASSWORD, "as": "alice"}));
    assert_eq!(status(&r), (403, "signature_refused".into()), "`as` is `signer`: {}", r.body);
    // The author, with her own password and session: never.
    let alice = session(&w, "alice", onlabel::users::Method::Password);
    assert_eq!(status(&w.with_session(&alice, "POST", &path, json!({"reason": "mine", "password": PASSWORD}))), (403, "self_approval".into()));
    assert!(Store::open(&w.data).unwrap().with_conn(|c| c.query_row("SELECT count(*) FROM prompt_signatures", [], |r| r.get::<_, i64>(0))).unwrap() == 0, "nothing signed yet");

    // Bob's own password, in his own session (naming himself is fine): signed.
    let r = w.with_session(&bob, "POST", &path, json!({"reason": "Evidence run passed; wording reviewed", "password": PASSWORD, "signer": "bob"}));
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let sha = r.body["version"]["sha256"].as_str().unwrap().to_string();
    let m = &r.body["signature"]["manifestation"];
    assert_eq!((m["printed_name"].as_str(), m["signer_id"].as_str(), m["meaning"].as_str()), (Some("Bob Reviewer"), Some("bob"), Some("Approved")), "{m}");
    assert_eq!((m["reason"].as_str(), m["record_sha256"].as_str(), m["record"].as_str()), (Some("Evidence run passed; wording reviewed"), Some(sha.as_str()), Some(id.to_string().as_str())));
    let at = chrono::DateTime::parse_from_rfc3339(m["signed_at_utc"].as_str().unwrap()).unwrap();
    assert!((Utc::now() - at.with_timezone(&Utc)).num_seconds().abs() < 60, "{m}");
    assert!(m["signed_at_utc"].as_str().unwrap().ends_with('Z'), "UTC: {m}");

    // The version's JSON carries it, bound to the hash as before.
    let v = w.call("carol", "GET", &format!("/api/v1/prompts/{id}"), None).body;
    let sig = &v["signatures"][0];
    assert_eq!(sig["manifestation"], *m, "{v}");
    assert_eq!((sig["sha256"].as_str(), sig["meaning"].as_str()), (Some(sha.as_str()), Some("approved for use")));
    // The audit record says how the signer re-authenticated, and prints the manifestation.
    let d = w.last_detail("prompt_approved");
    assert_eq!(d["reauthenticated_with"], "password", "{d}");
    assert!(d["manifestation"].as_str().unwrap().starts_with("Approved by Bob Reviewer (bob) on "), "{d}");

    // The exports: the manifestation columns on the signature's row, empty elsewhere.
    let csv = w.call("carol", "GET", "/api/v1/audit/export?format=csv", None).body["text"].as_str().unwrap().to_string();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |k: &str| header.iter().position(|h| *h == k).unwrap_or_else(|| panic!("no column {k}: {header:?}"));
    let row = csv.lines().find(|l| l.contains("\"prompt_approved\"")).expect("the approval's row");
    for (k, want) in [("signature_printed_name", "Bob Reviewer"), ("signature_meaning", "Approved"), ("signature_reason", "Evidence run passed; wording reviewed")] {
        assert!(row.contains(&format!("\"{want}\"")), "{k} {want} in {row}");
        let _ = col(k);
    }
    assert!(row.contains(&format!("\"{}\"", m["signed_at_utc"].as_str().unwrap())) && row.contains(&sha), "{row}");
    let jsonl = w.call("carol", "GET", "/api/v1/audit/export?format=jsonl", None).body["text"].as_str().unwrap().to_string();
    let recs: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let signed = recs.iter().find(|r| r["action"] == "prompt_approved").unwrap();
    assert_eq!((signed["signature_printed_name"].as_str(), signed["signature_meaning"].as_str()), (Some("Bob Reviewer"), Some("Approved")));
    assert_eq!((signed["signature_signed_at_utc"].as_str(), signed["prompt_sha256"].as_str()), (m["signed_at_utc"].as_str(), Some(sha.as_str())));
    assert!(recs.iter().filter(|r| r["action"] != "prompt_approved" && r["action"] != "prompt_rejected").all(|r| r["signature_meaning"].is_null()));
    // Every exported line still verifies against its stored fields (the derived columns are not hashed).
    let v = w.call("carol", "GET", "/api/v1/audit/verify", None).body;
    assert_eq!(v["ok"], true, "{v}");

    // Over the API with his own bearer token, bob signs with his password too (a rejection here).
    let other = version_in_review(&w, "esign-b");
    let r = w.call("bob", "POST", &format!("/api/v1/prompts/{other}/reject"), Some(json!({"reason": "Needs a citation", "password": PASSWORD})));
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body["signature"]["manifestation"]["meaning"], "Rejected");
    assert_eq!(w.last_detail("prompt_rejected")["reauthenticated_with"], "password");
}

#[test]
fn issue21_3_a_single_sign_on_session_signs_once_per_fresh_step_up() {
    let w = World::new();
    let store = Store::open(&w.data).unwrap();
    let users = Users::new(&store);
    let root = users.get("root").unwrap().unwrap();
    users.add("olga", "Olga Oidc", Role::MlrReviewer, Some(&root)).unwrap();
    drop(store);
    let (a, b, c) = (version_in_review(&w, "esign-s1"), version_in_review(&w, "esign-s2"), version_in_review(&w, "esign-s3"));
    let olga = session(&w, "olga", onlabel::users::Method::Oidc);
    let sessions = || {
        let store = Store::open(&w.data).unwrap();
        let s = onlabel::users::Sessions::new(&store, onlabel::users::SessionPolicy::default());
        s.mark_step_up(&olga.2).unwrap();
    };
    let reject = |id: &onlabel::prompts::VersionId| w.with_session(&olga, "POST", &format!("/api/v1/prompts/{id}/reject"), json!({"reason": "Off-label wording"}));

    // No step-up yet: refused, saying how to re-authenticate.
    let r = reject(&a);
    assert_eq!(status(&r), (403, "signature_refused".into()), "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("single sign-on"), "{}", r.body);
    // A fresh step-up signs once…
    sessions();
    let r = reject(&a);
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body["signature"]["manifestation"]["printed_name"], "Olga Oidc");
    assert_eq!(w.last_detail("prompt_rejected")["reauthenticated_with"], "oidc_step_up");
    // …and is consumed by it.
    assert_eq!(status(&reject(&b)), (403, "signature_refused".into()));
    // A step-up older than five minutes does not sign.
    sessions();
    let stale = (Utc::now() - chrono::Duration::minutes(6)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Store::open(&w.data).unwrap().with_conn(|c| c.execute("UPDATE sessions SET step_up_at = ?1 WHERE id = ?2", [&stale, &olga.2])).unwrap();
    assert_eq!(status(&reject(&b)), (403, "signature_refused".into()));
    // Olga has no password: a password does not sign for her either (and is not counted as a guess).
    let r = w.with_session(&olga, "POST", &format!("/api/v1/prompts/{b}/reject"), json!({"reason": "x", "password": PASSWORD}));
    assert_eq!(status(&r), (403, "signature_refused".into()), "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("no password"), "{}", r.body);
    // A password session's step-up is not a signature: it re-enters the password.
    set_password(&w.data, "bob", PASSWORD);
    let bob = session(&w, "bob", onlabel::users::Method::Password);
    Store::open(&w.data).unwrap().with_conn(|c| c.execute("UPDATE sessions SET step_up_at = ?1 WHERE id = ?2", [&Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true), &bob.2])).unwrap();
    assert_eq!(status(&w.with_session(&bob, "POST", &format!("/api/v1/prompts/{c}/reject"), json!({"reason": "x"}))), (400, "empty".into()));
}

#[test]
fn issue21_3_a_signature_is_refused_for_anyone_but_the_requests_own_user() {
    let w = World::new();
    set_password(&w.data, "bob", PASSWORD);
    let store = Store::open(&w.data).unwrap();
    let users = Users::new(&store);
    let root = users.get("root").unwrap().unwrap();
    // A service account with the signing role but no password (a script's bearer token).
    let svc = users.add("svc-mlr", "MLR automation", Role::MlrReviewer, Some(&root)).unwrap().1 .0;
    drop(store);
    let id = version_in_review(&w, "esign-r");
    let path = format!("/api/v1/prompts/{id}/approve");
    let as_svc = |body: Value| call(&w.app, "POST", &path, Some(&svc), Some(&body.to_string()), "10.21.0.3:40000".parse().unwrap());
    // It cannot sign for a person, whatever it sends…
    for body in [
        json!({"reason": "auto", "signer": "bob", "password": PASSWORD}),
        json!({"reason": "auto", "as": "bob"}),
    ] {
        let r = as_svc(body.clone());
        assert_eq!(status(&r), (403, "signature_refused".into()), "{body}: {}", r.body);
    }
    // …nor for itself: it has no password, and its token is no signature.
    let r = as_svc(json!({"reason": "auto", "password": PASSWORD}));
    assert_eq!(status(&r), (403, "signature_refused".into()), "{}", r.body);
    assert_eq!(status(&as_svc(json!({"reason": "auto", "secret": svc}))), (400, "bad_input".into()));
    // A rep's or compliance's session is not a signer's at all.
    for who in ["rex", "carol"] {
        let s = session(&w, who, onlabel::users::Method::Password);
        assert_eq!(status(&w.with_session(&s, "POST", &path, json!({"reason": "x", "password": PASSWORD}))), (403, "forbidden".into()), "{who}");
    }
    // bob's session with bob's password is the only way here.
    let bob = session(&w, "bob", onlabel::users::Method::Password);
    assert_eq!(w.with_session(&bob, "POST", &path, json!({"reason": "Reviewed", "password": PASSWORD})).status.as_u16(), 200);
    assert_eq!(Store::open(&w.data).unwrap().with_conn(|c| c.query_row("SELECT signer_id FROM prompt_signatures", [], |r| r.get::<_, String>(0))).unwrap(), "bob");
}
