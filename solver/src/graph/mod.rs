//! The build graph: a DAG of content-addressed ops (BuildKit's LLB).
//!
//! A [`Definition`] lists vertices in topological order (inputs before their consumers). Each
//! vertex has a *vertex digest* = sha256 of the canonical JSON of `{"op": …, "inputs": [{digest,
//! output}…]}` — so identical work has one digest and runs once per build. [`VertexMetadata`]
//! (progress names, groups, `ignore_cache`) rides along but never enters the digest.
//!
//! Build graphs with [`GraphBuilder`]; load serialised ones with [`Definition::from_json`], which
//! re-verifies every digest.

pub mod canonical;
pub mod chmod;
pub mod ops;

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};

pub use chmod::{Chmod, ChmodError};
pub use ops::*;

/// Errors of graph construction and validation.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("vertex input {input} refers to unknown vertex {digest}")]
    UnknownInput { input: usize, digest: Digest },
    #[error("vertex input {input} asks for output {output} of {digest}, which has {available} outputs")]
    NoSuchOutput { input: usize, digest: Digest, output: u32, available: u32 },
    #[error("{kind} op refers to input index {index}, but the vertex has {inputs} inputs")]
    InputIndex { kind: &'static str, index: u32, inputs: usize },
    #[error("invalid {kind} op: {problem}")]
    InvalidOp { kind: &'static str, problem: String },
    #[error("vertex {claimed} does not match its content (digest {actual})")]
    DigestMismatch { claimed: Digest, actual: Digest },
    #[error("definition has no targets")]
    NoTargets,
    #[error("cannot encode or decode the build graph")]
    Json(#[source] serde_json::Error),
}

/// A reference to one output of a vertex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Input {
    pub digest: Digest,
    pub output: u32,
}

/// Non-digested information about a vertex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexMetadata {
    /// Progress name, e.g. `[build 3/7] RUN make`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Groups vertices in progress output (e.g. one stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_group: Option<String>,
    /// `--no-cache` / `--no-cache-filter`: never reuse a cached result for this vertex.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_cache: bool,
    /// Free-form annotations (e.g. the Dockerfile span), for error rendering.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One vertex of a [`Definition`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vertex {
    pub digest: Digest,
    pub op: Op,
    pub inputs: Vec<Input>,
    #[serde(default)]
    pub metadata: VertexMetadata,
}

/// The digest of an op with its inputs.
pub fn vertex_digest(op: &Op, inputs: &[Input]) -> Result<Digest, GraphError> {
    #[derive(Serialize)]
    struct Digested<'a> {
        op: &'a Op,
        inputs: &'a [Input],
    }
    let bytes = canonical::to_canonical_json(&Digested { op, inputs }).map_err(GraphError::Json)?;
    Ok(cache::sha256_digest(&bytes))
}

/// A whole build graph: vertices in topological order and the outputs the caller wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    pub vertices: Vec<Vertex>,
    pub targets: Vec<Input>,
}

impl Definition {
    /// Parses and validates a serialised definition (digests recomputed).
    pub fn from_json(bytes: &[u8]) -> Result<Definition, GraphError> {
        let definition: Definition = serde_json::from_slice(bytes).map_err(GraphError::Json)?;
        let mut builder = GraphBuilder::new();
        for vertex in &definition.vertices {
            let actual = builder.add(vertex.op.clone(), vertex.inputs.clone(), vertex.metadata.clone())?;
            if actual != vertex.digest {
                return Err(GraphError::DigestMismatch { claimed: vertex.digest.clone(), actual });
            }
        }
        builder.finish(definition.targets)
    }

    /// Pretty JSON (the golden-file form).
    pub fn to_json_pretty(&self) -> Result<String, GraphError> {
        serde_json::to_string_pretty(self).map_err(GraphError::Json)
    }

    /// The vertex with this digest.
    pub fn vertex(&self, digest: &Digest) -> Option<&Vertex> {
        self.vertices.iter().find(|v| &v.digest == digest)
    }

    /// Map digest → position in [`Definition::vertices`].
    pub fn index(&self) -> HashMap<Digest, usize> {
        self.vertices.iter().enumerate().map(|(i, v)| (v.digest.clone(), i)).collect()
    }
}

/// Builds a [`Definition`], computing digests and deduplicating identical vertices.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    vertices: Vec<Vertex>,
    index: HashMap<Digest, usize>,
}

impl GraphBuilder {
    pub fn new() -> GraphBuilder {
        GraphBuilder::default()
    }

    /// Adds a vertex whose inputs were added before; returns its digest. Adding an identical
    /// vertex again returns the same digest (the first metadata is kept).
    pub fn add(
        &mut self,
        op: Op,
        inputs: Vec<Input>,
        metadata: VertexMetadata,
    ) -> Result<Digest, GraphError> {
        for (i, input) in inputs.iter().enumerate() {
            let Some(&pos) = self.index.get(&input.digest) else {
                return Err(GraphError::UnknownInput { input: i, digest: input.digest.clone() });
            };
            let available = self.vertices[pos].op.num_outputs();
            if input.output >= available {
                return Err(GraphError::NoSuchOutput {
                    input: i,
                    digest: input.digest.clone(),
                    output: input.output,
                    available,
                });
            }
        }
        validate_op(&op, inputs.len())?;
        let digest = vertex_digest(&op, &inputs)?;
        if !self.index.contains_key(&digest) {
            self.index.insert(digest.clone(), self.vertices.len());
            self.vertices.push(Vertex { digest: digest.clone(), op, inputs, metadata });
        }
        Ok(digest)
    }

    /// Convenience: adds a vertex and returns a reference to its output 0.
    pub fn add_output(
        &mut self,
        op: Op,
        inputs: Vec<Input>,
        metadata: VertexMetadata,
    ) -> Result<Input, GraphError> {
        Ok(Input { digest: self.add(op, inputs, metadata)?, output: 0 })
    }

    /// Finishes the graph with the outputs to build; vertices no target needs are dropped.
    pub fn finish(self, targets: Vec<Input>) -> Result<Definition, GraphError> {
        if targets.is_empty() {
            return Err(GraphError::NoTargets);
        }
        let mut needed = vec![false; self.vertices.len()];
        let mut stack = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let Some(&pos) = self.index.get(&target.digest) else {
                return Err(GraphError::UnknownInput { input: i, digest: target.digest.clone() });
            };
            stack.push(pos);
        }
        while let Some(pos) = stack.pop() {
            if needed[pos] {
                continue;
            }
            needed[pos] = true;
            for input in &self.vertices[pos].inputs {
                if let Some(&p) = self.index.get(&input.digest) {
                    stack.push(p);
                }
            }
        }
        let vertices = self.vertices.into_iter().zip(needed).filter(|(_, n)| *n).map(|(v, _)| v).collect();
        Ok(Definition { vertices, targets })
    }
}

fn check_index(kind: &'static str, index: u32, inputs: usize) -> Result<(), GraphError> {
    if index as usize >= inputs {
        return Err(GraphError::InputIndex { kind, index, inputs });
    }
    Ok(())
}

fn invalid(kind: &'static str, problem: impl Into<String>) -> GraphError {
    GraphError::InvalidOp { kind, problem: problem.into() }
}

fn validate_op(op: &Op, inputs: usize) -> Result<(), GraphError> {
    let kind = op.kind();
    match op {
        Op::Source(source) => {
            if inputs != 0 {
                return Err(invalid(kind, "a source op takes no inputs"));
            }
            match source {
                SourceOp::Image(image) if image.reference.is_empty() => {
                    Err(invalid(kind, "empty image reference"))
                }
                SourceOp::Local(local) if local.name.is_empty() => Err(invalid(kind, "empty local name")),
                SourceOp::Http(http)
                    if !(http.url.starts_with("http://") || http.url.starts_with("https://")) =>
                {
                    Err(invalid(kind, format!("not an http(s) URL: {:?}", http.url)))
                }
                _ => Ok(()),
            }
        }
        Op::Exec(exec) => validate_exec(exec, inputs),
        Op::File(file) => {
            if let Some(base) = file.base {
                check_index(kind, base, inputs)?;
            }
            if file.actions.is_empty() {
                return Err(invalid(kind, "no actions"));
            }
            for action in &file.actions {
                let path = match action {
                    FileAction::Copy(copy) => {
                        check_index(kind, copy.source, inputs)?;
                        &copy.dest
                    }
                    FileAction::Mkdir(mkdir) => &mkdir.path,
                    FileAction::Mkfile(mkfile) => &mkfile.path,
                    FileAction::Rm(rm) => &rm.path,
                };
                if !path.starts_with('/') {
                    return Err(invalid(kind, format!("path {path:?} is not absolute")));
                }
            }
            Ok(())
        }
        Op::Merge(_) => {
            if inputs == 0 {
                return Err(invalid(kind, "a merge needs at least one input"));
            }
            Ok(())
        }
    }
}

fn validate_exec(exec: &ExecOp, inputs: usize) -> Result<(), GraphError> {
    let kind = "exec";
    if exec.args.is_empty() {
        return Err(invalid(kind, "no command"));
    }
    if exec.root_mount().is_none() {
        return Err(invalid(kind, "no root filesystem mount at /"));
    }
    let mut outputs = Vec::new();
    for mount in &exec.mounts {
        // a secret with env= and no target is only a variable: it has no target
        let env_only_secret =
            mount.dest.is_empty() && matches!(&mount.kind, MountKind::Secret(secret) if secret.env.is_some());
        if !mount.dest.starts_with('/') && !env_only_secret {
            return Err(invalid(kind, format!("mount target {:?} is not absolute", mount.dest)));
        }
        if let Some(input) = mount.input {
            check_index(kind, input, inputs)?;
        }
        match mount.kind {
            MountKind::Bind => {}
            MountKind::Cache(ref cache) => {
                if cache.id.is_empty() {
                    return Err(invalid(kind, format!("cache mount at {:?} has no id", mount.dest)));
                }
            }
            MountKind::Tmpfs(_) | MountKind::Secret(_) | MountKind::Ssh(_) => {
                if mount.input.is_some() {
                    return Err(invalid(kind, format!("mount at {:?} cannot take an input", mount.dest)));
                }
            }
        }
        if let Some(output) = mount.output {
            if mount.kind != MountKind::Bind || mount.readonly {
                return Err(invalid(kind, format!("mount at {:?} cannot have an output", mount.dest)));
            }
            outputs.push(output);
        }
    }
    outputs.sort_unstable();
    if outputs.iter().enumerate().any(|(i, o)| *o != i as u32) {
        return Err(invalid(kind, "output indexes must be 0..n without gaps or repeats"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
