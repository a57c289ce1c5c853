//! The control socket's plumbing: binding the listener (with stale-socket
//! detection) and the per-connection state machine. What a request means is
//! decided in `shell/mod.rs`; the protocol is in `twinwall::control`.
//!
//! A connection reads one request line of at most [`MAX_REQUEST`] bytes,
//! then writes the whole reply and closes. Everything is non-blocking, and
//! each connection has a deadline, so a slow or silent client costs one slot
//! and never stalls the loop.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::net::{UnixListener, UnixStream};

/// Longest request line accepted.
pub const MAX_REQUEST: usize = 4096;

/// Why the control socket could not be set up. Each variant's doc is its message.
#[derive(Debug)]
pub enum ControlError {
    /// another twinwall is running on {0} (it answered); stop it or choose another control_socket
    InUse(PathBuf),
    /// {0} exists and is not a socket; remove it or choose another control_socket
    NotASocket(PathBuf),
    /// cannot create the control socket at {0}: {1}
    Io(PathBuf, io::Error),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::InUse(p) => write!(
                f,
                "another twinwall is running on {} (it answered); stop it or choose another control_socket",
                p.display()
            ),
            ControlError::NotASocket(p) => {
                write!(f, "{} exists and is not a socket; remove it or choose another control_socket", p.display())
            }
            ControlError::Io(p, e) => write!(f, "cannot create the control socket at {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ControlError {}

/// The bound listener. Dropping it removes the socket file.
pub struct Listener {
    pub sock: UnixListener,
    path: PathBuf,
}

impl Listener {
    pub fn bind(path: &Path) -> Result<Listener, ControlError> {
        let io_err = |e| ControlError::Io(path.to_owned(), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(io_err)?;
        }
        match fs::symlink_metadata(path) {
            Ok(md) if !md.file_type().is_socket() => return Err(ControlError::NotASocket(path.to_owned())),
            Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(ControlError::InUse(path.to_owned())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    log::info!("removing stale control socket {}", path.display());
                    fs::remove_file(path).map_err(io_err)?;
                }
                Err(e) => return Err(io_err(e)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let sock = UnixListener::bind(path).map_err(io_err)?;
        let listener = Listener { sock, path: path.to_owned() };
        // Root and the root group may ask; a reload is an operator's action.
        fs::set_permissions(path, fs::Permissions::from_mode(0o660)).map_err(io_err)?;
        Ok(listener)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("cannot remove control socket {}: {e}", self.path.display());
            }
        }
    }
}

/// What reading from a connection produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// No full line yet; wait for more.
    Pending,
    /// A request line (without the newline), or why it is unusable.
    Request(Result<String, String>),
    /// The client went away without asking anything.
    Closed,
}

pub struct Conn {
    pub stream: UnixStream,
    /// Deadline in core microseconds (the loop's clock).
    pub deadline_us: u64,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    /// Set once the request is complete; from then on only writes happen.
    replying: bool,
}

impl Conn {
    pub fn new(stream: UnixStream, deadline_us: u64) -> Conn {
        Conn { stream, deadline_us, inbuf: Vec::new(), out: Vec::new(), sent: 0, replying: false }
    }

    pub fn replying(&self) -> bool {
        self.replying
    }

    /// Read until a newline, EOF, `WouldBlock` or [`MAX_REQUEST`] bytes.
    pub fn read_request(&mut self) -> io::Result<ReadOutcome> {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(pos) = self.inbuf.iter().position(|&b| b == b'\n') {
                self.inbuf.truncate(pos);
                return Ok(ReadOutcome::Request(self.take_line()));
            }
            if self.inbuf.len() > MAX_REQUEST {
                return Ok(ReadOutcome::Request(Err(format!("request longer than {MAX_REQUEST} bytes"))));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) if self.inbuf.is_empty() => return Ok(ReadOutcome::Closed),
                // Half-closed without a newline: what came is the request.
                Ok(0) => return Ok(ReadOutcome::Request(self.take_line())),
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn take_line(&mut self) -> Result<String, String> {
        let bytes = std::mem::take(&mut self.inbuf);
        String::from_utf8(bytes).map(|s| s.trim_end_matches('\r').to_owned()).map_err(|_| "request is not UTF-8".into())
    }

    /// Queue the reply: `ok` or `error`, a newline, then the body.
    pub fn set_reply(&mut self, reply: Result<String, String>) {
        let (status, body) = match reply {
            Ok(b) => ("ok\n", b),
            Err(b) => ("error\n", b),
        };
        let mut out = Vec::with_capacity(status.len() + body.len() + 1);
        out.extend_from_slice(status.as_bytes());
        out.extend_from_slice(body.as_bytes());
        if !body.is_empty() && !body.ends_with('\n') {
            out.push(b'\n');
        }
        self.out = out;
        self.sent = 0;
        self.replying = true;
    }

    /// Write what is left of the reply; `Ok(true)` once all of it is sent.
    pub fn write_reply(&mut self) -> io::Result<bool> {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}
