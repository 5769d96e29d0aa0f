#![allow(clippy::unwrap_used)]
//! Without root, commands that mount or enter namespaces stop at once with what kiln needs (exit
//! code 1); the others keep working. As root (CI) the binary runs as `nobody` through `setpriv`.

use std::path::Path;
use std::process::{Command, Output};

const NEEDS_ROOT: &str =
    "kiln needs root (CAP_SYS_ADMIN for mounts and namespaces); rootless builds are not supported yet";

/// `kiln args` as an unprivileged user, from a directory and with a root it may read.
fn kiln_unprivileged(dir: &Path, args: &[&str]) -> Output {
    let kiln = testkit::kiln_binary();
    let mut cmd = if testkit::is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"]).arg(&kiln);
        cmd
    } else {
        Command::new(kiln)
    };
    cmd.current_dir(dir).env("KILN_ROOT", dir.join("root")).env("HOME", dir).args(args).output().unwrap()
}

fn open_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nWORKDIR /app\n").unwrap();
    std::fs::set_permissions(dir.path().join("Dockerfile"), std::fs::Permissions::from_mode(0o644)).unwrap();
    dir
}

#[test]
fn commands_that_need_root_say_so_at_once() {
    let dir = open_dir();
    for args in [
        &["build", "."][..],
        &["run", "--rm", "busybox", "true"],
        &["pull", "busybox"],
        &["load", "-i", "x.tar"],
    ] {
        let out = kiln_unprivileged(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "kiln {args:?}: {stderr}");
        assert_eq!(stderr.trim(), format!("error: {NEEDS_ROOT}"), "kiln {args:?}");
    }
    assert!(!dir.path().join("root").exists(), "nothing was created");
}

#[test]
fn commands_that_do_not_need_root_keep_working() {
    let dir = open_dir();
    for args in [
        &["--help"][..],
        &["--version"],
        &["version"],
        &["build", "--help"],
        &["debug", "parse", "Dockerfile"],
    ] {
        let out = kiln_unprivileged(dir.path(), args);
        assert!(out.status.success(), "kiln {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stdout.is_empty(), "kiln {args:?}");
    }
}

/// `kiln version` names the commit the binary was built from (this checkout's HEAD).
#[test]
fn version_names_the_commit() {
    let dir = open_dir();
    let out = kiln_unprivileged(dir.path(), &["version", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(facts["Version"], env!("CARGO_PKG_VERSION"));
    let head = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    let commit = facts["GitCommit"].as_str().unwrap();
    assert!(!head.trim().is_empty() && commit.starts_with(head.trim()), "{commit} vs HEAD {head}");
    let text = String::from_utf8(kiln_unprivileged(dir.path(), &["version"]).stdout).unwrap();
    assert!(text.starts_with("kiln version ") && text.contains(commit), "{text}");
}
