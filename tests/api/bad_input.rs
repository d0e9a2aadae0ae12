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

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::brokers::NatsServer;
use crate::consumers::read_raw_nats;
use crate::golden::{Golden, Prepared, load_goldens, prepare, prepare_at, source_toml};
use crate::helpers::{TestApp, spawn_with_config, unique};

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

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The same text with letters and digits changed to others of their class: same length, same
/// alphabet (hex stays hex, base64 stays base64), different value. The last two are kept: in
/// base64 they carry the padding bits, and changing them would make the value malformed rather
/// than wrong.
fn same_length_wrong(value: &str) -> String {
    let keep_from = value
        .char_indices()
        .filter(|(_, c)| c.is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .rev()
        .nth(1)
        .unwrap_or(0);
    value
        .char_indices()
        .map(|(i, c)| if i >= keep_from { c } else { wrong_char(c) })
        .collect()
}

fn wrong_char(c: char) -> char {
    match c {
        '0'..='8' | 'a'..='e' | 'A'..='Y' => char::from(c as u8 + 1),
        '9' => '0',
        'f' => 'a',
        'Z' => 'A',
        'g'..='y' => char::from(c as u8 + 1),
        'z' => 'g',
        other => other,
    }
}

fn header<'a>(p: &'a Prepared, name: &str) -> Option<&'a str> {
    p.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn set_header(p: &mut Prepared, name: &str, value: String) {
    p.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    p.headers.push((name.to_owned(), value));
}

fn with_body(mut p: Prepared, body: Vec<u8>) -> Prepared {
    p.body = body;
    p
}

fn clone(p: &Prepared) -> Prepared {
    Prepared {
        headers: p.headers.clone(),
        query: p.query.clone(),
        body: p.body.clone(),
    }
}

/// Where each golden's credential is, and how to make a same-length wrong one.
enum Credential {
    /// A header whose value after `keep` bytes is the signature or token.
    Header { name: &'static str, keep: usize },
    /// `token=` in the query string.
    QueryToken,
    /// The `Signature` field of an SNS envelope.
    SnsSignature,
    /// The hex part of `signed_request=<hex>.<payload>`.
    SignedRequest,
}

fn credential_of(g: &Golden) -> Credential {
    match g.name.as_str() {
        "cronofy" => Credential::Header {
            name: "cronofy-hmac-sha256",
            keep: 0,
        },
        "github" => Credential::Header {
            name: "x-hub-signature-256",
            keep: "sha256=".len(),
        },
        "stripe" => Credential::Header {
            name: "stripe-signature",
            keep: usize::MAX, // the v1= part, found at run time
        },
        "standard-webhooks" => Credential::Header {
            name: "webhook-signature",
            keep: "v1,".len(),
        },
        "service-optimizer" => Credential::Header {
            name: "authorization",
            keep: 0,
        },
        "docplanner" => Credential::Header {
            name: "x-api-key",
            keep: 0,
        },
        "timetap-direct" => Credential::QueryToken,
        "timetap-sns" => Credential::SnsSignature,
        "salesking" => Credential::SignedRequest,
        other => panic!("no credential rule for golden {other}"),
    }
}

/// The request with its credential replaced by a same-length wrong one.
fn wrong_credential(g: &Golden, p: &Prepared) -> Prepared {
    let mut p = clone(p);
    match credential_of(g) {
        Credential::Header { name, keep } => {
            let value = header(&p, name).expect("credential header").to_owned();
            let keep = if keep == usize::MAX {
                value.find("v1=").expect("stripe v1") + 3
            } else {
                keep
            };
            let (head, tail) = value.split_at(keep);
            set_header(&mut p, name, format!("{head}{}", same_length_wrong(tail)));
        }
        Credential::QueryToken => {
            let token = p.query.strip_prefix("token=").expect("token query");
            p.query = format!("token={}", same_length_wrong(token));
        }
        Credential::SnsSignature => {
            let mut envelope: Value = serde_json::from_slice(&p.body).expect("sns json");
            let signature = envelope["Signature"]
                .as_str()
                .expect("Signature")
                .to_owned();
            envelope["Signature"] = Value::String(same_length_wrong(&signature));
            p.body = serde_json::to_vec(&envelope).unwrap();
        }
        Credential::SignedRequest => {
            let body = String::from_utf8(p.body.clone()).unwrap();
            let value = body.strip_prefix("signed_request=").expect("form body");
            let (signature, payload) = value.split_once('.').expect("dot");
            p.body =
                format!("signed_request={}.{payload}", same_length_wrong(signature)).into_bytes();
        }
    }
    p
}

/// Credentials that do not cover the body are replaced, so a body row is what an outsider sends.
fn outsider(g: &Golden, p: &Prepared) -> Prepared {
    match credential_of(g) {
        Credential::QueryToken
        | Credential::Header {
            name: "authorization" | "x-api-key",
            ..
        } => wrong_credential(g, p),
        _ => clone(p),
    }
}

/// The golden signed with another source's secret (or carrying another source's token).
fn other_secret(g: &Golden, p: &Prepared) -> Prepared {
    const OTHER: &str = "a-secret-of-another-source";
    if g.spec["sign"].is_object() {
        let mut spec = g.spec.clone();
        let env = spec["sign"]["secret_env"].as_str().unwrap().to_owned();
        spec["env"][&env] = if g.name == "standard-webhooks" {
            Value::String(format!("whsec_{}", STANDARD.encode(OTHER)))
        } else {
            Value::String(OTHER.into())
        };
        return prepare(&Golden {
            name: g.name.clone(),
            spec,
        });
    }
    let mut p = clone(p);
    match g.name.as_str() {
        "github" => {
            let mac = hex::encode(hmac_sha256(OTHER.as_bytes(), &p.body));
            set_header(&mut p, "x-hub-signature-256", format!("sha256={mac}"));
        }
        "service-optimizer" | "docplanner" => {
            let name = if g.name == "docplanner" {
                "x-api-key"
            } else {
                "authorization"
            };
            set_header(&mut p, name, OTHER.into());
        }
        "timetap-direct" => p.query = format!("token={OTHER}"),
        // SNS is signed by AWS's key, not a shared secret: a message "signed for another source"
        // is one from a topic this source does not allow.
        "timetap-sns" => {
            let mut envelope: Value = serde_json::from_slice(&p.body).unwrap();
            envelope["TopicArn"] = json!("arn:aws:sns:us-west-2:131990247566:another-topic");
            p.body = serde_json::to_vec(&envelope).unwrap();
        }
        other => panic!("no other-secret rule for {other}"),
    }
    p
}

fn truncated(body: &[u8]) -> Vec<u8> {
    body[..body.len() / 2].to_vec()
}

fn invalid_utf8(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    let middle = b.len() / 2;
    b.splice(middle..middle, [0xff, 0xfe, 0xc3, 0x28]);
    b
}

/// The rows every provider gets. `bad_sig` is the code a body that no longer matches its
/// signature earns in this scheme.
fn common_rows(g: &Golden, source: &str, valid: &Prepared) -> Vec<Row> {
    let verification = |case: &str, request: Prepared, status: u16, code: &'static str| Row {
        source: source.to_owned(),
        case: case.to_owned(),
        request,
        status,
        code: Some(code),
        moved: Moved::VerificationFailure,
    };
    let base = outsider(g, valid);
    // The code each body row earns: [empty, XML, truncated, invalid JSON, invalid UTF-8].
    let codes: [&'static str; 5] = match g.name.as_str() {
        // The credential is checked first, whatever the body: every body row is a credential row.
        "service-optimizer" | "docplanner" | "timetap-direct" => ["bad_credential"; 5],
        // The envelope must be parsed before anything can be verified.
        "timetap-sns" => ["invalid_envelope"; 5],
        // The signature travels in the form body: no form field, or a damaged one.
        "salesking" => [
            "missing_signature",
            "missing_signature",
            "bad_signature",
            "missing_signature",
            "bad_signature",
        ],
        _ => ["bad_signature"; 5],
    };
    let mut rows = vec![
        verification(
            "empty body",
            with_body(clone(&base), Vec::new()),
            401,
            codes[0],
        ),
        {
            let mut p = with_body(clone(&base), b"<event><id>1</id></event>".to_vec());
            set_header(&mut p, "content-type", "application/xml".into());
            verification("wrong content type (XML)", p, 401, codes[1])
        },
        verification(
            "truncated JSON",
            with_body(clone(&base), truncated(&base.body)),
            401,
            codes[2],
        ),
        verification(
            "invalid JSON",
            with_body(clone(&base), b"{\"id\": 1,, ]".to_vec()),
            401,
            codes[3],
        ),
        verification(
            "invalid UTF-8",
            with_body(clone(&base), invalid_utf8(&base.body)),
            401,
            codes[4],
        ),
    ];
    // ServiceOptimizer reads every answer's body: refusals before the pipeline take its shape too,
    // the HTTP status in `Code`.
    let so = g.name == "service-optimizer";
    // Under the codec's 128 KiB ceiling, so hookbridge's own 32 KiB limit answers.
    let mut huge = clone(valid);
    huge.headers
        .push(("x-filler".into(), "a".repeat(64 * 1024)));
    rows.push(Row {
        source: source.to_owned(),
        case: "64 KiB header value".into(),
        request: huge,
        status: 431,
        code: Some(if so { "Code 431" } else { "headers_too_large" }),
        moved: Moved::Outcome("too_large"),
    });
    let mut huger = clone(valid);
    huger
        .headers
        .push(("x-filler".into(), "a".repeat(256 * 1024)));
    rows.push(Row {
        source: source.to_owned(),
        case: "256 KiB header value (HTTP codec)".into(),
        request: huger,
        status: 431,
        code: None,
        moved: Moved::Nothing,
    });
    let mut many = clone(valid);
    for i in 0..200 {
        many.headers.push((format!("x-h{i}"), "v".into()));
    }
    rows.push(Row {
        source: source.to_owned(),
        case: "200 headers".into(),
        request: many,
        status: 431,
        code: None,
        moved: Moved::Nothing,
    });
    rows.push(Row {
        source: source.to_owned(),
        case: "body 1 byte over the limit".into(),
        request: with_body(clone(valid), vec![b' '; BODY_LIMIT + 1]),
        status: 413,
        code: Some(if so { "Code 413" } else { "payload_too_large" }),
        moved: Moved::Outcome("too_large"),
    });
    rows.push(verification(
        "signature of the right length, wrong",
        wrong_credential(g, valid),
        401,
        match g.name.as_str() {
            "service-optimizer" | "docplanner" | "timetap-direct" => "bad_credential",
            _ => "bad_signature",
        },
    ));
    rows.push(verification(
        "signed with another source's secret",
        other_secret(g, valid),
        401,
        match g.name.as_str() {
            "service-optimizer" | "docplanner" | "timetap-direct" => "bad_credential",
            "timetap-sns" => "topic_not_allowed",
            _ => "bad_signature",
        },
    ));
    // Duplicated: the credential twice, both wrong. Conflicting: two different wrong values.
    let wrong = wrong_credential(g, valid);
    if let Credential::Header { name, .. } = credential_of(g) {
        let value = header(&wrong, name).unwrap().to_owned();
        let mut duplicated = clone(&wrong);
        duplicated.headers.push((name.into(), value.clone()));
        let mut conflicting = clone(&wrong);
        conflicting
            .headers
            .push((name.into(), same_length_wrong(&value)));
        let code = match g.name.as_str() {
            "service-optimizer" | "docplanner" => "bad_credential",
            _ => "bad_signature",
        };
        rows.push(verification(
            "signature header duplicated",
            duplicated,
            401,
            code,
        ));
        rows.push(verification(
            "conflicting signature headers",
            conflicting,
            401,
            code,
        ));
    }
    rows
}

/// Rows for schemes that sign a timestamp: an hour early, two hours late, and two timestamps.
fn timestamp_rows(g: &Golden, source: &str) -> Vec<Row> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let row = |case: &str, request: Prepared, code: &'static str| Row {
        source: source.to_owned(),
        case: case.to_owned(),
        request,
        status: 401,
        code: Some(code),
        moved: Moved::VerificationFailure,
    };
    let mut rows = vec![
        row(
            "timestamp an hour in the future",
            prepare_at(g, now + 3600),
            "timestamp_in_future",
        ),
        row(
            "timestamp two hours old",
            prepare_at(g, now - 7200),
            "timestamp_too_old",
        ),
    ];
    // Two different timestamps next to one signature: which one was signed is ambiguous.
    let mut two = prepare(g);
    match g.name.as_str() {
        "standard-webhooks" => two
            .headers
            .push(("webhook-timestamp".into(), (now - 1).to_string())),
        "stripe" => {
            let value = header(&two, "stripe-signature").unwrap().to_owned();
            set_header(
                &mut two,
                "stripe-signature",
                format!("t={},{value}", now - 1),
            );
        }
        _ => return rows,
    }
    rows.push(row(
        "two different signed timestamps",
        two,
        "conflicting_values",
    ));
    rows
}

/// SNS: certificate URLs that must never be fetched, an unknown signature version, and a message
/// older than the default window (on a source with the default tolerance).
fn sns_rows(g: &Golden, source: &str, strict_source: &str) -> Vec<Row> {
    let valid = prepare(g);
    let envelope: Value = serde_json::from_slice(&valid.body).unwrap();
    let with = |field: &str, value: &str| {
        let mut e = envelope.clone();
        e[field] = Value::String(value.to_owned());
        with_body(clone(&valid), serde_json::to_vec(&e).unwrap())
    };
    let row = |source: &str, case: &str, request: Prepared, code: &'static str| Row {
        source: source.to_owned(),
        case: case.to_owned(),
        request,
        status: 401,
        code: Some(code),
        moved: Moved::VerificationFailure,
    };
    let path = "/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem";
    vec![
        row(
            source,
            "SigningCertURL on a non-AWS host",
            with(
                "SigningCertURL",
                &format!("https://sns.us-west-2.example.com{path}"),
            ),
            "invalid_cert_url",
        ),
        row(
            source,
            "SigningCertURL over http",
            with(
                "SigningCertURL",
                &format!("http://sns.us-west-2.amazonaws.com{path}"),
            ),
            "invalid_cert_url",
        ),
        row(
            source,
            "SigningCertURL .pem look-alike path",
            with(
                "SigningCertURL",
                "https://sns.us-west-2.amazonaws.com/cert.pem?x=SimpleNotificationService.pem",
            ),
            "invalid_cert_url",
        ),
        row(
            source,
            "SigningCertURL with userinfo",
            with(
                "SigningCertURL",
                &format!("https://evil.example@sns.us-west-2.amazonaws.com{path}"),
            ),
            "invalid_cert_url",
        ),
        row(
            source,
            "SigningCertURL on an IP literal",
            with("SigningCertURL", &format!("https://169.254.169.254{path}")),
            "invalid_cert_url",
        ),
        row(
            source,
            "SignatureVersion \"3\"",
            with("SignatureVersion", "3"),
            "unsupported_signature_version",
        ),
        row(
            strict_source,
            "Timestamp years old (default window)",
            clone(&valid),
            "stale_timestamp",
        ),
    ]
}

/// JWT: `alg: none`, HS256 signed with the RS256 source's public key, expired, wrong audience.
fn jwt_rows(rs_source: &str, hs_source: &str) -> Vec<Row> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |exp: i64, aud: &str| json!({"sub": "so", "aud": aud, "exp": exp});
    let public_pem =
        std::fs::read(format!("{FIXTURES}/jwt/rs256-public.pem")).expect("public key fixture");
    let body =
        br#"{ "Type": "0", "WorkItemType": "1", "WorkItem": { "Id": "J-1", "WorkStatus": "10" } }"#;
    let request = |token: String| Prepared {
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), token),
        ],
        query: String::new(),
        body: body.to_vec(),
    };
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(now + 600, JWT_AUDIENCE).to_string())
    );
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims(now + 600, JWT_AUDIENCE),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    let hs = |claims: Value| {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(JWT_HS_SECRET.as_bytes()),
        )
        .unwrap()
    };
    let row = |source: &str, case: &str, token: String, code: &'static str| Row {
        source: source.to_owned(),
        case: case.to_owned(),
        request: request(token),
        status: 401,
        code: Some(code),
        moved: Moved::VerificationFailure,
    };
    vec![
        row(rs_source, "JWT alg none", none, "jwt_malformed"),
        row(
            rs_source,
            "JWT HS256 signed with the RS256 public key",
            confused,
            "jwt_algorithm_not_allowed",
        ),
        row(
            hs_source,
            "JWT expired",
            hs(claims(now - 3600, JWT_AUDIENCE)),
            "jwt_expired",
        ),
        row(
            hs_source,
            "JWT wrong audience",
            hs(claims(now + 600, "someone-else")),
            "jwt_wrong_audience",
        ),
    ]
}

/// SalesKing `signed_request`s that are not even well-formed.
fn salesking_rows(g: &Golden, source: &str) -> Vec<Row> {
    let valid = prepare(g);
    let body = String::from_utf8(valid.body.clone()).unwrap();
    let value = body.strip_prefix("signed_request=").unwrap();
    let (signature, payload) = value.split_once('.').unwrap();
    let row = |case: &str, form: String, code: &'static str| Row {
        source: source.to_owned(),
        case: case.to_owned(),
        request: with_body(clone(&valid), form.into_bytes()),
        status: 401,
        code: Some(code),
        moved: Moved::VerificationFailure,
    };
    vec![
        row(
            "signed_request without a dot",
            format!("signed_request={signature}{payload}"),
            "malformed_signature",
        ),
        row(
            "signed_request with bad hex",
            format!("signed_request=zz{}.{payload}", signature.get(2..).unwrap()),
            "malformed_signature",
        ),
        row(
            "signed_request with padded base64",
            format!("signed_request={signature}.{payload}%3D%3D"),
            "bad_signature",
        ),
    ]
}

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

#[tokio::test]
async fn every_provider_refuses_bad_input_clearly_and_publishes_nothing() {
    let nats = NatsServer::start();
    let goldens = load_goldens();
    let stream = unique("B");
    let prefix = unique("b");
    // Docplanner never resends, so its source spools (the config check refuses it otherwise).
    let spool = crate::brokers::TempDir::new("bad-input-spool");
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
    for g in &goldens {
        config.push('\n');
        config.push_str(&source_toml(g, &format!("bi-{}", g.name), "nats", &prefix));
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
        &prefix,
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
    let app = spawn_with_config(&config, &env, stream.clone(), prefix.clone()).await;
    app.wait_ready(200, Duration::from_secs(10)).await;

    let mut rows = Vec::new();
    for g in &goldens {
        let source = format!("bi-{}", g.name);
        let valid = prepare(g);
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

    let mut table = vec![format!(
        "{:<22} {:<42} {:>6} {:<32} {}",
        "source", "case", "status", "code", "result"
    )];
    let mut failures = Vec::new();
    for row in &rows {
        let before = app.pipeline.metrics().render().unwrap();
        let outcome = send(&app, &row.source, &row.request).await;
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
        let expected_code = match (row.code, row.source.as_str()) {
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
        if let Err(e) = metric_delta(&app, &before, row, row.code) {
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
        let shown = code.clone().unwrap_or_else(|| "-".into());
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

    // Still healthy and still publishing: each golden's valid webhook is accepted once more, and
    // those are the only records anywhere in the stream (no row was published or dead-lettered).
    app.wait_ready(200, Duration::from_secs(5)).await;
    for g in &goldens {
        let (status, body) = send(&app, &format!("bi-{}", g.name), &prepare(g))
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
        &stream,
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
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
