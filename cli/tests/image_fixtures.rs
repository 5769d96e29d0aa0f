#![allow(clippy::unwrap_used)]
//! Images made by other tools (root): for each producer under `testdata/images/<producer>/`
//! (the config and manifest that producer wrote, captured as described in that README), an
//! image with the producer's config **as written** (its `null` fields kept) and busybox as its
//! first layer is loaded into a fresh store, inspected, built `FROM`, and run.
//!
//! A fixture with `manifest.json` (an OCI or docker v2 manifest) is loaded as an OCI layout with
//! that manifest (digests and sizes replaced, compressed layer media types made uncompressed); one
//! with `docker-save-manifest.json` as a docker archive in `docker save`'s legacy form.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::Kiln;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/images")
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What these tests do with a root: load an image made from a fixture.
trait Fixtures {
    fn layers(&self, count: usize) -> Vec<Vec<u8>>;
    fn load_fixture(&self, producer: &str);
}

impl Fixtures for Kiln {
    /// Layer tars for an image of `count` layers: busybox, then one marker file per layer.
    fn layers(&self, count: usize) -> Vec<Vec<u8>> {
        let rootfs = testkit::busybox_rootfs();
        let mut layers = Vec::new();
        for index in 0..count.max(1) {
            let dir = if index == 0 {
                rootfs.to_owned()
            } else {
                let dir = self.dir().join(format!("layer-{index}"));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(format!("fixture-layer-{index}")), format!("{index}\n")).unwrap();
                dir
            };
            let tarball = self.dir().join(format!("layer-{index}.tar"));
            testkit::busybox::tar(&dir, &tarball);
            layers.push(std::fs::read(&tarball).unwrap());
        }
        layers
    }

    /// Writes the fixture `producer` as a loadable directory and `kiln load`s it as
    /// `fx/<producer>:latest`.
    fn load_fixture(&self, producer: &str) {
        let dir = fixtures().join(producer);
        let config_text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let mut config: Value = serde_json::from_str(&config_text).unwrap();
        let count = config["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
        let layers = self.layers(count);
        let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", sha256(l))).collect();
        config["rootfs"]["diff_ids"] = json!(diff_ids);
        // serde_json keeps the nulls: the config is still the producer's, bar the diffIDs
        let config_bytes = serde_json::to_vec(&config).unwrap();
        let config_hex = sha256(&config_bytes);
        let out = self.dir().join(format!("archive-{producer}"));
        std::fs::create_dir_all(&out).unwrap();
        let name = format!("docker.io/fx/{producer}:latest");
        if dir.join("manifest.json").exists() {
            let blobs = out.join("blobs/sha256");
            std::fs::create_dir_all(&blobs).unwrap();
            std::fs::write(blobs.join(&config_hex), &config_bytes).unwrap();
            let mut manifest: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
            manifest["config"]["digest"] = json!(format!("sha256:{config_hex}"));
            manifest["config"]["size"] = json!(config_bytes.len());
            let template = manifest["layers"].as_array().unwrap()[0].clone();
            let mut entries = Vec::new();
            for (index, layer) in layers.iter().enumerate() {
                let mut entry =
                    manifest["layers"].as_array().unwrap().get(index).cloned().unwrap_or(template.clone());
                let media_type = entry["mediaType"].as_str().unwrap();
                let plain = media_type.trim_end_matches("+gzip").trim_end_matches(".gzip").to_owned();
                entry["mediaType"] = json!(plain);
                entry["digest"] = json!(format!("sha256:{}", sha256(layer)));
                entry["size"] = json!(layer.len());
                std::fs::write(blobs.join(sha256(layer)), layer).unwrap();
                entries.push(entry);
            }
            manifest["layers"] = json!(entries);
            let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
            let manifest_hex = sha256(&manifest_bytes);
            std::fs::write(blobs.join(&manifest_hex), &manifest_bytes).unwrap();
            let media_type = manifest["mediaType"]
                .as_str()
                .unwrap_or("application/vnd.oci.image.manifest.v1+json")
                .to_owned();
            let index = json!({
                "schemaVersion": 2,
                "manifests": [{
                    "mediaType": media_type,
                    "digest": format!("sha256:{manifest_hex}"),
                    "size": manifest_bytes.len(),
                    "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"},
                }],
            });
            std::fs::write(out.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
            std::fs::write(out.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        } else {
            let saved: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("docker-save-manifest.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(saved[0]["Layers"].as_array().unwrap().len(), layers.len(), "{producer}: layer count");
            std::fs::write(out.join(format!("{config_hex}.json")), &config_bytes).unwrap();
            let mut names = Vec::new();
            for (index, layer) in layers.iter().enumerate() {
                let layer_dir = out.join(format!("layer{index}"));
                std::fs::create_dir_all(&layer_dir).unwrap();
                std::fs::write(layer_dir.join("layer.tar"), layer).unwrap();
                names.push(format!("layer{index}/layer.tar"));
            }
            let manifest = json!([{
                "Config": format!("{config_hex}.json"),
                "RepoTags": [format!("fx/{producer}:latest")],
                "Layers": names,
            }]);
            std::fs::write(out.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
        }
        let loaded = self.ok(&["load", "-i", out.to_str().unwrap()]);
        assert!(loaded.contains(&format!("fx/{producer}:latest")), "{producer}: {loaded}");
    }
}

const PRODUCERS: &[&str] = &[
    "docker-classic-builder",
    "docker-import",
    "docker-commit",
    "buildkit",
    "buildah",
    "buildah-docker-format",
    "podman",
    "skopeo-copy",
    "kiln",
];

#[test]
fn every_producer_has_a_fixture() {
    for producer in PRODUCERS {
        let dir = fixtures().join(producer);
        assert!(dir.join("config.json").exists(), "{producer}: config.json missing");
        assert!(
            dir.join("manifest.json").exists() || dir.join("docker-save-manifest.json").exists(),
            "{producer}: no manifest"
        );
    }
}

#[test]
fn images_of_every_producer_inspect_build_and_run() {
    testkit::require_root!();
    let kiln = Kiln::new();
    let context = kiln.dir().join("context");
    std::fs::create_dir_all(&context).unwrap();
    for producer in PRODUCERS {
        kiln.load_fixture(producer);
        let image = format!("fx/{producer}");

        let inspect: Value = serde_json::from_str(&kiln.ok(&["inspect", &image])).unwrap();
        assert_eq!(inspect[0]["Os"], "linux", "{producer}");

        let dockerfile = format!("FROM {image}\nRUN echo built-from-{producer} > /built\n");
        std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
        let tag = format!("out-{producer}");
        kiln.ok(&["build", "--progress", "plain", "-t", &tag, context.to_str().unwrap()]);

        let out = kiln.ok(&["run", "--rm", "--network", "none", &image, "echo", "ran", producer]);
        assert_eq!(out, format!("ran {producer}\n"));
        let out = kiln.ok(&["run", "--rm", "--network", "none", &tag, "cat", "/built"]);
        assert_eq!(out, format!("built-from-{producer}\n"));
    }
}

#[test]
fn docker_only_fields_survive_build_and_inspect() {
    // buildah's docker format: Healthcheck, OnBuild ["RUN true"], Shell, next to `"Env": null`
    testkit::require_root!();
    let kiln = Kiln::new();
    kiln.load_fixture("buildah-docker-format");
    let inspect: Value = serde_json::from_str(&kiln.ok(&["inspect", "fx/buildah-docker-format"])).unwrap();
    assert_eq!(inspect[0]["Config"]["Healthcheck"]["Test"], json!(["CMD", "true"]));
    assert_eq!(inspect[0]["Config"]["OnBuild"], json!(["RUN true"]));
    assert_eq!(inspect[0]["Config"]["Shell"], json!(["/bin/sh", "-c"]));
    let context = kiln.dir().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM fx/buildah-docker-format\nRUN echo x\n").unwrap();
    let progress = {
        let out = kiln.output(&["build", "--progress", "plain", "-t", "child", context.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stderr).unwrap()
    };
    // the trigger fired in the child build, and the healthcheck was inherited
    assert!(progress.contains("RUN true"), "{progress}");
    let child: Value = serde_json::from_str(&kiln.ok(&["inspect", "child"])).unwrap();
    assert_eq!(child[0]["Config"]["Healthcheck"]["Test"], json!(["CMD", "true"]));
    assert_eq!(child[0]["Config"].get("OnBuild"), None, "triggers are not inherited");
}
