//! Fuzz harnesses: one `pub fn <target>(data: &[u8])` per target in `fuzz/fuzz_targets/`, kept in
//! the library so that `tests/api/fuzz_regressions/` replays stored inputs through exactly the
//! code the fuzzer ran. Run them with `scripts/fuzz` (README, "Fuzzing").
//!
//! A harness never panics by itself: any panic, hang or out-of-memory is a finding in the code it
//! calls. Nothing here touches the network or the clock: providers come from [`HARNESS_CONFIG`]
//! through the real `load_str` + `Config::validate` path (secrets from [`harness_env`]), SNS
//! certificates from `tests/fixtures/sns` with fetching off and subscription confirmation off, and
//! every request is received at [`NOW`]. (JWT `exp` is the one check that reads the real clock,
//! inside `jsonwebtoken`.)
//!
//! Request targets read their input as a framed HTTP request:
//!
//! ```text
//! name: value        one header per line (repeats allowed), until the first empty line
//! :query: a=1&b=2    the pseudo-header `:query` sets the query string
//!                    (empty line)
//! body bytes         everything after the empty line, as it is
//! ```
//!
//! Lines may end in `\r\n`; a line that is not a valid header is skipped. Input without an empty
//! line has no headers: all of it is the body.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use time::OffsetDateTime;

use crate::config::{Config, SourceConfig, load_str};
use crate::dead_letter::{DeadLetter, DeadLetterCodec, DeadLetterInput, Stage};
use crate::event::avro::EventCodec;
use crate::event::cloudevents::CloudEventAttributes;
use crate::providers::{Mapped, Provider, Verified, WebhookRequest};
use crate::publish::topic::TopicVars;
use crate::spool::SpoolEntry;

/// When every fuzzed request is received: a fixed time, so runs are reproducible and seeds signed
/// for it stay valid.
pub const NOW: OffsetDateTime = time::macros::datetime!(2026-03-07 00:00 UTC);

/// The TCP peer of every fuzzed request: inside the Docplanner source's trusted proxies, so its
/// forwarding header is parsed.
pub const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

/// The directory of SNS fixtures and signing certificates, in this crate's source tree.
pub const SNS_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sns");

/// Every source the harnesses run, validated like a real config file. Secrets and verify tables
/// follow `tests/fixtures/golden/*.json`, so the seeds made from those fixtures verify. `{sns}`
/// stands for [`SNS_FIXTURES`].
pub const HARNESS_CONFIG: &str = r#"
# Docplanner never resends, so its source spools; nothing here opens the spool.
[spool]
path = "/nonexistent/hookbridge-fuzz-spool"

[publishers.nats]
kind = "nats"
url = "nats://127.0.0.1:4222"
stream = "FUZZ"
subjects = ["webhooks.>"]

[sources.cronofy]
provider = "cronofy"
publisher = "nats"
[sources.cronofy.verify]
client_secrets = ["env:G_CRONOFY", "env:G_CRONOFY_OLD"]

[sources.timetap]
provider = "timetap"
publisher = "nats"
[sources.timetap.verify]
topic_arns = [
  "arn:aws:sns:us-west-2:131990247566:dongie-standard-topic",
  "arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362",
  "arn:aws:sns:us-east-2:295079676684:publish-and-verify-62674b1d-4295-426b-88e7-5fb75652a04e",
  "arn:aws:sns:us-east-2:295079676684:publish-and-verify-6e11fed2-fcdf-4c52-9dc4-36ef43f37f84",
  "arn:aws:sns:us-east-2:295079676684:publish-and-verify-530b26da-0687-4fe4-9f71-780bad3181e2",
]
cert_dir = '{sns}'
fetch_certs = false
check_cert_validity = false
timestamp_tolerance_secs = 315360000
confirm_subscriptions = false
direct = "token"
direct_tokens = ["env:G_TIMETAP"]

[sources.service-optimizer]
provider = "service_optimizer"
publisher = "nats"
[sources.service-optimizer.verify]
tokens = ["env:G_SO"]

[sources.service-optimizer-jwt]
provider = "service_optimizer"
publisher = "nats"
[sources.service-optimizer-jwt.verify]
jwt_key = "env:G_SO_JWT_KEY"
[sources.service-optimizer-jwt.verify.jwt]
algorithms = ["HS256"]
issuer = "serviceoptimizer"
audience = ["hookbridge"]

[sources.docplanner]
provider = "docplanner"
publisher = "nats"
[sources.docplanner.verify]
api_key_header = "X-Api-Key"
api_keys = ["env:G_DP"]
[sources.docplanner.allow]
ips = ["0.0.0.0/0", "::/0"]
trusted_proxies = ["10.0.0.0/8"]
forwarded_header = "X-Forwarded-For"

[sources.salesking]
provider = "salesking"
publisher = "nats"
[sources.salesking.verify]
secrets = ["env:G_SK"]
channel = "client.create"

[sources.github]
provider = "github"
publisher = "nats"
[sources.github.verify]
secrets = ["env:G_GH"]

[sources.stripe]
provider = "stripe"
publisher = "nats"
[sources.stripe.verify]
secrets = ["env:G_ST"]

[sources.standard-webhooks]
provider = "standard_webhooks"
publisher = "nats"
[sources.standard-webhooks.verify]
secrets = ["env:G_SW"]

[sources.acme-billing]
provider = "generic"
publisher = "nats"
[sources.acme-billing.verify]
scheme = "hmac"
secrets = ["env:G_ACME"]
header = "Acme-Signature"
algorithm = "sha512"
encoding = "base64url"
signature_format = "kv"
message = "{timestamp}.{body}"
type_pointer = "/type"
id_pointer = "/id"
subject_pointer = "/data/id"
occurred_at_pointer = "/created"

[sources.generic-token]
provider = "generic"
publisher = "nats"
[sources.generic-token.verify]
scheme = "token"
secrets = ["env:G_TOKEN"]
header = "X-Token"
type_header = "X-Event"
id_header = "X-Event-Id"

[sources.generic-basic]
provider = "generic"
publisher = "nats"
[sources.generic-basic.verify]
scheme = "basic"
username = "hook"
secrets = ["env:G_BASIC"]
event_type = "thing.happened"

[sources.generic-jwt]
provider = "generic"
publisher = "nats"
[sources.generic-jwt.verify]
scheme = "jwt"
secrets = ["env:G_JWT_KEY"]
type_pointer = "/event"
[sources.generic-jwt.verify.jwt]
algorithms = ["HS256", "HS512"]
require_exp = false
"#;

/// The environment [`HARNESS_CONFIG`] resolves its `env:` secrets from (golden fixture values
/// where a golden exists).
pub fn harness_env() -> HashMap<String, String> {
    [
        ("G_CRONOFY", "pDY0Oi7TJSP2hfNmZNkm5"),
        (
            "G_CRONOFY_OLD",
            "CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID",
        ),
        ("G_TIMETAP", "tt-url-token-3f9a"),
        ("G_SO", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzbyJ9.c2lnbmF0dXJl"),
        ("G_SO_JWT_KEY", "so-jwt-key"),
        ("G_DP", "dp-key-71c2"),
        ("G_SK", "app-secret-9e1"),
        ("G_GH", "It's a Secret to Everybody"),
        ("G_ST", "whsec_stripe_test_1"),
        ("G_SW", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("G_ACME", "acme-signing-secret"),
        ("G_TOKEN", "generic-token-1"),
        ("G_BASIC", "basic-pass-1"),
        ("G_JWT_KEY", "generic-jwt-key"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The validated harness config, built once; an error lists the config's issues (a harness bug,
/// caught by the regression test).
pub fn harness_config() -> Result<&'static Config, String> {
    static CONFIG: OnceLock<Result<Config, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let env = harness_env();
            let text = HARNESS_CONFIG.replace("{sns}", SNS_FIXTURES);
            let raw = load_str(&text, &env).map_err(|e| e.to_string())?;
            Config::validate(raw, &env).map_err(|issues| {
                issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A harness: takes the fuzzer's bytes, returns nothing, never panics by itself.
pub type Harness = fn(&[u8]);

/// Every target, by the name of its fuzz target and seed directory.
pub const TARGETS: &[(&str, Harness)] = &[
    ("verify_cronofy", verify_cronofy),
    ("verify_timetap", verify_timetap),
    ("verify_service_optimizer", verify_service_optimizer),
    ("verify_docplanner", verify_docplanner),
    ("verify_salesking", verify_salesking),
    ("verify_generic", verify_generic),
    ("map_payload", map_payload),
    ("config", config),
    ("dead_letter", dead_letter),
    ("spool_entry", spool_entry),
];

/// The sources each `verify_*` target sends its input to.
const VERIFY_SOURCES: &[(&str, &[&str])] = &[
    ("verify_cronofy", &["cronofy"]),
    ("verify_timetap", &["timetap"]),
    (
        "verify_service_optimizer",
        &["service-optimizer", "service-optimizer-jwt"],
    ),
    ("verify_docplanner", &["docplanner"]),
    ("verify_salesking", &["salesking"]),
    (
        "verify_generic",
        &[
            "github",
            "stripe",
            "standard-webhooks",
            "acme-billing",
            "generic-token",
            "generic-basic",
            "generic-jwt",
        ],
    ),
];

/// Cronofy: `Cronofy-HMAC-SHA256` (one or several comma-separated values), then the mapping.
pub fn verify_cronofy(data: &[u8]) {
    run_verify("verify_cronofy", data);
}

/// TimeTap: SNS envelope (parse, header checks, topic, timestamp, certificate URL, signature) or a
/// direct webhook with a token in a header or the query.
pub fn verify_timetap(data: &[u8]) {
    run_verify("verify_timetap", data);
}

/// ServiceOptimizer: the static `Authorization` token and the JWT check (header, claims).
pub fn verify_service_optimizer(data: &[u8]) {
    run_verify("verify_service_optimizer", data);
}

/// Docplanner: the IP allowlist with `X-Forwarded-For` from a trusted proxy, the API-key header.
pub fn verify_docplanner(data: &[u8]) {
    run_verify("verify_docplanner", data);
}

/// SalesKing: the `signed_request` form field (or query), its MAC, payload and time fields.
pub fn verify_salesking(data: &[u8]) {
    run_verify("verify_salesking", data);
}

/// The generic family: github, stripe and standard_webhooks presets, a custom kv HMAC, token,
/// basic and JWT schemes.
pub fn verify_generic(data: &[u8]) {
    run_verify("verify_generic", data);
}

/// What each source of a `verify_*` target did with `data`: `event`, `handled`, or the error code
/// (verification or mapping). `None` for an unknown target. For the regression test, which checks
/// that seeds reach the mapper.
pub fn verify_outcomes(target: &str, data: &[u8]) -> Option<Vec<String>> {
    let (_, names) = VERIFY_SOURCES.iter().find(|(t, _)| *t == target)?;
    let Ok(config) = harness_config() else {
        return Some(Vec::new());
    };
    let framed = Framed::parse(data);
    let request = framed.request();
    Some(
        names
            .iter()
            .filter_map(|name| config.sources.get(*name))
            .map(|source| block_on(verify_and_map(source, &request)))
            .collect(),
    )
}

fn run_verify(target: &str, data: &[u8]) {
    // The outcome is only of interest to the regression test.
    let _outcomes = verify_outcomes(target, data);
}

/// Every provider's mapping, verification bypassed the way `redrive` bypasses it (the facts a
/// verifier would attach are rebuilt from the body), then encoding or dead-lettering as the
/// pipeline does.
pub fn map_payload(data: &[u8]) {
    let Ok(config) = harness_config() else {
        return;
    };
    let framed = Framed::parse(data);
    let request = framed.request();
    for source in config.sources.values() {
        let facts = source.provider.redrive_facts(request.body);
        let verified = Verified::for_redrive(&request, facts);
        let _outcome = block_on(map_and_encode(source, &request, verified));
    }
}

/// `load_str` + `Config::validate`, as `hookbridge check-config` runs them. Lines starting with
/// `#env NAME=value` (TOML comments) add to the environment, so overrides
/// (`HOOKBRIDGE__SERVER__LISTEN=...`) are fuzzed too; the harness secrets are always there.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        // `load_file` refuses non-UTF-8 files before parsing.
        return;
    };
    let mut env = harness_env();
    for line in text.lines() {
        if let Some((name, value)) = line
            .strip_prefix("#env ")
            .and_then(|entry| entry.split_once('='))
        {
            env.insert(name.to_owned(), value.to_owned());
        }
    }
    if let Ok(raw) = load_str(text, &env) {
        let _validated = Config::validate(raw, &env);
    }
}

/// The dead-letter decoder `hookbridge redrive` uses, then what redrive does with a record: the
/// request rebuilt from it, the provider's redrive facts and mapping (for the harness source of
/// that name), and the record encoded again.
pub fn dead_letter(data: &[u8]) {
    let Ok(codec) = DeadLetterCodec::get() else {
        return;
    };
    let Ok(letter) = codec.decode(data) else {
        return;
    };
    let _reencoded = codec.encode(&letter);
    let Some(source) = harness_config()
        .ok()
        .and_then(|c| c.sources.get(&letter.source))
    else {
        return;
    };
    // As `redrive::redrive_one` rebuilds the request.
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
        headers.insert(CONTENT_TYPE, v);
    }
    let request = WebhookRequest {
        headers: &headers,
        query: "",
        body: &letter.body,
        peer: None,
        received_at: letter.received_at,
    };
    let facts = source.provider.redrive_facts(request.body);
    let verified = Verified::for_redrive(&request, facts);
    let _outcome = block_on(map_and_encode(source, &request, verified));
}

/// The spool's on-disk entry decoder; a decoded entry is encoded and decoded again.
pub fn spool_entry(data: &[u8]) {
    if let Ok(entry) = SpoolEntry::decode(data) {
        let _again = SpoolEntry::decode(&entry.encode());
    }
}

/// A fuzz input read as an HTTP request (see the module docs for the framing).
pub struct Framed {
    pub headers: HeaderMap,
    pub query: String,
    pub body: Bytes,
}

impl Framed {
    pub fn parse(data: &[u8]) -> Framed {
        let mut headers = HeaderMap::new();
        let mut query = String::new();
        let Some(end) = header_block_end(data) else {
            return Framed {
                headers,
                query,
                body: Bytes::copy_from_slice(data),
            };
        };
        let (head, body) = data.split_at(end);
        for line in head.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(value) = line.strip_prefix(b":query:") {
                query = String::from_utf8_lossy(value.trim_ascii()).into_owned();
                continue;
            }
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let (name, value) = line.split_at(colon);
            let value = value.get(1..).unwrap_or_default().trim_ascii();
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.trim_ascii()),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(n, v);
            }
        }
        Framed {
            headers,
            query,
            body: Bytes::copy_from_slice(body),
        }
    }

    pub fn request(&self) -> WebhookRequest<'_> {
        WebhookRequest {
            headers: &self.headers,
            query: &self.query,
            body: &self.body,
            peer: Some(PEER),
            received_at: NOW,
        }
    }
}

/// Where the body starts: just after the first empty line (`\n\n` or `\n\r\n`), or at the very
/// start when the input opens with an empty line.
fn header_block_end(data: &[u8]) -> Option<usize> {
    if data.starts_with(b"\n") {
        return Some(1);
    }
    if data.starts_with(b"\r\n") {
        return Some(2);
    }
    data.windows(2).enumerate().find_map(|(i, w)| match w {
        b"\n\n" => Some(i + 2),
        b"\n\r" if data.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

/// The pipeline's path for one source up to the broker: allowlist → verify → map → encode (or the
/// dead letter a mapping failure becomes). Returns what happened, for the regression test.
async fn verify_and_map(source: &SourceConfig, request: &WebhookRequest<'_>) -> String {
    if let Some(allow) = &source.allow
        && let Err(e) = allow.check(request.peer, request.headers)
    {
        return e.code().to_owned();
    }
    match source.provider.verify(request).await {
        Ok(verified) => map_and_encode(source, request, verified).await,
        Err(e) => e.code().to_owned(),
    }
}

/// `Pipeline::map_and_deliver` without dedup and the broker: the event encoded as it would be
/// published, or a mapping failure built into its dead letter and encoded.
async fn map_and_encode(
    source: &SourceConfig,
    request: &WebhookRequest<'_>,
    verified: Verified<'_>,
) -> String {
    match source.provider.map(&source.name, verified).await {
        Ok(Mapped::Event(event)) => {
            let topic = source.topic.render(&TopicVars {
                source: &event.source,
                provider: event.provider,
                event_type: &event.event_type,
            });
            if let Ok(codec) = EventCodec::get() {
                let _attributes = CloudEventAttributes::of(&event, codec.fingerprint());
                if codec.encode(&event).is_err() {
                    return format!("encode_failed ({topic})");
                }
            }
            "event".to_owned()
        }
        Ok(Mapped::Handled { code }) => format!("handled: {code}"),
        Err(e) => {
            let letter = DeadLetter::new(DeadLetterInput {
                source: &source.name,
                provider: source.provider.kind(),
                stage: Stage::Map,
                reason_code: e.code(),
                reason_message: e.to_string(),
                received_at: request.received_at,
                body: source.provider.redact_for_dead_letter(request.body),
                body_content_type: request
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/octet-stream"),
                headers: request.headers,
                provider_headers: source.provider.dead_letter_headers(),
                event_id: None,
                topic: None,
            });
            if let Ok(codec) = DeadLetterCodec::get()
                && codec.encode(&letter).is_err()
            {
                return "dead_letter_encode_failed".to_owned();
            }
            e.code().to_owned()
        }
    }
}

/// Runs a provider future on one current-thread runtime, built on first use. Nothing the harnesses
/// run spawns tasks or waits on timers, so `block_on` returns as soon as the future does.
fn block_on<F: Future<Output = String>>(future: F) -> String {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
    });
    match runtime {
        Some(runtime) => runtime.block_on(future),
        None => "no_runtime".to_owned(),
    }
}
