//! Published ports (`-p [ip:][hostPort:]containerPort[/tcp|udp]`): the kernel path docker
//! takes with `userland-proxy=false`, in iptables' nat table.
//!
//! - chain `KILN-PORTS`, jumped to from `PREROUTING` and `OUTPUT` for packets to a local address
//!   (any host address, loopback included); one `DNAT` rule per binding, tagged with a comment
//!   `kiln:<owner>` so that [`unpublish`] (and the clean-up after a SIGKILLed owner) finds them;
//! - on the bridge: `route_localnet` (a DNATed packet from 127.0.0.1 may leave through it) and
//!   the bridge's `MASQUERADE` rules for packets that come from a local address or were DNATed
//!   from the bridge's own subnet (another container reaching a published port through the
//!   host: hairpin); they go with the bridge. The chain and its jumps go with the last rule.
//!
//! Host ports given as 0 (`-p 80`, `-P`) or as a range for one container port are chosen by
//! [`allocate`] among ports nothing listens on.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::ops::RangeInclusive;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::hostcmd::{HostLock, iptables_command, run};

/// The nat chain holding the DNAT rules.
pub const CHAIN: &str = "KILN-PORTS";

/// Where docker picks random host ports from (the Linux ephemeral range).
const RANDOM_PORTS: RangeInclusive<u16> = 32768..=60999;

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One published port. `host_ports` is a single port, `0..=0` (any free port), or a range to
/// choose one free port from; [`allocate`] leaves a single port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// The host address to listen on; `None` = every address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_ports: RangeInclusive<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortBinding {
    /// The host port (after [`allocate`]).
    pub fn host_port(&self) -> u16 {
        *self.host_ports.start()
    }

    /// docker's `port` output form: `80/tcp -> 0.0.0.0:32768`.
    pub fn describe(&self) -> String {
        format!(
            "{}/{} -> {}:{}",
            self.container_port,
            self.protocol.as_str(),
            self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host_port()
        )
    }
}

/// A `-p` value that kiln cannot publish.
#[derive(Debug, thiserror::Error)]
#[error("invalid {kind} port {spec:?}: {problem}")]
pub struct PortSpecError {
    /// `published` (`-p`) or `exposed` (`--expose`, EXPOSE).
    pub kind: &'static str,
    pub spec: String,
    pub problem: String,
}

fn parse_range(text: &str, what: &str, allow_zero: bool) -> Result<RangeInclusive<u16>, String> {
    let port = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) if !allow_zero => Err(format!("{what} 0")),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("invalid {what} {p:?}")),
        }
    };
    match text.split_once('-') {
        Some((start, end)) => {
            let (start, end) = (port(start)?, port(end)?);
            if start == 0 || end < start {
                return Err(format!("invalid {what} range {text:?}"));
            }
            Ok(start..=end)
        }
        None => port(text).map(|p| p..=p),
    }
}

/// `PORTS/tcp`, `PORTS/udp` or `PORTS` (tcp).
fn split_protocol(spec: &str) -> Result<(&str, Protocol), String> {
    match spec.rsplit_once('/') {
        Some((rest, "tcp")) => Ok((rest, Protocol::Tcp)),
        Some((rest, "udp")) => Ok((rest, Protocol::Udp)),
        Some((_, "sctp")) => Err("sctp is not supported (tcp, udp)".into()),
        Some((_, other)) => Err(format!("unknown protocol {other:?} (tcp, udp)")),
        None => Ok((spec, Protocol::Tcp)),
    }
}

/// Parses an exposed port as `--expose` and EXPOSE give it: `80`, `53/udp`, `8000-8010/tcp`
/// (one entry per port of a range).
pub fn parse_exposed(spec: &str) -> Result<Vec<(u16, Protocol)>, PortSpecError> {
    let fail = |problem: String| PortSpecError { kind: "exposed", spec: spec.to_owned(), problem };
    let (ports, protocol) = split_protocol(spec).map_err(fail)?;
    let range = parse_range(ports, "port", false).map_err(fail)?;
    Ok(range.map(|port| (port, protocol)).collect())
}

/// Parses docker's `-p` syntax: `80`, `8080:80`, `127.0.0.1:8080:80`, `127.0.0.1::80`,
/// `8000-8010:80-90`, `8000-8010:80` (one free port of the range), each with `/tcp` (default)
/// or `/udp`. Ranges expand to one binding per container port.
pub fn parse_publish(spec: &str) -> Result<Vec<PortBinding>, PortSpecError> {
    let fail = |problem: String| PortSpecError { kind: "published", spec: spec.to_owned(), problem };
    let (addresses, protocol) = split_protocol(spec).map_err(fail)?;
    if addresses.starts_with('[') {
        return Err(fail("IPv6 host addresses are not supported yet".into()));
    }
    let parts: Vec<&str> = addresses.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [container] => (None, "", *container),
        [host, container] => (None, *host, *container),
        [ip, host, container] => (Some(*ip), *host, *container),
        _ => return Err(fail("expected [ip:][hostPort:]containerPort[/protocol]".into())),
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(ip) => match ip.parse::<Ipv4Addr>() {
            Ok(ip) if ip.is_unspecified() => None,
            Ok(ip) => Some(ip),
            Err(_) => return Err(fail(format!("invalid host address {ip:?}"))),
        },
    };
    let container = parse_range(container, "container port", false).map_err(fail)?;
    let host = if host.is_empty() { 0..=0 } else { parse_range(host, "host port", true).map_err(fail)? };
    let container_count = usize::from(container.end() - container.start()) + 1;
    let host_count = usize::from(host.end() - host.start()) + 1;
    let ranged_host = host.start() != &0 && host_count > 1;
    if ranged_host && container_count > 1 && host_count != container_count {
        return Err(fail("host and container port ranges differ in size".into()));
    }
    Ok(container
        .clone()
        .enumerate()
        .map(|(i, container_port)| {
            let host_ports = if ranged_host && container_count > 1 {
                let port = host.start() + i as u16;
                port..=port
            } else {
                host.clone()
            };
            PortBinding { host_ip, host_ports, container_port, protocol }
        })
        .collect())
}

/// Whether nothing on the host uses `port` for `protocol` on `ip`.
fn port_free(ip: Option<Ipv4Addr>, port: u16, protocol: Protocol) -> bool {
    let address = SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
    match protocol {
        Protocol::Tcp => TcpListener::bind(address).is_ok(),
        Protocol::Udp => UdpSocket::bind(address).is_ok(),
    }
}

/// Chooses a host port for every binding whose port is 0 (a random free port of the ephemeral
/// range) or a range (its first free port); bindings of one call never share a port.
pub fn allocate(bindings: &mut [PortBinding]) -> Result<(), Error> {
    allocate_except(bindings, &[])
}

/// [`allocate`], also skipping `published` (ports other owners' rules hold: nothing listens on
/// a DNATed port, so binding a socket does not show them as taken).
fn allocate_except(bindings: &mut [PortBinding], published: &[(u16, Protocol)]) -> Result<(), Error> {
    let mut taken: Vec<(u16, Protocol)> = published
        .iter()
        .copied()
        .chain(
            bindings
                .iter()
                .filter(|b| b.host_ports.start() == b.host_ports.end() && *b.host_ports.start() != 0)
                .map(|b| (b.host_port(), b.protocol)),
        )
        .collect();
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    for binding in bindings.iter_mut() {
        let single = binding.host_ports.start() == binding.host_ports.end();
        if single && binding.host_port() != 0 {
            continue;
        }
        let range = if single { RANDOM_PORTS } else { binding.host_ports.clone() };
        let size = u32::from(range.end() - range.start()) + 1;
        let start = if single { seed % size } else { 0 };
        let found = (0..size).map(|offset| range.start() + ((start + offset) % size) as u16).find(|port| {
            !taken.contains(&(*port, binding.protocol)) && port_free(binding.host_ip, *port, binding.protocol)
        });
        let Some(port) = found else {
            return Err(Error::NetworkCommand {
                command: format!("publish {}", binding.container_port),
                stderr: format!("no free host port in {}-{}", range.start(), range.end()),
            });
        };
        taken.push((port, binding.protocol));
        binding.host_ports = port..=port;
    }
    Ok(())
}

fn iptables(args: &[&str]) -> Result<(), Error> {
    run(iptables_command(), args, None)
}

/// `iptables -t nat -S chain` (empty when the chain does not exist).
fn list_rules(chain: &str) -> Vec<String> {
    let output = Command::new(iptables_command()).args(["-t", "nat", "-S", chain]).output();
    match output {
        Ok(out) if out.status.success() => {
            String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

fn comment(owner: &str) -> String {
    format!("kiln:{owner}")
}

/// Owners are container or sandbox ids: nothing that could split an iptables argument.
fn check_owner(owner: &str) -> Result<(), Error> {
    if owner.is_empty() || !owner.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(Error::NetworkCommand {
            command: "publish".into(),
            stderr: format!("invalid owner {owner:?}"),
        });
    }
    Ok(())
}

/// Adds `rule` (`-t nat -A/-I chain …` form without the verb) unless it is there.
fn ensure_rule(table: &str, chain: &str, spec: &[&str]) -> Result<(), Error> {
    let mut args = vec!["-t", table, "-C", chain];
    args.extend_from_slice(spec);
    if iptables(&args).is_err() {
        args[2] = "-I";
        iptables(&args)?;
    }
    Ok(())
}

/// The chain, its jumps and `route_localnet` on the bridge (idempotent).
fn ensure_base(bridge: &str) -> Result<(), Error> {
    if iptables(&["-t", "nat", "-S", CHAIN]).is_err() {
        iptables(&["-t", "nat", "-N", CHAIN])?;
    }
    for chain in JUMPS {
        ensure_rule("nat", chain, &["-m", "addrtype", "--dst-type", "LOCAL", "-j", CHAIN])?;
    }
    // a DNATed packet from 127.0.0.1 leaves through the bridge with a routable source
    let sysctl = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    std::fs::write(&sysctl, b"1").map_err(|e| Error::io("enable route_localnet", &sysctl, e))
}

/// The built-in chains that jump to [`CHAIN`].
const JUMPS: [&str; 2] = ["PREROUTING", "OUTPUT"];

/// Removes the chain and its jumps once no port is published any more.
fn remove_base_when_empty() {
    let rules = list_rules(CHAIN);
    if rules.is_empty() || rules.iter().any(|rule| rule.starts_with("-A ")) {
        return;
    }
    for chain in JUMPS {
        let _ = iptables(&["-t", "nat", "-D", chain, "-m", "addrtype", "--dst-type", "LOCAL", "-j", CHAIN]);
    }
    let _ = iptables(&["-t", "nat", "-X", CHAIN]);
}

/// The host ports the rules of [`CHAIN`] publish now.
fn published_ports() -> Vec<(u16, Protocol)> {
    list_rules(CHAIN)
        .iter()
        .filter_map(|rule| {
            let words = rule_words(rule);
            let value = |flag: &str| words.windows(2).find(|w| w[0] == flag).map(|w| w[1]);
            let protocol = match value("-p")? {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => return None,
            };
            Some((value("--dport")?.parse().ok()?, protocol))
        })
        .collect()
}

/// Publishes `bindings` to `address` on the bridge named `bridge`, tagged with `owner`: the
/// bridge and its rules must exist (`network::Bridge::ensure`, which also makes the masquerade
/// rules published ports need). Host ports given as 0
/// or as a range are chosen first ([`allocate`], also skipping ports other owners published),
/// under the host's network lock so that concurrent publishers never choose one port twice.
/// On an error nothing of this call stays.
pub fn publish(
    owner: &str,
    bridge: &str,
    address: Ipv4Addr,
    bindings: &mut [PortBinding],
) -> Result<(), Error> {
    check_owner(owner)?;
    let _lock = HostLock::acquire("network.lock")?;
    allocate_except(bindings, &published_ports())?;
    ensure_base(bridge)?;
    let tag = comment(owner);
    for binding in bindings.iter() {
        let port = binding.host_port().to_string();
        let target = format!("{address}:{}", binding.container_port);
        let mut args = vec!["-t", "nat", "-A", CHAIN, "-p", binding.protocol.as_str()];
        let host_ip = binding.host_ip.map(|ip| ip.to_string());
        if let Some(ip) = &host_ip {
            args.extend(["-d", ip.as_str()]);
        }
        args.extend([
            "--dport",
            &port,
            "-m",
            "comment",
            "--comment",
            &tag,
            "-j",
            "DNAT",
            "--to-destination",
            &target,
        ]);
        if let Err(err) = iptables(&args) {
            remove_rules(&tag);
            remove_base_when_empty();
            return Err(err);
        }
    }
    Ok(())
}

/// The words of a rule as `iptables -S` prints it, without the quotes it puts around comments
/// (kiln's comments hold no spaces).
fn rule_words(rule: &str) -> Vec<&str> {
    rule.split_whitespace().map(|word| word.trim_matches('"')).collect()
}

fn remove_rules(tag: &str) {
    for rule in list_rules(CHAIN) {
        let words = rule_words(&rule);
        if words.first() != Some(&"-A") || !words.windows(2).any(|w| w == ["--comment", tag]) {
            continue;
        }
        let mut args = vec!["-t", "nat", "-D"];
        args.extend_from_slice(&words[1..]);
        if let Err(err) = iptables(&args) {
            tracing::warn!("cannot remove the published-port rule {rule:?}: {err}");
        }
    }
}

/// Removes every rule published for `owner` (idempotent).
pub fn unpublish(owner: &str) {
    if check_owner(owner).is_err() {
        return;
    }
    let Ok(_lock) = HostLock::acquire("network.lock") else { return };
    remove_rules(&comment(owner));
    remove_base_when_empty();
}

/// The owners that have published ports now (for cleaning up after owners that died).
pub fn owners() -> Vec<String> {
    let mut owners: Vec<String> = list_rules(CHAIN)
        .iter()
        .filter_map(|rule| {
            rule_words(rule)
                .windows(2)
                .find(|w| w[0] == "--comment")
                .and_then(|w| w[1].strip_prefix("kiln:"))
                .map(str::to_owned)
        })
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortBinding {
        let mut all = parse_publish(spec).unwrap();
        assert_eq!(all.len(), 1, "{spec}");
        all.remove(0)
    }

    #[test]
    fn docker_publish_syntax() {
        let b = one("80");
        assert_eq!((b.host_ip, b.host_ports, b.container_port, b.protocol), (None, 0..=0, 80, Protocol::Tcp));
        assert_eq!(one("8080:80").host_ports, 8080..=8080);
        let b = one("127.0.0.1:8080:80/udp");
        assert_eq!((b.host_ip, b.host_port(), b.protocol), (Some(Ipv4Addr::LOCALHOST), 8080, Protocol::Udp));
        let b = one("127.0.0.1::80");
        assert_eq!((b.host_ip, b.host_ports), (Some(Ipv4Addr::LOCALHOST), 0..=0));
        assert_eq!(one("0.0.0.0:81:80").host_ip, None);
        let range = parse_publish("8000-8002:80-82").unwrap();
        assert_eq!(
            range.iter().map(|b| (b.host_port(), b.container_port)).collect::<Vec<_>>(),
            [(8000, 80), (8001, 81), (8002, 82)]
        );
        assert_eq!(one("8000-8010:80").host_ports, 8000..=8010, "one free port of the range");
        assert_eq!(parse_publish("80-81").unwrap().len(), 2);
        assert_eq!(one("80").describe(), "80/tcp -> 0.0.0.0:0");
        for (bad, why) in [
            ("", "container port"),
            ("abc", "container port"),
            ("70000", "container port"),
            ("80:0", "container port 0"),
            ("1.2.3:80:80", "host address"),
            ("80/sctp", "sctp"),
            ("80/icmp", "protocol"),
            ("[::1]:80:80", "IPv6"),
            ("8000-8001:80-82", "differ"),
            ("1:2:3:4", "expected"),
            ("90-80:80", "range"),
        ] {
            let err = parse_publish(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn exposed_ports_as_docker_writes_them() {
        assert_eq!(parse_exposed("80").unwrap(), [(80, Protocol::Tcp)]);
        assert_eq!(parse_exposed("53/udp").unwrap(), [(53, Protocol::Udp)]);
        assert_eq!(parse_exposed("90-91/tcp").unwrap(), [(90, Protocol::Tcp), (91, Protocol::Tcp)]);
        for (bad, why) in
            [("0", "port 0"), ("80/icmp", "protocol"), ("90-80", "range"), ("x", "invalid port")]
        {
            let err = parse_exposed(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid exposed port") && err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn rules_read_back_as_iptables_prints_them() {
        let rule = r#"-A KILN-PORTS -p tcp -m tcp --dport 9 -m comment --comment "kiln:abc" -j DNAT --to-destination 10.1.1.1:80"#;
        let words = rule_words(rule);
        assert!(words.windows(2).any(|w| w == ["--comment", "kiln:abc"]), "{words:?}");
    }

    #[test]
    fn ports_of_other_owners_are_not_chosen_again() {
        let mut bindings = parse_publish("127.0.0.1:40000-40002:80").unwrap();
        allocate_except(&mut bindings, &[(40000, Protocol::Tcp), (40001, Protocol::Udp)]).unwrap();
        assert_eq!(bindings[0].host_port(), 40001, "40000/tcp is published; 40001/udp is another protocol");
    }

    #[test]
    fn allocation_picks_free_distinct_ports() {
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        let mut bindings = parse_publish(&format!("127.0.0.1:{busy_port}-{}:80", busy_port + 50)).unwrap();
        bindings.extend(parse_publish("127.0.0.1::81").unwrap());
        bindings.extend(parse_publish("127.0.0.1::82").unwrap());
        allocate(&mut bindings).unwrap();
        assert_ne!(bindings[0].host_port(), busy_port, "a port in use is skipped");
        assert!(bindings[0].host_ports.start() == bindings[0].host_ports.end());
        assert!(RANDOM_PORTS.contains(&bindings[1].host_port()));
        assert_ne!(bindings[1].host_port(), bindings[2].host_port());
        // a fixed port is kept as given, even when busy (publishing it fails later, as docker)
        let mut fixed = parse_publish(&format!("{busy_port}:80")).unwrap();
        allocate(&mut fixed).unwrap();
        assert_eq!(fixed[0].host_port(), busy_port);
    }
}
