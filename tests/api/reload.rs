//! Secret rotation without a restart, on the real binary: a `file:` secret rewritten on disk is
//! picked up, a broken config is refused (counted) while the running one keeps working, and SIGHUP
//! reloads at once.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::brokers::{NatsServer, TempDir, free_port};
use crate::helpers::{
    cronofy_change, cronofy_sign, metric_value, spawn_binary, unique, wait_for_status,
};

struct Gateway {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

fn write_atomically(path: &std::path::Path, content: &str) {
    // Like Kubernetes' atomic writer: a new file renamed over the old one.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config_text(port: u16, nats: &str, secret_file: &std::path::Path, reload_ms: u64) -> String {
    let prefix = unique("rl");
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nreload_interval_ms = {reload_ms}\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{nats}\"\nstream = \"{}\"\nsubjects = [\"{prefix}.>\"]\n\n\
         [sources.cronofy]\nprovider = \"cronofy\"\npublisher = \"nats\"\ntopic = \"{prefix}.{{provider}}.{{type}}\"\n\
         [sources.cronofy.verify]\nclient_secrets = [\"file:{}\"]\n",
        unique("RL"),
        secret_file.display()
    )
}

async fn start(dir: &TempDir, config: &str, port: u16) -> Gateway {
    let path = dir.path().join("hookbridge.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("log");
    let child = spawn_binary(&path, &[], &log);
    hookbridge::startup::install_crypto_provider();
    let gateway = Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    wait_for_status(
        &gateway.http,
        &format!("{}/readyz", gateway.base),
        200,
        Some(&log),
    )
    .await;
    gateway
}

impl Gateway {
    /// Status of a fresh webhook signed with `secret`.
    async fn send(&self, secret: &str) -> u16 {
        let body = cronofy_change(&unique("chn_"));
        self.http
            .post(format!("{}/webhooks/cronofy", self.base))
            .header("Cronofy-HMAC-SHA256", cronofy_sign(secret, &body))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn reloads(&self, outcome: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric_value(
            &text,
            "hookbridge_config_reloads_total",
            &[("outcome", outcome)],
        )
    }

    async fn wait_status(&self, secret: &str, status: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.send(secret).await == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "a webhook signed with the secret never got {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_secret_rotated_on_disk_is_picked_up_without_a_restart() {
    let nats = NatsServer::start();
    let dir = TempDir::new("reload");
    let secret = dir.path().join("cronofy-secret");
    std::fs::write(&secret, "old-secret\n").unwrap();
    let port = free_port();
    let config = config_text(port, &nats.url(), &secret, 200);
    let gw = start(&dir, &config, port).await;
    assert_eq!(gw.send("old-secret").await, 200);
    assert_eq!(gw.send("new-secret").await, 401);

    write_atomically(&secret, "new-secret\n");
    gw.wait_status("new-secret", 200).await;
    assert_eq!(
        gw.send("old-secret").await,
        401,
        "the retired secret no longer verifies"
    );
    assert!(gw.reloads("success").await >= 1.0);

    // A broken config is refused and counted; the running one keeps serving.
    write_atomically(
        &dir.path().join("hookbridge.toml"),
        "[server\nthis is not toml",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.reloads("failure").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the failed reload was not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gw.send("new-secret").await, 200, "the old config is kept");
}

#[tokio::test]
async fn sighup_reloads_at_once() {
    let nats = NatsServer::start();
    let dir = TempDir::new("sighup");
    let secret = dir.path().join("cronofy-secret");
    std::fs::write(&secret, "first").unwrap();
    let port = free_port();
    // Polling off: only SIGHUP can make the change visible.
    let gw = start(&dir, &config_text(port, &nats.url(), &secret, 0), port).await;
    write_atomically(&secret, "second");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        gw.send("second").await,
        401,
        "not picked up without a signal"
    );
    let status = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    gw.wait_status("second", 200).await;
    assert_eq!(gw.reloads("success").await, 1.0);
}

/// A change only a restart can apply (`[server]` here) is not a success: it is counted as
/// `restart_required`, while what can be applied (the rotated secret) is.
#[tokio::test]
async fn a_change_that_needs_a_restart_is_counted_as_such() {
    let nats = NatsServer::start();
    let dir = TempDir::new("reload-restart");
    let secret = dir.path().join("cronofy-secret");
    std::fs::write(&secret, "old-secret\n").unwrap();
    let port = free_port();
    let config = config_text(port, &nats.url(), &secret, 200);
    let gw = start(&dir, &config, port).await;
    assert_eq!(gw.send("old-secret").await, 200);

    write_atomically(&secret, "new-secret\n");
    write_atomically(
        &dir.path().join("hookbridge.toml"),
        &config.replacen("[server]\n", "[server]\npublish_timeout_ms = 4321\n", 1),
    );
    gw.wait_status("new-secret", 200).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.reloads("restart_required").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "restart_required was not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gw.reloads("success").await, 0.0, "not counted as a success");
    assert_eq!(gw.reloads("failure").await, 0.0);
}
