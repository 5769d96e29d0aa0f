//! Interop with the OCI ecosystem through a real `docker-registry`: what kiln pushes, skopeo
//! inspects and copies and umoci unpacks; what umoci builds and skopeo pushes, kiln pulls and
//! unpacks.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use registry::{PullOptions, Reference, pull, push};
use support::{Auth, RegistryServer, assert_store_consistent, client};

fn run(program: &str, args: &[&str], cwd: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn skopeo_and_umoci_read_what_kiln_pushes() {
    let server = RegistryServer::start(Auth::None);
    let auth = tempfile::tempdir().unwrap();
    let client = client(auth.path());
    let rt = runtime();
    let (_dir, store) = support::store();
    let reference = Reference::parse(&format!("{}/interop/busybox:1", server.host())).unwrap();
    let manifest = testkit::store::busybox_image(&store, &reference.to_string()).unwrap();
    rt.block_on(push(&client, &store, &reference, &registry::Progress::none())).unwrap();

    let work = tempfile::tempdir().unwrap();
    let source = format!("docker://{reference}");
    let inspect = run("skopeo", &["inspect", "--tls-verify=false", &source], work.path());
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], manifest.digest().to_string());
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);

    run("skopeo", &["copy", "--src-tls-verify=false", &source, "oci:layout:copied"], work.path());
    run("umoci", &["unpack", "--image", "layout:copied", "bundle"], work.path());
    let rootfs = work.path().join("bundle/rootfs");
    assert!(rootfs.join("bin/busybox").is_file());
    assert_eq!(std::fs::read_link(rootfs.join("bin/sh")).unwrap(), Path::new("busybox"));
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
}

#[test]
fn kiln_pulls_what_umoci_builds_and_skopeo_pushes() {
    let server = RegistryServer::start(Auth::None);
    let work = tempfile::tempdir().unwrap();
    run("umoci", &["init", "--layout", "layout"], work.path());
    run("umoci", &["new", "--image", "layout:v1"], work.path());
    run("umoci", &["unpack", "--image", "layout:v1", "bundle"], work.path());
    let rootfs = work.path().join("bundle/rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/greeting"), "hello from umoci\n").unwrap();
    std::os::unix::fs::symlink("greeting", rootfs.join("etc/link")).unwrap();
    run("umoci", &["repack", "--image", "layout:v1", "bundle"], work.path());
    run("umoci", &["config", "--image", "layout:v1", "--config.cmd", "/bin/true"], work.path());
    let destination = format!("docker://{}/umoci/image:v1", server.host());
    run("skopeo", &["copy", "--dest-tls-verify=false", "oci:layout:v1", &destination], work.path());

    let auth = tempfile::tempdir().unwrap();
    let client = client(auth.path());
    let rt = runtime();
    let (_dir, store) = support::store();
    let reference = Reference::parse(&format!("{}/umoci/image:v1", server.host())).unwrap();
    let pulled = rt
        .block_on(pull(&client, &store, &reference, &PullOptions::default(), &registry::Progress::none()))
        .unwrap();
    assert_store_consistent(&store);
    let image = store.content().read_image(&pulled.manifest).unwrap();
    let cmd = image.config.config().as_ref().and_then(|c| c.cmd().clone()).unwrap();
    assert_eq!(cmd, vec!["/bin/true".to_owned()]);
    let lowers = store.snapshots().ensure_unpacked(&image.layers().unwrap()).unwrap();
    assert_eq!(std::fs::read_to_string(lowers[0].join("etc/greeting")).unwrap(), "hello from umoci\n");
    assert_eq!(std::fs::read_link(lowers[0].join("etc/link")).unwrap(), Path::new("greeting"));

    // skopeo's digest of what it pushed is what kiln stored.
    let inspect = run("skopeo", &["inspect", "--tls-verify=false", &destination], work.path());
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], pulled.manifest.digest().to_string());
}
