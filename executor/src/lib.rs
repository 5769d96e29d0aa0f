//! Sandbox (namespaces, overlay rootfs, cgroups, networking) and container lifecycle.
//!
//! The executor runs one process in a sandbox described by a [`SandboxSpec`]: a rootfs (a
//! plain directory or an overlay of lower dirs with an optional upper), extra mounts, the
//! process (args, env, cwd, user, tty, capabilities, rlimits), hostname, network mode and
//! cgroup limits. It knows nothing about images or Dockerfiles.
//!
//! ```no_run
//! # async fn demo() -> Result<(), executor::Error> {
//! use executor::{Executor, Rootfs, SandboxSpec, Stdio, OverlayUpper, NetworkMode};
//! let executor = Executor::new("/var/lib/kiln/run")?; // also cleans up after killed kilns
//! let mut spec = SandboxSpec::new(
//!     Rootfs::Overlay {
//!         lowers: vec!["/snapshots/2/fs".into(), "/snapshots/1/fs".into()], // top-most first
//!         upper: Some(OverlayUpper { upper: "/tmp/step/upper".into(), work: "/tmp/step/work".into() }),
//!     },
//!     vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
//! );
//! spec.network = NetworkMode::Default;
//! let (sender, mut output) = tokio::sync::mpsc::channel(64);
//! let sandbox = executor.spawn(spec, Stdio::Stream(sender)).await?;
//! tokio::spawn(async move { while let Some(_chunk) = output.recv().await { /* progress */ } });
//! let status = sandbox.wait().await?; // or wait_or_cancel(cancel_future)
//! # let _ = status; Ok(()) }
//! ```
//!
//! Processes: kiln spawns itself again (`/proc/self/exe`, argv[0] [`init::INIT_ARGV0`]); the
//! binary's `main` must call [`init::maybe_run_init`] before starting any thread.

pub mod caps;
pub mod cgroup;
mod error;
pub mod init;
pub mod mounts;
pub mod network;
pub mod process;
pub mod sandbox;
pub mod seccomp;
pub mod spec;
pub mod state;
mod sys;
pub mod tty;
pub mod user;

pub use error::{Error, Result};
pub use sandbox::{Executor, ExitStatus, Killer, OutputChunk, OutputStream, Sandbox, Stdio, Timings};
pub use spec::{
    Mount, MountKind, NetworkMode, OverlayUpper, ProcessSpec, Resources, Rlimit, RlimitResource, Rootfs,
    SandboxSpec,
};
