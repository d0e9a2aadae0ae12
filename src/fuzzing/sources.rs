//! The configuration every harness runs against: [`HARNESS_CONFIG`], validated like a real file,
//! with its secrets from [`harness_env`].

use std::collections::HashMap;
use std::sync::OnceLock;

use super::SNS_FIXTURES;
use crate::config::{Config, load_str};

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

/// The sources of the `verify_presets` target are named with this prefix and the preset's name.
pub const PRESET_SOURCE_PREFIX: &str = "preset-";

/// The preset vectors: each preset's computed vector configures its harness source, so the seeds
/// made from those vectors (signed for [`super::NOW`]) verify.
const PRESET_VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/presets/vectors.json"
));

/// Each preset's computed vector, by preset name; parsed once (the harness config and every
/// `harness_env` call read them).
fn preset_vectors() -> &'static [(String, serde_json::Value)] {
    static VECTORS: OnceLock<Vec<(String, serde_json::Value)>> = OnceLock::new();
    VECTORS.get_or_init(|| {
        let all: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(PRESET_VECTORS).unwrap_or_default();
        all.into_iter()
            .filter_map(|(name, entry)| {
                let computed = entry["vectors"]
                    .as_array()?
                    .iter()
                    .find(|v| v["origin"] == "computed")?
                    .clone();
                Some((name, computed))
            })
            .collect()
    })
}

/// `[sources.preset-NAME]` for every preset, from its computed vector.
fn preset_sources() -> String {
    let mut root = toml::Table::new();
    let mut sources = toml::Table::new();
    for (name, vector) in preset_vectors() {
        let mut source = toml::Table::new();
        source.insert("provider".into(), toml::Value::String(name.clone()));
        source.insert("publisher".into(), toml::Value::String("nats".into()));
        let verify = toml::Table::try_from(&vector["verify"]).unwrap_or_default();
        source.insert("verify".into(), toml::Value::Table(verify));
        sources.insert(
            format!("{PRESET_SOURCE_PREFIX}{name}"),
            toml::Value::Table(source),
        );
    }
    root.insert("sources".into(), toml::Value::Table(sources));
    toml::to_string(&root).unwrap_or_default()
}

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
    .chain(preset_vectors().iter().flat_map(|(_, vector)| {
        vector["env"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect::<Vec<_>>()
    }))
    .collect()
}

/// The validated harness config, built once; an error lists the config's issues (a harness bug,
/// caught by the regression test).
pub fn harness_config() -> Result<&'static Config, String> {
    static CONFIG: OnceLock<Result<Config, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let env = harness_env();
            let text = HARNESS_CONFIG.replace("{sns}", SNS_FIXTURES) + "\n" + &preset_sources();
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
