//! A Confluent-compatible schema registry for the Kafka publisher: Confluent Schema Registry,
//! Redpanda's, Apicurio's `/apis/ccompat/v7`, Karapace. With it, every record is written in the
//! Confluent wire format (byte 0, the schema id as a big-endian u32, the Avro datum), which Kafka
//! Connect, ksqlDB, Flink, Spark and confluent-kafka's `AvroDeserializer` read.
//!
//! Ids are registered (or, with `auto_register = false`, looked up) per subject and cached for
//! the life of the process, so a registry that goes down later costs nothing: only a subject never
//! seen before needs it, and that publish fails as retryable (spooled or 503), never written with a
//! guessed id. Each id is checked once against the registry (`GET /schemas/ids/{id}` must return
//! our schema) before it is used. At start the publisher registers the subjects it can name in
//! advance (the record subjects, or every existing subject one of its sources' topics maps to), so
//! a schema the registry refuses as incompatible stops start-up with the registry's reason; a
//! registry that cannot be reached leaves the publisher unready instead.

use std::collections::HashMap;
use std::sync::RwLock;

use apache_avro::Schema;
use serde::Deserialize;

use crate::dead_letter::{DEAD_LETTER_AVSC, DEAD_LETTER_CONTENT_TYPE, DEAD_LETTER_SCHEMA_NAME};
use crate::event::avro::{EVENT_AVSC, EVENT_SCHEMA_NAME};
use crate::publish::config::{RegistryConfig, SubjectNaming};

/// The Confluent wire format's first byte.
const MAGIC: u8 = 0;

/// The datum of a record hookbridge wrote: after the wire-format header when there is one. Our
/// bare datums start with the non-empty `id` string's length, so never with byte 0.
pub fn unframed(payload: &[u8]) -> &[u8] {
    match payload {
        [MAGIC, _, _, _, _, datum @ ..] => datum,
        bare => bare,
    }
}

/// How the registry failed. Only `Unavailable` lets start-up go on (unready); every other kind is
/// a deploy problem, and stops it with the registry's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Not reachable, timed out, 5xx: try again later.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The registry refuses our schema for this subject (409): a deploy problem, with its reason.
    #[error("schema registry refuses the schema for subject {subject}: {reason}")]
    Incompatible { subject: String, reason: String },
    /// Look-up only, and the subject does not hold our schema.
    #[error("schema not registered under subject {0} (auto_register is off)")]
    NotRegistered(String),
    /// The registry answered something that is not our schema, or not an answer.
    #[error("schema registry answered wrongly: {0}")]
    Wrong(String),
}

impl RegistryError {
    /// The `reason` label of `hookbridge_schema_registry_errors_total`.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::Unavailable(_) => "unavailable",
            RegistryError::Incompatible { .. } => "incompatible",
            RegistryError::NotRegistered(_) => "not_registered",
            RegistryError::Wrong(_) => "wrong_answer",
        }
    }
}

/// Which of the two schemas a message is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Writer {
    /// `event.avsc`, for event topics.
    Event,
    /// `dead_letter.avsc`, for dead-letter topics.
    DeadLetter,
}

impl Writer {
    /// Told apart by content type, the one thing a message says about its schema.
    pub fn of(content_type: &str) -> Writer {
        if content_type == DEAD_LETTER_CONTENT_TYPE {
            Writer::DeadLetter
        } else {
            Writer::Event
        }
    }

    fn record_name(self) -> &'static str {
        match self {
            Writer::Event => EVENT_SCHEMA_NAME,
            Writer::DeadLetter => DEAD_LETTER_SCHEMA_NAME,
        }
    }

    fn avsc(self) -> &'static str {
        match self {
            Writer::Event => EVENT_AVSC,
            Writer::DeadLetter => DEAD_LETTER_AVSC,
        }
    }
}

/// The answer to a registration or a look-up.
#[derive(Deserialize)]
struct IdReply {
    id: u32,
}

/// The answer to `GET /schemas/ids/{id}`.
#[derive(Deserialize)]
struct SchemaReply {
    schema: String,
}

/// The body of a refusal; `message` is missing from some, and the status alone is then the
/// reason.
#[derive(Deserialize)]
struct ErrorReply {
    #[serde(default)]
    message: String,
}

/// A registry client for one Kafka publisher.
pub struct SchemaRegistry {
    http: reqwest::Client,
    config: RegistryConfig,
    /// Subject → checked id. Cached for the life of the process because an id never changes
    /// what it names; read on every framed record, written once per subject.
    ids: RwLock<HashMap<String, u32>>,
}

impl SchemaRegistry {
    pub fn new(config: RegistryConfig) -> Result<Self, String> {
        let http = crate::https::client(
            "the schema registry",
            crate::https::Outbound {
                timeout: config.timeout,
                // Plain http allowed: in-cluster registries (Redpanda, Apicurio) often are.
                https_only: false,
                follow_redirects: true,
            },
        )?;
        Ok(SchemaRegistry {
            http,
            config,
            ids: RwLock::new(HashMap::new()),
        })
    }

    /// The registry answers (its subject list).
    pub async fn reachable(&self) -> Result<(), RegistryError> {
        self.send(self.http.get(self.url("/subjects")))
            .await
            .map(|_| ())
    }

    /// The subject a message to `topic` is registered under.
    pub fn subject(&self, topic: &str, writer: Writer) -> String {
        match self.config.naming {
            SubjectNaming::Topic => format!("{topic}-value"),
            SubjectNaming::Record => writer.record_name().to_owned(),
            SubjectNaming::TopicRecord => format!("{topic}-{}", writer.record_name()),
        }
    }

    /// Prepends the wire-format header for `topic` to `datum`, resolving the id if needed.
    pub async fn frame(
        &self,
        topic: &str,
        writer: Writer,
        datum: &[u8],
    ) -> Result<Vec<u8>, RegistryError> {
        let id = self.id(&self.subject(topic, writer), writer).await?;
        // The magic byte and the id, big-endian: what every Confluent deserialiser reads first.
        let mut out = Vec::with_capacity(datum.len() + 5);
        out.push(MAGIC);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(datum);
        Ok(out)
    }

    /// The cached id of `subject`, or one registered (looked up) and checked now.
    pub async fn id(&self, subject: &str, writer: Writer) -> Result<u32, RegistryError> {
        // The read guard is a temporary of this condition, released before any request: a slow
        // registry must not hold up framing for cached subjects.
        if let Some(id) = self
            .ids
            .read()
            .ok()
            .and_then(|ids| ids.get(subject).copied())
        {
            return Ok(id);
        }
        // Two first messages of one subject may both get here; registering the same schema again
        // returns the same id, so the race costs a request, not a wrong id.
        let id = if self.config.auto_register {
            self.register(subject, writer).await?
        } else {
            self.look_up(subject, writer).await?
        };
        // Checked before it is cached: an id that names another schema must not frame a single
        // record, since consumers would decode our datums with that schema.
        self.check(id, writer).await?;
        if let Ok(mut ids) = self.ids.write() {
            ids.insert(subject.to_owned(), id);
        }
        tracing::info!(subject, id, "schema registry id resolved");
        Ok(id)
    }

    /// Resolves what can be named before the first message: the record subjects, or every
    /// subject already in the registry that `matches` (one of the sources' topics).
    pub async fn prepare(&self, matches: impl Fn(&str) -> bool) -> Result<(), RegistryError> {
        match self.config.naming {
            SubjectNaming::Record => {
                for writer in [Writer::Event, Writer::DeadLetter] {
                    self.id(writer.record_name(), writer).await?;
                }
            }
            // A topic holds the event type, so its subjects cannot be named in advance: take the
            // ones already in the registry that our templates could render.
            SubjectNaming::Topic | SubjectNaming::TopicRecord => {
                let subjects: Vec<String> = self
                    .send(self.http.get(self.url("/subjects")))
                    .await?
                    .json()
                    .await
                    .map_err(|e| RegistryError::Wrong(format!("subjects: {e}")))?;
                for subject in subjects {
                    for writer in [Writer::Event, Writer::DeadLetter] {
                        if let Some(topic) = self.topic_of(&subject, writer)
                            && matches(topic)
                        {
                            self.id(&subject, writer).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The topic a subject of this naming strategy names, for a writer.
    fn topic_of<'a>(&self, subject: &'a str, writer: Writer) -> Option<&'a str> {
        match self.config.naming {
            // Only the event schema is told apart by topic alone: a dead-letter topic is matched
            // by the dead-letter templates, which the caller includes.
            SubjectNaming::Topic => subject.strip_suffix("-value"),
            SubjectNaming::TopicRecord => subject
                .strip_suffix(writer.record_name())
                .and_then(|s| s.strip_suffix('-')),
            SubjectNaming::Record => None,
        }
    }

    /// `POST /subjects/{subject}/versions` registers the schema, or returns the id it already has
    /// there; a 409 is the registry's compatibility check refusing it.
    async fn register(&self, subject: &str, writer: Writer) -> Result<u32, RegistryError> {
        let body = serde_json::json!({ "schema": writer.avsc() });
        let path = format!("/subjects/{}/versions", urlencode(subject));
        let reply = self
            .send(self.http.post(self.url(&path)).json(&body))
            .await
            .map_err(|e| Self::refused(e, subject))?;
        reply
            .json::<IdReply>()
            .await
            .map(|r| r.id)
            .map_err(|e| RegistryError::Wrong(format!("register {subject}: {e}")))
    }

    /// `POST /subjects/{subject}` finds our schema under the subject without registering it; 404
    /// means the subject or the schema is not there.
    async fn look_up(&self, subject: &str, writer: Writer) -> Result<u32, RegistryError> {
        let body = serde_json::json!({ "schema": writer.avsc() });
        let path = format!("/subjects/{}", urlencode(subject));
        match self.send(self.http.post(self.url(&path)).json(&body)).await {
            Ok(reply) => reply
                .json::<IdReply>()
                .await
                .map(|r| r.id)
                .map_err(|e| RegistryError::Wrong(format!("look up {subject}: {e}"))),
            Err(RegistryError::Wrong(status)) if status.starts_with("404") => {
                Err(RegistryError::NotRegistered(subject.to_owned()))
            }
            Err(e) => Err(e),
        }
    }

    /// The registry's schema for `id` must be ours, compared in Avro's canonical form.
    async fn check(&self, id: u32, writer: Writer) -> Result<(), RegistryError> {
        let reply: SchemaReply = self
            .send(self.http.get(self.url(&format!("/schemas/ids/{id}"))))
            .await?
            .json()
            .await
            .map_err(|e| RegistryError::Wrong(format!("schema {id}: {e}")))?;
        // Canonical form, not text: the registry may hand the schema back reformatted.
        let theirs = Schema::parse_str(&reply.schema)
            .map_err(|e| RegistryError::Wrong(format!("schema {id} does not parse: {e}")))?;
        let ours = Schema::parse_str(writer.avsc())
            .map_err(|e| RegistryError::Wrong(format!("our schema: {e}")))?;
        if theirs.canonical_form() != ours.canonical_form() {
            return Err(RegistryError::Wrong(format!(
                "id {id} is another schema than {}",
                writer.record_name()
            )));
        }
        Ok(())
    }

    /// A 409 on registration carries the registry's reason.
    fn refused(e: RegistryError, subject: &str) -> RegistryError {
        match e {
            RegistryError::Wrong(text) if text.starts_with("409") => RegistryError::Incompatible {
                subject: subject.to_owned(),
                reason: text.trim_start_matches("409 ").to_owned(),
            },
            other => other,
        }
    }

    /// `config.url` has no trailing slash (validation strips it), so paths join cleanly.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.url)
    }

    /// Sends with the credentials; 5xx and transport errors are `Unavailable`, other non-2xx
    /// `Wrong("<status> <message>")`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let request = request.header("accept", "application/vnd.schemaregistry.v1+json");
        let request = match &self.config.credentials {
            Some((user, password)) => request.basic_auth(
                String::from_utf8_lossy(user.expose()),
                Some(String::from_utf8_lossy(password.expose())),
            ),
            None => request,
        };
        let reply = request
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(without_url(&e)))?;
        let status = reply.status();
        if status.is_success() {
            return Ok(reply);
        }
        let message = reply
            .json::<ErrorReply>()
            .await
            .map(|e| e.message)
            .unwrap_or_default();
        // 5xx: the registry is in trouble, try later. Anything else: it understood and said no.
        if status.is_server_error() {
            return Err(RegistryError::Unavailable(format!("{status} {message}")));
        }
        Err(RegistryError::Wrong(format!(
            "{} {message}",
            status.as_u16()
        )))
    }
}

/// A transport error without the URL, which may carry credentials.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    kind.to_owned()
}

/// Subject names are path segments: escape what is not unreserved.
fn urlencode(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(naming: SubjectNaming) -> SchemaRegistry {
        SchemaRegistry::new(RegistryConfig {
            url: "http://127.0.0.1:9".into(),
            credentials: None,
            naming,
            auto_register: true,
            timeout: std::time::Duration::from_millis(100),
        })
        .unwrap()
    }

    #[test]
    fn subjects_follow_the_three_naming_strategies() {
        let t = "webhooks.cronofy.calendar.changed";
        assert_eq!(
            registry(SubjectNaming::Topic).subject(t, Writer::Event),
            format!("{t}-value")
        );
        assert_eq!(
            registry(SubjectNaming::Record).subject(t, Writer::DeadLetter),
            "io.hookbridge.v1.DeadLetter"
        );
        assert_eq!(
            registry(SubjectNaming::TopicRecord).subject(t, Writer::Event),
            format!("{t}-io.hookbridge.v1.Event")
        );
        let r = registry(SubjectNaming::TopicRecord);
        assert_eq!(
            r.topic_of(&format!("{t}-io.hookbridge.v1.Event"), Writer::Event),
            Some(t)
        );
        assert_eq!(urlencode("a b/c"), "a%20b%2Fc");
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_unavailable_and_nothing_is_framed() {
        crate::https::install_crypto_provider();
        let r = registry(SubjectNaming::Topic);
        let err = r.frame("t", Writer::Event, &[1, 2]).await.unwrap_err();
        assert!(matches!(err, RegistryError::Unavailable(_)), "{err}");
        assert!(
            r.ids.read().unwrap().is_empty(),
            "no id cached from a failure"
        );
    }
}
