//! sha256 digests of what the store reads and writes: adapters that hash while streaming, and
//! digest parsing with the store's error.

use std::io::{self, Read, Write};

use oci_spec::image::Digest;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// sha256 digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    digest_from_hasher(Sha256::new_with_prefix(bytes))
}

pub(crate) fn digest_from_hasher(hasher: Sha256) -> Digest {
    let hex = hex::encode(hasher.finalize());
    // A hex sha256 is always a valid digest.
    Digest::try_from(format!("sha256:{hex}")).unwrap_or_else(|_| unreachable!("hex sha256 is a valid digest"))
}

/// Parses a digest string with a clear error.
pub fn parse_digest(value: &str) -> Result<Digest> {
    Digest::try_from(value).map_err(|source| Error::InvalidDigest { value: value.to_owned(), source })
}

/// A `Write` adapter that hashes (sha256) and counts what passes through to `inner`.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), size: 0 }
    }

    /// (inner writer, digest, bytes written).
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, digest_from_hasher(self.hasher), self.size)
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `Read` adapter that hashes (sha256) and counts what is read through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), size: 0 }
    }

    /// Digest and count of the bytes read so far.
    pub fn digest(&self) -> (Digest, u64) {
        (digest_from_hasher(self.hasher.clone()), self.size)
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_adapters_agree_with_sha256_digest() {
        let data = b"some layer bytes";
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(data).unwrap();
        let (out, digest, size) = writer.finish();
        assert_eq!((out.as_slice(), &digest, size), (&data[..], &sha256_digest(data), data.len() as u64));
        let mut reader = HashingReader::new(&data[..]);
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert_eq!(reader.digest(), (sha256_digest(data), data.len() as u64));
    }

    #[test]
    fn bad_digests_are_refused_with_their_text() {
        let err = parse_digest("sha256:xyz").unwrap_err();
        assert!(matches!(err, Error::InvalidDigest { ref value, .. } if value == "sha256:xyz"), "{err}");
        assert_eq!(parse_digest(sha256_digest(b"").as_ref()).unwrap(), sha256_digest(b""));
    }
}
