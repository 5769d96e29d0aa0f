//! A loopback TCP port bound once (`127.0.0.1:0`, kept for the forwarder's life) that forwards
//! every connection to a unix socket. Test servers that cannot be handed a bound socket (Debian's
//! `docker-registry` listens where its config says) listen on a unix socket behind it, so no
//! port is picked, released and bound again by another process (the pick-release-rebind race).

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Forwards `addr` (loopback TCP) to a unix socket until dropped.
#[derive(Debug)]
pub struct UnixForward {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UnixForward {
    pub fn start(socket: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("address of a bound socket: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let socket = socket.clone();
                std::thread::spawn(move || pump(stream, &socket));
            }
        });
        Self { addr, stop, thread: Some(thread) }
    }
}

/// Copies both ways until each side has closed; a server not (yet) listening closes the client.
fn pump(client: TcpStream, socket: &Path) {
    let Ok(server) = UnixStream::connect(socket) else { return };
    let (Ok(mut client_read), Ok(mut server_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let (mut server_read, mut client_write) = (server, client);
    let _ = std::io::copy(&mut server_read, &mut client_write);
    let _ = client_write.flush();
    let _ = client_write.shutdown(Shutdown::Both);
    let _ = upstream.join();
}

impl Drop for UnixForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
