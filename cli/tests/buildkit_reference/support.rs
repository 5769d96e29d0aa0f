//! Helpers of `buildkit_reference.rs`: `layers.txt`/`contents.txt` parsing, a layer tar lister,
//! the docker-differ normalisations, and a tiny HTTP server for `serve/`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// `ls -l` dates in contents vary between runs: `Nov 22 22:25` → `<date>`.
pub(crate) fn mask_dates(text: &str) -> String {
    const MONTHS: &[&str] =
        &["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.iter().position(|w| MONTHS.contains(w)) {
                Some(i) if i + 2 < words.len() => {
                    [&words[..i], &["<date>"], &words[i + 3..]].concat().join(" ")
                }
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn mode_string(m: u32) -> String {
    let kind = match m & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        _ => '-',
    };
    let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
    let exec = |x: u32, special: u32, set: char, unset: char| match (m & x != 0, m & special != 0) {
        (true, true) => set,
        (false, true) => unset,
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        kind,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        exec(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        exec(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        exec(0o001, 0o1000, 't', 'T'),
    ]
    .iter()
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Layers: entries as `layers.txt` writes them, from the reference and from kiln's layer tars.

/// One layer entry: path (dirs with a trailing `/`) → `MODE UID:GID[ -> SYMLINK][ => HARDLINK]`.
pub(crate) type LayerEntries = BTreeMap<String, String>;

/// Normalisations for what docker's overlay2 differ writes differently from a BuildKit-native
/// differ (see KNOWN-DIFFERENCES.md, "Intentional differences"), applied to both sides.
pub(crate) fn normalise_layer(entries: &mut LayerEntries, run_layer: bool) {
    for (path, attrs) in entries.iter_mut() {
        let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        // I2: whiteouts and opaque markers carry no file metadata (only their names count)
        if name.starts_with(".wh.") {
            *attrs = "whiteout".into();
        }
    }
    // I1: the `etc/` left by the runtime's mount points in a RUN layer that changed nothing else
    // under /etc
    let lone_etc = !entries.keys().any(|p| p.starts_with("etc/") && p != "etc/");
    if run_layer && lone_etc && entries.get("etc/").is_some_and(|a| a == "drwxr-xr-x 0:0") {
        entries.remove("etc/");
    }
}

/// `layers.txt`: layer number → entries (`None` for the base image's layer, not listed).
pub(crate) fn reference_layers(text: &str) -> Vec<Option<LayerEntries>> {
    let mut layers: Vec<Option<LayerEntries>> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# layer ") {
            layers.push(if rest.contains("base image") { None } else { Some(LayerEntries::new()) });
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let (mode, owner, rest) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let (path, link) = match rest.find(" -> ").or_else(|| rest.find(" => ")) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let layer = layers.last_mut().unwrap().as_mut().unwrap();
        layer.insert(path.to_string(), format!("{mode} {owner}{link}"));
    }
    layers
}

/// `contents.txt`: (layer, path) → text.
pub(crate) fn reference_contents(contents: &str) -> BTreeMap<(usize, String), String> {
    let mut out = BTreeMap::new();
    let mut current: Option<((usize, String), String)> = None;
    for line in contents.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("== layer ") {
            if let Some((k, t)) = current.take() {
                out.insert(k, t);
            }
            let (layer, rest) = rest.split_once(' ').unwrap();
            let path = rest.rsplit_once(" (").unwrap().0.to_string();
            current = Some(((layer.parse().unwrap(), path), String::new()));
        } else if let Some((_, t)) = current.as_mut() {
            t.push_str(line);
        }
    }
    if let Some((k, t)) = current.take() {
        out.insert(k, t);
    }
    out
}

pub(crate) struct TarLayer {
    pub(crate) entries: LayerEntries,
    /// Regular files ≤ 2 KiB: path → content.
    pub(crate) contents: BTreeMap<String, Vec<u8>>,
}

pub(crate) fn octal(field: &[u8]) -> u64 {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // base-256 (GNU) for large numbers
        return field[1..].iter().fold(0, |n, b| (n << 8) | u64::from(*b));
    }
    let text = std::str::from_utf8(field).unwrap();
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() { 0 } else { u64::from_str_radix(text, 8).unwrap() }
}

pub(crate) fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Lists a (compressed) layer tar: ustar, PAX (`path`, `linkpath`, `uid`, `gid`, `size`) and GNU
/// long names.
pub(crate) fn read_layer_tar(reader: impl Read) -> TarLayer {
    let mut reader = cache::compress::decompress(reader).unwrap();
    let mut layer = TarLayer { entries: LayerEntries::new(), contents: BTreeMap::new() };
    let mut pax: BTreeMap<String, String> = BTreeMap::new();
    let (mut long_name, mut long_link): (Option<String>, Option<String>) = (None, None);
    loop {
        let mut header = [0u8; 512];
        if reader.read_exact(&mut header).is_err() || header.iter().all(|b| *b == 0) {
            break;
        }
        let kind = header[156];
        let mut size = octal(&header[124..136]);
        if let Some(s) = pax.get("size") {
            size = s.parse().unwrap();
        }
        let mut data = vec![0u8; size.div_ceil(512) as usize * 512];
        reader.read_exact(&mut data).unwrap();
        data.truncate(size as usize);
        match kind {
            b'x' => {
                let mut rest = &data[..];
                while !rest.is_empty() {
                    let space = rest.iter().position(|b| *b == b' ').unwrap();
                    let len: usize = std::str::from_utf8(&rest[..space]).unwrap().parse().unwrap();
                    let record = String::from_utf8_lossy(&rest[space + 1..len - 1]).into_owned();
                    let (k, v) = record.split_once('=').unwrap();
                    pax.insert(k.to_string(), v.to_string());
                    rest = &rest[len..];
                }
                continue;
            }
            b'g' => continue,
            b'L' => {
                long_name = Some(cstr(&data));
                continue;
            }
            b'K' => {
                long_link = Some(cstr(&data));
                continue;
            }
            _ => {}
        }
        let mut name = cstr(&header[0..100]);
        if &header[257..262] == b"ustar" {
            let prefix = cstr(&header[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let name = pax.remove("path").or(long_name.take()).unwrap_or(name);
        let link = pax.remove("linkpath").or(long_link.take()).unwrap_or_else(|| cstr(&header[157..257]));
        let uid = pax.remove("uid").map(|v| v.parse().unwrap()).unwrap_or_else(|| octal(&header[108..116]));
        let gid = pax.remove("gid").map(|v| v.parse().unwrap()).unwrap_or_else(|| octal(&header[116..124]));
        pax.clear();
        let perm = octal(&header[100..108]) as u32 & 0o7777;
        let type_bits = match kind {
            b'5' => 0o040000,
            b'2' => 0o120000,
            b'3' => 0o020000,
            b'4' => 0o060000,
            b'6' => 0o010000,
            _ => 0o100000,
        };
        let mut path =
            name.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_string();
        if path.is_empty() || path == "." {
            continue;
        }
        if kind == b'5' {
            path.push('/');
        }
        let link = match kind {
            b'2' => format!(" -> {link}"),
            b'1' => format!(" => {}", link.trim_start_matches("./").trim_start_matches('/')),
            _ => String::new(),
        };
        if (kind == b'0' || kind == 0) && size <= 2048 {
            layer.contents.insert(path.clone(), data);
        }
        layer.entries.insert(path, format!("{} {uid}:{gid}{link}", mode_string(type_bits | perm)));
    }
    layer
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP server for `serve/` (ADD URL), on a free loopback port, stopped on drop.

pub(crate) struct HttpServer {
    pub(crate) port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// `Last-Modified` of every served file: the mtime the reference's `stat` printed (add-url).
pub(crate) const SERVE_MTIME: i64 = 1_795_386_175;

impl HttpServer {
    pub(crate) fn start(dir: PathBuf) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = serve_one(stream, &dir);
                }
            }
        });
        HttpServer { port, stop, thread: Some(thread) }
    }
}

pub(crate) fn serve_one(mut stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut words = request.split_whitespace();
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let name = target.trim_start_matches('/');
    let file = (!name.contains("..") && !name.is_empty()).then(|| dir.join(name));
    match file.and_then(|f| std::fs::read(f).ok()) {
        Some(body) => {
            let modified = chrono::DateTime::from_timestamp(SERVE_MTIME, 0).unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nLast-Modified: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len(),
                modified.format("%a, %d %b %Y %H:%M:%S GMT")
            );
            stream.write_all(head.as_bytes())?;
            if method != "HEAD" {
                stream.write_all(&body)?;
            }
        }
        None => {
            stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?
        }
    }
    stream.flush()
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
