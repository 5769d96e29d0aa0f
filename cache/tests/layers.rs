#![allow(clippy::unwrap_used)]
//! Layer diff → blob → snapshot/flatten round trips, overlay semantics. Runs as root.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use cache::{Compression, DiffOptions, DiffSource, LayerRef, Store};

fn sh(script: &str, dir: &Path) {
    let status = Command::new("sh").arg("-ec").arg(script).current_dir(dir).status().unwrap();
    assert!(status.success(), "{script}");
}

/// A tree with every kind of entry and metadata.
fn rich_tree(dir: &Path) {
    sh(
        "mkdir -p a/b/c empty; echo hello > a/file; ln a/file a/hardlink; ln -s ../a/file a/b/sym; \
         mkfifo fifo; mknod a/null c 1 3; echo s > setuid; chmod 4755 setuid; chmod 1777 a/b; \
         chown 33:65534 a/file; setfattr -n user.kiln -v yes a/file; \
         long=$(printf 'x%.0s' $(seq 1 150)); echo long > \"a/$long\"; \
         touch -h -d '2001-02-03T04:05:06Z' a/b/sym; touch -d '2002-01-01T00:00:00Z' a a/b a/b/c empty",
        dir,
    );
}

fn layer_ref(layer: &cache::NewLayer) -> LayerRef {
    LayerRef { blob: layer.descriptor.clone(), diff_id: layer.diff_id.clone() }
}

#[test]
fn plain_dir_round_trip_keeps_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    rich_tree(&src);
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let layer = store.content().write_layer(&src, DiffSource::PlainDir, &DiffOptions::default()).unwrap();
    // deterministic: same tree, same digests, whatever the thread count
    let again = store
        .content()
        .write_layer(&src, DiffSource::PlainDir, &DiffOptions { threads: 1, ..DiffOptions::default() })
        .unwrap();
    assert_eq!(layer, again);

    let lowers = store.snapshots().ensure_unpacked(&[layer_ref(&layer)]).unwrap();
    assert_eq!(lowers.len(), 1);
    let out = &lowers[0];
    let file = std::fs::metadata(out.join("a/file")).unwrap();
    assert_eq!((file.uid(), file.gid()), (33, 65534));
    let hard = std::fs::metadata(out.join("a/hardlink")).unwrap();
    assert_eq!(file.ino(), hard.ino(), "hardlink kept");
    assert_eq!(std::fs::read_link(out.join("a/b/sym")).unwrap(), Path::new("../a/file"));
    let sym = std::fs::symlink_metadata(out.join("a/b/sym")).unwrap();
    assert_eq!(sym.mtime(), 981173106);
    assert!(std::fs::symlink_metadata(out.join("fifo")).unwrap().file_type().is_fifo());
    assert!(std::fs::symlink_metadata(out.join("a/null")).unwrap().file_type().is_char_device());
    assert_eq!(std::fs::metadata(out.join("setuid")).unwrap().permissions().mode() & 0o7777, 0o4755);
    assert_eq!(std::fs::metadata(out.join("a/b")).unwrap().permissions().mode() & 0o7777, 0o1777);
    assert_eq!(
        std::fs::metadata(out.join("a/b")).unwrap().mtime(),
        1009843200,
        "dir mtime set after contents"
    );
    assert!(out.join(format!("a/{}", "x".repeat(150))).exists(), "long name via PAX");
    let got = Command::new("getfattr")
        .args(["-n", "user.kiln", "--only-values"])
        .arg(out.join("a/file"))
        .output()
        .unwrap();
    assert_eq!(got.stdout, b"yes", "xattr kept");
    // idempotent
    assert_eq!(store.snapshots().ensure_unpacked(&[layer_ref(&layer)]).unwrap(), lowers);
}

#[test]
fn overlay_upper_whiteouts_and_opaque_dirs_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    // base layer
    let base = tmp.path().join("base");
    std::fs::create_dir(&base).unwrap();
    sh("mkdir -p etc opq keep; echo a > etc/gone; echo b > opq/old; echo c > keep/x", &base);
    let base_layer =
        store.content().write_layer(&base, DiffSource::PlainDir, &DiffOptions::default()).unwrap();
    // an upperdir as overlayfs writes it
    let upper = tmp.path().join("upper");
    std::fs::create_dir(&upper).unwrap();
    sh(
        "mkdir etc opq; mknod etc/gone c 0 0; setfattr -n trusted.overlay.opaque -v y opq; echo new > opq/new; \
        setfattr -n trusted.overlay.origin -v junk opq/new",
        &upper,
    );
    let opts = DiffOptions { compression: Compression::Zstd, source_date_epoch: Some(100), threads: 0 };
    let top = store.content().write_layer(&upper, DiffSource::OverlayUpper, &opts).unwrap();
    // the tar has .wh. entries and no overlay xattrs, and clamped mtimes
    let blob = store.content().open(top.descriptor.digest()).unwrap();
    let mut tar = tar::Archive::new(cache::compress::decompress(blob).unwrap());
    let mut names = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        assert!(entry.header().mtime().unwrap() <= 100);
        if let Some(pax) = entry.pax_extensions().unwrap() {
            for r in pax {
                assert!(!r.unwrap().key().unwrap().contains("overlay"));
            }
        }
        names.push(String::from_utf8(entry.path_bytes().into_owned()).unwrap());
    }
    assert_eq!(names, ["etc/", "etc/.wh.gone", "opq/", "opq/.wh..wh..opq", "opq/new"]);

    let layers = [layer_ref(&base_layer), layer_ref(&top)];
    let lowers = store.snapshots().ensure_unpacked(&layers).unwrap();
    assert_eq!(lowers.len(), 2);
    let top_dir = &lowers[0];
    let wh = std::fs::symlink_metadata(top_dir.join("etc/gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "whiteout device");
    let opaque = Command::new("getfattr")
        .args(["-n", "trusted.overlay.opaque", "--only-values"])
        .arg(top_dir.join("opq"))
        .output()
        .unwrap();
    assert_eq!(opaque.stdout, b"y");

    // flatten: whiteouts delete, opaque clears
    let flat = tmp.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    store.snapshots().flatten(&layers, &flat).unwrap();
    assert!(!flat.join("etc/gone").exists());
    assert!(!flat.join("opq/old").exists());
    assert_eq!(std::fs::read_to_string(flat.join("opq/new")).unwrap(), "new\n");
    assert_eq!(std::fs::read_to_string(flat.join("keep/x")).unwrap(), "c\n");

    // real overlayfs over the lowers agrees
    let merged = tmp.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    let lowerdir = lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &format!("lowerdir={lowerdir}")])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(status.success());
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&merged);
    assert!(!merged.join("etc/gone").exists());
    assert!(!merged.join("opq/old").exists());
    assert!(merged.join("opq/new").exists());
    assert!(merged.join("keep/x").exists());
}

#[test]
fn wrong_diff_id_is_rejected_and_nothing_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let layer = store.content().write_layer(&src, DiffSource::PlainDir, &DiffOptions::default()).unwrap();
    let bad = LayerRef { blob: layer.descriptor.clone(), diff_id: cache::sha256_digest(b"nope") };
    let err = store.snapshots().ensure_unpacked(&[bad]).unwrap_err();
    assert!(err.to_string().contains("diffID"), "{err}");
    assert!(store.snapshots().list().unwrap().is_empty());
}

#[test]
fn concurrent_ensure_of_same_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    sh("for i in $(seq 1 300); do echo $i > f$i; done", &src);
    let layer = store.content().write_layer(&src, DiffSource::PlainDir, &DiffOptions::default()).unwrap();
    let layers = [layer_ref(&layer)];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = Store::open(&root).unwrap();
                let layers = &layers;
                s.spawn(move || store.snapshots().ensure_unpacked(layers).unwrap())
            })
            .collect();
        for h in handles {
            let lowers = h.join().unwrap();
            let mut s = String::new();
            std::fs::File::open(lowers[0].join("f300")).unwrap().read_to_string(&mut s).unwrap();
            assert_eq!(s, "300\n");
        }
    });
}
