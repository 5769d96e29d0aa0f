//! File ops (`COPY`, `ADD`, `WORKDIR`, heredoc files): a snapshot prepared over the base chain
//! is made reachable on the host by the snapshotter, the actions run on it, and it is committed
//! into the new layer.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cache::Store;
use cache::safefs::Root;
use cache::snapshotter::{ActiveSnapshot, Snapshotter};

use super::copy::{self, SourceRoot};
use super::fsutil::{TempDir, resolve_in_root};
use super::reuse::{self, Reuse};
use super::{BuildRef, LayerChainRef, Runner, RunnerError};
use crate::contenthash::PatternError;
use crate::contenthash::ignore::has_wildcards;
use crate::graph::{ChownOpt, FileAction, FileOp, MkdirAction, MkfileAction, RmAction, UserOpt};
use crate::scheduler::RunJob;

/// Why a file action failed.
#[derive(Debug, thiserror::Error)]
pub enum FileOpError {
    #[error("{path:?}: not found{}", if *.excluded { " (excluded by .dockerignore)" } else { "" })]
    NotFound { path: String, excluded: bool },
    #[error("no source files were specified: {pattern:?} matched nothing")]
    NoMatch { pattern: String },
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove {0}: not found")]
    RmNotFound(String),
    #[error("cannot create directory {0}: parent directory does not exist")]
    NoParent(String),
    #[error("cannot extract {path}")]
    Extract {
        path: PathBuf,
        #[source]
        source: cache::Error,
    },
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error("canceled")]
    Canceled,
}

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> FileOpError {
    let path = path.into();
    move |source| FileOpError::Io { op, path, source }
}

/// Resolves `--chown` against the destination's `/etc/passwd` and `/etc/group` (parsed by the
/// executor's user module). A user alone gives the user's primary group (a numeric uid alone:
/// the same gid, as BuildKit).
pub(crate) fn resolve_owner(root: &Root, chown: &ChownOpt) -> Result<(u32, u32), FileOpError> {
    let (mut uid, mut gid) = (0, 0);
    if let Some(user) = &chown.user {
        (uid, gid) = match user {
            UserOpt::Id(id) => (*id, *id),
            UserOpt::Name(name) => match name.parse::<u32>() {
                Ok(id) => (id, id),
                Err(_) => read_in_root(root, "/etc/passwd")
                    .and_then(|passwd| executor::user::user_ids(&passwd, name))
                    .ok_or_else(|| FileOpError::UnknownUser(name.clone()))?,
            },
        };
    }
    if let Some(group) = &chown.group {
        gid = match group {
            UserOpt::Id(id) => *id,
            UserOpt::Name(name) => match name.parse::<u32>() {
                Ok(id) => id,
                Err(_) => read_in_root(root, "/etc/group")
                    .and_then(|groups| executor::user::group_id(&groups, name))
                    .ok_or_else(|| FileOpError::UnknownGroup(name.clone()))?,
            },
        };
    }
    Ok((uid, gid))
}

/// The text of `file` inside `root`; `None` when it cannot be read (no such user then).
fn read_in_root(root: &Root, file: &str) -> Option<String> {
    let (host, _) = resolve_in_root(root, file, true).ok()?;
    std::fs::read_to_string(host).ok()
}

fn owner_of(root: &Root, chown: &Option<ChownOpt>) -> Result<Option<(u32, u32)>, FileOpError> {
    chown.as_ref().map(|c| resolve_owner(root, c)).transpose()
}

/// Sets mode, owner and (optionally) mtime of a created path (not following symlinks).
pub(crate) fn set_meta(
    path: &Path,
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
    mtime: Option<i64>,
) -> Result<(), FileOpError> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_err("chown", path))?;
    }
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io_err("chmod", path))?;
    }
    if let Some(seconds) = mtime {
        set_mtime(path, seconds)?;
    }
    Ok(())
}

pub(crate) fn set_mtime(path: &Path, seconds: i64) -> Result<(), FileOpError> {
    let time = nix::sys::time::TimeSpec::new(seconds, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|errno| FileOpError::Io { op: "set times of", path: path.to_owned(), source: errno.into() })
}

/// `mkdir -p` of the in-root path `inner` below `root`; created directories get `mode`,
/// `owner` and `mtime`. Returns the host path.
pub(crate) fn mkdir_all(
    root: &Root,
    inner: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
    mtime: Option<i64>,
) -> Result<PathBuf, FileOpError> {
    let mut current = PathBuf::from("/");
    for component in inner.components() {
        let std::path::Component::Normal(name) = component else { continue };
        current.push(name);
        let (host, resolved) =
            resolve_in_root(root, &current.to_string_lossy(), true).map_err(io_err("resolve", &current))?;
        current = resolved;
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(FileOpError::Io {
                    op: "create directory",
                    path: current,
                    source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
                });
            }
            Err(_) => {
                std::fs::create_dir(&host).map_err(io_err("create directory", &current))?;
                set_meta(&host, Some(mode), owner, mtime)?;
            }
        }
    }
    Ok(resolve_in_root(root, &current.to_string_lossy(), true).map_err(io_err("resolve", &current))?.0)
}

fn mkdir(root: &Root, action: &MkdirAction) -> Result<(), FileOpError> {
    let owner = owner_of(root, &action.owner)?;
    let (host, inner) = resolve_in_root(root, &action.path, true).map_err(io_err("resolve", &action.path))?;
    if host.is_dir() {
        return Ok(());
    }
    let parent = inner.parent().unwrap_or(Path::new("/"));
    if !action.make_parents {
        let (parent_host, _) =
            resolve_in_root(root, &parent.to_string_lossy(), true).map_err(io_err("resolve", parent))?;
        if !parent_host.is_dir() {
            return Err(FileOpError::NoParent(action.path.clone()));
        }
    }
    mkdir_all(root, &inner, action.mode, owner, action.timestamp)?;
    Ok(())
}

fn mkfile(root: &Root, action: &MkfileAction) -> Result<(), FileOpError> {
    let owner = owner_of(root, &action.owner)?;
    let (_, inner) = resolve_in_root(root, &action.path, true).map_err(io_err("resolve", &action.path))?;
    let parent = inner.parent().unwrap_or(Path::new("/"));
    if let Some(mode) = action.make_parents {
        mkdir_all(root, parent, mode, owner, action.timestamp)?;
    }
    let (parent_host, _) =
        resolve_in_root(root, &parent.to_string_lossy(), true).map_err(io_err("resolve", parent))?;
    if !parent_host.is_dir() {
        return Err(FileOpError::NoParent(parent.display().to_string()));
    }
    let name = inner.file_name().ok_or_else(|| FileOpError::NoParent(action.path.clone()))?;
    let host = parent_host.join(name);
    if let Ok(meta) = std::fs::symlink_metadata(&host)
        && !meta.is_dir()
    {
        std::fs::remove_file(&host).map_err(io_err("replace", &host))?;
    }
    std::fs::write(&host, &action.data).map_err(io_err("write", &inner))?;
    set_meta(&host, Some(action.mode), owner, action.timestamp)
}

fn rm(root: &Root, action: &RmAction) -> Result<(), FileOpError> {
    let targets: Vec<PathBuf> = if action.allow_wildcard && has_wildcards(&action.path) {
        copy::expand_glob(root, &action.path, false)?.into_iter().map(|(host, _)| host).collect()
    } else {
        let (host, _) =
            resolve_in_root(root, &action.path, false).map_err(io_err("resolve", &action.path))?;
        if std::fs::symlink_metadata(&host).is_ok() { vec![host] } else { Vec::new() }
    };
    if targets.is_empty() && !action.allow_not_found {
        return Err(FileOpError::RmNotFound(action.path.clone()));
    }
    for host in targets {
        if host == root.path() {
            continue;
        }
        let meta = std::fs::symlink_metadata(&host).map_err(io_err("inspect", &host))?;
        if meta.is_dir() {
            std::fs::remove_dir_all(&host).map_err(io_err("remove", &host))?;
        } else {
            std::fs::remove_file(&host).map_err(io_err("remove", &host))?;
        }
    }
    Ok(())
}

/// Keeps the source views of a file op alive while it runs.
#[derive(Default)]
struct Sources {
    roots: HashMap<u32, SourceRoot>,
    _guards: Vec<Box<dyn std::any::Any + Send>>,
}

impl Sources {
    fn get(
        &mut self,
        store: &Store,
        snapshotter: &dyn Snapshotter,
        inputs: &[BuildRef],
        index: u32,
        temp: &TempDir,
    ) -> Result<&SourceRoot, RunnerError> {
        if !self.roots.contains_key(&index) {
            let input = Runner::input(inputs, "file", index)?;
            let root = match input {
                BuildRef::Local(local) => SourceRoot::new(local.path.clone(), &local.excludes, true)?,
                BuildRef::Layers(chain) => {
                    let view = snapshotter.view(&chain.layer_refs())?;
                    let root = SourceRoot::new(view.path().to_owned(), &[], false)?;
                    self._guards.push(Box::new(view));
                    root
                }
                BuildRef::Blob(descriptor) => {
                    let dir = temp.subdir(&format!("blob-{index}"))?;
                    copy::materialize_blob(store, descriptor, &dir)?;
                    SourceRoot::new(dir, &[], true)?
                }
            };
            self.roots.insert(index, root);
        }
        self.roots.get(&index).ok_or(RunnerError::MissingInput { kind: "file", index })
    }
}

/// Copies the contents of `selector` in `input` into the plain directory `dest` (a cache
/// mount's first content, `RUN --mount=type=cache,from=…`).
pub(crate) fn seed_dir(
    store: &Store,
    snapshotter: &dyn Snapshotter,
    input: BuildRef,
    selector: &str,
    dest: &Path,
) -> Result<(), RunnerError> {
    let temp = TempDir::new(store, "seed")?;
    let mut sources = Sources::default();
    let root = sources.get(store, snapshotter, std::slice::from_ref(&input), 0, &temp)?;
    let dest = Root::open(dest)?;
    let mut action = crate::graph::CopyAction::new(0, if selector.is_empty() { "/" } else { selector }, "/");
    action.copy_dir_contents = true;
    action.follow_symlinks = true;
    copy::copy(&action, root, &dest, &tokio_util::sync::CancellationToken::new(), None)
}

impl Runner {
    pub(crate) async fn run_file(
        &self,
        job: &RunJob<BuildRef>,
        op: &FileOp,
    ) -> Result<BuildRef, RunnerError> {
        let parent = match op.base {
            Some(index) => {
                Self::chain_of(Self::input(&job.inputs, "file", index)?, || "the file op base".into())?
            }
            None => Arc::new(LayerChainRef { layers: Vec::new() }),
        };
        let store = self.store.clone();
        let snapshotter = self.snapshotter.clone();
        let inputs = job.inputs.clone();
        let actions = op.actions.clone();
        let cancel = job.cancel.clone();
        let parents = parent.layer_refs();
        let parent_chain = parent.chain_id();
        let reuse_key = reuse::reuse_key(&actions, parent_chain.as_ref());
        let earlier_key = reuse_key.clone();
        let temp = Arc::new(TempDir::new(&self.store, "fileop")?);
        let work_temp = temp.clone();
        let active = tokio::task::spawn_blocking(move || -> Result<Box<dyn ActiveSnapshot>, RunnerError> {
            let temp = work_temp;
            let mut active = snapshotter.prepare(&parents)?;
            // an earlier result of the same copy over the same parent shares its unchanged files
            // (linked into an overlay upper)
            let reuse = match active.upper() {
                Some(_) => {
                    earlier_key.as_ref().and_then(|key| Reuse::find(&store, key, parent_chain.as_ref()))
                }
                None => None,
            };
            let root = Root::open(&active.mount_local()?)?;
            let mut sources = Sources::default();
            for action in &actions {
                if cancel.is_cancelled() {
                    return Err(FileOpError::Canceled.into());
                }
                match action {
                    FileAction::Copy(copy_action) => {
                        let source =
                            sources.get(&store, &*snapshotter, &inputs, copy_action.source, &temp)?;
                        copy::copy(copy_action, source, &root, &cancel, reuse.as_ref())?;
                    }
                    FileAction::Mkdir(action) => mkdir(&root, action)?,
                    FileAction::Mkfile(action) => mkfile(&root, action)?,
                    FileAction::Rm(action) => rm(&root, action)?,
                }
            }
            if let (Some(reuse), Some(upper)) = (&reuse, active.upper()) {
                reuse.prepare(&root, upper)?;
            }
            drop(sources);
            // nothing may hold the snapshot open when it is unmounted
            drop(root);
            active.unmount_local()?;
            if let (Some(reuse), Some(upper)) = (&reuse, active.upper()) {
                let shared = reuse.finish(upper)?;
                tracing::debug!("shared {shared} unchanged files with the earlier result of the copy");
            }
            Ok(active)
        })
        .await??;
        let result = self.commit(parent, active).await;
        drop(temp);
        if let (Ok(BuildRef::Layers(chain)), Some(key)) = (&result, &reuse_key)
            && let Some(chain_id) = chain.chain_id()
            && let Err(err) = self.store.snapshots().remember_latest(key, &chain_id)
        {
            // a hint only: the next build copies everything again
            tracing::warn!("cannot remember the result of the copy: {err}");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chown_names_resolve_in_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww-data:x:33:34::/var/www:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let root = Root::open(dir.path()).unwrap();
        let opt = |user: Option<UserOpt>, group: Option<UserOpt>| ChownOpt { user, group };
        let name = |n: &str| Some(UserOpt::Name(n.into()));
        assert_eq!(resolve_owner(&root, &opt(name("www-data"), None)).unwrap(), (33, 34));
        assert_eq!(resolve_owner(&root, &opt(name("www-data"), name("staff"))).unwrap(), (33, 50));
        assert_eq!(resolve_owner(&root, &opt(Some(UserOpt::Id(7)), None)).unwrap(), (7, 7));
        assert_eq!(resolve_owner(&root, &opt(name("1000"), name("20"))).unwrap(), (1000, 20));
        assert!(matches!(resolve_owner(&root, &opt(name("nobody"), None)), Err(FileOpError::UnknownUser(_))));
        assert!(matches!(resolve_owner(&root, &opt(None, name("wheel"))), Err(FileOpError::UnknownGroup(_))));
    }
}
