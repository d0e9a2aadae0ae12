//! `hookbridge redrive`: read a source's dead letters back and run them through mapping, dedup and
//! publishing again, with the current config, so that a fixed mapping recovers them.
//!
//! Dead letters were verified when they were received, and only hookbridge writes the dead-letter
//! topic, so redrive does not verify again (static credentials are not kept in dead letters). That
//! makes the topic a trusted input: restrict who can write it with broker ACLs.
//!
//! Redrive opens no spool (the running gateway owns it). It reads the topic from the beginning
//! until it has been idle for a while, connected exactly as the source's publisher is (NATS token;
//! Kafka `properties` and `secret_properties`: TLS, SASL), and redrives each record as it arrives;
//! run it again and the dedup key stops a second copy (`Nats-Msg-Id` on NATS; on Kafka, the shared
//! NATS dedup store or the consumer's dedup key).

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::config::{Config, PublisherConfig};
use crate::dead_letter::{DeadLetter, DeadLetterCodec};
use crate::pipeline::{Accepted, Pipeline};
use crate::providers::{Provider, Verified, WebhookRequest};
use crate::publish::topic::TopicVars;

/// Which dead letters to redrive.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Only this `reason_code` (for example `missing_field`).
    pub reason: Option<String>,
}

impl Filter {
    fn accepts(&self, letter: &DeadLetter) -> bool {
        self.since.is_none_or(|t| letter.received_at >= t)
            && self.until.is_none_or(|t| letter.received_at <= t)
            && self
                .reason
                .as_deref()
                .is_none_or(|r| r == letter.reason_code)
    }
}

/// What a redrive did, printed at the end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub read: usize,
    pub matched: usize,
    pub published: usize,
    pub duplicates: usize,
    /// Still not mappable or still refused: dead-lettered again.
    pub dead_lettered: usize,
    /// Could not be processed now (broker down, undecodable record, encoded-event letters).
    pub failed: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {}, matched {}, published {}, duplicates {}, dead-lettered again {}, failed {}",
            self.read,
            self.matched,
            self.published,
            self.duplicates,
            self.dead_lettered,
            self.failed
        )
    }
}

pub async fn run(
    config: Config,
    source_name: &str,
    filter: &Filter,
    idle: Duration,
) -> Result<Report, String> {
    let mut config = config;
    // The running gateway owns the spool file; redrive publishes directly or fails.
    config.spool = None;
    let source_config = config
        .sources
        .get(source_name)
        .cloned()
        .ok_or_else(|| format!("no source named {source_name}"))?;
    let publisher = config
        .publishers
        .get(&source_config.publisher)
        .cloned()
        .ok_or_else(|| format!("no publisher {}", source_config.publisher))?;
    let topic = source_config.dead_letter_topic.render(&TopicVars {
        source: source_name,
        provider: source_config.provider.kind(),
        event_type: "dead_letter",
    });
    let (pipeline, _spool) = crate::startup::build_pipeline(&config)
        .await
        .map_err(|e| e.to_string())?;
    // Records stream in from a reader task, connected exactly as the publisher is (token, TLS and
    // SASL properties), and are redriven one by one: the topic is never held in memory.
    let (records, mut incoming) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let reader = match &publisher {
        PublisherConfig::Kafka(k) => {
            let k = k.clone();
            let topic = topic.clone();
            tokio::task::spawn_blocking(move || read_kafka(&k, &topic, idle, &records))
        }
        PublisherConfig::Nats(n) => {
            let n = n.clone();
            let topic = topic.clone();
            tokio::spawn(async move { read_nats(&n, &topic, idle, &records).await })
        }
    };
    let mut report = Report::default();
    let codec = DeadLetterCodec::get().map_err(|e| e.to_string())?;
    while let Some(payload) = incoming.recv().await {
        report.read += 1;
        // With a schema registry the record is framed (byte 0, schema id); the datum follows.
        let letter = match codec.decode(crate::publish::registry::unframed(&payload)) {
            Ok(letter) => letter,
            Err(e) => {
                tracing::error!(error = %e, "undecodable dead letter skipped");
                report.failed += 1;
                continue;
            }
        };
        if letter.source != source_name || !filter.accepts(&letter) {
            continue;
        }
        report.matched += 1;
        match redrive_one(&pipeline, source_name, &letter).await {
            Ok(Accepted::Published { .. } | Accepted::Handled { .. } | Accepted::Answered(_)) => {
                report.published += 1
            }
            Ok(Accepted::Duplicate { .. }) => report.duplicates += 1,
            Ok(Accepted::DeadLettered { .. }) => report.dead_lettered += 1,
            Ok(Accepted::Spooled { .. }) | Err(_) => report.failed += 1,
        }
    }
    reader
        .await
        .map_err(|e| format!("dead-letter reader: {e}"))??;
    for p in pipeline.publishers() {
        crate::publish::Publisher::flush(&p.inner, Duration::from_secs(5)).await;
    }
    Ok(report)
}

async fn redrive_one(
    pipeline: &Pipeline,
    source_name: &str,
    letter: &DeadLetter,
) -> Result<Accepted, String> {
    let source = pipeline.source(source_name).ok_or("source vanished")?;
    let source = &source;
    if letter.body_content_type == crate::event::avro::EVENT_CONTENT_TYPE {
        // A spooled event the broker refused: already mapped, nothing for a fixed mapping to do.
        return Err(
            "encoded-event dead letters are republished by a consumer, not redriven".into(),
        );
    }
    let headers = letter.request_headers();
    let body = letter.body.clone();
    let request = WebhookRequest {
        method: "POST",
        headers: &headers,
        query: "",
        body: &body,
        peer: None,
        received_at: letter.received_at,
    };
    let facts = source.config.provider.redrive_facts(&body);
    pipeline
        .map_and_deliver(source, &request, Verified::for_redrive(&request, facts))
        .await
        .map_err(|e| e.to_string())
}

/// Every record of `topic`, from the beginning, until nothing arrives for `idle`, sent to `out`;
/// the consumer has the publisher's own properties and secret properties.
fn read_kafka(
    k: &crate::config::KafkaConfig,
    topic: &str,
    idle: Duration,
    out: &tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<(), String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let mut client = ClientConfig::new();
    for (name, value) in &k.properties {
        client.set(name, value);
    }
    for (name, secret) in &k.secret_properties {
        client.set(name, String::from_utf8_lossy(secret.expose()).into_owned());
    }
    let consumer: BaseConsumer = client
        .set("bootstrap.servers", &k.bootstrap_servers)
        .set("group.id", "hookbridge-redrive")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("kafka consumer: {e}"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("kafka metadata: {e}"))?;
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len());
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p as i32, Offset::Beginning)
            .map_err(|e| format!("kafka assign: {e}"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| format!("kafka assign: {e}"))?;
    let mut last = Instant::now();
    while last.elapsed() < idle {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if out
                    .blocking_send(m.payload().unwrap_or_default().to_vec())
                    .is_err()
                {
                    return Ok(());
                }
                last = Instant::now();
            }
            Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer"),
            None => {}
        }
    }
    Ok(())
}

/// The same for a NATS stream, connected with the publisher's token.
async fn read_nats(
    n: &crate::config::NatsConfig,
    subject: &str,
    idle: Duration,
    out: &tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<(), String> {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
    use futures_util::StreamExt;
    let mut options = async_nats::ConnectOptions::new().name("hookbridge-redrive");
    if let Some(token) = &n.token {
        options = options.token(String::from_utf8_lossy(token.expose()).into_owned());
    }
    let client = options
        .connect(n.url.as_str())
        .await
        .map_err(|e| format!("nats: {e}"))?;
    let js = async_nats::jetstream::new(client);
    let stream = js
        .get_stream(&n.stream)
        .await
        .map_err(|e| format!("stream {}: {e}", n.stream))?;
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: subject.to_owned(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("consumer: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("consume: {e}"))?;
    while let Ok(Some(message)) = tokio::time::timeout(idle, messages.next()).await {
        match message {
            Ok(m) => {
                if out.send(m.payload.to_vec()).await.is_err() {
                    return Ok(());
                }
            }
            Err(e) => return Err(format!("consume: {e}")),
        }
    }
    Ok(())
}
