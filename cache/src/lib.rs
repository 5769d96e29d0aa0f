//! Content store, snapshots, layer diff/apply, image store, build-cache index, image formats.
//!
//! # On-disk layout (store format version 1)
//!
//! ```text
//! <root>/kiln-store-version          "1" — checked by Store::open; another value is refused
//! <root>/gc.lock                     shared flock per open Store (and its handles); GC sweeps only
//!                                    when it can take it exclusively
//! <root>/content/oci-layout          {"imageLayoutVersion":"1.0.0"}
//! <root>/content/blobs/sha256/<hex>  blobs (OCI image-layout compatible)
//! <root>/content/compressed-v1/gzip/<tar-hex>  the gzip blob made for a plain layer (distribute)
//! <root>/snapshots/<chain-hex>/fs    one unpacked layer per chain ID (an overlay lower dir)
//! <root>/snapshots/<chain-hex>/info.json   SnapshotInfo (diffID, parent chain, blob, size)
//! <root>/snapshot-hints-v1/<key-hex> chain ID a snapshot-producing operation made last (a hint)
//! <root>/images/images-v1.json       name → ImageRecord (atomically replaced under images/lock)
//! <root>/images/lock                 flock for image-index writers
//! <root>/gcroots/<name>              digests (one per line) other components keep alive
//! <root>/buildcache/…                the build-cache index and cache mounts ([`buildcache`])
//! <root>/tmp/<pid>-…/                one private temp dir per open Store (same filesystem as
//! <root>/tmp/<pid>-….lock            the rest, for atomic renames), flocked by its owner; dirs
//!                                    whose lock is free are leftovers of dead processes and are
//!                                    removed by the next Store::open
//! ```
//!
//! Every write is atomic: temp file (or temp dir) under `tmp/`, fsync (syncfs for unpacked
//! trees), rename into place, fsync of the directory. A process killed at any moment leaves a
//! usable store.
//!
//! # Layers of the crate
//!
//! Modules depend downwards only (no module cycle; `testkit/tests/module_cycles.rs` checks it):
//!
//! ```text
//! store        the facade: open, version check, gc.lock, handles, tagged image writes, gc
//!              (check, distribute, buildcache and formats sit above it and use Store)
//! gc           Collector: mark from images, gcroots/ and GcRoots; sweep blobs and snapshots
//! images       ImageStore: names → manifests, under images/lock
//! image        image documents: read (index → manifest → config), write
//! snapshot     Snapshots: unpack, commit a directory or a layer, hints
//! diff         a directory → layer tar → blob
//! content      ContentStore, BlobWriter    apply   tar → directory (hostile-safe)
//! layout       root paths, per-process temp area, atomic write, fsync/syncfs, sha256 adapters
//! error · safefs · compress · config
//! ```
//!
//! The handles ([`ContentStore`], [`Snapshots`], [`ImageStore`]) hold the layout, never the
//! whole [`Store`]; each keeps this process's temp directory and its `gc.lock` claim alive.
//!
//! # Entry points
//!
//! - [`Store::open`] → [`Store`]; cheap to clone, `Send + Sync`.
//! - Content ([`Store::content`] → [`ContentStore`]): [`ContentStore::contains`],
//!   [`ContentStore::blob_path`], [`ContentStore::open`], [`ContentStore::size`],
//!   [`ContentStore::read`] / [`ContentStore::read_json`] (digest-verified),
//!   [`ContentStore::writer`] → [`BlobWriter`] (`io::Write`, hashes while writing;
//!   [`BlobWriter::commit`]`(Some(&expected))` verifies, fsyncs, renames — on mismatch nothing is
//!   stored), [`ContentStore::write_bytes`], [`ContentStore::write_json`],
//!   [`ContentStore::write_from`] (copy from a reader with expected digest/size).
//! - Layers: [`ContentStore::write_layer`] (directory — overlay upperdir or plain dir — →
//!   compressed layer blob + diffID in one pass, [`DiffOptions`]: gzip/zstd/none,
//!   `SOURCE_DATE_EPOCH` clamp, threads), [`ContentStore::write_layer_from_tar`] (an existing tar
//!   stream, validated), [`apply::apply_tar`] (tar → directory, hostile-input safe).
//! - Snapshots ([`Store::snapshots`] → [`Snapshots`]): [`Snapshots::ensure_unpacked`]`(&[LayerRef])`
//!   → lower dirs, **topmost first** (ready for `lowerdir=`); [`Snapshots::commit_dir`] (move an
//!   upperdir in as a snapshot); [`Snapshots::flatten`] (chain → plain directory);
//!   [`chain_ids`].
//! - Images: [`Store::write_image`] / [`ContentStore::write_image`] (config + layers → OCI manifest),
//!   [`ContentStore::read_image`] → [`Image`] (index → host-platform manifest → config, layers
//!   as [`LayerRef`]s), [`Store::images`] → [`ImageStore`] (`tag`, `untag`, `get`, `list`,
//!   `resolve` by name / digest / short ID). Names are stored fully qualified
//!   (`docker.io/library/busybox:latest`): callers normalise with `registry::Reference`.
//! - Image configs ([`parse_image_config`], [`DockerExtras`], [`from_json_slice`]): the one
//!   config type of the workspace (oci-spec's `ImageConfiguration` plus Docker's `Healthcheck`,
//!   `OnBuild`, `Shell`); every reader treats `null` members as absent, as Go producers write them
//!   (fixtures from each producer in `testdata/images/`).
//! - GC: [`Store::gc`] with extra [`GcRoots`]; [`Store::set_gc_roots`] for file-based roots.
//! - Formats ([`formats`]): [`formats::save`] (images → docker-archive or OCI archive, written to
//!   any `Write`), [`formats::load`] (docker-archive in legacy and docker 25+ forms, OCI archive,
//!   OCI layout directory; plain or gzip/zstd compressed; every blob and diffID verified; returns
//!   [`formats::LoadedImage`]s for the caller to name), [`formats::import_rootfs`] (rootfs
//!   tarball → one-layer image, docker `--change` instructions via [`formats::apply_change`]).
//!
//! # For the build exporter: four calls
//!
//! Every call below is safe from several threads and several processes on the same root at once
//! (blobs and snapshots are written under private temp names and renamed into place; identical
//! concurrent writes both succeed; the image index is updated under a file lock; GC sweeps only
//! while no other `Store` is open).
//!
//! | need | call |
//! |---|---|
//! | (a) overlay upperdir → layer blob + diffID, streamed | [`ContentStore::write_layer`]`(dir, DiffSource::OverlayUpper, &DiffOptions) -> Result<NewLayer>` |
//! | (b) config + manifest into the store, tagged | [`Store::write_image_tagged`]`(&config, &[Descriptor], &[&str]) -> Result<Descriptor>` (or [`Store::write_image`] + [`ImageStore::tag`]) |
//! | (c) docker / OCI archive of images to a file | [`formats::save_to_file`]`(&store, &[ExportImage], ArchiveFormat, path) -> Result<()>` (any `Write`: [`formats::save`]) |
//! | (d) overlay lower dirs for a layer chain, unpacked from blobs when missing | [`Snapshots::ensure_unpacked`]`(&[LayerRef]) -> Result<Vec<PathBuf>>` (topmost first) |
//!
//! ```no_run
//! use cache::formats::{self, ArchiveFormat, ExportImage};
//! use cache::{Compression, DiffOptions, DiffSource, LayerRef, Store};
//! use oci_spec::image::{ImageConfigurationBuilder, RootFsBuilder};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open(std::path::Path::new("/var/lib/kiln"))?;
//!
//! // (a) the upperdir of a RUN → a gzip layer blob (zstd: Compression::Zstd), diffID computed
//! // in the same pass; threads: 0 = all cores; source_date_epoch clamps mtimes
//! let options = DiffOptions { compression: Compression::Gzip, source_date_epoch: None, threads: 0 };
//! let layer = store.content().write_layer(
//!     std::path::Path::new("/var/lib/kiln/tmp/run-1/upper"),
//!     DiffSource::OverlayUpper,
//!     &options,
//! )?;
//!
//! // (b) config (one diffID per layer) + OCI manifest, tagged with fully qualified names
//! let rootfs =
//!     RootFsBuilder::default().typ("layers").diff_ids(vec![layer.diff_id.to_string()]).build()?;
//! let config = ImageConfigurationBuilder::default().rootfs(rootfs).build()?;
//! let manifest = store.write_image_tagged(
//!     &config,
//!     &[layer.descriptor.clone()],
//!     &["docker.io/library/app:latest"],
//! )?;
//!
//! // (c) a docker-archive (`docker load`-able) or an OCI archive, written atomically
//! let export = ExportImage { target: manifest, names: vec!["docker.io/library/app:latest".into()] };
//! formats::save_to_file(&store, &[export], ArchiveFormat::Docker, std::path::Path::new("app.tar"))?;
//!
//! // (d) lower dirs for `mount -t overlay -o lowerdir=…` (topmost first), unpacked if missing
//! let lowers = store
//!     .snapshots()
//!     .ensure_unpacked(&[LayerRef { blob: layer.descriptor, diff_id: layer.diff_id }])?;
//! let lowerdir = lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
//! # let _ = lowerdir;
//! # Ok(())
//! # }
//! ```
// Libraries never print: they return values, typed errors and events for the CLI to render.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod apply;
pub mod buildcache;
mod check;
pub mod compress;
mod config;
mod content;
mod diff;
mod distribute;
mod error;
pub mod formats;
mod gc;
mod image;
mod images;
mod layout;
pub mod safefs;
mod snapshot;
pub mod snapshotter;
mod store;

pub use check::{BlobDamage, BlobState, CheckReport, Damage, RepairReport};
pub use compress::Compression;
pub use config::{DockerExtras, HealthConfig, from_json_slice, merge_extras, parse_image_config};
pub use content::{BlobInfo, BlobWriter, ContentStore};
pub use diff::{DiffOptions, DiffSource, NewLayer, write_tar};
pub use error::{EntryProblem, Error, Result};
pub use gc::{GcReport, GcRoots};
pub use image::{
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, DocKind,
    Image, doc_kind, epoch_of_rfc3339, host_platform, is_config_media_type, is_layer_media_type, now_rfc3339,
    rfc3339_from_epoch, rfc3339_like_go,
};
pub use images::{ImageRecord, ImageStore};
pub use layout::{HashingReader, HashingWriter, parse_digest, sha256_digest};
pub use snapshot::{CommittedLayer, LayerRef, SnapshotInfo, Snapshots, chain_ids};
pub use store::{STORE_VERSION, Store, VERSION_FILE};
