#![allow(clippy::unwrap_used)]
//! BuildKit's own Dockerfile frontend tests (`frontend/dockerfile/*_test.go`), ported as data to
//! `testdata/buildkit-port/` (format: its README.md) and built with the kiln binary.
//!
//! `port_data_is_consistent` checks the data alone (no root): every case file valid, every Go
//! function of `FUNCTIONS.txt` a case directory or a `SKIPPED.md` row, at least `MIN_CASES` cases.
//! `port_cases_build` (root; in CI a failure when not root) builds every case in its own `--root`
//! with a busybox base imported as `busybox`, checks what the case asserts and reports every
//! failing case at once. Cases listed in the `known-failures` block of `KNOWN-DIFFERENCES.md` must
//! fail; one that passes fails the test until its line is removed.
//!
//! Environment: `KILN_PORT_FILTER=<substring>[,<substring>...]` builds only the cases whose
//! directory name holds one of them; `KILN_PORT_JOBS=<n>` cases at once (default 2);
//! `KILN_PORT_TIMEOUT=<seconds>` per build (300); `KILN_PORT_KEEP=1` keeps the work directories
//! (each build's stderr in `kiln.stderr`) and prints where.

#[path = "buildkit_port/data.rs"]
mod data;
#[path = "buildkit_port/serve.rs"]
mod serve;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use data::{Build, CaseDir, Check, ConfigCheck, Expect, Kind, Output};

/// The number of ported cases the suite must hold at least (raise it as cases are added).
const MIN_CASES: usize = 259;

#[test]
fn port_data_is_consistent() {
    let cases = match data::load_cases() {
        Ok(cases) => cases,
        Err(errors) => panic!("{} invalid case files:\n{}", errors.len(), errors.join("\n")),
    };
    let mut errors = data::coverage_errors(&cases);
    if cases.len() < MIN_CASES {
        errors.push(format!("{} cases, fewer than MIN_CASES = {MIN_CASES}", cases.len()));
    }
    assert!(errors.is_empty(), "{} problems in testdata/buildkit-port:\n{}", errors.len(), errors.join("\n"));
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// `/etc/passwd` and `/etc/group` of the `busybox` image BuildKit's tests use (its users and group
/// names: gid 65534 is `nobody`, not Debian's `nogroup`).
const BUSYBOX_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
";
const BUSYBOX_GROUP: &str = "root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nobody:x:65534:
";

/// Makes the busybox root filesystem (`testdata/rootfs/busybox-rootfs.sh` with the busybox image's
/// users and groups).
fn busybox_rootfs(dir: &Path) -> Result<PathBuf, String> {
    let rootfs = dir.join("busybox-rootfs");
    run(Command::new("cp").arg("-a").arg(testkit::busybox_rootfs()).arg(&rootfs))?;
    for (file, text) in [("etc/passwd", BUSYBOX_PASSWD), ("etc/group", BUSYBOX_GROUP)] {
        std::fs::write(rootfs.join(file), text).map_err(|e| format!("{file}: {e}"))?;
    }
    Ok(rootfs)
}

/// Makes the busybox root filesystem (with extra passwd/group lines) as a tarball.
fn base_tarball(dir: &Path, rootfs: &Path, passwd: &[String], group: &[String]) -> Result<PathBuf, String> {
    let tarball = dir.join("busybox.tar");
    let tree = if passwd.is_empty() && group.is_empty() {
        rootfs.to_path_buf()
    } else {
        let tree = dir.join("busybox-rootfs-case");
        run(Command::new("cp").arg("-a").arg(rootfs).arg(&tree))?;
        for (file, lines) in [("etc/passwd", passwd), ("etc/group", group)] {
            let path = tree.join(file);
            let mut text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            for line in lines {
                text.push_str(line);
                text.push('\n');
            }
            std::fs::write(&path, text).map_err(|e| e.to_string())?;
        }
        tree
    };
    run(Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--numeric-owner", "-C"])
        .arg(&tree)
        .arg("-cf")
        .arg(&tarball)
        .arg("."))?;
    Ok(tarball)
}

/// The outcome of one kiln invocation.
struct Ran {
    success: bool,
    stderr: String,
}

/// Runs kiln in `cwd` (logs in `work`).
fn kiln(
    root: &Path,
    (work, cwd): (&Path, &Path),
    args: &[String],
    env: &BTreeMap<String, String>,
    stdin: Option<&Path>,
) -> Result<Ran, String> {
    let log = |name: &str| std::fs::File::create(work.join(name)).map_err(|e| e.to_string());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.arg("--root")
        .arg(root)
        .args(args)
        .current_dir(cwd)
        .env_remove("KILN_ROOT")
        .env_remove("SOURCE_DATE_EPOCH")
        .envs(env)
        .stdin(match stdin {
            Some(path) => {
                Stdio::from(std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            None => Stdio::null(),
        })
        .stdout(log("kiln.stdout")?)
        .stderr(log("kiln.stderr")?);
    let mut child = cmd.spawn().map_err(|e| format!("spawn kiln: {e}"))?;
    let timeout = Duration::from_secs(env_number("KILN_PORT_TIMEOUT", 300));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("kiln {} timed out after {}s", args.join(" "), timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(work.join("kiln.stderr")).unwrap_or_default();
    Ok(Ran { success: status.success(), stderr })
}

/// `(cached, ran)` counts of the non-FROM instruction steps in a plain progress log.
fn step_counts(progress: &str) -> (usize, usize) {
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    let mut status: BTreeMap<&str, &str> = BTreeMap::new();
    for line in progress.lines() {
        let Some((number, text)) = line.strip_prefix('#').and_then(|rest| rest.split_once(' ')) else {
            continue;
        };
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if text == "CACHED" || text.starts_with("DONE") {
            status.insert(number, if text == "CACHED" { "CACHED" } else { "DONE" });
        } else if text.starts_with('[') {
            names.entry(number).or_insert(text);
        }
    }
    let steps = status.iter().filter(|(n, _)| {
        names.get(*n).is_some_and(|name| !name.starts_with("[internal]") && !name.contains("] FROM "))
    });
    let cached = steps.clone().filter(|(_, s)| **s == "CACHED").count();
    (cached, steps.count() - cached)
}

/// Applies a build's context edits in a fixed order: remove, mkdir, write, append, symlink, socket,
/// chmod.
fn apply_edits(ctx: &Path, b: &Build) -> Result<(), String> {
    let path = |p: &str| data::relative(p).map(|r| ctx.join(r));
    let parent = |p: &Path| std::fs::create_dir_all(p.parent().unwrap()).map_err(|e| e.to_string());
    for p in &b.remove {
        let p = path(p)?;
        let meta = std::fs::symlink_metadata(&p).map_err(|e| format!("remove {}: {e}", p.display()))?;
        let removed = if meta.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        removed.map_err(|e| format!("remove {}: {e}", p.display()))?;
    }
    for p in &b.mkdir {
        std::fs::create_dir_all(path(p)?).map_err(|e| e.to_string())?;
    }
    for (p, content) in &b.write {
        let p = path(p)?;
        parent(&p)?;
        std::fs::write(&p, content).map_err(|e| format!("write {}: {e}", p.display()))?;
    }
    for (p, content) in &b.append {
        let p = path(p)?;
        parent(&p)?;
        let mut text = std::fs::read(&p).unwrap_or_default();
        text.extend_from_slice(content.as_bytes());
        std::fs::write(&p, text).map_err(|e| format!("append {}: {e}", p.display()))?;
    }
    for (link, target) in &b.symlink {
        let p = path(link)?;
        parent(&p)?;
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, &p).map_err(|e| format!("symlink {}: {e}", p.display()))?;
    }
    for p in &b.socket {
        let p = path(p)?;
        parent(&p)?;
        // binding leaves the socket file behind when the listener is dropped
        std::os::unix::net::UnixListener::bind(&p).map_err(|e| format!("socket {}: {e}", p.display()))?;
    }
    for (p, mode) in &b.chmod {
        let p = path(p)?;
        let mode = data::parse_mode(mode)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", p.display()))?;
    }
    Ok(())
}

/// Failures of one `[[build.check]]` against the exported root `out-N` of the work dir.
fn check_path(case_dir: &Path, work: &Path, n: usize, c: &Check) -> Vec<String> {
    let mut fails = Vec::new();
    let at = |n: usize| {
        let out = work.join(format!("out-{n}"));
        if c.path == "." { out } else { out.join(&c.path) }
    };
    let p = at(n);
    let meta = std::fs::symlink_metadata(&p).ok();
    let mut fail = |what: String| fails.push(format!("{}: {what}", c.path));
    let wants_absent = c.absent == Some(true) || c.exists == Some(false);
    match (&meta, wants_absent) {
        (Some(_), true) => fail("exists, expected absent".to_owned()),
        (None, false) => fail("does not exist".to_owned()),
        _ => {}
    }
    let Some(meta) = meta else { return fails };
    if let Some(kind) = c.kind {
        let got = if meta.file_type().is_symlink() {
            Kind::Symlink
        } else if meta.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        };
        if got != kind || (kind == Kind::File && !meta.is_file()) {
            fail(format!("is a {:?} ({:?}), expected {kind:?}", got, meta.file_type()));
        }
    }
    if let Some(mode) = &c.mode {
        let want = data::parse_mode(mode).unwrap_or(u32::MAX);
        if meta.mode() & 0o7777 != want {
            fail(format!("mode {:04o}, expected {want:04o}", meta.mode() & 0o7777));
        }
    }
    if let Some(owner) = &c.owner {
        let got = format!("{}:{}", meta.uid(), meta.gid());
        if &got != owner {
            fail(format!("owner {got}, expected {owner}"));
        }
    }
    if let Some(target) = &c.symlink {
        match std::fs::read_link(&p) {
            Ok(got) if got == Path::new(target) => {}
            Ok(got) => fail(format!("symlink to {}, expected {target}", got.display())),
            Err(e) => fail(format!("not a symlink ({e}), expected one to {target}")),
        }
    }
    if c.content.is_some() || c.contains.is_some() || c.not_contains.is_some() {
        match std::fs::read(&p).map(|b| String::from_utf8_lossy(&b).into_owned()) {
            Err(e) => fail(format!("cannot read: {e}")),
            Ok(got) => {
                if let Some(want) = c.content.as_ref().filter(|w| **w != got) {
                    fail(format!("content {got:?}, expected {want:?}"));
                }
                if let Some(want) = c.contains.as_ref().filter(|w| !got.contains(w.as_str())) {
                    fail(format!("content {got:?} does not contain {want:?}"));
                }
                if let Some(want) = c.not_contains.as_ref().filter(|w| got.contains(w.as_str())) {
                    fail(format!("content {got:?} contains {want:?}"));
                }
            }
        }
    }

    let earlier = [(c.same_as_build, true), (c.differs_from_build, false)];
    for (earlier, same) in earlier.into_iter().filter_map(|(b, same)| Some((b?, same))) {
        match (std::fs::read(&p), std::fs::read(at(earlier))) {
            (Ok(got), Ok(before)) if (got == before) != same => fail(format!(
                "content {:?} {} build {earlier}'s {:?}",
                String::from_utf8_lossy(&got),
                if same { "differs from" } else { "equals" },
                String::from_utf8_lossy(&before)
            )),
            (Ok(_), Ok(_)) => {}
            (got, before) => {
                fail(format!("cannot compare with build {earlier}: {:?} / {:?}", got.err(), before.err()))
            }
        }
    }
    if let Some(file) = &c.equals_file {
        match (std::fs::read(&p), std::fs::read(case_dir.join(file))) {
            (Ok(got), Ok(want)) if got != want => fail(format!("content differs from {file}")),
            (Ok(_), Ok(_)) => {}
            (got, want) => fail(format!("cannot compare with {file}: {:?} / {:?}", got.err(), want.err())),
        }
    }
    if let Some(want) = c.mtime.filter(|want| meta.mtime() != *want) {
        fail(format!("mtime {}, expected {want}", meta.mtime()));
    }
    if let Some(other) = &c.hardlink_of {
        match std::fs::symlink_metadata(work.join(format!("out-{n}")).join(other)) {
            Ok(o) if (o.dev(), o.ino()) == (meta.dev(), meta.ino()) => {}
            Ok(_) => fail(format!("is not a hard link of {other}")),
            Err(e) => fail(format!("cannot compare with {other}: {e}")),
        }
    }
    if let Some(want) = &c.files {
        let mut want = want.clone();
        want.sort();
        match std::fs::read_dir(&p) {
            Ok(entries) => {
                let mut got: Vec<String> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                got.sort();
                if got != want {
                    fail(format!("holds {got:?}, expected {want:?}"));
                }
            }
            Err(e) => fail(format!("cannot list: {e}")),
        }
    }
    fails
}

/// The image config of a build, found through its `--metadata-file`.
fn image_config(root: &Path, metadata: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read(metadata).map_err(|e| format!("metadata file: {e}"))?;
    let meta: serde_json::Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    let digest = meta["containerimage.config.digest"].as_str().ok_or("metadata holds no config digest")?;
    let hex = digest.strip_prefix("sha256:").ok_or("config digest is not sha256")?;
    let blob = std::fs::read(root.join("content/blobs/sha256").join(hex)).map_err(|e| e.to_string())?;
    serde_json::from_slice(&blob).map_err(|e| e.to_string())
}

fn check_config(config: &serde_json::Value, c: &ConfigCheck) -> Vec<String> {
    let mut fails = Vec::new();
    let got = config.pointer(&c.pointer).filter(|v| !v.is_null());
    if let Some(value) = got.filter(|_| c.absent == Some(true)) {
        fails.push(format!("config {}: present ({value}), expected absent", c.pointer));
    }
    if c.absent == Some(false) && got.is_none() {
        fails.push(format!("config {}: absent", c.pointer));
    }
    let empty = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if c.nonempty == Some(true) && got.is_none_or(empty) {
        fails.push(format!("config {}: {:?}, expected a non-empty value", c.pointer, got));
    }
    if let Some(want) = &c.equals {
        let want = serde_json::to_value(want).unwrap();
        if got != Some(&want) {
            fails.push(format!(
                "config {}: {}, expected {want}",
                c.pointer,
                got.map_or("absent".into(), |v| v.to_string())
            ));
        }
    }
    if let Some(want) = &c.contains {
        let text = got.map(|v| v.to_string()).unwrap_or_default();
        if !text.contains(want.as_str()) {
            fails.push(format!("config {}: {text:?} does not contain {want:?}", c.pointer));
        }
    }
    fails
}

/// The end of a failed build's stderr: the output of the step that failed and the last lines,
/// each cut to 300 characters.
fn excerpt(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let failed_step = lines.iter().rev().find_map(|l| {
        let (number, text) = l.strip_prefix('#')?.split_once(' ')?;
        text.starts_with("ERROR").then_some(number)
    });
    let mut picked: Vec<&str> = match failed_step {
        Some(n) => {
            let prefix = format!("#{n} ");
            let output: Vec<&str> = lines
                .iter()
                .filter(|l| {
                    l.starts_with(&prefix) && l[prefix.len()..].starts_with(|c: char| c.is_ascii_digit())
                })
                .copied()
                .collect();
            output[output.len().saturating_sub(5)..].to_vec()
        }
        None => Vec::new(),
    };
    picked.extend(&lines[lines.len().saturating_sub(4)..]);
    let cut = |l: &str| match l.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &l[..i]),
        None => l.to_owned(),
    };
    picked.iter().map(|l| cut(l)).collect::<Vec<_>>().join("\n      | ")
}

/// Runs one build of a case; returns its failures (empty: it did what the case expects) and
/// whether it ended as expected (succeeded or failed), so that the next builds can run.
/// Replaces each `{oci-digest:N}` by the digest of the first manifest in the `index.json` of
/// build N's OCI output (`{work}/out-N`), as a Go test reads it from the exported layout.
fn oci_digests(text: &str, work: &Path) -> String {
    let mut out = text.to_owned();
    while let Some(start) = out.find("{oci-digest:") {
        let Some(len) = out[start..].find('}') else { break };
        let n = &out[start + "{oci-digest:".len()..start + len];
        let index = work.join(format!("out-{n}")).join("index.json");
        let digest = std::fs::read(&index)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|v| v["manifests"][0]["digest"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("no-digest-in-{}", index.display()));
        out.replace_range(start..start + len + 1, &digest);
    }
    out
}

fn run_build(
    case: &CaseDir,
    n: usize,
    b: &Build,
    dirs: (&Path, &Path, &Path),
    server: Option<&serve::Server>,
) -> Result<(Vec<String>, bool), String> {
    let (work, root, ctx) = dirs;
    if let Some(secs) = b.sleep_before {
        std::thread::sleep(Duration::from_secs(secs.min(10)));
    }
    apply_edits(ctx, b)?;
    let url = server.map_or(String::new(), |s| s.url.clone());
    let subst = |s: &str| {
        let s = s
            .replace("{context}", &ctx.to_string_lossy())
            .replace("{case}", &case.dir.to_string_lossy())
            .replace("{work}", &work.to_string_lossy())
            .replace("{server}", &url);
        oci_digests(&s, work)
    };
    let mut dockerfile = match b.dockerfile.strip_prefix("context/") {
        Some(inner) => ctx.join(inner),
        None => case.dir.join(&b.dockerfile),
    };
    if let Some(server) = server.filter(|_| !b.no_file_flag) {
        // the server's port is known only now: write the Dockerfile with its URL
        let text =
            std::fs::read_to_string(&dockerfile).map_err(|e| format!("{}: {e}", dockerfile.display()))?;
        let served = text.replace("{{server}}", &server.url);
        if served != text {
            let name = dockerfile.file_name().unwrap().to_string_lossy().into_owned();
            dockerfile = work.join(format!("{name}.served-{n}"));
            std::fs::write(&dockerfile, served).map_err(|e| e.to_string())?;
        }
    }
    let mut args: Vec<String> = vec!["build".into(), "--progress".into(), "plain".into()];
    let in_context = |p: &Path| match p.strip_prefix(ctx) {
        Ok(rel) if b.cwd_context => rel.to_string_lossy().into_owned(),
        _ => p.to_string_lossy().into_owned(),
    };
    if !b.no_file_flag {
        args.extend(["-f".into(), in_context(&dockerfile)]);
    }
    if b.no_cache {
        args.push("--no-cache".into());
    }
    let out = work.join(format!("out-{n}"));
    let metadata = work.join(format!("metadata-{n}.json"));
    match b.output {
        Output::Local => args.push(format!("--output=type=local,dest={}", out.display())),
        // a case may spell its own tar/oci output (attributes); it must write `{work}/out-N.tar`
        Output::Tar | Output::Oci if b.args.iter().any(|a| a == "-o" || a.starts_with("--output")) => {}
        Output::Tar => args.push(format!("--output=type=tar,dest={}.tar", out.display())),
        Output::Oci => args.push(format!("--output=type=oci,dest={}.tar", out.display())),
        Output::Image => {
            args.extend(["-t".into(), format!("port/{}:{n}", case.name.to_lowercase())]);
            args.push(format!("--metadata-file={}", metadata.display()));
        }
        Output::None => {}
    }
    args.extend(b.args.iter().map(|a| subst(a)));
    let stdin = if b.stdin_context {
        // `kiln build - < context.tar`, as buildx uploads a tar context
        let tarball = work.join(format!("context-{n}.tar"));
        run(Command::new("tar").arg("-C").arg(ctx).arg("-cf").arg(&tarball).arg("."))?;
        args.push("-".to_owned());
        Some(tarball)
    } else {
        args.push(if b.cwd_context { ".".to_owned() } else { in_context(ctx) });
        None
    };
    let ran = kiln(root, (work, if b.cwd_context { ctx } else { work }), &args, &b.env, stdin.as_deref())?;
    let tail = || excerpt(&ran.stderr);
    let mut fails = Vec::new();
    let requests = server.map(serve::Server::take_requests).unwrap_or_default();
    if let Some(want) = b.requests.as_ref().filter(|want| **want != requests) {
        fails.push(format!("server got requests {requests:?}, expected {want:?}"));
    }
    match (b.expect, ran.success) {
        (Expect::Success, false) => {
            fails.push(format!("build failed:\n      | {}", tail()));
            return Ok((fails, false));
        }
        (Expect::Failure, true) => {
            fails.push("build succeeded, BuildKit fails it".to_owned());
            return Ok((fails, false));
        }
        (Expect::Failure, false) => {
            for want in &b.error_contains {
                if !ran.stderr.contains(want.as_str()) {
                    fails.push(format!("error lacks {want:?}:\n      | {}", tail()));
                }
            }
            return Ok((fails, true));
        }
        (Expect::Success, true) => {}
    }
    for want in &b.progress_contains {
        if !ran.stderr.contains(want.as_str()) {
            fails.push(format!("progress lacks {want:?}"));
        }
    }
    let (cached, executed) = step_counts(&ran.stderr);
    let bounds = [
        ("cached_steps_min", b.cached_steps_min, cached, true),
        ("cached_steps_max", b.cached_steps_max, cached, false),
        ("ran_steps_min", b.ran_steps_min, executed, true),
        ("ran_steps_max", b.ran_steps_max, executed, false),
    ];
    for (name, bound, got, min) in bounds {
        if let Some(bound) = bound.filter(|b| (min && got < *b) || (!min && got > *b)) {
            fails.push(format!("{name} = {bound}, but {got} steps (cached {cached}, ran {executed})"));
        }
    }
    if matches!(b.output, Output::Tar | Output::Oci) {
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let tarball = format!("{}.tar", out.display());
        run(Command::new("tar").args(["--numeric-owner", "-xpf", &tarball, "-C"]).arg(&out))?;
    }
    for c in &b.checks {
        fails.extend(check_path(&case.dir, work, n, c));
    }
    if let Some(earlier) = b.digest_same_as_build {
        let digest = |k: usize| -> Result<String, String> {
            let path = work.join(format!("metadata-{k}.json"));
            let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let meta: serde_json::Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
            Ok(meta["containerimage.digest"].as_str().unwrap_or_default().to_owned())
        };
        let (now, before) = (digest(n)?, digest(earlier)?);
        if now.is_empty() || now != before {
            fails.push(format!("image digest {now:?}, build {earlier} made {before:?}"));
        }
    }
    for c in &b.configs {
        let json = match &c.file {
            None => image_config(root, &metadata)?,
            Some(file) => match std::fs::read(out.join(file)) {
                Ok(text) => serde_json::from_slice(&text).map_err(|e| format!("{file}: {e}"))?,
                Err(e) => {
                    fails.push(format!("{file}: {e}"));
                    continue;
                }
            },
        };
        fails.extend(check_config(&json, c));
    }
    Ok((fails, true))
}

fn start_server(case: &CaseDir) -> Result<serve::Server, String> {
    let mut routes = BTreeMap::new();
    for r in &case.case.serve {
        let body = match (&r.file, &r.content) {
            (Some(file), _) => std::fs::read(case.dir.join(file)).map_err(|e| format!("{file}: {e}"))?,
            (None, content) => content.clone().unwrap_or_default().into_bytes(),
        };
        let route = serve::Route {
            body,
            etag: r.etag.clone(),
            last_modified: r.last_modified.clone(),
            content_disposition: r.content_disposition.clone(),
        };
        routes.insert(r.path.clone(), route);
    }
    serve::Server::start(routes).map_err(|e| format!("HTTP server: {e}"))
}

/// Runs all builds of a case in its own store; returns its failures.
fn run_case(case: &CaseDir, tmp: &Path, rootfs: &Path, shared_tarball: &Path) -> Vec<String> {
    let work = tmp.join(&case.name);
    let result = (|| -> Result<Vec<String>, String> {
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let tarball = if case.case.passwd.is_empty() && case.case.group.is_empty() {
            shared_tarball.to_path_buf()
        } else {
            base_tarball(&work, rootfs, &case.case.passwd, &case.case.group)?
        };
        let root = work.join("root");
        let import = ["import", &tarball.to_string_lossy(), "busybox", "--change", r#"CMD ["sh"]"#];
        let imported = kiln(&root, (&work, &work), &import.map(String::from), &BTreeMap::new(), None)?;
        if !imported.success {
            return Err(format!("import of the base failed: {}", imported.stderr));
        }
        let ctx = work.join("context");
        if case.dir.join("context").is_dir() {
            run(Command::new("cp").arg("-a").arg(case.dir.join("context")).arg(&ctx))?;
        } else {
            std::fs::create_dir(&ctx).map_err(|e| e.to_string())?;
        }
        let server = if case.case.serve.is_empty() { None } else { Some(start_server(case)?) };
        let mut all = Vec::new();
        for (i, b) in case.case.builds.iter().enumerate() {
            let (fails, go_on) = run_build(case, i + 1, b, (&work, &root, &ctx), server.as_ref())?;
            all.extend(fails.into_iter().map(|f| format!("build {}: {f}", i + 1)));
            // later builds need this one's result (store, cache) unless it only missed a check
            if !go_on {
                break;
            }
        }
        Ok(all)
    })();
    let fails = result.unwrap_or_else(|e| vec![format!("runner: {e}")]);
    if std::env::var_os("KILN_PORT_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    fails
}

#[test]
fn port_cases_build() {
    if !testkit::root_or_skip() {
        eprintln!(
            "buildkit_port: {} ported BuildKit cases NOT built",
            data::load_cases().map_or(0, |c| c.len())
        );
        return;
    }
    let cases = data::load_cases().unwrap_or_else(|e| panic!("invalid case files:\n{}", e.join("\n")));
    let known = data::known_failures().unwrap_or_else(|e| panic!("KNOWN-DIFFERENCES.md:\n{}", e.join("\n")));
    let filter = std::env::var("KILN_PORT_FILTER").unwrap_or_default();
    let cases: Vec<&CaseDir> =
        cases.iter().filter(|c| filter.split(',').any(|f| c.name.contains(f))).collect();
    assert!(!cases.is_empty(), "no case matches KILN_PORT_FILTER={filter:?}");

    let tmp = tempfile::tempdir().unwrap();
    let tmp = if std::env::var_os("KILN_PORT_KEEP").is_some() {
        let kept = tmp.keep();
        eprintln!("buildkit_port: work directories kept in {}", kept.display());
        kept
    } else {
        tmp.path().to_path_buf()
    };
    let rootfs = busybox_rootfs(&tmp).unwrap();
    let tarball = base_tarball(&tmp, &rootfs, &[], &[]).unwrap();

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(String, Vec<String>, Duration)>> = Mutex::new(Vec::new());
    let jobs = env_number("KILN_PORT_JOBS", 2).max(1);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let start = Instant::now();
                    let fails = run_case(case, &tmp, &rootfs, &tarball);
                    let took = start.elapsed();
                    let status = match (fails.is_empty(), known.contains_key(&case.name)) {
                        (true, false) => "ok",
                        (false, true) => "known failure",
                        (true, true) => "PASSES (listed as known failure)",
                        (false, false) => "FAILED",
                    };
                    eprintln!("buildkit_port: {} ... {status} ({:.1}s)", case.name, took.as_secs_f64());
                    results.lock().unwrap().push((case.name.clone(), fails, took));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut passed, mut known_failed, mut problems) = (0, 0, Vec::new());
    for (name, fails, _) in &results {
        match (fails.is_empty(), known.get(name)) {
            (true, None) => passed += 1,
            (false, Some(reason)) => {
                known_failed += 1;
                eprintln!("known failure {name} ({reason}):\n    {}", fails.join("\n    "));
            }
            (true, Some(_)) => problems.push(format!(
                "{name}: passes now; remove its line from the known-failures block of KNOWN-DIFFERENCES.md"
            )),
            (false, None) => problems.push(format!("{name}:\n    {}", fails.join("\n    "))),
        }
    }
    eprintln!(
        "buildkit_port: {} cases built: {passed} passed, {known_failed} known failures, {} unexpected",
        results.len(),
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "{} cases do not behave as expected:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
