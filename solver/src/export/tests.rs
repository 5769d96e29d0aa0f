use std::path::Path;

use cache::buildcache::CachedLayer;
use cache::{DiffOptions, DiffSource, Store};
use oci_spec::image::{
    ConfigBuilder, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, RootFsBuilder,
};

use super::output::{Dest, Output};
use super::*;

fn history(created_by: &str, empty: bool) -> History {
    HistoryBuilder::default()
        .created("2024-01-01T00:00:00Z")
        .created_by(created_by)
        .empty_layer(empty)
        .build()
        .unwrap()
}

fn base_config(history: Vec<History>) -> ImageConfiguration {
    ImageConfigurationBuilder::default()
        .created("2024-01-01T00:00:00Z")
        .config(ConfigBuilder::default().cmd(vec!["sh".to_owned()]).build().unwrap())
        .rootfs(RootFsBuilder::default().typ("layers").diff_ids(Vec::<String>::new()).build().unwrap())
        .history(history)
        .build()
        .unwrap()
}

fn layer_from(store: &Store, files: &[(&str, &str)]) -> CachedLayer {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    let options = DiffOptions { source_date_epoch: Some(0), ..DiffOptions::default() };
    let layer = store.content().write_layer(dir.path(), DiffSource::PlainDir, &options).unwrap();
    CachedLayer { blob: layer.descriptor, diff_id: layer.diff_id }
}

fn open_store(dir: &Path) -> Store {
    Store::open(&dir.join("root")).unwrap()
}

#[test]
fn epoch_formatting_round_trips() {
    for (secs, text) in [
        (0, "1970-01-01T00:00:00Z"),
        (946_684_800, "2000-01-01T00:00:00Z"),
        (1_709_251_199, "2024-02-29T23:59:59Z"),
        (-1, "1969-12-31T23:59:59Z"),
    ] {
        assert_eq!(rfc3339_from_epoch(secs), text);
        assert_eq!(epoch_of(text), Some(secs));
    }
    assert_eq!(epoch_of("yesterday"), None);
}

#[test]
fn output_specs_parse_like_buildx() {
    let table: Vec<(&str, Output)> = vec![
        ("out", Output::Local { dest: "out".into() }),
        ("-", Output::Tar { dest: Dest::Stdout }),
        ("type=local,dest=d", Output::Local { dest: "d".into() }),
        ("type=tar,dest=-", Output::Tar { dest: Dest::Stdout }),
        ("type=oci,dest=a.tar", Output::Oci { dest: Dest::File("a.tar".into()), names: vec![] }),
        (
            "type=docker,dest=b.tar,name=x:1",
            Output::Docker { dest: Dest::File("b.tar".into()), names: vec!["x:1".into()] },
        ),
        ("type=image,name=r/a:1,push=true", Output::Image { names: vec!["r/a:1".into()], push: true }),
        (
            "type=oci,dest=o.tar,\"name=r/a:1,r/a:2\"",
            Output::Oci { dest: Dest::File("o.tar".into()), names: vec!["r/a:1".into(), "r/a:2".into()] },
        ),
        ("type=image", Output::Image { names: vec![], push: false }),
        ("type=registry,name=r/a", Output::Image { names: vec!["r/a".into()], push: true }),
    ];
    for (spec, expected) in table {
        assert_eq!(Output::parse(spec).unwrap(), expected, "{spec}");
    }
    for bad in ["", "type=oci", "type=nope,dest=x", "type=local,dest=-", "type=tar,dest=x,bogus=1", "dest=x"]
    {
        let err = Output::parse(bad).unwrap_err();
        assert!(err.to_string().contains("invalid output"), "{bad}: {err}");
    }
}

#[test]
fn history_gets_entries_for_unaccounted_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let layers = vec![layer_from(&store, &[("a", "1")]), layer_from(&store, &[("b", "2")])];
    let config = base_config(vec![history("ENV A=1", true), history("RUN x", false)]);
    let out = finalize_config(config, &layers, &[], &ImageOptions::default());
    let history = out.history().clone().unwrap();
    let non_empty = history.iter().filter(|h| !h.empty_layer().unwrap_or(false)).count();
    assert_eq!(non_empty, 2);
    assert_eq!(history.len(), 3);
    assert_eq!(history[2].comment().as_deref(), Some(SYNTHETIC_HISTORY_COMMENT));
    assert_eq!(out.rootfs().diff_ids().len(), 2);
    assert_eq!(out.rootfs().diff_ids()[1], layers[1].diff_id.to_string());
}

#[test]
fn extra_history_entries_become_empty() {
    let config = base_config(vec![history("RUN a", false), history("RUN b", false)]);
    let out = finalize_config(config, &[], &[], &ImageOptions::default());
    let history = out.history().clone().unwrap();
    assert!(history.iter().all(|h| h.empty_layer() == Some(true)));
}

#[test]
fn epoch_and_labels_apply() {
    let config = base_config(vec![history("RUN a", true)]);
    let options = ImageOptions {
        labels: vec![("org.example".into(), "yes".into())],
        source_date_epoch: Some(946_684_800),
        ..ImageOptions::default()
    };
    let out = finalize_config(config, &[], &[], &options);
    assert_eq!(out.created().as_deref(), Some("2000-01-01T00:00:00Z"));
    assert_eq!(out.history().clone().unwrap()[0].created().as_deref(), Some("2000-01-01T00:00:00Z"));
    let labels = out.config().clone().unwrap().labels().clone().unwrap();
    assert_eq!(labels.get("org.example").map(String::as_str), Some("yes"));
    // times before the epoch stay
    let config = base_config(vec![history("RUN a", true)]);
    let out = finalize_config(
        config,
        &[],
        &[],
        &ImageOptions { source_date_epoch: Some(2_000_000_000), ..options },
    );
    assert_eq!(out.history().clone().unwrap()[0].created().as_deref(), Some("2024-01-01T00:00:00Z"));
}

#[test]
fn same_input_same_digest_on_two_roots() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for dir in [a.path(), b.path()] {
        let store = open_store(dir);
        let layers = vec![layer_from(&store, &[("etc/x", "x"), ("y", "y")])];
        let options = ImageOptions {
            labels: (0..20).map(|i| (format!("l{i}"), i.to_string())).collect(),
            source_date_epoch: Some(1),
            ..ImageOptions::default()
        };
        let config = finalize_config(base_config(vec![history("COPY", false)]), &layers, &[], &options);
        let image = write_image(&store, config, &layers).unwrap();
        // readable by the store like any image
        let read = store.content().read_image(&image.manifest).unwrap();
        assert_eq!(read.id(), &image.config_digest);
        digests.push(image.manifest.digest().clone());
    }
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn outputs_write_store_archives_and_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let layers =
        vec![layer_from(&store, &[("a/file", "one"), ("gone", "x")]), layer_from(&store, &[("b", "two")])];
    let config = finalize_config(base_config(vec![]), &layers, &[], &ImageOptions::default());
    let image = write_image(&store, config, &layers).unwrap();

    let names = vec!["docker.io/library/t:1".to_owned()];
    output::write(&store, &image, &Output::Image { names: vec![], push: false }, &names).unwrap();
    let record = store.images().get("docker.io/library/t:1").unwrap().unwrap();
    assert_eq!(record.image_id, image.config_digest);
    output::write(&store, &image, &Output::Image { names: vec![], push: false }, &[]).unwrap();

    let local = dir.path().join("local");
    output::write(&store, &image, &Output::Local { dest: local.clone() }, &[]).unwrap();
    assert_eq!(std::fs::read_to_string(local.join("a/file")).unwrap(), "one");
    assert_eq!(std::fs::read_to_string(local.join("b")).unwrap(), "two");

    let tar_path = dir.path().join("fs.tar");
    output::write(&store, &image, &Output::Tar { dest: Dest::File(tar_path.clone()) }, &[]).unwrap();
    let listing = std::process::Command::new("tar").arg("-tf").arg(&tar_path).output().unwrap();
    assert!(listing.status.success());
    let entries: Vec<String> = String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_owned())
        .collect();
    for want in ["a", "a/file", "b", "gone"] {
        assert!(entries.iter().any(|e| e == want), "{want} in {entries:?}");
    }

    for (kind, name) in [("oci", "o.tar"), ("docker", "d.tar")] {
        let path = dir.path().join(name);
        let spec = format!("type={kind},dest={}", path.display());
        output::write(&store, &image, &Output::parse(&spec).unwrap(), &names).unwrap();
        let other = tempfile::tempdir().unwrap();
        let other_store = open_store(other.path());
        let loaded = cache::formats::load(&other_store, &path).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].image_id, image.config_digest, "{kind}");
    }
}

#[test]
fn metadata_has_buildx_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let config = finalize_config(base_config(vec![]), &[], &[], &ImageOptions::default());
    let image = write_image(&store, config, &[]).unwrap();
    let meta = metadata_json(&image, &["docker.io/library/a:1".into()]);
    assert_eq!(meta["containerimage.digest"], image.manifest.digest().to_string());
    assert_eq!(meta["containerimage.config.digest"], image.config_digest.to_string());
    assert_eq!(meta["image.name"], "docker.io/library/a:1");
}

#[test]
fn history_entries_without_a_time_get_the_image_time() {
    let untimed = HistoryBuilder::default().created_by("RUN a").build().unwrap();
    let config = base_config(vec![history("FROM", false), untimed]);
    let out = finalize_config(config, &[], &[], &ImageOptions::default());
    let history = out.history().clone().unwrap();
    assert!(history.iter().all(|h| h.created().is_some()), "{history:?}");
    assert_eq!(history[0].created().as_deref(), Some("2024-01-01T00:00:00Z"));
    assert_eq!(history[1].created(), out.created());
}

/// Without an epoch, new entries take the time their layer was made (an empty entry the time
/// before it) and the image is as old as its last entry: a rebuild from the cache, whose layers
/// keep their times, gives the same config.
#[test]
fn history_times_come_from_the_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let layers = vec![layer_from(&store, &[("a", "1")]), layer_from(&store, &[("b", "2")])];
    let mut copy = history("COPY b /", false);
    copy.set_created(None);
    let mut env = history("ENV X=1", true);
    env.set_created(None);
    let mut config = base_config(vec![history("base", false), copy, env]);
    config.set_created(None);
    let times = [Some("2025-01-01T00:00:00Z".to_owned()), Some("2026-02-02T00:00:00Z".to_owned())];
    let out = finalize_config(config.clone(), &layers, &times, &ImageOptions::default());
    let created: Vec<_> =
        out.history().clone().unwrap().iter().map(|h| h.created().clone().unwrap()).collect();
    assert_eq!(created, ["2024-01-01T00:00:00Z", "2026-02-02T00:00:00Z", "2026-02-02T00:00:00Z"]);
    assert_eq!(out.created().as_deref(), Some("2026-02-02T00:00:00Z"));
    assert_eq!(finalize_config(config, &layers, &times, &ImageOptions::default()), out, "deterministic");
}
