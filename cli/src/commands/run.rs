//! `kiln run [OPTIONS] IMAGE [COMMAND] [ARG...]`: run a command in a new container made from an
//! image of the store (pulled when missing), with docker's ENTRYPOINT/CMD rules and the image's
//! Env, WorkingDir and User. Exits with the container's exit code.
//!
//! In the foreground, the container is not kept: its writable layer (and the anonymous volumes
//! it made) are removed afterwards, as with `--rm`. With `-d` (and `kiln create`), the
//! container is recorded in the runtime store and runs under its monitor, outliving this
//! command (see `executor::runtime`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use executor::runtime::{ContainerConfig, RestartPolicy};
use executor::{
    Executor, Mount, MountKind, NetworkMode, OverlayUpper, Resources, Rootfs, SandboxSpec, Stdio,
};

pub(crate) mod io;
mod layer;
mod mount_flag;
pub(crate) mod volumes;

use super::images::{normalise, open_store, resolve};
use crate::GlobalOptions;

/// Arguments of `kiln run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run in the background (under its own monitor) and print the container ID.
    #[arg(short, long)]
    pub detach: bool,
    /// Assign a name to the container.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Set metadata on the container (`key=value` or `key`).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Restart policy: `no`, `on-failure[:max-retries]`, `always`, `unless-stopped`.
    #[arg(long, default_value = "no", value_name = "POLICY")]
    pub restart: String,
    /// Signal to stop the container (default: the image's STOPSIGNAL, else SIGTERM).
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds to wait for the stop signal to end the container before SIGKILL (default 10).
    #[arg(long, value_name = "SECONDS")]
    pub stop_timeout: Option<u64>,
    /// Command to run to check health (run by `/bin/sh -c` in the container).
    #[arg(long, value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    /// Time between running the check (`30s`, `1m`).
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run.
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long, value_name = "N")]
    pub health_retries: Option<u32>,
    /// Start period during which failures do not count (until a first success).
    #[arg(long, value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Log options of the json-file driver: `max-size=10m`, `max-file=3`.
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
    /// Remove the container (and its anonymous volumes) when it exits; a foreground container
    /// is always removed.
    #[arg(long)]
    pub rm: bool,
    /// Keep stdin open (connect the caller's stdin to the container).
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (`K=V`, or `K` to copy the caller's value).
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Read environment variables from a file (one `K=V` per line, `#` comments).
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// User: `name`, `uid`, `name:group`, `uid:gid`.
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Overwrite the image's ENTRYPOINT (an empty string clears it).
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Container host name.
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Network: `default` or `bridge` (the bridge with NAT), `none` or `host`.
    #[arg(long, default_value = "default", value_name = "MODE")]
    pub network: String,
    /// Publish a container's port to the host: `[IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]`
    /// (ranges, and a random free host port when none is given).
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,
    /// Publish every exposed port (the image's EXPOSE and `--expose`) to random host ports.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Expose a port or a range of ports (`80`, `53/udp`, `8000-8010`), for `-P`.
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// Add a line to /etc/hosts: `NAME:IP` (`IP` may be `host-gateway`: the host, as the
    /// container reaches it).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// Set a namespaced kernel parameter: `net.*` (not with --network host), `kernel.shm*`,
    /// `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`.
    #[arg(long = "sysctl", value_name = "NAME=VALUE")]
    pub sysctl: Vec<String>,
    /// Name server for /etc/resolv.conf (replaces the host's).
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// Search domain for /etc/resolv.conf (`.` for none).
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// Resolver option for /etc/resolv.conf (`ndots:2`).
    #[arg(long = "dns-option", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// Memory limit (`512m`, `1g`, bytes).
    #[arg(short, long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Number of CPUs (`1.5`).
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Maximum number of processes (`-1` or `0`: unlimited).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Add a Linux capability.
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a Linux capability.
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Mount a tmpfs (`/path[:size=64m,mode=1777]`).
    #[arg(long, value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Mount a volume: `NAME:/ctr[:ro|nocopy]` (a named volume, created when missing),
    /// `/host:/ctr[:ro]` (a bind; `ro` is read-only in every submount) or `/ctr` (anonymous).
    #[arg(short, long = "volume", value_name = "SOURCE:CTR[:ro]")]
    pub volumes: Vec<String>,
    /// Attach a mount: `type=bind,source=/host,target=/ctr[,readonly]`,
    /// `type=volume[,source=NAME],target=/ctr[,readonly][,volume-nocopy]` or
    /// `type=tmpfs,target=/ctr[,tmpfs-size=64m,tmpfs-mode=1777]`.
    #[arg(long = "mount", value_name = "type=bind|volume|tmpfs,...")]
    pub mounts: Vec<String>,
    /// Allow binds of the host's /proc or /sys (or of paths below them): they expose the host
    /// kernel's interfaces to the container and are refused without this flag.
    #[arg(long)]
    pub allow_host_proc_sys: bool,
    /// The image.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Command and arguments (replace the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub args: Vec<String>,
}

/// docker's `RAMInBytes`: `1024`, `512k`, `10MB`, `10GiB`, `2g` (binary units, case-insensitive).
pub fn parse_bytes(text: &str) -> anyhow::Result<u64> {
    let invalid = || anyhow::anyhow!("invalid size {text:?} (examples: 512MB, 10GB)");
    let lower = text.trim().to_ascii_lowercase();
    let number_end = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
    let number: f64 = lower[..number_end].parse().map_err(|_| invalid())?;
    let unit = lower[number_end..].trim();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(invalid()),
    };
    Ok((number * factor as f64) as u64)
}

/// docker's ENTRYPOINT/CMD rules: user args replace CMD; `--entrypoint` replaces the
/// entrypoint and resets CMD; an empty `--entrypoint` clears it.
pub fn command_line(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint_flag: Option<&str>,
    args: &[String],
) -> Vec<String> {
    let entrypoint: Vec<String> = match entrypoint_flag {
        Some("") => Vec::new(),
        Some(flag) => vec![flag.to_owned()],
        None => image_entrypoint.to_vec(),
    };
    let cmd: Vec<String> = if !args.is_empty() {
        args.to_vec()
    } else if entrypoint_flag.is_some() {
        Vec::new()
    } else {
        image_cmd.to_vec()
    };
    entrypoint.into_iter().chain(cmd).collect()
}

fn parse_env_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read env file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(expand_env_entry)
        .collect())
}

/// `K=V` stays; a bare `K` takes the caller's value (dropped when unset), like docker.
fn expand_env_entry(entry: &str) -> Option<String> {
    if entry.contains('=') {
        Some(entry.to_owned())
    } else {
        std::env::var(entry).ok().map(|value| format!("{entry}={value}"))
    }
}

fn parse_tmpfs(spec: &str) -> anyhow::Result<Mount> {
    let (path, options) = spec.split_once(':').unwrap_or((spec, ""));
    if !path.starts_with('/') {
        bail!("invalid tmpfs {spec:?}: the path must be absolute");
    }
    let (mut size, mut mode, mut readonly) = (None, 0o1777, false);
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("size", value)) => size = Some(parse_bytes(value)?),
            Some(("mode", value)) => {
                mode =
                    u32::from_str_radix(value, 8).with_context(|| format!("invalid tmpfs mode {value:?}"))?
            }
            None if option == "ro" => readonly = true,
            None if matches!(option, "rw" | "noexec" | "exec" | "nosuid" | "nodev") => {}
            _ => bail!("unsupported tmpfs option {option:?} in {spec:?}"),
        }
    }
    Ok(Mount { target: path.into(), kind: MountKind::Tmpfs { size, mode }, readonly })
}

/// Removes the writable layers of containers whose kiln died (see [`layer`]).
pub(crate) fn clean_abandoned_containers(containers: &Path) {
    layer::clean_abandoned(containers);
}

async fn find_or_pull(
    global: &GlobalOptions,
    store: &cache::Store,
    image: &str,
) -> anyhow::Result<cache::ImageRecord> {
    if let Ok((records, _)) = resolve(store, image)
        && let Some(record) = records.into_iter().next()
    {
        return Ok(record);
    }
    let reference = normalise(image)?;
    eprintln!("Unable to find image '{}' locally", reference.familiar());
    let client = super::client(global)?;
    let renderer =
        crate::progress::transfer::Renderer::new(crate::progress::transfer::Direction::Pull, false);
    let pulled =
        registry::pull(&client, store, &reference, &registry::PullOptions::default(), &renderer.progress())
            .await;
    renderer.finish();
    let pulled = pulled?;
    store
        .images()
        .get(&pulled.name)?
        .with_context(|| format!("image {} vanished right after its pull", pulled.name))
}

/// Everything a container needs, resolved from the image and the flags.
struct Prepared {
    healthcheck: Option<executor::runtime::health::Healthcheck>,
    /// `-p`/`-P` (host ports chosen when the container starts).
    ports: Vec<executor::ports::PortBinding>,
    spec: SandboxSpec,
    image_id: String,
    image_manifest: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    stop_signal: String,
    mounts: volumes::Resolved,
}

async fn prepare(
    global: &GlobalOptions,
    args: &RunArgs,
    runtime: &executor::runtime::Store,
    upper: OverlayUpper,
) -> anyhow::Result<Prepared> {
    let store = open_store(global)?;
    let record = find_or_pull(global, &store, &args.image).await?;
    let image = store.content().read_image(&record.target)?;
    let layers = image.layers()?;
    let lowers = store.snapshots().ensure_unpacked(&layers)?;
    if lowers.is_empty() {
        bail!("image {} has no layers: nothing to run", args.image);
    }
    let config = image.config.config().clone().unwrap_or_default();
    let entrypoint: Vec<String> = match args.entrypoint.as_deref() {
        Some("") => Vec::new(),
        Some(flag) => vec![flag.to_owned()],
        None => config.entrypoint().clone().unwrap_or_default(),
    };
    let argv = command_line(
        config.entrypoint().as_deref().unwrap_or_default(),
        config.cmd().as_deref().unwrap_or_default(),
        args.entrypoint.as_deref(),
        &args.args,
    );
    if argv.is_empty() {
        bail!("no command specified: the image has no ENTRYPOINT or CMD and none was given");
    }
    let cmd = argv[entrypoint.len().min(argv.len())..].to_vec();
    let mut env: Vec<String> = config.env().clone().unwrap_or_default();
    for file in &args.env_file {
        env.extend(parse_env_file(file)?);
    }
    env.extend(args.env.iter().filter_map(|e| expand_env_entry(e)));

    let mut spec = SandboxSpec::new(Rootfs::Overlay { lowers, upper: Some(upper) }, argv);
    spec.process.env = env;
    spec.process.cwd = args
        .workdir
        .clone()
        .or_else(|| config.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_owned())
        .into();
    spec.process.user = args.user.clone().or_else(|| config.user().clone()).unwrap_or_default();
    spec.process.tty = args.tty;
    spec.process.cap_add = args.cap_add.clone();
    spec.process.cap_drop = args.cap_drop.clone();
    spec.process.init = args.init;
    spec.hostname = args.hostname.clone();
    spec.network = NetworkMode::parse_run(&args.network)?;
    for host in &args.add_host {
        let host = super::build_flags::parse_add_host(host)?;
        let ip = if host.ip == solver::runner::exec::HOST_GATEWAY {
            match spec.network {
                NetworkMode::Host => "127.0.0.1".to_owned(),
                _ => executor::network::Bridge::default_bridge().gateway.to_string(),
            }
        } else {
            host.ip
        };
        spec.extra_hosts.push((host.name, ip));
    }
    for setting in &args.sysctl {
        let Some((name, value)) = setting.split_once('=') else {
            bail!("invalid argument {setting:?} for \"--sysctl\" flag: expected NAME=VALUE");
        };
        if let Some(problem) = executor::sysctl::check(name, spec.network) {
            bail!("{problem}");
        }
        spec.sysctls.insert(name.to_owned(), value.to_owned());
    }
    for server in &args.dns {
        if server.parse::<std::net::IpAddr>().is_err() {
            bail!("{server} is not an ip address (--dns)");
        }
    }
    spec.dns = executor::DnsConfig {
        servers: args.dns.clone(),
        search: args.dns_search.clone(),
        options: args.dns_option.clone(),
    };
    let image_exposed = config.exposed_ports().clone().unwrap_or_default();
    let mut ports = super::port::requested(&args.publish, args.publish_all, &args.expose, &image_exposed)?;
    if !ports.is_empty() && spec.network != NetworkMode::Default {
        // docker: "Published ports are discarded when using host network mode"
        eprintln!("WARNING: Published ports are discarded when using {} network mode", args.network);
        ports.clear();
    }
    spec.readonly_rootfs = args.read_only;
    spec.resources = Resources {
        memory: args.memory.as_deref().map(parse_bytes).transpose()?,
        cpu_millis: args.cpus.map(|cpus| (cpus * 1000.0).round() as u64).filter(|m| *m > 0),
        pids: args.pids_limit.filter(|p| *p > 0).map(|p| p as u64),
        accounting: false,
    };
    let mut requests = Vec::new();
    for volume in &args.volumes {
        requests.push(volumes::parse_volume(volume)?);
    }
    for tmpfs in &args.tmpfs {
        requests.push(volumes::MountRequest::Mount(parse_tmpfs(tmpfs)?));
    }
    for mount in &args.mounts {
        requests.push(mount_flag::parse_mount(mount)?);
    }
    let image_volumes: Vec<String> = config.volumes().clone().unwrap_or_default();
    let mounts = volumes::resolve(runtime, requests, &image_volumes)?;
    spec.mounts = mounts.mounts.clone();
    spec.allow_host_proc_sys = args.allow_host_proc_sys;
    let stop_signal = args
        .stop_signal
        .clone()
        .or_else(|| config.stop_signal().clone())
        .unwrap_or_else(|| "SIGTERM".to_owned());
    executor::runtime::stop::parse_signal(&stop_signal)?;
    let image_check = image.docker.healthcheck.as_ref().map(|h| executor::runtime::health::Healthcheck {
        test: h.test.clone(),
        interval: h.interval,
        timeout: h.timeout,
        start_period: h.start_period,
        retries: h.retries,
    });
    let healthcheck = healthcheck(args, image_check)?;
    Ok(Prepared {
        healthcheck,
        spec,
        image_id: image.id().to_string(),
        image_manifest: record.target.digest().to_string(),
        entrypoint,
        cmd,
        stop_signal,
        mounts,
        ports,
    })
}

/// The image's HEALTHCHECK with the `--health-*` flags applied (docker's merge), or none.
fn healthcheck(
    args: &RunArgs,
    image: Option<executor::runtime::health::Healthcheck>,
) -> anyhow::Result<Option<executor::runtime::health::Healthcheck>> {
    let flags_given = args.health_cmd.is_some()
        || args.health_interval.is_some()
        || args.health_timeout.is_some()
        || args.health_retries.is_some()
        || args.health_start_period.is_some();
    if args.no_healthcheck {
        if flags_given {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(None);
    }
    let mut check = image.unwrap_or_default();
    if let Some(command) = &args.health_cmd {
        check.test = vec!["CMD-SHELL".into(), command.clone()];
    }
    let nanos = |text: &Option<String>, name: &str| -> anyhow::Result<Option<i64>> {
        text.as_deref()
            .map(|t| {
                executor::runtime::health::parse_duration(t)
                    .map(|d| d.as_nanos() as i64)
                    .with_context(|| format!("invalid --{name} {t:?} (a duration: 30s, 1m30s, 500ms)"))
            })
            .transpose()
    };
    if let Some(value) = nanos(&args.health_interval, "health-interval")? {
        check.interval = value;
    }
    if let Some(value) = nanos(&args.health_timeout, "health-timeout")? {
        check.timeout = value;
    }
    if let Some(value) = nanos(&args.health_start_period, "health-start-period")? {
        check.start_period = value;
    }
    if let Some(retries) = args.health_retries {
        check.retries = i64::from(retries);
    }
    Ok(check.argv().is_some().then_some(check))
}

/// `--log-opt max-size=10m --log-opt max-file=3` (docker's json-file options).
fn parse_log_opts(options: &[String]) -> anyhow::Result<Option<executor::runtime::logs::Rotation>> {
    let (mut max_size, mut max_files) = (None, None);
    for option in options {
        match option.split_once('=') {
            Some(("max-size", value)) => max_size = Some(parse_bytes(value)?),
            Some(("max-file", value)) => {
                let count: u32 = value.parse().with_context(|| format!("invalid max-file {value:?}"))?;
                if count == 0 {
                    bail!("invalid max-file {value:?}: it must be at least 1");
                }
                max_files = Some(count);
            }
            _ => bail!("unknown log opt {option:?} for the json-file log driver (max-size, max-file)"),
        }
    }
    match (max_size, max_files) {
        (None, Some(_)) => bail!("max-file cannot be used without max-size"),
        (None, None) => Ok(None),
        (Some(max_size), files) => {
            Ok(Some(executor::runtime::logs::Rotation { max_size, max_files: files.unwrap_or(1) }))
        }
    }
}

fn parse_labels(labels: &[String]) -> std::collections::BTreeMap<String, String> {
    labels
        .iter()
        .map(|label| match label.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (label.clone(), String::new()),
        })
        .collect()
}

/// `kiln create` and `kiln run -d`: records the container (not started). Returns it.
pub(crate) async fn create(
    global: &GlobalOptions,
    args: &RunArgs,
) -> anyhow::Result<executor::runtime::Container> {
    if args.interactive && args.detach {
        bail!("-i is not supported with -d yet: the container's stdin is /dev/null");
    }
    let restart: RestartPolicy = args.restart.parse()?;
    if args.rm && restart != RestartPolicy::No {
        bail!("conflicting options: cannot specify both --restart and --rm");
    }
    let runtime = executor::runtime::Store::open(&global.root)?;
    let (id, dir) = runtime.new_container_dir()?;
    let remove_dir = scopeguard(dir.clone());
    let upper = OverlayUpper { upper: dir.join("upper"), work: dir.join("work") };
    let mut prepared = prepare(global, args, &runtime, upper).await?;
    // pause, top and stats read the container's cgroups
    prepared.spec.resources.accounting = true;
    let anonymous: Vec<String> = prepared.mounts.anonymous().map(str::to_owned).collect();
    let config = ContainerConfig {
        version: 0,
        id,
        name: args.name.clone().unwrap_or_default(),
        created: executor::runtime::record::now_nanos(),
        image: args.image.clone(),
        image_id: prepared.image_id,
        image_manifest: prepared.image_manifest,
        spec: prepared.spec,
        entrypoint: prepared.entrypoint,
        cmd: prepared.cmd,
        labels: parse_labels(&args.labels),
        stop_signal: prepared.stop_signal,
        stop_timeout: args.stop_timeout.unwrap_or(10),
        restart,
        auto_remove: args.rm,
        mounts: prepared.mounts.records,
        network: args.network.clone(),
        log_rotation: parse_log_opts(&args.log_opts)?,
        healthcheck: prepared.healthcheck,
        ports: prepared.ports,
    };
    let created = runtime.create(dir, config);
    if created.is_err() {
        let volumes = runtime.volumes();
        for name in &anonymous {
            let _ = volumes.remove(&runtime, name);
        }
    }
    let container = created?;
    remove_dir.disarm();
    Ok(container)
}

/// Removes a container directory unless disarmed (a create that failed half-way).
struct DirGuard(Option<PathBuf>);

fn scopeguard(dir: PathBuf) -> DirGuard {
    DirGuard(Some(dir))
}

impl DirGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub async fn run(global: &GlobalOptions, args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.detach {
        let mut container = create(global, &args).await?;
        let runtime = executor::runtime::Store::open(&global.root)?;
        let started =
            executor::runtime::monitor::start(&runtime, &mut container, Path::new("/proc/self/exe"));
        match started {
            Ok(()) => {
                println!("{}", container.id());
                return Ok(ExitCode::SUCCESS);
            }
            Err(executor::runtime::RuntimeError::StartFailed { message, exit_code, .. }) => {
                eprintln!("kiln: error: {message}");
                return Ok(ExitCode::from(exit_code.clamp(0, 255) as u8));
            }
            Err(err) => return Err(err.into()),
        }
    }
    let started = std::time::Instant::now();
    let runtime = executor::runtime::Store::open(&global.root)?;
    let layer_dir = layer::ContainerLayer::create(&global.root.join("containers"))?;
    let prepared = prepare(global, &args, &runtime, layer_dir.overlay_upper()).await;
    let prepared = prepared?;
    let anonymous: Vec<String> = prepared.mounts.anonymous().map(str::to_owned).collect();
    let _remove_volumes = AnonymousVolumes { runtime: runtime.clone(), names: anonymous };
    let spec = prepared.spec;
    let mut ports = prepared.ports;

    let executor = Executor::new(global.root.join("run"))?;
    tracing::debug!(prepare_us = started.elapsed().as_micros() as u64, "container prepared");
    let stdin = std::io::stdin();
    let stdio = if args.tty {
        Stdio::Tty { size: executor::tty::window_size(&stdin) }
    } else {
        Stdio::Inherit { stdin: args.interactive }
    };
    let signals = io::Signals::install()?;
    let spawned = executor.spawn(spec, stdio).await;
    let spawned = spawned.and_then(|mut sandbox| sandbox.publish(&mut ports).map(|()| sandbox));
    let sandbox = match spawned {
        Ok(sandbox) => sandbox,
        Err(executor::Error::Setup { message, exit_code }) => {
            eprintln!("kiln: error: {message}");
            return Ok(ExitCode::from(exit_code.clamp(0, 255) as u8));
        }
        Err(err @ executor::Error::HostProcSysBind { .. }) => {
            bail!("{err} (pass --allow-host-proc-sys to allow it)");
        }
        Err(err) => return Err(err.into()),
    };
    let status = io::drive(sandbox, signals, args.tty, args.interactive).await?;
    drop(layer_dir);
    if status.oom_killed {
        eprintln!("kiln: the container ran out of memory and was OOM-killed");
    }
    Ok(ExitCode::from(status.code.clamp(0, 255) as u8))
}

/// The anonymous volumes of a foreground container, removed with it.
struct AnonymousVolumes {
    runtime: executor::runtime::Store,
    names: Vec<String>,
}

impl Drop for AnonymousVolumes {
    fn drop(&mut self) {
        let volumes = self.runtime.volumes();
        for name in &self.names {
            if let Err(err) = volumes.remove(&self.runtime, name) {
                tracing::warn!(volume = %name, %err, "cannot remove an anonymous volume");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn entrypoint_and_cmd_rules() {
        let ep = strings(&["/entry", "-x"]);
        let cmd = strings(&["default"]);
        assert_eq!(command_line(&ep, &cmd, None, &[]), strings(&["/entry", "-x", "default"]));
        assert_eq!(command_line(&ep, &cmd, None, &strings(&["mine"])), strings(&["/entry", "-x", "mine"]));
        assert_eq!(command_line(&ep, &cmd, Some("/other"), &[]), strings(&["/other"]));
        assert_eq!(command_line(&ep, &cmd, Some("/other"), &strings(&["a"])), strings(&["/other", "a"]));
        assert_eq!(command_line(&ep, &cmd, Some(""), &[]), Vec::<String>::new());
        assert_eq!(command_line(&[], &cmd, None, &[]), strings(&["default"]));
        // shell-form ENTRYPOINT: sh -c ignores what CMD appends
        let shell = strings(&["/bin/sh", "-c", "echo hi"]);
        assert_eq!(command_line(&shell, &cmd, None, &[]), strings(&["/bin/sh", "-c", "echo hi", "default"]));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1024").expect("plain"), 1024);
        assert_eq!(parse_bytes("64m").expect("m"), 64 << 20);
        assert_eq!(parse_bytes("1G").expect("g"), 1 << 30);
        assert_eq!(parse_bytes("512kb").expect("kb"), 512 << 10);
        assert!(parse_bytes("12x").is_err());
        assert_eq!(parse_bytes("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("2g").unwrap(), 2 << 30);
        for bad in ["", "MB", "10 parsecs", "-1"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tmpfs() {
        let t = parse_tmpfs("/scratch:size=1m,mode=755").expect("tmpfs");
        assert_eq!(t.kind, MountKind::Tmpfs { size: Some(1 << 20), mode: 0o755 });
        assert!(parse_tmpfs("/x:bogus=1").is_err());
    }
}
