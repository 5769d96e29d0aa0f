//! Errors of the executor.

use std::path::PathBuf;

/// Everything that can go wrong while preparing, running or cleaning up a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("unknown capability `{0}`")]
    UnknownCapability(String),
    #[error(
        "refusing to bind mount {host_path} on {target}: it exposes the host's /proc or /sys, \
         which needs an explicit opt-in"
    )]
    HostProcSysBind { host_path: PathBuf, target: PathBuf },
    #[error("no command given to run")]
    EmptyCommand,
    #[error("cannot compile the seccomp profile")]
    SeccompCompile(#[source] seccompiler::BackendError),
    #[error("cannot install the seccomp profile")]
    Seccomp(#[source] seccompiler::Error),
    #[error("docker's seccomp profile is not available on {0}")]
    SeccompUnsupportedArch(&'static str),
    #[error("{what}: {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot start the sandbox init process {program}")]
    SpawnInit {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox setup failed: {message}")]
    Setup { message: String, exit_code: i32 },
    #[error("sandbox init process sent an invalid message")]
    Protocol(#[source] serde_json::Error),
    #[error("sandbox init process exited before reporting (status {0})")]
    InitDied(i32),
    #[error("cgroup {path}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid cgroup parent {parent:?}: {reason}")]
    InvalidCgroupParent { parent: String, reason: String },
    #[error("no cgroup hierarchy for the {0} controller is mounted")]
    NoController(&'static str),
    #[error("network setup: `{command}` failed: {stderr}")]
    NetworkCommand { command: String, stderr: String },
    #[error("no free address left in the sandbox network {0}")]
    AddressesExhausted(String),
    #[error("invalid state record {path}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { what, path: path.into(), source }
    }

    pub(crate) fn sys(what: impl Into<String>, source: nix::errno::Errno) -> Self {
        Self::Sys { what: what.into(), source }
    }
}

/// Result with the executor's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
