//! Layer compression: a parallel gzip writer (pigz-style: the stream is cut into 1 MiB chunks
//! compressed independently on worker threads, each ending with a sync flush, joined in order
//! into one standard gzip member), zstd (multithreaded mode), and sniffing decompression.
//!
//! The gzip output depends only on the input and the level, never on the number of threads, so
//! layer digests are reproducible across machines.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use flate2::write::DeflateEncoder;

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    /// A plain tar (media type `…layer.v1.tar`).
    None,
}

impl Compression {
    /// The OCI media type of a layer with this compression.
    pub fn media_type(self) -> oci_spec::image::MediaType {
        use oci_spec::image::MediaType;
        match self {
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
            Compression::None => MediaType::ImageLayer,
        }
    }
}

/// Size of the chunks compressed independently.
pub const GZIP_CHUNK: usize = 1 << 20;

/// Number of threads "all cores" means.
pub fn all_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

type ChunkResult = io::Result<(Vec<u8>, crc32fast::Hasher, usize)>;

struct Job {
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<ChunkResult>,
}

/// A parallel gzip encoder writing into `W`. Call [`ParGzEncoder::finish`] to get `W` back;
/// dropping it unfinished abandons the stream (the workers exit once their channel closes).
pub struct ParGzEncoder<W: Write> {
    inner: W,
    level: flate2::Compression,
    buf: Vec<u8>,
    pending: VecDeque<Receiver<ChunkResult>>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
    crc: crc32fast::Hasher,
    total: u64,
}

impl<W: Write> std::fmt::Debug for ParGzEncoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParGzEncoder").field("threads", &self.threads).field("total", &self.total).finish()
    }
}

/// Whether `data` looks incompressible (random, encrypted or already compressed bytes): the
/// Shannon entropy of its bytes is above 7.97 bits per byte. Deflate cannot shrink such data,
/// it only spends 10–20× the time of storing it, so such chunks become stored blocks — a
/// decision made from the chunk's bytes alone, so the output stays reproducible.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < 64 * 1024 {
        return false;
    }
    let mut counts = [0u32; 256];
    for byte in data {
        counts[usize::from(*byte)] += 1;
    }
    let total = data.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / total;
            -p * p.log2()
        })
        .sum();
    entropy > 7.97
}

fn compress_chunk(data: &[u8], last: bool, level: flate2::Compression) -> ChunkResult {
    let mut crc = crc32fast::Hasher::new();
    crc.update(data);
    let level = if level.level() > 0 && incompressible(data) { flate2::Compression::none() } else { level };
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(data.len() / 2 + 64), level);
    encoder.write_all(data)?;
    let out = if last {
        encoder.finish()?
    } else {
        encoder.flush()?; // sync flush: ends on a byte boundary, stream not final
        let out = std::mem::take(encoder.get_mut());
        drop(encoder); // writes its final block into the emptied buffer, which is discarded
        out
    };
    Ok((out, crc, data.len()))
}

impl<W: Write> ParGzEncoder<W> {
    /// A new encoder. `threads == 1` compresses on the calling thread.
    pub fn new(mut inner: W, level: flate2::Compression, threads: usize) -> io::Result<Self> {
        // header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown (like Go)
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        let threads = threads.max(1);
        let mut workers = Vec::new();
        let mut jobs = None;
        if threads > 1 {
            let (tx, rx) = sync_channel::<Job>(threads);
            let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
            for _ in 0..threads {
                let rx = rx.clone();
                workers.push(std::thread::spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let _ = job.reply.send(compress_chunk(&job.data, job.last, level));
                    }
                }));
            }
            jobs = Some(tx);
        }
        Ok(ParGzEncoder {
            inner,
            level,
            buf: Vec::with_capacity(GZIP_CHUNK),
            pending: VecDeque::new(),
            jobs,
            workers,
            threads,
            crc: crc32fast::Hasher::new(),
            total: 0,
        })
    }

    fn write_result(&mut self, result: ChunkResult) -> io::Result<()> {
        let (bytes, crc, len) = result?;
        self.inner.write_all(&bytes)?;
        self.crc.combine(&crc);
        self.total += len as u64;
        Ok(())
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data =
            std::mem::replace(&mut self.buf, if last { Vec::new() } else { Vec::with_capacity(GZIP_CHUNK) });
        match &self.jobs {
            None => {
                let result = compress_chunk(&data, last, self.level);
                self.write_result(result)
            }
            Some(jobs) => {
                let (reply, rx) = sync_channel(1);
                jobs.send(Job { data, last, reply }).map_err(|_| io::Error::other("gzip worker stopped"))?;
                self.pending.push_back(rx);
                while self.pending.len() > self.threads * 2 {
                    self.drain_one()?;
                }
                Ok(())
            }
        }
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let result = rx.recv().map_err(|_| io::Error::other("gzip worker stopped"))?;
            self.write_result(result)?;
        }
        Ok(())
    }

    /// Compresses what is buffered, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        let total = self.total;
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(&(total as u32).to_le_bytes())?;
        self.inner.flush()?;
        self.jobs = None;
        self.pending.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = GZIP_CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == GZIP_CHUNK {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A layer compressor writing into `W`.
pub enum Compressor<W: Write> {
    Gzip(ParGzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
    None(W),
}

impl<W: Write> std::fmt::Debug for Compressor<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Compressor::Gzip(_) => "gzip",
            Compressor::Zstd(_) => "zstd",
            Compressor::None(_) => "none",
        };
        f.debug_tuple("Compressor").field(&kind).finish()
    }
}

impl<W: Write> Compressor<W> {
    /// A compressor using `threads` worker threads (0 = all cores).
    pub fn new(inner: W, compression: Compression, threads: usize) -> io::Result<Self> {
        let threads = if threads == 0 { all_cores() } else { threads };
        Ok(match compression {
            Compression::Gzip => {
                Compressor::Gzip(ParGzEncoder::new(inner, flate2::Compression::default(), threads)?)
            }
            Compression::Zstd => {
                let mut encoder = zstd::Encoder::new(inner, 3)?;
                // nbWorkers >= 1 gives the same output for any worker count
                encoder.multithread(threads as u32)?;
                Compressor::Zstd(encoder)
            }
            Compression::None => Compressor::None(inner),
        })
    }

    /// Ends the stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(encoder) => encoder.finish(),
            Compressor::Zstd(encoder) => encoder.finish(),
            Compressor::None(mut inner) => {
                inner.flush()?;
                Ok(inner)
            }
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(encoder) => encoder.write(data),
            Compressor::Zstd(encoder) => encoder.write(data),
            Compressor::None(inner) => inner.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(encoder) => encoder.flush(),
            Compressor::Zstd(encoder) => encoder.flush(),
            Compressor::None(inner) => inner.flush(),
        }
    }
}

/// A stream's compression, recognised by its magic bytes (docker's `DetectCompression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Gzip,
    Zstd,
    Bzip2,
    Xz,
    /// None of the above: the stream as it is.
    Plain,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const BZIP2_MAGIC: &[u8] = b"BZh";
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];

/// The format of a stream that starts with `head` (give at least 6 bytes when there are).
pub fn detect(head: &[u8]) -> Format {
    if head.starts_with(GZIP_MAGIC) {
        Format::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Format::Zstd
    } else if head.starts_with(BZIP2_MAGIC) {
        Format::Bzip2
    } else if head.starts_with(XZ_MAGIC) {
        Format::Xz
    } else {
        Format::Plain
    }
}

/// Wraps a (possibly compressed) layer stream in the matching decompressor, detected from its
/// magic bytes (gzip, zstd, else a plain tar: layers come in no other compression).
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    match detect(reader.fill_buf()?) {
        Format::Gzip => Ok(Box::new(flate2::bufread::MultiGzDecoder::new(reader))),
        Format::Zstd => Ok(Box::new(zstd::Decoder::with_buffer(reader)?)),
        Format::Bzip2 | Format::Xz | Format::Plain => Ok(Box::new(reader)),
    }
}

/// Wraps a stream in the decompressor of any format [`detect`] knows (gzip, zstd, bzip2, xz:
/// what `ADD` extracts), else returns it as it is.
pub fn decompress_any<R: Read + Send + 'static>(mut reader: R) -> io::Result<Box<dyn Read + Send>> {
    // a short first read must not hide a magic: read up to the longest one
    let mut head = [0u8; XZ_MAGIC.len()];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    let format = detect(&head[..filled]);
    let reader = BufReader::with_capacity(256 * 1024, io::Cursor::new(head[..filled].to_vec()).chain(reader));
    Ok(match format {
        Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Format::Zstd => Box::new(zstd::Decoder::with_buffer(reader)?),
        Format::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(reader)),
        Format::Xz => Box::new(XzReader::spawn(reader)?),
        Format::Plain => Box::new(reader),
    })
}

/// Decompresses an xz stream on a helper thread (lzma-rs has no streaming reader); a decoding
/// error surfaces at the end of the stream.
struct XzReader {
    pipe: std::io::PipeReader,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl XzReader {
    fn spawn<R: BufRead + Send + 'static>(mut input: R) -> io::Result<XzReader> {
        let (pipe, mut writer) = std::io::pipe()?;
        let thread = std::thread::spawn(move || {
            lzma_rs::xz_decompress(&mut input, &mut writer).map_err(|e| io::Error::other(e.to_string()))
        });
        Ok(XzReader { pipe, thread: Some(thread) })
    }
}

impl Read for XzReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0
            && !buf.is_empty()
            && let Some(thread) = self.thread.take()
        {
            thread.join().map_err(|_| io::Error::other("xz decoder panicked"))??;
        }
        Ok(n)
    }
}

/// Detects the layer compression of a stream start (bzip2 and xz are no layer compression:
/// [`Compression::None`]).
pub fn sniff(head: &[u8]) -> Compression {
    match detect(head) {
        Format::Gzip => Compression::Gzip,
        Format::Zstd => Compression::Zstd,
        Format::Bzip2 | Format::Xz | Format::Plain => Compression::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        let mut x: u32 = 12345;
        (0..len)
            .map(|i| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                if i % 3 == 0 { (x >> 24) as u8 } else { b'a' + (i % 7) as u8 }
            })
            .collect()
    }

    #[test]
    fn parallel_gzip_round_trips_and_is_thread_count_independent() {
        for len in [0, 10, GZIP_CHUNK, GZIP_CHUNK + 1, 3 * GZIP_CHUNK + 777] {
            let data = sample(len);
            let mut outputs = Vec::new();
            for threads in [1, 2, 4] {
                let mut enc = ParGzEncoder::new(Vec::new(), flate2::Compression::default(), threads).unwrap();
                for chunk in data.chunks(100_000) {
                    enc.write_all(chunk).unwrap();
                }
                let out = enc.finish().unwrap();
                let mut back = Vec::new();
                flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
                assert_eq!(back, data, "len {len} threads {threads}");
                outputs.push(out);
            }
            assert!(outputs.windows(2).all(|w| w[0] == w[1]), "len {len}: output depends on threads");
        }
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_chunks_are_stored_and_the_rest_compressed() {
        assert!(incompressible(&noise(GZIP_CHUNK)));
        assert!(!incompressible(&sample(GZIP_CHUNK)), "a third random bytes still compress");
        assert!(!incompressible(&noise(1000)), "too small to judge");
        // one chunk of noise between two compressible ones: stored, still one valid stream
        let mut data = sample(GZIP_CHUNK);
        data.extend(noise(GZIP_CHUNK));
        data.extend(sample(GZIP_CHUNK / 2));
        let mut enc = ParGzEncoder::new(Vec::new(), flate2::Compression::default(), 2).unwrap();
        enc.write_all(&data).unwrap();
        let out = enc.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let stored_overhead = GZIP_CHUNK / 1000; // block headers, gzip header and trailer
        assert!(out.len() < data.len() - GZIP_CHUNK / 4, "the compressible chunks shrank: {}", out.len());
        assert!(out.len() > GZIP_CHUNK, "the noise is kept: {}", out.len());
        let noise_only = {
            let mut enc = ParGzEncoder::new(Vec::new(), flate2::Compression::default(), 1).unwrap();
            enc.write_all(&noise(GZIP_CHUNK)).unwrap();
            enc.finish().unwrap()
        };
        assert!(noise_only.len() <= GZIP_CHUNK + stored_overhead, "stored blocks: {}", noise_only.len());
    }

    #[test]
    fn gzip_output_is_read_by_system_gzip() {
        let data = sample(2 * GZIP_CHUNK + 5);
        let mut enc = ParGzEncoder::new(Vec::new(), flate2::Compression::default(), 2).unwrap();
        enc.write_all(&data).unwrap();
        let out = enc.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.gz"), &out).unwrap();
        let status =
            std::process::Command::new("gzip").arg("-t").arg(dir.path().join("x.gz")).status().unwrap();
        assert!(status.success());
    }

    #[test]
    fn every_format_is_detected_and_decompressed() {
        let data = sample(300_000);
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, &data).unwrap();
        let cases: &[(&str, &str, Format)] =
            &[("gzip", "gz", Format::Gzip), ("bzip2", "bz2", Format::Bzip2), ("xz", "xz", Format::Xz)];
        for (tool, suffix, format) in cases {
            let status = std::process::Command::new(tool).arg("-k").arg("-f").arg(&plain).status().unwrap();
            assert!(status.success(), "{tool}");
            let compressed = dir.path().join(format!("data.{suffix}"));
            let bytes = std::fs::read(&compressed).unwrap();
            assert_eq!(detect(&bytes), *format, "{tool}");
            let mut back = Vec::new();
            decompress_any(std::fs::File::open(&compressed).unwrap())
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{tool}");
        }
        let mut zstd_bytes = Compressor::new(Vec::new(), Compression::Zstd, 1).unwrap();
        zstd_bytes.write_all(&data).unwrap();
        let zstd_bytes = zstd_bytes.finish().unwrap();
        assert_eq!(detect(&zstd_bytes), Format::Zstd);
        let mut back = Vec::new();
        decompress_any(std::io::Cursor::new(zstd_bytes)).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        // neither a short nor an unknown stream is an error
        for text in [&b""[..], b"BZ", b"plain text"] {
            assert_eq!(detect(text), Format::Plain);
            let mut back = Vec::new();
            decompress_any(std::io::Cursor::new(text.to_vec())).unwrap().read_to_end(&mut back).unwrap();
            assert_eq!(back, text);
        }
        // a corrupt xz stream fails at its end instead of ending early
        let mut corrupt = std::fs::read(dir.path().join("data.xz")).unwrap();
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 0xff;
        let mut back = Vec::new();
        assert!(decompress_any(std::io::Cursor::new(corrupt)).unwrap().read_to_end(&mut back).is_err());
        // layers know gzip and zstd only
        assert_eq!(sniff(XZ_MAGIC), Compression::None);
        assert_eq!(sniff(b"BZh91AY"), Compression::None);
    }

    #[test]
    fn zstd_round_trips_and_decompress_sniffs() {
        let data = sample(500_000);
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let mut c = Compressor::new(Vec::new(), compression, 2).unwrap();
            c.write_all(&data).unwrap();
            let out = c.finish().unwrap();
            assert_eq!(sniff(&out), compression);
            let mut back = Vec::new();
            decompress(&out[..]).unwrap().read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "{compression:?}");
        }
    }
}
