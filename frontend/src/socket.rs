//! QEMU's socket character backend: `-chardev socket,id=ID,path=PATH|host=H,port=N
//! [,server=on|off][,wait=on|off]` and `-serial unix:PATH[,server][,nowait]` /
//! `-serial tcp:[HOST]:PORT[,server][,nowait]`.
//!
//! As a server it listens (a stale Unix socket file is replaced, as QEMU does); with `wait=on`,
//! QEMU's default for servers, the run starts only once a client has connected, and a client
//! that leaves can be replaced by the next one. As a client it connects at start-up and a
//! failure is an error. Guest output while nobody is connected is dropped: a guest never
//! blocks on a socket. Bytes from the peer reach the UART the socket is attached to.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;

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
            (None, Some(port)) => SocketAddr::Tcp {
                host: host
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "127.0.0.1".into()),
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

/// An open socket backend: the current peer, if any, and where its input goes.
pub struct SocketChardev {
    peer: Mutex<Option<Stream>>,
    sink: Mutex<Option<InputSink>>,
    /// Bytes from the peer that arrived before a sink was attached.
    early: Mutex<Vec<u8>>,
    /// A listening Unix socket's file, removed when the backend closes (as QEMU does).
    socket_file: Option<PathBuf>,
}

impl Drop for SocketChardev {
    fn drop(&mut self) {
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
                    TcpStream::connect((host.as_str(), *port)).map(Stream::Tcp)
                }
            }
            .map_err(|e| format!("{what}: cannot connect: {e}"))?;
            let dev = Arc::new(SocketChardev::new(None));
            dev.connected(stream);
            return Ok(dev);
        }
        let listener = Arc::new(match &spec.addr {
            SocketAddr::Unix(p) => {
                // A socket file left by an earlier run is replaced (QEMU does the same).
                let _ = std::fs::remove_file(p);
                Listener::Unix(
                    UnixListener::bind(p).map_err(|e| format!("{what}: cannot listen: {e}"))?,
                )
            }
            SocketAddr::Tcp { host, port } => Listener::Tcp(
                TcpListener::bind((host.as_str(), *port))
                    .map_err(|e| format!("{what}: cannot listen: {e}"))?,
            ),
        });
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
        SocketChardev {
            peer: Mutex::new(None),
            sink: Mutex::new(None),
            early: Mutex::new(Vec::new()),
            socket_file,
        }
    }

    /// A new peer: it replaces the old one, and a thread forwards what it sends.
    fn connected(self: &Arc<Self>, stream: Stream) {
        let reader = stream.try_clone();
        *self.peer.lock() = Some(stream);
        let Ok(mut reader) = reader else { return };
        let weak = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("chardev-read".into())
            .spawn(move || {
                let mut buf = [0u8; 256];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => return,
                    };
                    let Some(dev) = weak.upgrade() else { return };
                    dev.received(&buf[..n]);
                }
            });
    }

    fn received(&self, bytes: &[u8]) {
        let sink = self.sink.lock().clone();
        match sink {
            Some(sink) => sink(bytes),
            None => {
                // Bounded: a peer that talks before the guest has a UART loses the excess.
                let mut early = self.early.lock();
                let room = (64 * 1024usize).saturating_sub(early.len());
                early.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        }
    }

    /// Sends the peer's bytes to `sink` from now on (and what already arrived).
    pub fn attach_input(&self, sink: InputSink) {
        let early = std::mem::take(&mut *self.early.lock());
        if !early.is_empty() {
            sink(&early);
        }
        *self.sink.lock() = Some(sink);
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
        if let Some(s) = peer.as_mut() {
            if s.write_all(buf).is_err() {
                // The peer left; a server takes the next one.
                *peer = None;
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
                host: "127.0.0.1".into(),
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
}
