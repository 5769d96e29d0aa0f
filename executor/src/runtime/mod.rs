//! Containers that outlive the command that started them, and named volumes.
//!
//! Everything lives under `<kiln root>/runtime-v1/` (the version in the name: a format change
//! gets a new directory instead of compatibility code):
//!
//! ```text
//! runtime-v1/containers/<id>/config.json   what to run (written once by `create`)
//!                           /state.json    status, pids, exit code (monitor and commands)
//!                           /lock          flock for read-modify-write of state.json
//!                           /<id>-json.log docker's json-file log
//!                           /upper, /work  the writable layer (kept across stop/start)
//! runtime-v1/names/<name>                  the id of the container called <name> (O_EXCL)
//! runtime-v1/volumes/<name>/meta.json      a named volume's record, its data in _data/
//! ```
//!
//! No daemon and no global lock: each started container has a monitor ([`monitor`]), the same
//! binary re-executed and detached (podman's conmon is the model), that owns the container's
//! stdio, writes its log, reaps it, records its exit and applies the restart policy. Every
//! `kiln` command reads the same files; a state whose monitor is gone (SIGKILL, crash) is
//! reported as exited with an unknown code.

pub mod changes;
pub mod copy_up;
pub mod exec;
pub mod health;
pub mod logs;
pub mod monitor;
pub mod pause;
pub mod processes;
pub mod record;
mod rename;
pub mod rootfs;
pub mod stats;
pub mod stop;
pub mod time;
pub mod volumes;

pub use record::{
    Container, ContainerConfig, ContainerState, RestartPolicy, RuntimeError, Status, Store, VolumeMount,
};
pub use volumes::{Volume, VolumeStore};

/// Call first thing in `main`, next to [`crate::init::maybe_run_init`]: when this process is a
/// re-executed container monitor or exec helper, runs it and returns the exit code.
pub fn maybe_run_helper() -> Option<i32> {
    let argv0 = std::env::args_os().next()?;
    if argv0 == monitor::MONITOR_ARGV0 {
        return Some(monitor::main());
    }
    if argv0 == exec::EXEC_ARGV0 {
        return Some(exec::main());
    }
    None
}
