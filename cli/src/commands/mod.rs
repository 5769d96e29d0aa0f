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

/// A registry client configured from the global options: `<root>/registries.toml` plus
/// `--insecure-registry` hosts.
pub fn client(global: &crate::GlobalOptions) -> anyhow::Result<registry::Client> {
    use anyhow::Context;
    let mut options = registry::ClientOptions::load(&global.root)?;
    options.insecure_registries.extend(global.insecure_registries.iter().cloned());
    registry::Client::new(options).context("cannot set up the registry client")
}
