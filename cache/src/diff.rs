//! Layer creation: a directory tree (an overlay upperdir, or a plain directory) → OCI layer tar
//! → compressed blob in the content store, in one streaming pass that computes the diffID
//! (sha256 of the tar) and the blob digest (sha256 of the compressed bytes) at once.
//!
//! The tar is deterministic: entries sorted bytewise by name, no atime/ctime, no user/group
//! names, PAX records for long names and xattrs, optional mtime clamp (`SOURCE_DATE_EPOCH`).
//! From an overlay upperdir, whiteout devices (char 0/0) become `.wh.NAME` entries and opaque
//! directories (`trusted.overlay.opaque=y`) get a `.wh..wh..opq` entry; overlay's own xattrs
//! are never copied.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, Digest};

use crate::apply::{OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::compress::{Compression, Compressor};
use crate::content::{BlobWriter, ContentStore};
use crate::error::{Error, IoContext, Result};
use crate::layout::HashingWriter;
use crate::safefs::{get_xattr, list_xattrs};

/// What kind of directory a diff is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffSource {
    /// An overlayfs upperdir: whiteout devices and opaque xattrs are translated.
    OverlayUpper,
    /// A plain directory tree: everything is content.
    PlainDir,
}

/// Options of a layer diff.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    pub compression: Compression,
    /// Clamp every mtime to at most this (seconds since the epoch), for reproducible layers.
    pub source_date_epoch: Option<i64>,
    /// Compression threads; 0 means all cores.
    pub threads: usize,
}

/// A layer written to the content store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayer {
    /// Descriptor of the compressed blob (media type from the compression).
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub tar_size: u64,
}

impl ContentStore {
    /// Creates a layer blob from the directory `dir`. See the module docs.
    pub fn write_layer(&self, dir: &Path, source: DiffSource, options: &DiffOptions) -> Result<NewLayer> {
        self.write_layer_skipping(dir, source, options, &[])
    }

    /// [`ContentStore::write_layer`], leaving out the entries named in `skip` (archive names,
    /// no trailing slash) where they are an empty file or an empty directory: the mount-point
    /// stubs a running sandbox keeps in its writable layer (`kiln commit` of a running
    /// container).
    pub fn write_layer_skipping(
        &self,
        dir: &Path,
        source: DiffSource,
        options: &DiffOptions,
        skip: &[String],
    ) -> Result<NewLayer> {
        let (writer, layer) = self.write_layer_uncommitted(dir, source, options, skip)?;
        writer.commit(None)?;
        Ok(layer)
    }

    /// The layer blob of `dir` (without the `skip` entries, see
    /// [`ContentStore::write_layer_skipping`]), written and flushed but not committed (the
    /// caller commits it: [`BlobWriter::commit`], or a syncfs and [`BlobWriter::commit_synced`]).
    pub(crate) fn write_layer_uncommitted(
        &self,
        dir: &Path,
        source: DiffSource,
        options: &DiffOptions,
        skip: &[String],
    ) -> Result<(BlobWriter, NewLayer)> {
        let mut writer = self.writer()?;
        let tmp = writer.temp_path().to_owned();
        let media_type = options.compression.media_type();
        if options.compression == Compression::None {
            // The blob is the tar: its digest is the diffID, hashed once while it is written.
            write_tar_skipping(dir, source, options.source_date_epoch, skip, &mut writer)?;
            writer.flush_buffered()?;
            let (diff_id, tar_size) = (writer.digest(), writer.written());
            let descriptor = Descriptor::new(media_type, tar_size, diff_id.clone());
            return Ok((writer, NewLayer { descriptor, diff_id, tar_size }));
        }
        let compressor =
            Compressor::new(writer, options.compression, options.threads).ctx("start compressing", &tmp)?;
        let mut hashing = HashingWriter::new(compressor);
        write_tar_skipping(dir, source, options.source_date_epoch, skip, &mut hashing)?;
        let (compressor, diff_id, tar_size) = hashing.finish();
        let mut writer = compressor.finish().ctx("compress layer into", &tmp)?;
        writer.flush_buffered()?;
        let descriptor = Descriptor::new(media_type, writer.written(), writer.digest());
        Ok((writer, NewLayer { descriptor, diff_id, tar_size }))
    }

    /// Stores an already made tar stream (e.g. `kiln import`) as a layer, validating that it is
    /// a tar with acceptable entry names while streaming it.
    pub fn write_layer_from_tar(
        &self,
        tar: &mut dyn io::Read,
        options: &DiffOptions,
        what: &str,
    ) -> Result<NewLayer> {
        let writer = self.writer()?;
        let tmp = writer.temp_path().to_owned();
        let compressor =
            Compressor::new(writer, options.compression, options.threads).ctx("start compressing", &tmp)?;
        let mut tee = TeeReader { inner: tar, out: HashingWriter::new(compressor), error: None };
        {
            let mut archive = tar::Archive::new(&mut tee);
            let tar_err = |source| Error::Tar { op: "read", what: what.to_owned(), source };
            for entry in archive.entries().map_err(tar_err)? {
                let mut entry = entry.map_err(tar_err)?;
                let name = entry.path_bytes().into_owned();
                let kind = entry.header().entry_type();
                if !matches!(kind, tar::EntryType::XGlobalHeader) {
                    crate::safefs::RelPath::from_archive(&name)
                        .map_err(|p| Error::entry(String::from_utf8_lossy(&name), p))?;
                }
                if kind == tar::EntryType::Link
                    && let Some(target) = entry.link_name_bytes()
                {
                    crate::safefs::RelPath::from_archive(&target)
                        .map_err(|p| Error::entry(String::from_utf8_lossy(&name), p))?;
                }
                let declared = entry.size();
                let copied = io::copy(&mut entry, &mut io::sink()).map_err(tar_err)?;
                if copied != declared {
                    let problem = crate::error::EntryProblem::Truncated { declared, actual: copied };
                    return Err(Error::entry(String::from_utf8_lossy(&name), problem));
                }
            }
        }
        io::copy(&mut tee, &mut io::sink()).map_err(|source| Error::Tar {
            op: "read",
            what: what.to_owned(),
            source,
        })?;
        if let Some(err) = tee.error {
            return Err(Error::io("write layer", tmp, err));
        }
        let (compressor, diff_id, tar_size) = tee.out.finish();
        let writer = compressor.finish().ctx("compress layer into", &tmp)?;
        let blob = writer.commit(None)?;
        Ok(NewLayer { descriptor: blob.descriptor(options.compression.media_type()), diff_id, tar_size })
    }
}

/// Copies everything read through it into `out`; a write error is kept and ends the stream.
struct TeeReader<'a, W: Write> {
    inner: &'a mut dyn io::Read,
    out: W,
    error: Option<io::Error>,
}

impl<W: Write> io::Read for TeeReader<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(err) = self.out.write_all(&buf[..n]) {
            let kind = err.kind();
            self.error = Some(err);
            return Err(io::Error::new(kind, "cannot write the layer blob"));
        }
        Ok(n)
    }
}

/// Writes the deterministic layer tar of `dir` into `out`.
pub fn write_tar(dir: &Path, source: DiffSource, epoch: Option<i64>, out: &mut dyn Write) -> Result<()> {
    write_tar_skipping(dir, source, epoch, &[], out)
}

fn write_tar_skipping(
    dir: &Path,
    source: DiffSource,
    epoch: Option<i64>,
    skip: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let mut builder = tar::Builder::new(out);
    let mut walker = Walker { root: dir, source, epoch, skip, links: HashMap::new(), builder: &mut builder };
    walker.walk_dir(dir, "")?;
    builder.finish().map_err(|source| Error::Tar { op: "write", what: dir.display().to_string(), source })?;
    Ok(())
}

struct Walker<'a, 'b> {
    root: &'a Path,
    source: DiffSource,
    epoch: Option<i64>,
    /// Archive names left out when empty (see [`ContentStore::write_layer_skipping`]).
    skip: &'a [String],
    /// (dev, ino) of multiply-linked files → first archive name.
    links: HashMap<(u64, u64), String>,
    builder: &'a mut tar::Builder<&'b mut dyn Write>,
}

impl Walker<'_, '_> {
    fn walk_dir(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .ctx("list", dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .ctx("list", dir)?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let name = name.to_str().map(str::to_owned).ok_or_else(|| {
                Error::io(
                    "archive",
                    &path,
                    io::Error::new(io::ErrorKind::InvalidData, "file name is not UTF-8"),
                )
            })?;
            let meta = std::fs::symlink_metadata(&path).ctx("stat", &path)?;
            let archive_name = format!("{prefix}{name}");
            let file_type = meta.file_type();
            if self.skip.contains(&archive_name)
                && ((file_type.is_file() && meta.len() == 0)
                    || (file_type.is_dir() && std::fs::read_dir(&path).ctx("list", &path)?.next().is_none()))
            {
                continue;
            }
            if self.source == DiffSource::OverlayUpper && file_type.is_char_device() && meta.rdev() == 0 {
                let whiteout = format!("{prefix}{WHITEOUT_PREFIX}{name}");
                self.append_empty(&whiteout, &meta, &path)?;
                continue;
            }
            if file_type.is_dir() {
                self.append_entry(
                    &format!("{archive_name}/"),
                    &meta,
                    &path,
                    tar::EntryType::Directory,
                    None,
                )?;
                if self.source == DiffSource::OverlayUpper
                    && get_xattr(&path, OVERLAY_OPAQUE_XATTR).ctx("read xattrs of", &path)?.as_deref()
                        == Some(b"y")
                {
                    self.append_empty(&format!("{archive_name}/{OPAQUE_MARKER}"), &meta, &path)?;
                }
                self.walk_dir(&path, &format!("{archive_name}/"))?;
            } else {
                self.append_file(&archive_name, &meta, &path)?;
            }
        }
        Ok(())
    }

    fn mtime(&self, meta: &Metadata) -> u64 {
        let mtime = meta.mtime().max(0);
        match self.epoch {
            Some(epoch) => mtime.min(epoch.max(0)) as u64,
            None => mtime as u64,
        }
    }

    fn append_empty(&mut self, name: &str, meta: &Metadata, path: &Path) -> Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(0);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime(meta));
        self.append(header, name, None, Vec::new(), io::empty(), path)
    }

    fn append_file(&mut self, name: &str, meta: &Metadata, path: &Path) -> Result<()> {
        let file_type = meta.file_type();
        if file_type.is_symlink() {
            let target = std::fs::read_link(path).ctx("read symlink", path)?;
            return self.append_entry(name, meta, path, tar::EntryType::Symlink, Some(target));
        }
        if !file_type.is_file() {
            let kind = if file_type.is_char_device() {
                tar::EntryType::Char
            } else if file_type.is_block_device() {
                tar::EntryType::Block
            } else if file_type.is_fifo() {
                tar::EntryType::Fifo
            } else {
                tracing::warn!("skipping socket {}", path.display());
                return Ok(());
            };
            return self.append_entry(name, meta, path, kind, None);
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                let first = PathBuf::from(first.clone());
                return self.append_entry(name, meta, path, tar::EntryType::Link, Some(first));
            }
            self.links.insert(key, name.to_owned());
        }
        self.append_entry(name, meta, path, tar::EntryType::Regular, None)
    }

    fn append_entry(
        &mut self,
        name: &str,
        meta: &Metadata,
        path: &Path,
        kind: tar::EntryType,
        link: Option<PathBuf>,
    ) -> Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(meta.mode() & 0o7777);
        header.set_mtime(self.mtime(meta));
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        set_id(&mut header, &mut pax, "uid", meta.uid());
        set_id(&mut header, &mut pax, "gid", meta.gid());
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            let rdev = meta.rdev();
            header.set_device_major(rustix::fs::major(rdev)).ctx("archive device", path)?;
            header.set_device_minor(rustix::fs::minor(rdev)).ctx("archive device", path)?;
        }
        for (key, value) in list_xattrs(path).ctx("read xattrs of", path)? {
            if key.starts_with("trusted.overlay.") || key.starts_with("user.overlay.") {
                continue;
            }
            pax.push((format!("SCHILY.xattr.{key}"), value));
        }
        if kind == tar::EntryType::Regular {
            header.set_size(meta.len());
            let file = std::fs::File::open(path).ctx("open", path)?;
            let limited = io::Read::take(file, meta.len());
            self.append(header, name, link, pax, limited, path)
        } else {
            header.set_size(0);
            self.append(header, name, link, pax, io::empty(), path)
        }
    }

    fn append(
        &mut self,
        mut header: tar::Header,
        name: &str,
        link: Option<PathBuf>,
        mut pax: Vec<(String, Vec<u8>)>,
        data: impl io::Read,
        path: &Path,
    ) -> Result<()> {
        set_name_field(&mut header, name.as_bytes(), &mut pax, "path", NameField::Name);
        if let Some(link) = &link {
            set_name_field(&mut header, link.as_os_str().as_bytes(), &mut pax, "linkpath", NameField::Link);
        }
        let tar_err = |source| Error::Tar { op: "write", what: path.display().to_string(), source };
        if !pax.is_empty() {
            pax.sort();
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(tar_err)?;
        }
        header.set_cksum();
        let size = header.size().unwrap_or(0);
        let mut counted = CountingReader { inner: data, count: 0 };
        self.builder.append(&header, &mut counted).map_err(tar_err)?;
        if counted.count != size {
            // The file changed size while being archived: the tar would be corrupt.
            return Err(Error::io(
                "archive",
                path,
                io::Error::new(io::ErrorKind::UnexpectedEof, "file changed size while being archived"),
            ));
        }
        let _ = self.root;
        Ok(())
    }
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: io::Read> io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[derive(Clone, Copy)]
enum NameField {
    Name,
    Link,
}

/// Puts a name in the ustar field if it fits (100 bytes), else a PAX record plus a truncated
/// field for readers that ignore PAX.
fn set_name_field(
    header: &mut tar::Header,
    name: &[u8],
    pax: &mut Vec<(String, Vec<u8>)>,
    key: &str,
    field: NameField,
) {
    let fits = name.len() <= 100 && name.is_ascii();
    if !fits {
        pax.push((key.to_owned(), name.to_vec()));
    }
    let bytes = &name[..name.len().min(100)];
    let Some(ustar) = header.as_ustar_mut() else { return };
    let dest = match field {
        NameField::Name => &mut ustar.name,
        NameField::Link => &mut ustar.linkname,
    };
    dest.fill(0);
    dest[..bytes.len()].copy_from_slice(bytes);
}

fn set_id(header: &mut tar::Header, pax: &mut Vec<(String, Vec<u8>)>, key: &str, id: u32) {
    const USTAR_MAX: u32 = 0o7777777;
    let value = if id > USTAR_MAX {
        pax.push((key.to_owned(), id.to_string().into_bytes()));
        0
    } else {
        id
    };
    if key == "uid" {
        header.set_uid(value.into());
    } else {
        header.set_gid(value.into());
    }
}
