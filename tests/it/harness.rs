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
        for v in ["ONLABEL_DATA", "ONLABEL_DATABASE", "ONLABEL_CONFIG", "ONLABEL_INDEX"] {
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

/// A fresh, empty database `name` in this test run's PostgreSQL cluster
/// ([`onlabel::store::pgtest::cluster`]); its URL for `--database`.
pub fn pg_database(name: &str) -> String {
    isolate();
    onlabel::store::pgtest::database(name)
}

/// Runs the binary with `--database URL` (no `--data`: the command must not
/// need the SQLite store); returns (exit code, stdout, stderr).
pub fn onlabel_db(url: &str, args: &[&str]) -> (i32, String, String) {
    onlabel_db_as(url, None, args)
}

/// [`onlabel_db`] signed in with `token` (`ONLABEL_TOKEN`), or none.
pub fn onlabel_db_as(url: &str, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut c = std::process::Command::new(bin());
    c.arg("--database").arg(url).args(args).env_remove("ONLABEL_TOKEN").env_remove("ONLABEL_DATA");
    if let Some(t) = token {
        c.env("ONLABEL_TOKEN", t);
    }
    let out = c.stdin(std::process::Stdio::null()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// llama.cpp's `llama-server`: `ONLABEL_LLAMA_SERVER`, else where
/// `bash bench/llama_cpp.sh` builds it (`scripts/test.sh` builds it and sets
/// the variable). Missing, the test fails and says how to build it: the
/// remote-generator tests never skip.
pub fn llama_server_bin() -> PathBuf {
    let path = std::env::var_os("ONLABEL_LLAMA_SERVER").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("ONLABEL_BENCH_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/onlabel-bench"));
        cache.join("llama.cpp-build/bin/llama-server")
    });
    assert!(
        path.is_file(),
        "no llama-server at {}: build it with `bash bench/llama_cpp.sh` (scripts/test.sh does) or set ONLABEL_LLAMA_SERVER to its path",
        path.display()
    );
    path
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `llama-server` serving the embedded SmolLM2 GGUF on a loopback port,
/// killed when dropped.
pub struct LlamaServer {
    /// Its port.
    pub port: u16,
    child: Option<std::process::Child>,
    log: PathBuf,
}

impl LlamaServer {
    /// Starts one on a free port and waits until `/health` answers 200.
    pub fn start() -> LlamaServer {
        Self::start_on(free_port())
    }

    /// Starts one on `port` (to restart a killed one where clients expect it).
    pub fn start_on(port: u16) -> LlamaServer {
        let model = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(model.is_file(), "no model at {}: run `bash models/fetch.sh`", model.display());
        let log = std::env::temp_dir().join(format!("onlabel-llama-server-{}-{port}.log", std::process::id()));
        let out = std::fs::File::create(&log).unwrap();
        // One slot, a small context and 2 threads: the tests' requests are
        // short, and the machine is shared.
        let child = std::process::Command::new(llama_server_bin())
            .args(["-m", model.to_str().unwrap(), "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-np", "1", "-c", "2048", "-t", "2", "-tb", "2", "--no-webui"])
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", llama_server_bin().display()));
        let mut s = LlamaServer { port, child: Some(child), log };
        s.wait_healthy();
        s
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_healthy(&mut self) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(2)))
            .build()
            .into();
        let t0 = std::time::Instant::now();
        loop {
            if let Ok(r) = agent.get(&format!("{}/health", self.url())).call() {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("llama-server exited ({status}) before it was healthy:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            assert!(t0.elapsed() < std::time::Duration::from_secs(120), "llama-server not healthy after 120 s:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Kills it at once (SIGKILL), as a crashed node would go.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}
