//! Dead letters and redrive: a webhook that a (mis)configured mapping cannot map is kept on the
//! dead-letter topic; after the mapping is fixed, `hookbridge redrive` publishes it, once.

use std::process::Command;
use std::time::Duration;

use crate::brokers::{KafkaBroker, NatsServer, TempDir};
use crate::consumers::{read_kafka, read_nats, read_raw_nats};
use crate::helpers::{spawn_with_config, unique};

const TOKEN: &str = "acme-token-5521";

fn config(
    nats: &str,
    kafka: &str,
    publisher: &str,
    stream: &str,
    prefix: &str,
    type_pointer: &str,
) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\npublish_timeout_ms = 5000\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{nats}\"\nstream = \"{stream}\"\nsubjects = [\"{prefix}.>\"]\n\n\
         [publishers.kafka]\nkind = \"kafka\"\nbootstrap_servers = \"{kafka}\"\ntopic_partitions = 1\n\n\
         [sources.acme]\nprovider = \"generic\"\npublisher = \"{publisher}\"\ntopic = \"{prefix}.{{source}}.{{type}}\"\n\
         dead_letter_topic = \"{prefix}.dead_letter.{{source}}\"\n\
         [sources.acme.verify]\nscheme = \"token\"\nheader = \"X-Acme-Token\"\nsecrets = [\"env:ACME\"]\n\
         type_pointer = \"{type_pointer}\"\nid_pointer = \"/id\"\n"
    )
}

fn redrive(config_path: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookbridge"))
        .args([
            "redrive",
            "--source",
            "acme",
            "--idle-ms",
            "700",
            "--config",
        ])
        .arg(config_path)
        .env_clear()
        .env("ACME", TOKEN)
        .output()
        .expect("run hookbridge redrive");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn a_dead_letter_is_redriven_once_after_the_mapping_is_fixed() {
    for broker in ["nats", "kafka"] {
        redriven_once(broker).await;
    }
}

async fn redriven_once(broker: &str) {
    let nats = NatsServer::start();
    let kafka = KafkaBroker::shared();
    let (stream, prefix) = (unique("DL"), unique("dl"));
    let env = std::collections::HashMap::from([("ACME".to_owned(), TOKEN.to_owned())]);
    let config = |pointer: &str| {
        config(
            &nats.url(),
            &kafka.bootstrap(),
            broker,
            &stream,
            &prefix,
            pointer,
        )
    };
    // The operator points type_pointer at the wrong field: nothing can be mapped.
    let app = spawn_with_config(&config("/kind"), &env, stream.clone(), prefix.clone()).await;
    let body = r#"{"id":"evt_42","type":"invoice.paid","amount":1200}"#;
    let response = app
        .http
        .post(app.url("/webhooks/acme"))
        .header("X-Acme-Token", TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let dl_topic = format!("{prefix}.dead_letter.acme");
    let letters: Vec<Vec<u8>> = match broker {
        "nats" => read_raw_nats(&nats.url(), &stream, &dl_topic, 1, Duration::from_secs(10))
            .await
            .into_iter()
            .map(|m| m.payload)
            .collect(),
        _ => read_raw_kafka(&kafka.bootstrap(), &dl_topic, 1).await,
    };
    assert_eq!(letters.len(), 1, "{broker}");
    let letter = hookbridge::dead_letter::DeadLetterCodec::get()
        .unwrap()
        .decode(&letters[0])
        .unwrap();
    assert_eq!(
        (letter.stage.as_str(), letter.reason_code.as_str()),
        ("map", "missing_field")
    );
    assert!(
        !letter.headers.contains_key("x-acme-token"),
        "a static credential is never kept"
    );
    assert!(!String::from_utf8_lossy(&letters[0]).contains(TOKEN));

    // The mapping is fixed; redrive publishes the event once.
    let dir = TempDir::new("redrive");
    let fixed = dir.path().join("fixed.toml");
    std::fs::write(&fixed, config("/type")).unwrap();
    let (ok, out) = redrive(&fixed);
    assert!(
        ok && out.contains("matched 1, published 1"),
        "{broker}: {out}"
    );
    if broker == "nats" {
        // A second run adds nothing: JetStream drops the repeated Nats-Msg-Id.
        let (ok_again, out_again) = redrive(&fixed);
        assert!(ok_again, "{out_again}");
    }
    let topic = format!("{prefix}.acme.invoice.paid");
    let events = match broker {
        "nats" => read_nats(&nats.url(), &stream, &topic, 1, Duration::from_secs(10)).await,
        _ => read_kafka(&kafka.bootstrap(), &topic, 1, Duration::from_secs(10)).await,
    };
    println!(
        "redrive ({broker}): dead letters 1, events consumed {}",
        events.len()
    );
    assert_eq!(events.len(), 1, "appears once on {broker}");
    assert_eq!(events[0].string("type"), "invoice.paid");
    assert_eq!(events[0].string("id"), "evt_42");
}

/// Raw record bodies of a Kafka topic (records that are not events).
async fn read_raw_kafka(bootstrap: &str, topic: &str, at_least: usize) -> Vec<Vec<u8>> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::Message;
        use rdkafka::{ClientConfig, Offset, TopicPartitionList};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "dl-test")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let md = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
            .unwrap();
        let partitions = md.topics()[0].partitions().len();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&topic, p as i32, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        while out.len() < at_least && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                out.push(m.payload().unwrap_or_default().to_vec());
            }
        }
        out
    })
    .await
    .unwrap()
}

/// Redrive connects exactly as the source's publisher does: against a token-protected NATS and a
/// SASL-protected Kafka (credentials only in the publisher's config, as secret references), it
/// reads the dead letters and publishes them, where it used to fail with "authorization
/// violation" and ignore the Kafka properties.
#[tokio::test]
async fn redrive_uses_the_publishers_credentials_on_protected_brokers() {
    const NATS_TOKEN: &str = "nats-token-7781";
    const KAFKA_PASSWORD: &str = "kafka-secret-4410";
    let nats = NatsServer::start_with_token(NATS_TOKEN);
    let mut kafka =
        tokio::task::spawn_blocking(|| KafkaBroker::start_sasl("hookbridge", KAFKA_PASSWORD))
            .await
            .unwrap();
    for broker in ["nats", "kafka"] {
        let (stream, prefix) = (unique("DP"), unique("dp"));
        let config = |pointer: &str| {
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\npublish_timeout_ms = 5000\n\n\
                 [publishers.nats]\nkind = \"nats\"\nurl = \"{nats}\"\nstream = \"{stream}\"\nsubjects = [\"{prefix}.>\"]\n\
                 token = \"env:NATS_TOKEN\"\n\n\
                 [publishers.kafka]\nkind = \"kafka\"\nbootstrap_servers = \"{kafka}\"\ntopic_partitions = 1\n\
                 properties = {{ \"security.protocol\" = \"SASL_PLAINTEXT\", \"sasl.mechanisms\" = \"PLAIN\", \"sasl.username\" = \"hookbridge\" }}\n\
                 secret_properties = {{ \"sasl.password\" = \"env:KAFKA_PASSWORD\" }}\n\n\
                 [sources.acme]\nprovider = \"generic\"\npublisher = \"{broker}\"\ntopic = \"{prefix}.{{source}}.{{type}}\"\n\
                 dead_letter_topic = \"{prefix}.dead_letter.{{source}}\"\n\
                 [sources.acme.verify]\nscheme = \"token\"\nheader = \"X-Acme-Token\"\nsecrets = [\"env:ACME\"]\n\
                 type_pointer = \"{pointer}\"\nid_pointer = \"/id\"\n",
                nats = nats.url(),
                kafka = kafka.bootstrap(),
            )
        };
        let env = std::collections::HashMap::from([
            ("ACME".to_owned(), TOKEN.to_owned()),
            ("NATS_TOKEN".to_owned(), NATS_TOKEN.to_owned()),
            ("KAFKA_PASSWORD".to_owned(), KAFKA_PASSWORD.to_owned()),
        ]);
        let app = spawn_with_config(&config("/kind"), &env, stream.clone(), prefix.clone()).await;
        app.wait_ready(200, Duration::from_secs(30)).await;
        let response = app
            .http
            .post(app.url("/webhooks/acme"))
            .header("X-Acme-Token", TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"id":"evt_77","type":"invoice.paid"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202, "{broker}: dead-lettered");

        let dir = TempDir::new("redrive-protected");
        let fixed = dir.path().join("fixed.toml");
        std::fs::write(&fixed, config("/type")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_hookbridge"))
            .args([
                "redrive",
                "--source",
                "acme",
                "--idle-ms",
                "1500",
                "--config",
            ])
            .arg(&fixed)
            .env_clear()
            .envs(env.iter())
            .output()
            .expect("run hookbridge redrive");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("matched 1, published 1"),
            "{broker}: {text}"
        );
        assert!(
            !text.contains(NATS_TOKEN) && !text.contains(KAFKA_PASSWORD),
            "no secret in its output"
        );
        let topic = format!("{prefix}.acme.invoice.paid");
        let events = match broker {
            "nats" => {
                read_nats(
                    &nats.url_with_token(),
                    &stream,
                    &topic,
                    1,
                    Duration::from_secs(10),
                )
                .await
            }
            _ => {
                crate::consumers::read_kafka_with(
                    &kafka.bootstrap(),
                    &kafka.client_properties(),
                    &topic,
                    1,
                    Duration::from_secs(15),
                )
                .await
            }
        };
        println!(
            "redrive on protected {broker}: dead letters 1, events consumed {}",
            events.len()
        );
        assert_eq!(events.len(), 1, "{broker}");
        assert_eq!(events[0].string("id"), "evt_77");
    }
    kafka.stop();
}
