//! Real brokers as child processes on free ports, each with its own temporary directory and log
//! file. `stop()` / `start()` simulate outages; `Drop` kills them.
//!
//! Binaries come from `HOOKBRIDGE_NATS_SERVER_BIN` and `HOOKBRIDGE_TANSU_BIN` (set by
//! `scripts/test`, which installs them), falling back to `nats-server` / `tansu` on PATH. A missing
//! broker fails the test with a message saying how to get it: broker tests are never skipped.
//!
//! Output goes to a log file, never to an inherited pipe: a broker that outlived a killed test run
//! must not keep the CI runner's stdout open.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("hookbridge-{prefix}-{}-{n}", std::process::id()));
        let _fresh = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _removed = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

fn binary(var: &str, fallback: &str) -> String {
    if let Ok(path) = std::env::var(var) {
        return path;
    }
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(fallback).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{fallback} not found: set {var} or run the tests through scripts/test, which installs the brokers"
    );
    fallback.to_owned()
}

fn wait_for_port(port: u16, child: &mut Child, log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Tansu exits 0 when its port is taken; make sure the listener is our child.
            std::thread::sleep(Duration::from_millis(50));
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!(
                    "{what} exited with {status} right after start (port {port} taken?); its log:\n{log}"
                );
            }
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited with {status} before listening on {port}; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not listen on {port} within 20 s; its log:\n{log}");
}

fn spawn_logged(program: &str, args: &[String], log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open broker log");
    let err = out.try_clone().expect("clone log handle");
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _killed = c.kill();
        let _reaped = c.wait();
    }
}

/// `nats-server -js` with a file store in a temp dir. Its data survives `stop()`/`start()`.
pub struct NatsServer {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start() -> Self {
        let mut server = NatsServer {
            port: free_port(),
            dir: TempDir::new("nats"),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: an outage, not a polite shutdown).
    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        let bin = binary("HOOKBRIDGE_NATS_SERVER_BIN", "nats-server");
        let store = self.dir.path().join("store");
        let log = self.dir.path().join("nats.log");
        let args = [
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
            &store.to_string_lossy(),
        ]
        .map(String::from);
        let mut child = spawn_logged(&bin, &args, &log);
        wait_for_port(self.port, &mut child, &log, "nats-server");
        self.child = Some(child);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Kafka-protocol broker: Tansu with in-memory storage, or an external Kafka from
/// `HOOKBRIDGE_TEST_KAFKA_BOOTSTRAP` (then `stop`/`restart` are not available).
pub struct KafkaBroker {
    pub port: u16,
    external: Option<String>,
    dir: TempDir,
    child: Option<Child>,
}

impl KafkaBroker {
    pub fn start() -> Self {
        let external = std::env::var("HOOKBRIDGE_TEST_KAFKA_BOOTSTRAP").ok();
        let mut broker = KafkaBroker {
            port: free_port(),
            external,
            dir: TempDir::new("kafka"),
            child: None,
        };
        if broker.external.is_none() {
            broker.restart();
        }
        broker
    }

    pub fn bootstrap(&self) -> String {
        self.external
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{}", self.port))
    }

    pub fn is_external(&self) -> bool {
        self.external.is_some()
    }

    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Starts Tansu on the same port. Memory storage: topics and records do not survive a restart.
    pub fn restart(&mut self) {
        assert!(self.external.is_none(), "cannot restart an external Kafka");
        self.stop();
        let bin = binary("HOOKBRIDGE_TANSU_BIN", "tansu");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = self.dir.path().join("tansu.log");
        let args = [
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ]
        .map(String::from);
        let mut child = spawn_logged(&bin, &args, &log);
        wait_for_port(self.port, &mut child, &log, "tansu");
        self.child = Some(child);
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
