//! A small HTTP/1.1 server on 127.0.0.1 for the `[[serve]]` routes of a case, like BuildKit's
//! `util/testutil/httpserver`: fixed responses with optional `ETag` (a matching `If-None-Match`
//! gets 304), `Last-Modified` and `Content-Disposition`; unknown paths get 404. Records every
//! request as `METHOD /path` for the builds' `requests` checks.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One route's response.
#[derive(Debug, Clone)]
pub struct Route {
    pub body: Vec<u8>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub content_disposition: Option<String>,
}

#[derive(Debug)]
pub struct Server {
    pub url: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(routes: BTreeMap<String, Route>) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, done) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = serve(stream, &routes, &log);
                }
            }
        });
        Ok(Server { url, requests, stop, thread: Some(thread) })
    }

    /// The requests received since the last call.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    routes: &BTreeMap<String, Route>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("/"));
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let mut if_none_match = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(value.trim().to_owned());
        }
    }
    if method.is_empty() {
        return Ok(());
    }
    let mut out = stream;
    let Some(route) = routes.get(&path) else {
        return out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    log.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{method} {path}"));
    let mut head = String::new();
    if let Some(modified) = &route.last_modified {
        head.push_str(&format!("Last-Modified: {modified}\r\n"));
    }
    if let Some(disposition) = &route.content_disposition {
        head.push_str(&format!("Content-Disposition: {disposition}\r\n"));
    }
    if let Some(etag) = &route.etag {
        head.push_str(&format!("ETag: {etag}\r\n"));
        if if_none_match.as_deref() == Some(etag.as_str()) {
            return out.write_all(
                format!("HTTP/1.1 304 Not Modified\r\n{head}Connection: close\r\n\r\n").as_bytes(),
            );
        }
    }
    let len = route.body.len();
    out.write_all(
        format!("HTTP/1.1 200 OK\r\n{head}Content-Length: {len}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    if method != "HEAD" {
        out.write_all(&route.body)?;
    }
    out.flush()
}
