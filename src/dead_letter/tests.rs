//! The record's header allowlist, its id and its codec round trip.

use super::*;
use actix_web::http::header::{HeaderName, HeaderValue};
use time::macros::datetime;

/// A record whose `headers` map claims 4 million entries in a few bytes: refused, and
/// apache-avro may allocate at most hookbridge's cap on the way (its default let it reserve
/// 650 MB; `fuzz/regressions/dead_letter/` keeps the input the fuzzer found).
#[test]
fn a_huge_length_prefix_is_refused_within_the_allocation_cap() {
    let codec = DeadLetterCodec::get().unwrap();
    assert_eq!(
        apache_avro::util::max_allocation_bytes(usize::MAX),
        crate::event::avro::MAX_DECODE_ALLOCATION_BYTES
    );
    let letter = DeadLetter::new(DeadLetterInput {
        source: "s",
        provider: "p",
        stage: Stage::Map,
        reason_code: "c",
        reason_message: "m".into(),
        received_at: datetime!(2026-03-07 00:00 UTC),
        body: Bytes::from_static(b"{}"),
        body_content_type: "application/json",
        headers: &HeaderMap::new(),
        provider_headers: &[],
        event_id: None,
        topic: None,
    });
    let mut bytes = codec.encode(&letter).unwrap();
    // The empty `headers` map is the last byte (a zero block count): claim 2^22 entries,
    // 300 MB of them: under apache-avro's default cap, over ours.
    assert_eq!(bytes.pop(), Some(0));
    bytes.extend_from_slice(&[0x80, 0x80, 0x80, 0x04]);
    assert!(codec.decode(&bytes).is_err());
}

/// A provider's own kept headers, as `Provider::dead_letter_headers` gives them.
const PROVIDER_HEADERS: &[&str] = &["x-github-event", "webhook-id", "stripe-signature"];

fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let value = HeaderValue::from_bytes(value).unwrap();
        map.append(HeaderName::from_static(name), value);
    }
    map
}

fn letter(stage: Stage, body: &'static [u8], event: Option<(&str, &str)>) -> DeadLetter {
    let request_headers = headers(&[
        ("content-type", b"application/json"),
        ("cronofy-hmac-sha256", b"abc="),
        ("authorization", b"Bearer secret"),
    ]);
    DeadLetter::new(DeadLetterInput {
        source: "cronofy-eu",
        provider: "cronofy",
        stage,
        reason_code: "invalid_json",
        reason_message: "payload is not valid JSON (line 1, column 2)".into(),
        received_at: datetime!(2024-10-14 09:24:17.123456 UTC),
        body: Bytes::from_static(body),
        body_content_type: "application/json",
        headers: &request_headers,
        provider_headers: &["cronofy-hmac-sha256"],
        event_id: event.map(|(id, _)| id),
        topic: event.map(|(_, topic)| topic),
    })
}

#[test]
fn every_field_round_trips_for_both_stages_with_and_without_an_event() {
    let codec = DeadLetterCodec::get().unwrap();
    for stage in [Stage::Map, Stage::Publish] {
        for event in [None, Some(("sha256:ab", "webhooks.cronofy"))] {
            let original = letter(stage, b"{\"a\":\xff}", event);
            let decoded = codec.decode(&codec.encode(&original).unwrap()).unwrap();
            assert_eq!(decoded, original);
            assert_eq!(decoded.headers.len(), 2, "{:?}", decoded.headers);
        }
    }
}

/// Redrive tools feed this whatever is on the topic: every bad input is an error, including each
/// strict prefix of a valid record, trailing bytes and an unknown stage.
#[test]
fn garbage_truncated_or_padded_bytes_are_errors_not_panics() {
    let codec = DeadLetterCodec::get().unwrap();
    let valid = codec
        .encode(&letter(Stage::Map, b"{}", Some(("e", "t"))))
        .unwrap();
    let mut cases: Vec<Vec<u8>> = vec![vec![], vec![0x80], vec![0x01], vec![0xff; 16]];
    cases.extend((0..valid.len()).map(|n| valid[..n].to_vec()));
    cases.push([valid.as_slice(), &[0]].concat());
    for seed in 1..=8u64 {
        // A fixed LCG (Knuth's MMIX constants): the same "random" bytes on every run.
        let lcg = |s: &u64| Some(s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        let noise = std::iter::successors(Some(seed), lcg).skip(1).take(1000);
        cases.push(noise.map(|s| (s >> 56) as u8).collect());
    }
    // The stage string "map": length 3 (zigzag 6), then the text; "mop" is no stage.
    let map = valid.windows(4).position(|w| w == b"\x06map").unwrap();
    let mut bad_stage = valid.clone();
    bad_stage[map + 2] = b'o';
    cases.push(bad_stage);
    for case in &cases {
        assert!(codec.decode(case).is_err(), "decoded {case:?}");
    }
}

#[test]
fn only_allowlisted_headers_are_kept() {
    let allowed: Vec<&str> = KEPT_HEADERS
        .iter()
        .chain(PROVIDER_HEADERS)
        .copied()
        .collect();
    let kept: Vec<(&str, &[u8])> = allowed.iter().map(|n| (*n, &b"v"[..])).collect();
    let dropped: &[(&str, &[u8])] = &[
        ("authorization", b"Basic dTpw"),
        ("proxy-authorization", b"Basic dTpw"),
        ("cookie", b"session=1"),
        ("x-api-key", b"k"),
        ("x-timetap-token", b"t"),
        ("x-auth-token", b"t"),
        ("x-forwarded-for", b"10.0.0.1"),
        ("forwarded", b"for=10.0.0.1"),
        ("x-real-ip", b"10.0.0.1"),
    ];
    let selected = select_headers(
        &headers(&[kept.as_slice(), dropped].concat()),
        PROVIDER_HEADERS,
    );
    let expected: BTreeMap<String, String> = allowed
        .iter()
        .map(|n| ((*n).to_owned(), "v".to_owned()))
        .collect();
    assert_eq!(selected, expected);
}

#[test]
fn repeats_are_joined_long_values_capped_and_non_utf8_dropped() {
    let long = format!("a{}", "é".repeat(600));
    let selected = select_headers(
        &headers(&[
            ("x-github-event", b"push"),
            ("x-github-event", b"\xff"),
            ("x-github-event", b"ping"),
            ("webhook-id", b"\xc3\x28"),
            ("user-agent", "Bot/é".as_bytes()),
            ("stripe-signature", long.as_bytes()),
        ]),
        PROVIDER_HEADERS,
    );
    assert_eq!(selected["x-github-event"], "push, ping");
    assert!(!selected.contains_key("webhook-id"));
    assert_eq!(selected["user-agent"], "Bot/é");
    // 1024 falls inside an "é": the cut moves back to the boundary before it.
    assert_eq!(selected["stripe-signature"].len(), 1023);
}

#[test]
fn the_id_is_stable_and_depends_on_the_body() {
    let a = letter(Stage::Map, b"{}", None);
    assert_eq!(a.id, letter(Stage::Map, b"{}", None).id);
    assert_eq!(a.id, letter(Stage::Publish, b"{}", Some(("e", "t"))).id);
    assert_ne!(a.id, letter(Stage::Map, b"{ }", None).id);
    assert!(a.id.starts_with("dl:") && a.id.len() == 67, "{}", a.id);
}

/// Computed by fastavro (`fastavro.schema.fingerprint(..., "CRC-64-AVRO")`) for the committed
/// schema: a schema change must update this value deliberately.
#[test]
fn schema_fingerprint_matches_fastavro() {
    let codec = DeadLetterCodec::get().unwrap();
    assert_eq!(codec.fingerprint(), "9a42a4e2aa7ff906");
    assert_eq!(
        codec.schema().name().unwrap().fullname(None),
        DEAD_LETTER_SCHEMA_NAME
    );
}
