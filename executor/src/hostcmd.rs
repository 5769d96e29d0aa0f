//! Host commands of the network code (`ip`, `iptables`) and the host-wide lock serialising
//! their changes: the leaf both the bridge code and published ports stand on.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::Error;

/// Host-wide runtime directory of the network code (leases, locks).
pub const RUN_DIR: &str = "/run/kiln";

pub(crate) fn run(command: &str, args: &[&str], stdin: Option<&str>) -> Result<(), Error> {
    let describe = || format!("{command} {}", args.join(" "));
    let mut child = Command::new(command)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::NetworkCommand { command: describe(), stderr: e.to_string() })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| Error::NetworkCommand { command: describe(), stderr: e.to_string() })?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| Error::NetworkCommand { command: describe(), stderr: e.to_string() })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::NetworkCommand {
            command: format!("{}{}", describe(), stdin.map(|s| format!(" <<{s:?}")).unwrap_or_default()),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

pub(crate) fn ip_command() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("ip")
}

pub(crate) fn iptables_command() -> &'static str {
    ["/usr/sbin/iptables", "/sbin/iptables"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("iptables")
}

/// An exclusive host-wide lock file under [`RUN_DIR`] (flock, released on drop).
#[derive(Debug)]
pub(crate) struct HostLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl HostLock {
    pub(crate) fn acquire(name: &str) -> Result<Self, Error> {
        std::fs::create_dir_all(RUN_DIR).map_err(|e| Error::io("create directory", RUN_DIR, e))?;
        let path = Path::new(RUN_DIR).join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open lock", &path, e))?;
        let locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| Error::sys(format!("lock {}", path.display()), errno))?;
        Ok(Self(locked))
    }
}
