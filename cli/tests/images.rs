#![allow(clippy::unwrap_used)]
//! The image commands end to end: a busybox rootfs tarball → `kiln import` → images, inspect,
//! tag, history, save (docker and OCI, checked with skopeo), rmi, load (file and stdin). Each
//! test uses its own `--root` in a temp dir.

use std::path::Path;
use std::process::{Command, Stdio};

use testkit::{Kiln, busybox_tarball, run};

#[test]
fn import_list_inspect_tag_save_rmi_load_round_trip() {
    testkit::require_root!();
    let tmp = tempfile::tempdir().unwrap();
    let kiln = Kiln::in_dir(tmp.path(), "root");
    let tarball = busybox_tarball();
    let tarball = tarball.to_str().unwrap();

    let id = kiln.ok(&["import", tarball, "busybox", "--change", r#"CMD ["sh"]"#, "-c", "ENV HELLO=world"]);
    let id = id.trim().to_owned();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let short = &id[7..19];
    // unpacked right away, as docker does: the first run or FROM does not wait for it
    let snapshots: Vec<_> = std::fs::read_dir(kiln.root().join("snapshots")).unwrap().flatten().collect();
    assert_eq!(snapshots.len(), 1, "one layer, one snapshot");
    assert!(snapshots[0].path().join("fs/bin/busybox").exists());

    let table = kiln.ok(&["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY") && lines[0].contains("IMAGE ID"), "{table}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..3], ["busybox", "latest", short], "{table}");

    let json = kiln.ok(&["images", "--format", "json"]);
    let entry: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(entry["Repository"], "busybox");
    assert_eq!(entry["Tag"], "latest");
    assert_eq!(entry["ID"], short);

    let inspect: serde_json::Value = serde_json::from_str(&kiln.ok(&["inspect", "busybox"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
    assert_eq!(inspect[0]["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(inspect[0]["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert!(inspect[0]["Config"]["Env"].as_array().unwrap().contains(&serde_json::json!("HELLO=world")));
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    // by short ID too
    let by_id: serde_json::Value = serde_json::from_str(&kiln.ok(&["inspect", short])).unwrap();
    assert_eq!(by_id[0]["Id"], id.as_str());

    kiln.ok(&["tag", "busybox", "localhost:5000/base:1"]);
    let table = kiln.ok(&["images"]);
    assert!(table.contains("localhost:5000/base") && table.contains("busybox"), "{table}");

    let history = kiln.ok(&["history", "busybox"]);
    assert_eq!(history.lines().count(), 2, "{history}");
    assert!(history.contains("Imported from"), "{history}");

    let docker_tar = tmp.path().join("docker.tar");
    let oci_tar = tmp.path().join("oci.tar");
    kiln.ok(&["save", "-o", docker_tar.to_str().unwrap(), "busybox"]);
    kiln.ok(&["save", "--format", "oci", "-o", oci_tar.to_str().unwrap(), "busybox"]);
    run(Command::new("skopeo").arg("inspect").arg(format!("docker-archive:{}", docker_tar.display())));
    run(Command::new("skopeo").arg("inspect").arg(format!("oci-archive:{}", oci_tar.display())));

    // two names: by ID needs --force; by name removes just that name
    let err = kiln.fails(&["rmi", short]);
    assert!(err.contains("must be forced"), "{err}");
    let out = kiln.ok(&["rmi", "busybox"]);
    assert_eq!(out.trim(), "Untagged: busybox:latest");
    let out = kiln.ok(&["rmi", short]);
    assert!(
        out.contains("Untagged: localhost:5000/base:1") && out.contains(&format!("Deleted: {id}")),
        "{out}"
    );
    assert_eq!(kiln.ok(&["images", "-q"]), "");
    let blobs = std::fs::read_dir(kiln.root.join("content/blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 0, "the removed image's blobs are garbage-collected");

    let out = kiln.ok(&["load", "-i", docker_tar.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: busybox:latest");
    let inspect: serde_json::Value = serde_json::from_str(&kiln.ok(&["inspect", "busybox:latest"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str(), "image ID survives save/load");

    // an OCI archive on stdin, into another store
    let other = Kiln::in_dir(tmp.path(), "other");
    let mut child = other.cmd(&["load"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::copy(&mut std::fs::File::open(&oci_tar).unwrap(), child.stdin.as_mut().unwrap()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "Loaded image: busybox:latest");
    let inspect: serde_json::Value = serde_json::from_str(&other.ok(&["inspect", "busybox"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
}

#[test]
fn bad_input_gives_one_clear_error() {
    testkit::require_root!();
    let tmp = tempfile::tempdir().unwrap();
    let kiln = Kiln::in_dir(tmp.path(), "root");
    let err = kiln.fails(&["inspect", "nope"]);
    assert!(err.starts_with("error: ") && err.contains("no such image: nope"), "{err}");
    let err = kiln.fails(&["import", "/nonexistent.tar", "x"]);
    assert!(err.contains("/nonexistent.tar"), "{err}");
    let not_tar = tmp.path().join("junk.tar");
    std::fs::write(&not_tar, b"this is not a tar archive at all").unwrap();
    let err = kiln.fails(&["load", "-i", not_tar.to_str().unwrap()]);
    assert!(err.contains("junk.tar"), "{err}");
    let err = kiln.fails(&["import", not_tar.to_str().unwrap(), "x", "--change", "RUN echo"]);
    assert!(err.contains("RUN"), "{err}");
    let err = kiln.fails(&["tag", "nope", "other"]);
    assert!(err.contains("no such image"), "{err}");
    // the store still works
    assert_eq!(kiln.ok(&["images", "-q"]), "");
}

/// Interop without a docker daemon: `kiln save` archives are copied by skopeo and unpacked by
/// umoci; a docker-archive written by skopeo loads into kiln; the OCI round trip keeps the
/// manifest digest (a docker-archive stores uncompressed layers and no manifest, so there only
/// the image ID survives).
#[test]
fn saved_archives_interoperate_with_skopeo_and_umoci() {
    testkit::require_root!();
    let tmp = tempfile::tempdir().unwrap();
    let kiln = Kiln::in_dir(tmp.path(), "root");
    let tarball = busybox_tarball();
    let id = kiln.ok(&["import", tarball.to_str().unwrap(), "busybox:interop"]).trim().to_owned();
    let digests = kiln.ok(&["images", "--digests", "--no-trunc"]);
    let manifest_digest = digests.lines().nth(1).unwrap().split_whitespace().nth(2).unwrap().to_owned();
    assert!(manifest_digest.starts_with("sha256:"), "{digests}");

    // kiln save (docker-archive) → skopeo copy → OCI layout → umoci unpack
    let docker_tar = tmp.path().join("docker.tar");
    kiln.ok(&["save", "-o", docker_tar.to_str().unwrap(), "busybox:interop"]);
    let layout = tmp.path().join("layout");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("docker-archive:{}", docker_tar.display()))
        .arg(format!("oci:{}:from-docker", layout.display())));
    let bundle = tmp.path().join("bundle-docker");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:from-docker", layout.display()))
        .arg(&bundle));
    assert_busybox(&bundle.join("rootfs"));

    // kiln save --format oci → extracted layout → umoci unpack directly
    let oci_tar = tmp.path().join("oci.tar");
    kiln.ok(&["save", "--format", "oci", "-o", oci_tar.to_str().unwrap(), "busybox:interop"]);
    let extracted = tmp.path().join("oci-extracted");
    std::fs::create_dir(&extracted).unwrap();
    run(Command::new("tar").arg("-C").arg(&extracted).arg("-xf").arg(&oci_tar));
    let bundle = tmp.path().join("bundle-oci");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:interop", extracted.display()))
        .arg(&bundle));
    assert_busybox(&bundle.join("rootfs"));

    // skopeo: OCI layout → docker-archive (its own writer) → kiln load
    let skopeo_tar = tmp.path().join("skopeo-docker.tar");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:from-docker", layout.display()))
        .arg(format!("docker-archive:{}:localhost/from-skopeo:v1", skopeo_tar.display())));
    let other = Kiln::in_dir(tmp.path(), "other");
    let out = other.ok(&["load", "-i", skopeo_tar.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: localhost/from-skopeo:v1");
    let inspect: serde_json::Value =
        serde_json::from_str(&other.ok(&["inspect", "localhost/from-skopeo:v1"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str(), "the config (image ID) survives kiln → skopeo → kiln");

    // OCI round trip keeps the manifest digest
    let third = Kiln::in_dir(tmp.path(), "third");
    third.ok(&["load", "-i", oci_tar.to_str().unwrap()]);
    let digests = third.ok(&["images", "--digests", "--no-trunc"]);
    assert!(digests.contains(&manifest_digest), "{digests}");
}

fn assert_busybox(rootfs: &Path) {
    assert!(rootfs.join("bin/busybox").is_file(), "{}", rootfs.display());
    assert_eq!(std::fs::read_link(rootfs.join("bin/sh")).unwrap(), Path::new("busybox"));
    assert!(std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap().contains("nobody:x:65534"));
}

#[test]
fn images_prune_removes_dangling_then_all() {
    testkit::require_root!();
    let tmp = tempfile::tempdir().unwrap();
    let kiln = Kiln::in_dir(tmp.path(), "root");
    let tarball = busybox_tarball();
    let tarball = tarball.to_str().unwrap();
    let kept = kiln.ok(&["import", tarball, "keep:1"]).trim().to_owned();
    // a second image, saved by ID (no names in the archive), removed and loaded back: dangling
    let dangling = kiln.ok(&["import", tarball, "gone:1", "--change", "CMD [\"true\"]"]).trim().to_owned();
    let archive = tmp.path().join("unnamed.tar");
    kiln.ok(&["save", "--format", "oci", "-o", archive.to_str().unwrap(), &dangling]);
    kiln.ok(&["rmi", "gone:1"]);
    kiln.ok(&["load", "-i", archive.to_str().unwrap()]);
    let table = kiln.ok(&["images"]);
    assert!(table.contains("<none>") && table.contains(&dangling[7..19]), "{table}");

    let out = kiln.ok(&["images", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {dangling}")) && out.contains("Total reclaimed space"), "{out}");
    assert!(!out.contains(&kept), "{out}");
    assert_eq!(kiln.ok(&["images", "-q"]).trim(), &kept[7..19]);

    let out = kiln.ok(&["images", "prune", "--all", "--force"]);
    assert!(out.contains("untagged: keep:1") && out.contains(&format!("deleted: {kept}")), "{out}");
    assert_eq!(kiln.ok(&["images", "-q"]), "");
    assert_eq!(std::fs::read_dir(kiln.root.join("content/blobs/sha256")).unwrap().count(), 0);
    // a repository filter still works next to the subcommand
    assert_eq!(kiln.ok(&["images", "busybox"]).lines().count(), 1);
}

/// `images` and `history` show what docker shows: a layer's size is the bytes of its regular
/// files (a hardlink counted once, symlinks and directories nothing), not its tar or gzip size;
/// a built image's `created` is the build's time, not its base's, unless SOURCE_DATE_EPOCH.
#[test]
fn sizes_and_creation_times_as_docker_shows_them() {
    testkit::require_root!();
    let tmp = tempfile::tempdir().unwrap();
    let kiln = Kiln::in_dir(tmp.path(), "root");
    let rootfs = kiln.files("base", &[("data", &"x".repeat(2000)), ("d/six", "hello\n"), ("d/empty", "")]);
    std::fs::hard_link(rootfs.join("data"), rootfs.join("data2")).unwrap();
    std::os::unix::fs::symlink("data", rootfs.join("link")).unwrap();
    let tarball = tmp.path().join("base.tar");
    testkit::busybox::tar(&rootfs, &tarball);
    kiln.import(&tarball, "base", &[]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let ctx = kiln.context(
        "ctx",
        "FROM base\nCOPY a.txt /\nCOPY six.txt /\n",
        &[("a.txt", "abc"), ("six.txt", "hello\n")],
    );
    kiln.build(&["-t", "built", ctx.to_str().unwrap()]);

    // docker: 2000 + 6 bytes for the base (2.01kB), 3 and 6 for the COPY layers
    let history = kiln.ok(&["history", "--format", "json", "built"]);
    let sizes: Vec<String> = history
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["Size"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(sizes, ["6B", "3B", "2.01kB"], "{history}");
    let images = kiln.ok(&["images", "--format", "json"]);
    let size_of = |name: &str| {
        images
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .find(|entry| entry["Repository"] == name)
            .map(|entry| entry["Size"].as_str().unwrap().to_owned())
    };
    assert_eq!(size_of("built").as_deref(), Some("2.02kB"), "{images}");
    assert_eq!(size_of("base").as_deref(), Some("2.01kB"), "{images}");

    let created = |name: &str| kiln.ok(&["inspect", "-f", "{{.Created}}", name]).trim().to_owned();
    let (base, built) = (created("base"), created("built"));
    assert!(built > base, "the built image's created time ({built}) is its base's ({base})");
    assert!(!history.contains("N/A"), "{history}");

    let mut build = kiln.cmd(&["build", "-q", "-t", "pinned", ctx.to_str().unwrap()]);
    let out = build.env("SOURCE_DATE_EPOCH", "1700000000").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(created("pinned"), "2023-11-14T22:13:20Z");
}
