//! `kiln build`'s flags for the build steps' sandbox and for what the build may do, with
//! buildx's syntax: `--allow`, `--ulimit`, `--shm-size`, `--add-host`, `--cgroup-parent`, and
//! `--provenance` / `--sbom` / `--attest` (only turning attestations off is accepted).

use std::net::IpAddr;

use anyhow::{Context, bail};
use solver::build::Entitlements;
use solver::export::Annotations;
use solver::graph::{ExecSandbox, ExtraHost, Ulimit};

/// The flags (flattened into `kiln build`'s arguments).
#[derive(Debug, Default, clap::Args)]
pub struct SandboxFlags {
    /// Allow an entitlement: `network.host` (`RUN --network=host`), `security.insecure`
    /// (`RUN --security=insecure`); repeatable.
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,
    /// Resource limit of RUN steps, docker's syntax `NAME=SOFT[:HARD]` (`nofile=1024:2048`);
    /// repeatable. Hard limits cannot exceed kiln's own unless it has `CAP_SYS_RESOURCE`.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Size of `/dev/shm` in RUN steps (`128m`, `1g`, bytes; default 64m).
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// `/etc/hosts` entry of RUN steps, `NAME:IP` (`IP` may be `host-gateway`); repeatable.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// cgroup the RUN steps' cgroups are made under (a cgroupfs path).
    #[arg(long = "cgroup-parent", value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// Provenance attestation: only `false` is accepted (kiln makes no attestations yet).
    #[arg(long = "provenance", value_name = "false")]
    pub provenance: Option<String>,
    /// SBOM attestation: only `false` is accepted (kiln makes no attestations yet).
    #[arg(long = "sbom", value_name = "false")]
    pub sbom: Option<String>,
    /// Attestation (`type=provenance|sbom,...`): only `disabled=true` is accepted.
    #[arg(long = "attest", value_name = "type=...")]
    pub attest: Vec<String>,
    /// OCI annotation `[TYPE[,TYPE][PLATFORM]:]KEY=VALUE`, TYPE `manifest` (default) or
    /// `manifest-descriptor` (`index` ones need a multi-platform build); repeatable.
    #[arg(long = "annotation", value_name = "[TYPE:]KEY=VALUE")]
    pub annotation: Vec<String>,
}

impl SandboxFlags {
    /// What the build may do (`--allow`).
    pub fn entitlements(&self) -> anyhow::Result<Entitlements> {
        Entitlements::parse(&self.allow).context("invalid --allow")
    }

    /// Every RUN's sandbox settings.
    pub fn sandbox(&self) -> anyhow::Result<ExecSandbox> {
        check_attestations(self)?;
        let mut ulimits: Vec<Ulimit> = Vec::new();
        for spec in &self.ulimit {
            let ulimit = parse_ulimit(spec)?;
            // a later one of the same name replaces the earlier (docker keeps one per name)
            ulimits.retain(|u| u.name != ulimit.name);
            ulimits.push(ulimit);
        }
        let shm_size = match &self.shm_size {
            Some(text) => {
                let bytes = super::run::parse_bytes(text).context("invalid --shm-size")?;
                if bytes == 0 {
                    bail!("invalid --shm-size {text:?}: must be greater than 0");
                }
                Some(bytes)
            }
            None => None,
        };
        if let Some(parent) = &self.cgroup_parent {
            executor::cgroup::parent_path(parent).context("invalid --cgroup-parent")?;
        }
        let extra_hosts = self.add_host.iter().map(|h| parse_add_host(h)).collect::<anyhow::Result<_>>()?;
        Ok(ExecSandbox {
            insecure: false,
            ulimits,
            shm_size,
            cgroup_parent: self.cgroup_parent.clone(),
            extra_hosts,
        })
    }
}

/// buildx's `--annotation [TYPE[,TYPE…][PLATFORM]:]KEY=VALUE` for a build of `platform`
/// (`os/arch[/variant]`).
pub fn parse_annotations(specs: &[String], platform: &str) -> anyhow::Result<Annotations> {
    let mut annotations = Annotations::default();
    for spec in specs {
        let Some((key, value)) = spec.split_once('=') else {
            bail!("invalid annotation {spec:?}, expected key=value");
        };
        let (types, key) = match key.split_once(':') {
            // `org.opencontainers.image.url=https://…` has its `:` in the value, not here
            Some((types, key)) if !types.contains('.') => (types, key),
            _ => ("", key),
        };
        if key.is_empty() {
            bail!("invalid annotation {spec:?}, expected key=value");
        }
        let (types, wanted_platform) = match types.split_once('[') {
            Some((types, rest)) => {
                let Some(wanted) = rest.strip_suffix(']') else {
                    bail!("invalid annotation {spec:?}: unterminated platform");
                };
                (types, Some(wanted))
            }
            None => (types, None),
        };
        if let Some(wanted) = wanted_platform
            && wanted != platform
        {
            bail!("invalid annotation: no platform {wanted} found in source");
        }
        let types: Vec<&str> = if types.is_empty() { vec!["manifest"] } else { types.split(',').collect() };
        for kind in types {
            match kind.trim() {
                "manifest" => annotations.manifest.insert(key.to_owned(), value.to_owned()),
                "manifest-descriptor" => {
                    annotations.manifest_descriptor.insert(key.to_owned(), value.to_owned())
                }
                // BuildKit's text: a single-platform image has no index
                "index" | "index-descriptor" => {
                    bail!("index annotations not supported for single platform export")
                }
                other => bail!("unrecognized annotation type {other}"),
            };
        }
    }
    Ok(annotations)
}

/// The message for any attestation asked for.
const NO_ATTESTATIONS: &str = "attestations are not supported by kiln yet";

/// `--provenance=false`, `--sbom=false` and `--attest type=…,disabled=true` turn attestations
/// off (kiln makes none); anything asking for one fails.
fn check_attestations(flags: &SandboxFlags) -> anyhow::Result<()> {
    for (flag, value) in [("provenance", &flags.provenance), ("sbom", &flags.sbom)] {
        let Some(value) = value else { continue };
        let off = match value.trim().to_ascii_lowercase().as_str() {
            "false" | "0" => true,
            other => other.split(',').any(|field| field == "disabled=true"),
        };
        if !off {
            bail!("--{flag}={value}: {NO_ATTESTATIONS} (use --{flag}=false)");
        }
    }
    for spec in &flags.attest {
        if !spec.split(',').any(|field| field.trim() == "disabled=true") {
            bail!("--attest {spec}: {NO_ATTESTATIONS} (only `disabled=true` is accepted)");
        }
    }
    Ok(())
}

/// docker's `--ulimit NAME=SOFT[:HARD]` (`-1` = unlimited; HARD defaults to SOFT).
pub fn parse_ulimit(spec: &str) -> anyhow::Result<Ulimit> {
    let Some((name, values)) = spec.split_once('=') else {
        bail!("invalid ulimit argument: {spec}");
    };
    if executor::RlimitResource::from_name(name).is_none() {
        let names: Vec<&str> = executor::RlimitResource::ALL.iter().map(|(n, _)| *n).collect();
        bail!("invalid ulimit type: {name} (one of {})", names.join(", "));
    }
    let parts: Vec<&str> = values.split(':').collect();
    if parts.len() > 2 {
        bail!("too many limit value arguments - {values}, can only have up to two, `soft[:hard]`");
    }
    let number = |text: &str| -> anyhow::Result<i64> {
        let value: i64 =
            text.parse().with_context(|| format!("invalid ulimit value {text:?} in {spec:?}"))?;
        if value < -1 {
            bail!("invalid ulimit value {text:?} in {spec:?}: -1 (unlimited) or a count");
        }
        Ok(value)
    };
    let soft = number(parts[0])?;
    let hard = match parts.get(1) {
        Some(text) => number(text)?,
        None => soft,
    };
    let as_unsigned = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
    if as_unsigned(soft) > as_unsigned(hard) {
        bail!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
    }
    Ok(Ulimit { name: name.to_owned(), soft, hard })
}

/// docker's `--add-host NAME:IP` (or `NAME=IP`; `IP` may be IPv6 or `host-gateway`).
pub fn parse_add_host(spec: &str) -> anyhow::Result<ExtraHost> {
    let bad = || {
        anyhow::anyhow!(
            "invalid argument {spec:?} for \"--add-host\" flag: bad format for add-host: {spec:?}"
        )
    };
    let (name, ip) = match (spec.find('='), spec.find(':')) {
        (Some(eq), Some(colon)) if eq < colon => spec.split_at(eq),
        (Some(eq), None) => spec.split_at(eq),
        (_, Some(colon)) => spec.split_at(colon),
        (None, None) => return Err(bad()),
    };
    let ip = &ip[1..];
    let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad());
    }
    if ip != solver::runner::exec::HOST_GATEWAY && ip.parse::<IpAddr>().is_err() {
        bail!("invalid argument {spec:?} for \"--add-host\" flag: invalid IP address in add-host: {ip:?}");
    }
    Ok(ExtraHost { name: name.to_owned(), ip: ip.to_owned() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_like_docker() {
        let table = [
            ("nofile=1024:2048", ("nofile", 1024, 2048)),
            ("nofile=1062", ("nofile", 1062, 1062)),
            ("core=-1", ("core", -1, -1)),
            ("nproc=10:-1", ("nproc", 10, -1)),
        ];
        for (spec, (name, soft, hard)) in table {
            assert_eq!(parse_ulimit(spec).unwrap(), Ulimit { name: name.into(), soft, hard }, "{spec}");
        }
        let errors = [
            ("nofile", "invalid ulimit argument"),
            ("bogus=1", "invalid ulimit type: bogus"),
            ("nofile=1:2:3", "too many limit value arguments"),
            ("nofile=2048:1024", "soft limit must be less than or equal to hard limit"),
            ("nofile=-1:1024", "soft limit must be less than or equal to hard limit"),
            ("nofile=x", "invalid ulimit value"),
            ("nofile=-5", "invalid ulimit value"),
        ];
        for (spec, message) in errors {
            let err = parse_ulimit(spec).unwrap_err().to_string();
            assert!(err.contains(message), "{spec}: {err}");
        }
    }

    #[test]
    fn add_hosts_parse_like_docker() {
        let table = [
            ("db:10.0.0.5", ("db", "10.0.0.5")),
            ("db=10.0.0.5", ("db", "10.0.0.5")),
            ("v6:::1", ("v6", "::1")),
            ("v6=[fe80::1]", ("v6", "fe80::1")),
            ("gw:host-gateway", ("gw", "host-gateway")),
        ];
        for (spec, (name, ip)) in table {
            assert_eq!(
                parse_add_host(spec).unwrap(),
                ExtraHost { name: name.into(), ip: ip.into() },
                "{spec}"
            );
        }
        for bad in ["nohost", ":1.2.3.4", "db:notanip", "db:"] {
            assert!(parse_add_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attestations_only_turn_off() {
        let flags = |provenance: Option<&str>, sbom: Option<&str>, attest: &[&str]| SandboxFlags {
            provenance: provenance.map(Into::into),
            sbom: sbom.map(Into::into),
            attest: attest.iter().map(|a| (*a).to_owned()).collect(),
            ..SandboxFlags::default()
        };
        check_attestations(&flags(Some("false"), Some("0"), &["type=sbom,disabled=true"])).unwrap();
        for asked in [
            flags(Some("true"), None, &[]),
            flags(Some("mode=max"), None, &[]),
            flags(None, Some("true"), &[]),
            flags(None, None, &["type=provenance,mode=max"]),
        ] {
            let err = check_attestations(&asked).unwrap_err().to_string();
            assert!(err.contains("attestations are not supported by kiln yet"), "{err}");
        }
    }

    #[test]
    fn annotations_parse_like_buildx() {
        let specs: Vec<String> = [
            "a=1",
            "manifest:b=2",
            "manifest,manifest-descriptor:c=3",
            "manifest-descriptor[linux/amd64]:d=4",
            "org.opencontainers.image.url=https://x.test/y",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let parsed = parse_annotations(&specs, "linux/amd64").unwrap();
        let keys = |map: &std::collections::BTreeMap<String, String>| map.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&parsed.manifest), ["a", "b", "c", "org.opencontainers.image.url"]);
        assert_eq!(parsed.manifest["org.opencontainers.image.url"], "https://x.test/y");
        assert_eq!(keys(&parsed.manifest_descriptor), ["c", "d"]);
        let errors = [
            ("index:x=1", "index annotations not supported for single platform export"),
            ("index-descriptor:x=1", "index annotations not supported for single platform export"),
            ("bogus:x=1", "unrecognized annotation type bogus"),
            ("novalue", "expected key=value"),
            ("manifest[linux/arm64]:x=1", "no platform linux/arm64 found in source"),
        ];
        for (spec, message) in errors {
            let err = parse_annotations(&[spec.to_owned()], "linux/amd64").unwrap_err().to_string();
            assert!(err.contains(message), "{spec}: {err}");
        }
    }

    #[test]
    fn sizes_and_parents() {
        let flags = SandboxFlags {
            shm_size: Some("128m".into()),
            cgroup_parent: Some("/ci/builds".into()),
            ulimit: vec!["nofile=10".into(), "nofile=20:30".into()],
            ..SandboxFlags::default()
        };
        let sandbox = flags.sandbox().unwrap();
        assert_eq!(sandbox.shm_size, Some(128 << 20));
        assert_eq!(sandbox.ulimits, vec![Ulimit { name: "nofile".into(), soft: 20, hard: 30 }]);
        for bad in [
            SandboxFlags { shm_size: Some("0".into()), ..SandboxFlags::default() },
            SandboxFlags { shm_size: Some("12q".into()), ..SandboxFlags::default() },
            SandboxFlags { cgroup_parent: Some("../escape".into()), ..SandboxFlags::default() },
            SandboxFlags { cgroup_parent: Some("user.slice:".into()), ..SandboxFlags::default() },
        ] {
            assert!(bad.sandbox().is_err(), "{bad:?}");
        }
    }
}
