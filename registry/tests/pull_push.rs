//! Push and pull against Debian's real `docker-registry`: anonymous, htpasswd basic auth, bearer
//! tokens, cross-repository mounts, chunked uploads, indexes with several platforms.

#![allow(clippy::unwrap_used)]

mod support;

use cache::{DiffOptions, DiffSource};
use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType, PlatformBuilder};
use registry::{
    AuthConfig, Credentials, Event, Platform, PullOptions, PullPolicy, Reference, Skipped, pull, push,
    push_manifest,
};
use support::token_server::TokenServer;
use support::{
    Auth, BearerAuth, Proxy, RegistryServer, assert_store_consistent, client, leftover_temp_files, options,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn reference(host: &str, rest: &str) -> Reference {
    Reference::parse(&format!("{host}/{rest}")).unwrap()
}

/// Pushes the busybox test image as `host/busybox:1` from a fresh store; returns its manifest.
fn push_busybox(rt: &tokio::runtime::Runtime, client: &registry::Client, host: &str) -> Descriptor {
    let (_dir, store) = support::store();
    let r = reference(host, "test/busybox:1");
    let manifest = testkit::store::busybox_image(&store, &r.to_string()).unwrap();
    rt.block_on(push(client, &store, &r, &registry::Progress::none())).unwrap();
    manifest
}

#[test]
fn push_then_pull_round_trip() {
    let server = RegistryServer::start(Auth::None);
    let auth = tempfile::tempdir().unwrap();
    let client = client(auth.path());
    let rt = runtime();
    let (_src_dir, src) = support::store();
    let r = reference(&server.host(), "test/busybox:1");
    let manifest = testkit::store::busybox_image(&src, &r.to_string()).unwrap();

    let (progress, events) = support::recorder();
    let pushed = rt.block_on(push(&client, &src, &r, &progress)).unwrap();
    assert_eq!(pushed.manifest.digest(), manifest.digest());
    assert!(pushed.uploaded > 100_000, "busybox layer uploaded: {}", pushed.uploaded);
    let events = events.lock().unwrap().clone();
    assert_eq!(events.iter().filter(|e| matches!(e, Event::BlobDone { .. })).count(), 2, "{events:?}");
    assert!(events.iter().any(|e| matches!(e, Event::ManifestPushed { tag: Some(t), .. } if t == "1")));

    // A second push uploads nothing: HEAD finds every blob.
    let (progress, events) = support::recorder();
    let again = rt.block_on(push(&client, &src, &r, &progress)).unwrap();
    assert_eq!(again.uploaded, 0);
    let skipped = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::BlobSkipped { reason: Skipped::InRegistry, .. }))
        .count();
    assert_eq!(skipped, 2);

    // Pull into an empty store: same manifest digest, image tagged, layers unpack.
    let (_dst_dir, dst) = support::store();
    let (progress, events) = support::recorder();
    let pulled = rt.block_on(pull(&client, &dst, &r, &PullOptions::default(), &progress)).unwrap();
    assert_eq!(pulled.manifest.digest(), manifest.digest());
    assert_eq!(pulled.name, r.to_string());
    assert!(pulled.index.is_none());
    assert!(events.lock().unwrap().iter().any(|e| matches!(e, Event::Resolved { .. })));
    let record = dst.images().get(&r.to_string()).unwrap().unwrap();
    assert_eq!(record.target.digest(), manifest.digest());
    let image = dst.content().read_image(&record.target).unwrap();
    let lowers = dst.snapshots().ensure_unpacked(&image.layers().unwrap()).unwrap();
    assert!(lowers[0].join("bin/busybox").is_file());
    assert_eq!(std::fs::read_link(lowers[0].join("bin/sh")).unwrap(), std::path::Path::new("busybox"));

    // An explicit platform the (single-platform) image is not for is refused.
    let (_other_dir, other) = support::store();
    let arm = PullOptions { platform: Some("linux/arm64".parse::<Platform>().unwrap()) };
    let err = rt.block_on(pull(&client, &other, &r, &arm, &registry::Progress::none())).unwrap_err();
    let text = format!("{err}: {}", err_source(&err));
    assert!(text.contains("no image for platform linux/arm64/v8 (available: linux/amd64)"), "{text}");
    assert!(other.images().list().unwrap().is_empty());

    // Pulling again transfers nothing; pulling by digest names the image repo@digest.
    let (progress, events) = support::recorder();
    rt.block_on(pull(&client, &dst, &r, &PullOptions::default(), &progress)).unwrap();
    assert!(!events.lock().unwrap().iter().any(|e| matches!(e, Event::BlobStarted { .. })));
    let by_digest = r.without_tag_or_digest().with_digest(manifest.digest().clone());
    let pulled = rt
        .block_on(pull(&client, &dst, &by_digest, &PullOptions::default(), &registry::Progress::none()))
        .unwrap();
    assert_eq!(pulled.name, format!("{}@{}", r.name(), manifest.digest()));
    assert_store_consistent(&dst);
    assert!(leftover_temp_files(&dst).is_empty());
}

#[test]
fn plain_tar_layers_are_pushed_gzip_compressed() {
    let server = RegistryServer::start(Auth::None);
    let auth = tempfile::tempdir().unwrap();
    let client = client(auth.path());
    let rt = runtime();
    let (_src_dir, src) = support::store();
    // a layer as builds store it: a plain tar, its digest the diffID
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("data"), vec![b'x'; 1 << 20]).unwrap();
    let options = DiffOptions { compression: cache::Compression::None, ..DiffOptions::default() };
    let layer = src.content().write_layer(tree.path(), DiffSource::PlainDir, &options).unwrap();
    assert_eq!(layer.descriptor.media_type(), &MediaType::ImageLayer);
    let config: oci_spec::image::ImageConfiguration = serde_json::from_value(serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]}
    }))
    .unwrap();
    let r = reference(&server.host(), "test/plain:1");
    let local =
        src.write_image_tagged(&config, std::slice::from_ref(&layer.descriptor), &[&r.to_string()]).unwrap();

    let pushed = rt.block_on(push(&client, &src, &r, &registry::Progress::none())).unwrap();
    assert_ne!(pushed.manifest.digest(), local.digest(), "the pushed manifest names the gzip layer");
    assert!(pushed.uploaded < 100_000, "1 MiB of x compresses: {}", pushed.uploaded);
    // again: the compressed blob is reused and the registry has everything
    let again = rt.block_on(push(&client, &src, &r, &registry::Progress::none())).unwrap();
    assert_eq!((again.manifest.digest(), again.uploaded), (pushed.manifest.digest(), 0));

    let (_dst_dir, dst) = support::store();
    let pulled =
        rt.block_on(pull(&client, &dst, &r, &PullOptions::default(), &registry::Progress::none())).unwrap();
    assert_eq!(pulled.manifest.digest(), pushed.manifest.digest());
    let image = dst.content().read_image(&pulled.manifest).unwrap();
    assert_eq!(image.id(), src.content().read_image(&local).unwrap().id(), "same config, same image ID");
    let layers = image.layers().unwrap();
    assert_eq!(layers[0].blob.media_type(), &MediaType::ImageLayerGzip);
    assert_eq!(layers[0].diff_id, layer.diff_id);
    let lowers = dst.snapshots().ensure_unpacked(&layers).unwrap();
    assert_eq!(std::fs::read(lowers[0].join("data")).unwrap().len(), 1 << 20);
    assert_store_consistent(&dst);
}

#[test]
fn htpasswd_basic_auth() {
    let server = RegistryServer::start(Auth::Htpasswd);
    let auth = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (_dir, store) = support::store();
    let r = reference(&server.host(), "private/busybox:1");
    testkit::store::busybox_image(&store, &r.to_string()).unwrap();

    // No credentials: one clear error naming the image and the registry.
    let anonymous = client(auth.path());
    let err = rt.block_on(push(&anonymous, &store, &r, &registry::Progress::none())).unwrap_err();
    let text = format!("{err}: {}", err_source(&err));
    assert!(text.contains("cannot push") && text.contains("private/busybox:1"), "{text}");
    assert!(text.contains("denied access") && text.contains("kiln login"), "{text}");

    // Wrong password: rejected by check_credentials (what `kiln login` runs).
    let bad = Credentials { username: support::USER.into(), password: "wrong".into() };
    let err = rt.block_on(anonymous.check_credentials(&server.host(), &bad)).unwrap_err();
    assert!(err.to_string().contains("rejected"), "{err}");
    let good = Credentials { username: support::USER.into(), password: support::PASSWORD.into() };
    rt.block_on(anonymous.check_credentials(&server.host(), &good)).unwrap();

    // Credentials in docker's config.json (as DOCKER_CONFIG would point to) are honoured.
    let config = AuthConfig {
        file: auth.path().join("kiln-auth.json"),
        fallback: Some(auth.path().join("docker/config.json")),
    };
    std::fs::create_dir_all(auth.path().join("docker")).unwrap();
    let token = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:{}", support::USER, support::PASSWORD),
    );
    std::fs::write(
        config.fallback.as_ref().unwrap(),
        format!(r#"{{"auths":{{"http://{}":{{"auth":"{token}"}}}}}}"#, server.host()),
    )
    .unwrap();
    let authed = client(auth.path());
    rt.block_on(push(&authed, &store, &r, &registry::Progress::none())).unwrap();
    let (_dir2, dst) = support::store();
    rt.block_on(pull(&authed, &dst, &r, &PullOptions::default(), &registry::Progress::none())).unwrap();
    assert_store_consistent(&dst);
}

fn err_source(err: &registry::Error) -> String {
    let mut out = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        out.push(cause.to_string());
        source = cause.source();
    }
    out.join(": ")
}

#[test]
fn bearer_tokens_from_the_challenge() {
    let server = RegistryServer::start(Auth::None);
    let proxy = Proxy::start(server.addr, Some(BearerAuth { require_login: true }));
    let auth = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (_dir, store) = support::store();
    let r = reference(&proxy.host(), "team/busybox:1");
    testkit::store::busybox_image(&store, &r.to_string()).unwrap();

    let anonymous = client(auth.path());
    let err = rt.block_on(push(&anonymous, &store, &r, &registry::Progress::none())).unwrap_err();
    let text = format!("{err}: {}", err_source(&err));
    assert!(text.contains("team/busybox:1") && text.contains("token server"), "{text}");

    AuthConfig { file: auth.path().join("kiln-auth.json"), fallback: None }
        .store(
            &proxy.host(),
            &Credentials { username: support::USER.into(), password: support::PASSWORD.into() },
        )
        .unwrap();
    let authed = client(auth.path());
    rt.block_on(push(&authed, &store, &r, &registry::Progress::none())).unwrap();
    let tokens_for_push = proxy.token_requests();
    let (_dir2, dst) = support::store();
    rt.block_on(pull(&authed, &dst, &r, &PullOptions::default(), &registry::Progress::none())).unwrap();
    // Tokens are cached per scope: the pull needed at most one more.
    assert!(proxy.token_requests() <= tokens_for_push + 1, "{} tokens", proxy.token_requests());
    assert_store_consistent(&dst);
}

/// `docker-registry` in token mode, trusting JWTs from the test's token server.
#[test]
fn registry_token_auth() {
    let certs = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(certs.path());
    let server = RegistryServer::start(Auth::Token {
        realm: tokens.realm(),
        service: support::token_server::SERVICE.to_owned(),
        issuer: support::token_server::ISSUER.to_owned(),
        cert: tokens.cert.clone(),
    });
    let auth = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (_dir, store) = support::store();
    let r = reference(&server.host(), "secure/busybox:1");
    let manifest = testkit::store::busybox_image(&store, &r.to_string()).unwrap();

    let anonymous = client(auth.path());
    let err = rt.block_on(push(&anonymous, &store, &r, &registry::Progress::none())).unwrap_err();
    let text = format!("{err}: {}", err_source(&err));
    assert!(text.contains("secure/busybox:1") && text.contains("credentials required"), "{text}");
    let bad = Credentials { username: support::USER.into(), password: "nope".into() };
    let err = rt.block_on(anonymous.check_credentials(&server.host(), &bad)).unwrap_err();
    assert!(err.to_string().contains("rejected"), "{err}");
    let good = Credentials { username: support::USER.into(), password: support::PASSWORD.into() };
    rt.block_on(anonymous.check_credentials(&server.host(), &good)).unwrap();

    AuthConfig { file: auth.path().join("kiln-auth.json"), fallback: None }
        .store(&server.host(), &good)
        .unwrap();
    let authed = client(auth.path());
    rt.block_on(push(&authed, &store, &r, &registry::Progress::none())).unwrap();
    let (_dir2, dst) = support::store();
    let pulled =
        rt.block_on(pull(&authed, &dst, &r, &PullOptions::default(), &registry::Progress::none())).unwrap();
    assert_eq!(pulled.manifest.digest(), manifest.digest());
    assert_store_consistent(&dst);
    assert!(tokens.issued.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

#[test]
fn cross_repository_mount_and_chunked_upload() {
    let server = RegistryServer::start(Auth::None);
    let auth = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (_dir, store) = support::store();
    // Chunked: every blob bigger than 64 KiB goes in 100 KiB PATCHes.
    let client = registry::Client::new(registry::ClientOptions {
        monolithic_upload_limit: 64 * 1024,
        chunk_size: 100 * 1024,
        ..options(auth.path())
    })
    .unwrap();
    let first = reference(&server.host(), "a/busybox:1");
    let manifest = testkit::store::busybox_image(&store, &first.to_string()).unwrap();
    rt.block_on(push(&client, &store, &first, &registry::Progress::none())).unwrap();

    // The same image under another repository of the same registry: blobs are mounted.
    let second = reference(&server.host(), "b/busybox:2");
    store.images().tag(&second.to_string(), &manifest).unwrap();
    let (progress, events) = support::recorder();
    let pushed = rt.block_on(push(&client, &store, &second, &progress)).unwrap();
    assert_eq!(pushed.uploaded, 0);
    let mounted = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::BlobSkipped { reason: Skipped::Mounted { from }, .. } if from == "a/busybox"))
        .count();
    assert_eq!(mounted, 2, "{:?}", events.lock().unwrap());

    // Both pull back identically (the chunked upload assembled the right bytes).
    for r in [&first, &second] {
        let (_d, dst) = support::store();
        let pulled = rt
            .block_on(pull(&client, &dst, r, &PullOptions::default(), &registry::Progress::none()))
            .unwrap();
        assert_eq!(pulled.manifest.digest(), manifest.digest());
        assert_store_consistent(&dst);
    }
}

/// An index with amd64 and arm64 images: the host's is chosen unless a platform is given.
#[test]
fn index_platform_selection() {
    let server = RegistryServer::start(Auth::None);
    let auth = tempfile::tempdir().unwrap();
    let client = client(auth.path());
    let rt = runtime();
    let (_dir, store) = support::store();
    let amd = testkit::store::busybox_image(&store, "example.invalid/x/amd:1").unwrap();
    // A second "arm64" image: a different one-file layer.
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("arch"), "arm64\n").unwrap();
    let layer =
        store.content().write_layer(tree.path(), DiffSource::PlainDir, &DiffOptions::default()).unwrap();
    let config: oci_spec::image::ImageConfiguration = serde_json::from_value(serde_json::json!({
        "architecture": "arm64", "variant": "v8", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]}
    }))
    .unwrap();
    let arm = store.write_image(&config, &[layer.descriptor]).unwrap();
    let entry = |d: &Descriptor, arch: &str, variant: Option<&str>| {
        let mut platform = PlatformBuilder::default().os("linux").architecture(arch);
        if let Some(v) = variant {
            platform = platform.variant(v);
        }
        let mut d = d.clone();
        d.set_platform(Some(platform.build().unwrap()));
        d
    };
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![entry(&arm, "arm64", Some("v8")), entry(&amd, "amd64", None)])
        .build()
        .unwrap();
    let index_desc = store.content().write_json(&index, MediaType::ImageIndex).unwrap();
    let r = reference(&server.host(), "multi/busybox:1");
    rt.block_on(push_manifest(&client, &store, &index_desc, &r, &registry::Progress::none())).unwrap();

    let (_d, dst) = support::store();
    let pulled =
        rt.block_on(pull(&client, &dst, &r, &PullOptions::default(), &registry::Progress::none())).unwrap();
    assert_eq!(pulled.manifest.digest(), amd.digest());
    assert_eq!(pulled.index.as_ref(), Some(index_desc.digest()));
    assert_eq!(pulled.repo_digest(), index_desc.digest());
    assert_eq!(pulled.platform.as_ref().map(ToString::to_string).as_deref(), Some("linux/amd64"));

    let (_d2, dst2) = support::store();
    let arm_options = PullOptions { platform: Some("linux/arm64".parse::<Platform>().unwrap()) };
    let pulled = rt.block_on(pull(&client, &dst2, &r, &arm_options, &registry::Progress::none())).unwrap();
    assert_eq!(pulled.manifest.digest(), arm.digest());
    assert!(!dst2.content().contains(amd.digest()));

    let s390 = PullOptions { platform: Some("linux/s390x".parse::<Platform>().unwrap()) };
    let err = rt.block_on(pull(&client, &dst2, &r, &s390, &registry::Progress::none())).unwrap_err();
    let text = format!("{err}: {}", err_source(&err));
    assert!(text.contains("multi/busybox:1") && text.contains("no image for platform linux/s390x"), "{text}");
    assert!(text.contains("linux/arm64/v8, linux/amd64"), "{text}");
}

/// Two pulls of the same image into one store at once both succeed (blob writes are atomic).
#[test]
fn concurrent_pulls_into_one_store() {
    let server = RegistryServer::start(Auth::None);
    let auth = tempfile::tempdir().unwrap();
    let client = client(auth.path());
    let rt = runtime();
    let manifest = push_busybox(&rt, &client, &server.host());
    let (_d, store) = support::store();
    let r = reference(&server.host(), "test/busybox:1");
    let (options, none) = (PullOptions::default(), registry::Progress::none());
    let (a, b) = rt.block_on(async {
        tokio::join!(pull(&client, &store, &r, &options, &none), pull(&client, &store, &r, &options, &none))
    });
    assert_eq!(a.unwrap().manifest.digest(), manifest.digest());
    assert_eq!(b.unwrap().manifest.digest(), manifest.digest());
    assert_store_consistent(&store);
    assert!(leftover_temp_files(&store).is_empty());
}

/// Layers go up and down in parallel: the proxy holds blob transfers until three are in flight
/// at once (a sequential client never gets there: after 20 s it lets them go and the count
/// shows 1), so the counts do not depend on how fast a loaded machine starts them.
#[test]
fn layers_transfer_in_parallel() {
    let server = RegistryServer::start(Auth::None);
    let proxy = Proxy::start(server.addr, None);
    let auth = tempfile::tempdir().unwrap();
    let client = client(auth.path());
    let rt = runtime();
    let (_dir, store) = support::store();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..3 {
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join(format!("file{i}")), vec![i as u8; 50_000]).unwrap();
        let layer =
            store.content().write_layer(tree.path(), DiffSource::PlainDir, &DiffOptions::default()).unwrap();
        diff_ids.push(layer.diff_id.to_string());
        layers.push(layer.descriptor);
    }
    let config: oci_spec::image::ImageConfiguration = serde_json::from_value(serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let manifest = store.write_image(&config, &layers).unwrap();
    let r = reference(&proxy.host(), "parallel/three:1");
    store.images().tag(&r.to_string(), &manifest).unwrap();

    proxy.inject(support::Fault::Hold { path: "/blobs/uploads/".into(), until: 3 });
    rt.block_on(push(&client, &store, &r, &registry::Progress::none())).unwrap();
    let pushed_at_once = proxy.max_concurrent_delayed();
    assert!(pushed_at_once >= 3, "at most {pushed_at_once} uploads at once");

    proxy.clear();
    proxy.inject(support::Fault::Hold { path: "/blobs/sha256:".into(), until: 3 });
    let (_d, dst) = support::store();
    let pulled =
        rt.block_on(pull(&client, &dst, &r, &PullOptions::default(), &registry::Progress::none())).unwrap();
    assert_eq!(pulled.manifest.digest(), manifest.digest());
    assert_store_consistent(&dst);
    // 4 blobs (config and 3 layers), 3 download slots.
    let pulled_at_once = proxy.max_concurrent_delayed();
    assert_eq!(pulled_at_once, 3, "downloads at once");
}

/// `FROM`: the first resolve pulls, the next uses the store without asking the registry;
/// `Always` asks again (downloading nothing), `Never` never asks.
#[test]
fn resolve_image_pulls_only_when_missing() {
    let server = RegistryServer::start(Auth::None);
    let proxy = Proxy::start(server.addr, None);
    let auth = tempfile::tempdir().unwrap();
    let client = client(auth.path());
    let rt = runtime();
    let manifest = push_busybox(&rt, &client, &proxy.host());
    let r = reference(&proxy.host(), "test/busybox:1");
    let (_d, store) = support::store();
    let options = PullOptions::default();
    let resolve = |policy, progress: &registry::Progress| {
        rt.block_on(registry::resolve_image(&client, &store, &r, &options, policy, progress))
    };

    let err = resolve(PullPolicy::Never, &registry::Progress::none()).unwrap_err();
    assert!(err.to_string().contains("test/busybox:1") && err.to_string().contains("not found"), "{err}");

    let requests = proxy.requests().len();
    let first = resolve(PullPolicy::Missing, &registry::Progress::none()).unwrap();
    assert!(first.pulled);
    assert_eq!(first.manifest.digest(), manifest.digest());
    assert_eq!(first.name, r.to_string());
    assert_eq!(first.image.config.os().to_string(), "linux");
    assert_eq!(first.image.layers().unwrap().len(), 1);
    assert!(proxy.requests().len() > requests);

    let requests = proxy.requests().len();
    let second = resolve(PullPolicy::Missing, &registry::Progress::none()).unwrap();
    assert!(!second.pulled);
    assert_eq!(second.manifest.digest(), manifest.digest());
    assert_eq!(second.image.id(), first.image.id());
    assert_eq!(proxy.requests().len(), requests, "no registry request for a stored image");
    assert!(!resolve(PullPolicy::Never, &registry::Progress::none()).unwrap().pulled);

    let (progress, events) = support::recorder();
    let again = resolve(PullPolicy::Always, &progress).unwrap();
    assert!(again.pulled);
    assert_eq!(again.manifest.digest(), manifest.digest());
    assert!(proxy.requests().len() > requests);
    assert!(!events.lock().unwrap().iter().any(|e| matches!(e, Event::BlobStarted { .. })));

    // A stored image for another platform does not satisfy `FROM --platform`.
    let arm = PullOptions { platform: Some("linux/arm64".parse::<Platform>().unwrap()) };
    let err = rt
        .block_on(registry::resolve_image(
            &client,
            &store,
            &r,
            &arm,
            PullPolicy::Missing,
            &registry::Progress::none(),
        ))
        .unwrap_err();
    let text = format!("{err}: {}", err_source(&err));
    assert!(text.contains("no image for platform linux/arm64"), "{text}");
}
