//! `kiln`: the command-line edge. Parses arguments, sets up logging, dispatches to the
//! commands in [`commands`], and renders errors. Libraries never print; this crate does.

mod commands;
mod format;
mod progress;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// A daemonless container image builder with a bundled minimal runtime.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalOptions,

    #[command(subcommand)]
    command: Command,
}

/// Options every command understands.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalOptions {
    /// Directory of kiln's state store (images, layers, build cache, containers).
    #[arg(long, global = true, env = "KILN_ROOT", default_value = "/var/lib/kiln", value_name = "DIR")]
    pub root: PathBuf,

    /// Verbosity of diagnostic logging on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Warn, value_name = "LEVEL")]
    pub log_level: LogLevel,

    /// Shorthand for `--log-level debug`; also shows full error chains.
    #[arg(long, global = true)]
    pub debug: bool,

    /// Registry (`host[:port]`) to reach over plain HTTP or unverified TLS; repeatable. Also
    /// read from `<root>/registries.toml`. Loopback registries are always allowed.
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

/// Logging verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl GlobalOptions {
    fn tracing_filter(&self) -> &'static str {
        let level = if self.debug { LogLevel::Debug.max(self.log_level) } else { self.log_level };
        match level {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl PartialOrd for LogLevel {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LogLevel {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile.
    Build(Box<commands::build::BuildArgs>),
    /// Inspect kiln's internals (parser output and the like).
    #[command(subcommand)]
    Debug(commands::debug::DebugCommand),
    /// Show kiln's version, the commit it was built from, its target and profile.
    Version(commands::version::VersionArgs),
    /// Manage the build cache (prune, du).
    #[command(subcommand)]
    Builder(commands::builder::BuilderCommand),
    /// List images.
    Images(commands::images::ImagesArgs),
    /// Create a tag TARGET that refers to SOURCE.
    Tag(commands::tag::TagArgs),
    /// Remove one or more images.
    Rmi(commands::rmi::RmiArgs),
    /// Run a command in a new container.
    Run(Box<commands::run::RunArgs>),
    /// Create a new container (same flags as `run`) without starting it.
    Create(Box<commands::run::RunArgs>),
    /// Start one or more stopped containers.
    Start(commands::container::StartArgs),
    /// Stop one or more running containers (stop signal, grace period, then SIGKILL).
    Stop(commands::container::StopArgs),
    /// Restart one or more containers.
    Restart(commands::container::StopArgs),
    /// Send a signal to one or more running containers.
    Kill(commands::container::KillArgs),
    /// Remove one or more containers.
    Rm(commands::container::RmArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(commands::container::WaitArgs),
    /// Pause all processes within one or more containers.
    Pause(commands::container::PauseArgs),
    /// Unpause all processes within one or more containers.
    Unpause(commands::container::PauseArgs),
    /// Rename a container.
    Rename(commands::container::RenameArgs),
    /// Manage containers (`kiln container prune`).
    #[command(subcommand)]
    Container(commands::container_prune::ContainerCommand),
    /// Copy files between a container and the local filesystem (`-` for a tar stream).
    Cp(commands::cp::CpArgs),
    /// Create a new image from a container's changes.
    Commit(commands::commit::CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(commands::diff_export::DiffArgs),
    /// Export a container's filesystem as a tar archive.
    Export(commands::diff_export::ExportArgs),
    /// List port mappings or a specific mapping for the container.
    Port(commands::port::PortArgs),
    /// Display the running processes of a container.
    Top(commands::top::TopArgs),
    /// Display a sample of containers' resource usage statistics.
    Stats(commands::stats::StatsArgs),
    /// List containers.
    Ps(commands::ps::PsArgs),
    /// Attach to a running container's output until it stops.
    Attach(commands::logs::AttachArgs),
    /// Fetch the logs of a container.
    Logs(commands::logs::LogsArgs),
    /// Run a command in a running container.
    Exec(commands::exec::ExecArgs),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(commands::volume::VolumeCommand),
    /// Show detailed information about images (JSON).
    Inspect(commands::inspect::InspectArgs),
    /// Show the history of an image.
    History(commands::history::HistoryArgs),
    /// Save images to a tar archive (docker-archive or OCI archive).
    Save(commands::save::SaveArgs),
    /// Load images from a tar archive or OCI layout.
    Load(commands::load::LoadArgs),
    /// Import a root filesystem tarball as an image.
    Import(commands::import::ImportArgs),
    /// Download an image from a registry.
    Pull(commands::pull::PullArgs),
    /// Upload an image to a registry.
    Push(commands::push::PushArgs),
    /// Log in to a registry (credentials saved in docker's config.json format).
    Login(commands::login::LoginArgs),
    /// Log out from a registry.
    Logout(commands::logout::LogoutArgs),
    /// Manage the store (`kiln system check [--repair]`).
    #[command(subcommand)]
    System(commands::system::SystemCommand),
}

const NEEDS_ROOT: &str =
    "kiln needs root (CAP_SYS_ADMIN for mounts and namespaces); rootless builds are not supported yet";

impl Command {
    /// Commands that mount, enter namespaces or write layers with their owners.
    fn needs_root(&self) -> bool {
        matches!(
            self,
            Command::Build(_)
                | Command::Run(_)
                | Command::Create(_)
                | Command::Start(_)
                | Command::Restart(_)
                | Command::Exec(_)
                | Command::Cp(_)
                | Command::Export(_)
                | Command::Commit(_)
                | Command::Import(_)
                | Command::Load(_)
                | Command::Pull(_)
        )
    }
}

/// Whether kiln runs with CAP_SYS_ADMIN (when the capabilities cannot be read, it tries anyway).
fn has_root_privileges() -> bool {
    executor::caps::current_effective().is_none_or(|caps| caps.contains(executor::caps::CAP_SYS_ADMIN))
}

fn main() -> ExitCode {
    // a re-executed sandbox init: must run before anything starts a thread
    if let Some(code) = executor::init::maybe_run_init() {
        std::process::exit(code);
    }
    // a re-executed container monitor or exec helper: single-threaded too
    if let Some(code) = executor::runtime::maybe_run_helper() {
        std::process::exit(code);
    }
    let mut cli = Cli::parse();
    // containers record paths into the store and their monitors run from `/`: a relative
    // --root must not depend on the directory kiln was started in
    if let Ok(root) = std::path::absolute(&cli.global.root) {
        cli.global.root = root;
    }
    init_logging(&cli.global);
    if cli.command.needs_root() && !has_root_privileges() {
        report::error(&anyhow::anyhow!("{NEEDS_ROOT}"), cli.global.debug);
        return ExitCode::FAILURE;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            report::error(
                &anyhow::Error::new(err).context("cannot start the async runtime"),
                cli.global.debug,
            );
            return ExitCode::FAILURE;
        }
    };
    let global = cli.global.clone();
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Build(args) => commands::build::run(&global, *args).await,
            Command::Debug(cmd) => commands::debug::run(&global, cmd).await,
            Command::Version(args) => commands::version::run(args),
            Command::Builder(cmd) => commands::builder::run(&global, cmd),
            Command::Images(args) => commands::images::run(&global, args).await,
            Command::Tag(args) => commands::tag::run(&global, args).await,
            Command::Rmi(args) => commands::rmi::run(&global, args).await,
            Command::Run(args) => commands::run::run(&global, *args).await,
            Command::Create(args) => commands::container::create(&global, *args).await,
            Command::Start(args) => commands::container::start(&global, args),
            Command::Stop(args) => commands::container::stop(&global, args),
            Command::Restart(args) => commands::container::restart(&global, args),
            Command::Kill(args) => commands::container::kill(&global, args),
            Command::Rm(args) => commands::container::rm(&global, args),
            Command::Wait(args) => commands::container::wait(&global, args),
            Command::Pause(args) => commands::container::pause(&global, args),
            Command::Unpause(args) => commands::container::unpause(&global, args),
            Command::Rename(args) => commands::container::rename(&global, args),
            Command::Container(cmd) => commands::container_prune::run(&global, cmd),
            Command::Cp(args) => commands::cp::run(&global, args),
            Command::Commit(args) => commands::commit::run(&global, args),
            Command::Diff(args) => commands::diff_export::diff(&global, args),
            Command::Export(args) => commands::diff_export::export(&global, args),
            Command::Top(args) => commands::top::run(&global, args),
            Command::Port(args) => commands::port::run(&global, args),
            Command::Stats(args) => commands::stats::run(&global, args),
            Command::Ps(args) => commands::ps::run(&global, args),
            Command::Attach(args) => commands::logs::attach(&global, args),
            Command::Logs(args) => commands::logs::run(&global, args),
            Command::Exec(args) => commands::exec::run(&global, args),
            Command::Volume(cmd) => commands::volume::run(&global, cmd),
            Command::Inspect(args) => commands::inspect::run(&global, args).await,
            Command::History(args) => commands::history::run(&global, args).await,
            Command::Save(args) => commands::save::run(&global, args).await,
            Command::Load(args) => commands::load::run(&global, args).await,
            Command::Import(args) => commands::import::run(&global, args).await,
            Command::Pull(args) => commands::pull::run(&global, args).await,
            Command::Push(args) => commands::push::run(&global, args).await,
            Command::Login(args) => commands::login::run(&global, args).await,
            Command::Logout(args) => commands::logout::run(&global, args).await,
            Command::System(cmd) => commands::system::run(&global, cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            report::error(&err, cli.global.debug);
            ExitCode::FAILURE
        }
    }
}

fn init_logging(global: &GlobalOptions) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(global.tracing_filter()));
    // colours only on a terminal, and never with NO_COLOR (https://no-color.org)
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}
