//! Sandbox networking.
//!
//! `none`: a fresh network namespace with loopback up. `host`: no namespace. `default`: a fresh
//! namespace whose `eth0` is one end of a veth pair; the host end is enslaved to the `kiln0`
//! bridge (10.89.0.1/16), and outbound traffic is masqueraded. Addresses come from a host-wide
//! lease directory under `/run/kiln/ipam` (one file per address, created with `O_EXCL`), so
//! concurrent kiln processes with different `--root`s never collide. Published ports, user
//! networks and DNS for `kiln run` will hang off [`Bridge`] and [`Attachment`] later.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::init::InitError;

pub use crate::hostcmd::RUN_DIR;
use crate::hostcmd::{HostLock, ip_command, iptables_command, run};

/// A bridge network (the default one is [`Bridge::default_bridge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
}

/// What the init configures inside the namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceConfig {
    pub name: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// A sandbox's place on a bridge: its address lease and host-side veth name. The veth
/// disappears with the namespace; the lease is released by [`Attachment::release`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub lease: PathBuf,
    pub host_veth: String,
    pub bridge: String,
    pub interface: InterfaceConfig,
}

impl Bridge {
    /// kiln's default bridge for build steps and `kiln run`. Like `docker0` it stays once made;
    /// [`Bridge::remove`] takes it down.
    pub fn default_bridge() -> Self {
        Self::new("kiln0", Ipv4Addr::new(10, 89, 0, 1), 16)
    }

    /// A bridge `name` (at most 15 bytes) whose own address is `gateway`/`prefix`. Use a
    /// distinct subnet per bridge: the host routes each subnet to one bridge.
    pub fn new(name: impl Into<String>, gateway: Ipv4Addr, prefix: u8) -> Self {
        Self { name: name.into(), gateway, prefix }
    }

    /// The iptables rules of the bridge as (table, chain, rule spec): NAT for traffic leaving
    /// the subnet, forwarding, and for published ports ([`crate::ports`]) the masquerade of
    /// packets from a local address (127.0.0.1 → a container) and of DNATed packets from the
    /// subnet itself (a container reaching a published port through a host address).
    pub(crate) fn rules(&self) -> [(&'static str, &'static str, Vec<String>); 5] {
        let name = self.name.clone();
        let subnet = self.subnet();
        let owned = |spec: &[&str]| spec.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
        [
            ("nat", "POSTROUTING", owned(&["-s", &subnet, "!", "-o", &name, "-j", "MASQUERADE"])),
            ("filter", "FORWARD", owned(&["-i", &name, "-j", "ACCEPT"])),
            ("filter", "FORWARD", owned(&["-o", &name, "-j", "ACCEPT"])),
            (
                "nat",
                "POSTROUTING",
                owned(&["-o", &name, "-m", "addrtype", "--src-type", "LOCAL", "-j", "MASQUERADE"]),
            ),
            (
                "nat",
                "POSTROUTING",
                owned(&[
                    "-s",
                    &subnet,
                    "-o",
                    &name,
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "DNAT",
                    "-j",
                    "MASQUERADE",
                ]),
            ),
        ]
    }

    /// Adds the bridge's rules that are missing (a bridge made by an older kiln lacks some).
    pub fn ensure_rules(&self) -> Result<(), Error> {
        let iptables = iptables_command();
        for (table, chain, spec) in self.rules() {
            let mut check: Vec<&str> = vec!["-t", table, "-C", chain];
            check.extend(spec.iter().map(String::as_str));
            if run(iptables, &check, None).is_err() {
                check[2] = "-I";
                run(iptables, &check, None)?;
            }
        }
        Ok(())
    }

    /// Deletes the bridge, its NAT/forward rules and its lease directory (idempotent). Sandboxes
    /// still attached lose their network.
    pub fn remove(&self) {
        let Ok(_lock) = HostLock::acquire("network.lock") else { return };
        if Path::new("/sys/class/net").join(&self.name).exists() {
            let _ = run(ip_command(), &["link", "del", &self.name], None);
        }
        let iptables = iptables_command();
        for (table, chain, spec) in self.rules() {
            let mut args: Vec<&str> = vec!["-t", table, "-D", chain];
            args.extend(spec.iter().map(String::as_str));
            while run(iptables, &args, None).is_ok() {}
        }
        let _ = std::fs::remove_dir_all(Path::new(RUN_DIR).join("ipam").join(&self.name));
    }

    /// The bridge's subnet in CIDR form (`10.89.0.0/16`).
    pub fn subnet(&self) -> String {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
        format!("{}/{}", Ipv4Addr::from(u32::from(self.gateway) & mask), self.prefix)
    }

    /// Creates the bridge, forwarding and NAT rules unless they exist (idempotent, serialised
    /// by a host-wide lock).
    pub fn ensure(&self) -> Result<(), Error> {
        if Path::new("/sys/class/net").join(&self.name).exists() {
            return Ok(());
        }
        let _lock = HostLock::acquire("network.lock")?;
        if Path::new("/sys/class/net").join(&self.name).exists() {
            return Ok(());
        }
        let ip = ip_command();
        let batch = format!(
            "link add {name} type bridge\naddr add {gw}/{prefix} dev {name}\nlink set {name} up\n",
            name = self.name,
            gw = self.gateway,
            prefix = self.prefix
        );
        run(ip, &["-batch", "-"], Some(&batch))?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", b"1")
            .map_err(|e| Error::io("enable IPv4 forwarding", "/proc/sys/net/ipv4/ip_forward", e))?;
        self.ensure_rules()
    }

    /// Leases a free address on the bridge (creating the bridge first when needed).
    pub fn lease(&self, sandbox_id: &str) -> Result<Attachment, Error> {
        self.ensure()?;
        let (lease, address) = lease_address(self)?;
        Ok(Attachment {
            lease,
            host_veth: format!("kv{}", &sandbox_id[..sandbox_id.len().min(12)]),
            bridge: self.name.clone(),
            interface: InterfaceConfig {
                name: "eth0".to_owned(),
                address,
                prefix: self.prefix,
                gateway: self.gateway,
            },
        })
    }
}

impl Attachment {
    /// Plugs a veth pair between the bridge and the network namespace of `pid` (named `eth0`
    /// there; configured by the init).
    pub fn plug(&self, pid: i32) -> Result<(), Error> {
        let batch = format!(
            "link add {veth} type veth peer name {inner} netns {pid}\nlink set {veth} master {bridge} up\n",
            veth = self.host_veth,
            inner = self.interface.name,
            bridge = self.bridge
        );
        run(ip_command(), &["-batch", "-"], Some(&batch))
    }

    /// Releases the address lease (the veth pair dies with the namespace).
    pub fn release(&self) {
        // the kernel tears the namespace (and with it the veth pair) down asynchronously:
        // delete the host end now so no interface outlives the sandbox
        if Path::new("/sys/class/net").join(&self.host_veth).exists() {
            let _ = run(ip_command(), &["link", "del", &self.host_veth], None);
        }
        let _ = std::fs::remove_file(&self.lease);
    }

    /// [`Attachment::release`] without waiting for it: deleting a veth waits for the kernel's
    /// network-device unregistration (20–40 ms), most of what the default network adds to a
    /// container's start and stop. A detached shell deletes the host end, then the lease (so
    /// the address is not handed out while the old interface still holds it); a kiln killed
    /// meanwhile does not stop it. Falls back to the synchronous release when no shell runs.
    pub fn release_detached(&self) {
        if !Path::new("/sys/class/net").join(&self.host_veth).exists() {
            let _ = std::fs::remove_file(&self.lease);
            return;
        }
        let script = r#"("$1" link del "$2" 2>/dev/null; rm -f "$3") </dev/null >/dev/null 2>&1 &"#;
        let spawned = Command::new("/bin/sh")
            .args(["-c", script, "sh", ip_command(), &self.host_veth])
            .arg(&self.lease)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !spawned.is_ok_and(|status| status.success()) {
            self.release();
        }
    }
}

/// Owner identity written into leases: pid and start time (so a reused pid is not mistaken).
pub(crate) fn owner_token() -> String {
    let pid = std::process::id();
    format!("{pid} {}", crate::state::process_start_time(pid as i32).unwrap_or(0))
}

/// Whether the process named by an owner token still runs.
pub(crate) fn owner_alive(token: &str) -> bool {
    let mut parts = token.split_whitespace();
    let (Some(pid), Some(start)) = (parts.next().and_then(|p| p.parse::<i32>().ok()), parts.next()) else {
        return false;
    };
    crate::state::process_start_time(pid).is_some_and(|actual| actual.to_string() == start)
        && !crate::state::is_zombie(pid)
}

fn lease_address(bridge: &Bridge) -> Result<(PathBuf, Ipv4Addr), Error> {
    let dir = Path::new(RUN_DIR).join("ipam").join(&bridge.name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let base = u32::from(bridge.gateway);
    let size = 1u32 << (32 - u32::from(bridge.prefix));
    let host_mask = size - 1;
    let network = base & !host_mask;
    let token = owner_token();
    let start = (std::process::id().wrapping_mul(2_654_435_761)) % size;
    for offset in 0..size {
        let host = (start + offset) % size;
        let address = Ipv4Addr::from(network | host);
        if host == 0 || host == host_mask || address == bridge.gateway {
            continue;
        }
        let path = dir.join(address.to_string());
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                file.write_all(token.as_bytes()).map_err(|e| Error::io("write lease", &path, e))?;
                return Ok((path, address));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                if !owner.is_empty() && !owner_alive(&owner) {
                    let _ = std::fs::remove_file(&path);
                }
            }
            Err(e) => return Err(Error::io("create lease", &path, e)),
        }
    }
    Err(Error::AddressesExhausted(bridge.subnet()))
}

/// Inside the namespace (run by the init before pivot_root, so the host's `ip` is visible):
/// address, link up, default route.
pub fn configure_inside(interface: &InterfaceConfig) -> Result<(), InitError> {
    let batch = format!(
        "addr add {addr}/{prefix} dev {name}\nlink set {name} up\nroute add default via {gw}\n",
        addr = interface.address,
        prefix = interface.prefix,
        name = interface.name,
        gw = interface.gateway
    );
    run(ip_command(), &["-batch", "-"], Some(&batch)).map_err(InitError::from)
}

/// `/etc/resolv.conf` for a sandbox: the host's, without loopback name servers (which are
/// unreachable from a private namespace); Google's public resolvers when nothing remains.
/// `dns` (docker's `--dns*` flags) replaces the host's name servers, search domains or
/// options, each list on its own (`--dns-search .` clears the search domains).
pub fn resolv_conf(host: &str, network: crate::NetworkMode, dns: &crate::spec::DnsConfig) -> String {
    if network == crate::NetworkMode::Host && *dns == crate::spec::DnsConfig::default() {
        return host.to_owned();
    }
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") if !dns.servers.is_empty() => continue,
            Some("search" | "domain") if !dns.search.is_empty() => continue,
            Some("options") if !dns.options.is_empty() => continue,
            Some("nameserver") => match words.next() {
                Some(server)
                    if network != crate::NetworkMode::Host
                        && (server.starts_with("127.") || server == "::1") =>
                {
                    continue;
                }
                Some(_) => servers += 1,
                None => continue,
            },
            _ => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    let search: Vec<&str> = dns.search.iter().map(String::as_str).filter(|s| *s != ".").collect();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for server in &dns.servers {
        out.push_str(&format!("nameserver {server}\n"));
        servers += 1;
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// `/etc/hosts` for a sandbox.
pub fn hosts_file(hostname: &str, address: Option<Ipv4Addr>, extra: &[(String, String)]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (name, ip) in extra {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    match address {
        Some(address) => out.push_str(&format!("{address}\t{hostname}\n")),
        None => out.push_str(&format!("127.0.1.1\t{hostname}\n")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback() {
        let none = crate::spec::DnsConfig::default();
        let host = "search example\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n";
        assert_eq!(
            resolv_conf(host, crate::NetworkMode::Default, &none),
            "search example\nnameserver 10.0.0.2\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.53\n", crate::NetworkMode::None, &none),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(resolv_conf(host, crate::NetworkMode::Host, &none), host);
    }

    #[test]
    fn dns_flags_replace_the_hosts_lines() {
        let host = "search example\nnameserver 10.0.0.2\noptions ndots:2\n";
        let dns = |servers: &[&str], search: &[&str], options: &[&str]| crate::spec::DnsConfig {
            servers: servers.iter().map(|s| (*s).to_owned()).collect(),
            search: search.iter().map(|s| (*s).to_owned()).collect(),
            options: options.iter().map(|s| (*s).to_owned()).collect(),
        };
        assert_eq!(
            resolv_conf(host, crate::NetworkMode::Default, &dns(&["1.1.1.1"], &[], &[])),
            "search example\noptions ndots:2\nnameserver 1.1.1.1\n"
        );
        assert_eq!(
            resolv_conf(
                host,
                crate::NetworkMode::Default,
                &dns(&[], &["a.test", "b.test"], &["ndots:5", "rotate"])
            ),
            "nameserver 10.0.0.2\nsearch a.test b.test\noptions ndots:5 rotate\n"
        );
        assert_eq!(
            resolv_conf(host, crate::NetworkMode::Host, &dns(&[], &["."], &[])),
            "nameserver 10.0.0.2\noptions ndots:2\n",
            "`.` clears the search domains"
        );
    }

    #[test]
    fn subnet_of_default_bridge() {
        assert_eq!(Bridge::default_bridge().subnet(), "10.89.0.0/16");
    }
}
