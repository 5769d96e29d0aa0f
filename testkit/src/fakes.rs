//! Fakes of the build's seams for tests that need no root (feature `fakes`): a snapshotter of
//! plain directories (no overlay: a prepared snapshot is a copy of its parent tree, a commit
//! diffs the two trees) and an executor that records the specs it is given and runs scripted
//! effects instead of processes; [`enter_user_namespace`] gives a non-root test binary the
//! uid 0 that file operations chown to.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cache::snapshotter::{ActiveSnapshot, SnapshotError, SnapshotMount, SnapshotView, Snapshotter, TempArea};
use cache::{CommittedLayer, DiffOptions, DiffSource, LayerRef, Store};
use executor::{
    BoxFuture, ExitStatus, OutputChunk, OutputStream, ProcessExecutor, Rootfs, SandboxSpec, Stdio,
};
use oci_spec::image::Digest;

/// Snapshots as full directory trees: committed trees by chain ID under `dir`, layers written
/// to the store's content store from a diff of the prepared tree against its parent's.
#[derive(Debug)]
pub struct DirSnapshotter {
    store: Store,
    dir: PathBuf,
    trees: Arc<Mutex<HashMap<Digest, PathBuf>>>,
    next: Arc<AtomicUsize>,
}

impl DirSnapshotter {
    /// A snapshotter keeping its trees under `dir` (created).
    pub fn new(store: Store, dir: &Path) -> DirSnapshotter {
        std::fs::create_dir_all(dir).expect("create the snapshotter's directory");
        DirSnapshotter { store, dir: dir.to_owned(), trees: Arc::default(), next: Arc::default() }
    }

    fn fresh(&self, hint: &str) -> PathBuf {
        self.dir.join(format!("{hint}-{}", self.next.fetch_add(1, Ordering::Relaxed)))
    }

    /// The full tree of `parents` (`None` for scratch): a committed one, or the store's layers
    /// applied onto a plain directory.
    fn tree(&self, parents: &[LayerRef]) -> Result<Option<PathBuf>, SnapshotError> {
        let diff_ids: Vec<Digest> = parents.iter().map(|l| l.diff_id.clone()).collect();
        let Some(chain_id) = cache::chain_ids(&diff_ids).pop() else { return Ok(None) };
        let mut trees = self.trees.lock().expect("trees lock");
        if let Some(tree) = trees.get(&chain_id) {
            return Ok(Some(tree.clone()));
        }
        let tree = self.fresh("flat");
        std::fs::create_dir_all(&tree).map_err(SnapshotError::io("create", &tree))?;
        self.store.snapshots().flatten(parents, &tree)?;
        trees.insert(chain_id, tree.clone());
        Ok(Some(tree))
    }
}

impl Snapshotter for DirSnapshotter {
    fn prepare(&self, parents: &[LayerRef]) -> Result<Box<dyn ActiveSnapshot>, SnapshotError> {
        let base = self.tree(parents)?;
        let dir = self.fresh("active");
        let fs = dir.join("fs");
        std::fs::create_dir_all(&dir).map_err(SnapshotError::io("create", &dir))?;
        match &base {
            Some(base) => copy_tree(base, &fs).map_err(SnapshotError::io("copy", base))?,
            None => std::fs::create_dir(&fs).map_err(SnapshotError::io("create", &fs))?,
        }
        Ok(Box::new(DirActive {
            store: self.store.clone(),
            trees: self.trees.clone(),
            committed: self.dir.clone(),
            dir,
            fs,
            base,
        }))
    }

    fn view(&self, parents: &[LayerRef]) -> Result<SnapshotView, SnapshotError> {
        match self.tree(parents)? {
            Some(tree) => Ok(SnapshotView::new(tree, Vec::new())),
            None => {
                let temp = TempArea::new(&self.store, "view")?;
                Ok(SnapshotView::new(temp.subdir("empty")?, vec![Box::new(temp)]))
            }
        }
    }
}

/// A prepared tree: a full copy of its parent, written in place.
#[derive(Debug)]
struct DirActive {
    store: Store,
    trees: Arc<Mutex<HashMap<Digest, PathBuf>>>,
    committed: PathBuf,
    dir: PathBuf,
    fs: PathBuf,
    base: Option<PathBuf>,
}

impl Drop for DirActive {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ActiveSnapshot for DirActive {
    fn mount(&self) -> SnapshotMount {
        SnapshotMount::Dir(self.fs.clone())
    }

    fn mount_local(&mut self) -> Result<PathBuf, SnapshotError> {
        Ok(self.fs.clone())
    }

    fn unmount_local(&mut self) -> Result<(), SnapshotError> {
        Ok(())
    }

    fn upper(&self) -> Option<&Path> {
        None
    }

    fn commit(
        self: Box<Self>,
        parent: Option<&Digest>,
        options: &DiffOptions,
    ) -> Result<CommittedLayer, SnapshotError> {
        let diff = self.dir.join("diff");
        std::fs::create_dir(&diff).map_err(SnapshotError::io("create", &diff))?;
        diff_tree(self.base.as_deref(), &self.fs, &diff).map_err(SnapshotError::io("diff", &self.fs))?;
        let layer = self.store.content().write_layer(&diff, DiffSource::PlainDir, options)?;
        let chain_id = match parent {
            None => layer.diff_id.clone(),
            Some(parent) => cache::sha256_digest(format!("{parent} {}", layer.diff_id).as_bytes()),
        };
        let mut trees = self.trees.lock().expect("trees lock");
        let path = match trees.get(&chain_id) {
            Some(path) => path.clone(),
            None => {
                let path = self.committed.join(format!("tree-{}", chain_id.digest()));
                std::fs::rename(&self.fs, &path).map_err(SnapshotError::io("move", &self.fs))?;
                trees.insert(chain_id.clone(), path.clone());
                path
            }
        };
        Ok(CommittedLayer { layer, chain_id, path })
    }
}

/// Copies the tree `from` to the new directory `to`, keeping types, modes, owners and mtimes.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    let kind = meta.file_type();
    if kind.is_dir() {
        std::fs::create_dir(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
    } else if kind.is_file() {
        std::fs::copy(from, to)?;
    } else {
        return Err(std::io::Error::other(format!("{}: unsupported file type", from.display())));
    }
    copy_meta(&meta, to)
}

/// Owner, mode (not of symlinks) and mtime of `meta` on `to`.
fn copy_meta(meta: &std::fs::Metadata, to: &Path) -> std::io::Result<()> {
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    if !meta.file_type().is_symlink() {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    let time = nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        to,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

fn same_meta(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    (a.mode(), a.uid(), a.gid(), a.mtime(), a.mtime_nsec())
        == (b.mode(), b.uid(), b.gid(), b.mtime(), b.mtime_nsec())
}

fn same_entry(
    a: &Path,
    a_meta: &std::fs::Metadata,
    b: &Path,
    b_meta: &std::fs::Metadata,
) -> std::io::Result<bool> {
    if !same_meta(a_meta, b_meta) || a_meta.len() != b_meta.len() {
        return Ok(false);
    }
    if a_meta.file_type().is_symlink() {
        return Ok(std::fs::read_link(a)? == std::fs::read_link(b)?);
    }
    Ok(std::fs::read(a)? == std::fs::read(b)?)
}

fn names(dir: &Path) -> std::io::Result<BTreeSet<std::ffi::OsString>> {
    std::fs::read_dir(dir)?.map(|entry| entry.map(|e| e.file_name())).collect()
}

/// Writes into the plain directory `out` what changed from `base` to `new`: new and changed
/// entries as they are, directories holding changes, and an empty `.wh.<name>` file (an OCI
/// whiteout once in the tar) for each removed entry. True when anything changed.
fn diff_tree(base: Option<&Path>, new: &Path, out: &Path) -> std::io::Result<bool> {
    let mut changed = false;
    let base_names = match base {
        Some(base) => names(base)?,
        None => BTreeSet::new(),
    };
    let new_names = names(new)?;
    for name in &new_names {
        let path = new.join(name);
        let meta = std::fs::symlink_metadata(&path)?;
        let old = base.map(|b| b.join(name));
        let old_meta = old.as_ref().and_then(|o| std::fs::symlink_metadata(o).ok());
        if meta.is_dir() {
            let old_dir = old.as_deref().filter(|_| old_meta.as_ref().is_some_and(|m| m.is_dir()));
            let dest = out.join(name);
            std::fs::create_dir_all(&dest)?;
            let children = diff_tree(old_dir, &path, &dest)?;
            let same = old_meta.as_ref().is_some_and(|m| m.is_dir() && same_meta(m, &meta));
            if children || !same {
                copy_meta(&meta, &dest)?;
                changed = true;
            } else {
                std::fs::remove_dir(&dest)?;
            }
            continue;
        }
        let same = match (&old, &old_meta) {
            (Some(old), Some(old_meta)) if old_meta.file_type() == meta.file_type() => {
                same_entry(&path, &meta, old, old_meta)?
            }
            _ => false,
        };
        if !same {
            copy_tree(&path, &out.join(name))?;
            changed = true;
        }
    }
    for name in base_names.difference(&new_names) {
        let mut whiteout = std::ffi::OsString::from(cache::apply::WHITEOUT_PREFIX);
        whiteout.push(name);
        std::fs::write(out.join(whiteout), b"")?;
        changed = true;
    }
    Ok(changed)
}

/// What a scripted effect sees of a process: its spec, and its files through the root
/// directory and bind mounts.
#[derive(Debug)]
pub struct FakeProcess<'a> {
    /// What the process was started with.
    pub spec: &'a SandboxSpec,
    root: PathBuf,
    output: Mutex<Vec<u8>>,
}

impl FakeProcess<'_> {
    /// The host path of the in-sandbox path `inner`: below the bind mount with the longest
    /// matching target, else below the root directory.
    pub fn host_path(&self, inner: &str) -> PathBuf {
        let inner = Path::new(inner);
        let mut best: Option<(&Path, &Path)> = None;
        for mount in &self.spec.mounts {
            let source = match &mount.kind {
                executor::MountKind::Bind { source } => source.as_path(),
                _ => continue,
            };
            if inner.starts_with(&mount.target)
                && best
                    .is_none_or(|(target, _)| mount.target.components().count() > target.components().count())
            {
                best = Some((&mount.target, source));
            }
        }
        match best {
            Some((target, source)) => {
                let rest = inner.strip_prefix(target).unwrap_or(Path::new(""));
                if rest.as_os_str().is_empty() { source.to_owned() } else { source.join(rest) }
            }
            None => self.root.join(inner.strip_prefix("/").unwrap_or(inner)),
        }
    }

    /// Writes `text` to the process's (merged) output.
    pub fn print(&self, text: &str) {
        self.output.lock().expect("output lock").extend_from_slice(text.as_bytes());
    }
}

/// A scripted process: its exit code.
pub type Effect = Box<dyn Fn(&FakeProcess<'_>) -> std::io::Result<i32> + Send + Sync>;

/// Records every spec and runs the effect scripted for its last argument (the shell script);
/// an unknown script exits 127. Effects run to their end: cancellation is not simulated (the
/// root suite tests it on the real sandbox).
#[derive(Default)]
pub struct FakeExecutor {
    specs: Mutex<Vec<SandboxSpec>>,
    effects: Mutex<HashMap<String, Effect>>,
}

impl std::fmt::Debug for FakeExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeExecutor").field("specs", &self.specs).finish_non_exhaustive()
    }
}

impl FakeExecutor {
    /// Runs `effect` for processes whose last argument is `script`.
    pub fn script(
        &self,
        script: &str,
        effect: impl Fn(&FakeProcess<'_>) -> std::io::Result<i32> + Send + Sync + 'static,
    ) {
        self.effects.lock().expect("effects lock").insert(script.to_owned(), Box::new(effect));
    }

    /// The specs run so far.
    pub fn specs(&self) -> Vec<SandboxSpec> {
        self.specs.lock().expect("specs lock").clone()
    }
}

impl ProcessExecutor for FakeExecutor {
    fn run<'a>(
        &'a self,
        spec: SandboxSpec,
        stdio: Stdio,
        _cancel: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, executor::Result<ExitStatus>> {
        Box::pin(async move {
            self.specs.lock().expect("specs lock").push(spec.clone());
            let root = match &spec.rootfs {
                Rootfs::Dir(root) => root.clone(),
                Rootfs::Overlay { .. } => PathBuf::from("/nonexistent-fake-root"),
            };
            let process = FakeProcess { spec: &spec, root, output: Mutex::new(Vec::new()) };
            let script = spec.process.args.last().cloned().unwrap_or_default();
            let code = match self.effects.lock().expect("effects lock").get(&script) {
                Some(effect) => effect(&process).map_err(|source| executor::Error::Io {
                    what: "run scripted effect of",
                    path: PathBuf::from(&script),
                    source,
                })?,
                None => {
                    process.print(&format!("{script}: not found\n"));
                    127
                }
            };
            let output = process.output.into_inner().expect("output lock");
            if let Stdio::Merged(sender) | Stdio::Stream(sender) = stdio
                && !output.is_empty()
            {
                let _ = sender.send(OutputChunk { stream: OutputStream::Stdout, data: output }).await;
            }
            Ok(ExitStatus { code, signal: None, oom_killed: false, timings: Default::default() })
        })
    }
}

/// Makes a non-root process root of a new user namespace (its uid and gid mapped to 0, nothing
/// else mapped), so that it may own files as root; false when it was root already (nothing
/// done). Must be called while the process has one thread (first thing in `main` of a
/// `harness = false` test).
pub fn enter_user_namespace() -> std::io::Result<bool> {
    if crate::is_root() {
        return Ok(false);
    }
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)?;
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(true)
}
