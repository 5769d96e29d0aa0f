//! A COPY re-run after the context changed shares the unchanged files with its earlier result
//! (issue 16): the new result and the old one both stay what a full copy makes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

/// Per file of a snapshot: (mode, uid, gid, mtime, content, inode).
type Files = BTreeMap<String, (u32, u32, u32, i64, Vec<u8>, u64)>;

fn snapshot_files(root: &Path) -> Files {
    let mut out = Files::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = path.symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let content = std::fs::read(&path).unwrap();
                out.insert(
                    name,
                    (meta.mode() & 0o7777, meta.uid(), meta.gid(), meta.mtime(), content, meta.ino()),
                );
            }
        }
    }
    out
}

fn snapshot_of(env: &TestEnv, result: &BuildRef) -> PathBuf {
    let diff_ids: Vec<_> = result.layers().unwrap().iter().map(|l| l.diff_id.clone()).collect();
    let chain = cache::chain_ids(&diff_ids).pop().unwrap();
    env.store.snapshots().path(&chain)
}

/// Entry types of the top layer's tar: path → (type, link target).
fn entry_types(env: &TestEnv, result: &BuildRef) -> BTreeMap<String, (tar::EntryType, Option<String>)> {
    let layer = result.layers().unwrap().last().unwrap().clone();
    let file = env.store.content().open(layer.blob.digest()).unwrap();
    let mut archive = tar::Archive::new(cache::compress::decompress(file).unwrap());
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().trim_end_matches('/').to_owned();
        let link = entry.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
        out.insert(path, (entry.header().entry_type(), link));
    }
    out
}

async fn copy_into(env: &TestEnv, dest: &str) -> BuildRef {
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let local = context(&mut b);
    let mut action = CopyAction::new(1, "/", dest);
    action.copy_dir_contents = true;
    action.create_dest_path = true;
    action.follow_symlinks = true;
    let step = file_op(&mut b, vec![from, local], Some(0), vec![FileAction::Copy(action)]);
    env.solve(b, step).await.unwrap()
}

fn set_mtime(path: &Path, seconds: i64) {
    let time = nix::sys::time::TimeSpec::new(seconds, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

pub(crate) async fn copy_again_shares_unchanged_files() {
    // `/app` is new in the layer, `/etc` a directory of the base the layer copies up
    for (dest, prefix) in [("/app/", "app/"), ("/etc/", "etc/")] {
        let env = TestEnv::new(|_, _| {});
        let ctx = env.context();
        for name in ["keep.txt", "edit.txt", "delete.txt", "chmod.txt", "touch.txt", "dir/nested.txt"] {
            write(&ctx.join(name), &format!("content of {name}"));
            set_mtime(&ctx.join(name), 1_000_000);
        }
        write(&ctx.join("twin-a"), "same bytes");
        write(&ctx.join("twin-b"), "same bytes");
        std::os::unix::fs::symlink("keep.txt", ctx.join("link")).unwrap();

        let first = copy_into(&env, dest).await;
        let first_snapshot = snapshot_of(&env, &first);
        let first_files = snapshot_files(&first_snapshot);
        let first_entries = env.top_entries(&first);
        assert!(first_files.contains_key(&format!("{prefix}keep.txt")), "{first_files:?}");

        write(&ctx.join("edit.txt"), "edited");
        set_mtime(&ctx.join("edit.txt"), 1_000_000);
        std::fs::remove_file(ctx.join("delete.txt")).unwrap();
        std::fs::set_permissions(ctx.join("chmod.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
        set_mtime(&ctx.join("touch.txt"), 2_000_000);
        write(&ctx.join("dir/added.txt"), "added");

        let second = copy_into(&env, dest).await;
        let second_snapshot = snapshot_of(&env, &second);
        assert_ne!(first_snapshot, second_snapshot);
        let second_files = snapshot_files(&second_snapshot);
        let file = |name: &str| format!("{prefix}{name}");

        // the earlier result is untouched
        assert_eq!(snapshot_files(&first_snapshot), first_files, "{dest}");
        assert_eq!(env.top_entries(&first), first_entries, "{dest}");

        // unchanged files share the earlier inode; changed ones never do
        for name in ["keep.txt", "dir/nested.txt", "twin-a", "twin-b"] {
            assert_eq!(second_files[&file(name)].5, first_files[&file(name)].5, "{dest}{name} is shared");
        }
        for name in ["edit.txt", "chmod.txt", "touch.txt"] {
            assert_ne!(second_files[&file(name)].5, first_files[&file(name)].5, "{dest}{name} is new");
        }
        assert_eq!(second_files[&file("edit.txt")].4, b"edited");
        assert_eq!(second_files[&file("chmod.txt")].0, 0o600);
        assert_eq!(first_files[&file("chmod.txt")].0, 0o644);
        assert_eq!(second_files[&file("touch.txt")].3, 2_000_000);
        assert_eq!(first_files[&file("touch.txt")].3, 1_000_000);
        assert!(!second_files.contains_key(&file("delete.txt")));
        assert_eq!(second_files[&file("dir/added.txt")].4, b"added");

        // every file is a regular entry of the layer, never a link to another snapshot's file
        let types = entry_types(&env, &second);
        for (path, (kind, link)) in &types {
            assert!(*kind != tar::EntryType::Link, "{path} is a hard link to {link:?}");
        }
        assert_eq!(types[&file("keep.txt")].0, tar::EntryType::Regular);
        assert_eq!(types[&file("link")].0, tar::EntryType::Symlink);

        // the layer is what a copy without an earlier result makes
        std::fs::remove_dir_all(env.dir.path().join("root/snapshot-hints-v1")).unwrap();
        let fresh = copy_into(&env, dest).await;
        assert_eq!(env.top_entries(&second), env.top_entries(&fresh), "{dest}");
        let fresh_files = snapshot_files(&snapshot_of(&env, &fresh));
        let without_inodes = |files: &Files| {
            files.iter().map(|(k, v)| (k.clone(), (v.0, v.1, v.2, v.3, v.4.clone()))).collect::<Vec<_>>()
        };
        assert_eq!(without_inodes(&second_files), without_inodes(&fresh_files), "{dest}");
        env.assert_no_mounts();
    }
}
