//! docker's json-file log driver: one JSON object per line of output,
//! `{"log":"text\n","stream":"stdout","time":"2024-05-01T12:00:00.123456789Z"}`.
//! Lines longer than 16 KiB are split into several entries (the last without `\n`), as docker's.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;

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
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file, partial: [Vec::new(), Vec::new()] })
    }

    fn entry(&mut self, stream: usize, data: &[u8]) -> std::io::Result<()> {
        let entry = Entry {
            log: String::from_utf8_lossy(data).into_owned(),
            stream: name(stream).to_owned(),
            time: rfc3339_nano(super::record::now_nanos()),
        };
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // one write per entry (O_APPEND): a reader never sees half an entry from us
        self.file.write_all(&line)
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
}

impl Reader {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Self { reader: BufReader::new(File::open(path)?), pending: String::new() })
    }

    /// Every complete entry written since the last call (an entry being written is kept for
    /// the next call). Malformed lines are skipped.
    pub fn read_new(&mut self) -> std::io::Result<Vec<Entry>> {
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
        let mut writer = Writer::open(&path).expect("open");
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
}
