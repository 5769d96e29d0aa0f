//! A real `docker-registry` for tests (Debian's, on a unix socket behind a 127.0.0.1 port
//! bound once, killed by PID on drop). Used by `tests/registry.rs` and
//! `tests/build_cache_remote.rs` (`#[path]`-included).
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../registry/tests/support/forward.rs"]
mod forward;

pub const USER: &str = "kiln";
pub const PASSWORD: &str = "cli-s3cret";

/// A `docker-registry` process on 127.0.0.1; killed and reaped on drop.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    _forward: forward::UnixForward,
}

impl Registry {
    pub fn start(htpasswd: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("registry.sock");
        let mut auth = String::new();
        if htpasswd {
            let out = Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]).output().unwrap();
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            auth = format!("auth:\n  htpasswd:\n    realm: kiln-cli\n    path: {}\n", file.display());
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
             rootdirectory: {}\nhttp:\n  net: unix\n  addr: {}\n{auth}",
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
        let forward = forward::UnixForward::start(socket.clone());
        let mut registry = Self { child, addr: forward.addr, dir, _forward: forward };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = registry.child.try_wait().unwrap() {
                let log =
                    std::fs::read_to_string(registry.dir.path().join("registry.log")).unwrap_or_default();
                panic!("docker-registry exited with {status}: {log}");
            }
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return registry;
            }
            assert!(Instant::now() < deadline, "docker-registry did not listen on {}", socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
