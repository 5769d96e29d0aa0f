//! Per-sandbox state directories (`<state_dir>/<id>/`) and the record of what each sandbox made,
//! so that a later kiln can clean up after one that was SIGKILLed.
//!
//! Mounts need no record: the rootfs and every other mount live only in the sandbox's private
//! mount namespace and vanish with it. Network namespaces and veths vanish with the processes.
//! What outlives a killed kiln is cgroups, address leases and the directory itself.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::cgroup::Cgroups;
use crate::network::{Attachment, owner_alive};

/// File name of the record inside a sandbox's state directory.
pub const RECORD: &str = "state.json";

/// What a sandbox made on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// `pid starttime` of the kiln process that owns the sandbox.
    pub owner: String,
    pub cgroups: Option<Cgroups>,
    pub network: Option<Attachment>,
    /// Ports were published for the sandbox ([`crate::ports`] rules tagged with its id).
    #[serde(default)]
    pub published: bool,
}

/// Start time (clock ticks since boot) of a process, `None` when it does not exist.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may contain spaces and parentheses: fields start after the last ')'
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a process has exited and waits to be reaped: a SIGKILLed owner stays a zombie until
/// whoever adopted it reaps it, and owns nothing any more.
pub fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.get(stat.rfind(')')? + 2..)?.starts_with(['Z', 'X', 'x'])))
        .unwrap_or(false)
}

impl Record {
    /// Writes the record atomically (temp file + rename). No fsync: what it describes (cgroups,
    /// leases under /run) does not survive a reboot either, and a killed process loses nothing
    /// that was written.
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        let path = dir.join(RECORD);
        let temp = dir.join(format!(".{RECORD}.tmp"));
        let data = serde_json::to_vec(self).map_err(|source| Error::State { path: path.clone(), source })?;
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(&data)?;
            std::fs::rename(&temp, &path)
        };
        write().map_err(|e| Error::io("write state record", &path, e))
    }

    fn load(dir: &Path) -> Result<Option<Self>, Error> {
        let path = dir.join(RECORD);
        match std::fs::read(&path) {
            Ok(data) => {
                serde_json::from_slice(&data).map(Some).map_err(|source| Error::State { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read state record", &path, e)),
        }
    }

    /// [`Record::cleanup`], leaving the deletion of the veth to a detached process
    /// ([`Attachment::release_detached`]): what a sandbox that ended normally does.
    pub fn cleanup_detached(&self) {
        self.undo(true);
    }

    /// Undoes everything recorded (idempotent).
    pub fn cleanup(&self) {
        self.undo(false);
    }

    fn undo(&self, detached: bool) {
        if let Some(cgroups) = &self.cgroups {
            cgroups.remove();
        }
        if self.published {
            crate::ports::unpublish(&self.id);
        }
        match &self.network {
            Some(network) if detached => network.release_detached(),
            Some(network) => network.release(),
            None => {}
        }
    }
}

/// Removes a sandbox's state directory (its rootfs mount point is never mounted on the host).
pub fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Cleans up after sandboxes whose owning kiln process is gone. Returns the ids cleaned.
pub fn clean_stale(state_dir: &Path) -> Result<Vec<String>, Error> {
    let entries = match std::fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list sandbox state", state_dir, e)),
    };
    let mut cleaned = Vec::new();
    for entry in entries.flatten() {
        let dir: PathBuf = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let record = match Record::load(&dir) {
            Ok(Some(record)) => record,
            // a directory without record: its creator died before writing it (nothing made yet)
            // or is still starting; only remove it when old enough to be abandoned
            Ok(None) | Err(_) => {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 60);
                if old {
                    remove_dir(&dir);
                }
                continue;
            }
        };
        if owner_alive(&record.owner) {
            continue;
        }
        record.cleanup();
        remove_dir(&dir);
        cleaned.push(record.id);
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_known() {
        assert!(process_start_time(std::process::id() as i32).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }

    #[test]
    fn stale_records_are_cleaned_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = dir.path().join("live");
        let dead = dir.path().join("dead");
        std::fs::create_dir_all(&live).expect("mkdir");
        std::fs::create_dir_all(&dead).expect("mkdir");
        Record { id: "live".into(), owner: crate::network::owner_token(), ..Record::default() }
            .save(&live)
            .expect("save");
        Record { id: "dead".into(), owner: format!("{} 1", i32::MAX), ..Record::default() }
            .save(&dead)
            .expect("save");
        assert_eq!(clean_stale(dir.path()).expect("clean"), vec!["dead".to_owned()]);
        assert!(live.exists());
        assert!(!dead.exists());
    }
}
