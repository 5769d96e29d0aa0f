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
    /// Allocate a pseudo-terminal.
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
    if args.tty && args.detach {
        bail!("exec -d -t is not supported: a detached process has no one to read its terminal");
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
    let options = ExecOptions {
        args: args.args,
        env,
        user: args.user,
        workdir: args.workdir,
        detach: args.detach,
        tty: args.tty,
    };
    let mut command = command(&mut container, options, Path::new(super::container::SELF))?;
    if !args.interactive || args.detach {
        command.stdin(std::process::Stdio::null());
    }
    if args.detach {
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    }
    if args.tty {
        return with_terminal(command, args.interactive);
    }
    let status = command.status().context("cannot start the exec helper")?;
    Ok(ExitCode::from(status.code().unwrap_or(255).clamp(0, 255) as u8))
}

/// `exec -t`: the process gets a new pseudo-terminal (the size of ours, else 24x80); its output
/// is copied to our stdout, and with `-i` our stdin (in raw mode) to it.
fn with_terminal(mut command: std::process::Command, interactive: bool) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let size = executor::tty::window_size(&stdin).unwrap_or((24, 80));
    let (master, slave) = executor::tty::open_pty(Some(size))?;
    command
        .stdin(slave.try_clone().context("cannot duplicate the terminal")?)
        .stdout(slave.try_clone().context("cannot duplicate the terminal")?)
        .stderr(slave);
    let mut child = command.spawn().context("cannot start the exec helper")?;
    // the child's copies only: the master reads EIO once the process and its children closed it
    drop(command);
    let reader = std::fs::File::from(master.try_clone().context("cannot duplicate the terminal")?);
    let output = std::thread::spawn(move || super::run::io::copy(reader, std::io::stdout()));
    let _raw = if interactive {
        let raw = executor::tty::RawMode::enter(&stdin);
        let writer = std::fs::File::from(master.try_clone().context("cannot duplicate the terminal")?);
        // blocked on stdin until the process exits: never joined
        std::thread::spawn(move || super::run::io::copy(std::io::stdin(), writer));
        raw
    } else {
        None
    };
    let status = child.wait().context("cannot wait for the exec helper")?;
    drop(master);
    let _ = output.join();
    Ok(ExitCode::from(status.code().unwrap_or(255).clamp(0, 255) as u8))
}
