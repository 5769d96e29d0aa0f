//! Image archive formats: export images from the store and import them into it.
//!
//! - [`save`]: a tar in docker-archive form (`manifest.json`, `repositories`, the config and
//!   uncompressed layer tars under `blobs/sha256/`, like `docker save` since docker 25) or OCI
//!   archive form (`oci-layout`, `index.json`, `blobs/sha256/…`, names in the
//!   `io.containerd.image.name` and `org.opencontainers.image.ref.name` annotations).
//! - [`load`]: a docker-archive (legacy `<id>/layer.tar` form and docker 25+ form), an OCI
//!   archive, or an OCI image layout directory (umoci, skopeo `oci:`). Every blob is verified
//!   against its digest, every layer against its diffID, every entry name is checked, and
//!   nothing is tagged — the caller normalises [`LoadedImage::names`] and tags.
//! - [`import_rootfs`]: a root filesystem tarball → a one-layer image, with docker `--change`
//!   instructions ([`apply_change`]).

mod changes;
mod docker;
mod import;
mod oci;
mod source;

use std::io::{self, Read, Write};
use std::path::Path;

use oci_spec::image::{Descriptor, Digest, MediaType};

pub use changes::apply_change;
pub use import::{ImportOptions, import_rootfs};

use crate::compress::{Compression, decompress, sniff};
use crate::content::{BlobInfo, ContentStore};
use crate::error::{Error, IoContext, Result};
use crate::layout::HashingWriter;
use crate::store::Store;
use source::Source;

/// Annotation holding the fully qualified image name (containerd, docker 25+).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI annotation holding the reference name (kiln writes the tag, like containerd).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Archive flavour for [`save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// `docker save` / `docker load` format.
    #[default]
    Docker,
    /// OCI image layout in a tar.
    Oci,
}

/// An image to export: what a name (or ID) resolved to, and the names to record in the archive.
#[derive(Debug, Clone)]
pub struct ExportImage {
    /// Manifest or index descriptor (as in the image store).
    pub target: Descriptor,
    /// Fully qualified names (`docker.io/library/busybox:latest`); may be empty.
    pub names: Vec<String>,
}

/// An image read by [`load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// Descriptor of the stored manifest (ready for [`crate::ImageStore::tag`]).
    pub manifest: Descriptor,
    /// The image ID (config digest).
    pub image_id: Digest,
    /// Names as the archive spells them (docker: familiar `busybox:latest`; OCI: the
    /// `io.containerd.image.name` annotation, else `org.opencontainers.image.ref.name` when it
    /// looks like a reference). Not normalised.
    pub names: Vec<String>,
}

/// Writes `images` as one archive into `out`.
pub fn save(store: &Store, images: &[ExportImage], format: ArchiveFormat, out: &mut dyn Write) -> Result<()> {
    match format {
        ArchiveFormat::Docker => docker::save(store, images, out),
        ArchiveFormat::Oci => oci::save(store, images, out),
    }
}

/// [`save`] into the file `path`, atomically: the archive is written to a temp file in the same
/// directory, fsynced and renamed, so `path` is never seen half written (an existing file is
/// replaced only on success).
pub fn save_to_file(store: &Store, images: &[ExportImage], format: ArchiveFormat, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp =
        tempfile::Builder::new().prefix(".kiln-save-").tempfile_in(dir).ctx("create a file in", dir)?;
    {
        let mut out = io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
        save(store, images, format, &mut out)?;
        out.flush().ctx("write", path)?;
    }
    temp.as_file().sync_all().ctx("write", path)?;
    temp.persist(path).map_err(|err| Error::io("write", path, err.error))?;
    Ok(())
}

/// Loads every image of the archive (tar file, possibly gzip or zstd compressed, or OCI layout
/// directory) at `path`.
pub fn load(store: &Store, path: &Path) -> Result<Vec<LoadedImage>> {
    if path.is_file() {
        let mut head = [0u8; 4];
        let mut file = std::fs::File::open(path).ctx("open", path)?;
        let n = file.read(&mut head).ctx("read", path)?;
        if sniff(&head[..n]) != Compression::None {
            // Random access needs the plain tar: decompress it into the store's temp dir.
            let plain = store.temp_path("load");
            let result = (|| {
                let mut out = std::fs::File::create(&plain).ctx("create", &plain)?;
                let mut reader =
                    decompress(std::fs::File::open(path).ctx("open", path)?).ctx("read", path)?;
                io::copy(&mut reader, &mut out).map_err(|source| Error::Tar {
                    op: "decompress",
                    what: path.display().to_string(),
                    source,
                })?;
                load_plain(store, &plain, path)
            })();
            let _ = std::fs::remove_file(&plain);
            return result;
        }
    }
    load_plain(store, path, path)
}

/// [`load`] of an uncompressed archive; `shown` names it in errors.
fn load_plain(store: &Store, path: &Path, shown: &Path) -> Result<Vec<LoadedImage>> {
    let source = Source::open(path).map_err(|err| match err {
        Error::Tar { source, .. } => {
            Error::Archive { path: shown.to_owned(), problem: format!("not a valid tar archive: {source}") }
        }
        other => other,
    })?;
    let has_index = source.exists("index.json") && source.exists("oci-layout");
    if source.exists("manifest.json") {
        docker::load(store, &source)
    } else if has_index {
        oci::load(store, &source)
    } else {
        Err(Error::Archive {
            path: shown.to_owned(),
            problem: "neither a docker archive (manifest.json) nor an OCI layout (oci-layout, index.json)"
                .into(),
        })
    }
}

/// Docker's short form of a fully qualified name: `docker.io/library/busybox:latest` →
/// `busybox:latest`, `docker.io/user/app:1` → `user/app:1`; other registries unchanged.
pub fn familiar_name(full: &str) -> String {
    match full.strip_prefix("docker.io/") {
        Some(rest) => match rest.strip_prefix("library/") {
            Some(short) if !short.split(['@', ':']).next().unwrap_or_default().contains('/') => {
                short.to_owned()
            }
            _ => rest.to_owned(),
        },
        None => full.to_owned(),
    }
}

/// The tag of a name (`…:tag`), if it has one.
pub fn tag_of(name: &str) -> Option<&str> {
    let name = name.split('@').next().unwrap_or_default();
    let (_, tag) = name.rsplit_once(':')?;
    (!tag.contains('/')).then_some(tag)
}

/// Copies a layer blob into the store while decompressing it on the fly to compute its diffID,
/// in one pass. Verifies `expected` (digest) and `size` if given, and that the diffID is
/// `diff_id`. On any mismatch nothing is stored.
pub(crate) fn store_layer_verified(
    content: &ContentStore,
    reader: &mut dyn Read,
    expected: Option<&Digest>,
    size: Option<u64>,
    diff_id: &Digest,
    what: &str,
) -> Result<(BlobInfo, Compression)> {
    let mut writer = content.writer()?;
    let tmp = writer.temp_path().to_owned();
    let mut head = [0u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        let n = reader.read(&mut head[filled..]).ctx("read layer", what)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let compression = sniff(&head[..filled]);
    let actual_diff = {
        let mut tee = TeeReader { inner: io::Read::chain(&head[..filled], &mut *reader), out: &mut writer };
        let actual = {
            let mut decoded = decompress(&mut tee).ctx("decompress layer", what)?;
            let mut hashing = HashingWriter::new(io::sink());
            io::copy(&mut decoded, &mut hashing).map_err(|source| Error::Tar {
                op: "decompress",
                what: what.to_owned(),
                source,
            })?;
            hashing.finish().1
        };
        // Bytes after the end of the compressed stream are part of the blob too.
        io::copy(&mut tee, &mut io::sink()).ctx("copy layer into", &tmp)?;
        actual
    };
    if let Some(size) = size
        && size != writer.written()
    {
        let digest = expected.cloned().unwrap_or_else(|| writer.digest());
        return Err(Error::size_mismatch(&digest, size, writer.written()));
    }
    let actual = writer.digest();
    if let Some(expected) = expected
        && actual != *expected
    {
        return Err(Error::digest_mismatch(what, expected, &actual));
    }
    if actual_diff != *diff_id {
        return Err(Error::diff_id_mismatch(&actual, diff_id, &actual_diff));
    }
    let info = writer.commit(expected)?;
    Ok((info, compression))
}

/// Copies everything read through it into `out`.
struct TeeReader<'a, R: Read> {
    inner: R,
    out: &'a mut dyn Write,
}

impl<R: Read> Read for TeeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Appends a regular file entry with fixed metadata (mode 0644, root, mtime 0).
pub(crate) fn append_file(
    builder: &mut tar::Builder<&mut dyn Write>,
    name: &str,
    size: u64,
    data: &mut dyn Read,
) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    let mut counted = data.take(size);
    builder.append_data(&mut header, name, &mut counted).map_err(|source| Error::Tar {
        op: "write",
        what: name.to_owned(),
        source,
    })?;
    if counted.limit() != 0 {
        return Err(Error::Tar {
            op: "write",
            what: name.to_owned(),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "source ended early"),
        });
    }
    Ok(())
}

/// Appends a directory entry (mode 0755, root, mtime 0).
pub(crate) fn append_dir(builder: &mut tar::Builder<&mut dyn Write>, name: &str) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    builder.append_data(&mut header, name, io::empty()).map_err(|source| Error::Tar {
        op: "write",
        what: name.to_owned(),
        source,
    })
}

/// Appends a blob of the content store as `blobs/sha256/<hex>`.
pub(crate) fn append_blob(
    builder: &mut tar::Builder<&mut dyn Write>,
    content: &ContentStore,
    digest: &Digest,
) -> Result<()> {
    let size = content.size(digest)?;
    let mut file = content.open(digest)?;
    append_file(builder, &format!("blobs/sha256/{}", digest.digest()), size, &mut file)
}

/// Media type of a layer blob stored with `compression`, in OCI terms.
pub(crate) fn layer_media_type(compression: Compression) -> MediaType {
    compression.media_type()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_names() {
        let table = [
            ("docker.io/library/busybox:latest", "busybox:latest"),
            ("docker.io/user/app:1", "user/app:1"),
            ("docker.io/library/a/b:1", "library/a/b:1"),
            ("localhost:5000/x:y", "localhost:5000/x:y"),
        ];
        for (full, short) in table {
            assert_eq!(familiar_name(full), short);
        }
        assert_eq!(tag_of("localhost:5000/x:y"), Some("y"));
        assert_eq!(tag_of("localhost:5000/x"), None);
        assert_eq!(tag_of("docker.io/x/y@sha256:abc"), None);
    }
}
