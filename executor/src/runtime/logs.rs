//! docker's json-file log driver: one JSON object per line of output,
//! `{"log":"text\n","stream":"stdout","time":"2024-05-01T12:00:00.123456789Z"}`.
//! Lines longer than 16 KiB are split into several entries (the last without `\n`), as docker's.
//! With a maximum size the log rotates like docker's `max-size`/`max-file`: `<log>.1` is the
//! previous file, `<log>.2` the one before, up to `max-file - 1` kept.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::time::rfc3339_nano;
use crate::sandbox::OutputStream;

/// Longest entry docker writes before splitting a line.
const MAX_ENTRY: usize = 16 * 1024;

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Appends entries to a json-file log, buffering partial lines per stream.
#[derive(Debug)]
pub struct Writer {
    file: File,
    partial: [Vec<u8>; 2],
    path: PathBuf,
    size: u64,
    rotation: Option<Rotation>,
}

/// docker's `--log-opt max-size=…,max-file=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rotation {
    pub max_size: u64,
    /// Files kept in all, the current one included (at least 1).
    pub max_files: u32,
}

/// `<log>.N`.
pub fn rotated_path(path: &Path, index: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// The log files to read, oldest first.
pub fn files_oldest_first(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..).map(|i| rotated_path(path, i)).take_while(|p| p.exists()).collect();
    files.reverse();
    files.push(path.to_owned());
    files
}

fn index(stream: OutputStream) -> usize {
    match stream {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

fn name(index: usize) -> &'static str {
    if index == 0 { "stdout" } else { "stderr" }
}

impl Writer {
    pub fn open(path: &Path, rotation: Option<Rotation>) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self { file, partial: [Vec::new(), Vec::new()], path: path.to_owned(), size, rotation })
    }

    fn rotate(&mut self, max_files: u32) -> std::io::Result<()> {
        if max_files > 1 {
            for index in (1..max_files - 1).rev() {
                let from = rotated_path(&self.path, index);
                if from.exists() {
                    std::fs::rename(&from, rotated_path(&self.path, index + 1))?;
                }
            }
            std::fs::rename(&self.path, rotated_path(&self.path, 1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    fn entry(&mut self, stream: usize, data: &[u8]) -> std::io::Result<()> {
        let entry = Entry {
            log: String::from_utf8_lossy(data).into_owned(),
            stream: name(stream).to_owned(),
            time: rfc3339_nano(super::record::now_nanos()),
        };
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if let Some(rotation) = self.rotation
            && self.size > 0
            && self.size + line.len() as u64 > rotation.max_size
        {
            self.rotate(rotation.max_files.max(1))?;
        }
        // one write per entry (O_APPEND): a reader never sees half an entry from us
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// Logs a chunk of output: every complete line becomes an entry.
    pub fn write(&mut self, stream: OutputStream, data: &[u8]) -> std::io::Result<()> {
        let stream = index(stream);
        let mut buffer = std::mem::take(&mut self.partial[stream]);
        buffer.extend_from_slice(data);
        let mut start = 0;
        while let Some(newline) = buffer[start..].iter().position(|b| *b == b'\n') {
            let end = start + newline + 1;
            for piece in buffer[start..end].chunks(MAX_ENTRY) {
                self.entry(stream, piece)?;
            }
            start = end;
        }
        let mut rest = buffer.split_off(start);
        while rest.len() >= MAX_ENTRY {
            let tail = rest.split_off(MAX_ENTRY);
            self.entry(stream, &rest)?;
            rest = tail;
        }
        self.partial[stream] = rest;
        Ok(())
    }

    /// Writes what is left of unterminated lines (at the process's exit).
    pub fn flush(&mut self) -> std::io::Result<()> {
        for stream in 0..2 {
            let rest = std::mem::take(&mut self.partial[stream]);
            if !rest.is_empty() {
                self.entry(stream, &rest)?;
            }
        }
        Ok(())
    }
}

/// Reads entries from a json-file log, from where the last read stopped (for `logs -f`).
#[derive(Debug)]
pub struct Reader {
    reader: BufReader<File>,
    pending: String,
    path: PathBuf,
    inode: u64,
}

impl Reader {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let inode = file.metadata()?.ino();
        Ok(Self { reader: BufReader::new(file), pending: String::new(), path: path.to_owned(), inode })
    }

    /// Every complete entry written since the last call (an entry being written is kept for
    /// the next call), following the log across a rotation. Malformed lines are skipped.
    pub fn read_new(&mut self) -> std::io::Result<Vec<Entry>> {
        let mut entries = self.read_current()?;
        // rotated: the rest of the old file was read above, go on with the new one
        while let Ok(meta) = std::fs::metadata(&self.path)
            && meta.ino() != self.inode
        {
            *self = Self::open(&self.path)?;
            entries.extend(self.read_current()?);
        }
        Ok(entries)
    }

    fn read_current(&mut self) -> std::io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        loop {
            let read = self.reader.read_line(&mut self.pending)?;
            if read == 0 || !self.pending.ends_with('\n') {
                return Ok(entries);
            }
            if let Ok(entry) = serde_json::from_str(&self.pending) {
                entries.push(entry);
            }
            self.pending.clear();
        }
    }

    /// Starts over at the beginning.
    pub fn rewind(&mut self) -> std::io::Result<()> {
        self.pending.clear();
        self.reader.seek(SeekFrom::Start(0)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_entries_and_partials_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        let mut writer = Writer::open(&path, None).expect("open");
        let mut reader = Reader::open(&path).expect("open");
        writer.write(OutputStream::Stdout, b"one\ntw").expect("write");
        writer.write(OutputStream::Stderr, b"err\n").expect("write");
        let entries = reader.read_new().expect("read");
        let logs: Vec<(&str, &str)> = entries.iter().map(|e| (e.log.as_str(), e.stream.as_str())).collect();
        assert_eq!(logs, [("one\n", "stdout"), ("err\n", "stderr")]);
        writer.write(OutputStream::Stdout, b"o\n\"quoted\"").expect("write");
        writer.flush().expect("flush");
        let entries = reader.read_new().expect("read");
        let logs: Vec<&str> = entries.iter().map(|e| e.log.as_str()).collect();
        assert_eq!(logs, ["two\n", "\"quoted\""]);
        assert!(entries[0].time.ends_with('Z'));
        // a line longer than 16 KiB is split
        writer.write(OutputStream::Stdout, &vec![b'x'; MAX_ENTRY + 10]).expect("write");
        writer.write(OutputStream::Stdout, b"\n").expect("write");
        let entries = reader.read_new().expect("read");
        assert_eq!(entries.iter().map(|e| e.log.len()).collect::<Vec<_>>(), [MAX_ENTRY, 11]);
    }

    #[test]
    fn rotation_keeps_max_files_and_readers_follow_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        let rotation = Rotation { max_size: 300, max_files: 3 };
        let mut writer = Writer::open(&path, Some(rotation)).expect("open");
        let mut follower = Reader::open(&path).expect("open");
        let mut followed = Vec::new();
        for index in 0..40 {
            writer.write(OutputStream::Stdout, format!("line {index}\n").as_bytes()).expect("write");
            followed.extend(follower.read_new().expect("read").into_iter().map(|e| e.log));
        }
        let expected: Vec<String> = (0..40).map(|i| format!("line {i}\n")).collect();
        assert_eq!(followed, expected, "a follower sees every line across rotations");
        let files = files_oldest_first(&path);
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(!rotated_path(&path, 3).exists());
        for file in &files {
            assert!(std::fs::metadata(file).expect("meta").len() <= 300);
        }
        let mut kept = Vec::new();
        for file in &files {
            kept.extend(
                Reader::open(file).expect("open").read_new().expect("read").into_iter().map(|e| e.log),
            );
        }
        assert_eq!(kept.last().map(String::as_str), Some("line 39\n"));
        assert!(kept.len() < 40 && expected.ends_with(&kept), "{kept:?}");
    }
}
