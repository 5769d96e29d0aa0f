//! Sandbox (namespaces, overlay rootfs, cgroups, networking) and container lifecycle.
//!
//! The executor runs one process in a sandbox described by a [`SandboxSpec`]: a rootfs (a
//! plain directory or an overlay of lower dirs with an optional upper), extra mounts, the
//! process (args, env, cwd, user, tty, capabilities, rlimits), hostname, network mode and
//! cgroup limits. It knows nothing about images or Dockerfiles.
//!
//! # Running a build step (the API the solver's op runner uses)
//!
//! ```no_run
//! # async fn demo(cancel: impl std::future::Future<Output = ()>) -> Result<(), executor::Error> {
//! use executor::{Executor, Mount, MountKind, NetworkMode, OverlayUpper, Rootfs, SandboxSpec, Stdio};
//!
//! // one per process; also cleans up after kiln processes that were SIGKILLed
//! let executor = Executor::new("/var/lib/kiln/run")?;
//! let mut spec = SandboxSpec::new(
//!     Rootfs::Overlay {
//!         // snapshot dirs, top-most first (overlayfs order); any number of them
//!         lowers: vec!["/snapshots/2/fs".into(), "/snapshots/1/fs".into()],
//!         // fresh, empty, on one filesystem; afterwards `upper` holds exactly what the step
//!         // wrote (mount-point stubs and /etc/hosts, /etc/resolv.conf … leave nothing)
//!         upper: Some(OverlayUpper { upper: "/tmp/step/upper".into(), work: "/tmp/step/work".into() }),
//!     },
//!     vec!["/bin/sh".into(), "-c".into(), "apt-get update".into()],
//! );
//! spec.process.env = vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()];
//! spec.process.user = "www-data".into(); // resolved in the rootfs's /etc/passwd and /etc/group
//! spec.process.cwd = "/src/app".into(); // created when missing
//! spec.network = NetworkMode::Default; // or None / Host
//! spec.mounts = vec![
//!     // RUN --mount=type=bind (read-only) and type=cache (read-write)
//!     Mount { target: "/ctx".into(), kind: MountKind::Bind { source: "/snapshots/3/fs".into() }, readonly: true },
//!     Mount { target: "/root/.cache".into(), kind: MountKind::Bind { source: "/cache/go".into() }, readonly: false },
//!     Mount { target: "/tmp".into(), kind: MountKind::Tmpfs { size: None, mode: 0o1777 }, readonly: false },
//!     // RUN --mount=type=secret: a file bind
//!     Mount { target: "/run/secrets/token".into(), kind: MountKind::Bind { source: "/tmp/s".into() }, readonly: true },
//! ];
//! let (sender, mut output) = tokio::sync::mpsc::channel(64);
//! // Err(Error::Setup { message, exit_code }) when setup fails (127: command not found)
//! let sandbox = executor.spawn(spec, Stdio::Stream(sender)).await?;
//! tokio::spawn(async move {
//!     while let Some(_chunk) = output.recv().await { /* stream, data → progress */ }
//! });
//! // on cancellation: the whole tree is killed, mounts/cgroups/veth/lease removed, code 137
//! let status = sandbox.wait_or_cancel(cancel).await?;
//! if status.oom_killed { /* "the step was OOM-killed" */ }
//! let _exit_code = status.code; // 128+N when killed by signal N
//! # Ok(()) }
//! ```
//!
//! Dropping a [`Sandbox`] kills and cleans up too. [`Sandbox::killer`] gives a cloneable handle
//! to signal PID 1 from elsewhere. Tests that use [`NetworkMode::Default`] should attach to a
//! bridge of their own ([`Executor::with_bridge`]) and [`network::Bridge::remove`] it afterwards.
//!
//! Processes: kiln spawns itself again (`/proc/self/exe`, argv[0] [`init::INIT_ARGV0`]); the
//! binary's `main` must call [`init::maybe_run_init`] before starting any thread (or use
//! [`Executor::with_init_program`] with a binary that does, like `kiln-sandbox-init`).
// Libraries never print: they return values, typed errors and events for the CLI to render.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod caps;
pub mod cgroup;
mod error;
mod execute;
mod hostcmd;
pub mod init;
pub mod mounts;
pub mod network;
pub mod overlay;
pub mod ports;
pub mod process;
pub mod runtime;
pub mod sandbox;
pub mod seccomp;
pub mod spec;
pub mod state;
mod sys;
pub mod sysctl;
pub mod tty;
pub mod user;

pub use error::{Error, Result};
pub use execute::{BoxFuture, ProcessExecutor};
pub use sandbox::{Executor, ExitStatus, Killer, OutputChunk, OutputStream, Sandbox, Stdio, Timings};
pub use spec::{
    DnsConfig, Mount, MountKind, NetworkMode, OverlayUpper, ProcessSpec, Resources, Rlimit, RlimitResource,
    Rootfs, SandboxSpec,
};
