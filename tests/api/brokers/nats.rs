//! NATS: `nats-server -js` as a child process, stopped, restarted, paused and resumed by tests.

use std::process::Child;

use super::process::{binary, kill, signal, spawn_logged, wait_for_port};
use super::{TempDir, free_port};

/// `nats-server -js` with a file store in a temp dir. Its data survives `stop()`/`start()`.
pub struct NatsServer {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// Clients must present this token (`--auth`).
    token: Option<String>,
}

impl NatsServer {
    pub fn start() -> Self {
        Self::start_protected(None)
    }

    /// A server that refuses clients without `token`.
    pub fn start_with_token(token: &str) -> Self {
        Self::start_protected(Some(token.to_owned()))
    }

    fn start_protected(token: Option<String>) -> Self {
        let mut server = NatsServer {
            port: free_port(),
            dir: TempDir::new("nats"),
            child: None,
            token,
        };
        server.restart();
        server
    }

    /// The URL with the token as its user part, how a test's own client authenticates.
    pub fn url_with_token(&self) -> String {
        match &self.token {
            Some(token) => format!("nats://{token}@127.0.0.1:{}", self.port),
            None => self.url(),
        }
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
        let mut args = [
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
            &store.to_string_lossy(),
        ]
        .map(String::from)
        .to_vec();
        if let Some(token) = &self.token {
            args.extend(["--auth".to_owned(), token.clone()]);
        }
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

impl NatsServer {
    /// Freezes the server: connections stay open, nothing is answered.
    pub fn pause(&self) {
        signal(&self.child, "-STOP");
    }

    pub fn resume(&self) {
        signal(&self.child, "-CONT");
    }
}
