//! Delivery guarantees with real brokers: a provider's retries are published once, and so is one
//! webhook received by two replicas sharing a dedup store. Each test prints what was sent, what
//! was answered 2xx and what a real consumer read back.

use std::time::Duration;

use crate::brokers::{KafkaBroker, NatsServer};
use crate::consumers::{read_kafka, read_nats};
use crate::helpers::{
    AppOptions, CRONOFY_SECRET, TestApp, cronofy_change, cronofy_sign, spawn_app, unique,
};

const WAIT: Duration = Duration::from_secs(10);

/// Sends `body` `times` times; returns the reply statuses (`published`, `duplicate`, ...).
async fn send_times(app: &TestApp, body: &str, times: usize) -> Vec<String> {
    let mut statuses = Vec::new();
    for _ in 0..times {
        let response = app
            .post_cronofy("cronofy", body, Some(&cronofy_sign(CRONOFY_SECRET, body)))
            .await;
        assert_eq!(
            response.status().as_u16(),
            200,
            "every delivery of an accepted event is answered 2xx"
        );
        let reply: serde_json::Value = response.json().await.unwrap();
        statuses.push(reply["status"].as_str().unwrap_or_default().to_owned());
    }
    statuses
}

/// SNS and Cronofy resend what they think failed: two and three deliveries of one notification
/// become one event on Kafka and on NATS, and the repeats are answered 2xx and counted.
#[tokio::test]
async fn retried_webhooks_are_published_once_on_kafka_and_nats() {
    let kafka = KafkaBroker::shared();
    let nats = NatsServer::start();
    for (broker, times) in [("kafka", 3), ("nats", 2)] {
        let app = spawn_app(AppOptions {
            nats_url: Some(nats.url()),
            kafka_bootstrap: Some(kafka.bootstrap()),
            publisher: broker,
            publish_timeout_ms: 5_000,
            ..Default::default()
        })
        .await;
        let body = cronofy_change(&format!("chn_retry_{broker}"));
        let statuses = send_times(&app, &body, times).await;
        let topic = app.cronofy_topic("calendar.changed");
        let events = match broker {
            "kafka" => read_kafka(&kafka.bootstrap(), &topic, 1, WAIT).await,
            _ => read_nats(&nats.url(), &app.stream, &topic, 1, WAIT).await,
        };
        println!(
            "{broker}: sent {times}, answered 2xx {}, consumed {}",
            statuses.len(),
            events.len()
        );
        assert_eq!(statuses[0], "published");
        assert!(
            statuses[1..].iter().all(|s| s == "duplicate"),
            "{statuses:?}"
        );
        assert_eq!(events.len(), 1, "one event per dedup key on {broker}");
        let hits = app.metric("hookbridge_dedup_hits_total", &[("source", "cronofy")]);
        assert_eq!(hits as usize, times - 1);
        assert_eq!(
            app.metric(
                "hookbridge_webhooks_total",
                &[("source", "cronofy"), ("outcome", "duplicate")]
            ) as usize,
            times - 1
        );
    }
}

/// Two replicas behind one Service share the NATS key-value dedup store: the same webhook
/// delivered to each (a retry landing on the other pod) reaches the broker once. On Kafka nothing
/// else could hide a broken store; on NATS the answers prove the store decided, not JetStream.
#[tokio::test]
async fn two_instances_sharing_a_dedup_store_publish_once() {
    for broker in ["kafka", "nats"] {
        let kafka = KafkaBroker::shared();
        let nats = NatsServer::start();
        let bucket = unique("dedup");
        let prefix = unique("t");
        let stream = unique("S2");
        let replica = || AppOptions {
            nats_url: Some(nats.url()),
            kafka_bootstrap: Some(kafka.bootstrap()),
            publisher: if broker == "kafka" { "kafka" } else { "nats" },
            publish_timeout_ms: 5_000,
            dedup_nats: Some((nats.url(), bucket.clone())),
            prefix: Some(prefix.clone()),
            stream: Some(stream.clone()),
            ..Default::default()
        };
        let a = spawn_app(replica()).await;
        let b = spawn_app(replica()).await;
        let body = cronofy_change("chn_two_replicas");

        let first = send_times(&a, &body, 1).await;
        let second = send_times(&b, &body, 1).await;
        let third = send_times(&a, &body, 1).await;

        let topic = a.cronofy_topic("calendar.changed");
        let events = match broker {
            "kafka" => read_kafka(&kafka.bootstrap(), &topic, 1, WAIT).await,
            _ => read_nats(&nats.url(), &stream, &topic, 1, WAIT).await,
        };
        println!(
            "two replicas ({broker}): sent 3, answered 2xx 3, consumed {}",
            events.len()
        );
        assert_eq!(
            (first[0].as_str(), second[0].as_str(), third[0].as_str()),
            ("published", "duplicate", "duplicate"),
            "{broker}"
        );
        assert_eq!(events.len(), 1);
        assert_eq!(
            b.metric("hookbridge_dedup_hits_total", &[("source", "cronofy")]),
            1.0
        );
    }
}

/// A failed publish releases the key: the provider's retry after the outage is published, not
/// mistaken for a duplicate.
#[tokio::test]
async fn a_retry_after_a_failed_publish_is_published() {
    let mut nats = NatsServer::start();
    let app = spawn_app(AppOptions {
        nats_url: Some(nats.url()),
        publish_timeout_ms: 700,
        ..Default::default()
    })
    .await;
    app.wait_ready(200, Duration::from_secs(5)).await;
    let body = cronofy_change("chn_retry_after_outage");
    nats.stop();
    let response = app
        .post_cronofy("cronofy", &body, Some(&cronofy_sign(CRONOFY_SECRET, &body)))
        .await;
    assert_eq!(response.status().as_u16(), 503);
    nats.restart();
    app.wait_ready(200, Duration::from_secs(15)).await;
    let statuses = send_times(&app, &body, 1).await;
    assert_eq!(statuses, ["published"]);
    let events = read_nats(
        &nats.url(),
        &app.stream,
        &app.cronofy_topic("calendar.changed"),
        1,
        WAIT,
    )
    .await;
    let ours = events
        .iter()
        .filter(|e| e.string("subject") == "chn_retry_after_outage")
        .count();
    assert_eq!(ours, 1, "published exactly once");
}

/// Two sources sharing a stream may carry the same provider id (here two Stripe accounts, whose
/// ids come from the signed body): each is its own event, so each is published, and JetStream's
/// duplicate window, keyed by the source-scoped `Nats-Msg-Id`, does not swallow the second.
#[tokio::test]
async fn two_sources_sharing_a_stream_do_not_suppress_each_other() {
    use hmac::{KeyInit, Mac};
    let nats = NatsServer::start();
    let (stream, prefix) = (unique("SH"), unique("sh"));
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{}\"\nstream = \"{stream}\"\nsubjects = [\"{prefix}.>\"]\n",
        nats.url()
    );
    for source in ["app-a", "app-b"] {
        text.push_str(&format!(
            "\n[sources.{source}]\nprovider = \"stripe\"\npublisher = \"nats\"\n\
             topic = \"{prefix}.shared.{{type}}\"\n[sources.{source}.verify]\n\
             secrets = [\"env:TEST_CRONOFY_SECRET\"]\n"
        ));
    }
    let app = crate::helpers::spawn_with_config(
        &text,
        &crate::helpers::test_env(),
        stream.clone(),
        prefix.clone(),
    )
    .await;
    let body =
        r#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","type":"invoice.paid","created":1686089970}"#;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(CRONOFY_SECRET.as_bytes())
        .expect("any key length");
    mac.update(format!("{now}.{body}").as_bytes());
    let signature = format!("t={now},v1={}", hex::encode(mac.finalize().into_bytes()));
    for source in ["app-a", "app-b"] {
        let response = app
            .http
            .post(app.url(&format!("/webhooks/{source}")))
            .header("content-type", "application/json")
            .header("Stripe-Signature", &signature)
            .body(body)
            .send()
            .await
            .unwrap();
        let reply: serde_json::Value = response.json().await.unwrap();
        assert_eq!(reply["status"], "published", "{source}: {reply}");
    }
    let events = read_nats(&nats.url(), &stream, &format!("{prefix}.>"), 2, WAIT).await;
    let mut ids: Vec<&str> = events.iter().map(|e| e.header("Nats-Msg-Id")).collect();
    ids.sort_unstable();
    println!(
        "shared stream: sent 2 (one per source), consumed {}",
        events.len()
    );
    assert_eq!(events.len(), 2, "one event per source: {ids:?}");
    assert_eq!(
        ids,
        [
            "app-a/evt_1NG8Du2eZvKYlo2CUI79vXWy",
            "app-b/evt_1NG8Du2eZvKYlo2CUI79vXWy"
        ],
        "the same provider id, scoped by source"
    );
}

/// The shared key-value store holds a key only for its source's window: each entry carries a
/// per-message TTL, so the bucket empties itself (it no longer keeps every key for `max_age`), and
/// the bucket's bytes are exported.
#[tokio::test]
async fn nats_dedup_keys_expire_with_their_sources_window() {
    let nats = NatsServer::start();
    let bucket = unique("ttl");
    let (stream, prefix) = (unique("TT"), unique("tt"));
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nhealth_interval_ms = 200\n\n\
         [dedup]\nstore = \"nats\"\nurl = \"{url}\"\nbucket = \"{bucket}\"\nmax_bytes = 8388608\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{url}\"\nstream = \"{stream}\"\nsubjects = [\"{prefix}.>\"]\n\n\
         [sources.cronofy]\nprovider = \"cronofy\"\npublisher = \"nats\"\ntopic = \"{prefix}.{{provider}}.{{type}}\"\n\
         dedup_window_secs = 4\n[sources.cronofy.verify]\nclient_secrets = [\"env:TEST_CRONOFY_SECRET\"]\n",
        url = nats.url()
    );
    let app =
        crate::helpers::spawn_with_config(&text, &crate::helpers::test_env(), stream, prefix).await;
    let body = cronofy_change("chn_ttl");
    assert_eq!(send_times(&app, &body, 2).await, ["published", "duplicate"]);

    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut kv_stream = js.get_stream(format!("KV_{bucket}")).await.unwrap();
    let info = kv_stream.info().await.unwrap();
    assert_eq!(
        info.state.messages, 1,
        "the key is held while its window runs"
    );
    assert!(
        info.config.allow_message_ttl,
        "the bucket takes per-key TTLs"
    );
    assert_eq!(info.config.max_bytes, 8_388_608, "and is bounded in bytes");
    let exported = std::time::Instant::now() + Duration::from_secs(3);
    while app.metric("hookbridge_dedup_keys", &[("store", "nats")]) < 1.0 {
        assert!(
            std::time::Instant::now() < exported,
            "the bucket's keys are exported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(app.metric("hookbridge_dedup_bytes", &[("store", "nats")]) > 0.0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held = kv_stream.info().await.unwrap().state.messages;
        if held == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the key outlived its window"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        send_times(&app, &body, 1).await,
        ["published"],
        "after its window a resend is a new event"
    );
}

/// The attack from one signed GitHub delivery, on Kafka with `create_topics`: replayed with fresh
/// delivery ids it is one event; with invented event names it lands on `github.other`; and the
/// topics a publisher creates are bounded (`max_created_topics`) and counted, so even GitHub's
/// own names cannot grow topics without end: past the bound the event is dead-lettered.
#[tokio::test]
async fn a_replayed_signed_body_is_one_event_and_topic_creation_is_bounded() {
    use hmac::{KeyInit, Mac};
    let kafka = KafkaBroker::shared();
    let prefix = unique("gh");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\npublish_timeout_ms = 5000\n\n\
         [publishers.kafka]\nkind = \"kafka\"\nbootstrap_servers = \"{}\"\ntopic_partitions = 1\nmax_created_topics = 2\n\n\
         [sources.github]\nprovider = \"github\"\npublisher = \"kafka\"\ntopic = \"{prefix}.{{provider}}.{{type}}\"\n\
         dead_letter_topic = \"{prefix}.dead_letter.{{source}}\"\n\
         [sources.github.verify]\nsecrets = [\"env:TEST_CRONOFY_SECRET\"]\n",
        kafka.bootstrap()
    );
    let app = crate::helpers::spawn_with_config(
        &text,
        &crate::helpers::test_env(),
        unique("GH"),
        prefix.clone(),
    )
    .await;
    let send = |event: &'static str, delivery: String, body: &'static str| {
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(CRONOFY_SECRET.as_bytes())
                .expect("any key length");
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let request = app
            .http
            .post(app.url("/webhooks/github"))
            .header("content-type", "application/json")
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", signature)
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let reply: serde_json::Value = response.json().await.unwrap();
            reply["status"].as_str().unwrap_or_default().to_owned()
        }
    };
    let push = r#"{"ref":"refs/heads/main","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246"}"#;
    let mut statuses = Vec::new();
    for n in 0..5 {
        statuses.push(send("push", format!("delivery-{n}"), push).await);
    }
    assert_eq!(
        statuses,
        [
            "published",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    for n in 0..5 {
        let invented = ["a1", "a2", "a3", "a4", "a5"][n];
        let body: &'static str = [
            r#"{"n":1}"#,
            r#"{"n":2}"#,
            r#"{"n":3}"#,
            r#"{"n":4}"#,
            r#"{"n":5}"#,
        ][n];
        assert_eq!(
            send(invented, format!("other-{n}"), body).await,
            "published"
        );
    }
    // A third event topic is over the bound of two: refused for good, so dead-lettered.
    assert_eq!(
        send("star", "star-1".into(), r#"{"action":"created"}"#).await,
        "dead_lettered"
    );
    let pushes = read_kafka(
        &kafka.bootstrap(),
        &format!("{prefix}.github.push"),
        1,
        WAIT,
    )
    .await;
    let others = read_kafka(
        &kafka.bootstrap(),
        &format!("{prefix}.github.github.other"),
        5,
        WAIT,
    )
    .await;
    println!(
        "replay: sent 5 pushes (fresh delivery ids) + 5 invented types + 1 over the bound; consumed {} push, {} other",
        pushes.len(),
        others.len()
    );
    assert_eq!(pushes.len(), 1, "one event for one signed body");
    assert_eq!(others.len(), 5, "invented names all land on github.other");
    assert_eq!(
        app.metric("hookbridge_topics_created_total", &[("publisher", "kafka")]),
        3.0,
        "two event topics and the dead-letter topic"
    );
}
