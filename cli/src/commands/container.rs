//! Container lifecycle commands over the runtime store: `create`, `start`, `stop`, `restart`,
//! `kill`, `rm`, `wait`. Output as docker's: each names the container as it was given.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use executor::runtime::{self, RuntimeError, Store, monitor, stop};

use crate::GlobalOptions;

/// The re-executed kiln (monitor, exec helper).
pub(crate) const SELF: &str = "/proc/self/exe";

pub(crate) fn open(global: &GlobalOptions) -> anyhow::Result<Store> {
    Store::open(&global.root)
        .with_context(|| format!("cannot open the container store in {}", global.root.display()))
}

/// Runs `action` for every container named, like docker: errors are printed and the command
/// fails at the end, the others still go.
fn each(
    global: &GlobalOptions,
    containers: &[String],
    mut action: impl FnMut(&Store, &mut runtime::Container) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let store = open(global)?;
    let mut failed = false;
    for name in containers {
        let result = store.find(name).map_err(anyhow::Error::from).and_then(|mut c| action(&store, &mut c));
        match result {
            Ok(()) => println!("{name}"),
            Err(err) => {
                crate::report::error(&err, global.debug);
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `kiln create`: same flags as `run`.
pub async fn create(global: &GlobalOptions, args: super::run::RunArgs) -> anyhow::Result<ExitCode> {
    let container = super::run::create(global, &args).await?;
    println!("{}", container.id());
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `kiln start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn start(global: &GlobalOptions, args: StartArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |store, container| {
        monitor::start(store, container, Path::new(SELF)).map_err(|err| match err {
            RuntimeError::StartFailed { message, .. } => anyhow::anyhow!("{message}"),
            other => other.into(),
        })
    })
}

/// Arguments of `kiln stop` and `kiln restart`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container (default: its --stop-timeout, else 10).
    #[arg(
        short = 't',
        long = "timeout",
        alias = "time",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub timeout: Option<i64>,
    /// Signal to send (default: the container's stop signal).
    #[arg(short, long, value_name = "SIGNAL")]
    pub signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

fn stop_one(container: &mut runtime::Container, args: &StopArgs) -> anyhow::Result<()> {
    let signal = stop::parse_signal(args.signal.as_deref().unwrap_or(&container.config.stop_signal))?;
    let seconds = args.timeout.unwrap_or(container.config.stop_timeout as i64);
    // docker: a negative timeout waits forever
    let timeout =
        if seconds < 0 { Duration::from_secs(u64::MAX / 4) } else { Duration::from_secs(seconds as u64) };
    stop::stop(container, signal, timeout)?;
    Ok(())
}

pub fn stop(global: &GlobalOptions, args: StopArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |_, container| stop_one(container, &args))
}

pub fn restart(global: &GlobalOptions, args: StopArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |store, container| {
        stop_one(container, &args)?;
        monitor::start(store, container, Path::new(SELF))?;
        Ok(())
    })
}

/// Arguments of `kiln kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal to send.
    #[arg(short, long, default_value = "KILL", value_name = "SIGNAL")]
    pub signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn kill(global: &GlobalOptions, args: KillArgs) -> anyhow::Result<ExitCode> {
    let signal = stop::parse_signal(&args.signal)?;
    each(global, &args.containers, |_, container| {
        stop::kill_container(container, signal)?;
        Ok(())
    })
}

/// Arguments of `kiln rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Force the removal of a running container (SIGKILL).
    #[arg(short, long)]
    pub force: bool,
    /// Remove the anonymous volumes of the container.
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn rm(global: &GlobalOptions, args: RmArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |store, container| {
        if container.state.status.is_active() {
            if !args.force {
                anyhow::bail!(
                    "cannot remove container \"{}\": container is running: stop the container before removing or force remove",
                    container.config.name
                );
            }
            stop::stop(container, stop::Signal::SIGKILL, Duration::ZERO)?;
        }
        store.remove(container, args.volumes)?;
        Ok(())
    })
}

/// Arguments of `kiln wait`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn wait(global: &GlobalOptions, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let store = open(global)?;
    let mut failed = false;
    for name in &args.containers {
        match store.find(name).and_then(|mut c| stop::wait_exit(&mut c)) {
            Ok(code) => println!("{code}"),
            Err(err) => {
                crate::report::error(&err.into(), global.debug);
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Arguments of `kiln pause` and `kiln unpause`.
#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn pause(global: &GlobalOptions, args: PauseArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |_, container| Ok(runtime::pause::pause(container)?))
}

pub fn unpause(global: &GlobalOptions, args: PauseArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |_, container| Ok(runtime::pause::unpause(container)?))
}

/// Arguments of `kiln rename`.
#[derive(Debug, clap::Args)]
pub struct RenameArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

/// `kiln rename`: silent on success, like docker's.
pub fn rename(global: &GlobalOptions, args: RenameArgs) -> anyhow::Result<ExitCode> {
    let store = open(global)?;
    let mut container = store.find(&args.container)?;
    store.rename(&mut container, &args.new_name)?;
    Ok(ExitCode::SUCCESS)
}

/// Containers as GC roots of the image store: the manifest and config of each container's image
/// and the snapshots it runs on, so that `rmi -f` of its last name or `image prune -a` never
/// takes them from under a container, running or stopped. Listed when the GC asks (under its
/// exclusive lock), so a container created just before is seen.
pub(crate) struct ContainerImages {
    store: Store,
}

impl ContainerImages {
    pub(crate) fn new(global: &GlobalOptions) -> anyhow::Result<Self> {
        Ok(Self { store: open(global)? })
    }
}

/// The GC roots of one container (unparsable digests are skipped: they name nothing stored).
pub(crate) fn image_roots(container: &runtime::Container) -> Vec<oci_spec::image::Digest> {
    let parse = |text: &str| text.parse::<oci_spec::image::Digest>().ok();
    let mut roots: Vec<_> = [container.config.image_manifest.as_str(), container.config.image_id.as_str()]
        .into_iter()
        .filter_map(parse)
        .collect();
    // the snapshots it runs on: <root>/snapshots/<chain id hex>/fs
    if let executor::Rootfs::Overlay { lowers, .. } = &container.config.spec.rootfs {
        for lower in lowers {
            if let Some(hex) = lower.parent().and_then(Path::file_name).and_then(|n| n.to_str()) {
                roots.extend(parse(&format!("sha256:{hex}")));
            }
        }
    }
    roots
}

impl cache::GcRoots for ContainerImages {
    fn gc_roots(&self) -> cache::Result<Vec<oci_spec::image::Digest>> {
        let containers = self
            .store
            .list()
            .map_err(|err| cache::Error::GcRoots { what: "containers", source: Box::new(err) })?;
        Ok(containers.iter().flat_map(image_roots).collect())
    }
}
