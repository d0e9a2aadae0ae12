//! `hookbridge redrive`: read a source's dead letters back and run them through mapping, dedup and
//! publishing again, with the current config, so that a fixed mapping recovers them.
//!
//! Dead letters were verified when they were received, and only hookbridge writes the dead-letter
//! topic, so redrive does not verify again (static credentials are not kept in dead letters). That
//! makes the topic a trusted input: restrict who can write it with broker ACLs.
//!
//! Redrive opens no spool (the running gateway owns it). It reads the topic from the beginning
//! until it has been idle for a while; run it again and the dedup key stops a second copy
//! (`Nats-Msg-Id` on NATS; on Kafka, the shared NATS dedup store or the consumer's dedup key).

use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
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
    let payloads = match &publisher {
        PublisherConfig::Kafka(k) => {
            read_kafka(k.bootstrap_servers.clone(), topic.clone(), idle).await?
        }
        PublisherConfig::Nats(n) => read_nats(&n.url, &n.stream, &topic, idle).await?,
    };
    let (pipeline, _spool) = crate::startup::build_pipeline(&config)
        .await
        .map_err(|e| e.to_string())?;
    let mut report = Report {
        read: payloads.len(),
        ..Report::default()
    };
    let codec = DeadLetterCodec::get().map_err(|e| e.to_string())?;
    for payload in payloads {
        let letter = match codec.decode(&payload) {
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
            Ok(Accepted::Published { .. } | Accepted::Handled { .. }) => report.published += 1,
            Ok(Accepted::Duplicate { .. }) => report.duplicates += 1,
            Ok(Accepted::DeadLettered { .. }) => report.dead_lettered += 1,
            Ok(Accepted::Spooled { .. }) | Err(_) => report.failed += 1,
        }
    }
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
    let mut headers = HeaderMap::new();
    for (name, value) in &letter.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&letter.body_content_type) {
        headers.insert(actix_web::http::header::CONTENT_TYPE, v);
    }
    let body = letter.body.clone();
    let request = WebhookRequest {
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

/// Every record of `topic`, from the beginning, until nothing arrives for `idle`.
async fn read_kafka(
    bootstrap: String,
    topic: String,
    idle: Duration,
) -> Result<Vec<Vec<u8>>, String> {
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::Message;
        use rdkafka::{ClientConfig, Offset, TopicPartitionList};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "hookbridge-redrive")
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| format!("kafka consumer: {e}"))?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map_err(|e| format!("kafka metadata: {e}"))?;
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            assignment
                .add_partition_offset(&topic, p as i32, Offset::Beginning)
                .map_err(|e| format!("kafka assign: {e}"))?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| format!("kafka assign: {e}"))?;
        let mut out = Vec::new();
        let mut last = Instant::now();
        while last.elapsed() < idle {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    out.push(m.payload().unwrap_or_default().to_vec());
                    last = Instant::now();
                }
                Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer"),
                None => {}
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| format!("kafka reader: {e}"))?
}

async fn read_nats(
    url: &str,
    stream: &str,
    subject: &str,
    idle: Duration,
) -> Result<Vec<Vec<u8>>, String> {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
    use futures_util::StreamExt;
    let client = async_nats::connect(url)
        .await
        .map_err(|e| format!("nats: {e}"))?;
    let js = async_nats::jetstream::new(client);
    let stream = js
        .get_stream(stream)
        .await
        .map_err(|e| format!("stream {stream}: {e}"))?;
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
    let mut out = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(idle, messages.next()).await {
        match message {
            Ok(m) => out.push(m.payload.to_vec()),
            Err(e) => return Err(format!("consume: {e}")),
        }
    }
    Ok(out)
}
