//! Debian's `docker-registry` (`/usr/bin/docker-registry`, `scripts/deps.sh` installs it) on
//! 127.0.0.1: it listens on a unix socket behind a TCP port this process bound
//! ([`crate::forward`]), so no port is picked and released; killed by PID and reaped on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::forward::UnixForward;

/// The user of [`Auth::Htpasswd`].
pub const USER: &str = "kiln";
/// The password of [`USER`].
pub const PASSWORD: &str = "s3cret-pw";

/// How the registry authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// Basic auth with [`USER`] / [`PASSWORD`].
    Htpasswd,
    /// Docker token auth: JWTs from `realm` for `service`, issued by `issuer` and signed by the
    /// key of the certificate `cert`.
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert: PathBuf,
    },
}

/// Whether upload locations the registry sends are relative (`/v2/…`) or absolute URLs: clients
/// must follow both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locations {
    Relative,
    Absolute,
}

/// A running `docker-registry` (deletes enabled).
#[derive(Debug)]
pub struct RegistryServer {
    child: Child,
    /// Where it serves HTTP.
    pub addr: SocketAddr,
    /// Its configuration, storage and log.
    pub dir: tempfile::TempDir,
    socket: PathBuf,
    _forward: UnixForward,
}

impl RegistryServer {
    /// A registry sending relative upload locations.
    pub fn start(auth: Auth) -> Self {
        Self::start_with(auth, Locations::Relative)
    }

    pub fn start_with(auth: Auth, locations: Locations) -> Self {
        let dir = tempfile::Builder::new().prefix("kiln-test-registry-").tempdir().unwrap();
        let socket = dir.path().join("registry.sock");
        let auth_section = match auth {
            Auth::None => String::new(),
            Auth::Htpasswd => {
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, htpasswd_line(USER, PASSWORD)).unwrap();
                format!("auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n", file.display())
            }
            Auth::Token { realm, service, issuer, cert } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                cert.display()
            ),
        };
        let relative = locations == Locations::Relative;
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
             rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  net: unix\n  addr: {}\n  relativeurls: {relative}\n{auth_section}",
            dir.path().join("data").display(),
            socket.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/docker-registry (apt-get install docker-registry)");
        let forward = UnixForward::start(socket.clone());
        let mut server = Self { child, addr: forward.addr, dir, socket, _forward: forward };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
                panic!("docker-registry exited with {status}: {log}");
            }
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("docker-registry did not listen on {} within 20 s", self.socket.display());
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An htpasswd line (bcrypt, from apache2-utils' `htpasswd`).
pub fn htpasswd_line(user: &str, password: &str) -> Vec<u8> {
    let output = Command::new("htpasswd").args(["-Bbn", user, password]).output().unwrap();
    assert!(output.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}
