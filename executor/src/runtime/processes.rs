//! The processes of a running container, for `top`: the pids listed in its cgroup
//! (`cgroup.procs`), each read from `/proc/<pid>/stat`, `status` and `cmdline` on the host.

use std::path::Path;

use super::record::{Container, RuntimeError, io};

/// One process as `ps -ef` describes it (host pids and uids, as docker's `top`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    /// Real uid.
    pub uid: u32,
    /// Start time, clock ticks since boot.
    pub start_ticks: u64,
    /// User plus system time, clock ticks.
    pub cpu_ticks: u64,
    /// The controlling terminal's device number (0: none).
    pub tty: u64,
    /// argv (empty for kernel threads and zombies).
    pub cmdline: Vec<String>,
    /// The command name (`comm`).
    pub name: String,
}

/// The kernel's clock ticks per second (`USER_HZ`), the unit of /proc's times.
pub fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().filter(|t| *t > 0).unwrap_or(100)
        as u64
}

/// The pids of a running container (thread group ids, sorted).
pub fn pids(container: &mut Container) -> Result<Vec<i32>, RuntimeError> {
    container.refresh()?;
    if container.live_pid().is_none() {
        return Err(RuntimeError::NotRunning(container.config.name.clone()));
    }
    let Some(dir) = container.state.cgroup_dirs.first() else {
        return Err(RuntimeError::NoCgroup(container.config.name.clone(), "accounting"));
    };
    let procs = dir.join("cgroup.procs");
    let text = std::fs::read_to_string(&procs).map_err(io("read", &procs))?;
    let mut pids: Vec<i32> = text.lines().filter_map(|line| line.trim().parse().ok()).collect();
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// The processes of a running container; those that exit while being read are left out.
pub fn list(container: &mut Container) -> Result<Vec<ProcessInfo>, RuntimeError> {
    Ok(pids(container)?.into_iter().filter_map(read).collect())
}

/// Reads `/proc/<pid>`; `None` when the process is gone.
pub fn read(pid: i32) -> Option<ProcessInfo> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    let (name, fields) = parse_stat(&stat)?;
    let field = |index: usize| fields.get(index).and_then(|v| v.parse::<u64>().ok());
    // fields after the command: state(0) ppid(1) … tty_nr(4) … utime(11) stime(12) … starttime(19)
    let status = std::fs::read_to_string(proc_dir.join("status")).ok()?;
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let cmdline = cmdline
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect();
    Some(ProcessInfo {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        uid,
        start_ticks: field(19)?,
        cpu_ticks: field(11)? + field(12)?,
        tty: field(4)?,
        cmdline,
        name,
    })
}

/// Splits `/proc/<pid>/stat` into the command name and the fields after it (the name may hold
/// spaces and parentheses: it ends at the last `)`).
fn parse_stat(stat: &str) -> Option<(String, Vec<&str>)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    Some((name, stat.get(close + 1..)?.split_whitespace().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_name() {
        let stat = "42 (a) b (c)) S 7 42 42 34816 42 4194560 1 2 3 4 5 6 7 8 20 0 1 0 99 0 0";
        let (name, fields) = parse_stat(stat).expect("parse");
        assert_eq!(name, "a) b (c)");
        assert_eq!(fields[0], "S");
        assert_eq!(fields[1], "7");
        assert_eq!(fields[4], "34816");
        assert_eq!(fields[19], "99");
    }

    #[test]
    fn reads_this_process() {
        let me = read(std::process::id() as i32).expect("self");
        assert_eq!(me.uid, nix::unistd::getuid().as_raw());
        assert!(!me.cmdline.is_empty());
        assert!(read(i32::MAX).is_none());
    }
}
