//! A busybox base image written straight into a `cache::Store` (feature `store`), for the tests
//! of the crates below the CLI (cache, registry, solver).

use cache::{DiffOptions, DiffSource, Error, Result, Store, host_platform};
use oci_spec::image::{ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, RootFsBuilder};

use crate::busybox::busybox_rootfs;

/// Stores a one-layer busybox image (`CMD ["sh"]`, fixed timestamps, so the same digests every
/// time) and tags it `name` (fully qualified, e.g. `docker.io/library/busybox:latest`).
/// Returns the manifest descriptor.
pub fn busybox_image(store: &Store, name: &str) -> Result<Descriptor> {
    let options = DiffOptions { source_date_epoch: Some(946_684_800), ..DiffOptions::default() };
    let layer = store.content().write_layer(busybox_rootfs(), DiffSource::PlainDir, &options)?;
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
