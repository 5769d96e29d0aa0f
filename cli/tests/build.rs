#![allow(clippy::unwrap_used)]
//! `kiln build` from the command line: flag validation and errors that need no build. The end to
//! end builds are in `build_e2e.rs`.

use std::path::{Path, PathBuf};
use std::process::Output;

fn kiln(root: &Path, args: &[&str]) -> Output {
    testkit::kiln_command().arg("--root").arg(root).args(args).output().unwrap()
}

fn fails(root: &Path, args: &[&str]) -> String {
    let out = kiln(root, args);
    assert_eq!(out.status.code(), Some(1), "kiln {args:?} should fail with 1");
    String::from_utf8(out.stderr).unwrap()
}

fn context() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/build/multistage")
}

#[test]
fn foreign_platform_steps_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY Dockerfile /\nRUN true\n").unwrap();
    let ctx = ctx.to_str().unwrap();
    let err = fails(tmp.path(), &["build", "--platform", "linux/s390x", ctx]);
    assert!(err.contains("cannot run a step for platform linux/s390x") && err.contains("RUN true"), "{err}");
    assert!(err.contains("Dockerfile:3"), "{err}");
    let err = fails(tmp.path(), &["build", "--platform", "linux/amd64,linux/arm64", ctx]);
    assert!(err.contains("one platform at a time"), "{err}");
    let err = fails(tmp.path(), &["build", "--platform", "nonsense", ctx]);
    assert!(err.contains("invalid --platform \"nonsense\""), "{err}");
}

#[test]
fn bad_outputs_and_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = context();
    let ctx = ctx.to_str().unwrap();
    let err = fails(tmp.path(), &["build", "-o", "type=floppy,dest=x", ctx]);
    assert!(err.contains("unknown type `floppy`"), "{err}");
    let err = fails(tmp.path(), &["build", "-o", "type=oci", ctx]);
    assert!(err.contains("needs dest=FILE"), "{err}");
    let err = fails(tmp.path(), &["build", "--push", ctx]);
    assert!(err.contains("--push needs a name"), "{err}");
    let err = fails(tmp.path(), &["build", "-t", "Bad Name", ctx]);
    assert!(err.contains("invalid tag"), "{err}");
    let err = fails(tmp.path(), &["build", "--secret", "id=a,src=x,env=y", ctx]);
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn missing_context_or_dockerfile_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    let err = fails(tmp.path(), &["build", missing.to_str().unwrap()]);
    assert!(err.contains("is not a directory") && err.contains("nowhere"), "{err}");
    let err = fails(tmp.path(), &["build", "-f", "/nonexistent/Dockerfile.x", context().to_str().unwrap()]);
    assert!(err.contains("/nonexistent/Dockerfile.x"), "{err}");
}

/// Dockerfiles built to exhaust the stack: a clean error at the instruction, exit code 1, no
/// crash (a stack overflow aborts with 134, a panic exits with 101).
#[test]
fn deeply_nested_dockerfiles_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let nested = format!("{}a{}", "${X:-".repeat(10_000), "}".repeat(10_000));
    let cases = [
        (format!("FROM scratch\nENV Y={nested}\n"), "Dockerfile:2", "nested more than 100 levels deep"),
        (format!("FROM scratch\nWORKDIR \"{nested}\"\n"), "Dockerfile:2", "nested more than 100 levels deep"),
        (format!("ARG A={nested}\nFROM scratch\n"), "Dockerfile:1", "nested more than 100 levels deep"),
        (
            format!("FROM scratch\n{}RUN x\n", "ONBUILD ".repeat(8_000)),
            "Dockerfile:2",
            "ONBUILD nested more than 16",
        ),
        (
            format!("FROM scratch\n{}RUN x\n", "ONBUILD \\\n".repeat(50_000)),
            "Dockerfile:2",
            "ONBUILD nested more than 16",
        ),
    ];
    for (index, (dockerfile, location, message)) in cases.iter().enumerate() {
        let ctx = tmp.path().join(format!("ctx{index}"));
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let err = fails(&tmp.path().join("root"), &["build", ctx.to_str().unwrap()]);
        assert!(err.contains(message), "case {index}: {err}");
        assert!(err.contains(location), "case {index}: {err}");
    }
}

/// buildx flags kiln does not implement fail naming the flag, not with clap's "unexpected argument".
#[test]
fn unsupported_buildx_flags_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = context();
    let ctx = ctx.to_str().unwrap();
    let cases: [&[&str]; 1] = [&["--builder", "x"]];
    for flags in cases {
        let mut args = vec!["build"];
        args.extend_from_slice(flags);
        args.push(ctx);
        let err = fails(tmp.path(), &args);
        let flag = flags[0].split('=').next().unwrap();
        assert_eq!(err.trim(), format!("error: `{flag}` is not supported by kiln yet"), "{args:?}");
    }
}

/// Attestations: turning them off is accepted, asking for one fails clearly.
#[test]
fn attestations_are_refused_unless_turned_off() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY Dockerfile /\n").unwrap();
    let ctx = ctx.to_str().unwrap();
    let ok = kiln(tmp.path(), &["build", "--check", "--provenance=false", "--sbom", "false", ctx]);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    assert!(stderr.contains("Check complete, no warnings found."), "{stderr}");
    let cases: [&[&str]; 4] =
        [&["--provenance=true"], &["--provenance", "mode=max"], &["--sbom=true"], &["--attest", "type=sbom"]];
    for flags in cases {
        let mut args = vec!["build"];
        args.extend_from_slice(flags);
        args.push(ctx);
        let err = fails(tmp.path(), &args);
        assert!(err.contains("attestations are not supported by kiln yet"), "{args:?}: {err}");
    }
}

/// `--check` / `--call check` run the build checks without building: buildx's report and exit
/// status, `check=error=true` also failing a plain build.
#[test]
fn check_reports_findings_without_building() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    let ctx_arg = ctx.to_str().unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch AS base\nCOPY Dockerfile /\n").unwrap();
    let clean = kiln(tmp.path(), &["build", "--check", ctx_arg]);
    let stderr = String::from_utf8_lossy(&clean.stderr);
    assert!(clean.status.success(), "{stderr}");
    assert!(stderr.contains("Check complete, no warnings found."), "{stderr}");

    std::fs::write(ctx.join("Dockerfile"), "FROM scratch as base\nCMD run me\n").unwrap();
    for flags in [&["--check"][..], &["--call", "check"][..]] {
        let mut args = vec!["build"];
        args.extend_from_slice(flags);
        args.push(ctx_arg);
        let err = fails(tmp.path(), &args);
        assert!(err.contains("Check complete, 2 warnings have been found!"), "{err}");
        assert!(
            err.contains(
                "WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/"
            ),
            "{err}"
        );
        assert!(err.contains("   1 | >>> FROM scratch as base"), "{err}");
        assert!(err.contains("JSON arguments recommended for CMD"), "{err}");
    }
    let err = fails(tmp.path(), &["build", "--call", "outline", ctx_arg]);
    assert!(err.contains("`--call=outline` is not supported by kiln yet"), "{err}");

    std::fs::write(ctx.join("Dockerfile"), "# check=error=true\nFROM scratch as base\n").unwrap();
    let err = fails(tmp.path(), &["build", "--progress", "plain", ctx_arg]);
    assert!(err.contains("1 warning found") && err.contains("FromAsCasing:"), "{err}");
    assert!(err.contains("ERROR: lint violation found for rules: FromAsCasing"), "{err}");
}
