//! NATS JetStream with async-nats: `Nats-Msg-Id` is the dedup key (JetStream drops a repeat inside
//! the stream's duplicate window), CloudEvents attributes travel as `ce-*` headers per the NATS
//! protocol binding, and every publish awaits its PubAck.
//!
//! The stream is created (or checked) on start; if the server is unreachable then, the check is
//! retried by the health loop, so the gateway starts unready rather than not at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_nats::{HeaderMap, HeaderName, HeaderValue};

mod lanes;

use super::{OutboundMessage, PublishError, Publisher, header_safe};
use crate::event::cloudevents::Binding;
use crate::publish::config::{NatsConfig, NatsStorage};

/// The NATS JetStream publisher.
pub struct NatsPublisher {
    /// For the connection state and the flush, which JetStream's context does not offer.
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// The stream as configured, which `ensure_stream` creates when it is missing.
    stream: stream::Config,
    /// Set once the stream exists; cleared when a publish finds it missing, so the health check
    /// creates it again instead of trusting what it found at start.
    stream_ready: AtomicBool,
    /// The HTTP workers' own connections, which the request path publishes through.
    lanes: lanes::Lanes,
}

/// The client settings every connection of a publisher shares.
fn connect_options(config: &NatsConfig) -> async_nats::ConnectOptions {
    let mut options = async_nats::ConnectOptions::new()
        .name("hookbridge")
        .connection_timeout(Duration::from_secs(2));
    if let Some(token) = &config.token {
        options = options.token(String::from_utf8_lossy(token.expose()).into_owned());
    }
    options
}

impl NatsPublisher {
    /// Connects (retrying in the background while the server is down) and makes a first attempt
    /// at the stream, so the gateway starts unready rather than not at all.
    pub async fn connect(config: &NatsConfig) -> Result<Self, String> {
        let client = connect_options(config)
            // Start even when the server is down; readiness reports it until it is back.
            .retry_on_initial_connect()
            .connect(config.url.as_str())
            .await
            .map_err(|e| format!("nats: {e}"))?;
        let jetstream = jetstream::new(client.clone());
        let publisher = NatsPublisher {
            client,
            jetstream,
            stream: stream::Config {
                name: config.stream.clone(),
                subjects: config.subjects.clone(),
                // JetStream drops a repeated `Nats-Msg-Id` within this window: a resend of an
                // event, even one whose first publish timed out here but landed, is stored once.
                duplicate_window: config.duplicate_window,
                storage: match config.storage {
                    NatsStorage::File => stream::StorageType::File,
                    NatsStorage::Memory => stream::StorageType::Memory,
                },
                ..Default::default()
            },
            stream_ready: AtomicBool::new(false),
            lanes: lanes::Lanes::new(config),
        };
        // Best effort now; the health loop retries until it succeeds.
        let _first_try = publisher.ensure_stream(Duration::from_secs(2)).await;
        Ok(publisher)
    }

    /// Creates the stream unless it is known to exist; an existing one is taken as it is
    /// (`get_or_create_stream` does not update its settings).
    async fn ensure_stream(&self, timeout: Duration) -> Result<(), PublishError> {
        if self.stream_ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        match tokio::time::timeout(
            timeout,
            self.jetstream.get_or_create_stream(self.stream.clone()),
        )
        .await
        {
            Ok(Ok(_)) => {
                self.stream_ready.store(true, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(PublishError::Unavailable(format!(
                "stream {}: {e}",
                self.stream.name
            ))),
            Err(_) => Err(PublishError::Timeout(timeout)),
        }
    }
}

impl Publisher for NatsPublisher {
    fn broker(&self) -> &'static str {
        "nats"
    }

    async fn publish(&self, message: &OutboundMessage) -> Result<(), PublishError> {
        let mut headers = HeaderMap::new();
        for (name, value) in message.cloudevent.headers(Binding::Nats) {
            // `parse` rather than `From`: the latter panics on a value it refuses.
            if let Ok(value) = header_safe(value).parse::<HeaderValue>() {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        // `content-type` is the NATS binding's name for `datacontenttype`.
        headers.insert("content-type", message.cloudevent.content_type);
        let publish = PublishMessage::build()
            .headers(headers)
            // `Nats-Msg-Id`, source-scoped: broker-side dedup for what the store missed.
            .message_id(&message.dedup_key)
            .payload(message.payload.clone().into());
        // `send_publish` only sends; the PubAck, awaited below, is what a 2xx rests on.
        let lane = self.lanes.here();
        let ack = lane
            .as_deref()
            .unwrap_or(&self.jetstream)
            .send_publish(message.topic.clone(), publish)
            .await
            .map_err(|e| self.classify(e.kind(), e.to_string(), &message.topic))?;
        // A duplicate ack means JetStream already holds this id: the event is safe either way.
        ack.await
            .map(|_ack| ())
            .map_err(|e| self.classify(e.kind(), e.to_string(), &message.topic))
    }

    async fn health_check(&self, timeout: Duration) -> Result<(), PublishError> {
        // A local read first: a disconnected client would only time out on the stream call.
        if self.client.connection_state() != State::Connected {
            return Err(PublishError::Unavailable(
                "not connected to the NATS server".into(),
            ));
        }
        self.ensure_stream(timeout).await
    }

    async fn flush(&self, timeout: Duration) {
        // Every publish awaited its PubAck already; this pushes out what is still buffered at
        // shutdown, bounded so a server gone by then cannot hold up the exit.
        let _flushed = tokio::time::timeout(timeout, self.client.flush()).await;
    }
}

impl NatsPublisher {
    /// Which refusals retrying cannot fix. "No responders" (no stream captures the subject) is
    /// permanent only for a subject outside the configured stream's subjects: for one inside, it
    /// is what a restarting server answers before JetStream has loaded its streams.
    fn classify(
        &self,
        kind: jetstream::context::PublishErrorKind,
        text: String,
        subject: &str,
    ) -> PublishError {
        use jetstream::context::PublishErrorKind as K;
        match kind {
            // Larger than the server's `max_payload`: the same bytes will never fit.
            K::MaxPayloadExceeded => PublishError::Rejected(text),
            K::StreamNotFound
                if self
                    .stream
                    .subjects
                    .iter()
                    .any(|filter| subject_matches(filter, subject)) =>
            {
                // Our stream should capture it: deleted, or not loaded yet after a restart. The
                // health check creates it again instead of trusting what it found at start.
                self.stream_ready.store(false, Ordering::Relaxed);
                PublishError::Unavailable(text)
            }
            K::StreamNotFound
                if !self
                    .stream
                    .subjects
                    .iter()
                    .any(|filter| subject_matches(filter, subject)) =>
            {
                PublishError::Rejected(format!(
                    "{text}: subject {subject} is outside stream {}'s subjects",
                    self.stream.name
                ))
            }
            // JetStream's own refusals of this message: larger than the stream's max_msg_size
            // (10054), or a stream that refuses new messages by its limits (10077).
            K::Other if text.contains("10054") || text.contains("10077") => {
                PublishError::Rejected(text)
            }
            // Timeouts, a lost connection, anything not known to be permanent: retryable.
            _ => PublishError::Unavailable(text),
        }
    }
}

/// NATS subject matching: `*` matches one token, `>` one or more trailing tokens.
fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut filter = filter.split('.');
    let mut subject = subject.split('.');
    loop {
        match (filter.next(), subject.next()) {
            // `>` needs at least one token: `webhooks.>` does not capture `webhooks` itself.
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(f), Some(s)) if f == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn subjects_match_like_the_server() {
        assert!(subject_matches("webhooks.>", "webhooks.cronofy.change"));
        assert!(!subject_matches("webhooks.>", "webhooks"));
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(!subject_matches("a.*.c", "a.b.d"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("other.>", "webhooks.x"));
    }
}
