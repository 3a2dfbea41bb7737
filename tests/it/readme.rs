//! Issue 10, point 9: the README's command blocks run as written, in order,
//! on a fresh copy of the repository (`scripts/readme-check.sh`), so they
//! cannot rot. Needs `../shared/data` (the README ingests the real labels).

use crate::harness::{bin, root, shared_data};

#[test]
fn issue10_9_readme_commands_run_as_written() {
    assert!(shared_data().join("pi/manifest.toml").exists(), "../shared/data is missing beside the repository");
    let out = std::process::Command::new("bash")
        .arg(root().join("scripts/readme-check.sh"))
        .arg(bin())
        .current_dir(root())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (o, e) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "README check failed:\n{o}\n{e}");
    assert!(o.contains("README commands ran as written"), "{o}");
    // The walkthrough really opened and closed a case, and the escalation said where it is stored.
    assert!(o.contains("is stored in ") && o.contains("closed"), "{o}");
}

/// The top-level modules as the file system has them: `src/NAME/mod.rs` and
/// `src/NAME.rs` (but `lib.rs` and `main.rs`), sorted.
fn modules_on_disk(src: &std::path::Path) -> Vec<String> {
    let mut mods: Vec<String> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            if p.is_dir() {
                p.join("mod.rs").exists().then_some(name)
            } else {
                let stem = name.strip_suffix(".rs")?;
                (stem != "lib" && stem != "main").then(|| stem.to_string())
            }
        })
        .collect();
    mods.sort();
    mods
}

/// The rows of a module table, as (module, rest of the row): a row is a line
/// (after `prefix`) `| NAME | …` where NAME is `` `m` `` or ``[`m`]``.
fn table_rows(lines: &[&str], prefix: &str) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| {
            let (cell, rest) = l.split_once(" |")?;
            let name = cell.trim().trim_start_matches('[').trim_end_matches(']').strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_string(), rest.to_string()))
        })
        .collect()
}

/// Every `` `NAME.rs` `` a row names (a bare file name, not a path).
fn files_named(row: &str) -> Vec<String> {
    row.split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| t.ends_with(".rs") && !t.contains('/') && t.len() > 3)
        .map(str::to_string)
        .collect()
}

/// Issue 16, point 6: the module map in `src/lib.rs` and in the README's
/// *Architecture* section list every top-level module under `src/`, the files
/// a row names exist, and no module doc promises work "in a later issue".
#[test]
fn issue16_6_module_map_matches_the_tree() {
    let src = root().join("src");
    let on_disk = modules_on_disk(&src);
    assert!(on_disk.len() >= 10 && on_disk.iter().any(|m| m == "copilot"), "modules found under src/: {on_disk:?}");

    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let lib_lines: Vec<&str> = lib.lines().collect();
    let lib_rows = table_rows(&lib_lines, "//! ");

    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let arch: Vec<&str> = readme
        .lines()
        .skip_while(|l| l.trim() != "## Architecture")
        .skip(1)
        .take_while(|l| !l.starts_with("## ") && !l.starts_with("### "))
        .collect();
    assert!(!arch.is_empty(), "README.md has no `## Architecture` section");
    let readme_rows = table_rows(&arch, "");

    let mut problems = Vec::new();
    for (place, rows) in [("src/lib.rs's //! layout table", &lib_rows), ("README.md's Architecture table", &readme_rows)] {
        let listed: Vec<&str> = rows.iter().map(|(m, _)| m.as_str()).collect();
        for m in &on_disk {
            if !listed.contains(&m.as_str()) {
                problems.push(format!("module `{m}` is missing from {place}"));
            }
        }
        for (m, row) in rows.iter() {
            if !on_disk.contains(m) {
                problems.push(format!("{place} lists `{m}`, which is not a module under src/"));
                continue;
            }
            for f in files_named(row) {
                if !src.join(m).join(&f).exists() && !src.join(&f).exists() {
                    problems.push(format!("{place}: the `{m}` row names `{f}`, but neither src/{m}/{f} nor src/{f} exists"));
                }
            }
        }
    }

    // Module docs say what is true now: no promises of later work.
    const STALE: &[&str] = &["later issue", "(later)", "for now"];
    let mut stack = vec![src.clone()];
    let mut docs_read = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (i, line) in text.lines().enumerate() {
                    let l = line.trim_start();
                    if !l.starts_with("//!") {
                        continue;
                    }
                    docs_read += 1;
                    let lower = l.to_lowercase();
                    if let Some(s) = STALE.iter().find(|s| lower.contains(*s)) {
                        problems.push(format!("{}:{}: module doc says {s:?}: {l}", p.strip_prefix(root()).unwrap_or(&p).display(), i + 1));
                    }
                }
            }
        }
    }
    assert!(docs_read > 100, "only {docs_read} `//!` lines found under src/");
    assert!(problems.is_empty(), "the module map does not match the tree:\n{}", problems.join("\n"));
}
