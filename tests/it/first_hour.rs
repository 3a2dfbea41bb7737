//! Issue 10: a new user's first hour, and bad input that never costs data.
//! Every test drives the real binary, each with its own "home" (per-user
//! data and config directories) so that defaults can be observed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::{bin, entry, root};

/// A user: their own per-user data/config directories and a working folder.
struct User {
    _tmp: tempfile::TempDir,
    home: PathBuf,
}

impl User {
    fn new() -> User {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().to_owned();
        User { _tmp: tmp, home }
    }

    /// The per-user data directory the directories crate gives on Linux.
    fn default_store(&self) -> PathBuf {
        self.home.join("xdg-data/onlabel/onlabel.sqlite")
    }

    fn cmd(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(cwd)
            .args(args)
            .env("XDG_DATA_HOME", self.home.join("xdg-data"))
            .env("XDG_CONFIG_HOME", self.home.join("xdg-config"))
            .env_remove("ONLABEL_DATA")
            .env_remove("ONLABEL_CONFIG")
            .env_remove("ONLABEL_INDEX")
            .env_remove("ONLABEL_TOKEN")
            .stdin(Stdio::null());
        c
    }

    fn run_in(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut c = self.cmd(cwd, args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_in(&self.home, args, &[])
    }

    /// Ingests the demo corpus into HOME/demo-index; returns the index path.
    fn demo_index(&self) -> String {
        let idx = self.home.join("demo-index");
        let (code, _, err) = self.run(&["ingest", "--corpus", root().join("corpora/demo").to_str().unwrap(), "--index", idx.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        idx.to_str().unwrap().to_string()
    }
}

const AE: &str = "My patient got a bad rash two weeks after starting it.";

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The `{"error": {"code", "message"}}` object of a failed `--json` command.
fn error_code(out: &str) -> String {
    let v = json(out);
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{out}");
    v["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code: {out}")).to_string()
}

#[test]
fn issue10_1_store_is_per_user_not_per_folder() {
    let u = User::new();
    let idx = u.demo_index();
    let (a, b) = (u.home.join("folder-a"), u.home.join("folder-b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();

    // An adverse event asked from one folder...
    let (code, out, err) = u.run_in(&a, &["ask", "--extractive", "--index", &idx, "--product", "zentravia", AE], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[pharmacovigilance]"), "{out}");
    let store = u.default_store();
    assert!(out.contains(&format!("is stored in {}", store.display())), "the escalation says where its case is: {out}");
    assert!(store.exists());
    assert!(!a.join("data").exists(), "nothing is written under the current folder");
    // ... is in the queue seen from another folder (by a signed-in medical, compliance or admin user).
    let (code, root, err) = u.run(&["users", "add", "--id", "root", "--name", "Ada Admin", "--role", "admin"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = u.run_in(&b, &["--json", "cases", "list", "--as", "root"], &[("ONLABEL_TOKEN", root.trim())]);
    assert_eq!(code, 0, "{err}");
    let list = json(&out);
    assert_eq!(list.as_array().unwrap().len(), 1, "{out}");
    assert!(list[0]["id"].as_str().unwrap().starts_with("PV-"));

    // --json answers carry the store file too.
    let (_, out, _) = u.run_in(&b, &["ask", "--extractive", "--json", "--index", &idx, "--product", "zentravia", AE], &[]);
    let ans = json(&out);
    assert_eq!(ans["case_store"], store.display().to_string(), "{out}");

    // `info` says where everything is.
    let (code, out, err) = u.run(&["info"]);
    assert_eq!(code, 0, "{err}");
    for k in ["store:", "index:", "model:", "embedder:", "rules:", "config:"] {
        assert!(out.contains(k), "{k} missing: {out}");
    }
    assert!(out.contains(&store.display().to_string()), "{out}");
    let (_, out, _) = u.run(&["--json", "info"]);
    let info = json(&out);
    let store_item = info["settings"].as_array().unwrap().iter().find(|i| i["name"] == "store").unwrap().clone();
    assert_eq!(store_item["path"], store.display().to_string());
    assert_eq!(store_item["source"], "default");
}

#[test]
fn issue10_1_config_file_then_env_then_flag() {
    let u = User::new();
    let idx = u.demo_index();
    let (file_dir, env_dir, flag_dir) = (u.home.join("from-file"), u.home.join("from-env"), u.home.join("from-flag"));
    let cfg = u.home.join("onlabel.toml");
    // Relative paths in the file are relative to the file.
    std::fs::write(&cfg, format!("data = \"from-file\"\nindex = {:?}\n", idx)).unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let store_of = |out: &str| {
        let v = json(out);
        v["settings"].as_array().unwrap().iter().find(|i| i["name"] == "store").map(|i| (i["path"].clone(), i["source"].clone())).unwrap()
    };

    let (code, out, err) = u.run(&["--config", cfg_s, "--json", "info"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(store_of(&out), (file_dir.join("onlabel.sqlite").display().to_string().into(), "config_file".into()));
    let env = [("ONLABEL_DATA", env_dir.to_str().unwrap())];
    let (_, out, _) = u.run_in(&u.home, &["--config", cfg_s, "--json", "info"], &env);
    assert_eq!(store_of(&out), (env_dir.join("onlabel.sqlite").display().to_string().into(), "env".into()));
    let (_, out, _) = u.run_in(&u.home, &["--config", cfg_s, "--data", flag_dir.to_str().unwrap(), "--json", "info"], &env);
    assert_eq!(store_of(&out), (flag_dir.join("onlabel.sqlite").display().to_string().into(), "flag".into()));

    // The config file's index is the default --index, and its store takes the case.
    let (code, out, err) = u.run(&["--config", cfg_s, "ask", "--extractive", "--product", "zentravia", AE]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("is stored in {}", std::fs::canonicalize(&file_dir).unwrap().join("onlabel.sqlite").display())), "{out}");
    // The default config file (per-user config dir) is read too.
    let default_cfg = u.home.join("xdg-config/onlabel/config.toml");
    std::fs::create_dir_all(default_cfg.parent().unwrap()).unwrap();
    std::fs::copy(&cfg, &default_cfg).unwrap();
    std::fs::write(&default_cfg, format!("index = {:?}\n", idx)).unwrap();
    let (code, out, err) = u.run(&["ask", "--extractive", "--product", "zentravia", "--json", "What are the LFT monitoring rules?"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["route"], "answer");

    // A typo in the file is an error naming the field and line; nothing runs.
    std::fs::write(&cfg, "data = \"x\"\nindx = \"y\"\n").unwrap();
    let (code, out, err) = u.run(&["--config", cfg_s, "--json", "cases", "list", "--as", "root"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(error_code(&out), "config_invalid");
    assert!(err.contains("indx") && err.contains("line 2"), "{err}");
    // No index anywhere: the message says where one can come from.
    std::fs::remove_file(&default_cfg).unwrap();
    let (code, _, err) = u.run(&["ask", "--extractive", "hello"]);
    assert_eq!(code, 2);
    assert!(err.contains("--index") && err.contains("ONLABEL_INDEX") && err.contains("config"), "{err}");
}

#[test]
fn issue10_2_empty_or_failing_manifest_never_replaces_a_good_index() {
    let u = User::new();
    let idx = u.demo_index();
    let answers = || {
        let (_, out, _) = u.run(&["ask", "--extractive", "--json", "--index", &idx, "--product", "zentravia", "What are the LFT monitoring rules?"]);
        json(&out)["route"] == "answer"
    };
    assert!(answers());

    let empty = crate::harness::corpus(&u.home.join("empty"), "# no documents yet\n", &[]);
    let (code, out, err) = u.run(&["ingest", "--corpus", empty.to_str().unwrap(), "--index", &idx]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("nothing to index") && err.contains("lists no document") && err.contains("--allow-empty"), "{err}");
    assert!(answers(), "the good index is still there");

    let failing = crate::harness::corpus(
        &u.home.join("failing"),
        &format!("{}{}", entry("gone-1", "missing-1.md", "2030-01-01", "approved"), entry("gone-2", "missing-2.md", "2030-01-01", "approved")),
        &[],
    );
    let (code, out, err) = u.run(&["--json", "ingest", "--keep-going", "--corpus", failing.to_str().unwrap(), "--index", &idx]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(error_code(&out), "corpus_empty");
    assert!(err.contains("all 2 documents failed to load"), "{err}");
    assert!(answers(), "the good index is still there");

    // Asked for explicitly, an empty index is built.
    let other = u.home.join("empty-index");
    let (code, _, err) = u.run(&["ingest", "--allow-empty", "--corpus", empty.to_str().unwrap(), "--index", other.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");

    // Documents that can never be cited are named at ingest.
    let (code, out, err) = u.run(&["--json", "ingest", "--corpus", root().join("corpora/demo").to_str().unwrap(), "--index", &idx]);
    assert_eq!(code, 0, "{err}");
    let w = json(&out)["warnings"].to_string();
    assert!(w.contains("zentravia-pi-2024") && w.contains("withdrawn"), "{w}");
    let body = "# X\n\n## 1 INDICATIONS AND USAGE\n\nTestra treats testing.\n";
    let old = crate::harness::corpus(&u.home.join("old"), &entry("testra-old", "old.md", "2021-01-01", "approved"), &[("old.md", body.as_bytes())]);
    let (code, _, err) = u.run(&["ingest", "--corpus", old.to_str().unwrap(), "--index", u.home.join("old-index").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: document testra-old") && err.contains("expired on 2021-01-01"), "{err}");
}

#[test]
fn issue10_3_another_applications_sqlite_is_never_written() {
    let u = User::new();
    let idx = u.demo_index();
    let data = u.home.join("shared-folder");
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join("onlabel.sqlite");
    {
        let c = rusqlite::Connection::open(&file).unwrap();
        c.execute_batch("CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('Dr. Shah');").unwrap();
    }
    let before = std::fs::read(&file).unwrap();
    let d = data.to_str().unwrap();
    for args in [
        vec!["--data", d, "ask", "--extractive", "--index", &idx, "--product", "zentravia", AE],
        vec!["--data", d, "cases", "list", "--as", "root"],
        vec!["--data", d, "users", "add", "--id", "root", "--name", "Ada Admin", "--role", "admin"],
        vec!["--data", d, "prompts", "list"],
    ] {
        let (code, out, err) = u.run(&args);
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(err.contains("another application") && err.contains("left untouched"), "{args:?}: {err}");
        let mut j = args.clone();
        j.insert(2, "--json");
        let (_, out, _) = u.run(&j);
        assert_eq!(error_code(&out), "store_not_onlabel", "{args:?}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), before, "not a byte written");
    assert!(!data.join("onlabel.sqlite-wal").exists() && !data.join("onlabel.sqlite-journal").exists());

    // OnLabel's own store carries its application id.
    let (code, _, err) = u.run(&["ask", "--extractive", "--index", &idx, "--product", "zentravia", AE]);
    assert_eq!(code, 0, "{err}");
    let c = rusqlite::Connection::open(u.default_store()).unwrap();
    let id: i32 = c.pragma_query_value(None, "application_id", |r| r.get(0)).unwrap();
    assert_eq!(id, onlabel::store::APPLICATION_ID);
}

#[test]
fn issue10_4_errors_are_json_with_stable_codes_and_design_exit_codes() {
    let u = User::new();
    let idx = u.demo_index();
    let h = u.home.to_str().unwrap();
    let none = u.home.join("no-such-index");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["ingest", "--corpus", h, "--index", none.to_str().unwrap()], 2, "manifest_invalid"),
        (vec!["ask", "--index", none.to_str().unwrap(), "hello"], 2, "index_missing"),
        (vec!["email", "--index", none.to_str().unwrap(), "--product", "zentravia", "--hcp", "Dr. Shah", "dosing"], 2, "index_missing"),
        (vec!["summarize", "--index", &idx, "--product", "zentravia", "no-such-notes.txt"], 2, "bad_file"),
        (vec!["eval", "--index", &idx, "--suite", "no-such-suite.jsonl"], 2, "suite_invalid"),
        (vec!["products", "--index", none.to_str().unwrap()], 2, "index_missing"),
        (vec!["ask", "--index", &idx, "--as-of", "2026-13-01", "q"], 2, "usage"),
        (vec!["no-such-command"], 2, "usage"),
        (vec!["users", "add", "--id", "x", "--name", "X", "--role", "rep", "--as", "nobody"], 3, "no_credential"),
    ];
    for (args, exit, code) in &cases {
        let mut a = vec!["--json"];
        a.extend(args);
        let (got, out, err) = u.run(&a);
        assert_eq!(got, *exit, "{args:?}: {err}");
        assert_eq!(error_code(&out), *code, "{args:?}: {out}");
        assert!(err.starts_with("error: ") || err.contains("\nerror: ") || err.contains("error:"), "{args:?}: {err}");
        assert_eq!(err.matches("(os error").count().min(1), err.matches("(os error").count(), "an OS error at most once: {err}");
    }
    // Permission denied is 3, with a JSON error.
    let (code, token, err) = u.run(&["users", "add", "--id", "root", "--name", "Ada Admin", "--role", "admin"]);
    assert_eq!(code, 0, "{err}");
    // An unknown case is 2 with a stable code (reading cases needs a signed-in user).
    let (code, out, err) = u.run_in(&u.home, &["--json", "cases", "show", "PV-2026-999999", "--as", "root"], &[("ONLABEL_TOKEN", token.trim())]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(error_code(&out), "case_not_found");
    let (code, out, _) = u.run_in(&u.home, &["--json", "users", "add", "--id", "x", "--name", "X", "--role", "rep", "--as", "root"], &[("ONLABEL_TOKEN", "olt_wrong")]);
    assert_eq!(code, 3);
    assert!(!error_code(&out).is_empty());

    // The OS error of a missing notes file is printed once.
    let (_, _, err) = u.run(&["summarize", "--index", &idx, "--product", "zentravia", "no-such-notes.txt"]);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // A damaged index names its directory and says to re-run ingest.
    let damaged = u.home.join("damaged-index");
    copy_dir(Path::new(&idx), &damaged);
    std::fs::write(damaged.join("meta.json"), b"{ this is not tantivy's meta").unwrap();
    let (code, out, err) = u.run(&["--json", "ask", "--extractive", "--index", damaged.to_str().unwrap(), "What are the LFT monitoring rules?"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(error_code(&out), "index_damaged");
    assert!(err.contains(damaged.to_str().unwrap()) && err.contains("re-run `onlabel ingest"), "{err}");
}

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

#[test]
fn issue10_5_eval_suites_are_strict_and_thresholds_gate() {
    let u = User::new();
    let idx = u.demo_index();
    let suite = u.home.join("suite.jsonl");
    let good = r#"{"id": "hep-1", "task": "ask", "product": "zentravia", "question": "What are the LFT monitoring rules?", "expect": {"route": "answer", "sections": ["zentravia-pi §5.1"]}}"#;
    for (bad, what) in [
        (r#"{"id": "x", "task": "ask", "product": "zentravia", "question": "Liver?", "expect": {"route": "answer", "sectons": ["zentravia-pi §5.1"]}}"#, "sectons"),
        (r#"{"id": "x", "task": "summarise", "product": "zentravia", "question": "Liver?", "expect": {}}"#, "unknown task"),
        (r#"{"id": "x", "task": "ask", "product": "zentravia", "question": "Liver?", "expect": {"route": "answered"}}"#, "unknown route"),
    ] {
        std::fs::write(&suite, format!("{good}\n{bad}\n")).unwrap();
        let (code, out, err) = u.run(&["--json", "eval", "--extractive", "--index", &idx, "--suite", suite.to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        assert_eq!(error_code(&out), "suite_invalid");
        assert!(err.contains("suite.jsonl:2:") && err.contains(what), "{err}");
    }
    std::fs::write(&suite, "// to do\n\n").unwrap();
    let (code, _, err) = u.run(&["eval", "--extractive", "--index", &idx, "--suite", suite.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no cases"), "{err}");

    // Thresholds: exit 1 when one is not met, 0 when all are.
    let demo = root().join("evals/demo.jsonl");
    let base = ["eval", "--extractive", "--index", &idx, "--suite", demo.to_str().unwrap(), "--as-of", "2026-11-23"];
    let (code, out, err) = u.run(&[&base[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let m = json(&out);
    let route = m["route_accuracy"].as_f64().unwrap();
    assert!(route < 1.0, "the demo suite has failures to read: {out}");
    let high = format!("{:.3}", (route + 0.001).min(1.0));
    let (code, out, _) = u.run(&[&base[..], &["--min-route-accuracy", &high, "--min-citation-recall", "0.1"]].concat());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("threshold not met: route_accuracy") && !out.contains("threshold not met: citation_recall"), "{out}");
    let (code, out, _) = u.run(&[&base[..], &["--json", "--min-route-accuracy", "0.1", "--min-ae-recall", "0.1"]].concat());
    assert_eq!(code, 0, "{out}");
    assert_eq!(json(&out)["passed"], true);
    let (code, _, err) = u.run(&[&base[..], &["--min-route-accuracy", "90"]].concat());
    assert_eq!(code, 2, "a share is between 0 and 1: {err}");

    // Failure reasons are sentences; a wrong route reads "route X, expected Y" (scripts/eval_summary.py).
    let re = regex::Regex::new(r"^route (\w+), expected (answer|medical|pharmacovigilance|refused)").unwrap();
    let failures = m["failures"].as_array().unwrap();
    assert!(!failures.is_empty());
    for f in failures {
        let why = f["why"].as_str().unwrap();
        assert!(!why.contains("Some(") && !why.contains("One(") && !why.contains("[\""), "{why}");
        if why.starts_with("route") {
            assert!(re.is_match(why), "{why}");
        }
    }
}

#[test]
fn issue10_6_products_lists_documents_mlr_numbers_and_expiry() {
    let u = User::new();
    let idx = u.demo_index();
    let (code, out, err) = u.run(&["products", "--index", &idx, "--as-of", "2026-11-23"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("zentravia (4 documents, 3 current on 2026-11-23)"), "{out}");
    for s in ["zentravia-pi ", "US-ZEN-0001", "2028-06-30", "zentravia-pi-2024", "withdrawn", "zentravia-medical-letter", "medical"] {
        assert!(out.contains(s), "{s} missing: {out}");
    }
    let (code, out, err) = u.run(&["--json", "products", "--index", &idx, "--as-of", "2026-11-23"]);
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    let docs = v["products"][0]["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 4);
    let pi = docs.iter().find(|d| d["id"] == "zentravia-pi").unwrap();
    assert_eq!((pi["mlr_number"].as_str(), pi["expires_on"].as_str(), pi["standing"].as_str()), (Some("US-ZEN-0001"), Some("2028-06-30"), Some("current")));
    let (code, out, _) = u.run(&["--json", "products", "--index", &idx, "--product", "nonexistol"]);
    assert_eq!(code, 2);
    assert_eq!(error_code(&out), "bad_input");
}

#[test]
fn issue10_7_email_and_summary_refuse_empty_or_unknown_input() {
    let u = User::new();
    let idx = u.demo_index();
    let notes = root().join("examples/visit-notes.txt");
    let n = notes.to_str().unwrap();
    for (args, code, says) in [
        (vec!["email", "--index", &idx, "--product", "zentravix", "--hcp", "Dr. Shah", "dosing"], "unknown_product", "no product \"zentravix\""),
        (vec!["email", "--index", &idx, "--product", "zentravia", "--hcp", " ", "dosing"], "bad_input", "--hcp"),
        (vec!["email", "--index", &idx, "--product", "zentravia", "--hcp", "Dr. Shah", ""], "bad_input", "TOPICS"),
        (vec!["summarize", "--index", &idx, "--product", "zentravix", n], "unknown_product", "it holds: zentravia"),
    ] {
        let (got, out, err) = u.run(&[&["--json", "--data", u.home.join("d").to_str().unwrap()][..], &args[..]].concat());
        assert_eq!(got, 2, "{args:?}: {out}");
        assert_eq!(error_code(&out), code);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // The README's sample notes exist and summarize without an escalation.
    let (code, out, err) = u.run(&["--json", "summarize", "--extractive", "--index", &idx, "--product", "zentravia", n]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["route"], "answer", "{out}");
}

#[test]
fn issue10_10_demo_script_is_idempotent_and_quick_the_second_time() {
    let u = User::new();
    // A copy of the repository pieces demo.sh uses, with the test's binary and the fetched models.
    let clone = u.home.join("clone");
    for d in ["corpora", "scripts", "prompts"] {
        copy_dir(&root().join(d), &clone.join(d));
    }
    std::fs::create_dir_all(clone.join("models")).unwrap();
    for f in ["fetch.sh", "SHA256SUMS"] {
        std::fs::copy(root().join("models").join(f), clone.join("models").join(f)).unwrap();
    }
    let sums = std::fs::read_to_string(root().join("models/SHA256SUMS")).unwrap();
    for line in sums.lines() {
        let Some(name) = line.split_whitespace().nth(1) else { continue };
        let src = root().join("models").join(name);
        assert!(src.exists(), "the model file {name} is missing: run `bash models/fetch.sh` (scripts/test.sh does it first)");
        let dst = clone.join("models").join(name);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&src, &dst).unwrap();
    }
    std::fs::create_dir_all(clone.join("target/release")).unwrap();
    std::os::unix::fs::symlink(bin(), clone.join("target/release/onlabel")).unwrap();
    // The test's binary is current; demo.sh's own `cargo build` is tested by cargo itself.
    let stub = u.home.join("stub-bin");
    std::fs::create_dir_all(&stub).unwrap();
    std::fs::write(stub.join("cargo"), "#!/bin/sh\necho \"cargo $*: (stub) up to date\"\n").unwrap();
    std::process::Command::new("chmod").arg("+x").arg(stub.join("cargo")).status().unwrap();
    let path = format!("{}:{}", stub.display(), std::env::var("PATH").unwrap_or_default());
    let demo = |label: &str| {
        let t = std::time::Instant::now();
        let out = Command::new("bash")
            .arg("scripts/demo.sh")
            .current_dir(&clone)
            // The main command ends in a server; the check mode starts it,
            // asks one question over HTTP and stops it.
            .env("ONLABEL_DEMO_CHECK", "1")
            .env("PATH", &path)
            .env_remove("CARGO_TARGET_DIR")
            .env("XDG_DATA_HOME", u.home.join("xdg-data"))
            .env("XDG_CONFIG_HOME", u.home.join("xdg-config"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (o, e) = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
        assert!(out.status.success(), "{label}: {o}{e}");
        (o, e, t.elapsed())
    };
    let (first, _, _) = demo("first run");
    assert!(first.contains("indexed 4 documents"), "{first}");
    assert!(first.contains("[1] zentravia-"), "answers with citations: {first}");
    assert!(first.contains("serving on http://127.0.0.1:"), "the server started: {first}");
    let rep_token = |out: &str| out.lines().find(|l| l.trim_start().starts_with("rep ")).map(str::to_string);
    assert!(rep_token(&first).is_some_and(|l| l.contains("olt_")), "a token per role is printed: {first}");
    // The tokens are kept outside the repository (the registry's root), mode 600 (issue 17 row 4).
    let tokens = u.home.join("xdg-data/onlabel-demo/demo-tokens.txt");
    assert!(!clone.join("data/demo/demo-tokens.txt").exists(), "no tokens file under the repository");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777, 0o600, "{}", tokens.display());
    }
    let (second, err, took) = demo("second run");
    assert!(!second.contains("indexed 4 documents") && second.contains("up to date"), "no re-ingest: {second}");
    assert!(!second.contains("downloading") && !err.contains("downloading"), "no re-download: {second}{err}");
    assert!(second.contains("[1] zentravia-"), "{second}");
    assert_eq!(rep_token(&second), rep_token(&first), "the demo users and their tokens are kept");
    assert!(took < std::time::Duration::from_secs(60), "second run took {took:?}");
    // A changed corpus is re-indexed.
    let manifest = clone.join("corpora/demo/manifest.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&manifest, format!("{text}\n")).unwrap();
    let (third, _, _) = demo("after a change");
    assert!(third.contains("indexed 4 documents"), "{third}");
}

/// Issue 10, point 6b. Before: without `--product`, a question was answered
/// from whichever label ranked first across the whole index (a HUMIRA
/// passage for a rep detailing LIPITOR). Now the product the question names
/// (brand or generic) is used; naming none, each label that answers it is
/// quoted separately, under its product; the guard still screens first; an
/// index of one product just uses it.
#[test]
fn issue10_6b_no_product_is_not_answered_from_the_top_ranked_label() {
    let u = User::new();
    let idx = u.home.join("multi-index");
    let (code, _, err) = u.run(&[
        "ingest", "--corpus", root().join("corpora/demo").to_str().unwrap(), "--corpus", crate::harness::shared_data().join("pi").to_str().unwrap(),
        "--index", idx.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let idx = idx.to_str().unwrap();
    let ask = |q: &str| {
        let (code, out, err) = u.run(&["ask", "--extractive", "--json", "--index", idx, q]);
        assert_eq!(code, 0, "{q}: {err}");
        json(&out)
    };
    let doc_of = |a: &serde_json::Value, n: u64| a["citations"].as_array().unwrap().iter().find(|c| c["n"] == n).unwrap()["doc_id"].as_str().unwrap().to_string();

    // Named by brand, or by generic name: that product's label only.
    for (q, product) in [("Can humira be given with live vaccines?", "humira"), ("What is the recommended dose of adalimumab for Crohn's disease?", "humira"), ("Is atorvastatin contraindicated in pregnancy?", "lipitor")] {
        let a = ask(q);
        assert_eq!(a["route"], "answer", "{q}: {a}");
        assert_eq!(a["product"], product, "{q}: {a}");
        assert!(a["parts"].is_null(), "{a}");
        assert!(a["note"].as_str().unwrap().contains(&format!("names {product}")), "{a}");
        for c in a["citations"].as_array().unwrap() {
            assert!(c["doc_id"].as_str().unwrap().starts_with(product), "{q}: cites another product's label: {a}");
        }
    }

    // Named by none: each label that answers, as its own part and block.
    let a = ask("What are the contraindications?");
    assert_eq!(a["route"], "answer", "{a}");
    assert!(a["product"].is_null(), "{a}");
    let parts = a["parts"].as_array().unwrap_or_else(|| panic!("no parts: {a}"));
    assert!(parts.len() >= 2 && parts.len() <= onlabel::copilot::MAX_PARTS, "{a}");
    let blocks: Vec<&str> = parts.iter().map(|p| p["answer"].as_str().unwrap()).collect();
    assert_eq!(a["answer"].as_str().unwrap(), blocks.join("\n\n"), "the answer is the parts' blocks, nothing uncited added");
    let mut products = Vec::new();
    for p in parts {
        let product = p["product"].as_str().unwrap();
        products.push(product.to_string());
        for n in p["citations"].as_array().unwrap() {
            assert!(doc_of(&a, n.as_u64().unwrap()).starts_with(product), "a part cites only its own product's label: {a}");
        }
    }
    products.dedup();
    assert_eq!(products.len(), parts.len(), "one part per product: {a}");
    assert!(a["note"].as_str().unwrap().contains("names no product"), "{a}");
    // Every sentence carries a marker that resolves (the eval's own check).
    let answer: onlabel::copilot::Answer = serde_json::from_value(a.clone()).unwrap();
    let (ok, total) = onlabel::eval::supported_sentences(&answer);
    assert!(total > 0 && ok == total, "{ok}/{total} sentences supported: {a}");
    // On a terminal-less text run, each block is under its product's heading.
    let (_, out, _) = u.run(&["ask", "--extractive", "--index", idx, "What are the contraindications?"]);
    for p in &products {
        assert!(out.contains(&format!("\n{}:\n", p.to_uppercase())), "{p} heading missing: {out}");
    }
    assert!(out.starts_with("note: "), "{out}");

    // The guard still screens first: an adverse event without a product opens a PV case.
    let a = ask(AE);
    assert_eq!(a["route"], "pharmacovigilance", "{a}");
    assert!(a["case_id"].as_str().unwrap().starts_with("PV-"), "{a}");
    // Nothing answers: a Medical Information request, as with a product.
    let a = ask("Who won the football match on Sunday?");
    assert_eq!(a["route"], "medical", "{a}");

    // --product is unchanged: no note, no parts.
    let (_, out, _) = u.run(&["ask", "--extractive", "--json", "--index", idx, "--product", "lipitor", "What are the contraindications?"]);
    let a = json(&out);
    assert_eq!(a["product"], "lipitor");
    assert!(a["note"].is_null() && a["parts"].is_null(), "{a}");

    // An index of one product: that product, with its label's off-label checks.
    let demo = u.demo_index();
    let (_, out, _) = u.run(&["ask", "--extractive", "--json", "--index", &demo, "What are the LFT monitoring rules?"]);
    let a = json(&out);
    assert_eq!((a["route"].as_str(), a["product"].as_str()), (Some("answer"), Some("zentravia")), "{a}");
    assert!(a["note"].is_null() && a["parts"].is_null(), "{a}");
}

/// Issue 10, point 8. Before: on a CPU too busy for the model to write a
/// sentence within its 4 s budget (every question of the speed bench on the
/// shared machine), each question still ran the model to the end of the
/// budget and then answered extractively — ~4.1 s for nothing. Now the
/// model's speed on the last question predicts whether it can write the
/// shortest useful answer in time; if not, it is not run and the (same)
/// extractive answer comes at once. The real model; no timing asserted:
/// a 1 ms budget makes the prediction certain.
#[test]
fn issue10_8_the_model_is_not_waited_for_when_it_cannot_answer_in_time() {
    use onlabel::copilot::grounded::Cut;
    use onlabel::prompts::PromptFile;
    use onlabel::copilot::{Ask, Copilot, Extractive, Grounded, Mode};
    let tmp = tempfile::tempdir().unwrap();
    let index = crate::harness::build_index(&[root().join("corpora/demo")], &tmp.path().join("idx"));
    let model = std::sync::Arc::new(onlabel::llm::LocalModel::load(&crate::llm::model_path()).expect("run `bash models/fetch.sh` first"));
    let mut g = Grounded::new(model, PromptFile::read(&root().join("prompts/objection.j2")).unwrap()).unwrap();
    g.opts.time_budget = std::time::Duration::from_millis(1);
    let c = Copilot::new(index).with_model(g);
    let ask = Ask { question: "How often should liver tests be done?".into(), product: Some("zentravia".into()), role: "rep".into(), as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap() };
    // The first question runs the model (nothing is known of its speed yet) ...
    let first = c.ask(&ask).unwrap();
    assert!(first.timings_ms.first_token.is_some(), "the model ran: {first:?}");
    assert_eq!(first.mode, Mode::Composed, "1 ms is no time to write a sentence: the composed answer stands");
    // ... the next is predicted too slow: not run, the same answer.
    let second = c.ask(&ask).unwrap();
    assert!(second.timings_ms.first_token.is_none(), "the model was not run: {second:?}");
    assert_eq!((second.mode, &second.answer, &second.citations), (Mode::Composed, &first.answer, &first.citations));
    assert!(second.timings_ms.first_sentence.is_some());
    // The generator says why.
    let g = c.grounded().unwrap();
    let search = c.index().search(&ask.question, &onlabel::index::Filter::for_role("rep", Some("zentravia"), ask.as_of), 20).unwrap();
    let o = g.answer(&ask.question, &search, &search.hits, &Extractive::default(), &mut |_| true).unwrap();
    assert!(matches!(o.cut, Some(Cut::TooSlow { .. })) && o.generation.is_none(), "{:?}", o.cut);
}

/// Issue 16: a quote-only question (`"extractive": true` over HTTP, `ask
/// --extractive`) never runs the model — also when no product is named and
/// exactly one product's label answers, where the copilot used to ask again
/// with `generate` forced on. The real model is attached and its calls are
/// counted; the same question with generation allowed does call it, so the
/// count can fail.
#[test]
fn issue16_a_quote_only_question_without_a_product_never_calls_the_model() {
    use onlabel::copilot::{Ask, Copilot, Grounded, Mode, Requester};
    use onlabel::prompts::PromptFile;
    let tmp = tempfile::tempdir().unwrap();
    // A second product whose label says nothing of liver tests.
    let other = crate::harness::corpus(
        &tmp.path().join("other"),
        &crate::harness::entry("testra-pi", "testra.md", "2030-12-31", "approved"),
        &[("testra.md", b"# TESTRA\n\n## 16 HOW SUPPLIED/STORAGE AND HANDLING\n\nStore TESTRA tablets at room temperature in the original bottle.\n")],
    );
    let index = crate::harness::build_index(&[root().join("corpora/demo"), other], &tmp.path().join("idx"));
    let model = std::sync::Arc::new(onlabel::llm::LocalModel::load(&crate::llm::model_path()).expect("run `bash models/fetch.sh` first"));
    let g = Grounded::new(model, PromptFile::read(&root().join("prompts/objection.j2")).unwrap()).unwrap();
    let c = Copilot::new(index).with_guard(std::sync::Arc::new(onlabel::guard::Guard::builtin().unwrap()), chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()).unwrap().with_model(g);
    assert_eq!(c.products(), ["testra", "zentravia"]);
    let ask = Ask { question: "How often should liver tests be done?".into(), product: None, role: "rep".into(), as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap() };
    let req = |generate: bool| onlabel::copilot::Request {
        task: onlabel::copilot::Task::Ask { question: ask.question.clone() },
        product: None,
        role: "rep".into(),
        as_of: ask.as_of,
        requester: Requester::default(),
        generate,
    };
    let a = c.run(&req(false), None, &mut |_| {}).unwrap().into_answer().unwrap();
    assert_eq!(a.route, onlabel::copilot::Route::Answer, "{a:?}");
    assert!(a.note.as_deref().unwrap_or("").contains("only the zentravia label answers"), "{a:?}");
    assert_eq!((a.mode, a.generated_tokens), (Mode::Composed, None), "{a:?}");
    assert_eq!(c.grounded().unwrap().calls(), 0, "quote only: the model was never asked");
    // Allowed to generate, the same question does reach the model.
    let _ = c.run(&req(true), None, &mut |_| {}).unwrap();
    assert_eq!(c.grounded().unwrap().calls(), 1);
}

/// Issue 16, over HTTP: `POST /api/v1/ask` with `"extractive": true` and no
/// product, on an index of two products where only one label answers, never
/// runs the attached model — the answer carries no `generated_tokens` (the
/// work the model did, reported whether or not its sentences survived) —
/// while the same question with `"extractive": false` does run it. Driven
/// in-process through the real router (`router(state).oneshot`).
#[test]
fn issue16_an_http_quote_only_ask_without_a_product_never_runs_the_model() {
    use onlabel::copilot::{Copilot, Grounded};
    use onlabel::prompts::PromptFile;
    use onlabel::server::{router, AppState, Config, Limits};
    use onlabel::users::{Role, Users};
    let tmp = tempfile::tempdir().unwrap();
    let other = crate::harness::corpus(
        &tmp.path().join("other"),
        &crate::harness::entry("testra-pi", "testra.md", "2030-12-31", "approved"),
        &[("testra.md", b"# TESTRA\n\n## 16 HOW SUPPLIED/STORAGE AND HANDLING\n\nStore TESTRA tablets at room temperature in the original bottle.\n")],
    );
    let idx = tmp.path().join("idx");
    let index = crate::harness::build_index(&[root().join("corpora/demo"), other], &idx);
    let model = std::sync::Arc::new(onlabel::llm::LocalModel::load(&crate::llm::model_path()).expect("run `bash models/fetch.sh` first"));
    let g = Grounded::new(model, PromptFile::read(&root().join("prompts/objection.j2")).unwrap()).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let copilot = Copilot::new(index)
        .with_guard(std::sync::Arc::new(onlabel::guard::Guard::builtin().unwrap()), chrono::Utc::now().date_naive())
        .unwrap()
        .with_cases(onlabel::cases::CaseStore::open(&data).unwrap())
        .with_model(g);
    let products = serde_json::json!({"products": copilot.products().into_iter().map(|p| serde_json::json!({"name": p})).collect::<Vec<_>>()});
    let store = onlabel::store::Store::open(&data).unwrap();
    let users = Users::new(&store);
    let (admin, _) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
    let (_, token) = users.add("rex", "Rex Rep", Role::Rep, Some(&admin)).unwrap();
    drop(store);
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data: data.clone(),
        root: root(),
        index: idx.clone(),
        thresholds: root().join("evals/thresholds.toml"),
        products,
        limits: Limits::default(),
        eval: Box::new(|_| Err("no evals in this test".to_string())),
        reload_prompt: None,
    };
    let app = router(std::sync::Arc::new(AppState::new(copilot, config).unwrap()));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ask = |extractive: bool| {
        let body = serde_json::json!({"question": "How often should liver tests be done?", "extractive": extractive});
        let req = crate::router::request(axum::http::Method::POST, "/api/v1/ask", Some(&token.0), Some(&body));
        rt.block_on(crate::router::send(&app, req))
    };
    let quoted = ask(true);
    assert_eq!(quoted.status, 200, "{}", quoted.text);
    let a = quoted.json();
    assert_eq!((a["route"].as_str(), a["mode"].as_str()), (Some("answer"), Some("composed")), "{a}");
    assert!(a["note"].as_str().unwrap_or("").contains("only the zentravia label answers"), "{a}");
    assert!(a.get("generated_tokens").is_none() && a["model"].is_null(), "quote only: the model never ran: {a}");
    let generated = ask(false).json();
    assert!(generated["generated_tokens"].as_u64().is_some_and(|n| n > 0), "allowed to generate, the model ran: {generated}");
}
