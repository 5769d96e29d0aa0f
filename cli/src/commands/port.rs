//! Published ports: `-p`/`-P`/`--expose` of `run` and `create` turned into the bindings a
//! container asks for, `kiln port`, and docker's renderings of them (`ps` PORTS, `inspect`
//! `NetworkSettings.Ports`).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use executor::ports::{PortBinding, parse_exposed, parse_publish};

use crate::GlobalOptions;

#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container (name or ID).
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Only this container port: `80` or `80/udp`.
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// The bindings of `-p` (in order), then with `-P` every exposed port (the image's EXPOSE and
/// `--expose`) that no `-p` publishes, on a random host port, as docker does.
pub(crate) fn requested(
    publish: &[String],
    publish_all: bool,
    expose: &[String],
    image_exposed: &[String],
) -> anyhow::Result<Vec<PortBinding>> {
    let mut bindings = Vec::new();
    for spec in publish {
        bindings.extend(parse_publish(spec)?);
    }
    let mut exposed_ports = Vec::new();
    for spec in expose.iter().chain(image_exposed) {
        exposed_ports.extend(parse_exposed(spec)?);
    }
    if publish_all {
        for (port, protocol) in exposed_ports {
            let taken = bindings.iter().any(|b| b.container_port == port && b.protocol == protocol);
            if !taken {
                bindings.push(PortBinding {
                    host_ip: None,
                    host_ports: 0..=0,
                    container_port: port,
                    protocol,
                });
            }
        }
    }
    Ok(bindings)
}

/// docker's PORTS column: `0.0.0.0:32768->80/tcp, 127.0.0.1:8080->81/udp`.
pub(crate) fn column(bindings: &[PortBinding]) -> String {
    bindings
        .iter()
        .map(|b| {
            let ip = b.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
            format!("{ip}:{}->{}/{}", b.host_port(), b.container_port, b.protocol.as_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// docker's `NetworkSettings.Ports`: `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}]}`.
pub(crate) fn inspect_value(bindings: &[PortBinding]) -> serde_json::Value {
    let mut map: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for b in bindings {
        let ip = b.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        map.entry(format!("{}/{}", b.container_port, b.protocol.as_str()))
            .or_default()
            .push(serde_json::json!({ "HostIp": ip.to_string(), "HostPort": b.host_port().to_string() }));
    }
    serde_json::json!(map)
}

/// `kiln port CONTAINER [PORT[/PROTO]]`.
#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalOptions, args: PortArgs) -> anyhow::Result<ExitCode> {
    let runtime = executor::runtime::Store::open(&global.root)?;
    let mut container = runtime.find(&args.container)?;
    container.refresh()?;
    let ports = &container.state.ports;
    let Some(wanted) = args.port.as_deref() else {
        for binding in ports {
            println!("{}", binding.describe());
        }
        return Ok(ExitCode::SUCCESS);
    };
    let wanted_ports = parse_exposed(wanted)?;
    let [(port, protocol)] = wanted_ports.as_slice() else {
        bail!("invalid port {wanted:?}: one port, e.g. 80 or 80/udp");
    };
    let matching: Vec<&PortBinding> =
        ports.iter().filter(|b| b.container_port == *port && b.protocol == *protocol).collect();
    if matching.is_empty() {
        bail!("no public port '{port}/{}' published for {}", protocol.as_str(), args.container);
    }
    for binding in matching {
        println!("{}:{}", binding.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED), binding.host_port());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn publish_all_adds_exposed_ports_not_published_explicitly() {
        let bindings = requested(
            &strings(&["8080:80"]),
            true,
            &strings(&["53/udp", "90-91"]),
            &strings(&["80/tcp", "443"]),
        )
        .unwrap();
        let shown: Vec<(u16, u16, &str)> =
            bindings.iter().map(|b| (b.host_port(), b.container_port, b.protocol.as_str())).collect();
        assert_eq!(
            shown,
            [(8080, 80, "tcp"), (0, 53, "udp"), (0, 90, "tcp"), (0, 91, "tcp"), (0, 443, "tcp")]
        );
        let without = requested(&[], false, &strings(&["53/udp"]), &strings(&["80/tcp"])).unwrap();
        assert!(without.is_empty(), "EXPOSE alone publishes nothing");
        for bad in ["0", "80/icmp", "90-80", "x"] {
            assert!(requested(&[], true, &strings(&[bad]), &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn renderings_as_docker() {
        let mut bindings = parse_publish("127.0.0.1:8080:80").unwrap();
        bindings.extend(parse_publish("5353:53/udp").unwrap());
        assert_eq!(column(&bindings), "127.0.0.1:8080->80/tcp, 0.0.0.0:5353->53/udp");
        assert_eq!(
            inspect_value(&bindings),
            serde_json::json!({
                "80/tcp": [{ "HostIp": "127.0.0.1", "HostPort": "8080" }],
                "53/udp": [{ "HostIp": "0.0.0.0", "HostPort": "5353" }],
            })
        );
    }
}
