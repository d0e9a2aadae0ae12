//! The HTTP surface: unknown sources, size limits, methods, health endpoints, JSON bodies.

use std::time::Duration;

use crate::brokers::NatsServer;
use crate::consumers::read_nats;
use crate::helpers::{AppOptions, CRONOFY_SECRET, cronofy_change, cronofy_sign, spawn_app};

#[tokio::test]
async fn unknown_source_is_404_with_a_json_reason() {
    let nats = NatsServer::start();
    let app = spawn_app(AppOptions {
        nats_url: Some(nats.url()),
        ..Default::default()
    })
    .await;
    let body = cronofy_change("chn_x");

    let response = app
        .post_cronofy(
            "no-such-source",
            &body,
            Some(&cronofy_sign(CRONOFY_SECRET, &body)),
        )
        .await;

    assert_eq!(response.status().as_u16(), 404);
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(reply["code"], "unknown_source");
    assert_eq!(
        app.metric("hookbridge_unknown_source_requests_total", &[]),
        1.0
    );
    let text = app.pipeline.metrics().render().unwrap();
    assert!(
        !text.contains("no-such-source"),
        "an unconfigured name must not become a label"
    );
}

#[tokio::test]
async fn body_over_the_limit_is_413_and_not_published() {
    let nats = NatsServer::start();
    let app = spawn_app(AppOptions {
        nats_url: Some(nats.url()),
        body_limit_bytes: 1024,
        ..Default::default()
    })
    .await;
    let padding = "x".repeat(1024);
    let body = format!("{{\"pad\":\"{padding}\",\"notification\":{{\"type\":\"change\"}}}}");

    let response = app
        .post_cronofy("cronofy", &body, Some(&cronofy_sign(CRONOFY_SECRET, &body)))
        .await;

    assert_eq!(response.status().as_u16(), 413);
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(reply["code"], "payload_too_large");
    assert_eq!(
        app.metric(
            "hookbridge_webhooks_total",
            &[("source", "cronofy"), ("outcome", "too_large")]
        ),
        1.0
    );

    // Just under the limit still passes, so the limit is the configured one and not something smaller.
    let small = cronofy_change("chn_small");
    assert!(small.len() < 1024);
    let ok = app
        .post_cronofy(
            "cronofy",
            &small,
            Some(&cronofy_sign(CRONOFY_SECRET, &small)),
        )
        .await;
    assert_eq!(ok.status().as_u16(), 200);
    let events = read_nats(
        &nats.url(),
        &app.stream,
        &format!("{}.>", app.prefix),
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(events.len(), 1, "only the small webhook is published");
}

#[tokio::test]
async fn webhooks_must_be_posted_and_health_endpoints_answer() {
    let nats = NatsServer::start();
    let app = spawn_app(AppOptions {
        nats_url: Some(nats.url()),
        ..Default::default()
    })
    .await;

    let get = app.get("/webhooks/cronofy").await;
    assert_eq!(get.status().as_u16(), 405);
    let reply: serde_json::Value = get.json().await.unwrap();
    assert_eq!(reply["code"], "method_not_allowed");

    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
    app.wait_ready(200, Duration::from_secs(5)).await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("hookbridge_build_info{version="), "{text}");
    assert!(
        text.contains("hookbridge_publisher_up{broker=\"nats\",publisher=\"nats\"} 1"),
        "{text}"
    );
}
