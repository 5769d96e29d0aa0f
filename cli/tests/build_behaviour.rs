#![allow(clippy::unwrap_used)]
//! `kiln build` end to end (root), BuildKit's behaviour where users notice it: proxy build args,
//! supplementary groups, the environment of RUN, the lowercase `dockerfile`, history, messages.
//! Each test imports a busybox base image as `busybox` into its own `--root` and builds small
//! Dockerfiles written by the test.

use std::path::PathBuf;
use std::sync::OnceLock;

use testkit::{Kiln, read};

/// A fresh root with the busybox base imported as `busybox`, with a user `app` in supplementary
/// groups from /etc/group (for the groups test).
fn kiln() -> Kiln {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    let tarball = BASE.get_or_init(|| {
        testkit::busybox::busybox_tarball_with("app-user", |rootfs| {
            let append = |file: &str, line: &str| {
                let path = rootfs.join(file);
                std::fs::write(&path, read(&path) + line).unwrap();
            };
            append("etc/passwd", "app:x:1000:1000::/home:/bin/sh\n");
            append("etc/group", "app:x:1000:\nextra:x:2000:app\n");
        })
    });
    let kiln = Kiln::new();
    kiln.import(tarball, "busybox", &[r#"CMD ["sh"]"#]);
    kiln
}

/// The config JSON of a stored image.
fn config(kiln: &Kiln, image: &str) -> serde_json::Value {
    let inspect: serde_json::Value = serde_json::from_str(&kiln.ok(&["inspect", image])).unwrap();
    serde_json::from_str(&kiln.config_blob(inspect[0]["Id"].as_str().unwrap())).unwrap()
}

/// Progress lines that say a RUN step ran (not cached).
fn ran_runs(progress: &str) -> usize {
    let mut names = std::collections::BTreeMap::new();
    let mut count = 0;
    for line in progress.lines() {
        let Some((number, text)) = line.strip_prefix('#').and_then(|r| r.split_once(' ')) else { continue };
        if text.starts_with('[') && !names.contains_key(number) {
            names.insert(number.to_owned(), text.to_owned());
        } else if text.starts_with("DONE") && names.get(number).is_some_and(|n| n.contains("] RUN ")) {
            count += 1;
        }
    }
    count
}

#[test]
fn proxy_build_args_reach_run_but_not_history_or_cache() {
    testkit::require_root!();
    let kiln = kiln();
    let ctx =
        kiln.files("proxy", &[("Dockerfile", "FROM busybox\nRUN env | grep -i _proxy | sort > /proxies\n")]);
    let ctx_arg = ctx.to_str().unwrap();
    let first = kiln.build(&[
        "--build-arg",
        "HTTP_PROXY=http://one:3128",
        "--build-arg",
        "no_proxy=localhost",
        "-t",
        "proxied",
        ctx_arg,
    ]);
    assert_eq!(ran_runs(&first), 1, "{first}");
    let (out, _) = kiln.build_local(
        "out",
        &["--build-arg", "HTTP_PROXY=http://one:3128", "--build-arg", "no_proxy=localhost", ctx_arg],
    );
    assert_eq!(
        read(&out.join("proxies")),
        "HTTP_PROXY=http://one:3128\nNO_PROXY=localhost\nhttp_proxy=http://one:3128\nno_proxy=localhost\n"
    );
    let config = config(&kiln, "proxied");
    let history = serde_json::to_string(&config["history"]).unwrap();
    assert!(!history.contains("one:3128") && !history.contains("localhost"), "{history}");
    assert!(!serde_json::to_string(&config["config"]).unwrap().contains("one:3128"));

    // another proxy value: the step stays cached
    let second = kiln.build(&["--build-arg", "HTTP_PROXY=http://two:3128", "-t", "proxied", ctx_arg]);
    assert_eq!(ran_runs(&second), 0, "a proxy change re-ran the step: {second}");
}

#[test]
fn run_has_no_hostname_and_groups_as_current_buildkit() {
    testkit::require_root!();
    let kiln = kiln();
    let dockerfile = "FROM busybox\n\
        RUN env > /env\n\
        USER app\n\
        RUN id > /tmp/id-app\n\
        USER app:app\n\
        RUN id > /tmp/id-app-group\n\
        USER www-data\n\
        RUN id > /tmp/id-www\n";
    let ctx = kiln.files("groups", &[("Dockerfile", dockerfile)]);
    let (out, _) = kiln.build_local("out", &[ctx.to_str().unwrap()]);
    let env = read(&out.join("env"));
    assert!(!env.lines().any(|l| l.starts_with("HOSTNAME=")), "{env}");
    // the primary gid (current BuildKit's ensureAdditionalGids) then the /etc/group memberships
    assert_eq!(read(&out.join("tmp/id-app")), "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n");
    // an explicit group: no memberships, only that group
    assert_eq!(read(&out.join("tmp/id-app-group")), "uid=1000(app) gid=1000(app) groups=1000(app)\n");
    assert_eq!(read(&out.join("tmp/id-www")), "uid=33(www-data) gid=33(www-data) groups=33(www-data)\n");
    // `kiln run` keeps docker's HOSTNAME
    let hostname = kiln.ok(&["run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo $HOSTNAME"]);
    assert!(!hostname.trim().is_empty(), "{hostname:?}");
}

#[test]
fn local_output_with_a_tag_names_nothing() {
    testkit::require_root!();
    let kiln = kiln();
    let ctx = kiln.files("local", &[("Dockerfile", "FROM busybox\nRUN echo hi > /hi\n")]);
    let dest = kiln.path("dest");
    let output = format!("type=local,dest={}", dest.display());
    let progress = kiln.build(&["-t", "never-stored", "-o", &output, ctx.to_str().unwrap()]);
    assert!(!progress.contains("naming to"), "{progress}");
    assert_eq!(read(&dest.join("hi")), "hi\n");
    assert!(!kiln.output(&["inspect", "never-stored"]).status.success());
}

#[test]
fn lowercase_dockerfile_is_found() {
    testkit::require_root!();
    let kiln = kiln();
    let ctx = kiln.files("lower", &[("dockerfile", "FROM busybox\nRUN echo lower > /which\n")]);
    let (out, _) = kiln.build_local("out", &[ctx.to_str().unwrap()]);
    assert_eq!(read(&out.join("which")), "lower\n");
}

#[test]
fn history_as_current_buildkit_writes_it() {
    // testExportedHistory of BuildKit's frontend tests
    testkit::require_root!();
    let kiln = kiln();
    let dockerfile = "FROM busybox AS base\n\
        ENV foo=bar\n\
        COPY foo /foo2\n\
        FROM busybox\n\
        LABEL lbl=val\n\
        COPY --from=base foo2 foo3\n\
        WORKDIR /\n\
        RUN echo bar > foo4\n\
        RUN [\"ls\"]\n\
        EXPOSE 2375 5000 1234/udp\n";
    let ctx = kiln.files("history", &[("Dockerfile", dockerfile), ("foo", "contents0")]);
    kiln.build(&["-t", "hist", ctx.to_str().unwrap()]);
    let config = config(&kiln, "hist");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    // busybox, COPY, RUN echo, and RUN ls (which changes nothing) each have a layer
    assert_eq!(diff_ids.len(), 4, "{config}");
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 7, "{history:?}");
    let expect = [
        ("LABEL lbl=val", true),
        ("COPY foo2 foo3", false),
        ("WORKDIR /", true),
        ("echo bar > foo4", false),
        ("RUN ls", false),
        ("EXPOSE [1234/udp 2375/tcp 5000/tcp]", true),
    ];
    for (entry, (created_by, empty)) in history[1..].iter().zip(expect) {
        assert!(entry["created_by"].as_str().unwrap().contains(created_by), "{entry}");
        assert_eq!(entry["empty_layer"].as_bool().unwrap_or(false), empty, "{entry}");
    }
    assert!(history.iter().all(|h| h["created"].is_string()), "{history:?}");
}

#[test]
fn onbuild_copy_from_resolves_stages_where_it_fires() {
    // testOnBuildInheritedStageWithFrom of BuildKit's frontend tests
    testkit::require_root!();
    let kiln = kiln();
    let dockerfile = "FROM busybox AS src\n\
        RUN mkdir -p /in && echo -n 12 > /in/file\n\
        FROM busybox AS base\n\
        ONBUILD COPY --from=src /in/file /out/foo\n\
        FROM base AS mid\n\
        RUN cp /out/foo /out/bar\n\
        FROM scratch\n\
        COPY --from=mid /out/bar /\n";
    let ctx = kiln.files("onbuild", &[("Dockerfile", dockerfile)]);
    let (out, _) = kiln.build_local("out", &[ctx.to_str().unwrap()]);
    assert_eq!(read(&out.join("bar")), "12");
}

#[test]
fn copy_from_a_variable_is_refused_like_buildkit() {
    testkit::require_root!();
    let kiln = kiln();
    let ctx = kiln.files("fromvar", &[("Dockerfile", "FROM busybox\nCOPY --from=$FOO . .\n")]);
    let out = kiln.output(&["build", "--progress", "plain", ctx.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
        ),
        "{stderr}"
    );
}

/// The export is a step of the plain progress, as BuildKit prints it: `#N exporting to image`,
/// its `writing image` / `naming to` lines and `#N DONE` under one number.
#[test]
fn plain_progress_shows_the_export_as_a_step() {
    testkit::require_root!();
    let kiln = kiln();
    let ctx = kiln.files("export-step", &[("Dockerfile", "FROM busybox\nRUN echo hi > /hi\n")]);
    let progress = kiln.build(&["-t", "exported", ctx.to_str().unwrap()]);
    let header =
        progress.lines().find(|l| l.ends_with(" exporting to image")).unwrap_or_else(|| panic!("{progress}"));
    let number = header.split_whitespace().next().unwrap();
    let step: Vec<&str> = progress.lines().filter(|l| l.starts_with(&format!("{number} "))).collect();
    assert!(step.iter().any(|l| l.contains("writing image sha256:") && l.ends_with(" done")), "{progress}");
    assert!(
        step.iter().any(|l| l.ends_with("naming to docker.io/library/exported:latest done")),
        "{progress}"
    );
    assert!(step.last().unwrap().starts_with(&format!("{number} DONE")), "{progress}");
    let local = kiln.path("export-local");
    let progress =
        kiln.build(&["-o", &format!("type=local,dest={}", local.display()), ctx.to_str().unwrap()]);
    assert!(progress.contains(" exporting to client directory\n"), "{progress}");
    assert!(!progress.contains("writing image"), "{progress}");
}
