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
