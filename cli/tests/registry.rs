#![allow(clippy::unwrap_used)]
//! `kiln push`, `kiln pull`, `kiln login` and `kiln logout` end to end against Debian's real
//! `docker-registry` (on a unix socket behind a 127.0.0.1 port this test binds once, killed by
//! PID on drop): a busybox image
//! imported with `kiln import` is pushed (skopeo sees the same manifest digest), pulled into an
//! empty store and run; with htpasswd auth, `kiln login` writes docker's `config.json` (which
//! skopeo reads), and `kiln logout` removes the entry. Each test has its own `--root`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use testkit::registry::{Auth, Locations, PASSWORD, RegistryServer, USER};
use testkit::{Kiln, run};

/// What these tests do with a root besides running kiln.
trait KilnExt {
    fn login(&self, server: &str, user: &str, password: &str) -> Output;
    fn import_busybox_as(&self, name: &str);
}

impl KilnExt for Kiln {
    /// `kiln login` with the password on stdin.
    fn login(&self, server: &str, user: &str, password: &str) -> Output {
        let mut child = self
            .cmd(&["login", "-u", user, "--password-stdin", server])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Imports the busybox base as `name`.
    fn import_busybox_as(&self, name: &str) {
        self.import_busybox(name, &[r#"CMD ["sh"]"#]);
    }
}

/// A registry sending absolute upload locations (the registry crate's tests use relative ones).
fn registry(auth: Auth) -> RegistryServer {
    RegistryServer::start_with(auth, Locations::Absolute)
}

/// The manifest digest skopeo reads from the registry.
fn skopeo_digest(reference: &str, extra: &[&str]) -> String {
    let json = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .args(extra)
        .arg(format!("docker://{reference}")));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["Digest"].as_str().unwrap().to_owned()
}

#[test]
fn push_then_pull_and_run() {
    testkit::require_root!();
    let registry = registry(Auth::None);
    let tmp = tempfile::tempdir().unwrap();
    let src = Kiln::in_dir(tmp.path(), "src");
    let image = format!("{}/cli/busybox:1", registry.host());
    src.import_busybox_as(&image);

    let (stdout, stderr) = src.ok_both(&["push", &image]);
    let digest = stdout.trim().to_owned();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{stdout}");
    assert!(stderr.contains(&format!("The push refers to repository [{}/cli/busybox]", registry.host())));
    // One line per blob (layer and config), like docker.
    assert_eq!(stderr.lines().filter(|l| l.ends_with(": Pushed")).count(), 2, "{stderr}");
    assert!(stderr.contains(&format!("1: digest: {digest} size: ")), "{stderr}");
    assert_eq!(skopeo_digest(&image, &[]), digest);

    // Pushing again uploads nothing.
    let (_, stderr) = src.ok_both(&["push", &image]);
    assert_eq!(stderr.lines().filter(|l| l.ends_with(": Layer already exists")).count(), 2, "{stderr}");

    // Pull into an empty store: per-layer lines, the digest, then a run-able image.
    let dst = Kiln::in_dir(tmp.path(), "dst");
    let (stdout, stderr) = dst.ok_both(&["pull", &image]);
    assert_eq!(stdout.trim(), image);
    assert_eq!(stderr.lines().filter(|l| l.ends_with(": Pull complete")).count(), 2, "{stderr}");
    assert!(stderr.contains(&format!("Digest: {digest}")), "{stderr}");
    assert!(stderr.contains(&format!("Status: Downloaded newer image for {image}")), "{stderr}");
    let (stdout, _) = dst.ok_both(&["run", "--rm", "--network", "none", &image, "echo", "hello from pulled"]);
    assert_eq!(stdout, "hello from pulled\n");

    // Again: up to date; -q prints only the name.
    let (_, stderr) = dst.ok_both(&["pull", &image]);
    assert!(stderr.contains("Status: Image is up to date"), "{stderr}");
    let (stdout, stderr) = dst.ok_both(&["pull", "-q", &image]);
    assert_eq!((stdout.as_str(), stderr.as_str()), (format!("{image}\n").as_str(), ""));

    // A platform the image is not for, a missing tag, a bad reference: one clear error each.
    let other = Kiln::in_dir(tmp.path(), "other");
    let err = other.fails(&["pull", "--platform", "linux/arm64", &image]);
    assert!(err.contains("linux/arm64") && err.contains("cli/busybox:1"), "{err}");
    let err = other.fails(&["pull", &format!("{}/cli/busybox:nope", registry.host())]);
    assert!(err.contains("cli/busybox:nope"), "{err}");
    let err = other.fails(&["pull", "UPPER/case"]);
    assert!(err.to_lowercase().contains("upper/case"), "{err}");
    let err = other.fails(&["push", &format!("{}/cli/absent:1", registry.host())]);
    assert!(err.contains("cli/absent:1"), "{err}");
}

#[test]
fn login_writes_docker_config_and_logout_removes_it() {
    testkit::require_root!();
    let registry = registry(Auth::Htpasswd);
    let host = registry.host();
    let tmp = tempfile::tempdir().unwrap();
    let kiln = Kiln::in_dir(tmp.path(), "root");
    let image = format!("{host}/private/busybox:1");
    kiln.import_busybox_as(&image);
    let config_file = kiln.docker_config.join("config.json");

    let err = kiln.fails(&["push", &image]);
    assert!(err.contains("private/busybox:1") && err.contains("kiln login"), "{err}");

    let out = kiln.login(&host, USER, "wrong");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&host) && err.contains("rejected"), "{err}");
    assert!(!config_file.exists());

    // docker's config.json, with other settings kept.
    std::fs::create_dir_all(&kiln.docker_config).unwrap();
    std::fs::write(&config_file, r#"{"auths": {}, "detachKeys": "ctrl-x"}"#).unwrap();
    let out = kiln.login(&format!("http://{host}/"), USER, PASSWORD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded\n");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_file).unwrap()).unwrap();
    let auth = config["auths"][host.as_str()]["auth"].as_str().unwrap();
    let decoded = run(Command::new("sh").arg("-c").arg(format!("printf %s '{auth}' | base64 -d")));
    assert_eq!(decoded, format!("{USER}:{PASSWORD}"));
    assert_eq!(config["detachKeys"], "ctrl-x");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&config_file).unwrap().permissions().mode() & 0o777, 0o600);

    let (stdout, _) = kiln.ok_both(&["push", "-q", &image]);
    let digest = stdout.trim().to_owned();
    // skopeo reads the same file.
    let authfile = config_file.to_str().unwrap();
    assert_eq!(skopeo_digest(&image, &["--authfile", authfile]), digest);
    let other = kiln.sibling("other");
    let (stdout, _) = other.ok_both(&["pull", "-q", &image]);
    assert_eq!(stdout.trim(), image);

    let (stdout, _) = kiln.ok_both(&["logout", &host]);
    assert_eq!(stdout, format!("Removing login credentials for {host}\n"));
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_file).unwrap()).unwrap();
    assert!(config["auths"].get(host.as_str()).is_none(), "{config}");
    let (stdout, _) = kiln.ok_both(&["logout", &host]);
    assert_eq!(stdout, format!("Not logged in to {host}\n"));
    let third = kiln.sibling("third");
    let err = third.fails(&["pull", &image]);
    assert!(err.contains("private/busybox:1") && err.contains("kiln login"), "{err}");
}

/// The largest blob of a store (the busybox layer).
fn largest_blob(kiln: &Kiln) -> (String, PathBuf) {
    let dir = kiln.root.join("content/blobs/sha256");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    (format!("sha256:{}", path.file_name().unwrap().to_str().unwrap()), path)
}

/// Flips one byte in the middle of a file (same size, other content).
fn flip_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn pull_and_system_check_repair_a_damaged_store() {
    testkit::require_root!();
    let registry = registry(Auth::None);
    let tmp = tempfile::tempdir().unwrap();
    let src = Kiln::in_dir(tmp.path(), "src");
    let image = format!("{}/repair/busybox:1", registry.host());
    src.import_busybox_as(&image);
    src.ok_both(&["push", &image]);
    let dst = Kiln::in_dir(tmp.path(), "dst");
    dst.ok_both(&["pull", &image]);
    let (stdout, _) = dst.ok_both(&["system", "check"]);
    assert!(stdout.contains("checked 3 blobs") && stdout.contains("store is consistent"), "{stdout}");

    // A layer damaged on disk: check reports it (exit 1), pull verifies and fetches it again.
    let (layer, path) = largest_blob(&dst);
    flip_byte(&path);
    let out = dst.output(&["system", "check"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("damaged: blob {layer} content hashes to")), "{stdout}");
    assert!(stdout.contains(&format!("damaged: image {image} lacks intact content: {layer}")), "{stdout}");
    let (_, stderr) = dst.ok_both(&["pull", &image]);
    assert!(stderr.contains(&format!("Repaired: {layer} was damaged")), "{stderr}");
    assert!(!stderr.contains("Image is up to date"), "{stderr}");
    assert!(dst.ok_both(&["system", "check"]).0.contains("store is consistent"));
    let (stdout, _) = dst.ok_both(&["run", "--rm", "--network", "none", &image, "echo", "repaired"]);
    assert_eq!(stdout, "repaired\n");

    // Damaged again, and its manifest too: --repair removes both and fetches them from the
    // registry they were pulled from; the image keeps its name.
    flip_byte(&path);
    let (manifest, manifest_path) = manifest_blob(&dst);
    flip_byte(&manifest_path);
    let (stdout, _) = dst.ok_both(&["system", "check", "--repair"]);
    for digest in [&layer, &manifest] {
        assert!(stdout.contains(&format!("removed blob {digest}")), "{stdout}");
        assert!(
            stdout.contains(&format!("fetched {digest} again from {}/repair/busybox", registry.host())),
            "{stdout}"
        );
    }
    assert!(stdout.contains("store repaired: consistent"), "{stdout}");
    assert!(dst.ok_both(&["images"]).0.contains(&format!("{}/repair/busybox", registry.host())));
    assert!(dst.ok_both(&["system", "check"]).0.contains("store is consistent"));

    // Content with no known source (imported locally) cannot be fetched: the name goes, so
    // that the next build or pull makes it again, and the store is consistent.
    let local = Kiln::in_dir(tmp.path(), "local");
    local.import_busybox_as("local/busybox:1");
    let (local_layer, local_path) = largest_blob(&local);
    flip_byte(&local_path);
    let (stdout, _) = local.ok_both(&["system", "check", "--repair"]);
    assert!(stdout.contains(&format!("cannot fetch {local_layer} again: no registry is known")), "{stdout}");
    assert!(stdout.contains("removed image docker.io/local/busybox:1"), "{stdout}");
    assert!(stdout.contains("store repaired: consistent"), "{stdout}");
    assert!(!local.ok_both(&["images"]).0.contains("local/busybox"));
}

/// The image manifest blob of a store holding one image.
fn manifest_blob(kiln: &Kiln) -> (String, PathBuf) {
    let dir = kiln.root.join("content/blobs/sha256");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read(p).unwrap().windows(8).any(|w| w == b"\"layers\""))
        .unwrap();
    (format!("sha256:{}", path.file_name().unwrap().to_str().unwrap()), path)
}
