//! Linux capability names and docker's default set.

use crate::Error;

/// Capability names indexed by number (linux/capability.h).
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default capabilities (moby `caps.DefaultCapabilities`).
pub const DOCKER_DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Capability numbers.
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_DAC_READ_SEARCH: u32 = 2;

/// A set of capabilities as a 64-bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    pub fn contains(self, cap: u32) -> bool {
        self.0 & (1u64 << cap) != 0
    }

    fn all() -> Self {
        Self((1u64 << NAMES.len()) - 1)
    }
}

/// The calling process's effective capabilities (`CapEff` of `/proc/self/status`); `None` when
/// that cannot be read.
pub fn current_effective() -> Option<CapSet> {
    parse_cap_eff(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// The `CapEff:` mask of a `/proc/<pid>/status` text.
fn parse_cap_eff(status: &str) -> Option<CapSet> {
    let hex = status.lines().find_map(|line| line.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok().map(CapSet)
}

/// Number of a capability name (`CAP_` prefix optional, any case).
pub fn number(name: &str) -> Result<u32, Error> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES
        .iter()
        .position(|candidate| *candidate == bare)
        .map(|index| index as u32)
        .ok_or_else(|| Error::UnknownCapability(name.to_owned()))
}

/// Docker's default set with `--cap-add`/`--cap-drop` applied (`ALL` allowed in both, drops of
/// `ALL` happen before adds like docker does).
pub fn effective_set(add: &[String], drop: &[String]) -> Result<CapSet, Error> {
    let mut set = CapSet::default();
    for name in DOCKER_DEFAULT {
        set.0 |= 1 << number(name)?;
    }
    let is_all = |name: &String| name.eq_ignore_ascii_case("all") || name.eq_ignore_ascii_case("cap_all");
    if drop.iter().any(is_all) {
        set = CapSet::default();
    }
    for name in drop.iter().filter(|name| !is_all(name)) {
        set.0 &= !(1 << number(name)?);
    }
    if add.iter().any(is_all) {
        set = CapSet::all();
    }
    for name in add.iter().filter(|name| !is_all(name)) {
        set.0 |= 1 << number(name)?;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_mask() {
        assert_eq!(effective_set(&[], &[]).expect("default").0, 0x00000000a80425fb);
    }

    #[test]
    fn add_and_drop() {
        let set = effective_set(&["sys_admin".into()], &["CAP_CHOWN".into()]).expect("set");
        assert!(set.contains(CAP_SYS_ADMIN));
        assert!(!set.contains(0));
        let none = effective_set(&[], &["ALL".into()]).expect("none");
        assert_eq!(none.0, 0);
        let only_kill = effective_set(&["KILL".into()], &["ALL".into()]).expect("kill");
        assert_eq!(only_kill.0, 1 << 5);
        assert!(matches!(effective_set(&["CAP_NOPE".into()], &[]), Err(Error::UnknownCapability(_))));
    }

    #[test]
    fn cap_eff_of_proc_status() {
        let status = "Name:\tkiln\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t0\n";
        assert!(parse_cap_eff(status).expect("root").contains(CAP_SYS_ADMIN));
        let nobody = "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n";
        assert_eq!(parse_cap_eff(nobody), Some(CapSet(0)));
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
    }
}
