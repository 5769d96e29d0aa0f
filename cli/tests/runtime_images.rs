#![allow(clippy::unwrap_used)]
//! Containers and the image store (as root): `commit` makes an image of a container's changes,
//! and containers are GC roots of the images they run. Same scaffolding as
//! `runtime_containers.rs`: a `--root` per test and a drop guard that cleans up on failure.

mod runtime_support;

use runtime_support::{Kiln, wait_for};

#[test]
fn commit_makes_an_image_of_the_changes_with_the_config_changes() {
    let kiln = Kiln::new(&["CMD [\"sh\"]"]);
    let script = "echo made > /made; rm /bin/vi; mkdir -p /deep/dir; echo ready; exec sleep 1000";
    kiln.detach(&["--name", "src", "img", "sh", "-c", script]);
    wait_for("ready", || kiln.logs("src").contains("ready"));
    let id = kiln.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/made\"]",
        "-c",
        "ENV FOO=bar",
        "-c",
        "LABEL stage=committed",
        "-c",
        "WORKDIR /deep",
        "-c",
        "EXPOSE 8080/tcp",
        "-m",
        "the message",
        "-a",
        "Jane <jane@example.com>",
        "src",
        "committed:v1",
    ]);
    assert!(id.trim().starts_with("sha256:") && id.trim().len() == 71, "{id}");
    // paused for the commit only
    assert_eq!(kiln.status("src"), "running");
    let inspect: serde_json::Value =
        serde_json::from_str(&kiln.ok(&["inspect", "--type", "image", "committed:v1"])).unwrap();
    let image = &inspect[0];
    assert_eq!(image["Id"], id.trim());
    assert_eq!(image["Author"], "Jane <jane@example.com>");
    assert_eq!(image["Config"]["Cmd"], serde_json::json!(["cat", "/made"]));
    assert_eq!(image["Config"]["WorkingDir"], "/deep");
    assert_eq!(image["Config"]["Labels"]["stage"], "committed");
    assert!(image["Config"]["Env"].as_array().unwrap().iter().any(|e| e == "FOO=bar"));
    assert!(image["Config"]["ExposedPorts"].get("8080/tcp").is_some(), "{image}");
    let base: serde_json::Value =
        serde_json::from_str(&kiln.ok(&["inspect", "--type", "image", "img"])).unwrap();
    let layers = |v: &serde_json::Value| v[0]["RootFS"]["Layers"].as_array().unwrap().clone();
    assert_eq!(layers(&inspect).len(), layers(&base).len() + 1);
    assert_eq!(layers(&inspect)[..layers(&base).len()], layers(&base)[..]);
    let history = kiln.ok(&["history", "committed:v1"]);
    assert!(history.contains("the message"), "{history}");
    // the image runs with the changes: the new file, the deletion, the config
    assert_eq!(kiln.ok(&["run", "--rm", "--network", "none", "committed:v1"]), "made\n");
    let check = "echo $FOO; pwd; test -e /bin/vi && echo vi-present; ls -d /deep/dir";
    assert_eq!(
        kiln.ok(&["run", "--rm", "--network", "none", "committed:v1", "sh", "-c", check]),
        "bar\n/deep\n/deep/dir\n"
    );
    // the sandbox's mount-point stubs of the running container stayed out of the layer (the
    // base image has no /etc/hosts)
    let fresh = kiln.ok(&["create", "--network", "none", "committed:v1"]).trim().to_owned();
    let exported = kiln.output(&["export", &fresh]);
    assert!(exported.status.success());
    let names: Vec<String> = tar::Archive::new(exported.stdout.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "made") && names.iter().any(|n| n == "etc/passwd"), "{names:?}");
    assert!(!names.iter().any(|n| n == "etc/hosts" || n == "etc/hostname"), "{names:?}");
    // a stopped container commits too; a bad change fails before any layer is written
    kiln.ok(&["stop", "-t", "0", "src"]);
    let untagged = kiln.ok(&["commit", "src"]);
    assert!(kiln.ok(&["images", "-q", "--no-trunc"]).contains(untagged.trim()));
    let bad = kiln.output(&["commit", "-c", "FROM scratch", "src", "bad:1"]);
    assert!(!bad.status.success(), "{bad:?}");
}

#[test]
fn containers_keep_their_image_content_after_rmi_f_and_prune() {
    let kiln = Kiln::new(&[]);
    let count = |dir: &str| std::fs::read_dir(kiln.root.join(dir)).map(|d| d.count()).unwrap_or(0);
    let (blobs, snapshots) = ("content/blobs/sha256", "snapshots");
    let running = kiln.detach(&["--name", "user", "img", "sleep", "1000"]);
    let stopped = kiln.ok(&["create", "--name", "stopped", "img", "true"]).trim().to_owned();
    let before = (count(blobs), count(snapshots));
    assert!(before.0 >= 3 && before.1 >= 1, "{before:?}");
    assert!(kiln.ok(&["rmi", "-f", "img"]).contains("Untagged: img"));
    assert_eq!(kiln.ok(&["images", "-q"]).trim(), "");
    // a GC now: the containers are roots
    kiln.ok(&["images", "prune", "-a", "-f"]);
    assert_eq!((count(blobs), count(snapshots)), before, "a container's image content was collected");
    kiln.ok(&["rm", "-f", &running]);
    kiln.ok(&["images", "prune", "-a", "-f"]);
    assert_eq!((count(blobs), count(snapshots)), before, "the stopped container's image was collected");
    kiln.ok(&["start", &stopped]);
    assert_eq!(kiln.ok(&["wait", &stopped]).trim(), "0");
    // the last user gone, the next GC reclaims everything
    kiln.ok(&["rm", &stopped]);
    kiln.ok(&["images", "prune", "-a", "-f"]);
    assert_eq!((count(blobs), count(snapshots)), (0, 0));
    // the drop guard runs `img` once more
    let tarball = kiln._tmp.path().join("busybox.tar");
    kiln.ok(&["import", tarball.to_str().unwrap(), "img"]);
}
