//! Named volumes (docker's `local` driver): `volumes/<name>/meta.json` and the data in
//! `volumes/<name>/_data`. Names are docker's (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`), so a name never
//! leaves the store, and `_data` must be a real directory (never followed through a symlink).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::record::{
    FORMAT_VERSION, RuntimeError, Store, io, now_nanos, random_hex, valid_name, write_atomic,
};

const META: &str = "meta.json";
const DATA: &str = "_data";

/// A volume's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub version: u32,
    pub name: String,
    /// Nanoseconds since the epoch.
    pub created: i64,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// Created for one container (image `VOLUME`, `-v /path`); `volume prune` removes only
    /// these unless `--all`.
    pub anonymous: bool,
    /// `<store>/volumes/<name>/_data`.
    #[serde(skip)]
    pub mountpoint: PathBuf,
}

/// The volume store.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    dir: PathBuf,
}

impl VolumeStore {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn check_name(name: &str) -> Result<(), RuntimeError> {
        if name.len() < 2 || !valid_name(name) {
            return Err(RuntimeError::InvalidVolumeName(name.to_owned()));
        }
        Ok(())
    }

    /// Creates a volume (a random 64-hex name when `name` is `None`); an existing volume of
    /// that name is returned as is, like docker.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume, RuntimeError> {
        let name = match name {
            Some(name) => name.to_owned(),
            None => random_hex(32),
        };
        Self::check_name(&name)?;
        if let Ok(volume) = self.get(&name) {
            return Ok(volume);
        }
        let dir = self.dir.join(&name);
        let data = dir.join(DATA);
        std::fs::create_dir_all(&data).map_err(io("create volume directory", &data))?;
        let volume = Volume {
            version: FORMAT_VERSION,
            name: name.clone(),
            created: now_nanos(),
            driver: "local".into(),
            labels,
            options: BTreeMap::new(),
            anonymous,
            mountpoint: data,
        };
        let json = serde_json::to_vec_pretty(&volume)
            .map_err(|source| RuntimeError::Record { path: dir.join(META), source })?;
        write_atomic(&dir.join(META), &json)?;
        Ok(volume)
    }

    /// A volume by name; its data directory is checked to be a real directory.
    pub fn get(&self, name: &str) -> Result<Volume, RuntimeError> {
        Self::check_name(name).map_err(|_| RuntimeError::NoSuchVolume(name.to_owned()))?;
        let dir = self.dir.join(name);
        let meta = dir.join(META);
        let data = match std::fs::read(&meta) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NoSuchVolume(name.to_owned()));
            }
            Err(e) => return Err(RuntimeError::Io { what: "read", path: meta, source: e }),
        };
        let mut volume: Volume = serde_json::from_slice(&data)
            .map_err(|source| RuntimeError::Record { path: meta.clone(), source })?;
        if volume.version != FORMAT_VERSION {
            return Err(RuntimeError::Version { path: meta, found: volume.version });
        }
        volume.mountpoint = dir.join(DATA);
        Ok(volume)
    }

    /// The data directory to mount, refusing a symlink or anything that is not a directory.
    pub fn mount_source(&self, name: &str) -> Result<PathBuf, RuntimeError> {
        let volume = self.get(name)?;
        for path in [self.dir.join(name), volume.mountpoint.clone()] {
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_dir() => {}
                _ => return Err(RuntimeError::VolumeNotDirectory { name: name.to_owned(), path }),
            }
        }
        Ok(volume.mountpoint)
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>, RuntimeError> {
        let mut volumes = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io("list", &self.dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            match self.get(&name) {
                Ok(volume) => volumes.push(volume),
                Err(RuntimeError::NoSuchVolume(_)) => {}
                Err(other) => return Err(other),
            }
        }
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(volumes)
    }

    /// Names (or short ids) of the containers that mount volume `name`.
    pub fn users(&self, store: &Store, name: &str) -> Result<Vec<String>, RuntimeError> {
        Ok(store
            .list()?
            .into_iter()
            .filter(|c| c.config.mounts.iter().any(|m| m.kind == "volume" && m.source == name))
            .map(|c| c.config.id)
            .collect())
    }

    /// Removes a volume no container uses (docker refuses in-use volumes, even stopped ones).
    pub fn remove(&self, store: &Store, name: &str) -> Result<(), RuntimeError> {
        self.get(name)?;
        let users = self.users(store, name)?;
        if !users.is_empty() {
            return Err(RuntimeError::VolumeInUse { name: name.to_owned(), containers: users.join(", ") });
        }
        let dir = self.dir.join(name);
        // the record first: a half-removed volume is no volume
        let meta = dir.join(META);
        std::fs::remove_file(&meta).map_err(io("remove", &meta))?;
        // remove_dir_all does not follow symlinks inside the tree
        std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))
    }

    /// Removes unused volumes (only anonymous ones unless `all`); returns their names and the
    /// bytes freed.
    pub fn prune(&self, store: &Store, all: bool) -> Result<(Vec<String>, u64), RuntimeError> {
        let used: std::collections::HashSet<String> = store
            .list()?
            .into_iter()
            .flat_map(|c| c.config.mounts.into_iter().filter(|m| m.kind == "volume").map(|m| m.source))
            .collect();
        let mut removed = Vec::new();
        let mut bytes = 0;
        for volume in self.list()? {
            if used.contains(&volume.name) || !(all || volume.anonymous) {
                continue;
            }
            let size = disk_usage(&volume.mountpoint);
            match self.remove(store, &volume.name) {
                Ok(()) => {
                    bytes += size;
                    removed.push(volume.name);
                }
                Err(RuntimeError::VolumeInUse { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok((removed, bytes))
    }
}

/// Bytes used by the files under `dir` (symlinks not followed).
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if let Ok(meta) = entry.metadata() {
                if meta.is_dir() {
                    pending.push(entry.path());
                } else {
                    total += meta.len();
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_get_list_remove_and_hostile_names() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path()).expect("store");
        let volumes = store.volumes();
        let data = volumes.create(Some("data"), BTreeMap::new(), false).expect("create");
        assert!(data.mountpoint.is_dir());
        let anonymous = volumes.create(None, BTreeMap::new(), true).expect("anonymous");
        assert_eq!(anonymous.name.len(), 64);
        assert_eq!(volumes.list().expect("list").len(), 2);
        for bad in ["../x", "a/b", "x", ".hidden", ""] {
            assert!(volumes.create(Some(bad), BTreeMap::new(), false).is_err(), "{bad}");
            assert!(matches!(volumes.get(bad), Err(RuntimeError::NoSuchVolume(_))), "{bad}");
        }
        // _data swapped for a symlink out of the store: never mounted
        let evil = volumes.create(Some("evil"), BTreeMap::new(), false).expect("create");
        std::fs::remove_dir(&evil.mountpoint).expect("rmdir");
        std::os::unix::fs::symlink("/etc", &evil.mountpoint).expect("symlink");
        assert!(matches!(volumes.mount_source("evil"), Err(RuntimeError::VolumeNotDirectory { .. })));
        volumes.remove(&store, "evil").expect("remove evil");
        assert!(Path::new("/etc/passwd").exists(), "removal did not follow the symlink");
        let (pruned, _) = volumes.prune(&store, false).expect("prune");
        assert_eq!(pruned, vec![anonymous.name]);
        volumes.remove(&store, "data").expect("remove");
        assert!(matches!(volumes.get("data"), Err(RuntimeError::NoSuchVolume(_))));
    }
}
