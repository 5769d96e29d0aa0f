//! Registry credentials in docker's `config.json` format.
//!
//! kiln reads and writes docker's file, like docker and podman do: `$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json` (`kiln login` adds an entry, `kiln logout` removes it, so
//! `docker login` and `kiln login` share credentials). `$KILN_AUTH_FILE` names another file to
//! use instead; docker's file is then still read (never written) as a fallback.
//!
//! The shape is docker's, `{"auths": {"<registry>": {"auth": base64("user:password")}}}`. Keys
//! are matched by host name: `https://` and paths are ignored, and Docker Hub's
//! `https://index.docker.io/v1/` (which `kiln login` writes, like docker) matches `docker.io`.
//! Credential helpers (`credsStore`, `credHelpers`) are not run, but are kept in the file.
//! The file is written atomically (temp file + fsync + rename) with mode 0600; keys kiln does
//! not know are kept.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The key docker uses for Docker Hub in `auths`.
const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A username and password (or token used as password) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where credentials are read from and written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The file read first, and the only one written (docker's `config.json` by default).
    pub file: PathBuf,
    /// A file read after `file`, never written (docker's when `$KILN_AUTH_FILE` is set).
    pub fallback: Option<PathBuf>,
}

/// What [`AuthConfig::remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// The entry was removed from [`AuthConfig::file`].
    Removed,
    /// The written file has no entry; the fallback file (not touched) has one.
    OnlyInFallback(PathBuf),
    /// No entry anywhere.
    NotLoggedIn,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigFile {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

impl AuthConfig {
    /// The default locations, from the environment (see the module docs).
    pub fn from_env() -> Self {
        let docker_file = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("config.json"),
            _ => std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
                .join(".docker/config.json"),
        };
        match std::env::var_os("KILN_AUTH_FILE") {
            Some(file) if !file.is_empty() => Self { file: PathBuf::from(file), fallback: Some(docker_file) },
            _ => Self { file: docker_file, fallback: None },
        }
    }

    /// Credentials for `registry` (`docker.io`, `localhost:5000`), if any file has them.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        for path in std::iter::once(&self.file).chain(self.fallback.as_ref()) {
            let Some(config) = read_config(path)? else { continue };
            if let Some((_, entry)) = config.auths.iter().find(|(key, _)| key_matches(key, registry)) {
                if let Some(credentials) = entry.credentials(path)? {
                    return Ok(Some(credentials));
                }
            } else if config.other.contains_key("credsStore") || config.other.contains_key("credHelpers") {
                tracing::debug!(path = %path.display(), "credential helpers are not supported; ignoring them");
            }
        }
        Ok(None)
    }

    /// Stores credentials for `registry` in [`AuthConfig::file`].
    pub fn store(&self, registry: &str, credentials: &Credentials) -> Result<()> {
        let mut config = read_config(&self.file)?.unwrap_or_default();
        config.auths.retain(|key, _| !key_matches(key, registry));
        let token = BASE64.encode(format!("{}:{}", credentials.username, credentials.password));
        config.auths.insert(auth_key(registry), AuthEntry { auth: Some(token), ..AuthEntry::default() });
        write_config(&self.file, &config)
    }

    /// Removes the credentials of `registry` from [`AuthConfig::file`].
    pub fn remove(&self, registry: &str) -> Result<Removal> {
        if let Some(mut config) = read_config(&self.file)? {
            let before = config.auths.len();
            config.auths.retain(|key, _| !key_matches(key, registry));
            if config.auths.len() != before {
                write_config(&self.file, &config)?;
                return Ok(Removal::Removed);
            }
        }
        if let Some(fallback) = &self.fallback
            && let Some(config) = read_config(fallback)?
            && config.auths.keys().any(|key| key_matches(key, registry))
        {
            return Ok(Removal::OnlyInFallback(fallback.clone()));
        }
        Ok(Removal::NotLoggedIn)
    }
}

impl AuthEntry {
    fn credentials(&self, path: &Path) -> Result<Option<Credentials>> {
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let invalid = || Error::Config {
                path: path.to_owned(),
                problem: "an `auth` value is not base64 of user:password".into(),
            };
            let decoded = BASE64.decode(auth.trim()).map_err(|_| invalid())?;
            let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
            let (username, password) = decoded.split_once(':').ok_or_else(invalid)?;
            return Ok(Some(Credentials { username: username.to_owned(), password: password.to_owned() }));
        }
        match (&self.username, &self.password) {
            (Some(username), Some(password)) => {
                Ok(Some(Credentials { username: username.clone(), password: password.clone() }))
            }
            _ => Ok(None),
        }
    }
}

/// The host part of an `auths` key: `https://index.docker.io/v1/` → `index.docker.io`.
fn key_host(key: &str) -> &str {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn is_docker_hub(host: &str) -> bool {
    matches!(host, "docker.io" | "index.docker.io" | "registry-1.docker.io")
}

fn key_matches(key: &str, registry: &str) -> bool {
    let host = key_host(key);
    host == registry || (is_docker_hub(host) && is_docker_hub(registry))
}

/// The key `kiln login` writes for `registry` (docker's choice).
fn auth_key(registry: &str) -> String {
    if is_docker_hub(registry) { DOCKER_HUB_AUTH_KEY.to_owned() } else { registry.to_owned() }
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io("read", path, err)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(ConfigFile::default()));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| Error::Config { path: path.to_owned(), problem: err.to_string() })
}

/// Writes `config` to `path` atomically with mode 0600 (directory created 0700).
fn write_config(path: &Path, config: &ConfigFile) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("create", dir, e))?;
    let mut bytes = serde_json::to_vec_pretty(config)
        .map_err(|err| Error::Config { path: path.to_owned(), problem: err.to_string() })?;
    bytes.push(b'\n');
    let mut temp = tempfile::Builder::new()
        .prefix(".auth-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temp file in", dir, e))?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("chmod", temp.path(), e))?;
    temp.write_all(&bytes).map_err(|e| Error::io("write", temp.path().to_owned(), e))?;
    temp.as_file().sync_all().map_err(|e| Error::io("fsync", temp.path().to_owned(), e))?;
    temp.persist(path).map_err(|e| Error::io("rename into", path, e.error))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("fsync", dir, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn config(dir: &Path) -> AuthConfig {
        AuthConfig { file: dir.join("kiln/auth.json"), fallback: Some(dir.join("docker/config.json")) }
    }

    fn creds(user: &str, password: &str) -> Credentials {
        Credentials { username: user.into(), password: password.into() }
    }

    #[test]
    fn reads_docker_config_and_matches_keys() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        let hub = BASE64.encode("hubuser:hub:pass");
        let local = BASE64.encode("alice:secret");
        std::fs::write(
            cfg.fallback.as_ref().unwrap(),
            format!(
                r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{hub}"}},
                    "http://localhost:5000/v2/": {{"auth": "{local}"}},
                    "quay.io": {{"username": "u", "password": "p"}},
                    "empty.io": {{}}}},
                   "credsStore": "desktop"}}"#
            ),
        )
        .unwrap();
        assert_eq!(cfg.credentials("docker.io").unwrap(), Some(creds("hubuser", "hub:pass")));
        assert_eq!(cfg.credentials("localhost:5000").unwrap(), Some(creds("alice", "secret")));
        assert_eq!(cfg.credentials("quay.io").unwrap(), Some(creds("u", "p")));
        assert_eq!(cfg.credentials("localhost").unwrap(), None);
        assert_eq!(cfg.credentials("empty.io").unwrap(), None);
        assert_eq!(cfg.credentials("other.io").unwrap(), None);
    }

    #[test]
    fn store_then_remove_keeps_other_keys_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        std::fs::create_dir_all(dir.path().join("kiln")).unwrap();
        std::fs::write(
            &cfg.file,
            r#"{"auths": {"a.io": {"auth": "dTpw", "email": "x@y"}}, "proxies": {"k": 1}}"#,
        )
        .unwrap();
        cfg.store("localhost:5000", &creds("bob", "pw")).unwrap();
        cfg.store("docker.io", &creds("hub", "pw2")).unwrap();
        assert_eq!(cfg.credentials("localhost:5000").unwrap(), Some(creds("bob", "pw")));
        assert_eq!(cfg.credentials("docker.io").unwrap(), Some(creds("hub", "pw2")));
        assert_eq!(cfg.credentials("a.io").unwrap(), Some(creds("u", "p")));
        let text = std::fs::read_to_string(&cfg.file).unwrap();
        assert!(text.contains("\"https://index.docker.io/v1/\""), "{text}");
        assert!(text.contains("\"proxies\"") && text.contains("\"email\""), "{text}");
        assert_eq!(std::fs::metadata(&cfg.file).unwrap().mode() & 0o777, 0o600);

        // Overwrite replaces, does not duplicate.
        cfg.store("localhost:5000", &creds("bob", "new")).unwrap();
        assert_eq!(cfg.credentials("localhost:5000").unwrap(), Some(creds("bob", "new")));

        assert_eq!(cfg.remove("localhost:5000").unwrap(), Removal::Removed);
        assert_eq!(cfg.credentials("localhost:5000").unwrap(), None);
        assert_eq!(cfg.remove("localhost:5000").unwrap(), Removal::NotLoggedIn);
        // No temp files left behind.
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("kiln")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("auth.json")]);
    }

    #[test]
    fn file_wins_and_fallback_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        let docker_text = format!(r#"{{"auths": {{"r.io": {{"auth": "{}"}}}}}}"#, BASE64.encode("d:1"));
        std::fs::write(cfg.fallback.as_ref().unwrap(), &docker_text).unwrap();
        assert_eq!(cfg.credentials("r.io").unwrap(), Some(creds("d", "1")));
        cfg.store("r.io", &creds("k", "2")).unwrap();
        assert_eq!(cfg.credentials("r.io").unwrap(), Some(creds("k", "2")));
        assert_eq!(cfg.remove("r.io").unwrap(), Removal::Removed);
        assert_eq!(cfg.remove("r.io").unwrap(), Removal::OnlyInFallback(cfg.fallback.clone().unwrap()));
        assert_eq!(std::fs::read_to_string(cfg.fallback.as_ref().unwrap()).unwrap(), docker_text);
    }

    #[test]
    fn invalid_files_name_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        std::fs::create_dir_all(dir.path().join("kiln")).unwrap();
        std::fs::write(&cfg.file, "{not json").unwrap();
        let err = cfg.credentials("x").unwrap_err().to_string();
        assert!(err.contains("auth.json"), "{err}");
        std::fs::write(&cfg.file, r#"{"auths": {"x": {"auth": "!!!"}}}"#).unwrap();
        let err = cfg.credentials("x").unwrap_err().to_string();
        assert!(err.contains("auth.json") && err.contains("base64"), "{err}");
    }
}
