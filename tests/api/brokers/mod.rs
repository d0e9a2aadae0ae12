//! Real brokers as child processes on free ports, each with its own temporary directory and log
//! file. `stop()` / `start()` simulate outages; `Drop` kills them.
//!
//! nats-server comes from `HOOKBRIDGE_NATS_SERVER_BIN`, Apache Kafka's jars from
//! `HOOKBRIDGE_KAFKA_LIBS` with its log4j2 file in `HOOKBRIDGE_KAFKA_LOG4J` (all set by
//! `scripts/test`, which installs them into `.cache/`). A missing broker fails the test with a
//! message saying how to get it: broker tests are never skipped.
//!
//! Kafka is a JVM that takes seconds to start on two busy cores, so tests that only publish and
//! read share one per test binary ([`KafkaBroker::shared`], unique topics per test); tests that
//! stop, pause or restart a broker start their own.
//!
//! Output goes to a log file, never to an inherited pipe: a broker that outlived a killed test run
//! must not keep the CI runner's stdout open.
//!
//! One file per server: `nats.rs`, `kafka.rs`, `registry.rs`; `process.rs` starts, watches,
//! signals and kills their processes.

mod kafka;
mod nats;
mod process;
mod registry;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub use kafka::KafkaBroker;
pub use nats::NatsServer;
pub use registry::Registry;

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
