//! `--allow`: BuildKit's entitlements. A build step may run privileged (`RUN
//! --security=insecure`) or in the host's network namespace (`RUN --network=host`) only when
//! the build allows it; the whole definition is checked before anything runs, as BuildKit
//! checks it when it loads the LLB.

use crate::graph::{Definition, ExecOp, NetworkMode, Op};

/// An entitlement's name, as `--allow` takes it.
pub const NETWORK_HOST: &str = "network.host";
pub const SECURITY_INSECURE: &str = "security.insecure";

/// What the build allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entitlements {
    /// `network.host`: `RUN --network=host` (and `--network=host` for every RUN).
    pub network_host: bool,
    /// `security.insecure`: `RUN --security=insecure`.
    pub security_insecure: bool,
}

/// A step asks for what the build does not allow, or `--allow` names something unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntitlementError {
    /// BuildKit's text (`entitlement network.host is not allowed`), and the flag that allows it.
    #[error("entitlement {name} is not allowed: {what} needs `--allow {name}`")]
    NotAllowed { name: &'static str, what: &'static str },
    #[error("unknown entitlement {0}")]
    Unknown(String),
    #[error("entitlement device is not supported by kiln (it has no CDI devices)")]
    Device,
}

impl Entitlements {
    /// `--allow` values (each may hold several, comma-separated).
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Entitlements, EntitlementError> {
        let mut allowed = Entitlements::default();
        for value in values.iter().flat_map(|v| v.as_ref().split(',')).map(str::trim) {
            match value {
                NETWORK_HOST => allowed.network_host = true,
                SECURITY_INSECURE => allowed.security_insecure = true,
                "device" => return Err(EntitlementError::Device),
                other if other.starts_with("device=") => return Err(EntitlementError::Device),
                other => return Err(EntitlementError::Unknown(other.to_owned())),
            }
        }
        Ok(allowed)
    }

    /// Whether `exec` may run.
    pub fn check(&self, exec: &ExecOp) -> Result<(), EntitlementError> {
        if exec.network == NetworkMode::Host && !self.network_host {
            return Err(EntitlementError::NotAllowed { name: NETWORK_HOST, what: "RUN --network=host" });
        }
        if exec.sandbox.insecure && !self.security_insecure {
            return Err(EntitlementError::NotAllowed {
                name: SECURITY_INSECURE,
                what: "RUN --security=insecure",
            });
        }
        Ok(())
    }

    /// Checks every exec op of `definition`.
    pub fn check_definition(&self, definition: &Definition) -> Result<(), EntitlementError> {
        for vertex in &definition.vertices {
            if let Op::Exec(exec) = &vertex.op {
                self.check(exec)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::graph::{ExecSandbox, Mount};

    fn exec(network: NetworkMode, insecure: bool) -> ExecOp {
        ExecOp {
            args: vec!["true".into()],
            env: vec![],
            proxy_env: vec![],
            cwd: "/".into(),
            user: String::new(),
            hostname: None,
            network,
            mounts: vec![Mount::rootfs()],
            sandbox: ExecSandbox { insecure, ..ExecSandbox::default() },
        }
    }

    #[test]
    fn parses_allow_values() {
        let all = Entitlements::parse(&["network.host,security.insecure"]).unwrap();
        assert_eq!(all, Entitlements { network_host: true, security_insecure: true });
        assert_eq!(Entitlements::parse::<&str>(&[]).unwrap(), Entitlements::default());
        assert_eq!(
            Entitlements::parse(&["network.hots"]).unwrap_err().to_string(),
            "unknown entitlement network.hots"
        );
        assert_eq!(Entitlements::parse(&["device"]).unwrap_err(), EntitlementError::Device);
    }

    #[test]
    fn steps_need_their_entitlement() {
        let none = Entitlements::default();
        none.check(&exec(NetworkMode::Default, false)).unwrap();
        none.check(&exec(NetworkMode::None, false)).unwrap();
        let host = none.check(&exec(NetworkMode::Host, false)).unwrap_err().to_string();
        assert!(host.contains("entitlement network.host is not allowed"), "{host}");
        let insecure = none.check(&exec(NetworkMode::Default, true)).unwrap_err().to_string();
        assert!(insecure.contains("entitlement security.insecure is not allowed"), "{insecure}");
        let allowed = Entitlements { network_host: true, security_insecure: true };
        allowed.check(&exec(NetworkMode::Host, true)).unwrap();
        // one does not grant the other
        let only_host = Entitlements { network_host: true, ..Entitlements::default() };
        assert!(only_host.check(&exec(NetworkMode::Host, true)).is_err());
    }
}
