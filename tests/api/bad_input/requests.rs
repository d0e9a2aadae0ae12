//! How a valid request is made bad: its credential swapped for a same-length wrong one or another
//! source's, its headers edited, its body truncated or broken. The rows are built from these.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::golden::{Golden, Prepared, prepare};

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
pub(super) fn same_length_wrong(value: &str) -> String {
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

pub(super) fn header<'a>(p: &'a Prepared, name: &str) -> Option<&'a str> {
    p.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(super) fn set_header(p: &mut Prepared, name: &str, value: String) {
    p.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    p.headers.push((name.to_owned(), value));
}

pub(super) fn with_body(mut p: Prepared, body: Vec<u8>) -> Prepared {
    p.body = body;
    p
}

pub(super) fn clone(p: &Prepared) -> Prepared {
    Prepared {
        headers: p.headers.clone(),
        query: p.query.clone(),
        body: p.body.clone(),
    }
}

/// Where each golden's credential is, and how to make a same-length wrong one.
pub(super) enum Credential {
    /// A header whose value after `keep` bytes is the signature or token.
    Header { name: &'static str, keep: usize },
    /// `token=` in the query string.
    QueryToken,
    /// The `Signature` field of an SNS envelope.
    SnsSignature,
    /// The hex part of `signed_request=<hex>.<payload>`.
    SignedRequest,
}

pub(super) fn credential_of(g: &Golden) -> Credential {
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
pub(super) fn wrong_credential(g: &Golden, p: &Prepared) -> Prepared {
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
pub(super) fn outsider(g: &Golden, p: &Prepared) -> Prepared {
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
pub(super) fn other_secret(g: &Golden, p: &Prepared) -> Prepared {
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

pub(super) fn truncated(body: &[u8]) -> Vec<u8> {
    body[..body.len() / 2].to_vec()
}

pub(super) fn invalid_utf8(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    let middle = b.len() / 2;
    b.splice(middle..middle, [0xff, 0xfe, 0xc3, 0x28]);
    b
}
