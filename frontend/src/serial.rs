//! `-serial` backends: where a COM port's output goes.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use machine::SerialOutput;
use parking_lot::Mutex;

use crate::socket::{SocketChardev, SocketSpec};

/// One `-serial` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialSpec {
    /// The terminal: output to stdout, input from stdin.
    Stdio,
    /// Output written to a file, created or truncated.
    File(PathBuf),
    /// The UART exists; its output is discarded.
    Null,
    /// No UART at this COM port.
    None,
    /// A Unix or TCP socket (`-chardev socket`, `-serial unix:…`/`tcp:…`).
    Socket(SocketSpec),
}

/// Parses a `-serial` value; the second item is a warning about what was ignored.
pub fn parse(s: &str) -> Result<(SerialSpec, Option<String>), String> {
    let spec = match s {
        "stdio" => SerialSpec::Stdio,
        "mon:stdio" => {
            return Ok((
                SerialSpec::Stdio,
                Some("-serial mon:stdio: the QEMU monitor is not supported; using stdio".into()),
            ))
        }
        "null" => SerialSpec::Null,
        "none" => SerialSpec::None,
        _ if SocketSpec::from_legacy(s).is_some() => {
            SerialSpec::Socket(SocketSpec::from_legacy(s).expect("checked")?)
        }
        _ => match s.strip_prefix("file:") {
            Some("") => return Err("-serial file: needs a path (file:PATH)".into()),
            Some(path) => SerialSpec::File(path.into()),
            None => {
                return Err(format!(
                    "-serial: backend '{s}' is not supported (use stdio, file:PATH, unix:PATH, \
                     tcp:[HOST]:PORT, null or none)"
                ))
            }
        },
    };
    Ok((spec, None))
}

/// Writes to stdout, flushing every write so the guest's output shows up at once.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = io::stdout().lock();
        out.write_all(buf)?;
        out.flush()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

/// An open backend: where output goes, and the socket when input can come back from it.
pub struct Backend {
    pub output: SerialOutput,
    pub socket: Option<Arc<SocketChardev>>,
}

/// Opens the backend; `None` for a COM port that is left out.
pub fn open_backend(spec: &SerialSpec) -> Result<Option<Backend>, String> {
    if let SerialSpec::Socket(s) = spec {
        let socket = SocketChardev::open(s)?;
        return Ok(Some(Backend {
            output: Arc::new(Mutex::new(socket.writer())),
            socket: Some(socket),
        }));
    }
    Ok(open(spec)?.map(|output| Backend {
        output,
        socket: None,
    }))
}

/// Opens an output-only backend; `None` for a COM port that is left out.
pub fn open(spec: &SerialSpec) -> Result<Option<SerialOutput>, String> {
    let out: SerialOutput = match spec {
        SerialSpec::Stdio => Arc::new(Mutex::new(Stdout)),
        SerialSpec::File(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("-serial: cannot create '{}': {e}", path.display()))?;
            Arc::new(Mutex::new(file))
        }
        SerialSpec::Null => Arc::new(Mutex::new(io::sink())),
        SerialSpec::None => return Ok(None),
        SerialSpec::Socket(s) => Arc::new(Mutex::new(SocketChardev::open(s)?.writer())),
    };
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse() {
        assert_eq!(parse("stdio"), Ok((SerialSpec::Stdio, None)));
        assert_eq!(parse("null"), Ok((SerialSpec::Null, None)));
        assert_eq!(parse("none"), Ok((SerialSpec::None, None)));
        assert_eq!(
            parse("file:/tmp/x.log"),
            Ok((SerialSpec::File("/tmp/x.log".into()), None))
        );
        let (spec, warning) = parse("mon:stdio").unwrap();
        assert_eq!(spec, SerialSpec::Stdio);
        assert!(warning.unwrap().contains("monitor"));
    }

    #[test]
    fn unsupported_backends_are_named() {
        let e = parse("pty").unwrap_err();
        assert!(e.contains("'pty'"), "{e}");
        assert!(matches!(
            parse("tcp:localhost:4444,server,nowait"),
            Ok((SerialSpec::Socket(_), None))
        ));
        assert!(parse("file:").is_err());
    }

    #[test]
    fn file_backend_writes_and_names_bad_paths() {
        let dir = std::env::temp_dir().join(format!("ferrite-serial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("com1.log");
        let out = open(&SerialSpec::File(path.clone())).unwrap().unwrap();
        out.lock().write_all(b"hi\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hi\n");
        let bad = dir.join("missing/dir/com1.log");
        let e = open(&SerialSpec::File(bad.clone())).err().unwrap();
        assert!(e.contains(&bad.display().to_string()), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(open(&SerialSpec::None).unwrap().is_none());
    }
}
