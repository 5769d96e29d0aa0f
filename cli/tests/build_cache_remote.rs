#![allow(clippy::unwrap_used)]
//! `kiln build --cache-to` / `--cache-from` end to end (root): a 3-stage build exported from
//! store A to a real `docker-registry` on 127.0.0.1 (or an OCI layout directory) and imported
//! into fresh stores, which then run no step, fetch only the final stage's layers, re-run only
//! what an edit touches, and survive a missing cache or a corrupt blob.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::registry::{Auth, Locations, RegistryServer as Registry};
use testkit::{Kiln, ran, read};

/// A store with no image at all (the base comes from the registry).
fn empty_store(_name: &str) -> Kiln {
    Kiln::new()
}

/// A fresh store holding `from`'s busybox image (same digests: `kiln import` is not
/// reproducible, an OCI archive is).
fn store_with_base_of(from: &Kiln, name: &str) -> Kiln {
    let kiln = empty_store(name);
    let archive = kiln.path("busybox-oci.tar");
    from.ok(&["save", "--format", "oci", "-o", archive.to_str().unwrap(), "busybox"]);
    kiln.ok(&["load", "-i", archive.to_str().unwrap()]);
    kiln
}

/// Store A with busybox pushed as `REG/base/busybox:1`; returns it and the base reference.
fn publish_base(registry: &Registry) -> (Kiln, String) {
    let a = Kiln::with_busybox();
    let base = format!("{}/base/busybox:1", registry.host());
    a.ok(&["tag", "busybox", &base]);
    a.ok(&["push", &base]);
    (a, base)
}

/// Three stages, three RUNs; the last stage copies from the second, which copies from the first.
fn dockerfile(base: &str) -> String {
    format!(
        "FROM {base} AS deps\n\
         COPY deps.txt /deps.txt\n\
         RUN cp /deps.txt /deps.out && echo deps-built >> /deps.out\n\
         FROM {base} AS build\n\
         COPY --from=deps /deps.out /deps.out\n\
         COPY src.txt /src.txt\n\
         RUN cat /deps.out /src.txt > /app.out\n\
         FROM {base}\n\
         COPY --from=build /app.out /app/app.out\n\
         COPY final.txt /app/final.txt\n\
         RUN cat /app/app.out /app/final.txt > /app/all.out\n"
    )
}

fn context(kiln: &Kiln, base: &str) -> PathBuf {
    kiln.context(
        "ctx",
        &dockerfile(base),
        &[("deps.txt", "deps v1\n"), ("src.txt", "src v1\n"), ("final.txt", "final v1\n")],
    )
}

const ALL_OUT: &str = "deps v1\ndeps-built\nsrc v1\nfinal v1\n";

/// `cache import: N records, fetched L layers (B bytes)` → L.
fn fetched_layers(progress: &str) -> u64 {
    let line =
        progress.lines().find(|l| l.starts_with("cache import: ")).unwrap_or_else(|| panic!("{progress}"));
    let (_, rest) = line.split_once("fetched ").unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// Layer digests of the cache manifest `reference` (as skopeo reads it from the registry).
fn cache_layers(reference: &str) -> Vec<String> {
    let out = testkit::run(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    );
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.kiln.buildcache.config.v1+json", "{out}");
    manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_owned()).collect()
}

fn in_store(kiln: &Kiln, digest: &str) -> bool {
    let hex = digest.strip_prefix("sha256:").unwrap();
    kiln.root.join("content/blobs/sha256").join(hex).exists()
}

fn names(steps: &BTreeSet<String>) -> Vec<String> {
    steps.iter().map(|s| s.split_once("] ").map(|(_, n)| n.to_owned()).unwrap_or_default()).collect()
}

#[test]
fn registry_cache_max_round_trip_is_lazy_and_tracks_edits() {
    let registry = Registry::start_with(Auth::None, Locations::Absolute);
    let (a, base) = publish_base(&registry);
    let ctx = context(&a, &base);
    let cache_ref = format!("{}/cache/app:max", registry.host());
    let cache_to = format!("type=registry,ref={cache_ref},mode=max");
    let (out, cold) = a.build_local("out-a", &["--cache-to", &cache_to, ctx.to_str().unwrap()]);
    assert_eq!(ran(&cold).len(), 8, "{cold}");
    assert!(cold.contains(&format!("exported cache to {cache_ref}")), "{cold}");
    assert_eq!(read(&out.join("app/all.out")), ALL_OUT);
    let layers = cache_layers(&cache_ref);

    // Fresh store B, same context elsewhere: nothing runs, only the final stage's layers come.
    let b = empty_store("b");
    let ctx_b = context(&b, &base);
    let cache_from = format!("type=registry,ref={cache_ref}");
    // B also exports (as CI jobs do) to another repository: the layers it never fetched are
    // mounted there from the imported one, not downloaded
    let copy_ref = format!("{}/cache2/app:max", registry.host());
    let copy_to = format!("type=registry,ref={copy_ref},mode=max");
    let (out, warm) = b.build_local(
        "out-b",
        &["--cache-from", &cache_from, "--cache-to", &copy_to, ctx_b.to_str().unwrap()],
    );
    assert!(ran(&warm).is_empty(), "every step from the cache: {warm}");
    assert_eq!(read(&out.join("app/all.out")), ALL_OUT);
    // the final stage adds 3 layers to the base (which B pulled as the base image)
    assert_eq!(fetched_layers(&warm), 3, "{warm}");
    let absent: Vec<&String> = layers.iter().filter(|l| !in_store(&b, l)).collect();
    // (`COPY --from=deps /deps.out /deps.out` makes the very layer deps' RUN made: 4 blobs)
    assert_eq!(layers.len(), 8, "base + 7 distinct step layers: {layers:?}");
    assert_eq!(absent.len(), 4, "the deps and build stages' layers stay in the registry: {layers:?}");
    assert_eq!(cache_layers(&copy_ref), layers, "the re-exported cache is complete");

    // What B fetched is now in its own index: without --cache-from the final stage still hits
    // (the earlier stages' layers were never fetched, so their steps run)
    let (_, again) = b.build_local("out-b1", &[ctx_b.to_str().unwrap()]);
    assert!(names(&ran(&again)).iter().all(|s| !s.contains("/app/")), "{again}");

    // An edit of the final stage's file: only the steps from it on run.
    std::fs::write(ctx_b.join("final.txt"), "final v2\n").unwrap();
    let (out, edited) = b.build_local("out-b2", &["--cache-from", &cache_from, ctx_b.to_str().unwrap()]);
    assert_eq!(
        names(&ran(&edited)),
        vec![
            "COPY final.txt /app/final.txt".to_owned(),
            "RUN cat /app/app.out /app/final.txt > /app/all.out".to_owned()
        ],
        "{edited}"
    );
    assert_eq!(read(&out.join("app/all.out")), "deps v1\ndeps-built\nsrc v1\nfinal v2\n");

    // An edit in the middle stage re-runs it and what depends on its output.
    std::fs::write(ctx_b.join("src.txt"), "src v2\n").unwrap();
    let c = empty_store("c");
    let ctx_c = context(&c, &base);
    std::fs::write(ctx_c.join("src.txt"), "src v2\n").unwrap();
    let copy_from = format!("type=registry,ref={copy_ref}");
    let (out, middle) = c.build_local("out-c", &["--cache-from", &copy_from, ctx_c.to_str().unwrap()]);
    // the deps stage stays cached; the final stage builds on the new /app.out
    let mut steps = names(&ran(&middle));
    steps.sort();
    assert_eq!(
        steps,
        vec![
            "COPY --from=build /app.out /app/app.out".to_owned(),
            "COPY final.txt /app/final.txt".to_owned(),
            "COPY src.txt /src.txt".to_owned(),
            "RUN cat /app/app.out /app/final.txt > /app/all.out".to_owned(),
            "RUN cat /deps.out /src.txt > /app.out".to_owned(),
        ],
        "{middle}"
    );
    assert_eq!(read(&out.join("app/all.out")), "deps v1\ndeps-built\nsrc v2\nfinal v1\n");
}

#[test]
fn registry_cache_min_exports_only_the_final_stage() {
    let registry = Registry::start_with(Auth::None, Locations::Absolute);
    let (a, base) = publish_base(&registry);
    let ctx = context(&a, &base);
    let min_ref = format!("{}/cache/app:min", registry.host());
    let max_ref = format!("{}/cache/app:max", registry.host());
    let (_, cold) = a.build_local(
        "out-a",
        &[
            "--cache-to",
            &format!("type=registry,ref={min_ref}"),
            "--cache-to",
            &format!("type=registry,ref={max_ref},mode=max,ignore-error=true"),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(!cold.contains("WARNING"), "{cold}");
    let (min, max) = (cache_layers(&min_ref), cache_layers(&max_ref));
    assert_eq!(min.len(), 4, "base + the final stage's 3 layers: {min:?}");
    assert_eq!(max.len(), 8, "{max:?}");
    assert!(min.iter().all(|l| max.contains(l)));

    // mode=min: the first two stages run again; the final stage's steps match by content.
    let b = empty_store("b");
    let ctx_b = context(&b, &base);
    let (out, warm) = b.build_local(
        "out-b",
        &["--cache-from", &format!("type=registry,ref={min_ref}"), ctx_b.to_str().unwrap()],
    );
    let steps = names(&ran(&warm));
    assert_eq!(steps.len(), 5, "{warm}");
    assert!(steps.iter().all(|s| !s.contains("/app/")), "no final-stage step runs: {steps:?}");
    assert_eq!(read(&out.join("app/all.out")), ALL_OUT);
}

#[test]
fn missing_registry_cache_warns_and_builds() {
    let registry = Registry::start_with(Auth::None, Locations::Absolute);
    let (a, base) = publish_base(&registry);
    let ctx = context(&a, &base);
    let missing = format!("type=registry,ref={}/cache/none:x,ignore-error=true", registry.host());
    let (out, progress) = a.build_local("out", &["--cache-from", &missing, ctx.to_str().unwrap()]);
    assert!(progress.contains("WARNING: cache import from"), "{progress}");
    assert!(progress.contains("not found"), "{progress}");
    assert_eq!(ran(&progress).len(), 8);
    assert_eq!(read(&out.join("app/all.out")), ALL_OUT);
    // a cache that does not exist yet (the first CI run) is a warning even without ignore-error
    let first_run = format!("type=registry,ref={}/cache/none:first", registry.host());
    let (_, progress) = a.build_local("out2", &["--cache-from", &first_run, ctx.to_str().unwrap()]);
    assert!(progress.contains("WARNING: cache import from"), "{progress}");
    // an unreachable registry without ignore-error fails the build, naming the cache
    let unreachable = "type=registry,ref=127.0.0.1:1/cache/none:x";
    let err = a.build_fails(&["--cache-from", unreachable, ctx.to_str().unwrap()]);
    assert!(err.contains("cannot import the cache 127.0.0.1:1/cache/none:x"), "{err}");
}

/// Index of the layout's only manifest, and the manifest.
fn layout_manifest(dir: &Path) -> serde_json::Value {
    let index: serde_json::Value = serde_json::from_str(&read(&dir.join("index.json"))).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["annotations"]["org.opencontainers.image.ref.name"], "latest");
    let digest = entries[0]["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap().to_owned();
    serde_json::from_str(&read(&dir.join("blobs/sha256").join(digest))).unwrap()
}

#[test]
fn local_cache_round_trip_missing_and_corrupt() {
    let a = Kiln::with_busybox();
    let ctx = context(&a, "busybox");
    let dir = a.path("cache-dir");
    let (_, cold) = a.build_local(
        "out-a",
        &["--cache-to", &format!("type=local,dest={},mode=max", dir.display()), ctx.to_str().unwrap()],
    );
    assert_eq!(ran(&cold).len(), 8, "{cold}");
    let manifest = layout_manifest(&dir);
    let listed: BTreeSet<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&manifest["config"]])
        .map(|l| l["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap().to_owned())
        .collect();
    // exporting again (another edit) drops the blobs nothing references any more
    std::fs::write(ctx.join("final.txt"), "final v2\n").unwrap();
    a.build_local(
        "out-a2",
        &["--cache-to", &format!("type=local,dest={},mode=max", dir.display()), ctx.to_str().unwrap()],
    );
    let manifest2 = layout_manifest(&dir);
    let blobs: BTreeSet<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        blobs.len(),
        manifest2["layers"].as_array().unwrap().len() + 2,
        "layers, config, manifest: {blobs:?}"
    );
    assert!(listed.iter().any(|b| !blobs.contains(b)), "the old final layers are gone");
    std::fs::write(ctx.join("final.txt"), "final v1\n").unwrap();
    a.build_local(
        "out-a3",
        &["--cache-to", &format!("type=local,dest={},mode=max", dir.display()), ctx.to_str().unwrap()],
    );

    // Same base image, fresh build cache.
    let b = store_with_base_of(&a, "b");
    let ctx_b = context(&b, "busybox");
    let from = format!("type=local,src={}", dir.display());
    let (out, warm) = b.build_local("out-b", &["--cache-from", &from, ctx_b.to_str().unwrap()]);
    assert!(ran(&warm).is_empty(), "{warm}");
    assert_eq!(read(&out.join("app/all.out")), ALL_OUT);

    // A missing directory with ignore-error: a warning, then a normal build.
    let missing = format!("type=local,src={},ignore-error=true", a.path("nowhere").display());
    let c = store_with_base_of(&a, "c");
    let ctx_c = context(&c, "busybox");
    let (_, progress) = c.build_local("out-c", &["--cache-from", &missing, ctx_c.to_str().unwrap()]);
    assert!(progress.contains("WARNING: cache import from"), "{progress}");
    assert_eq!(ran(&progress).len(), 8);

    // A corrupt blob (the final RUN's layer) is refused; that step runs, the build succeeds.
    let run_layer = layout_manifest(&dir)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            dir.join("blobs/sha256").join(l["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap())
        })
        .find(|path| testkit::run(Command::new("tar").arg("-tzf").arg(path)).contains("app/all.out"))
        .expect("the final RUN's layer");
    let mut bytes = std::fs::read(&run_layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&run_layer, bytes).unwrap();
    let d = store_with_base_of(&a, "d");
    let ctx_d = context(&d, "busybox");
    let (out, progress) = d.build_local("out-d", &["--cache-from", &from, ctx_d.to_str().unwrap()]);
    assert!(progress.contains("WARNING: cache blob sha256:"), "{progress}");
    assert!(progress.contains("refused"), "{progress}");
    assert_eq!(read(&out.join("app/all.out")), ALL_OUT);
    assert_eq!(
        names(&ran(&progress)),
        vec!["RUN cat /app/app.out /app/final.txt > /app/all.out".to_owned()],
        "{progress}"
    );
}

#[test]
fn inline_cache_travels_in_the_pushed_image() {
    let registry = Registry::start_with(Auth::None, Locations::Absolute);
    let (a, base) = publish_base(&registry);
    let ctx = context(&a, &base);
    let image = format!("{}/app/inline:1", registry.host());
    let progress = a.build(&["--cache-to", "type=inline", "-t", &image, "--push", ctx.to_str().unwrap()]);
    assert_eq!(ran(&progress).len(), 8, "{progress}");
    let config = testkit::run(
        Command::new("skopeo")
            .args(["inspect", "--config", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{image}")),
    );
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    let inline = &config["dev.kiln.buildcache.v1"];
    assert_eq!(inline["schemaVersion"], 1, "{config}");
    assert_eq!(inline["records"].as_array().unwrap().len(), 4, "base + the final stage's 3 steps: {inline}");

    // The image itself is the cache: its final stage is matched, the stages it copies from run.
    let b = empty_store("b");
    let ctx_b = context(&b, &base);
    let (out, warm) = b.build_local(
        "out-b",
        &["--cache-from", &format!("type=registry,ref={image}"), ctx_b.to_str().unwrap()],
    );
    let steps = names(&ran(&warm));
    assert_eq!(steps.len(), 5, "{warm}");
    assert!(steps.iter().all(|s| !s.contains("/app/")), "no final-stage step runs: {steps:?}");
    assert_eq!(read(&out.join("app/all.out")), ALL_OUT);

    // An image without an inline cache is refused clearly, or skipped with ignore-error.
    let plain = format!("{}/base/busybox:1", registry.host());
    let err =
        b.build_fails(&["--cache-from", &format!("type=registry,ref={plain}"), ctx_b.to_str().unwrap()]);
    assert!(err.contains("not a kiln build cache"), "{err}");
    let progress = b.build(&[
        "--cache-from",
        &format!("type=registry,ref={plain},ignore-error=true"),
        ctx_b.to_str().unwrap(),
    ]);
    assert!(progress.contains("WARNING: cache import from"), "{progress}");
}

/// `cache-mounts=true`: a store's `RUN --mount=type=cache` directory travels with the cache, so
/// a fresh store's step that runs sees what the first store's left there; without the option
/// (or for a mount the store already has) nothing is restored.
#[test]
fn cache_mounts_travel_with_cache_mounts_true() {
    testkit::require_root!();
    let dockerfile = "FROM busybox\nCOPY stamp /stamp\n\
                      RUN --mount=type=cache,id=deps,target=/c sh -c 'ls /c > /listing; cp /stamp /c/$(cat /stamp)'\n";
    let a = Kiln::with_busybox();
    let ctx = a.context("ctx-a", dockerfile, &[("stamp", "from-a")]);
    let with_mounts = a.path("cache-with-mounts");
    let without = a.path("cache-without");
    a.build(&[
        "--cache-to",
        &format!("type=local,dest={},cache-mounts=true", with_mounts.display()),
        "--cache-to",
        &format!("type=local,dest={}", without.display()),
        "-o",
        &format!("type=local,dest={}", a.path("out-a").display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(read(&a.path("out-a").join("listing")), "", "the mount starts empty");

    // a fresh store, another stamp: the RUN runs and finds a's file in the restored mount
    let b = Kiln::with_busybox();
    let ctx_b = b.context("ctx-b", dockerfile, &[("stamp", "from-b")]);
    let from = format!("type=local,src={}", with_mounts.display());
    let out_b = b.path("out-b");
    let progress = b.build(&[
        "--cache-from",
        &from,
        "-o",
        &format!("type=local,dest={}", out_b.display()),
        ctx_b.to_str().unwrap(),
    ]);
    assert!(progress.contains("1 cache mounts restored"), "{progress}");
    assert_eq!(read(&out_b.join("listing")), "from-a\n");

    // b's own mount now exists: importing again does not overwrite it
    std::fs::write(ctx_b.join("stamp"), "from-b2").unwrap();
    let out_b2 = b.path("out-b2");
    let progress = b.build(&[
        "--cache-from",
        &from,
        "-o",
        &format!("type=local,dest={}", out_b2.display()),
        ctx_b.to_str().unwrap(),
    ]);
    assert!(!progress.contains("cache mounts restored"), "{progress}");
    assert_eq!(read(&out_b2.join("listing")), "from-a\nfrom-b\n");

    // a cache exported without cache-mounts=true carries no mount
    let c = Kiln::with_busybox();
    let ctx_c = c.context("ctx-c", dockerfile, &[("stamp", "from-c")]);
    let out_c = c.path("out-c");
    c.build(&[
        "--cache-from",
        &format!("type=local,src={}", without.display()),
        "-o",
        &format!("type=local,dest={}", out_c.display()),
        ctx_c.to_str().unwrap(),
    ]);
    assert_eq!(read(&out_c.join("listing")), "");
}
