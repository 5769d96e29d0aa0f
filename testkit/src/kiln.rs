//! The `kiln` binary driven as a user would, each [`Kiln`] with its own `--root`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::busybox::busybox_tarball;

/// The `kiln` binary of the crate under test: cargo sets `CARGO_BIN_EXE_kiln` for the
/// integration tests of the `kiln` package (`cli/`), also at run time.
pub fn kiln_binary() -> PathBuf {
    std::env::var_os("CARGO_BIN_EXE_kiln").map(PathBuf::from).expect(
        "CARGO_BIN_EXE_kiln is not set: only the integration tests of the kiln package (cli/) run kiln",
    )
}

/// `kiln` with no `--root`, an environment that does not leak the caller's kiln settings
/// (`KILN_ROOT`, `SOURCE_DATE_EPOCH`, credential and registry files), and stdin from /dev/null.
pub fn kiln_command() -> Command {
    let mut cmd = Command::new(kiln_binary());
    for name in ["KILN_ROOT", "SOURCE_DATE_EPOCH", "KILN_AUTH_FILE", "KILN_REGISTRIES_CONFIG"] {
        cmd.env_remove(name);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// One `--root` (and one docker config directory, for credentials) in a directory of its own,
/// or in one the test shares between several roots ([`Kiln::in_dir`]).
#[derive(Debug)]
pub struct Kiln {
    tmp: Option<tempfile::TempDir>,
    dir: PathBuf,
    /// The `--root` of every command.
    pub root: PathBuf,
    /// `DOCKER_CONFIG` of every command (where `kiln login` writes credentials).
    pub docker_config: PathBuf,
}

impl Kiln {
    /// An empty root in a fresh temporary directory.
    pub fn new() -> Kiln {
        let tmp = tempfile::Builder::new().prefix("kiln-test-").tempdir().unwrap();
        let mut kiln = Kiln::in_dir(tmp.path(), "root");
        kiln.tmp = Some(tmp);
        kiln
    }

    /// A fresh root with the busybox base imported as `busybox` (`CMD ["sh"]`).
    pub fn with_busybox() -> Kiln {
        let kiln = Kiln::new();
        kiln.import_busybox("busybox", &[r#"CMD ["sh"]"#]);
        kiln
    }

    /// A root `dir/name` (docker config `dir/name-docker`) in a directory the test owns.
    pub fn in_dir(dir: &Path, name: &str) -> Kiln {
        Kiln {
            tmp: None,
            dir: dir.to_owned(),
            root: dir.join(name),
            docker_config: dir.join(format!("{name}-docker")),
        }
    }

    /// Another root `name` in this one's directory, sharing its docker config (credentials).
    pub fn sibling(&self, name: &str) -> Kiln {
        Kiln {
            tmp: None,
            dir: self.dir.clone(),
            root: self.dir.join(name),
            docker_config: self.docker_config.clone(),
        }
    }

    /// Imports the busybox base (the same bytes for every root of this test binary) as `name`,
    /// with `changes` (`--change` instructions).
    pub fn import_busybox(&self, name: &str, changes: &[&str]) {
        self.import(busybox_tarball(), name, changes);
    }

    /// `kiln import tarball name --change c...`.
    pub fn import(&self, tarball: &Path, name: &str, changes: &[&str]) {
        let mut args = vec!["import", tarball.to_str().unwrap(), name];
        for change in changes {
            args.extend(["--change", change]);
        }
        self.ok(&args);
    }

    /// The store root (`--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory this root lives in (the test's scratch space).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `name` in [`Kiln::dir`].
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `kiln --root ROOT args` (see [`kiln_command`]), with this root's docker config.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = kiln_command();
        cmd.arg("--root").arg(&self.root).args(args).env("DOCKER_CONFIG", &self.docker_config);
        cmd
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_both(args).0
    }

    /// Runs and expects success; returns (stdout, stderr).
    #[track_caller]
    pub fn ok_both(&self, args: &[&str]) -> (String, String) {
        let out = self.output(args);
        let (stdout, stderr) =
            (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
        assert!(out.status.success(), "kiln {args:?} failed:\n{stdout}\n{stderr}");
        (stdout, stderr)
    }

    /// Runs and expects failure; returns stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "kiln {args:?} should fail: {stderr}");
        stderr
    }

    /// A context directory `name` holding `Dockerfile` and `files` (`(path, content)`).
    pub fn context(&self, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.files(name, files);
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        dir
    }

    /// A directory `name` holding `files` (`(path, content)`, parents created).
    pub fn files(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (path, content) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        dir
    }

    /// `kiln build --progress plain args`, as the process output.
    pub fn build_output(&self, args: &[&str]) -> Output {
        let mut all = vec!["build", "--progress", "plain"];
        all.extend_from_slice(args);
        self.output(&all)
    }

    /// Builds with plain progress, expecting success; returns stderr (the progress).
    #[track_caller]
    pub fn build(&self, args: &[&str]) -> String {
        let out = self.build_output(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "kiln build {args:?} failed: {stderr}");
        stderr
    }

    /// Builds with plain progress, expecting failure; returns stderr.
    #[track_caller]
    pub fn build_fails(&self, args: &[&str]) -> String {
        let out = self.build_output(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "kiln build {args:?} succeeded: {stderr}");
        stderr
    }

    /// Builds into a fresh directory `name` (`type=local`); returns it and the progress.
    #[track_caller]
    pub fn build_local(&self, name: &str, args: &[&str]) -> (PathBuf, String) {
        let dest = self.path(name);
        let _ = std::fs::remove_dir_all(&dest);
        let output = format!("type=local,dest={}", dest.display());
        let mut all = vec!["-o", output.as_str()];
        all.extend_from_slice(args);
        let progress = self.build(&all);
        (dest, progress)
    }

    /// The config JSON of the blob `digest` (`sha256:…`) in this root's content store.
    pub fn config_blob(&self, digest: &str) -> String {
        let hex = digest.strip_prefix("sha256:").unwrap();
        read(&self.root.join("content/blobs/sha256").join(hex))
    }
}

impl Default for Kiln {
    fn default() -> Kiln {
        Kiln::new()
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

/// The file at `path` as text, panicking with its path.
#[track_caller]
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
