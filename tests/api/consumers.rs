//! Real consumers that read back what hookbridge published and decode it with `schemas/event.avsc`
//! (read from disk here, not the copy embedded in the binary).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use apache_avro::types::Value;
use futures_util::StreamExt;

/// One message as a consumer saw it.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Kafka topic or NATS subject.
    pub destination: String,
    /// Kafka record key (None on NATS).
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub record: BTreeMap<String, Value>,
    /// The message body as received (the Avro datum), for byte-level checks such as secret scans.
    pub raw: Vec<u8>,
}

impl Consumed {
    pub fn field(&self, name: &str) -> &Value {
        self.record
            .get(name)
            .unwrap_or_else(|| panic!("record has no field {name}: {:?}", self.record))
    }

    pub fn string(&self, name: &str) -> String {
        match self.field(name) {
            Value::String(s) => s.clone(),
            Value::Union(_, inner) => match inner.as_ref() {
                Value::String(s) => s.clone(),
                other => panic!("{name} is {other:?}"),
            },
            other => panic!("{name} is {other:?}"),
        }
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no header {name} in {:?}", self.headers))
    }
}

/// The datum of a Kafka record: after the Confluent wire-format header (byte 0, a 4-byte schema id)
/// when there is one. Unambiguous for our events: a bare datum starts with the `id` string's
/// length, and an id is never empty, so its first byte is never 0.
pub fn unframed(payload: &[u8]) -> &[u8] {
    match payload {
        [0, _, _, _, _, datum @ ..] => datum,
        bare => bare,
    }
}

pub fn event_schema() -> Schema {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/event.avsc");
    let text = std::fs::read_to_string(path).expect("read schemas/event.avsc");
    Schema::parse_str(&text).expect("parse schemas/event.avsc")
}

pub fn decode(schema: &Schema, payload: &[u8]) -> BTreeMap<String, Value> {
    let mut reader = payload;
    let value = apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .expect("datum reader")
        .read_value(&mut reader)
        .expect("payload is an Avro datum of event.avsc");
    assert!(
        reader.is_empty(),
        "{} trailing bytes after the datum",
        reader.len()
    );
    match value {
        Value::Record(fields) => fields.into_iter().collect(),
        other => panic!("not a record: {other:?}"),
    }
}

/// Reads every event stored on `subject` in `stream`, waiting up to `wait` for at least
/// `at_least` of them, then drains whatever else is there (so duplicates are seen).
pub async fn read_nats(
    url: &str,
    stream: &str,
    subject: &str,
    at_least: usize,
    wait: Duration,
) -> Vec<Consumed> {
    let schema = event_schema();
    read_raw_nats(url, stream, subject, at_least, wait)
        .await
        .into_iter()
        .map(|m| Consumed {
            destination: m.subject,
            key: None,
            headers: m.headers,
            record: decode(&schema, &m.payload),
            raw: m.payload,
        })
        .collect()
}

/// Reads every record of `topic` from the beginning, as `read_nats` does, with a group consumer.
pub async fn read_kafka(
    bootstrap: &str,
    topic: &str,
    at_least: usize,
    wait: Duration,
) -> Vec<Consumed> {
    read_kafka_with(bootstrap, &[], topic, at_least, wait).await
}

/// The same with client `properties` (SASL credentials, TLS).
pub async fn read_kafka_with(
    bootstrap: &str,
    properties: &[(String, String)],
    topic: &str,
    at_least: usize,
    wait: Duration,
) -> Vec<Consumed> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    let properties = properties.to_vec();
    tokio::task::spawn_blocking(move || {
        read_kafka_blocking(&bootstrap, &properties, &topic, at_least, wait)
    })
    .await
    .expect("kafka consumer thread")
}

fn read_kafka_blocking(
    bootstrap: &str,
    properties: &[(String, String)],
    topic: &str,
    at_least: usize,
    wait: Duration,
) -> Vec<Consumed> {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};

    // A group consumer, as users read: subscribe, let the group coordinator assign partitions,
    // start from the earliest offset of a group that has committed nothing.
    static GROUP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let group = format!(
        "hookbridge-test-{}-{}",
        std::process::id(),
        GROUP.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut client = ClientConfig::new();
    for (name, value) in properties {
        client.set(name, value);
    }
    let consumer: BaseConsumer = client
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &group)
        // The KIP-848 protocol: the broker assigns at once, where the classic protocol's first
        // group on a fresh broker waits seconds for the offsets topic.
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .expect("test consumer");
    let deadline = Instant::now() + wait;
    consumer.subscribe(&[topic]).expect("subscribe");
    let schema = event_schema();
    let mut out = Vec::new();
    let mut grace_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if out.len() >= at_least {
            let until = *grace_until.get_or_insert(now + Duration::from_millis(500));
            if now > until {
                break;
            }
        } else if now > deadline {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Consumed {
                    destination: m.topic().to_owned(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    headers,
                    record: decode(&schema, unframed(m.payload().unwrap_or_default())),
                    raw: m.payload().unwrap_or_default().to_vec(),
                });
            }
            Some(Err(e)) => eprintln!("kafka consumer: {e}"),
            None => {}
        }
    }
    out
}

/// One NATS message as stored, for records that are not events (dead letters) and for `read_nats`.
pub struct RawMessage {
    pub subject: String,
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
}

/// Raw messages on a NATS subject, with the same waiting rules as `read_nats`.
pub async fn read_raw_nats(
    url: &str,
    stream: &str,
    subject: &str,
    at_least: usize,
    wait: Duration,
) -> Vec<RawMessage> {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
    // `nats://TOKEN@host:port` (`NatsServer::url_with_token`): the token as the user part.
    let (options, url) = match url.strip_prefix("nats://").and_then(|r| r.split_once('@')) {
        Some((token, host)) => (
            async_nats::ConnectOptions::with_token(token.to_owned()),
            format!("nats://{host}"),
        ),
        None => (async_nats::ConnectOptions::new(), url.to_owned()),
    };
    let client = options
        .connect(url.as_str())
        .await
        .expect("test consumer connects to NATS");
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + wait;
    let stream = loop {
        match js.get_stream(stream).await {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("stream {stream} not found: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: subject.to_owned(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("create consumer");
    let mut messages = consumer.messages().await.expect("consume");
    let mut out = Vec::new();
    loop {
        let remaining = if out.len() < at_least {
            deadline.saturating_duration_since(Instant::now())
        } else {
            // Got what was expected: a short grace period to catch any duplicate.
            Duration::from_millis(300)
        };
        match tokio::time::timeout(remaining, messages.next()).await {
            Ok(Some(Ok(m))) => {
                let headers = m
                    .headers
                    .as_ref()
                    .map(|h| {
                        h.iter()
                            .map(|(k, v)| {
                                (
                                    k.to_string(),
                                    v.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(","),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(RawMessage {
                    subject: m.subject.to_string(),
                    headers,
                    payload: m.payload.to_vec(),
                });
            }
            Ok(Some(Err(e))) => panic!("consuming from NATS: {e}"),
            Ok(None) | Err(_) => break,
        }
    }
    out
}
