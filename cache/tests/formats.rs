#![allow(clippy::unwrap_used)]
//! Image archives: kiln's docker-archive and OCI archive round trip and are accepted by skopeo;
//! layouts made by umoci load; hostile archives are refused. Runs as root.

use std::path::Path;
use std::process::Command;

use cache::formats::{self, ArchiveFormat, ExportImage, ImportOptions};
use cache::{Error, Store};
use testkit::busybox::make_rootfs;
use testkit::store::busybox_image;

const NAME: &str = "docker.io/library/busybox:latest";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn save(store: &Store, format: ArchiveFormat, path: &Path) {
    let target = store.images().get(NAME).unwrap().unwrap().target;
    let mut file = std::fs::File::create(path).unwrap();
    formats::save(store, &[ExportImage { target, names: vec![NAME.to_owned()] }], format, &mut file).unwrap();
}

/// Flattens the image `manifest` of `store` into `dest` and checks it is the busybox rootfs.
fn assert_busybox_rootfs(store: &Store, manifest: &oci_spec::image::Descriptor, dest: &Path) {
    let image = store.content().read_image(manifest).unwrap();
    std::fs::create_dir_all(dest).unwrap();
    store.snapshots().flatten(&image.layers().unwrap(), dest).unwrap();
    assert!(dest.join("bin/busybox").is_file());
    assert_eq!(std::fs::read_link(dest.join("bin/sh")).unwrap(), Path::new("busybox"));
    assert!(std::fs::read_to_string(dest.join("etc/passwd")).unwrap().contains("nobody:x:65534"));
}

#[test]
fn docker_archive_round_trips_and_skopeo_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Store::open(&tmp.path().join("a")).unwrap();
    let manifest = busybox_image(&a, NAME).unwrap();
    let original = a.content().read_image(&manifest).unwrap();
    let archive = tmp.path().join("busybox-docker.tar");
    save(&a, ArchiveFormat::Docker, &archive);

    let inspect =
        run(Command::new("skopeo").arg("inspect").arg(format!("docker-archive:{}", archive.display())));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1, "{inspect}");
    // skopeo finds the image by the name recorded in manifest.json
    run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}:busybox:latest", archive.display())));
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("docker-archive:{}", archive.display())));
    assert!(raw.contains("\"sh\""), "{raw}");

    let b = Store::open(&tmp.path().join("b")).unwrap();
    let loaded = formats::load(&b, &archive).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].names, ["busybox:latest"]);
    assert_eq!(&loaded[0].image_id, original.id(), "image ID survives the round trip");
    // kiln's gzip is deterministic: the recompressed layer is the original blob
    let reloaded = b.content().read_image(&loaded[0].manifest).unwrap();
    assert_eq!(reloaded.manifest.layers(), original.manifest.layers());
    assert_busybox_rootfs(&b, &loaded[0].manifest, &tmp.path().join("flat"));
}

#[test]
fn oci_archive_round_trips_and_skopeo_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Store::open(&tmp.path().join("a")).unwrap();
    let manifest = busybox_image(&a, NAME).unwrap();
    let archive = tmp.path().join("busybox-oci.tar");
    save(&a, ArchiveFormat::Oci, &archive);

    let inspect =
        run(Command::new("skopeo").arg("inspect").arg(format!("oci-archive:{}", archive.display())));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"].as_str().unwrap(), manifest.digest().to_string());
    // skopeo finds the image by its ref.name annotation too, and can copy it to a layout
    let layout = tmp.path().join("layout");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}:latest", archive.display()))
        .arg(format!("oci:{}:copied", layout.display())));

    let b = Store::open(&tmp.path().join("b")).unwrap();
    let loaded = formats::load(&b, &archive).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].names, [NAME]);
    assert_eq!(loaded[0].manifest.digest(), manifest.digest(), "OCI keeps the manifest as is");
    assert_busybox_rootfs(&b, &loaded[0].manifest, &tmp.path().join("flat"));

    // the layout skopeo wrote (a directory) loads too; its only name is the tag `copied`
    let c = Store::open(&tmp.path().join("c")).unwrap();
    let loaded = formats::load(&c, &layout).unwrap();
    assert_eq!(loaded.len(), 1);
    assert!(loaded[0].names.is_empty(), "{:?}", loaded[0].names);
    assert_busybox_rootfs(&c, &loaded[0].manifest, &tmp.path().join("flat-c"));
}

#[test]
fn umoci_layout_is_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let bundle = tmp.path().join("bundle");
    let layout_ref = format!("{}:v1", layout.display());
    run(Command::new("umoci").args(["init", "--layout"]).arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &layout_ref]));
    run(Command::new("umoci").args(["unpack", "--image", &layout_ref]).arg(&bundle));
    make_rootfs(&bundle.join("rootfs"));
    std::fs::write(bundle.join("rootfs/hello"), b"from umoci\n").unwrap();
    run(Command::new("umoci").args(["repack", "--image", &layout_ref]).arg(&bundle));
    run(Command::new("umoci").args(["config", "--image", &layout_ref, "--config.cmd", "sh"]));

    let store = Store::open(&tmp.path().join("store")).unwrap();
    let loaded = formats::load(&store, &layout).unwrap();
    assert_eq!(loaded.len(), 1);
    let image = store.content().read_image(&loaded[0].manifest).unwrap();
    assert_eq!(image.config.config().as_ref().unwrap().cmd().as_deref().unwrap(), ["sh"]);
    let lowers = store.snapshots().ensure_unpacked(&image.layers().unwrap()).unwrap();
    let found = lowers.iter().any(|dir| dir.join("hello").is_file());
    assert!(found, "the file added with umoci is in a snapshot");
    assert_busybox_rootfs(&store, &loaded[0].manifest, &tmp.path().join("flat"));
}

#[test]
fn import_rootfs_tarball_with_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    make_rootfs(&rootfs);
    let tarball = tmp.path().join("rootfs.tar.gz");
    run(Command::new("tar").arg("-C").arg(&rootfs).arg("-czf").arg(&tarball).arg("."));
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let options = ImportOptions {
        changes: vec![
            r#"CMD ["sh", "-c", "echo hi"]"#.into(),
            "ENV GREETING=hello".into(),
            "WORKDIR /tmp".into(),
        ],
        ..ImportOptions::default()
    };
    let file = std::fs::File::open(&tarball).unwrap();
    let (manifest, image_id) = formats::import_rootfs(&store, file, "rootfs.tar.gz", &options).unwrap();
    let image = store.content().read_image(&manifest).unwrap();
    assert_eq!(image.id(), &image_id);
    let config = image.config.config().as_ref().unwrap();
    assert_eq!(config.cmd().as_deref().unwrap(), ["sh", "-c", "echo hi"]);
    assert!(config.env().as_ref().unwrap().contains(&"GREETING=hello".to_owned()));
    assert_eq!(config.working_dir().as_deref(), Some("/tmp"));
    assert_eq!(image.manifest.layers().len(), 1);
    assert_busybox_rootfs(&store, &manifest, &tmp.path().join("flat"));

    // a bad change fails before anything is imported
    let bad = ImportOptions { changes: vec!["RUN rm -rf /".into()], ..ImportOptions::default() };
    let err = formats::import_rootfs(&store, std::fs::File::open(&tarball).unwrap(), "x", &bad).unwrap_err();
    assert!(err.to_string().contains("RUN"), "{err}");
}

/// Writes a tar with the given (name, bytes) files.
fn tar_of(path: &Path, files: &[(&str, &[u8])]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.finish().unwrap();
}

#[test]
fn hostile_docker_archive_layer_path_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
    let manifest =
        br#"[{"Config":"config.json","RepoTags":["evil:latest"],"Layers":["a/../../../etc/passwd"]}]"#;
    let archive = tmp.path().join("evil.tar");
    tar_of(&archive, &[("config.json", config), ("manifest.json", manifest)]);
    let err = formats::load(&store, &archive).unwrap_err().to_string();
    assert!(err.contains("etc/passwd") && err.contains("`..`"), "{err}");
    assert!(store.images().list().unwrap().is_empty());
}

#[test]
fn docker_archive_layer_with_escaping_entry_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    // a layer tar whose entry climbs out
    let mut layer = Vec::new();
    {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..12].copy_from_slice(b"../../escape");
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        layer.extend_from_slice(header.as_bytes());
        layer.extend_from_slice(b"x");
        layer.extend(std::iter::repeat_n(0u8, 511 + 1024));
    }
    let diff_id = cache::sha256_digest(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    let manifest = br#"[{"Config":"config.json","RepoTags":["evil:latest"],"Layers":["layer.tar"]}]"#;
    let archive = tmp.path().join("evil.tar");
    tar_of(
        &archive,
        &[("config.json", config.as_bytes()), ("layer.tar", &layer), ("manifest.json", manifest)],
    );
    let err = formats::load(&store, &archive).unwrap_err().to_string();
    assert!(err.contains("../../escape"), "{err}");
    assert!(store.content().list().unwrap().is_empty(), "nothing stored");
}

#[test]
fn oci_blob_with_wrong_digest_is_refused_and_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Store::open(&tmp.path().join("a")).unwrap();
    busybox_image(&a, NAME).unwrap();
    let archive = tmp.path().join("good.tar");
    save(&a, ArchiveFormat::Oci, &archive);
    // unpack, corrupt the layer blob (same size), repack
    let dir = tmp.path().join("layout");
    std::fs::create_dir(&dir).unwrap();
    run(Command::new("tar").arg("-C").arg(&dir).arg("-xf").arg(&archive));
    let image = a.content().read_image(&a.images().get(NAME).unwrap().unwrap().target).unwrap();
    let layer = image.manifest.layers()[0].digest().clone();
    let blob = dir.join("blobs/sha256").join(layer.digest());
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();

    let b = Store::open(&tmp.path().join("b")).unwrap();
    let err = formats::load(&b, &dir).unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { .. } | Error::Tar { .. }),
        "wrong digest must be refused: {err}"
    );
    assert!(!b.content().contains(&layer), "the corrupt blob is not stored");
    assert!(b.images().list().unwrap().is_empty());
}

#[test]
fn not_an_archive_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let path = tmp.path().join("empty.tar");
    tar_of(&path, &[("hello.txt", b"hi")]);
    let err = formats::load(&store, &path).unwrap_err().to_string();
    assert!(err.contains("neither a docker archive"), "{err}");
    let garbage = tmp.path().join("garbage.tar");
    std::fs::write(&garbage, vec![0x42u8; 3000]).unwrap();
    assert!(formats::load(&store, &garbage).is_err());
}

#[test]
fn legacy_docker_archive_with_symlinked_layer_loads() {
    let tmp = tempfile::tempdir().unwrap();
    // two layers with the same content: legacy `docker save` stores the second as a symlink
    let mut layer = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1);
    header.set_cksum();
    layer.append_data(&mut header, "etc/motd", &b"hello\n"[..]).unwrap();
    let layer = layer.into_inner().unwrap();
    let diff_id = cache::sha256_digest(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["cat","/etc/motd"]}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}","{diff_id}"]}}}}"#
    );
    let manifest = br#"[{"Config":"0123abcd.json","RepoTags":["legacy:v1","example.com/team/legacy:v2"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}]"#;
    let archive = tmp.path().join("legacy.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
    };
    add("aaa/layer.tar", &layer);
    add("0123abcd.json", config.as_bytes());
    add("manifest.json", manifest);
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    builder.append_link(&mut link, "bbb/layer.tar", "../aaa/layer.tar").unwrap();
    builder.finish().unwrap();
    drop(builder);

    let store = Store::open(&tmp.path().join("store")).unwrap();
    let loaded = formats::load(&store, &archive).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].names, ["legacy:v1", "example.com/team/legacy:v2"]);
    assert_eq!(loaded[0].image_id, cache::sha256_digest(config.as_bytes()), "config bytes kept verbatim");
    let image = store.content().read_image(&loaded[0].manifest).unwrap();
    assert_eq!(image.manifest.layers().len(), 2);
    assert_eq!(image.manifest.layers()[0], image.manifest.layers()[1]);
    let flat = tmp.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    store.snapshots().flatten(&image.layers().unwrap(), &flat).unwrap();
    assert_eq!(std::fs::read(flat.join("etc/motd")).unwrap(), b"hello\n");
}

/// The exporter's path: config + layers → tagged image → archive file (atomic) → another store.
#[test]
fn write_image_tagged_then_save_to_file() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Store::open(&tmp.path().join("a")).unwrap();
    let base = a.content().read_image(&busybox_image(&a, NAME).unwrap()).unwrap();
    let names = ["localhost:5000/app:1", "localhost:5000/app:2"];
    let manifest = a.write_image_tagged(&base.config, base.manifest.layers(), &names).unwrap();
    for name in names {
        assert_eq!(a.images().get(name).unwrap().unwrap().target, manifest);
    }
    let untagged = a.write_image_tagged(&base.config, &[], &[]);
    assert!(untagged.is_err(), "a layer count that does not match the diffIDs is refused");

    let archive = tmp.path().join("out/app.tar");
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    std::fs::write(&archive, b"previous content").unwrap();
    let export =
        ExportImage { target: manifest.clone(), names: names.iter().map(|n| n.to_string()).collect() };
    formats::save_to_file(&a, &[export], ArchiveFormat::Oci, &archive).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(archive.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp file left next to the archive");

    let b = Store::open(&tmp.path().join("b")).unwrap();
    let loaded = formats::load(&b, &archive).unwrap();
    // one index.json entry per name, like containerd
    assert!(loaded.iter().all(|l| l.manifest.digest() == manifest.digest()), "{loaded:?}");
    let loaded_names: Vec<&str> = loaded.iter().flat_map(|l| l.names.iter().map(String::as_str)).collect();
    assert_eq!(loaded_names, names);
}

/// A rootfs tarball cut in the middle of a file: the error names the entry, nothing is stored.
#[test]
fn truncated_import_names_the_entry_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = tmp.path().join("cut.tar");
    tar_of(&tarball, &[("etc/hostname", b"kiln\n"), ("big.bin", &[7u8; 100_000])]);
    let bytes = std::fs::read(&tarball).unwrap();
    std::fs::write(&tarball, &bytes[..1024 + 512 + 50_000]).unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let file = std::fs::File::open(&tarball).unwrap();
    let err = formats::import_rootfs(&store, file, "cut.tar", &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("\"big.bin\"") && err.to_string().contains("100000 bytes"), "{err}");
    assert!(store.content().list().unwrap().is_empty());
    assert!(store.images().list().unwrap().is_empty());
}
