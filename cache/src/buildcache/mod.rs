//! The build cache: an index from cache keys to build results, and persistent cache-mount
//! directories (`RUN --mount=type=cache`). Owned by the solver team.
//!
//! # Layout (under the store root)
//!
//! ```text
//! buildcache/index-v1/<k[0..2]>/<k>.json   one CacheRecord per cache key (hex k), atomically replaced
//! buildcache/index-v1/locks/<k>.lock       flock held while a build computes key k
//! buildcache/mounts-v1/<sha256(id)>/       one cache mount: `id`, `data/` + `data.lock`,
//!                                          `private-N/` + `private-N.lock`
//! buildcache/contenthash-v1/<name>         per-context file checksum caches (solver::contenthash)
//! ```
//!
//! One file per key makes concurrent builds on one root safe without a global lock: readers see
//! the old or the new record, never a partial one; two builds writing the same key both write a
//! valid record. A record is written only after the blobs it names are committed, and
//! [`BuildCache::get`] treats a record whose blobs are gone (GC) as a miss. Build-cache records
//! are GC roots through [`BuildCache`]'s [`crate::GcRoots`] implementation.

mod index;
mod mounts;
mod prune;

pub use index::{BuildCache, CacheRecord, CacheResult, CachedLayer, INDEX_VERSION, KeyLock};
pub use mounts::{CacheMountGuard, CacheMounts, MountSharing};
pub use prune::{CacheEntry, MountEntry, PruneOptions, PruneReport, reclaimable};
