//! A `nats-server` of the test's or the demo's own, on a free port of
//! 127.0.0.1 with JetStream in a temporary directory, stopped when dropped.
//!
//! No mock: the consumer talks to the broker it runs against in
//! production. Where `nats-server` is not on `PATH`, it is installed with
//! Debian's package, so that `cargo test --workspace --all-features` works
//! on a fresh machine.

use std::fmt;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long the server has to accept connections: it takes milliseconds,
/// so this only bounds a broken start.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// Starts on a port that was free a moment before can still find it taken
/// by then: so many ports are tried.
const PORTS_TRIED: usize = 3;

const HOW_TO_INSTALL: &str = "install it with `apt-get install nats-server` \
     (Debian, Ubuntu) or from https://github.com/nats-io/nats-server/releases, \
     and put it on PATH";

/// A running `nats-server` with JetStream, killed when dropped.
pub struct NatsServer {
    child: Child,
    addr: SocketAddr,
    /// JetStream's storage and the server's log; removed after the kill.
    dir: TempDir,
}

impl NatsServer {
    /// Starts `nats-server -js` on a free port of 127.0.0.1, its storage in
    /// a temporary directory, and waits until it accepts connections.
    /// Installs `nats-server` first if it is not on `PATH` (see the
    /// [module docs](self)).
    ///
    /// Blocks the calling thread, for the install and the start.
    ///
    /// # Errors
    ///
    /// If `nats-server` is missing and cannot be installed (the error says
    /// how to get it), or if it does not accept connections within 20
    /// seconds (the error holds its log).
    pub fn start() -> Result<Self, Error> {
        installed()?;
        let mut last = None;
        for _ in 0..PORTS_TRIED {
            match Self::start_once() {
                Ok(server) => return Ok(server),
                // Another process took the port: try another one.
                Err(Error::Exited(log)) if log.contains("address already in use") => {
                    last = Some(Error::Exited(log));
                }
                Err(err) => return Err(err),
            }
        }
        Err(last.expect("at least one port is tried"))
    }

    fn start_once() -> Result<Self, Error> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let dir = tempfile::Builder::new().prefix("nats-server-").tempdir()?;
        let log = File::create(dir.path().join("log"))?;
        let child = Command::new("nats-server")
            .arg("-js")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .arg("-sd")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        // Owned from here on, so that an error below kills it too.
        let mut server = Self { child, addr, dir };
        server.wait_until_ready()?;
        Ok(server)
    }

    fn wait_until_ready(&mut self) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if self.child.try_wait()?.is_some() {
                return Err(Error::Exited(self.log()));
            }
            if start.elapsed() > READY_WITHIN {
                return Err(Error::NotReady {
                    addr: self.addr,
                    log: self.log(),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The URL clients connect to: `nats://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // Killed before its directory is removed, so that it writes
        // nothing there meanwhile; an error means it has exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsServer")
            .field("pid", &self.child.id())
            .field("addr", &self.addr)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Makes sure `nats-server` is on `PATH`, installing Debian's package
/// once per process if it is not (tests of one binary start servers in
/// parallel, and two installs at once would fight over dpkg's lock).
fn installed() -> Result<(), Error> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            if runs() {
                return Ok(());
            }
            eprintln!("nats-server is not on PATH: installing Debian's package");
            let mut tried = apt_install();
            if tried.is_err() {
                // A fresh machine's package lists may be missing or stale.
                tried = apt(&["update"]).and_then(|()| apt_install());
            }
            match tried {
                Ok(()) if runs() => Ok(()),
                Ok(()) => Err("it was installed but does not run".to_owned()),
                Err(err) => Err(err),
            }
        })
        .clone()
        .map_err(Error::Missing)
}

fn runs() -> bool {
    Command::new("nats-server")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

fn apt_install() -> Result<(), String> {
    apt(&["install", "-y", "nats-server"])
}

/// Runs `apt-get`, which works only as root: its error is kept for the
/// message that says how to install the server by hand.
fn apt(args: &[&str]) -> Result<(), String> {
    let out = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("`apt-get` could not be run: {err}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`apt-get {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why a [`NatsServer`] did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `nats-server` is not on `PATH` and could not be installed.
    Missing(String),
    /// The server exited before it accepted connections; its log.
    Exited(String),
    /// The server did not accept connections in time.
    NotReady {
        /// Where it was to listen.
        addr: SocketAddr,
        /// Its log so far.
        log: String,
    },
    /// A port, its directory or the process could not be had.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(why) => write!(
                f,
                "nats-server is not on PATH and could not be installed ({why}): {HOW_TO_INSTALL}"
            ),
            Self::Exited(log) => write!(f, "nats-server exited at start; its log:\n{log}"),
            Self::NotReady { addr, log } => write!(
                f,
                "nats-server did not accept connections on {addr} within {}s; its log:\n{log}",
                READY_WITHIN.as_secs()
            ),
            Self::Io(err) => write!(f, "nats-server could not be started: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}
