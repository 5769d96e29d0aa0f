#![allow(clippy::unwrap_used)]
//! `kiln build --build-context NAME=VALUE` end to end (root): a local directory,
//! `docker-image://REF` and `oci-layout://PATH`, each used by `FROM NAME`, `COPY --from=NAME` and
//! `RUN --mount=from=NAME`, and a stage of that name replaced by the context (BuildKit's
//! semantics); and the main context as a tar on stdin (`kiln build - < ctx.tar`).

use std::io::Write;
use std::process::{Command, Stdio};

use testkit::{Kiln, ran, read};

/// The Dockerfile every test builds: `src` is the named context in all three uses, and the
/// stage `base` (whose own instructions would write /never) is replaced by it.
const USES: &str = "FROM busybox AS base\n\
                    RUN echo never > /never\n\
                    FROM src AS fromsrc\n\
                    FROM busybox\n\
                    COPY --from=fromsrc /a.txt /from-base.txt\n\
                    COPY --from=src /a.txt /copied.txt\n\
                    RUN --mount=from=src,target=/m cat /m/b.txt > /mounted.txt\n\
                    COPY --from=base / /base/\n";

/// A local directory: its files in all three uses, its `.dockerignore` honoured, and its
/// content keys the steps that read it (an ignored or unread file changes nothing).
#[test]
fn local_directory_context() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context("ctx", USES, &[]);
    let src = kiln.files(
        "src",
        &[
            ("a.txt", "a one\n"),
            ("b.txt", "b one\n"),
            ("ignored.txt", "x\n"),
            (".dockerignore", "ignored.txt\n"),
        ],
    );
    let src_arg = format!("src={}", src.display());
    let base_arg = format!("base={}", src.display());
    let args = ["--build-context", &src_arg, "--build-context", &base_arg, ctx.to_str().unwrap()];
    let (out, cold) = kiln.build_local("out1", &args);
    assert_eq!(read(&out.join("from-base.txt")), "a one\n", "{cold}");
    assert_eq!(read(&out.join("copied.txt")), "a one\n");
    assert_eq!(read(&out.join("mounted.txt")), "b one\n");
    assert_eq!(read(&out.join("base/b.txt")), "b one\n", "the stage `base` is the directory");
    assert!(!out.join("base/never").exists(), "the replaced stage's RUN must not run");
    assert!(!out.join("base/ignored.txt").exists(), "the directory's .dockerignore applies");
    assert!(!cold.contains("echo never"), "{cold}");

    let (_, warm) = kiln.build_local("out2", &args);
    assert!(ran(&warm).is_empty(), "nothing changed: {warm}");

    // an ignored file changes nothing
    std::fs::write(src.join("ignored.txt"), "y\n").unwrap();
    let (_, ignored) = kiln.build_local("out3", &args);
    assert!(ran(&ignored).is_empty(), "an ignored file changed: {ignored}");

    // b.txt is read by the mount and by `COPY --from=base /`: those re-run, the COPYs of a.txt
    // stay cached
    std::fs::write(src.join("b.txt"), "b two\n").unwrap();
    let (out, edited) = kiln.build_local("out4", &args);
    let steps = ran(&edited);
    assert!(steps.iter().any(|s| s.contains("RUN --mount=from=src")), "{edited}");
    assert!(!steps.iter().any(|s| s.contains("/a.txt")), "{steps:?}");
    assert_eq!(read(&out.join("mounted.txt")), "b two\n");
}

/// `docker-image://REF`: the store image (with its config: ENV) in all three uses, and
/// `docker-image://scratch` as an empty base.
#[test]
fn docker_image_context() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let made = kiln.context(
        "made",
        "FROM busybox\nENV MARK=marked\nRUN echo a > /a.txt && echo b > /b.txt && echo marked > /marker\n",
        &[],
    );
    kiln.build(&["-t", "made:1", made.to_str().unwrap()]);
    let uses = kiln.context("uses", USES, &[]);
    let env = kiln.context(
        "env",
        &format!(
            "{USES}FROM fromsrc AS env\nRUN echo \"$MARK\" > /mark\nFROM busybox\nCOPY --from=env /mark /\n"
        ),
        &[],
    );
    let contexts =
        ["--build-context", "src=docker-image://made:1", "--build-context", "base=docker-image://made:1"];
    fn with<'a>(contexts: &[&'a str], ctx: &'a std::path::Path) -> Vec<&'a str> {
        let mut args = contexts.to_vec();
        args.push(ctx.to_str().unwrap());
        args
    }
    let (out, progress) = kiln.build_local("out1", &with(&contexts, &uses));
    assert_eq!(read(&out.join("from-base.txt")), "a\n", "{progress}");
    assert_eq!(read(&out.join("copied.txt")), "a\n");
    assert_eq!(read(&out.join("mounted.txt")), "b\n");
    assert_eq!(read(&out.join("base/marker")), "marked\n", "the stage `base` is the image");
    assert!(!out.join("base/never").exists());
    let (out, progress) = kiln.build_local("out2", &with(&contexts, &env));
    assert_eq!(read(&out.join("mark")), "marked\n", "the image's ENV is the base's: {progress}");

    // scratch: an empty base
    let empty = kiln.context("empty", "FROM busybox AS build\nCOPY <<EOF /out\nhello\nEOF\n", &[]);
    let (out, _) = kiln
        .build_local("out3", &["--build-context", "busybox=docker-image://scratch", empty.to_str().unwrap()]);
    let names: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["out"], "only the copied file, no busybox");

    // an image that does not exist is reported with its name
    let err = kiln.build_fails(&[
        "--build-context",
        "src=docker-image://127.0.0.1:9/nosuch:1",
        uses.to_str().unwrap(),
    ]);
    assert!(err.contains("127.0.0.1:9/nosuch:1"), "{err}");
}

/// `oci-layout://DIR[:TAG|@TAG|@DIGEST]`: an image exported as an OCI layout, used by another
/// store that never had it (BuildKit's testNamedOCILayoutContext).
#[test]
fn oci_layout_context() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let made = kiln.context(
        "made",
        "FROM busybox\nWORKDIR /test\nRUN echo a > a.txt && echo b > b.txt\nENV foo=bar\n",
        &[],
    );
    let tarball = kiln.path("layout.tar");
    let output = format!("type=oci,dest={}", tarball.display());
    kiln.build(&["-t", "made:v1", "-o", &output, made.to_str().unwrap()]);
    let layout = kiln.path("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let status = Command::new("tar").arg("-xf").arg(&tarball).arg("-C").arg(&layout).status().unwrap();
    assert!(status.success());
    let index: serde_json::Value = serde_json::from_str(&read(&layout.join("index.json"))).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();

    let other = kiln.sibling("other");
    other.import_busybox("busybox", &[r#"CMD ["sh"]"#]);
    let ctx = other.context(
        "ctx-oci",
        "FROM src AS imported\nRUN echo -n $foo > outfoo\n\
         FROM busybox\n\
         COPY --from=imported /test/outfoo /\n\
         COPY --from=src /test/a.txt /copied.txt\n\
         RUN --mount=from=src,target=/m cat /m/test/b.txt > /mounted.txt\n",
        &[],
    );
    for value in [format!("{}@{digest}", layout.display()), format!("{}:v1", layout.display())] {
        let arg = format!("src=oci-layout://{value}");
        let (out, progress) = other.build_local("out", &["--build-context", &arg, ctx.to_str().unwrap()]);
        assert_eq!(read(&out.join("outfoo")), "bar", "the layout image's ENV: {progress}");
        assert_eq!(read(&out.join("copied.txt")), "a\n");
        assert_eq!(read(&out.join("mounted.txt")), "b\n");
    }
    let arg = format!("src=oci-layout://{}:nosuchtag", layout.display());
    let err = other.build_fails(&["--build-context", &arg, ctx.to_str().unwrap()]);
    assert!(err.contains("has no image tagged nosuchtag"), "{err}");
}

/// `kiln build - < ctx.tar` (plain or gzip): the archive is the context, with its own Dockerfile
/// or an external `-f`; a Dockerfile on stdin still builds without a context.
#[test]
fn tar_context_on_stdin() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context(
        "ctx",
        "FROM busybox\nCOPY foo /foo\nCOPY sub/ /sub/\n",
        &[("foo", "foo contents\n"), ("sub/bar", "bar contents\n")],
    );
    let tarball = kiln.path("ctx.tar");
    let status = Command::new("tar").arg("-cf").arg(&tarball).arg("-C").arg(&ctx).arg(".").status().unwrap();
    assert!(status.success());
    let gzipped = kiln.path("ctx.tar.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", tarball.display(), gzipped.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let external = kiln.files("external", &[("Dockerfile", "FROM scratch\nCOPY sub/bar /only-bar\n")]);
    let external_file = external.join("Dockerfile");

    let build_stdin = |name: &str, input: &std::path::Path, extra: &[&str]| {
        let dest = kiln.path(name);
        let output = format!("type=local,dest={}", dest.display());
        let mut args = vec!["build", "--progress", "plain", "-o", &output];
        args.extend_from_slice(extra);
        args.push("-");
        let mut child = kiln
            .cmd(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let bytes = std::fs::read(input).unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        dest
    };
    for (name, input) in [("out-tar", &tarball), ("out-gz", &gzipped)] {
        let out = build_stdin(name, input, &[]);
        assert_eq!(read(&out.join("foo")), "foo contents\n", "{name}");
        assert_eq!(read(&out.join("sub/bar")), "bar contents\n", "{name}");
    }
    let out = build_stdin("out-ext", &tarball, &["-f", external_file.to_str().unwrap()]);
    assert_eq!(read(&out.join("only-bar")), "bar contents\n");
    assert!(!out.join("foo").exists());

    // a Dockerfile on stdin: no context
    let dockerfile = kiln.files("df", &[("Dockerfile", "FROM scratch\nCOPY <<EOF /hi\nhi\nEOF\n")]);
    let out = build_stdin("out-df", &dockerfile.join("Dockerfile"), &[]);
    assert_eq!(read(&out.join("hi")), "hi\n");
    // ... and a Dockerfile on stdin with -f is ambiguous, as buildx says
    let mut child = kiln
        .cmd(&["build", "-f", external_file.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"FROM scratch\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ambiguous Dockerfile source"), "{err}");
}
