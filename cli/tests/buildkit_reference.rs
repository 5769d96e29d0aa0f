#![allow(clippy::unwrap_used)]
//! Builds each non-error case of `testdata/buildkit-reference/` with the kiln binary (root; each
//! case in its own `--root` with the busybox base imported) and compares the filesystem result
//! (`--output type=local`) with what BuildKit 0.8 produced: mode and uid:gid of every path the
//! case's layers hold (flattened: later layers and whiteouts win; the `etc/` mount-point dir is
//! ignored) and the small text contents of `contents.txt`. Known kiln bugs are listed in
//! `testdata/buildkit-reference/KNOWN-DIFFERENCES.md` and skipped item by item via `KNOWN`.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `(case, path, field)` items that differ because of known kiln bugs.
const KNOWN: &[(&str, &str, &str)] = &[
    ("copy-chown-chmod", "add-tar-chown/top", "owner"),
    ("copy-chown-chmod", "add-tar-chown/top/inner", "owner"),
    ("copy-chown-chmod", "add-tar-chown/top/inner/two.txt", "owner"),
    ("copy-chown-chmod", "add-tar-chown/top/link", "owner"),
    ("copy-chown-chmod", "add-tar-chown/top/one.txt", "owner"),
    ("copy-chown-chmod", "chmod", "mode"),
    ("copy-chown-unknown", "-", "build"),
    ("mounts", "cache", "exists"),
    ("mounts", "other-etc", "exists"),
    ("mounts", "run", "exists"),
    ("mounts", "run/secrets", "exists"),
    ("mounts", "scratch", "exists"),
];

/// `ls -l` dates in contents vary between runs: `Nov 22 22:25` → `<date>`.
fn mask_dates(text: &str) -> String {
    const MONTHS: &[&str] =
        &["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.iter().position(|w| MONTHS.contains(w)) {
                Some(i) if i + 2 < words.len() => {
                    [&words[..i], &["<date>"], &words[i + 3..]].concat().join(" ")
                }
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/buildkit-reference")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    mode: String,
    owner: String,
    layer: usize,
}

/// Flattened view of layers.txt: path (without trailing `/`) → entry.
fn expected_files(layers: &str) -> BTreeMap<String, Entry> {
    let mut files: BTreeMap<String, Entry> = BTreeMap::new();
    let mut layer = 0;
    for line in layers.lines() {
        if let Some(rest) = line.strip_prefix("# layer ") {
            layer = rest.split(':').next().unwrap().parse().unwrap();
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let (mode, owner, rest) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let path = rest.split(" -> ").next().unwrap().split(" => ").next().unwrap();
        let path = path.trim_end_matches('/').to_string();
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path.as_str()),
        };
        if name == ".wh..wh..opq" {
            continue;
        }
        if let Some(gone) = name.strip_prefix(".wh.") {
            let gone = format!("{dir}{gone}");
            files.retain(|p, _| p != &gone && !p.starts_with(&format!("{gone}/")));
            continue;
        }
        files.insert(path.clone(), Entry { mode: mode.to_string(), owner: owner.to_string(), layer });
    }
    // The runtime's mount-point dir, a docker-differ artefact.
    files.remove("etc");
    files
}

/// contents.txt: path → (layer, text).
fn expected_contents(contents: &str) -> BTreeMap<String, (usize, String)> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, usize, String)> = None;
    for line in contents.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("== layer ") {
            if let Some((p, l, t)) = current.take() {
                out.insert(p, (l, t));
            }
            let (layer, rest) = rest.split_once(' ').unwrap();
            let path = rest.rsplit_once(" (").unwrap().0.to_string();
            current = Some((path, layer.parse().unwrap(), String::new()));
        } else if let Some((_, _, t)) = current.as_mut() {
            t.push_str(line);
        }
    }
    if let Some((p, l, t)) = current.take() {
        out.insert(p, (l, t));
    }
    out
}

fn mode_string(meta: &std::fs::Metadata) -> String {
    let m = meta.mode();
    let kind = match m & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        _ => '-',
    };
    let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
    let exec = |x: u32, special: u32, set: char, unset: char| match (m & x != 0, m & special != 0) {
        (true, true) => set,
        (false, true) => unset,
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        kind,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        exec(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        exec(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        exec(0o001, 0o1000, 't', 'T'),
    ]
    .iter()
    .collect()
}

struct Outcome {
    matched: usize,
    mismatches: Vec<String>,
}

fn build_case(case: &str, tarball: &Path, tmp: &Path) -> Outcome {
    let src = reference_dir().join(case);
    let work = tmp.join(case);
    run(Command::new("cp").arg("-a").arg(&src).arg(&work));
    std::fs::create_dir_all(work.join("context")).unwrap();
    if work.join("prepare.sh").exists() {
        run(Command::new("sh").arg("prepare.sh").current_dir(&work));
    }
    let root = work.join("kiln-root");
    let kiln = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.arg("--root")
            .arg(&root)
            .args(args)
            .current_dir(&work)
            .env_remove("KILN_ROOT")
            .env_remove("SOURCE_DATE_EPOCH")
            .env("FROM_HOSTENV", "from-host-environment");
        cmd
    };
    run(&mut kiln(&["import", tarball.to_str().unwrap(), "busybox"]));
    if case == "onbuild-child" {
        let parent = reference_dir().join("onbuild-parent");
        // git keeps no empty directories: the parent's (empty) context may not exist in a checkout
        let parent_context = tmp.join("onbuild-parent-context");
        std::fs::create_dir_all(&parent_context).unwrap();
        run(&mut kiln(&[
            "build",
            "--progress",
            "plain",
            "-t",
            "kiln-ref/onbuild-parent",
            "-f",
            parent.join("Dockerfile").to_str().unwrap(),
            parent_context.to_str().unwrap(),
        ]));
    }
    let dest = work.join("out");
    let mut args: Vec<String> = vec!["build".into(), "--progress".into(), "plain".into()];
    args.push(format!("--output=type=local,dest={}", dest.display()));
    args.push("-f".into());
    args.push("Dockerfile".into());
    if let Ok(build_args) = std::fs::read_to_string(work.join("build-args")) {
        for line in build_args.lines().filter(|l| !l.is_empty()) {
            args.push(format!("--build-arg={line}"));
        }
    }
    if let Ok(flags) = std::fs::read_to_string(work.join("flags")) {
        args.extend(flags.lines().filter(|l| !l.is_empty()).map(String::from));
    }
    args.push("context".into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kiln(&argv).output().unwrap();
    let mut outcome = Outcome { matched: 0, mismatches: Vec::new() };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        if !KNOWN.contains(&(case, "-", "build")) {
            outcome.mismatches.push(format!("{case} - build: kiln failed: {}", tail.join(" | ")));
        }
        return outcome;
    }
    let mut check = |path: &str, field: &str, want: &str, got: &str| {
        if KNOWN.contains(&(case, path, field)) {
            return;
        }
        if want == got {
            outcome.matched += 1;
        } else {
            outcome.mismatches.push(format!("{case} {path} {field}: buildkit {want:?}, kiln {got:?}"));
        }
    };
    let files = expected_files(&std::fs::read_to_string(src.join("layers.txt")).unwrap());
    for (path, entry) in &files {
        match std::fs::symlink_metadata(dest.join(path)) {
            Ok(meta) => {
                check(path, "mode", &entry.mode, &mode_string(&meta));
                check(path, "owner", &entry.owner, &format!("{}:{}", meta.uid(), meta.gid()));
            }
            Err(_) => check(path, "exists", "yes", "no"),
        }
    }
    let contents = expected_contents(&std::fs::read_to_string(src.join("contents.txt")).unwrap_or_default());
    for (path, (layer, text)) in &contents {
        // Only the final version of a file is visible in the flattened output.
        if files.get(path).map(|e| e.layer) != Some(*layer) {
            continue;
        }
        let got = std::fs::read_to_string(dest.join(path)).unwrap_or_default();
        check(path, "content", &mask_dates(text), &mask_dates(&got));
    }
    outcome
}

#[test]
fn buildkit_reference_filesystems() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("busybox-rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/rootfs/busybox-rootfs.sh");
    run(Command::new("sh").arg(script).arg(&rootfs));
    let tarball = tmp.path().join("busybox.tar");
    run(Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));

    let mut cases: Vec<String> = std::fs::read_dir(reference_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("Dockerfile").exists())
        .filter(|e| !e.path().join("expect-failure").exists() && !e.path().join("serve").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    let outcomes: Vec<(String, Outcome)> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(cases.len().div_ceil(2))
            .map(|chunk| {
                let (tarball, tmp) = (&tarball, tmp.path());
                s.spawn(move || {
                    chunk.iter().map(|c| (c.clone(), build_case(c, tarball, tmp))).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let matched: usize = outcomes.iter().map(|(_, o)| o.matched).sum();
    let mismatches: Vec<&String> = outcomes.iter().flat_map(|(_, o)| &o.mismatches).collect();
    eprintln!("{} cases, {matched} items match", outcomes.len());
    assert!(matched > 0);
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), {
        let v: Vec<&str> = mismatches.iter().map(|s| s.as_str()).collect();
        v.join("\n")
    });
}

/// Error cases: kiln exits 1 and names the same thing BuildKit names. `error-unknown-stage` is
/// left out: like BuildKit, kiln resolves `buidl` on docker.io (network beyond loopback).
#[test]
fn buildkit_reference_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("busybox-rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/rootfs/busybox-rootfs.sh");
    run(Command::new("sh").arg(script).arg(&rootfs));
    let tarball = tmp.path().join("busybox.tar");
    run(Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    let root = tmp.path().join("root");
    let kiln = |args: &[&str], dir: &Path| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("--root")
            .arg(&root)
            .args(args)
            .current_dir(dir)
            .env_remove("KILN_ROOT")
            .output()
            .unwrap()
    };
    assert!(kiln(&["import", tarball.to_str().unwrap(), "busybox"], tmp.path()).status.success());
    for (case, needles) in [
        ("error-run-fails", &["exit code: 3", "output line 30", "to stderr"][..]),
        ("error-copy-missing", &["missing.txt"][..]),
    ] {
        let dir = reference_dir().join(case);
        std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
        let context =
            if dir.join("context").exists() { dir.join("context") } else { tmp.path().join("empty") };
        let dockerfile = dir.join("Dockerfile");
        let out = kiln(
            &["build", "--progress", "plain", "-f", dockerfile.to_str().unwrap(), context.to_str().unwrap()],
            tmp.path(),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{case}: {needle:?} not in {err}");
        }
    }
}
