//! `kiln top CONTAINER`: the container's processes as `ps -ef` shows them (`UID PID PPID C
//! STIME TTY TIME CMD`, host pids), read from /proc for the pids of its cgroup.

use std::process::ExitCode;

use anyhow::bail;
use executor::runtime::processes::{self, ProcessInfo};

use super::images::write_table;
use crate::GlobalOptions;

/// Arguments of `kiln top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// ps options: only `-ef` (the default) is understood.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "PS_OPTIONS")]
    pub ps_options: Vec<String>,
}

/// What `ps -ef` needs of the host besides the process.
struct Clock {
    ticks_per_second: u64,
    boot_time: i64,
    now: i64,
}

impl Clock {
    fn read() -> Self {
        let ticks_per_second = processes::ticks_per_second();
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|text| text.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok()))
            .unwrap_or(0);
        Self { ticks_per_second, boot_time, now: chrono::Utc::now().timestamp() }
    }
}

/// The host's name for `uid` (as the host's `ps` shows it), else the number.
fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// procps' TTY column: `pts/N`, `ttyN`, or `?`.
fn tty_name(device: u64) -> String {
    let major = (device >> 8) & 0xfff;
    let minor = (device & 0xff) | ((device >> 12) & 0xfff00);
    match major {
        0 => "?".to_owned(),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => "?".to_owned(),
    }
}

/// One `ps -ef` row.
fn row(process: &ProcessInfo, clock: &Clock) -> Vec<String> {
    let started = clock.boot_time + (process.start_ticks / clock.ticks_per_second) as i64;
    let elapsed = (clock.now - started).max(1) as u64;
    let cpu_seconds = process.cpu_ticks / clock.ticks_per_second;
    // procps' C: CPU time as a percentage of the elapsed time, integer
    let c = process.cpu_ticks * 100 / clock.ticks_per_second / elapsed;
    let start = chrono::DateTime::from_timestamp(started, 0).unwrap_or_default();
    let stime = if clock.now - started < 24 * 3600 {
        start.format("%H:%M").to_string()
    } else {
        start.format("%b%d").to_string()
    };
    let cmd =
        if process.cmdline.is_empty() { format!("[{}]", process.name) } else { process.cmdline.join(" ") };
    vec![
        user_name(process.uid),
        process.pid.to_string(),
        process.ppid.to_string(),
        c.to_string(),
        stime,
        tty_name(process.tty),
        format!("{:02}:{:02}:{:02}", cpu_seconds / 3600, cpu_seconds / 60 % 60, cpu_seconds % 60),
        cmd,
    ]
}

pub fn run(global: &GlobalOptions, args: TopArgs) -> anyhow::Result<ExitCode> {
    if !args.ps_options.is_empty() && args.ps_options != ["-ef"] {
        bail!("ps options {:?} are not supported: kiln top shows the -ef columns", args.ps_options.join(" "));
    }
    let store = super::container::open(global)?;
    let mut container = store.find(&args.container)?;
    let processes = processes::list(&mut container)?;
    let clock = Clock::read();
    let mut rows =
        vec![["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"].map(str::to_owned).to_vec()];
    rows.extend(processes.iter().map(|process| row(process, &clock)));
    write_table(&mut std::io::stdout().lock(), &rows)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_columns() {
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name((136 << 8) | 3), "pts/3");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
        let clock = Clock { ticks_per_second: 100, boot_time: 1_000, now: 1_000 + 3_600 };
        let process = ProcessInfo {
            pid: 42,
            ppid: 1,
            uid: 0,
            start_ticks: 0,
            cpu_ticks: 100 * 36 + 50,
            tty: 0,
            cmdline: vec!["sleep".into(), "100".into()],
            name: "sleep".into(),
        };
        let row = row(&process, &clock);
        assert_eq!(row[1..], ["42", "1", "1", "00:16", "?", "00:00:36", "sleep 100"].map(str::to_owned));
        let thread = ProcessInfo { cmdline: Vec::new(), ..process };
        assert_eq!(super::row(&thread, &clock)[7], "[sleep]");
    }
}
