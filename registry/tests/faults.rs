//! Bad input and bad networks between kiln and a real `docker-registry`, injected by a proxy:
//! 500 storms, dropped connections, corrupt and truncated blobs, wrong digests, unknown media
//! types, 404, an unreachable registry and a full disk. Each gives one clear error naming the
//! image and the cause; the store stays consistent and the next pull works.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use oci_spec::image::{Descriptor, ImageManifest};
use registry::{Client, Event, PullOptions, Reference, pull, push};
use support::{Auth, Fault, Proxy, RegistryServer, assert_store_consistent, client, leftover_temp_files};

struct Setup {
    _server: RegistryServer,
    proxy: Proxy,
    client: Client,
    _auth: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    reference: Reference,
    manifest: Descriptor,
    manifest_bytes: Vec<u8>,
    layer: Descriptor,
    config: Descriptor,
}

/// A registry holding the busybox image as `test/busybox:1`, behind a fault proxy.
fn setup() -> Setup {
    let server = RegistryServer::start(Auth::None);
    let proxy = Proxy::start(server.addr, None);
    let auth = tempfile::tempdir().unwrap();
    let client = client(auth.path());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (_dir, src) = support::store();
    let reference = Reference::parse(&format!("{}/test/busybox:1", proxy.host())).unwrap();
    let manifest = testkit::store::busybox_image(&src, &reference.to_string()).unwrap();
    rt.block_on(push(&client, &src, &reference, &registry::Progress::none())).unwrap();
    let manifest_bytes = src.content().read(manifest.digest()).unwrap();
    let parsed: ImageManifest = serde_json::from_slice(&manifest_bytes).unwrap();
    Setup {
        _server: server,
        proxy,
        client,
        _auth: auth,
        rt,
        reference,
        manifest,
        manifest_bytes,
        layer: parsed.layers()[0].clone(),
        config: parsed.config().clone(),
    }
}

impl Setup {
    fn pull(&self, store: &cache::Store) -> Result<registry::Pulled, String> {
        self.pull_ref(store, &self.reference)
    }

    fn pull_ref(&self, store: &cache::Store, reference: &Reference) -> Result<registry::Pulled, String> {
        self.rt
            .block_on(pull(
                &self.client,
                store,
                reference,
                &PullOptions::default(),
                &registry::Progress::none(),
            ))
            .map_err(|e| chain(&e))
    }

    fn blob_path(&self, d: &Descriptor) -> String {
        format!("/blobs/{}", d.digest())
    }
}

/// An error as the CLI prints it: one line with the cause chain.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// After a failed pull: nothing tagged, no temp files, every blob intact; then a clean pull works.
fn assert_recovers(setup: &Setup, store: &cache::Store) {
    assert!(store.images().list().unwrap().is_empty());
    assert!(leftover_temp_files(store).is_empty(), "{:?}", leftover_temp_files(store));
    assert_store_consistent(store);
    setup.proxy.clear();
    setup.pull(store).unwrap();
    assert_store_consistent(store);
}

#[test]
fn server_error_storms() {
    let setup = setup();
    let (_d, store) = support::store();
    // A short storm is ridden out with retries.
    setup.proxy.inject(Fault::ServerError { path: setup.blob_path(&setup.layer), times: 2 });
    setup.proxy.inject(Fault::ServerError { path: "/manifests/".into(), times: 2 });
    let (progress, events) = support::recorder();
    setup
        .rt
        .block_on(pull(&setup.client, &store, &setup.reference, &PullOptions::default(), &progress))
        .unwrap();
    assert!(events.lock().unwrap().iter().any(|e| matches!(e, Event::BlobRetrying { .. })));
    assert_store_consistent(&store);

    // A storm that outlasts the retries fails with the registry's status.
    let (_d, store) = support::store();
    setup.proxy.inject(Fault::ServerError { path: setup.blob_path(&setup.layer), times: 1000 });
    let err = setup.pull(&store).unwrap_err();
    assert!(err.starts_with(&format!("cannot pull {}", setup.reference.familiar())), "{err}");
    assert!(
        err.contains("500 Internal Server Error") && err.contains(setup.layer.digest().as_ref()),
        "{err}"
    );
    assert!(!store.content().contains(setup.layer.digest()));
    assert_recovers(&setup, &store);
}

#[test]
fn dropped_connections_resume() {
    let setup = setup();
    let (_d, store) = support::store();
    setup.proxy.inject(Fault::DropMidBody { path: setup.blob_path(&setup.layer), times: 2 });
    let (progress, events) = support::recorder();
    setup
        .rt
        .block_on(pull(&setup.client, &store, &setup.reference, &PullOptions::default(), &progress))
        .unwrap();
    let retries = events.lock().unwrap().iter().filter(|e| matches!(e, Event::BlobRetrying { .. })).count();
    assert_eq!(retries, 2);
    assert_store_consistent(&store);
    assert!(store.content().contains(setup.layer.digest()));
}

#[test]
fn corrupt_blob_is_rejected() {
    let setup = setup();
    let (_d, store) = support::store();
    setup.proxy.inject(Fault::Corrupt { path: setup.blob_path(&setup.layer) });
    let err = setup.pull(&store).unwrap_err();
    assert!(err.starts_with(&format!("cannot pull {}", setup.reference.familiar())), "{err}");
    assert!(err.contains(&format!("layer {} has digest", setup.layer.digest())), "{err}");
    assert!(!store.content().contains(setup.layer.digest()));
    assert_recovers(&setup, &store);
}

#[test]
fn truncated_blob_is_rejected() {
    let setup = setup();
    let (_d, store) = support::store();
    setup.proxy.inject(Fault::Truncate { path: setup.blob_path(&setup.config) });
    let err = setup.pull(&store).unwrap_err();
    assert!(err.contains(&format!("blob {} has", setup.config.digest())), "{err}");
    assert!(err.contains(&format!("its descriptor says {}", setup.config.size())), "{err}");
    assert!(!store.content().contains(setup.config.digest()));
    assert_recovers(&setup, &store);
}

#[test]
fn manifest_with_wrong_digest_is_rejected() {
    let setup = setup();
    // By tag: the body no longer matches the registry's Docker-Content-Digest.
    let (_d, store) = support::store();
    let mut other: serde_json::Value = serde_json::from_slice(&setup.manifest_bytes).unwrap();
    other["annotations"] = serde_json::json!({"evil": "yes"});
    let body = serde_json::to_vec(&other).unwrap();
    setup.proxy.inject(Fault::Replace {
        path: "/manifests/".into(),
        body: body.clone(),
        content_type: setup.manifest.media_type().to_string(),
    });
    let err = setup.pull(&store).unwrap_err();
    assert!(
        err.contains("cannot pull") && err.contains("manifest 1 (registry's Docker-Content-Digest)"),
        "{err}"
    );
    assert!(store.content().list().unwrap().is_empty(), "nothing stored");
    assert_recovers(&setup, &store);

    // By digest: the body does not hash to the digest asked for.
    let (_d, store) = support::store();
    setup.proxy.inject(Fault::Replace {
        path: "/manifests/".into(),
        body,
        content_type: setup.manifest.media_type().to_string(),
    });
    let by_digest = setup.reference.without_tag_or_digest().with_digest(setup.manifest.digest().clone());
    let err = setup.pull_ref(&store, &by_digest).unwrap_err();
    assert!(err.contains(&format!("manifest {} has digest", setup.manifest.digest())), "{err}");
    assert!(store.content().list().unwrap().is_empty());
}

#[test]
fn unknown_media_type_and_missing_things() {
    let setup = setup();
    let (_d, store) = support::store();
    setup.proxy.inject(Fault::Replace {
        path: "/manifests/".into(),
        body: setup.manifest_bytes.clone(),
        content_type: "application/vnd.example.thing.v1+json".into(),
    });
    let err = setup.pull(&store).unwrap_err();
    assert!(
        err.contains("unsupported manifest media type \"application/vnd.example.thing.v1+json\""),
        "{err}"
    );
    assert_recovers(&setup, &store);

    let (_d, store) = support::store();
    let missing = setup.reference.with_tag("nope").unwrap();
    let err = setup.pull_ref(&store, &missing).unwrap_err();
    assert!(err.contains(&format!("cannot pull {}", missing.familiar())), "{err}");
    assert!(err.contains("manifest nope not found in"), "{err}");

    setup.proxy.inject(Fault::Status { path: setup.blob_path(&setup.layer), status: 404 });
    let err = setup.pull(&store).unwrap_err();
    assert!(err.contains(&format!("blob {} not found", setup.layer.digest())), "{err}");
    assert_recovers(&setup, &store);
}

#[test]
fn upload_failures_are_retried() {
    let setup = setup();
    let (_d, src) = support::store();
    let target = setup.reference.with_tag("again").unwrap();
    let target = Reference::parse(&target.to_string().replace("test/busybox", "other/busybox")).unwrap();
    testkit::store::busybox_image(&src, &target.to_string()).unwrap();
    setup.proxy.inject(Fault::ServerError { path: "/blobs/uploads/".into(), times: 2 });
    setup.rt.block_on(push(&setup.client, &src, &target, &registry::Progress::none())).unwrap();
    let (_d2, dst) = support::store();
    setup.pull_ref(&dst, &target).unwrap();

    // A storm that does not end: the error names the image and the failing request.
    let third = Reference::parse(&target.to_string().replace("other/busybox", "third/busybox")).unwrap();
    testkit::store::busybox_image(&src, &third.to_string()).unwrap();
    setup.proxy.inject(Fault::ServerError { path: "/blobs/uploads/".into(), times: 1000 });
    let err = chain(
        &setup.rt.block_on(push(&setup.client, &src, &third, &registry::Progress::none())).unwrap_err(),
    );
    assert!(err.starts_with(&format!("cannot push {}", third.familiar())) && err.contains("500"), "{err}");
}

#[test]
fn unreachable_registry() {
    let auth = tempfile::tempdir().unwrap();
    let client = client(auth.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (_d, store) = support::store();
    let (_reserved, addr) = support::refused_addr();
    let reference = Reference::parse(&format!("{addr}/x/y:1")).unwrap();
    let err = rt
        .block_on(pull(&client, &store, &reference, &PullOptions::default(), &registry::Progress::none()))
        .unwrap_err();
    let err = chain(&err);
    assert!(err.starts_with(&format!("cannot pull {}", reference.familiar())), "{err}");
    assert!(err.contains("cannot reach registry"), "{err}");
}

/// A tmpfs mount, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_during_pull() {
    testkit::require_root!();
    let setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let status =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"]).arg(&root).status().unwrap();
    assert!(status.success(), "mounting a tmpfs needs root");
    let _guard = Tmpfs(root.clone());
    let store = cache::Store::open(&root).unwrap();
    let err = setup.pull(&store).unwrap_err();
    assert!(err.starts_with(&format!("cannot pull {}", setup.reference.familiar())), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(store.images().list().unwrap().is_empty());
    assert!(leftover_temp_files(&store).is_empty(), "{:?}", leftover_temp_files(&store));
    assert_store_consistent(&store);
}

/// Cancelling a pull mid-download (the caller drops the future, as `kiln pull` on Ctrl-C and a
/// cancelled build's `FROM` do): the layer is half transferred when the task is aborted (the
/// proxy stalls it and reports that; the client reported bytes). Afterwards nothing is tagged,
/// no partial blob is in the store, the temp files are gone, and the next pull works.
#[test]
fn cancelled_pull_leaves_no_partial_state() {
    let setup = setup();
    let (_d, store) = support::store();
    setup.proxy.inject(Fault::StallMidBody { path: setup.blob_path(&setup.layer) });
    let (progress, events) = support::recorder();
    let layer = setup.layer.digest().clone();
    let mid_transfer = || {
        setup.proxy.stalled() > 0
            && events.lock().unwrap().iter().any(
                |e| matches!(e, Event::BlobProgress { digest, done, .. } if *digest == layer && *done > 0),
            )
    };
    // the pull runs until the layer is mid-transfer, then its future is dropped (cancelled)
    let finished = setup.rt.block_on(async {
        let options = PullOptions::default();
        let pulling = pull(&setup.client, &store, &setup.reference, &options, &progress);
        tokio::pin!(pulling);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            tokio::select! {
                result = &mut pulling => return Some(result.map(|_| ())),
                () = tokio::time::sleep(std::time::Duration::from_millis(10)) => {
                    if mid_transfer() {
                        return None;
                    }
                    assert!(tokio::time::Instant::now() < deadline, "the layer transfer never started");
                }
            }
        }
    });
    assert!(finished.is_none(), "the pull ended before it was cancelled: {finished:?}");

    assert!(store.images().list().unwrap().is_empty(), "a cancelled pull tagged the image");
    assert!(!store.content().contains(setup.layer.digest()), "a partial layer is in the store");
    assert_store_consistent(&store);
    // temp files of the aborted transfer are removed once its blocking work has ended
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !leftover_temp_files(&store).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "temp files left by the cancelled pull: {:?}",
            leftover_temp_files(&store)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    setup.proxy.clear();
    let pulled = setup.pull(&store).unwrap();
    assert_eq!(pulled.manifest.digest(), setup.manifest.digest());
    assert!(store.content().contains(setup.layer.digest()));
    assert_store_consistent(&store);
    assert!(leftover_temp_files(&store).is_empty());
}
