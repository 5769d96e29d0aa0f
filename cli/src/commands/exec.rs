//! `kiln exec [-i] [-d] [-u USER] [-e K=V] [-w DIR] CONTAINER COMMAND [ARG...]`: a process in
//! a running container (its namespaces, cgroups, capabilities, seccomp profile and
//! `no_new_privs`), exiting with the process's exit code.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use executor::runtime::exec::{ExecOptions, command};

use crate::GlobalOptions;

/// Arguments of `kiln exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal (not supported yet).
    #[arg(short, long)]
    pub tty: bool,
    /// Detached mode: run the command in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// User: `name`, `uid`, `name:group`, `uid:gid`.
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Set an environment variable (`K=V`).
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Command and arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub args: Vec<String>,
}

pub fn run(global: &GlobalOptions, args: ExecArgs) -> anyhow::Result<ExitCode> {
    if args.tty {
        bail!("exec -t is not supported yet (use exec -i for a shell without a terminal)");
    }
    let store = super::container::open(global)?;
    let mut container = store.find(&args.container)?;
    let env = args
        .env
        .iter()
        .filter_map(|e| {
            if e.contains('=') { Some(e.clone()) } else { std::env::var(e).ok().map(|v| format!("{e}={v}")) }
        })
        .collect();
    let options =
        ExecOptions { args: args.args, env, user: args.user, workdir: args.workdir, detach: args.detach };
    let mut command = command(&mut container, options, Path::new(super::container::SELF))?;
    if !args.interactive || args.detach {
        command.stdin(std::process::Stdio::null());
    }
    if args.detach {
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    }
    let status = command.status().context("cannot start the exec helper")?;
    Ok(ExitCode::from(status.code().unwrap_or(255).clamp(0, 255) as u8))
}
