#![allow(clippy::unwrap_used)]
//! Builds every case of `testdata/buildkit-reference/` with the kiln binary (root; each case in
//! its own `--root` with the busybox base imported; `prepare.sh` applied; `serve/` served over
//! HTTP on loopback) and compares the result with what BuildKit 0.8 produced, item by item:
//!
//! - `config FIELD` — Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels,
//!   StopSignal, Healthcheck, OnBuild, Shell, ArgsEscaped (absent = null) and the top-level author;
//! - `history count`, `history N created_by`, `history N empty_layer`;
//! - `layers count`, `layer 0 base` (the busybox layer unchanged), and for every entry of every
//!   reference layer `layer N PATH` (mode, uid:gid, link target; `absent` when one side lacks it)
//!   plus `layer N PATH content` for the small text files of `contents.txt`;
//! - `fs PATH mode|owner|exists|content` — the flattened result (`--output type=local`), both
//!   ways: every path of the base plus the reference layers applied in order (whiteouts delete)
//!   exists in kiln's output, and every path of kiln's output is among them (`exists` = `no`);
//! - error cases: exit code and that the message names what BuildKit names.
//!
//! The number of cases and of compared items per case is asserted (`CASE_ITEMS`): a case or an
//! item that drops out fails the test, as does a listed difference that starts matching.
//!
//! Kiln bugs are listed in `testdata/buildkit-reference/KNOWN-DIFFERENCES.md` (the `known-items`
//! block, read here): exactly those items are skipped, everything else is asserted. Differences
//! that come from docker's overlay2 differ (the reference layers are `docker save` output) are
//! normalised on both sides; the same file explains each one.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[path = "buildkit_reference/support.rs"]
mod support;
use support::{
    HttpServer, mask_dates, mode_string, normalise_layer, read_layer_tar, reference_contents,
    reference_layers,
};

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/buildkit-reference")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `(case, item)` → id (`B…` kiln bug, `I…` intentional) from KNOWN-DIFFERENCES.md's
/// `known-items` block (lines `ID CASE ITEM…`).
fn known_items() -> BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(reference_dir().join("KNOWN-DIFFERENCES.md")).unwrap();
    let block = text.split("```known-items\n").nth(1).expect("a ```known-items block");
    let block = block.split("```").next().unwrap();
    block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.splitn(3, ' ');
            let (id, case, item) = (words.next().unwrap(), words.next().unwrap(), words.next().unwrap());
            ((case.to_string(), item.trim().to_string()), id.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// One case: build, then collect every compared item.

/// One compared item: (key, BuildKit's value, kiln's value).
type Item = (String, String, String);

/// Every path under `dir` (relative, no trailing slash), not following symlinks.
fn tree_paths(dir: &Path) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(current) = queue.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            paths.insert(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if entry.file_type().unwrap().is_dir() {
                queue.push(path);
            }
        }
    }
    paths
}

fn kiln_command(root: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = testkit::kiln_command();
    cmd.arg("--root").arg(root).args(args).current_dir(dir).env("FROM_HOSTENV", "from-host-environment");
    cmd
}

/// Cases BuildKit builds but kiln refuses by design, with what kiln's error must name
/// (KNOWN-DIFFERENCES.md, I9).
const SPEC_FAILURES: &[(&str, &[&str])] =
    &[("copy-chown-unknown", &["unable to find user nosuchuser", "Dockerfile:2", "COPY --chown=nosuchuser"])];

const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
    "ArgsEscaped",
];

fn json(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "null".into(),
        Some(v) => v.to_string(),
    }
}

/// Pairs reference and kiln history entries: by position when both have as many, else by the
/// longest common subsequence of `created_by`.
fn pair_history(want: &[(String, bool)], got: &[(String, bool)]) -> Vec<(Option<usize>, Option<usize>)> {
    if want.len() == got.len() {
        return (0..want.len()).map(|i| (Some(i), Some(i))).collect();
    }
    let (n, m) = (want.len(), got.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] =
                if want[i].0 == got[j].0 { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut pairs) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && want[i].0 == got[j].0 {
            pairs.push((Some(i), Some(j)));
            (i, j) = (i + 1, j + 1);
        } else if j >= m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]) {
            pairs.push((Some(i), None));
            i += 1;
        } else {
            pairs.push((None, Some(j)));
            j += 1;
        }
    }
    pairs
}

/// Kiln writes history the way current BuildKit does where BuildKit 0.8 differed; brings such a
/// kiln entry to 0.8's form when that is all that differs (KNOWN-DIFFERENCES.md, I3 and I4).
fn modern_history(want: &str, got: &str) -> String {
    let (want_words, got_words): (Vec<&str>, Vec<&str>) =
        (want.split(' ').collect(), got.split(' ').collect());
    match want_words.first() {
        // I3: current BuildKit writes COPY/ADD's --chown/--chmod (never --from); 0.8 wrote none
        Some(&"COPY") | Some(&"ADD") => got_words
            .iter()
            .enumerate()
            .filter(|(i, w)| !(*i > 0 && (w.starts_with("--chown=") || w.starts_with("--chmod="))))
            .map(|(_, w)| *w)
            .collect::<Vec<_>>()
            .join(" "),
        // I4: current BuildKit writes each ARG with its resolved value; 0.8 wrote it as declared
        Some(&"ARG") if want_words.len() == got_words.len() => want_words
            .iter()
            .zip(&got_words)
            .map(|(w, g)| if w.contains('=') { *g } else { g.split('=').next().unwrap_or(g) })
            .collect::<Vec<_>>()
            .join(" "),
        _ => got.to_string(),
    }
}

fn history_of(config: &Value) -> Vec<(String, bool)> {
    config["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| {
                    (
                        e["created_by"].as_str().unwrap_or_default().to_string(),
                        e["empty_layer"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Builds `case` with kiln and returns every compared item (or the build's failure as one item).
fn build_case(case: &str, tarball: &Path, base_paths: &BTreeSet<String>, tmp: &Path) -> Vec<Item> {
    let src = reference_dir().join(case);
    let work = tmp.join(case);
    run(Command::new("cp").arg("-a").arg(&src).arg(&work));
    // git keeps no empty directories: an empty context may not exist in a checkout
    std::fs::create_dir_all(work.join("context")).unwrap();
    if work.join("prepare.sh").exists() {
        run(Command::new("sh").arg("prepare.sh").current_dir(&work));
    }
    let _server = work.join("serve").is_dir().then(|| {
        let server = HttpServer::start(work.join("serve"));
        let dockerfile = std::fs::read_to_string(work.join("Dockerfile")).unwrap();
        std::fs::write(work.join("Dockerfile"), dockerfile.replace(":39117/", &format!(":{}/", server.port)))
            .unwrap();
        server
    });
    let root = work.join("kiln-root");
    let kiln = |args: &[&str]| kiln_command(&root, &work, args);
    run(&mut kiln(&["import", tarball.to_str().unwrap(), "busybox"]));
    if case == "onbuild-child" {
        let parent = reference_dir().join("onbuild-parent");
        let parent_context = tmp.join("onbuild-parent-context");
        std::fs::create_dir_all(&parent_context).unwrap();
        let dockerfile = parent.join("Dockerfile");
        let args = ["build", "--progress", "plain", "-t", "kiln-ref/onbuild-parent", "-f"];
        run(kiln(&args).arg(dockerfile).arg(&parent_context));
    }
    let dest = work.join("out");
    let name = format!("kiln-ref/{case}:latest");
    let mut args: Vec<String> = vec!["build".into(), "--progress".into(), "plain".into()];
    args.push(format!("--output=type=local,dest={}", dest.display()));
    args.push(format!("--output=type=image,name={name}"));
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
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // I9: kiln fails where BuildKit built, by design: exit code 1 and an error naming the cause
        if let Some((_, needles)) = SPEC_FAILURES.iter().find(|(c, _)| *c == case) {
            let mut items: Vec<Item> =
                vec![("exit code".into(), "1".into(), out.status.code().unwrap_or(-1).to_string())];
            for needle in *needles {
                let got =
                    if err.contains(needle) { needle.to_string() } else { format!("not in: {}", err.trim()) };
                items.push((format!("message names {needle:?}"), needle.to_string(), got));
            }
            return items;
        }
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        return vec![("build".into(), "success".into(), format!("kiln failed: {}", tail.join(" | ")))];
    }
    let mut items: Vec<Item> = vec![("build".into(), "success".into(), "success".into())];
    let mut check = |key: String, want: String, got: String| items.push((key, want, got));

    // the image as stored
    let store = cache::Store::open(&root).unwrap();
    let record =
        store.images().get(&format!("docker.io/{name}")).unwrap().expect("the built image in the store");
    let image = store.content().read_image(&record.target).unwrap();
    let config: Value =
        serde_json::from_slice(&store.content().read(image.manifest.config().digest()).unwrap()).unwrap();
    let base = store.images().get("docker.io/library/busybox:latest").unwrap().unwrap();
    let base = store.content().read_image(&base.target).unwrap();
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();

    // config
    for field in CONFIG_FIELDS {
        check(
            format!("config {field}"),
            json(reference["image"]["config"].get(*field)),
            json(config["config"].get(*field)),
        );
    }
    check("config author".into(), json(reference["image"].get("author")), json(config.get("author")));

    // history
    let want_history: Vec<(String, bool)> = {
        let h: Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("history.json")).unwrap()).unwrap();
        h.as_array()
            .unwrap()
            .iter()
            .map(|e| (e["created_by"].as_str().unwrap().to_string(), e["empty_layer"].as_bool().unwrap()))
            .collect()
    };
    let mut got_history = history_of(&config);
    if let Some(server) = &_server {
        for (created_by, _) in &mut got_history {
            *created_by = created_by.replace(&format!(":{}/", server.port), ":39117/");
        }
    }
    check("history count".into(), want_history.len().to_string(), got_history.len().to_string());
    let pairs = pair_history(&want_history, &got_history);
    // reference layer number → kiln layer index, through the paired history entries
    let mut layer_pairs: Vec<(usize, Option<usize>, String)> = Vec::new();
    let (mut want_layer, mut got_layer) = (0usize, 0usize);
    for (wi, gi) in &pairs {
        let want = wi.map(|i| &want_history[i]);
        let got = gi.map(|i| &got_history[i]);
        match (want, got) {
            (Some(w), Some(g)) => {
                let i = wi.unwrap();
                check(format!("history {i} created_by"), w.0.clone(), modern_history(&w.0, &g.0));
                check(format!("history {i} empty_layer"), w.1.to_string(), g.1.to_string());
                if !w.1 {
                    layer_pairs.push((want_layer, (!g.1).then_some(got_layer), w.0.clone()));
                }
            }
            (Some(w), None) => {
                check(format!("history {} missing", wi.unwrap()), w.0.clone(), "absent".into());
                if !w.1 {
                    layer_pairs.push((want_layer, None, w.0.clone()));
                }
            }
            (None, Some(g)) => check(format!("history extra {}", g.0), "absent".into(), g.0.clone()),
            (None, None) => unreachable!(),
        }
        want_layer += usize::from(want.is_some_and(|w| !w.1));
        got_layer += usize::from(got.is_some_and(|g| !g.1));
    }

    // layers
    let want_layers = reference_layers(&std::fs::read_to_string(src.join("layers.txt")).unwrap());
    let got_layers = image.manifest.layers();
    check("layers count".into(), reference["diff_ids_count"].to_string(), got_layers.len().to_string());
    let base_layer = &base.manifest.layers()[0];
    check(
        "layer 0 base".into(),
        "busybox".into(),
        if got_layers.first().map(|l| l.digest()) == Some(base_layer.digest()) {
            "busybox".into()
        } else {
            "other".into()
        },
    );
    let contents = reference_contents(&std::fs::read_to_string(src.join("contents.txt")).unwrap_or_default());
    for (n, got_index, created_by) in layer_pairs {
        let Some(Some(want)) = want_layers.get(n) else { continue };
        let run_layer = created_by.starts_with("RUN ");
        let Some(got_index) = got_index.filter(|i| *i < got_layers.len()) else {
            check(format!("layer {n}"), format!("a layer for {created_by}"), "no layer".into());
            continue;
        };
        let tar = read_layer_tar(store.content().open(got_layers[got_index].digest()).unwrap());
        let mut want = want.clone();
        let mut got = tar.entries.clone();
        normalise_layer(&mut want, run_layer);
        normalise_layer(&mut got, run_layer);
        let paths: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
        for path in paths {
            let absent = || "absent".to_string();
            check(
                format!("layer {n} {path}"),
                want.get(path).cloned().unwrap_or_else(absent),
                got.get(path).cloned().unwrap_or_else(absent),
            );
        }
        for ((_, path), text) in contents.range((n, String::new())..(n + 1, String::new())) {
            let got =
                tar.contents.get(path).map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default();
            check(format!("layer {n} {path} content"), mask_dates(text), mask_dates(&got));
        }
    }

    // the flattened filesystem (--output type=local), both ways: the base's paths (existence
    // only: `layer 0 base` compares the layer itself) and every reference layer applied in order
    // (whiteouts and opaque dirs delete) must be exactly the paths kiln's output holds
    let mut files: BTreeMap<String, (Option<(String, String)>, usize)> =
        base_paths.iter().map(|p| (p.clone(), (None, 0))).collect();
    for (n, layer) in want_layers.iter().enumerate() {
        for (path, attrs) in layer.iter().flatten() {
            let path = path.trim_end_matches('/');
            let (dir, name) =
                path.rsplit_once('/').map(|(d, n)| (format!("{d}/"), n)).unwrap_or((String::new(), path));
            if name == ".wh..wh..opq" {
                files.retain(|p, e| !(p.starts_with(&dir) && e.1 < n));
                continue;
            }
            if let Some(gone) = name.strip_prefix(".wh.") {
                let gone = format!("{dir}{gone}");
                files.retain(|p, _| p != &gone && !p.starts_with(&format!("{gone}/")));
                continue;
            }
            let mut words = attrs.split(' ');
            let (mode, owner) = (words.next().unwrap().to_string(), words.next().unwrap().to_string());
            files.insert(path.to_string(), (Some((mode, owner)), n));
        }
    }
    let output_paths = tree_paths(&dest);
    for (path, (attrs, _)) in &files {
        match (std::fs::symlink_metadata(dest.join(path)), attrs) {
            (Ok(meta), Some((mode, owner))) => {
                check(format!("fs {path} mode"), mode.clone(), mode_string(meta.mode()));
                check(format!("fs {path} owner"), owner.clone(), format!("{}:{}", meta.uid(), meta.gid()));
            }
            (Ok(_), None) => check(format!("fs {path} exists"), "yes".into(), "yes".into()),
            (Err(_), _) => check(format!("fs {path} exists"), "yes".into(), "no".into()),
        }
    }
    // the other way: what kiln's output holds that BuildKit's result does not (a path BuildKit
    // deleted, a file .dockerignore excluded, a stray mount point)
    for path in output_paths.iter().filter(|p| !files.contains_key(*p)) {
        check(format!("fs {path} exists"), "no".into(), "yes".into());
    }
    for ((layer, path), text) in &contents {
        // only the final version of a file is visible in the flattened output
        if files.get(path).map(|e| e.1) != Some(*layer) {
            continue;
        }
        let got = std::fs::read_to_string(dest.join(path)).unwrap_or_default();
        check(format!("fs {path} content"), mask_dates(text), mask_dates(&got));
    }
    items
}

/// Error cases: the exit code of the reference's header and the thing BuildKit's message names.
fn error_case(case: &str, tarball: &Path, tmp: &Path) -> Vec<Item> {
    let src = reference_dir().join(case);
    let work = tmp.join(case);
    run(Command::new("cp").arg("-a").arg(&src).arg(&work));
    std::fs::create_dir_all(work.join("context")).unwrap();
    let root = work.join("kiln-root");
    run(&mut kiln_command(&root, &work, &["import", tarball.to_str().unwrap(), "busybox"]));
    let progress = std::fs::read_to_string(src.join("progress.txt")).unwrap();
    let want_code = progress
        .lines()
        .find_map(|l| l.strip_prefix("## failing build, exit code "))
        .expect("exit code header")
        .to_string();
    // Registry lookups (error-unknown-stage resolves `buidl` as an image, like BuildKit) go through
    // a loopback "proxy" that answers every request (CONNECT too) with 404, bound for the whole
    // build (no port released and reused): no traffic leaves the machine and they fail fast.
    let nothing = tmp.join(format!("{case}-proxy-empty"));
    std::fs::create_dir_all(&nothing).unwrap();
    let refusing = HttpServer::start(nothing);
    let proxy = format!("http://127.0.0.1:{}", refusing.port);
    let out = kiln_command(&root, &work, &["build", "--progress", "plain", "-f", "Dockerfile", "context"])
        .env("HTTPS_PROXY", &proxy)
        .env("HTTP_PROXY", &proxy)
        .env("https_proxy", &proxy)
        .env("http_proxy", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut items: Vec<Item> = vec![(
        "exit code".into(),
        want_code,
        out.status.code().map(|c| c.to_string()).unwrap_or_else(|| "signal".into()),
    )];
    let needles: &[&str] = match case {
        "error-run-fails" => {
            &["exit code: 3", "output line 1\n", "output line 30", "to stderr", "[3/4] RUN for i in"]
        }
        "error-copy-missing" => &["missing.txt", "not found"],
        "error-unknown-stage" => &["buidl"],
        other => panic!("error case {other} has no expected message parts here"),
    };
    for needle in needles {
        let got = if err.contains(needle) { needle.to_string() } else { format!("not in: {}", err.trim()) };
        items.push((format!("message names {needle:?}"), needle.to_string(), got));
    }
    items
}

/// Items compared per case (both ways). A case or an item that stops being compared (a case
/// that dropped out, a layer no longer paired, a field no longer read) changes its count and
/// fails the test; after adding a case or an item, or when a kiln fix changes what is compared
/// (a new layer), update the count to the one printed.
const CASE_ITEMS: &[(&str, usize)] = &[
    ("add-tar", 368),
    ("add-url", 337),
    ("cmd-entrypoint", 309),
    ("cmd-entrypoint-same-stage", 309),
    ("cmd-forms", 313),
    ("copy-basics", 510),
    ("copy-chown-chmod", 425),
    ("copy-chown-unknown", 4),
    ("copy-context-owner", 347),
    ("copy-from", 357),
    ("dockerignore", 345),
    ("env-arg-scope", 401),
    ("error-copy-missing", 3),
    ("error-run-fails", 6),
    ("error-unknown-stage", 2),
    ("metadata", 327),
    ("mounts", 365),
    ("multistage-target", 322),
    ("onbuild-child", 341),
    ("onbuild-parent", 315),
    ("run-forms", 363),
    ("run-noop", 329),
    ("run-whiteouts", 368),
    ("shell", 330),
    ("user", 367),
    ("workdir", 389),
];

#[test]
fn buildkit_reference() {
    testkit::require_root!();
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().to_path_buf();
    let _guard = if std::env::var_os("KILN_REFERENCE_KEEP").is_some() {
        // for debugging: keep every case's work dir and --root
        eprintln!("keeping {}", tmp.keep().display());
        None
    } else {
        Some(tmp)
    };
    let tarball = testkit::busybox_tarball().to_owned();
    let base_paths = tree_paths(testkit::busybox_rootfs());
    let mut cases: Vec<String> = std::fs::read_dir(reference_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("Dockerfile").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    let listed: Vec<&str> = CASE_ITEMS.iter().map(|(c, _)| *c).collect();
    assert_eq!(cases, listed, "the cases of testdata/buildkit-reference/ and CASE_ITEMS differ");
    let outcomes: Vec<(String, Vec<Item>)> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(cases.len().div_ceil(2))
            .map(|chunk| {
                let (tarball, base_paths, tmp) = (&tarball, &base_paths, tmp_path.as_path());
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|c| {
                            let items = if reference_dir().join(c).join("expect-failure").exists() {
                                error_case(c, tarball, tmp)
                            } else {
                                build_case(c, tarball, base_paths, tmp)
                            };
                            (c.clone(), items)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let known = known_items();
    let (mut matched, mut bugs, mut intentional, mut total) = (0, 0, 0, 0);
    let mut mismatches = Vec::new();
    let mut now_matching = Vec::new();
    let mut counts = Vec::new();
    let mut seen = BTreeSet::new();
    for (case, items) in &outcomes {
        let want_count = CASE_ITEMS.iter().find(|(c, _)| c == case).map(|(_, n)| *n);
        if want_count != Some(items.len()) {
            counts.push(format!("(\"{case}\", {}), // was {want_count:?}", items.len()));
        }
        for (key, want, got) in items {
            total += 1;
            let listed = known.get(&(case.clone(), key.clone()));
            assert!(seen.insert((case.clone(), key.clone())), "{case} {key} compared twice");
            match (listed, want == got) {
                (None, true) => matched += 1,
                (None, false) => mismatches.push(format!("{case} {key}: buildkit {want:?}, kiln {got:?}")),
                (Some(id), false) if id.starts_with('B') => bugs += 1,
                (Some(_), false) => intentional += 1,
                (Some(id), true) => {
                    matched += 1;
                    now_matching.push(format!("{id} {case} {key}"));
                }
            }
        }
    }
    eprintln!(
        "{} cases, {total} items: {matched} match, {bugs} skipped as kiln bugs, {intentional} skipped as intentional",
        outcomes.len()
    );
    let unknown: Vec<String> = known
        .iter()
        .filter(|(k, _)| !seen.contains(*k))
        .map(|((c, k), id)| format!("{id} {c} {k}"))
        .collect();
    let mut problems = Vec::new();
    if !mismatches.is_empty() {
        problems.push(format!("{} mismatches:\n  {}", mismatches.len(), mismatches.join("\n  ")));
    }
    if !now_matching.is_empty() {
        problems.push(format!(
            "listed in KNOWN-DIFFERENCES.md but now matching (fixed: remove the lines):\n  {}",
            now_matching.join("\n  ")
        ));
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "listed in KNOWN-DIFFERENCES.md but no longer compared (remove or rename the lines):\n  {}",
            unknown.join("\n  ")
        ));
    }
    if !counts.is_empty() {
        problems.push(format!(
            "compared items per case changed (a case or item dropped out, or update CASE_ITEMS):\n  {}",
            counts.join("\n  ")
        ));
    }
    assert!(matched > 0);
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
