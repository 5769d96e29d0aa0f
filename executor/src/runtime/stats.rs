//! `stats`: one sample of a running container's resource use, read from its cgroups (v1:
//! `cpuacct`, `memory`, `blkio`, `pids`; v2: `cpu.stat`, `memory.*`, `io.stat`, `pids.current`)
//! and its network namespace (`/proc/<pid>/net/dev`). Two samples make the CPU percentage.

use std::path::Path;

use super::record::{Container, RuntimeError};
use crate::cgroup::controller_dir;

/// One reading of a container's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// CPU time the container used, nanoseconds.
    pub cpu_ns: u64,
    /// CPU time of the whole host (all CPUs, every state), nanoseconds.
    pub system_ns: u64,
    pub online_cpus: u32,
    /// Memory in use without the inactive page cache (docker's `MEM USAGE`).
    pub memory_usage: u64,
    /// The memory limit, or the host's memory without one.
    pub memory_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

impl Sample {
    /// docker's CPU %: the container's share of the host's CPU time between two samples,
    /// scaled by the number of CPUs (100 % per fully used CPU).
    pub fn cpu_percent(&self, previous: &Sample) -> f64 {
        let cpu = self.cpu_ns.saturating_sub(previous.cpu_ns) as f64;
        let system = self.system_ns.saturating_sub(previous.system_ns) as f64;
        if cpu <= 0.0 || system <= 0.0 {
            return 0.0;
        }
        cpu / system * f64::from(self.online_cpus.max(1)) * 100.0
    }

    pub fn memory_percent(&self) -> f64 {
        if self.memory_limit == 0 { 0.0 } else { self.memory_usage as f64 / self.memory_limit as f64 * 100.0 }
    }
}

fn read_text(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_number(path: &Path) -> Option<u64> {
    read_text(path)?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Reads one sample; the container must be running.
pub fn sample(container: &mut Container) -> Result<Sample, RuntimeError> {
    container.refresh()?;
    let Some(pid) = container.live_pid() else {
        return Err(RuntimeError::NotRunning(container.config.name.clone()));
    };
    let dirs = &container.state.cgroup_dirs;
    let no_cgroup = |what| RuntimeError::NoCgroup(container.config.name.clone(), what);
    let mut sample = host_cpu();
    let host_memory = host_memory();
    let (memory, version) = controller_dir(dirs, "memory").ok_or_else(|| no_cgroup("memory"))?;
    if version == 1 {
        let (cpuacct, _) = controller_dir(dirs, "cpuacct").ok_or_else(|| no_cgroup("cpuacct"))?;
        sample.cpu_ns = read_number(&cpuacct.join("cpuacct.usage")).unwrap_or(0);
        let usage = read_number(&memory.join("memory.usage_in_bytes")).unwrap_or(0);
        let stat = read_text(&memory.join("memory.stat")).unwrap_or_default();
        let inactive = keyed(&stat, "total_inactive_file").unwrap_or(0);
        sample.memory_usage = if inactive < usage { usage - inactive } else { usage };
        let limit = read_number(&memory.join("memory.limit_in_bytes")).unwrap_or(u64::MAX);
        sample.memory_limit = limit.min(host_memory);
        if let Some((blkio, _)) = controller_dir(dirs, "blkio") {
            let text = read_text(&blkio.join("blkio.throttle.io_service_bytes")).unwrap_or_default();
            for line in text.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if let [_, op, value] = fields.as_slice() {
                    let value: u64 = value.parse().unwrap_or(0);
                    match *op {
                        "Read" => sample.block_read += value,
                        "Write" => sample.block_write += value,
                        _ => {}
                    }
                }
            }
        }
        sample.pids = controller_dir(dirs, "pids")
            .and_then(|(dir, _)| read_number(&dir.join("pids.current")))
            .unwrap_or(0);
    } else {
        let cpu_stat = read_text(&memory.join("cpu.stat")).unwrap_or_default();
        sample.cpu_ns = keyed(&cpu_stat, "usage_usec").unwrap_or(0) * 1000;
        let usage = read_number(&memory.join("memory.current")).unwrap_or(0);
        let stat = read_text(&memory.join("memory.stat")).unwrap_or_default();
        let inactive = keyed(&stat, "inactive_file").unwrap_or(0);
        sample.memory_usage = if inactive < usage { usage - inactive } else { usage };
        // "max" when unlimited
        sample.memory_limit = read_number(&memory.join("memory.max")).unwrap_or(u64::MAX).min(host_memory);
        for line in read_text(&memory.join("io.stat")).unwrap_or_default().lines() {
            for field in line.split_whitespace() {
                if let Some(value) = field.strip_prefix("rbytes=") {
                    sample.block_read += value.parse().unwrap_or(0);
                } else if let Some(value) = field.strip_prefix("wbytes=") {
                    sample.block_write += value.parse().unwrap_or(0);
                }
            }
        }
        sample.pids = read_number(&memory.join("pids.current")).unwrap_or(0);
    }
    // the container's network namespace, seen through its PID 1; loopback does not count
    let net = read_text(&Path::new("/proc").join(pid.to_string()).join("net/dev")).unwrap_or_default();
    for line in net.lines().skip(2) {
        let Some((interface, counters)) = line.split_once(':') else { continue };
        if interface.trim() == "lo" {
            continue;
        }
        let counters: Vec<u64> = counters.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        sample.net_rx += counters.first().copied().unwrap_or(0);
        sample.net_tx += counters.get(8).copied().unwrap_or(0);
    }
    Ok(sample)
}

/// The host's CPU time (the `cpu` line of /proc/stat) and online CPUs.
fn host_cpu() -> Sample {
    let text = read_text(Path::new("/proc/stat")).unwrap_or_default();
    let ticks_per_second = super::processes::ticks_per_second();
    let mut sample = Sample::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                let ticks: u64 = fields.filter_map(|v| v.parse::<u64>().ok()).sum();
                sample.system_ns = ticks * (1_000_000_000 / ticks_per_second);
            }
            Some(name) if name.starts_with("cpu") => sample.online_cpus += 1,
            _ => {}
        }
    }
    sample
}

/// MemTotal of /proc/meminfo in bytes.
fn host_memory() -> u64 {
    read_text(Path::new("/proc/meminfo"))
        .and_then(|text| {
            text.lines().find_map(|line| {
                let kib = line.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim();
                kib.parse::<u64>().ok()
            })
        })
        .map_or(u64::MAX, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        let before = Sample { cpu_ns: 1_000, system_ns: 10_000, online_cpus: 2, ..Sample::default() };
        let after = Sample { cpu_ns: 2_000, system_ns: 20_000, online_cpus: 2, ..Sample::default() };
        assert!((after.cpu_percent(&before) - 20.0).abs() < 1e-9);
        assert_eq!(before.cpu_percent(&after), 0.0);
        let memory = Sample { memory_usage: 25, memory_limit: 100, ..Sample::default() };
        assert!((memory.memory_percent() - 25.0).abs() < 1e-9);
        assert_eq!(keyed("a 1\ntotal_inactive_file 42\n", "total_inactive_file"), Some(42));
        assert_eq!(keyed("inactive_file 5\n", "file"), None);
        let host = host_cpu();
        assert!(host.online_cpus >= 1 && host.system_ns > 0);
        assert!(host_memory() > 0 && host_memory() < u64::MAX);
    }
}
