//! `kiln import`: a root filesystem tarball (plain, gzip or zstd) → a one-layer image.

use std::io::Read;

use oci_spec::image::{
    ConfigBuilder, Descriptor, Digest, HistoryBuilder, ImageConfigurationBuilder, RootFsBuilder,
};

use super::changes::apply_change;
use crate::compress::decompress;
use crate::diff::DiffOptions;
use crate::error::{Error, IoContext, Result};
use crate::image::{host_platform, now_rfc3339};
use crate::store::Store;

/// Options of [`import_rootfs`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Dockerfile instructions applied to the config (`CMD ["sh"]`, `ENV A=b`, …).
    pub changes: Vec<String>,
    /// Commit message recorded in the history (default: `Imported from <source>`).
    pub message: Option<String>,
    /// Layer compression and the like.
    pub diff: DiffOptions,
}

/// Imports the tarball read from `reader` (`what` names it in errors and the history); returns
/// the manifest descriptor (to tag) and the image ID.
pub fn import_rootfs(
    store: &Store,
    reader: impl Read,
    what: &str,
    options: &ImportOptions,
) -> Result<(Descriptor, Digest)> {
    // Parse the changes first: a typo must not cost a long import.
    let mut config = ConfigBuilder::default()
        .env(vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()])
        .build()
        .map_err(|e| Error::InvalidImage { what: "config".into(), problem: e.to_string() })?;
    for change in &options.changes {
        apply_change(&mut config, change)?;
    }
    let mut tar = decompress(reader).ctx("read", what)?;
    let layer = store.content().write_layer_from_tar(&mut tar, &options.diff, what)?;
    let created = now_rfc3339();
    let (os, arch) = host_platform();
    let history = HistoryBuilder::default()
        .created(created.clone())
        .comment(options.message.clone().unwrap_or_else(|| format!("Imported from {what}")))
        .build()
        .map_err(|e| Error::InvalidImage { what: "history".into(), problem: e.to_string() })?;
    let image_config = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(arch)
        .os(os)
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.diff_id.to_string()])
                .build()
                .map_err(|e| Error::InvalidImage { what: "rootfs".into(), problem: e.to_string() })?,
        )
        .history(vec![history])
        .build()
        .map_err(|e| Error::InvalidImage { what: "config".into(), problem: e.to_string() })?;
    let manifest = store.write_image(&image_config, &[layer.descriptor])?;
    let image = store.content().read_image(&manifest)?;
    Ok((manifest, image.id().clone()))
}
