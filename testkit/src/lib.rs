//! Shared scaffolding of kiln's tests; a dev-dependency only, never published.
//!
//! - [`busybox`]: the busybox root filesystem of `testdata/rootfs/busybox-rootfs.sh` and its
//!   tarball, built once per test binary.
//! - [`Kiln`]: the `kiln` binary with its own `--root`, for the CLI's end-to-end tests.
//! - [`registry`]: Debian's `docker-registry` on 127.0.0.1, stopped by PID on drop.
//! - [`require_root!`]: the guard of tests that need root: they skip with a visible message
//!   outside CI and fail in CI (`CI=true`).
//! - [`process::descendants`]: the processes a test's process started.
//! - `store` (feature `store`): a busybox image written straight into a `cache::Store`.
//! - `fakes` (feature `fakes`): a directory snapshotter and a recording executor, the build's
//!   seams without overlay or sandbox.

// Test scaffolding: a failure is the calling test's panic, with what failed.
#![allow(clippy::unwrap_used)]

pub mod busybox;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod forward;
#[cfg(feature = "harness")]
pub mod harness;
mod kiln;
pub mod process;
pub mod registry;
mod root;
#[cfg(feature = "store")]
pub mod store;

pub use busybox::{busybox_rootfs, busybox_tarball, run, testdata};
pub use kiln::{Kiln, kiln_binary, kiln_command, ran, read, steps};
pub use root::{is_root, root_or_skip};
