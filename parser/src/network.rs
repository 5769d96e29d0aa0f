//! The network mode vocabulary, one type for every crate: `RUN --network`, `kiln build
//! --network` (BuildKit's values: `default`, `none`, `host`) and `kiln run --network` (docker's:
//! also `bridge`, what docker calls the default network). The sandbox (executor) and the build
//! graph (solver) use this type; its serialized form is the lowercase name.

use serde::{Deserialize, Serialize};

/// How a process is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A private namespace attached to the `kiln0` bridge through a veth pair, with NAT
    /// masquerade for outbound traffic (what build steps get).
    #[default]
    #[serde(alias = "Default")]
    Default,
    /// A private network namespace with only loopback up.
    #[serde(alias = "None")]
    None,
    /// The host's network namespace.
    #[serde(alias = "Host")]
    Host,
}

/// A network mode that is not one of the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network mode `{value}` ({expected})")]
pub struct UnknownNetworkMode {
    pub value: String,
    /// What was accepted: `expected default, none or host`.
    pub expected: &'static str,
}

impl NetworkMode {
    /// BuildKit's values, of `RUN --network` and `kiln build --network`: `default`, `none`,
    /// `host`.
    pub fn parse(value: &str) -> Result<NetworkMode, UnknownNetworkMode> {
        NetworkMode::parse_as(value, false)
    }

    /// docker run's values: BuildKit's and `bridge` (the default network).
    pub fn parse_run(value: &str) -> Result<NetworkMode, UnknownNetworkMode> {
        NetworkMode::parse_as(value, true)
    }

    fn parse_as(value: &str, bridge: bool) -> Result<NetworkMode, UnknownNetworkMode> {
        match value {
            "default" => Ok(NetworkMode::Default),
            "bridge" if bridge => Ok(NetworkMode::Default),
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            _ => Err(UnknownNetworkMode {
                value: value.to_owned(),
                expected: if bridge {
                    "expected default, bridge, none or host"
                } else {
                    "expected default, none or host"
                },
            }),
        }
    }

    /// The value as written (`default`, `none`, `host`).
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Default => "default",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        }
    }
}

impl std::str::FromStr for NetworkMode {
    type Err = UnknownNetworkMode;

    /// [`NetworkMode::parse`] (BuildKit's values).
    fn from_str(value: &str) -> Result<NetworkMode, UnknownNetworkMode> {
        NetworkMode::parse(value)
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_like_buildkit_and_docker_run() {
        let table = [
            ("default", Ok(NetworkMode::Default), Ok(NetworkMode::Default)),
            ("none", Ok(NetworkMode::None), Ok(NetworkMode::None)),
            ("host", Ok(NetworkMode::Host), Ok(NetworkMode::Host)),
            ("bridge", Err("expected default, none or host"), Ok(NetworkMode::Default)),
            ("Host", Err("expected default, none or host"), Err("expected default, bridge, none or host")),
            ("", Err("expected default, none or host"), Err("expected default, bridge, none or host")),
        ];
        for (value, build, run) in table {
            assert_eq!(NetworkMode::parse(value).map_err(|e| e.expected), build, "{value}");
            assert_eq!(NetworkMode::parse_run(value).map_err(|e| e.expected), run, "{value}");
            assert_eq!(value.parse::<NetworkMode>().map_err(|e| e.expected), build, "{value}");
        }
        assert_eq!(
            NetworkMode::parse("bridge").unwrap_err().to_string(),
            "unknown network mode `bridge` (expected default, none or host)"
        );
    }

    #[test]
    fn serialized_lowercase_and_read_from_either_case() {
        assert_eq!(serde_json::to_string(&NetworkMode::Host).unwrap(), "\"host\"");
        assert_eq!(serde_json::to_string(&NetworkMode::Default).unwrap(), "\"default\"");
        // container records written before the one type held `"Default"`, `"None"`, `"Host"`
        for (text, mode) in [("\"Default\"", NetworkMode::Default), ("\"none\"", NetworkMode::None)] {
            assert_eq!(serde_json::from_str::<NetworkMode>(text).unwrap(), mode);
        }
        for mode in [NetworkMode::Default, NetworkMode::None, NetworkMode::Host] {
            assert_eq!(mode.to_string().parse::<NetworkMode>(), Ok(mode));
        }
    }
}
