//! QEMU's socket character backend: `-chardev socket,id=ID,path=PATH|host=H,port=N
//! [,server=on|off][,wait=on|off]` and `-serial unix:PATH[,server][,nowait]` /
//! `-serial tcp:[HOST]:PORT[,server][,nowait]`.
//!
//! As a server it listens (a stale Unix socket file is replaced, as QEMU does); with `wait=on`,
//! QEMU's default for servers, the run starts only once a client has connected, and a client
//! that leaves can be replaced by the next one (one client at a time: a newer one replaces
//! and disconnects an older one). As a client it connects at start-up and a
//! failure is an error. Guest output while nobody is connected is dropped: a guest never
//! waits on a socket for more than a moment (output to a peer that does not read is
//! dropped). Bytes from the peer reach the UART the socket is attached to, in order, with the
//! socket's own flow control holding back a peer that sends faster than the guest reads. A
//! TCP server without `host` listens on every address, as QEMU's does.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Where the socket is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketAddr {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

impl std::fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            SocketAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            SocketAddr::Tcp { host, port } if host.is_empty() => write!(f, "tcp::{port}"),
            SocketAddr::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketSpec {
    pub addr: SocketAddr,
    pub server: bool,
    /// A server waits for its first client before the guest starts.
    pub wait: bool,
}

fn on_off(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" | "yes" | "true" | "" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(format!("{key}='{v}' must be on or off")),
    }
}

impl SocketSpec {
    /// From `-chardev socket` properties (everything after `socket,` but `id=`).
    pub fn from_props(props: &[(String, String)]) -> Result<SocketSpec, String> {
        let (mut path, mut host, mut port, mut server, mut wait) = (None, None, None, false, None);
        for (k, v) in props {
            match k.as_str() {
                "path" => path = Some(PathBuf::from(v)),
                "host" => host = Some(v.clone()),
                "port" => {
                    port = Some(
                        v.parse::<u16>()
                            .map_err(|_| format!("port='{v}' is not a TCP port"))?,
                    )
                }
                "server" => server = on_off(k, v)?,
                "wait" => wait = Some(on_off(k, v)?),
                "nowait" => wait = Some(false),
                // TCP and telnet niceties with no effect on what the guest sees.
                "nodelay" | "telnet" | "tn3270" | "reconnect" | "ipv4" | "ipv6" => {}
                _ => return Err(format!("unknown property '{k}'")),
            }
        }
        let addr = match (path, port) {
            (Some(p), None) if !p.as_os_str().is_empty() => SocketAddr::Unix(p),
            // No host: all addresses for a server, this machine for a client (as QEMU).
            (None, Some(port)) => SocketAddr::Tcp {
                host: host.unwrap_or_default(),
                port,
            },
            _ => return Err("needs path=SOCKET (Unix) or port=N (TCP), not both".into()),
        };
        Ok(SocketSpec {
            addr,
            server,
            wait: server && wait.unwrap_or(true),
        })
    }

    /// From `-serial unix:PATH[,server][,nowait]` or `tcp:[HOST]:PORT[,server][,nowait]`.
    pub fn from_legacy(s: &str) -> Option<Result<SocketSpec, String>> {
        let (kind, rest) = s.split_once(':')?;
        if kind != "unix" && kind != "tcp" {
            return None;
        }
        let mut parts = rest.split(',');
        let target = parts.next().unwrap_or("");
        let mut props: Vec<(String, String)> = Vec::new();
        if kind == "unix" {
            props.push(("path".into(), target.into()));
        } else {
            let Some((host, port)) = target.rsplit_once(':') else {
                return Some(Err(format!("-serial {s}: expected tcp:[HOST]:PORT")));
            };
            props.push(("host".into(), host.into()));
            props.push(("port".into(), port.into()));
        }
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            props.push((k.into(), v.into()));
        }
        Some(SocketSpec::from_props(&props).map_err(|e| format!("-serial {s}: {e}")))
    }
}

/// A connected peer, either kind.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(b),
            Stream::Tcp(s) => s.write_all(b),
        }
    }

    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(b),
            Stream::Tcp(s) => s.read(b),
        }
    }

    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
            Stream::Tcp(s) => s.set_write_timeout(Some(t)),
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
        }
    }
}

/// Where bytes from the peer go (the UART's input).
pub type InputSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// How long a write to a peer that is not reading may take before the output is dropped
/// (a guest never waits on a socket for longer).
const WRITE_TIMEOUT: Duration = Duration::from_millis(50);
/// Chunks of peer input queued for the UART; a full queue stops reading from the socket, so
/// a fast peer is held back by the socket's own flow control.
const INPUT_QUEUE: usize = 64;

/// The connected peer and which connection it is.
struct Peer {
    id: u64,
    stream: Stream,
    /// When a write last timed out: output is dropped for [`STALL_BACKOFF`] after that
    /// rather than waiting again for every byte.
    stalled: Option<Instant>,
}

/// How long output to a peer that stopped reading is dropped before trying it again.
const STALL_BACKOFF: Duration = Duration::from_secs(1);

/// An open socket backend: the current peer, if any, and the queue its input goes through.
pub struct SocketChardev {
    peer: Mutex<Option<Peer>>,
    next_id: AtomicU64,
    input_tx: SyncSender<Vec<u8>>,
    input_rx: Mutex<Option<Receiver<Vec<u8>>>>,
    /// A listening Unix socket's file, removed when the backend closes (as QEMU does).
    socket_file: Option<PathBuf>,
}

impl Drop for SocketChardev {
    fn drop(&mut self) {
        if let Some(p) = self.peer.get_mut().take() {
            p.stream.shutdown();
        }
        if let Some(path) = &self.socket_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl SocketChardev {
    /// Listens or connects as `spec` says; a waiting server returns once a client is there.
    pub fn open(spec: &SocketSpec) -> Result<Arc<SocketChardev>, String> {
        let what = format!("-chardev socket {}", spec.addr);
        if !spec.server {
            let stream = match &spec.addr {
                SocketAddr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
                SocketAddr::Tcp { host, port } => {
                    let host = if host.is_empty() { "localhost" } else { host };
                    TcpStream::connect((host, *port)).map(Stream::Tcp)
                }
            }
            .map_err(|e| format!("{what}: cannot connect: {e}"))?;
            let dev = Arc::new(SocketChardev::new(None));
            dev.connected(stream);
            return Ok(dev);
        }
        let listener = match &spec.addr {
            SocketAddr::Unix(p) => {
                // A socket file left by an earlier run is replaced (QEMU does the same).
                let _ = std::fs::remove_file(p);
                Listener::Unix(
                    UnixListener::bind(p).map_err(|e| format!("{what}: cannot listen: {e}"))?,
                )
            }
            // No host: every address, as QEMU listens.
            SocketAddr::Tcp { host, port } => Listener::Tcp(
                TcpListener::bind((if host.is_empty() { "0.0.0.0" } else { host }, *port))
                    .map_err(|e| format!("{what}: cannot listen: {e}"))?,
            ),
        };
        let socket_file = match &spec.addr {
            SocketAddr::Unix(p) => Some(p.clone()),
            SocketAddr::Tcp { .. } => None,
        };
        let dev = Arc::new(SocketChardev::new(socket_file));
        if spec.wait {
            eprintln!("ferrite: waiting for a connection on {}", spec.addr);
            let stream = listener
                .accept()
                .map_err(|e| format!("{what}: accepting a connection: {e}"))?;
            dev.connected(stream);
        }
        let weak = Arc::downgrade(&dev);
        std::thread::Builder::new()
            .name("chardev-accept".into())
            .spawn(move || loop {
                let Ok(stream) = listener.accept() else {
                    return;
                };
                let Some(dev) = weak.upgrade() else { return };
                dev.connected(stream);
            })
            .map_err(|e| format!("{what}: starting its thread: {e}"))?;
        Ok(dev)
    }

    fn new(socket_file: Option<PathBuf>) -> Self {
        let (input_tx, rx) = std::sync::mpsc::sync_channel(INPUT_QUEUE);
        SocketChardev {
            peer: Mutex::new(None),
            next_id: AtomicU64::new(0),
            input_tx,
            input_rx: Mutex::new(Some(rx)),
            socket_file,
        }
    }

    /// A new peer. One at a time, as in QEMU: a newer client replaces an older one, which is
    /// disconnected. A thread forwards what the peer sends.
    fn connected(self: &Arc<Self>, stream: Stream) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_write_timeout(WRITE_TIMEOUT);
        let reader = stream.try_clone();
        let peer = Peer {
            id,
            stream,
            stalled: None,
        };
        if let Some(old) = self.peer.lock().replace(peer) {
            old.stream.shutdown();
        }
        let Ok(mut reader) = reader else { return };
        let weak = Arc::downgrade(self);
        let tx = self.input_tx.clone();
        let _ = std::thread::Builder::new()
            .name("chardev-read".into())
            .spawn(move || {
                let mut buf = [0u8; 256];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(n) if n > 0 => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        _ => break,
                    };
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                // The peer left: forget it unless a newer one has taken its place.
                if let Some(dev) = weak.upgrade() {
                    let mut peer = dev.peer.lock();
                    if peer.as_ref().is_some_and(|p| p.id == id) {
                        *peer = None;
                    }
                }
            });
    }

    /// Sends the peer's bytes to `sink`, in order, from a thread of its own (the sink may
    /// wait for the guest's UART); input that came before is delivered first.
    pub fn attach_input(&self, sink: InputSink) {
        let Some(rx) = self.input_rx.lock().take() else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("chardev-input".into())
            .spawn(move || {
                for chunk in rx {
                    sink(&chunk);
                }
            });
    }

    /// The output side, for a UART or the debug console.
    pub fn writer(self: &Arc<Self>) -> SocketWriter {
        SocketWriter(self.clone())
    }
}

/// Guest output to the socket's peer; dropped while there is none.
pub struct SocketWriter(Arc<SocketChardev>);

impl Write for SocketWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut peer = self.0.peer.lock();
        if let Some(p) = peer.as_mut() {
            if p.stalled.is_some_and(|t| t.elapsed() < STALL_BACKOFF) {
                return Ok(buf.len());
            }
            p.stalled = None;
            match p.stream.write_all(buf) {
                Ok(()) => {}
                // A peer that does not read loses output rather than stalling the guest.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    p.stalled = Some(Instant::now());
                }
                Err(_) => {
                    // The peer left; a server takes the next one.
                    p.stream.shutdown();
                    *peer = None;
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(s: &str) -> Vec<(String, String)> {
        s.split(',')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    #[test]
    fn specs() {
        let s = SocketSpec::from_props(&props("path=/tmp/s,server=on,wait=off")).unwrap();
        assert_eq!(s.addr, SocketAddr::Unix("/tmp/s".into()));
        assert!(s.server && !s.wait);
        let s = SocketSpec::from_props(&props("host=localhost,port=4444,server=on")).unwrap();
        assert!(s.wait, "servers wait by default");
        let s = SocketSpec::from_props(&props("port=4444")).unwrap();
        assert_eq!(
            s.addr,
            SocketAddr::Tcp {
                host: String::new(),
                port: 4444
            }
        );
        assert!(!s.server && !s.wait);
        assert!(SocketSpec::from_props(&props("port=99999")).is_err());
        assert!(SocketSpec::from_props(&props("path=/a,port=1")).is_err());
        assert!(SocketSpec::from_props(&props("server=on")).is_err());
        assert!(SocketSpec::from_props(&props("path=/a,colour=red"))
            .unwrap_err()
            .contains("colour"));
        let s = SocketSpec::from_legacy("tcp::4444,server,nowait")
            .unwrap()
            .unwrap();
        assert!(s.server && !s.wait);
        let s = SocketSpec::from_legacy("unix:/tmp/x,server")
            .unwrap()
            .unwrap();
        assert!(s.server && s.wait);
        assert!(SocketSpec::from_legacy("file:x").is_none());
    }

    #[test]
    fn a_unix_server_talks_both_ways_and_takes_a_new_client() {
        let path = std::env::temp_dir().join(format!("ferrite-sock-{}", std::process::id()));
        let spec = SocketSpec {
            addr: SocketAddr::Unix(path.clone()),
            server: true,
            wait: false,
        };
        let dev = SocketChardev::open(&spec).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        dev.attach_input(Arc::new(move |b: &[u8]| g.lock().extend_from_slice(b)));
        let mut w = dev.writer();
        w.write_all(b"nobody hears this").unwrap();
        let wait_until = |what: &dyn Fn() -> bool| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !what() {
                assert!(std::time::Instant::now() < deadline, "timed out");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        };
        for round in 0..2 {
            let mut client = UnixStream::connect(&path).unwrap();
            wait_until(&|| dev.peer.lock().is_some());
            client.write_all(b"k").unwrap();
            w.write_all(b"hi").unwrap();
            let mut buf = [0u8; 2];
            client.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi");
            wait_until(&|| got.lock().len() == round + 1);
            drop(client);
            // As if the writer had noticed the departure; the next client replaces it.
            *dev.peer.lock() = None;
        }
        assert_eq!(&*got.lock(), b"kk");
        drop(w);
        drop(dev);
        assert!(!path.exists(), "the socket file is removed at the end");
    }

    fn server(tag: &str) -> (PathBuf, Arc<SocketChardev>) {
        let path = std::env::temp_dir().join(format!("ferrite-sock-{}-{tag}", std::process::id()));
        let spec = SocketSpec {
            addr: SocketAddr::Unix(path.clone()),
            server: true,
            wait: false,
        };
        (path.clone(), SocketChardev::open(&spec).unwrap())
    }

    fn wait_until(what: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !what() {
            assert!(std::time::Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_peer_that_does_not_read_does_not_stall_the_guest() {
        let (path, dev) = server("stall");
        let _client = UnixStream::connect(&path).unwrap();
        wait_until(|| dev.peer.lock().is_some());
        let mut w = dev.writer();
        let start = std::time::Instant::now();
        // Far more than a socket buffer, one byte per write as a UART writes.
        for _ in 0..(4 << 20) {
            w.write_all(b"x").unwrap();
            if start.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_new_client_replaces_and_disconnects_the_old() {
        let (path, dev) = server("replace");
        let mut first = UnixStream::connect(&path).unwrap();
        wait_until(|| dev.peer.lock().as_ref().is_some_and(|p| p.id == 0));
        let mut second = UnixStream::connect(&path).unwrap();
        wait_until(|| dev.peer.lock().as_ref().is_some_and(|p| p.id == 1));
        let mut buf = [0u8; 1];
        assert_eq!(
            first.read(&mut buf).unwrap(),
            0,
            "the old client is disconnected"
        );
        dev.writer().write_all(b"z").unwrap();
        second.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"z");
    }
}
