//! The rows every provider gets: broken bodies under the original credential, headers and bodies
//! over the limits, and credentials that are nearly right, another source's, or given twice.

use super::requests::{
    Credential, clone, credential_of, header, invalid_utf8, other_secret, outsider,
    same_length_wrong, set_header, truncated, with_body, wrong_credential,
};
use super::{BODY_LIMIT, Moved, Row};
use crate::golden::{Golden, Prepared};

/// The rows every provider gets. `bad_sig` is the code a body that no longer matches its
/// signature earns in this scheme.
pub(super) fn common_rows(g: &Golden, source: &str, valid: &Prepared) -> Vec<Row> {
    let mut rows = body_rows(g, source, valid);
    rows.extend(size_rows(g, source, valid));
    rows.extend(credential_rows(g, source, valid));
    rows
}

/// A row refused by verification, counted under `code`.
pub(super) fn verification(
    source: &str,
    case: &str,
    request: Prepared,
    status: u16,
    code: &'static str,
) -> Row {
    Row {
        source: source.to_owned(),
        case: case.to_owned(),
        request,
        status,
        code: Some(code),
        moved: Moved::VerificationFailure,
    }
}

/// Empty, XML, truncated, invalid JSON and invalid UTF-8 bodies, each under the original
/// credential (or an outsider's, where the credential does not cover the body).
fn body_rows(g: &Golden, source: &str, valid: &Prepared) -> Vec<Row> {
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
    vec![
        verification(
            source,
            "empty body",
            with_body(clone(&base), Vec::new()),
            401,
            codes[0],
        ),
        {
            let mut p = with_body(clone(&base), b"<event><id>1</id></event>".to_vec());
            set_header(&mut p, "content-type", "application/xml".into());
            verification(source, "wrong content type (XML)", p, 401, codes[1])
        },
        verification(
            source,
            "truncated JSON",
            with_body(clone(&base), truncated(&base.body)),
            401,
            codes[2],
        ),
        verification(
            source,
            "invalid JSON",
            with_body(clone(&base), b"{\"id\": 1,, ]".to_vec()),
            401,
            codes[3],
        ),
        verification(
            source,
            "invalid UTF-8",
            with_body(clone(&base), invalid_utf8(&base.body)),
            401,
            codes[4],
        ),
    ]
}

/// Header values, header counts and bodies over the limits: hookbridge's own, and the HTTP
/// codec's.
pub(super) fn size_rows(g: &Golden, source: &str, valid: &Prepared) -> Vec<Row> {
    let mut rows = Vec::new();
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
    rows
}

/// Credentials that are nearly right: a wrong one of the right length, another source's, and
/// the credential header given twice.
fn credential_rows(g: &Golden, source: &str, valid: &Prepared) -> Vec<Row> {
    let mut rows = vec![
        verification(
            source,
            "signature of the right length, wrong",
            wrong_credential(g, valid),
            401,
            match g.name.as_str() {
                "service-optimizer" | "docplanner" | "timetap-direct" => "bad_credential",
                _ => "bad_signature",
            },
        ),
        verification(
            source,
            "signed with another source's secret",
            other_secret(g, valid),
            401,
            match g.name.as_str() {
                "service-optimizer" | "docplanner" | "timetap-direct" => "bad_credential",
                "timetap-sns" => "topic_not_allowed",
                _ => "bad_signature",
            },
        ),
    ];
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
            source,
            "signature header duplicated",
            duplicated,
            401,
            code,
        ));
        rows.push(verification(
            source,
            "conflicting signature headers",
            conflicting,
            401,
            code,
        ));
    }
    rows
}
