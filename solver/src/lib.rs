//! Build graph, cache keys, content checksums, the parallel scheduler and progress events.
//!
//! # Pipeline and entry points
//!
//! ```text
//! frontend (next) ──► graph::GraphBuilder ──► graph::Definition (vertex digests)
//!                                                   │
//!   scheduler::Solver::solve(definition, options, progress, cancel)
//!     per vertex: inputs ─► cachekey::input_uses ─► OpRunner::checksum (contenthash) ─►
//!                 cachekey::compute ─► ResultCache::load ─(miss)─► OpRunner::run ─► ResultCache::save
//!                                                   │
//!   progress::ProgressEvent stream ─► the CLI's renderers (plain/tty/rawjson/quiet)
//! ```
//!
//! - [`graph`]: ops ([`graph::SourceOp`], [`graph::ExecOp`] with [`graph::Mount`]s,
//!   [`graph::FileOp`] with chained [`graph::FileAction`]s, [`graph::MergeOp`]), vertices with
//!   digests over canonical JSON, [`graph::Definition`] (JSON round trip with digest checks).
//! - [`cachekey`]: [`cachekey::CACHE_KEY_SCHEMA`], [`cachekey::input_uses`] (what an op reads
//!   from each input), [`cachekey::compute`].
//! - [`contenthash`]: [`contenthash::ContentHasher`] (checksum of a [`contenthash::Selection`]
//!   in a directory; [`contenthash::ContentHasher::for_context`] loads/persists the per-file
//!   cache in the store), `.dockerignore` handling in [`contenthash::ignore`].
//! - [`scheduler`]: [`scheduler::Solver`], the [`scheduler::OpRunner`] and
//!   [`scheduler::ResultCache`] traits, [`scheduler::MemoryCache`].
//! - [`storecache`]: [`storecache::StoreCache`], the store's build-cache index as a
//!   `ResultCache` for runner results implementing [`storecache::StoreRef`].
//! - [`progress`]: events, [`progress::VertexLog`] for runners, [`progress::LineTail`] (the
//!   last output lines a failure reports); the CLI renders the events.
// Libraries never print: they return values, typed errors and events for the CLI to render.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod build;
pub mod cachekey;
pub mod contenthash;
pub mod entitlements;
pub mod export;
pub mod frontend;
#[cfg(test)]
mod golden;
pub mod graph;
pub mod progress;
pub mod remotecache;
pub mod runner;
pub mod scheduler;
pub mod storecache;
