//! Presets that sign more than the body: a timestamp, an id, the URL, the form, or fields
//! inside the body.

// Signed timestamps, ids, URLs: the message is more than the body.

/// How Svix signs (Standard Webhooks under `svix-*` names), stated once for Svix and the
/// senders that deliver through it (Clerk, Resend). A macro, because `concat!` takes literals.
macro_rules! svix_signing {
    () => {
        r#"scheme = "hmac"
header = "svix-signature"
encoding = "base64"
prefix = "v1,"
separator = " "
message = "{id}.{timestamp}.{body}"
id_header = "svix-id"
timestamp_header = "svix-timestamp"
secret_prefix = "whsec_"
secret_encoding = "base64"
"#
    };
}

pub(super) const BOX: &str = r#"scheme = "hmac"
# Signed once with the primary key and once with the secondary, so either may rotate.
header = ["BOX-SIGNATURE-PRIMARY", "BOX-SIGNATURE-SECONDARY"]
encoding = "base64"
message = "{body}{timestamp}"
timestamp_header = "BOX-DELIVERY-TIMESTAMP"
timestamp_format = "rfc3339"
tolerance_secs = 600
id_header = "BOX-DELIVERY-ID"
type_pointer = "/trigger"
id_pointer = "/id"
subject_pointer = "/source/id"
occurred_at_pointer = "/created_at"
"#;

pub(super) const CALENDLY: &str = r#"scheme = "hmac"
header = "Calendly-Webhook-Signature"
signature_format = "kv"
message = "{timestamp}.{body}"
tolerance_secs = 180
type_pointer = "/event"
subject_pointer = "/payload/uri"
occurred_at_pointer = "/created_at"
"#;

pub(super) const CLERK: &str = concat!(
    svix_signing!(),
    r#"type_pointer = "/type"
subject_pointer = "/data/id"
occurred_at_pointer = "/timestamp"
occurred_at_format = "unix_ms"
"#
);

pub(super) const HUBSPOT: &str = r#"scheme = "hmac"
header = "X-HubSpot-Signature-v3"
encoding = "base64"
message = "{method}{url}{body}{timestamp}"
timestamp_header = "X-HubSpot-Request-Timestamp"
timestamp_format = "unix_ms"
# Events come batched in an array.
type_pointer = "/0/subscriptionType"
id_pointer = "/0/eventId"
subject_pointer = "/0/objectId"
occurred_at_pointer = "/0/occurredAt"
occurred_at_format = "unix_ms"
"#;

pub(super) const PADDLE: &str = r#"scheme = "hmac"
header = "Paddle-Signature"
signature_format = "kv"
kv_separator = ";"
kv_timestamp_key = "ts"
kv_signature_key = "h1"
message = "{timestamp}:{body}"
# Paddle's documented default; a source may widen it.
tolerance_secs = 5
type_pointer = "/event_type"
id_pointer = "/event_id"
subject_pointer = "/data/id"
occurred_at_pointer = "/occurred_at"
"#;

pub(super) const RESEND: &str = concat!(
    svix_signing!(),
    r#"type_pointer = "/type"
occurred_at_pointer = "/created_at"
"#
);

pub(super) const SLACK: &str = r#"scheme = "hmac"
header = "X-Slack-Signature"
prefix = "v0="
message = "v0:{timestamp}:{body}"
timestamp_header = "X-Slack-Request-Timestamp"
type_pointer = "/event/type"
id_pointer = "/event_id"
subject_pointer = "/team_id"
occurred_at_pointer = "/event_time"
handshake = "slack"
"#;

pub(super) const SQUARE: &str = r#"scheme = "hmac"
header = "x-square-hmacsha256-signature"
encoding = "base64"
# The notification URL exactly as configured in Square's console: set `url` on the source.
message = "{url}{body}"
type_pointer = "/type"
id_pointer = "/event_id"
subject_pointer = "/data/id"
occurred_at_pointer = "/created_at"
"#;

pub(super) const SVIX: &str = concat!(
    svix_signing!(),
    r#"type_pointer = "/type"
"#
);

pub(super) const TWILIO: &str = r#"scheme = "hmac"
header = "X-Twilio-Signature"
algorithm = "sha1"
encoding = "base64"
# The URL Twilio called (set `url` on the source), then the form parameters sorted by name.
message = "{url}{form_sorted}"
body_format = "form"
id_header = "I-Twilio-Idempotency-Token"
event_type = "twilio.webhook"
subject_pointer = "/AccountSid"
"#;

pub(super) const TWITCH: &str = r#"scheme = "hmac"
header = "Twitch-Eventsub-Message-Signature"
prefix = "sha256="
message = "{id}{timestamp}{body}"
id_header = "Twitch-Eventsub-Message-Id"
timestamp_header = "Twitch-Eventsub-Message-Timestamp"
timestamp_format = "rfc3339"
tolerance_secs = 600
type_pointer = "/subscription/type"
subject_pointer = "/event/broadcaster_user_id"
handshake = "twitch"
"#;

pub(super) const ZENDESK: &str = r#"scheme = "hmac"
header = "X-Zendesk-Webhook-Signature"
encoding = "base64"
message = "{timestamp}{body}"
timestamp_header = "X-Zendesk-Webhook-Signature-Timestamp"
timestamp_format = "rfc3339"
id_header = "X-Zendesk-Webhook-Invocation-Id"
type_pointer = "/type"
id_pointer = "/id"
subject_pointer = "/subject"
occurred_at_pointer = "/time"
"#;

pub(super) const ZOOM: &str = r#"scheme = "hmac"
header = "x-zm-signature"
prefix = "v0="
message = "v0:{timestamp}:{body}"
timestamp_header = "x-zm-request-timestamp"
type_pointer = "/event"
subject_pointer = "/payload/object/id"
occurred_at_pointer = "/event_ts"
occurred_at_format = "unix_ms"
handshake = "zoom"
"#;

// A signature inside the body.

pub(super) const MAILGUN: &str = r#"scheme = "hmac"
signature_pointer = "/signature/signature"
# Mailgun signs a timestamp and a one-time token, not the event data: the token is the dedup key,
# so a replayed signature with other data is a duplicate, and an old one is refused.
message = "{timestamp}{field:/signature/token}"
timestamp_pointer = "/signature/timestamp"
tolerance_secs = 3600
id_pointer = "/signature/token"
type_pointer = "/event-data/event"
subject_pointer = "/event-data/recipient"
"#;
