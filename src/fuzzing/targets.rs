//! One function per fuzz target in `fuzz/fuzz_targets/`, each taking the fuzzer's bytes.

use super::framed::Framed;
use super::pipeline::{block_on, map_and_encode, verify_and_map};
use super::sources::{PRESET_SOURCE_PREFIX, harness_config, harness_env};
use crate::config::{Config, load_str};
use crate::dead_letter::DeadLetterCodec;
use crate::providers::{Provider, Verified, WebhookRequest};
use crate::spool::SpoolEntry;

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

/// Every preset, each as the source its computed vector configures (`sources.rs`).
pub fn verify_presets(data: &[u8]) {
    run_verify("verify_presets", data);
}

/// What each source of a `verify_*` target did with `data`: `event`, `handled`, or the error code
/// (verification or mapping). `None` for an unknown target. For the regression test, which checks
/// that seeds reach the mapper.
pub fn verify_outcomes(target: &str, data: &[u8]) -> Option<Vec<String>> {
    let Ok(config) = harness_config() else {
        return Some(Vec::new());
    };
    let names: Vec<&str> = if target == "verify_presets" {
        config
            .sources
            .keys()
            .map(String::as_str)
            .filter(|n| n.starts_with(PRESET_SOURCE_PREFIX))
            .collect()
    } else {
        VERIFY_SOURCES
            .iter()
            .find(|(t, _)| *t == target)?
            .1
            .to_vec()
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
    let headers = letter.request_headers();
    let request = WebhookRequest {
        method: "POST",
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
