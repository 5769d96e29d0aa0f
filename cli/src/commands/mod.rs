//! One module per command (or command group). Each exposes its clap arguments and an async `run`.

pub mod build;
pub mod build_check;
pub mod build_flags;
pub mod builder;
pub mod commit;
pub mod container;
pub mod container_prune;
pub mod cp;
pub mod debug;
pub mod diff_export;
pub mod exec;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod inspect_container;
pub mod load;
pub mod login;
pub mod logout;
pub mod logs;
pub mod port;
pub mod progress_mode;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rmi;
pub mod run;
pub mod save;
pub mod stats;
pub mod system;
pub mod tag;
pub mod top;
pub mod version;
pub mod volume;

/// Unpacks the layers of a stored image into snapshots right away, as docker does on pull, load
/// and import, so that the first `run` or `FROM` of it does not pay for the unpacking.
pub(crate) fn unpack_image(store: &cache::Store, target: &oci_spec::image::Descriptor) -> anyhow::Result<()> {
    use anyhow::Context;
    // an image for another platform only (no manifest this host runs) stays packed
    let image = match store.content().read_image(target) {
        Ok(image) => image,
        Err(err) => {
            tracing::debug!(%err, digest = %target.digest(), "image not unpacked");
            return Ok(());
        }
    };
    let layers = image.layers().context("cannot read the stored image's layers")?;
    store.snapshots().ensure_unpacked(&layers).context("cannot unpack the image's layers")?;
    Ok(())
}

/// A registry client configured from the global options: `<root>/registries.toml` plus
/// `--insecure-registry` hosts.
pub fn client(global: &crate::GlobalOptions) -> anyhow::Result<registry::Client> {
    use anyhow::Context;
    let mut options = registry::ClientOptions::load(&global.root)?;
    options.insecure_registries.extend(global.insecure_registries.iter().cloned());
    registry::Client::new(options).context("cannot set up the registry client")
}
