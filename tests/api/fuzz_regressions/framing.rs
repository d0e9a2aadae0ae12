//! Requests as the fuzz harness reads them: the framing of `hookbridge::fuzzing`, the harness's
//! secrets, and the goldens and JWTs signed for its clock `fuzzing::NOW`.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use hookbridge::fuzzing;
use serde_json::Value;

use super::FIXTURES;
use crate::golden::{Golden, Prepared};

pub(super) fn mac<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

pub(super) fn sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    mac::<hmac::Hmac<sha2::Sha256>>(key, parts)
}

pub(super) fn secret(name: &str) -> String {
    fuzzing::harness_env()[name].clone()
}

/// A request in the harness framing (see `hookbridge::fuzzing`).
pub(super) fn frame(headers: &[(String, String)], query: &str, body: &[u8]) -> Vec<u8> {
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

pub(super) fn framed(p: &Prepared) -> Vec<u8> {
    frame(&p.headers, &p.query, &p.body)
}

pub(super) fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `golden::prepare`, signing at `fuzzing::NOW` instead of the current time.
pub(super) fn prepare_at_now(g: &Golden) -> Prepared {
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

pub(super) fn jwt(alg: jsonwebtoken::Algorithm, key: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}
