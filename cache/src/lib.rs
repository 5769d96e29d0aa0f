//! Content store, snapshots, layer diff/apply, image store, build-cache index.
