//! Test helpers for this and other crates' tests (feature `test-support`): a busybox base image
//! in a store, built from `testdata/rootfs/busybox-rootfs.sh` (Debian's busybox-static).

use std::path::{Path, PathBuf};

use oci_spec::image::{ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, RootFsBuilder};

use crate::diff::{DiffOptions, DiffSource};
use crate::error::{Error, Result};
use crate::image::host_platform;
use crate::store::Store;

/// The workspace's `testdata/` directory.
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Builds the busybox rootfs into `dest` (created if missing) with the testdata script.
pub fn busybox_rootfs(dest: &Path) -> Result<()> {
    let script = testdata_dir().join("rootfs/busybox-rootfs.sh");
    let status = std::process::Command::new("sh")
        .arg(&script)
        .arg(dest)
        .status()
        .map_err(|e| Error::io("run", &script, e))?;
    if !status.success() {
        return Err(Error::io("run", &script, std::io::Error::other(format!("exited with {status}"))));
    }
    Ok(())
}

/// Stores a one-layer busybox image (`CMD ["sh"]`, fixed timestamps, so the same digests every
/// time) and tags it `name` (fully qualified, e.g. `docker.io/library/busybox:latest`).
/// Returns the manifest descriptor.
pub fn busybox_image(store: &Store, name: &str) -> Result<Descriptor> {
    let work =
        tempfile::tempdir().map_err(|e| Error::io("create temp directory", std::env::temp_dir(), e))?;
    let rootfs = work.path().join("rootfs");
    busybox_rootfs(&rootfs)?;
    let options = DiffOptions { source_date_epoch: Some(946_684_800), ..DiffOptions::default() };
    let layer = store.content().write_layer(&rootfs, DiffSource::PlainDir, &options)?;
    let invalid =
        |e: oci_spec::OciSpecError| Error::InvalidImage { what: "test image".into(), problem: e.to_string() };
    let (os, arch) = host_platform();
    let created = "2000-01-01T00:00:00Z".to_owned();
    let config = ImageConfigurationBuilder::default()
        .created(created.clone())
        .architecture(arch)
        .os(os)
        .config(
            ConfigBuilder::default()
                .env(vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()])
                .cmd(vec!["sh".to_owned()])
                .build()
                .map_err(invalid)?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.diff_id.to_string()])
                .build()
                .map_err(invalid)?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created(created)
                .created_by("busybox-rootfs.sh")
                .comment("kiln test base image")
                .build()
                .map_err(invalid)?,
        ])
        .build()
        .map_err(invalid)?;
    let manifest = store.write_image(&config, &[layer.descriptor])?;
    store.images().tag(name, &manifest)?;
    Ok(manifest)
}
