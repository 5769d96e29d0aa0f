//! `--output` specs (`docker buildx build -o`) and writing an [`ExportedImage`] to them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use cache::formats::{self, ArchiveFormat, ExportImage};
use cache::{DiffSource, LayerRef, Store};

use super::{ExportError, ExportedImage};

/// Where an archive goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    File(PathBuf),
    /// `dest=-`
    Stdout,
}

/// One `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The local image store (`type=image`, `type=registry` = push), named by `names` (as typed;
    /// the caller normalises them) or, when empty, by the `-t` names.
    Image { names: Vec<String>, push: bool },
    /// `type=oci,dest=F`: OCI image layout in a tar.
    Oci { dest: Dest, names: Vec<String> },
    /// `type=docker,dest=F`: loadable by `docker load`.
    Docker { dest: Dest, names: Vec<String> },
    /// `type=tar,dest=F`: the flattened root filesystem as a tar.
    Tar { dest: Dest },
    /// `type=local,dest=DIR` (or `-o DIR`): the flattened root filesystem in a directory.
    Local { dest: PathBuf },
}

impl Output {
    /// Parses an `-o/--output` value: `type=…,dest=…,name=…,push=true`, a bare directory
    /// (`type=local`), or `-` (`type=tar` to stdout).
    pub fn parse(spec: &str) -> Result<Output, ExportError> {
        let invalid = |problem: String| ExportError::InvalidOutput { spec: spec.to_owned(), problem };
        if spec == "-" {
            return Ok(Output::Tar { dest: Dest::Stdout });
        }
        if !spec.contains('=') {
            if spec.is_empty() {
                return Err(invalid("empty output".into()));
            }
            return Ok(Output::Local { dest: PathBuf::from(spec) });
        }
        let mut kind = None;
        let mut dest = None;
        let mut names = Vec::new();
        let mut push = None;
        let fields = csv_fields(spec).map_err(|problem| invalid(problem.into()))?;
        for field in &fields {
            let field = field.as_str();
            let (key, value) =
                field.split_once('=').ok_or_else(|| invalid(format!("`{field}` is not key=value")))?;
            match key.trim() {
                "type" => kind = Some(value.to_owned()),
                "dest" => dest = Some(value.to_owned()),
                "name" => names.extend(value.split(',').filter(|n| !n.is_empty()).map(str::to_owned)),
                "push" => {
                    push = Some(match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => return Err(invalid(format!("push must be true or false, not `{other}`"))),
                    })
                }
                // accepted for compatibility; kiln always writes OCI media types, gzip layers
                "oci-mediatypes" | "compression" | "compression-level" | "force-compression" => {}
                other => return Err(invalid(format!("unknown attribute `{other}`"))),
            }
        }
        let kind = kind.ok_or_else(|| invalid("missing type=".into()))?;
        let need_dest = |dest: Option<String>| -> Result<Dest, ExportError> {
            match dest.as_deref() {
                None | Some("") => Err(invalid(format!("type={kind} needs dest=FILE"))),
                Some("-") => Ok(Dest::Stdout),
                Some(path) => Ok(Dest::File(PathBuf::from(path))),
            }
        };
        match kind.as_str() {
            "image" => Ok(Output::Image { names, push: push.unwrap_or(false) }),
            "registry" => Ok(Output::Image { names, push: push.unwrap_or(true) }),
            "oci" => Ok(Output::Oci { dest: need_dest(dest)?, names }),
            "docker" => Ok(Output::Docker { dest: need_dest(dest)?, names }),
            "tar" => Ok(Output::Tar { dest: need_dest(dest)? }),
            "local" => match need_dest(dest)? {
                Dest::File(dir) => Ok(Output::Local { dest: dir }),
                Dest::Stdout => Err(invalid("type=local needs a directory, not -".into())),
            },
            other => Err(invalid(format!(
                "unknown type `{other}` (expected image, registry, oci, docker, tar or local)"
            ))),
        }
    }

    /// True when the output writes to stdout (progress must then stay off stdout).
    pub fn uses_stdout(&self) -> bool {
        matches!(
            self,
            Output::Oci { dest: Dest::Stdout, .. }
                | Output::Docker { dest: Dest::Stdout, .. }
                | Output::Tar { dest: Dest::Stdout }
        )
    }
}

/// Splits one CSV record as buildx reads `--output` (Go's encoding/csv): fields separated by
/// commas; a field that starts with `"` runs to its closing quote and may hold commas, `""` inside
/// it being one quote.
fn csv_fields(spec: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = spec.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted field"),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(_) => return Err("extraneous text after a quoted field"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

fn layer_refs(image: &ExportedImage) -> Vec<LayerRef> {
    image.layers.iter().map(|l| LayerRef { blob: l.blob.clone(), diff_id: l.diff_id.clone() }).collect()
}

fn open_dest(dest: &Dest) -> Result<Box<dyn Write>, ExportError> {
    match dest {
        Dest::Stdout => Ok(Box::new(BufWriter::new(std::io::stdout().lock()))),
        Dest::File(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| ExportError::Io {
                    op: "create",
                    path: parent.to_owned(),
                    source,
                })?;
            }
            let file = File::create(path).map_err(|source| ExportError::Io {
                op: "create",
                path: path.clone(),
                source,
            })?;
            Ok(Box::new(BufWriter::new(file)))
        }
    }
}

fn finish(mut out: Box<dyn Write>, dest: &Dest) -> Result<(), ExportError> {
    let path = match dest {
        Dest::File(path) => path.clone(),
        Dest::Stdout => PathBuf::from("<stdout>"),
    };
    out.flush().map_err(|source| ExportError::Io { op: "write", path, source })
}

/// Writes `image` to `output`. `names` are the fully qualified names for the image store and the
/// archives' name annotations (the caller merges `-t` and `name=`, normalised); an archive output
/// with its own `name=` (normalised by the caller) is named by those instead. An image output
/// without names records the image untagged. Pushing is the caller's job.
pub fn write(
    store: &Store,
    image: &ExportedImage,
    output: &Output,
    names: &[String],
) -> Result<(), ExportError> {
    match output {
        Output::Image { .. } => {
            let images = store.images();
            if names.is_empty() {
                images.add_untagged(&image.manifest)?;
            }
            for name in names {
                images.tag(name, &image.manifest)?;
            }
            Ok(())
        }
        Output::Oci { dest, names: own } | Output::Docker { dest, names: own } => {
            let format =
                if matches!(output, Output::Oci { .. }) { ArchiveFormat::Oci } else { ArchiveFormat::Docker };
            // the output's own `name=` wins over the build's -t names (buildx)
            let names = if own.is_empty() { names.to_vec() } else { own.clone() };
            let export = ExportImage { target: image.manifest.clone(), names };
            let mut out = open_dest(dest)?;
            formats::save(store, &[export], format, &mut out)?;
            finish(out, dest)
        }
        Output::Tar { dest } => {
            let dir = store.temp_path("export-rootfs");
            let result = (|| {
                std::fs::create_dir_all(&dir).map_err(|source| ExportError::Io {
                    op: "create",
                    path: dir.clone(),
                    source,
                })?;
                store.snapshots().flatten(&layer_refs(image), &dir)?;
                let mut out = open_dest(dest)?;
                cache::write_tar(&dir, DiffSource::PlainDir, None, &mut out)?;
                finish(out, dest)
            })();
            let _ = std::fs::remove_dir_all(&dir);
            result
        }
        Output::Local { dest } => write_local(store, image, dest),
    }
}

fn write_local(store: &Store, image: &ExportedImage, dest: &Path) -> Result<(), ExportError> {
    std::fs::create_dir_all(dest).map_err(|source| ExportError::Io {
        op: "create",
        path: dest.to_owned(),
        source,
    })?;
    store.snapshots().flatten(&layer_refs(image), dest)?;
    Ok(())
}
