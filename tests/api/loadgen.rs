//! `hookbridge-loadgen` against a real gateway and broker: what it reports is what the broker got.

use std::time::Duration;

use hookbridge_loadgen::{self as loadgen, LoadOptions};

use crate::brokers::{KafkaBroker, NatsServer, TempDir};
use crate::helpers::{AppOptions, config_text, spawn_with_config, test_env, unique};

/// A short closed-loop run: every request is accepted, and the consumer reads back exactly the
/// accepted events, none twice, the sampled ones decoding with the schema — through NATS and Kafka.
#[tokio::test]
async fn loadgen_reports_what_the_broker_received() {
    let nats = NatsServer::start();
    let kafka = KafkaBroker::shared();
    for publisher in ["nats", "kafka"] {
        let (stream, prefix) = (unique("L"), unique("l"));
        let text = config_text(
            &AppOptions {
                nats_url: Some(nats.url()),
                kafka_bootstrap: Some(kafka.bootstrap()),
                publisher,
                publish_timeout_ms: 5_000,
                max_in_flight: 256,
                ..Default::default()
            },
            &stream,
            &prefix,
        );
        let app = spawn_with_config(&text, &test_env(), stream, prefix).await;
        let dir = TempDir::new("loadgen");
        let config = dir.path().join("gateway.toml");
        std::fs::write(&config, &text).unwrap();

        let report = loadgen::run(
            LoadOptions {
                config,
                target: app.base.trim_start_matches("http://").parse().unwrap(),
                sources: vec![("cronofy".into(), 1)],
                connections: 4,
                rate: None,
                duration: Duration::from_secs(1),
                warmup: Duration::from_millis(300),
                body_bytes: 1024,
                consume: true,
                drain: Duration::from_secs(10),
            },
            &test_env(),
        )
        .await
        .unwrap();

        assert!(report.ok > 0, "{publisher}: nothing accepted\n{report}");
        assert_eq!(
            report.sent, report.ok,
            "{publisher}: non-2xx answers\n{report}"
        );
        let consumed = report.consumer.as_ref().unwrap();
        assert_eq!(consumed.events, report.ok, "{publisher}\n{report}");
        assert_eq!(consumed.duplicates, 0, "{publisher}\n{report}");
        assert_eq!(consumed.undecodable, 0, "{publisher}\n{report}");
        assert!(
            consumed.decoded > 0,
            "{publisher}: no sample decoded\n{report}"
        );
        assert!(
            consumed.end_to_end.count == consumed.events && consumed.end_to_end.max_us > 0,
            "{publisher}\n{report}"
        );
    }
}
