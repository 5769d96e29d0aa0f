#![allow(clippy::unwrap_used)]
//! `kiln build` end to end (root): COPY/ADD results that must match BuildKit's — `--parents`
//! (only the named sources, the `/./` pivot), symlink and socket sources, directory owners and
//! modes, heredoc files, symbolic `--chmod`, `ADD --exclude`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use testkit::{Kiln, ran, read};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode() & 0o7777
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.uid(), meta.gid())
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every path below `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if path.symlink_metadata().unwrap().is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

const PARENTS_FILES: &[(&str, &str)] = &[
    ("a/b/f.txt", "f\n"),
    ("a/b/g.txt", "g\n"),
    ("a/other.txt", "other\n"),
    ("unrelated.txt", "unrelated\n"),
    ("secret.env", "KEY=1\n"),
    ("dir/x/y.txt", "y\n"),
    ("dir/z.txt", "z\n"),
    ("w/one.go", "one\n"),
    ("w/two.go", "two\n"),
    ("w/three.txt", "three\n"),
];

const PARENTS_DOCKERFILE: &str = "FROM busybox\n\
    COPY --parents a/b/f.txt /file/\n\
    COPY --parents dir/x /dir/\n\
    COPY --parents w/*.go /wild/\n";

/// `COPY --parents` copies the named sources with their parent directories, nothing else.
#[test]
fn copy_parents_copies_only_the_named_sources() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context("ctx", PARENTS_DOCKERFILE, PARENTS_FILES);
    let (out, _) = kiln.build_local("out", &[ctx.to_str().unwrap()]);
    assert_eq!(tree(&out.join("file")), ["a", "a/b", "a/b/f.txt"]);
    assert_eq!(read(&out.join("file/a/b/f.txt")), "f\n");
    assert_eq!(tree(&out.join("dir")), ["dir", "dir/x", "dir/x/y.txt"]);
    assert_eq!(tree(&out.join("wild")), ["w", "w/one.go", "w/two.go"]);

    // with a .dockerignore: ignored files stay out, and still nothing unrelated comes in
    let ignored = kiln.context(
        "ignored",
        &format!("{PARENTS_DOCKERFILE}COPY --parents a /all-a/\n"),
        &[PARENTS_FILES, &[(".dockerignore", "w/two.go\na/b/g.txt\nsecret.env\n")]].concat(),
    );
    let (out, _) = kiln.build_local("out-ignored", &[ignored.to_str().unwrap()]);
    assert_eq!(tree(&out.join("file")), ["a", "a/b", "a/b/f.txt"]);
    assert_eq!(tree(&out.join("dir")), ["dir", "dir/x", "dir/x/y.txt"]);
    assert_eq!(tree(&out.join("wild")), ["w", "w/one.go"]);
    assert_eq!(tree(&out.join("all-a")), ["a", "a/b", "a/b/f.txt", "a/other.txt"]);
}

/// The `/./` pivot: the part before it is dropped from the destination, from a stage and from
/// the context; a missing named path fails.
#[test]
fn copy_parents_pivot() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context(
        "ctx",
        "FROM busybox AS base\n\
         RUN mkdir -p /test/a/b/c/d/e /test/a/b/c2 && touch /test/a/b/c/d/foo /test/a/b/c/d/e/bay /test/other\n\
         FROM busybox\n\
         COPY --from=base --parents /test/./a/b/c/d /out/\n\
         COPY --from=base --parents /test/a/b/./c/d /mid/\n\
         COPY --from=base --parents /test/a/b/c/d /full/\n\
         COPY --parents ctx/./sub/file.txt /pivot/\n",
        &[("ctx/sub/file.txt", "file\n"), ("ctx/sub/other.txt", "other\n")],
    );
    let (out, _) = kiln.build_local("out", &[ctx.to_str().unwrap()]);
    assert_eq!(
        tree(&out.join("out")),
        ["a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e", "a/b/c/d/e/bay", "a/b/c/d/foo"]
    );
    assert_eq!(tree(&out.join("mid")), ["c", "c/d", "c/d/e", "c/d/e/bay", "c/d/foo"]);
    assert!(out.join("full/test/a/b/c/d/e/bay").is_file());
    assert!(!out.join("full/test/other").exists() && !out.join("full/test/a/b/c2").exists());
    assert_eq!(tree(&out.join("pivot")), ["sub", "sub/file.txt"]);

    let missing = kiln.context(
        "missing",
        "FROM busybox\nCOPY --parents nope/./file.txt /out/\n",
        &[("nope/other", "x")],
    );
    let stderr = kiln.build_fails(&[missing.to_str().unwrap()]);
    assert!(stderr.contains("not found"), "{stderr}");
}

/// `COPY link /` copies the link's target under the link's name; a socket becomes an empty
/// regular file.
#[test]
fn symlink_and_socket_sources() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx =
        kiln.context("ctx", "FROM busybox\nCOPY link /\nCOPY sock /sock\n", &[("target.txt", "content\n")]);
    std::os::unix::fs::symlink("target.txt", ctx.join("link")).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(ctx.join("sock")).unwrap();
    let (out, _) = kiln.build_local("out", &[ctx.to_str().unwrap()]);
    let link = std::fs::symlink_metadata(out.join("link")).unwrap();
    assert!(link.is_file(), "{link:?}");
    assert_eq!(read(&out.join("link")), "content\n");
    assert!(!out.join("target.txt").exists());
    let sock = std::fs::symlink_metadata(out.join("sock")).unwrap();
    assert!(sock.is_file() && sock.len() == 0, "{sock:?}");
}

/// `COPY dir /dir` creates `/dir` as root (or the `--chown` owner) with 0755; an existing
/// destination directory keeps its owner and mode.
#[test]
fn directory_owners_and_modes() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context(
        "ctx",
        "FROM busybox\n\
         COPY dir /dir\n\
         RUN mkdir -p /existing && chown 1:1 /existing && chmod 0700 /existing\n\
         COPY --chown=33:33 dir /existing\n\
         COPY --chown=33:33 dir /created\n",
        &[("dir/f.txt", "f\n"), ("dir/sub/g.txt", "g\n")],
    );
    set_mode(&ctx.join("dir"), 0o750);
    set_mode(&ctx.join("dir/sub"), 0o700);
    let (out, _) = kiln.build_local("out", &[ctx.to_str().unwrap()]);
    assert_eq!((mode(&out.join("dir")), owner(&out.join("dir"))), (0o755, (0, 0)));
    assert_eq!((mode(&out.join("dir/sub")), owner(&out.join("dir/sub"))), (0o700, (0, 0)));
    assert_eq!((mode(&out.join("existing")), owner(&out.join("existing"))), (0o700, (1, 1)));
    assert_eq!(owner(&out.join("existing/f.txt")), (33, 33));
    assert_eq!(owner(&out.join("existing/sub")), (33, 33));
    assert_eq!((mode(&out.join("created")), owner(&out.join("created"))), (0o755, (33, 33)));
}

/// Heredoc files: parents are created, quotes stay, variables expand.
#[test]
fn heredoc_files_create_parents_and_keep_quotes() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context(
        "ctx",
        "FROM busybox\n\
         ENV NAME=kiln\n\
         COPY <<EOF /new/dir/file\n\
         \"double\" 'single' $NAME\n\
         EOF\n\
         COPY --chmod=0700 <<EOF /by/chmod/f\n\
         x\n\
         EOF\n",
        &[],
    );
    let (out, _) = kiln.build_local("out", &[ctx.to_str().unwrap()]);
    assert_eq!(read(&out.join("new/dir/file")), "\"double\" 'single' kiln\n");
    assert_eq!(mode(&out.join("new/dir")), 0o755);
    assert_eq!(mode(&out.join("by/chmod")), 0o700);
    assert_eq!(mode(&out.join("by/chmod/f")), 0o700);
}

/// Symbolic `--chmod` applies to each source mode; parents created by an octal `--chmod` get
/// it; the source mode is part of a symbolic copy's cache key.
#[test]
fn symbolic_chmod() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context(
        "ctx",
        "FROM busybox\n\
         COPY --chmod=u+x a.sh /a.sh\n\
         COPY --chmod=a+X d /d\n\
         COPY --chmod=u=rw,g=r,o=r a.sh /c\n\
         COPY --chmod=0750 a.sh /deep/new/\n\
         COPY --chmod=go-w b.txt /b.txt\n",
        &[("a.sh", "a\n"), ("b.txt", "b\n"), ("d/x", "x\n"), ("d/y.sh", "y\n")],
    );
    set_mode(&ctx.join("a.sh"), 0o644);
    set_mode(&ctx.join("b.txt"), 0o666);
    set_mode(&ctx.join("d/x"), 0o644);
    set_mode(&ctx.join("d/y.sh"), 0o744);
    let ctx_arg = ctx.to_str().unwrap();
    let (out, _) = kiln.build_local("out", &[ctx_arg]);
    assert_eq!(mode(&out.join("a.sh")), 0o744);
    assert_eq!(mode(&out.join("b.txt")), 0o644);
    assert_eq!(mode(&out.join("d/x")), 0o644);
    assert_eq!(mode(&out.join("d/y.sh")), 0o755);
    assert_eq!(mode(&out.join("c")), 0o644);
    assert_eq!(mode(&out.join("deep/new")), 0o750);
    assert_eq!(mode(&out.join("deep")), 0o750);
    assert_eq!(mode(&out.join("deep/new/a.sh")), 0o750);

    // a source mode change re-runs the symbolic copy of that file (the last step)
    set_mode(&ctx.join("b.txt"), 0o600);
    let (out, progress) = kiln.build_local("out2", &[ctx_arg]);
    let steps = ran(&progress);
    assert_eq!(steps.len(), 1, "{progress}");
    assert!(steps.iter().all(|s| s.contains("go-w")), "{steps:?}");
    assert_eq!(mode(&out.join("b.txt")), 0o600);
}

/// `ADD --exclude=* dir* /dest` excludes every file but still creates `/dest`.
#[test]
fn add_exclude_everything_still_creates_the_destination() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context(
        "ctx",
        "FROM busybox\nADD --exclude=* dir* /dest\nADD --exclude=*.txt dir* /txt/\n",
        &[("dir1/a.txt", "a\n"), ("dir2/b.txt", "b\n"), ("dir2/c.md", "c\n")],
    );
    let (out, _) = kiln.build_local("out", &[ctx.to_str().unwrap()]);
    assert!(out.join("dest").is_dir());
    assert!(tree(&out.join("dest")).is_empty(), "{:?}", tree(&out.join("dest")));
    assert_eq!(tree(&out.join("txt")), ["c.md"]);
}
