//! The bad-input table: for every provider, what someone without the source's secret can send —
//! broken bodies under a stolen signature, oversized and repeated headers, signatures that are
//! nearly right, replays outside the window, and each scheme's own traps (SNS certificate URLs and
//! signature versions, JWT algorithm confusion, malformed `signed_request`s).
//!
//! Each row asserts the status, the `code` in the reply, the metric that moved, and that the
//! gateway is still healthy; at the end every source takes its valid webhook and the stream holds
//! exactly those, so no row was published or dead-lettered. The table is printed.
//!
//! Authentic but malformed payloads are not here: they are dead-lettered by design (see
//! `dead_letters.rs`). Here the body rows keep the *original* credential, which an attacker can
//! replay; for schemes whose credential does not cover the body (tokens, API keys) the credential
//! is one of the same length that is not configured.
//!
//! The table is in `rows_common.rs` (every provider), `rows_presets.rs` (every preset) and
//! `rows_schemes.rs` (each scheme's own traps), built from the request edits in `requests.rs`; `runner.rs` sends it.

mod requests;
mod rows_common;
mod rows_presets;
mod rows_schemes;
mod runner;

use std::time::Duration;

use crate::brokers::{NatsServer, TempDir};
use crate::golden::{Golden, Prepared, load_goldens, prepare};
use crate::helpers::{spawn_with_config, unique};
use rows_common::{common_rows, size_rows};
use rows_presets::preset_rows;
use rows_schemes::{jwt_rows, salesking_rows, sns_rows, timestamp_rows};

const BODY_LIMIT: usize = 16 * 1024;
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const JWT_AUDIENCE: &str = "hookbridge";
const JWT_HS_SECRET: &str = "bad-input-jwt-hmac-secret";

/// What a row must move.
#[derive(Clone, Copy)]
enum Moved {
    /// `hookbridge_verification_failures_total{source, reason = the code}`.
    VerificationFailure,
    /// `hookbridge_webhooks_total{source, outcome}`.
    Outcome(&'static str),
    /// Refused by the HTTP codec before any handler: no hookbridge series may move.
    Nothing,
}

struct Row {
    source: String,
    case: String,
    request: Prepared,
    status: u16,
    /// `None` where the HTTP codec answers without a body.
    code: Option<&'static str>,
    moved: Moved,
}

/// The whole table: the common rows for every golden's source, each scheme's own, and the JWT
/// rows.
fn all_rows(goldens: &[Golden]) -> Vec<Row> {
    let mut rows = Vec::new();
    for g in goldens {
        let source = format!("bi-{}", g.name);
        let valid = prepare(g);
        if g.name.starts_with("preset-") {
            rows.extend(preset_rows(g, &source, &valid));
            rows.extend(size_rows(g, &source, &valid));
            continue;
        }
        rows.extend(common_rows(g, &source, &valid));
        if matches!(
            g.name.as_str(),
            "stripe" | "standard-webhooks" | "salesking"
        ) {
            rows.extend(timestamp_rows(g, &source));
        }
        match g.name.as_str() {
            "timetap-sns" => rows.extend(sns_rows(g, &source, "bi-sns-strict")),
            "salesking" => rows.extend(salesking_rows(g, &source)),
            _ => {}
        }
    }
    rows.extend(jwt_rows("bi-jwt-rs", "bi-jwt-hs"));
    rows
}

#[tokio::test]
async fn every_provider_refuses_bad_input_clearly_and_publishes_nothing() {
    let nats = NatsServer::start();
    let goldens = load_goldens();
    let stream = unique("B");
    let prefix = unique("b");
    // Docplanner never resends, so its source spools (the config check refuses it otherwise).
    let spool = TempDir::new("bad-input-spool");
    let (config, env) = runner::gateway_config(&goldens, &nats, &stream, &prefix, &spool);
    let app = spawn_with_config(&config, &env, stream.clone(), prefix.clone()).await;
    app.wait_ready(200, Duration::from_secs(10)).await;

    let rows = all_rows(&goldens);
    let failures = runner::run_table(&app, &rows).await;

    runner::assert_only_the_valid_webhooks_are_published(&app, &nats, &stream, &goldens).await;
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
