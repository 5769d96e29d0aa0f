#![allow(clippy::unwrap_used)]
//! `kiln build` end to end (root): each test imports a busybox base image (from
//! `testdata/rootfs/busybox-rootfs.sh`) as `busybox` into its own `--root`, builds a context of
//! `testdata/build/`, and checks the image config and the files of the flattened layers
//! (`--output type=local`). Cache tests count the steps the plain progress shows as run.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{Kiln, ran, read, run};

fn testdata(name: &str) -> PathBuf {
    testkit::testdata().join("build").join(name)
}

/// The raw config JSON of a built image, via `--metadata-file`.
fn config_of_metadata(kiln: &Kiln, metadata: &Path) -> serde_json::Value {
    let meta: serde_json::Value = serde_json::from_str(&read(metadata)).unwrap();
    serde_json::from_str(&kiln.config_blob(meta["containerimage.config.digest"].as_str().unwrap())).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    run(Command::new("cp").arg("-a").arg(from).arg(to));
}

#[test]
fn multi_stage_with_copy_from() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = testdata("multistage");
    let progress = kiln.build(&["-t", "ms", ctx.to_str().unwrap()]);
    assert!(!progress.contains("this stage must never run"), "{progress}");
    let (out, _) = kiln.build_local("out", &[ctx.to_str().unwrap()]);
    assert_eq!(read(&out.join("app/joined.txt")), "hello\nworld\n");
    assert_eq!(read(&out.join("app/origin")), "base\n");
    assert!(out.join("bin/busybox").is_file());
    let inspect: serde_json::Value = serde_json::from_str(&kiln.ok(&["inspect", "ms"])).unwrap();
    assert_eq!(inspect[0]["Config"]["Cmd"], serde_json::json!(["cat", "/app/joined.txt"]));

    // --iidfile, and the flattened rootfs as a tar on stdout (`-o -`)
    let iid = kiln.path("iid");
    let out =
        kiln.output(&["build", "-q", "--iidfile", iid.to_str().unwrap(), "-o", "-", ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read(&iid), inspect[0]["Id"].as_str().unwrap());
    let tar = kiln.path("fs.tar");
    std::fs::write(&tar, &out.stdout).unwrap();
    let listing = run(Command::new("tar").arg("-tf").arg(&tar));
    assert!(listing.lines().any(|l| l.trim_start_matches("./") == "app/joined.txt"), "{listing}");
}

#[test]
fn dockerfile_from_stdin_without_context() {
    use std::io::Write;
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let dest = kiln.path("out");
    let output = format!("type=local,dest={}", dest.display());
    let mut child = kiln
        .cmd(&["build", "--progress", "quiet", "-o", &output, "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"FROM busybox\nRUN echo from-stdin > /x\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(read(&dest.join("x")), "from-stdin\n");
}

#[test]
fn every_instruction_shapes_the_config() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let meta = kiln.path("meta.json");
    let ctx = testdata("instructions");
    kiln.build(&[
        "--build-arg",
        "FROM_ENV=given",
        "--label",
        "cli.label=yes",
        "--metadata-file",
        meta.to_str().unwrap(),
        "-t",
        "instr",
        ctx.to_str().unwrap(),
    ]);
    let config = config_of_metadata(&kiln, &meta);
    let c = &config["config"];
    assert_eq!(c["Labels"]["org.example.version"], "1.0");
    assert_eq!(c["Labels"]["other"], "two words");
    assert_eq!(c["Labels"]["cli.label"], "yes");
    assert_eq!(config["author"], "kiln-team");
    let env: Vec<&str> = c["Env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(env.contains(&"APP_HOME=/opt/app"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=/opt/app/bin:/usr/local/sbin")), "{env:?}");
    assert_eq!(c["WorkingDir"], "/opt/app/sub");
    assert_eq!(c["User"], "www-data:www-data");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some());
    assert!(c["Volumes"].get("/data").is_some());
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/echo"]));
    assert_eq!(c["Cmd"], serde_json::json!(["from", "cmd", "${FROM_ENV}"]));
    assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["CMD", "true"]));
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 4);
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    // one history entry per instruction after FROM's, non-empty ones matching the layers
    let history = config["history"].as_array().unwrap();
    let layers = config["rootfs"]["diff_ids"].as_array().unwrap();
    let non_empty = history.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(non_empty, layers.len());
    assert!(history.iter().any(|h| h["created_by"].as_str().unwrap_or("").contains("EXPOSE")));
}

#[test]
fn files_modes_and_owners_in_the_layers() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let (out, _) = kiln.build_local("out", &[testdata("files").to_str().unwrap()]);
    let meta = |p: &str| std::fs::symlink_metadata(out.join(p)).unwrap();
    assert_eq!((meta("srv/owned.txt").uid(), meta("srv/owned.txt").gid()), (33, 33));
    assert_eq!(meta("srv/secret-mode.txt").permissions().mode() & 0o7777, 0o600);
    let tool = meta("usr/local/bin/tool");
    assert_eq!((tool.uid(), tool.gid(), tool.permissions().mode() & 0o7777), (65534, 33, 0o755));
    assert_eq!(read(&out.join("srv/dir/nested/n.txt")), "n\n");
    assert_eq!(std::fs::read_link(out.join("srv/link")).unwrap(), Path::new("/srv/owned.txt"));
    let private = meta("srv/private");
    assert_eq!((private.uid(), private.permissions().mode() & 0o7777), (33, 0o750));
    assert_eq!(read(&out.join("srv/run.txt")), "done\n");
}

#[test]
fn heredocs_in_run_and_copy() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let (out, _) = kiln.build_local("out", &[testdata("heredoc").to_str().unwrap()]);
    assert_eq!(read(&out.join("out/run.txt")), "first line\nsecond line\n");
    assert_eq!(read(&out.join("out/copied.txt")), "copied kiln\n");
    assert_eq!(read(&out.join("out/a.txt")), "from a\n");
    assert_eq!(read(&out.join("out/b.txt")), "from b\n");
}

#[test]
fn run_mounts_cache_secret_bind_tmpfs() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let secret = kiln.path("token");
    std::fs::write(&secret, "s3cr3t").unwrap();
    let secret_arg = format!("id=token,src={}", secret.display());
    let ctx = testdata("mounts");
    let (out, _) = kiln.build_local("out", &["--secret", &secret_arg, ctx.to_str().unwrap()]);
    assert_eq!(read(&out.join("cache-count.txt")).trim(), "1");
    assert_eq!(read(&out.join("secret-length.txt")).trim(), "6");
    assert_eq!(read(&out.join("secret-env.txt")), "ok\n");
    assert_eq!(read(&out.join("from-bind.txt")), "bound input\n");
    assert!(!out.join("cache").join("count").exists());
    assert!(!out.join("run/secrets/token").exists());
    // the cache mount persists across builds (a changed build arg re-runs the step)
    let (again, _) =
        kiln.build_local("again", &["--build-arg", "BUMP=1", "--secret", &secret_arg, ctx.to_str().unwrap()]);
    assert_eq!(read(&again.join("cache-count.txt")).trim(), "2");
    // --no-cache starts cache mounts empty (BuildKit)
    let (fresh, _) =
        kiln.build_local("fresh", &["--no-cache", "--secret", &secret_arg, ctx.to_str().unwrap()]);
    assert_eq!(read(&fresh.join("cache-count.txt")).trim(), "1");
}

#[test]
fn onbuild_triggers_run_in_the_child() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = testdata("onbuild");
    let base = ctx.join("base.Dockerfile");
    let child = ctx.join("child.Dockerfile");
    kiln.build(&["-f", base.to_str().unwrap(), "-t", "onbuild-base", ctx.to_str().unwrap()]);
    let (out, _) = kiln.build_local("out", &["-f", child.to_str().unwrap(), ctx.to_str().unwrap()]);
    assert_eq!(read(&out.join("onbuild-ran.txt")), "triggered\n");
    assert_eq!(read(&out.join("trigger.txt")), "trigger\n");
}

#[test]
fn dockerignore_filters_the_context() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let (out, _) = kiln.build_local("out", &[testdata("ignore").to_str().unwrap()]);
    assert!(out.join("ctx/keep.txt").is_file());
    assert!(out.join("ctx/sub/keep.txt").is_file());
    for gone in ["ctx/debug.log", "ctx/secret.env", "ctx/sub/drop.txt"] {
        assert!(!out.join(gone).exists(), "{gone} should be ignored");
    }
}

#[test]
fn cache_no_change_edit_and_unrelated_touch() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.path("ctx");
    copy_dir(&testdata("cache10"), &ctx);
    let ctx_arg = ctx.to_str().unwrap();
    let cold = kiln.build(&["-t", "c10", ctx_arg]);
    assert_eq!(ran(&cold).len(), 9, "{cold}");

    let warm = kiln.build(&["-t", "c10", ctx_arg]);
    assert!(ran(&warm).is_empty(), "a rebuild without change ran steps: {warm}");

    // only mtimes change, and an unrelated file changes: everything stays cached
    run(Command::new("touch").arg("-d").arg("2001-01-01").arg(ctx.join("edit.txt")));
    std::fs::write(ctx.join("unrelated.txt"), "changed\n").unwrap();
    let touched = kiln.build(&["-t", "c10", ctx_arg]);
    assert!(ran(&touched).is_empty(), "{touched}");

    // editing the file COPYed at step 8 re-runs steps 8-10 only
    std::fs::write(ctx.join("edit.txt"), "version 2\n").unwrap();
    let edited = kiln.build(&["-t", "c10", ctx_arg]);
    let ran = ran(&edited);
    assert_eq!(ran.len(), 3, "{edited}");
    assert!(ran.iter().any(|n| n.contains("COPY edit.txt")), "{ran:?}");
    assert!(ran.iter().any(|n| n.contains("RUN cat /edit.txt")), "{ran:?}");
    assert!(ran.iter().any(|n| n.contains("RUN echo step10")), "{ran:?}");
}

#[test]
fn concurrent_builds_share_one_root() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let a = kiln.path("a");
    let b = kiln.path("b");
    copy_dir(&testdata("cache10"), &a);
    copy_dir(&testdata("cache10"), &b);
    std::fs::write(b.join("edit.txt"), "other\n").unwrap();
    let mut first =
        kiln.cmd(&["build", "--progress", "quiet", "-t", "a", a.to_str().unwrap()]).spawn().unwrap();
    let mut second =
        kiln.cmd(&["build", "--progress", "quiet", "-t", "b", b.to_str().unwrap()]).spawn().unwrap();
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    let (out, _) = kiln.build_local("out", &[b.to_str().unwrap()]);
    assert_eq!(read(&out.join("s9")), "other\n");
}

/// Eight builds at once on one store, sharing a base and their early steps: all succeed, and
/// each shared step runs in exactly one of them (the others wait for it and take its result).
#[test]
fn eight_concurrent_builds_run_shared_steps_once() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context(
        "shared",
        "FROM busybox\nCOPY shared.txt /shared.txt\nRUN sleep 1 && cat /shared.txt > /early\n\
         ARG N\nRUN echo \"build $N\" > /own\n",
        &[("shared.txt", "shared\n")],
    );
    let builds: Vec<_> = (0..8)
        .map(|n| {
            let out = kiln.path(&format!("out-{n}"));
            kiln.cmd(&[
                "build",
                "--progress",
                "plain",
                "--build-arg",
                &format!("N={n}"),
                "-o",
                &format!("type=local,dest={}", out.display()),
                ctx.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut runs: std::collections::BTreeMap<String, usize> = Default::default();
    for (n, child) in builds.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let progress = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "build {n} failed: {progress}");
        for step in ran(&progress) {
            *runs.entry(step.split_once("] ").map(|(_, s)| s.to_owned()).unwrap_or(step)).or_default() += 1;
        }
        assert_eq!(read(&kiln.path(&format!("out-{n}")).join("own")), format!("build {n}\n"));
        assert_eq!(read(&kiln.path(&format!("out-{n}")).join("early")), "shared\n");
    }
    assert_eq!(runs.get("COPY shared.txt /shared.txt"), Some(&1), "{runs:?}");
    assert_eq!(runs.get("RUN sleep 1 && cat /shared.txt > /early"), Some(&1), "{runs:?}");
    let own = runs.iter().filter(|(step, _)| step.starts_with("RUN echo \"build ")).map(|(_, n)| n);
    assert_eq!(own.sum::<usize>(), 8, "{runs:?}");
}

#[test]
fn source_date_epoch_builds_are_reproducible_across_roots() {
    testkit::require_root!();
    let mut digests = Vec::new();
    for _ in 0..2 {
        let kiln = Kiln::with_busybox();
        let meta = kiln.path("meta.json");
        kiln.build(&[
            "--source-date-epoch",
            "946684800",
            "--metadata-file",
            meta.to_str().unwrap(),
            testdata("multistage").to_str().unwrap(),
        ]);
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
        let image = meta["containerimage.digest"].as_str().unwrap().to_owned();
        digests.push((image.clone(), exported_layers(&kiln, &image)));
    }
    assert_eq!(digests[0], digests[1], "image and exported gzip layers are the same in both roots");
}

/// Saves `image` as an OCI archive and as a docker archive, checks every layer (OCI: a gzip
/// blob whose digest verifies and whose tar is the config's diffID; docker: the tar named by
/// its diffID) and returns the OCI layer digests.
fn exported_layers(kiln: &Kiln, image: &str) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let sha256 = |bytes: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    let blob = |dir: &Path, digest: &str| {
        let bytes =
            std::fs::read(dir.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap())).unwrap();
        assert_eq!(sha256(&bytes), digest, "blob {digest} of {}", dir.display());
        bytes
    };
    let json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
    let mut layers = Vec::new();
    for format in ["oci", "docker"] {
        let archive = kiln.path(&format!("{format}.tar"));
        kiln.ok(&["save", "--format", format, "-o", archive.to_str().unwrap(), image]);
        let dir = kiln.path(&format!("{format}-extracted"));
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("tar").arg("-C").arg(&dir).arg("-xf").arg(&archive));
        if format == "oci" {
            let index = json(&std::fs::read(dir.join("index.json")).unwrap());
            let manifest = json(&blob(&dir, index["manifests"][0]["digest"].as_str().unwrap()));
            let config = json(&blob(&dir, manifest["config"]["digest"].as_str().unwrap()));
            let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
            for (layer, diff_id) in manifest["layers"].as_array().unwrap().iter().zip(diff_ids) {
                assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip", "{manifest}");
                let digest = layer["digest"].as_str().unwrap();
                let output = run(Command::new("sh").arg("-c").arg(format!(
                    "gzip -dc < {}/blobs/sha256/{} | sha256sum",
                    dir.display(),
                    digest.strip_prefix("sha256:").unwrap()
                )));
                assert_eq!(
                    Some(diff_id.as_str().unwrap()),
                    output.split_whitespace().next().map(|h| format!("sha256:{h}")).as_deref()
                );
                assert_eq!(blob(&dir, digest).len() as u64, layer["size"].as_u64().unwrap());
                layers.push(digest.to_owned());
            }
        } else {
            let manifest = json(&std::fs::read(dir.join("manifest.json")).unwrap());
            let config = json(&std::fs::read(dir.join(manifest[0]["Config"].as_str().unwrap())).unwrap());
            let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
            let files = manifest[0]["Layers"].as_array().unwrap();
            assert_eq!(files.len(), diff_ids.len());
            for (file, diff_id) in files.iter().zip(diff_ids) {
                let bytes = std::fs::read(dir.join(file.as_str().unwrap())).unwrap();
                assert_eq!(sha256(&bytes), diff_id.as_str().unwrap(), "docker archive layer {file}");
            }
        }
    }
    assert!(layers.len() > 1, "the base layer and at least one built layer: {layers:?}");
    layers
}

#[test]
fn a_failing_run_shows_the_instruction_exit_code_and_last_lines() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let out = kiln.output(&["build", "--progress", "quiet", testdata("failing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let block = &stderr[stderr.find("------").unwrap_or(0)..];
    assert!(block.contains(">>> RUN for i in"), "{stderr}");
    assert!(block.contains(">>>     exit 7"), "{stderr}");
    assert!(block.contains("exit code: 7"), "{stderr}");
    assert!(block.contains("line 30"), "{stderr}");
    assert!(!block.contains("line 5\n"), "only the last 20 lines: {stderr}");
}

/// stdout and stderr of a step are one stream, in the order the process wrote them: in the live
/// progress and in the failure summary (its last 20 lines), whose last line is the `fatal:` line.
#[test]
fn a_failing_run_keeps_stdout_and_stderr_in_order() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let context = kiln.path("interleaved");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox\nRUN for i in $(seq 1 100); do echo \"out line $i\"; done; \
         for i in $(seq 1 30); do printf 'out-%02d\\n' $i; printf 'err-%02d\\n' $i >&2; done; \
         echo \"fatal: something broke\" >&2; exit 3\n",
    )
    .unwrap();
    let out = kiln.output(&["build", "--progress", "plain", context.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let (live, summary) = stderr.split_at(stderr.find("------").expect("failure summary"));
    let mut order = vec!["out line 1\n".to_owned(), "out line 100\n".to_owned()];
    for i in 1..=30 {
        order.push(format!("out-{i:02}\n"));
        order.push(format!("err-{i:02}\n"));
    }
    order.push("fatal: something broke\n".to_owned());
    for (text, expected) in [(live, &order[..]), (summary, &order[order.len() - 20..])] {
        let positions: Vec<usize> = expected
            .iter()
            .map(|line| text.find(line.as_str()).unwrap_or_else(|| panic!("{line:?} missing: {text}")))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "out of order {positions:?}: {text}");
    }
    assert!(summary.contains("exit code: 3"), "{summary}");
}

/// `--progress rawjson` is JSON lines only, the export one of its steps; `--progress quiet`
/// prints just the image ID on stdout, like `-q`.
#[test]
fn rawjson_is_pure_json_lines_and_quiet_prints_only_the_id() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = testdata("multistage");
    let out = kiln.output(&["build", "--progress", "rawjson", "-t", "json", ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut names = Vec::new();
    for line in
        String::from_utf8(out.stdout).unwrap().lines().chain(String::from_utf8(out.stderr).unwrap().lines())
    {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        for vertex in value["vertexes"].as_array().into_iter().flatten() {
            names.push(vertex["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert!(names.iter().any(|n| n == "exporting to image"), "{names:?}");

    let inspect: serde_json::Value = serde_json::from_str(&kiln.ok(&["inspect", "json"])).unwrap();
    let out = kiln.output(&["build", "--progress", "quiet", "-t", "quiet", ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{}\n", inspect[0]["Id"].as_str().unwrap()));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// `builder du`, `system df`, `builder prune` (keep-storage, all) and the GC policy after builds
/// (`<root>/gc.toml`), on a real store.
#[test]
fn build_cache_usage_prune_and_gc_policy() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let ctx = kiln.context(
        "prunable",
        "FROM busybox\nRUN head -c 200000 /dev/urandom > /big\nRUN --mount=type=cache,target=/c echo x > /c/f && echo small > /small\n",
        &[],
    );
    let ctx = ctx.to_str().unwrap();
    let out = format!("type=local,dest={}", kiln.path("out").display());
    let first = kiln.build(&["-o", &out, ctx]);
    assert_eq!(ran(&first).len(), 2, "{first}");

    let du = kiln.ok(&["builder", "du"]);
    let line = |text: &str, label: &str| {
        text.lines().find(|l| l.starts_with(label)).map(|l| l[label.len()..].trim().to_owned()).unwrap()
    };
    assert!(line(&du, "Private:").ends_with("kB"), "the 200 kB layer is private: {du}");
    assert_eq!(line(&du, "Cache mounts:"), "2B", "{du}");
    let df = kiln.ok(&["system", "df"]);
    let rows: Vec<Vec<&str>> = df.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], "{df}");
    assert_eq!(&rows[1][..3], ["Images", "1", "0"], "{df}");
    assert_eq!(&rows[4][..2], ["Build", "Cache"], "{df}");
    assert!(rows[4][2].parse::<usize>().unwrap() >= 3, "two RUN records and one cache mount: {df}");

    // under the limit: nothing goes
    let kept = kiln.ok(&["builder", "prune", "-f", "--keep-storage", "1GB"]);
    assert_eq!(kept.trim(), "Total reclaimed space: 0B", "{kept}");
    let cached = kiln.build(&["-o", &out, ctx]);
    assert!(ran(&cached).is_empty(), "{cached}");

    // everything, cache mounts too
    let pruned = kiln.ok(&["builder", "prune", "-f", "--all"]);
    assert!(
        pruned.starts_with("Deleted build cache objects:") && pruned.contains("cache mount /c"),
        "{pruned}"
    );
    assert!(!pruned.contains("reclaimed space: 0B"), "{pruned}");
    assert_eq!(line(&kiln.ok(&["builder", "du"]), "Total:"), "0B");
    let rebuilt = kiln.build(&["-o", &out, ctx]);
    assert_eq!(ran(&rebuilt).len(), 2, "{rebuilt}");

    // a policy of one byte: the build that ran steps prunes its own cache afterwards
    std::fs::write(kiln.root().join("gc.toml"), "keep-storage = \"1\"\n").unwrap();
    let edited = kiln.build(&["--no-cache", "-o", &out, ctx]);
    assert!(edited.contains("pruned build cache to 1B"), "{edited}");
    let after = kiln.build(&["-o", &out, ctx]);
    assert_eq!(ran(&after).len(), 2, "the policy removed the cache: {after}");
    std::fs::write(kiln.root().join("gc.toml"), "enabled = false\n").unwrap();
    kiln.build(&["-o", &out, ctx]);
    let cached = kiln.build(&["-o", &out, ctx]);
    assert!(ran(&cached).is_empty(), "GC disabled: {cached}");
}
