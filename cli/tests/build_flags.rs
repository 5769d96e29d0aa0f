#![allow(clippy::unwrap_used)]
//! `kiln build`'s sandbox flags with real builds (root): `--allow` (entitlements for
//! `RUN --security=insecure` and `RUN --network=host`), `--ulimit`, `--shm-size`, `--add-host`
//! and `--cgroup-parent`.

use std::path::{Path, PathBuf};

use testkit::Kiln;

/// The `Key:\tvalue` line of this process's `/proc/self/status`.
fn own_status(key: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))).unwrap().trim().to_owned()
}

#[test]
fn security_insecure_needs_the_entitlement_and_then_runs_privileged() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    // what kiln itself has: the privileged step gets exactly that bounding set
    let own = own_status("CapEff");
    let dockerfile = format!(
        "FROM busybox\n\
         RUN --security=insecure grep -q '^CapBnd:\t{own}$' /proc/self/status \
           && grep -q '^Seccomp:\t0$' /proc/self/status \
           && grep -q '^NoNewPrivs:\t0$' /proc/self/status \
           && [ -c /dev/fuse ] && [ -c /dev/kmsg ] && [ -c /dev/net/tun ] && [ -c /dev/loop-control ] && [ -b /dev/loop0 ] \
           && grep -q ' /sys sysfs rw,' /proc/mounts \
           && ! grep -q ' /proc/kcore ' /proc/mounts\n\
         RUN grep -q '^CapBnd:\t00000000a80425fb$' /proc/self/status && grep -q '^Seccomp:\t2$' /proc/self/status \
           && [ ! -e /dev/fuse ] && grep -q ' /sys sysfs ro,' /proc/mounts\n"
    );
    let context = kiln.context("insecure", &dockerfile, &[]);
    let context = context.to_str().unwrap();
    let err = kiln.build_fails(&[context]);
    assert!(err.contains("ERROR: failed to solve: entitlement security.insecure is not allowed"), "{err}");
    assert!(err.contains("--allow security.insecure"), "{err}");
    // refused before anything ran
    assert!(!err.contains("RUN --security=insecure grep"), "{err}");
    // network.host does not grant it
    let err = kiln.build_fails(&["--allow", "network.host", context]);
    assert!(err.contains("entitlement security.insecure is not allowed"), "{err}");
    kiln.build(&["--allow", "security.insecure", context]);

    let err = kiln.build_fails(&["--allow", "security.insecur", context]);
    assert!(err.contains("unknown entitlement security.insecur"), "{err}");
}

#[test]
fn network_host_needs_the_entitlement_or_the_global_flag() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    // the host's interfaces are visible: the same list as here
    let own_links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let name = own_links.iter().find(|n| *n != "lo").cloned().unwrap_or_else(|| "lo".into());
    let dockerfile = format!("FROM busybox\nRUN --network=host [ -e /sys/class/net/{name} ]\n");
    let context = kiln.context("host", &dockerfile, &[]);
    let context = context.to_str().unwrap();
    let err = kiln.build_fails(&[context]);
    assert!(err.contains("ERROR: failed to solve: entitlement network.host is not allowed"), "{err}");
    kiln.build(&["--no-cache", "--allow", "network.host", context]);
    // `--network=host` for every step allows it, as buildx does
    kiln.build(&["--no-cache", "--network", "host", context]);
}

#[test]
fn ulimits_apply_to_run_and_default_to_kiln_s_own() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let soft = own_status_limit("Max open files", 0);
    let hard = own_status_limit("Max open files", 1);
    let dockerfile = "FROM busybox\nRUN echo $(ulimit -n):$(ulimit -Hn):$(ulimit -Hu) > /limits\n";
    let context = kiln.context("ulimit", dockerfile, &[]);
    let context = context.to_str().unwrap();
    let (out, _) = kiln.build_local("out-default", &[context]);
    let procs = own_status_limit("Max processes", 1);
    assert_eq!(testkit::read(&out.join("limits")), format!("{soft}:{hard}:{procs}\n"));

    let (out, _) =
        kiln.build_local("out-set", &["--ulimit", "nofile=1024:2048", "--ulimit", "nproc=300", context]);
    assert_eq!(testkit::read(&out.join("limits")), "1024:2048:300\n");

    // above the current hard limit: only with CAP_SYS_RESOURCE
    if !has_cap(24) {
        let too_high = format!("nofile={}", hard.parse::<u64>().unwrap() + 1);
        let err = kiln.build_fails(&["--ulimit", &too_high, context]);
        assert!(err.contains("the hard limit cannot be raised above the current"), "{err}");
        assert!(err.contains("CAP_SYS_RESOURCE"), "{err}");
    }
    let err = kiln.build_fails(&["--ulimit", "nofile=2048:1024", context]);
    assert!(err.contains("ulimit soft limit must be less than or equal to hard limit: 2048 > 1024"), "{err}");
    let err = kiln.build_fails(&["--ulimit", "files=10", context]);
    assert!(err.contains("invalid ulimit type: files"), "{err}");
}

/// Field `index` (0 soft, 1 hard) of a `/proc/self/limits` row, as `ulimit` prints it.
fn own_status_limit(row: &str, index: usize) -> String {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with(row)).unwrap();
    line[row.len()..].split_whitespace().nth(index).unwrap().to_owned()
}

fn has_cap(cap: u32) -> bool {
    u64::from_str_radix(&own_status("CapEff"), 16).unwrap() & (1 << cap) != 0
}

#[test]
fn shm_size_sets_dev_shm() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let dockerfile = "FROM busybox\nRUN grep ' /dev/shm ' /proc/mounts > /shm\n";
    let context = kiln.context("shm", dockerfile, &[]);
    let context = context.to_str().unwrap();
    let (out, _) = kiln.build_local("out-default", &[context]);
    assert!(testkit::read(&out.join("shm")).contains("size=65536k"));
    let (out, _) = kiln.build_local("out-set", &["--shm-size", "128m", context]);
    assert!(testkit::read(&out.join("shm")).contains("size=131072k"), "{}", testkit::read(&out.join("shm")));
    let err = kiln.build_fails(&["--shm-size", "lots", context]);
    assert!(err.contains("invalid --shm-size"), "{err}");
}

#[test]
fn add_host_writes_etc_hosts_and_its_address_is_not_in_the_cache_key() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let dockerfile = "FROM busybox\nRUN cat /etc/hosts > /hosts\n";
    let context = kiln.context("hosts", dockerfile, &[]);
    let context = context.to_str().unwrap();
    let (out, _) =
        kiln.build_local("out-1", &["--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway", context]);
    let hosts = testkit::read(&out.join("hosts"));
    assert!(hosts.contains("10.1.2.3\tdb\n"), "{hosts}");
    assert!(hosts.contains("10.89.0.1\tgw\n"), "{hosts}");
    assert!(hosts.contains("127.0.0.1\tlocalhost"), "{hosts}");
    // BuildKit keys the names, not the addresses
    let (_, progress) =
        kiln.build_local("out-2", &["--add-host", "db:10.9.9.9", "--add-host", "gw:host-gateway", context]);
    assert!(testkit::ran(&progress).is_empty(), "{progress}");
    let (out, progress) = kiln.build_local("out-3", &["--add-host", "cache:10.1.2.3", context]);
    assert!(!testkit::ran(&progress).is_empty(), "{progress}");
    assert!(testkit::read(&out.join("hosts")).contains("10.1.2.3\tcache\n"));
    let err = kiln.build_fails(&["--add-host", "db", context]);
    assert!(err.contains("bad format for add-host"), "{err}");
}

/// A cgroup made for a test in every hierarchy kiln uses, removed on drop (with what kiln
/// left under it).
struct TestCgroup {
    dirs: Vec<PathBuf>,
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir.join("kiln"));
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn cgroup_parent_puts_run_under_the_parent_s_limits() {
    testkit::require_root!();
    let name = format!("kiln-test-parent-{}", std::process::id());
    let root = Path::new("/sys/fs/cgroup");
    let v2 = root.join("cgroup.controllers").exists();
    let pids_dir = if v2 { root.join(&name) } else { root.join("pids").join(&name) };
    let dirs = if v2 {
        vec![pids_dir.clone()]
    } else {
        ["memory", "cpu", "pids"]
            .iter()
            .map(|c| root.join(c).join(&name))
            .filter(|d| d.parent().unwrap().exists())
            .collect()
    };
    let cgroup = TestCgroup { dirs };
    for dir in &cgroup.dirs {
        std::fs::create_dir_all(dir).unwrap();
    }
    if v2 {
        std::fs::write(root.join("cgroup.subtree_control"), "+pids").unwrap();
    }
    std::fs::write(pids_dir.join("pids.max"), "8").unwrap();

    let kiln = Kiln::with_busybox();
    // 20 processes at once: more than the parent's pids.max
    let dockerfile = "FROM busybox\nRUN for i in $(seq 20); do sleep 2 & done; wait\n";
    let context = kiln.context("cgroup", dockerfile, &[]);
    let context = context.to_str().unwrap();
    let err = kiln.build_fails(&["--cgroup-parent", &format!("/{name}"), context]);
    assert!(err.contains("can't fork") || err.contains("Resource temporarily unavailable"), "{err}");
    kiln.build(&[context]);
    // kiln's own cgroups under the parent are gone
    for dir in &cgroup.dirs {
        let left: Vec<_> = std::fs::read_dir(dir.join("kiln")).map(|d| d.count()).into_iter().collect();
        assert!(left.iter().all(|n| *n == 0), "{}: {left:?}", dir.display());
    }
    let err = kiln.build_fails(&["--cgroup-parent", "../up", context]);
    assert!(err.contains("invalid --cgroup-parent"), "{err}");
    drop(cgroup);
}

#[test]
fn annotations_go_into_the_manifest_and_its_descriptor() {
    testkit::require_root!();
    let kiln = Kiln::with_busybox();
    let context = kiln.context("annotated", "FROM busybox\nRUN echo hi > /hi\n", &[]);
    let context = context.to_str().unwrap();
    let archive = kiln.path("image.tar");
    let output = format!("type=oci,dest={}", archive.display());
    kiln.build(&[
        "--annotation",
        "org.opencontainers.image.url=https://example.test/app",
        "--annotation",
        "manifest:com.example.kind=test",
        "--annotation",
        "manifest-descriptor:com.example.where=descriptor",
        "-o",
        &output,
        context,
    ]);
    let dir = kiln.path("image");
    std::fs::create_dir_all(&dir).unwrap();
    let status =
        std::process::Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&dir).status().unwrap();
    assert!(status.success());
    let index: serde_json::Value = serde_json::from_str(&testkit::read(&dir.join("index.json"))).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(entry["annotations"]["com.example.where"], "descriptor", "{index}");
    let digest = entry["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&testkit::read(&dir.join("blobs/sha256").join(digest))).unwrap();
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.url"], "https://example.test/app",
        "{manifest}"
    );
    assert_eq!(manifest["annotations"]["com.example.kind"], "test", "{manifest}");
    assert!(manifest["annotations"].get("com.example.where").is_none(), "{manifest}");

    let err = kiln.build_fails(&["--annotation", "index:com.example.x=1", context]);
    assert!(err.contains("index annotations not supported for single platform export"), "{err}");
}
