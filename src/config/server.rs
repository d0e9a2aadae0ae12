//! `[server]`: the HTTP listener, request limits, deadlines and the process's timings.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::section::ConfigIssue;

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address to listen on, `host:port`. Port 0 picks a free port (tests).
    pub listen: String,
    /// actix-web worker threads; defaults to the number of CPUs.
    pub workers: Option<usize>,
    /// Largest accepted request body in bytes; larger bodies get 413. Sources may lower or raise it.
    pub body_limit_bytes: usize,
    /// How long to wait for the broker's acknowledgement before answering 503.
    /// Well under Cronofy's 5 s and SNS's 15 s response deadlines.
    pub publish_timeout_ms: u64,
    /// Value of the `Retry-After` header on 503 answers, in seconds.
    pub retry_after_seconds: u32,
    /// How often each publisher's health check runs (feeds `/readyz`).
    pub health_interval_ms: u64,
    /// `text` for people, `json` for log pipelines.
    pub log_format: LogFormat,
    /// Most webhook requests handled at once; past it, 503 with `Retry-After` at once (no queue).
    pub max_in_flight: usize,
    /// After SIGTERM, how long to answer `/readyz` with 503 before refusing connections, so load
    /// balancers stop sending first (Kubernetes endpoints take a few seconds to update).
    pub shutdown_delay_ms: u64,
    /// After that, how long in-flight requests get to finish before the process exits anyway.
    pub shutdown_grace_secs: u64,
    /// How often to look for a changed config file or `file:` secret (0: only on SIGHUP).
    pub reload_interval_ms: u64,
    /// Time a client has to send a request's line and headers (slowloris); 408 and close after.
    pub request_head_timeout_ms: u64,
    /// Time a client has to send a request's whole body once its headers are in; 408 after.
    pub body_timeout_ms: u64,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive_secs: u64,
    /// Requests served on one connection before it is closed (`Connection: close`), so no client
    /// holds a connection, and the worker it landed on, forever.
    pub max_requests_per_connection: u32,
    /// Open connections per worker; past it, new connections wait in the listen backlog.
    pub max_connections_per_worker: usize,
    /// Largest header block (names and values) a webhook may carry; 431 past it. The HTTP codec's
    /// own ceiling is 128 KiB; real providers send under 8 KiB.
    pub max_header_bytes: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "0.0.0.0:8080".into(),
            workers: None,
            // With the event's fields and a dead letter's envelope, fits the brokers' defaults.
            body_limit_bytes: 900 * 1024,
            publish_timeout_ms: 2_000,
            retry_after_seconds: 5,
            health_interval_ms: 1_000,
            log_format: LogFormat::Text,
            max_in_flight: 4096,
            shutdown_delay_ms: 0,
            shutdown_grace_secs: 20,
            reload_interval_ms: 2_000,
            request_head_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            keep_alive_secs: 15,
            max_requests_per_connection: 10_000,
            max_connections_per_worker: 10_000,
            max_header_bytes: 32 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub body_limit_bytes: usize,
    pub publish_timeout: Duration,
    pub retry_after_seconds: u32,
    pub health_interval: Duration,
    pub log_format: LogFormat,
    pub max_in_flight: usize,
    pub shutdown_delay: Duration,
    pub shutdown_grace: Duration,
    pub reload_interval: Duration,
    pub request_head_timeout: Duration,
    pub body_timeout: Duration,
    pub keep_alive: Duration,
    pub max_requests_per_connection: u32,
    pub max_connections_per_worker: usize,
    pub max_header_bytes: usize,
}

/// `server.log_format`: `text` for people, `json` for log pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Checks `[server]`. `None` when an issue was recorded.
pub(super) fn validate(raw: &RawServer, issues: &mut Vec<ConfigIssue>) -> Option<ServerConfig> {
    let listen = raw
        .listen
        .parse::<SocketAddr>()
        .map_err(|_| {
            issues.push(ConfigIssue::new(
                "server.listen",
                "expected host:port, such as 0.0.0.0:8080",
            ))
        })
        .ok();
    if raw.body_limit_bytes == 0 {
        issues.push(ConfigIssue::new(
            "server.body_limit_bytes",
            "must be greater than 0",
        ));
    }
    if raw.publish_timeout_ms == 0 || raw.publish_timeout_ms > 60_000 {
        issues.push(ConfigIssue::new(
            "server.publish_timeout_ms",
            "must be between 1 and 60000",
        ));
    }
    // Lower bounds, one row each.
    for (key, value, min) in [
        ("server.health_interval_ms", raw.health_interval_ms, 50),
        ("server.max_in_flight", raw.max_in_flight as u64, 1),
        (
            "server.max_requests_per_connection",
            u64::from(raw.max_requests_per_connection),
            1,
        ),
        ("server.max_header_bytes", raw.max_header_bytes as u64, 1024),
        (
            "server.max_connections_per_worker",
            raw.max_connections_per_worker as u64,
            1,
        ),
    ] {
        if value < min {
            issues.push(ConfigIssue::new(key, format!("must be at least {min}")));
        }
    }
    for (key, value) in [
        (
            "server.request_head_timeout_ms",
            raw.request_head_timeout_ms,
        ),
        ("server.body_timeout_ms", raw.body_timeout_ms),
    ] {
        if value == 0 || value > 300_000 {
            issues.push(ConfigIssue::new(key, "must be between 1 and 300000"));
        }
    }
    if raw.workers == Some(0) {
        issues.push(ConfigIssue::new("server.workers", "must be at least 1"));
    }
    Some(ServerConfig {
        listen: listen?,
        workers: raw
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        body_limit_bytes: raw.body_limit_bytes,
        publish_timeout: Duration::from_millis(raw.publish_timeout_ms),
        retry_after_seconds: raw.retry_after_seconds,
        health_interval: Duration::from_millis(raw.health_interval_ms),
        log_format: raw.log_format,
        max_in_flight: raw.max_in_flight,
        shutdown_delay: Duration::from_millis(raw.shutdown_delay_ms),
        shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
        reload_interval: Duration::from_millis(raw.reload_interval_ms),
        request_head_timeout: Duration::from_millis(raw.request_head_timeout_ms),
        body_timeout: Duration::from_millis(raw.body_timeout_ms),
        keep_alive: Duration::from_secs(raw.keep_alive_secs),
        max_requests_per_connection: raw.max_requests_per_connection,
        max_connections_per_worker: raw.max_connections_per_worker,
        max_header_bytes: raw.max_header_bytes,
    })
}
