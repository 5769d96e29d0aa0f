#![allow(clippy::unwrap_used)]
//! Hostile layer tars: nothing is ever created outside the snapshot directory and the error
//! names the entry. Runs as root (device nodes, trusted.* xattrs).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use cache::apply::{ApplyMode, apply_tar};

/// A raw tar entry (name bytes are written verbatim, bypassing the tar crate's checks).
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    link: Option<&'a str>,
    data: &'a [u8],
    size_override: Option<u64>,
}

fn entry<'a>(name: &'a str, kind: tar::EntryType, link: Option<&'a str>, data: &'a [u8]) -> Raw<'a> {
    Raw { name, kind, link, data, size_override: None }
}

fn build(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut header = tar::Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().unwrap();
            gnu.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
            if let Some(link) = e.link {
                gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
        }
        header.set_entry_type(e.kind);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(e.size_override.unwrap_or(e.data.len() as u64));
        header.set_mtime(1_000_000);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(e.data);
        let pad = (512 - e.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    if entries.iter().all(|e| e.size_override.is_none()) {
        out.extend(std::iter::repeat_n(0u8, 1024));
    }
    out
}

/// Applies `tar` into `<tmp>/root` and returns the error text; asserts nothing appeared in
/// `<tmp>` outside `root`.
fn apply_expect_error(tar: &[u8]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let err = apply_tar(tar, &root, ApplyMode::Overlay).unwrap_err().to_string();
    assert_nothing_outside(tmp.path());
    err
}

fn assert_nothing_outside(tmp: &Path) {
    let names: Vec<_> = std::fs::read_dir(tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("root")], "something was created outside the root");
    assert!(!Path::new("/tmp/kiln-escape-canary").exists());
}

#[test]
fn dotdot_is_refused_with_entry_name() {
    let err = apply_expect_error(&build(&[entry("../escape", tar::EntryType::Regular, None, b"x")]));
    assert!(err.contains("\"../escape\"") && err.contains("`..`"), "{err}");
    let err = apply_expect_error(&build(&[entry("a/../../escape", tar::EntryType::Regular, None, b"x")]));
    assert!(err.contains("a/../../escape"), "{err}");
}

#[test]
fn absolute_path_is_refused() {
    let err =
        apply_expect_error(&build(&[entry("/tmp/kiln-escape-canary", tar::EntryType::Regular, None, b"x")]));
    assert!(err.contains("/tmp/kiln-escape-canary") && err.contains("absolute"), "{err}");
}

/// An absolute symlink to a real directory outside, then a file written through it: the link
/// resolves inside the root (where its target does not exist), so the write is refused.
#[test]
fn file_written_through_absolute_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().to_str().unwrap().to_owned();
    let err = apply_expect_error(&build(&[
        entry("link", tar::EntryType::Symlink, Some(&outside), b""),
        entry("link/evil", tar::EntryType::Regular, None, b"x"),
    ]));
    assert!(err.contains("\"link/evil\""), "{err}");
    assert!(!tmp.path().join("evil").exists());
}

/// A relative symlink climbing out of the root resolves to the root itself (like `/..` is `/`):
/// the file written through it lands inside.
#[test]
fn file_written_through_escaping_relative_symlink_lands_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let tar = build(&[
        entry("rel", tar::EntryType::Symlink, Some("../../../../"), b""),
        entry("rel/evil", tar::EntryType::Regular, None, b"x"),
    ]);
    apply_tar(&tar[..], &root, ApplyMode::Overlay).unwrap();
    assert_nothing_outside(tmp.path());
    assert_eq!(std::fs::read(root.join("evil")).unwrap(), b"x");
    assert!(std::fs::symlink_metadata(root.join("rel")).unwrap().file_type().is_symlink());
}

#[test]
fn hardlink_with_dotdot_target_is_refused() {
    let err = apply_expect_error(&build(&[entry(
        "passwd",
        tar::EntryType::Link,
        Some("../../../../etc/passwd"),
        b"",
    )]));
    assert!(err.contains("\"passwd\"") && err.contains("`..`"), "{err}");
}

#[test]
fn hardlink_with_absolute_target_is_refused() {
    let err = apply_expect_error(&build(&[entry("passwd", tar::EntryType::Link, Some("/etc/passwd"), b"")]));
    assert!(err.contains("\"passwd\"") && err.contains("absolute"), "{err}");
}

/// A hardlink whose target goes through a symlink to the host's /etc resolves inside the root,
/// where the target does not exist.
#[test]
fn hardlink_through_escaping_symlink_is_refused() {
    let err = apply_expect_error(&build(&[
        entry("hostetc", tar::EntryType::Symlink, Some("/etc"), b""),
        entry("passwd", tar::EntryType::Link, Some("hostetc/passwd"), b""),
    ]));
    assert!(err.contains("\"passwd\"") && err.contains("does not exist"), "{err:?}");
}

#[test]
fn symlink_loop_is_refused() {
    let err = apply_expect_error(&build(&[
        entry("a", tar::EntryType::Symlink, Some("b"), b""),
        entry("b", tar::EntryType::Symlink, Some("a"), b""),
        entry("a/file", tar::EntryType::Regular, None, b"x"),
    ]));
    assert!(err.contains("\"a/file\""), "{err}");
}

fn device_header(name: &str, kind: tar::EntryType, major: u32, minor: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_path(name).unwrap();
    header.set_entry_type(kind);
    header.set_device_major(major).unwrap();
    header.set_device_minor(minor).unwrap();
    header.set_mode(0o660);
    header.set_uid(0);
    header.set_gid(6);
    header.set_mtime(0);
    header.set_size(0);
    header.set_cksum();
    header
}

/// Device nodes are created (we are root, like containerd outside a user namespace; see the
/// `apply` module docs), inside the root, even when their parent is a symlink pointing at the
/// host's /dev.
#[test]
fn device_nodes_are_created_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    link.set_uid(0);
    link.set_gid(0);
    link.set_mtime(0);
    builder.append_link(&mut link, "hostdev", "/dev").unwrap();
    for (name, kind, major, minor) in [
        ("dev/null", tar::EntryType::Char, 1, 3),
        ("dev/sda", tar::EntryType::Block, 8, 0),
        ("hostdev/kiln-escape-canary", tar::EntryType::Char, 1, 3),
    ] {
        builder.append(&device_header(name, kind, major, minor), std::io::empty()).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    apply_tar(&tar[..], &root, ApplyMode::Overlay).unwrap();
    let meta = std::fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o660, 6));
    let meta = std::fs::symlink_metadata(root.join("dev/sda")).unwrap();
    assert!(meta.file_type().is_block_device());
    assert_eq!(meta.rdev(), rustix::fs::makedev(8, 0));
    // written through the symlink: lands in <root>/dev, not the host's /dev
    assert!(
        std::fs::symlink_metadata(root.join("dev/kiln-escape-canary")).unwrap().file_type().is_char_device()
    );
    assert!(!Path::new("/dev/kiln-escape-canary").exists());
    assert_nothing_outside(tmp.path());
}

#[test]
fn huge_declared_size_fails_cleanly() {
    let mut raw = entry("big", tar::EntryType::Regular, None, b"only a few bytes");
    raw.size_override = Some(1 << 40);
    let err = apply_expect_error(&build(&[raw]));
    assert!(err.contains("\"big\"") && err.contains("1099511627776 bytes"), "{err}");
}

#[test]
fn duplicate_entries_last_one_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let tar = build(&[
        entry("x", tar::EntryType::Regular, None, b"first"),
        entry("x", tar::EntryType::Regular, None, b"second"),
        entry("d", tar::EntryType::Symlink, Some("/"), b""),
        entry("d/", tar::EntryType::Directory, None, b""),
        entry("d/f", tar::EntryType::Regular, None, b"in dir"),
    ]);
    apply_tar(&tar[..], &root, ApplyMode::Overlay).unwrap();
    assert_eq!(std::fs::read(root.join("x")).unwrap(), b"second");
    assert!(std::fs::symlink_metadata(root.join("d")).unwrap().is_dir());
    assert_eq!(std::fs::read(root.join("d/f")).unwrap(), b"in dir");
    assert_nothing_outside(tmp.path());
}

#[test]
fn whiteout_of_dotdot_is_refused() {
    let err = apply_expect_error(&build(&[entry("a/.wh...", tar::EntryType::Regular, None, b"")]));
    assert!(err.contains("a/.wh..."), "{err}");
    let err = apply_expect_error(&build(&[entry(".wh..", tar::EntryType::Regular, None, b"")]));
    assert!(err.contains(".wh.."), "{err}");
}

#[test]
fn file_entry_over_symlink_replaces_the_link_not_its_target() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let victim = tmp.path().join("root-victim");
    let victim_str = victim.to_str().unwrap().to_owned();
    // a symlink to a file outside, a hardlink to that symlink, then files written at both names
    let tar = build(&[
        entry("link", tar::EntryType::Symlink, Some(&victim_str), b""),
        entry("hard", tar::EntryType::Link, Some("link"), b""),
        entry("link", tar::EntryType::Regular, None, b"pwned"),
        entry("hard", tar::EntryType::Regular, None, b"pwned"),
    ]);
    apply_tar(&tar[..], &root, ApplyMode::Overlay).unwrap();
    assert!(!victim.exists(), "nothing written through the symlink");
    assert_eq!(std::fs::read(root.join("link")).unwrap(), b"pwned");
    assert!(std::fs::symlink_metadata(root.join("hard")).unwrap().is_file());
    assert_nothing_outside(tmp.path());
}
