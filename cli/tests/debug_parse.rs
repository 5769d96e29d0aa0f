//! `kiln debug parse`: the AST in both formats, and parse errors rendered with
//! `file:line:col`, the source line and a caret, exit code 1.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

fn kiln(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = testkit::kiln_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kiln");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(bytes) = stdin {
        pipe.write_all(bytes).expect("write stdin");
    }
    drop(pipe);
    child.wait_with_output().expect("wait for kiln")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A unique temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("kiln-debug-parse-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn buildkit_format_matches_a_conformance_result() {
    let case = repo().join("testdata/conformance/buildkit-parser/testfiles/brimstone-consuldock");
    let file = case.join("Dockerfile");
    let output = kiln(&["debug", "parse", "--format", "buildkit", file.to_str().expect("utf-8 path")], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let want = std::fs::read(case.join("result")).expect("read result");
    assert_eq!(String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&want));
}

#[test]
fn json_format_from_stdin_has_stages_and_locations() {
    let input = b"FROM busybox AS base\nRUN --mount=type=cache,target=/c echo hi\n";
    let output = kiln(&["debug", "parse", "-"], Some(input));
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json output");
    let stage = &json["stages"][0];
    assert_eq!(stage["name"], "base");
    assert_eq!(stage["base"], "busybox");
    let run = &stage["instructions"][0];
    assert_eq!(run["location"]["start_line"], 2);
    assert_eq!(run["command"]["kind"], "run");
    assert_eq!(run["command"]["mounts"][0]["target"], "/c");
}

#[test]
fn flag_error_is_located_with_source_line_and_caret() {
    let dir = TempDir::new("flag");
    let file = dir.0.join("Dockerfile");
    std::fs::write(&file, "FROM busybox\n\nCOPY --chmodd=755 a /b\n").expect("write Dockerfile");
    let path = file.to_str().expect("utf-8 path");
    let output = kiln(&["debug", "parse", "--format", "json", path], None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    let want = format!(
        "error: {path}:3:6: unknown flag: --chmodd (did you mean chmod?)\n  |\n3 | COPY --chmodd=755 a /b\n  |      ^^^^^^^^^^^^\n"
    );
    assert_eq!(stderr(&output), want);
    // BuildKit's line parser does not validate flags: its dump keeps them as written.
    let output = kiln(&["debug", "parse", "--format", "buildkit", path], None);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains(r#"(copy ["--chmodd=755"] "a" "/b")"#));
}

#[test]
fn syntax_error_from_stdin_names_stdin() {
    let output = kiln(&["debug", "parse", "--format", "buildkit", "-"], Some(b"FROM a\nENV PATH\n"));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: <stdin>:2:1: ENV must have two arguments\n  |\n2 | ENV PATH\n  | ^^^^^^^^\n"
    );
}

#[test]
fn unterminated_heredoc_points_at_its_instruction() {
    let output = kiln(&["debug", "parse", "-"], Some(b"FROM a\nRUN <<EOF\necho x\n"));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.starts_with("error: <stdin>:2:"), "{err}");
    assert!(err.contains("unterminated heredoc `EOF`"), "{err}");
    assert!(err.contains("2 | RUN <<EOF\n"), "{err}");
    assert!(err.trim_end().ends_with('^'), "{err}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let output = kiln(&["debug", "parse", "/nonexistent/kiln/Dockerfile"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("/nonexistent/kiln/Dockerfile"), "{}", stderr(&output));
}
