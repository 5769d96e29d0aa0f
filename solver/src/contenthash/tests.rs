use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use super::*;

fn write(root: &Path, rel: &str, data: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn hasher(root: &Path, excludes: &[&str]) -> ContentHasher {
    let excludes: Vec<String> = excludes.iter().map(|s| s.to_string()).collect();
    let mut h = ContentHasher::new(root, &excludes).unwrap();
    h.racy_secs = -1_000_000;
    h
}

fn sum(root: &Path, sel: &Selection) -> Digest {
    hasher(root, &[]).checksum(sel).unwrap()
}

fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "src/main.rs", "fn main() {}\n");
    write(dir.path(), "src/lib.rs", "pub fn f() {}\n");
    write(dir.path(), "README.md", "hello\n");
    write(dir.path(), "build.log", "noise\n");
    dir
}

#[test]
fn digest_covers_content_mode_and_path_but_not_mtime() {
    let dir = context();
    let root = dir.path();
    let base = sum(root, &Selection::path("src"));
    assert_eq!(base, sum(root, &Selection::path("/src/")), "path spelling does not matter");
    let file = std::fs::File::options().write(true).open(root.join("src/main.rs")).unwrap();
    file.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000)).unwrap();
    assert_eq!(base, sum(root, &Selection::path("src")), "mtime does not matter");
    std::fs::set_permissions(root.join("src/main.rs"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let chmodded = sum(root, &Selection::path("src"));
    assert_ne!(base, chmodded, "mode matters");
    let mut no_mode = Selection::path("src");
    no_mode.include_mode = false;
    let without_mode = sum(root, &no_mode);
    std::fs::set_permissions(root.join("src/main.rs"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(without_mode, sum(root, &no_mode), "COPY --chmod ignores source modes");
    write(root, "src/main.rs", "fn main() { changed() }\n");
    assert_ne!(without_mode, sum(root, &no_mode), "content matters");
    std::fs::rename(root.join("src/lib.rs"), root.join("src/lib2.rs")).unwrap();
    let renamed = sum(root, &no_mode);
    std::fs::rename(root.join("src/lib2.rs"), root.join("src/lib.rs")).unwrap();
    assert_ne!(renamed, sum(root, &no_mode), "names matter");
}

#[test]
fn unrelated_files_do_not_change_a_selection() {
    let dir = context();
    let root = dir.path();
    let before = sum(root, &Selection::path("src/main.rs"));
    write(root, "README.md", "edited\n");
    write(root, "src/new.rs", "new\n");
    assert_eq!(before, sum(root, &Selection::path("src/main.rs")));
    let whole = sum(root, &Selection::all());
    write(root, "README.md", "edited again\n");
    assert_ne!(whole, sum(root, &Selection::all()));
}

#[test]
fn dockerignore_excludes_before_hashing() {
    let dir = context();
    let root = dir.path();
    let h = hasher(root, &["*.log", "src", "!src/main.rs"]);
    let all = h.checksum(&Selection::all()).unwrap();
    write(root, "build.log", "other noise\n");
    write(root, "src/lib.rs", "ignored change\n");
    assert_eq!(all, h.checksum(&Selection::all()).unwrap());
    write(root, "src/main.rs", "fn main() { 1 }\n");
    assert_ne!(all, h.checksum(&Selection::all()).unwrap(), "re-included file counts");
    match h.checksum(&Selection::path("build.log")) {
        Err(ContentHashError::NotFound { excluded: true, .. }) => {}
        other => panic!("expected excluded not-found, got {other:?}"),
    }
    assert!(h.checksum(&Selection::path("src/main.rs")).is_ok());
    assert!(matches!(
        h.checksum(&Selection::path("missing")),
        Err(ContentHashError::NotFound { excluded: false, .. })
    ));
}

#[test]
fn wildcards() {
    let dir = context();
    let root = dir.path();
    let mut sel = Selection::path("src/*.rs");
    sel.wildcard = true;
    let d = sum(root, &sel);
    write(root, "src/notes.txt", "x\n");
    assert_eq!(d, sum(root, &sel));
    write(root, "src/extra.rs", "x\n");
    assert_ne!(d, sum(root, &sel));
    let mut none = Selection::path("*.nothing");
    none.wildcard = true;
    assert!(matches!(hasher(root, &[]).checksum(&none), Err(ContentHashError::NoMatch { .. })));
    none.allow_empty = true;
    assert!(hasher(root, &[]).checksum(&none).is_ok());
    let mut ignored = Selection::path("*.log");
    ignored.wildcard = true;
    assert!(hasher(root, &["*.log"]).checksum(&ignored).is_err(), "wildcards do not see ignored files");
}

#[test]
fn selection_excludes_are_relative_to_the_selected_dir() {
    let dir = context();
    let root = dir.path();
    let mut sel = Selection::path("src");
    sel.exclude_patterns = vec!["lib.rs".into()];
    let d = sum(root, &sel);
    write(root, "src/lib.rs", "changed\n");
    assert_eq!(d, sum(root, &sel));
    write(root, "src/main.rs", "changed\n");
    assert_ne!(d, sum(root, &sel));
}

#[test]
fn symlinks_never_escape_the_root() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret", "top secret\n");
    let dir = context();
    let root = dir.path();
    symlink(outside.path().join("secret"), root.join("abs-link")).unwrap();
    symlink("../../../../../../../../etc/passwd", root.join("rel-link")).unwrap();
    symlink("src", root.join("dir-link")).unwrap();
    // Following resolves inside the root, where the targets do not exist.
    for link in ["abs-link", "rel-link"] {
        assert!(matches!(
            hasher(root, &[]).checksum(&Selection::path(link)),
            Err(ContentHashError::NotFound { .. })
        ));
    }
    // Inside a selected directory, links are hashed as links: changing the outside target
    // changes nothing.
    let all = sum(root, &Selection::all());
    write(outside.path(), "secret", "changed\n");
    assert_eq!(all, sum(root, &Selection::all()));
    // An in-root link is followed when asked, and hashed as a link when not.
    let followed = sum(root, &Selection::path("dir-link"));
    let mut unfollowed = Selection::path("dir-link");
    unfollowed.follow_symlinks = false;
    assert_ne!(followed, sum(root, &unfollowed));
    // Intermediate link components resolve in the root.
    assert!(hasher(root, &[]).checksum(&Selection::path("dir-link/main.rs")).is_ok());
    // An absolute link to a path that does exist in the root is resolved inside it.
    write(root, &outside.path().join("secret").to_string_lossy()[1..], "inside copy\n");
    assert!(hasher(root, &[]).checksum(&Selection::path("abs-link")).is_ok());
    symlink("loop-b", root.join("loop-a")).unwrap();
    symlink("loop-a", root.join("loop-b")).unwrap();
    assert!(matches!(
        hasher(root, &[]).checksum(&Selection::path("loop-a")),
        Err(ContentHashError::SymlinkLoop { .. })
    ));
}

#[test]
fn file_cache_is_used_and_persisted() {
    let dir = context();
    let root = dir.path();
    let h = hasher(root, &[]);
    let first = h.checksum(&Selection::all()).unwrap();
    assert_eq!(h.cache().len(), 4);
    // Poison the cached digest of one file: an unchanged stamp means the file is not re-read.
    let key = b"README.md".to_vec();
    let meta = std::fs::symlink_metadata(root.join("README.md")).unwrap();
    h.cache().insert(key.clone(), FileStamp::of(&meta), [7; 32]);
    assert_ne!(first, h.checksum(&Selection::all()).unwrap(), "the cached digest was used");
    // A changed stamp (ctime moves on chmod) re-reads the file.
    std::fs::set_permissions(root.join("README.md"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(first, h.checksum(&Selection::all()).unwrap());

    let store_dir = tempfile::tempdir().unwrap();
    let store = cache::Store::open(store_dir.path()).unwrap();
    let file = store_dir.path().join("hashes/ctx");
    h.cache().save(&store, &file).unwrap();
    let loaded = FileCache::load(&file);
    assert_eq!(loaded.len(), 4);
    assert!(!loaded.is_dirty());
    let warm = hasher(root, &[]).with_cache(loaded);
    assert_eq!(first, warm.checksum(&Selection::all()).unwrap());
    assert!(!warm.cache().is_dirty(), "a warm run reads nothing new");
}

#[test]
fn recent_files_are_not_cached() {
    let dir = context();
    let h = ContentHasher::new(dir.path(), &[]).unwrap();
    h.checksum(&Selection::all()).unwrap();
    assert!(h.cache().is_empty());
}

#[test]
fn digest_covers_owner_and_link_target_unless_chowned() {
    let dir = context();
    let root = dir.path();
    symlink("src/main.rs", root.join("link")).unwrap();
    let all = Selection::all();
    let mut no_owner = Selection::all();
    no_owner.include_owner = false;
    let base = sum(root, &all);
    let base_no_owner = sum(root, &no_owner);
    // Owner changes (we run as root, as CI does) change the digest, unless `--chown` overrides.
    std::os::unix::fs::lchown(root.join("README.md"), Some(4242), Some(4343)).unwrap();
    assert_ne!(base, sum(root, &all), "uid/gid matter");
    assert_eq!(base_no_owner, sum(root, &no_owner), "COPY --chown ignores source owners");
    std::os::unix::fs::lchown(root.join("README.md"), Some(0), Some(0)).unwrap();
    let chowned_back = sum(root, &all);
    // A link's target matters even when the link is not followed.
    std::fs::remove_file(root.join("link")).unwrap();
    symlink("src/lib.rs", root.join("link")).unwrap();
    assert_ne!(chowned_back, sum(root, &all), "link targets matter");
    // Type matters: a file with the link's target as content is not the link.
    std::fs::remove_file(root.join("link")).unwrap();
    write(root, "link", "src/lib.rs");
    assert_ne!(chowned_back, sum(root, &all), "entry types matter");
}

#[test]
fn parallel_walk_gives_the_sequential_digest() {
    let dir = context();
    let root = dir.path();
    for d in 0..12 {
        for f in 0..5 {
            write(root, &format!("d{d}/sub{}/f{f}.txt", f % 2), &format!("{d} {f}\n"));
        }
    }
    write(root, "d3/skip.log", "ignored\n");
    symlink("d1", root.join("d-link")).unwrap();
    let mut sel = Selection::all();
    sel.exclude_patterns = vec!["d5".into()];
    let digest = |threads: usize| {
        let mut h = hasher(root, &["**/*.log", "**/sub1"]);
        h.threads = threads;
        let records = walk::collect(&h, &sel).unwrap();
        let names: Vec<Vec<u8>> = records.iter().map(walk::record_name).collect();
        (h.checksum(&sel).unwrap(), names)
    };
    let (one, names) = digest(1);
    let (many, parallel_names) = digest(4);
    assert_eq!(names, parallel_names, "same records in the same order");
    assert_eq!(one, many);
    assert!(names.iter().any(|n| n == b"d0/sub0/f0.txt"));
    let unwanted: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with(b"d5") || n.ends_with(b".log") || n.ends_with(b"sub1"))
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(unwanted.is_empty(), "{unwanted:?}");
}
