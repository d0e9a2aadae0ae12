//! Kafka with rdkafka: an idempotent producer with `acks=all`, the partition key as record key, and
//! the CloudEvents Kafka protocol binding's headers (`ce_*`, `content-type`).
//!
//! librdkafka's own `message.timeout.ms` is set to the publish deadline, so a message we answered
//! 503 for stops being retried inside the client at about the same time; if it still lands, the
//! dedup key travels with it in `hookbridge_dedup_key`.
//!
//! An idempotent producer can wedge: after the broker loses its producer state (a restarted or
//! failed-over broker, an expired producer id) librdkafka keeps retrying with sequence numbers the
//! broker no longer accepts, and every delivery times out, or it raises a fatal error. When the
//! broker answers metadata requests but our deliveries keep failing that way, the health check
//! replaces the producer with a fresh one (new producer id).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::{OutboundMessage, PublishError, Publisher, header_safe};
use crate::config::KafkaConfig;

/// Kafka header that carries the dedup key (the same value as `ce_id`).
pub const DEDUP_HEADER: &str = "hookbridge_dedup_key";

pub struct KafkaPublisher {
    /// Cloning a `FutureProducer` clones an `Arc`; the lock is held only for that clone.
    producer: RwLock<FutureProducer>,
    /// Settings to build a replacement producer from.
    client_config: ClientConfig,
    /// Set when a delivery timed out or failed fatally; the health check decides whether to rebuild.
    suspect: AtomicBool,
    /// Present when hookbridge creates topics on first use.
    admin: Option<AdminClient<DefaultClientContext>>,
    partitions: i32,
    replication: i32,
    /// Topics known to exist, so creation is attempted once per topic and process.
    known_topics: Mutex<HashSet<String>>,
}

impl KafkaPublisher {
    pub fn new(config: &KafkaConfig, publish_timeout: Duration) -> Result<Self, String> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("client.id", "hookbridge")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", config.linger_ms.to_string())
            .set(
                "message.timeout.ms",
                publish_timeout.as_millis().max(1).to_string(),
            )
            .set("socket.keepalive.enable", "true")
            .set("message.max.bytes", config.max_message_bytes.to_string());
        for (name, value) in &config.properties {
            client.set(name, value);
        }
        for (name, secret) in &config.secret_properties {
            client.set(name, String::from_utf8_lossy(secret.expose()).into_owned());
        }
        let producer: FutureProducer = client
            .create()
            .map_err(|e| format!("kafka producer: {e}"))?;
        let admin = if config.create_topics {
            Some(
                client
                    .create()
                    .map_err(|e| format!("kafka admin client: {e}"))?,
            )
        } else {
            None
        };
        Ok(KafkaPublisher {
            producer: RwLock::new(producer),
            client_config: client,
            suspect: AtomicBool::new(false),
            admin,
            partitions: config.topic_partitions,
            replication: config.topic_replication,
            known_topics: Mutex::new(HashSet::new()),
        })
    }

    fn producer(&self) -> Result<FutureProducer, PublishError> {
        self.producer
            .read()
            .map(|p| p.clone())
            .map_err(|_| PublishError::Unavailable("producer lock poisoned".into()))
    }

    /// Replaces a producer that the broker no longer accepts deliveries from. The old one is dropped
    /// on a blocking thread: dropping purges its queue and waits up to 500 ms.
    fn rebuild_producer(&self) -> Result<(), PublishError> {
        let fresh: FutureProducer = self.client_config.create().map_err(|e| {
            PublishError::Unavailable(format!("recreating the kafka producer: {e}"))
        })?;
        let old = match self.producer.write() {
            Ok(mut guard) => std::mem::replace(&mut *guard, fresh),
            Err(_) => return Err(PublishError::Unavailable("producer lock poisoned".into())),
        };
        drop(tokio::task::spawn_blocking(move || drop(old)));
        self.suspect.store(false, Ordering::Relaxed);
        tracing::warn!(
            "kafka producer recreated after repeated delivery failures with the broker reachable"
        );
        Ok(())
    }

    fn topic_known(&self, topic: &str) -> bool {
        self.known_topics
            .lock()
            .map(|t| t.contains(topic))
            .unwrap_or(false)
    }

    fn forget_topic(&self, topic: &str) {
        if let Ok(mut t) = self.known_topics.lock() {
            t.remove(topic);
        }
    }

    /// Creates `topic` unless this process already knows it exists. "Already exists" is success.
    async fn ensure_topic(&self, topic: &str) -> Result<(), PublishError> {
        let Some(admin) = &self.admin else {
            return Ok(());
        };
        if self.topic_known(topic) {
            return Ok(());
        }
        let new = NewTopic::new(
            topic,
            self.partitions,
            TopicReplication::Fixed(self.replication),
        );
        let results = admin
            .create_topics([&new], &AdminOptions::new())
            .await
            .map_err(classify)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(classify_code(code, "create topic")),
            }
        }
        if let Ok(mut t) = self.known_topics.lock() {
            t.insert(topic.to_owned());
        }
        Ok(())
    }

    async fn send(&self, message: &OutboundMessage) -> Result<(), PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(message.cloudevent.attributes.len() + 2);
        for (name, value) in &message.cloudevent.attributes {
            let key = format!("ce_{name}");
            headers = headers.insert(Header {
                key: &key,
                value: Some(header_safe(value).as_bytes()),
            });
        }
        headers = headers
            .insert(Header {
                key: "content-type",
                value: Some(message.cloudevent.content_type),
            })
            .insert(Header {
                key: DEDUP_HEADER,
                value: Some(message.dedup_key.as_str()),
            });
        let record = FutureRecord::to(&message.topic)
            .key(message.key.as_bytes())
            .payload(&message.payload)
            .headers(headers);
        let producer = self.producer()?;
        // If the caller's deadline drops this future before librdkafka answers, the guard still
        // marks the producer suspect: a delivery that never completes is the wedge symptom.
        let mut unanswered = SuspectOnDrop(Some(&self.suspect));
        // Queue-full waits are bounded by the caller's deadline, not here.
        let result = producer.send(record, Timeout::Never).await;
        match result {
            Ok(_delivery) => {
                unanswered.disarm();
                Ok(())
            }
            Err((e, _message)) => {
                let wedged = matches!(
                    e.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::MessageTimedOut)
                ) || producer.client().fatal_error().is_some();
                if !wedged {
                    unanswered.disarm();
                }
                Err(classify(e))
            }
        }
    }
}

impl Publisher for KafkaPublisher {
    fn broker(&self) -> &'static str {
        "kafka"
    }

    async fn publish(&self, message: &OutboundMessage) -> Result<(), PublishError> {
        self.ensure_topic(&message.topic).await?;
        match self.send(message).await {
            // A broker that lost its metadata (restart, topic deleted) forgets the topic: create it
            // again once and retry, all within the caller's deadline.
            Err(PublishError::Unavailable(reason))
                if reason.contains("UnknownTopic") && self.admin.is_some() =>
            {
                self.forget_topic(&message.topic);
                self.ensure_topic(&message.topic).await?;
                self.send(message).await
            }
            other => other,
        }
    }

    async fn health_check(&self, timeout: Duration) -> Result<(), PublishError> {
        // fetch_metadata blocks the calling thread; keep it off the async workers.
        let producer = self.producer()?;
        let fatal = producer.client().fatal_error();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, timeout)
                .map(|_| ())
                .map_err(|e| PublishError::Unavailable(e.to_string()))
        })
        .await
        .map_err(|e| PublishError::Unavailable(format!("health check task: {e}")))??;
        // The broker answers: if our deliveries were failing anyway, the producer is the problem.
        if fatal.is_some() || self.suspect.load(Ordering::Relaxed) {
            self.rebuild_producer()?;
        }
        Ok(())
    }

    async fn flush(&self, timeout: Duration) {
        let Ok(producer) = self.producer() else {
            return;
        };
        let _flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
    }
}

/// Sets the flag when dropped armed.
struct SuspectOnDrop<'a>(Option<&'a AtomicBool>);

impl SuspectOnDrop<'_> {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for SuspectOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(flag) = self.0 {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

fn classify(e: KafkaError) -> PublishError {
    match e.rdkafka_error_code() {
        Some(code) => classify_code(code, &e.to_string()),
        None => PublishError::Unavailable(e.to_string()),
    }
}

/// Which broker answers mean "never for this message" and which mean "try again later".
fn classify_code(code: RDKafkaErrorCode, context: &str) -> PublishError {
    use RDKafkaErrorCode as C;
    match code {
        C::MessageSizeTooLarge
        | C::InvalidMessageSize
        | C::InvalidMessage
        | C::InvalidRecord
        | C::InvalidTopic
        | C::TopicAuthorizationFailed => PublishError::Rejected(format!("{context}: {code:?}")),
        _ => PublishError::Unavailable(format!("{context}: {code:?}")),
    }
}
