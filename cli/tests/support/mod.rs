//! Shared scaffolding of the `kiln build` end-to-end tests (root): a busybox base image
//! (from `testdata/rootfs/busybox-rootfs.sh`) imported as `busybox` into a fresh `--root`,
//! contexts written by the test, builds with plain progress, and the steps they ran.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A busybox rootfs tarball in `dir`.
pub fn busybox_tarball(dir: &Path) -> PathBuf {
    let rootfs = dir.join("busybox-rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/rootfs/busybox-rootfs.sh");
    run(Command::new("sh").arg(script).arg(&rootfs));
    let tarball = dir.join("busybox.tar");
    run(Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    tarball
}

/// One `--root` with the busybox base imported, in a temporary directory.
pub struct Kiln {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
}

impl Kiln {
    pub fn new() -> Kiln {
        let tmp = tempfile::tempdir().unwrap();
        let tarball = busybox_tarball(tmp.path());
        let kiln = Kiln { root: tmp.path().join("root"), tmp };
        kiln.ok(&["import", tarball.to_str().unwrap(), "busybox", "--change", r#"CMD ["sh"]"#]);
        kiln
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A context directory `name` holding `files` (`(path, content)`, parents created) and a
    /// `Dockerfile`.
    pub fn context(&self, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        for (path, content) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        dir
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.arg("--root").arg(&self.root).args(args).env_remove("KILN_ROOT").env_remove("SOURCE_DATE_EPOCH");
        cmd
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(out.status.success(), "kiln {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Builds with plain progress; returns stderr (the progress).
    pub fn build(&self, args: &[&str]) -> String {
        let mut all = vec!["build", "--progress", "plain"];
        all.extend_from_slice(args);
        let out = self.output(&all);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "kiln {all:?} failed: {stderr}");
        stderr
    }

    /// Builds with plain progress, expecting a failure; returns stderr.
    pub fn build_fails(&self, args: &[&str]) -> String {
        let mut all = vec!["build", "--progress", "plain"];
        all.extend_from_slice(args);
        let out = self.output(&all);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "kiln {all:?} succeeded: {stderr}");
        stderr
    }

    /// Builds into a fresh directory `name` (`type=local`); returns it and the progress.
    pub fn build_local(&self, name: &str, args: &[&str]) -> (PathBuf, String) {
        let dest = self.path(name);
        let _ = std::fs::remove_dir_all(&dest);
        let output = format!("type=local,dest={}", dest.display());
        let mut all = vec!["-o", output.as_str()];
        all.extend_from_slice(args);
        let progress = self.build(&all);
        (dest, progress)
    }
}

/// Steps of a plain progress log: name → "CACHED" | "DONE" | "ERROR".
pub fn steps(progress: &str) -> BTreeMap<String, String> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut status = BTreeMap::new();
    for line in progress.lines() {
        let Some(rest) = line.strip_prefix('#') else { continue };
        let Some((number, text)) = rest.split_once(' ') else { continue };
        if !number.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if text == "CACHED" || text.starts_with("DONE") || text.starts_with("ERROR") {
            if let Some(name) = names.get(number) {
                status.insert(name.clone(), text.split_whitespace().next().unwrap_or("").to_owned());
            }
        } else if text.starts_with('[') && !names.contains_key(number) {
            names.insert(number.to_owned(), text.to_owned());
        }
    }
    status
}

/// Names of the RUN/COPY/ADD steps that ran (not cached).
pub fn ran(progress: &str) -> BTreeSet<String> {
    steps(progress)
        .into_iter()
        .filter(|(name, status)| {
            status == "DONE"
                && (name.contains("] RUN ") || name.contains("] COPY ") || name.contains("] ADD "))
        })
        .map(|(name, _)| name)
        .collect()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
