//! The cache config: the document a cache manifest's config blob holds (BuildKit's
//! `application/vnd.buildkit.cacheconfig.v0` plays the same part).
//!
//! ```json
//! { "schemaVersion": 1, "cacheKeySchema": 1,
//!   "layers":  [ { "blob": <descriptor>, "diffID": "sha256:…", "parent": null | <layer index> } ],
//!   "records": [ { "key": "sha256:…", "results": [ { "top": null | <layer index> } ],
//!                  "inputs": [ <record index> ], "description": "[2/3] RUN make" } ],
//!   "checksums": [ { "chain": "sha256:<chain ID>", "selection": "<json>", "digest": "sha256:…" } ] }
//! ```
//!
//! - `layers` is a forest: a result's layer chain is its `top` layer and that layer's parents,
//!   so records sharing a base share its entries (as BuildKit's `layers` with `parentIndex`).
//! - `records` are keyed by kiln's cache keys ([`crate::cachekey`]), which already include
//!   their inputs' keys: matching needs the key only. `inputs` keeps the links between the
//!   records (which record's result a step consumed) for tools and listings.
//! - `checksums` are the content checksums of paths inside exported chains that the build
//!   computed (e.g. for a `COPY --from=stage`): with them a step that copies from another
//!   stage is matched without downloading that stage's layers.
//!
//! A later kiln bumps [`SCHEMA_VERSION`] for an incompatible change; [`CacheConfig::parse`]
//! refuses any version other than its own before reading further.

use std::collections::HashMap;

use cache::buildcache::{CacheResult, CachedLayer};
use oci_spec::image::{Descriptor, Digest};
use serde::{Deserialize, Serialize};

/// Media type of the cache config blob (the cache manifest's `config`).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.buildcache.config.v1+json";
/// The image config field holding an inline cache config (`--cache-to type=inline`).
pub const INLINE_FIELD: &str = "dev.kiln.buildcache.v1";
/// Version of the cache config document.
pub const SCHEMA_VERSION: u32 = 1;

/// A cache config document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheConfig {
    pub schema_version: u32,
    /// [`crate::cachekey::CACHE_KEY_SCHEMA`] of the kiln that wrote the keys.
    pub cache_key_schema: u32,
    pub layers: Vec<ConfigLayer>,
    pub records: Vec<ConfigRecord>,
    #[serde(default)]
    pub checksums: Vec<ConfigChecksum>,
    /// `RUN --mount=type=cache` directories (`cache-mounts=true`), one gzip layer each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<ConfigMount>,
}

/// One cache mount's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigMount {
    /// The mount's id (`id=`, else its target).
    pub id: String,
    /// A layer holding the directory's contents.
    pub blob: Descriptor,
}

/// One layer of the forest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigLayer {
    pub blob: Descriptor,
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
    /// Index of the layer below (`None` = bottom layer).
    pub parent: Option<usize>,
}

/// One cache key and its results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub key: Digest,
    pub results: Vec<ConfigResult>,
    #[serde(default)]
    pub inputs: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One output: a layer chain given by its top layer (`None` = scratch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigResult {
    pub top: Option<usize>,
}

/// A content checksum of a selection inside a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChecksum {
    /// Chain ID of the filesystem.
    pub chain: Digest,
    /// The selection as canonical JSON.
    pub selection: String,
    pub digest: Digest,
}

/// Why a cache config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(
        "cache config schema version {found} is not supported (this kiln reads version {SCHEMA_VERSION})"
    )]
    UnknownSchema { found: u32 },
    #[error("invalid cache config")]
    Json(#[source] serde_json::Error),
    #[error("invalid cache config: {0}")]
    Invalid(String),
}

/// Builds a [`CacheConfig`], sharing layer entries between chains.
#[derive(Debug, Default)]
pub struct ConfigBuilder {
    layers: Vec<ConfigLayer>,
    /// (parent index, blob digest) → layer index.
    layer_index: HashMap<(Option<usize>, Digest), usize>,
    records: Vec<ConfigRecord>,
    record_index: HashMap<Digest, usize>,
}

impl ConfigBuilder {
    pub fn new() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The entry of `layers`' top layer (adding the chain), `None` for scratch.
    fn add_chain(&mut self, layers: &[CachedLayer]) -> Option<usize> {
        let mut parent = None;
        for layer in layers {
            let slot = (parent, layer.blob.digest().clone());
            let index = match self.layer_index.get(&slot) {
                Some(index) => *index,
                None => {
                    self.layers.push(ConfigLayer {
                        blob: layer.blob.clone(),
                        diff_id: layer.diff_id.clone(),
                        parent,
                    });
                    self.layer_index.insert(slot, self.layers.len() - 1);
                    self.layers.len() - 1
                }
            };
            parent = Some(index);
        }
        parent
    }

    /// Adds a record whose results are all layer chains; `false` (and nothing added) when a
    /// result is not a filesystem. Inputs must have been added before (unknown ones are left
    /// out).
    pub fn add_record(
        &mut self,
        key: &Digest,
        results: &[CacheResult],
        inputs: &[Digest],
        description: Option<String>,
    ) -> bool {
        if self.record_index.contains_key(key) {
            return true;
        }
        let mut chains = Vec::with_capacity(results.len());
        for result in results {
            match result {
                CacheResult::Layers { layers } => chains.push(layers.as_slice()),
                CacheResult::Blob { .. } => return false,
            }
        }
        let results = chains.into_iter().map(|chain| ConfigResult { top: self.add_chain(chain) }).collect();
        let inputs = inputs.iter().filter_map(|k| self.record_index.get(k).copied()).collect();
        self.records.push(ConfigRecord { key: key.clone(), results, inputs, description });
        self.record_index.insert(key.clone(), self.records.len() - 1);
        true
    }

    pub fn finish(self) -> CacheConfig {
        CacheConfig {
            schema_version: SCHEMA_VERSION,
            cache_key_schema: crate::cachekey::CACHE_KEY_SCHEMA,
            layers: self.layers,
            records: self.records,
            checksums: Vec::new(),
            mounts: Vec::new(),
        }
    }
}

impl CacheConfig {
    /// Parses and validates a config: the schema version first (a later kiln's document is
    /// refused, never half-read), then every index.
    pub fn parse(bytes: &[u8]) -> Result<CacheConfig, FormatError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Version {
            schema_version: Option<u32>,
        }
        let version: Version = serde_json::from_slice(bytes).map_err(FormatError::Json)?;
        match version.schema_version {
            Some(SCHEMA_VERSION) => {}
            Some(found) => return Err(FormatError::UnknownSchema { found }),
            None => return Err(FormatError::Invalid("missing schemaVersion".into())),
        }
        let config: CacheConfig = serde_json::from_slice(bytes).map_err(FormatError::Json)?;
        for (index, layer) in config.layers.iter().enumerate() {
            // parents come first: chains end, and a hostile document cannot loop
            if layer.parent.is_some_and(|parent| parent >= index) {
                return Err(FormatError::Invalid(format!("layer {index} has parent {:?}", layer.parent)));
            }
        }
        for (index, record) in config.records.iter().enumerate() {
            if let Some(top) = record.results.iter().filter_map(|r| r.top).find(|t| *t >= config.layers.len())
            {
                return Err(FormatError::Invalid(format!("record {index} names layer {top}")));
            }
            if let Some(input) = record.inputs.iter().find(|i| **i >= config.records.len()) {
                return Err(FormatError::Invalid(format!("record {index} names input {input}")));
            }
        }
        if config.mounts.iter().any(|mount| mount.id.is_empty()) {
            return Err(FormatError::Invalid("a cache mount without an id".into()));
        }
        Ok(config)
    }

    /// The layer chain ending at `top`, bottom first.
    pub fn chain(&self, top: Option<usize>) -> Vec<CachedLayer> {
        let mut chain = Vec::new();
        let mut next = top;
        while let Some(index) = next {
            let Some(layer) = self.layers.get(index) else { break };
            chain.push(CachedLayer { blob: layer.blob.clone(), diff_id: layer.diff_id.clone() });
            // validated: parent < index
            next = layer.parent.filter(|p| *p < index);
        }
        chain.reverse();
        chain
    }

    /// The results of every record, by key.
    pub fn results(&self) -> HashMap<Digest, Vec<CacheResult>> {
        self.records
            .iter()
            .map(|record| {
                let results = record
                    .results
                    .iter()
                    .map(|r| CacheResult::Layers { layers: self.chain(r.top) })
                    .collect();
                (record.key.clone(), results)
            })
            .collect()
    }

    /// Chain IDs of every chain a record result names.
    pub fn chain_ids(&self) -> std::collections::HashSet<Digest> {
        self.records
            .iter()
            .flat_map(|record| &record.results)
            .filter_map(|result| {
                let diff_ids: Vec<Digest> = self.chain(result.top).into_iter().map(|l| l.diff_id).collect();
                cache::chain_ids(&diff_ids).pop()
            })
            .collect()
    }

    /// Keeps the checksums `(chain ID, selection, checksum)` of chains this config names.
    pub fn set_checksums(&mut self, sums: impl IntoIterator<Item = (Digest, String, Digest)>) {
        let chains = self.chain_ids();
        let mut checksums: Vec<ConfigChecksum> = sums
            .into_iter()
            .filter(|(chain, _, _)| chains.contains(chain))
            .map(|(chain, selection, digest)| ConfigChecksum { chain, selection, digest })
            .collect();
        checksums.sort_by(|a, b| (a.chain.as_ref(), &a.selection).cmp(&(b.chain.as_ref(), &b.selection)));
        checksums.dedup_by(|a, b| a.chain == b.chain && a.selection == b.selection);
        self.checksums = checksums;
    }

    /// This config as it leaves the machine: every layer the store keeps as a plain tar names
    /// its gzip blob instead ([`cache::Store::distributable_layer`], the same blob an image
    /// push or OCI export of that layer sends), so the manifest's layers, the records' chains
    /// and the pushed blobs agree. DiffIDs (and so chain IDs and checksums) do not change.
    pub fn distributable(&self, store: &cache::Store) -> Result<CacheConfig, cache::Error> {
        let mut out = self.clone();
        for layer in &mut out.layers {
            layer.blob = store.distributable_layer(&layer.blob)?;
        }
        Ok(out)
    }

    /// Every layer blob, without duplicates, in forest order, then the cache mounts' blobs.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut seen = std::collections::HashSet::new();
        self.layers
            .iter()
            .map(|l| &l.blob)
            .chain(self.mounts.iter().map(|m| &m.blob))
            .filter(|blob| seen.insert(blob.digest().clone()))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;

    fn layer(n: u8) -> CachedLayer {
        let blob = cache::sha256_digest(&[n]);
        CachedLayer {
            blob: Descriptor::new(MediaType::ImageLayerGzip, 10 + n as u64, blob),
            diff_id: cache::sha256_digest(&[n, n]),
        }
    }

    fn key(n: u8) -> Digest {
        cache::sha256_digest(&[0xff, n])
    }

    #[test]
    fn chains_share_layers_and_round_trip() {
        let mut builder = ConfigBuilder::new();
        let base = vec![layer(1)];
        let step = vec![layer(1), layer(2)];
        let other = vec![layer(1), layer(3)];
        assert!(builder.add_record(&key(1), &[CacheResult::Layers { layers: base.clone() }], &[], None));
        assert!(builder.add_record(
            &key(2),
            &[CacheResult::Layers { layers: step.clone() }],
            &[key(1)],
            None
        ));
        assert!(builder.add_record(
            &key(3),
            &[CacheResult::Layers { layers: other.clone() }],
            &[key(1)],
            None
        ));
        assert!(builder.add_record(&key(4), &[CacheResult::Layers { layers: vec![] }], &[key(9)], None));
        let blob = CacheResult::Blob { descriptor: Box::new(layer(5).blob) };
        assert!(!builder.add_record(&key(5), &[blob], &[], None), "downloads are not exported");
        let config = builder.finish();
        assert_eq!(config.layers.len(), 3, "layer 1 is shared");
        assert_eq!(config.records[1].inputs, vec![0]);
        assert!(config.records[3].inputs.is_empty(), "unknown inputs are left out");
        let bytes = serde_json::to_vec(&config).unwrap();
        let parsed = CacheConfig::parse(&bytes).unwrap();
        assert_eq!(parsed, config);
        let results = parsed.results();
        assert_eq!(results[&key(2)], vec![CacheResult::Layers { layers: step }]);
        assert_eq!(results[&key(3)], vec![CacheResult::Layers { layers: other }]);
        assert_eq!(results[&key(4)], vec![CacheResult::Layers { layers: vec![] }]);
        assert_eq!(parsed.blobs().len(), 3);

        let mut with_sums = parsed.clone();
        let step_chain = cache::chain_ids(&[layer(1).diff_id, layer(2).diff_id]).pop().unwrap();
        let elsewhere = cache::sha256_digest(b"another chain");
        with_sums.set_checksums([
            (step_chain.clone(), "{\"path\":\"/a\"}".to_owned(), key(7)),
            (elsewhere, "{}".to_owned(), key(8)),
        ]);
        assert_eq!(with_sums.checksums.len(), 1, "only chains of the config");
        assert_eq!(with_sums.checksums[0].chain, step_chain);
    }

    #[test]
    fn unknown_schemas_and_hostile_indexes_are_refused() {
        let later = br#"{"schemaVersion": 2, "something": "new"}"#;
        let err = CacheConfig::parse(later).unwrap_err();
        assert!(matches!(err, FormatError::UnknownSchema { found: 2 }), "{err}");
        assert!(err.to_string().contains("schema version 2 is not supported"), "{err}");
        assert!(matches!(CacheConfig::parse(b"{}").unwrap_err(), FormatError::Invalid(_)));
        assert!(matches!(CacheConfig::parse(b"[").unwrap_err(), FormatError::Json(_)));

        let mut builder = ConfigBuilder::new();
        builder.add_record(&key(1), &[CacheResult::Layers { layers: vec![layer(1), layer(2)] }], &[], None);
        let good = builder.finish();
        let mut cycle = good.clone();
        cycle.layers[0].parent = Some(1);
        let err = CacheConfig::parse(&serde_json::to_vec(&cycle).unwrap()).unwrap_err();
        assert!(matches!(err, FormatError::Invalid(_)), "{err}");
        let mut dangling = good.clone();
        dangling.records[0].results[0].top = Some(7);
        assert!(CacheConfig::parse(&serde_json::to_vec(&dangling).unwrap()).is_err());
        let mut input = good;
        input.records[0].inputs = vec![3];
        assert!(CacheConfig::parse(&serde_json::to_vec(&input).unwrap()).is_err());
    }
}
