//! Shared test harness: paths to the shared data, temp corpora and indexes.

use std::path::{Path, PathBuf};

/// `../shared/data` beside the project root (CI has it there too).
pub fn shared_data() -> PathBuf {
    root().join("../shared/data")
}

/// The repository root: `cargo test` sets `CARGO_MANIFEST_DIR` when it runs
/// the binary, and that is read first, because a cached test binary that was
/// built in another clone (CI reuses one target directory) carries that
/// clone's path in its compile-time value and cargo does not rebuild it.
pub fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A manifest entry for tests.
pub fn entry(id: &str, file: &str, expires_on: &str, status: &str) -> String {
    format!(
        "[[document]]\nid = \"{id}\"\nfile = \"{file}\"\nproduct = \"testra\"\nkind = \"pi\"\naudience = \"promotional\"\nmlr_number = \"T-{id}\"\napproved_on = \"2020-01-01\"\nexpires_on = \"{expires_on}\"\nstatus = \"{status}\"\n\n"
    )
}

/// Writes a corpus folder with the given files and manifest text.
pub fn corpus(dir: &Path, manifest: &str, files: &[(&str, &[u8])]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("manifest.toml"), manifest).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    dir.to_owned()
}

/// Builds an index from corpus folders into `dir`.
pub fn build_index(corpora: &[PathBuf], dir: &Path) -> onlabel::index::Index {
    let limits = onlabel::corpus::Limits::default();
    let corpus = onlabel::corpus::Corpus::load(corpora, limits, false).unwrap();
    onlabel::index::Index::build(dir, &corpus.passages(limits), |_| {}).unwrap();
    onlabel::index::Index::open(dir).unwrap()
}

/// The onlabel binary built for these tests.
pub fn bin() -> PathBuf {
    isolate();
    PathBuf::from(env!("CARGO_BIN_EXE_onlabel"))
}

/// Points the per-user data and config directories of every child process
/// at a scratch folder of this test run, and drops the `ONLABEL_…` settings
/// of the developer's shell: a test that gives no `--data` must neither read
/// nor write the developer's own store (the default store is per user, not
/// per folder). Runs once, before the first child process is started.
pub fn isolate() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let home = scratch_home();
        std::env::set_var("XDG_DATA_HOME", home.join("data"));
        std::env::set_var("XDG_CONFIG_HOME", home.join("config"));
        for v in ["ONLABEL_DATA", "ONLABEL_CONFIG", "ONLABEL_INDEX"] {
            std::env::remove_var(v);
        }
    });
}

/// This test run's stand-in for the user's home directories.
pub fn scratch_home() -> PathBuf {
    std::env::temp_dir().join(format!("onlabel-it-home-{}", std::process::id()))
}

/// Runs the binary with `--data DATA` and, when given, `ONLABEL_TOKEN`; returns (exit code, stdout, stderr).
pub fn onlabel(data: &Path, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut c = std::process::Command::new(bin());
    c.arg("--data").arg(data).args(args).env_remove("ONLABEL_TOKEN").env_remove("ONLABEL_ROOT").env_remove("ONLABEL_THRESHOLDS");
    if let Some(t) = token {
        c.env("ONLABEL_TOKEN", t);
    }
    let out = c.stdin(std::process::Stdio::null()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Adds a user (the first call bootstraps the admin) and returns their token.
pub fn add_user(data: &Path, admin: Option<(&str, &str)>, id: &str, name: &str, role: &str) -> String {
    let mut args = vec!["users", "add", "--id", id, "--name", name, "--role", role];
    if let Some((a, _)) = admin {
        args.extend(["--as", a]);
    }
    let (code, out, err) = onlabel(data, admin.map(|a| a.1), &args);
    assert_eq!(code, 0, "users add {id}: {err}");
    out.trim().to_string()
}

/// The small suite of the registry, server and browser tests.
const MINI_SUITE: &str = r#"{"id": "zen-lft-1", "task": "ask", "product": "zentravia", "question": "What are the LFT monitoring rules?", "expect": {"route": "answer", "sections": ["zentravia-pi §BW", "zentravia-pi §5.1", "zentravia-pi §2.1", "zentravia-pi §17", "zentravia-faq §Q3"]}}
{"id": "zen-ae-1", "task": "ask", "product": "zentravia", "question": "Dr. Lee's patient's ALT jumped to 6 times normal three weeks after starting ZENTRAVIA.", "expect": {"route": "pharmacovigilance"}}
"#;

/// Its gate, the thresholds file of the scratch repository.
const MINI_THRESHOLDS: &str = r#"
[[gate]]
kind = "prompt"
suite = "evals/mini.jsonl"
min = { route_accuracy = 0.5 }
"#;

/// A scratch repository root in `dir/repo`: the real prompt template and a
/// small suite with its gate (the registry's paths are relative to it).
pub fn scratch_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("prompts")).unwrap();
    std::fs::create_dir_all(repo.join("evals")).unwrap();
    std::fs::copy(root().join("prompts/objection.j2"), repo.join("prompts/objection.j2")).unwrap();
    std::fs::write(repo.join("evals/mini.jsonl"), MINI_SUITE).unwrap();
    std::fs::write(repo.join("evals/thresholds.toml"), MINI_THRESHOLDS).unwrap();
    repo
}
