//! Back-pressure and shutdown: a full gateway answers 503 at once instead of queueing, and SIGTERM
//! drains readiness, finishes in-flight requests and exits cleanly.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::brokers::{NatsServer, TempDir, free_port};
use crate::helpers::{
    AppOptions, CRONOFY_SECRET, cronofy_change, cronofy_sign, spawn_app, spawn_binary,
    wait_for_status,
};

/// With room for one request, a second arriving while the first waits on a dead broker is refused
/// immediately with 503, `Retry-After` and the `overloaded` code, and counted.
#[tokio::test]
async fn requests_past_the_in_flight_limit_get_503_at_once() {
    let mut nats = NatsServer::start();
    let app = spawn_app(AppOptions {
        nats_url: Some(nats.url()),
        publish_timeout_ms: 2_000,
        max_in_flight: 1,
        ..Default::default()
    })
    .await;
    app.wait_ready(200, Duration::from_secs(5)).await;
    nats.stop();
    let body = cronofy_change("chn_slow");
    let signature = cronofy_sign(CRONOFY_SECRET, &body);
    let first = app.post_cronofy("cronofy", &body, Some(&signature));
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let response = app.post_cronofy("cronofy", &body, Some(&signature)).await;
        (response, started.elapsed())
    };
    let (first, (second, second_took)) = tokio::join!(first, second);

    assert_eq!(
        first.status().as_u16(),
        503,
        "the first waited for the broker's deadline"
    );
    assert_eq!(second.status().as_u16(), 503);
    assert!(second.headers().contains_key("retry-after"));
    let reply: serde_json::Value = second.json().await.unwrap();
    assert_eq!(reply["code"], "overloaded");
    assert!(
        second_took < Duration::from_millis(1_000),
        "refused at once, not queued: {second_took:?}"
    );
    assert_eq!(
        app.metric(
            "hookbridge_webhooks_total",
            &[("source", "cronofy"), ("outcome", "overloaded")]
        ),
        1.0
    );
}

/// SIGTERM on the real binary: `/readyz` turns 503 during the shutdown delay, a request already in
/// flight still gets its complete answer, and the process exits 0 within the grace period.
#[tokio::test]
async fn sigterm_drains_readiness_finishes_in_flight_and_exits_zero() {
    let mut nats = NatsServer::start();
    let dir = TempDir::new("shutdown");
    let port = free_port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublish_timeout_ms = 1500\nshutdown_delay_ms = 1000\nshutdown_grace_secs = 10\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{}\"\n\n\
         [sources.cronofy]\nprovider = \"cronofy\"\npublisher = \"nats\"\n[sources.cronofy.verify]\nclient_secrets = [\"env:CRONOFY\"]\n",
        nats.url()
    );
    let path = dir.path().join("hookbridge.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("log");
    let mut child = spawn_binary(&path, &[("CRONOFY", CRONOFY_SECRET)], &log);
    hookbridge::startup::install_crypto_provider();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_for_status(&http, &format!("{base}/readyz"), 200, Some(&log)).await;
    // A request that will take the whole publish deadline: the broker is gone.
    nats.stop();
    let body = cronofy_change("chn_in_flight_at_shutdown");
    let in_flight = http
        .post(format!("{base}/webhooks/cronofy"))
        .header("Cronofy-HMAC-SHA256", cronofy_sign(CRONOFY_SECRET, &body))
        .body(body.clone())
        .send();
    let terminate = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::sleep(Duration::from_millis(300)).await;
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok()
    };
    let (response, readiness_after_sigterm) = tokio::join!(in_flight, terminate);

    assert_eq!(
        readiness_after_sigterm,
        Some(503),
        "unready during the shutdown delay"
    );
    let response = response.expect("the in-flight request gets a complete answer");
    assert_eq!(response.status().as_u16(), 503);
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(reply["code"], "publish_timeout");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "did not exit within the grace period"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

/// The disk dedup store makes its commits durable once a second; a clean stop makes the rest
/// durable too. A webhook published just before SIGTERM is still known after the restart: its
/// resend is answered `duplicate` and the stream holds one event.
#[tokio::test]
async fn a_clean_stop_keeps_the_disk_stores_last_keys() {
    let nats = NatsServer::start();
    let dir = TempDir::new("disk-stop");
    let port = free_port();
    let stream = crate::helpers::unique("DISKSTOP");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublish_timeout_ms = 2000\n\n\
         [dedup]\nstore = \"disk\"\npath = \"{}\"\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{}\"\nstream = \"{stream}\"\nsubjects = [\"{stream}.>\"]\n\n\
         [sources.cronofy]\nprovider = \"cronofy\"\npublisher = \"nats\"\ntopic = \"{stream}.{{type}}\"\n\
         [sources.cronofy.verify]\nclient_secrets = [\"env:CRONOFY\"]\n",
        dir.path().join("dedup").display(),
        nats.url()
    );
    let path = dir.path().join("hookbridge.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("log");
    hookbridge::startup::install_crypto_provider();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let body = cronofy_change("chn_known_after_a_clean_stop");
    let send = || {
        http.post(format!("{base}/webhooks/cronofy"))
            .header("Cronofy-HMAC-SHA256", cronofy_sign(CRONOFY_SECRET, &body))
            .body(body.clone())
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let mut child = spawn_binary(&path, &[("CRONOFY", CRONOFY_SECRET)], &log);
        wait_for_status(&http, &format!("{base}/readyz"), 200, Some(&log)).await;
        let reply: serde_json::Value = send().await.unwrap().json().await.unwrap();
        statuses.push(reply["status"].as_str().unwrap_or_default().to_owned());
        // At once: well inside the store's one-second flush interval.
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "exit status {status}");
    }
    let events = crate::consumers::read_nats(
        &nats.url(),
        &stream,
        &format!("{stream}.calendar.changed"),
        1,
        Duration::from_secs(5),
    )
    .await;
    println!(
        "disk dedup across a clean stop: sent 2, answers {statuses:?}, consumed {}",
        events.len()
    );
    assert_eq!(statuses, ["published", "duplicate"]);
    assert_eq!(events.len(), 1, "one event across the restart");
}
