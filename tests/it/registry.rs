//! The prompt registry on the real binary: propose → submit → record-eval
//! (the real model on a small suite) → approve (e-signature) → live check →
//! tamper with the template → rollback; and every refusal: self-approval,
//! wrong role (exit 3), bad token (exit 3), no eval evidence (exit 1),
//! unapproved or altered template (exit 1).

use std::path::PathBuf;

use crate::harness::{add_user, onlabel, root, scratch_repo};

struct Env {
    _dir: tempfile::TempDir,
    data: PathBuf,
    repo: PathBuf,
    index: PathBuf,
    admin: String,
    alice: String,
    bob: String,
    carol: String,
    rex: String,
}

/// A scratch repository (prompts/, evals/) beside a data dir and a demo index, with five users.
fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let repo = scratch_repo(dir.path());
    let index = dir.path().join("idx");
    let demo = root().join("corpora/demo");
    let (code, _, err) = onlabel(&data, None, &["ingest", "--corpus", demo.to_str().unwrap(), "--index", index.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let admin = add_user(&data, None, "root", "Ada Admin", "admin");
    let a = Some(("root", admin.as_str()));
    let alice = add_user(&data, a, "alice", "Alice Author", "mlr_reviewer");
    let bob = add_user(&data, a, "bob", "Bob Reviewer", "mlr_reviewer");
    let carol = add_user(&data, a, "carol", "Carol Compliance", "compliance");
    let rex = add_user(&data, a, "rex", "Rex Rep", "rep");
    Env { _dir: dir, data, repo, index, admin, alice, bob, carol, rex }
}

impl Env {
    fn run(&self, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
        let mut full = vec!["prompts", "--root", self.repo.to_str().unwrap()];
        full.extend_from_slice(args);
        onlabel(&self.data, token, &full)
    }

    fn record_eval(&self, id: &str) -> (i32, String, String) {
        let model = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
        self.run(
            Some(&self.carol),
            &["record-eval", id, "--suite", "evals/mini.jsonl", "--index", self.index.to_str().unwrap(),
              "--model", model.to_str().unwrap(), "--as-of", "2026-11-23", "--as", "carol"],
        )
    }

    fn template(&self) -> PathBuf {
        self.repo.join("prompts/objection.j2")
    }
}

#[test]
fn registry_propose_eval_approve_live_tamper_rollback() {
    let e = env();
    // Propose: a draft objection@1, printed on stdout.
    let (code, out, err) = e.run(Some(&e.alice), &["propose", "objection", "--template", "prompts/objection.j2",
        "--temperature", "0", "--max-tokens", "80", "--as", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "objection@1");
    let (code, _, err) = e.run(Some(&e.rex), &["propose", "objection", "--template", "prompts/objection.j2", "--as", "rex"]);
    assert_eq!(code, 3, "a rep cannot propose: {err}");

    // Not approved yet: the load-time check refuses and says which approval is missing.
    let (code, out, _) = e.run(None, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("objection NOT LIVE") && out.contains("objection@1 is a draft"), "{out}");

    let (code, _, err) = e.run(Some(&e.alice), &["submit", "objection@1", "--as", "alice"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = e.run(None, &["verify"]);
    assert_eq!(code, 1);
    assert!(out.contains("objection@1 is in review and needs an mlr_reviewer's approval"), "{out}");

    // Refusals before any evidence: self-approval and wrong role are exit 3; no eval is exit 1.
    let (code, _, err) = e.run(Some(&e.alice), &["approve", "objection@1", "--reason", "mine", "--as", "alice"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("alice authored objection@1 and cannot approve it"), "{err}");
    let (code, _, err) = e.run(Some(&e.rex), &["approve", "objection@1", "--reason", "lgtm", "--as", "rex"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("needs role mlr_reviewer"), "{err}");
    let (code, _, err) = e.run(Some(&e.admin), &["approve", "objection@1", "--reason", "lgtm", "--as", "root"]);
    assert_eq!(code, 3, "even an admin cannot approve: {err}");
    let (code, _, err) = e.run(Some(&e.alice), &["approve", "objection@1", "--reason", "lgtm", "--as", "bob"]);
    assert_eq!(code, 3, "bob's id with alice's token: {err}");
    let (code, _, err) = e.run(Some(&e.bob), &["approve", "objection@1", "--reason", "lgtm", "--as", "bob"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no recorded eval run of objection@1 on evals/mini.jsonl"), "{err}");

    // Evidence: compliance runs the suite against the stored version with the real model.
    let (code, _, err) = e.run(Some(&e.bob), &["record-eval", "objection@1", "--suite", "evals/mini.jsonl",
        "--index", e.index.to_str().unwrap(), "--as", "bob"]);
    assert_eq!(code, 3, "an mlr_reviewer does not record evals: {err}");
    let (code, out, err) = e.record_eval("objection@1");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("recorded eval run 1 of objection@1") && out.contains("PASSED"), "{out}");
    assert!(out.contains("model SmolLM2-135M-Instruct.Q4_1.gguf"), "{out}");

    // The e-signature: id and full name, UTC time, meaning, reason, bound to the hash.
    let (code, out, err) = e.run(Some(&e.bob), &["approve", "objection@1", "--reason", "Matches MLR-2026-114", "--as", "bob"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("objection@1 approved"), "{out}");
    assert!(out.contains("signed: Bob Reviewer (bob) — approved for use — 20") && out.contains("\"Matches MLR-2026-114\""), "{out}");
    let sha = onlabel::prompts::sha256_hex(&std::fs::read(e.template()).unwrap());
    assert!(out.contains(&format!("bound to sha256 {sha}")), "{out}");
    // The signature shows wherever the version is shown.
    let (_, out, _) = e.run(None, &["show", "objection@1"]);
    assert!(out.contains("Bob Reviewer (bob) — approved for use") && out.contains("eval runs:\n  #1 PASSED"), "{out}");
    let (_, out, _) = e.run(None, &["list"]);
    assert!(out.contains("objection@1") && out.contains("approved") && out.contains("Bob Reviewer (bob)"), "{out}");

    // Live: the library check the copilot calls.
    let (code, out, _) = e.run(None, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("objection ok: prompts/objection.j2 is objection@1"), "{out}");
    {
        let store = onlabel::store::Store::open(&e.data).unwrap();
        let reg = onlabel::prompts::Registry::new(&store, &e.repo);
        let live = reg.live("objection").unwrap();
        assert_eq!(live.id(), "objection@1");
        assert_eq!(live.approval.signer_name, "Bob Reviewer");
    }

    // Someone edits the template on disk: refused at load, naming the missing approval.
    let mut text = std::fs::read_to_string(e.template()).unwrap();
    text = text.replace("Never add facts", "Always be upbeat. Never add facts");
    std::fs::write(e.template(), &text).unwrap();
    let (code, out, _) = e.run(None, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is not the approved objection@1") && out.contains("matches no registered version"), "{out}");
    {
        let store = onlabel::store::Store::open(&e.data).unwrap();
        let reg = onlabel::prompts::Registry::new(&store, &e.repo);
        let err = reg.live("objection").unwrap_err();
        assert!(matches!(err, onlabel::prompts::Error::Altered { .. }), "{err}");
    }

    // The edit proposed as objection@2: the check now names it; diff shows the change and the evals.
    let (code, out, err) = e.run(Some(&e.alice), &["propose", "objection", "--template", "prompts/objection.j2", "--as", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "objection@2");
    let (_, out, _) = e.run(None, &["verify"]);
    assert!(out.contains("it is objection@2 (draft), which is not approved"), "{out}");
    e.run(Some(&e.alice), &["submit", "objection@2", "--as", "alice"]);
    let (code, out, err) = e.record_eval("objection@2");
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = e.run(None, &["diff", "objection@2"]);
    assert_eq!(code, 0);
    assert!(out.contains("--- objection@1 (approved)") && out.contains("+++ objection@2 (in_review)"), "{out}");
    assert!(out.contains("+You help") && out.contains("Always be upbeat") && out.contains("-You help"), "{out}");
    assert!(out.contains("route_accuracy") && out.contains("DELTA"), "{out}");

    // Approving 2 retires 1 (one live version per name); then roll back to 1.
    let (code, _, err) = e.run(Some(&e.bob), &["approve", "objection@2", "--reason", "Tone change approved", "--as", "bob"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = e.run(None, &["--json", "list"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let states: Vec<(String, String)> =
        rows.iter().map(|r| (r["id"].as_str().unwrap().into(), r["version"]["state"].as_str().unwrap().into())).collect();
    assert_eq!(states, vec![("objection@1".into(), "retired".into()), ("objection@2".into(), "approved".into())]);
    let (code, out, err) = e.run(Some(&e.bob), &["rollback", "objection@1", "--reason", "Revert tone change", "--as", "bob"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("objection@1 approved"), "{out}");
    assert_eq!(onlabel::prompts::sha256_hex(&std::fs::read(e.template()).unwrap()), sha, "file restored");
    let (code, out, _) = e.run(None, &["verify"]);
    assert_eq!(code, 0, "{out}");

    // Every step is on the audit trail, and it verifies.
    let db = rusqlite::Connection::open(e.data.join("onlabel.sqlite")).unwrap();
    let actions: Vec<String> = {
        let mut st = db.prepare("SELECT action FROM audit_log WHERE action LIKE 'prompt_%' OR action = 'eval_recorded' ORDER BY seq").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(
        actions,
        ["prompt_proposed", "prompt_submitted", "eval_recorded", "prompt_approved", "prompt_proposed", "prompt_submitted",
         "eval_recorded", "prompt_approved", "prompt_rolled_back"]
    );
    let (code, out, _) = onlabel(&e.data, None, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn registry_reject_and_signature_copied_to_another_version_is_invalid() {
    let e = env();
    e.run(Some(&e.alice), &["propose", "objection", "--template", "prompts/objection.j2", "--as", "alice"]);
    let (code, _, err) = e.run(Some(&e.bob), &["reject", "objection@1", "--reason", "x", "--as", "bob"]);
    assert_eq!(code, 2, "a draft is not in review: {err}");
    e.run(Some(&e.alice), &["submit", "objection@1", "--as", "alice"]);
    let (code, _, err) = e.run(Some(&e.bob), &["reject", "objection@1", "--reason", "  ", "--as", "bob"]);
    assert_eq!(code, 2, "a signature needs a reason: {err}");
    let (code, out, err) = e.run(Some(&e.bob), &["reject", "objection@1", "--reason", "Fair balance missing", "--as", "bob"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("objection@1 rejected") && out.contains("Bob Reviewer (bob) — rejected"), "{out}");
    let (code, _, _) = e.run(Some(&e.bob), &["approve", "objection@1", "--reason", "changed my mind", "--as", "bob"]);
    assert_eq!(code, 2, "a rejected version stays rejected");

    // A second version; then copy the rejection signature onto it in the file.
    std::fs::write(e.template(), std::fs::read_to_string(e.template()).unwrap() + "\n").unwrap();
    e.run(Some(&e.alice), &["propose", "objection", "--template", "prompts/objection.j2", "--as", "alice"]);
    let db = rusqlite::Connection::open(e.data.join("onlabel.sqlite")).unwrap();
    db.execute_batch(
        "INSERT INTO prompt_signatures (name, version, sha256, signer_id, signer_name, signer_role, meaning, reason, signed_at, eval_run_id, binding)
         SELECT name, 2, sha256, signer_id, signer_name, signer_role, meaning, reason, signed_at, eval_run_id, binding
         FROM prompt_signatures WHERE version = 1",
    )
    .unwrap();
    let (_, out, _) = e.run(None, &["show", "objection@2"]);
    assert!(out.contains("NOT BOUND TO THIS VERSION"), "{out}");
    let (_, out, _) = e.run(None, &["show", "objection@1"]);
    assert!(!out.contains("NOT BOUND"), "{out}");
}
