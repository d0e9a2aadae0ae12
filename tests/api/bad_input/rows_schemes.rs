//! The rows for schemes with traps of their own: signed timestamps, SNS envelopes, JWTs and
//! SalesKing's `signed_request`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::requests::{clone, header, set_header, with_body};
use super::{FIXTURES, JWT_AUDIENCE, JWT_HS_SECRET, Moved, Row};
use crate::golden::{Golden, Prepared, prepare, prepare_at};

/// Rows for schemes that sign a timestamp: an hour early, two hours late, and two timestamps.
pub(super) fn timestamp_rows(g: &Golden, source: &str) -> Vec<Row> {
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
pub(super) fn sns_rows(g: &Golden, source: &str, strict_source: &str) -> Vec<Row> {
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
pub(super) fn jwt_rows(rs_source: &str, hs_source: &str) -> Vec<Row> {
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
pub(super) fn salesking_rows(g: &Golden, source: &str) -> Vec<Row> {
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
