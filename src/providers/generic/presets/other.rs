//! Presets that sign with a public key, or send a credential instead of a signature.

// Public-key signatures: the source holds the sender's public key, never a secret.

pub(super) const DISCORD: &str = r#"scheme = "public_key"
algorithm = "ed25519"
header = "X-Signature-Ed25519"
message = "{timestamp}{body}"
timestamp_header = "X-Signature-Timestamp"
type_pointer = "/type"
id_pointer = "/id"
subject_pointer = "/guild_id"
handshake = "discord"
# Interactions are answered "deferred": whoever consumes the event follows up with its token.
reply = '{"type":5}'
"#;

pub(super) const SENDGRID: &str = r#"scheme = "public_key"
algorithm = "ecdsa_p256_sha256"
header = "X-Twilio-Email-Event-Webhook-Signature"
encoding = "base64"
message = "{timestamp}{body}"
timestamp_header = "X-Twilio-Email-Event-Webhook-Timestamp"
# Events come batched in an array.
type_pointer = "/0/event"
id_pointer = "/0/sg_event_id"
subject_pointer = "/0/email"
occurred_at_pointer = "/0/timestamp"
"#;

// Credentials instead of signatures.

pub(super) const GITLAB: &str = r#"scheme = "token"
header = "X-Gitlab-Token"
strip_bearer = false
type_header = "X-Gitlab-Event"
# The same across retries of one delivery (X-Gitlab-Event-UUID is shared by every hook of one
# request).
id_header = "Idempotency-Key"
subject_pointer = "/project/path_with_namespace"
"#;

pub(super) const MICROSOFT_GRAPH: &str = r#"scheme = "token"
# Every notification in the batch carries the subscription's clientState.
pointer = "/value/*/clientState"
type_pointer = "/value/0/changeType"
id_pointer = "/value/0/id"
subject_pointer = "/value/0/resource"
handshake = "microsoft_graph"
"#;

pub(super) const OKTA: &str = r#"scheme = "token"
header = "Authorization"
strip_bearer = false
type_pointer = "/data/events/0/eventType"
id_pointer = "/eventId"
subject_pointer = "/data/events/0/target/0/id"
occurred_at_pointer = "/eventTime"
handshake = "okta"
"#;

pub(super) const PIPEDRIVE: &str = r#"scheme = "basic"
# Pipedrive names events action then entity: `create.deal`.
type_pointer = ["/meta/action", "/meta/entity"]
id_pointer = "/meta/id"
subject_pointer = "/meta/entity_id"
occurred_at_pointer = "/meta/timestamp"
"#;

pub(super) const POSTMARK: &str = r#"scheme = "basic"
type_pointer = "/RecordType"
subject_pointer = "/MessageID"
"#;
