//! The fuzz targets' inputs as regression tests: every seed in `fuzz/seeds/<target>/` and every
//! crash, hang or out-of-memory input kept in `fuzz/regressions/<target>/` runs through
//! `hookbridge::fuzzing::<target>`, the very function the fuzz target calls, and must return.
//!
//! The seeds are made from the fixtures (`tests/fixtures/golden`, `tests/fixtures/sns`), signed for
//! the harness clock `fuzzing::NOW`. `seeds_are_made_from_the_fixtures` checks that the committed
//! files still match; after changing a fixture or the generator below, rewrite them with
//! `HOOKBRIDGE_WRITE_SEEDS=1 cargo test --features fuzzing --test api fuzz_regressions`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use hookbridge::dead_letter::{DeadLetter, DeadLetterCodec, DeadLetterInput, Stage};
use hookbridge::event::avro::EVENT_CONTENT_TYPE;
use hookbridge::event::cloudevents::CloudEventAttributes;
use hookbridge::fuzzing::{self, Framed};
use hookbridge::publish::OutboundMessage;
use hookbridge::spool::SpoolEntry;
use serde_json::{Value, json};

use crate::golden::{Golden, Prepared, forge, load_goldens};

const FUZZ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Every file under `fuzz/<kind>/<target>/`, with its target's name.
fn stored_inputs(kind: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(Path::new(FUZZ).join(kind)) else {
        return out;
    };
    for dir in dirs {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let target = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.is_file() {
                out.push((target.clone(), file));
            }
        }
    }
    out.sort();
    out
}

/// The harness configuration is a real, valid config: otherwise every target would fuzz nothing.
#[test]
fn the_fuzz_harness_config_validates() {
    if let Err(issues) = fuzzing::harness_config() {
        panic!("the harness config does not validate: {issues}");
    }
}

/// Every seed and every kept crash input returns from its harness without a panic.
#[test]
fn every_seed_and_kept_crash_input_runs_through_its_harness() {
    let mut inputs = stored_inputs("seeds");
    let seeds = inputs.len();
    inputs.extend(stored_inputs("regressions"));
    // scripts/fuzz seeds the config target with the example too.
    inputs.push((
        "config".into(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hookbridge.example.toml"),
    ));
    assert!(seeds > 0, "no seed under {FUZZ}/seeds");
    let mut failures = Vec::new();
    for (target, path) in &inputs {
        let Some((_, harness)) = fuzzing::TARGETS.iter().find(|(t, _)| t == target) else {
            failures.push(format!("{}: no fuzz target named {target}", path.display()));
            continue;
        };
        let data = std::fs::read(path).unwrap();
        if std::panic::catch_unwind(|| harness(&data)).is_err() {
            failures.push(format!("{}: panicked", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The verification seeds go deep: each one (but the forged) passes verification and reaches the
/// mapper for at least one source; each forged one for none.
#[test]
fn verification_seeds_reach_the_mapper_unless_forged() {
    let mut wrong = Vec::new();
    for (target, path) in stored_inputs("seeds") {
        let data = std::fs::read(&path).unwrap();
        let Some(outcomes) = fuzzing::verify_outcomes(&target, &data) else {
            continue;
        };
        let mapped = outcomes
            .iter()
            .any(|o| o == "event" || o.starts_with("handled"));
        let forged = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains("forged");
        if mapped == forged {
            wrong.push(format!("{}: {outcomes:?}", path.display()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The committed seeds are what the generator makes from today's fixtures.
#[test]
fn seeds_are_made_from_the_fixtures() {
    let write = std::env::var_os("HOOKBRIDGE_WRITE_SEEDS").is_some();
    let mut stale = Vec::new();
    for (target, name, data) in seeds() {
        let path = Path::new(FUZZ).join("seeds").join(target).join(&name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &data).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&data[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "seeds differ from the fixtures (rewrite with HOOKBRIDGE_WRITE_SEEDS=1):\n{}",
        stale.join("\n")
    );
}

fn mac<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    mac::<hmac::Hmac<sha2::Sha256>>(key, parts)
}

fn secret(name: &str) -> String {
    fuzzing::harness_env()[name].clone()
}

/// A request in the harness framing (see `hookbridge::fuzzing`).
fn frame(headers: &[(String, String)], query: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\n").as_bytes());
    }
    if !query.is_empty() {
        out.extend_from_slice(format!(":query: {query}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

fn framed(p: &Prepared) -> Vec<u8> {
    frame(&p.headers, &p.query, &p.body)
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `golden::prepare`, signing at `fuzzing::NOW` instead of the current time.
fn prepare_at_now(g: &Golden) -> Prepared {
    let request = &g.spec["request"];
    let mut headers: Vec<(String, String)> = request["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let query = request["query"].as_str().unwrap_or_default().to_owned();
    let mut body = match (request["body"].as_str(), request["body_file"].as_str()) {
        (Some(b), _) => b.as_bytes().to_vec(),
        (None, Some(f)) => std::fs::read(format!("{FIXTURES}/{f}")).unwrap(),
        (None, None) => Vec::new(),
    };
    let sign = &g.spec["sign"];
    if sign.is_object() {
        let key = secret(sign["secret_env"].as_str().unwrap());
        let now = fuzzing::NOW.unix_timestamp();
        match sign["scheme"].as_str().unwrap() {
            "cronofy" => headers.push((
                "Cronofy-HMAC-SHA256".into(),
                STANDARD.encode(sha256(key.as_bytes(), &[&body])),
            )),
            "stripe" => {
                let sig = sha256(key.as_bytes(), &[format!("{now}.").as_bytes(), &body]);
                headers.push((
                    "Stripe-Signature".into(),
                    format!("t={now},v1={}", hex::encode(sig)),
                ));
            }
            "standard_webhooks" => {
                let key = STANDARD.decode(key.trim_start_matches("whsec_")).unwrap();
                let id = sign["id"].as_str().unwrap();
                let sig = sha256(&key, &[format!("{id}.{now}.").as_bytes(), &body]);
                headers.push(("webhook-id".into(), id.to_owned()));
                headers.push(("webhook-timestamp".into(), now.to_string()));
                headers.push((
                    "webhook-signature".into(),
                    format!("v1,{}", STANDARD.encode(sig)),
                ));
            }
            "salesking" => {
                let rfc = |t: i64| {
                    time::OffsetDateTime::from_unix_timestamp(t)
                        .unwrap()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap()
                };
                let json = serde_json::to_string(&sign["json"])
                    .unwrap()
                    .replace("{{now}}", &rfc(now))
                    .replace("{{now+3600}}", &rfc(now + 3600));
                let payload = URL_SAFE_NO_PAD.encode(json.as_bytes());
                let sig = hex::encode(sha256(key.as_bytes(), &[payload.as_bytes()]));
                body = format!("signed_request={sig}.{payload}").into_bytes();
            }
            other => panic!("{}: unknown sign scheme {other}", g.name),
        }
    }
    Prepared {
        headers,
        query,
        body,
    }
}

fn jwt(alg: jsonwebtoken::Algorithm, key: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// Every seed: (target, file name, bytes).
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let goldens: BTreeMap<String, Golden> = load_goldens()
        .into_iter()
        .map(|g| (g.name.clone(), g))
        .collect();
    let now = fuzzing::NOW.unix_timestamp();
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, name: &str, data: Vec<u8>| {
        out.push((target, name.to_owned(), data));
    };
    // Each golden fixture, and its forged variant, under the target of its provider.
    for (golden, target) in [
        ("cronofy", "verify_cronofy"),
        ("timetap-sns", "verify_timetap"),
        ("timetap-direct", "verify_timetap"),
        ("service-optimizer", "verify_service_optimizer"),
        ("docplanner", "verify_docplanner"),
        ("salesking", "verify_salesking"),
        ("github", "verify_generic"),
        ("stripe", "verify_generic"),
        ("standard-webhooks", "verify_generic"),
    ] {
        let g = &goldens[golden];
        let prepared = prepare_at_now(g);
        add(target, &format!("golden-{golden}"), framed(&prepared));
        add(
            target,
            &format!("golden-{golden}-forged"),
            framed(&forge(g, prepared)),
        );
    }

    // Cronofy during a rotation on both sides: two values, one per secret.
    let body = goldens["cronofy"].spec["request"]["body"].as_str().unwrap();
    let sigs = [secret("G_CRONOFY_OLD"), secret("G_CRONOFY")]
        .map(|s| STANDARD.encode(sha256(s.as_bytes(), &[body.as_bytes()])));
    add(
        "verify_cronofy",
        "rotation",
        frame(
            &owned(&[("Cronofy-HMAC-SHA256", &sigs.join(","))]),
            "",
            body.as_bytes(),
        ),
    );

    // Every real AWS-signed SNS message, with the type header SNS sends.
    let mut sns_bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in std::fs::read_dir(format!("{FIXTURES}/sns")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name.starts_with("test-") {
            sns_bodies.push((name, std::fs::read(&path).unwrap()));
        } else if name.ends_with("-fixtures") {
            let list: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for (i, message) in list.iter().enumerate() {
                sns_bodies.push((format!("{name}-{i}"), serde_json::to_vec(message).unwrap()));
            }
        }
    }
    sns_bodies.sort();
    for (name, body) in sns_bodies {
        let kind = serde_json::from_slice::<Value>(&body).unwrap()["Type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        add(
            "verify_timetap",
            &format!("sns-{name}"),
            frame(&owned(&[("x-amz-sns-message-type", &kind)]), "", &body),
        );
    }
    let direct = goldens["timetap-direct"].spec["request"]["body"]
        .as_str()
        .unwrap();
    add(
        "verify_timetap",
        "direct-header-token",
        frame(
            &owned(&[("X-TimeTap-Token", &secret("G_TIMETAP"))]),
            "",
            direct.as_bytes(),
        ),
    );

    // ServiceOptimizer's JWT check, a "Bearer " token, and an unsigned (alg none) token.
    let so_body = goldens["service-optimizer"].spec["request"]["body"]
        .as_str()
        .unwrap();
    let claims = json!({"iss": "serviceoptimizer", "aud": "hookbridge", "exp": 4_102_444_800_i64});
    let token = jwt(
        jsonwebtoken::Algorithm::HS256,
        &secret("G_SO_JWT_KEY"),
        &claims,
    );
    add(
        "verify_service_optimizer",
        "jwt",
        frame(
            &owned(&[("Authorization", &format!("Bearer {token}"))]),
            "",
            so_body.as_bytes(),
        ),
    );
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    add(
        "verify_service_optimizer",
        "jwt-alg-none-forged",
        frame(
            &owned(&[("Authorization", &unsigned)]),
            "",
            so_body.as_bytes(),
        ),
    );

    // Docplanner through a trusted proxy that appends the client to X-Forwarded-For.
    let dp = goldens["docplanner"].spec["request"]["body"]
        .as_str()
        .unwrap();
    add(
        "verify_docplanner",
        "forwarded",
        frame(
            &owned(&[
                ("X-Api-Key", &secret("G_DP")),
                ("X-Forwarded-For", "203.0.113.9, 10.0.0.2"),
                ("X-Forwarded-For", "2001:db8::7"),
                ("content-type", "application/json"),
            ]),
            "",
            dp.as_bytes(),
        ),
    );

    // SalesKing's signed_request in the query instead of the body.
    let sk = prepare_at_now(&goldens["salesking"]);
    add(
        "verify_salesking",
        "query",
        frame(&[], &String::from_utf8(sk.body.clone()).unwrap(), b""),
    );

    // The generic schemes the presets do not cover.
    let acme =
        format!(r#"{{"id":"evt_9","type":"invoice.paid","created":{now},"data":{{"id":"in_9"}}}}"#);
    let acme_sig = mac::<hmac::Hmac<sha2::Sha512>>(
        secret("G_ACME").as_bytes(),
        &[format!("{now}.").as_bytes(), acme.as_bytes()],
    );
    add(
        "verify_generic",
        "acme-kv-sha512",
        frame(
            &owned(&[(
                "Acme-Signature",
                &format!(
                    "t={now},v1=deadbeef,v1={}",
                    URL_SAFE_NO_PAD.encode(acme_sig)
                ),
            )]),
            "",
            acme.as_bytes(),
        ),
    );
    add(
        "verify_generic",
        "token",
        frame(
            &owned(&[
                ("X-Token", &format!("Bearer {}", secret("G_TOKEN"))),
                ("X-Event", "order.created"),
                ("X-Event-Id", "ord-1"),
            ]),
            "",
            br#"{"order":1}"#,
        ),
    );
    add(
        "verify_generic",
        "basic",
        frame(
            &owned(&[(
                "Authorization",
                &format!(
                    "Basic {}",
                    STANDARD.encode(format!("hook:{}", secret("G_BASIC")))
                ),
            )]),
            "",
            br#"{"thing":1}"#,
        ),
    );
    let generic_jwt = jwt(
        jsonwebtoken::Algorithm::HS512,
        &secret("G_JWT_KEY"),
        &json!({"sub": "sender"}),
    );
    add(
        "verify_generic",
        "jwt",
        frame(
            &owned(&[("Authorization", &format!("Bearer {generic_jwt}"))]),
            "",
            br#"{"event":"thing.done","id":"t1"}"#,
        ),
    );

    // Mapping sees the same requests (every provider maps each one).
    let requests: Vec<(String, Vec<u8>)> = out
        .iter()
        .filter(|(t, n, _)| t.starts_with("verify_") && !n.contains("forged"))
        .map(|(t, n, d)| {
            (
                format!("{}-{n}", t.trim_start_matches("verify_")),
                d.clone(),
            )
        })
        .collect();
    for (name, data) in &requests {
        out.push(("map_payload", name.clone(), data.clone()));
    }

    // Dead letters as the pipeline writes them, one per request, for the source it came to.
    let codec = DeadLetterCodec::get().unwrap();
    for (name, data) in &requests {
        let source = match name.split('-').next().unwrap() {
            "cronofy" => "cronofy",
            "timetap" => "timetap",
            "service_optimizer" => "service-optimizer",
            "docplanner" => "docplanner",
            "salesking" => "salesking",
            _ => "github",
        };
        let request = Framed::parse(data);
        let publish = name.len() % 2 == 0;
        let letter = DeadLetter::new(DeadLetterInput {
            source,
            provider: "fuzz",
            stage: if publish { Stage::Publish } else { Stage::Map },
            reason_code: "missing_field",
            reason_message: "payload has no id".into(),
            received_at: fuzzing::NOW,
            body: request.body.clone(),
            body_content_type: "application/json",
            headers: &request.headers,
            event_id: publish.then_some("sha256:0123"),
            topic: publish.then_some("webhooks.fuzz.thing"),
        });
        out.push(("dead_letter", name.clone(), codec.encode(&letter).unwrap()));
    }

    // Spool entries: an event and a dead letter.
    for (name, content_type) in [
        ("event", EVENT_CONTENT_TYPE),
        (
            "dead-letter",
            hookbridge::dead_letter::DEAD_LETTER_CONTENT_TYPE,
        ),
    ] {
        let entry = SpoolEntry {
            publisher: "nats".into(),
            source: "docplanner".into(),
            dedup_key: "docplanner/sha256:ab".into(),
            claim_window: None,
            message: OutboundMessage {
                topic: "webhooks.docplanner.appointment.booked".into(),
                key: "6263715".into(),
                dedup_key: "sha256:ab".into(),
                cloudevent: CloudEventAttributes {
                    attributes: vec![
                        ("specversion", "1.0".into()),
                        ("id", "sha256:ab".into()),
                        ("type", "appointment.booked".into()),
                        ("x-unknown", "dropped".into()),
                    ],
                    content_type,
                },
                payload: vec![0, 2, 4, 0xff, 0x80],
            },
        };
        out.push(("spool_entry", name.to_owned(), entry.encode()));
    }

    // Configs: the harness's own (with a directory that exists everywhere for cert_dir), plus
    // environment overrides. `scripts/fuzz` adds hookbridge.example.toml as it is on each run, so
    // that editing the example does not make these seeds stale.
    let harness = fuzzing::HARNESS_CONFIG.replace("{sns}", "/");
    out.push(("config", "harness".into(), harness.clone().into_bytes()));
    out.push((
        "config",
        "env-overrides".into(),
        format!(
            "#env HOOKBRIDGE__SERVER__LISTEN=127.0.0.1:9\n#env HOOKBRIDGE__SERVER__PUBLISH_TIMEOUT_MS=250\n#env HOOKBRIDGE__SOURCES__GITHUB__VERIFY__SECRETS=[\"env:G_ST\"]\n{harness}"
        )
        .into_bytes(),
    ));
    out
}
