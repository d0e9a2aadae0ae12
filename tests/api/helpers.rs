//! `spawn_app()`: the real gateway, built through `Application::build` like `serve`, on port 0,
//! with a unique stream, subject and topic prefix per test so tests can share nothing and run in
//! parallel.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use hookbridge::config::{Config, load_str};
use hookbridge::pipeline::Pipeline;
use hookbridge::startup::Application;

pub const CRONOFY_SECRET: &str = "pDY0Oi7TJSP2hfNmZNkm5";
pub const CRONOFY_OLD_SECRET: &str = "CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this test: `t<pid>x<n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a test wants of the gateway; everything else is the default below.
pub struct AppOptions {
    pub nats_url: Option<String>,
    pub kafka_bootstrap: Option<String>,
    /// Which publisher the `cronofy` source uses: `nats` or `kafka`.
    pub publisher: &'static str,
    pub publish_timeout_ms: u64,
    pub body_limit_bytes: usize,
    /// `(nats url, bucket)`: use the shared NATS key-value dedup store instead of memory.
    pub dedup_nats: Option<(String, String)>,
    /// Kafka topic prefix shared between apps (two replicas); unique when None.
    pub prefix: Option<String>,
    /// NATS stream name shared between apps (two replicas); unique when None.
    pub stream: Option<String>,
    pub max_in_flight: usize,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            nats_url: None,
            kafka_bootstrap: None,
            publisher: "nats",
            publish_timeout_ms: 1_500,
            body_limit_bytes: 900 * 1024,
            dedup_nats: None,
            prefix: None,
            stream: None,
            max_in_flight: 64,
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub pipeline: Arc<Pipeline>,
    /// Unique per test: NATS stream name and subject/topic prefix.
    pub stream: String,
    pub prefix: String,
    handle: ServerHandle,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Where a Cronofy `change` lands with this app's template.
    pub fn cronofy_topic(&self, event_type: &str) -> String {
        format!("{}.cronofy.{event_type}", self.prefix)
    }

    pub async fn post_cronofy(
        &self,
        source: &str,
        body: &str,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url(&format!("/webhooks/{source}")))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_owned());
        if let Some(sig) = signature {
            request = request.header("Cronofy-HMAC-SHA256", sig);
        }
        request.send().await.expect("request reaches the gateway")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request reaches the gateway")
    }

    /// The current value of one metric series, from this app's own registry.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.pipeline.metrics().render().expect("render metrics");
        metric_value(&text, name, labels)
    }

    /// Waits until `/readyz` answers `status`, up to `wait`.
    pub async fn wait_ready(&self, status: u16, wait: Duration) {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let got = self.get("/readyz").await.status().as_u16();
            if got == status {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/readyz stayed {got}, expected {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Not awaited: the runtime of a finished test is going away anyway.
        drop(tokio::spawn(async move { handle.stop(false).await }));
    }
}

/// Reads one sample out of Prometheus text format: `name{a="b",...} value`. 0 when absent.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some(parts) => parts,
            None => continue,
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let all = labels.iter().all(|(k, v)| {
            series_labels
                .split(',')
                .any(|kv| kv == format!("{k}=\"{v}\""))
        });
        if all {
            return value.parse().unwrap_or(0.0);
        }
    }
    0.0
}

pub fn config_text(options: &AppOptions, stream: &str, prefix: &str) -> String {
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
workers = 1
publish_timeout_ms = {timeout}
health_interval_ms = 100
retry_after_seconds = 7
body_limit_bytes = {limit}
max_in_flight = {max_in_flight}

[sources.cronofy]
provider = "cronofy"
publisher = "{publisher}"
topic = "{prefix}.{{provider}}.{{type}}"
dead_letter_topic = "{prefix}.dead_letter.{{source}}"
[sources.cronofy.verify]
client_secrets = ["env:TEST_CRONOFY_SECRET", "env:TEST_CRONOFY_OLD_SECRET"]
"#,
        timeout = options.publish_timeout_ms,
        limit = options.body_limit_bytes,
        max_in_flight = options.max_in_flight,
        publisher = options.publisher,
    );
    if let Some(url) = &options.nats_url {
        text.push_str(&format!(
            "\n[publishers.nats]\nkind = \"nats\"\nurl = \"{url}\"\nstream = \"{stream}\"\nsubjects = [\"{prefix}.>\"]\n"
        ));
    }
    if let Some((url, bucket)) = &options.dedup_nats {
        text.push_str(&format!(
            "\n[dedup]\nstore = \"nats\"\nurl = \"{url}\"\nbucket = \"{bucket}\"\n"
        ));
    }
    if let Some(bootstrap) = &options.kafka_bootstrap {
        text.push_str(&format!(
            "\n[publishers.kafka]\nkind = \"kafka\"\nbootstrap_servers = \"{bootstrap}\"\ntopic_partitions = 2\n"
        ));
    }
    text
}

pub fn test_env() -> HashMap<String, String> {
    HashMap::from([
        ("TEST_CRONOFY_SECRET".to_owned(), CRONOFY_SECRET.to_owned()),
        (
            "TEST_CRONOFY_OLD_SECRET".to_owned(),
            CRONOFY_OLD_SECRET.to_owned(),
        ),
    ])
}

pub async fn spawn_app(options: AppOptions) -> TestApp {
    let stream = options.stream.clone().unwrap_or_else(|| unique("S"));
    let prefix = options.prefix.clone().unwrap_or_else(|| unique("t"));
    let text = config_text(&options, &stream, &prefix);
    spawn_with_config(&text, &test_env(), stream, prefix).await
}

/// Starts the gateway from a complete config text; `stream` and `prefix` are the names the config
/// uses, kept on the `TestApp` for consumers.
pub async fn spawn_with_config(
    text: &str,
    env: &HashMap<String, String>,
    stream: String,
    prefix: String,
) -> TestApp {
    // RUST_LOG=debug cargo test ... shows the gateway's logs next to a failing test's output.
    if std::env::var_os("RUST_LOG").is_some() {
        hookbridge::telemetry::init(hookbridge::config::LogFormat::Text);
    }
    let env = env.clone();
    let raw = load_str(text, &env).expect("test config loads");
    let config = Config::validate(raw, &env)
        .unwrap_or_else(|issues| panic!("test config invalid: {issues:?}"));
    let app = Application::build(config).await.expect("gateway starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let pipeline = app.pipeline().clone();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client"),
        pipeline,
        stream,
        prefix,
        handle,
    }
}

/// A Cronofy `change` notification for a channel; distinct channels give distinct dedup keys.
pub fn cronofy_change(channel: &str) -> String {
    format!(
        r#"{{"notification":{{"type":"change","changes_since":"2024-10-14T09:24:16Z"}},"channel":{{"channel_id":"{channel}","callback_url":"https://example.com/cronofy","filters":{{"calendar_ids":["cal_n23kjnwrw2_sakdnawerd3"]}}}}}}"#
    )
}

/// The `Cronofy-HMAC-SHA256` value for `body` under `secret`, computed here independently of the
/// gateway's own signer (whose output the unit tests pin to Cronofy's published vectors).
pub fn cronofy_sign(secret: &str, body: &str) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("any key length");
    mac.update(body.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Starts the real binary, `hookbridge serve --config <config>`, with only `env` in its environment
/// and its output appended to `log` (never an inherited pipe).
pub fn spawn_binary(
    config: &std::path::Path,
    env: &[(&str, &str)],
    log: &std::path::Path,
) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the log");
    std::process::Command::new(env!("CARGO_BIN_EXE_hookbridge"))
        .args(["serve", "--config"])
        .arg(config)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .spawn()
        .expect("start hookbridge")
}

/// Polls `url` until it answers `status`, for up to 20 s; the panic shows `log` if given.
pub async fn wait_for_status(
    http: &reqwest::Client,
    url: &str,
    status: u16,
    log: Option<&std::path::Path>,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while http.get(url).send().await.map(|r| r.status().as_u16()).ok() != Some(status) {
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never answered {status}; log:\n{}",
            log.and_then(|l| std::fs::read_to_string(l).ok())
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
