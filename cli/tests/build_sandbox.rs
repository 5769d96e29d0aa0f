#![allow(clippy::unwrap_used)]
//! `kiln build` steps at the sandbox's limits (root): environments and scripts as big as execve
//! takes, the kernel's E2BIG with the Dockerfile line for what it refuses, and read-only
//! `RUN --mount=type=bind` that stays read-only in the context's submounts.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::Kiln;

/// `kiln build` of `context` with plain progress: (success, stderr).
fn build(kiln: &Kiln, context: &Path) -> (bool, String) {
    let out = kiln.build_output(&[context.to_str().unwrap()]);
    (out.status.success(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn four_60k_environment_variables_reach_run() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let mut dockerfile = String::from("FROM busybox\n");
    for n in 1..=4 {
        dockerfile.push_str(&format!("ENV E{n}={}\n", n.to_string().repeat(60_000)));
    }
    dockerfile.push_str("RUN test ${#E1}${#E2}${#E3}${#E4} = 60000600006000060000\n");
    let (ok, err) = build(&kiln, &kiln.context("env", &dockerfile, &[]));
    assert!(ok, "{}", &err[err.len().saturating_sub(2000)..]);
}

#[test]
fn a_heredoc_script_of_300k_runs_as_a_file_and_too_long_commands_fail_with_e2big() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    // a shebang heredoc is written to a file: its size does not count against execve
    let lines: String = (0..30_000).map(|n| format!(": line {n:05}\n")).collect();
    let dockerfile = format!("FROM busybox\nRUN <<EOF\n#!/bin/sh\n{lines}test -n ok\nEOF\n");
    assert!(dockerfile.len() > 300_000);
    let (ok, err) = build(&kiln, &kiln.context("heredoc-file", &dockerfile, &[]));
    assert!(ok, "{}", &err[err.len().saturating_sub(2000)..]);

    // a 1 MB RUN of continuation lines is one `sh -c` string: above the kernel's 128 KiB per
    // string, refused by execve whatever kiln does (as in docker), with the instruction's line
    let continued: String = (0..32_000).map(|n| format!("  && echo line{n:05} >/dev/null \\\n")).collect();
    let dockerfile = format!("FROM busybox\nENV A=1\nRUN true \\\n{continued}  && true\n");
    assert!(dockerfile.len() > 1_000_000);
    let (ok, err) = build(&kiln, &kiln.context("continuation", &dockerfile, &[]));
    assert!(!ok);
    assert!(err.contains("E2BIG: argument list too long"), "{}", &err[err.len().saturating_sub(2000)..]);
    assert!(err.contains("Dockerfile:3"), "{}", &err[err.len().saturating_sub(2000)..]);
    // the snippet shows the instruction's head and tail, not its 32 000 lines
    assert!(err.contains("| >>> … (31987 more lines)"), "{}", &err[err.len().saturating_sub(2000)..]);

    // same for a plain heredoc of 300 KB (BuildKit's `sh -c <script>`)
    let dockerfile = format!("FROM busybox\nRUN <<EOF\n{lines}EOF\n");
    let (ok, err) = build(&kiln, &kiln.context("heredoc-inline", &dockerfile, &[]));
    assert!(!ok);
    assert!(err.contains("E2BIG: argument list too long"), "{}", &err[err.len().saturating_sub(2000)..]);
    assert!(err.contains("Dockerfile:2"), "{}", &err[err.len().saturating_sub(2000)..]);
}

/// A tmpfs with a tmpfs submount at `<context>/tree`: unmounted on drop.
struct MountTree(PathBuf);

impl Drop for MountTree {
    fn drop(&mut self) {
        for path in [self.0.join("sub"), self.0.clone()] {
            let _ = Command::new("umount").arg("-l").arg(&path).status();
        }
    }
}

#[test]
fn read_only_run_mount_bind_is_read_only_in_the_context_submounts() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let probe = "touch /ctx/tree/probe 2>&1 | grep -q 'Read-only file system' && \
                 touch /ctx/tree/sub/probe 2>&1 | grep -q 'Read-only file system' && \
                 test \"$(cat /ctx/tree/sub/file)\" = data";
    let context = kiln.context(
        "bind",
        &format!("FROM busybox\nRUN --mount=type=bind,target=/ctx sh -c \"{probe}\"\n"),
        &[],
    );
    let tree = MountTree(context.join("tree"));
    for path in [tree.0.clone(), tree.0.join("sub")] {
        std::fs::create_dir_all(&path).unwrap();
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&path).status();
        assert!(status.unwrap().success());
        std::fs::write(path.join("file"), "data").unwrap();
    }
    let (ok, err) = build(&kiln, &context);
    assert!(ok, "{}", &err[err.len().saturating_sub(2000)..]);
    assert!(!tree.0.join("sub/probe").exists());
}
