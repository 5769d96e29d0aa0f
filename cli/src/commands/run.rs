//! `kiln run [OPTIONS] IMAGE [COMMAND] [ARG...]`: run a command in a new container made from an
//! image of the store (pulled when missing), with docker's ENTRYPOINT/CMD rules and the image's
//! Env, WorkingDir and User. Exits with the container's exit code.
//!
//! Containers are not kept yet: the writable layer is always removed afterwards (`--rm` is
//! accepted for compatibility; `-d` and `kiln ps` are a later issue).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use executor::{Executor, Mount, MountKind, NetworkMode, Resources, Rootfs, SandboxSpec, Stdio};

mod io;
mod layer;
mod mount_flag;

use super::images::{normalise, open_store, resolve};
use crate::GlobalOptions;

/// Arguments of `kiln run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Remove the container when it exits (always the case for now).
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
    /// Network: `default` (bridge with NAT), `none` or `host`.
    #[arg(long, default_value = "default", value_name = "MODE")]
    pub network: String,
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
    /// Bind mount a host directory (`/host:/ctr[:ro]`); `ro` is read-only in every submount.
    #[arg(short, long = "volume", value_name = "HOST:CTR[:ro]")]
    pub volumes: Vec<String>,
    /// Attach a mount: `type=bind,source=/host,target=/ctr[,readonly]` or
    /// `type=tmpfs,target=/ctr[,tmpfs-size=64m,tmpfs-mode=1777]`.
    #[arg(long = "mount", value_name = "type=bind|tmpfs,...")]
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

/// Parses docker-style sizes: `1024`, `512k`, `64m`, `1g` (binary units, optional `b`).
pub fn parse_bytes(text: &str) -> anyhow::Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let trimmed = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit) = match trimmed.char_indices().find(|(_, c)| !c.is_ascii_digit() && *c != '.') {
        Some((index, _)) => trimmed.split_at(index),
        None => (trimmed, ""),
    };
    let multiplier: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => bail!("invalid size {text:?} (expected a number with an optional unit b, k, m, g)"),
    };
    let value: f64 = digits.parse().with_context(|| format!("invalid size {text:?}"))?;
    Ok((value * multiplier as f64) as u64)
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

fn parse_volume(spec: &str) -> anyhow::Result<Mount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, target, mode) = match parts.as_slice() {
        [host, target] => (*host, *target, "rw"),
        [host, target, mode] => (*host, *target, *mode),
        _ => bail!("invalid volume {spec:?} (expected /host/dir:/container/dir[:ro])"),
    };
    if !host.starts_with('/') {
        bail!("invalid volume {spec:?}: named volumes are not supported yet, use an absolute host path");
    }
    if !target.starts_with('/') {
        bail!("invalid volume {spec:?}: the container path must be absolute");
    }
    let readonly = match mode {
        "ro" => true,
        "rw" | "" => false,
        other => bail!("invalid volume mode {other:?} in {spec:?} (expected ro or rw)"),
    };
    if !Path::new(host).exists() {
        std::fs::create_dir_all(host).with_context(|| format!("cannot create volume directory {host}"))?;
    }
    Ok(Mount { target: target.into(), kind: MountKind::Bind { source: host.into() }, readonly })
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
    let client = super::transfer_progress::client(global)?;
    let renderer = super::transfer_progress::Renderer::new(super::transfer_progress::Direction::Pull, false);
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

pub async fn run(global: &GlobalOptions, args: RunArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let store = open_store(global)?;
    let record = find_or_pull(global, &store, &args.image).await?;
    let image = store.content().read_image(&record.target)?;
    let layers = image.layers()?;
    let lowers = store.snapshots().ensure_unpacked(&layers)?;
    let image_ready = started.elapsed();
    if lowers.is_empty() {
        bail!("image {} has no layers: nothing to run", args.image);
    }
    let config = image.config.config().clone().unwrap_or_default();
    let argv = command_line(
        config.entrypoint().as_deref().unwrap_or_default(),
        config.cmd().as_deref().unwrap_or_default(),
        args.entrypoint.as_deref(),
        &args.args,
    );
    if argv.is_empty() {
        bail!("no command specified: the image has no ENTRYPOINT or CMD and none was given");
    }
    let mut env: Vec<String> = config.env().clone().unwrap_or_default();
    for file in &args.env_file {
        env.extend(parse_env_file(file)?);
    }
    env.extend(args.env.iter().filter_map(|e| expand_env_entry(e)));

    let layer_dir = layer::ContainerLayer::create(&global.root.join("containers"))?;
    let upper = layer_dir.overlay_upper();

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
    spec.network = args.network.parse::<NetworkMode>()?;
    spec.readonly_rootfs = args.read_only;
    spec.resources = Resources {
        memory: args.memory.as_deref().map(parse_bytes).transpose()?,
        cpu_millis: args.cpus.map(|cpus| (cpus * 1000.0).round() as u64).filter(|m| *m > 0),
        pids: args.pids_limit.filter(|p| *p > 0).map(|p| p as u64),
    };
    for volume in &args.volumes {
        spec.mounts.push(parse_volume(volume)?);
    }
    for tmpfs in &args.tmpfs {
        spec.mounts.push(parse_tmpfs(tmpfs)?);
    }
    for mount in &args.mounts {
        spec.mounts.push(mount_flag::parse_mount(mount)?);
    }
    spec.allow_host_proc_sys = args.allow_host_proc_sys;

    let executor = Executor::new(global.root.join("run"))?;
    tracing::debug!(
        image_us = image_ready.as_micros() as u64,
        prepare_us = started.elapsed().as_micros() as u64,
        "container prepared"
    );
    let stdin = std::io::stdin();
    let stdio = if args.tty {
        Stdio::Tty { size: executor::tty::window_size(&stdin) }
    } else {
        Stdio::Inherit { stdin: args.interactive }
    };
    let signals = io::Signals::install()?;
    let sandbox = match executor.spawn(spec, stdio).await {
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
    }

    #[test]
    fn volumes_and_tmpfs() {
        let m = parse_volume("/tmp:/data:ro").expect("volume");
        assert_eq!(m.target, PathBuf::from("/data"));
        assert!(m.readonly);
        assert!(parse_volume("named:/data").is_err());
        let t = parse_tmpfs("/scratch:size=1m,mode=755").expect("tmpfs");
        assert_eq!(t.kind, MountKind::Tmpfs { size: Some(1 << 20), mode: 0o755 });
        assert!(parse_tmpfs("/x:bogus=1").is_err());
    }
}
