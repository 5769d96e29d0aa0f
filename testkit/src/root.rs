//! The guard of tests that need root (mounts, namespaces, cgroups).

use std::io::Write;
use std::os::unix::fs::MetadataExt;

/// Whether this process runs as root (the owner of `/proc/self` is the effective uid).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether a test that needs root may go on. As root: yes. Otherwise, with `CI=true` the test
/// fails (CI must run the root tests, not pass by skipping them); outside CI it says loudly on
/// stderr that it skipped, and the caller returns. [`require_root!`](crate::require_root) is the
/// usual form.
pub fn root_or_skip() -> bool {
    if is_root() {
        return true;
    }
    let test = match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        // a test binary with its own harness: name the binary
        _ => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "this test".to_owned()),
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs root, and CI=true: run the tests as root (CI never skips them)"
    );
    // straight to the process's stderr: libtest captures `eprintln!` of passing tests
    let message = format!("\n!!!!!!!! SKIP: {test} needs root (mounts, namespaces); NOT run !!!!!!!!\n\n");
    let _ = std::io::stderr().write_all(message.as_bytes());
    false
}

/// Returns from the calling test unless it runs as root; see [`root_or_skip`].
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::root_or_skip() {
            return;
        }
    };
}
