//! A throwaway PostgreSQL cluster for tests (`cargo test`, the library's
//! own unit tests and `tests/it`): the state tests run every store against
//! it as well as against SQLite (issue 22). Not part of the product's
//! surface: it panics with what to install or what failed, as a test
//! helper should, and is hidden from the docs.
//!
//! Needs Debian's `postgresql` package (`scripts/test.sh` installs it);
//! a missing PostgreSQL fails the test that asked for it — never a silent
//! skip.

use std::path::{Path, PathBuf};

/// A throwaway PostgreSQL cluster for this test run: `initdb` in a temp dir,
/// `pg_ctl start` on a free loopback port (TCP on 127.0.0.1 only, its socket
/// in the same temp dir), trust authentication for the superuser `onlabel`.
/// Started once per test binary by [`cluster`]; a watcher process stops it
/// and removes its files when the test binary exits.
#[derive(Debug)]
pub struct PgCluster {
    /// The loopback port it listens on.
    pub port: u16,
    /// The temp dir holding the cluster (`data/`), its log and its socket.
    pub dir: PathBuf,
}

/// The PostgreSQL programs: Debian's `postgresql` package puts them in
/// `/usr/lib/postgresql/VERSION/bin`; the highest version wins. A missing
/// PostgreSQL fails the test with what to install — never a silent skip.
pub fn bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is missing: the PostgreSQL tests need Debian's `postgresql` package \
             (initdb and pg_ctl in /usr/lib/postgresql/*/bin). Install it with \
             `apt-get install -y postgresql` (scripts/test.sh does this when run as root)"
        ),
    }
}

/// Runs a PostgreSQL program: as the `postgres` user when the tests run as
/// root (initdb and postgres refuse to run as root; CI runs as root), else as
/// the current user. Panics with the program's output when it fails.
fn run(dir: &Path, program: &Path, args: &[&str]) {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    let mut c = if root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    };
    let out = c.args(args).current_dir(dir).env("LC_ALL", "C").stdin(std::process::Stdio::null()).output().unwrap_or_else(|e| {
        panic!("cannot run {} (as {}): {e}", program.display(), if root { "postgres via runuser" } else { "this user" })
    });
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}{}\nlog: {}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("log")).unwrap_or_default()
    );
}

/// The cluster of this test run, started on first use.
pub fn cluster() -> &'static PgCluster {
    static CLUSTER: std::sync::OnceLock<PgCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        let bin = bin();
        let dir = std::env::temp_dir().join(format!("onlabel-test-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false) {
            // Root: the cluster belongs to the `postgres` user the package creates.
            let id = |flag: &str| -> u32 {
                let out = std::process::Command::new("id").args([flag, "postgres"]).output().unwrap();
                assert!(out.status.success(), "no `postgres` user: install Debian's postgresql package (apt-get install -y postgresql)");
                String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
            };
            std::os::unix::fs::chown(&dir, Some(id("-u")), Some(id("-g"))).unwrap();
        }
        let data = dir.join("data");
        let (data_s, dir_s) = (data.to_str().unwrap().to_string(), dir.to_str().unwrap().to_string());
        run(&dir, &bin.join("initdb"), &["-D", &data_s, "-U", "onlabel", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // fsync off: a throwaway cluster in a temp dir; locking, ordering and
        // isolation are PostgreSQL's own, only durability across a power cut is not tested here.
        let opts = format!("-p {port} -k {dir_s} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100");
        run(&dir, &bin.join("pg_ctl"), &["-D", &data_s, "-l", &format!("{dir_s}/log"), "-w", "-t", "60", "-o", &opts, "start"]);
        // Stop the cluster and remove it once this test binary has exited.
        let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        let runner = if root { "runuser -u postgres -- " } else { "" };
        let watcher = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; cd {dir_s} && {runner}{ctl} -D {data_s} stop -m immediate >/dev/null 2>&1; rm -rf {dir_s}",
            pid = std::process::id(),
            ctl = bin.join("pg_ctl").display()
        );
        std::process::Command::new("sh")
            .args(["-c", &watcher])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        PgCluster { port, dir }
    })
}

/// A fresh, empty database `name` in [`cluster`] (dropped first if a
/// test of this run made it before); returns its URL for `--database`.
pub fn database(name: &str) -> String {
    let cluster = cluster();
    let admin = format!("postgres://onlabel@127.0.0.1:{}/postgres", cluster.port);
    let mut c = postgres::Client::connect(&admin, postgres::NoTls)
        .unwrap_or_else(|e| panic!("{admin}: {e} (the cluster's log: {})", cluster.dir.join("log").display()));
    // One statement per call: DROP/CREATE DATABASE refuse to run in a transaction block.
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    format!("postgres://onlabel@127.0.0.1:{}/{name}", cluster.port)
}

