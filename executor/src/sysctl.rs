//! `--sysctl`: the kernel parameters a container may set, as docker allows them — those of the
//! namespaces it gets of its own (IPC: `kernel.msg*`, `kernel.sem`, `kernel.shm*`,
//! `fs.mqueue.*`; network: `net.*`, not with the host's network).

use std::collections::BTreeMap;

use crate::NetworkMode;

/// The IPC namespace's parameters outside `fs.mqueue.`.
const IPC: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Why `name` cannot be set in a container on `network` (docker's messages), or `None`.
pub fn check(name: &str, network: NetworkMode) -> Option<String> {
    let well_formed = !name.is_empty()
        && name.split('.').all(|part| !part.is_empty() && !part.contains(['/', '\0']) && part != "..");
    if !well_formed {
        return Some(format!("sysctl {name:?} is not a valid name"));
    }
    if IPC.contains(&name) || name.starts_with("fs.mqueue.") {
        return None;
    }
    if name.starts_with("net.") {
        return (network == NetworkMode::Host)
            .then(|| format!("sysctl {name:?} not allowed in host network namespace"));
    }
    Some(format!(
        "sysctl {name:?} is not allowed: only namespaced ones (net.*, kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*)"
    ))
}

/// Writes each parameter under `/proc/sys` (run by the init inside the new namespaces).
pub(crate) fn apply(sysctls: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in sysctls {
        if let Some(problem) = check(name, NetworkMode::Default) {
            return Err(problem);
        }
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        std::fs::write(&path, value.as_bytes())
            .map_err(|err| format!("cannot set sysctl {name}={value}: {err}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_parameters_pass() {
        for ok in ["net.ipv4.ip_forward", "net.core.somaxconn", "kernel.shmmax", "fs.mqueue.msg_max"] {
            assert_eq!(check(ok, NetworkMode::Default), None, "{ok}");
        }
        assert!(check("net.ipv4.ip_forward", NetworkMode::Host).unwrap().contains("host network"));
        for bad in ["kernel.hostname", "vm.swappiness", "net..x", "net/../x", "", "net.a/b"] {
            assert!(check(bad, NetworkMode::None).is_some(), "{bad}");
        }
    }
}
