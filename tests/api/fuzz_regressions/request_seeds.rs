//! The seeds of the `verify_*` targets: every golden and its forgery, and the cases the goldens do
//! not cover (secret rotation, every real SNS message, tokens, proxies, the generic schemes).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hookbridge::fuzzing;
use serde_json::{Value, json};

use super::FIXTURES;
use super::framing::{frame, framed, jwt, mac, owned, prepare_at_now, secret, sha256};
use crate::golden::{Golden, forge, preset_vectors};

/// Each golden fixture and its forged variant.
pub(super) fn golden_seeds(
    goldens: &BTreeMap<String, Golden>,
    add: &mut impl FnMut(&'static str, &str, Vec<u8>),
) {
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
}

/// Each preset's computed vector and its forged variant, and every handshake vector, under the
/// presets' target (whose sources are configured from the same vectors, for `fuzzing::NOW`).
pub(super) fn preset_seeds(
    goldens: &BTreeMap<String, Golden>,
    add: &mut impl FnMut(&'static str, &str, Vec<u8>),
) {
    for (name, g) in goldens.iter().filter(|(n, _)| n.starts_with("preset-")) {
        let prepared = prepare_at_now(g);
        add(
            "verify_presets",
            &format!("golden-{name}"),
            framed(&prepared),
        );
        add(
            "verify_presets",
            &format!("golden-{name}-forged"),
            framed(&forge(g, prepared)),
        );
    }
    for (name, entry) in &preset_vectors() {
        for (i, h) in entry["handshakes"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            // Only answered ones: a refused handshake reaches no mapper (it is not "forged" by
            // name, but it is by content).
            if h["status"] != 200 {
                continue;
            }
            let r = &h["request"];
            let headers: Vec<(String, String)> = r["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let mut data = Vec::new();
            if r["method"] == "GET" {
                data.extend_from_slice(b":method: GET\n");
            }
            data.extend(frame(
                &headers,
                r["query"].as_str().unwrap_or_default(),
                r["body"].as_str().unwrap_or_default().as_bytes(),
            ));
            add("verify_presets", &format!("handshake-{name}-{i}"), data);
        }
    }
}

/// Cronofy during a secret rotation.
pub(super) fn cronofy_rotation_seed(
    goldens: &BTreeMap<String, Golden>,
    add: &mut impl FnMut(&'static str, &str, Vec<u8>),
) {
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
}

/// TimeTap: every real SNS message, and the direct delivery with its token in a header.
pub(super) fn timetap_seeds(
    goldens: &BTreeMap<String, Golden>,
    add: &mut impl FnMut(&'static str, &str, Vec<u8>),
) {
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
}

/// ServiceOptimizer's JWTs, signed and unsigned.
pub(super) fn service_optimizer_seeds(
    goldens: &BTreeMap<String, Golden>,
    add: &mut impl FnMut(&'static str, &str, Vec<u8>),
) {
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
}

/// Docplanner behind a proxy, and SalesKing's `signed_request` in the query.
pub(super) fn docplanner_and_salesking_seeds(
    goldens: &BTreeMap<String, Golden>,
    add: &mut impl FnMut(&'static str, &str, Vec<u8>),
) {
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
}

/// The generic verification schemes.
pub(super) fn generic_seeds(add: &mut impl FnMut(&'static str, &str, Vec<u8>)) {
    let now = fuzzing::NOW.unix_timestamp();
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
}
