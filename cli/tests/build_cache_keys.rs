#![allow(clippy::unwrap_used)]
//! `kiln build` end to end (root): what a step's cache key covers. Each test edits its context
//! between builds and counts the steps that ran (plain progress), then checks the image.

use testkit::{Kiln, ran, read};

/// `RUN --mount=type=bind` from the context (the whole context, or a sub-path) is keyed by the
/// content of what it mounts: an edit behind the mount re-runs the step.
#[test]
fn bind_mounts_of_the_context_are_keyed_by_their_content() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context(
        "ctx",
        "FROM busybox\n\
         RUN --mount=target=/sub,source=sub cp /sub/f /from-sub\n\
         RUN --mount=target=/src cp /src/file /from-root\n",
        &[("file", "one\n"), ("sub/f", "sub one\n")],
    );
    let ctx_arg = ctx.to_str().unwrap();
    let (out, cold) = kiln.build_local("out1", &[ctx_arg]);
    assert_eq!(ran(&cold).len(), 2, "{cold}");
    assert_eq!(read(&out.join("from-root")), "one\n");

    let (_, warm) = kiln.build_local("out2", &[ctx_arg]);
    assert!(ran(&warm).is_empty(), "nothing changed: {warm}");

    // an edit outside `sub`: only the step mounting the whole context re-runs
    std::fs::write(ctx.join("file"), "two\n").unwrap();
    let (out, edited) = kiln.build_local("out3", &[ctx_arg]);
    let steps = ran(&edited);
    assert_eq!(steps.len(), 1, "{edited}");
    assert!(steps.iter().all(|s| s.contains("cp /src/file")), "{steps:?}");
    assert_eq!(read(&out.join("from-root")), "two\n", "the image has the new content");
    assert_eq!(read(&out.join("from-sub")), "sub one\n");

    // an edit inside `sub`: both mount it (and the second builds on the first)
    std::fs::write(ctx.join("sub/f"), "sub two\n").unwrap();
    let (out, edited) = kiln.build_local("out4", &[ctx_arg]);
    assert_eq!(ran(&edited).len(), 2, "{edited}");
    assert_eq!(read(&out.join("from-sub")), "sub two\n");
}

/// `RUN --mount=from=stage,source=out` is keyed by the content of `out` only.
#[test]
fn bind_mounts_of_a_stage_path_are_keyed_by_that_path() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context(
        "ctx",
        "FROM busybox AS stage\n\
         COPY gen.txt /out/gen.txt\n\
         COPY other.txt /other.txt\n\
         FROM busybox\n\
         RUN --mount=from=stage,source=out,target=/m cat /m/gen.txt > /result\n",
        &[("gen.txt", "gen one\n"), ("other.txt", "other one\n")],
    );
    let ctx_arg = ctx.to_str().unwrap();
    let (out, cold) = kiln.build_local("out1", &[ctx_arg]);
    assert_eq!(ran(&cold).len(), 3, "{cold}");
    assert_eq!(read(&out.join("result")), "gen one\n");

    // the stage changes elsewhere: the mounting step stays cached
    std::fs::write(ctx.join("other.txt"), "other two\n").unwrap();
    let (_, edited) = kiln.build_local("out2", &[ctx_arg]);
    let steps = ran(&edited);
    assert_eq!(steps.len(), 1, "{edited}");
    assert!(steps.iter().all(|s| s.contains("COPY other.txt")), "{steps:?}");

    // the mounted path changes: it re-runs
    std::fs::write(ctx.join("gen.txt"), "gen two\n").unwrap();
    let (out, edited) = kiln.build_local("out3", &[ctx_arg]);
    let steps = ran(&edited);
    assert!(steps.iter().any(|s| s.contains("RUN --mount")), "{steps:?}");
    assert_eq!(read(&out.join("result")), "gen two\n");
}

/// `--no-cache` starts `RUN --mount=type=cache` empty, and later builds reuse what that build
/// left (BuildKit's testCacheMountModeNoCache).
#[test]
fn no_cache_starts_cache_mounts_empty() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context(
        "ctx",
        "FROM busybox\n\
         ARG FOO=abc\n\
         RUN --mount=type=cache,target=/cache,mode=0773 touch /cache/$FOO && ls /cache | wc -l > /out\n",
        &[],
    );
    let ctx_arg = ctx.to_str().unwrap();
    let (out, _) = kiln.build_local("out1", &[ctx_arg]);
    assert_eq!(read(&out.join("out")).trim(), "1");
    // --no-cache: abc is gone, def alone
    let (out, _) = kiln.build_local("out2", &["--no-cache", "--build-arg", "FOO=def", ctx_arg]);
    assert_eq!(read(&out.join("out")).trim(), "1");
    // without it, the mount has what the --no-cache build left: def and ghi
    let (out, _) = kiln.build_local("out3", &["--build-arg", "FOO=ghi", ctx_arg]);
    assert_eq!(read(&out.join("out")).trim(), "2");
}
