//! One gateway process of a row: the real binary started on a config file, restarted on its port,
//! `kill -9`ed or terminated; and `hookbridge quarantine` run on a stopped gateway's config.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use super::{DP_CLIENT, DP_KEY};
use crate::helpers::{CRONOFY_SECRET, spawn_binary, wait_for_status};

/// One gateway process.
pub(super) struct Gateway {
    pub(super) child: Child,
    pub(super) base: String,
    pub(super) config: PathBuf,
    pub(super) log: PathBuf,
}

impl Gateway {
    pub(super) async fn start(config: &Path, port: u16, log: &Path) -> Gateway {
        let child = spawn_binary(
            config,
            &[
                ("DP_KEY", DP_KEY),
                ("CRONOFY", CRONOFY_SECRET),
                ("DP_ID", DP_CLIENT.0),
                ("DP_SECRET", DP_CLIENT.1),
            ],
            log,
        );
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_for_status(&http, &format!("{base}/healthz"), 200, Some(log)).await;
        Gateway {
            child,
            base,
            config: config.to_owned(),
            log: log.to_owned(),
        }
    }

    pub(super) async fn restart(&mut self, port: u16) {
        *self = Gateway::start(&self.config, port, &self.log).await;
    }

    pub(super) fn kill9(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }

    /// SIGTERM and wait for the process to end (its shutdown grace is 10 s).
    pub(super) fn terminate(&mut self) {
        let _sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }

    pub(super) async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `hookbridge quarantine --config <config> <args>`: its output, stdout and stderr.
pub(super) fn quarantine_command(config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookbridge"))
        .arg("quarantine")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_clear()
        .envs([
            ("DP_KEY", DP_KEY),
            ("CRONOFY", CRONOFY_SECRET),
            ("DP_ID", DP_CLIENT.0),
            ("DP_SECRET", DP_CLIENT.1),
        ])
        .output()
        .expect("run hookbridge quarantine");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}
