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
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::registry::{RegistryError, SchemaRegistry, Writer};
use super::{OutboundMessage, PublishError, Publisher, header_safe};
use crate::event::cloudevents::Binding;
use crate::publish::config::KafkaConfig;

mod errors;
mod registry_state;

use errors::{SuspectOnDrop, classify, classify_code};
use registry_state::Registry;

/// Kafka header that carries the dedup key (the same value as `ce_id`).
/// Kafka has no broker-side dedup across producer sessions: consumers that need once-only drop
/// repeats by this header.
pub const DEDUP_HEADER: &str = "hookbridge_dedup_key";

/// The Kafka publisher: one producer for every source routed to it.
pub struct KafkaPublisher {
    /// Cloning a `FutureProducer` clones an `Arc`; the lock is held only for that clone.
    producer: RwLock<FutureProducer>,
    /// Settings to build a replacement producer from.
    client_config: ClientConfig,
    /// Set when a delivery timed out or failed fatally; the health check decides whether to rebuild.
    suspect: AtomicBool,
    /// Present when hookbridge creates topics on first use.
    admin: Option<AdminClient<DefaultClientContext>>,
    /// Partitions and replication factor of the topics this process creates.
    partitions: i32,
    replication: i32,
    /// Topics known to exist, so creation is attempted once per topic and process.
    /// A std `Mutex`: looked up and updated without an `.await` while it is held.
    known_topics: Mutex<HashSet<String>>,
    /// The most topics this process creates: topic names come from templates that may hold an
    /// event type, and a flood of new types must not become a flood of topics.
    max_created_topics: usize,
    /// `hookbridge_topics_created_total{publisher}`.
    topics_created: prometheus::IntCounter,
    /// Event topics created so far (dead-letter topics, one per source, are not bounded).
    event_topics_created: std::sync::atomic::AtomicUsize,
    /// With a schema registry, records are framed in the Confluent wire format.
    registry: Option<Registry>,
}

impl KafkaPublisher {
    /// `metrics` counts this publisher's created topics and schema registry failures.
    pub fn new(
        name: &str,
        config: &KafkaConfig,
        publish_timeout: Duration,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Self, String> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("client.id", "hookbridge")
            // Idempotent producer + `acks=all` because a 2xx is the promise: the delivery
            // report then means every in-sync replica has the record, and librdkafka's own
            // retries can neither duplicate nor reorder it within this producer's session.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", config.linger_ms.to_string())
            .set(
                // `.max(1)`: 0 means no timeout at all to librdkafka.
                "message.timeout.ms",
                publish_timeout.as_millis().max(1).to_string(),
            )
            .set("socket.keepalive.enable", "true")
            // The bound check-config holds bodies and their envelope to, so a body that was
            // accepted is never refused by the client for its size.
            .set("message.max.bytes", config.max_message_bytes.to_string());
        // Set after ours, so a user property would win: validation refuses the pinned ones
        // (`PINNED_KAFKA_PROPERTIES`) for that reason.
        for (name, value) in &config.properties {
            client.set(name, value);
        }
        for (name, secret) in &config.secret_properties {
            client.set(name, String::from_utf8_lossy(secret.expose()).into_owned());
        }
        let producer: FutureProducer = client
            .create()
            .map_err(|e| format!("kafka producer: {e}"))?;
        // The admin client takes the producer's settings: the same brokers, the same credentials.
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
            max_created_topics: config.max_created_topics,
            topics_created: metrics.topics_created_of(name),
            event_topics_created: std::sync::atomic::AtomicUsize::new(0),
            registry: match &config.schema_registry {
                Some(r) => Some(Registry {
                    client: SchemaRegistry::new(r.clone())?,
                    // Unready until `prepare_registry` (at start) or the health check reaches it.
                    ready: AtomicBool::new(false),
                    failed_subject: Mutex::new(None),
                    metrics: metrics.clone(),
                    publisher: name.to_owned(),
                }),
                None => None,
            },
        })
    }

    /// Start-up prepares a registry only for the publishers that have one.
    pub fn has_registry(&self) -> bool {
        self.registry.is_some()
    }

    /// Registers (or looks up) the subjects that can be named before the first message, those
    /// `matches` accepts. Incompatible is an error for the caller (start-up fails with it);
    /// unreachable only leaves the publisher unready.
    pub async fn prepare_registry(
        &self,
        matches: impl Fn(&str) -> bool,
    ) -> Result<(), RegistryError> {
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        match registry.client.prepare(matches).await {
            Ok(()) => {
                registry.ready.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                registry.failed(&e);
                match e {
                    // Unreachable: start unready; the health check retries through `recover`.
                    RegistryError::Unavailable(_) => Ok(()),
                    other => Err(other),
                }
            }
        }
    }

    /// The payload as written: the bare datum, or framed with its registry id.
    async fn payload<'m>(
        &self,
        message: &'m OutboundMessage,
    ) -> Result<std::borrow::Cow<'m, [u8]>, PublishError> {
        let Some(registry) = &self.registry else {
            return Ok(std::borrow::Cow::Borrowed(&message.payload));
        };
        let writer = Writer::of(message.cloudevent.content_type);
        match registry
            .client
            .frame(&message.topic, writer, &message.payload)
            .await
        {
            Ok(framed) => Ok(std::borrow::Cow::Owned(framed)),
            Err(e) => {
                let subject = registry.client.subject(&message.topic, writer);
                registry.failed_for(subject, writer, &e);
                // Retryable whatever the reason: a subject the registry refuses is fixed by a
                // deploy, and the event must wait for it (spooled or 503), not be dead-lettered
                // with the same schema.
                Err(PublishError::Unavailable(e.to_string()))
            }
        }
    }

    /// A clone (an `Arc`) of the current producer, taken under the read lock and used after it:
    /// a send never holds the lock, so a rebuild never waits for deliveries.
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
        // Detached: the health check must not wait for the old queue's purge either.
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

    /// Creates the message's topic unless this process already knows it exists. "Already exists"
    /// is success.
    async fn ensure_topic(&self, message: &OutboundMessage) -> Result<(), PublishError> {
        let topic = message.topic.as_str();
        // Only event topics count against `max_created_topics`: dead-letter topics are one per
        // source, so the config bounds them.
        let bounded = Writer::of(message.cloudevent.content_type) == Writer::Event;
        let Some(admin) = &self.admin else {
            return Ok(());
        };
        // One admin round trip per topic and process: every later event to it goes straight to
        // the producer.
        if self.topic_known(topic) {
            return Ok(());
        }
        let created = self.event_topics_created.load(Ordering::Relaxed);
        if bounded && created >= self.max_created_topics {
            // Refused for good: the event is dead-lettered (its topic is per source, so known).
            return Err(PublishError::Rejected(format!(
                "this publisher already created {created} topics (max_created_topics)"
            )));
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
                Ok(_) => {
                    self.topics_created.inc();
                    if bounded {
                        self.event_topics_created.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Created by another replica, or by an earlier process: just as good.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(classify_code(code, "create topic")),
            }
        }
        // Remembered only once the broker confirmed it, so a failure is retried by the next event.
        if let Ok(mut t) = self.known_topics.lock() {
            t.insert(topic.to_owned());
        }
        Ok(())
    }

    async fn send(&self, message: &OutboundMessage) -> Result<(), PublishError> {
        // The CloudEvents Kafka binding in binary mode: each attribute a `ce_` header, the datum
        // the value; `content-type` is the binding's name for `datacontenttype`.
        let mut headers = OwnedHeaders::new_with_capacity(message.cloudevent.attributes.len() + 2);
        for (key, value) in message.cloudevent.headers(Binding::Kafka) {
            headers = headers.insert(Header {
                key,
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
        // Framed only now: a registry that cannot frame this subject fails the publish before the
        // producer sees it, so nothing is ever written with a guessed id.
        let payload = self.payload(message).await?;
        let record = FutureRecord::to(&message.topic)
            .key(message.key.as_bytes())
            .payload(payload.as_ref())
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
                // A timed-out delivery or a fatal error is the wedge symptom; any other
                // error (a refusal, an unknown topic) means the broker is talking to this
                // producer, which is then fine.
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
        self.ensure_topic(message).await?;
        match self.send(message).await {
            // A broker that lost its metadata (restart, topic deleted) forgets the topic: create it
            // again once and retry, all within the caller's deadline.
            Err(PublishError::Unavailable(reason))
                if reason.contains("UnknownTopic") && self.admin.is_some() =>
            {
                self.forget_topic(&message.topic);
                self.ensure_topic(message).await?;
                self.send(message).await
            }
            other => other,
        }
    }

    async fn health_check(&self, timeout: Duration) -> Result<(), PublishError> {
        // fetch_metadata blocks the calling thread; keep it off the async workers.
        let producer = self.producer()?;
        // A fatal error makes librdkafka refuse every send until the producer is replaced.
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
        // Not before: while the broker is down, a fresh producer would time out the same way,
        // and the rebuild would only drop the old one's queue.
        if fatal.is_some() || self.suspect.load(Ordering::Relaxed) {
            self.rebuild_producer()?;
        }
        // A registry that failed keeps the publisher unready until it answers again.
        if let Some(registry) = &self.registry
            && !registry.ready.load(Ordering::Relaxed)
        {
            // Bounded like the metadata fetch: the health loop checks every publisher in turn.
            match tokio::time::timeout(timeout, registry.recover()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(PublishError::Unavailable(e.to_string())),
                Err(_) => {
                    return Err(PublishError::Unavailable(
                        "schema registry: no answer".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn flush(&self, timeout: Duration) {
        let Ok(producer) = self.producer() else {
            return;
        };
        // librdkafka's flush blocks the thread; the runtime's workers stay free during shutdown.
        let _flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
    }
}
