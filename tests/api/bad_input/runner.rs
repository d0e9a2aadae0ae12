//! The runner: the gateway every row is sent to, and for each row the request on a fresh
//! connection, then its status, the `code` in the reply, the metric that moved and the gateway's
//! health; the table printed; and at the end, that only the valid webhooks were published.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::{BODY_LIMIT, FIXTURES, JWT_AUDIENCE, JWT_HS_SECRET, Moved, Row};
use crate::brokers::{NatsServer, TempDir};
use crate::consumers::read_raw_nats;
use crate::golden::{Golden, Prepared, prepare, source_toml};
use crate::helpers::TestApp;

fn metric_delta(app: &TestApp, before: &str, row: &Row, code: Option<&str>) -> Result<(), String> {
    let after = app.pipeline.metrics().render().unwrap();
    let value = |text: &str, name: &str, labels: &[(&str, &str)]| {
        crate::helpers::metric_value(text, name, labels)
    };
    let total = |text: &str| -> f64 {
        text.lines()
            .filter(|l| {
                l.starts_with("hookbridge_webhooks_total{")
                    && l.contains(&format!("source=\"{}\"", row.source))
            })
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    };
    match row.moved {
        Moved::VerificationFailure => {
            let labels = [
                ("source", row.source.as_str()),
                ("reason", code.unwrap_or_default()),
            ];
            let name = "hookbridge_verification_failures_total";
            let delta = value(&after, name, &labels) - value(before, name, &labels);
            let rejected = [("source", row.source.as_str()), ("outcome", "rejected")];
            let rejected = value(&after, "hookbridge_webhooks_total", &rejected)
                - value(before, "hookbridge_webhooks_total", &rejected);
            if delta == 1.0 && rejected == 1.0 {
                Ok(())
            } else {
                Err(format!(
                    "{name}{{reason}} moved {delta}, outcome rejected {rejected}"
                ))
            }
        }
        Moved::Outcome(outcome) => {
            let labels = [("source", row.source.as_str()), ("outcome", outcome)];
            let delta = value(&after, "hookbridge_webhooks_total", &labels)
                - value(before, "hookbridge_webhooks_total", &labels);
            if delta == 1.0 {
                Ok(())
            } else {
                Err(format!("outcome {outcome} moved {delta}"))
            }
        }
        Moved::Nothing => {
            let delta = total(&after) - total(before);
            if delta == 0.0 {
                Ok(())
            } else {
                Err(format!("hookbridge_webhooks_total moved {delta}"))
            }
        }
    }
}

/// Sends on a fresh connection each time: a codec refusal closes its connection, and a pooled
/// one would fail the next row for a reason that is not the row's.
async fn send(app: &TestApp, source: &str, p: &Prepared) -> Result<(u16, String), String> {
    let query = if p.query.is_empty() {
        String::new()
    } else {
        format!("?{}", p.query)
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut request = http
        .post(app.url(&format!("/webhooks/{source}{query}")))
        .body(p.body.clone());
    for (k, v) in &p.headers {
        request = request.header(k, v);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

fn reply_code(body: &str) -> Option<String> {
    let reply: Value = serde_json::from_str(body).ok()?;
    // ServiceOptimizer's reply shape has no code; its Message says why, its Code the status.
    reply["code"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| reply["Code"].as_str().map(|c| format!("Code {c}")))
}

/// The gateway's config and environment: one source per golden (`bi-<golden>`), an SNS source with
/// the default replay window (`bi-sns-strict`), and JWT-validating ServiceOptimizer sources
/// (`bi-jwt-rs`, `bi-jwt-hs`), all publishing to NATS.
pub(super) fn gateway_config(
    goldens: &[Golden],
    nats: &NatsServer,
    stream: &str,
    prefix: &str,
    spool: &TempDir,
) -> (String, HashMap<String, String>) {
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\npublish_timeout_ms = 5000\n\
         health_interval_ms = 200\nbody_limit_bytes = {BODY_LIMIT}\n\n\
         [spool]\npath = \"{}\"\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{}\"\nstream = \"{stream}\"\n\
         subjects = [\"{prefix}.>\", \"webhooks.>\"]\n",
        spool.path().display(),
        nats.url()
    );
    let mut env: HashMap<String, String> = HashMap::new();
    for g in goldens {
        config.push('\n');
        config.push_str(&source_toml(g, &format!("bi-{}", g.name), "nats", prefix));
        for (k, v) in g.spec["env"].as_object().into_iter().flatten() {
            env.insert(k.clone(), v.as_str().unwrap().to_owned());
        }
    }
    // An SNS source with the default replay window, and JWT-validating ServiceOptimizer sources.
    let sns = goldens.iter().find(|g| g.name == "timetap-sns").unwrap();
    let mut strict = sns.spec.clone();
    strict["verify"]
        .as_object_mut()
        .unwrap()
        .remove("timestamp_tolerance_secs");
    config.push('\n');
    config.push_str(&source_toml(
        &Golden {
            name: "strict".into(),
            spec: strict,
        },
        "bi-sns-strict",
        "nats",
        prefix,
    ));
    config.push_str(&format!(
        "\n[sources.bi-jwt-rs]\nprovider = \"service_optimizer\"\npublisher = \"nats\"\n\
         topic = \"{prefix}.{{source}}\"\n[sources.bi-jwt-rs.verify]\n\
         jwt_key = \"file:{FIXTURES}/jwt/rs256-public.pem\"\n\
         jwt = {{ algorithms = [\"RS256\"], audience = [\"{JWT_AUDIENCE}\"] }}\n\
         \n[sources.bi-jwt-hs]\nprovider = \"service_optimizer\"\npublisher = \"nats\"\n\
         topic = \"{prefix}.{{source}}\"\n[sources.bi-jwt-hs.verify]\n\
         jwt_key = \"env:BI_JWT_HS\"\n\
         jwt = {{ algorithms = [\"HS256\"], audience = [\"{JWT_AUDIENCE}\"] }}\n"
    ));
    env.insert("BI_JWT_HS".into(), JWT_HS_SECRET.into());
    (config, env)
}

/// Sends every row and prints the table; returns one line for each row that failed.
pub(super) async fn run_table(app: &TestApp, rows: &[Row]) -> Vec<String> {
    let mut table = vec![format!(
        "{:<22} {:<42} {:>6} {:<32} {}",
        "source", "case", "status", "code", "result"
    )];
    let mut failures = Vec::new();
    for row in rows {
        let (status, code, problems) = run_row(app, row).await;
        let shown = code.unwrap_or_else(|| "-".into());
        table.push(format!(
            "{:<22} {:<42} {:>6} {:<32} {}",
            row.source,
            row.case,
            status,
            shown,
            if problems.is_empty() {
                "ok".to_owned()
            } else {
                problems.join("; ")
            }
        ));
        if !problems.is_empty() {
            failures.push(format!(
                "{} / {}: {}",
                row.source,
                row.case,
                problems.join("; ")
            ));
        }
    }
    println!("{}", table.join("\n"));
    failures
}

/// Sends one row and checks the answer: its status, the `code` in the reply, the metric that
/// moved, and the gateway's health afterwards. Returns the status, the code and the problems.
async fn run_row(app: &TestApp, row: &Row) -> (u16, Option<String>, Vec<String>) {
    let before = app.pipeline.metrics().render().unwrap();
    let outcome = send(app, &row.source, &row.request).await;
    let (status, body) = match &outcome {
        Ok((status, body)) => (*status, body.clone()),
        // The codec may answer and close before the client has written everything.
        Err(e) => (0, e.clone()),
    };
    let code = reply_code(&body);
    let mut problems = Vec::new();
    let status_ok = status == row.status
        || (row.code.is_none() && status == 0)
        || (row.code.is_none() && status == 400);
    if !status_ok {
        problems.push(format!("status {status}, expected {}", row.status));
    }
    let empty_reply = row
        .source
        .strip_prefix("bi-preset-")
        .is_some_and(crate::golden::answers_with_an_empty_body);
    if empty_reply && row.code.is_some() && !body.is_empty() {
        problems.push(format!("a body on a source that answers with none: {body}"));
    }
    let expected_code = match (row.code, row.source.as_str()) {
        (Some(_), _) if empty_reply => None,
        // ServiceOptimizer's reply carries the status in `Code`, its reason in the metric;
        // refusals before the pipeline (sizes) use the standard reply.
        (Some(_), s)
            if (s.contains("service-optimizer") || s.starts_with("bi-jwt"))
                && row.status == 401 =>
        {
            Some(format!("Code {}", row.status))
        }
        (code, _) => code.map(str::to_owned),
    };
    if expected_code.is_some() && code != expected_code {
        problems.push(format!("code {code:?}, expected {expected_code:?}"));
    }
    if let Err(e) = metric_delta(app, &before, row, row.code) {
        problems.push(e);
    }
    let healthy = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
        .get(app.url("/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() == 200);
    if !healthy {
        problems.push("unhealthy afterwards".into());
    }
    (status, code, problems)
}

/// Still healthy and still publishing: each golden's valid webhook is accepted once more, and
/// those are the only records anywhere in the stream (no row was published or dead-lettered).
pub(super) async fn assert_only_the_valid_webhooks_are_published(
    app: &TestApp,
    nats: &NatsServer,
    stream: &str,
    goldens: &[Golden],
) {
    app.wait_ready(200, Duration::from_secs(5)).await;
    for g in goldens {
        let (status, body) = send(app, &format!("bi-{}", g.name), &prepare(g))
            .await
            .unwrap();
        let want = g.spec["expect"]["status"].as_u64().unwrap() as u16;
        assert_eq!(
            status, want,
            "{}: valid webhook after the table: {body}",
            g.name
        );
    }
    let stored = read_raw_nats(
        &nats.url(),
        stream,
        ">",
        goldens.len(),
        Duration::from_secs(10),
    )
    .await;
    let dead: Vec<&str> = stored
        .iter()
        .filter(|m| m.subject.contains("dead_letter"))
        .map(|m| m.subject.as_str())
        .collect();
    assert!(dead.is_empty(), "dead letters from bad input: {dead:?}");
    assert_eq!(
        stored.len(),
        goldens.len(),
        "only the valid webhooks were published: {:?}",
        stored.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
}
